//! Three ingest replicas on one MQTT 5 shared subscription and one PostgreSQL store open
//! exactly the tickets one replica would, accept every message exactly once, and make
//! each effect once: every offer is published once and every webhook posted once,
//! although all three workers poll the same outboxes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cloud_ingest::config::WebhookConfig;
use cloud_ingest::ops::metrics::Metrics;
use cloud_ingest::store::{SqliteSync, Store};
use common::*;
use protocol::{Channel, Limits, Message};
use tests::mqtt::Probe;
use tests::services;

const DEVICES: usize = 10;
const BEATS: u64 = 60;
const SWOLLEN: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_the_stream_the_ticket_constraint_and_the_outboxes() {
    let mqtt = services::mqtt();
    let pg = services::postgres_url();
    let tenant = tests::unique("replicas");
    let group = tests::unique("g").replace('-', "_");
    let (hook, mut hooks) = webhook_sink().await;
    let mut base = config(&mqtt, &tenant, &pg);
    base.mqtt.share_group = Some(group.clone());
    // One send per offer within the test: a second publish could only be a replica's.
    base.mqtt.command_resend_s = 3600;
    base.webhooks = vec![WebhookConfig {
        url: hook,
        secret: "s".into(),
        max_attempts: 3,
    }];
    let mut replicas = Vec::new();
    for r in ["a", "b", "c"] {
        let mut c = base.clone();
        c.mqtt.client_id = tests::unique(&format!("ingest-{r}"));
        replicas.push(start(c).await);
    }
    let mut offers = Probe::connect(&mqtt, &tests::unique("offers")).await;
    offers.subscribe(&format!("fleet/{tenant}/+/cmd")).await;

    // Device ids unique to this run: the PostgreSQL database is shared by every test.
    let prefix = tests::unique("r");
    let ids: Vec<String> = (0..DEVICES).map(|i| format!("{prefix}-d{i}")).collect();
    let swollen: BTreeSet<&str> = ids[..SWOLLEN].iter().map(String::as_str).collect();
    let mut device = Probe::connect(&mqtt, &tests::unique("devices")).await;
    let t0 = now_ms() - 3 * 3_600_000;
    for k in 1..=BEATS {
        for (i, d) in ids.iter().enumerate() {
            let soh = if i < SWOLLEN && k > 30 { 55.0 } else { 96.0 };
            device
                .publish(
                    &topic(&tenant, d, Channel::Heartbeat),
                    heartbeat(d, k, t0 + k * 60_000, soh),
                    false,
                )
                .await;
        }
    }
    let store = Store::open(&pg, 2, SqliteSync::Full).await.unwrap();
    let total = DEVICES as u64 * BEATS;
    let ours = |keys: Vec<(String, u64)>| {
        keys.into_iter()
            .filter(|(d, _)| d.starts_with(&prefix))
            .count() as u64
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n = ours(store.message_keys().await.unwrap());
        if n >= total {
            break;
        }
        for (i, r) in replicas.iter().enumerate() {
            assert!(!r.task.is_finished(), "replica {i} stopped");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {n} of {total} messages arrived in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every effect once: collect until one of each has come, then a while longer, with
    // all three workers polling every 250 ms, for any second copy.
    let mut published: BTreeMap<String, usize> = BTreeMap::new();
    let mut posted: BTreeMap<String, usize> = BTreeMap::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut quiet_from = None;
    loop {
        while let Ok(h) = hooks.try_recv() {
            *posted.entry(h.delivery).or_default() += 1;
        }
        while let Some(m) = offers.recv(Duration::from_millis(100)).await {
            let Ok(decoded) = protocol::decode(&m.topic, &m.payload, &Limits::default()) else {
                panic!("an offer that does not decode: {m:?}");
            };
            let Message::Command(c) = decoded.message else {
                panic!("not a command on a cmd topic: {m:?}");
            };
            *published.entry(c.command_id.to_string()).or_default() += 1;
        }
        if published.len() >= SWOLLEN && posted.len() >= SWOLLEN {
            let since = *quiet_from.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < until,
            "effects within 30 s: offers {published:?}, webhooks {posted:?}"
        );
    }
    // Replicas pick devices up from each other's stored feature states: one row and
    // fewer than STATE_EVERY messages per device and batch, never a device's history.
    let sum = |f: fn(&Metrics) -> u64| replicas.iter().map(|r| f(&r.metrics)).sum::<u64>();
    let restored = sum(|m| m.feature_restores.get());
    let rebuilt = sum(|m| m.feature_rebuilds.get());
    let replayed = sum(|m| m.messages_replayed.get());
    assert!(restored > 0, "the replicas took turns with devices");
    assert!(
        replayed < restored * cloud_ingest::ingest::plan::STATE_EVERY,
        "{replayed} messages replayed for {restored} restores"
    );
    // A rebuild happens only for a device's first batch (nothing stored to replay).
    assert!(rebuilt <= 3 * DEVICES as u64, "{rebuilt} rebuilds");
    let mut reports = Vec::new();
    for r in replicas {
        reports.push(r.finish().await);
    }
    let working = reports.iter().filter(|r| r.accepted > 0).count();
    assert!(working >= 2, "the group split the stream: {reports:?}");
    assert_eq!(
        reports.iter().map(|r| r.accepted).sum::<u64>(),
        total,
        "each message accepted exactly once"
    );

    let tickets: Vec<_> = store
        .tickets()
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.device_id.starts_with(&prefix))
        .collect();
    let ticketed: Vec<&str> = tickets.iter().map(|t| t.device_id.as_str()).collect();
    let unique: BTreeSet<&str> = ticketed.iter().copied().collect();
    assert_eq!(
        ticketed.len(),
        unique.len(),
        "a device got two tickets: {ticketed:?}"
    );
    assert_eq!(unique, swollen);
    assert!(tickets
        .iter()
        .all(|t| t.problem == cloud_ingest::policy::Problem::Battery));
    assert_eq!(published.len(), SWOLLEN, "{published:?}");
    assert!(
        published.values().all(|&n| n == 1),
        "an offer went out more than once: {published:?}"
    );
    assert_eq!(posted.len(), SWOLLEN, "{posted:?}");
    assert!(
        posted.values().all(|&n| n == 1),
        "a webhook was posted more than once: {posted:?}"
    );
    for d in &ids {
        let stats = store.device_status(d).await.unwrap().unwrap().stats;
        assert_eq!((stats.count, stats.missing()), (BEATS, 0), "{d}");
    }
}
