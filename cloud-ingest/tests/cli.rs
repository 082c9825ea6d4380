//! The binary refuses bad configuration with a message that names the problem, and
//! every subcommand answers `--help`.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cloud-ingest"))
        .args(args)
        .env_remove("FLEET_CONFIG")
        .output()
        .expect("running cloud-ingest");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn bad_configuration_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "[mqtt]\nurll = \"mqtt://x:1\"\n").unwrap();
    let (ok, text) = run(&[
        "serve",
        "--config",
        typo.to_str().unwrap(),
        "--print-config",
    ]);
    assert!(!ok && text.contains("urll"), "{text}");

    let (ok, text) = run(&["serve", "--mqtt-url", "tcp://x", "--print-config"]);
    assert!(!ok && text.contains("mqtt://"), "{text}");

    let (ok, text) = run(&["serve", "--influx-url", "http://x:8086", "--print-config"]);
    assert!(!ok && text.contains("--influx-org"), "{text}");

    let (ok, text) = run(&["serve", "--config", "/nonexistent/ingest.toml"]);
    assert!(!ok && text.contains("/nonexistent/ingest.toml"), "{text}");

    // Flags override the file; the effective configuration prints.
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[mqtt]\nurl = \"mqtt://a:1\"\n[policy]\ncooldown_days = 3\n",
    )
    .unwrap();
    let (ok, text) = run(&[
        "serve",
        "--config",
        good.to_str().unwrap(),
        "--mqtt-url",
        "mqtt://b:2",
        "--print-config",
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("url = \"mqtt://b:2\"") && text.contains("cooldown_days = 3"),
        "{text}"
    );
}

#[test]
fn every_subcommand_answers_help() {
    for sub in [
        &["--help"][..],
        &["demo", "--help"],
        &["serve", "--help"],
        &["tickets", "--help"],
    ] {
        let (ok, text) = run(sub);
        assert!(ok && text.contains("Usage:"), "{sub:?}: {text}");
    }
    let (_, text) = run(&["serve", "--help"]);
    assert!(text.contains("FLEET_STORE_URL"), "{text}");
}
