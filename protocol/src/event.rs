//! Immediate events: published as they happen, not aggregated.

use serde::{Deserialize, Serialize};

use crate::ids::BootId;
use crate::reboot::RebootReason;
use crate::validate::{self as v, Checked, FieldError, Limits, Problem, Validate};

/// One event. On the wire an object with exactly one key naming the kind:
/// `{"reboot": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The device restarted.
    Reboot(RebootEvent),
    /// An application or system crash.
    Crash(CrashEvent),
    /// State of charge fell faster than the drop threshold.
    BatteryDrop(BatteryDropEvent),
    /// Temperature crossed the over-temperature threshold.
    OverTemperature(OverTemperatureEvent),
    /// Storage reported an error.
    StorageError(StorageErrorEvent),
}

impl Event {
    /// The event kind as written on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Reboot(_) => "reboot",
            Event::Crash(_) => "crash",
            Event::BatteryDrop(_) => "battery_drop",
            Event::OverTemperature(_) => "over_temperature",
            Event::StorageError(_) => "storage_error",
        }
    }
}

/// A restart, reported in the first message of the new boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebootEvent {
    /// Why the device restarted.
    pub reason: RebootReason,
    /// True when the previous boot ended without an orderly shutdown.
    #[serde(default)]
    pub unclean: bool,
    /// The boot that ended, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_boot_id: Option<BootId>,
    /// How long the previous boot ran, seconds, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_uptime_s: Option<u64>,
}

/// A crash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrashEvent {
    /// A stable signature grouping crashes of one cause (for example a hash of the
    /// top frames, or `module:function:line`).
    pub signature: String,
    /// The crashed process or task, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
}

/// A sudden fall in state of charge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatteryDropEvent {
    /// State of charge before the drop, percent.
    pub from_pct: f32,
    /// State of charge after the drop, percent.
    pub to_pct: f32,
    /// Over how long the drop happened, seconds.
    pub window_s: u32,
}

/// An over-temperature crossing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverTemperatureEvent {
    /// The temperature measured, °C.
    pub temp_c: f32,
    /// The threshold in force, °C.
    pub threshold_c: f32,
    /// Which sensor, when the device has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
}

/// A storage error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageErrorEvent {
    /// A short machine-readable code, such as `io_error`, `bad_block`, `fs_corrupt`.
    pub code: String,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The longest crash signature accepted, bytes.
pub const MAX_SIGNATURE_LEN: usize = 256;
/// The longest short name (process, sensor, code) accepted, bytes.
pub const MAX_NAME_LEN: usize = 64;
/// The longest free-text detail accepted, bytes.
pub const MAX_DETAIL_LEN: usize = 512;

impl Validate for Event {
    fn validate(&self, _limits: &Limits) -> Checked {
        match self {
            // Ten years of uptime is the ceiling of plausible.
            Event::Reboot(e) => e.prev_uptime_s.map_or(Ok(()), |s| {
                v::int("body.reboot.prev_uptime_s", s, 0, 10 * 365 * 86_400, "s")
            }),
            Event::Crash(e) => {
                v::text(
                    "body.crash.signature",
                    &e.signature,
                    MAX_SIGNATURE_LEN,
                    false,
                )?;
                v::opt_text("body.crash.process", e.process.as_deref(), MAX_NAME_LEN)
            }
            Event::BatteryDrop(e) => {
                v::percent("body.battery_drop.from_pct", e.from_pct)?;
                v::percent("body.battery_drop.to_pct", e.to_pct)?;
                v::int(
                    "body.battery_drop.window_s",
                    e.window_s.into(),
                    1,
                    86_400,
                    "s",
                )?;
                if e.to_pct >= e.from_pct {
                    return Err(FieldError::new(
                        "body.battery_drop.to_pct",
                        Problem::Inconsistent("a drop must end below where it started"),
                    ));
                }
                Ok(())
            }
            Event::OverTemperature(e) => {
                v::float("body.over_temperature.temp_c", e.temp_c, -40.0, 150.0, "°C")?;
                v::float(
                    "body.over_temperature.threshold_c",
                    e.threshold_c,
                    -40.0,
                    150.0,
                    "°C",
                )?;
                v::opt_text(
                    "body.over_temperature.sensor",
                    e.sensor.as_deref(),
                    MAX_NAME_LEN,
                )
            }
            Event::StorageError(e) => {
                v::text("body.storage_error.code", &e.code, MAX_NAME_LEN, false)?;
                v::opt_text(
                    "body.storage_error.detail",
                    e.detail.as_deref(),
                    MAX_DETAIL_LEN,
                )
            }
        }
    }
}
