//! Firmware regressions: each version's unexpected restarts and crash-free hours per
//! device-day, against the version before it. Counted from the days each device ran
//! each version, so a fleet half-way through a rollout compares like with like; and
//! compared at the same device ages (the cohort table's age bands), because a newer
//! version runs on older devices, whose wearing batteries and boards restart them more
//! whatever the firmware.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use super::poisson::share_upper_tail;
use super::table::AGE_BANDS_DAYS;
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
    /// Restarts the version would have had at the predecessor's rates at the same
    /// device ages, over the ages both ran at.
    pub expected_restarts: Option<f64>,
    /// Its own restarts over those ages (what `expected_restarts` is compared with).
    pub compared_restarts: Option<u64>,
    /// Its device-days at those ages.
    pub compared_device_days: Option<f64>,
    /// One-sided exact p-value that its restart rate exceeds the predecessor's at the
    /// same ages.
    pub p_value: f64,
    /// Benjamini–Hochberg q-value across every test of the run.
    pub q_value: f64,
    /// Its first day in the fleet, ms.
    pub first_day_ms: u64,
}

impl FirmwareComparison {
    /// Restarts over what the predecessor's rates at the same ages predict (infinite
    /// when they predict none).
    pub fn ratio(&self) -> Option<f64> {
        let expected = self.expected_restarts?;
        let observed = self.compared_restarts? as f64;
        Some(if expected > 0.0 {
            observed / expected
        } else if observed > 0.0 {
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

/// Age strata: the cohort table's bands, and one for devices of unknown purchase date.
const STRATA: usize = AGE_BANDS_DAYS.len() + 1;

#[derive(Default)]
struct Sums {
    devices: HashSet<String>,
    operational_s: u64,
    crash_free_s: u64,
    restarts: u64,
    crashes: u64,
    first_day_ms: u64,
    /// Operational seconds and restarts per age stratum.
    by_age: [(u64, u64); STRATA],
}

/// The age stratum of a day `day_ms` of a device bought at `purchased_ms`.
fn stratum(day_ms: u64, purchased_ms: Option<u64>) -> usize {
    let Some(bought) = purchased_ms else {
        return STRATA - 1;
    };
    let age = day_ms.saturating_sub(bought) as f64 / 86_400_000.0;
    AGE_BANDS_DAYS.iter().rposition(|&b| age >= b).unwrap_or(0)
}

/// `v`'s restarts and device-days at the ages both ran at, what `p`'s rates at those
/// ages predict, and the one-sided p-value: conditional on both versions' restarts at those ages,
/// `v`'s are binomial with its share of them under equal rates at each age (the cohort
/// table's test).
fn age_matched(v: &Sums, p: &Sums) -> (u64, f64, f64, f64) {
    let (mut observed, mut all, mut pooled, mut expected, mut seconds) =
        (0u64, 0u64, 0.0, 0.0, 0u64);
    for (&(sv, rv), &(sp, rp)) in v.by_age.iter().zip(&p.by_age) {
        if sv == 0 || sp == 0 {
            continue;
        }
        let (dv, dp) = (sv as f64, sp as f64);
        observed += rv;
        seconds += sv;
        all += rv + rp;
        pooled += dv * (rv + rp) as f64 / (dv + dp);
        expected += dv * rp as f64 / dp;
    }
    let share = if all > 0 {
        (pooled / all as f64).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (
        observed,
        seconds as f64 / 86_400.0,
        expected,
        share_upper_tail(observed, all, share),
    )
}

/// Every version that ran, in version order, each against its predecessor at the same
/// device ages (`purchased` gives a device's purchase time; p-values only, the watch
/// fills in q-values).
pub fn compare(
    days: &[FirmwareDay],
    purchased: &HashMap<&str, Option<u64>>,
) -> Vec<FirmwareComparison> {
    let mut sums: HashMap<&str, Sums> = HashMap::new();
    // Days of a version nobody knows are no version to compare.
    for d in days.iter().filter(|d| d.firmware != super::table::UNKNOWN) {
        let s = sums.entry(d.firmware.as_str()).or_insert_with(|| Sums {
            first_day_ms: d.day_ms,
            ..Sums::default()
        });
        let a = stratum(
            d.day_ms,
            purchased.get(d.device_id.as_str()).copied().flatten(),
        );
        s.by_age[a].0 += d.operational_s;
        s.by_age[a].1 += d.unexpected_restarts;
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
            let matched = before.map(|(_, b)| age_matched(s, b));
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
                expected_restarts: matched.map(|m| m.2),
                compared_restarts: matched.map(|m| m.0),
                compared_device_days: matched.map(|m| m.1),
                p_value: matched.map_or(1.0, |m| m.3),
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
        let c = compare(&days, &HashMap::new());
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

    #[test]
    fn a_version_on_older_devices_is_compared_at_the_same_ages() {
        // Devices restart more as they age, whatever they run: young ones once in 50
        // days, old ones once in 5. 3.2.0 ran on young and old devices alike; 3.2.1 on
        // old ones only, where its rate is the old devices' rate.
        let mut days = Vec::new();
        let mut bought = HashMap::new();
        let ids: Vec<String> = (0..40).map(|i| format!("d{i}")).collect();
        for (i, id) in ids.iter().enumerate() {
            let old = i % 2 == 0;
            bought.insert(id.as_str(), Some(if old { 0 } else { 600 * 86_400_000 }));
            for d in 700..750u64 {
                let every = if old { 5 } else { 50 };
                let restarts = u64::from((d + i as u64).is_multiple_of(every));
                let fw = if old && d >= 725 { "3.2.1" } else { "3.2.0" };
                days.push(day(id, fw, d, restarts, 24));
            }
        }
        let c = compare(&days, &bought);
        let new = &c[1];
        assert_eq!(new.firmware, "3.2.1");
        // Raw, 3.2.1 restarts about three times as often as 3.2.0 ...
        let raw = new.restarts_per_device_day / new.predecessor_restarts_per_device_day.unwrap();
        assert!(raw > 2.0, "{raw}");
        // ... but no more than 3.2.0 did on devices of the same age.
        assert!(
            (new.ratio().unwrap() - 1.0).abs() < 0.25,
            "{:?}",
            new.ratio()
        );
        assert!(new.p_value > 0.2, "{}", new.p_value);
        // Without purchase dates every device is in one stratum: the raw comparison.
        let blind = compare(&days, &HashMap::new());
        assert!(blind[1].p_value < 1e-3, "{}", blind[1].p_value);
        // Days whose version is unknown are left out, not compared as a version.
        days.push(day("d0", "unknown", 760, 9, 20));
        let c = compare(&days, &bought);
        assert_eq!(c.len(), 2);
    }
}
