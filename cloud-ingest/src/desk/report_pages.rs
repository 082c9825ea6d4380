//! The analysts' review pages: the reports by period (each with its files to download
//! and a form to raise an action item from it), and a flagged cohort's page with its
//! evidence, its root-cause record ("five whys", each answer linked to evidence) and
//! its action items. Plain forms, so they work without JavaScript; they call the same
//! domain functions as the API.

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;

use super::api::{ApiError, DeskState};
use super::auth::{Access, User};
use super::fleet::{not_found, parse_id};
use super::fleet_pages::form_of;
use super::pages::{csrf_of, csrf_refused, error_page, ms_to_text, page, signed_in};
use super::reports::{report_of, write_root_cause};
use crate::report::actions::{self, NewAction};
use crate::report::root_causes::{NewRootCause, Why};
use crate::report::{html as report_html, Format};
use crate::store::actions::ActionItem;
use crate::store::reports::RootCause;
use crate::tradein::routing::{period_of, Period};

/// The review pages.
pub fn router(state: DeskState) -> Router {
    Router::new()
        .route("/desk/reports", get(index))
        .route("/desk/reports/:period", get(report_page))
        .route("/desk/reports/:period/file", get(file))
        .route("/desk/flags/:id", get(flag_page))
        .route("/desk/flags/:id/root-cause", post(root_cause))
        .route("/desk/action-items", post(raise))
        .with_state(state)
}

#[derive(Debug, Default, Deserialize)]
struct IndexQuery {
    period: Option<String>,
}

async fn index(
    State(s): State<DeskState>,
    headers: HeaderMap,
    Query(q): Query<IndexQuery>,
) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::ReadAll).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Some(p) = q.period.filter(|p| !p.trim().is_empty()) {
        return Redirect::to(&format!("/desk/reports/{}", urlencoding(p.trim()))).into_response();
    }
    let csrf = csrf_of(&token);
    let now = s.clock.now().0;
    let months =
        crate::report::trend::periods(&period_of(now, Period::Month), 6).unwrap_or_default();
    let weeks = crate::report::trend::periods(&period_of(now, Period::Week), 8).unwrap_or_default();
    page(
        StatusCode::OK,
        "Reports",
        Some(&user),
        Some(&csrf),
        html! {
            p.hint { "Each period's after-sales review: key figures against the period before, problem frequency, cohorts, the trend, notable cases, root causes, satisfaction and the action items under review." }
            form.inline #period-form method="get" action="/desk/reports" {
                label for="period" { "Period " }
                input #period name="period" placeholder="2026-11 or 2026-W48" required pattern="[0-9]{4}-(W[0-9]{2}|[0-9]{2})";
                " "
                button type="submit" { "Open" }
            }
            h2 { "Months" }
            ul #months { @for m in months.iter().rev() { li { a href={"/desk/reports/" (m)} { (m) } } } }
            h2 { "Weeks" }
            ul #weeks { @for w in weeks.iter().rev() { li { a href={"/desk/reports/" (w)} { (w) } } } }
        },
    )
}

/// A period name in a path: only what periods are made of passes.
fn urlencoding(p: &str) -> String {
    p.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}

fn action_form(csrf: &str, source: &str, back: &str, users: &[String], keys: &[String]) -> Markup {
    html! {
        form.card #raise-action method="post" action="/desk/action-items" {
            h3 { "Raise an action item" }
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="source" value=(source);
            input type="hidden" name="back" value=(back);
            label for="a-problem" { "Problem" }
            input #a-problem name="problem" required maxlength="500";
            label for="a-owner" { "Owner" }
            select #a-owner name="owner" { @for u in users { option value=(u) { (u) } } }
            label for="a-due" { "Due" }
            input #a-due type="date" name="due" required;
            label for="a-kpi" { "KPI that says it worked" }
            input #a-kpi name="kpi" required maxlength="500" placeholder="battery faults confirmed, model S1";
            label for="a-measure" { "Measured by (optional: a report figure)" }
            select #a-measure name="measure" {
                option value="" { "— not measured —" }
                @for k in keys { option value=(k) { (k) } }
            }
            label for="a-target" { "Target" }
            input #a-target name="target" required maxlength="200" placeholder="down 30 % (or below 4)";
            button type="submit" { "Raise it" }
        }
    }
}

/// The report figures an action item can name, with the model-level fault counts.
fn measure_keys(r: &crate::report::document::Report) -> Vec<String> {
    let mut keys: Vec<String> = r.kpis.iter().map(|k| k.key.clone()).collect();
    for p in crate::policy::Problem::ALL {
        keys.push(format!("faults:{}", p.as_str()));
    }
    let mut models: Vec<&str> = r
        .cohorts
        .iter()
        .filter(|c| c.dimension == crate::cohorts::Dimension::Model)
        .map(|c| c.cohort.as_str())
        .collect();
    models.sort_unstable();
    models.dedup();
    for m in models {
        for p in crate::policy::Problem::ALL {
            keys.push(format!("faults:{}:{m}", p.as_str()));
        }
    }
    keys
}

async fn user_names(s: &DeskState) -> Result<Vec<String>, ApiError> {
    Ok(s.store
        .users()
        .await
        .map_err(ApiError::store)?
        .into_iter()
        .map(|u| u.name)
        .collect())
}

async fn report_page(
    State(s): State<DeskState>,
    headers: HeaderMap,
    Path(period): Path<String>,
) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::ReadAll).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let csrf = csrf_of(&token);
    let loaded = async {
        let r = report_of(&s, &period).await?;
        Ok::<_, ApiError>((r, user_names(&s).await?))
    };
    let (r, users) = match loaded.await {
        Ok(v) => v,
        Err(e) => return error_page(Some(&user), Some(&csrf), e),
    };
    let works = user.role.may(Access::WorkFleet);
    page(
        StatusCode::OK,
        &format!("After-sales review {}", r.period),
        Some(&user),
        Some(&csrf),
        html! {
            p.no-print #files {
                "Download: "
                a #file-html href={"/desk/reports/" (r.period) "/file?format=html"} { "HTML" } " · "
                a #file-md href={"/desk/reports/" (r.period) "/file?format=md"} { "Markdown" } " · "
                a #file-json href={"/desk/reports/" (r.period) "/file?format=json"} { "JSON" } " · "
                a href={"/desk/reports/" (r.previous_period)} { "← " (r.previous_period) }
            }
            style { (PreEscaped(report_html::STYLE)) }
            div.report { (report_html::sections(&r, "")) }
            @if works {
                (action_form(&csrf, &format!("report:{}", r.period), &format!("/desk/reports/{}", r.period), &users, &measure_keys(&r)))
            }
        },
    )
}

#[derive(Debug, Default, Deserialize)]
struct FileQuery {
    format: Option<Format>,
}

async fn file(
    State(s): State<DeskState>,
    headers: HeaderMap,
    Path(period): Path<String>,
    q: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::ReadAll).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let csrf = csrf_of(&token);
    let format = match q {
        Ok(Query(q)) => q.format.unwrap_or(Format::Html),
        Err(e) => return error_page(Some(&user), Some(&csrf), ApiError::bad(e.body_text())),
    };
    match report_of(&s, &period).await {
        Ok(r) => {
            let ext = match format {
                Format::Html => "html",
                Format::Md => "md",
                Format::Json => "json",
            };
            let base = super::casework::desk_base(&s, &headers);
            (
                [
                    (header::CONTENT_TYPE, format.content_type().to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("inline; filename=\"after-sales-{}.{ext}\"", r.period),
                    ),
                ],
                format.render(&r, &base),
            )
                .into_response()
        }
        Err(e) => error_page(Some(&user), Some(&csrf), e),
    }
}

fn whys_form(csrf: &str, id: i64, rc: Option<&RootCause>) -> Markup {
    let blank = Why {
        why: String::new(),
        answer: String::new(),
        evidence: String::new(),
    };
    html! {
        form.card #root-cause-form method="post" action={"/desk/flags/" (id) "/root-cause"} {
            h3 { @if rc.is_some() { "Rewrite the five whys" } @else { "Write the five whys" } }
            p.hint { "Ask why the problem happened, then why that happened, up to five times; link each answer to its evidence (a desk page such as /desk/devices/…, or an https:// address). Leave the rows you do not need empty." }
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="version" value=(rc.map_or(0, |r| r.version));
            @for i in 1..=5usize {
                @let w = rc.and_then(|r| r.whys.get(i - 1)).unwrap_or(&blank);
                fieldset.why {
                    legend { "Why " (i) }
                    label for={"why" (i)} { "Question" }
                    input id={"why" (i)} name={"why" (i)} value=(w.why) maxlength="300";
                    label for={"answer" (i)} { "Answer" }
                    input id={"answer" (i)} name={"answer" (i)} value=(w.answer) maxlength="500";
                    label for={"evidence" (i)} { "Evidence link" }
                    input id={"evidence" (i)} name={"evidence" (i)} value=(w.evidence) maxlength="500" placeholder="/desk/fleet";
                }
            }
            label for="conclusion" { "Root cause" }
            input #conclusion name="conclusion" required maxlength="500" value=(rc.map_or("", |r| r.conclusion.as_str()));
            button #save-whys type="submit" { "Save" }
        }
    }
}

fn items_table(items: &[&ActionItem]) -> Markup {
    html! {
        @if items.is_empty() {
            p.empty { "No action item yet." }
        } @else {
            table.queue #flag-actions {
                thead { tr { th { "Problem" } th { "Owner" } th { "Due" } th { "KPI" } th { "Target" } th { "Status" } } }
                tbody { @for a in items {
                    tr { td { (a.problem) } td { (a.owner) } td { (ms_to_text(a.due_ms)) } td { (a.kpi) } td { (a.target) } td { (a.status.as_str().replace('_', " ")) } }
                } }
            }
        }
    }
}

async fn flag_page(
    State(s): State<DeskState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::ReadAll).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let csrf = csrf_of(&token);
    let loaded = async {
        let id = parse_id("flag", &raw)?;
        let flag = s
            .store
            .cohort_flag(id)
            .await
            .map_err(ApiError::store)?
            .ok_or_else(|| not_found("cohort flag", id))?;
        let rc = s.store.root_cause(id).await.map_err(ApiError::store)?;
        let items = s.store.actions(None).await.map_err(ApiError::store)?;
        Ok::<_, ApiError>((flag, rc, items, user_names(&s).await?))
    };
    let (flag, rc, items, users) = match loaded.await {
        Ok(v) => v,
        Err(e) => return error_page(Some(&user), Some(&csrf), e),
    };
    let source = format!("flag:{}", flag.id);
    let mine: Vec<&ActionItem> = items.iter().filter(|a| a.source == source).collect();
    let f = &flag.flag;
    let e = &f.evidence;
    let works = user.role.may(Access::WorkFleet);
    let title = format!(
        "{} {} — {}",
        f.kind.as_str().replace('_', " "),
        f.cohort,
        f.problem.map_or("unexpected restarts", |p| p.as_str())
    );
    let keys: Vec<String> = crate::report::kpis::kpis(&Default::default(), 0, 1, 2)
        .into_iter()
        .map(|k| k.key)
        .chain(f.problem.map(|p| format!("faults:{}", p.as_str())))
        .collect();
    page(
        StatusCode::OK,
        &title,
        Some(&user),
        Some(&csrf),
        html! {
            p #flag-evidence {
                (e.observed) " observed against " (format!("{:.1}", e.expected)) " expected among " (e.devices) " devices over "
                (format!("{:.0}", e.exposure_days)) " device-days; rate " (format!("{:.3}", e.rate)) " [" (format!("{:.3}", e.rate_low)) ", " (format!("{:.3}", e.rate_high)) "] against "
                (format!("{:.3}", e.expected_rate)) ", shrunk " (format!("{:.3}", e.shrunk_rate)) "; q = " (format!("{:.2e}", e.q_value)) "."
            }
            p { "First flagged " (ms_to_text(flag.first_flagged_ms as i64)) ", by " (flag.runs) " runs; " (flag.status) ". " a href="/desk/fleet" { "All flags" } }
            h2 { "Root cause" }
            @match &rc {
                Some(r) => {
                    ol.whys #whys { @for w in &r.whys {
                        li { em { (w.why) } " " (w.answer) " " a href=(w.evidence) { "evidence" } }
                    } }
                    p #conclusion-text { strong { "Root cause: " } (r.conclusion) " — " (r.written_by) ", " (ms_to_text(r.written_ms)) }
                }
                None => { p.empty { "No root-cause record yet." } }
            }
            @if works { (whys_form(&csrf, flag.id, rc.as_ref())) }
            h2 { "Action items" }
            (items_table(&mine))
            @if works { (action_form(&csrf, &source, &format!("/desk/flags/{}", flag.id), &users, &keys)) }
        },
    )
}

#[derive(Debug, Deserialize)]
struct WhysForm {
    csrf: String,
    version: String,
    conclusion: String,
    #[serde(default)]
    why1: String,
    #[serde(default)]
    answer1: String,
    #[serde(default)]
    evidence1: String,
    #[serde(default)]
    why2: String,
    #[serde(default)]
    answer2: String,
    #[serde(default)]
    evidence2: String,
    #[serde(default)]
    why3: String,
    #[serde(default)]
    answer3: String,
    #[serde(default)]
    evidence3: String,
    #[serde(default)]
    why4: String,
    #[serde(default)]
    answer4: String,
    #[serde(default)]
    evidence4: String,
    #[serde(default)]
    why5: String,
    #[serde(default)]
    answer5: String,
    #[serde(default)]
    evidence5: String,
}

impl WhysForm {
    /// Row `i`'s (why, answer, evidence).
    fn row(&self, i: usize) -> [&str; 3] {
        match i {
            1 => [&self.why1, &self.answer1, &self.evidence1],
            2 => [&self.why2, &self.answer2, &self.evidence2],
            3 => [&self.why3, &self.answer3, &self.evidence3],
            4 => [&self.why4, &self.answer4, &self.evidence4],
            _ => [&self.why5, &self.answer5, &self.evidence5],
        }
    }
}

async fn root_cause(
    State(s): State<DeskState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    req: Request,
) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::WorkFleet).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let csrf = csrf_of(&token);
    let back = format!("/desk/flags/{}", urlencoding(&raw));
    let form = match form_of::<WhysForm>(&s, req).await {
        Some(f) if f.csrf == csrf => f,
        _ => return csrf_refused(&user, &csrf, &back),
    };
    let id = match parse_id("flag", &raw) {
        Ok(id) => id,
        Err(e) => return error_page(Some(&user), Some(&csrf), e),
    };
    let Ok(version) = form.version.trim().parse::<i64>() else {
        return error_page(
            Some(&user),
            Some(&csrf),
            ApiError::bad(format!("version {:?} is not a number", form.version)),
        );
    };
    let whys: Vec<Why> = (1..=5)
        .map(|i| {
            let [why, answer, evidence] = form.row(i).map(|v| v.trim().to_owned());
            Why {
                why,
                answer,
                evidence,
            }
        })
        .filter(|w| !(w.why.is_empty() && w.answer.is_empty() && w.evidence.is_empty()))
        .collect();
    let n = NewRootCause {
        whys,
        conclusion: form.conclusion,
        version,
    };
    match write_root_cause(&s, &user, id, &n).await {
        Ok(_) => Redirect::to(&back).into_response(),
        Err(e) => refused(&user, &csrf, e, &back),
    }
}

/// A refusal with the way back to the form.
pub(crate) fn refused(user: &User, csrf: &str, e: ApiError, back: &str) -> Response {
    page(
        e.status(),
        e.title(),
        Some(user),
        Some(csrf),
        html! {
            p.error role="alert" { (e.detail()) }
            p { a href=(back) { "Back" } }
        },
    )
}

#[derive(Debug, Deserialize)]
struct RaiseForm {
    csrf: String,
    problem: String,
    owner: String,
    due: String,
    kpi: String,
    target: String,
    #[serde(default)]
    measure: Option<String>,
    source: String,
    back: String,
}

async fn raise(State(s): State<DeskState>, headers: HeaderMap, req: Request) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::WorkFleet).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let csrf = csrf_of(&token);
    let form = match form_of::<RaiseForm>(&s, req).await {
        Some(f) if f.csrf == csrf => f,
        _ => return csrf_refused(&user, &csrf, "/desk/reports"),
    };
    // Back only to a review page: never to an address the form names.
    let back = if form.back.starts_with("/desk/reports/") || form.back.starts_with("/desk/flags/") {
        form.back.clone()
    } else {
        "/desk/reports".to_owned()
    };
    let n = NewAction {
        problem: form.problem,
        owner: form.owner,
        due: form.due,
        kpi: form.kpi,
        target: form.target,
        source: Some(form.source),
        measure: form.measure.filter(|m| !m.trim().is_empty()),
    };
    let done = async {
        let users = user_names(&s).await?;
        let now = s.clock.now().0;
        let checked = actions::check(&n, |name| users.iter().any(|u| u == name), now)
            .map_err(|e| ApiError::unprocessable(e.to_string()))?;
        s.store
            .add_action(&checked, &user.name, now)
            .await
            .map_err(ApiError::store)
    };
    match done.await {
        Ok(item) => Redirect::to(&format!("{back}#action-{}", item.id)).into_response(),
        Err(e) => refused(&user, &csrf, e, &back),
    }
}
