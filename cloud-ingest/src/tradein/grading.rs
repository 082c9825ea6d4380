//! Grading on arrival: the bench's functional grade 0–9 and cosmetic grade A–E (after
//! the CTIA wireless device grading scales), the battery health measured on the bench
//! and the activation-lock check, and the resale labels the configured rules derive
//! from them. Pure.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The functional grade, 0 (fully functional) to 9 (does not power on), after the CTIA
/// scale: 0 and 1 are resellable, 2 has key functions working, 3–9 are for parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Functional(u8);

impl Functional {
    /// The best grade.
    pub const FULLY_FUNCTIONAL: Functional = Functional(0);

    /// A grade from 0 to 9.
    pub fn new(grade: u8) -> Result<Functional, GradeError> {
        if grade <= 9 {
            Ok(Functional(grade))
        } else {
            Err(GradeError::Functional(grade.to_string()))
        }
    }

    /// Its number.
    pub fn get(self) -> u8 {
        self.0
    }

    /// What it means, in a few words.
    pub fn meaning(self) -> &'static str {
        match self.0 {
            0 => "fully functional",
            1 => "functional, minor faults",
            2 => "key functions working",
            3 => "a key function fails",
            4 => "display or touch fails",
            5 => "does not charge",
            6 => "boots, unusable",
            7 => "boot loop",
            8 => "powers on, no boot",
            _ => "does not power on",
        }
    }
}

impl<'de> Deserialize<'de> for Functional {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        u8::try_from(n)
            .ok()
            .and_then(|n| Functional::new(n).ok())
            .ok_or_else(|| serde::de::Error::custom(GradeError::Functional(n.to_string())))
    }
}

impl FromStr for Functional {
    type Err = GradeError;
    fn from_str(s: &str) -> Result<Self, GradeError> {
        s.trim()
            .parse::<u8>()
            .ok()
            .and_then(|n| Functional::new(n).ok())
            .ok_or_else(|| GradeError::Functional(s.to_owned()))
    }
}

impl fmt::Display for Functional {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The cosmetic grade, A (like new) to E (broken or missing parts), after the CTIA
/// scale. Ordered best first: `A < E`.
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
pub enum Cosmetic {
    /// Like new: no visible wear.
    A,
    /// Light wear: fine scratches seen only up close.
    B,
    /// Moderate wear: scratches or scuffs seen at arm's length.
    C,
    /// Heavy wear: deep scratches, dents, a cracked cover lens.
    D,
    /// Broken: cracked display, bent frame or missing parts.
    E,
}

impl Cosmetic {
    /// Every grade, best first.
    pub const ALL: [Cosmetic; 5] = [
        Cosmetic::A,
        Cosmetic::B,
        Cosmetic::C,
        Cosmetic::D,
        Cosmetic::E,
    ];

    /// Its letter.
    pub fn as_str(self) -> &'static str {
        match self {
            Cosmetic::A => "A",
            Cosmetic::B => "B",
            Cosmetic::C => "C",
            Cosmetic::D => "D",
            Cosmetic::E => "E",
        }
    }

    /// What it means, in a few words.
    pub fn meaning(self) -> &'static str {
        match self {
            Cosmetic::A => "like new",
            Cosmetic::B => "light wear",
            Cosmetic::C => "moderate wear",
            Cosmetic::D => "heavy wear, cracked lens",
            Cosmetic::E => "broken or missing parts",
        }
    }
}

impl FromStr for Cosmetic {
    type Err = GradeError;
    fn from_str(s: &str) -> Result<Self, GradeError> {
        Cosmetic::ALL
            .into_iter()
            .find(|c| c.as_str() == s.trim())
            .ok_or_else(|| GradeError::Cosmetic(s.to_owned()))
    }
}

impl fmt::Display for Cosmetic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A grade or measurement the bench cannot have given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GradeError {
    /// Not 0 to 9.
    #[error("functional grade {0:?} is not 0 to 9 (0 fully functional, 9 does not power on)")]
    Functional(String),
    /// Not A to E.
    #[error("cosmetic grade {0:?} is not one of A, B, C, D, E")]
    Cosmetic(String),
    /// Not 0 to 100 %.
    #[error("battery health {0} % is not 0 to 100")]
    Battery(i64),
    /// A device with a battery graded without its battery health, or the reverse.
    #[error("{0}")]
    BatteryPresence(&'static str),
}

/// What the bench found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BenchGrade {
    /// 0 (fully functional) to 9.
    #[schema(value_type = u8, minimum = 0, maximum = 9)]
    pub functional: Functional,
    /// A (like new) to E.
    pub cosmetic: Cosmetic,
    /// Battery health measured on the bench, % of design capacity; none without a battery.
    pub battery_pct: Option<u8>,
    /// Whether the activation lock (find-my, account lock) is off.
    pub activation_lock_off: bool,
}

impl BenchGrade {
    /// Checks the battery measurement against 0–100 % and against whether the device
    /// has a battery at all.
    pub fn new(
        functional: Functional,
        cosmetic: Cosmetic,
        battery_pct: Option<i64>,
        activation_lock_off: bool,
        has_battery: bool,
    ) -> Result<BenchGrade, GradeError> {
        let battery_pct = match (battery_pct, has_battery) {
            (Some(p), true) => Some(
                u8::try_from(p)
                    .ok()
                    .filter(|&p| p <= 100)
                    .ok_or(GradeError::Battery(p))?,
            ),
            (None, true) => {
                return Err(GradeError::BatteryPresence(
                    "the device has a battery: measure its health on the bench (battery_pct)",
                ))
            }
            (Some(_), false) => {
                return Err(GradeError::BatteryPresence(
                    "the device has no battery: leave battery_pct out",
                ))
            }
            (None, false) => None,
        };
        Ok(BenchGrade {
            functional,
            cosmetic,
            battery_pct,
            activation_lock_off,
        })
    }
}

/// What a grade must reach: every bound given must hold (a battery bound holds for a
/// device without a battery), and the activation lock must be off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// The worst functional grade allowed.
    #[schema(value_type = Option<u8>)]
    pub functional_at_most: Option<Functional>,
    /// The worst cosmetic grade allowed.
    pub cosmetic_at_worst: Option<Cosmetic>,
    /// The least battery health allowed, %.
    pub battery_at_least: Option<u8>,
}

impl Requirement {
    /// Whether `g` reaches it.
    pub fn met_by(&self, g: &BenchGrade) -> bool {
        g.activation_lock_off
            && self.functional_at_most.is_none_or(|f| g.functional <= f)
            && self.cosmetic_at_worst.is_none_or(|c| g.cosmetic <= c)
            && match (self.battery_at_least, g.battery_pct) {
                (Some(min), Some(b)) => b >= min,
                _ => true,
            }
    }

    /// The rule in words: "functional ≤ 1, cosmetic A–C, battery ≥ 80 %, lock off".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(f) = self.functional_at_most {
            parts.push(format!("functional ≤ {f}"));
        }
        if let Some(c) = self.cosmetic_at_worst {
            parts.push(if c == Cosmetic::A {
                "cosmetic A".to_owned()
            } else {
                format!("cosmetic A–{c}")
            });
        }
        if let Some(b) = self.battery_at_least {
            parts.push(format!("battery ≥ {b} %"));
        }
        parts.push("activation lock off".into());
        parts.join(", ")
    }

    /// Checks the battery bound is a percentage.
    pub fn validate(&self, what: &str) -> Result<(), String> {
        match self.battery_at_least {
            Some(b) if b > 100 => Err(format!("{what}: battery_at_least = {b} is over 100 %")),
            _ => Ok(()),
        }
    }
}

/// A family of resale labels, each label ordered best first in its rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LabelFamily {
    /// Premium / Excellent / Good / Fair, as refurbished-device markets label them.
    Grade,
    /// 99新 / 95新 / 9成新 / 8成新 ("99 % new" …), as inspected resale in China labels them.
    Newness,
}

/// One label rule: the label a grade earns when it meets the requirement. Rules are
/// tried in order and the first met gives the family's label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRule {
    /// Which family.
    pub family: LabelFamily,
    /// The label.
    pub label: String,
    /// What the grade must reach.
    pub requires: Requirement,
}

/// A label a grade earned, with the rule that gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Label {
    /// Which family.
    pub family: LabelFamily,
    /// The label; none when no rule of the family is met (the device is for parts).
    pub label: Option<String>,
    /// The rule in words ("Good: functional ≤ 1, cosmetic A–C, …"), or why none applied.
    pub rule: String,
}

/// The labels of `g`, one per family in the rules, in the order families first appear.
pub fn labels(g: &BenchGrade, rules: &[LabelRule]) -> Vec<Label> {
    let mut families: Vec<LabelFamily> = Vec::new();
    for r in rules {
        if !families.contains(&r.family) {
            families.push(r.family);
        }
    }
    families
        .into_iter()
        .map(|family| {
            let of_family = rules.iter().filter(|r| r.family == family);
            match of_family.clone().find(|r| r.requires.met_by(g)) {
                Some(r) => Label {
                    family,
                    label: Some(r.label.clone()),
                    rule: format!("{}: {}", r.label, r.requires.describe()),
                },
                None => Label {
                    family,
                    label: None,
                    rule: if g.activation_lock_off {
                        let lowest = of_family.clone().next_back();
                        format!(
                            "below every label (the lowest, {}, needs {})",
                            lowest.map_or("", |r| r.label.as_str()),
                            lowest.map_or(String::new(), |r| r.requires.describe())
                        )
                    } else {
                        "activation lock on: no label until the customer removes it".into()
                    },
                },
            }
        })
        .collect()
}

/// The default label rules (see docs/desk.md, "Grading").
pub fn default_label_rules() -> Vec<LabelRule> {
    let rule = |family, label: &str, f: u8, c, b| LabelRule {
        family,
        label: label.into(),
        requires: Requirement {
            functional_at_most: Some(Functional(f)),
            cosmetic_at_worst: Some(c),
            battery_at_least: b,
        },
    };
    use Cosmetic::*;
    use LabelFamily::*;
    vec![
        rule(Grade, "Premium", 0, A, Some(90)),
        rule(Grade, "Excellent", 0, B, Some(85)),
        rule(Grade, "Good", 1, C, Some(80)),
        rule(Grade, "Fair", 2, D, None),
        rule(Newness, "99新", 0, A, Some(95)),
        rule(Newness, "95新", 0, B, Some(88)),
        rule(Newness, "9成新", 1, C, Some(80)),
        rule(Newness, "8成新", 2, D, None),
    ]
}

/// The bench's battery health against the last telemetry: flagged when they differ by
/// at least `threshold_pct` points (a gauge that lies, or a battery swapped in transit).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatteryGap {
    /// Bench, %.
    pub bench_pct: u8,
    /// Telemetry when quoted, %.
    pub telemetry_pct: f64,
    /// Bench minus telemetry, points.
    pub gap_pts: f64,
    /// Whether the gap is large enough to look into.
    pub flagged: bool,
}

/// The gap, when both readings exist.
pub fn battery_gap(
    bench_pct: Option<u8>,
    telemetry_pct: Option<f64>,
    threshold_pct: u8,
) -> Option<BatteryGap> {
    let (b, t) = (bench_pct?, telemetry_pct?);
    let gap = f64::from(b) - t;
    Some(BatteryGap {
        bench_pct: b,
        telemetry_pct: t,
        gap_pts: gap,
        flagged: gap.abs() >= f64::from(threshold_pct),
    })
}

#[cfg(test)]
mod tests {
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
    #[allow(clippy::type_complexity)]
    fn the_default_rules_label_each_grade_by_its_first_rule_met() {
        use Cosmetic::*;
        let rules = default_label_rules();
        // (functional, cosmetic, battery, lock off) → (grade label, newness label)
        let table: &[(u8, Cosmetic, Option<u8>, bool, Option<&str>, Option<&str>)] = &[
            (0, A, Some(97), true, Some("Premium"), Some("99新")),
            (0, A, Some(92), true, Some("Premium"), Some("95新")),
            (0, A, Some(89), true, Some("Excellent"), Some("95新")),
            (0, B, Some(86), true, Some("Excellent"), Some("9成新")),
            (0, B, Some(84), true, Some("Good"), Some("9成新")),
            (1, A, Some(99), true, Some("Good"), Some("9成新")),
            (1, C, Some(80), true, Some("Good"), Some("9成新")),
            (1, C, Some(79), true, Some("Fair"), Some("8成新")),
            (2, D, Some(40), true, Some("Fair"), Some("8成新")),
            (2, E, Some(95), true, None, None),
            (3, A, Some(95), true, None, None),
            (0, A, Some(99), false, None, None),
            // No battery: the battery bounds hold.
            (0, A, None, true, Some("Premium"), Some("99新")),
        ];
        for &(f, c, b, lock, grade, newness) in table {
            let got = labels(&g(f, c, b, lock), &rules);
            assert_eq!(got.len(), 2);
            assert_eq!(got[0].family, LabelFamily::Grade);
            assert_eq!(got[0].label.as_deref(), grade, "{f}{c} {b:?} {lock}");
            assert_eq!(got[1].label.as_deref(), newness, "{f}{c} {b:?} {lock}");
        }
        let shown = labels(&g(1, Cosmetic::C, Some(81), true), &rules);
        assert_eq!(
            shown[0].rule,
            "Good: functional ≤ 1, cosmetic A–C, battery ≥ 80 %, activation lock off"
        );
        let none = labels(&g(4, Cosmetic::A, Some(90), true), &rules);
        assert!(
            none[0].rule.contains("the lowest, Fair"),
            "{}",
            none[0].rule
        );
        let locked = labels(&g(0, Cosmetic::A, Some(90), false), &rules);
        assert!(locked[1].rule.contains("activation lock on"));
    }

    #[test]
    fn grades_outside_the_scales_are_refused() {
        assert!(Functional::new(9).is_ok());
        assert_eq!(
            Functional::new(10).unwrap_err().to_string(),
            "functional grade \"10\" is not 0 to 9 (0 fully functional, 9 does not power on)"
        );
        assert!("-1".parse::<Functional>().is_err());
        assert!(serde_json::from_str::<Functional>("-1").is_err());
        assert!(serde_json::from_str::<Functional>("12").is_err());
        assert_eq!(serde_json::from_str::<Functional>("3").unwrap().get(), 3);
        assert_eq!("C".parse::<Cosmetic>().unwrap(), Cosmetic::C);
        assert!("F".parse::<Cosmetic>().is_err());
        assert!("a".parse::<Cosmetic>().is_err());
        assert!(serde_json::from_str::<Cosmetic>("\"F\"").is_err());
        assert!(Cosmetic::A < Cosmetic::E);
        let f = Functional::FULLY_FUNCTIONAL;
        assert_eq!(
            BenchGrade::new(f, Cosmetic::A, Some(101), true, true),
            Err(GradeError::Battery(101))
        );
        assert_eq!(
            BenchGrade::new(f, Cosmetic::A, Some(-5), true, true),
            Err(GradeError::Battery(-5))
        );
        assert!(BenchGrade::new(f, Cosmetic::A, None, true, true).is_err());
        assert!(BenchGrade::new(f, Cosmetic::A, Some(80), true, false).is_err());
        assert!(BenchGrade::new(f, Cosmetic::A, None, true, false).is_ok());
    }

    #[test]
    fn a_large_gap_between_bench_and_telemetry_is_flagged() {
        let table = [
            (Some(80), Some(82.0), 10, Some(false)),
            (Some(70), Some(80.0), 10, Some(true)),
            (Some(95), Some(84.5), 10, Some(true)),
            (Some(95), Some(84.5), 15, Some(false)),
            (None, Some(84.5), 10, None),
            (Some(90), None, 10, None),
        ];
        for (bench, tele, th, flagged) in table {
            let got = battery_gap(bench, tele, th);
            assert_eq!(got.map(|g| g.flagged), flagged, "{bench:?} {tele:?} {th}");
        }
        let g = battery_gap(Some(70), Some(80.0), 10).unwrap();
        assert_eq!(g.gap_pts, -10.0);
    }
}
