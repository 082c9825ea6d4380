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
    /// Messages accepted, by channel.
    pub accepted: Family<Label, Counter>,
    /// Messages rejected to the dead-letter store, by reason.
    pub rejected: Family<Label, Counter>,
    /// Redelivered messages dropped by deduplication.
    pub duplicates: Counter,
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
    /// Model reloads, by outcome.
    pub model_reloads: Family<Label, Counter>,
    /// Batches retried after a database conflict or error.
    pub batch_retries: Counter,
    /// Offers that lapsed before the device answered.
    pub commands_expired: Counter,
    /// Failed passes over an outbox, by outbox.
    pub outbox_errors: Family<Label, Counter>,
    /// Lost or refused MQTT connections.
    pub mqtt_connection_errors: Counter,
    /// Packets above the session's limit, read once with a raised limit.
    pub oversize_recoveries: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fleet_ingest");
        let accepted = Family::<Label, Counter>::default();
        let rejected = Family::<Label, Counter>::default();
        let duplicates = Counter::default();
        let out_of_order = Counter::default();
        let lag_seconds = Histogram::new(exponential_buckets(0.01, 4.0, 12));
        let scores = Counter::default();
        let risk = Histogram::new([0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9]);
        let tickets = Family::<Label, Counter>::default();
        let held = Family::<Label, Counter>::default();
        let batch_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let commands_sent = Counter::default();
        let command_answers = Family::<Label, Counter>::default();
        let webhooks = Family::<Label, Counter>::default();
        let influx_points = Counter::default();
        let influx_errors = Counter::default();
        let influx_backlog = Gauge::default();
        let model_reloads = Family::<Label, Counter>::default();
        let batch_retries = Counter::default();
        let commands_expired = Counter::default();
        let outbox_errors = Family::<Label, Counter>::default();
        let mqtt_connection_errors = Counter::default();
        let oversize_recoveries = Counter::default();
        registry.register(
            "messages_accepted",
            "Messages accepted, by channel",
            accepted.clone(),
        );
        registry.register(
            "messages_rejected",
            "Messages dead-lettered, by reason",
            rejected.clone(),
        );
        registry.register(
            "duplicates",
            "Redeliveries dropped by (device, seq) deduplication",
            duplicates.clone(),
        );
        registry.register(
            "out_of_order",
            "Messages older than their device's newest seq",
            out_of_order.clone(),
        );
        registry.register(
            "lag_seconds",
            "Device time to ingestion",
            lag_seconds.clone(),
        );
        registry.register("scores", "Risk scores computed", scores.clone());
        registry.register("risk", "Risk of the scores computed", risk.clone());
        registry.register("tickets_opened", "Tickets opened, by tier", tickets.clone());
        registry.register(
            "decisions_held",
            "Alarms held back, by reason",
            held.clone(),
        );
        registry.register(
            "batch_seconds",
            "Time to process and commit one batch",
            batch_seconds.clone(),
        );
        registry.register(
            "commands_sent",
            "Command publishes, resends included",
            commands_sent.clone(),
        );
        registry.register(
            "command_answers",
            "Device answers to commands, by status",
            command_answers.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook attempts, by outcome",
            webhooks.clone(),
        );
        registry.register(
            "influx_points",
            "Points written to InfluxDB",
            influx_points.clone(),
        );
        registry.register(
            "influx_errors",
            "Failed InfluxDB writes",
            influx_errors.clone(),
        );
        registry.register(
            "influx_backlog",
            "Rows waiting for InfluxDB",
            influx_backlog.clone(),
        );
        registry.register(
            "model_reloads",
            "Model reloads, by outcome",
            model_reloads.clone(),
        );
        registry.register(
            "batch_retries",
            "Batches retried after a database conflict or error",
            batch_retries.clone(),
        );
        registry.register(
            "commands_expired",
            "Offers that lapsed before the device answered",
            commands_expired.clone(),
        );
        registry.register(
            "outbox_errors",
            "Failed passes over an outbox, by outbox",
            outbox_errors.clone(),
        );
        registry.register(
            "mqtt_connection_errors",
            "Lost or refused MQTT connections",
            mqtt_connection_errors.clone(),
        );
        registry.register(
            "oversize_recoveries",
            "Packets above mqtt.max_packet_bytes, read once with a raised limit",
            oversize_recoveries.clone(),
        );
        // Every rejection reason shows from the start, at zero.
        for reason in protocol::DecodeError::REASONS {
            let _ = rejected.get_or_create(&label("reason", reason));
        }
        for tier in crate::tickets::Tier::ALL {
            let _ = tickets.get_or_create(&label("tier", tier.as_str()));
        }
        Metrics {
            registry,
            accepted,
            rejected,
            duplicates,
            out_of_order,
            lag_seconds,
            scores,
            risk,
            tickets,
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
            commands_expired,
            outbox_errors,
            mqtt_connection_errors,
            oversize_recoveries,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// A one-label set.
pub fn label(name: &'static str, value: &str) -> Label {
    vec![(name, value.to_owned())]
}
