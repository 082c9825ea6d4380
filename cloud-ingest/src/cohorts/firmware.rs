//! Firmware regressions: each version's unexpected restarts and crash-free hours per
//! device-day, against the version before it. Counted from the days each device ran
//! each version, so a fleet half-way through a rollout compares like with like.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use super::poisson::rate_ratio_upper_tail;
use super::FirmwareDay;

/// One version against its predecessor.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FirmwareComparison {
    /// The version.
    pub firmware: String,
    /// The version before it (by version order) that ran in the fleet.
    pub predecessor: Option<String>,
    /// Devices that ran it.
    pub devices: u64,
    /// Device-days it ran.
    pub device_days: f64,
    /// Unexpected restarts on it.
    pub unexpected_restarts: u64,
    /// Crashes on it.
    pub crashes: u64,
    /// Unexpected restarts per device-day.
    pub restarts_per_device_day: f64,
    /// Crash-free hours per device-day (at most 24).
    pub crash_free_hours_per_device_day: f64,
    /// The predecessor's restarts per device-day.
    pub predecessor_restarts_per_device_day: Option<f64>,
    /// The predecessor's crash-free hours per device-day.
    pub predecessor_crash_free_hours_per_device_day: Option<f64>,
    /// One-sided exact p-value that its restart rate exceeds the predecessor's.
    pub p_value: f64,
    /// Benjamini–Hochberg q-value across every test of the run.
    pub q_value: f64,
    /// Its first day in the fleet, ms.
    pub first_day_ms: u64,
}

impl FirmwareComparison {
    /// Restart rate over the predecessor's (infinite when the predecessor had none).
    pub fn ratio(&self) -> Option<f64> {
        let before = self.predecessor_restarts_per_device_day?;
        Some(if before > 0.0 {
            self.restarts_per_device_day / before
        } else if self.restarts_per_device_day > 0.0 {
            f64::INFINITY
        } else {
            1.0
        })
    }
}

/// Orders versions by their dotted numeric parts (`3.10.0` after `3.9.2`), text parts
/// compared as text.
pub fn version_order(a: &str, b: &str) -> Ordering {
    let parts = |s: &str| -> Vec<(u64, String)> {
        s.split(['.', '-', '+'])
            .map(|p| match p.parse::<u64>() {
                Ok(n) => (n, String::new()),
                Err(_) => (u64::MAX, p.to_owned()),
            })
            .collect()
    };
    parts(a).cmp(&parts(b)).then_with(|| a.cmp(b))
}

#[derive(Default)]
struct Sums {
    devices: HashSet<String>,
    operational_s: u64,
    crash_free_s: u64,
    restarts: u64,
    crashes: u64,
    first_day_ms: u64,
}

/// Every version that ran, in version order, each against its predecessor (p-values
/// only; the watch fills in q-values).
pub fn compare(days: &[FirmwareDay]) -> Vec<FirmwareComparison> {
    let mut sums: HashMap<&str, Sums> = HashMap::new();
    for d in days {
        let s = sums.entry(d.firmware.as_str()).or_insert_with(|| Sums {
            first_day_ms: d.day_ms,
            ..Sums::default()
        });
        if !s.devices.contains(&d.device_id) {
            s.devices.insert(d.device_id.clone());
        }
        s.operational_s += d.operational_s;
        s.crash_free_s += d.crash_free_s.min(d.operational_s);
        s.restarts += d.unexpected_restarts;
        s.crashes += d.crashes;
        s.first_day_ms = s.first_day_ms.min(d.day_ms);
    }
    let mut versions: Vec<&str> = sums
        .iter()
        .filter(|(_, s)| s.operational_s > 0)
        .map(|(v, _)| *v)
        .collect();
    versions.sort_by(|a, b| version_order(a, b));
    let per_day = |s: &Sums| {
        let days = s.operational_s as f64 / 86_400.0;
        (
            days,
            s.restarts as f64 / days,
            s.crash_free_s as f64 / 3600.0 / days,
        )
    };
    versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let s = &sums[v];
            let (days, restarts, crash_free) = per_day(s);
            let before = i.checked_sub(1).map(|j| (versions[j], &sums[versions[j]]));
            let p_value = before.map_or(1.0, |(_, b)| {
                rate_ratio_upper_tail(s.restarts, days, b.restarts, per_day(b).0)
            });
            FirmwareComparison {
                firmware: (*v).to_owned(),
                predecessor: before.map(|(name, _)| name.to_owned()),
                devices: s.devices.len() as u64,
                device_days: days,
                unexpected_restarts: s.restarts,
                crashes: s.crashes,
                restarts_per_device_day: restarts,
                crash_free_hours_per_device_day: crash_free,
                predecessor_restarts_per_device_day: before.map(|(_, b)| per_day(b).1),
                predecessor_crash_free_hours_per_device_day: before.map(|(_, b)| per_day(b).2),
                p_value,
                q_value: 1.0,
                first_day_ms: s.first_day_ms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(device: &str, fw: &str, day: u64, restarts: u64, crash_free_h: u64) -> FirmwareDay {
        FirmwareDay {
            device_id: device.into(),
            day_ms: day * 86_400_000,
            firmware: fw.into(),
            operational_s: 86_400,
            crash_free_s: crash_free_h * 3600,
            unexpected_restarts: restarts,
            crashes: restarts,
        }
    }

    #[test]
    fn a_version_is_compared_with_the_one_before_it() {
        let mut days = Vec::new();
        for d in 0..20 {
            days.push(day("a", "3.10.0", d, 2, 20));
            days.push(day("b", "3.9.2", d, 0, 24));
            days.push(day("c", "3.9.2", d, u64::from(d % 10 == 0), 24));
        }
        let c = compare(&days);
        assert_eq!(
            c.iter().map(|c| c.firmware.as_str()).collect::<Vec<_>>(),
            ["3.9.2", "3.10.0"],
            "numeric order, not text order"
        );
        assert_eq!(c[0].predecessor, None);
        assert_eq!(c[0].p_value, 1.0);
        let new = &c[1];
        assert_eq!(new.predecessor.as_deref(), Some("3.9.2"));
        assert_eq!((new.devices, new.unexpected_restarts), (1, 40));
        assert!((new.restarts_per_device_day - 2.0).abs() < 1e-12);
        assert!((new.predecessor_restarts_per_device_day.unwrap() - 2.0 / 40.0).abs() < 1e-12);
        assert!((new.crash_free_hours_per_device_day - 20.0).abs() < 1e-12);
        assert!(new.p_value < 1e-10, "{}", new.p_value);
        assert!((new.ratio().unwrap() - 40.0).abs() < 1e-9);
    }
}
