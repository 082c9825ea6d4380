//! The device-side agent.
//!
//! It reads the hardware through embedded-hal traits ([`hal`], [`gauge`]) or Linux
//! sysfs ([`sysfs`]), classifies every boot ([`reboot_log`]), samples and aggregates
//! health into heartbeats and immediate events ([`sampling`]), computes the edge
//! features with the same functions the models crate uses, keeps everything it
//! publishes in a crash-safe on-disk [`spool`] until the broker acknowledges it, and
//! runs an MQTT [`session`] with birth, Last Will, backoff and commands.
//!
//! The core ([`agent::Agent`]) does no I/O and reads no clock: the host passes the
//! time in. That is what lets the simulator run months of the real agent in seconds.

pub mod agent;
pub mod config;
pub mod gauge;
pub mod hal;
pub mod reboot_log;
pub mod sampling;
pub mod session;
pub mod settings;
pub mod spool;
pub mod store;
pub mod sysfs;

pub use agent::{Agent, AgentState, CommandOutcome, Identity};
pub use settings::Settings;
