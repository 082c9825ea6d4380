//! The breach recorder: finds open tickets whose SLA window ran out, records each
//! breach once (on the ticket, as a `sla_breached` event, in
//! `fleet_ingest_sla_breaches_total`) and announces it to every webhook as
//! `ticket.sla_breached`. A breach is a fact of the ticket's log (`tickets::sla`); this
//! worker only writes it down when it happens, on the service clock.

use std::sync::Arc;
use std::time::Duration;

use protocol::clock::Clock;
use tokio::sync::watch;

use super::webhooks::{TicketAnnouncement, WebhookBody};
use crate::ops::events::{self, Emit};
use crate::ops::metrics::{label, Metrics};
use crate::store::{Store, StoreError};

/// Settings of the breach recorder.
#[derive(Debug, Clone)]
pub struct BreachRecorder {
    /// Where breaches are announced.
    pub webhooks: Vec<String>,
    /// How often open tickets are checked.
    pub poll: Duration,
    /// The most breaches recorded per check.
    pub batch: usize,
    /// Only this tenant's tickets (a deployment scoped to one tenant leaves the others'
    /// to their own); every tenant's when unset.
    pub tenant: Option<String>,
}

impl BreachRecorder {
    /// Records what is due at the clock's now; how many breaches it recorded.
    pub async fn check(
        &self,
        store: &Store,
        clock: &dyn Clock,
        metrics: &Metrics,
    ) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let breached = store
                .record_breaches(
                    clock.now().0,
                    self.batch,
                    self.tenant.as_deref(),
                    &self.webhooks,
                    |t| WebhookBody::sla_breached(TicketAnnouncement::of_row(t)).to_json(),
                )
                .await?;
            for t in &breached {
                metrics
                    .sla_breaches
                    .get_or_create(&label("tier", t.tier.as_str()))
                    .inc();
                tracing::warn!(
                    ticket = t.ticket_ref,
                    device = t.device_id,
                    tier = %t.tier,
                    due_ms = t.due_ms,
                    "SLA breached: the ticket's window ran out while it was open"
                );
            }
            total += breached.len();
            if breached.len() < self.batch {
                return Ok(total);
            }
        }
    }

    /// Checks every `poll` until `stop`.
    pub async fn run(
        self,
        store: Store,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            if let Err(e) = self.check(&store, clock.as_ref(), &metrics).await {
                events::OutboxFailed {
                    outbox: "sla breaches",
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
