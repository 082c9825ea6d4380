//! `tradeins`, `tradein_events` and `skus`: the recycling desk's trade-ins, opened with
//! their trade-in ticket, every move of each with who and when, and each SKU's weight.
//! A change applies only at the version it was decided on, with its event, its audit
//! entry and the ticket move it implies, in one transaction.

use protocol::command::Money;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::tickets::{LogEntry, NewTicket};
use super::users::{audit, AuditEntry};
use super::{parse, Store, StoreError};
use crate::tickets::TicketState;
use crate::tradein::lifecycle::{self, Change, Record, Standing, TradeInState};
use crate::tradein::routing::{self, Route, Routed};
use crate::tradein::totals::Milestones;

/// A trade-in as stored, with its ticket's reference and state.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct TradeIn {
    /// Its ticket's id (the trade-in's id too).
    pub id: i64,
    /// Its ticket's reference.
    pub ticket_ref: String,
    /// Its ticket's state.
    pub ticket_state: TicketState,
    /// The device.
    pub device_id: String,
    /// Its tenant.
    pub tenant: String,
    /// Its owner.
    pub customer_id: Option<String>,
    /// Its model (SKU).
    pub model: Option<String>,
    /// Where it stands.
    pub state: TradeInState,
    /// Bumped by every change.
    pub version: i64,
    /// Since when it is where it stands, ms.
    pub state_since_ms: i64,
    /// When it was quoted, ms.
    pub opened_ms: i64,
    /// The quote, minor units.
    pub quote_minor: i64,
    /// Its currency.
    pub currency: String,
    /// Battery health telemetry showed when quoted, %.
    pub quoted_soh: Option<f64>,
    /// Whether the device has a battery.
    pub has_battery: bool,
    /// Shipping, grade, erasure, settlement and routing.
    pub record: Record,
}

impl TradeIn {
    /// The trade-in as its lifecycle's decisions see it.
    pub fn standing(&self) -> Standing {
        Standing {
            state: self.state,
            quote: Money {
                amount_minor: self.quote_minor.max(0) as u64,
                currency: self.currency.clone(),
            },
            quoted_soh: self.quoted_soh,
            has_battery: self.has_battery,
            record: self.record.clone(),
        }
    }
}

const COLS: &str = "r.ticket_id, t.ticket_ref, t.state, r.device_id, r.tenant, t.customer_id,
    r.model, r.state, r.version, r.state_since_ms, r.opened_ms, r.quote_minor, r.currency,
    r.quoted_soh, r.has_battery, r.record";

fn tradein(r: &AnyRow) -> Result<TradeIn, StoreError> {
    let record: String = r.try_get(15)?;
    Ok(TradeIn {
        id: r.try_get(0)?,
        ticket_ref: r.try_get(1)?,
        ticket_state: parse(&r.try_get::<String, _>(2)?)?,
        device_id: r.try_get(3)?,
        tenant: r.try_get(4)?,
        customer_id: r.try_get(5)?,
        model: r.try_get(6)?,
        state: parse(&r.try_get::<String, _>(7)?)?,
        version: r.try_get(8)?,
        state_since_ms: r.try_get(9)?,
        opened_ms: r.try_get(10)?,
        quote_minor: r.try_get(11)?,
        currency: r.try_get(12)?,
        quoted_soh: r.try_get(13)?,
        has_battery: r.try_get::<i64, _>(14)? != 0,
        record: serde_json::from_str(&record)
            .map_err(|e| StoreError::Corrupt(format!("trade-in record: {e}")))?,
    })
}

/// Opens the trade-in of a trade-in ticket just opened (quoted), with the battery
/// health its scored features showed.
pub(crate) async fn open(
    c: &mut AnyConnection,
    ticket_id: i64,
    t: &NewTicket,
) -> Result<(), StoreError> {
    let features = t
        .features
        .as_deref()
        .and_then(|f| serde_json::from_str::<super::tickets::ScoredFeatures>(f).ok())
        .filter(|f| f.schema == models::schema::schema_fingerprint());
    let get = |i: usize| features.as_ref().and_then(|f| f.values.get(i).copied());
    let has_battery = get(models::schema::idx::HAS_BATTERY).is_none_or(|v| v > 0.5);
    let soh = get(models::schema::idx::SOH).filter(|_| has_battery);
    sqlx::query(
        "INSERT INTO tradeins (ticket_id, device_id, tenant, state, state_since_ms, opened_ms,
            quote_minor, currency, quoted_soh, has_battery, model)
         SELECT $1, $2, $3, 'quoted', $4, $4, $5, $6, $7, $8,
            (SELECT model FROM devices WHERE device_id = $2)",
    )
    .bind(ticket_id)
    .bind(t.device_id.as_str())
    .bind(t.tenant.as_str())
    .bind(t.opened_ms as i64)
    .bind(t.quote_minor.unwrap_or(0) as i64)
    .bind(t.currency.as_deref().unwrap_or("EUR"))
    .bind(soh)
    .bind(i64::from(has_battery))
    .execute(&mut *c)
    .await?;
    event(
        c,
        ticket_id,
        None,
        TradeInState::Quoted,
        "quote",
        "policy",
        None,
        t.opened_ms,
    )
    .await
}

/// Moves a ticket's trade-in as the ticket's move implies (the customer's answer to the
/// quote, or the ticket's withdrawal); nothing when the ticket has none or the
/// trade-in is past that point.
pub(crate) async fn follow(
    c: &mut AnyConnection,
    ticket_id: i64,
    ticket_to: TicketState,
    actor: &str,
    at_ms: u64,
) -> Result<(), StoreError> {
    if !matches!(
        ticket_to,
        TicketState::Accepted | TicketState::Declined | TicketState::Cancelled
    ) {
        return Ok(());
    }
    let Some(row) = sqlx::query("SELECT state FROM tradeins WHERE ticket_id = $1")
        .bind(ticket_id)
        .fetch_optional(&mut *c)
        .await?
    else {
        return Ok(());
    };
    let from: TradeInState = parse(&row.try_get::<String, _>(0)?)?;
    let Some(to) = lifecycle::follow_ticket(from, ticket_to) else {
        return Ok(());
    };
    sqlx::query(
        "UPDATE tradeins SET state = $2, state_since_ms = $3, version = version + 1
         WHERE ticket_id = $1 AND state = $4",
    )
    .bind(ticket_id)
    .bind(to.as_str())
    .bind(at_ms as i64)
    .bind(from.as_str())
    .execute(&mut *c)
    .await?;
    event(c, ticket_id, Some(from), to, "ticket", actor, None, at_ms).await
}

#[allow(clippy::too_many_arguments)]
async fn event(
    c: &mut AnyConnection,
    id: i64,
    from: Option<TradeInState>,
    to: TradeInState,
    kind: &str,
    actor: &str,
    note: Option<&str>,
    at_ms: u64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tradein_events (ticket_id, at_ms, from_state, to_state, kind, actor, note)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(at_ms as i64)
    .bind(from.map(|f| f.as_str()))
    .bind(to.as_str())
    .bind(kind)
    .bind(actor)
    .bind(note)
    .execute(c)
    .await?;
    Ok(())
}

/// A trade-in as a change saw it: the change applies only if it is still so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenTradeIn {
    /// The trade-in (its ticket's id).
    pub id: i64,
    /// Its version.
    pub version: i64,
    /// Its state.
    pub state: TradeInState,
}

/// How many trade-ins stand in a state, and since when the oldest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct StateCount {
    /// The state.
    pub state: TradeInState,
    /// Trade-ins in it.
    pub count: u64,
    /// Since when the longest-waiting one is in it, ms.
    pub oldest_since_ms: Option<i64>,
}

/// A SKU's weight.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Sku {
    /// The model.
    pub model: String,
    /// Grams.
    pub weight_g: u32,
    /// When it was set, ms.
    pub updated_ms: i64,
}

impl Store {
    /// A trade-in.
    pub async fn tradein(&self, id: i64) -> Result<Option<TradeIn>, StoreError> {
        let sql = format!(
            "SELECT {COLS} FROM tradeins r JOIN tickets t ON t.id = r.ticket_id
             WHERE r.ticket_id = $1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(tradein).transpose()
    }

    /// The trade-ins of a device, newest first.
    pub async fn device_tradeins(&self, device: &str) -> Result<Vec<TradeIn>, StoreError> {
        let sql = format!(
            "SELECT {COLS} FROM tradeins r JOIN tickets t ON t.id = r.ticket_id
             WHERE r.device_id = $1 ORDER BY r.opened_ms DESC, r.ticket_id DESC"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(device)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(tradein).collect()
    }

    /// The trade-ins in `state` (all not final when none), longest waiting first, and
    /// how many match.
    pub async fn tradein_queue(
        &self,
        state: Option<TradeInState>,
        page: u32,
        per_page: u32,
    ) -> Result<(Vec<TradeIn>, u64), StoreError> {
        let finals = TradeInState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let (w, bind) = match state {
            Some(s) => ("r.state = $1".to_owned(), Some(s.as_str())),
            None => (format!("r.state NOT IN ({finals})"), None),
        };
        let offset = u64::from(page) * u64::from(per_page);
        let sql = format!(
            "SELECT {COLS} FROM tradeins r JOIN tickets t ON t.id = r.ticket_id WHERE {w}
             ORDER BY r.state_since_ms, r.ticket_id LIMIT {per_page} OFFSET {offset}"
        );
        let count = format!("SELECT COUNT(*) FROM tradeins r WHERE {w}");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        let mut n = sqlx::query(sqlx::AssertSqlSafe(count));
        if let Some(b) = bind {
            q = q.bind(b);
            n = n.bind(b);
        }
        let items = q
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(tradein)
            .collect::<Result<Vec<_>, _>>()?;
        let total: i64 = n.fetch_one(self.pool()).await?.try_get(0)?;
        Ok((items, total as u64))
    }

    /// Trade-ins per state, every state listed.
    pub async fn tradein_counts(&self) -> Result<Vec<StateCount>, StoreError> {
        let rows =
            sqlx::query("SELECT state, COUNT(*), MIN(state_since_ms) FROM tradeins GROUP BY state")
                .fetch_all(self.pool())
                .await?;
        let mut out: Vec<StateCount> = TradeInState::ALL
            .into_iter()
            .map(|state| StateCount {
                state,
                count: 0,
                oldest_since_ms: None,
            })
            .collect();
        for r in rows {
            let state: TradeInState = parse(&r.try_get::<String, _>(0)?)?;
            if let Some(c) = out.iter_mut().find(|c| c.state == state) {
                c.count = r.try_get::<i64, _>(1)? as u64;
                c.oldest_since_ms = r.try_get(2)?;
            }
        }
        Ok(out)
    }

    /// A trade-in's log, oldest first (`kind`: the action, `quote` and `ticket` for the
    /// ticket's moves).
    pub async fn tradein_log(&self, id: i64) -> Result<Vec<LogEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT at_ms, kind, from_state, to_state, actor, note FROM tradein_events
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

    /// Applies a change decided on the trade-in at `seen`, with its event, its audit
    /// entry and the ticket move it implies, in one transaction; the new version, or
    /// [`StoreError::Conflict`] when the trade-in changed meanwhile.
    pub async fn apply_tradein_change(
        &self,
        seen: SeenTradeIn,
        change: &Change,
        user: &str,
        action: &str,
        at_ms: u64,
    ) -> Result<i64, StoreError> {
        let SeenTradeIn { id, version, state } = seen;
        let record = serde_json::to_string(&change.record).expect("a record serialises");
        let r = &change.record;
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE tradeins SET state = $3, version = version + 1,
                state_since_ms = CASE WHEN state = $3 THEN state_since_ms ELSE $4 END,
                record = $5, received_ms = $6, graded_ms = $7, settled_ms = COALESCE(settled_ms, $8),
                final_minor = $9, route = $10, routed_ms = $11, weight_g = $12
             WHERE ticket_id = $1 AND version = $2 AND state = $13",
        )
        .bind(id)
        .bind(version)
        .bind(change.to.as_str())
        .bind(at_ms as i64)
        .bind(record.as_str())
        .bind(r.received_ms.map(|v| v as i64))
        .bind(r.graded.as_ref().map(|g| g.at_ms as i64))
        .bind(r.settlement.as_ref().map(|_| at_ms as i64))
        .bind(r.settlement.as_ref().map(|s| s.final_minor as i64))
        .bind(r.routing.as_ref().map(|x| x.route.as_str()))
        .bind(r.routing.as_ref().map(|x| x.at_ms as i64))
        .bind(r.routing.as_ref().map(|x| i64::from(x.weight_g)))
        .bind(state.as_str())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Conflict(format!(
                "trade-in {id} changed since version {version} ({state})"
            )));
        }
        event(
            &mut tx,
            id,
            Some(state),
            change.to,
            action,
            user,
            change.note.as_deref(),
            at_ms,
        )
        .await?;
        // The ticket follows.
        let ticket: TicketState = super::tickets::state(&mut tx, id).await?;
        if let Some((to, outcome)) = lifecycle::ticket_follows(change.to, ticket) {
            let closed = (!to.is_open()).then_some(at_ms as i64);
            sqlx::query(
                "UPDATE tickets SET state = $2, outcome = COALESCE($3, outcome),
                    closed_ms = COALESCE($4, closed_ms), sla_paused_ms = CASE WHEN $4 IS NULL
                    THEN sla_paused_ms ELSE NULL END, version = version + 1
                 WHERE id = $1 AND state = $5",
            )
            .bind(id)
            .bind(to.as_str())
            .bind(outcome.map(|o| o.as_str()))
            .bind(closed)
            .bind(ticket.as_str())
            .execute(&mut *tx)
            .await?;
            let note = format!("trade-in {}", change.to.as_str());
            super::tickets::record_event(&mut tx, id, Some(ticket), to, user, Some(&note), at_ms)
                .await?;
        }
        audit(
            &mut tx,
            &AuditEntry {
                at_ms: at_ms as i64,
                user_name: user.to_owned(),
                action: format!("tradein.{action}"),
                subject: format!("tradein:{id}"),
                before: Some(serde_json::json!({ "state": state, "version": version }).to_string()),
                after: Some(
                    serde_json::json!({ "state": change.to, "version": version + 1,
                        "record": change.record })
                    .to_string(),
                ),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(version + 1)
    }

    /// The milestones of trade-ins with any milestone in `[from_ms, to_ms)`.
    pub async fn tradein_milestones(
        &self,
        from_ms: u64,
        to_ms: u64,
    ) -> Result<Vec<Milestones>, StoreError> {
        let rows = sqlx::query(
            "SELECT received_ms, graded_ms, settled_ms, quote_minor, final_minor, currency,
                routed_ms, route, weight_g
             FROM tradeins WHERE (received_ms >= $1 AND received_ms < $2)
                OR (graded_ms >= $1 AND graded_ms < $2) OR (settled_ms >= $1 AND settled_ms < $2)
                OR (routed_ms >= $1 AND routed_ms < $2)",
        )
        .bind(from_ms as i64)
        .bind(to_ms as i64)
        .fetch_all(self.pool())
        .await?;
        let ms = |v: Option<i64>| v.map(|v| v.max(0) as u64);
        rows.iter()
            .map(|r| {
                let settled = match (ms(r.try_get(2)?), r.try_get::<Option<i64>, _>(4)?) {
                    (Some(at), Some(price)) => Some((
                        at,
                        r.try_get::<i64, _>(3)?.max(0) as u64,
                        price.max(0) as u64,
                        r.try_get::<String, _>(5)?,
                    )),
                    _ => None,
                };
                let routed = match (
                    ms(r.try_get(6)?),
                    r.try_get::<Option<String>, _>(7)?,
                    r.try_get::<Option<i64>, _>(8)?,
                ) {
                    (Some(at), Some(route), Some(g)) => Some((
                        at,
                        parse::<Route>(&route)?,
                        g.clamp(0, u32::MAX.into()) as u32,
                    )),
                    _ => None,
                };
                Ok(Milestones {
                    received_ms: ms(r.try_get(0)?),
                    graded_ms: ms(r.try_get(1)?),
                    settled,
                    routed,
                })
            })
            .collect()
    }

    /// The devices routed in `[from_ms, to_ms)`, for the kilograms diverted.
    pub async fn routed(&self, from_ms: u64, to_ms: u64) -> Result<Vec<Routed>, StoreError> {
        let rows = sqlx::query(
            "SELECT routed_ms, COALESCE(model, 'unknown'), route, weight_g FROM tradeins
             WHERE routed_ms >= $1 AND routed_ms < $2 AND route IS NOT NULL ORDER BY routed_ms",
        )
        .bind(from_ms as i64)
        .bind(to_ms as i64)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Routed {
                    at_ms: r.try_get::<i64, _>(0)?.max(0) as u64,
                    model: r.try_get(1)?,
                    route: parse(&r.try_get::<String, _>(2)?)?,
                    weight_g: r
                        .try_get::<Option<i64>, _>(3)?
                        .unwrap_or(0)
                        .clamp(0, u32::MAX.into()) as u32,
                })
            })
            .collect()
    }

    /// Up to `limit` graded trade-ins with an id above `after`, by id: the label
    /// export's pages.
    pub async fn graded_tradeins(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, crate::tickets::labels::GradedTradeIn)>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.id, t.ticket_ref, t.device_id, t.problem, t.opened_ms, t.model_version,
                t.evidence, t.features, r.quoted_soh, r.record
             FROM tradeins r JOIN tickets t ON t.id = r.ticket_id
             WHERE r.graded_ms IS NOT NULL AND t.id > $1 ORDER BY t.id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let record: Record = serde_json::from_str(&r.try_get::<String, _>(9)?)
                .map_err(|e| StoreError::Corrupt(format!("trade-in record: {e}")))?;
            let Some(graded) = record.graded else {
                continue;
            };
            let evidence: String = r.try_get(6)?;
            let scored_ms = serde_json::from_str::<serde_json::Value>(&evidence)
                .ok()
                .and_then(|e| e["scored_at_ms"].as_u64());
            out.push((
                r.try_get(0)?,
                crate::tickets::labels::GradedTradeIn {
                    ticket: crate::tickets::labels::OutcomeTicket {
                        ticket_ref: r.try_get(1)?,
                        device_id: r.try_get(2)?,
                        problem: r.try_get(3)?,
                        outcome: "graded".into(),
                        outcome_category: None,
                        closed_ms: Some(graded.at_ms),
                        scored_ms,
                        opened_ms: r.try_get::<i64, _>(4)?.max(0) as u64,
                        model_version: r.try_get(5)?,
                        features: r.try_get(7)?,
                    },
                    quoted_soh: r.try_get(8)?,
                    graded,
                },
            ));
        }
        Ok(out)
    }

    /// Sets a SKU's weight in the registry, checked; audited.
    pub async fn set_sku_weight(
        &self,
        model: &str,
        grams: i64,
        by: &str,
        at_ms: u64,
    ) -> Result<Sku, StoreError> {
        let weight_g =
            routing::check_weight(model, grams).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let model = model.trim();
        let mut tx = self.begin().await?;
        let before = sku_in(&mut tx, model).await?;
        sqlx::query(
            "INSERT INTO skus (model, weight_g, updated_ms) VALUES ($1, $2, $3)
             ON CONFLICT (model) DO UPDATE SET weight_g = excluded.weight_g,
                updated_ms = excluded.updated_ms",
        )
        .bind(model)
        .bind(i64::from(weight_g))
        .bind(at_ms as i64)
        .execute(&mut *tx)
        .await?;
        let sku = Sku {
            model: model.to_owned(),
            weight_g,
            updated_ms: at_ms as i64,
        };
        audit(
            &mut tx,
            &AuditEntry {
                at_ms: at_ms as i64,
                user_name: by.to_owned(),
                action: "sku.weight".into(),
                subject: format!("sku:{model}"),
                before: before.map(|b| serde_json::to_string(&b).expect("serialises")),
                after: Some(serde_json::to_string(&sku).expect("serialises")),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(sku)
    }

    /// A SKU's weight, if registered.
    pub async fn sku(&self, model: &str) -> Result<Option<Sku>, StoreError> {
        let mut c = self.pool().acquire().await?;
        sku_in(&mut c, model).await
    }

    /// Every SKU, by model.
    pub async fn skus(&self) -> Result<Vec<Sku>, StoreError> {
        let rows = sqlx::query("SELECT model, weight_g, updated_ms FROM skus ORDER BY model")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(sku_row).collect()
    }
}

fn sku_row(r: &AnyRow) -> Result<Sku, StoreError> {
    Ok(Sku {
        model: r.try_get(0)?,
        weight_g: u32::try_from(r.try_get::<i64, _>(1)?)
            .map_err(|_| StoreError::Corrupt("a SKU weight out of range".into()))?,
        updated_ms: r.try_get(2)?,
    })
}

async fn sku_in(c: &mut AnyConnection, model: &str) -> Result<Option<Sku>, StoreError> {
    let row = sqlx::query("SELECT model, weight_g, updated_ms FROM skus WHERE model = $1")
        .bind(model)
        .fetch_optional(c)
        .await?;
    row.as_ref().map(sku_row).transpose()
}
