//! What the agent needs from the hardware, as traits the host firmware implements.
//!
//! The battery gauge is reached through embedded-hal's `I2c` (see [`crate::gauge`]);
//! the sysfs backend ([`crate::sysfs`]) reads a Linux battery instead. Both give a
//! [`BatterySample`], so everything above this module is the same on a
//! microcontroller, on Linux and in the simulator.

/// Why a hardware read failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HalError {
    /// The bus transaction failed.
    #[error("bus error: {0}")]
    Bus(String),
    /// The device answered with a value outside what it can report.
    #[error("implausible reading from {source_name}: {detail}")]
    Implausible {
        /// Which reading.
        source_name: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A file-backed source could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        message: String,
    },
}

/// One reading of the battery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatterySample {
    /// State of charge, percent.
    pub soc_pct: f32,
    /// Cell voltage, volts.
    pub voltage_v: f32,
    /// True while the battery is being charged.
    pub charging: bool,
    /// Battery temperature, °C, when the gauge measures it.
    pub temp_c: Option<f32>,
    /// Full-charge capacity over design capacity, percent, when known.
    pub soh_pct: Option<f32>,
    /// Charge cycles as the gauge counts them (may wrap; see [`crate::sampling`]).
    pub cycles: Option<f32>,
}

/// A source of battery readings: a fuel gauge or the operating system.
pub trait BatteryMonitor {
    /// Reads the battery once.
    fn read(&mut self) -> Result<BatterySample, HalError>;
}

/// A temperature sensor for the device (the hottest point the firmware watches).
pub trait Thermometer {
    /// Reads the temperature, °C.
    fn read_c(&mut self) -> Result<f32, HalError>;
}

/// What the reset-cause register (or the operating system) says about the last reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetCause {
    /// Power was applied (cold start, or power lost and restored).
    PowerOn,
    /// Supply voltage fell below the brown-out detector's threshold.
    BrownOut,
    /// The hardware watchdog expired.
    Watchdog,
    /// Firmware requested the reset.
    Software,
    /// The reset pin was pulled (a long press on the power button).
    ExternalPin,
    /// The power-management IC cut power on over-temperature.
    Thermal,
    /// The previous boot ended in a kernel panic (Linux: a pstore record).
    KernelPanic,
    /// The register was unreadable or held no known cause.
    Unknown,
}

/// A source of the last reset's cause.
pub trait ResetCauseSource {
    /// Reads (and, on hardware that latches it, clears) the reset cause.
    fn reset_cause(&mut self) -> Result<ResetCause, HalError>;
}

/// Everything the agent samples, bundled for the host firmware to provide.
pub trait Platform {
    /// Reads the battery; `Ok(None)` on a mains-powered device.
    fn battery(&mut self) -> Result<Option<BatterySample>, HalError>;
    /// Reads the device temperature; `Ok(None)` without a sensor.
    fn temperature_c(&mut self) -> Result<Option<f32>, HalError>;
    /// Reads the last reset's cause.
    fn reset_cause(&mut self) -> Result<ResetCause, HalError>;
    /// True while the device is in active use (screen on, playing, worn).
    fn is_active(&mut self) -> bool;
    /// Runs a storage read/write self-test.
    fn storage_self_test(&mut self) -> Result<(), HalError>;
    /// A few bits of entropy for boot ids (hardware RNG, OS randomness, a seeded RNG).
    fn entropy(&mut self) -> u32;
    /// The device maker's own signals at this sample, by name: a count is occurrences
    /// since the last sample, a gauge a reading now, a timer seconds in the state since
    /// the last sample. The agent sums counts and timers and averages gauges over the
    /// heartbeat interval. None by default.
    fn custom_metrics(&mut self) -> Vec<(String, Metric)> {
        Vec::new()
    }
}
use protocol::heartbeat::Metric;
