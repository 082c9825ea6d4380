//! Evaluation: ranking, alarm and lead-time metrics of a scorer on labelled rows, beside
//! the hand rule on the same rows.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

#[cfg(feature = "train")]
use crate::features::DAY_MS;
#[cfg(feature = "train")]
use crate::labels::LabelledSet;
#[cfg(feature = "train")]
use crate::rule::HandRule;

/// Metrics of one scorer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Area under the ROC curve of the scores, rows as units.
    pub roc_auc: f64,
    /// Area under the precision-recall curve (average precision).
    pub pr_auc: f64,
    /// Share of alarmed rows whose device fails within the horizon.
    pub precision: f64,
    /// Share of the rows whose device fails within the horizon that are alarmed.
    pub recall: f64,
    /// Mean squared difference between the probability and the label.
    pub brier: f64,
    /// Median days from a failing device's first alarm to its failure, over failing
    /// devices with an alarm before failing; null when there are none.
    pub lead_time_days_median: Option<f64>,
    /// Lower quartile of the lead time, days.
    pub lead_time_days_q1: Option<f64>,
    /// Upper quartile of the lead time, days.
    pub lead_time_days_q3: Option<f64>,
    /// Rows alarmed.
    pub alarms: usize,
    /// Failing devices with at least one alarm before failing.
    pub reached_before_failure: usize,
    /// Failing devices alarmed within the horizon before failing.
    pub caught_within_horizon: usize,
    /// Healthy devices (no failure) with at least one alarm.
    pub false_alarm_devices: usize,
    /// The alarm threshold on the score.
    pub threshold: f64,
}

/// Precision among the highest-scored `percent` of the fleet, averaged over days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopK {
    /// The share of the fleet, percent.
    pub percent: f64,
    /// Mean over days of the precision in that share.
    pub precision: f64,
}

/// One bin of the reliability table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lower edge of the predicted probability.
    pub from: f64,
    /// Upper edge.
    pub to: f64,
    /// Rows in the bin.
    pub rows: usize,
    /// Mean predicted probability of those rows.
    pub mean_predicted: f64,
    /// Share of those rows that were failing.
    pub observed: f64,
}

/// Failing devices of one mode caught within the horizon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeRecall {
    /// Failing devices of the mode with rows in the set.
    pub devices: usize,
    /// Of them, alarmed within the horizon before failing.
    pub caught: usize,
    /// `caught / devices`.
    pub recall: f64,
    /// The same for the hand rule.
    pub baseline_recall: f64,
}

/// A full evaluation: the model's metrics flattened at the top, the hand rule's under
/// `baseline`, and the detail tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The model's metrics.
    #[serde(flatten)]
    pub model: Metrics,
    /// The hand rule's metrics on the same rows; absent where the data has none of its
    /// inputs (an operator's CSV without state of health or restarts).
    #[serde(default)]
    pub baseline: Option<Metrics>,
    /// What the hand rule is.
    pub baseline_rule: String,
    /// Rows evaluated.
    pub rows: usize,
    /// Failing rows among them.
    pub positive_rows: usize,
    /// Devices with rows.
    pub devices: usize,
    /// Of them, devices that failed.
    pub failed_devices: usize,
    /// Label horizon, days.
    pub horizon_days: u32,
    /// Precision in the top of the fleet.
    pub top_k: Vec<TopK>,
    /// Calibration: predicted against observed, ten bins.
    pub reliability: Vec<ReliabilityBin>,
    /// Expected calibration error of the probabilities (ten bins).
    #[serde(default)]
    pub ece: f64,
    /// The expected calibration error before calibration, when known.
    #[serde(default)]
    pub ece_uncalibrated: Option<f64>,
    /// The Brier score before calibration, when known.
    #[serde(default)]
    pub brier_uncalibrated: Option<f64>,
    /// The reliability table before calibration, when known.
    #[serde(default)]
    pub reliability_uncalibrated: Vec<ReliabilityBin>,
    /// The model's figures with each row weighing its weight, when rows are weighted
    /// (a random inspection sample): estimates for the whole population, not only
    /// the devices a model flagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighted: Option<Weighted>,
    /// Recall per failure mode, devices as units.
    pub recall_by_mode: BTreeMap<String, ModeRecall>,
}

/// Figures under row weights (inverse-probability weighting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weighted {
    /// The rows' weights summed: the population they stand for.
    pub population: f64,
    /// Weighted ROC AUC.
    pub roc_auc: f64,
    /// Weighted average precision.
    pub pr_auc: f64,
    /// Weighted precision at the threshold.
    pub precision: f64,
    /// Weighted recall at the threshold.
    pub recall: f64,
    /// Weighted Brier score.
    pub brier: f64,
}

impl Weighted {
    /// The figures of `scores` against `labels`, each row weighing its weight.
    pub fn of(scores: &[f64], labels: &[bool], weights: &[f64], threshold: f64) -> Weighted {
        let (mut tp, mut alarmed, mut positives) = (0.0, 0.0, 0.0);
        for ((&s, &y), &w) in scores.iter().zip(labels).zip(weights) {
            if s >= threshold {
                alarmed += w;
                if y {
                    tp += w;
                }
            }
            if y {
                positives += w;
            }
        }
        let share = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Weighted {
            population: weights.iter().sum(),
            roc_auc: weighted_roc_auc(scores, labels, weights),
            pr_auc: weighted_average_precision(scores, labels, weights),
            precision: share(tp, alarmed),
            recall: share(tp, positives),
            brier: crate::calibration::weighted_brier(scores, labels, weights),
        }
    }
}

/// ROC AUC with weighted rows: the weighted chance a failing row outscores a healthy
/// one, ties counting half.
pub fn weighted_roc_auc(scores: &[f64], labels: &[bool], weights: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    // Walking up the scores: each failing row beats the healthy weight below it.
    let (mut below, mut pairs, mut pos, mut i) = (0.0, 0.0, 0.0, 0);
    while i < order.len() {
        let mut j = i;
        let (mut p, mut n) = (0.0, 0.0);
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            let w = weights[order[j]];
            if labels[order[j]] {
                p += w;
            } else {
                n += w;
            }
            j += 1;
        }
        pairs += p * (below + n / 2.0);
        below += n;
        pos += p;
        i = j;
    }
    if pos == 0.0 || below == 0.0 {
        return f64::NAN;
    }
    pairs / (pos * below)
}

/// Average precision with weighted rows.
pub fn weighted_average_precision(scores: &[f64], labels: &[bool], weights: &[f64]) -> f64 {
    let total: f64 = (0..labels.len())
        .filter(|&i| labels[i])
        .map(|i| weights[i])
        .sum();
    if total == 0.0 {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let (mut tp, mut seen, mut ap, mut i) = (0.0, 0.0, 0.0, 0);
    while i < order.len() {
        let mut j = i;
        let mut gained = 0.0;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            let w = weights[order[j]];
            if labels[order[j]] {
                gained += w;
            }
            seen += w;
            j += 1;
        }
        tp += gained;
        ap += (gained / total) * (tp / seen);
        i = j;
    }
    ap
}

#[cfg(feature = "train")]
impl Evaluation {
    /// Evaluates `probability` (one per row of `set`) with alarms at `threshold`, beside
    /// `rule` on the same rows.
    pub fn new(set: &LabelledSet, probability: &[f64], threshold: f64, rule: &HandRule) -> Self {
        assert_eq!(probability.len(), set.len(), "one score per row");
        let rule_scores: Vec<f64> = (0..set.len())
            .map(|i| if rule.alarm(&set.row(i)) { 1.0 } else { 0.0 })
            .collect();
        let model = metrics(set, probability, threshold);
        let reported = rule
            .inputs()
            .iter()
            .any(|f| !set.absent_features.iter().any(|a| a == f));
        let baseline = reported.then(|| metrics(set, &rule_scores, 0.5));
        let model_caught = caught_devices(set, probability, threshold);
        let rule_caught = caught_devices(set, &rule_scores, 0.5);
        let mut recall_by_mode: BTreeMap<String, ModeRecall> = BTreeMap::new();
        // One pass over the rows, not one per device.
        let mut has_failing_row = vec![false; set.devices.len()];
        for (d, _) in set.device.iter().zip(&set.y).filter(|(_, y)| **y) {
            has_failing_row[*d as usize] = true;
        }
        for (d, outcome) in set.devices.iter().enumerate() {
            let Some(mode) = &outcome.failure_mode else {
                continue;
            };
            if !has_failing_row[d] {
                continue;
            }
            let entry = recall_by_mode.entry(mode.clone()).or_insert(ModeRecall {
                devices: 0,
                caught: 0,
                recall: 0.0,
                baseline_recall: 0.0,
            });
            entry.devices += 1;
            entry.caught += usize::from(model_caught[d]);
            entry.baseline_recall += f64::from(u8::from(rule_caught[d]));
        }
        for m in recall_by_mode.values_mut() {
            m.recall = m.caught as f64 / m.devices as f64;
            m.baseline_recall /= m.devices as f64;
        }
        let mut with_rows = vec![false; set.devices.len()];
        for d in &set.device {
            with_rows[*d as usize] = true;
        }
        Evaluation {
            model,
            baseline,
            baseline_rule: if reported {
                rule.to_string()
            } else {
                format!(
                    "not reported: the data has none of its inputs ({})",
                    rule.inputs().join(", ")
                )
            },
            rows: set.len(),
            positive_rows: set.positives(),
            devices: with_rows.iter().filter(|w| **w).count(),
            failed_devices: set
                .devices
                .iter()
                .enumerate()
                .filter(|(d, o)| with_rows[*d] && o.failed)
                .count(),
            horizon_days: set.horizon_days,
            top_k: [1.0, 5.0]
                .iter()
                .map(|&percent| TopK {
                    percent,
                    precision: top_k_precision(set, probability, percent),
                })
                .collect(),
            reliability: reliability(set, probability, 10),
            ece: crate::calibration::ece(probability, &set.y, 10),
            ece_uncalibrated: None,
            brier_uncalibrated: None,
            reliability_uncalibrated: Vec::new(),
            weighted: set
                .is_weighted()
                .then(|| Weighted::of(probability, &set.y, &set.weight, threshold)),
            recall_by_mode,
        }
    }

    /// The same evaluation with the calibration's effect: `raw` are the probabilities
    /// before calibration, one per row of `set`.
    pub fn with_uncalibrated(mut self, set: &LabelledSet, raw: &[f64]) -> Self {
        assert_eq!(raw.len(), set.len(), "one score per row");
        self.ece_uncalibrated = Some(crate::calibration::ece(raw, &set.y, 10));
        self.brier_uncalibrated = Some(crate::calibration::brier(raw, &set.y));
        self.reliability_uncalibrated = reliability(set, raw, 10);
        self
    }
}

/// Area under the ROC curve: the chance a random failing row outscores a random healthy
/// one, ties counting half.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let (mut rank_sum, mut pos, mut i) = (0.0, 0usize, 0);
    while i < order.len() {
        let mut j = i;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        // Tied scores share the mean of their ranks (1-based).
        let mean_rank = (i + j + 1) as f64 / 2.0;
        for &k in &order[i..j] {
            if labels[k] {
                rank_sum += mean_rank;
                pos += 1;
            }
        }
        i = j;
    }
    let neg = scores.len() - pos;
    if pos == 0 || neg == 0 {
        return f64::NAN;
    }
    (rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos as f64 * neg as f64)
}

/// Average precision: precision at each distinct score, weighted by the recall gained.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> f64 {
    let total = labels.iter().filter(|l| **l).count();
    if total == 0 {
        return f64::NAN;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let (mut tp, mut seen, mut ap, mut i) = (0usize, 0usize, 0.0, 0);
    while i < order.len() {
        let mut j = i;
        let mut gained = 0;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            gained += usize::from(labels[order[j]]);
            j += 1;
        }
        tp += gained;
        seen += j - i;
        ap += (gained as f64 / total as f64) * (tp as f64 / seen as f64);
        i = j;
    }
    ap
}

#[cfg(feature = "train")]
fn metrics(set: &LabelledSet, scores: &[f64], threshold: f64) -> Metrics {
    let alarm: Vec<bool> = scores.iter().map(|s| *s >= threshold).collect();
    let tp = alarm.iter().zip(&set.y).filter(|(a, y)| **a && **y).count();
    let alarms = alarm.iter().filter(|a| **a).count();
    let positives = set.positives();
    let brier = scores
        .iter()
        .zip(&set.y)
        .map(|(s, y)| (s - f64::from(u8::from(*y))).powi(2))
        .sum::<f64>()
        / set.len().max(1) as f64;
    // First alarm per device.
    let mut first_alarm: Vec<Option<u64>> = vec![None; set.devices.len()];
    for ((_, d), t) in alarm
        .iter()
        .zip(&set.device)
        .zip(&set.t_ms)
        .filter(|((a, _), _)| **a)
    {
        let d = *d as usize;
        first_alarm[d] = Some(first_alarm[d].map_or(*t, |f| f.min(*t)));
    }
    let mut leads: Vec<f64> = Vec::new();
    let mut reached = 0;
    let mut false_alarm_devices = 0;
    for (d, outcome) in set.devices.iter().enumerate() {
        match (first_alarm[d], outcome.failed) {
            (Some(t), true) => {
                reached += 1;
                if let Some(f) = outcome.failed_at_ms {
                    leads.push(f.saturating_sub(t) as f64 / DAY_MS as f64);
                }
            }
            (Some(_), false) => false_alarm_devices += 1,
            _ => {}
        }
    }
    leads.sort_by(f64::total_cmp);
    let caught = caught_devices(set, scores, threshold)
        .iter()
        .filter(|c| **c)
        .count();
    Metrics {
        roc_auc: roc_auc(scores, &set.y),
        pr_auc: average_precision(scores, &set.y),
        precision: if alarms == 0 {
            0.0
        } else {
            tp as f64 / alarms as f64
        },
        recall: if positives == 0 {
            0.0
        } else {
            tp as f64 / positives as f64
        },
        brier,
        lead_time_days_median: quantile(&leads, 0.5),
        lead_time_days_q1: quantile(&leads, 0.25),
        lead_time_days_q3: quantile(&leads, 0.75),
        alarms,
        reached_before_failure: reached,
        caught_within_horizon: caught,
        false_alarm_devices,
        threshold,
    }
}

#[cfg(feature = "train")]
/// Per device: alarmed on a row inside the horizon before its failure.
fn caught_devices(set: &LabelledSet, scores: &[f64], threshold: f64) -> Vec<bool> {
    let mut caught = vec![false; set.devices.len()];
    for i in 0..set.len() {
        if set.y[i] && scores[i] >= threshold {
            caught[set.device[i] as usize] = true;
        }
    }
    caught
}

#[cfg(feature = "train")]
/// Linear-interpolated quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

#[cfg(feature = "train")]
fn top_k_precision(set: &LabelledSet, scores: &[f64], percent: f64) -> f64 {
    let mut by_day: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for i in 0..set.len() {
        by_day.entry(set.t_ms[i] / DAY_MS).or_default().push(i);
    }
    let mut sum = 0.0;
    for rows in by_day.values_mut() {
        rows.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
        let k = ((rows.len() as f64 * percent / 100.0).ceil() as usize).clamp(1, rows.len());
        sum += rows[..k].iter().filter(|&&i| set.y[i]).count() as f64 / k as f64;
    }
    if by_day.is_empty() {
        0.0
    } else {
        sum / by_day.len() as f64
    }
}

#[cfg(feature = "train")]
fn reliability(set: &LabelledSet, scores: &[f64], bins: usize) -> Vec<ReliabilityBin> {
    let mut out: Vec<ReliabilityBin> = (0..bins)
        .map(|b| ReliabilityBin {
            from: b as f64 / bins as f64,
            to: (b + 1) as f64 / bins as f64,
            rows: 0,
            mean_predicted: 0.0,
            observed: 0.0,
        })
        .collect();
    for (s, y) in scores.iter().zip(&set.y) {
        let b = ((s * bins as f64) as usize).min(bins - 1);
        out[b].rows += 1;
        out[b].mean_predicted += s;
        out[b].observed += f64::from(u8::from(*y));
    }
    for b in &mut out {
        if b.rows > 0 {
            b.mean_predicted /= b.rows as f64;
            b.observed /= b.rows as f64;
        }
    }
    out
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} rows ({} failing within {} days), {} devices ({} failed)",
            self.rows, self.positive_rows, self.horizon_days, self.devices, self.failed_devices
        )?;
        if let Some(w) = &self.weighted {
            writeln!(
                f,
                "weighted rows (a random inspection sample) stand for {:.0}: ROC AUC {:.3}, \
                 PR AUC {:.3}, precision {:.3}, recall {:.3}, Brier {:.4}",
                w.population, w.roc_auc, w.pr_auc, w.precision, w.recall, w.brier
            )?;
        }
        writeln!(f, "{:<28}{:>12}{:>12}", "", "model", "hand rule")?;
        let m = &self.model;
        // The hand rule's column: a dash where the data has none of its inputs.
        let bcol =
            |g: &dyn Fn(&Metrics) -> String| self.baseline.as_ref().map_or("-".to_owned(), g);
        let row = |f: &mut fmt::Formatter<'_>, name: &str, a: String, c: String| {
            writeln!(f, "{name:<28}{a:>12}{c:>12}")
        };
        row(
            f,
            "ROC AUC",
            format!("{:.3}", m.roc_auc),
            bcol(&|b| format!("{:.3}", b.roc_auc)),
        )?;
        row(
            f,
            "PR AUC",
            format!("{:.3}", m.pr_auc),
            bcol(&|b| format!("{:.3}", b.pr_auc)),
        )?;
        row(
            f,
            "precision",
            format!("{:.3}", m.precision),
            bcol(&|b| format!("{:.3}", b.precision)),
        )?;
        row(
            f,
            "recall",
            format!("{:.3}", m.recall),
            bcol(&|b| format!("{:.3}", b.recall)),
        )?;
        row(
            f,
            "Brier score",
            format!("{:.4}", m.brier),
            bcol(&|b| format!("{:.4}", b.brier)),
        )?;
        row(
            f,
            "lead time median, days",
            opt(m.lead_time_days_median),
            bcol(&|b| opt(b.lead_time_days_median)),
        )?;
        row(
            f,
            "lead time quartiles, days",
            format!("{}-{}", opt(m.lead_time_days_q1), opt(m.lead_time_days_q3)),
            bcol(&|b| format!("{}-{}", opt(b.lead_time_days_q1), opt(b.lead_time_days_q3))),
        )?;
        row(
            f,
            "alarmed rows",
            m.alarms.to_string(),
            bcol(&|b| b.alarms.to_string()),
        )?;
        row(
            f,
            "failing devices reached",
            format!("{}/{}", m.reached_before_failure, self.failed_devices),
            bcol(&|b| format!("{}/{}", b.reached_before_failure, self.failed_devices)),
        )?;
        row(
            f,
            "caught within horizon",
            format!("{}/{}", m.caught_within_horizon, self.failed_devices),
            bcol(&|b| format!("{}/{}", b.caught_within_horizon, self.failed_devices)),
        )?;
        row(
            f,
            "healthy devices alarmed",
            m.false_alarm_devices.to_string(),
            bcol(&|b| b.false_alarm_devices.to_string()),
        )?;
        writeln!(
            f,
            "threshold {:.3}; hand rule: {}",
            m.threshold, self.baseline_rule
        )?;
        for k in &self.top_k {
            writeln!(
                f,
                "precision in the top {}% of the fleet per day: {:.3}",
                k.percent, k.precision
            )?;
        }
        writeln!(
            f,
            "recall by failure mode (devices caught within the horizon):"
        )?;
        for (mode, r) in &self.recall_by_mode {
            writeln!(
                f,
                "  {mode:<14} {}/{} = {:.2} (hand rule {:.2})",
                r.caught, r.devices, r.recall, r.baseline_recall
            )?;
        }
        match (self.ece_uncalibrated, self.brier_uncalibrated) {
            (Some(e0), Some(b0)) => writeln!(
                f,
                "calibration: expected calibration error {e0:.4} -> {:.4}, Brier {b0:.4} -> {:.4}",
                self.ece, m.brier
            )?,
            _ => writeln!(f, "calibration: expected calibration error {:.4}", self.ece)?,
        }
        let table = |f: &mut fmt::Formatter<'_>, name: &str, bins: &[ReliabilityBin]| {
            writeln!(f, "reliability {name} (predicted → observed):")?;
            for b in bins.iter().filter(|b| b.rows > 0) {
                writeln!(
                    f,
                    "  {:.1}-{:.1}: {:>7} rows, predicted {:.3}, observed {:.3}",
                    b.from, b.to, b.rows, b.mean_predicted, b.observed
                )?;
            }
            Ok(())
        };
        if !self.reliability_uncalibrated.is_empty() {
            table(f, "before calibration", &self.reliability_uncalibrated)?;
        }
        table(f, "as scored", &self.reliability)?;
        Ok(())
    }
}
