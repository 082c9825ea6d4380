//! `tickets` and `ticket_events`: service tickets, at most one open per device and
//! problem (a unique index, so it holds across replicas), and every move of each, with
//! time and actor. Moves are checked against the state machine and against a
//! concurrent move.

use std::collections::HashMap;

use protocol::command::OfferKind;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{parse, push_placeholders, Store, StoreError, CHUNK};
use crate::policy::{ContactHistory, Problem};
use crate::tickets::{TicketState, Tier};

/// A ticket to open.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTicket {
    /// Its public reference.
    pub ticket_ref: String,
    /// The device.
    pub device_id: String,
    /// Its tenant.
    pub tenant: String,
    /// Its owner.
    pub customer_id: Option<String>,
    /// The problem.
    pub problem: Problem,
    /// Priority tier.
    pub tier: Tier,
    /// The remedy offered.
    pub offer: OfferKind,
    /// The quote, minor units.
    pub quote_minor: Option<u64>,
    /// Its currency.
    pub currency: Option<String>,
    /// When it opens (ingest clock).
    pub opened_ms: u64,
    /// When it is due.
    pub due_ms: u64,
    /// The risk that opened it.
    pub risk: f64,
    /// The model version that scored.
    pub model_version: String,
    /// Evidence, JSON.
    pub evidence: String,
}

/// Opens a ticket unless one is open for the device and problem; its id, or `None`.
pub async fn open(c: &mut AnyConnection, t: &NewTicket) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query(
        "INSERT INTO tickets (ticket_ref, device_id, tenant, customer_id, problem, state, tier,
            offer_kind, quote_minor, currency, opened_ms, due_ms, risk, model_version, evidence)
         VALUES ($1, $2, $3, $4, $5, 'opened', $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(t.ticket_ref.as_str())
    .bind(t.device_id.as_str())
    .bind(t.tenant.as_str())
    .bind(t.customer_id.as_deref())
    .bind(t.problem.as_str())
    .bind(t.tier.as_str())
    .bind(t.offer.as_str())
    .bind(t.quote_minor.map(|v| v as i64))
    .bind(t.currency.as_deref())
    .bind(t.opened_ms as i64)
    .bind(t.due_ms as i64)
    .bind(t.risk)
    .bind(t.model_version.as_str())
    .bind(t.evidence.as_str())
    .fetch_optional(&mut *c)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let id: i64 = row.try_get(0)?;
    record_event(
        c,
        id,
        None,
        TicketState::Opened,
        "policy",
        None,
        t.opened_ms,
    )
    .await?;
    Ok(Some(id))
}

/// An open ticket, as a decision about its device sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTicket {
    /// Row id.
    pub id: i64,
    /// Its reference (its offer's command id is made from it).
    pub ticket_ref: String,
    /// The problem.
    pub problem: Problem,
    /// Where it stands.
    pub state: TicketState,
    /// Priority tier.
    pub tier: Tier,
}

/// The open tickets of `devices` (distinct ids).
pub async fn open_for(
    c: &mut AnyConnection,
    devices: &[&str],
) -> Result<HashMap<String, Vec<OpenTicket>>, StoreError> {
    let mut out: HashMap<String, Vec<OpenTicket>> = HashMap::new();
    for chunk in devices.chunks(CHUNK) {
        let mut sql = String::from(
            "SELECT device_id, id, problem, state, tier, ticket_ref FROM tickets
             WHERE state IN ('opened', 'offered', 'accepted', 'in_progress') AND device_id IN ",
        );
        push_placeholders(&mut sql, 1, chunk.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for d in chunk {
            q = q.bind(d.to_string());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.entry(r.try_get(0)?).or_default().push(OpenTicket {
                id: r.try_get(1)?,
                problem: parse(&r.try_get::<String, _>(2)?)?,
                state: parse(&r.try_get::<String, _>(3)?)?,
                tier: parse(&r.try_get::<String, _>(4)?)?,
                ticket_ref: r.try_get(5)?,
            });
        }
    }
    Ok(out)
}

/// When a ticket for this device and problem last closed, and how many tickets the
/// customer (or, without one, the device) got since `since_ms`.
pub async fn contact_history(
    c: &mut AnyConnection,
    device: &str,
    customer: Option<&str>,
    problem: Problem,
    since_ms: u64,
) -> Result<ContactHistory, StoreError> {
    let last: Option<i64> = sqlx::query(
        "SELECT MAX(closed_ms) FROM tickets WHERE device_id = $1 AND problem = $2
         AND closed_ms IS NOT NULL",
    )
    .bind(device)
    .bind(problem.as_str())
    .fetch_one(&mut *c)
    .await?
    .try_get(0)?;
    let count: i64 = match customer {
        Some(cust) => {
            sqlx::query("SELECT COUNT(*) FROM tickets WHERE customer_id = $1 AND opened_ms >= $2")
                .bind(cust)
                .bind(since_ms as i64)
        }
        None => {
            sqlx::query("SELECT COUNT(*) FROM tickets WHERE device_id = $1 AND opened_ms >= $2")
                .bind(device)
                .bind(since_ms as i64)
        }
    }
    .fetch_one(&mut *c)
    .await?
    .try_get(0)?;
    Ok(ContactHistory {
        last_closed_ms: last.map(|v| v as u64),
        contacts_in_window: count as u32,
    })
}

/// A planned move of a ticket from the state it was seen in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketMove {
    /// The ticket.
    pub ticket_id: i64,
    /// The state it was in when the move was planned.
    pub from: TicketState,
    /// The state it moves to.
    pub to: TicketState,
    /// Who moved it.
    pub actor: &'static str,
    /// Why, when there is more to say than the states.
    pub note: Option<&'static str>,
    /// When (ingest clock).
    pub at_ms: u64,
}

/// Carries out a planned move: refused by the state machine, or a
/// [`StoreError::Conflict`] when the ticket is no longer where the plan saw it.
pub async fn apply_move(c: &mut AnyConnection, m: &TicketMove) -> Result<(), StoreError> {
    m.from.move_to(m.to)?;
    let closed = (!m.to.is_open()).then_some(m.at_ms as i64);
    let done = sqlx::query(
        "UPDATE tickets SET state = $2, closed_ms = COALESCE($3, closed_ms) WHERE id = $1 AND state = $4",
    )
    .bind(m.ticket_id)
    .bind(m.to.as_str())
    .bind(closed)
    .bind(m.from.as_str())
    .execute(&mut *c)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "ticket {} left {} while moving it to {}",
            m.ticket_id, m.from, m.to
        )));
    }
    record_event(c, m.ticket_id, Some(m.from), m.to, m.actor, m.note, m.at_ms).await
}

/// Moves a ticket from wherever it is now to `to`; the state it left.
pub async fn move_ticket(
    c: &mut AnyConnection,
    id: i64,
    to: TicketState,
    actor: &'static str,
    note: Option<&'static str>,
    at_ms: u64,
) -> Result<TicketState, StoreError> {
    let from = state(c, id).await?;
    apply_move(
        c,
        &TicketMove {
            ticket_id: id,
            from,
            to,
            actor,
            note,
            at_ms,
        },
    )
    .await?;
    Ok(from)
}

async fn record_event(
    c: &mut AnyConnection,
    id: i64,
    from: Option<TicketState>,
    to: TicketState,
    actor: &str,
    note: Option<&str>,
    at_ms: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO ticket_events (ticket_id, at_ms, from_state, to_state, actor, note)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(at_ms as i64)
    .bind(from.map(|f| f.as_str()))
    .bind(to.as_str())
    .bind(actor)
    .bind(note)
    .execute(c)
    .await?;
    Ok(())
}

/// A ticket's current state.
pub async fn state(c: &mut AnyConnection, id: i64) -> Result<TicketState, StoreError> {
    let s: String = sqlx::query("SELECT state FROM tickets WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await?
        .ok_or_else(|| StoreError::NoTicket(id.to_string()))?
        .try_get(0)?;
    parse(&s)
}

/// A ticket as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TicketRow {
    /// Row id.
    pub id: i64,
    /// Public reference.
    pub ticket_ref: String,
    /// The device.
    pub device_id: String,
    /// Its owner.
    pub customer_id: Option<String>,
    /// The problem.
    pub problem: Problem,
    /// Where it stands.
    pub state: TicketState,
    /// Priority tier.
    pub tier: Tier,
    /// The remedy offered.
    pub offer_kind: OfferKind,
    /// The quote, minor units.
    pub quote_minor: Option<i64>,
    /// Its currency.
    pub currency: Option<String>,
    /// When it opened.
    pub opened_ms: i64,
    /// When it is due.
    pub due_ms: i64,
    /// When it closed.
    pub closed_ms: Option<i64>,
    /// The risk that opened it.
    pub risk: f64,
    /// The model version.
    pub model_version: String,
    /// The evidence, JSON.
    pub evidence: String,
}

fn ticket_row(r: &AnyRow) -> Result<TicketRow, StoreError> {
    let kind: String = r.try_get(7)?;
    Ok(TicketRow {
        id: r.try_get(0)?,
        ticket_ref: r.try_get(1)?,
        device_id: r.try_get(2)?,
        customer_id: r.try_get(3)?,
        problem: parse(&r.try_get::<String, _>(4)?)?,
        state: parse(&r.try_get::<String, _>(5)?)?,
        tier: parse(&r.try_get::<String, _>(6)?)?,
        offer_kind: OfferKind::from_name(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown offer kind {kind:?}")))?,
        quote_minor: r.try_get(8)?,
        currency: r.try_get(9)?,
        opened_ms: r.try_get(10)?,
        due_ms: r.try_get(11)?,
        closed_ms: r.try_get(12)?,
        risk: r.try_get(13)?,
        model_version: r.try_get(14)?,
        evidence: r.try_get(15)?,
    })
}

impl Store {
    /// Every ticket, oldest first.
    pub async fn tickets(&self) -> Result<Vec<TicketRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, ticket_ref, device_id, customer_id, problem, state, tier, offer_kind,
                quote_minor, currency, opened_ms, due_ms, closed_ms, risk, model_version, evidence
             FROM tickets ORDER BY id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(ticket_row).collect()
    }

    /// A ticket's history: (at, from, to, actor).
    pub async fn ticket_events(
        &self,
        id: i64,
    ) -> Result<Vec<(i64, Option<String>, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_ms, from_state, to_state, actor FROM ticket_events WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect()
    }
}
