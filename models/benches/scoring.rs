//! Scoring time per device (logistic and a 100-tree forest) and training time as the
//! data grows, on synthetic rows shaped like the feature schema.
//!
//! `cargo bench -p models --bench scoring`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use models::forest::{Forest, ForestParams};
use models::history::FeatureVector;
use models::labels::{DeviceOutcome, LabelledSet};
use models::logistic::{LogisticModel, LogisticParams};
use models::schema::FEATURE_COUNT;
use models::training::{self, Kind, TrainConfig};
use ndarray::Array2;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// `n` rows over 200 devices and 100 days; about 1 % fail, and their rows carry a shifted
/// signal in a few features, so trees grow as on real data.
fn synthetic(n: usize) -> LabelledSet {
    let mut rng = Pcg64Mcg::seed_from_u64(7);
    let devices = 200;
    let mut x = Array2::zeros((n, FEATURE_COUNT));
    let (mut y, mut device, mut t_ms) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let d = i % devices;
        let positive = d % 50 == 0 && rng.random_bool(0.5);
        for j in 0..FEATURE_COUNT {
            let shift = if positive && j % 5 == 0 { 1.5 } else { 0.0 };
            x[(i, j)] = rng.random::<f64>() + shift;
        }
        y.push(positive);
        device.push(d as u32);
        t_ms.push(1_767_225_600_000 + (i / devices) as u64 * 86_400_000);
    }
    LabelledSet {
        x,
        y,
        device,
        weight: vec![1.0; t_ms.len()],
        t_ms,
        devices: (0..devices)
            .map(|d| DeviceOutcome {
                id: format!("dev-{d:04}"),
                failed_at_ms: None,
                failure_mode: None,
                failed: d % 50 == 0,
                origin: 0,
            })
            .collect(),
        horizon_days: 14,
        source: "synthetic".into(),
        absent_features: Vec::new(),
    }
}

fn scoring(c: &mut Criterion) {
    let set = synthetic(20_000);
    let mut config = TrainConfig::new(Kind::Logistic, 14, 1);
    config.threshold_folds = 0;
    config.refit = false;
    let logistic = training::train(&set, &config, &|_| {}).expect("logistic");
    config.kind = Kind::Forest;
    config.forest.trees = 100;
    let forest = training::train(&set, &config, &|_| {}).expect("forest");
    let rows: Vec<FeatureVector> = (0..1000).map(|i| set.row(i)).collect();
    let mut group = c.benchmark_group("score_per_device");
    // A do-nothing pass over the same rows: the floor the scorers are measured against.
    group.bench_function("baseline_sum_features", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % rows.len();
            black_box(rows[i].0.iter().sum::<f64>())
        })
    });
    for (name, model) in [("logistic", &logistic), ("forest_100_trees", &forest)] {
        group.bench_function(name, |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % rows.len();
                black_box(model.score(black_box(&rows[i])))
            })
        });
    }
    group.bench_function("forest_explain_top5", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % rows.len();
            black_box(forest.explain(black_box(&rows[i]), 5))
        })
    });
    group.finish();
}

fn training_time(c: &mut Criterion) {
    let mut group = c.benchmark_group("train");
    group.sample_size(10);
    for n in [5_000, 20_000, 80_000] {
        let set = synthetic(n);
        let y = set.y.clone();
        group.bench_with_input(BenchmarkId::new("forest_20_trees", n), &set, |b, set| {
            let params = ForestParams {
                trees: 20,
                ..ForestParams::default()
            };
            b.iter(|| Forest::fit(set.x.view(), &y, None, &params, 1, &|_| {}).expect("fit"))
        });
        group.bench_with_input(BenchmarkId::new("logistic", n), &set, |b, set| {
            let params = LogisticParams::default();
            b.iter(|| LogisticModel::fit(set.x.view(), &y, &params).expect("fit"))
        });
    }
    group.finish();
}

criterion_group!(benches, scoring, training_time);
criterion_main!(benches);
