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
    /// The whole feature vector as scored, JSON ([`ScoredFeatures`]).
    pub features: Option<String>,
}

/// The feature vector a ticket opened on, as stored: the values in the model schema's
/// order, under the schema's fingerprint (a vector from another schema is not mixed in).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScoredFeatures {
    /// `models::schema::schema_fingerprint()` when it was scored.
    pub schema: String,
    /// One value per feature, in schema order.
    pub values: Vec<f64>,
    /// For a random check: how many devices below the threshold it stands for (the
    /// training row's weight); absent for a ticket a score or a campaign opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_weight: Option<f64>,
}

/// Opens a ticket unless one is open for the device and problem; its id, or `None`.
pub async fn open(c: &mut AnyConnection, t: &NewTicket) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query(
        "INSERT INTO tickets (ticket_ref, device_id, tenant, customer_id, problem, state, tier,
            offer_kind, quote_minor, currency, opened_ms, due_ms, risk, model_version, evidence,
            sla_window_ms, features)
         VALUES ($1, $2, $3, $4, $5, 'opened', $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
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
    .bind(t.due_ms.saturating_sub(t.opened_ms) as i64)
    .bind(t.features.as_deref())
    .fetch_optional(&mut *c)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let id: i64 = row.try_get(0)?;
    if t.offer == OfferKind::TradeIn {
        super::tradeins::open(c, id, t).await?;
    }
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
        "UPDATE tickets SET state = $2, closed_ms = COALESCE($3, closed_ms), version = version + 1
         WHERE id = $1 AND state = $4",
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
    record_event(c, m.ticket_id, Some(m.from), m.to, m.actor, m.note, m.at_ms).await?;
    super::tradeins::follow(c, m.ticket_id, m.to, m.actor, m.at_ms).await
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

pub(super) async fn record_event(
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
    /// The device's tenant.
    pub tenant: String,
}

/// The columns [`ticket_row`] reads.
const TICKET_COLS: &str = "id, ticket_ref, device_id, customer_id, problem, state, tier,
    offer_kind, quote_minor, currency, opened_ms, due_ms, closed_ms, risk, model_version,
    evidence, tenant";

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
        tenant: r.try_get(16)?,
    })
}

impl Store {
    /// Every ticket, oldest first.
    pub async fn tickets(&self) -> Result<Vec<TicketRow>, StoreError> {
        let sql = format!("SELECT {TICKET_COLS} FROM tickets ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
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

/// What the service desk's queue shows of a ticket.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct QueueItem {
    /// Row id.
    pub id: i64,
    /// Public reference.
    pub ticket_ref: String,
    /// The device.
    pub device_id: String,
    /// Its model, from its birth.
    pub model: Option<String>,
    /// Its manufacturing batch.
    pub batch: Option<String>,
    /// The problem (the ticket's category).
    pub problem: Problem,
    /// Where it stands.
    pub state: TicketState,
    /// Priority tier.
    pub tier: Tier,
    /// The remedy offered.
    #[schema(value_type = String)]
    pub offer_kind: OfferKind,
    /// Who has it.
    pub assignee: Option<String>,
    /// The risk that opened it.
    pub risk: f64,
    /// When it opened.
    pub opened_ms: i64,
    /// When it is due (completed pauses counted in).
    pub due_ms: i64,
    /// The window its tier gave, ms.
    pub sla_window_ms: i64,
    /// Start of a pause in force.
    pub sla_paused_ms: Option<i64>,
    /// When it closed.
    pub closed_ms: Option<i64>,
    /// How it ended, and the confirmed fault's category.
    pub outcome: Option<String>,
    /// The confirmed fault's category.
    pub outcome_category: Option<String>,
    /// Bumped by every change.
    pub version: i64,
}

/// The queue's filters; `None` is any. Without a state, only open tickets are listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    /// Tier.
    pub tier: Option<Tier>,
    /// State.
    pub state: Option<TicketState>,
    /// SLA state, at `now_ms`.
    pub sla: Option<crate::tickets::sla::SlaState>,
    /// Problem.
    pub problem: Option<Problem>,
    /// Device model.
    pub model: Option<String>,
    /// Device batch.
    pub batch: Option<String>,
    /// Assignee (`""`: nobody).
    pub assignee: Option<String>,
}

/// A page of the queue, most urgent first, with the open tickets' counts per tier.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueuePage {
    /// This page's tickets.
    pub items: Vec<QueueItem>,
    /// Tickets matching the filters, in all.
    pub total: u64,
    /// Open tickets per tier (unfiltered), highest tier first.
    pub open_by_tier: Vec<(Tier, u64)>,
}

const QUEUE_COLS: &str = "t.id, t.ticket_ref, t.device_id, d.model, d.batch, t.problem, t.state,
    t.tier, t.offer_kind, t.assignee, t.risk, t.opened_ms, t.due_ms, t.sla_window_ms,
    t.sla_paused_ms, t.closed_ms, t.outcome, t.outcome_category, t.version";

fn queue_item(r: &AnyRow) -> Result<QueueItem, StoreError> {
    let kind: String = r.try_get(8)?;
    Ok(QueueItem {
        id: r.try_get(0)?,
        ticket_ref: r.try_get(1)?,
        device_id: r.try_get(2)?,
        model: r.try_get(3)?,
        batch: r.try_get(4)?,
        problem: parse(&r.try_get::<String, _>(5)?)?,
        state: parse(&r.try_get::<String, _>(6)?)?,
        tier: parse(&r.try_get::<String, _>(7)?)?,
        offer_kind: OfferKind::from_name(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown offer kind {kind:?}")))?,
        assignee: r.try_get(9)?,
        risk: r.try_get(10)?,
        opened_ms: r.try_get(11)?,
        due_ms: r.try_get(12)?,
        sla_window_ms: r.try_get::<Option<i64>, _>(13)?.unwrap_or(0),
        sla_paused_ms: r.try_get(14)?,
        closed_ms: r.try_get(15)?,
        outcome: r.try_get(16)?,
        outcome_category: r.try_get(17)?,
        version: r.try_get(18)?,
    })
}

/// A bound value of a built query.
enum Arg {
    Text(String),
    Int(i64),
}

impl Store {
    /// A page of the queue (`page` from 0), most urgent first: running clocks by due
    /// time, then paused ones. SLA states are read from the clock's summary columns as
    /// [`crate::tickets::sla::state_of`] reads them.
    pub async fn queue(
        &self,
        f: &QueueFilter,
        now_ms: u64,
        page: u32,
        per_page: u32,
    ) -> Result<QueuePage, StoreError> {
        use crate::tickets::sla::SlaState;
        let mut wh: Vec<String> = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        let bind = |args: &mut Vec<Arg>, a: Arg| {
            args.push(a);
            format!("${}", args.len())
        };
        match f.state {
            Some(s) => {
                let p = bind(&mut args, Arg::Text(s.as_str().into()));
                wh.push(format!("t.state = {p}"));
            }
            // Open is not closed: a ticket gets its `closed_ms` as it closes, and the
            // partial indexes `tickets_open_*` hold exactly those without one.
            None => wh.push("t.closed_ms IS NULL".into()),
        }
        for (col, v) in [
            ("t.tier", f.tier.map(|t| t.as_str().to_owned())),
            ("t.problem", f.problem.map(|p| p.as_str().to_owned())),
            ("d.model", f.model.clone()),
            ("d.batch", f.batch.clone()),
        ] {
            if let Some(v) = v {
                let p = bind(&mut args, Arg::Text(v));
                wh.push(format!("{col} = {p}"));
            }
        }
        match f.assignee.as_deref() {
            Some("") => wh.push("t.assignee IS NULL".into()),
            Some(a) => {
                let p = bind(&mut args, Arg::Text(a.into()));
                wh.push(format!("t.assignee = {p}"));
            }
            None => {}
        }
        if let Some(sla) = f.sla {
            // Bound only where the condition reads it.
            let mut now = || bind(&mut args, Arg::Int(now_ms as i64));
            wh.push(match sla {
                SlaState::Breached => format!(
                    "((t.sla_paused_ms IS NULL AND t.due_ms < {})
                      OR (t.sla_paused_ms IS NOT NULL AND t.due_ms < t.sla_paused_ms))",
                    now()
                ),
                SlaState::Paused => {
                    "(t.sla_paused_ms IS NOT NULL AND t.due_ms >= t.sla_paused_ms)".into()
                }
                SlaState::AtRisk => {
                    let now = now();
                    format!(
                        "(t.sla_paused_ms IS NULL AND t.due_ms >= {now}
                          AND (t.due_ms - {now}) * 4 <= t.sla_window_ms)"
                    )
                }
                SlaState::OnTime => format!(
                    "(t.sla_paused_ms IS NULL AND (t.due_ms - {}) * 4 > t.sla_window_ms)",
                    now()
                ),
                SlaState::Met => "(t.closed_ms IS NOT NULL AND t.closed_ms <= t.due_ms)".into(),
            });
        }
        // The devices' columns are joined only when a filter reads them.
        let join = if f.model.is_some() || f.batch.is_some() {
            "LEFT JOIN devices d ON d.device_id = t.device_id"
        } else {
            ""
        };
        let run = |sql: String, args: &[Arg]| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for a in args {
                q = match a {
                    Arg::Text(s) => q.bind(s.clone()),
                    Arg::Int(i) => q.bind(*i),
                };
            }
            q
        };
        // Running clocks by due time, then paused ones: without a state, walks of
        // `tickets_open_running` and then `tickets_open_paused` in due order that stop at
        // the page, instead of sorting every match; their columns answer the counts.
        let part = |paused: bool| {
            let mut w = wh.clone();
            w.push(format!(
                "t.sla_paused_ms IS {}NULL",
                if paused { "NOT " } else { "" }
            ));
            w.join(" AND ")
        };
        let (running, paused) = (part(false), part(true));
        let count = |w: String| {
            let sql = format!("SELECT COUNT(*) FROM tickets t {join} WHERE {w}");
            let q = run(sql, &args);
            async move {
                Ok::<u64, StoreError>(q.fetch_one(self.pool()).await?.try_get::<i64, _>(0)? as u64)
            }
        };
        let running_total = count(running.clone()).await?;
        let total = running_total + count(paused.clone()).await?;
        let rows = |w: &str, limit: u64, offset: u64| {
            let sql = format!(
                "SELECT {QUEUE_COLS} FROM tickets t LEFT JOIN devices d ON d.device_id = t.device_id
                 WHERE {w} ORDER BY t.due_ms, t.id LIMIT {limit} OFFSET {offset}"
            );
            run(sql, &args).fetch_all(self.pool())
        };
        let offset = u64::from(page) * u64::from(per_page);
        let want = u64::from(per_page);
        let mut found = Vec::new();
        if offset < running_total {
            found.extend(rows(&running, want, offset).await?);
        }
        let short = want - found.len() as u64;
        if short > 0 && offset + want > running_total {
            found.extend(rows(&paused, short, offset.saturating_sub(running_total)).await?);
        }
        let items = found
            .iter()
            .map(queue_item)
            .collect::<Result<Vec<_>, _>>()?;
        let mut open_by_tier: Vec<(Tier, u64)> = Tier::ALL.iter().rev().map(|&t| (t, 0)).collect();
        // Counted from each clock's index (one `closed_ms IS NULL` count would read them all).
        for clock in ["IS NULL", "IS NOT NULL"] {
            let sql = format!(
                "SELECT tier, COUNT(*) FROM tickets
                 WHERE closed_ms IS NULL AND sla_paused_ms {clock} GROUP BY tier"
            );
            for r in &sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(self.pool())
                .await?
            {
                let tier: Tier = parse(&r.try_get::<String, _>(0)?)?;
                let n: i64 = r.try_get(1)?;
                if let Some(e) = open_by_tier.iter_mut().find(|e| e.0 == tier) {
                    e.1 += n as u64;
                }
            }
        }
        Ok(QueuePage {
            items,
            total: total as u64,
            open_by_tier,
        })
    }

    /// One ticket as the queue shows it.
    pub async fn queue_item(&self, id: i64) -> Result<Option<QueueItem>, StoreError> {
        let sql = format!(
            "SELECT {QUEUE_COLS} FROM tickets t LEFT JOIN devices d ON d.device_id = t.device_id
             WHERE t.id = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(queue_item).transpose()
    }

    /// Up to `limit` tickets with an outcome and an id above `after`, closed at or after
    /// `closed_since_ms`, by id: the label export's pages and the model gate's outcomes.
    pub async fn outcome_tickets(
        &self,
        after: i64,
        limit: u32,
        closed_since_ms: u64,
    ) -> Result<Vec<(i64, crate::tickets::labels::OutcomeTicket)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, ticket_ref, device_id, problem, outcome, outcome_category, closed_ms,
                opened_ms, model_version, evidence, features FROM tickets
             WHERE outcome IS NOT NULL AND id > $1 AND COALESCE(closed_ms, opened_ms) >= $3
             ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .bind(closed_since_ms as i64)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let evidence: String = r.try_get(9)?;
                // The features' own time; an unreadable evidence falls back to the opening.
                let scored_ms = serde_json::from_str::<serde_json::Value>(&evidence)
                    .ok()
                    .and_then(|e| e["scored_at_ms"].as_u64());
                Ok((
                    r.try_get(0)?,
                    crate::tickets::labels::OutcomeTicket {
                        ticket_ref: r.try_get(1)?,
                        device_id: r.try_get(2)?,
                        problem: r.try_get(3)?,
                        outcome: r.try_get(4)?,
                        outcome_category: r.try_get(5)?,
                        closed_ms: r.try_get::<Option<i64>, _>(6)?.map(|v| v as u64),
                        scored_ms,
                        opened_ms: r.try_get::<i64, _>(7)? as u64,
                        model_version: r.try_get(8)?,
                        features: r.try_get(10)?,
                    },
                ))
            })
            .collect()
    }

    /// A device's newest `limit` tickets, open or closed, newest first.
    pub async fn device_tickets(
        &self,
        device: &str,
        limit: u32,
    ) -> Result<Vec<QueueItem>, StoreError> {
        let sql = format!(
            "SELECT {QUEUE_COLS} FROM tickets t LEFT JOIN devices d ON d.device_id = t.device_id
             WHERE t.device_id = $1 ORDER BY t.opened_ms DESC, t.id DESC LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(device)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(queue_item).collect()
    }

    /// A ticket's log, oldest first.
    pub async fn ticket_log(&self, id: i64) -> Result<Vec<LogEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_ms, kind, from_state, to_state, actor, note FROM ticket_events
             WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LogEntry {
                    at_ms: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    from: r.try_get(2)?,
                    to: r.try_get(3)?,
                    actor: r.try_get(4)?,
                    note: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Applies a desk change decided on the ticket at `version`, with its event and
    /// audit entry, in one transaction; the new version, or [`StoreError::Conflict`]
    /// when the ticket changed meanwhile.
    pub async fn apply_desk_change(
        &self,
        seen: Seen,
        change: &crate::tickets::work::Change,
        user: &str,
        action: &str,
        at_ms: u64,
    ) -> Result<i64, StoreError> {
        let Seen {
            id,
            version,
            state: from,
        } = seen;
        let mut tx = self.begin().await?;
        let before = self.queue_item_in(&mut tx, id).await?;
        let closed = (!change.to.is_open() && from.is_open()).then_some(at_ms as i64);
        let done = sqlx::query(
            "UPDATE tickets SET state = $3, assignee = COALESCE($4, assignee),
                outcome = COALESCE($5, outcome), outcome_category = COALESCE($6, outcome_category),
                due_ms = $7, sla_paused_ms = $8, closed_ms = COALESCE($9, closed_ms),
                version = version + 1
             WHERE id = $1 AND version = $2",
        )
        .bind(id)
        .bind(version)
        .bind(change.to.as_str())
        .bind(change.assignee.as_deref())
        .bind(change.outcome.map(|(o, _)| o.as_str()))
        .bind(change.outcome.and_then(|(_, c)| c).map(|c| c.as_str()))
        .bind(change.sla.due_ms as i64)
        .bind(change.sla.paused_since_ms.map(|v| v as i64))
        .bind(closed)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Conflict(format!(
                "ticket {id} changed since version {version}"
            )));
        }
        sqlx::query(
            "INSERT INTO ticket_events (ticket_id, at_ms, from_state, to_state, actor, note, kind)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(at_ms as i64)
        .bind(from.as_str())
        .bind(change.to.as_str())
        .bind(user)
        .bind(change.note.as_deref())
        .bind(change.kind)
        .execute(&mut *tx)
        .await?;
        if change.to != from {
            super::tradeins::follow(&mut tx, id, change.to, user, at_ms).await?;
        }
        let after = self.queue_item_in(&mut tx, id).await?;
        super::users::audit(
            &mut tx,
            &super::users::AuditEntry {
                at_ms: at_ms as i64,
                user_name: user.to_owned(),
                action: format!("ticket.{action}"),
                subject: format!("ticket:{id}"),
                before: before.map(|b| serde_json::to_string(&b).expect("serialises")),
                after: after.map(|a| serde_json::to_string(&a).expect("serialises")),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(version + 1)
    }

    async fn queue_item_in(
        &self,
        c: &mut AnyConnection,
        id: i64,
    ) -> Result<Option<QueueItem>, StoreError> {
        let sql = format!(
            "SELECT {QUEUE_COLS} FROM tickets t LEFT JOIN devices d ON d.device_id = t.device_id
             WHERE t.id = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(c)
            .await?;
        row.as_ref().map(queue_item).transpose()
    }
}

/// A ticket as a desk action saw it: a change applies only if it is still so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The ticket.
    pub id: i64,
    /// Its version.
    pub version: i64,
    /// Its state.
    pub state: TicketState,
}

/// One entry of a ticket's log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LogEntry {
    /// When.
    pub at_ms: i64,
    /// `move`, `assign`, `note`, `pause`, `resume`, `sla_breached`.
    pub kind: String,
    /// The state before.
    pub from: Option<String>,
    /// The state after.
    pub to: String,
    /// Who.
    pub actor: String,
    /// What was said (a pause's reason).
    pub note: Option<String>,
}

impl Store {
    /// A ticket's frozen evidence (JSON).
    pub async fn ticket_evidence(&self, id: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT evidence FROM tickets WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| r.try_get(0).map_err(StoreError::from))
            .transpose()
    }
}

/// Open tickets whose SLA window has run out at `$1`, with no breach recorded: the
/// same reading as `tickets::sla::state_of` gives `breached`.
const BREACHED: &str = "sla_breached_ms IS NULL
    AND ($3 IS NULL OR tenant = $3)
    AND state IN ('opened', 'offered', 'accepted', 'in_progress')
    AND ((sla_paused_ms IS NULL AND due_ms < $1)
         OR (sla_paused_ms IS NOT NULL AND due_ms < sla_paused_ms))";

impl Store {
    /// Records up to `limit` SLA breaches not yet recorded at `now_ms`, each once across
    /// replicas (the claim re-checks that none is recorded), of `tenant`'s tickets only when
    /// given: the breach time on the
    /// ticket (its due time), a `sla_breached` event, and a webhook to each of `urls`
    /// with the body `announce` makes; the tickets, in one transaction.
    pub async fn record_breaches(
        &self,
        now_ms: u64,
        limit: usize,
        tenant: Option<&str>,
        urls: &[String],
        announce: impl Fn(&TicketRow) -> String,
    ) -> Result<Vec<TicketRow>, StoreError> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "UPDATE tickets SET sla_breached_ms = due_ms, version = version + 1
             WHERE {BREACHED} AND id IN (SELECT id FROM tickets WHERE {BREACHED}
                ORDER BY due_ms LIMIT $2)
             RETURNING {TICKET_COLS}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now_ms as i64)
            .bind(limit as i64)
            .bind(tenant)
            .fetch_all(&mut *tx)
            .await?;
        let breached = rows.iter().map(ticket_row).collect::<Result<Vec<_>, _>>()?;
        for t in &breached {
            sqlx::query(
                "INSERT INTO ticket_events (ticket_id, at_ms, from_state, to_state, actor, note, kind)
                 VALUES ($1, $2, $3, $3, 'sla', $4, 'sla_breached')",
            )
            .bind(t.id)
            .bind(t.due_ms)
            .bind(t.state.as_str())
            .bind(format!("{} tier window ran out", t.tier))
            .execute(&mut *tx)
            .await?;
            let body = announce(t);
            for url in urls {
                super::outbox::queue_webhook(&mut tx, t.id, url, &body).await?;
            }
        }
        tx.commit().await?;
        Ok(breached)
    }
}
