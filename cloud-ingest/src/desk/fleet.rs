//! The analysts' API for fleet intelligence: the cohort table and the firmware
//! comparisons as they stand, the watch run on demand, the flags it recorded, and the
//! campaigns a flag proposes, decided by a person.
//! Routes are listed (with their access) in [`super::api::ROUTES`].

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api::{query, Answer, ApiError, DeskState, ProblemDoc};
use super::auth::User;
use crate::campaigns::Verdict;
use crate::cohorts::firmware::FirmwareComparison;
use crate::cohorts::table::Cell;
use crate::cohorts::watch::{self, Excluded, Flag};
use crate::cohorts::Dimension;
use crate::policy::Problem;
use crate::report::actions::{self, ActionStatus, NewAction};
use crate::store::actions::{ActionItem, ActionMoved};
use crate::store::campaigns::{Campaign, Member};
use crate::store::cohorts::FlagRecord;

/// Which cells.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CohortParams {
    /// Only this dimension (`model`, `batch`, `firmware`, `purchase_month`).
    dimension: Option<Dimension>,
    /// Only this problem.
    problem: Option<Problem>,
    /// Only cells with a q-value at or below this (0 to 1).
    max_q: Option<f64>,
}

/// The cohort table as it stands now.
#[derive(Debug, Serialize, ToSchema)]
pub struct CohortTable {
    /// When it was computed (service clock), ms.
    pub at_ms: u64,
    /// Tests in the family the q-values control.
    pub tests: usize,
    /// Whole-life cells, by dimension, cohort and problem.
    pub cells: Vec<Cell>,
    /// Batches' first 30/60/90 days after purchase.
    pub early: Vec<Cell>,
    /// Firmware versions against their predecessors.
    pub firmware: Vec<FirmwareComparison>,
    /// Outcomes kept out of the failure rates.
    pub excluded: Vec<Excluded>,
    /// What the watch would flag now.
    pub flags: Vec<Flag>,
}

/// The cohort table, computed from the store now (nothing is recorded).
#[utoipa::path(get, path = "/api/v1/cohorts", params(CohortParams), security(("bearer" = [])),
    responses((status = 200, body = CohortTable), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc)))]
pub(crate) async fn cohorts(
    State(s): State<DeskState>,
    q: Result<Query<CohortParams>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let p = query(q)?;
    if let Some(m) = p.max_q {
        if !(0.0..=1.0).contains(&m) {
            return Err(ApiError::bad(format!("max_q = {m}: must be 0 to 1")));
        }
    }
    let facts = s.store.fleet_facts().await.map_err(ApiError::store)?;
    let at_ms = s.clock.now().0;
    let r = watch::run(&facts, &s.watch.config, at_ms);
    let keep = |c: &Cell| {
        p.dimension.is_none_or(|d| c.dimension == d)
            && p.problem.is_none_or(|pr| c.problem == pr)
            && p.max_q.is_none_or(|m| c.q_value <= m)
    };
    Ok(Json(CohortTable {
        at_ms,
        tests: r.tests,
        cells: r.cells.into_iter().filter(|c| keep(c)).collect(),
        early: r.early.into_iter().filter(|c| keep(c)).collect(),
        firmware: r.firmware,
        excluded: r.excluded,
        flags: r.flags,
    })
    .into_response())
}

/// What a run of the watch did.
#[derive(Debug, Serialize, ToSchema)]
pub struct WatchRun {
    /// When it ran (service clock), ms.
    pub at_ms: u64,
    /// Tests in its family.
    pub tests: usize,
    /// Every cohort flagged by this run.
    pub flags: Vec<Flag>,
    /// Of them, the ones flagged for the first time.
    pub new: Vec<Flag>,
}

/// Runs the cohort watch now and records its flags.
#[utoipa::path(post, path = "/api/v1/cohorts/run", security(("bearer" = [])),
    responses((status = 200, body = WatchRun), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc)))]
pub(crate) async fn run_watch(State(s): State<DeskState>) -> Answer {
    let at_ms = s.clock.now().0;
    let before: Vec<String> = s
        .store
        .cohort_flags(None)
        .await
        .map_err(ApiError::store)?
        .into_iter()
        .map(|r| r.flag.key())
        .collect();
    let r = s
        .watch
        .check(&s.store, at_ms, None, &s.metrics)
        .await
        .map_err(ApiError::store)?;
    let new = r
        .flags
        .iter()
        .filter(|f| !before.contains(&f.key()))
        .cloned()
        .collect();
    Ok(Json(WatchRun {
        at_ms,
        tests: r.tests,
        flags: r.flags,
        new,
    })
    .into_response())
}

/// Which flags.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct FlagParams {
    /// `open`, `campaign` or `dismissed`; all when absent.
    status: Option<String>,
}

/// Recorded flags.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlagList {
    /// Newest first.
    pub items: Vec<FlagRecord>,
}

/// The flags the watch recorded, newest first.
#[utoipa::path(get, path = "/api/v1/cohort-flags", params(FlagParams), security(("bearer" = [])),
    responses((status = 200, body = FlagList), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc)))]
pub(crate) async fn flags(
    State(s): State<DeskState>,
    q: Result<Query<FlagParams>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let p = query(q)?;
    if let Some(st) = &p.status {
        if !["open", "campaign", "dismissed"].contains(&st.as_str()) {
            return Err(ApiError::bad(format!(
                "status = {st:?}: one of open, campaign, dismissed"
            )));
        }
    }
    let items = s
        .store
        .cohort_flags(p.status.as_deref())
        .await
        .map_err(ApiError::store)?;
    Ok(Json(FlagList { items }).into_response())
}

/// The id in a path, or a 400 that says what it should have been.
pub(crate) fn id_of(
    what: &str,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<i64, ApiError> {
    let Path(raw) = p.map_err(|e| ApiError::bad(e.body_text()))?;
    parse_id(what, &raw)
}

/// The id in a path, or a 400 that says what it should have been.
pub(crate) fn parse_id(what: &str, raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .map_err(|_| ApiError::bad(format!("{what} id {raw:?} is not a number")))
}

/// The 404 for a missing `what`.
pub(crate) fn not_found(what: &str, id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not found",
        &format!("no {what} {id}"),
    )
}

/// A campaign with its members.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignDetail {
    /// The campaign and its progress.
    pub campaign: Campaign,
    /// Every device it reaches, and what the rollout did for each.
    pub members: Vec<Member>,
}

async fn detail(s: &DeskState, id: i64) -> Result<CampaignDetail, ApiError> {
    let (campaign, members) = s
        .store
        .campaign(id, &s.policy.repair_cost_minor)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| not_found("campaign", id))?;
    Ok(CampaignDetail { campaign, members })
}

/// Proposes a campaign from an open flag: its members are the cohort's devices now, each
/// with the remedy the policy would offer it.
#[utoipa::path(post, path = "/api/v1/cohort-flags/{id}/campaign",
    params(("id" = i64, Path, description = "the flag's id")), security(("bearer" = [])),
    responses((status = 201, body = CampaignDetail), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 404, body = ProblemDoc),
        (status = 409, description = "the flag is not open", body = ProblemDoc)))]
pub(crate) async fn propose(
    State(s): State<DeskState>,
    u: Option<axum::Extension<User>>,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Answer {
    let user = u.map(|u| u.0).expect("the guard signs every request in");
    let id = id_of("flag", p)?;
    let c = s
        .store
        .propose_campaign(id, &user.name, &s.policy, s.clock.now().0)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| not_found("cohort flag", id))?;
    Ok((StatusCode::CREATED, Json(detail(&s, c.id).await?)).into_response())
}

/// Dismisses an open flag: no campaign.
#[utoipa::path(post, path = "/api/v1/cohort-flags/{id}/dismiss",
    params(("id" = i64, Path, description = "the flag's id")), security(("bearer" = [])),
    responses((status = 200, body = FlagRecord), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 404, body = ProblemDoc),
        (status = 409, description = "the flag is not open", body = ProblemDoc)))]
pub(crate) async fn dismiss(
    State(s): State<DeskState>,
    u: Option<axum::Extension<User>>,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Answer {
    let user = u.map(|u| u.0).expect("the guard signs every request in");
    let id = id_of("flag", p)?;
    let flag = s
        .store
        .cohort_flag(id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| not_found("cohort flag", id))?;
    if !s
        .store
        .dismiss_flag(id, &user.name, s.clock.now().0)
        .await
        .map_err(ApiError::store)?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            &format!(
                "flag {id} is {}: only an open flag is dismissed",
                flag.status
            ),
        ));
    }
    let flag = s.store.cohort_flag(id).await.map_err(ApiError::store)?;
    Ok(Json(flag).into_response())
}

/// Campaigns.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignList {
    /// Newest first, each with its progress.
    pub items: Vec<Campaign>,
}

/// Every campaign, newest first.
#[utoipa::path(get, path = "/api/v1/campaigns", security(("bearer" = [])),
    responses((status = 200, body = CampaignList), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc)))]
pub(crate) async fn campaigns(State(s): State<DeskState>) -> Answer {
    let items = s
        .store
        .campaigns(&s.policy.repair_cost_minor)
        .await
        .map_err(ApiError::store)?;
    Ok(Json(CampaignList { items }).into_response())
}

/// One campaign with its members and progress.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}",
    params(("id" = i64, Path, description = "the campaign's id")), security(("bearer" = [])),
    responses((status = 200, body = CampaignDetail), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 404, body = ProblemDoc)))]
pub(crate) async fn campaign(
    State(s): State<DeskState>,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Answer {
    let id = id_of("campaign", p)?;
    Ok(Json(detail(&s, id).await?).into_response())
}

/// A decision on a proposed campaign.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// `approve` or `reject`.
    pub decision: Verdict,
    /// The campaign's version the decision was made on.
    pub version: i64,
    /// Why (up to 2000 bytes).
    #[serde(default)]
    pub note: Option<String>,
}

/// Approves or rejects a proposed campaign, at the version the analyst saw.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/decision",
    params(("id" = i64, Path, description = "the campaign's id")), request_body = Decision,
    security(("bearer" = [])),
    responses((status = 200, body = CampaignDetail), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 404, body = ProblemDoc),
        (status = 409, description = "already decided, or stale", body = ProblemDoc),
        (status = 422, body = ProblemDoc)))]
pub(crate) async fn decide(
    State(s): State<DeskState>,
    u: Option<axum::Extension<User>>,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
    body: Bytes,
) -> Answer {
    let user = u.map(|u| u.0).expect("the guard signs every request in");
    let id = id_of("campaign", p)?;
    let d: Decision = serde_json::from_slice(&body).map_err(|e| {
        ApiError::unprocessable(format!(
            "{e}; a decision is {{\"decision\": \"approve\" | \"reject\", \"version\": N, \"note\"?: \"...\"}}"
        ))
    })?;
    if d.note.as_ref().is_some_and(|n| n.len() > 2000) {
        return Err(ApiError::unprocessable("note: at most 2000 bytes"));
    }
    s.store
        .decide_campaign(
            id,
            d.decision,
            d.version,
            &user.name,
            d.note.as_deref(),
            s.clock.now().0,
        )
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| not_found("campaign", id))?;
    Ok(Json(detail(&s, id).await?).into_response())
}

/// Which action items.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ActionParams {
    /// `open`, `in_progress`, `done` or `dropped`; all when absent.
    status: Option<ActionStatus>,
}

/// Action items.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionList {
    /// By due time.
    pub items: Vec<ActionItem>,
}

/// The action items, by due time.
#[utoipa::path(get, path = "/api/v1/action-items", params(ActionParams), security(("bearer" = [])),
    responses((status = 200, body = ActionList), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc)))]
pub(crate) async fn actions(
    State(s): State<DeskState>,
    q: Result<Query<ActionParams>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let p = query(q)?;
    let items = s.store.actions(p.status).await.map_err(ApiError::store)?;
    Ok(Json(ActionList { items }).into_response())
}

/// Raises an action item: a problem, its owner (a desk user), due date, KPI and target.
#[utoipa::path(post, path = "/api/v1/action-items", request_body = NewAction,
    security(("bearer" = [])),
    responses((status = 201, body = ActionItem), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc), (status = 422, body = ProblemDoc)))]
pub(crate) async fn add_action(
    State(s): State<DeskState>,
    u: Option<axum::Extension<User>>,
    body: Bytes,
) -> Answer {
    let user = u.map(|u| u.0).expect("the guard signs every request in");
    let n: NewAction = serde_json::from_slice(&body).map_err(|e| {
        ApiError::unprocessable(format!(
            "{e}; an action item is {{\"problem\", \"owner\", \"due\": \"YYYY-MM-DD\", \"kpi\", \"target\", \"source\"?, \"measure\"?}}"
        ))
    })?;
    let users = s.store.users().await.map_err(ApiError::store)?;
    let now = s.clock.now().0;
    let checked = actions::check(&n, |name| users.iter().any(|u| u.name == name), now)
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let item = s
        .store
        .add_action(&checked, &user.name, now)
        .await
        .map_err(ApiError::store)?;
    Ok((StatusCode::CREATED, Json(item)).into_response())
}

/// A move of an action item.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionMove {
    /// Where it stands now.
    pub status: ActionStatus,
    /// The item's version the move was decided on.
    pub version: i64,
    /// What was done, or why it was dropped (up to 2000 bytes).
    #[serde(default)]
    pub note: Option<String>,
}

/// Moves an action item (in progress, done, dropped) at the version seen.
#[utoipa::path(post, path = "/api/v1/action-items/{id}",
    params(("id" = i64, Path, description = "the item's id")), request_body = ActionMove,
    security(("bearer" = [])),
    responses((status = 200, body = ActionItem), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 404, body = ProblemDoc),
        (status = 409, description = "done or dropped, or stale", body = ProblemDoc),
        (status = 422, body = ProblemDoc)))]
pub(crate) async fn move_action(
    State(s): State<DeskState>,
    u: Option<axum::Extension<User>>,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
    body: Bytes,
) -> Answer {
    let user = u.map(|u| u.0).expect("the guard signs every request in");
    let id = id_of("action item", p)?;
    let m: ActionMove = serde_json::from_slice(&body).map_err(|e| {
        ApiError::unprocessable(format!(
            "{e}; a move is {{\"status\": \"open\" | \"in_progress\" | \"done\" | \"dropped\", \"version\": N, \"note\"?}}"
        ))
    })?;
    if m.note.as_ref().is_some_and(|n| n.len() > 2000) {
        return Err(ApiError::unprocessable("note: at most 2000 bytes"));
    }
    let current = s
        .store
        .action(id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| not_found("action item", id))?;
    actions::check_move(current.status, m.status)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "refused", &e.to_string()))?;
    let moved = ActionMoved {
        id,
        from: current.status,
        to: m.status,
        note: m.note.as_deref(),
        version: m.version,
    };
    s.store
        .move_action(&moved, &user.name, s.clock.now().0)
        .await
        .map_err(ApiError::store)?;
    let item = s.store.action(id).await.map_err(ApiError::store)?;
    Ok(Json(item).into_response())
}
