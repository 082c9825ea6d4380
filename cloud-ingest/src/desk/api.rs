//! The desk's JSON API under `/api/v1`: the service desk's queue, a ticket with its SLA
//! clock and log, the actions that work it, users and the audit log. Every route is in
//! [`ROUTES`] with what it requires, and the router is built from that table only, so
//! no route can skip the check. Errors are `application/problem+json` with a detail a
//! person can act on; a refused request changes nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use protocol::clock::Clock;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use super::auth::{Access, Role, User};
use super::casework;
use super::recycling::{self, DeskTotals, TradeInDetail, TradeInList};
use super::trend::{Day, Trend};
use crate::policy::Problem;
use crate::store::devices::{DeviceCard, DeviceStatus, ScoreDay};
use crate::store::progress::StoredRating;
use crate::store::tickets::{LogEntry, QueueItem};
use crate::store::tradeins::Sku;
use crate::store::users::AuditEntry;
use crate::store::{Store, StoreError};
use crate::tickets::sla::{PauseReason, SlaClock, SlaState};
use crate::tickets::work::{Action, Outcome};
use crate::tickets::{TicketState, Tier};
use crate::tradein::lifecycle::{Action as TradeInAction, TradeInState};

/// What the handlers share.
#[derive(Clone)]
pub struct DeskState {
    /// The store.
    pub store: Store,
    /// The service clock (SLA clocks and every recorded time).
    pub clock: Arc<dyn Clock>,
    /// How customers' progress links are issued.
    pub links: LinkSettings,
    /// The recycling desk's grading, settlement and routing rules.
    pub tradein_rules: Arc<crate::tradein::Rules>,
    /// The cohort watch an analyst runs on demand.
    pub watch: Arc<crate::cohorts::watcher::Watcher>,
    /// Where the watch's flags are counted.
    pub metrics: Arc<crate::ops::metrics::Metrics>,
    /// The after-sales policy: campaigns' remedies and costs.
    pub policy: Arc<crate::policy::PolicyConfig>,
    /// The models in force (champion and challenger), kept in step with the registry.
    pub model: Arc<crate::score::ModelSlot>,
    /// What a challenger must show before it is promoted.
    pub gate: Arc<crate::registry::gate::GateConfig>,
}

impl DeskState {
    /// A desk on `store` and `clock` with the default settings.
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> DeskState {
        DeskState {
            store,
            clock,
            links: LinkSettings::default(),
            tradein_rules: Arc::new(crate::tradein::Rules::default()),
            watch: Arc::new(crate::cohorts::watcher::Watcher {
                config: crate::cohorts::watch::WatchConfig::default(),
            }),
            metrics: Arc::default(),
            policy: Arc::default(),
            model: Arc::new(crate::score::ModelSlot::load(None).expect("the bundled model loads")),
            gate: Arc::default(),
        }
    }
}

/// How the desk issues customers' progress links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSettings {
    /// The address customers reach the desk at (`https://service.example`); the
    /// request's `Host` when unset.
    pub public_url: Option<String>,
    /// How long a link works, ms.
    pub valid_ms: u64,
}

impl Default for LinkSettings {
    fn default() -> Self {
        LinkSettings {
            public_url: None,
            valid_ms: 30 * 86_400_000,
        }
    }
}

/// A route and what it requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The method.
    pub method: &'static str,
    /// The path, axum style (`:id`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

/// Every route of the API.
pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/api/v1/openapi.json",
        access: Access::Public,
    },
    Route {
        method: "GET",
        path: "/api/v1/me",
        access: Access::Anyone,
    },
    Route {
        method: "GET",
        path: "/api/v1/tickets",
        access: Access::ReadTickets,
    },
    Route {
        method: "GET",
        path: "/api/v1/tickets/:id",
        access: Access::ReadTickets,
    },
    Route {
        method: "POST",
        path: "/api/v1/tickets/:id/actions",
        access: Access::WorkTickets,
    },
    Route {
        method: "POST",
        path: "/api/v1/tickets/:id/progress-link",
        access: Access::WorkTickets,
    },
    Route {
        method: "GET",
        path: "/api/v1/devices/:id",
        access: Access::ReadTickets,
    },
    Route {
        method: "GET",
        path: "/api/v1/tradeins",
        access: Access::ReadTradeIns,
    },
    Route {
        method: "GET",
        path: "/api/v1/tradeins/totals",
        access: Access::ReadTradeIns,
    },
    Route {
        method: "GET",
        path: "/api/v1/tradeins/:id",
        access: Access::ReadTradeIns,
    },
    Route {
        method: "POST",
        path: "/api/v1/tradeins/:id/actions",
        access: Access::WorkTradeIns,
    },
    Route {
        method: "GET",
        path: "/api/v1/tradeins/:id/certificate",
        access: Access::ReadTradeIns,
    },
    Route {
        method: "GET",
        path: "/api/v1/skus",
        access: Access::ReadTradeIns,
    },
    Route {
        method: "POST",
        path: "/api/v1/skus",
        access: Access::WorkTradeIns,
    },
    Route {
        method: "GET",
        path: "/api/v1/users",
        access: Access::Admin,
    },
    Route {
        method: "POST",
        path: "/api/v1/users",
        access: Access::Admin,
    },
    Route {
        method: "GET",
        path: "/api/v1/audit",
        access: Access::ReadAll,
    },
    Route {
        method: "GET",
        path: "/api/v1/cohorts",
        access: Access::ReadAll,
    },
    Route {
        method: "POST",
        path: "/api/v1/cohorts/run",
        access: Access::WorkFleet,
    },
    Route {
        method: "GET",
        path: "/api/v1/cohort-flags",
        access: Access::ReadAll,
    },
    Route {
        method: "POST",
        path: "/api/v1/cohort-flags/:id/campaign",
        access: Access::WorkFleet,
    },
    Route {
        method: "POST",
        path: "/api/v1/cohort-flags/:id/dismiss",
        access: Access::WorkFleet,
    },
    Route {
        method: "GET",
        path: "/api/v1/campaigns",
        access: Access::ReadAll,
    },
    Route {
        method: "GET",
        path: "/api/v1/campaigns/:id",
        access: Access::ReadAll,
    },
    Route {
        method: "POST",
        path: "/api/v1/campaigns/:id/decision",
        access: Access::WorkFleet,
    },
    Route {
        method: "GET",
        path: "/api/v1/action-items",
        access: Access::ReadAll,
    },
    Route {
        method: "POST",
        path: "/api/v1/action-items",
        access: Access::WorkFleet,
    },
    Route {
        method: "POST",
        path: "/api/v1/action-items/:id",
        access: Access::WorkFleet,
    },
    Route {
        method: "GET",
        path: "/api/v1/reports/:period",
        access: Access::WorkFleet,
    },
    Route {
        method: "GET",
        path: "/api/v1/cohort-flags/:id/root-cause",
        access: Access::WorkFleet,
    },
    Route {
        method: "POST",
        path: "/api/v1/cohort-flags/:id/root-cause",
        access: Access::WorkFleet,
    },
    Route {
        method: "GET",
        path: "/api/v1/models",
        access: Access::ReadAll,
    },
    Route {
        method: "POST",
        path: "/api/v1/models",
        access: Access::Admin,
    },
    Route {
        method: "GET",
        path: "/api/v1/models/gate",
        access: Access::ReadAll,
    },
    Route {
        method: "POST",
        path: "/api/v1/models/challenger",
        access: Access::Admin,
    },
    Route {
        method: "POST",
        path: "/api/v1/models/promote",
        access: Access::Admin,
    },
    Route {
        method: "POST",
        path: "/api/v1/models/rollback",
        access: Access::Admin,
    },
];

fn handler(r: &Route) -> MethodRouter<DeskState> {
    let filter = |m| match m {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        other => panic!("no method filter for {other}"),
    };
    let f = filter(r.method);
    match (r.method, r.path) {
        ("GET", "/api/v1/openapi.json") => on(f, openapi),
        ("GET", "/api/v1/me") => on(f, me),
        ("GET", "/api/v1/tickets") => on(f, list_tickets),
        ("GET", "/api/v1/tickets/:id") => on(f, get_ticket),
        ("POST", "/api/v1/tickets/:id/actions") => on(f, act),
        ("POST", "/api/v1/tickets/:id/progress-link") => on(f, progress_link),
        ("GET", "/api/v1/devices/:id") => on(f, get_device),
        ("GET", "/api/v1/tradeins") => on(f, list_tradeins),
        ("GET", "/api/v1/tradeins/totals") => on(f, tradein_totals),
        ("GET", "/api/v1/tradeins/:id") => on(f, get_tradein),
        ("POST", "/api/v1/tradeins/:id/actions") => on(f, act_tradein),
        ("GET", "/api/v1/tradeins/:id/certificate") => on(f, certificate),
        ("GET", "/api/v1/skus") => on(f, list_skus),
        ("POST", "/api/v1/skus") => on(f, set_sku),
        ("GET", "/api/v1/users") => on(f, list_users),
        ("POST", "/api/v1/users") => on(f, add_user),
        ("GET", "/api/v1/audit") => on(f, audit),
        ("GET", "/api/v1/cohorts") => on(f, super::fleet::cohorts),
        ("POST", "/api/v1/cohorts/run") => on(f, super::fleet::run_watch),
        ("GET", "/api/v1/cohort-flags") => on(f, super::fleet::flags),
        ("POST", "/api/v1/cohort-flags/:id/campaign") => on(f, super::fleet::propose),
        ("POST", "/api/v1/cohort-flags/:id/dismiss") => on(f, super::fleet::dismiss),
        ("GET", "/api/v1/campaigns") => on(f, super::fleet::campaigns),
        ("GET", "/api/v1/campaigns/:id") => on(f, super::fleet::campaign),
        ("POST", "/api/v1/campaigns/:id/decision") => on(f, super::fleet::decide),
        ("GET", "/api/v1/action-items") => on(f, super::fleet::actions),
        ("POST", "/api/v1/action-items") => on(f, super::fleet::add_action),
        ("POST", "/api/v1/action-items/:id") => on(f, super::fleet::move_action),
        ("GET", "/api/v1/reports/:period") => on(f, super::reports::report),
        ("GET", "/api/v1/cohort-flags/:id/root-cause") => on(f, super::reports::root_cause),
        ("POST", "/api/v1/cohort-flags/:id/root-cause") => on(f, super::reports::set_root_cause),
        ("GET", "/api/v1/models") => on(f, super::models::list),
        // An artifact is JSON trees: bigger forests than the bundled one (0.5 MB) fit.
        ("POST", "/api/v1/models") => on(f, super::models::register)
            .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024)),
        ("GET", "/api/v1/models/gate") => on(f, super::models::gate),
        ("POST", "/api/v1/models/challenger") => on(f, super::models::set_challenger),
        ("POST", "/api/v1/models/promote") => on(f, super::models::promote),
        ("POST", "/api/v1/models/rollback") => on(f, super::models::rollback),
        (m, p) => panic!("route {m} {p} has no handler"),
    }
}

/// The API's router, every route behind its access check.
pub fn router(state: DeskState) -> Router {
    let mut router: Router<DeskState> = Router::new();
    // Routes sharing a path are merged into one method router per path.
    let mut paths: Vec<&str> = ROUTES.iter().map(|r| r.path).collect();
    paths.dedup();
    for path in paths {
        let mut mr: MethodRouter<DeskState> = MethodRouter::new();
        for r in ROUTES.iter().filter(|r| r.path == path) {
            let guard = middleware::from_fn_with_state((state.clone(), r.access), guard);
            mr = mr.merge(handler(r).route_layer(guard));
        }
        router = router.route(path, mr);
    }
    router.with_state(state)
}

/// Signs the caller in from `Authorization: Bearer <token>` and checks the route's
/// access: 401 without valid credentials, 403 with the wrong role.
async fn guard(
    State((state, access)): State<(DeskState, Access)>,
    mut req: Request,
    next: Next,
) -> Response {
    if access == Access::Public {
        return next.run(req).await;
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_owned);
    let Some(token) = token else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "not signed in",
            "send an API token as `Authorization: Bearer <token>` (`cloud-ingest users add` issues one)",
        )
        .into_response();
    };
    let user = match state.store.user_by_token(&token, state.clock.now().0).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unknown token",
                "the token is not valid (mistyped, expired or its user disabled)",
            )
            .into_response()
        }
        Err(e) => return ApiError::store(e).into_response(),
    };
    if !user.role.may(access) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "not allowed",
            &format!(
                "{} is signed in as {}, which may not {}",
                user.name,
                user.role,
                match access {
                    Access::Public | Access::Anyone => "do this",
                    Access::ReadTickets => "read the service desk's tickets",
                    Access::WorkTickets => "change tickets",
                    Access::ReadTradeIns => "read the recycling desk's trade-ins",
                    Access::WorkTradeIns => "work trade-ins",
                    Access::ReadAll => "read fleet-wide figures and the audit log",
                    Access::WorkFleet => "run the cohort watch or decide campaigns",
                    Access::Admin => "manage users or models",
                }
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(user);
    next.run(req).await
}

/// An error as `application/problem+json` (RFC 9457).
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) title: &'static str,
    pub(crate) detail: String,
    pub(crate) extra: Option<Value>,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The short summary.
    pub fn title(&self) -> &'static str {
        self.title
    }

    /// What went wrong and what to do.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// A request whose content is refused (422).
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            title: "refused",
            detail: detail.into(),
            extra: None,
        }
    }

    pub(crate) fn new(status: StatusCode, title: &'static str, detail: &str) -> Self {
        ApiError {
            status,
            title,
            detail: detail.to_owned(),
            extra: None,
        }
    }

    pub(crate) fn bad(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            title: "bad request",
            detail: detail.into(),
            extra: None,
        }
    }

    pub(crate) fn store(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", &m)
            }
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", &m),
            e => {
                tracing::error!(error = %e, "desk request failed in the store");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store unavailable",
                    "the store could not answer; nothing was changed, try again",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let (Some(Value::Object(extra)), Some(b)) = (self.extra, body.as_object_mut()) {
            b.extend(extra);
        }
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}

pub(crate) type Answer = Result<Response, ApiError>;

fn user_of(req_user: Option<axum::Extension<User>>) -> User {
    req_user
        .map(|u| u.0)
        .expect("the guard signs every request in")
}

/// Who the token belongs to.
#[utoipa::path(get, path = "/api/v1/me", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = ProblemDoc)))]
async fn me(u: Option<axum::Extension<User>>) -> Answer {
    Ok(Json(user_of(u)).into_response())
}

/// The most a page holds.
pub const MAX_PER_PAGE: u32 = 200;

/// The queue's filters and page.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `high`, `medium` or `low`.
    pub tier: Option<String>,
    /// A ticket state; without it, open tickets only.
    pub state: Option<String>,
    /// `on_time`, `at_risk`, `breached` or `paused`.
    pub sla: Option<String>,
    /// The problem: `battery`, `thermal`, `storage`, `stability`, `connectivity`.
    pub category: Option<String>,
    /// The device model.
    pub model: Option<String>,
    /// The device's manufacturing batch.
    pub batch: Option<String>,
    /// A user name; empty for unassigned tickets.
    pub assignee: Option<String>,
    /// From 0.
    pub page: Option<u32>,
    /// 1 to 200, default 50.
    pub per_page: Option<u32>,
}

/// A page of the queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketList {
    /// The tickets, most urgent first.
    pub items: Vec<ListedTicket>,
    /// This page (from 0).
    pub page: u32,
    /// Its size.
    pub per_page: u32,
    /// Tickets matching the filters.
    pub total: u64,
    /// Open tickets per tier, unfiltered.
    pub open_by_tier: BTreeMap<String, u64>,
}

/// A ticket in the queue with its SLA state now.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListedTicket {
    /// The ticket.
    #[serde(flatten)]
    pub ticket: QueueItem,
    /// Its SLA state now.
    pub sla_state: SlaState,
}

/// A ticket with its clock, log and evidence.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketDetail {
    /// The ticket.
    pub ticket: QueueItem,
    /// Its SLA clock now, read from its log.
    pub sla: SlaClock,
    /// Its log, oldest first.
    pub log: Vec<LogEntry>,
    /// Why it opened, as frozen then (see docs/ingest.md, webhook body).
    #[schema(value_type = Option<Object>)]
    pub evidence: Option<Value>,
    /// The customer's rating, once given.
    pub rating: Option<StoredRating>,
    /// The device's days around the score, day by day (what the evidence charts draw):
    /// the 30 days ending at its last message, or a week after the score if that is sooner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trend: Option<Trend>,
}

/// A device with its liveness, score history, tickets and last 30 days.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceDetail {
    /// Identity, terms and the latest score.
    pub device: DeviceCard,
    /// Liveness and sequence accounting (gaps are `missing`).
    #[schema(value_type = Option<Object>)]
    pub status: Option<DeviceStatus>,
    /// The score history, a day a row, oldest first (the last 90 days).
    pub scores: Vec<ScoreDay>,
    /// Its tickets, newest first (the last 50).
    pub tickets: Vec<QueueItem>,
    /// The 30 days ending at its last message, day by day.
    pub trend: Trend,
}

/// An error (RFC 9457), as `application/problem+json`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemDoc {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong and what to do.
    pub detail: String,
}

pub(crate) fn query<T: serde::de::DeserializeOwned + Default>(
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    q.map(|Query(p)| p)
        .map_err(|e| ApiError::bad(e.body_text()))
}

/// The service desk's queue.
#[utoipa::path(get, path = "/api/v1/tickets", params(ListParams), security(("bearer" = [])),
    responses((status = 200, body = TicketList), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc)))]
async fn list_tickets(
    State(s): State<DeskState>,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    Ok(Json(casework::queue(&s, query(q)?).await?).into_response())
}

fn ticket_id(
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<i64, ApiError> {
    let Path(raw) = p.map_err(|e| ApiError::bad(e.body_text()))?;
    raw.parse::<i64>()
        .map_err(|_| ApiError::bad(format!("ticket id {raw:?} is not a number")))
}

/// A ticket with its SLA clock, log and evidence.
#[utoipa::path(get, path = "/api/v1/tickets/{id}", params(("id" = i64, Path, description = "the ticket's id")),
    security(("bearer" = [])),
    responses((status = 200, body = TicketDetail), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc)))]
async fn get_ticket(
    State(s): State<DeskState>,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Answer {
    Ok(Json(casework::ticket(&s, ticket_id(p)?).await?).into_response())
}

/// A device with its liveness, score history, tickets and last 30 days.
#[utoipa::path(get, path = "/api/v1/devices/{id}", params(("id" = String, Path, description = "the device's id")),
    security(("bearer" = [])),
    responses((status = 200, body = DeviceDetail), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc)))]
async fn get_device(State(s): State<DeskState>, Path(id): Path<String>) -> Answer {
    Ok(Json(casework::device(&s, &id).await?).into_response())
}

/// Works a ticket: one action, optionally with the `version` it was decided on.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/actions", params(("id" = i64, Path, description = "the ticket's id")),
    request_body = Action, security(("bearer" = [])),
    responses((status = 200, body = TicketDetail), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc),
        (status = 409, description = "refused by the ticket's state, or stale", body = ProblemDoc),
        (status = 422, body = ProblemDoc)))]
async fn act(
    State(s): State<DeskState>,
    u: Option<axum::Extension<User>>,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
    body: Bytes,
) -> Answer {
    let user = user_of(u);
    let id = ticket_id(p)?;
    let (v, seen) = versioned(&body)?;
    let action: Action = serde_json::from_value(v).map_err(|e| {
        ApiError::unprocessable(format!(
            "{e}; an action is {{\"action\": \"claim\" | \"assign\" (user) | \"start\" | \"pause\" (reason) | \"resume\" | \"note\" (text) | \"resolve\" (outcome, category?, note?)}}"
        ))
    })?;
    Ok(Json(casework::act(&s, &user, id, action, seen).await?).into_response())
}

/// An action's JSON body without its optional `version`, and that version.
fn versioned(body: &[u8]) -> Result<(Value, Option<i64>), ApiError> {
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("the body is not JSON: {e}")))?;
    let seen = match v.as_object_mut().map(|o| o.remove("version")) {
        Some(Some(Value::Number(n))) => Some(
            n.as_i64()
                .ok_or_else(|| ApiError::bad("version must be an integer"))?,
        ),
        Some(Some(other)) => {
            return Err(ApiError::bad(format!(
                "version must be an integer, not {other}"
            )))
        }
        _ => None,
    };
    Ok((v, seen))
}

/// A customer's progress link, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressLink {
    /// The page's address, for the customer.
    pub url: String,
    /// The same, as a path on this server.
    pub path: String,
    /// When it stops working, ms since the epoch.
    pub expires_ms: i64,
}

/// Issues a link to the ticket's progress page for its customer: it works without
/// signing in, for that ticket only, until it expires. The store keeps only its hash,
/// so it is shown only now.
#[utoipa::path(post, path = "/api/v1/tickets/{id}/progress-link", params(("id" = i64, Path, description = "the ticket's id")),
    security(("bearer" = [])),
    responses((status = 201, body = ProgressLink), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc)))]
async fn progress_link(
    State(s): State<DeskState>,
    u: Option<axum::Extension<User>>,
    headers: axum::http::HeaderMap,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Answer {
    let user = user_of(u);
    let link = casework::progress_link(&s, &user, ticket_id(p)?, &headers).await?;
    Ok((StatusCode::CREATED, Json(link)).into_response())
}

/// Which trade-ins.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TradeInParams {
    /// A trade-in state; without it, every trade-in not yet finished.
    pub state: Option<String>,
    /// From 0.
    pub page: Option<u32>,
    /// 1 to 200, default 50.
    pub per_page: Option<u32>,
}

/// The recycling desk's queues: trade-ins in a state, and every state's count.
#[utoipa::path(get, path = "/api/v1/tradeins", params(TradeInParams), security(("bearer" = [])),
    responses((status = 200, body = TradeInList), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc)))]
async fn list_tradeins(
    State(s): State<DeskState>,
    q: Result<Query<TradeInParams>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let p = query(q)?;
    let list = recycling::list(&s, p.state.as_deref(), p.page, p.per_page).await?;
    Ok(Json(list).into_response())
}

/// Which period's totals.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TotalsParams {
    /// `2026-11` or `2026-W48`; all time when absent.
    pub period: Option<String>,
    /// Group the kilograms diverted by `month` or `week` (default: the period's kind).
    pub by: Option<String>,
}

/// The recycling desk's totals: received, graded, refurbished, recycled, kilograms of
/// e-waste diverted (by period, model and route), quote against settled price.
#[utoipa::path(get, path = "/api/v1/tradeins/totals", params(TotalsParams), security(("bearer" = [])),
    responses((status = 200, body = DeskTotals), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc)))]
async fn tradein_totals(
    State(s): State<DeskState>,
    q: Result<Query<TotalsParams>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let p = query(q)?;
    let t = recycling::desk_totals(&s, p.period.as_deref(), p.by.as_deref()).await?;
    Ok(Json(t).into_response())
}

/// A trade-in with its log and its condition at quote time beside the bench grade.
#[utoipa::path(get, path = "/api/v1/tradeins/{id}", params(("id" = i64, Path, description = "the trade-in's (its ticket's) id")),
    security(("bearer" = [])),
    responses((status = 200, body = TradeInDetail), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc)))]
async fn get_tradein(
    State(s): State<DeskState>,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Answer {
    Ok(Json(recycling::detail(&s, ticket_id(p)?).await?).into_response())
}

/// Works a trade-in: one action, optionally with the `version` it was decided on.
#[utoipa::path(post, path = "/api/v1/tradeins/{id}/actions", params(("id" = i64, Path, description = "the trade-in's id")),
    request_body = TradeInAction, security(("bearer" = [])),
    responses((status = 200, body = TradeInDetail), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc),
        (status = 409, description = "not legal from the trade-in's state, or stale", body = ProblemDoc),
        (status = 422, body = ProblemDoc)))]
async fn act_tradein(
    State(s): State<DeskState>,
    u: Option<axum::Extension<User>>,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
    body: Bytes,
) -> Answer {
    let user = user_of(u);
    let id = ticket_id(p)?;
    let (v, seen) = versioned(&body)?;
    let action: TradeInAction = serde_json::from_value(v).map_err(|e| {
        ApiError::unprocessable(format!(
            "{e}; an action is {{\"action\": \"ship\" (shipping_ref) | \"receive\" | \"grade\" (functional 0-9, cosmetic A-E, battery_pct?, activation_lock_off) | \"erase\" (method clear|purge, tool, certificate_id) | \"settle\" (price?, reason?) | \"route\" (route?) | \"close\" | \"cancel\" (reason)}}"
        ))
    })?;
    Ok(Json(recycling::act(&s, &user, id, action, seen).await?).into_response())
}

/// The data erasure certificate, as a plain-text download.
#[utoipa::path(get, path = "/api/v1/tradeins/{id}/certificate", params(("id" = i64, Path, description = "the trade-in's id")),
    security(("bearer" = [])),
    responses((status = 200, description = "the certificate", content_type = "text/plain"),
        (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 404, body = ProblemDoc)))]
async fn certificate(
    State(s): State<DeskState>,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Answer {
    let (name, text) = recycling::certificate(&s, ticket_id(p)?).await?;
    Ok(certificate_response(&name, text))
}

/// A certificate as a download.
pub(crate) fn certificate_response(name: &str, text: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        text,
    )
        .into_response()
}

/// The registry's SKUs.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkuList {
    /// By model.
    pub items: Vec<Sku>,
}

/// Every SKU's weight.
#[utoipa::path(get, path = "/api/v1/skus", security(("bearer" = [])),
    responses((status = 200, body = SkuList), (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc)))]
async fn list_skus(State(s): State<DeskState>) -> Answer {
    let items = s.store.skus().await.map_err(ApiError::store)?;
    Ok(Json(SkuList { items }).into_response())
}

/// A SKU's weight to set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkuWeight {
    /// The model, as devices report it.
    pub model: String,
    /// Grams, 1 to 50000.
    pub weight_g: i64,
}

/// Sets a SKU's weight in the registry (kilograms diverted are counted from it).
#[utoipa::path(post, path = "/api/v1/skus", request_body = SkuWeight, security(("bearer" = [])),
    responses((status = 200, body = Sku), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 422, body = ProblemDoc)))]
async fn set_sku(
    State(s): State<DeskState>,
    u: Option<axum::Extension<User>>,
    body: Bytes,
) -> Answer {
    let user = user_of(u);
    let w: SkuWeight = serde_json::from_slice(&body).map_err(|e| {
        ApiError::unprocessable(format!(
            "{e}; a SKU weight is {{\"model\": \"phone-x\", \"weight_g\": 190}}"
        ))
    })?;
    Ok(Json(recycling::set_sku(&s, &user, &w.model, w.weight_g).await?).into_response())
}

/// A list of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    /// By name.
    pub items: Vec<User>,
}

/// The desk's users.
#[utoipa::path(get, path = "/api/v1/users", security(("bearer" = [])),
    responses((status = 200, body = UserList), (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc)))]
async fn list_users(State(s): State<DeskState>) -> Answer {
    let items = s.store.users().await.map_err(ApiError::store)?;
    Ok(Json(UserList { items }).into_response())
}

/// A user to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
    pub name: String,
    /// The role.
    pub role: Role,
}

/// A user added, with its token (shown only now).
#[derive(Debug, Serialize, ToSchema)]
pub struct AddedUser {
    /// The user.
    pub user: User,
    /// Its API token.
    pub token: String,
}

/// Adds a user.
#[utoipa::path(post, path = "/api/v1/users", request_body = NewUser, security(("bearer" = [])),
    responses((status = 201, body = AddedUser), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 422, body = ProblemDoc)))]
async fn add_user(
    State(s): State<DeskState>,
    u: Option<axum::Extension<User>>,
    body: Bytes,
) -> Answer {
    let by = user_of(u);
    let new: NewUser = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a user",
            &format!("{e}; a user is {{\"name\": \"ana\", \"role\": \"agent\" | \"recycler\" | \"analyst\" | \"admin\"}}"),
        )
    })?;
    let (user, token) = s
        .store
        .add_user(&new.name, new.role, &by.name, s.clock.now().0)
        .await
        .map_err(ApiError::store)?;
    Ok((StatusCode::CREATED, Json(AddedUser { user, token })).into_response())
}

/// Which audit entries.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// Such as `ticket:12` or `user:ana`; all when absent.
    subject: Option<String>,
    /// 1 to 1000, default 100.
    limit: Option<u32>,
}

/// Audit entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    /// Newest first.
    pub items: Vec<AuditEntry>,
}

/// The audit log.
#[utoipa::path(get, path = "/api/v1/audit", params(AuditParams), security(("bearer" = [])),
    responses((status = 200, body = AuditList), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc)))]
async fn audit(
    State(s): State<DeskState>,
    q: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let p = query(q)?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad(format!("limit = {limit}: must be 1 to 1000")));
    }
    let items = s
        .store
        .audit_log(p.subject.as_deref(), limit)
        .await
        .map_err(ApiError::store)?;
    Ok(Json(AuditList { items }).into_response())
}

/// The OpenAPI document of this API, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(title = "Fleet service desk API", version = "1", description = "See docs/desk.md."),
    paths(openapi, me, list_tickets, get_ticket, act, progress_link, get_device, list_tradeins,
        tradein_totals, get_tradein, act_tradein, certificate, list_skus, set_sku, list_users, add_user, audit,
        super::fleet::cohorts, super::fleet::run_watch, super::fleet::flags, super::fleet::propose,
        super::fleet::dismiss, super::fleet::campaigns, super::fleet::campaign, super::fleet::decide,
        super::fleet::actions, super::fleet::add_action, super::fleet::move_action,
        super::reports::report, super::reports::root_cause, super::reports::set_root_cause,
        super::models::list, super::models::register, super::models::gate,
        super::models::set_challenger, super::models::promote, super::models::rollback),
    components(schemas(ProblemDoc, Action, Outcome, PauseReason, Problem, TicketState, Tier, SlaState, Role, Day,
        TradeInState, TradeInAction)),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json",
    responses((status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi() -> Answer {
    Ok(Json(ApiDoc::openapi()).into_response())
}

/// The method of a route, for callers that build requests from [`ROUTES`].
pub fn method_of(r: &Route) -> Method {
    r.method.parse().expect("routes use standard methods")
}
