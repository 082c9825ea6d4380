//! The service desk's casework: reading the queue and a ticket, and acting on one.
//! The API and the pages both call these, so they answer the same way; errors are
//! [`ApiError`]s, which each renders in its own form.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::api::{
    ApiError, DeskState, DeviceDetail, ListParams, ListedTicket, ProgressLink, TicketDetail,
    TicketList, MAX_PER_PAGE,
};
use super::auth::{Access, User};
use super::trend::{self, Trend, CHART_DAYS};
use crate::policy::Problem;
use crate::store::progress::StoredRating;
use crate::store::tickets::{LogEntry, QueueFilter, QueueItem, Seen};
use crate::store::StoreError;
use crate::tickets::sla::{self, ClockEvent, PauseReason, SlaClock, SlaState};
use crate::tickets::work::{self, Action, Outcome, Standing};
use crate::tickets::{TicketState, Tier};
use models::features::DAY_MS;

/// A page of the queue.
pub async fn queue(s: &DeskState, p: ListParams) -> Result<TicketList, ApiError> {
    let names = |all: &[&'static str]| all.to_vec();
    let filter = QueueFilter {
        tier: parsed::<Tier>("tier", p.tier, &names(&Tier::ALL.map(Tier::as_str)))?,
        state: parsed::<TicketState>(
            "state",
            p.state,
            &names(&TicketState::ALL.map(TicketState::as_str)),
        )?,
        sla: parsed::<SlaState>("sla", p.sla, &names(&SlaState::ALL.map(SlaState::as_str)))?,
        problem: parsed::<Problem>(
            "category",
            p.category,
            &names(&Problem::ALL.map(Problem::as_str)),
        )?,
        model: p.model.filter(|s| !s.is_empty()),
        batch: p.batch.filter(|s| !s.is_empty()),
        assignee: p.assignee,
    };
    let per_page = p.per_page.unwrap_or(50);
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::bad(format!(
            "per_page = {per_page}: must be 1 to {MAX_PER_PAGE}"
        )));
    }
    let page = p.page.unwrap_or(0);
    let now = s.clock.now().0;
    let q = s
        .store
        .queue(&filter, now, page, per_page)
        .await
        .map_err(ApiError::store)?;
    Ok(TicketList {
        items: q.items.into_iter().map(|i| with_sla(i, now)).collect(),
        page,
        per_page,
        total: q.total,
        open_by_tier: q
            .open_by_tier
            .iter()
            .map(|(t, n)| (t.as_str().to_owned(), *n))
            .collect(),
    })
}

fn parsed<T: std::str::FromStr>(
    name: &str,
    v: Option<String>,
    allowed: &[&str],
) -> Result<Option<T>, ApiError> {
    v.filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<T>().map_err(|_| {
                ApiError::bad(format!(
                    "{name} = {s:?} is not one of {}",
                    allowed.join(", ")
                ))
            })
        })
        .transpose()
}

/// A queue item with its SLA state now.
fn with_sla(item: QueueItem, now_ms: u64) -> ListedTicket {
    let state = if item.closed_ms.is_some() {
        if item.closed_ms.unwrap_or(0) <= item.due_ms {
            SlaState::Met
        } else {
            SlaState::Breached
        }
    } else {
        sla::state_of(
            item.due_ms as u64,
            item.sla_paused_ms.map(|v| v as u64),
            item.sla_window_ms as u64,
            now_ms,
        )
    };
    ListedTicket {
        ticket: item,
        sla_state: state,
    }
}

/// The clock events in a ticket's log.
fn clock_events(log: &[LogEntry]) -> Vec<ClockEvent> {
    log.iter()
        .filter_map(|e| {
            let at_ms = e.at_ms as u64;
            match e.kind.as_str() {
                "pause" => Some(ClockEvent::Paused {
                    at_ms,
                    reason: e
                        .note
                        .as_deref()
                        .and_then(|n| n.parse::<PauseReason>().ok())
                        .unwrap_or(PauseReason::WaitingForCustomer),
                }),
                "resume" => Some(ClockEvent::Resumed { at_ms }),
                _ if e.to.parse::<TicketState>().is_ok_and(|s| !s.is_open()) => {
                    Some(ClockEvent::Closed { at_ms })
                }
                _ => None,
            }
        })
        .collect()
}

/// A ticket, its log, and its SLA clock read from the log now.
pub async fn load(
    s: &DeskState,
    id: i64,
) -> Result<(QueueItem, Vec<LogEntry>, SlaClock), ApiError> {
    let item = s
        .store
        .queue_item(id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| no_ticket(id))?;
    let log = s.store.ticket_log(id).await.map_err(ApiError::store)?;
    let clock = sla::clock(
        item.opened_ms as u64,
        item.sla_window_ms as u64,
        &clock_events(&log),
        s.clock.now().0,
    );
    Ok((item, log, clock))
}

/// The answer about a ticket.
fn detail(
    ticket: QueueItem,
    log: Vec<LogEntry>,
    sla: SlaClock,
    evidence: Option<Value>,
    rating: Option<StoredRating>,
) -> TicketDetail {
    TicketDetail {
        ticket,
        sla,
        log,
        evidence,
        rating,
        trend: None,
    }
}

/// The most stored messages one chart set reads (a crash-looping device's 30 days can
/// hold far more): the newest are drawn.
pub const MAX_CHART_MESSAGES: usize = 50_000;

/// Days after the scoring moment a ticket's evidence charts still show, so that the
/// charts of an old ticket show what led to it.
pub const DAYS_AFTER_SCORE: u64 = 7;

/// The device's daily figures over the [`CHART_DAYS`] ending at `end_ms`, the scoring
/// moment `scored_ms` marked.
async fn trend_of(
    s: &DeskState,
    device: &str,
    end_ms: u64,
    scored_ms: Option<u64>,
) -> Result<Trend, ApiError> {
    let from = trend::window_start(end_ms, CHART_DAYS);
    let to = from + CHART_DAYS * DAY_MS - 1;
    let messages = s
        .store
        .device_telemetry(device, (from, to), MAX_CHART_MESSAGES)
        .await
        .map_err(ApiError::store)?;
    let mut t = trend::trend(&messages, end_ms, CHART_DAYS, scored_ms);
    t.truncated = messages.len() >= MAX_CHART_MESSAGES;
    Ok(t)
}

/// A ticket with its SLA clock, log and evidence.
pub async fn ticket(s: &DeskState, id: i64) -> Result<TicketDetail, ApiError> {
    let (item, log, clock) = load(s, id).await?;
    let evidence = s
        .store
        .ticket_evidence(id)
        .await
        .map_err(ApiError::store)?
        .and_then(|e| serde_json::from_str(&e).ok());
    let rating = s.store.ticket_rating(id).await.map_err(ApiError::store)?;
    let scored = evidence
        .as_ref()
        .and_then(|e: &Value| e["scored_at_ms"].as_u64());
    let last_seen = s
        .store
        .device_card(&item.device_id)
        .await
        .map_err(ApiError::store)?
        .map(|d| d.last_seen_ms);
    let end = trend::ticket_window_end(scored, last_seen, item.opened_ms as u64, DAYS_AFTER_SCORE);
    let trend = trend_of(s, &item.device_id, end, scored).await?;
    let mut d = detail(item, log, clock, evidence, rating);
    d.trend = Some(trend);
    Ok(d)
}

/// A device as the desk shows it: identity, liveness, sequence gaps, score history, its
/// tickets and its last days.
pub async fn device(s: &DeskState, raw: &str) -> Result<DeviceDetail, ApiError> {
    let id = protocol::DeviceId::new(raw)
        .map_err(|e| ApiError::bad(format!("{raw:?} is not a device id: {e}")))?;
    let id = id.as_str();
    let card = s
        .store
        .device_card(id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such device",
                &format!("no device {id} has been seen"),
            )
        })?;
    let status = s.store.device_status(id).await.map_err(ApiError::store)?;
    let since = card
        .last_seen_ms
        .saturating_sub(SCORE_HISTORY_DAYS * DAY_MS);
    let scores = s
        .store
        .score_days(id, since)
        .await
        .map_err(ApiError::store)?;
    let tickets = s
        .store
        .device_tickets(id, DEVICE_TICKETS)
        .await
        .map_err(ApiError::store)?;
    let trend = trend_of(s, id, card.last_seen_ms, card.scored_ms).await?;
    Ok(DeviceDetail {
        device: card,
        status,
        scores,
        tickets,
        trend,
    })
}

/// Days of score history a device's page shows.
pub const SCORE_HISTORY_DAYS: u64 = 90;
/// A device's newest tickets its page lists.
pub const DEVICE_TICKETS: u32 = 50;

/// Issues ticket `id`'s progress link for its customer, addressed at the configured
/// public URL (or the request's host).
pub async fn progress_link(
    s: &DeskState,
    user: &User,
    id: i64,
    headers: &axum::http::HeaderMap,
) -> Result<ProgressLink, ApiError> {
    let issued = match s
        .store
        .issue_progress_link(id, &user.name, s.clock.now().0, s.links.valid_ms)
        .await
    {
        Err(StoreError::NoTicket(_)) => return Err(no_ticket(id)),
        other => other.map_err(ApiError::store)?,
    };
    let path = format!("/progress/{}", issued.token);
    let base = desk_base(s, headers);
    Ok(ProgressLink {
        url: format!("{base}{path}"),
        path,
        expires_ms: issued.expires_ms,
    })
}

fn no_ticket(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such ticket",
        &format!("there is no ticket {id}"),
    )
}

/// Carries out `action` by `user` on ticket `id`, if the ticket is still at version
/// `seen` (when given) and the action is allowed from where the ticket stands; the
/// ticket afterwards.
pub async fn act(
    s: &DeskState,
    user: &User,
    id: i64,
    action: Action,
    seen: Option<i64>,
) -> Result<TicketDetail, ApiError> {
    let (item, _, clock) = load(s, id).await?;
    let current = |title: &'static str, detail: String, item: &QueueItem| ApiError {
        status: StatusCode::CONFLICT,
        title,
        detail,
        extra: Some(
            json!({"current": {"state": item.state, "assignee": item.assignee, "version": item.version}}),
        ),
    };
    if let Some(seen) = seen.filter(|&v| v != item.version) {
        return Err(current(
            "stale",
            format!(
                "the ticket is at version {}, not {seen}: reload it and decide again",
                item.version
            ),
            &item,
        ));
    }
    if let Action::Resolve {
        outcome: outcome @ (Outcome::Repaired | Outcome::BatteryReplaced),
        category,
        ..
    } = &action
    {
        let category = category.unwrap_or(item.problem);
        let bought = s
            .store
            .registration(&item.device_id)
            .await
            .map_err(ApiError::store)?
            .and_then(|r| r.purchased_ms);
        let rule = &s.policy.early_life;
        if rule.requires_replacement(bought, item.opened_ms.max(0) as u64, category) {
            return Err(ApiError::unprocessable(format!(
                "the early-life rule: a {category} fault on a ticket opened within {} days of purchase gets a replacement, not a repair; resolve it as replaced (not {outcome})",
                rule.days
            )));
        }
    }
    let users = s.store.users().await.map_err(ApiError::store)?;
    let standing = Standing {
        state: item.state,
        problem: item.problem,
        assignee: item.assignee.clone(),
        clock,
    };
    let now = s.clock.now().0;
    let change = work::decide(&standing, &action, &user.name, now, |n| {
        users
            .iter()
            .any(|u| u.name == n && u.role.may(Access::WorkTickets))
    })
    .map_err(|e| {
        if e.is_conflict() {
            current("refused", e.to_string(), &item)
        } else {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", &e.to_string())
        }
    })?;
    match s
        .store
        .apply_desk_change(
            Seen {
                id,
                version: item.version,
                state: item.state,
            },
            &change,
            &user.name,
            action.name(),
            now,
        )
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict(m)) => {
            let (item, _, _) = load(s, id).await?;
            return Err(current(
                "stale",
                format!("{m}: reload it and decide again"),
                &item,
            ));
        }
        Err(e) => return Err(ApiError::store(e)),
    }
    let (item, log, clock) = load(s, id).await?;
    Ok(detail(item, log, clock, None, None))
}

/// The address the desk is reached at: `desk.public_url`, else the request's host.
pub(crate) fn desk_base(s: &DeskState, headers: &axum::http::HeaderMap) -> String {
    match &s.links.public_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => {
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1:8080");
            let scheme = if super::pages::over_tls(headers) {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{host}")
        }
    }
}
