//! Stage 4, apply: writes a [`BatchPlan`] in the batch's transaction, in the order the
//! plan was made. The only decisions here are the ones the database makes: a message
//! or a ticket move that another replica got to first is a
//! [`StoreError::Conflict`], and the caller plans the batch again from what is stored
//! now; a ticket another replica opened first is skipped with its command and webhooks.

use sqlx::AnyConnection;

use super::plan::{BatchPlan, Opening};
use super::OpenedTicket;
use crate::effects::webhooks::{TicketAnnouncement, WebhookBody};
use crate::store::{
    cohorts, dead_letters, devices, features, messages, outbox, tickets, StoreError,
};

/// Writes the plan; the tickets it opened.
pub async fn apply(
    c: &mut AnyConnection,
    plan: &mut BatchPlan<'_>,
    webhooks: &[String],
) -> Result<Vec<OpenedTicket>, StoreError> {
    dead_letters::insert(c, &plan.dead_letters).await?;
    let stored = messages::insert(c, &plan.messages).await?;
    if stored.len() != plan.messages.len() {
        return Err(StoreError::Conflict(format!(
            "{} of {} messages were stored meanwhile",
            plan.messages.len() - stored.len(),
            plan.messages.len()
        )));
    }
    devices::record_epochs(c, &plan.epochs, plan.now.0).await?;
    let counts = devices::count_arrivals(c, &plan.arrivals).await?;
    for (a, &expected) in plan.arrivals.iter().zip(&plan.counts_after) {
        let count = counts.get(a.device_id).copied();
        if count != Some(expected) {
            return Err(StoreError::Conflict(format!(
                "{} holds {count:?} messages, not {expected}",
                a.device_id
            )));
        }
    }
    for l in &plan.liveness {
        devices::set_liveness(c, l).await?;
    }
    // Boots first: a birth in the batch names the firmware its heartbeats ran.
    cohorts::add_boots(c, &plan.boots).await?;
    cohorts::add_usage(c, &plan.usage).await?;
    for a in &plan.answers {
        outbox::record_answer(c, a.device, a.command_id, a.status, plan.now.0).await?;
    }
    for m in &plan.moves {
        tickets::apply_move(c, m).await?;
    }
    for s in &plan.scores {
        devices::set_score(c, s).await?;
    }
    features::save(c, &plan.feature_states, plan.now.0).await?;
    let mut opened = Vec::with_capacity(plan.openings.len());
    for o in &mut plan.openings {
        // Another replica opened it first: the constraint holds.
        opened.extend(open(c, o, webhooks).await?);
    }
    Ok(opened)
}

/// Opens one planned ticket with its offer command (after the withdrawal it waits for)
/// and its announcement to every webhook; `None` when a ticket for the device and
/// problem is open already (the database's constraint decides).
pub async fn open(
    c: &mut AnyConnection,
    o: &mut Opening,
    webhooks: &[String],
) -> Result<Option<OpenedTicket>, StoreError> {
    let Some(id) = tickets::open(c, &o.ticket).await? else {
        return Ok(None);
    };
    o.command.ticket_id = Some(id);
    if let Some(w) = &o.withdraw {
        outbox::queue_command(c, w).await?;
    }
    outbox::queue_command(c, &o.command).await?;
    if let Some(evidence) = &o.announced {
        let body =
            WebhookBody::opened(TicketAnnouncement::new(id, &o.ticket, evidence.clone())).to_json();
        for url in webhooks {
            outbox::queue_webhook(c, id, url, &body).await?;
        }
    }
    o.summary.id = id;
    Ok(Some(o.summary.clone()))
}
