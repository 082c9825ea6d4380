//! Trade-in quotes: what a device is worth to us, from its residual value and the
//! condition its telemetry shows (battery health, restart and storage history).
//!
//! A quote is an estimate made before the device is seen; the recycling desk grades
//! the device on arrival and settles the price: its lifecycle, grading, erasure,
//! settlement and routing are the submodules, each pure.

pub mod erasure;
pub mod grading;
pub mod lifecycle;
pub mod routing;
pub mod settlement;
pub mod totals;

use models::history::FeatureVector;
use serde::{Deserialize, Serialize};

/// `[tradein]`: the recycling desk's rules (defaults in docs/desk.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// Resale labels, tried in order per family (`[[tradein.labels]]`).
    pub labels: Vec<grading::LabelRule>,
    /// Deductions from the quote (`[[tradein.settlement]]`).
    pub settlement: Vec<settlement::Deduction>,
    /// What a device must reach to be refurbished (`[tradein.refurbish]`).
    pub refurbish: grading::Requirement,
    /// Bench battery this many points from the telemetry's is flagged.
    pub battery_gap_pct: u8,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            labels: grading::default_label_rules(),
            settlement: settlement::default_deductions(),
            refurbish: routing::default_refurbish_bar(),
            battery_gap_pct: 10,
        }
    }
}

impl Rules {
    /// Checks the rules can be applied.
    pub fn validate(&self) -> Result<(), String> {
        for r in &self.labels {
            if r.label.trim().is_empty() {
                return Err("tradein.labels: a rule has an empty label".into());
            }
            r.requires
                .validate(&format!("tradein.labels {:?}", r.label))?;
        }
        for d in &self.settlement {
            d.validate()
                .map_err(|e| format!("tradein.settlement: {e}"))?;
        }
        self.refurbish.validate("tradein.refurbish")?;
        if self.battery_gap_pct == 0 || self.battery_gap_pct > 100 {
            return Err(format!(
                "tradein.battery_gap_pct = {} must be 1 to 100",
                self.battery_gap_pct
            ));
        }
        Ok(())
    }
}

/// The condition telemetry shows, as the deductions it earns.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Battery state of health, percent, when the device has a battery.
    pub soh_pct: Option<f64>,
    /// Unexpected restarts per day over the last week.
    pub unexpected_reboots_per_day: f64,
    /// Storage errors in the last 30 days.
    pub storage_errors_30d: f64,
}

impl Condition {
    /// Reads the condition from a device's features.
    pub fn from_features(f: &FeatureVector) -> Self {
        let get = |n: &str| f.get(n).unwrap_or(0.0);
        Condition {
            soh_pct: (get("has_battery") > 0.5).then(|| get("soh_pct")),
            unexpected_reboots_per_day: get("unexpected_reboots_per_day_7d"),
            storage_errors_30d: get("storage_errors_30d"),
        }
    }

    /// The share of the residual value the condition keeps (0.2 ..= 1).
    pub fn factor(&self) -> f64 {
        let mut f: f64 = 1.0;
        match self.soh_pct {
            Some(s) if s < 70.0 => f -= 0.35,
            Some(s) if s < 80.0 => f -= 0.2,
            Some(s) if s < 90.0 => f -= 0.05,
            _ => {}
        }
        if self.unexpected_reboots_per_day >= 1.0 {
            f -= 0.15;
        }
        if self.storage_errors_30d >= 5.0 {
            f -= 0.1;
        }
        f.max(0.2)
    }

    /// The condition in words, for the ticket's reasoning.
    pub fn describe(&self) -> String {
        let battery = match self.soh_pct {
            Some(s) => format!("battery at {s:.0} %"),
            None => "no battery".into(),
        };
        format!(
            "{battery}, {:.1} unexpected restarts/day, {:.0} storage errors in 30 days: {:.0} % of value kept",
            self.unexpected_reboots_per_day,
            self.storage_errors_30d,
            self.factor() * 100.0
        )
    }
}

/// The trade-in quote: residual value times the condition factor, rounded down to whole
/// currency units (100 minor units).
pub fn quote(residual_minor: u64, condition: &Condition) -> u64 {
    let raw = (residual_minor as f64 * condition.factor()).floor() as u64;
    raw / 100 * 100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_from_toml_and_bad_ones_are_refused() {
        let r: Rules = toml::from_str(
            r#"
            battery_gap_pct = 15
            [refurbish]
            functional_at_most = 0
            battery_at_least = 85
            [[labels]]
            family = "grade"
            label = "Top"
            requires = { functional_at_most = 0, cosmetic_at_worst = "B" }
            [[settlement]]
            name = "scuffed"
            when = { cosmetic_worse_than = "A" }
            percent = 5
            "#,
        )
        .unwrap();
        assert!(r.validate().is_ok());
        assert_eq!(r.labels.len(), 1);
        assert_eq!(r.refurbish.battery_at_least, Some(85));
        assert_eq!(r.refurbish.cosmetic_at_worst, None);
        assert!(Rules::default().validate().is_ok());
        for bad in [
            "battery_gap_pct = 0",
            "[refurbish]\nbattery_at_least = 120",
            "[[settlement]]\nname = \"x\"\nwhen = {}\npercent = 5",
            "[[settlement]]\nname = \"x\"\nwhen = { cosmetic_worse_than = \"B\" }\npercent = 0",
            "[[labels]]\nfamily = \"grade\"\nlabel = \" \"\nrequires = {}",
        ] {
            let r: Rules = toml::from_str(bad).unwrap();
            assert!(r.validate().is_err(), "{bad}");
        }
        for unreadable in [
            "[refurbish]\nfunctional_at_most = 10",
            "[refurbish]\ncosmetic_at_worst = \"F\"",
            "[refurbish]\nfunctional_at_most = -1",
            "[[labels]]\nfamily = \"stars\"\nlabel = \"x\"\nrequires = {}",
            "colour = \"red\"",
        ] {
            assert!(toml::from_str::<Rules>(unreadable).is_err(), "{unreadable}");
        }
    }

    #[test]
    fn worn_batteries_and_restarts_lower_the_quote() {
        let good = Condition {
            soh_pct: Some(95.0),
            unexpected_reboots_per_day: 0.0,
            storage_errors_30d: 0.0,
        };
        assert_eq!(quote(30_050, &good), 30_000);
        let worn = Condition {
            soh_pct: Some(75.0),
            ..good.clone()
        };
        assert_eq!(quote(30_000, &worn), 24_000);
        let wrecked = Condition {
            soh_pct: Some(50.0),
            unexpected_reboots_per_day: 4.0,
            storage_errors_30d: 40.0,
        };
        assert!((wrecked.factor() - 0.4).abs() < 1e-9);
        assert!(quote(30_000, &wrecked) < quote(30_000, &worn));
        assert!(wrecked.describe().contains("battery at 50 %"));
    }
}
