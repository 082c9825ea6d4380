//! The `fleet-protocol` binary as a user runs it: exit codes and messages for good and
//! bad input.
#![cfg(feature = "cli")]

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleet-protocol"))
        .args(args)
        .env_remove("LOG_FORMAT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fleet-protocol");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Splits `examples` output into (topic, payload) pairs.
fn examples() -> Vec<(String, String)> {
    let out = run(&["examples"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .split("# ")
        .filter(|b| !b.is_empty())
        .map(|block| {
            let (head, body) = block.split_once('\n').unwrap();
            let topic = head.split(": ").nth(1).unwrap().split(' ').next().unwrap();
            (topic.to_owned(), body.to_owned())
        })
        .collect()
}

#[test]
fn every_printed_example_passes_check() {
    let all = examples();
    assert_eq!(all.len(), protocol::examples::all().len());
    for (topic, payload) in all {
        let out = run(&["check", "--topic", &topic], payload.as_bytes());
        assert_eq!(out.status.code(), Some(0), "{topic}: {}", stdout(&out));
        assert!(stdout(&out).starts_with("ok: "), "{}", stdout(&out));
    }
}

#[test]
fn a_rejected_payload_exits_1_with_the_reason() {
    let (topic, payload) = examples()
        .into_iter()
        .find(|(t, _)| t.ends_with("/heartbeat"))
        .unwrap();
    let bad = payload.replace("\"soc_end_pct\": 41.5", "\"soc_end_pct\": 141.5");
    let out = run(&["check", "--topic", &topic], bad.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out).trim(),
        "rejected (out_of_range): field `body.battery.soc_end_pct` is 141.5, outside 0..=100 %"
    );

    let out = run(
        &["check", "--topic", "fleet/acme/dev-1/telemetry"],
        payload.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("rejected (bad_topic)"),
        "{}",
        stdout(&out)
    );

    let out = run(
        &["check", "--topic", &topic, "--max-bytes", "10"],
        payload.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("rejected (too_large)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn usage_errors_exit_2_and_say_what_is_wrong() {
    let out = run(
        &[
            "check",
            "--topic",
            "fleet/a/d/event",
            "/no/such/payload.json",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("reading /no/such/payload.json"),
        "{}",
        stderr(&out)
    );

    let out = run(&["examples", "--name", "nope"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no example named \"nope\"; there are: birth"),
        "{}",
        stderr(&out)
    );

    let out = run(&["--log-format", "yaml", "reasons"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown log format `yaml`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn reasons_lists_the_table() {
    let out = run(&["reasons"], b"");
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text
        .lines()
        .any(|l| l.starts_with("brown_out") && l.ends_with("Unexpected")));
    assert!(text
        .lines()
        .any(|l| l.starts_with("firmware_update") && l.ends_with("Expected")));
}

/// One case of the hostile corpus (tests/corpus/hostile/cases.json), which ingest's
/// test replays through Mosquitto with the same expectations.
#[derive(serde::Deserialize)]
struct Case {
    file: String,
    device: String,
    channel: String,
    reason: String,
    cloud_only: bool,
}

#[test]
fn the_hostile_corpus_is_rejected_with_the_reasons_ingest_gives() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/hostile");
    let cases: Vec<Case> =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    assert!(cases.len() >= 15);
    for c in cases {
        let topic = format!("fleet/acme/{}/{}", c.device, c.channel);
        let path = dir.join(&c.file);
        let out = run(&["check", "--topic", &topic, path.to_str().unwrap()], b"");
        let said = stdout(&out) + &stderr(&out);
        if c.cloud_only {
            // Valid protocol: only the cloud, with its clock, can judge it.
            assert!(out.status.success(), "{}: {said}", c.file);
        } else {
            assert_eq!(out.status.code(), Some(1), "{}: {said}", c.file);
            assert!(
                said.contains(&format!("rejected ({})", c.reason)),
                "{}: expected {}, got {said}",
                c.file,
                c.reason
            );
        }
    }
}
