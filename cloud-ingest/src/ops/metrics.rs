//! The Prometheus metrics cloud-ingest exposes on `/metrics`. Only
//! [`super::events`] updates them, each together with its log line.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels: one name, one value.
pub type Label = Vec<(&'static str, String)>;

/// Every metric, registered once.
pub struct Metrics {
    registry: Registry,
    /// Which rejections get a log line (one per reason and device a minute).
    pub rejections_logged: super::throttle::Throttle,
    /// Messages accepted, by channel.
    pub accepted: Family<Label, Counter>,
    /// Messages rejected to the dead-letter store, by reason.
    pub rejected: Family<Label, Counter>,
    /// Redelivered messages dropped by deduplication.
    pub duplicates: Counter,
    /// Devices' restarts of their seq count under a new epoch.
    pub seq_resets: Counter,
    /// Messages that arrived after a higher seq of their device.
    pub out_of_order: Counter,
    /// Seconds from a message's device time to its ingestion (ingest clock).
    pub lag_seconds: Histogram,
    /// Scores computed.
    pub scores: Counter,
    /// Risk of the scores computed.
    pub risk: Histogram,
    /// Tickets opened, by tier.
    pub tickets: Family<Label, Counter>,
    /// SLA breaches recorded, by tier.
    pub sla_breaches: Family<Label, Counter>,
    /// Decisions to hold back, by reason.
    pub held: Family<Label, Counter>,
    /// Seconds per committed batch.
    pub batch_seconds: Histogram,
    /// Command publishes (first sends and resends).
    pub commands_sent: Counter,
    /// Device answers to commands, by status.
    pub command_answers: Family<Label, Counter>,
    /// Webhook deliveries, by outcome (delivered, retry, failed).
    pub webhooks: Family<Label, Counter>,
    /// Telemetry points written to InfluxDB.
    pub influx_points: Counter,
    /// Failed InfluxDB writes (retried).
    pub influx_errors: Counter,
    /// Telemetry rows waiting for InfluxDB.
    pub influx_backlog: Gauge,
    /// 1 while batches fail because the store is unavailable, else 0.
    pub store_unavailable: Gauge,
    /// Why the store is unavailable, while it is (for `/healthz`).
    store_error: std::sync::Mutex<Option<String>>,
    /// Model reloads, by outcome.
    pub model_reloads: Family<Label, Counter>,
    /// Batches retried after a database conflict or error.
    pub batch_retries: Counter,
    /// Batches split in two because they kept failing.
    pub batch_splits: Counter,
    /// Messages dropped because not even their dead letter could be stored.
    pub messages_dropped: Counter,
    /// Rows removed by retention, by table.
    pub pruned: Family<Label, Counter>,
    /// Devices whose feature state was picked up from the store's snapshot.
    pub feature_restores: Counter,
    /// Devices whose feature state was rebuilt from stored messages.
    pub feature_rebuilds: Counter,
    /// Stored messages read back by those rebuilds.
    pub messages_replayed: Counter,
    /// Offers that lapsed before the device answered.
    pub commands_expired: Counter,
    /// Failed passes over an outbox, by outbox.
    pub outbox_errors: Family<Label, Counter>,
    /// Lost or refused MQTT connections.
    pub mqtt_connection_errors: Counter,
    /// Packets above the session's limit, read once with a raised limit.
    pub oversize_recoveries: Counter,
    /// Cohorts the watch flagged (each once, when first flagged), by kind.
    pub cohort_flags: Family<Label, Counter>,
    /// Runs of the cohort watch.
    pub cohort_watch_runs: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("fleet_ingest");
        let accepted = register(
            &mut r,
            "messages_accepted",
            "Messages accepted, by channel",
            Family::<Label, Counter>::default(),
        );
        let rejected = register(
            &mut r,
            "messages_rejected",
            "Messages dead-lettered, by reason",
            Family::<Label, Counter>::default(),
        );
        let duplicates = register(
            &mut r,
            "duplicates",
            "Redeliveries dropped by (device, epoch, seq) deduplication",
            Counter::default(),
        );
        let seq_resets = register(
            &mut r,
            "seq_resets",
            "Devices that restarted their seq count under a new epoch (lost state)",
            Counter::default(),
        );
        let out_of_order = register(
            &mut r,
            "out_of_order",
            "Messages older than their device's newest seq",
            Counter::default(),
        );
        let lag_seconds = register(
            &mut r,
            "lag_seconds",
            "Device time to ingestion",
            Histogram::new(exponential_buckets(0.01, 4.0, 12)),
        );
        let scores = register(&mut r, "scores", "Risk scores computed", Counter::default());
        let risk = register(
            &mut r,
            "risk",
            "Risk of the scores computed",
            Histogram::new([0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9]),
        );
        let tickets = register(
            &mut r,
            "tickets_opened",
            "Tickets opened, by tier",
            Family::<Label, Counter>::default(),
        );
        let sla_breaches = register(
            &mut r,
            "sla_breaches",
            "Tickets whose SLA window ran out while open, by tier (each counted once)",
            Family::<Label, Counter>::default(),
        );
        let held = register(
            &mut r,
            "decisions_held",
            "Alarms held back, by reason",
            Family::<Label, Counter>::default(),
        );
        let batch_seconds = register(
            &mut r,
            "batch_seconds",
            "Time to process and commit one batch",
            Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
        );
        let commands_sent = register(
            &mut r,
            "commands_sent",
            "Command publishes, resends included",
            Counter::default(),
        );
        let command_answers = register(
            &mut r,
            "command_answers",
            "Device answers to commands, by status",
            Family::<Label, Counter>::default(),
        );
        let webhooks = register(
            &mut r,
            "webhook_deliveries",
            "Webhook attempts, by outcome",
            Family::<Label, Counter>::default(),
        );
        let influx_points = register(
            &mut r,
            "influx_points",
            "Points written to InfluxDB",
            Counter::default(),
        );
        let influx_errors = register(
            &mut r,
            "influx_errors",
            "Failed InfluxDB writes",
            Counter::default(),
        );
        let influx_backlog = register(
            &mut r,
            "influx_backlog",
            "Rows waiting for InfluxDB",
            Gauge::default(),
        );
        let model_reloads = register(
            &mut r,
            "model_reloads",
            "Model reloads, by outcome",
            Family::<Label, Counter>::default(),
        );
        let batch_retries = register(
            &mut r,
            "batch_retries",
            "Batches retried after a database conflict or error",
            Counter::default(),
        );
        let messages_dropped = register(
            &mut r,
            "messages_dropped",
            "Messages dropped because not even their dead letter could be stored",
            Counter::default(),
        );
        let store_unavailable = register(
            &mut r,
            "store_unavailable",
            "1 while batches fail because the store is unavailable",
            Gauge::default(),
        );
        let batch_splits = register(
            &mut r,
            "batch_splits",
            "Batches split in two because they kept failing",
            Counter::default(),
        );
        let pruned = register(
            &mut r,
            "pruned_rows",
            "Rows removed by retention, by table",
            Family::<Label, Counter>::default(),
        );
        let feature_restores = register(
            &mut r,
            "feature_restores",
            "Devices whose feature state was picked up from the store's snapshot",
            Counter::default(),
        );
        let feature_rebuilds = register(
            &mut r,
            "feature_rebuilds",
            "Devices whose feature state was rebuilt from stored messages",
            Counter::default(),
        );
        let messages_replayed = register(
            &mut r,
            "messages_replayed",
            "Stored messages read back to rebuild feature states",
            Counter::default(),
        );
        let commands_expired = register(
            &mut r,
            "commands_expired",
            "Offers that lapsed before the device answered",
            Counter::default(),
        );
        let outbox_errors = register(
            &mut r,
            "outbox_errors",
            "Failed passes over an outbox, by outbox",
            Family::<Label, Counter>::default(),
        );
        let mqtt_connection_errors = register(
            &mut r,
            "mqtt_connection_errors",
            "Lost or refused MQTT connections",
            Counter::default(),
        );
        let oversize_recoveries = register(
            &mut r,
            "oversize_recoveries",
            "Packets above mqtt.max_packet_bytes, read once with a raised limit",
            Counter::default(),
        );
        let cohort_flags = register(
            &mut r,
            "cohort_flags",
            "Cohorts the cohort watch flagged, each once when first flagged, by kind",
            Family::<Label, Counter>::default(),
        );
        let cohort_watch_runs = register(
            &mut r,
            "cohort_watch_runs",
            "Runs of the cohort watch",
            Counter::default(),
        );
        for kind in [
            "model",
            "batch",
            "firmware",
            "purchase_month",
            "firmware_regression",
        ] {
            let _ = cohort_flags.get_or_create(&label("kind", kind));
        }
        // Every rejection reason shows from the start, at zero.
        for reason in protocol::DecodeError::REASONS
            .iter()
            .chain(&crate::ingest::decode::CLOUD_REASONS)
        {
            let _ = rejected.get_or_create(&label("reason", reason));
        }
        for tier in crate::tickets::Tier::ALL {
            let _ = tickets.get_or_create(&label("tier", tier.as_str()));
            let _ = sla_breaches.get_or_create(&label("tier", tier.as_str()));
        }
        Metrics {
            registry: r,
            rejections_logged: super::throttle::Throttle::new(std::time::Duration::from_secs(60)),
            accepted,
            rejected,
            duplicates,
            seq_resets,
            out_of_order,
            lag_seconds,
            scores,
            risk,
            tickets,
            sla_breaches,
            held,
            batch_seconds,
            commands_sent,
            command_answers,
            webhooks,
            influx_points,
            influx_errors,
            influx_backlog,
            model_reloads,
            batch_retries,
            batch_splits,
            messages_dropped,
            store_unavailable,
            store_error: std::sync::Mutex::new(None),
            pruned,
            feature_restores,
            feature_rebuilds,
            messages_replayed,
            commands_expired,
            outbox_errors,
            mqtt_connection_errors,
            oversize_recoveries,
            cohort_flags,
            cohort_watch_runs,
        }
    }

    /// Records why the store is unavailable, or that it is back (`None`).
    pub fn set_store_error(&self, error: Option<String>) {
        *self.store_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    /// Why the store is unavailable, while it is.
    pub fn store_error(&self) -> Option<String> {
        self.store_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Registers a metric under `name` and hands it back.
fn register<M: prometheus_client::registry::Metric + Clone>(
    r: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    r.register(name, help, metric.clone());
    metric
}

/// A one-label set.
pub fn label(name: &'static str, value: &str) -> Label {
    vec![(name, value.to_owned())]
}
