//! Routing: refurbish and resell a device whose grades and battery pass, recycle the
//! rest; and the kilograms of e-waste kept from landfill, by period, model and route.
//! Pure.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::grading::{BenchGrade, Requirement};
use crate::tickets::UnknownName;

/// Where a device goes.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// Refurbished and resold.
    Refurbish,
    /// Recycled for its materials.
    Recycle,
}

impl Route {
    /// Both routes.
    pub const ALL: [Route; 2] = [Route::Refurbish, Route::Recycle];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Refurbish => "refurbish",
            Route::Recycle => "recycle",
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Route {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Route::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownName::new("route", s))
    }
}

/// The default bar to refurbish: fully or nearly fully functional, at worst heavy wear,
/// battery at least 80 % of its design capacity, activation lock off.
pub fn default_refurbish_bar() -> Requirement {
    Requirement {
        functional_at_most: Some(super::grading::Functional::new(1).expect("a grade")),
        cosmetic_at_worst: Some(super::grading::Cosmetic::D),
        battery_at_least: Some(80),
    }
}

/// The route the rules give, and why.
pub fn route_for(g: &BenchGrade, bar: &Requirement) -> (Route, String) {
    if bar.met_by(g) {
        (
            Route::Refurbish,
            format!("meets the refurbish bar: {}", bar.describe()),
        )
    } else {
        (
            Route::Recycle,
            format!("below the refurbish bar: {}", bar.describe()),
        )
    }
}

/// Whether a recycler may send `g` down `chosen` when the rules say `ruled`: a device
/// that passes may still be recycled, one that fails is never resold.
pub fn may_choose(ruled: Route, chosen: Route) -> bool {
    ruled == chosen || chosen == Route::Recycle
}

/// A routed device, as the totals read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// When it was routed, ms.
    pub at_ms: u64,
    /// Its model.
    pub model: String,
    /// Where it went.
    pub route: Route,
    /// Its SKU's weight, grams.
    pub weight_g: u32,
}

/// How a period is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// `2026-11`.
    Month,
    /// `2026-W48` (ISO week).
    Week,
}

/// The period `at_ms` falls in.
pub fn period_of(at_ms: u64, p: Period) -> String {
    let t = chrono::DateTime::from_timestamp_millis(at_ms as i64).unwrap_or_default();
    match p {
        Period::Month => t.format("%Y-%m").to_string(),
        Period::Week => t.format("%G-W%V").to_string(),
    }
}

/// The span of a named period, `2026-11` or `2026-W48`: `[from_ms, to_ms)` and how
/// it is named.
pub fn period_range(name: &str) -> Result<(u64, u64, Period), String> {
    use chrono::{Datelike, NaiveDate, Weekday};
    let bad = || format!("period {name:?} is not a month (2026-11) or an ISO week (2026-W48)");
    let ms = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis())
            .filter(|&m| m >= 0)
            .map(|m| m as u64)
    };
    let (from, to, p) = if let Some((y, w)) = name.split_once("-W") {
        let (y, w) = (
            y.parse::<i32>().map_err(|_| bad())?,
            w.parse::<u32>().map_err(|_| bad())?,
        );
        let start = NaiveDate::from_isoywd_opt(y, w, Weekday::Mon).ok_or_else(bad)?;
        (start, start + chrono::Days::new(7), Period::Week)
    } else {
        let (y, m) = name.split_once('-').ok_or_else(bad)?;
        let (y, m) = (
            y.parse::<i32>().map_err(|_| bad())?,
            m.parse::<u32>().map_err(|_| bad())?,
        );
        if m.to_string().len() > 2 || !name.ends_with(&format!("{m:02}")) {
            return Err(bad());
        }
        let start = NaiveDate::from_ymd_opt(y, m, 1).ok_or_else(bad)?;
        let next = if start.month() == 12 {
            NaiveDate::from_ymd_opt(y + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(y, m + 1, 1)
        }
        .ok_or_else(bad)?;
        (start, next, Period::Month)
    };
    Ok((ms(from).ok_or_else(bad)?, ms(to).ok_or_else(bad)?, p))
}

/// Kilograms diverted in one cell.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Diverted {
    /// The period.
    pub period: String,
    /// The model.
    pub model: String,
    /// The route.
    pub route: Route,
    /// Devices.
    pub devices: u64,
    /// Kilograms.
    pub kg: f64,
}

/// The kilograms diverted by period, model and route, in that order.
pub fn diverted(rows: &[Routed], p: Period) -> Vec<Diverted> {
    let mut cells: BTreeMap<(String, String, Route), (u64, u64)> = BTreeMap::new();
    for r in rows {
        let cell = cells
            .entry((period_of(r.at_ms, p), r.model.clone(), r.route))
            .or_default();
        cell.0 += 1;
        cell.1 += u64::from(r.weight_g);
    }
    cells
        .into_iter()
        .map(|((period, model, route), (devices, g))| Diverted {
            period,
            model,
            route,
            devices,
            kg: g as f64 / 1000.0,
        })
        .collect()
}

/// Why a SKU weight is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeightError {
    /// Zero, negative or beyond any device.
    #[error("weight {0} g must be 1 to 50000 g (a device's weight in grams)")]
    Weight(i64),
    /// The model name is empty or too long.
    #[error("model {0:?} must be 1 to 64 characters")]
    Model(String),
}

/// Checks a SKU's weight in grams.
pub fn check_weight(model: &str, grams: i64) -> Result<u32, WeightError> {
    if model.trim().is_empty() || model.chars().count() > 64 || model.chars().any(char::is_control)
    {
        return Err(WeightError::Model(model.to_owned()));
    }
    if !(1..=50_000).contains(&grams) {
        return Err(WeightError::Weight(grams));
    }
    Ok(grams as u32)
}

#[cfg(test)]
mod tests {
    use super::super::grading::{Cosmetic, Functional};
    use super::*;

    fn g(f: u8, c: Cosmetic, b: Option<u8>, lock_off: bool) -> BenchGrade {
        BenchGrade {
            functional: Functional::new(f).unwrap(),
            cosmetic: c,
            battery_pct: b,
            activation_lock_off: lock_off,
        }
    }

    #[test]
    fn the_default_bar_refurbishes_working_devices_with_a_good_battery() {
        use Cosmetic::*;
        let bar = default_refurbish_bar();
        let table = [
            (0, A, Some(100), true, Route::Refurbish),
            (1, D, Some(80), true, Route::Refurbish),
            (1, D, Some(79), true, Route::Recycle),
            (2, A, Some(95), true, Route::Recycle),
            (0, E, Some(95), true, Route::Recycle),
            (0, A, Some(95), false, Route::Recycle),
            (0, B, None, true, Route::Refurbish),
        ];
        for (f, c, b, lock, want) in table {
            assert_eq!(
                route_for(&g(f, c, b, lock), &bar).0,
                want,
                "{f}{c} {b:?} {lock}"
            );
        }
        let (_, why) = route_for(&g(1, D, Some(79), true), &bar);
        assert_eq!(
            why,
            "below the refurbish bar: functional ≤ 1, cosmetic A–D, battery ≥ 80 %, activation lock off"
        );
        assert!(may_choose(Route::Refurbish, Route::Recycle));
        assert!(!may_choose(Route::Recycle, Route::Refurbish));
        assert!(may_choose(Route::Recycle, Route::Recycle));
    }

    #[test]
    fn kilograms_are_totalled_by_period_model_and_route() {
        let day = 86_400_000;
        // 2026-11-30 (W49 starts 2026-11-30, a Monday) and 2026-12-01.
        let nov30 = 1_795_996_800_000;
        let rows = vec![
            Routed {
                at_ms: nov30,
                model: "phone-x".into(),
                route: Route::Refurbish,
                weight_g: 190,
            },
            Routed {
                at_ms: nov30 + 3_600_000,
                model: "phone-x".into(),
                route: Route::Refurbish,
                weight_g: 190,
            },
            Routed {
                at_ms: nov30 + day,
                model: "phone-x".into(),
                route: Route::Refurbish,
                weight_g: 190,
            },
            Routed {
                at_ms: nov30 + day,
                model: "hub".into(),
                route: Route::Recycle,
                weight_g: 1_250,
            },
        ];
        let m = diverted(&rows, Period::Month);
        assert_eq!(m.len(), 3);
        assert_eq!(
            (m[0].period.as_str(), m[0].model.as_str(), m[0].devices),
            ("2026-11", "phone-x", 2)
        );
        assert!((m[0].kg - 0.38).abs() < 1e-9);
        assert_eq!(
            (m[1].period.as_str(), m[1].model.as_str()),
            ("2026-12", "hub")
        );
        assert!((m[1].kg - 1.25).abs() < 1e-9);
        let w = diverted(&rows, Period::Week);
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w[1].period, "2026-W49");
        assert_eq!(w[1].devices, 3);
        assert_eq!(period_of(nov30 - 1, Period::Week), "2026-W48");
    }

    #[test]
    fn periods_are_months_or_iso_weeks() {
        let (f, t, p) = period_range("2026-11").unwrap();
        assert_eq!(p, Period::Month);
        assert_eq!(
            (period_of(f, p), period_of(t - 1, p)),
            ("2026-11".into(), "2026-11".into())
        );
        assert_eq!(period_of(t, p), "2026-12");
        let (f, t, p) = period_range("2026-12").unwrap();
        assert_eq!(period_of(t, p), "2027-01");
        assert_eq!(t - f, 31 * 86_400_000);
        let (f, t, p) = period_range("2026-W49").unwrap();
        assert_eq!(
            (f, t - f, p),
            (1_795_996_800_000, 7 * 86_400_000, Period::Week)
        );
        for bad in [
            "2026",
            "2026-13",
            "2026-1",
            "2026-W54",
            "2026-W",
            "nov",
            "2026-11-01",
            "-W3",
        ] {
            assert!(period_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weights_must_be_a_device_s_grams() {
        assert_eq!(check_weight("phone-x", 190), Ok(190));
        for (m, w) in [
            ("phone-x", 0),
            ("phone-x", -190),
            ("phone-x", 50_001),
            ("", 190),
            (" ", 190),
        ] {
            assert!(check_weight(m, w).is_err(), "{m:?} {w}");
        }
        assert_eq!(
            check_weight("p", -5).unwrap_err().to_string(),
            "weight -5 g must be 1 to 50000 g (a device's weight in grams)"
        );
    }
}
