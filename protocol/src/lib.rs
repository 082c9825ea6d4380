//! The wire contract between devices and the cloud.
//!
//! This crate is the one place the wire format is defined: MQTT [`topic`]s, the payload
//! types of every channel ([`heartbeat`], [`event`], [`state`], [`command`]), the
//! [`reboot`] reason table, and the [`codec`] that validates on the way in and on the
//! way out. Nothing else in the workspace writes or parses this JSON by hand.
//! `docs/protocol.md` is the same contract written for device makers.
//!
//! It also holds the little both sides of the wire need alike: the [`clock`] they date
//! things with, the [`broker`] URLs they connect to and the [`retry`] policy of their
//! reconnect and delivery loops.
//!
//! Design choices:
//! - Every value that arrives from outside is validated into a type once, here: ids are
//!   [`ids::DeviceId`] and friends, not strings; numbers are checked against physical
//!   ranges; a failure is a [`DecodeError`] naming the field.
//! - Unknown fields are ignored (a newer device may send more); missing required fields
//!   and unknown enum values are errors.
//! - Variant payloads (events, commands, liveness) are externally tagged,
//!   `{"reboot": {...}}`, so serde can name the failing field precisely.
//! - The crate depends on serde only (clap joins with the `cli` feature for the
//!   `fleet-protocol` checker), so the edge agent can link it.

pub mod broker;
pub mod clock;
pub mod codec;
pub mod command;
pub mod envelope;
pub mod event;
pub mod examples;
pub mod heartbeat;
pub mod ids;
pub mod reboot;
pub mod retry;
pub mod state;
pub mod topic;
pub mod validate;

pub use broker::{BrokerUrl, BrokerUrlError, Endpoint};
pub use clock::{Clock, SystemClock};
pub use codec::{
    decode, decode_payload, encode, encode_with, DecodeError, Decoded, EncodeError, Header,
    Message, Payload,
};
pub use envelope::{Envelope, MAX_SEQ, SCHEMA_VERSION, SUPPORTED_SCHEMAS};
pub use ids::{DeviceId, Epoch, Seq, TenantId, Timestamp};
pub use topic::{Channel, Topic, TopicError};
pub use validate::{FieldError, Limits, Problem};
