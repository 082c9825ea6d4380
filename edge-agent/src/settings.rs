//! The agent's tunable settings: intervals and thresholds, changeable by a config
//! command and persisted with the agent's state.

use protocol::command::ConfigChange;
use serde::{Deserialize, Serialize};

/// Sampling and reporting settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Seconds between hardware samples.
    pub sample_interval_s: u32,
    /// Seconds between heartbeats.
    pub heartbeat_interval_s: u32,
    /// A fall of at least this many percentage points within the window is a battery drop.
    pub battery_drop_threshold_pct: f32,
    /// The window for battery drops, seconds.
    pub battery_drop_window_s: u32,
    /// Temperature at or above which an over-temperature event fires, °C.
    pub over_temp_threshold_c: f32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sample_interval_s: 60,
            heartbeat_interval_s: 3600,
            battery_drop_threshold_pct: 10.0,
            battery_drop_window_s: 900,
            over_temp_threshold_c: 60.0,
        }
    }
}

/// Why settings were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SettingsError {
    /// The offending setting.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

impl Settings {
    /// Checks that the settings work together.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let err = |field, reason: String| Err(SettingsError { field, reason });
        if !(1..=86_400).contains(&self.sample_interval_s) {
            return err("sample_interval_s", "must be 1 to 86400 s".into());
        }
        if self.heartbeat_interval_s < self.sample_interval_s
            || self.heartbeat_interval_s > protocol::heartbeat::MAX_INTERVAL_S
        {
            return err(
                "heartbeat_interval_s",
                format!(
                    "must be at least the sample interval ({} s) and at most {} s",
                    self.sample_interval_s,
                    protocol::heartbeat::MAX_INTERVAL_S
                ),
            );
        }
        if !(self.battery_drop_threshold_pct > 0.0 && self.battery_drop_threshold_pct <= 100.0) {
            return err("battery_drop_threshold_pct", "must be in (0, 100]".into());
        }
        if self.battery_drop_window_s < self.sample_interval_s
            || self.battery_drop_window_s > 86_400
        {
            return err(
                "battery_drop_window_s",
                "must be at least the sample interval and at most a day".into(),
            );
        }
        if !(-40.0..=150.0).contains(&self.over_temp_threshold_c) {
            return err("over_temp_threshold_c", "must be -40 to 150 °C".into());
        }
        Ok(())
    }

    /// These settings with a config command applied; refused as a whole if invalid.
    pub fn with_change(&self, change: &ConfigChange) -> Result<Settings, SettingsError> {
        let mut next = self.clone();
        if let Some(v) = change.heartbeat_interval_s {
            next.heartbeat_interval_s = v;
        }
        if let Some(v) = change.sample_interval_s {
            next.sample_interval_s = v;
        }
        if let Some(v) = change.battery_drop_threshold_pct {
            next.battery_drop_threshold_pct = v;
        }
        if let Some(v) = change.battery_drop_window_s {
            next.battery_drop_window_s = v;
        }
        if let Some(v) = change.over_temp_threshold_c {
            next.over_temp_threshold_c = v;
        }
        next.validate()?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_changes_apply_whole_or_not_at_all() {
        let s = Settings::default();
        s.validate().unwrap();
        let ok = ConfigChange {
            heartbeat_interval_s: Some(1800),
            over_temp_threshold_c: Some(55.0),
            ..Default::default()
        };
        let next = s.with_change(&ok).unwrap();
        assert_eq!(next.heartbeat_interval_s, 1800);
        assert_eq!(next.over_temp_threshold_c, 55.0);
        let bad = ConfigChange {
            heartbeat_interval_s: Some(7200),
            sample_interval_s: Some(10_000),
            ..Default::default()
        };
        let e = s.with_change(&bad).unwrap_err();
        assert_eq!(e.field, "heartbeat_interval_s", "{e}");
        let bad = ConfigChange {
            battery_drop_window_s: Some(10),
            ..Default::default()
        };
        assert_eq!(
            s.with_change(&bad).unwrap_err().field,
            "battery_drop_window_s"
        );
    }
}
