//! The hostile corpus (tests/corpus/hostile) replayed through Mosquitto into a running
//! ingest: every payload is dead-lettered with the reason the corpus expects (the same
//! the `fleet-protocol check` test expects of the checker), the service stays up and
//! healthy throughout, and a good message behind them all is accepted.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cloud_ingest::store::{SqliteSync, Store};
use common::*;
use protocol::Channel;
use tests::mqtt::Probe;
use tests::services;

#[derive(serde::Deserialize)]
struct Case {
    file: String,
    device: String,
    channel: String,
    reason: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_dead_letters_every_hostile_payload_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
    replay_the_corpus(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dead_letters_every_hostile_payload_with_its_reason() {
    replay_the_corpus(&services::postgres_url()).await;
}

/// Replays the corpus into an ingest on `url` and checks what it kept.
async fn replay_the_corpus(url: &str) {
    let mqtt = services::mqtt();
    let tenant = tests::unique("hostile");
    let mut config = config(&mqtt, &tenant, url);
    config.http.listen = Some("127.0.0.1:0".parse().unwrap());
    let ingest = start(config).await;
    let addr = ingest.http.lock().unwrap().expect("HTTP bound");
    let http = reqwest::Client::new();

    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus/hostile");
    let cases: Vec<Case> =
        serde_json::from_slice(&std::fs::read(corpus.join("cases.json")).unwrap()).unwrap();
    let mut device = Probe::connect(&mqtt, &tests::unique("hostile-dev")).await;
    let mut expected: BTreeMap<(String, String), usize> = BTreeMap::new();
    for c in &cases {
        let topic = format!("fleet/{tenant}/{}/{}", c.device, c.channel);
        let payload = std::fs::read(corpus.join(&c.file)).unwrap();
        device.publish(&topic, payload, false).await;
        *expected.entry((topic, c.reason.clone())).or_default() += 1;
        let health = http
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .expect("healthz answers");
        assert_eq!(health.status(), 200, "after {}", c.file);
    }
    // A good message behind them all.
    let good = &tests::unique("good");
    device
        .publish(
            &topic(&tenant, good, Channel::Heartbeat),
            heartbeat(good, 1, now_ms() - 60_000, 95.0),
            false,
        )
        .await;

    let store = Store::open(url, 1, SqliteSync::Normal).await.unwrap();
    eventually("the good message", Duration::from_secs(20), || async {
        store.device_status(good).await.unwrap().map(|_| ())
    })
    .await;
    let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
    // A shared PostgreSQL holds other tests' dead letters too: this run's have its tenant.
    let ours = format!("fleet/{tenant}/");
    for (topic, reason, detail) in store.dead_letters().await.unwrap() {
        if topic.starts_with(&ours) {
            assert!(!detail.contains('\0'), "a NUL in a dead letter: {detail}");
            *got.entry((topic, reason)).or_default() += 1;
        }
    }
    assert_eq!(got, expected);
    assert!(!ingest.task.is_finished(), "ingest kept running");
    let report = ingest.finish().await;
    assert_eq!(report.rejected, cases.len() as u64);
    assert_eq!(report.accepted, 1);
}
