//! Retention on both stores: old messages, dead letters and finished outbox rows go;
//! what is recent, unexported or part of the audit trail stays; a redelivery of a
//! pruned message is still a repeat; and a device's features survive its messages.

mod common;

use std::sync::Arc;

use cloud_ingest::ingest::{Delivery, Pipeline, PipelineSettings};
use cloud_ingest::ops::metrics::Metrics;
use cloud_ingest::policy::PolicyConfig;
use cloud_ingest::retention::{Pruner, RetentionConfig};
use cloud_ingest::score::ModelSlot;
use cloud_ingest::store::{SqliteSync, Store};
use common::*;
use protocol::clock::{Clock, ManualClock};
use protocol::{Channel, Timestamp};

const DAY: u64 = 86_400_000;

/// The pipeline on `store` with the bundled model and default settings.
fn new_pipeline(store: &Store, metrics: Arc<Metrics>, clock: Arc<ManualClock>) -> Pipeline {
    Pipeline::new(
        store.clone(),
        Arc::new(ModelSlot::load(None).unwrap()),
        PolicyConfig::default(),
        PipelineSettings::default(),
        metrics,
        clock,
    )
}

fn hb(tenant: &str, device: &str, seq: u64, ts: u64) -> Delivery {
    Delivery {
        topic: topic(tenant, device, Channel::Heartbeat),
        payload: heartbeat(device, seq, ts, 95.0),
    }
}

async fn prunes_old_rows_and_keeps_dedup(url: &str, with_dead_letters: bool) {
    let store = Store::open(url, 2, SqliteSync::Normal).await.unwrap();
    let tenant = tests::unique("ret");
    let device = tests::unique("d");
    // 100 days back, so a shared PostgreSQL's other (recent) rows are never past a cutoff.
    let t0 = now_ms() - 100 * DAY;
    let clock = Arc::new(ManualClock::at(Timestamp(t0)));
    let mut pipeline = new_pipeline(&store, Arc::new(Metrics::new()), clock.clone());
    let old: Vec<Delivery> = (1..=10)
        .map(|k| hb(&tenant, &device, k, t0 - 10 * 60_000 + k * 60_000))
        .collect();
    let mut batch = old.clone();
    batch.push(Delivery {
        topic: topic(&tenant, &device, Channel::Heartbeat),
        payload: b"{ not json".to_vec(),
    });
    let first = pipeline.process(&batch).await;
    assert_eq!((first.accepted, first.rejected), (10, 1));

    // 36 days on: two new heartbeats, then a pass.
    let t1 = t0 + 36 * DAY;
    clock.set(Timestamp(t1));
    let new = [
        hb(&tenant, &device, 11, t1 - 60_000),
        hb(&tenant, &device, 12, t1),
    ];
    assert_eq!(pipeline.process(&new).await.accepted, 2);
    // A score on each day: a row of score history each.
    let mut tx = store.begin().await.unwrap();
    for at in [t0, t1] {
        let row = cloud_ingest::store::devices::ScoreRow {
            device_id: device.clone(),
            risk: 0.1,
            alarm: false,
            scored_ms: at,
            model_version: "m".into(),
            explanation: "[]".into(),
            shadow: None,
        };
        cloud_ingest::store::devices::set_score(&mut tx, &row)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let days = |s: &Store| {
        let (s, d) = (s.clone(), device.clone());
        async move { s.score_days(&d, 0).await.unwrap().len() }
    };
    assert_eq!(days(&store).await, 2);
    let config = RetentionConfig {
        dead_letters_max_rows: u64::MAX / 2,
        score_history_days: 30,
        ..RetentionConfig::default()
    };
    let pruner = Pruner {
        config: config.clone(),
        influx: false,
    };
    let cut = config.cutoffs(clock.now(), now_ms() - 100 * DAY, false);
    let report = pruner.prune(&store, &cut).await.unwrap();
    assert!(report.messages >= 10, "{report:?}");
    assert!(report.score_days >= 1, "{report:?}");
    assert_eq!(days(&store).await, 1, "the 36-day-old day's score went");
    let ours: Vec<u64> = store
        .message_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|(d, _)| *d == device)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(ours, [11, 12], "only the recent messages stay");
    if with_dead_letters {
        assert_eq!(report.dead_letters, 1);
        assert!(store.dead_letters().await.unwrap().is_empty());
    }
    // The device's accounting is kept: every message ever accepted, none missing.
    let stats = store.device_status(&device).await.unwrap().unwrap().stats;
    assert_eq!((stats.count, stats.missing()), (12, 0));

    // A redelivery of a pruned message (a new process: nothing cached) is a repeat.
    let mut fresh = new_pipeline(&store, Arc::new(Metrics::new()), clock.clone());
    let again = fresh.process(&old[4..5]).await;
    assert_eq!((again.accepted, again.duplicates), (0, 1));
    // The features did not go with the messages: the next one restores them (the
    // state written on the device's first batch, and the two messages since).
    let metrics = Arc::new(Metrics::new());
    let mut next = new_pipeline(&store, metrics.clone(), clock.clone());
    assert_eq!(
        next.process(&[hb(&tenant, &device, 13, t1 + 60_000)])
            .await
            .accepted,
        1
    );
    assert_eq!(
        (
            metrics.feature_restores.get(),
            metrics.messages_replayed.get()
        ),
        (1, 2)
    );
    store.close().await;
}

#[tokio::test]
async fn sqlite_prunes_old_rows_and_keeps_dedup() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
    prunes_old_rows_and_keeps_dedup(&url, true).await;
}

#[tokio::test]
async fn postgres_prunes_old_rows_and_keeps_dedup() {
    // Dead letters are shared by every test of the database: left out here.
    prunes_old_rows_and_keeps_dedup(&tests::services::postgres_url(), false).await;
}

#[tokio::test]
async fn dead_letters_are_capped_newest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let store = Store::open(&url, 2, SqliteSync::Normal).await.unwrap();
    let clock = Arc::new(ManualClock::at(Timestamp(now_ms())));
    let mut pipeline = new_pipeline(&store, Arc::new(Metrics::new()), clock.clone());
    let bad: Vec<Delivery> = (0..10)
        .map(|k| Delivery {
            topic: format!("fleet/acme/dev-{k}/heartbeat"),
            payload: format!("{{ bad {k}").into_bytes(),
        })
        .collect();
    assert_eq!(pipeline.process(&bad).await.rejected, 10);
    let config = RetentionConfig {
        dead_letters_max_rows: 4,
        ..RetentionConfig::default()
    };
    let pruner = Pruner {
        config: config.clone(),
        influx: false,
    };
    let report = pruner
        .prune(&store, &config.cutoffs(clock.now(), now_ms(), false))
        .await
        .unwrap();
    assert_eq!(report.dead_letters, 6);
    let kept: Vec<String> = store
        .dead_letters()
        .await
        .unwrap()
        .into_iter()
        .map(|(topic, _, _)| topic)
        .collect();
    assert_eq!(kept.len(), 4);
    assert!(
        kept.iter().all(|t| ["dev-6", "dev-7", "dev-8", "dev-9"]
            .iter()
            .any(|d| t.contains(d))),
        "{kept:?}"
    );
}

#[tokio::test]
async fn with_influxdb_exported_telemetry_goes_after_two_days_and_the_rest_stays() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let store = Store::open(&url, 2, SqliteSync::Normal).await.unwrap();
    let t0 = now_ms() - 10 * DAY;
    let clock = Arc::new(ManualClock::at(Timestamp(t0)));
    let mut pipeline = new_pipeline(&store, Arc::new(Metrics::new()), clock.clone());
    let batch = [
        hb("acme", "dev-a", 1, t0 - 60_000),
        Delivery {
            topic: topic("acme", "dev-a", Channel::State),
            payload: birth("dev-a", 2, t0),
        },
    ];
    assert_eq!(pipeline.process(&batch).await.accepted, 2);
    clock.set(Timestamp(t0 + 3 * DAY));
    let config = RetentionConfig::default();
    let pruner = Pruner {
        config: config.clone(),
        influx: true,
    };
    let report = pruner
        .prune(&store, &config.cutoffs(clock.now(), now_ms(), true))
        .await
        .unwrap();
    assert_eq!(report.messages, 1);
    assert_eq!(
        store.message_keys().await.unwrap(),
        [("dev-a".to_owned(), 2)]
    );
}
