//! Ingest, one batch at a time, in the order a message travels:
//!
//! 1. [`consumer`] takes deliveries off the broker (manual acks);
//! 2. [`decode`] validates them, rejecting what fails with a reason;
//! 3. [`dedup`] puts the batch in device order and drops repeats of `(device, seq)`
//!    within the batch;
//! 4. [`snapshot`] reads what planning needs, the store's keys among them, and [`dedup`]
//!    drops what the store already holds; [`plan`] decides, without I/O, every row the
//!    batch writes, every score, decision and effect;
//! 5. [`apply`] writes the plan in the same transaction.
//!
//! [`Pipeline::process`] runs stages 2 to 5 in one transaction; the caller
//! acknowledges the batch to the broker only after it commits. A crash before the
//! commit means the broker redelivers; after it, dedup drops the redelivery.

pub mod apply;
pub mod consumer;
pub mod decode;
pub mod dedup;
pub mod plan;
pub mod snapshot;

use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::clock::Clock;
use protocol::retry::Backoff;
use protocol::Limits;
use serde::Serialize;

pub use decode::Delivery;

use crate::ops::events::{self, Emit};
use crate::ops::metrics::Metrics;
use crate::policy::{PolicyConfig, Problem};
use crate::score::{FeatureCache, ModelSlot};
use crate::store::{messages, Store, StoreError};
use crate::tickets::Tier;

/// Settings of the pipeline (from `[ingest]` and friends).
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Contributions kept in an explanation.
    pub explain_top: usize,
    /// Whether accepted telemetry waits for the InfluxDB exporter.
    pub export_telemetry: bool,
    /// Webhook URLs every new ticket is posted to.
    pub webhooks: Vec<String>,
    /// How long an offer stays open to the customer, hours.
    pub offer_valid_hours: u32,
    /// Devices whose feature state is kept in memory.
    pub cache_devices: usize,
    /// Payloads kept as a ticket's telemetry excerpt.
    pub excerpt_messages: usize,
    /// How far a device's time may be ahead of the receive time, ms.
    pub clock_ahead_ms: u64,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            explain_top: 5,
            export_telemetry: false,
            webhooks: Vec::new(),
            offer_valid_hours: 7 * 24,
            cache_devices: 100_000,
            excerpt_messages: 8,
            clock_ahead_ms: 600_000,
        }
    }
}

/// A ticket the pipeline opened, for progress output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenedTicket {
    /// Row id.
    pub id: i64,
    /// Public reference.
    pub ticket_ref: String,
    /// The device.
    pub device_id: String,
    /// Risk that opened it.
    pub risk: f64,
    /// The problem.
    pub problem: Problem,
    /// The remedy offered.
    pub offer: protocol::command::OfferKind,
    /// The quote, minor units.
    pub quote_minor: Option<u64>,
    /// Its currency.
    pub currency: Option<String>,
    /// Priority tier.
    pub tier: Tier,
    /// Opened at (ingest clock), ms.
    pub opened_ms: u64,
    /// Due at, ms.
    pub due_ms: u64,
    /// The top reasons, in words.
    pub why: Vec<String>,
}

/// What one batch did.
#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// Messages newly accepted.
    pub accepted: u64,
    /// Redeliveries dropped.
    pub duplicates: u64,
    /// Messages dead-lettered.
    pub rejected: u64,
    /// Tickets opened.
    pub tickets: Vec<OpenedTicket>,
}

/// Attempts at a batch before giving up on it (and on the run: it stays unacknowledged).
const ATTEMPTS: u32 = 5;
/// Pauses between attempts at a batch.
const RETRY: Backoff = Backoff::new(Duration::from_millis(40), Duration::from_secs(1));

/// The pipeline: owns the feature cache; one per ingest process.
pub struct Pipeline {
    store: Store,
    model: Arc<ModelSlot>,
    cache: FeatureCache,
    policy: PolicyConfig,
    limits: Limits,
    settings: PipelineSettings,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

impl Pipeline {
    /// A pipeline over a store and a model.
    pub fn new(
        store: Store,
        model: Arc<ModelSlot>,
        policy: PolicyConfig,
        settings: PipelineSettings,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Pipeline {
            store,
            model,
            cache: FeatureCache::new(settings.cache_devices, settings.excerpt_messages),
            policy,
            limits: Limits::default(),
            settings,
            metrics,
            clock,
        }
    }

    /// Processes a batch in one transaction, planning and applying it again whole when
    /// the database reports a conflict (another replica got to a row first, or a
    /// deadlock). The batch's effects are durable when this returns `Ok`.
    pub async fn process(&mut self, batch: &[Delivery]) -> Result<BatchOutcome, StoreError> {
        let started = Instant::now();
        let mut decoded = decode::decode(batch, &self.limits);
        decode::judge_clocks(&mut decoded, self.clock.now(), self.settings.clock_ahead_ms);
        let rejected = decoded.rejected;
        let (fresh, repeats) = dedup::within_batch(decoded.accepted);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(&rejected, &fresh, repeats).await {
                Ok(outcome) => {
                    events::BatchCommitted {
                        messages: batch.len(),
                        elapsed: started.elapsed(),
                    }
                    .emit(&self.metrics);
                    return Ok(outcome);
                }
                Err(e) => {
                    // The cache may hold what the rolled-back transaction planned.
                    for a in &fresh {
                        self.cache.forget(a.device());
                    }
                    if attempt >= ATTEMPTS {
                        return Err(e);
                    }
                    let retry_in = RETRY.delay(attempt - 1);
                    events::BatchRetried {
                        attempt,
                        of: ATTEMPTS,
                        error: &e,
                        retry_in,
                    }
                    .emit(&self.metrics);
                    tokio::time::sleep(retry_in).await;
                }
            }
        }
    }

    async fn attempt(
        &mut self,
        rejected: &[decode::Rejection<'_>],
        fresh: &[decode::Accepted<'_>],
        repeats: u64,
    ) -> Result<BatchOutcome, StoreError> {
        let now = self.clock.now();
        let model = self.model.current();
        let mut tx = self.store.begin().await?;
        // The devices' rows first: they say which seqs the store may already hold.
        let snapshot = snapshot::devices(&mut tx, self.store.backend(), fresh, &self.cache).await?;
        let ranges = dedup::maybe_stored(fresh, &snapshot.devices);
        let known = messages::known(&mut tx, &ranges).await?;
        let (fresh, stored) = dedup::against_store(fresh, &known);
        let mut plan = plan::observe(
            now,
            rejected,
            &fresh,
            repeats + stored,
            &snapshot,
            &mut self.cache,
            &model,
            &self.policy,
            &self.settings,
        );
        let contexts = snapshot::contexts(&mut tx, &plan.candidates, &self.policy, now).await?;
        plan::decide(
            &mut plan,
            &contexts,
            &model,
            &self.policy,
            &self.settings,
            now,
        );
        let tickets = apply::apply(&mut tx, &mut plan, &self.settings.webhooks).await?;
        tx.commit().await?;
        Ok(self.report(plan, tickets))
    }

    /// Reports a committed batch through its events.
    fn report(&self, plan: plan::BatchPlan<'_>, tickets: Vec<OpenedTicket>) -> BatchOutcome {
        let m = &self.metrics;
        for d in &plan.dead_letters {
            events::MessageRejected {
                topic: d.topic,
                reason: d.reason,
                detail: &d.detail,
            }
            .emit(m);
        }
        let r = plan.report;
        let accepted = r.accepted.len() as u64;
        r.accepted.into_iter().for_each(|e| e.emit(m));
        events::DuplicatesDropped {
            count: r.duplicates,
        }
        .emit(m);
        r.scored.into_iter().for_each(|e| e.emit(m));
        r.answers.into_iter().for_each(|e| e.emit(m));
        for (device, reason) in &r.held {
            events::DecisionHeld {
                device,
                reason: *reason,
            }
            .emit(m);
        }
        for t in &tickets {
            events::TicketOpened { ticket: t }.emit(m);
        }
        BatchOutcome {
            accepted,
            duplicates: r.duplicates,
            rejected: plan.dead_letters.len() as u64,
            tickets,
        }
    }
}
