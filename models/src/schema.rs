//! The feature schema: which features a model sees, in which order, with units, meanings
//! and the value that stands in for a missing one.
//!
//! The order here is the column order of every feature matrix and model. Changing a name,
//! a unit, the order or a fill value changes [`schema_fingerprint`], and a model artifact
//! trained on another schema then refuses to load.

/// Bump when the meaning of a feature changes without its name changing.
pub const SCHEMA_VERSION: u32 = 1;

/// One feature's definition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureSpec {
    /// Column name, snake_case.
    pub name: &'static str,
    /// Unit of the value.
    pub unit: &'static str,
    /// What it measures, for people.
    pub meaning: &'static str,
    /// The value used when the device cannot report it (no battery, no sensor, too little
    /// history). Chosen as the healthy value, so a missing signal never raises risk.
    pub missing: f64,
}

const fn spec(
    name: &'static str,
    unit: &'static str,
    missing: f64,
    meaning: &'static str,
) -> FeatureSpec {
    FeatureSpec {
        name,
        unit,
        meaning,
        missing,
    }
}

/// Index of each feature in [`FEATURES`].
#[allow(missing_docs)]
pub mod idx {
    pub const UNEXPECTED_REBOOTS_1D: usize = 0;
    pub const UNEXPECTED_REBOOTS_7D: usize = 1;
    pub const UNEXPECTED_REBOOTS_30D: usize = 2;
    pub const UNEXPECTED_REBOOT_TREND: usize = 3;
    pub const BROWN_OUTS_7D: usize = 4;
    pub const BROWN_OUT_SHARE_30D: usize = 5;
    pub const WATCHDOG_RESETS_7D: usize = 6;
    pub const THERMAL_RESETS_30D: usize = 7;
    pub const CRASHES_7D: usize = 8;
    pub const CRASH_TREND: usize = 9;
    pub const DRAIN_7D: usize = 10;
    pub const DRAIN_TREND: usize = 11;
    pub const MAX_DROP_7D: usize = 12;
    pub const BATTERY_DROPS_7D: usize = 13;
    pub const SOH: usize = 14;
    pub const SOH_SLOPE: usize = 15;
    pub const CHARGE_CYCLES: usize = 16;
    pub const TEMP_MAX_7D: usize = 17;
    pub const TEMP_MEAN_TREND: usize = 18;
    pub const HOT_HOURS_7D: usize = 19;
    pub const OVER_TEMPERATURE_7D: usize = 20;
    pub const STORAGE_ERRORS_7D: usize = 21;
    pub const STORAGE_ERRORS_30D: usize = 22;
    pub const OFFLINE_SHARE_7D: usize = 23;
    pub const DISCONNECTS_7D: usize = 24;
    pub const DOWNTIME_SHARE_7D: usize = 25;
    pub const DEVICE_AGE: usize = 26;
    pub const HAS_BATTERY: usize = 27;
    pub const STORAGE_ERRORS_1D: usize = 28;
    pub const TEMP_MAX_1D: usize = 29;
}

/// The number of features.
pub const FEATURE_COUNT: usize = 30;

/// Every feature, in column order.
pub const FEATURES: [FeatureSpec; FEATURE_COUNT] = [
    spec("unexpected_reboots_per_day_1d", "1/day", 0.0,
        "Unexpected restarts (brown-out, watchdog, panic, thermal, unknown, ...) in the last 24 hours."),
    spec("unexpected_reboots_per_day_7d", "1/day", 0.0,
        "Unexpected restarts per day over the last 7 days (fewer when the device is newer)."),
    spec("unexpected_reboots_per_day_30d", "1/day", 0.0,
        "Unexpected restarts per day over the last 30 days (fewer when the device is newer)."),
    spec("unexpected_reboot_trend", "1/day", 0.0,
        "The 7-day rate minus the 30-day rate: positive when restarts are becoming more frequent."),
    spec("brown_outs_per_day_7d", "1/day", 0.0,
        "Brown-out restarts (supply voltage collapsed under load) per day over 7 days."),
    spec("brown_out_share_30d", "ratio", 0.0,
        "Share of the last 30 days' unexpected restarts that were brown-outs; 0 without any."),
    spec("watchdog_resets_per_day_7d", "1/day", 0.0,
        "Hardware- and software-watchdog restarts per day over 7 days."),
    spec("thermal_resets_30d", "count", 0.0,
        "Thermal cut-off restarts in the last 30 days."),
    spec("crashes_per_day_7d", "1/day", 0.0,
        "Application and system crashes per day over 7 days."),
    spec("crash_trend", "1/day", 0.0,
        "Crashes per day over 7 days minus over 30 days."),
    spec("drain_pct_per_active_h_7d", "%/h", 0.0,
        "State-of-charge drain per hour of active use over 7 days: drain normalised by usage."),
    spec("drain_trend", "%/h", 0.0,
        "Drain per active hour over 7 days minus over 30 days."),
    spec("max_drop_pct_7d", "%", 0.0,
        "Largest sudden fall in state of charge over 7 days, percentage points."),
    spec("battery_drops_7d", "count", 0.0,
        "Sudden state-of-charge drops reported as events over 7 days."),
    spec("soh_pct", "%", 100.0,
        "Battery state of health: full-charge capacity over design capacity, latest report."),
    spec("soh_slope_pct_per_30d", "%/30d", 0.0,
        "Trend of state of health over the last 30 days, per 30 days (negative when fading)."),
    spec("charge_cycles", "cycles", 0.0,
        "Battery charge cycles over its life, latest report."),
    spec("temp_max_c_7d", "°C", 30.0,
        "Highest temperature over 7 days."),
    spec("temp_mean_trend_c", "°C", 0.0,
        "Mean temperature over 7 days minus over 30 days: positive when running hotter."),
    spec("hot_hours_7d", "h", 0.0,
        "Time above the device's over-temperature threshold over 7 days."),
    spec("over_temperature_events_7d", "count", 0.0,
        "Over-temperature crossings reported as events over 7 days."),
    spec("storage_errors_7d", "count", 0.0,
        "Storage read/write errors over 7 days."),
    spec("storage_errors_30d", "count", 0.0,
        "Storage read/write errors over 30 days."),
    spec("offline_share_7d", "ratio", 0.0,
        "Share of operational time not connected to the broker over 7 days."),
    spec("disconnects_per_day_7d", "1/day", 0.0,
        "Connection losses per day over 7 days."),
    spec("downtime_share_7d", "ratio", 0.0,
        "Share of the reported time the device was not running over 7 days (flat battery, faults)."),
    spec("device_age_days", "days", 365.0,
        "Days since purchase, from the device registry; a year when unknown."),
    spec("has_battery", "bool", 0.0,
        "1 when the device reports a battery, 0 for mains-powered devices."),
    spec("storage_errors_1d", "count", 0.0,
        "Storage read/write errors in the last 24 hours: wear accelerates toward the end."),
    spec("temp_max_c_1d", "°C", 30.0,
        "Highest temperature over the last day."),
];

/// Column names in order.
pub fn feature_names() -> Vec<&'static str> {
    FEATURES.iter().map(|f| f.name).collect()
}

/// The text the schema fingerprint is computed over: version, then one line per feature
/// with name, unit and fill value. Meanings are prose and may be reworded freely.
pub fn schema_text() -> String {
    let mut s = format!("fleet-features v{SCHEMA_VERSION}\n");
    for f in &FEATURES {
        s.push_str(&format!("{}\t{}\t{}\n", f.name, f.unit, f.missing));
    }
    s
}

/// A stable fingerprint of [`schema_text`]: the first 16 hex digits of its SHA-256.
#[cfg(feature = "score")]
pub fn schema_fingerprint() -> String {
    fingerprint(&schema_text())
}

/// The first 16 hex digits of the SHA-256 of a schema text.
#[cfg(feature = "score")]
pub fn fingerprint(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_match_the_names() {
        use idx::*;
        let check = [
            (UNEXPECTED_REBOOTS_1D, "unexpected_reboots_per_day_1d"),
            (UNEXPECTED_REBOOT_TREND, "unexpected_reboot_trend"),
            (BROWN_OUT_SHARE_30D, "brown_out_share_30d"),
            (DRAIN_7D, "drain_pct_per_active_h_7d"),
            (SOH, "soh_pct"),
            (SOH_SLOPE, "soh_slope_pct_per_30d"),
            (TEMP_MAX_7D, "temp_max_c_7d"),
            (STORAGE_ERRORS_30D, "storage_errors_30d"),
            (DOWNTIME_SHARE_7D, "downtime_share_7d"),
            (DEVICE_AGE, "device_age_days"),
            (HAS_BATTERY, "has_battery"),
        ];
        for (i, name) in check {
            assert_eq!(FEATURES[i].name, name);
        }
        let mut names = feature_names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FEATURE_COUNT, "names are unique");
    }

    #[cfg(feature = "train")]
    #[test]
    fn fingerprint_follows_the_schema_text() {
        // SHA-256 of the empty string begins e3b0c442 98fc1c14.
        assert_eq!(fingerprint(""), "e3b0c44298fc1c14");
        assert_ne!(schema_fingerprint(), fingerprint("fleet-features v1\n"));
        assert_eq!(schema_fingerprint(), fingerprint(&schema_text()));
    }
}

#[cfg(test)]
mod docs {
    #[test]
    fn every_feature_is_documented() {
        let doc = include_str!("../../docs/features.md");
        for (i, f) in super::FEATURES.iter().enumerate() {
            let row = format!("| {i} | `{}` | {} |", f.name, f.unit);
            assert!(doc.contains(&row), "docs/features.md lacks `{row}`");
        }
    }
}
