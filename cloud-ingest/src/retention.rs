//! Data lifecycle: how long each kind of row is kept, and the worker that prunes the
//! rest. Messages are kept as long as a rebuild of the feature windows and a ticket's
//! evidence may need them (35 days); with InfluxDB holding the telemetry, exported
//! heartbeats and events only briefly. Ticket events are kept forever.

use std::sync::Arc;
use std::time::Duration;

use protocol::clock::Clock;
use protocol::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::effects::wall_ms;
use crate::ops::events::{self, Emit};
use crate::ops::metrics::Metrics;
use crate::store::{Store, StoreError};

const DAY_MS: u64 = 86_400_000;
/// Rows removed per statement: small enough that no transaction holds a table long.
const CHUNK_ROWS: usize = 2_000;

/// `[retention]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days a message is kept after it was received.
    pub messages_days: u32,
    /// With `[influx]`: days an exported heartbeat or event is kept (InfluxDB holds it).
    pub exported_telemetry_days: u32,
    /// Days a dead letter is kept ...
    pub dead_letters_days: u32,
    /// ... and at most this many of them.
    pub dead_letters_max_rows: u64,
    /// Days an answered or expired command, or a finished webhook delivery, is kept.
    pub outbox_days: u32,
    /// Days of a device's score history (a row a device and day) kept.
    pub score_history_days: u32,
    /// Seconds between pruning passes (wall clock).
    pub check_interval_s: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            messages_days: 35,
            exported_telemetry_days: 2,
            dead_letters_days: 30,
            dead_letters_max_rows: 100_000,
            outbox_days: 30,
            score_history_days: 400,
            check_interval_s: 600,
        }
    }
}

/// The instants before which rows go, for one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Messages received before this (service clock).
    pub messages_ms: u64,
    /// Exported telemetry received before this, when InfluxDB holds it.
    pub telemetry_ms: Option<u64>,
    /// Dead letters received before this.
    pub dead_letters_ms: u64,
    /// Finished commands created before this (service clock).
    pub commands_ms: u64,
    /// Finished webhooks before this (wall clock, as their delivery times are).
    pub webhooks_wall_ms: u64,
    /// Score history of days before this (device time).
    pub score_days_ms: u64,
}

impl RetentionConfig {
    /// The cutoffs at `now` (service clock) and `wall` (wall clock).
    pub fn cutoffs(&self, now: Timestamp, wall: u64, influx: bool) -> Cutoffs {
        let back = |t: u64, days: u32| t.saturating_sub(u64::from(days) * DAY_MS);
        Cutoffs {
            messages_ms: back(now.0, self.messages_days),
            telemetry_ms: influx.then(|| back(now.0, self.exported_telemetry_days)),
            dead_letters_ms: back(now.0, self.dead_letters_days),
            commands_ms: back(now.0, self.outbox_days),
            webhooks_wall_ms: back(wall, self.outbox_days),
            score_days_ms: back(now.0, self.score_history_days),
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.messages_days == 0
            || self.dead_letters_days == 0
            || self.outbox_days == 0
            || self.score_history_days == 0
        {
            return Err("retention: every *_days must be at least 1".into());
        }
        if self.dead_letters_max_rows == 0 {
            return Err("retention.dead_letters_max_rows must be at least 1".into());
        }
        Ok(())
    }
}

/// Rows one pass removed, per table family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Messages.
    pub messages: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// Finished commands and webhook deliveries.
    pub outboxes: u64,
    /// Days of score history.
    pub score_days: u64,
}

/// The pruning worker.
#[derive(Debug, Clone)]
pub struct Pruner {
    /// What to keep.
    pub config: RetentionConfig,
    /// Whether InfluxDB holds the telemetry.
    pub influx: bool,
}

impl Pruner {
    /// Prunes every `check_interval_s` until `stop`.
    pub async fn run(
        self,
        store: Store,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        mut stop: watch::Receiver<bool>,
    ) {
        let every = Duration::from_secs(self.config.check_interval_s.max(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let cut = self.config.cutoffs(clock.now(), wall_ms(), self.influx);
            match self.prune(&store, &cut).await {
                Ok(r) => events::Pruned { report: r }.emit(&metrics),
                Err(e) => events::OutboxFailed {
                    outbox: "retention",
                    error: &e,
                }
                .emit(&metrics),
            }
        }
    }

    /// One pass: everything past its cutoff, in chunks.
    pub async fn prune(&self, store: &Store, cut: &Cutoffs) -> Result<PruneReport, StoreError> {
        let max_rows = self.config.dead_letters_max_rows;
        let mut messages =
            drain(|| store.prune_messages(cut.messages_ms, false, CHUNK_ROWS)).await?;
        if let Some(t) = cut.telemetry_ms {
            messages += drain(|| store.prune_messages(t, true, CHUNK_ROWS)).await?;
        }
        Ok(PruneReport {
            messages,
            dead_letters: drain(|| {
                store.prune_dead_letters(cut.dead_letters_ms, max_rows, CHUNK_ROWS)
            })
            .await?,
            outboxes: drain(|| {
                store.prune_outboxes(cut.commands_ms, cut.webhooks_wall_ms, CHUNK_ROWS)
            })
            .await?,
            score_days: drain(|| store.prune_score_days(cut.score_days_ms, CHUNK_ROWS)).await?,
        })
    }
}

/// Runs a chunked delete until a chunk comes back short; the rows removed in all.
async fn drain<F, Fut>(mut chunk: F) -> Result<u64, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, StoreError>>,
{
    let mut total = 0;
    loop {
        let n = chunk().await?;
        total += n;
        if (n as usize) < CHUNK_ROWS {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_count_back_from_the_service_clock_and_influx_shortens_telemetry() {
        let c = RetentionConfig::default();
        let now = Timestamp(100 * DAY_MS);
        let cut = c.cutoffs(now, 200 * DAY_MS, false);
        assert_eq!(cut.messages_ms, 65 * DAY_MS);
        assert_eq!(cut.telemetry_ms, None);
        assert_eq!(cut.dead_letters_ms, 70 * DAY_MS);
        assert_eq!(cut.commands_ms, 70 * DAY_MS);
        assert_eq!(cut.webhooks_wall_ms, 170 * DAY_MS);
        assert_eq!(cut.score_days_ms, 0, "400 days back from day 100");
        let late = c.cutoffs(Timestamp(500 * DAY_MS), 0, false);
        assert_eq!(late.score_days_ms, 100 * DAY_MS);
        assert_eq!(c.cutoffs(now, 0, true).telemetry_ms, Some(98 * DAY_MS));
        // Early in a clock's life nothing underflows.
        assert_eq!(c.cutoffs(Timestamp(DAY_MS), 0, true).messages_ms, 0);
        assert!(RetentionConfig {
            messages_days: 0,
            ..c.clone()
        }
        .validate()
        .is_err());
        assert!(RetentionConfig {
            score_history_days: 0,
            ..c.clone()
        }
        .validate()
        .is_err());
        assert!(c.validate().is_ok());
    }
}
