//! Liveness on the retained `state` topic: a birth message when the device connects
//! and a death message, registered as the MQTT Last Will, when it drops off.

use serde::{Deserialize, Serialize};

use crate::ids::{BatchId, FirmwareVersion, HardwareRevision, ModelId};
use crate::validate::{Checked, Limits, Validate};

/// The device's liveness. On the wire `{"online": {...}}` or `{"offline": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Published (retained) right after each connect.
    Online(Birth),
    /// Registered as the Last Will at connect, or published before a clean disconnect.
    Offline(Death),
}

/// What a device says about itself when it comes online.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Birth {
    /// Model or SKU.
    pub model: ModelId,
    /// What kind of device it is.
    pub device_class: DeviceClass,
    /// Hardware revision.
    pub hw_revision: HardwareRevision,
    /// Manufacturing batch.
    pub batch: BatchId,
    /// Firmware version running.
    pub firmware: FirmwareVersion,
    /// Version of the edge agent.
    pub agent_version: FirmwareVersion,
}

/// Kinds of device in a fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceClass {
    /// A smartphone.
    Phone,
    /// A tablet.
    Tablet,
    /// A smart speaker.
    Speaker,
    /// A watch, band or other wearable.
    Wearable,
    /// A home hub or gateway.
    Hub,
    /// Anything else.
    Other,
}

impl DeviceClass {
    /// The wire name (`phone`), also used in stores.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceClass::Phone => "phone",
            DeviceClass::Tablet => "tablet",
            DeviceClass::Speaker => "speaker",
            DeviceClass::Wearable => "wearable",
            DeviceClass::Hub => "hub",
            DeviceClass::Other => "other",
        }
    }
}

/// Why a device went offline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Death {
    /// How the death was reported.
    pub cause: DeathCause,
}

/// How an offline state came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeathCause {
    /// The broker published the Last Will: the connection was lost.
    Will,
    /// The device said goodbye before a clean disconnect.
    Shutdown,
}

impl Validate for State {
    // Every field is a validated id or a closed enum: serde has checked them all.
    fn validate(&self, _limits: &Limits) -> Checked {
        Ok(())
    }
}
