//! The ingest pipeline, one batch at a time: decode and validate, deduplicate on
//! `(device, seq)`, store, keep liveness and sequence accounting, update feature state,
//! score, decide, and open tickets with their offer and webhook outboxes, all in one
//! transaction. The caller acknowledges the batch to the broker only after it commits.

use std::sync::Arc;
use std::time::Instant;

use protocol::clock::Clock;
use protocol::command::AckStatus;
use protocol::state::State;
use protocol::{Channel, Limits, Message, Timestamp};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use crate::metrics::{label, Metrics};
use crate::offers;
use crate::policy::{self, Decision, DeviceTerms, Hold, PolicyConfig, PolicyInput, Problem};
use crate::score::{rebuild_since, FeatureCache, ModelSlot, Scored};
use crate::store::{self, NewMessage, NewTicket, Registration, Store, StoreError};
use crate::tickets::{Evidence, EvidenceFeature, TicketState, Tier};

/// A message as it came off the broker.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
}

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
        }
    }
}

/// A ticket the pipeline opened, for progress output.
#[derive(Debug, Clone, Serialize)]
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

/// Counters of one attempt, applied to the metrics only once it commits.
#[derive(Default)]
struct Tally {
    outcome: BatchOutcome,
    accepted: Vec<&'static str>,
    rejected: Vec<&'static str>,
    lags: Vec<f64>,
    risks: Vec<f64>,
    held: Vec<&'static str>,
    answers: Vec<&'static str>,
    out_of_order: u64,
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

    /// Processes a batch in one transaction, retrying it whole a few times when the
    /// database reports a conflict (a deadlock or serialisation failure between
    /// replicas). The batch's effects are durable when this returns `Ok`.
    pub async fn process(&mut self, batch: &[Delivery]) -> Result<BatchOutcome, StoreError> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(batch).await {
                Ok(tally) => {
                    self.metrics
                        .batch_seconds
                        .observe(started.elapsed().as_secs_f64());
                    return Ok(self.record(tally));
                }
                Err(e) => {
                    // The cache may hold what the rolled-back transaction saw.
                    for d in batch {
                        if let Ok(t) = protocol::Topic::parse(&d.topic) {
                            self.cache.forget(t.device.as_str());
                        }
                    }
                    if attempt >= 5 {
                        return Err(e);
                    }
                    tracing::warn!("batch failed ({e}); retrying ({attempt}/5)");
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                }
            }
        }
    }

    fn record(&self, t: Tally) -> BatchOutcome {
        let m = &self.metrics;
        for c in t.accepted {
            m.accepted.get_or_create(&label("channel", c)).inc();
        }
        for r in t.rejected {
            m.rejected.get_or_create(&label("reason", r)).inc();
        }
        for h in t.held {
            m.held.get_or_create(&label("reason", h)).inc();
        }
        for a in t.answers {
            m.command_answers.get_or_create(&label("status", a)).inc();
        }
        m.duplicates.inc_by(t.outcome.duplicates);
        m.out_of_order.inc_by(t.out_of_order);
        for l in t.lags {
            m.lag_seconds.observe(l);
        }
        m.scores.inc_by(t.risks.len() as u64);
        for r in t.risks {
            m.risk.observe(r);
        }
        for ticket in &t.outcome.tickets {
            m.tickets
                .get_or_create(&label("tier", ticket.tier.as_str()))
                .inc();
        }
        t.outcome
    }

    async fn attempt(&mut self, batch: &[Delivery]) -> Result<Tally, StoreError> {
        let now = self.clock.now();
        let received = now.0;
        // Decode first (pure), then order by device so concurrent replicas lock device
        // rows in the same order; a device's own messages keep their arrival order.
        let mut decoded: Vec<(usize, Result<protocol::Decoded, protocol::DecodeError>)> = batch
            .iter()
            .enumerate()
            .map(|(i, d)| (i, protocol::decode(&d.topic, &d.payload, &self.limits)))
            .collect();
        fn device_of(r: &Result<protocol::Decoded, protocol::DecodeError>) -> &str {
            r.as_ref().map_or("", |d| d.topic.device.as_str())
        }
        decoded.sort_by(|a, b| device_of(&a.1).cmp(device_of(&b.1)));
        let model = self.model.current();
        let mut tally = Tally::default();
        let mut tx = self.store.begin().await?;

        // Bad input to the dead-letter store; the rest, once per (device, seq).
        let mut valid: Vec<(usize, protocol::Decoded)> = Vec::with_capacity(decoded.len());
        let mut seen = std::collections::HashSet::new();
        for (i, result) in decoded {
            let delivery = &batch[i];
            let (reason, detail) = match result {
                Ok(d) if d.topic.channel == Channel::Command => (
                    "wrong_direction",
                    "commands flow to devices; ingest does not accept them".to_owned(),
                ),
                Ok(d) => {
                    let key = (d.topic.device.clone(), d.message.seq().map(|s| s.0));
                    if seen.insert(key) {
                        valid.push((i, d));
                    } else {
                        tally.outcome.duplicates += 1;
                    }
                    continue;
                }
                Err(e) => (e.reason(), e.to_string()),
            };
            store::dead_letter(
                &mut tx,
                received,
                &delivery.topic,
                &delivery.payload,
                reason,
                &detail,
            )
            .await?;
            tracing::debug!(topic = %delivery.topic, reason, "dead-lettered: {detail}");
            tally.rejected.push(reason);
            tally.outcome.rejected += 1;
        }
        let payloads: Vec<std::borrow::Cow<'_, str>> = valid
            .iter()
            .map(|(i, _)| String::from_utf8_lossy(&batch[*i].payload))
            .collect();
        let rows: Vec<NewMessage<'_>> = valid
            .iter()
            .zip(&payloads)
            .map(|((_, d), payload)| NewMessage {
                device_id: d.topic.device.as_str(),
                seq: d.message.seq().expect("device messages carry a seq").0,
                tenant: d.topic.tenant.as_str(),
                channel: d.topic.channel.as_str(),
                ts_ms: message_ts(&d.message).0,
                received_ms: received,
                payload,
                export_pending: self.settings.export_telemetry
                    && matches!(d.topic.channel, Channel::Heartbeat | Channel::Event),
            })
            .collect();
        let fresh = store::insert_messages(&mut tx, &rows).await?;
        tally.outcome.duplicates += (rows.len() - fresh.len()) as u64;

        // Device by device: accounting, liveness, answers, feature state, one score.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut start = 0;
        while start < valid.len() {
            let device = valid[start].1.topic.device.as_str();
            let end = start
                + valid[start..]
                    .iter()
                    .take_while(|(_, d)| d.topic.device.as_str() == device)
                    .count();
            let group: Vec<usize> = (start..end)
                .filter(|&k| fresh.contains(&(device.to_owned(), rows[k].seq)))
                .collect();
            start = end;
            if !group.is_empty() {
                groups.push(group);
            }
        }
        let arrivals: Vec<store::Arrivals<'_>> = groups
            .iter()
            .map(|g| {
                let seqs = g.iter().map(|&k| rows[k].seq);
                let times = g.iter().map(|&k| rows[k].ts_ms);
                store::Arrivals {
                    device_id: rows[g[0]].device_id,
                    tenant: rows[g[0]].tenant,
                    n: g.len() as u64,
                    min_seq: seqs.clone().min().unwrap_or(0),
                    max_seq: seqs.max().unwrap_or(0),
                    first_ts_ms: times.clone().min().unwrap_or(0),
                    last_ts_ms: times.max().unwrap_or(0),
                }
            })
            .collect();
        let all_stats = store::devices_seen(&mut tx, &arrivals).await?;
        for (group, arrived) in groups.iter().zip(&arrivals) {
            let device = arrived.device_id.to_owned();
            let tenant = arrived.tenant.to_owned();
            let (n, first) = (arrived.n, arrived.first_ts_ms);
            let stats = *all_stats.get(&device).ok_or_else(|| {
                StoreError::Corrupt(format!("no accounting returned for {device}"))
            })?;
            let group = group.clone();
            let mut telemetry = false;
            for &k in &group {
                let d = &valid[k].1;
                tally.outcome.accepted += 1;
                tally.accepted.push(d.topic.channel.as_str());
                tally
                    .lags
                    .push(received.saturating_sub(rows[k].ts_ms) as f64 / 1000.0);
                if rows[k].seq < stats.max_seq {
                    tally.out_of_order += 1;
                }
                telemetry |= matches!(d.message, Message::Heartbeat(_) | Message::Event(_));
                self.apply_control(&mut tx, &device, &d.message, rows[k].ts_ms, now, &mut tally)
                    .await?;
            }
            // Feature state: in step with the store, or rebuilt from it.
            if self.cache.in_step(&device, stats.count, n) {
                for &k in &group {
                    self.cache
                        .observe(&device, &valid[k].1.message, &payloads[k]);
                }
            } else {
                let reg = store::registration(&mut tx, &device).await?;
                let stored =
                    store::messages_since(&mut tx, &device, rebuild_since(Timestamp(first)))
                        .await?;
                self.cache.rebuild(
                    &device,
                    reg.purchased_ms.map(Timestamp),
                    stored
                        .iter()
                        .map(|m| (m.channel.as_str(), m.payload.as_str())),
                    stats.count,
                );
            }
            if !telemetry {
                continue;
            }
            let Some(scored) = self.cache.score(&device, &model, self.settings.explain_top) else {
                continue;
            };
            tally.risks.push(scored.explanation.score.probability);
            if self.cache.score_moved(&device, &scored.explanation.score) {
                let top = serde_json::to_string(&evidence_features(&scored)).unwrap_or_default();
                store::set_score(
                    &mut tx,
                    &device,
                    scored.explanation.score.probability,
                    scored.explanation.score.alarm,
                    scored.at.0,
                    &model.version,
                    &top,
                )
                .await?;
            }
            if let Some(t) = self
                .decide(&mut tx, &device, &tenant, &scored, &model, now, &mut tally)
                .await?
            {
                tally.outcome.tickets.push(t);
            }
        }
        tx.commit().await?;
        Ok(tally)
    }

    /// Liveness from state messages; ticket moves from answers to commands.
    async fn apply_control(
        &self,
        tx: &mut AnyConnection,
        device: &str,
        message: &Message,
        ts_ms: u64,
        now: Timestamp,
        tally: &mut Tally,
    ) -> Result<(), StoreError> {
        match message {
            Message::State(env) => {
                let (online, birth) = match &env.body {
                    State::Online(b) => (true, Some(b)),
                    State::Offline(_) => (false, None),
                };
                let class = birth
                    .and_then(|b| serde_json::to_value(b.device_class).ok())
                    .and_then(|v| v.as_str().map(str::to_owned));
                let identity = birth.map(|b| store::Identity {
                    model: b.model.as_str(),
                    device_class: class.as_deref().unwrap_or("other"),
                    hw_revision: b.hw_revision.as_str(),
                    batch: b.batch.as_str(),
                    firmware: b.firmware.as_str(),
                });
                store::set_liveness(tx, device, online, ts_ms, identity.as_ref()).await?;
            }
            Message::Ack(env) => {
                let status = env.body.status;
                tally.answers.push(ack_name(status));
                let ticket = store::command_answered(
                    tx,
                    env.body.command_id.as_str(),
                    device,
                    ack_name(status),
                    now.0,
                )
                .await?;
                if let Some(id) = ticket {
                    follow_answer(tx, id, status, now.0).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn decide(
        &mut self,
        tx: &mut AnyConnection,
        device: &str,
        tenant: &str,
        scored: &Scored,
        model: &models::artifact::ModelArtifact,
        now: Timestamp,
        tally: &mut Tally,
    ) -> Result<Option<OpenedTicket>, StoreError> {
        let unknown = DeviceTerms::default();
        let mut input = PolicyInput {
            explanation: &scored.explanation,
            threshold: model.threshold,
            features: &scored.features,
            terms: &unknown,
            contacts: Default::default(),
            now_ms: now.0,
        };
        // Most scores are far from any action: settle those without reading the store.
        if let Decision::Hold(Hold::LowRisk) = policy::decide(&input, &self.policy) {
            return Ok(None);
        }
        let reg = store::registration(tx, device).await?;
        let terms = terms_of(&reg, now);
        let first = match policy::decide(&input, &self.policy) {
            Decision::Open(p) => p,
            Decision::Hold(_) => return Ok(None),
        };
        if let Some((_, _, tier)) = store::open_ticket_for(tx, device, first.problem).await? {
            // Already open for this problem: nothing new unless it must escalate.
            if tier >= first.tier {
                return Ok(None);
            }
        }
        let window = u64::from(self.policy.contact_window_days) * 86_400_000;
        input.terms = &terms;
        input.contacts = store::contact_history(
            tx,
            device,
            reg.customer_id.as_deref(),
            first.problem,
            now.0.saturating_sub(window),
        )
        .await?;
        let plan = match policy::decide(&input, &self.policy) {
            Decision::Open(p) => p,
            Decision::Hold(h) => {
                tally.held.push(match h {
                    Hold::LowRisk => "low_risk",
                    Hold::CoolDown => "cool_down",
                    Hold::ContactCap => "contact_cap",
                });
                return Ok(None);
            }
        };
        if let Some((id, _, tier)) = store::open_ticket_for(tx, device, plan.problem).await? {
            if tier >= plan.tier {
                return Ok(None);
            }
            // A tip is not enough any more: withdraw it for the stronger remedy.
            store::move_ticket(
                tx,
                id,
                TicketState::Cancelled,
                "policy",
                Some("superseded by a higher-tier ticket"),
                now.0,
            )
            .await?;
        }
        let ticket_ref = ticket_ref(device, plan.problem, now);
        let top = evidence_features(scored);
        let evidence = Evidence {
            risk: scored.explanation.score.probability,
            threshold: model.threshold,
            model_version: model.version.clone(),
            scored_at_ms: scored.at.0,
            top_features: top.clone(),
            safety: plan.safety.clone(),
            telemetry: scored
                .excerpt
                .iter()
                .filter_map(|p| serde_json::from_str(p).ok())
                .collect(),
            reasoning: plan.reasoning.clone(),
        };
        let evidence_json = serde_json::to_string(&evidence).expect("evidence serialises");
        let offer_kind = offers::kind_name(plan.offer);
        let Some(id) = store::open_ticket(
            tx,
            &NewTicket {
                ticket_ref: &ticket_ref,
                device_id: device,
                tenant,
                customer_id: reg.customer_id.as_deref(),
                problem: plan.problem,
                tier: plan.tier,
                offer_kind,
                quote_minor: plan.quote_minor,
                currency: plan.currency.as_deref(),
                opened_ms: now.0,
                due_ms: plan.due_ms,
                risk: evidence.risk,
                model_version: &model.version,
                evidence: &evidence_json,
            },
        )
        .await?
        else {
            // Another replica opened it first: the constraint holds.
            return Ok(None);
        };
        let command = offers::offer_command(
            device,
            tenant,
            &ticket_ref,
            &plan,
            now,
            self.settings.offer_valid_hours,
        );
        store::queue_command(
            tx,
            command.command_id.as_str(),
            Some(id),
            device,
            &command.topic,
            &command.payload,
            now.0,
            Some(command.expires.0),
        )
        .await?;
        if !self.settings.webhooks.is_empty() {
            let body = offers::webhook_body(
                id,
                &ticket_ref,
                device,
                tenant,
                reg.customer_id.as_deref(),
                &plan,
                now,
                &evidence,
            );
            for url in &self.settings.webhooks {
                store::queue_webhook(tx, id, url, &body).await?;
            }
        }
        let why = top
            .iter()
            .filter(|f| f.contribution > 0.0)
            .take(3)
            .map(|f| format!("{} = {:.2} {}", f.feature, f.value, f.unit))
            .chain(plan.safety.iter().cloned())
            .collect();
        Ok(Some(OpenedTicket {
            id,
            ticket_ref,
            device_id: device.to_owned(),
            risk: evidence.risk,
            problem: plan.problem,
            offer: plan.offer,
            quote_minor: plan.quote_minor,
            currency: plan.currency.clone(),
            tier: plan.tier,
            opened_ms: now.0,
            due_ms: plan.due_ms,
            why,
        }))
    }
}

/// Moves a ticket along after the device answered its offer.
async fn follow_answer(
    tx: &mut AnyConnection,
    id: i64,
    status: AckStatus,
    at: u64,
) -> Result<(), StoreError> {
    let state = store::ticket_state(tx, id).await?;
    let path: &[TicketState] = match status {
        AckStatus::Received => &[TicketState::Offered],
        AckStatus::Accepted => &[TicketState::Offered, TicketState::Accepted],
        AckStatus::Declined => &[TicketState::Offered, TicketState::Declined],
        AckStatus::Rejected | AckStatus::Failed => &[TicketState::Cancelled],
        AckStatus::Done => &[],
    };
    let mut state = state;
    for &next in path {
        // A repeated or late answer finds the ticket further along: nothing to do.
        if state.can_move_to(next) {
            let note = matches!(status, AckStatus::Rejected | AckStatus::Failed)
                .then_some("the device refused the offer command");
            store::move_ticket(tx, id, next, "device", note, at).await?;
            state = next;
        }
    }
    // A self-service tip is done once the customer takes it.
    if state == TicketState::Accepted && is_tip(tx, id).await? {
        store::move_ticket(
            tx,
            id,
            TicketState::Resolved,
            "customer",
            Some("tip applied"),
            at,
        )
        .await?;
    }
    Ok(())
}

async fn is_tip(tx: &mut AnyConnection, id: i64) -> Result<bool, StoreError> {
    use sqlx::Row;
    let kind: String = sqlx::query("SELECT offer_kind FROM tickets WHERE id = $1")
        .bind(id)
        .fetch_one(tx)
        .await?
        .try_get(0)?;
    Ok(kind == offers::kind_name(protocol::command::OfferKind::SelfServiceTip))
}

fn ack_name(s: AckStatus) -> &'static str {
    match s {
        AckStatus::Received => "received",
        AckStatus::Accepted => "accepted",
        AckStatus::Declined => "declined",
        AckStatus::Done => "done",
        AckStatus::Rejected => "rejected",
        AckStatus::Failed => "failed",
    }
}

fn message_ts(m: &Message) -> Timestamp {
    match m {
        Message::Heartbeat(e) => e.ts_ms,
        Message::Event(e) => e.ts_ms,
        Message::State(e) => e.ts_ms,
        Message::Ack(e) => e.ts_ms,
        Message::Command(c) => c.ts_ms,
    }
}

fn terms_of(reg: &Registration, now: Timestamp) -> DeviceTerms {
    DeviceTerms {
        age_days: reg
            .purchased_ms
            .map(|p| now.0.saturating_sub(p) as f64 / 86_400_000.0),
        in_warranty: reg.warranty_until_ms.map(|w| now.0 < w),
        price_minor: reg.price_minor,
        currency: reg.currency.clone(),
    }
}

fn evidence_features(s: &Scored) -> Vec<EvidenceFeature> {
    s.explanation
        .top
        .iter()
        .map(|c| EvidenceFeature {
            feature: c.feature.to_owned(),
            unit: c.unit.to_owned(),
            value: c.value,
            contribution: c.contribution,
        })
        .collect()
}

/// A ticket reference derived from what opens it, so every replica names the same
/// ticket the same way: `T-` and 16 hex digits.
pub fn ticket_ref(device: &str, problem: Problem, at: Timestamp) -> String {
    let mut h = Sha256::new();
    h.update(device.as_bytes());
    h.update([0]);
    h.update(problem.as_str().as_bytes());
    h.update(at.0.to_be_bytes());
    format!("T-{}", hex::encode(&h.finalize()[..8]))
}
