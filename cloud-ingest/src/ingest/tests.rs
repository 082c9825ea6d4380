//! The pipeline against a real SQLite store: a batch with one message that cannot be
//! processed commits everything else, and keeps that one as a dead letter.

use std::sync::Arc;

use protocol::clock::{Clock, SystemClock};
use protocol::ids::{DeviceId, Seq, Timestamp};
use protocol::{examples, Limits, Message};

use super::*;
use crate::store::SqliteSync;

fn heartbeat(device: &str, seq: u64) -> Delivery {
    let mut hb = examples::heartbeat();
    hb.device_id = DeviceId::new(device).unwrap();
    hb.seq = Seq(seq);
    hb.ts_ms = Timestamp(SystemClock.now().0 - 3_600_000 + seq * 1000);
    let m = Message::Heartbeat(hb);
    Delivery {
        topic: m.topic(&examples::tenant()).to_string(),
        payload: m.encode(&Limits::default()).unwrap(),
    }
}

/// The poisoned message of the test: dev-b's seq 7.
fn dev_b_seq_7(d: &Delivery) -> bool {
    d.topic.contains("/dev-b/") && String::from_utf8_lossy(&d.payload).contains("\"seq\":7,")
}

#[tokio::test]
async fn a_batch_is_split_until_the_message_that_fails_alone_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let store = Store::open(&url, 2, SqliteSync::Normal).await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let mut pipeline = Pipeline::new(
        store.clone(),
        Arc::new(ModelSlot::load(None).unwrap()),
        PolicyConfig::default(),
        PipelineSettings::default(),
        metrics.clone(),
        Arc::new(SystemClock),
    );
    pipeline.poison = Some(dev_b_seq_7);
    let batch: Vec<Delivery> = (1..=12)
        .flat_map(|k| [heartbeat("dev-a", k), heartbeat("dev-b", k)])
        .collect();
    assert_eq!(batch.iter().filter(|d| dev_b_seq_7(d)).count(), 1);

    let outcome = pipeline.process(&batch).await;
    assert_eq!((outcome.accepted, outcome.rejected), (23, 1));
    assert_eq!(store.message_count().await.unwrap(), 23);
    let letters = store.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let (topic, reason, detail) = &letters[0];
    assert_eq!(
        (topic.as_str(), reason.as_str()),
        ("fleet/acme/dev-b/heartbeat", UNPROCESSABLE)
    );
    assert!(detail.contains("a poisoned message"), "{detail}");
    assert!(metrics
        .render()
        .contains("fleet_ingest_batch_splits_total 5"));

    // The same batch again (a redelivery): all known now, and the dead letter is not
    // retried into a second failure.
    pipeline.poison = None;
    let again = pipeline.process(&batch).await;
    assert_eq!((again.accepted, again.duplicates), (1, 23));
}

#[tokio::test]
async fn a_message_whose_dead_letter_is_refused_too_is_dropped_loudly_not_retried_forever() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let store = Store::open(&url, 2, SqliteSync::Normal).await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let mut pipeline = Pipeline::new(
        store.clone(),
        Arc::new(ModelSlot::load(None).unwrap()),
        PolicyConfig::default(),
        PipelineSettings::default(),
        metrics.clone(),
        Arc::new(SystemClock),
    );
    pipeline.poison = Some(dev_b_seq_7);
    pipeline.refuse_dead_letters = true;
    let batch = [heartbeat("dev-a", 1), heartbeat("dev-b", 7)];
    let outcome = pipeline.process(&batch).await;
    assert_eq!((outcome.accepted, outcome.rejected), (1, 1));
    assert!(store.dead_letters().await.unwrap().is_empty());
    assert!(metrics
        .render()
        .contains("fleet_ingest_messages_dropped_total 1"));
}
