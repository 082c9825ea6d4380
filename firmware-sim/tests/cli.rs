//! The `firmware-sim` command on bad input: a clear error and a failing exit status.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_firmware-sim"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("FLEET_MQTT_URL")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_arguments_are_refused_with_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ds");
    let out = out.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (
            &["generate", "--devices", "0", "--out", out],
            "--devices must be at least 1",
        ),
        (
            &["generate", "--days", "0", "--out", out],
            "--days must be at least 1",
        ),
        (&["generate", "--tenant", "a/b", "--out", out], "--tenant"),
        (
            &["generate", "--sample-interval-s", "0", "--out", out],
            "sample_interval_s",
        ),
        (&["run", "--broker", "http://x:1"], "mqtt://host:port"),
    ];
    for (args, expected) in cases {
        let (ok, stderr) = run(args);
        assert!(!ok, "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let (ok, stderr) = run(&["run", "--broker", "mqtts://localhost:1"]);
    assert!(!ok && stderr.contains("--tls-ca"), "{stderr}");
    assert!(
        !std::path::Path::new(out).exists(),
        "nothing written on refusal"
    );
}
