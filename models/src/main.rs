//! `models`: train, evaluate and explain failure-risk models.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use models::artifact::ModelArtifact;
use models::evaluation::Evaluation;
use models::forest::ForestParams;
use models::history::FeatureVector;
use models::labels::{self, CsvColumns, LabelConfig, LabelledSet, TimeUnit};
use models::logistic::LogisticParams;
use models::rule::HandRule;
use models::schema::FEATURES;
use models::split::SplitConfig;
use models::training::{self, Kind, TrainConfig};

/// Failure-risk models: train on a simulated fleet or an operator's CSV, evaluate beside
/// a hand rule, explain a score.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a model and write its artifact (model, schema, scaler, threshold, metrics).
    Train(TrainArgs),
    /// Score a labelled data set with a model and report its metrics beside the hand rule.
    Evaluate(EvaluateArgs),
    /// Show a score and the features that raised it most.
    Explain(ExplainArgs),
}

/// Where labelled rows come from.
#[derive(Args)]
struct DataArgs {
    /// A `firmware-sim generate` output directory; give it more than once to merge
    /// several fleets, and with --csv to merge the field's rows too (each source split
    /// on its own time span).
    #[arg(long, required_unless_present = "csv")]
    data: Vec<PathBuf>,
    /// An operator's CSV: one row per device and time with features and a label, such
    /// as the `labels.csv` `cloud-ingest export-labels` writes.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// CSV: the device id column.
    #[arg(long, default_value = "device_id", requires = "csv")]
    id_col: String,
    /// CSV: the time column (ms since 1970 or RFC 3339, unless --time-unit says it
    /// counts something else).
    #[arg(long, default_value = "ts", requires = "csv")]
    time_col: String,
    /// CSV: what the time column counts: `epoch` (a moment: ms since 1970 or RFC
    /// 3339), a counter of `ms`, `s`, `min`, `h` or `d` from any origin, or `count`
    /// (cycles or anything else; one count stands for one day of the horizon).
    #[arg(long, value_enum, default_value = "epoch", requires = "csv")]
    time_unit: TimeUnit,
    /// CSV: the field delimiter: one character (`;`, `|`), or `tab`.
    #[arg(long, default_value = ",", value_parser = delimiter, requires = "csv")]
    delimiter: u8,
    /// CSV: the label column (1/0, true/false, yes/no): fails within the horizon.
    #[arg(long, default_value = "label", requires = "csv")]
    label_col: String,
    /// CSV: the feature columns, comma separated, each `feature` (a column of that
    /// name) or `feature=column`. Default: every schema feature, by its own name.
    /// Features left out take their missing value.
    #[arg(long, requires = "csv")]
    feature_cols: Option<String>,
    /// CSV: an optional column with the device's failure time (enables lead times).
    #[arg(long, requires = "csv")]
    failed_at_col: Option<String>,
    /// CSV: an optional column with the failure mode (enables per-mode recall).
    #[arg(long, requires = "csv")]
    mode_col: Option<String>,
    /// CSV: an optional column with each row's weight, the rows of the population it
    /// stands for (`weight` in export-labels: 1 / the share drawn for a random check).
    #[arg(long, requires = "csv")]
    weight_col: Option<String>,
    /// A row is failing when the device fails within this many days (simulated data:
    /// how rows are labelled; CSV: what the label column means, stored with the model).
    #[arg(long, default_value_t = 14)]
    horizon_days: u32,
    /// CSV: the horizon in the time column's unit (hours with `--time-unit h`, cycles
    /// with `count`), instead of --horizon-days; it must come to whole days.
    #[arg(long, requires = "csv", conflicts_with = "horizon_days")]
    horizon: Option<f64>,
    /// Simulated data: rows start after this many days of the window.
    #[arg(long, default_value_t = 7)]
    min_history_days: u32,
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Where to write the model artifact.
    #[arg(long)]
    out: PathBuf,
    /// Model kind.
    #[arg(long, value_enum, default_value = "forest")]
    kind: Kind,
    /// Seed of the validation split and the model: the same seed and data give the same model.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of devices held out for validation.
    #[arg(long, default_value_t = 0.25)]
    holdout_share: f64,
    /// Training rows end at this share of the time span; validation rows start a gap later.
    #[arg(long, default_value_t = 0.65)]
    train_until: f64,
    /// Days between training and validation rows (at least the horizon).
    #[arg(long)]
    gap_days: Option<u32>,
    /// The alarm threshold is the lowest score whose validation precision reaches this.
    #[arg(long, default_value_t = 0.78)]
    target_precision: f64,
    /// Keep the model fitted on the training split instead of refitting on all rows.
    #[arg(long)]
    no_refit: bool,
    /// Leave the probabilities uncalibrated (by default a Platt scaling on the log-odds
    /// is fitted on the out-of-fold scores, so a risk reads as a probability).
    #[arg(long)]
    no_calibration: bool,
    /// Device folds whose out-of-fold scores choose the threshold (below 2: the
    /// validation split chooses it).
    #[arg(long, default_value_t = 4)]
    threshold_folds: usize,
    /// Fit the threshold folds one after another instead of side by side: slower,
    /// but holding one fold's copy of the rows in memory instead of all of them.
    #[arg(long)]
    sequential_folds: bool,
    /// Forest: number of trees.
    #[arg(long, default_value_t = ForestParams::default().trees)]
    trees: usize,
    /// Forest: deepest split level.
    #[arg(long, default_value_t = ForestParams::default().max_depth)]
    max_depth: usize,
    /// Forest: least weight of rows in a leaf.
    #[arg(long, default_value_t = ForestParams::default().min_leaf_weight)]
    min_leaf_weight: f32,
    /// Forest: share of features each tree may split on.
    #[arg(long, default_value_t = ForestParams::default().feature_share)]
    feature_share: f64,
    /// Healthy rows per failing row: the forest's bootstrap draw; logistic replicates
    /// failing rows down to this ratio.
    #[arg(long)]
    neg_per_pos: Option<f64>,
    /// Logistic: L2 penalty.
    #[arg(long, default_value_t = LogisticParams::default().alpha)]
    alpha: f64,
    /// Logistic: iteration cap.
    #[arg(long, default_value_t = LogisticParams::default().max_iterations)]
    max_iterations: u64,
    /// Also write the validation evaluation here as JSON.
    #[arg(long)]
    report: Option<PathBuf>,
}

#[derive(Args)]
struct EvaluateArgs {
    /// The model artifact.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Alarm threshold (default: the model's own).
    #[arg(long)]
    threshold: Option<f64>,
    /// Also write every alarmed row as CSV here: device, time, risk, whether it was
    /// failing, its failure mode and the top three features.
    #[arg(long)]
    alarms: Option<PathBuf>,
}

#[derive(Args)]
struct ExplainArgs {
    /// The model artifact.
    #[arg(long)]
    model: PathBuf,
    /// A `firmware-sim generate` directory holding the device's telemetry.
    #[arg(long, requires = "device", conflicts_with = "features")]
    data: Option<PathBuf>,
    /// The device to explain.
    #[arg(long)]
    device: Option<String>,
    /// The moment to explain (ms since the epoch or RFC 3339; default: its last message).
    #[arg(long)]
    at: Option<String>,
    /// Or explain a feature vector given as a JSON object of feature name to value
    /// (features left out take their missing value).
    #[arg(long, required_unless_present = "data")]
    features: Option<String>,
    /// How many features to show.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Train(a) => train(a),
        Cmd::Evaluate(a) => evaluate(a),
        Cmd::Explain(a) => explain(a),
    }
}

/// Prints `devices read` at most once a second.
fn device_progress() -> impl Fn(usize) + Sync {
    let last = Mutex::new(Instant::now());
    move |n| {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= Duration::from_secs(1) {
            *last = Instant::now();
            eprintln!("  {n} devices read");
        }
    }
}

/// A delimiter flag: one ASCII character, or `tab`.
fn delimiter(s: &str) -> std::result::Result<u8, String> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() && s != "\"" => Ok(s.as_bytes()[0]),
        _ => Err(format!(
            "`{s}` is not a delimiter: one ASCII character such as `;` or `|`, or `tab`"
        )),
    }
}

fn load_rows(d: &DataArgs) -> Result<LabelledSet> {
    let started = Instant::now();
    let mut simulated: Option<LabelledSet> = None;
    for dir in &d.data {
        eprintln!("reading {}", dir.display());
        let config = LabelConfig {
            horizon_days: d.horizon_days,
            min_history_days: d.min_history_days,
        };
        let set = labels::from_simulation(dir, &config, &device_progress())
            .with_context(|| format!("reading the simulated data set {}", dir.display()))?;
        simulated = Some(match simulated {
            None => set,
            Some(before) => before.merge(set)?,
        });
    }
    let operator = if let Some(path) = &d.csv {
        let mut columns = CsvColumns::schema_named(&d.id_col, &d.time_col, &d.label_col);
        if let Some(list) = &d.feature_cols {
            columns.features = CsvColumns::parse_features(list)?;
        }
        columns.failed_at = d.failed_at_col.clone();
        columns.failure_mode = d.mode_col.clone();
        columns.weight = d.weight_col.clone();
        columns.time_unit = d.time_unit;
        columns.delimiter = d.delimiter;
        let horizon_days = match d.horizon {
            Some(n) => d.time_unit.horizon_days(n)?,
            None => d.horizon_days,
        };
        Some(
            labels::from_csv(path, &columns, horizon_days)
                .with_context(|| format!("reading {}", path.display()))?,
        )
    } else {
        None
    };
    let set = match (simulated, operator) {
        (Some(s), Some(o)) => s.merge(o)?,
        (Some(set), None) | (None, Some(set)) => set,
        (None, None) => bail!("give --data DIR or --csv FILE (or both, to merge them)"),
    };
    eprintln!(
        "{} rows ({} failing within {} days) from {} devices in {:.1} s",
        set.len(),
        set.positives(),
        set.horizon_days,
        set.devices.len(),
        started.elapsed().as_secs_f64()
    );
    if !set.absent_features.is_empty() {
        eprintln!(
            "features not in the data (missing values used): {}",
            set.absent_features.join(", ")
        );
    }
    Ok(set)
}

fn train(a: TrainArgs) -> Result<()> {
    for (name, v) in [
        ("--holdout-share", a.holdout_share),
        ("--train-until", a.train_until),
    ] {
        if !(v > 0.0 && v < 1.0) {
            bail!("{name} must be between 0 and 1, exclusive; got {v}");
        }
    }
    if !(a.target_precision > 0.0 && a.target_precision <= 1.0) {
        bail!(
            "--target-precision must be in (0, 1]; got {}",
            a.target_precision
        );
    }
    if a.trees == 0 || a.max_depth == 0 {
        bail!("--trees and --max-depth must be at least 1");
    }
    if !(a.feature_share > 0.0 && a.feature_share <= 1.0) {
        bail!("--feature-share must be in (0, 1]; got {}", a.feature_share);
    }
    if a.neg_per_pos.is_some_and(|n| n.is_nan() || n <= 0.0) {
        bail!("--neg-per-pos must be positive");
    }
    let set = load_rows(&a.data)?;
    let mut config = TrainConfig::new(a.kind, set.horizon_days, a.seed);
    config.split = SplitConfig {
        holdout_share: a.holdout_share,
        train_until: a.train_until,
        gap_days: a.gap_days.unwrap_or(set.horizon_days),
        seed: a.seed,
    };
    config.target_precision = a.target_precision;
    config.refit = !a.no_refit;
    config.calibrate = !a.no_calibration;
    config.threshold_folds = a.threshold_folds;
    config.parallel_folds = !a.sequential_folds;
    config.forest = ForestParams {
        trees: a.trees,
        max_depth: a.max_depth,
        min_leaf_weight: a.min_leaf_weight,
        feature_share: a.feature_share,
        neg_per_pos: a.neg_per_pos.unwrap_or(ForestParams::default().neg_per_pos),
    };
    config.logistic = LogisticParams {
        alpha: a.alpha,
        max_iterations: a.max_iterations,
        neg_per_pos: a
            .neg_per_pos
            .unwrap_or(LogisticParams::default().neg_per_pos),
    };
    let started = Instant::now();
    let artifact = training::train(&set, &config, &|line| eprintln!("{line}"))?;
    eprintln!("trained in {:.1} s", started.elapsed().as_secs_f64());
    artifact.save(&a.out)?;
    if let Some(report) = &a.report {
        std::fs::write(report, serde_json::to_vec_pretty(&artifact.validation)?)
            .with_context(|| format!("writing {}", report.display()))?;
    }
    println!("model {} written to {}", artifact.version, a.out.display());
    println!("validation (held-out devices, later time):");
    print!("{}", artifact.validation);
    Ok(())
}

fn evaluate(a: EvaluateArgs) -> Result<()> {
    let model = load_model(&a.model)?;
    let set = load_rows(&a.data)?;
    if set.horizon_days != model.training.horizon_days {
        eprintln!(
            "note: the model was trained for a {}-day horizon, these labels use {} days",
            model.training.horizon_days, set.horizon_days
        );
    }
    let threshold = a.threshold.unwrap_or(model.threshold);
    let raw: Vec<f64> = (0..set.len())
        .map(|i| model.raw_probability(&set.row(i)))
        .collect();
    let scores: Vec<f64> = raw.iter().map(|&p| model.calibration.apply(p)).collect();
    let evaluation = Evaluation::new(&set, &scores, threshold, &HandRule::default())
        .with_uncalibrated(&set, &raw);
    if let Some(path) = &a.alarms {
        write_alarms(path, &model, &set, &scores, threshold)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if a.json {
        let mut value = serde_json::to_value(&evaluation)?;
        value["model_version"] = model.version.clone().into();
        value["data"] = set.source.clone().into();
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("model {} on {}", model.version, set.source);
        print!("{evaluation}");
    }
    Ok(())
}

fn write_alarms(
    path: &Path,
    model: &ModelArtifact,
    set: &LabelledSet,
    scores: &[f64],
    threshold: f64,
) -> Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record([
        "device_id",
        "time",
        "risk",
        "failing",
        "failure_mode",
        "top_features",
    ])?;
    for (i, score) in scores.iter().enumerate().filter(|(_, s)| **s >= threshold) {
        let device = &set.devices[set.device[i] as usize];
        let top = model
            .explain(&set.row(i), 3)
            .top
            .iter()
            .map(|c| format!("{}={:.3}", c.feature, c.value))
            .collect::<Vec<_>>()
            .join(" ");
        w.write_record([
            device.id.as_str(),
            &format_ms(set.t_ms[i]),
            &format!("{score:.4}"),
            if set.y[i] { "1" } else { "0" },
            device.failure_mode.as_deref().unwrap_or(""),
            &top,
        ])?;
    }
    w.flush()?;
    Ok(())
}

fn explain(a: ExplainArgs) -> Result<()> {
    let model = load_model(&a.model)?;
    let (features, at) = if let Some(dir) = &a.data {
        let device = a.device.as_deref().unwrap_or_default();
        let at =
            a.at.as_deref()
                .map(|s| {
                    labels::parse_time(s)
                        .with_context(|| format!("--at `{s}` is neither ms nor RFC 3339"))
                })
                .transpose()?;
        let (history, at) = labels::device_history(dir, device, at)?;
        (history.features(protocol::Timestamp(at)), Some(at))
    } else {
        let text = a.features.as_deref().unwrap_or("{}");
        (parse_features(text)?, None)
    };
    let explanation = model.explain(&features, a.top);
    if a.json {
        let mut value = serde_json::to_value(&explanation)?;
        value["model_version"] = model.version.clone().into();
        if let Some(at) = at {
            value["at_ms"] = at.into();
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    if let (Some(device), Some(at)) = (&a.device, at) {
        println!("device {device} at {}", format_ms(at));
    }
    println!(
        "risk {:.3} ({}; threshold {:.3}, model {})",
        explanation.score.probability,
        if explanation.score.alarm {
            "alarm"
        } else {
            "no alarm"
        },
        model.threshold,
        model.version
    );
    println!("top contributing features:");
    for c in &explanation.top {
        println!(
            "  {:<32} {:>10.3} {:<7} {:+.4}",
            c.feature, c.value, c.unit, c.contribution
        );
    }
    Ok(())
}

fn parse_features(text: &str) -> Result<FeatureVector> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
        .context("--features must be a JSON object of feature name to number")?;
    let mut v = FeatureVector::missing();
    for (name, value) in map {
        let j = FEATURES
            .iter()
            .position(|f| f.name == name)
            .with_context(|| {
                format!(
                    "`{name}` is not a feature; known: {}",
                    FEATURES.map(|f| f.name).join(", ")
                )
            })?;
        v.0[j] = value
            .as_f64()
            .filter(|x| x.is_finite())
            .with_context(|| format!("feature `{name}`: {value} is not a finite number"))?;
    }
    Ok(v)
}

fn load_model(path: &Path) -> Result<ModelArtifact> {
    Ok(ModelArtifact::load(path)?)
}

fn format_ms(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or(ms.to_string(), |t| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
}
