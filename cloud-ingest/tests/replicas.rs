//! Two ingest replicas on one MQTT 5 shared subscription and one PostgreSQL store open
//! exactly the tickets one replica would, and accept every message exactly once.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use cloud_ingest::store::{SqliteSync, Store};
use common::*;
use protocol::Channel;
use tests::mqtt::Probe;
use tests::services;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_the_stream_and_the_ticket_constraint() {
    let mqtt = services::mqtt();
    let pg = services::postgres_url();
    let tenant = tests::unique("replicas");
    let group = tests::unique("g").replace('-', "_");
    let mut a = config(&mqtt, &tenant, &pg);
    a.mqtt.share_group = Some(group.clone());
    let mut b = a.clone();
    b.mqtt.client_id = tests::unique("ingest-b");
    let one = start(a).await;
    let two = start(b).await;

    // Device ids unique to this run: the PostgreSQL database is shared by every test.
    let prefix = tests::unique("r");
    let ids: Vec<String> = (0..10).map(|i| format!("{prefix}-d{i}")).collect();
    let swollen: BTreeSet<&str> = ids[..5].iter().map(String::as_str).collect();
    let mut device = Probe::connect(&mqtt, &tests::unique("devices")).await;
    let t0 = now_ms() - 3 * 3_600_000;
    for k in 1..=60u64 {
        for (i, d) in ids.iter().enumerate() {
            let soh = if i < 5 && k > 30 { 55.0 } else { 96.0 };
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
    let ours = |keys: Vec<(String, u64)>| {
        keys.into_iter()
            .filter(|(d, _)| d.starts_with(&prefix))
            .count()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n = ours(store.message_keys().await.unwrap());
        if n >= 600 {
            break;
        }
        if one.task.is_finished() {
            panic!("replica one stopped: {}", one.failure().await);
        }
        if two.task.is_finished() {
            panic!("replica two stopped: {}", two.failure().await);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {n} of 600 messages arrived in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r1 = one.finish().await;
    let r2 = two.finish().await;
    assert!(
        r1.accepted > 0 && r2.accepted > 0,
        "the group split the stream: {r1:?} {r2:?}"
    );
    assert_eq!(
        r1.accepted + r2.accepted,
        600,
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
    for d in &ids {
        let (_, stats) = store.device_status(d).await.unwrap().unwrap();
        assert_eq!((stats.count, stats.missing()), (60, 0), "{d}");
    }
}
