//! The after-sales review through the API: a period's report as JSON, HTML or Markdown,
//! and the root-cause records ("five whys") written for flagged cohorts. The domain
//! functions here are the pages' too.
//! Routes are listed (with their access) in [`super::api::ROUTES`].

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use super::api::{query, Answer, ApiError, DeskState, ProblemDoc};
use super::auth::User;
use super::fleet::{id_of, not_found};
use crate::report::document::Report;
use crate::report::root_causes::{self, NewRootCause};
use crate::report::{Format, ReportError};
use crate::store::reports::RootCause;

/// How a report is wanted.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReportParams {
    /// `json` (the default), `html` or `md`.
    format: Option<Format>,
}

/// The report for `period` as the store stands now.
pub(crate) async fn report_of(s: &DeskState, period: &str) -> Result<Report, ApiError> {
    crate::report::make(&s.store, period, &s.watch.config, s.clock.now().0)
        .await
        .map_err(|e| match e {
            ReportError::Period(p) => ApiError::bad(p),
            ReportError::Store(e) => ApiError::store(e),
        })
}

/// A period's after-sales review: `2026-11` or `2026-W48`. JSON follows the schema
/// `fleet-report/1` (docs/reports.md); `html` is one self-contained file.
#[utoipa::path(get, path = "/api/v1/reports/{period}", params(("period" = String, Path,
        description = "a month, 2026-11, or an ISO week, 2026-W48"), ReportParams),
    security(("bearer" = [])),
    responses((status = 200, description = "the report (JSON, HTML or Markdown)"),
        (status = 400, body = ProblemDoc), (status = 401, body = ProblemDoc),
        (status = 403, body = ProblemDoc)))]
pub(crate) async fn report(
    State(s): State<DeskState>,
    headers: HeaderMap,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
    q: Result<Query<ReportParams>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Path(period) = p.map_err(|e| ApiError::bad(e.body_text()))?;
    let format = query(q)?.format.unwrap_or(Format::Json);
    let r = report_of(&s, &period).await?;
    let base = super::casework::desk_base(&s, &headers);
    Ok((
        [(header::CONTENT_TYPE, format.content_type())],
        format.render(&r, &base),
    )
        .into_response())
}

/// Writes flag `id`'s root-cause record as `user`.
pub(crate) async fn write_root_cause(
    s: &DeskState,
    user: &User,
    id: i64,
    n: &NewRootCause,
) -> Result<RootCause, ApiError> {
    let (whys, conclusion) =
        root_causes::check(n).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    s.store
        .write_root_cause(
            id,
            &whys,
            &conclusion,
            n.version,
            &user.name,
            s.clock.now().0,
        )
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| not_found("cohort flag", id))
}

/// A flag's root-cause record.
#[utoipa::path(get, path = "/api/v1/cohort-flags/{id}/root-cause",
    params(("id" = i64, Path, description = "the flag's id")), security(("bearer" = [])),
    responses((status = 200, body = RootCause), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 404, description = "no flag, or no record yet", body = ProblemDoc)))]
pub(crate) async fn root_cause(
    State(s): State<DeskState>,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Answer {
    let id = id_of("cohort flag", p)?;
    let r = s
        .store
        .root_cause(id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| not_found("root-cause record for cohort flag", id))?;
    Ok(Json(r).into_response())
}

/// Writes a flag's root-cause record: one to five whys, each answer linked to its
/// evidence, and the conclusion; `version` is the record's as read (0 for the first).
#[utoipa::path(post, path = "/api/v1/cohort-flags/{id}/root-cause",
    params(("id" = i64, Path, description = "the flag's id")), request_body = NewRootCause,
    security(("bearer" = [])),
    responses((status = 200, body = RootCause), (status = 400, body = ProblemDoc),
        (status = 401, body = ProblemDoc), (status = 403, body = ProblemDoc),
        (status = 404, body = ProblemDoc),
        (status = 409, description = "changed meanwhile", body = ProblemDoc),
        (status = 422, body = ProblemDoc)))]
pub(crate) async fn set_root_cause(
    State(s): State<DeskState>,
    u: Option<axum::Extension<User>>,
    p: Result<Path<String>, axum::extract::rejection::PathRejection>,
    body: Bytes,
) -> Answer {
    let user = u.map(|u| u.0).expect("the guard signs every request in");
    let id = id_of("cohort flag", p)?;
    let n: NewRootCause = serde_json::from_slice(&body).map_err(|e| {
        ApiError::unprocessable(format!(
            "{e}; a record is {{\"whys\": [{{\"why\", \"answer\", \"evidence\"}}, …], \"conclusion\", \"version\"}}"
        ))
    })?;
    Ok(Json(write_root_cause(&s, &user, id, &n).await?).into_response())
}
