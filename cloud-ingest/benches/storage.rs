//! Store bytes per device-day: a fleet's telemetry (hourly heartbeats and a daily event
//! per device) through the real pipeline into SQLite on a moving service clock, with a
//! retention pass every simulated day, under three regimes measured in the same run:
//! everything kept (the baseline, as before retention), the default retention, and the
//! default retention with InfluxDB holding the telemetry. Prints live bytes (pages in
//! use) per device-day and the ratio to the baseline.
//!
//! `cargo bench -p cloud-ingest --bench storage`; `BENCH_DEVICES` (100) and
//! `BENCH_DAYS` (120) size it.

use std::sync::Arc;
use std::time::Instant;

use cloud_ingest::ingest::{Delivery, Pipeline, PipelineSettings};
use cloud_ingest::ops::metrics::Metrics;
use cloud_ingest::policy::PolicyConfig;
use cloud_ingest::retention::{Pruner, RetentionConfig};
use cloud_ingest::score::ModelSlot;
use cloud_ingest::store::{SqliteSync, Store};
use protocol::clock::{Clock, ManualClock};
use protocol::event::{CrashEvent, Event};
use protocol::ids::{DeviceId, Epoch, Seq};
use protocol::{examples, Envelope, Limits, Message, Timestamp};

const HOUR: u64 = 3_600_000;
const DAY: u64 = 24 * HOUR;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One device's messages for one day: 24 heartbeats and a crash event.
fn day_of(device: usize, day: u64, t0: u64, seq: &mut u64) -> Vec<Delivery> {
    let id = DeviceId::new(format!("dev-{device:05}")).unwrap();
    let tenant = examples::tenant();
    let mut out = Vec::with_capacity(25);
    for h in 0..24 {
        let mut hb = examples::heartbeat();
        hb.device_id = id.clone();
        *seq += 1;
        hb.seq = Seq(*seq);
        hb.ts_ms = Timestamp(t0 + day * DAY + (h + 1) * HOUR);
        if let Some(b) = hb.body.battery.as_mut() {
            b.soc_end_pct = 20.0 + ((device as u64 + h) % 70) as f32;
            b.soc_min_pct = b.soc_min_pct.min(b.soc_end_pct);
        }
        let m = Message::Heartbeat(hb);
        out.push(Delivery {
            topic: m.topic(&tenant).to_string(),
            payload: m.encode(&Limits::default()).unwrap(),
        });
    }
    *seq += 1;
    let mut crash: Envelope<Event> = Envelope::new(
        id,
        (Epoch(7), Seq(*seq)),
        examples::heartbeat().boot_id,
        Timestamp(t0 + day * DAY + 12 * HOUR + 1),
        Event::Crash(CrashEvent {
            signature: "ui:render:42".into(),
            process: Some("launcher".into()),
        }),
    );
    crash.historical = false;
    let m = Message::Event(crash);
    out.push(Delivery {
        topic: m.topic(&tenant).to_string(),
        payload: m.encode(&Limits::default()).unwrap(),
    });
    out
}

async fn run(
    name: &str,
    retention: Option<(RetentionConfig, bool)>,
    devices: usize,
    days: u64,
) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let store = Store::open(&url, 1, SqliteSync::Normal).await.unwrap();
    let t0 = Timestamp::from_system_time(std::time::SystemTime::now()).0 - (days + 1) * DAY;
    let clock = Arc::new(ManualClock::at(Timestamp(t0)));
    let mut pipeline = Pipeline::new(
        store.clone(),
        Arc::new(ModelSlot::load(None).unwrap()),
        PolicyConfig::default(),
        PipelineSettings::default(),
        Arc::new(Metrics::new()),
        clock.clone(),
    );
    let mut seqs = vec![0u64; devices];
    let started = Instant::now();
    for day in 0..days {
        clock.set(Timestamp(t0 + (day + 1) * DAY + HOUR));
        let batch: Vec<Delivery> = (0..devices)
            .flat_map(|d| day_of(d, day, t0, &mut seqs[d]))
            .collect();
        for part in batch.chunks(500) {
            pipeline.process(part).await;
        }
        if let Some((config, influx)) = &retention {
            let pruner = Pruner {
                config: config.clone(),
                influx: *influx,
            };
            let cut = config.cutoffs(clock.now(), clock.now().0, *influx);
            pruner.prune(&store, &cut).await.unwrap();
        }
    }
    let bytes = store.size_bytes().await.unwrap();
    let per = bytes as f64 / (devices as f64 * days as f64);
    println!(
        "{name:<34} {:>8.1} MB live, {:>7.0} bytes per device-day ({:.0} s)",
        bytes as f64 / 1e6,
        per,
        started.elapsed().as_secs_f64()
    );
    store.close().await;
    per
}

#[tokio::main]
async fn main() {
    let devices = env_or("BENCH_DEVICES", 100) as usize;
    let days = env_or("BENCH_DAYS", 120);
    println!("{devices} devices, {days} days, 25 messages per device-day, SQLite");
    let keep_all = RetentionConfig {
        messages_days: u32::MAX / 2,
        ..RetentionConfig::default()
    };
    let base = run(
        "everything kept (baseline)",
        Some((keep_all, false)),
        devices,
        days,
    )
    .await;
    let default = run(
        "retention, store only (35 d)",
        Some((RetentionConfig::default(), false)),
        devices,
        days,
    )
    .await;
    let influx = run(
        "retention, InfluxDB holds telemetry",
        Some((RetentionConfig::default(), true)),
        devices,
        days,
    )
    .await;
    println!(
        "ratio to the baseline: store only {:.3}, with InfluxDB {:.3}",
        default / base,
        influx / base
    );
}
