//! Ingest, one batch at a time, in the order a message travels:
//!
//! 1. [`consumer`] takes deliveries off the broker (manual acks);
//! 2. [`decode`] validates them, rejecting what fails with a reason;
//! 3. [`dedup`] puts the batch in device order and drops repeats of
//!    `(device, epoch, seq)` within the batch;
//! 4. [`snapshot`] reads what planning needs, the store's keys among them; [`epochs`]
//!    judges which run of seqs each message belongs to, and [`dedup`] drops what the
//!    store already holds; [`plan`] decides, without I/O, every row the batch writes,
//!    every score, decision and effect;
//! 5. [`apply`] writes the plan in the same transaction.
//!
//! [`Pipeline::process`] runs stages 2 to 5 in one transaction; the caller
//! acknowledges the batch to the broker only after it commits. A crash before the
//! commit means the broker redelivers; after it, dedup drops the redelivery.

pub mod apply;
pub mod consumer;
pub mod decode;
pub mod dedup;
pub mod epochs;
pub mod plan;
pub mod snapshot;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use protocol::clock::Clock;
use protocol::retry::Backoff;
use protocol::Limits;
use serde::Serialize;

pub use decode::{Delivery, UNPROCESSABLE};

use crate::ops::events::{self, Emit};
use crate::ops::metrics::Metrics;
use crate::policy::{PolicyConfig, Problem};
use crate::score::{FeatureCache, ModelSlot};
use crate::store::{dead_letters, messages, Store, StoreError};
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

/// Attempts at a batch whose failure may be about its messages (a constraint, a value,
/// a conflict that keeps coming back, a panic) before it is split in two.
const ATTEMPTS: u32 = 5;
/// Pauses between attempts at a batch: short for conflicts, up to 5 s while the store
/// is unavailable.
const RETRY: Backoff = Backoff::new(Duration::from_millis(40), Duration::from_secs(5));

/// Why an attempt at a batch failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The store refused or could not be reached.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Planning or writing panicked: a bug, but the stream must move on.
    #[error("processing panicked: {0}")]
    Panicked(String),
}

impl BatchError {
    /// Whether the store is unavailable (unreachable, restarting, out of disk): the
    /// batch is retried, whole, until it is back; nothing about the messages is judged.
    pub fn is_unavailable(&self) -> bool {
        match self {
            BatchError::Store(e) => e.is_unavailable(),
            BatchError::Panicked(_) => false,
        }
    }
}

/// How one part of a batch ended.
enum Settled {
    Done(BatchOutcome),
    /// Failed [`ATTEMPTS`] times for a reason that may lie in its messages.
    Poisoned(BatchError),
}

impl BatchOutcome {
    fn merge(&mut self, other: BatchOutcome) {
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        self.tickets.extend(other.tickets);
    }
}

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
    /// Tests only: attempts with a delivery this matches panic, as a bug would.
    #[cfg(test)]
    poison: Option<fn(&Delivery) -> bool>,
    /// Tests only: the store refuses every dead letter of an unprocessable message.
    #[cfg(test)]
    refuse_dead_letters: bool,
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
            cache: FeatureCache::new(settings.cache_devices),
            policy,
            limits: Limits::default(),
            settings,
            metrics,
            clock,
            #[cfg(test)]
            poison: None,
            #[cfg(test)]
            refuse_dead_letters: false,
        }
    }

    /// Processes a batch; its effects are durable when this returns, so the caller may
    /// acknowledge every message in it. Each part is one transaction, planned and
    /// applied again on failure. While the store is unavailable this waits for it. A
    /// part that keeps failing otherwise is split in two, down to the one message that
    /// fails alone, which is dead-lettered as [`UNPROCESSABLE`] with the error: one bad
    /// message never holds up the stream behind it.
    pub async fn process(&mut self, batch: &[Delivery]) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        let mut parts = std::collections::VecDeque::from([batch]);
        while let Some(part) = parts.pop_front() {
            match self.settle(part).await {
                Settled::Done(o) => outcome.merge(o),
                Settled::Poisoned(e) if part.len() > 1 => {
                    let (first, second) = part.split_at(part.len() / 2);
                    events::BatchSplit {
                        messages: part.len(),
                        error: &e,
                    }
                    .emit(&self.metrics);
                    parts.push_front(second);
                    parts.push_front(first);
                }
                Settled::Poisoned(e) => outcome.merge(self.unprocessable(&part[0], &e).await),
            }
        }
        outcome
    }

    /// One part of a batch, attempted until it commits or proves poisoned.
    async fn settle(&mut self, batch: &[Delivery]) -> Settled {
        let started = Instant::now();
        let mut decoded = decode::decode(batch, &self.limits);
        decode::judge_clocks(&mut decoded, self.clock.now(), self.settings.clock_ahead_ms);
        let rejected = decoded.rejected;
        let (fresh, repeats) = dedup::within_batch(decoded.accepted);
        let mut judged = 0;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let tried = AssertUnwindSafe(self.attempt(&rejected, &fresh, repeats))
                .catch_unwind()
                .await;
            let e = match tried {
                Ok(Ok(outcome)) => {
                    events::BatchCommitted {
                        messages: batch.len(),
                        elapsed: started.elapsed(),
                    }
                    .emit(&self.metrics);
                    return Settled::Done(outcome);
                }
                Ok(Err(e)) => BatchError::Store(e),
                Err(panic) => BatchError::Panicked(panic_text(&*panic)),
            };
            // The cache may hold what the rolled-back transaction planned.
            for a in &fresh {
                self.cache.forget(a.device());
            }
            let of = if e.is_unavailable() {
                None
            } else {
                judged += 1;
                if judged >= ATTEMPTS {
                    return Settled::Poisoned(e);
                }
                Some(ATTEMPTS)
            };
            let retry_in = RETRY.delay(attempt - 1);
            events::BatchRetried {
                attempt,
                of,
                error: &e,
                retry_in,
            }
            .emit(&self.metrics);
            tokio::time::sleep(retry_in).await;
        }
    }

    /// Keeps a message that fails alone as a dead letter (waiting while the store is
    /// unavailable), so it can be acknowledged.
    async fn unprocessable(&mut self, delivery: &Delivery, error: &BatchError) -> BatchOutcome {
        let rejection = decode::Rejection {
            delivery,
            reason: UNPROCESSABLE,
            detail: format!("ingest could not process this message: {error}"),
        };
        let letter = plan::dead_letter(self.clock.now(), &rejection);
        let (mut attempt, mut refused) = (0, 0);
        loop {
            let kept = async {
                #[cfg(test)]
                if self.refuse_dead_letters {
                    return Err(StoreError::Invalid("refused (test)".into()));
                }
                let mut tx = self.store.begin().await?;
                dead_letters::insert(&mut tx, std::slice::from_ref(&letter)).await?;
                tx.commit().await?;
                Ok::<(), StoreError>(())
            }
            .await;
            let Err(e) = kept else { break };
            attempt += 1;
            if !e.is_unavailable() {
                refused += 1;
                if refused >= ATTEMPTS {
                    // Not even its dead letter can be kept: say so loudly, move on.
                    events::MessageDropped {
                        topic: letter.topic,
                        payload: letter.payload,
                        error: &e,
                    }
                    .emit(&self.metrics);
                    return BatchOutcome {
                        rejected: 1,
                        ..BatchOutcome::default()
                    };
                }
            }
            let retry_in = RETRY.delay(attempt - 1);
            events::BatchRetried {
                attempt,
                of: None,
                error: &e,
                retry_in,
            }
            .emit(&self.metrics);
            tokio::time::sleep(retry_in).await;
        }
        events::MessageRejected {
            topic: letter.topic,
            reason: letter.reason,
            detail: &letter.detail,
        }
        .emit(&self.metrics);
        BatchOutcome {
            rejected: 1,
            ..BatchOutcome::default()
        }
    }

    async fn attempt(
        &mut self,
        rejected: &[decode::Rejection<'_>],
        fresh: &[decode::Accepted<'_>],
        repeats: u64,
    ) -> Result<BatchOutcome, StoreError> {
        #[cfg(test)]
        if let Some(poisoned) = self.poison {
            assert!(
                !fresh.iter().any(|a| poisoned(a.delivery)),
                "a poisoned message (test)"
            );
        }
        let now = self.clock.now();
        let model = self.model.current();
        let challenger = self.model.challenger();
        let mut tx = self.store.begin().await?;
        // The devices' rows first: they say which seqs the store may already hold.
        let snapshot = snapshot::devices(&mut tx, self.store.backend(), fresh, &self.cache).await?;
        let epochs = epochs::judge_batch(fresh, &snapshot.devices, &snapshot.known_epochs);
        let ranges = dedup::maybe_stored(fresh, &snapshot.devices, &epochs);
        let known = messages::known(&mut tx, &ranges).await?;
        let collisions = dedup::collisions(fresh, &known);
        let boots = if collisions.is_empty() {
            HashMap::new()
        } else {
            messages::boot_ids(&mut tx, &collisions).await?
        };
        let deduped = dedup::against_store(fresh, &boots, &snapshot.devices, &epochs);
        let rejected: Cow<'_, [decode::Rejection<'_>]> = if deduped.reused.is_empty() {
            Cow::Borrowed(rejected)
        } else {
            Cow::Owned([rejected, &deduped.reused].concat())
        };
        let mut plan = plan::observe(
            now,
            &rejected,
            &deduped.fresh,
            repeats + deduped.repeats,
            &snapshot,
            &epochs,
            &mut self.cache,
            &model,
            challenger.as_deref(),
            &self.policy,
            &self.settings,
        );
        let contexts = snapshot::contexts(
            &mut tx,
            &plan.candidates,
            &self.policy,
            self.settings.excerpt_messages,
            now,
        )
        .await?;
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
        for (device, epoch, resets) in &r.seq_resets {
            events::SeqRestarted {
                device,
                epoch: *epoch,
                resets: *resets,
            }
            .emit(m);
        }
        events::FeaturesLoaded {
            restored: r.restored,
            rebuilt: r.rebuilt,
            replayed: r.replayed,
        }
        .emit(m);
        r.scored.into_iter().for_each(|e| e.emit(m));
        r.answers.into_iter().for_each(|e| e.emit(m));
        for error in &r.unofferable {
            events::OfferRefused { error }.emit(m);
        }
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

/// What a panic said, for the dead letter.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}
