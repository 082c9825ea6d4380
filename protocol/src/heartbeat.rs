//! The periodic heartbeat: one interval of device health, aggregated on the device.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::reboot::RebootReason;
use crate::validate::{self as v, Checked, FieldError, Limits, Problem, Validate};

/// The longest heartbeat interval accepted: seven days.
pub const MAX_INTERVAL_S: u32 = 7 * 24 * 3600;
/// The highest per-interval count accepted for reboots, crashes and errors.
pub const MAX_COUNT: u32 = 100_000;

/// One heartbeat interval's aggregated telemetry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Length of the interval covered, seconds.
    pub interval_s: u32,
    /// Time the device was running during the interval, seconds.
    pub operational_s: u32,
    /// Operational time without a crash or unexpected reboot, seconds.
    pub crash_free_s: u32,
    /// Time in active use (screen on, playing, worn), seconds.
    pub active_s: u32,
    /// Restarts during the interval, counted by reason.
    #[serde(default)]
    pub reboots: BTreeMap<RebootReason, u32>,
    /// Application or system crashes during the interval.
    pub crashes: u32,
    /// Storage read/write errors during the interval.
    pub storage_errors: u32,
    /// Battery state; absent on mains-powered devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery: Option<BatteryReport>,
    /// Temperature; absent where the device has no sensor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thermal: Option<ThermalReport>,
    /// Network connectivity during the interval.
    pub connectivity: ConnectivityReport,
    /// Rolling features computed on the device over longer windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<EdgeFeatures>,
    /// Spooled messages the device has dropped (oldest first) in total since it was first
    /// started: a running count, so a lost heartbeat loses none of it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub spool_dropped: u32,
    /// The device maker's own signals over the interval, by name (a fan's speed, a
    /// modem's resets): at most [`MAX_METRICS`], each typed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, Metric>,
}

/// The most custom metrics one heartbeat carries.
pub const MAX_METRICS: usize = 32;
/// The longest custom metric name, bytes.
pub const MAX_METRIC_NAME: usize = 32;
/// The largest magnitude of a gauge: beyond it a reading is a fault, not a signal.
pub const MAX_GAUGE: f64 = 1e12;

/// One custom metric's value over the interval, typed as the device maker declares it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Occurrences during the interval (a modem's resets): at most [`MAX_COUNT`].
    Count(u32),
    /// A reading over the interval (a fan's mean speed): a finite number.
    Gauge(f64),
    /// Time spent in a state during the interval (GPS on), seconds: at most the interval.
    Timer(u32),
}

impl Metric {
    /// The value as a number, whatever its type.
    pub fn value(&self) -> f64 {
        match *self {
            Metric::Count(n) | Metric::Timer(n) => n.into(),
            Metric::Gauge(g) => g,
        }
    }
}

/// Whether `name` may name a custom metric: 1 to [`MAX_METRIC_NAME`] bytes of lowercase
/// ASCII letters, digits and `_`, starting with a letter.
pub fn is_metric_name(name: &str) -> bool {
    name.len() <= MAX_METRIC_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn validate_metrics(metrics: &BTreeMap<String, Metric>, interval: u64) -> Checked {
    if metrics.len() > MAX_METRICS {
        return Err(FieldError::new(
            "body.metrics",
            Problem::Invalid(format!(
                "{} metrics; at most {MAX_METRICS} are allowed",
                metrics.len()
            )),
        ));
    }
    for (name, metric) in metrics {
        if !is_metric_name(name) {
            return Err(FieldError::new(
                "body.metrics",
                Problem::Invalid(format!(
                    "metric name {name:?} must be 1 to {MAX_METRIC_NAME} lowercase letters, \
                     digits or `_`, starting with a letter"
                )),
            ));
        }
        let field = format!("body.metrics.{name}");
        match *metric {
            Metric::Count(n) if n > MAX_COUNT => {
                return Err(FieldError::new(
                    field,
                    Problem::OutOfRange {
                        value: n.into(),
                        min: 0.0,
                        max: MAX_COUNT.into(),
                        unit: "occurrences",
                    },
                ))
            }
            Metric::Gauge(g) if !g.is_finite() => {
                return Err(FieldError::new(field, Problem::NotFinite))
            }
            Metric::Gauge(g) if g.abs() > MAX_GAUGE => {
                return Err(FieldError::new(
                    field,
                    Problem::OutOfRange {
                        value: g,
                        min: -MAX_GAUGE,
                        max: MAX_GAUGE,
                        unit: "units",
                    },
                ))
            }
            Metric::Timer(s) if u64::from(s) > interval => {
                return Err(FieldError::new(
                    field,
                    Problem::Inconsistent("the timer exceeds the interval"),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Battery state over the interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatteryReport {
    /// State of charge at the start of the interval, percent.
    pub soc_start_pct: f32,
    /// State of charge at the end of the interval, percent.
    pub soc_end_pct: f32,
    /// Lowest state of charge in the interval, percent.
    pub soc_min_pct: f32,
    /// Largest drop in state of charge within the drop window, percentage points.
    pub max_drop_pct: f32,
    /// Cell voltage at the end of the interval, volts.
    pub voltage_v: f32,
    /// State of health: full-charge capacity over design capacity, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soh_pct: Option<f32>,
    /// Charge cycles over the battery's life.
    pub charge_cycles: u32,
    /// Time on a charger during the interval, seconds.
    pub charging_s: u32,
}

/// Device temperature over the interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThermalReport {
    /// Lowest temperature, °C.
    pub min_c: f32,
    /// Mean temperature, °C.
    pub mean_c: f32,
    /// Highest temperature, °C.
    pub max_c: f32,
    /// Time above the device's over-temperature threshold, seconds.
    pub above_threshold_s: u32,
}

/// Connectivity over the interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectivityReport {
    /// Time connected to the broker, seconds.
    pub connected_s: u32,
    /// Number of connection losses.
    pub disconnects: u32,
    /// Mean received signal strength, dBm; absent on wired devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rssi_dbm: Option<i16>,
}

/// Rolling features the device computes over windows longer than one interval. Each is
/// optional: a device reports those it can compute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EdgeFeatures {
    /// Unexpected reboots in the last 24 hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unexpected_reboots_24h: Option<u32>,
    /// Unexpected reboots in the last 7 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unexpected_reboots_7d: Option<u32>,
    /// State-of-charge drain per hour of active use, percentage points per hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soc_drain_pct_per_active_h: Option<f32>,
    /// Trend of state of health, percentage points per 30 days (negative when fading).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soh_slope_pct_per_30d: Option<f32>,
}

impl Validate for Heartbeat {
    fn validate(&self, limits: &Limits) -> Checked {
        let interval = u64::from(self.interval_s);
        v::int("body.interval_s", interval, 1, MAX_INTERVAL_S.into(), "s")?;
        v::ordered(
            "body.operational_s",
            self.operational_s.into(),
            interval,
            "operational time exceeds the interval",
        )?;
        v::ordered(
            "body.crash_free_s",
            self.crash_free_s.into(),
            self.operational_s.into(),
            "crash-free time exceeds operational time",
        )?;
        v::ordered(
            "body.active_s",
            self.active_s.into(),
            self.operational_s.into(),
            "active time exceeds operational time",
        )?;
        for count in self.reboots.values() {
            v::int(
                "body.reboots",
                (*count).into(),
                0,
                MAX_COUNT.into(),
                "reboots",
            )?;
        }
        v::int(
            "body.crashes",
            self.crashes.into(),
            0,
            MAX_COUNT.into(),
            "crashes",
        )?;
        v::int(
            "body.storage_errors",
            self.storage_errors.into(),
            0,
            MAX_COUNT.into(),
            "errors",
        )?;
        if let Some(b) = &self.battery {
            b.validate(interval)?;
        }
        if let Some(t) = &self.thermal {
            t.validate(interval)?;
        }
        self.connectivity.validate(interval)?;
        if let Some(f) = &self.features {
            f.validate(limits)?;
        }
        validate_metrics(&self.metrics, interval)
    }
}

impl BatteryReport {
    fn validate(&self, interval: u64) -> Checked {
        v::percent("body.battery.soc_start_pct", self.soc_start_pct)?;
        v::percent("body.battery.soc_end_pct", self.soc_end_pct)?;
        v::percent("body.battery.soc_min_pct", self.soc_min_pct)?;
        v::percent("body.battery.max_drop_pct", self.max_drop_pct)?;
        v::float("body.battery.voltage_v", self.voltage_v, 0.0, 30.0, "V")?;
        v::opt_float("body.battery.soh_pct", self.soh_pct, 0.0, 150.0, "%")?;
        v::int(
            "body.battery.charge_cycles",
            self.charge_cycles.into(),
            0,
            100_000,
            "cycles",
        )?;
        v::ordered(
            "body.battery.charging_s",
            self.charging_s.into(),
            interval,
            "charging time exceeds the interval",
        )?;
        if self.soc_min_pct > self.soc_start_pct.min(self.soc_end_pct) {
            return Err(FieldError::new(
                "body.battery.soc_min_pct",
                Problem::Inconsistent("the minimum is above the start or end value"),
            ));
        }
        Ok(())
    }
}

impl ThermalReport {
    fn validate(&self, interval: u64) -> Checked {
        v::float("body.thermal.min_c", self.min_c, -40.0, 150.0, "°C")?;
        v::float("body.thermal.mean_c", self.mean_c, -40.0, 150.0, "°C")?;
        v::float("body.thermal.max_c", self.max_c, -40.0, 150.0, "°C")?;
        if !(self.min_c <= self.mean_c && self.mean_c <= self.max_c) {
            return Err(FieldError::new(
                "body.thermal.mean_c",
                Problem::Inconsistent("the mean is not between the minimum and the maximum"),
            ));
        }
        v::ordered(
            "body.thermal.above_threshold_s",
            self.above_threshold_s.into(),
            interval,
            "time above threshold exceeds the interval",
        )
    }
}

impl ConnectivityReport {
    fn validate(&self, interval: u64) -> Checked {
        v::ordered(
            "body.connectivity.connected_s",
            self.connected_s.into(),
            interval,
            "connected time exceeds the interval",
        )?;
        v::int(
            "body.connectivity.disconnects",
            self.disconnects.into(),
            0,
            MAX_COUNT.into(),
            "disconnects",
        )?;
        if let Some(rssi) = self.rssi_dbm {
            v::float(
                "body.connectivity.rssi_dbm",
                rssi.into(),
                -150.0,
                0.0,
                "dBm",
            )?;
        }
        Ok(())
    }
}

impl Validate for EdgeFeatures {
    fn validate(&self, _limits: &Limits) -> Checked {
        let count = |field, n: Option<u32>| {
            n.map_or(Ok(()), |n| {
                v::int(field, n.into(), 0, MAX_COUNT.into(), "reboots")
            })
        };
        count(
            "body.features.unexpected_reboots_24h",
            self.unexpected_reboots_24h,
        )?;
        count(
            "body.features.unexpected_reboots_7d",
            self.unexpected_reboots_7d,
        )?;
        v::opt_float(
            "body.features.soc_drain_pct_per_active_h",
            self.soc_drain_pct_per_active_h,
            0.0,
            1000.0,
            "%/h",
        )?;
        v::opt_float(
            "body.features.soh_slope_pct_per_30d",
            self.soh_slope_pct_per_30d,
            -100.0,
            100.0,
            "%/30d",
        )
    }
}
