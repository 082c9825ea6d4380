//! The analysts' API for fleet intelligence: the cohort table and the firmware
//! comparisons as they stand, the watch run on demand, and the flags it recorded.
//! Routes are listed (with their access) in [`super::api::ROUTES`].

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::api::{query, Answer, ApiError, DeskState, ProblemDoc};
use crate::cohorts::firmware::FirmwareComparison;
use crate::cohorts::table::Cell;
use crate::cohorts::watch::{self, Excluded, Flag};
use crate::cohorts::Dimension;
use crate::policy::Problem;
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
