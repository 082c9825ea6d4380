//! Raw telemetry reaches the InfluxDB v2 write API (VictoriaMetrics in the test
//! command) with millisecond timestamps, and is read back.

mod common;

use std::time::Duration;

use cloud_ingest::config::InfluxConfig;
use common::*;
use protocol::Channel;
use tests::mqtt::Probe;
use tests::services;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_exported_and_read_back() {
    let mqtt = services::mqtt();
    let influx = services::influx();
    let tenant = tests::unique("influx");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let mut c = config(&mqtt, &tenant, &url);
    c.influx = Some(InfluxConfig {
        url: influx.url.clone(),
        org: influx.org.clone(),
        bucket: influx.bucket.clone(),
        token: influx.token.clone(),
        batch: 7,
    });
    let ingest = start(c).await;
    let dev = "dev-influx";
    let mut device = Probe::connect(&mqtt, &tests::unique("device")).await;
    let t0 = now_ms() - 30 * 60_000;
    let mut stamps = Vec::new();
    let mut sohs = Vec::new();
    for k in 1..=20u64 {
        let soh = 90.0 - k as f32 / 4.0;
        device
            .publish(
                &topic(&tenant, dev, Channel::Heartbeat),
                heartbeat(dev, k, t0 + k * 60_000, soh),
                false,
            )
            .await;
        stamps.push((t0 + k * 60_000) as i64);
        sohs.push(f64::from(soh));
    }
    let http = reqwest::Client::new();
    let series = eventually(
        "the points to be readable",
        Duration::from_secs(30),
        || async {
            http.get(format!("{}/internal/force_flush", influx.url))
                .send()
                .await
                .ok()?;
            let body = http
                .get(format!("{}/api/v1/export", influx.url))
                .query(&[(
                    "match[]",
                    format!("{{__name__=\"heartbeat_soh_pct\",tenant=\"{tenant}\"}}"),
                )])
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let v: serde_json::Value = serde_json::from_str(body.lines().next()?).ok()?;
            (v["values"].as_array()?.len() == 20).then_some(v)
        },
    )
    .await;
    ingest.finish().await;
    assert_eq!(series["metric"]["device"], dev);
    let values: Vec<f64> = serde_json::from_value(series["values"].clone()).unwrap();
    let times: Vec<i64> = serde_json::from_value(series["timestamps"].clone()).unwrap();
    assert_eq!(times, stamps, "millisecond timestamps, not 1970");
    for (got, want) in values.iter().zip(&sohs) {
        assert!((got - want).abs() < 1e-3, "{got} vs {want}");
    }
}
