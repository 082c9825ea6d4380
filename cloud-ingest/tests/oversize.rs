//! A message larger than the protocol allows, or than the session's packet limit, is
//! dead-lettered and acknowledged; the messages behind it flow (against Mosquitto).

mod common;

use std::time::Duration;

use cloud_ingest::store::{SqliteSync, Store};
use protocol::Channel;
use tests::mqtt::Probe;

#[tokio::test]
async fn an_oversize_message_is_dead_lettered_and_the_stream_moves_on() {
    let mqtt = tests::services::mqtt();
    let tenant = tests::unique("big");
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let mut config = common::config(&mqtt, &tenant, &store_url);
    // The smallest packet limit allowed, so a packet above it is easy to send.
    config.mqtt.max_packet_bytes = cloud_ingest::config::min_packet_bytes();
    let ingest = common::start(config).await;

    let mut device = Probe::connect(&mqtt, &tests::unique("device")).await;
    let topic = common::topic(&tenant, "dev-big", Channel::Heartbeat);
    // Over the protocol's payload limit, within the session's packet limit.
    device.publish(&topic, vec![b' '; 18 * 1024], false).await;
    // Over the session's packet limit (within the broker's message_size_limit): the
    // connection refuses it, and the broker would hand it over on every reconnect.
    device.publish(&topic, vec![b' '; 64 * 1024], false).await;
    let now = common::now_ms();
    for seq in 1..=3 {
        device
            .publish(&topic, common::heartbeat("dev-big", seq, now, 90.0), false)
            .await;
    }

    let store = Store::open(&store_url, 1, SqliteSync::Full).await.unwrap();
    common::eventually(
        "the heartbeats behind the big ones",
        Duration::from_secs(30),
        || async { (store.message_count().await.ok()? == 3).then_some(()) },
    )
    .await;
    let letters = store.dead_letters().await.unwrap();
    assert!(
        letters.iter().all(|(_, r, _)| r == "too_large"),
        "{letters:?}"
    );
    // A redelivery (the session reconnected with the batch unacknowledged) is kept again:
    // a dead letter has no (device, seq) to deduplicate on.
    let mut sizes: Vec<&str> = letters
        .iter()
        .map(|(_, _, d)| d.split(" bytes;").next().unwrap_or(""))
        .collect();
    sizes.dedup();
    assert_eq!(
        sizes,
        ["payload is 18432", "payload is 65536"],
        "each kept, in order: {letters:?}"
    );
    assert!(
        letters
            .iter()
            .all(|(_, _, d)| d.contains("the first 16384 of")),
        "kept as excerpts: {letters:?}"
    );
    let metrics = ingest.metrics.render();
    assert!(
        metrics.contains("fleet_ingest_oversize_recoveries_total 1\n"),
        "one packet over the session's limit, read once:\n{metrics}"
    );
    let report = ingest.finish().await;
    assert_eq!(report.accepted, 3);
    assert_eq!(report.rejected as usize, letters.len());
}
