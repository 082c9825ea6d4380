//! Training end to end: split, scale, fit, calibrate and choose the threshold on
//! out-of-fold rows, refit on everything, and package the artifact with its validation
//! metrics.

use serde::{Deserialize, Serialize};

use crate::artifact::{
    self, Model, ModelArtifact, Prior, Scaler, SchemaInfo, TrainingSummary, ValidationKind,
    ARTIFACT_FORMAT,
};
use crate::calibration::Calibration;
use crate::evaluation::Evaluation;
use crate::forest::{Forest, ForestParams};
use crate::labels::LabelledSet;
use crate::logistic::{LogisticModel, LogisticParams};
use crate::rule::HandRule;
use crate::split::{self, SplitConfig};
use crate::TrainError;

/// Which model to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Kind {
    /// Logistic regression on standardised features.
    Logistic,
    /// A random forest of decision trees.
    Forest,
}

/// Everything training needs besides the data.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// The model kind.
    pub kind: Kind,
    /// Logistic hyperparameters.
    pub logistic: LogisticParams,
    /// Forest hyperparameters.
    pub forest: ForestParams,
    /// The validation split.
    pub split: SplitConfig,
    /// The threshold is the lowest score whose validation precision reaches this.
    pub target_precision: f64,
    /// Refit on all rows after choosing the threshold.
    pub refit: bool,
    /// Device folds whose out-of-fold scores choose the threshold; below 2, the
    /// validation split chooses it.
    pub threshold_folds: usize,
    /// Seed of the split and the model.
    pub seed: u64,
    /// The hand rule reported beside the model.
    pub rule: HandRule,
    /// Fit a calibration on the out-of-fold scores (else the identity).
    pub calibrate: bool,
    /// Fit the threshold folds side by side (else one after another, holding one
    /// fold's copy of the rows at a time instead of all of them).
    pub parallel_folds: bool,
}

impl TrainConfig {
    /// Defaults for a kind, horizon and seed.
    pub fn new(kind: Kind, horizon_days: u32, seed: u64) -> Self {
        TrainConfig {
            kind,
            logistic: LogisticParams::default(),
            forest: ForestParams::default(),
            split: SplitConfig::for_horizon(horizon_days, seed),
            target_precision: 0.78,
            refit: true,
            threshold_folds: 4,
            seed,
            rule: HandRule::default(),
            calibrate: true,
            parallel_folds: true,
        }
    }
}

/// Trains a model on `set`; `progress` receives one line per stage.
pub fn train(
    set: &LabelledSet,
    config: &TrainConfig,
    progress: &dyn Fn(&str),
) -> Result<ModelArtifact, TrainError> {
    let (first, last) = set
        .t_ms
        .iter()
        .fold((u64::MAX, 0), |(a, b), &t| (a.min(t), b.max(t)));
    let span_ms = last.saturating_sub(first);
    let horizon_ms = u64::from(set.horizon_days) * 86_400_000;
    if span_ms < 2 * horizon_ms {
        let span = if span_ms < 86_400_000 {
            format!("{:.1} s", span_ms as f64 / 1000.0)
        } else {
            format!("{:.1} days", span_ms as f64 / 86_400_000.0)
        };
        return Err(TrainError::ShortSpan {
            span,
            horizon_days: set.horizon_days,
        });
    }
    let parts = split::split(set, &config.split);
    let train_set = set.subset(&parts.train);
    let validation_set = set.subset(&parts.validation);
    let pos = train_set.positives();
    if pos == 0 || pos == train_set.len() {
        return Err(TrainError::EmptySplit("training"));
    }
    // A short window or a small fleet can leave no failure in the validation split;
    // the out-of-fold scores (grouped by device, not by time) then stand in for it.
    let split_usable =
        validation_set.positives() > 0 && validation_set.positives() < validation_set.len();
    if !split_usable && config.threshold_folds < 2 {
        return Err(TrainError::EmptySplit("validation"));
    }
    progress(&format!(
        "split: {} training rows ({} failing), {} validation rows ({} failing) from {} held-out devices",
        train_set.len(),
        train_set.positives(),
        validation_set.len(),
        validation_set.positives(),
        parts.held_out.iter().filter(|h| **h).count()
    ));
    let oof = if config.threshold_folds >= 2 {
        Some(out_of_fold(set, config, progress)?)
    } else {
        None
    };
    let (scaler, model, prior) = fit(&train_set, config, progress)?;
    let raw_split = score_all(&validation_set, &scaler, &model, &prior);
    // Calibration and threshold are both chosen on scores of rows the scoring model
    // never saw: the out-of-fold scores, else (no folds) the validation split.
    let (fit_scores, fit_labels, fit_weights) = match &oof {
        Some(scores) => (scores.as_slice(), set.y.as_slice(), &set.weight),
        None => (
            raw_split.as_slice(),
            validation_set.y.as_slice(),
            &validation_set.weight,
        ),
    };
    let calibration = if config.calibrate {
        Calibration::fit(fit_scores, fit_labels, Some(fit_weights))
    } else {
        Calibration::IDENTITY
    };
    progress(&format!(
        "calibration: slope {:.3}, intercept {:.3} on the log-odds",
        calibration.a, calibration.b
    ));
    let calibrate = |v: &[f64]| v.iter().map(|&p| calibration.apply(p)).collect::<Vec<_>>();
    // The threshold is placed among the raw scores (halfway in log-odds between two of
    // them) and carried through the calibration: the map is increasing, so the same
    // rows alarm as without it, and the threshold reads as a probability.
    let raw_threshold = match &oof {
        Some(scores) => {
            choose_threshold(scores, &set.y, Some(&set.weight), config.target_precision)
        }
        // No folds: the validation split chooses (few failures there, so a rougher pick).
        None => choose_threshold(
            &raw_split,
            &validation_set.y,
            Some(&validation_set.weight),
            config.target_precision,
        ),
    };
    let threshold = calibration.apply(raw_threshold);
    let split_scores = calibrate(&raw_split);
    let oof_raw = oof;
    let oof = oof_raw.as_deref().map(calibrate);
    progress(&format!(
        "threshold {threshold:.4} ({raw_threshold:.4} before calibration)"
    ));
    let (validation, validation_kind) = match (&oof, &oof_raw) {
        (Some(scores), Some(raw)) if !split_usable => {
            progress("the validation split holds no failure: reporting out-of-fold scores instead");
            (
                Evaluation::new(set, scores, threshold, &config.rule).with_uncalibrated(set, raw),
                ValidationKind::OutOfFold,
            )
        }
        _ => (
            Evaluation::new(&validation_set, &split_scores, threshold, &config.rule)
                .with_uncalibrated(&validation_set, &raw_split),
            ValidationKind::HeldOutDevicesLater,
        ),
    };
    progress(&format!(
        "validation: ROC AUC {:.3}, precision {:.3}, recall {:.3} at threshold {:.3}",
        validation.model.roc_auc, validation.model.precision, validation.model.recall, threshold
    ));
    let (fitted_on, (scaler, model, prior)) = if config.refit {
        progress("refitting on all rows");
        (set, fit(set, config, progress)?)
    } else {
        (&train_set, (scaler, model, prior))
    };
    let params = match config.kind {
        Kind::Logistic => serde_json::to_value(&config.logistic),
        Kind::Forest => serde_json::to_value(&config.forest),
    }
    .unwrap_or_default();
    let training = TrainingSummary {
        source: set.source.clone(),
        horizon_days: set.horizon_days,
        rows: fitted_on.len(),
        positive_rows: fitted_on.positives(),
        devices: set.devices.len(),
        failed_devices: set.devices.iter().filter(|d| d.failed).count(),
        validation_rows: validation.rows,
        validation_positive_rows: validation.positive_rows,
        validation_kind,
        absent_features: set.absent_features.clone(),
        seed: config.seed,
        params,
    };
    let mut artifact = ModelArtifact {
        format: ARTIFACT_FORMAT,
        version: String::new(),
        created_at: chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        schema: SchemaInfo::current(),
        scaler,
        model,
        prior,
        calibration,
        threshold,
        training,
        validation,
    };
    artifact.version = version_of(&artifact);
    Ok(artifact)
}

fn score_all(set: &LabelledSet, scaler: &Scaler, model: &Model, prior: &Prior) -> Vec<f64> {
    (0..set.len())
        .map(|i| artifact::probability(scaler, model, prior, &set.row(i).0))
        .collect()
}

/// A fold's held-out rows and their scores.
type FoldScores = (Vec<usize>, Vec<f64>);

/// Scores every row with a model fitted without its device: devices are dealt into
/// `threshold_folds` groups (failing and healthy separately), and each group is scored
/// by a model fitted on the others. The threshold is chosen on these scores, which
/// cover every failure in the data rather than the few in the validation split.
/// The folds are fitted at the same time, each on its own thread (a fold's forest
/// grows its trees on every core as well; the folds overlap what a forest does not).
fn out_of_fold(
    set: &LabelledSet,
    config: &TrainConfig,
    progress: &dyn Fn(&str),
) -> Result<Vec<f64>, TrainError> {
    let k = config.threshold_folds;
    let fold = split::device_folds(set, k, config.seed);
    progress(&format!(
        "fitting {k} threshold folds {}",
        if config.parallel_folds {
            "side by side"
        } else {
            "one after another"
        }
    ));
    let one = |f: usize| -> Result<FoldScores, TrainError> {
        let (inside, outside): (Vec<usize>, Vec<usize>) =
            (0..set.len()).partition(|&i| fold[set.device[i] as usize] != f);
        let part = set.subset(&inside);
        let (scaler, model, prior) = fit(&part, config, &|_| {})?;
        drop(part);
        let held = set.subset(&outside);
        let scores = score_all(&held, &scaler, &model, &prior);
        Ok((outside, scores))
    };
    let folds: Vec<Result<FoldScores, TrainError>> = if config.parallel_folds {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..k).map(|f| scope.spawn(move || one(f))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    } else {
        (0..k).map(one).collect()
    };
    let mut scores = vec![0.0; set.len()];
    for r in folds {
        let (rows, s) = r?;
        for (i, s) in rows.iter().zip(s) {
            scores[*i] = s;
        }
    }
    Ok(scores)
}

/// `kind-YYYYMMDD-hash`, the hash over the model content (not the creation time), so
/// the same data, settings and seed give the same version.
fn version_of(a: &ModelArtifact) -> String {
    let content = serde_json::to_string(&(
        &a.schema,
        &a.scaler,
        &a.model,
        &a.prior,
        a.threshold,
        (a.calibration != Calibration::IDENTITY).then_some(a.calibration),
    ))
    .unwrap_or_default();
    let hash = crate::schema::fingerprint(&content);
    let date: String = a
        .created_at
        .chars()
        .take(10)
        .filter(|c| *c != '-')
        .collect();
    format!("{}-{date}-{}", a.model.kind(), &hash[..8])
}

fn fit(
    set: &LabelledSet,
    config: &TrainConfig,
    progress: &dyn Fn(&str),
) -> Result<(Scaler, Model, Prior), TrainError> {
    let scaler = Scaler::fit(set.x.view());
    let z = scaler.apply_all(set.x.view());
    // The population's failing share: weighted, a sampled row stands for many.
    let total: f64 = set.weight.iter().sum();
    let failing: f64 = set
        .y
        .iter()
        .zip(&set.weight)
        .filter(|(y, _)| **y)
        .map(|(_, w)| w)
        .sum();
    let population = if total > 0.0 { failing / total } else { 0.0 };
    let (model, fitted) = match config.kind {
        Kind::Logistic if set.is_weighted() => {
            return Err(TrainError::Fit(
                "the rows are weighted (a random inspection sample): train the forest \
                 (--kind forest), which draws rows by weight"
                    .into(),
            ))
        }
        Kind::Logistic => {
            progress(&format!(
                "fitting logistic regression on {} rows",
                set.len()
            ));
            let (m, p) = LogisticModel::fit(z.view(), &set.y, &config.logistic)?;
            (Model::Logistic(m), p)
        }
        Kind::Forest => {
            let n = config.forest.trees;
            progress(&format!(
                "fitting a forest of {n} trees on {} rows",
                set.len()
            ));
            let step = (n / 10).max(1);
            let weights = set.is_weighted().then_some(set.weight.as_slice());
            let (f, p) = Forest::fit(
                z.view(),
                &set.y,
                weights,
                &config.forest,
                config.seed,
                &|done| {
                    if done % step == 0 || done == n {
                        progress(&format!("  {done}/{n} trees"));
                    }
                },
            )?;
            (Model::Forest(f), p)
        }
    };
    Ok((scaler, model, Prior { fitted, population }))
}

/// The lowest threshold whose precision on `(scores, labels)` reaches `target` with at
/// least a handful of alarms; failing that, the threshold of the best F1. The threshold
/// sits halfway, in log-odds, between the last score alarmed and the next one below, so
/// a refitted model whose scores shift a little keeps the same side of the gap.
/// `weights` (one per row) make precision and recall count a row as that many.
pub fn choose_threshold(
    scores: &[f64],
    labels: &[bool],
    weights: Option<&[f64]>,
    target: f64,
) -> f64 {
    const MIN_ALARMS: usize = 10;
    let weight = |i: usize| weights.map_or(1.0, |w| w[i]);
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let positives: f64 = (0..labels.len()).filter(|&i| labels[i]).map(weight).sum();
    let positives = if positives > 0.0 { positives } else { 1.0 };
    let (mut tp, mut alarmed, mut best_f1, mut f1_cut, mut target_cut) =
        (0.0f64, 0.0f64, -1.0, 0, None);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        // Rows with equal scores stand or fall together.
        while i < order.len() && scores[order[i]] == s {
            if labels[order[i]] {
                tp += weight(order[i]);
            }
            alarmed += weight(order[i]);
            i += 1;
        }
        let precision = tp / alarmed;
        let recall = tp / positives;
        if i >= MIN_ALARMS && precision >= target {
            target_cut = Some(i);
        }
        let f1 = if tp == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        if f1 > best_f1 {
            best_f1 = f1;
            f1_cut = i;
        }
    }
    // `cut` rows are alarmed: the threshold lies between the last of them and the next.
    let cut = target_cut.unwrap_or(f1_cut).max(1);
    let last_in = scores[order[cut - 1]];
    match order.get(cut) {
        Some(&next) => {
            let logit = |p: f64| {
                let p = p.clamp(1e-9, 1.0 - 1e-9);
                (p / (1.0 - p)).ln()
            };
            crate::logistic::sigmoid((logit(last_in) + logit(scores[next])) / 2.0)
        }
        None => last_in,
    }
}
