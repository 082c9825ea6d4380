//! The hand rule a model has to beat: what a service team would write without a model.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::history::FeatureVector;
use crate::schema::idx;

/// Alarm when the battery's state of health is below a floor, or when the device
/// restarted unexpectedly at least so many times in the last day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandRule {
    /// State of health below this alarms, percent.
    pub soh_below_pct: f64,
    /// This many unexpected restarts in 24 hours alarm.
    pub reboots_per_day: f64,
}

impl Default for HandRule {
    fn default() -> Self {
        HandRule {
            soh_below_pct: 80.0,
            reboots_per_day: 3.0,
        }
    }
}

impl HandRule {
    /// The features the rule reads: where a data set has none of them it cannot fire,
    /// and is not reported.
    pub fn inputs(&self) -> [&'static str; 2] {
        ["soh_pct", "unexpected_reboots_per_day_1d"]
    }

    /// Whether the rule alarms on a feature vector.
    pub fn alarm(&self, v: &FeatureVector) -> bool {
        let x = &v.0;
        (x[idx::HAS_BATTERY] > 0.5 && x[idx::SOH] < self.soh_below_pct)
            || x[idx::UNEXPECTED_REBOOTS_1D] >= self.reboots_per_day
    }
}

impl fmt::Display for HandRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "state of health below {}% or {} or more unexpected restarts in 24 h",
            self.soh_below_pct, self.reboots_per_day
        )
    }
}
