//! The header every device-originated message carries, around a typed body.

use serde::{Deserialize, Serialize};

use crate::ids::{BootId, DeviceId, Epoch, Seq, Timestamp};
use crate::validate::{self, Checked, FieldError, Limits, Problem, Validate};

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 2;

/// The schema versions this build reads.
pub const SUPPORTED_SCHEMAS: &[u32] = &[1, 2];

/// The first schema version whose messages carry an [`Epoch`] and that has the
/// `withdraw` command.
pub const EPOCH_SCHEMA: u32 = 2;

/// A device-originated message: header fields plus the channel's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<B> {
    /// Schema version of this message.
    pub schema: u32,
    /// The publishing device; must match the topic's device level.
    pub device_id: DeviceId,
    /// Per-device sequence number, increasing across reboots.
    pub seq: Seq,
    /// The run of `seq` this message belongs to (schema 2; absent, that is
    /// [`Epoch::NONE`], in schema 1).
    #[serde(default, skip_serializing_if = "Epoch::is_none")]
    pub epoch: Epoch,
    /// The boot this message was produced in.
    pub boot_id: BootId,
    /// When the device produced the message, by its own clock.
    pub ts_ms: Timestamp,
    /// True when the message was held in the device's spool and sent late.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub historical: bool,
    /// The channel-specific content.
    pub body: B,
}

impl<B> Envelope<B> {
    /// A live (not historical) message of the current schema version.
    pub fn new(
        device_id: DeviceId,
        (epoch, seq): (Epoch, Seq),
        boot_id: BootId,
        ts: Timestamp,
        body: B,
    ) -> Self {
        Envelope {
            schema: SCHEMA_VERSION,
            device_id,
            seq,
            epoch,
            boot_id,
            ts_ms: ts,
            historical: false,
            body,
        }
    }
}

/// The highest `seq`: 2⁶³−1, so that every store keeps it as a signed 64-bit integer
/// (SQL has no unsigned one). A device counting a million messages a second would reach
/// it in 290,000 years.
pub const MAX_SEQ: u64 = i64::MAX as u64;

impl<B: Validate> Validate for Envelope<B> {
    fn validate(&self, limits: &Limits) -> Checked {
        validate::timestamp("ts_ms", self.ts_ms, limits)?;
        validate::int("seq", self.seq.0, 0, MAX_SEQ, "")?;
        match (self.schema >= EPOCH_SCHEMA, self.epoch.is_none()) {
            (true, true) => {
                return Err(FieldError::new(
                    "epoch",
                    Problem::Inconsistent("a schema-2 message must carry a non-zero epoch"),
                ))
            }
            (false, false) => {
                return Err(FieldError::new(
                    "epoch",
                    Problem::Inconsistent("schema 1 has no epoch; declare schema 2"),
                ))
            }
            _ => {}
        }
        self.body.validate(limits)
    }
}
