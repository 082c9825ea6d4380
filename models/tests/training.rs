//! Splitting, the CSV path, training, artifacts and evaluation through the public API.

use std::io::Write;

use models::artifact::{ArtifactError, ModelArtifact};
use models::evaluation::{average_precision, roc_auc};
use models::labels::{self, CsvColumns, DeviceOutcome, LabelledSet};
use models::schema::{idx, FEATURES, FEATURE_COUNT};
use models::split::{split, SplitConfig};
use models::training::{self, choose_threshold, Kind, TrainConfig};
use ndarray::Array2;

const T0: u64 = 1_767_225_600_000;
const DAY: u64 = 86_400_000;

/// 60 devices over 90 days; every fifth fails (half of them early, half late in the
/// window), and its state of health falls and its brown-outs rise in the two weeks
/// before.
fn fleet() -> LabelledSet {
    let mut rows = Vec::new();
    let mut devices = Vec::new();
    for d in 0..60u64 {
        let failed_at = (d % 5 == 0).then(|| {
            let early = d % 10 == 0;
            T0 + (if early { 25 } else { 76 } + d % 13) * DAY
        });
        devices.push(DeviceOutcome {
            id: format!("dev-{d:03}"),
            failed_at_ms: failed_at,
            failure_mode: failed_at.map(|_| "battery_wear".to_string()),
            failed: failed_at.is_some(),
            origin: 0,
        });
        for day in 1..=90u64 {
            let t = T0 + day * DAY;
            if failed_at.is_some_and(|f| f <= t) {
                break;
            }
            let days_left = failed_at.map(|f| (f - t) / DAY);
            let mut v = [0.0; FEATURE_COUNT];
            for (j, f) in FEATURES.iter().enumerate() {
                v[j] = f.missing;
            }
            let warn = days_left.is_some_and(|l| l <= 14);
            // Some noise so the classes overlap a little.
            let noise = ((d * 31 + day * 17) % 10) as f64 / 10.0;
            v[idx::SOH] = if warn {
                75.0 - noise * 10.0
            } else {
                92.0 - noise * 14.0
            };
            v[idx::BROWN_OUTS_7D] = if warn { 1.0 + noise } else { noise * 0.3 };
            v[idx::HAS_BATTERY] = 1.0;
            rows.push((d as u32, t, v, days_left.is_some_and(|l| l <= 14)));
        }
    }
    let mut x = Array2::zeros((rows.len(), FEATURE_COUNT));
    for (i, r) in rows.iter().enumerate() {
        for j in 0..FEATURE_COUNT {
            x[(i, j)] = r.2[j];
        }
    }
    LabelledSet {
        x,
        y: rows.iter().map(|r| r.3).collect(),
        device: rows.iter().map(|r| r.0).collect(),
        t_ms: rows.iter().map(|r| r.1).collect(),
        weight: vec![1.0; rows.len()],
        devices,
        horizon_days: 14,
        source: "test fleet".into(),
        absent_features: Vec::new(),
    }
}

#[test]
fn split_keeps_devices_apart_and_the_future_out() {
    let set = fleet();
    let config = SplitConfig::for_horizon(14, 3);
    let s = split(&set, &config);
    assert!(!s.train.is_empty() && !s.validation.is_empty());
    for &i in &s.train {
        assert!(
            !s.held_out[set.device[i] as usize],
            "a training row from a held-out device"
        );
        assert!(
            set.t_ms[i] < s.split_at_ms,
            "a training row after the split"
        );
    }
    for &i in &s.validation {
        assert!(
            s.held_out[set.device[i] as usize],
            "a validation row from a training device"
        );
        assert!(
            set.t_ms[i] >= s.split_at_ms + 14 * DAY,
            "a validation row inside the gap"
        );
    }
    // Failing devices are held out in their share too.
    let failing_held = (0..set.devices.len())
        .filter(|&d| s.held_out[d] && set.devices[d].failed)
        .count();
    assert_eq!(failing_held, 3, "a quarter of the 12 failing devices");
    // The same seed gives the same split; another seed another.
    assert_eq!(split(&set, &config), s);
    assert_ne!(
        split(&set, &SplitConfig::for_horizon(14, 4)).held_out,
        s.held_out
    );
}

fn train(kind: Kind) -> ModelArtifact {
    let mut config = TrainConfig::new(kind, 14, 1);
    config.forest.trees = 15;
    training::train(&fleet(), &config, &|_| {}).expect("trains")
}

#[test]
fn both_kinds_rank_failing_rows_high_and_are_deterministic() {
    let set = fleet();
    for kind in [Kind::Logistic, Kind::Forest] {
        let model = train(kind);
        let scores: Vec<f64> = (0..set.len())
            .map(|i| model.probability(&set.row(i)))
            .collect();
        let auc = roc_auc(&scores, &set.y);
        assert!(auc > 0.9, "{kind:?}: AUC {auc}");
        // A clearly failing row scores above a clearly healthy one (pitfall 21: linfa's
        // positive class is the frequent one, so orientation has to be checked).
        let i_fail = (0..set.len()).find(|&i| set.y[i]).unwrap();
        let i_ok = (0..set.len()).find(|&i| !set.y[i]).unwrap();
        assert!(scores[i_fail] > scores[i_ok], "{kind:?}");
        // Same data, settings and seed: the same model.
        let again = train(kind);
        assert_eq!(again.model, model.model, "{kind:?} is deterministic");
        assert_eq!(again.version, model.version);
        // The explanation names the features the signal is in.
        let top = model.explain(&set.row(i_fail), 3).top;
        assert!(
            top.iter()
                .any(|c| c.feature == "soh_pct" || c.feature == "brown_outs_per_day_7d"),
            "{kind:?}: {top:?}"
        );
        assert!(top
            .windows(2)
            .all(|w| w[0].contribution >= w[1].contribution));
    }
}

#[test]
fn artifact_round_trips_and_refuses_another_schema() {
    let model = train(Kind::Forest);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.json");
    model.save(&path).unwrap();
    let loaded = ModelArtifact::load(&path).unwrap();
    assert_eq!(loaded, model);
    let row = fleet().row(0);
    assert_eq!(loaded.probability(&row), model.probability(&row));

    // A model trained on another feature list.
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json["schema"]["features"][0] = "reboots_per_fortnight".into();
    json["schema"]["fingerprint"] = "0123456789abcdef".into();
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    let err = ModelArtifact::load(&path).unwrap_err();
    assert!(matches!(err, ArtifactError::SchemaMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("unexpected_reboots_per_day_1d") && text.contains("retrain"),
        "{text}"
    );

    // Another artifact format.
    json["format"] = 99.into();
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    assert!(matches!(
        ModelArtifact::load(&path).unwrap_err(),
        ArtifactError::Format { found: 99, .. }
    ));

    // A damaged tree.
    let mut json: serde_json::Value = serde_json::to_value(&model).unwrap();
    json["model"]["trees"][0]["nodes"][0][2] = 100_000.into();
    std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
    assert!(matches!(
        ModelArtifact::load(&path).unwrap_err(),
        ArtifactError::Damaged { .. }
    ));
}

#[test]
fn the_bundled_model_loads_and_scores() {
    let model = ModelArtifact::bundled().expect("the committed model matches this build's schema");
    let healthy = models::FeatureVector::missing();
    let mut failing = healthy;
    failing.0[idx::SOH] = 70.0;
    failing.0[idx::BROWN_OUTS_7D] = 3.0;
    failing.0[idx::UNEXPECTED_REBOOTS_1D] = 4.0;
    failing.0[idx::UNEXPECTED_REBOOTS_7D] = 3.0;
    failing.0[idx::HAS_BATTERY] = 1.0;
    assert!(model.probability(&failing) > model.probability(&healthy));
}

#[test]
fn csv_rows_are_read_by_the_named_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.csv");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "serial,when,fails,health,restarts,failed").unwrap();
    writeln!(f, "b-2,2026-01-02T00:00:00Z,0,95,,").unwrap();
    writeln!(f, "a-1,1767312000000,1,71.5,4,2026-01-05T00:00:00Z").unwrap();
    writeln!(f, "a-1,1767398400000,true,70,5,2026-01-05T00:00:00Z").unwrap();
    drop(f);
    let mut columns = CsvColumns::schema_named("serial", "when", "fails");
    columns.features =
        CsvColumns::parse_features("soh_pct=health, unexpected_reboots_per_day_1d=restarts")
            .unwrap();
    columns.failed_at = Some("failed".into());
    let set = labels::from_csv(&path, &columns, 14).unwrap();
    assert_eq!(set.len(), 3);
    assert_eq!(set.y, vec![false, true, true]);
    assert_eq!(
        set.devices
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>(),
        vec!["a-1", "b-2"]
    );
    assert_eq!(set.device, vec![1, 0, 0]);
    assert_eq!(set.t_ms[0], 1_767_312_000_000);
    assert_eq!(set.devices[0].failed_at_ms, Some(1_767_571_200_000));
    let r = set.row(0);
    assert_eq!(r.get("soh_pct"), Some(95.0));
    assert_eq!(
        r.get("unexpected_reboots_per_day_1d"),
        Some(0.0),
        "empty cell: missing value"
    );
    assert_eq!(set.row(1).get("unexpected_reboots_per_day_1d"), Some(4.0));
    assert_eq!(
        r.get("device_age_days"),
        Some(365.0),
        "absent feature: missing value"
    );
    assert_eq!(set.absent_features.len(), FEATURE_COUNT - 2);

    // Errors name the line and the column.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "serial,when,fails,health\nx,1767312000000,maybe,90\n").unwrap();
    let mut columns = CsvColumns::schema_named("serial", "when", "fails");
    columns.features = CsvColumns::parse_features("soh_pct=health").unwrap();
    let err = labels::from_csv(&bad, &columns, 14)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(":2:") && err.contains("fails") && err.contains("maybe"),
        "{err}"
    );
    std::fs::write(&bad, "serial,when,fails\nx,1767312000000,1\n").unwrap();
    let err = labels::from_csv(&bad, &columns, 14)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no column `health`"), "{err}");
    assert!(
        CsvColumns::parse_features("soh").is_err(),
        "unknown feature names are refused"
    );
}

#[test]
fn ranking_metrics_on_hand_computed_examples() {
    let labels = [false, true, false, true];
    // Perfect, reversed and tied rankings.
    assert_eq!(roc_auc(&[0.1, 0.9, 0.2, 0.8], &labels), 1.0);
    assert_eq!(roc_auc(&[0.9, 0.1, 0.8, 0.2], &labels), 0.0);
    assert_eq!(roc_auc(&[0.5; 4], &labels), 0.5);
    // One of four pairs misordered.
    assert_eq!(roc_auc(&[0.1, 0.9, 0.7, 0.6], &labels), 0.75);
    // Ranked: 0.9 (pos), 0.7 (neg), 0.6 (pos): AP = 1/2·1 + 1/2·2/3.
    let ap = average_precision(&[0.1, 0.9, 0.7, 0.6], &labels);
    assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-12, "{ap}");
    // 20 rows: the top 10 hold 9 failing rows, then only healthy ones.
    let scores: Vec<f64> = (0..20).map(|i| 1.0 - i as f64 / 20.0).collect();
    let labels: Vec<bool> = (0..20).map(|i| i < 10 && i != 4).collect();
    let t = choose_threshold(&scores, &labels, None, 0.85);
    // Lowest cut with precision >= 0.85 over at least 10 alarms: after the 10th row
    // (0.55), halfway in log-odds to the 11th (0.5).
    let logit = |p: f64| (p / (1.0 - p)).ln();
    let expected = 1.0 / (1.0 + (-(logit(0.55) + logit(0.5)) / 2.0).exp());
    assert!((t - expected).abs() < 1e-12, "{t} vs {expected}");
    assert!(t < scores[9] && t > scores[10]);
}

#[test]
fn evaluation_reports_lead_times_and_the_hand_rule() {
    let set = fleet();
    let model = train(Kind::Logistic);
    let scores: Vec<f64> = (0..set.len())
        .map(|i| model.probability(&set.row(i)))
        .collect();
    let e =
        models::evaluation::Evaluation::new(&set, &scores, model.threshold, &Default::default());
    let json = serde_json::to_value(&e).unwrap();
    for key in [
        "roc_auc",
        "pr_auc",
        "precision",
        "recall",
        "lead_time_days_median",
        "brier",
    ] {
        assert!(json[key].is_number(), "{key}");
        assert!(json["baseline"][key].is_number(), "baseline.{key}");
    }
    assert_eq!(e.failed_devices, 12);
    // Alarms begin within the 14 warning days, so leads are at most 14 days.
    let lead = e.model.lead_time_days_median.unwrap();
    assert!((1.0..=14.0).contains(&lead), "{lead}");
    assert_eq!(e.recall_by_mode["battery_wear"].devices, 12);
    // The rule (health below 80 %) fires on every warning row here, and on no other.
    assert_eq!(e.baseline.as_ref().unwrap().recall, 1.0);
    assert_eq!(
        e.reliability.iter().map(|b| b.rows).sum::<usize>(),
        set.len()
    );
}

/// `set` with row `i` written `times` times, for comparing a weight with duplicates.
fn duplicated(scores: &[f64], labels: &[bool], weights: &[u32]) -> (Vec<f64>, Vec<bool>) {
    let mut s = Vec::new();
    let mut l = Vec::new();
    for i in 0..scores.len() {
        for _ in 0..weights[i] {
            s.push(scores[i]);
            l.push(labels[i]);
        }
    }
    (s, l)
}

#[test]
fn a_rows_weight_counts_as_that_many_rows() {
    use models::calibration::{brier, weighted_brier, Calibration};
    use models::evaluation::{weighted_average_precision, weighted_roc_auc, Weighted};
    let scores = [
        0.05, 0.1, 0.1, 0.2, 0.35, 0.4, 0.6, 0.62, 0.8, 0.9, 0.3, 0.15,
    ];
    let labels = [
        false, false, true, false, false, true, false, true, true, true, false, false,
    ];
    let whole = [3, 1, 2, 1, 4, 1, 1, 1, 2, 1, 5, 1];
    let w: Vec<f64> = whole.iter().map(|&n| f64::from(n)).collect();
    let (ds, dl) = duplicated(&scores, &labels, &whole);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(close(
        weighted_roc_auc(&scores, &labels, &w),
        roc_auc(&ds, &dl)
    ));
    assert!(close(
        weighted_average_precision(&scores, &labels, &w),
        average_precision(&ds, &dl)
    ));
    assert!(close(weighted_brier(&scores, &labels, &w), brier(&ds, &dl)));
    // Unit weights give the plain figures, and weights change them.
    let ones = vec![1.0; scores.len()];
    assert!(close(
        weighted_roc_auc(&scores, &labels, &ones),
        roc_auc(&scores, &labels)
    ));
    assert!(!close(
        weighted_roc_auc(&scores, &labels, &w),
        roc_auc(&scores, &labels)
    ));
    let c = Calibration::fit(&scores, &labels, Some(&w));
    let d = Calibration::fit(&ds, &dl, None);
    assert!(close(c.a, d.a) && close(c.b, d.b), "{c:?} vs {d:?}");
    assert_eq!(
        choose_threshold(&scores, &labels, Some(&w), 0.6),
        choose_threshold(&ds, &dl, None, 0.6)
    );
    let at = Weighted::of(&scores, &labels, &w, 0.5);
    // Alarms at 0.6, 0.62, 0.8 (twice), 0.9: four of five weight fail.
    assert!(close(at.precision, 4.0 / 5.0), "{at:?}");
    assert!(close(at.population, 23.0), "{at:?}");
}

#[test]
fn a_weight_column_is_read_and_a_bad_weight_refused_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labels.csv");
    std::fs::write(
        &path,
        "device_id,ts,label,weight\na,1767312000000,1,1\nb,1767312000000,0,50\n",
    )
    .unwrap();
    let mut columns = CsvColumns::schema_named("device_id", "ts", "label");
    columns.features = Vec::new();
    columns.weight = Some("weight".into());
    let set = labels::from_csv(&path, &columns, 14).unwrap();
    assert_eq!(set.weight, vec![1.0, 50.0]);
    assert!(set.is_weighted());
    for bad in ["0", "-2", "x", ""] {
        std::fs::write(
            &path,
            format!("device_id,ts,label,weight\na,1767312000000,1,1\nb,1767312000000,0,{bad}\n"),
        )
        .unwrap();
        let err = labels::from_csv(&path, &columns, 14)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":3:") && err.contains("weight"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn merged_sets_keep_their_devices_apart_and_split_on_their_own_spans() {
    let sim = fleet();
    // A second source a year later, reusing some ids.
    let mut field = fleet();
    field.t_ms.iter_mut().for_each(|t| *t += 365 * DAY);
    field.weight.iter_mut().step_by(3).for_each(|w| *w = 20.0);
    field.source = "field".into();
    let (n_sim, n_field) = (sim.len(), field.len());
    let merged = sim.merge(field).unwrap();
    assert_eq!(merged.len(), n_sim + n_field);
    assert_eq!(merged.devices.len(), 120, "same ids, different devices");
    assert!(merged.devices.iter().any(|d| d.id == "dev-000@1"));
    assert!(merged.is_weighted());
    let mut sorted = merged.devices.clone();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(sorted, merged.devices, "devices stay sorted by id");
    let parts = split(&merged, &SplitConfig::for_horizon(14, 1));
    for origin in [0, 1] {
        let of = |rows: &[usize]| {
            rows.iter()
                .filter(|&&r| merged.devices[merged.device[r] as usize].origin == origin)
                .count()
        };
        assert!(
            of(&parts.train) > 0 && of(&parts.validation) > 0,
            "source {origin} trains and validates: {} / {}",
            of(&parts.train),
            of(&parts.validation)
        );
    }
    // A weighted set trains the forest, and the logistic model says it cannot.
    let config = TrainConfig::new(Kind::Forest, 14, 1);
    let a = training::train(&merged, &config, &|_| {}).unwrap();
    assert!(a.validation.weighted.is_some(), "weighted figures reported");
    let err = training::train(&merged, &TrainConfig::new(Kind::Logistic, 14, 1), &|_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("weighted"), "{err}");
    let mut other = fleet();
    other.horizon_days = 7;
    assert!(fleet().merge(other).is_err(), "horizons must agree");
}
