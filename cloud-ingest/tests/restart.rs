//! Restart safety: the real `cloud-ingest serve` process is SIGKILLed mid-stream and
//! restarted, three times, while devices keep publishing through Mosquitto. Nothing
//! accepted may be lost or counted twice, and no ticket may open twice.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cloud_ingest::store::{SqliteSync, Store};
use common::*;
use protocol::Channel;
use tests::mqtt::Probe;
use tests::services;

const DEVICES: usize = 12;
const PER_DEVICE: u64 = 250;
const SWOLLEN: usize = 4;

fn spawn(config: &std::path::Path, log: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_cloud-ingest"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting cloud-ingest serve")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_nothing_counts_nothing_twice_and_opens_no_ticket_twice() {
    let mqtt = services::mqtt();
    let tenant = tests::unique("restart");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let config_path = dir.path().join("ingest.toml");
    let log = dir.path().join("ingest.log");
    std::fs::write(
        &config_path,
        format!(
            "[mqtt]\nurl = \"mqtt://{}:{}\"\nclient_id = \"{}\"\ntenant = \"{tenant}\"\n\
             [store]\nurl = \"{url}\"\n[http]\nlisten = \"127.0.0.1:0\"\n[ingest]\nbatch_wait_ms = 5\n",
            mqtt.host,
            mqtt.port,
            tests::unique("ingest")
        ),
    )
    .unwrap();
    // Create and migrate the store before the process starts: the test reads it
    // while the process writes it (SQLite migrations take no lock across processes).
    let reader = Store::open(&url, 1, SqliteSync::Full).await.unwrap();
    let mut child = spawn(&config_path, &log);

    // The first start creates the broker session: wait until it is subscribed, by
    // repeating one probe message (deduplicated) until it lands in the store.
    let mut device = Probe::connect(&mqtt, &tests::unique("devices")).await;
    let probe = topic(&tenant, "probe", Channel::State);
    let t0 = now_ms() - 6 * 3_600_000;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        device.publish(&probe, birth("probe", 1, t0), false).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if reader.device_status("probe").await.unwrap().is_some() {
            break;
        }
        let log_text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            std::time::Instant::now() < deadline,
            "ingest did not subscribe in 30 s; log:\n{log_text}"
        );
    }

    let ids: Vec<String> = (0..DEVICES).map(|i| format!("dev-{i:02}")).collect();
    let mut expected = BTreeSet::new();
    let mut kills = 0;
    for k in 1..=PER_DEVICE {
        for (i, d) in ids.iter().enumerate() {
            let soh = if i < SWOLLEN && k > 100 { 55.0 } else { 96.0 };
            let ts = t0 + k * 60_000;
            device
                .publish(
                    &topic(&tenant, d, Channel::Heartbeat),
                    heartbeat(d, k, ts, soh),
                    false,
                )
                .await;
            expected.insert((d.clone(), k));
        }
        if k % 60 == 0 && kills < 3 {
            // Give it a moment to be mid-batch, then kill it without warning.
            tokio::time::sleep(Duration::from_millis(30)).await;
            child.kill().unwrap();
            child.wait().unwrap();
            kills += 1;
            child = spawn(&config_path, &log);
        }
        if k % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(kills, 3);
    let total = expected.len() as u64 + 1;
    eventually(
        "every message to be stored",
        Duration::from_secs(60),
        || async { (reader.message_count().await.unwrap() >= total).then_some(()) },
    )
    .await;
    // A graceful stop: SIGTERM, and the process exits cleanly.
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success(),
        "ingest exited with {status} after SIGTERM; log:\n{log_text}"
    );

    let mut stored: BTreeSet<(String, u64)> =
        reader.message_keys().await.unwrap().into_iter().collect();
    assert!(stored.remove(&("probe".to_owned(), 1)));
    assert_eq!(stored.len(), expected.len(), "lost or extra messages");
    assert_eq!(stored, expected);
    for d in &ids {
        let stats = reader.device_status(d).await.unwrap().unwrap().stats;
        assert_eq!(
            (stats.count, stats.missing()),
            (PER_DEVICE, 0),
            "{d} counted wrong"
        );
    }
    let tickets = reader.tickets().await.unwrap();
    let devices: Vec<&str> = tickets.iter().map(|t| t.device_id.as_str()).collect();
    let mut ticketed = devices;
    ticketed.sort();
    assert_eq!(
        ticketed,
        ids[..SWOLLEN]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        "one ticket per swollen battery"
    );
    assert_eq!(
        reader.commands().await.unwrap().len(),
        SWOLLEN,
        "one offer per ticket"
    );
}
