//! Effects: what leaves the service after a batch commits. Each is a row in an outbox
//! written in the deciding transaction and drained by a worker of its own, so a slow or
//! absent receiver never holds up ingest and a crash never loses an effect:
//!
//! - [`commands`]: offer commands to devices over MQTT, resent until answered;
//! - [`webhooks`]: signed ticket announcements to outside systems ([`webhooks::WebhookBody`]);
//! - [`export`]: raw telemetry to InfluxDB;
//! - [`breaches`]: SLA breaches, recorded once on the ticket and announced to webhooks.
//!
//! Every worker retries on [`protocol::retry::Backoff`].

pub mod breaches;
pub mod commands;
pub mod export;
pub mod webhooks;

/// Wall-clock milliseconds, for retry schedules (never simulated).
pub fn wall_ms() -> u64 {
    protocol::Timestamp::from_system_time(std::time::SystemTime::now()).0
}
