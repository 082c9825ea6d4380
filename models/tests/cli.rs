//! The `models` binary: train and evaluate on an operator's CSV, explain, bad input.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

fn models(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_models"))
        .args(args)
        .output()
        .expect("runs")
}

/// 80 devices over 60 days; every eighth fails and shows low health and restarts in its
/// last two weeks.
fn write_csv(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    writeln!(f, "device,day,fails_14d,soh,reboots,failed_at").unwrap();
    let t0: u64 = 1_767_225_600_000;
    for d in 0..80u64 {
        let fail_day = (d % 8 == 0).then_some(20 + d % 35);
        for day in 1..60u64 {
            if fail_day.is_some_and(|f| day >= f) {
                break;
            }
            let warn = fail_day.is_some_and(|f| f - day <= 14);
            let noise = ((d * 7 + day * 3) % 10) as f64;
            let (soh, reboots) = if warn {
                (72.0 + noise, 2.0 + noise / 5.0)
            } else {
                (85.0 + noise, noise / 10.0)
            };
            let failed_at = fail_day
                .map(|f| (t0 + f * 86_400_000).to_string())
                .unwrap_or_default();
            writeln!(
                f,
                "d{d},{},{},{soh},{reboots},{failed_at}",
                t0 + day * 86_400_000,
                u8::from(warn)
            )
            .unwrap();
        }
    }
}

#[test]
fn train_evaluate_and_explain_from_a_csv() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("fleet.csv");
    write_csv(&csv);
    let model = dir.path().join("model.json");
    let cols = [
        "--csv",
        csv.to_str().unwrap(),
        "--id-col",
        "device",
        "--time-col",
        "day",
        "--label-col",
        "fails_14d",
        "--feature-cols",
        "soh_pct=soh,unexpected_reboots_per_day_1d=reboots",
        "--failed-at-col",
        "failed_at",
    ];
    let mut args = vec!["train", "--out", model.to_str().unwrap(), "--trees", "10"];
    args.extend(cols);
    let out = models(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("model forest-") && stdout.contains("ROC AUC"),
        "{stdout}"
    );

    let mut args = vec!["evaluate", "--model", model.to_str().unwrap(), "--json"];
    args.extend(cols);
    let out = models(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "roc_auc",
        "pr_auc",
        "precision",
        "recall",
        "lead_time_days_median",
        "brier",
    ] {
        assert!(json[key].is_number(), "{key}: {json}");
        assert!(json["baseline"].get(key).is_some(), "baseline.{key}");
    }
    assert!(
        json["roc_auc"].as_f64().unwrap() > 0.9,
        "{}",
        json["roc_auc"]
    );
    assert!(json["top_k"].is_array() && json["reliability"].is_array());

    let out = models(&[
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--features",
        r#"{"soh_pct": 70, "unexpected_reboots_per_day_1d": 4}"#,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["score"]["alarm"], true, "{json}");
    let top: Vec<&str> = json["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["feature"].as_str().unwrap())
        .collect();
    assert!(
        top.contains(&"soh_pct") || top.contains(&"unexpected_reboots_per_day_1d"),
        "{top:?}"
    );

    // Bad input: clear messages, non-zero exits.
    let out = models(&[
        "explain",
        "--model",
        model.to_str().unwrap(),
        "--features",
        r#"{"soh": 70}"#,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`soh` is not a feature"));
    std::fs::write(dir.path().join("old.json"), br#"{"format": 0}"#).unwrap();
    let out = models(&[
        "evaluate",
        "--model",
        dir.path().join("old.json").to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("artifact format 0"));
    let out = models(&[
        "train",
        "--out",
        "x.json",
        "--csv",
        csv.to_str().unwrap(),
        "--id-col",
        "device",
        "--time-col",
        "day",
        "--label-col",
        "nope",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no column `nope`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_command_answers_help() {
    for cmd in [
        vec!["--help"],
        vec!["train", "--help"],
        vec!["evaluate", "--help"],
        vec!["explain", "--help"],
    ] {
        let out = models(&cmd);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    }
}

/// A run-to-failure set as outside data sets come: semicolons, a cycle counter from 1
/// per unit, a sensor the schema does not name mapped onto one it does, and no state of
/// health or restarts (so no hand rule).
fn write_cycles(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    writeln!(f, "unit;cycle;rul_le_10;vibration").unwrap();
    for u in 0..60u64 {
        let life = 60 + (u * 7) % 40;
        for c in 1..=life {
            let left = life - c;
            let noise = ((u * 13 + c * 5) % 10) as f64 / 10.0;
            let vib = if left <= 10 { 6.0 + noise } else { 1.0 + noise };
            writeln!(f, "u{u};{c};{};{vib}", u8::from(left <= 10)).unwrap();
        }
    }
}

#[test]
fn a_run_to_failure_csv_with_cycles_and_semicolons_trains() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("cycles.csv");
    write_cycles(&csv);
    let model = dir.path().join("model.json");
    let (csv, model) = (csv.to_str().unwrap(), model.to_str().unwrap());
    // `models CMD` on the set, with `extra` flags.
    let run = |cmd: &str, extra: &[&str]| {
        let base = [
            cmd,
            "--csv",
            csv,
            "--id-col",
            "unit",
            "--time-col",
            "cycle",
            "--label-col",
            "rul_le_10",
            "--feature-cols",
            "temp_max_c_1d=vibration",
        ];
        let out = models(&[&base[..], extra].concat());
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out, err)
    };

    // Split on commas, the file is one column: the error says which flag fixes it.
    let (out, err) = run("train", &["--out", model]);
    assert!(!out.status.success());
    assert!(err.contains("--delimiter"), "{err}");

    // Read as ms since 1970, a hundred cycles span a tenth of a second: the error says so.
    let (out, err) = run("train", &["--delimiter", ";", "--out", model]);
    assert!(!out.status.success());
    assert!(
        err.contains("--time-unit") && err.contains("0.1 s"),
        "{err}"
    );

    // A horizon that is no whole number of days is refused by name; so is a bad delimiter.
    let (out, err) = run(
        "train",
        &[
            "--delimiter",
            ";",
            "--time-unit",
            "h",
            "--horizon",
            "10",
            "--out",
            model,
        ],
    );
    assert!(!out.status.success());
    assert!(err.contains("whole number of days"), "{err}");
    let (out, err) = run("train", &["--delimiter", ";;", "--out", model]);
    assert!(!out.status.success());
    assert!(err.contains("not a delimiter"), "{err}");

    // Counted in cycles with a ten-cycle horizon, it trains; the horizon is stored.
    let good = [
        "--delimiter",
        ";",
        "--time-unit",
        "count",
        "--horizon",
        "10",
    ];
    let (out, err) = run(
        "train",
        &[&good[..], &["--out", model, "--trees", "20"]].concat(),
    );
    assert!(out.status.success(), "{err}");
    let artifact: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model).unwrap()).unwrap();
    assert_eq!(artifact["training"]["horizon_days"], 10);
    let (out, err) = run(
        "evaluate",
        &[&good[..], &["--model", model, "--json"]].concat(),
    );
    assert!(out.status.success(), "{err}");
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(e["roc_auc"].as_f64().unwrap() > 0.9, "{e}");
    // The hand rule reads state of health and restarts, which this data has not.
    assert!(e["baseline"].is_null(), "{e}");
    assert!(e["baseline_rule"]
        .as_str()
        .unwrap()
        .starts_with("not reported"));
    for key in ["ece", "brier", "brier_uncalibrated"] {
        assert!(e[key].as_f64().is_some(), "{key}: {e}");
    }
    let (out, _) = run("evaluate", &[&good[..], &["--model", model]].concat());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("calibration: expected calibration error"),
        "{text}"
    );
}

#[test]
fn a_weight_column_trains_and_evaluates_weighted() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("fleet.csv");
    write_csv(&plain);
    // Every healthy device `d7`, `d15`, ... was a random check standing for 40 devices.
    let text = std::fs::read_to_string(&plain).unwrap();
    let mut lines = text.lines();
    let mut weighted = format!("{},weight\n", lines.next().unwrap());
    for l in lines {
        let id: u64 = l[1..l.find(',').unwrap()].parse().unwrap();
        let w = if id % 8 == 7 { 40 } else { 1 };
        weighted.push_str(&format!("{l},{w}\n"));
    }
    let csv = dir.path().join("weighted.csv");
    std::fs::write(&csv, weighted).unwrap();
    let model = dir.path().join("model.json");
    let cols = [
        "--csv",
        csv.to_str().unwrap(),
        "--id-col",
        "device",
        "--time-col",
        "day",
        "--label-col",
        "fails_14d",
        "--feature-cols",
        "soh_pct=soh,unexpected_reboots_per_day_1d=reboots",
        "--weight-col",
        "weight",
    ];
    let mut args = vec!["train", "--out", model.to_str().unwrap(), "--trees", "10"];
    args.extend(cols);
    let out = models(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let mut args = vec!["evaluate", "--model", model.to_str().unwrap(), "--json"];
    args.extend(cols);
    let out = models(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let w = &json["weighted"];
    let rows = json["rows"].as_f64().unwrap();
    assert!(w["population"].as_f64().unwrap() > rows * 2.0, "{w}");
    assert!(w["roc_auc"].as_f64().unwrap() > 0.8, "{w}");
    // Unweighted, the figures carry no `weighted` block.
    let out = models(&[
        "evaluate",
        "--model",
        model.to_str().unwrap(),
        "--json",
        "--csv",
        plain.to_str().unwrap(),
        "--id-col",
        "device",
        "--time-col",
        "day",
        "--label-col",
        "fails_14d",
        "--feature-cols",
        "soh_pct=soh,unexpected_reboots_per_day_1d=reboots",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json.get("weighted").is_none(), "{json}");
    // The logistic model refuses weighted rows by name; a missing column is named.
    let mut args = vec!["train", "--out", "x.json", "--kind", "logistic"];
    args.extend(cols);
    let out = models(&args);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("weighted"));
    let mut args = vec!["train", "--out", "x.json"];
    args.extend(&cols[..10]);
    args.extend(["--weight-col", "w"]);
    let out = models(&args);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no column `w`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
