//! Runs the cohort watch over the store: on a schedule inside `serve`, and on demand
//! (`cloud-ingest cohorts`, `POST /api/v1/cohorts/run`). Reads the facts, runs the pure
//! [`super::watch`], records the flags and reports the new ones.

use std::sync::Arc;
use std::time::Duration;

use protocol::clock::Clock;
use tokio::sync::watch as signal;

use super::watch::{self, WatchConfig, WatchReport};
use super::Incident;
use crate::ops::events::{self, Emit};
use crate::ops::metrics::Metrics;
use crate::store::{Store, StoreError};

/// The scheduled watch.
#[derive(Debug, Clone)]
pub struct Watcher {
    /// How it decides and how often it runs.
    pub config: WatchConfig,
}

impl Watcher {
    /// One run at `at_ms` (ingest clock): the report, with the flags recorded and the
    /// new ones counted. `truth` is the simulation's ground truth, when there is one.
    pub async fn check(
        &self,
        store: &Store,
        at_ms: u64,
        truth: Option<Vec<Incident>>,
        metrics: &Metrics,
    ) -> Result<WatchReport, StoreError> {
        let mut facts = store.fleet_facts().await?;
        facts.truth = truth;
        let report = watch::run(&facts, &self.config, at_ms);
        let new = store.record_flags(&report.flags, at_ms).await?;
        for f in &new {
            events::CohortFlagged { flag: f }.emit(metrics);
        }
        events::CohortWatchRan {
            tests: report.tests,
            flags: report.flags.len(),
            new: new.len(),
        }
        .emit(metrics);
        Ok(report)
    }

    /// Runs every `interval_s` (wall clock) until `stop`; not at all when it is 0.
    pub async fn run(
        self,
        store: Store,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        mut stop: signal::Receiver<bool>,
    ) {
        if self.config.interval_s == 0 {
            return;
        }
        let every = Duration::from_secs(self.config.interval_s);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if let Err(e) = self.check(&store, clock.now().0, None, &metrics).await {
                events::OutboxFailed {
                    outbox: "cohort watch",
                    error: &e,
                }
                .emit(&metrics);
            }
        }
    }
}
