//! The spool under a real SIGKILL: a child process (this test binary, re-run) pushes
//! and acknowledges messages as fast as it can until the parent kills it; the spool it
//! leaves must open, hold every message pushed and not acknowledged, and nothing else.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use edge_agent::spool::{Spool, SpoolConfig, Sync};
use protocol::ids::Seq;
use protocol::Channel;

const CHILD_ENV: &str = "SPOOL_KILL_CHILD_DIR";

fn config() -> SpoolConfig {
    SpoolConfig {
        budget_bytes: 1 << 30,
        segment_bytes: 64 * 1024,
        sync: Sync::Never,
    }
}

fn payload(seq: u64) -> Vec<u8> {
    format!("{{\"seq\":{seq}}}").into_bytes()
}

fn pending(dir: &Path) -> Vec<u64> {
    let spool = Spool::open(dir, config()).unwrap();
    let mut out = Vec::new();
    let mut cursor = None;
    while let Some(p) = spool.next_after(cursor) {
        assert_eq!(p.payload, payload(p.seq.0), "payload of {}", p.seq.0);
        out.push(p.seq.0);
        cursor = Some(p.seq);
    }
    out
}

/// The child's work; a no-op unless the parent started this binary for it.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut spool = Spool::open(&dir, config()).unwrap();
    let mut seq = spool.next_after(None).map_or(0, |_| {
        let mut last = None;
        while let Some(p) = spool.next_after(last) {
            last = Some(p.seq);
        }
        last.unwrap().0
    });
    println!("ready");
    loop {
        seq += 1;
        spool
            .push(Seq(seq), Channel::Heartbeat, &payload(seq))
            .unwrap();
        if seq.is_multiple_of(3) {
            spool.retire(Seq(seq)).unwrap();
        }
    }
}

#[test]
fn a_killed_writer_leaves_a_consistent_spool() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut last_max = 0;
    // Each round's last multiple of three may have lost its ack to the kill.
    let mut unacked_by_kill: Vec<u64> = Vec::new();
    for round in 0..4 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the child has opened the spool (a loaded machine starts it slowly),
        // then let it write for a moment.
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("ready") {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "the child ended before it was ready"
            );
        }
        std::thread::sleep(Duration::from_millis(150 + round * 70));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let seqs = pending(dir.path());
        let max = *seqs.last().expect("the child wrote something");
        assert!(max > last_max, "round {round}: no progress");
        // Every unacknowledged message up to the last one is there, nothing else is;
        // the last multiple of three may still be there if the kill beat its ack.
        if max.is_multiple_of(3) {
            unacked_by_kill.push(max);
        }
        let expected: Vec<u64> = (1..=max)
            .filter(|s| s % 3 != 0 || unacked_by_kill.contains(s))
            .collect();
        assert_eq!(seqs, expected, "round {round}");
        last_max = max;
    }
}
