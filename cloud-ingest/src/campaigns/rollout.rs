//! Works approved campaigns' members off, a batch at a time, each in its own
//! transaction: the policy decides again with what the store holds now (a ticket opened
//! meanwhile is attached to, a customer contacted meanwhile is held back), and an offer
//! goes out the way a scored device's does: a ticket with its offer command in the
//! outbox and its announcement to every webhook.

use std::sync::Arc;
use std::time::Duration;

use protocol::clock::Clock;
use protocol::Timestamp;
use tokio::sync::watch;

use super::proposal::{plan_member, Action};
use super::MemberStatus;
use crate::ingest::plan::{opening_rows, Target};
use crate::ingest::{apply, PipelineSettings};
use crate::ops::events::{self, Emit};
use crate::ops::metrics::Metrics;
use crate::policy::{self, PolicyConfig};
use crate::store::campaigns::{device_target, member_facts, settle_member, PendingMember};
use crate::store::{tickets, Store, StoreError};
use crate::tickets::Evidence;

/// The rollout worker.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// The policy (contact rules, remedies, SLA windows).
    pub policy: PolicyConfig,
    /// Webhooks and how long offers stay open.
    pub settings: PipelineSettings,
    /// Members worked per pass.
    pub batch: usize,
    /// Time between passes (wall clock).
    pub poll: Duration,
}

impl Rollout {
    /// One pass at `now`: how many members it worked.
    pub async fn step(
        &self,
        store: &Store,
        now: Timestamp,
        metrics: &Metrics,
    ) -> Result<usize, StoreError> {
        let pending = store.pending_members(self.batch).await?;
        for m in &pending {
            self.work(store, m, now, metrics).await?;
        }
        // A pass with nothing to do writes nothing (SQLite has one writer: ingest's).
        if pending.len() < self.batch && store.any_approved_campaign().await? {
            store.finish_rollouts().await?;
        }
        Ok(pending.len())
    }

    async fn work(
        &self,
        store: &Store,
        m: &PendingMember,
        now: Timestamp,
        metrics: &Metrics,
    ) -> Result<(), StoreError> {
        let mut tx = store.begin().await?;
        let facts = member_facts(&mut tx, &[&m.device_id], m.problem, &self.policy, now.0)
            .await?
            .pop()
            .unwrap_or_default();
        let mut reasoning = vec![format!("campaign {}: {}", m.campaign_id, m.title)];
        let settle = |status, ticket, reason: Option<&'static str>| (status, ticket, reason);
        let (status, ticket, reason) =
            match plan_member(m.problem, &facts, &self.policy, now, &mut reasoning) {
                Action::Attach(id) => settle(MemberStatus::Attached, Some(id), None),
                Action::Hold(h) => settle(MemberStatus::Held, None, Some(h.as_str())),
                Action::Offer(r) => match device_target(&mut tx, &m.device_id).await? {
                    None => settle(MemberStatus::Held, None, Some("unknown_device")),
                    Some((tenant, schema)) => {
                        let plan = policy::Plan {
                            problem: m.problem,
                            offer: r.offer,
                            quote_minor: r.quote_minor,
                            currency: r.quote_minor.and(facts.registration.currency.clone()),
                            extra: r.extra,
                            tier: r.tier,
                            due_ms: now.0 + u64::from(self.policy.due_hours(r.tier)) * 3_600_000,
                            safety: Vec::new(),
                            reasoning,
                            sample_weight: None,
                        };
                        let evidence = Evidence {
                            risk: 0.0,
                            threshold: 0.0,
                            model_version: super::CAMPAIGN_MODEL.into(),
                            scored_at_ms: now.0,
                            top_features: Vec::new(),
                            safety: Vec::new(),
                            telemetry: Vec::new(),
                            reasoning: plan.reasoning.clone(),
                        };
                        let target = Target {
                            device: &m.device_id,
                            tenant: &tenant,
                            schema,
                            registration: &facts.registration,
                        };
                        let why = vec![m.title.clone()];
                        match opening_rows(
                            &target,
                            &plan,
                            evidence,
                            None,
                            why,
                            None,
                            &self.settings,
                            now,
                        ) {
                            Err(_) => settle(MemberStatus::Held, None, Some("unofferable")),
                            Ok(mut o) => {
                                match apply::open(&mut tx, &mut o, &self.settings.webhooks).await? {
                                    Some(opened) => {
                                        events::TicketOpened { ticket: &opened }.emit(metrics);
                                        settle(MemberStatus::Offered, Some(opened.id), None)
                                    }
                                    // Opened meanwhile: the campaign goes on that one.
                                    None => {
                                        let open =
                                            tickets::open_for(&mut tx, &[&m.device_id]).await?;
                                        let id = open
                                            .get(&m.device_id)
                                            .and_then(|ts| {
                                                ts.iter().find(|t| t.problem == m.problem)
                                            })
                                            .map(|t| t.id);
                                        settle(MemberStatus::Attached, id, None)
                                    }
                                }
                            }
                        }
                    }
                },
            };
        settle_member(
            &mut tx,
            m.campaign_id,
            &m.device_id,
            status,
            ticket,
            reason,
            now.0,
        )
        .await?;
        Ok(tx.commit().await?)
    }

    /// Passes every `poll` until `stop`.
    pub async fn run(
        self,
        store: Store,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            if let Err(e) = self.step(&store, clock.now(), &metrics).await {
                events::OutboxFailed {
                    outbox: "campaigns",
                    error: &e,
                }
                .emit(&metrics);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}
