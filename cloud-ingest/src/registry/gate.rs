//! The gate a challenger passes before it becomes champion: both models scored on the
//! outcomes the desk labelled since the challenger started, and their alarms on the
//! fleet over the same days. Pure: the shell gathers [`Outcome`]s and [`ShadowFacts`].

use models::evaluation::{average_precision, roc_auc};
use serde::{Deserialize, Serialize};

const DAY_MS: u64 = 86_400_000;

/// What the gate asks of a challenger (`[model.gate]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateConfig {
    /// Labelled outcomes needed before the figures count.
    pub min_outcomes: u32,
    /// Of which confirmed faults.
    pub min_positives: u32,
    /// How far the challenger's PR-AUC may fall below the champion's.
    pub pr_auc_tolerance: f64,
    /// How far its Brier score may rise above the champion's.
    pub brier_tolerance: f64,
    /// How far its precision at the desk's capacity may fall below the champion's.
    pub precision_tolerance: f64,
    /// Tickets the service desk can work a day: where precision is measured, and the
    /// alarm rate a challenger may reach whatever the champion's.
    pub desk_capacity_per_day: f64,
    /// Above the desk's capacity, how many times the champion's alarms a day the
    /// challenger may raise.
    pub max_alarm_ratio: f64,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            min_outcomes: 20,
            min_positives: 5,
            pr_auc_tolerance: 0.02,
            brier_tolerance: 0.01,
            precision_tolerance: 0.05,
            desk_capacity_per_day: 20.0,
            max_alarm_ratio: 1.5,
        }
    }
}

/// One labelled outcome, scored by both models on the features it was opened on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// The champion's risk.
    pub champion: f64,
    /// The challenger's risk.
    pub challenger: f64,
    /// Whether a fault was confirmed.
    pub fault: bool,
}

/// A device the two models disagree on now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Disagreement {
    /// The device.
    pub device_id: String,
    /// The champion's latest risk.
    pub champion_risk: f64,
    /// Whether the champion alarms.
    pub champion_alarm: bool,
    /// The challenger's latest risk.
    pub challenger_risk: f64,
    /// Whether the challenger alarms.
    pub challenger_alarm: bool,
}

/// The fleet's scores since the challenger started, as the store counts them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShadowFacts {
    /// Devices the champion alarmed on in the window.
    pub champion_alarmed: u64,
    /// Devices the challenger alarmed on in the window.
    pub challenger_alarmed: u64,
    /// Devices scored by both whose latest alarms differ.
    pub disagreeing: u64,
    /// Devices scored by both.
    pub shadowed: u64,
    /// The largest disagreements, by the gap between the risks.
    pub disagreements: Vec<Disagreement>,
}

/// One model's figures on the gate's outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Figures {
    /// The model version.
    pub version: String,
    /// Average precision; null without both classes.
    pub pr_auc: Option<f64>,
    /// ROC-AUC; null without both classes.
    pub roc_auc: Option<f64>,
    /// Mean squared error of the risk against the outcome; null without outcomes.
    pub brier: Option<f64>,
    /// Share of confirmed faults among the `capacity` outcomes it ranks riskiest.
    pub precision_at_capacity: Option<f64>,
    /// Devices alarmed in the window, per day.
    pub alarms_per_day: f64,
}

/// One rule of the gate and how the challenger fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Check {
    /// `outcomes`, `pr_auc`, `brier`, `precision_at_capacity` or `alarms_per_day`.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// The figures and the rule, in words.
    pub detail: String,
}

/// The gate as measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Gate {
    /// When the challenger started (its alias was set), ms.
    pub since_ms: u64,
    /// When measured, ms.
    pub measured_ms: u64,
    /// Days in the window (at least one).
    pub days: f64,
    /// Labelled outcomes in the window.
    pub outcomes: u64,
    /// Of which confirmed faults.
    pub faults: u64,
    /// The outcomes precision is measured over: the desk's capacity over the window, at
    /// most every outcome.
    pub capacity: u64,
    /// The champion's figures.
    pub champion: Figures,
    /// The challenger's figures.
    pub challenger: Figures,
    /// Devices scored by both.
    pub shadowed: u64,
    /// Of which the two alarm differently now.
    pub disagreeing: u64,
    /// The largest disagreements.
    #[serde(default)]
    pub disagreements: Vec<Disagreement>,
    /// Every rule.
    pub checks: Vec<Check>,
    /// Whether every rule passed.
    pub passed: bool,
}

impl Gate {
    /// The rules that failed, in words.
    pub fn failures(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.detail.as_str())
            .collect()
    }
}

/// Which models, and the window.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    /// The champion's version.
    pub champion: &'a str,
    /// The challenger's version.
    pub challenger: &'a str,
    /// When the challenger started, ms.
    pub since_ms: u64,
    /// Now, ms.
    pub now_ms: u64,
}

/// Measures the gate.
pub fn measure(
    outcomes: &[Outcome],
    shadow: ShadowFacts,
    w: Window<'_>,
    config: &GateConfig,
) -> Gate {
    let days = (w.now_ms.saturating_sub(w.since_ms) as f64 / DAY_MS as f64).max(1.0);
    let labels: Vec<bool> = outcomes.iter().map(|o| o.fault).collect();
    let faults = labels.iter().filter(|l| **l).count() as u64;
    let n = outcomes.len() as u64;
    let capacity = ((config.desk_capacity_per_day * days).ceil() as u64).min(n);
    let figures = |version: &str, risk: &dyn Fn(&Outcome) -> f64, alarmed: u64| {
        let scores: Vec<f64> = outcomes.iter().map(risk).collect();
        let both = faults > 0 && faults < n;
        Figures {
            version: version.to_owned(),
            pr_auc: both.then(|| average_precision(&scores, &labels)),
            roc_auc: both.then(|| roc_auc(&scores, &labels)),
            brier: (n > 0).then(|| {
                scores
                    .iter()
                    .zip(&labels)
                    .map(|(s, y)| (s - f64::from(u8::from(*y))).powi(2))
                    .sum::<f64>()
                    / n as f64
            }),
            precision_at_capacity: (capacity > 0)
                .then(|| precision_at(&scores, &labels, capacity as usize)),
            alarms_per_day: alarmed as f64 / days,
        }
    };
    let champion = figures(w.champion, &|o| o.champion, shadow.champion_alarmed);
    let challenger = figures(w.challenger, &|o| o.challenger, shadow.challenger_alarmed);
    let checks = checks(&champion, &challenger, n, faults, config);
    Gate {
        since_ms: w.since_ms,
        measured_ms: w.now_ms,
        days,
        outcomes: n,
        faults,
        capacity,
        passed: checks.iter().all(|c| c.passed),
        checks,
        champion,
        challenger,
        shadowed: shadow.shadowed,
        disagreeing: shadow.disagreeing,
        disagreements: shadow.disagreements,
    }
}

/// Share of faults among the `k` riskiest (ties broken by position, which is the
/// outcomes' order: the older first).
fn precision_at(scores: &[f64], labels: &[bool], k: usize) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
    let hits = order.iter().take(k).filter(|i| labels[**i]).count();
    hits as f64 / k as f64
}

fn checks(c: &Figures, x: &Figures, n: u64, faults: u64, g: &GateConfig) -> Vec<Check> {
    let mut out = vec![Check {
        name: "outcomes".into(),
        passed: n >= u64::from(g.min_outcomes) && faults >= u64::from(g.min_positives) && faults < n,
        detail: format!(
            "{n} outcomes labelled since the challenger started, {faults} of them faults; the gate needs {} and {}, and some without a fault",
            g.min_outcomes, g.min_positives
        ),
    }];
    let mut compare = |name: &str,
                       what: &str,
                       champ: Option<f64>,
                       chall: Option<f64>,
                       ok: &dyn Fn(f64, f64) -> bool,
                       rule: String| {
        let (passed, figures) = match (champ, chall) {
            (Some(a), Some(b)) => (ok(a, b), format!("challenger {b:.3}, champion {a:.3}")),
            _ => (false, "not measurable on these outcomes".to_owned()),
        };
        out.push(Check {
            name: name.into(),
            passed,
            detail: format!("{what}: {figures} ({rule})"),
        });
    };
    compare(
        "pr_auc",
        "PR-AUC",
        c.pr_auc,
        x.pr_auc,
        &|a, b| b >= a - g.pr_auc_tolerance,
        format!("at most {} below", g.pr_auc_tolerance),
    );
    compare(
        "brier",
        "Brier score",
        c.brier,
        x.brier,
        &|a, b| b <= a + g.brier_tolerance,
        format!("at most {} above", g.brier_tolerance),
    );
    compare(
        "precision_at_capacity",
        "precision at the desk's capacity",
        c.precision_at_capacity,
        x.precision_at_capacity,
        &|a, b| b >= a - g.precision_tolerance,
        format!("at most {} below", g.precision_tolerance),
    );
    let allowed = g
        .desk_capacity_per_day
        .max(c.alarms_per_day * g.max_alarm_ratio);
    out.push(Check {
        name: "alarms_per_day".into(),
        passed: x.alarms_per_day <= allowed,
        detail: format!(
            "alarms a day: challenger {:.2}, champion {:.2} (at most {allowed:.2}: the desk's {} a day, or {}× the champion's)",
            x.alarms_per_day, c.alarms_per_day, g.desk_capacity_per_day, g.max_alarm_ratio
        ),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window<'static> {
        Window {
            champion: "a",
            challenger: "b",
            since_ms: 0,
            now_ms: 10 * DAY_MS,
        }
    }

    /// 40 outcomes, every fourth a fault; `champion` and `challenger` map (index, fault)
    /// to a risk.
    fn outcomes(
        champion: fn(usize, bool) -> f64,
        challenger: fn(usize, bool) -> f64,
    ) -> Vec<Outcome> {
        (0..40)
            .map(|i| {
                let fault = i % 4 == 0;
                Outcome {
                    champion: champion(i, fault),
                    challenger: challenger(i, fault),
                    fault,
                }
            })
            .collect()
    }

    fn shadow(champion: u64, challenger: u64) -> ShadowFacts {
        ShadowFacts {
            champion_alarmed: champion,
            challenger_alarmed: challenger,
            ..ShadowFacts::default()
        }
    }

    // A middling model: faults a little riskier, with overlap.
    fn middling(i: usize, fault: bool) -> f64 {
        if fault {
            0.3 + (i % 3) as f64 * 0.1
        } else {
            0.2 + (i % 5) as f64 * 0.06
        }
    }

    fn sharp(_: usize, fault: bool) -> f64 {
        if fault {
            0.9
        } else {
            0.05
        }
    }

    fn backwards(i: usize, fault: bool) -> f64 {
        1.0 - sharp(i, fault)
    }

    #[test]
    fn a_better_challenger_passes_every_rule() {
        let g = measure(
            &outcomes(middling, sharp),
            shadow(30, 30),
            window(),
            &GateConfig::default(),
        );
        assert!(g.passed, "{:?}", g.failures());
        assert_eq!((g.outcomes, g.faults), (40, 10));
        assert_eq!(g.challenger.pr_auc, Some(1.0));
        assert!(g.challenger.brier.unwrap() < g.champion.brier.unwrap());
        assert_eq!(g.champion.alarms_per_day, 3.0);
    }

    #[test]
    fn a_worse_challenger_fails_on_ranking_and_calibration() {
        // The desk works one ticket a day: precision among the ten riskiest.
        let config = GateConfig {
            desk_capacity_per_day: 1.0,
            ..GateConfig::default()
        };
        let g = measure(
            &outcomes(sharp, backwards),
            shadow(30, 30),
            window(),
            &config,
        );
        assert!(!g.passed);
        let failed: Vec<&str> = g
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(failed, ["pr_auc", "brier", "precision_at_capacity"]);
    }

    #[test]
    fn too_few_outcomes_fail_the_gate_however_good_the_figures() {
        let few = &outcomes(middling, sharp)[..12];
        let g = measure(few, shadow(0, 0), window(), &GateConfig::default());
        assert!(!g.passed);
        assert_eq!(g.checks[0].name, "outcomes");
        assert!(!g.checks[0].passed);
        assert!(g.checks[1..].iter().all(|c| c.passed), "{:?}", g.failures());
        // No outcomes at all: nothing is measurable, and that is a failure, not a pass.
        let none = measure(&[], shadow(0, 0), window(), &GateConfig::default());
        assert!(none
            .checks
            .iter()
            .all(|c| !c.passed || c.name == "alarms_per_day"));
        assert_eq!(none.champion.brier, None);
    }

    #[test]
    fn precision_is_measured_at_the_desks_capacity() {
        // One ticket a day over ten days: the ten riskiest of forty outcomes.
        let config = GateConfig {
            desk_capacity_per_day: 1.0,
            ..GateConfig::default()
        };
        let g = measure(&outcomes(middling, sharp), shadow(0, 0), window(), &config);
        assert_eq!(g.capacity, 10);
        assert_eq!(g.challenger.precision_at_capacity, Some(1.0));
        // Capacity beyond the outcomes: every outcome, the base rate for both.
        let g = measure(
            &outcomes(middling, sharp),
            shadow(0, 0),
            window(),
            &GateConfig::default(),
        );
        assert_eq!(g.capacity, 40);
        assert_eq!(g.champion.precision_at_capacity, Some(0.25));
    }

    #[test]
    fn a_challenger_that_floods_the_desk_fails() {
        let config = GateConfig {
            desk_capacity_per_day: 5.0,
            ..GateConfig::default()
        };
        // Champion 2 a day: 5 allowed (the desk's); 8 a day is too many.
        let g = measure(
            &outcomes(middling, sharp),
            shadow(20, 80),
            window(),
            &config,
        );
        let alarms = g
            .checks
            .iter()
            .find(|c| c.name == "alarms_per_day")
            .unwrap();
        assert!(!alarms.passed, "{}", alarms.detail);
        // Champion 6 a day: 1.5× is 9, so 8 passes.
        let g = measure(
            &outcomes(middling, sharp),
            shadow(60, 80),
            window(),
            &config,
        );
        assert!(g.passed, "{:?}", g.failures());
    }
}
