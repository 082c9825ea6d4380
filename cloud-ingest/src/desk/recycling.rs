//! The recycling desk's casework: the queues per state, a trade-in with its condition at
//! quote time beside the bench grade, the actions that work it, the erasure
//! certificate, the SKUs' weights and the totals. The API and the pages both call
//! these, so they answer the same way; errors are [`ApiError`]s.

use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::api::{ApiError, DeskState, MAX_PER_PAGE};
use super::auth::User;
use crate::store::tickets::LogEntry;
use crate::store::tradeins::{SeenTradeIn, Sku, StateCount, TradeIn};
use crate::store::StoreError;
use crate::tickets::Evidence;
use crate::tradein::lifecycle::{self, Action, Answer, Context, Refusal, TradeInState};
use crate::tradein::routing::{self, Diverted, Period};
use crate::tradein::settlement::{self, Settlement};
use crate::tradein::totals::{self, Totals};

/// A page of a trade-in queue, with every state's count.
#[derive(Debug, Serialize, ToSchema)]
pub struct TradeInList {
    /// The state listed; none for every trade-in not yet finished.
    pub state: Option<TradeInState>,
    /// The trade-ins, longest waiting first.
    pub items: Vec<ListedTradeIn>,
    /// This page (from 0).
    pub page: u32,
    /// Its size.
    pub per_page: u32,
    /// How many match.
    pub total: u64,
    /// Every state, with how many stand in it and since when the oldest.
    pub counts: Vec<StateCount>,
}

/// A trade-in in a queue, with how long it has stood where it is.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListedTradeIn {
    /// The trade-in.
    #[serde(flatten)]
    pub tradein: TradeIn,
    /// How long it has been in its state, ms.
    pub age_ms: i64,
}

/// What telemetry showed when the quote was made.
#[derive(Debug, Serialize, ToSchema)]
pub struct AtQuote {
    /// Battery health, %.
    pub soh_pct: Option<f64>,
    /// The risk that opened the ticket.
    pub risk: Option<f64>,
    /// What the policy weighed, the condition among it.
    pub reasoning: Vec<String>,
}

/// A trade-in with its log, its condition at quote time and what comes next.
#[derive(Debug, Serialize, ToSchema)]
pub struct TradeInDetail {
    /// The trade-in.
    pub tradein: TradeIn,
    /// Its log, oldest first.
    pub log: Vec<LogEntry>,
    /// What telemetry showed when quoted.
    pub at_quote: AtQuote,
    /// The price the rules give now that it is graded (before it is settled).
    pub rules_price: Option<Settlement>,
    /// The SKU's weight, grams, when registered.
    pub weight_g: Option<u32>,
    /// Where to download the erasure certificate, once erased.
    pub certificate_path: Option<String>,
}

/// A period's totals and the kilograms diverted per period, model and route.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeskTotals {
    /// The period asked for (`2026-11`, `2026-W48`); none for all time.
    pub period: Option<String>,
    /// Start, ms.
    pub from_ms: u64,
    /// End (exclusive), ms.
    pub to_ms: u64,
    /// The totals.
    pub totals: Totals,
    /// Kilograms diverted by period, model and route.
    pub diverted: Vec<Diverted>,
}

fn parsed_state(v: Option<&str>) -> Result<Option<TradeInState>, ApiError> {
    v.filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<TradeInState>().map_err(|_| {
                ApiError::bad(format!(
                    "state = {s:?} is not one of {}",
                    TradeInState::ALL.map(TradeInState::as_str).join(", ")
                ))
            })
        })
        .transpose()
}

/// A page of a queue: trade-ins in `state`, or all unfinished.
pub async fn list(
    s: &DeskState,
    state: Option<&str>,
    page: Option<u32>,
    per_page: Option<u32>,
) -> Result<TradeInList, ApiError> {
    let state = parsed_state(state)?;
    let per_page = per_page.unwrap_or(50);
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::bad(format!(
            "per_page = {per_page}: must be 1 to {MAX_PER_PAGE}"
        )));
    }
    let page = page.unwrap_or(0);
    let (items, total) = s
        .store
        .tradein_queue(state, page, per_page)
        .await
        .map_err(ApiError::store)?;
    let counts = s.store.tradein_counts().await.map_err(ApiError::store)?;
    let now = s.clock.now().0 as i64;
    Ok(TradeInList {
        state,
        items: items
            .into_iter()
            .map(|t| ListedTradeIn {
                age_ms: (now - t.state_since_ms).max(0),
                tradein: t,
            })
            .collect(),
        page,
        per_page,
        total,
        counts,
    })
}

fn no_tradein(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not found",
        &format!("no trade-in {id} (a trade-in has the id of its trade-in ticket)"),
    )
}

/// A trade-in, or 404.
async fn load(s: &DeskState, id: i64) -> Result<TradeIn, ApiError> {
    s.store
        .tradein(id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| no_tradein(id))
}

/// A trade-in with its log and condition at quote time.
pub async fn detail(s: &DeskState, id: i64) -> Result<TradeInDetail, ApiError> {
    let t = load(s, id).await?;
    let log = s.store.tradein_log(id).await.map_err(ApiError::store)?;
    let evidence: Option<Evidence> = s
        .store
        .ticket_evidence(id)
        .await
        .map_err(ApiError::store)?
        .and_then(|e| serde_json::from_str(&e).ok());
    let weight_g = match &t.model {
        Some(m) => s
            .store
            .sku(m)
            .await
            .map_err(ApiError::store)?
            .map(|k| k.weight_g),
        None => None,
    };
    let rules_price = match (&t.record.graded, &t.record.settlement) {
        (Some(g), None) => Some(settlement::settle(
            &t.standing().quote,
            &g.grade,
            t.quoted_soh,
            &s.tradein_rules.settlement,
        )),
        _ => None,
    };
    Ok(TradeInDetail {
        at_quote: AtQuote {
            soh_pct: t.quoted_soh,
            risk: evidence.as_ref().map(|e| e.risk),
            reasoning: evidence.map(|e| e.reasoning).unwrap_or_default(),
        },
        certificate_path: t
            .record
            .erasure
            .as_ref()
            .map(|_| format!("/api/v1/tradeins/{id}/certificate")),
        rules_price,
        weight_g,
        log,
        tradein: t,
    })
}

fn refused(r: Refusal) -> ApiError {
    match r {
        Refusal::Illegal { .. } => ApiError::new(StatusCode::CONFLICT, "not now", &r.to_string()),
        Refusal::Invalid(m) => ApiError::unprocessable(m),
    }
}

/// Works a trade-in: one action, decided on the version `seen` when given (else on
/// what is stored now); the trade-in afterwards.
pub async fn act(
    s: &DeskState,
    user: &User,
    id: i64,
    action: Action,
    seen: Option<i64>,
) -> Result<TradeInDetail, ApiError> {
    let t = load(s, id).await?;
    if let Some(v) = seen.filter(|&v| v != t.version) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "stale",
            &format!(
                "trade-in {id} changed since version {v} (it is at version {}, {}): reload and decide again",
                t.version, t.state
            ),
        ));
    }
    let weight_g = match (&action, &t.model) {
        (Action::Route { .. }, Some(m)) => s
            .store
            .sku(m)
            .await
            .map_err(ApiError::store)?
            .map(|k| k.weight_g),
        _ => None,
    };
    let now = s.clock.now().0;
    let cx = Context {
        rules: &s.tradein_rules,
        by: &user.name,
        now_ms: now,
        weight_g,
    };
    let change = lifecycle::decide(&t.standing(), &action, &cx).map_err(refused)?;
    apply(s, &t, &change, &user.name, action.name(), now).await?;
    detail(s, id).await
}

async fn apply(
    s: &DeskState,
    t: &TradeIn,
    change: &lifecycle::Change,
    user: &str,
    action: &str,
    now: u64,
) -> Result<(), ApiError> {
    let seen = SeenTradeIn {
        id: t.id,
        version: t.version,
        state: t.state,
    };
    match s
        .store
        .apply_tradein_change(seen, change, user, action, now)
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict(m)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "stale",
            &format!("{m}: reload and decide again"),
        )),
        Err(e) => Err(ApiError::store(e)),
    }
}

/// The customer's answer to the settled price of ticket `id`'s trade-in.
pub async fn customer_answer(s: &DeskState, id: i64, a: Answer) -> Result<TradeIn, ApiError> {
    let t = load(s, id).await?;
    let change = lifecycle::answer(&t.standing(), a).map_err(refused)?;
    let name = match a {
        Answer::AcceptPrice => "customer_accept_price",
        Answer::ReturnDevice => "customer_return_device",
    };
    apply(
        s,
        &t,
        &change,
        crate::store::progress::CUSTOMER,
        name,
        s.clock.now().0,
    )
    .await?;
    load(s, id).await
}

/// The erasure certificate of a trade-in: its file name and text.
pub async fn certificate(s: &DeskState, id: i64) -> Result<(String, String), ApiError> {
    let t = load(s, id).await?;
    let e = t.record.erasure.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no certificate",
            &format!("trade-in {id} has no erasure recorded yet ({})", t.state),
        )
    })?;
    Ok((
        format!("erasure-{}.txt", e.certificate_id),
        e.certificate(&t.ticket_ref, &t.device_id, t.model.as_deref()),
    ))
}

/// The totals of a period (`2026-11`, `2026-W48`; all time when none), with the
/// kilograms diverted grouped by `by` (`month`, the default, or `week`).
pub async fn desk_totals(
    s: &DeskState,
    period: Option<&str>,
    by: Option<&str>,
) -> Result<DeskTotals, ApiError> {
    let period = period.map(str::trim).filter(|p| !p.is_empty());
    let (from_ms, to_ms, natural) = match period {
        Some(p) => routing::period_range(p).map_err(ApiError::bad)?,
        None => (0, i64::MAX as u64, Period::Month),
    };
    let by = match by.filter(|b| !b.is_empty()) {
        None => natural,
        Some("month") => Period::Month,
        Some("week") => Period::Week,
        Some(other) => {
            return Err(ApiError::bad(format!(
                "by = {other:?} is not one of month, week"
            )))
        }
    };
    let rows = s
        .store
        .tradein_milestones(from_ms, to_ms)
        .await
        .map_err(ApiError::store)?;
    let routed = s
        .store
        .routed(from_ms, to_ms)
        .await
        .map_err(ApiError::store)?;
    Ok(DeskTotals {
        period: period.map(str::to_owned),
        from_ms,
        to_ms,
        totals: totals::totals(&rows, from_ms, to_ms),
        diverted: routing::diverted(&routed, by),
    })
}

/// Sets a SKU's weight.
pub async fn set_sku(s: &DeskState, user: &User, model: &str, grams: i64) -> Result<Sku, ApiError> {
    s.store
        .set_sku_weight(model, grams, &user.name, s.clock.now().0)
        .await
        .map_err(ApiError::store)
}
