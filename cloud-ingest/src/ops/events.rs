//! Internal events: one named type per thing a stage reports, which writes its log
//! line and updates its metric in one place, so logs and `/metrics` cannot drift
//! apart. Stages never touch [`Metrics`] or log these facts themselves.

use std::fmt::Display;
use std::time::Duration;

use protocol::command::AckStatus;
use protocol::Channel;

use super::metrics::{label, Metrics};
use crate::ingest::OpenedTicket;
use crate::policy::Hold;

/// An event that reports itself: a log line and a metric.
pub trait Emit {
    /// Logs the event and counts it.
    fn emit(self, metrics: &Metrics);
}

/// A message was accepted (committed).
#[derive(Debug, Clone, Copy)]
pub struct MessageAccepted {
    /// Its channel.
    pub channel: Channel,
    /// Seconds from its device time to its receipt.
    pub lag_s: f64,
    /// Whether a higher seq of its device had arrived before it.
    pub out_of_order: bool,
}

impl Emit for MessageAccepted {
    fn emit(self, m: &Metrics) {
        m.accepted
            .get_or_create(&label("channel", self.channel.as_str()))
            .inc();
        m.lag_seconds.observe(self.lag_s);
        if self.out_of_order {
            m.out_of_order.inc();
        }
    }
}

/// A message went to the dead-letter store.
#[derive(Debug, Clone, Copy)]
pub struct MessageRejected<'a> {
    /// Its topic.
    pub topic: &'a str,
    /// The reason code.
    pub reason: &'static str,
    /// What was wrong.
    pub detail: &'a str,
}

impl Emit for MessageRejected<'_> {
    fn emit(self, m: &Metrics) {
        // One line per reason and device a minute: the device level of the topic, or
        // the topic itself when it has none.
        let device = self.topic.split('/').nth(2).unwrap_or(self.topic);
        let key = format!("{} {device}", self.reason);
        match m.rejections_logged.admit(&key, std::time::Instant::now()) {
            Some(0) => tracing::warn!(
                topic = %self.topic,
                reason = self.reason,
                "dead-lettered: {}",
                self.detail
            ),
            Some(left_out) => tracing::warn!(
                topic = %self.topic,
                reason = self.reason,
                "dead-lettered: {} ({left_out} more like it from this device in the last minute)",
                self.detail
            ),
            None => {}
        }
        m.rejected
            .get_or_create(&label("reason", self.reason))
            .inc();
    }
}

/// Redeliveries dropped by deduplication.
#[derive(Debug, Clone, Copy)]
pub struct DuplicatesDropped {
    /// How many.
    pub count: u64,
}

impl Emit for DuplicatesDropped {
    fn emit(self, m: &Metrics) {
        if self.count > 0 {
            tracing::debug!(count = self.count, "redeliveries dropped");
        }
        m.duplicates.inc_by(self.count);
    }
}

/// A device restarted its seq count under a new epoch: it lost its persisted state.
#[derive(Debug, Clone, Copy)]
pub struct SeqRestarted<'a> {
    /// The device.
    pub device: &'a str,
    /// Its new epoch.
    pub epoch: u32,
    /// Restarts in the batch (one, but for a device that reset twice in it).
    pub resets: u64,
}

impl Emit for SeqRestarted<'_> {
    fn emit(self, m: &Metrics) {
        tracing::warn!(
            device = self.device,
            epoch = self.epoch,
            "device restarted its seq count under a new epoch (its state was lost); its new messages are kept"
        );
        m.seq_resets.inc_by(self.resets);
    }
}

/// A device was scored.
#[derive(Debug, Clone, Copy)]
pub struct DeviceScored {
    /// The risk.
    pub risk: f64,
}

impl Emit for DeviceScored {
    fn emit(self, m: &Metrics) {
        m.scores.inc();
        m.risk.observe(self.risk);
    }
}

/// The policy held an alarm back.
#[derive(Debug, Clone, Copy)]
pub struct DecisionHeld<'a> {
    /// The device.
    pub device: &'a str,
    /// Why.
    pub reason: Hold,
}

impl Emit for DecisionHeld<'_> {
    fn emit(self, m: &Metrics) {
        tracing::debug!(
            device = self.device,
            reason = self.reason.as_str(),
            "alarm held back"
        );
        m.held
            .get_or_create(&label("reason", self.reason.as_str()))
            .inc();
    }
}

/// Where the feature states of a batch's devices came from, when not the cache.
#[derive(Debug, Clone, Copy)]
pub struct FeaturesLoaded {
    /// Devices picked up from their stored state.
    pub restored: u64,
    /// Devices rebuilt from stored messages.
    pub rebuilt: u64,
    /// Messages those rebuilds read back.
    pub replayed: u64,
}

impl Emit for FeaturesLoaded {
    fn emit(self, m: &Metrics) {
        m.feature_restores.inc_by(self.restored);
        m.feature_rebuilds.inc_by(self.rebuilt);
        m.messages_replayed.inc_by(self.replayed);
    }
}

/// A retention pass finished.
#[derive(Debug, Clone, Copy)]
pub struct Pruned {
    /// What it removed.
    pub report: crate::retention::PruneReport,
}

impl Emit for Pruned {
    fn emit(self, m: &Metrics) {
        let r = self.report;
        if r.messages + r.dead_letters + r.outboxes + r.score_days > 0 {
            tracing::info!(
                messages = r.messages,
                dead_letters = r.dead_letters,
                outboxes = r.outboxes,
                score_days = r.score_days,
                "retention pruned old rows"
            );
        }
        for (table, n) in [
            ("messages", r.messages),
            ("dead_letters", r.dead_letters),
            ("outboxes", r.outboxes),
            ("score_days", r.score_days),
        ] {
            m.pruned.get_or_create(&label("table", table)).inc_by(n);
        }
    }
}

/// An alarm could not become an offer: the device's data breaks the protocol's rules.
#[derive(Debug, Clone, Copy)]
pub struct OfferRefused<'a> {
    /// Why.
    pub error: &'a crate::policy::offer::OfferError,
}

impl Emit for OfferRefused<'_> {
    fn emit(self, _: &Metrics) {
        // Counted as a held decision (`unofferable`); this says why.
        tracing::warn!("no offer sent: {}", self.error);
    }
}

/// A device answered a command.
#[derive(Debug, Clone, Copy)]
pub struct CommandAnswered {
    /// The answer.
    pub status: AckStatus,
}

impl Emit for CommandAnswered {
    fn emit(self, m: &Metrics) {
        m.command_answers
            .get_or_create(&label("status", self.status.as_str()))
            .inc();
    }
}

/// A ticket opened (committed).
#[derive(Debug, Clone, Copy)]
pub struct TicketOpened<'a> {
    /// The ticket.
    pub ticket: &'a OpenedTicket,
}

impl Emit for TicketOpened<'_> {
    fn emit(self, m: &Metrics) {
        let t = self.ticket;
        tracing::info!(ticket = %t.ticket_ref, device = %t.device_id, risk = t.risk, problem = %t.problem, tier = %t.tier, "ticket opened");
        m.tickets
            .get_or_create(&label("tier", t.tier.as_str()))
            .inc();
    }
}

/// A batch committed.
#[derive(Debug, Clone, Copy)]
pub struct BatchCommitted {
    /// Messages in it.
    pub messages: usize,
    /// Time to plan, apply and commit it.
    pub elapsed: Duration,
}

impl Emit for BatchCommitted {
    fn emit(self, m: &Metrics) {
        tracing::trace!(messages = self.messages, elapsed = ?self.elapsed, "batch committed");
        m.batch_seconds.observe(self.elapsed.as_secs_f64());
        m.store_unavailable.set(0);
        m.set_store_error(None);
    }
}

/// A batch failed and is tried again whole.
#[derive(Clone, Copy)]
pub struct BatchRetried<'a> {
    /// The attempt that failed (1 for the first).
    pub attempt: u32,
    /// Attempts allowed before the batch is split; `None` while the store is
    /// unavailable (retried until it is back).
    pub of: Option<u32>,
    /// Why it failed.
    pub error: &'a dyn Display,
    /// The pause before the next attempt.
    pub retry_in: Duration,
}

impl Emit for BatchRetried<'_> {
    fn emit(self, m: &Metrics) {
        match self.of {
            Some(of) => tracing::warn!(
                "batch failed ({}); retrying in {:?} ({}/{of} before it is split)",
                self.error,
                self.retry_in,
                self.attempt,
            ),
            None => {
                tracing::warn!(
                    "store unavailable ({}); retrying the batch in {:?} (attempt {})",
                    self.error,
                    self.retry_in,
                    self.attempt,
                );
                m.store_unavailable.set(1);
                m.set_store_error(Some(self.error.to_string()));
            }
        }
        m.batch_retries.inc();
    }
}

/// A message that failed alone and whose dead letter the store refused too: logged
/// with its payload (the only record left) and counted.
#[derive(Clone, Copy)]
pub struct MessageDropped<'a> {
    /// Its topic.
    pub topic: &'a str,
    /// Its payload (the dead letter's excerpt).
    pub payload: &'a [u8],
    /// Why the dead letter was refused.
    pub error: &'a dyn Display,
}

impl Emit for MessageDropped<'_> {
    fn emit(self, m: &Metrics) {
        tracing::error!(
            topic = %self.topic,
            payload = %String::from_utf8_lossy(self.payload),
            "message dropped: neither it nor its dead letter could be stored ({})",
            self.error
        );
        m.messages_dropped.inc();
    }
}

/// A batch kept failing and is tried in two halves.
#[derive(Clone, Copy)]
pub struct BatchSplit<'a> {
    /// Messages in the batch split.
    pub messages: usize,
    /// The last failure.
    pub error: &'a dyn Display,
}

impl Emit for BatchSplit<'_> {
    fn emit(self, m: &Metrics) {
        tracing::warn!(
            "a batch of {} messages keeps failing ({}); trying its halves",
            self.messages,
            self.error
        );
        m.batch_splits.inc();
    }
}

/// An offer command was published.
#[derive(Debug, Clone, Copy)]
pub struct CommandSent<'a> {
    /// The command.
    pub command_id: &'a str,
    /// Sends so far, this one included.
    pub attempt: u32,
}

impl Emit for CommandSent<'_> {
    fn emit(self, m: &Metrics) {
        tracing::debug!(
            command = self.command_id,
            attempt = self.attempt,
            "command sent"
        );
        m.commands_sent.inc();
    }
}

/// An offer lapsed before its device answered.
#[derive(Debug, Clone, Copy)]
pub struct CommandExpired<'a> {
    /// The command.
    pub command_id: &'a str,
}

impl Emit for CommandExpired<'_> {
    fn emit(self, m: &Metrics) {
        tracing::info!(command = self.command_id, "offer expired unanswered");
        m.commands_expired.inc();
    }
}

/// A webhook was delivered.
#[derive(Debug, Clone, Copy)]
pub struct WebhookDelivered<'a> {
    /// The endpoint.
    pub url: &'a str,
    /// Attempts it took.
    pub attempts: u32,
}

impl Emit for WebhookDelivered<'_> {
    fn emit(self, m: &Metrics) {
        tracing::debug!(
            url = self.url,
            attempts = self.attempts,
            "webhook delivered"
        );
        m.webhooks
            .get_or_create(&label("outcome", "delivered"))
            .inc();
    }
}

/// A webhook attempt failed.
#[derive(Debug, Clone, Copy)]
pub struct WebhookFailed<'a> {
    /// The endpoint.
    pub url: &'a str,
    /// Attempts so far.
    pub attempts: u32,
    /// What went wrong.
    pub error: &'a str,
    /// Whether this was the last attempt.
    pub give_up: bool,
}

impl Emit for WebhookFailed<'_> {
    fn emit(self, m: &Metrics) {
        let giving_up = if self.give_up { "; giving up" } else { "" };
        tracing::warn!(
            url = self.url,
            attempts = self.attempts,
            "webhook delivery failed: {}{giving_up}",
            self.error
        );
        let outcome = if self.give_up { "failed" } else { "retry" };
        m.webhooks.get_or_create(&label("outcome", outcome)).inc();
    }
}

/// A pass over an outbox failed (the database, usually); the worker tries again.
#[derive(Clone, Copy)]
pub struct OutboxFailed<'a> {
    /// Which outbox.
    pub outbox: &'static str,
    /// Why.
    pub error: &'a dyn Display,
}

impl Emit for OutboxFailed<'_> {
    fn emit(self, m: &Metrics) {
        tracing::warn!(outbox = self.outbox, "outbox pass failed: {}", self.error);
        m.outbox_errors
            .get_or_create(&label("outbox", self.outbox))
            .inc();
    }
}

/// The cohort watch flagged a cohort for the first time.
#[derive(Debug, Clone, Copy)]
pub struct CohortFlagged<'a> {
    /// The flag.
    pub flag: &'a crate::cohorts::watch::Flag,
}

impl Emit for CohortFlagged<'_> {
    fn emit(self, m: &Metrics) {
        let f = self.flag;
        let e = &f.evidence;
        tracing::warn!(
            kind = f.kind.as_str(),
            cohort = f.cohort,
            problem = f.problem.map_or("restarts", crate::policy::Problem::as_str),
            window_days = f.window_days,
            observed = e.observed,
            expected = e.expected,
            q = e.q_value,
            "cohort flagged: it fails more than the rest of the fleet at the same ages"
        );
        m.cohort_flags
            .get_or_create(&label("kind", f.kind.as_str()))
            .inc();
    }
}

/// The cohort watch ran.
#[derive(Debug, Clone, Copy)]
pub struct CohortWatchRan {
    /// Tests in its family.
    pub tests: usize,
    /// Flags standing.
    pub flags: usize,
    /// Of them, new.
    pub new: usize,
}

impl Emit for CohortWatchRan {
    fn emit(self, m: &Metrics) {
        tracing::info!(
            tests = self.tests,
            flags = self.flags,
            new = self.new,
            "cohort watch ran"
        );
        m.cohort_watch_runs.inc();
    }
}

/// Telemetry points reached InfluxDB.
#[derive(Debug, Clone, Copy)]
pub struct PointsExported {
    /// How many.
    pub points: u64,
}

impl Emit for PointsExported {
    fn emit(self, m: &Metrics) {
        tracing::trace!(points = self.points, "points written to InfluxDB");
        m.influx_points.inc_by(self.points);
    }
}

/// How many rows wait for InfluxDB.
#[derive(Debug, Clone, Copy)]
pub struct ExportBacklog {
    /// Rows waiting.
    pub rows: u64,
}

impl Emit for ExportBacklog {
    fn emit(self, m: &Metrics) {
        m.influx_backlog.set(self.rows as i64);
    }
}

/// A write to InfluxDB failed.
#[derive(Clone, Copy)]
pub struct ExportFailed<'a> {
    /// Why.
    pub error: &'a dyn Display,
    /// The pause before the next try.
    pub retry_in: Duration,
}

impl Emit for ExportFailed<'_> {
    fn emit(self, m: &Metrics) {
        tracing::warn!(
            "InfluxDB export: {}; retrying in {:?}",
            self.error,
            self.retry_in
        );
        m.influx_errors.inc();
    }
}

/// A new model took over.
#[derive(Debug, Clone, Copy)]
pub struct ModelReloaded<'a> {
    /// Its version.
    pub version: &'a str,
}

impl Emit for ModelReloaded<'_> {
    fn emit(self, m: &Metrics) {
        tracing::info!(version = self.version, "risk model reloaded");
        m.model_reloads
            .get_or_create(&label("outcome", "loaded"))
            .inc();
    }
}

/// A model file was refused; the model in force stays.
#[derive(Clone, Copy)]
pub struct ModelRefused<'a> {
    /// Why.
    pub error: &'a dyn Display,
}

impl Emit for ModelRefused<'_> {
    fn emit(self, m: &Metrics) {
        tracing::error!(
            "risk model not reloaded, the previous one stays in force: {}",
            self.error
        );
        m.model_reloads
            .get_or_create(&label("outcome", "refused"))
            .inc();
    }
}

/// The MQTT session was lost or refused.
#[derive(Clone, Copy)]
pub struct MqttConnectionLost<'a> {
    /// The broker.
    pub broker: &'a str,
    /// Why.
    pub error: &'a dyn Display,
    /// The pause before reconnecting.
    pub retry_in: Duration,
}

impl Emit for MqttConnectionLost<'_> {
    fn emit(self, m: &Metrics) {
        tracing::warn!(
            broker = self.broker,
            "MQTT connection: {}; retrying in {:?}",
            self.error,
            self.retry_in
        );
        m.mqtt_connection_errors.inc();
    }
}

/// The broker handed over a packet above the session's limit; the session reconnects
/// with a limit that fits, reads it once, and decode dead-letters it.
#[derive(Debug, Clone, Copy)]
pub struct OversizeRecovered<'a> {
    /// The broker.
    pub broker: &'a str,
    /// The packet's size, bytes.
    pub size: usize,
    /// The session's limit from now on.
    pub limit: usize,
}

impl Emit for OversizeRecovered<'_> {
    fn emit(self, m: &Metrics) {
        tracing::warn!(
            broker = self.broker,
            "the broker sent a {}-byte packet, above mqtt.max_packet_bytes: reading it once with a {}-byte limit to dead-letter it; set the broker's message_size_limit below mqtt.max_packet_bytes",
            self.size,
            self.limit
        );
        m.oversize_recoveries.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(m: &Metrics, line_start: &str) -> String {
        m.render()
            .lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("no {line_start} in /metrics"))
            .to_owned()
    }

    #[test]
    fn events_move_their_metrics() {
        let m = Metrics::new();
        MessageRejected {
            topic: "t",
            reason: "bad_json",
            detail: "x",
        }
        .emit(&m);
        MessageRejected {
            topic: "t",
            reason: "bad_json",
            detail: "y",
        }
        .emit(&m);
        assert!(count(
            &m,
            "fleet_ingest_messages_rejected_total{reason=\"bad_json\"}"
        )
        .ends_with(" 2"));
        // Both went through the log throttle under their reason and device (here the
        // whole topic, which has no device level): a third is held back, another
        // device's is not.
        let now = std::time::Instant::now();
        assert_eq!(m.rejections_logged.admit("bad_json t", now), None);
        assert_eq!(m.rejections_logged.admit("bad_json dev-b", now), Some(0));
        MessageAccepted {
            channel: Channel::Heartbeat,
            lag_s: 1.0,
            out_of_order: true,
        }
        .emit(&m);
        assert!(count(
            &m,
            "fleet_ingest_messages_accepted_total{channel=\"heartbeat\"}"
        )
        .ends_with(" 1"));
        assert!(count(&m, "fleet_ingest_out_of_order_total").ends_with(" 1"));
        DecisionHeld {
            device: "d",
            reason: Hold::CoolDown,
        }
        .emit(&m);
        assert!(count(
            &m,
            "fleet_ingest_decisions_held_total{reason=\"cool_down\"}"
        )
        .ends_with(" 1"));
        WebhookFailed {
            url: "u",
            attempts: 12,
            error: "HTTP 500",
            give_up: true,
        }
        .emit(&m);
        assert!(count(
            &m,
            "fleet_ingest_webhook_deliveries_total{outcome=\"failed\"}"
        )
        .ends_with(" 1"));
        ExportBacklog { rows: 42 }.emit(&m);
        assert!(count(&m, "fleet_ingest_influx_backlog").ends_with(" 42"));
        CommandAnswered {
            status: AckStatus::Declined,
        }
        .emit(&m);
        assert!(count(
            &m,
            "fleet_ingest_command_answers_total{status=\"declined\"}"
        )
        .ends_with(" 1"));
    }
}
