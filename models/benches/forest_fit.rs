//! Growing the 100-tree forest on 20,000 rows, against scikit-learn's
//! `RandomForestClassifier(n_estimators=100, n_jobs=2)` on the same rows: this prints
//! the forest's time (median of three fits) and writes the rows as CSV for
//! `models/bench/forest_vs_sklearn.py`, which times scikit-learn on them.
//! `scripts/bench-forest.sh` runs both and prints the ratio.
//!
//! `cargo bench -p models --bench forest_fit [-- ROWS_CSV]`

use std::io::Write;
use std::time::Instant;

use models::forest::{Forest, ForestParams};
use models::labels::{DeviceOutcome, LabelledSet};
use models::schema::FEATURE_COUNT;
use models::training::{self, Kind, TrainConfig};
use ndarray::Array2;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;

const ROWS: usize = 20_000;

/// Rows shaped like the feature schema: about 2 % failing, whose rows carry a shifted
/// signal in every fifth feature, so trees grow as on real data.
fn rows() -> (Array2<f64>, Vec<bool>) {
    let mut rng = Pcg64Mcg::seed_from_u64(7);
    let mut x = Array2::zeros((ROWS, FEATURE_COUNT));
    let mut y = Vec::with_capacity(ROWS);
    for i in 0..ROWS {
        let positive = i % 50 == 0;
        for j in 0..FEATURE_COUNT {
            let shift = if positive && j % 5 == 0 { 1.0 } else { 0.0 };
            x[(i, j)] = rng.random::<f64>() + shift;
        }
        y.push(positive);
    }
    (x, y)
}

fn main() {
    let (x, y) = rows();
    // `cargo bench` passes `--bench`; a path is the CSV to write.
    if let Some(path) = std::env::args().skip(1).find(|a| !a.starts_with("--")) {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("the CSV"));
        for (i, label) in y.iter().enumerate() {
            let row: Vec<String> = x.row(i).iter().map(|v| format!("{v}")).collect();
            writeln!(f, "{},{}", row.join(","), u8::from(*label)).expect("a row");
        }
        eprintln!("rows written to {path}");
    }
    let params = ForestParams::default();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut times = Vec::new();
    let mut first = None;
    for _ in 0..3 {
        let started = Instant::now();
        let (forest, _) = Forest::fit(x.view(), &y, None, &params, 1, &|_| {}).expect("a forest");
        times.push(started.elapsed().as_secs_f64());
        // Every fit of the same rows and seed is the same forest, threads or not.
        match &first {
            None => first = Some(forest),
            Some(f) => assert_eq!(f, &forest, "the forest depends on the threads"),
        }
    }
    times.sort_by(f64::total_cmp);
    let forest = times[1];
    // Training end to end (4 threshold folds, the split model, the refit) on the same
    // rows as a fleet of 200 devices, the folds one after another and side by side.
    let set = fleet(&x, &y);
    let mut config = TrainConfig::new(Kind::Forest, 14, 1);
    let mut train = |parallel: bool| {
        config.parallel_folds = parallel;
        let started = Instant::now();
        let a = training::train(&set, &config, &|_| {}).expect("a model");
        (started.elapsed().as_secs_f64(), a.version)
    };
    let (sequential, v1) = train(false);
    let (parallel, v2) = train(true);
    assert_eq!(v1, v2, "the same model either way");
    eprintln!(
        "training: folds one after another {sequential:.3} s, side by side {parallel:.3} s \
         (side by side / one after another: {:.2}; {:.1} forest fits' time)",
        parallel / sequential,
        parallel / forest
    );
    // The last line is the forest's figure, which scripts/bench-forest.sh reads.
    println!(
        "forest: {} trees, depth <= {}, on {ROWS} rows x {FEATURE_COUNT} features, {threads} threads: {forest:.3} s (median of 3)",
        params.trees, params.max_depth
    );
}

/// The rows as a labelled set: 200 devices, a row a day each.
fn fleet(x: &Array2<f64>, y: &[bool]) -> LabelledSet {
    const DEVICES: usize = 200;
    let mut failed = [false; DEVICES];
    for (i, label) in y.iter().enumerate() {
        failed[i % DEVICES] |= *label;
    }
    LabelledSet {
        x: x.clone(),
        y: y.to_vec(),
        device: (0..ROWS).map(|i| (i % DEVICES) as u32).collect(),
        t_ms: (0..ROWS)
            .map(|i| 1_767_225_600_000 + (i / DEVICES) as u64 * 86_400_000)
            .collect(),
        weight: vec![1.0; ROWS],
        devices: (0..DEVICES)
            .map(|d| DeviceOutcome {
                id: format!("dev-{d:04}"),
                failed_at_ms: None,
                failure_mode: None,
                failed: failed[d],
                origin: 0,
            })
            .collect(),
        horizon_days: 14,
        source: "bench".into(),
        absent_features: Vec::new(),
    }
}
