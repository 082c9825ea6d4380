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

/// A pipeline on a fresh SQLite store in `dir`, with its store and metrics.
async fn sqlite_pipeline(dir: &tempfile::TempDir) -> (Store, Arc<Metrics>, Pipeline) {
    let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let store = Store::open(&url, 2, SqliteSync::Normal).await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let pipeline = Pipeline::new(
        store.clone(),
        Arc::new(ModelSlot::load(None).unwrap()),
        PolicyConfig::default(),
        PipelineSettings::default(),
        metrics.clone(),
        Arc::new(SystemClock),
    );
    (store, metrics, pipeline)
}

/// The poisoned message of the test: dev-b's seq 7.
fn dev_b_seq_7(d: &Delivery) -> bool {
    d.topic.contains("/dev-b/") && String::from_utf8_lossy(&d.payload).contains("\"seq\":7,")
}

#[tokio::test]
async fn a_batch_is_split_until_the_message_that_fails_alone_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let (store, metrics, mut pipeline) = sqlite_pipeline(&dir).await;
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
    let (store, metrics, mut pipeline) = sqlite_pipeline(&dir).await;
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

/// A heartbeat of `epoch` and boot (epoch 0: schema 1).
fn heartbeat_of(device: &str, epoch: u32, boot: &str, seq: u64) -> Delivery {
    let mut hb = examples::heartbeat();
    hb.device_id = DeviceId::new(device).unwrap();
    hb.seq = Seq(seq);
    hb.epoch = protocol::Epoch(epoch);
    hb.schema = if epoch == 0 { 1 } else { 2 };
    hb.boot_id = protocol::ids::BootId::new(boot).unwrap();
    hb.ts_ms = Timestamp(SystemClock.now().0 - 3_600_000 + seq * 1000);
    let m = Message::Heartbeat(hb);
    Delivery {
        topic: m.topic(&examples::tenant()).to_string(),
        payload: m.encode(&Limits::default()).unwrap(),
    }
}

#[tokio::test]
async fn a_device_that_restarts_its_count_is_heard_and_a_schema_1_reuse_is_kept_aside() {
    let dir = tempfile::tempdir().unwrap();
    let (store, metrics, mut pipeline) = sqlite_pipeline(&dir).await;
    let run = |epoch, boot: &'static str, seqs: std::ops::RangeInclusive<u64>| {
        seqs.map(move |s| heartbeat_of("dev-a", epoch, boot, s))
            .collect::<Vec<_>>()
    };
    // Epoch 41 up to seq 10, then the state is lost: epoch 77 from seq 1 again.
    assert_eq!(pipeline.process(&run(41, "b1", 1..=10)).await.accepted, 10);
    let after = pipeline.process(&run(77, "b2", 1..=5)).await;
    assert_eq!(
        (after.accepted, after.duplicates),
        (5, 0),
        "the new messages are kept"
    );
    // A redelivery of the old epoch is still a repeat, in its own epoch.
    let again = pipeline.process(&run(41, "b1", 3..=4)).await;
    assert_eq!((again.accepted, again.duplicates), (0, 2));
    let s = store.device_status("dev-a").await.unwrap().unwrap();
    assert_eq!((s.epoch, s.seq_resets), (77, 1));
    assert_eq!(
        (s.stats.count, s.stats.min_seq, s.stats.max_seq, s.missing),
        (15, 1, 5, 0)
    );
    let epochs: Vec<(u32, u64)> = store
        .seq_epochs("dev-a")
        .await
        .unwrap()
        .into_iter()
        .map(|(e, first, _)| (e, first))
        .collect();
    assert_eq!(epochs, [(41, 1), (77, 1)]);
    assert_eq!(store.message_count().await.unwrap(), 15);

    // A schema-1 device has no epoch: reusing seqs from another boot is caught by the
    // stored boot id, kept as dead letters; a true redelivery is still a repeat.
    let old = |boot: &'static str, seqs| {
        run(0, boot, seqs)
            .into_iter()
            .map(|d| Delivery {
                topic: d.topic.replace("dev-a", "dev-s"),
                payload: String::from_utf8(d.payload)
                    .unwrap()
                    .replace("dev-a", "dev-s")
                    .into_bytes(),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(pipeline.process(&old("x1", 1..=5)).await.accepted, 5);
    let reused = pipeline.process(&old("y2", 4..=7)).await;
    assert_eq!(
        (reused.accepted, reused.rejected, reused.duplicates),
        (2, 2, 0)
    );
    let repeat = pipeline.process(&old("x1", 2..=2)).await;
    assert_eq!((repeat.accepted, repeat.duplicates), (0, 1));
    let letters = store.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(letters
        .iter()
        .all(|(_, reason, detail)| reason == decode::SEQ_REUSED && detail.contains("boot x1")));
    let s = store.device_status("dev-s").await.unwrap().unwrap();
    assert_eq!((s.epoch, s.seq_resets, s.stats.count), (0, 0, 7));
    let text = metrics.render();
    assert!(text.contains("fleet_ingest_seq_resets_total 1"), "{text}");
    assert!(
        text.contains(r#"fleet_ingest_messages_rejected_total{reason="seq_reused"} 2"#),
        "{text}"
    );
}
