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
