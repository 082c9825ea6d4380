//! Raw telemetry to InfluxDB (v2 write API, through the `influxdb2` crate).
//!
//! The store is the buffer: accepted heartbeats and events are marked pending in the
//! same transaction that accepts them, and this exporter writes them in batches and
//! clears the mark once the server said 204. A slow or absent InfluxDB therefore never
//! blocks ingest or loses a point: the backlog waits in the store (its size is the
//! `influx_backlog` gauge), and the exporter backs off and retries. A point may be
//! written twice after a crash between the write and the mark: InfluxDB keeps one
//! point per series and timestamp, so a repeat overwrites itself.

use std::sync::Arc;
use std::time::Duration;

use influxdb2::api::write::TimestampPrecision;
use influxdb2::models::DataPoint;
use protocol::event::Event;
use protocol::retry::Backoff;
use protocol::{Limits, Message};
use tokio::sync::watch;

use crate::ops::events::{self, Emit};
use crate::ops::metrics::Metrics;
use crate::score::decode_stored;
use crate::store::{Store, StoreError};

/// Where to write.
#[derive(Debug, Clone)]
pub struct InfluxTarget {
    /// Server URL.
    pub url: String,
    /// Organisation.
    pub org: String,
    /// Bucket.
    pub bucket: String,
    /// API token.
    pub token: String,
}

/// The exporter.
#[derive(Debug, Clone)]
pub struct Exporter {
    /// Where to write.
    pub target: InfluxTarget,
    /// Rows per write.
    pub batch: usize,
    /// Pause when there is nothing to write.
    pub idle: Duration,
    /// Pause after a failed write: doubling while the server keeps failing.
    pub retry: Backoff,
}

impl Exporter {
    /// Exports until `stop`, then once more to drain what is pending.
    pub async fn run(self, store: Store, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
        let client = influxdb2::Client::new(&self.target.url, &self.target.org, &self.target.token);
        let mut failures = 0u32;
        loop {
            let pause = match self.export_once(&store, &client, &metrics).await {
                Ok(n) if n == self.batch => {
                    failures = 0;
                    Duration::ZERO
                }
                Ok(_) => {
                    failures = 0;
                    self.idle
                }
                Err(error) => {
                    let retry_in = self.retry.delay(failures);
                    failures = failures.saturating_add(1);
                    events::ExportFailed {
                        error: &error,
                        retry_in,
                    }
                    .emit(&metrics);
                    retry_in
                }
            };
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        }
    }

    /// Writes one batch of pending rows; how many rows it covered.
    pub async fn export_once(
        &self,
        store: &Store,
        client: &influxdb2::Client,
        metrics: &Metrics,
    ) -> Result<usize, ExportError> {
        // A claim outlives a slow write; one whose exporter died lapses and is retried.
        let now = super::wall_ms();
        let rows = store
            .claim_exports(now, now + EXPORT_LEASE_MS, self.batch)
            .await?;
        events::ExportBacklog {
            rows: store.export_backlog().await?,
        }
        .emit(metrics);
        if rows.is_empty() {
            return Ok(0);
        }
        let limits = Limits::default();
        let mut points = Vec::with_capacity(rows.len());
        let mut keys = Vec::with_capacity(rows.len());
        for r in rows {
            if let Some(m) = decode_stored(&r.channel, &r.payload, &limits) {
                points.extend(to_points(&r.tenant, &m));
            }
            keys.push((r.device_id, r.epoch, r.seq));
        }
        let n = points.len() as u64;
        let written = client
            .write_with_precision(
                &self.target.bucket,
                futures::stream::iter(points),
                TimestampPrecision::Milliseconds,
            )
            .await;
        if let Err(e) = written {
            store.release_exports(&keys).await?;
            return Err(e.into());
        }
        events::PointsExported { points: n }.emit(metrics);
        store.mark_exported(&keys).await?;
        Ok(keys.len())
    }
}

/// How long an exporter holds the rows it writes, ms.
const EXPORT_LEASE_MS: u64 = 120_000;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading or marking rows.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server refused or could not be reached.
    #[error("writing to InfluxDB: {0}")]
    Write(#[from] influxdb2::RequestError),
}

/// The points a message becomes: `heartbeat` (one per interval, numeric fields) and
/// `event` (one per event, tagged with its kind), tagged with tenant and device.
pub fn to_points(tenant: &str, m: &Message) -> Vec<DataPoint> {
    let point = |measurement: &str, device: &str, ts: u64| {
        DataPoint::builder(measurement)
            .tag("tenant", tenant)
            .tag("device", device)
            .timestamp(ts as i64)
    };
    let built = match m {
        Message::Heartbeat(e) => {
            let b = &e.body;
            let mut p = point("heartbeat", e.device_id.as_str(), e.ts_ms.0)
                .field("seq", e.seq.0 as i64)
                .field("interval_s", i64::from(b.interval_s))
                .field("operational_s", i64::from(b.operational_s))
                .field("active_s", i64::from(b.active_s))
                .field("crashes", i64::from(b.crashes))
                .field("storage_errors", i64::from(b.storage_errors))
                .field(
                    "reboots",
                    b.reboots.values().map(|&n| i64::from(n)).sum::<i64>(),
                )
                .field("connected_s", i64::from(b.connectivity.connected_s))
                .field("disconnects", i64::from(b.connectivity.disconnects));
            if let Some(bat) = &b.battery {
                p = p
                    .field("soc_end_pct", f64::from(bat.soc_end_pct))
                    .field("max_drop_pct", f64::from(bat.max_drop_pct))
                    .field("voltage_v", f64::from(bat.voltage_v))
                    .field("charge_cycles", i64::from(bat.charge_cycles));
                if let Some(soh) = bat.soh_pct {
                    p = p.field("soh_pct", f64::from(soh));
                }
            }
            if let Some(t) = &b.thermal {
                p = p
                    .field("temp_max_c", f64::from(t.max_c))
                    .field("temp_mean_c", f64::from(t.mean_c));
            }
            p.build()
        }
        Message::Event(e) => point("event", e.device_id.as_str(), e.ts_ms.0)
            .tag("kind", e.body.kind())
            .field("seq", e.seq.0 as i64)
            .field("detail", event_detail(&e.body))
            .build(),
        _ => return Vec::new(),
    };
    built.into_iter().collect()
}

fn event_detail(e: &Event) -> String {
    serde_json::to_string(e).unwrap_or_default()
}
