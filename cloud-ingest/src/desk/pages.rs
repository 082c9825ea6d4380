//! The service desk's pages: server-rendered HTML (maud), with htmx swapping the queue
//! as filters change; every flow is a plain form, so it works without JavaScript. The
//! pages call the same casework functions as the API. Signed in by a session cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` behind TLS); every form carries a CSRF token
//! derived from the session.

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use hmac::{Hmac, KeyInit, Mac};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use sha2::Sha256;

use super::api::{ApiError, DeskState, ListParams, ListedTicket, TicketDetail};
use super::auth::{Access, User};
use super::casework;
use crate::policy::Problem;
use crate::tickets::sla::{PauseReason, SlaState};
use crate::tickets::work::{Action, Outcome};
use crate::tickets::{TicketState, Tier};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "fleet_session";
/// How long a browser session lasts, ms.
pub const SESSION_MS: u64 = 12 * 3_600_000;

const HTMX: &str = include_str!("../../assets/htmx-2.0.11.min.js");
const CSS: &str = include_str!("../../assets/desk.css");

/// The pages' router.
pub fn router(state: DeskState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/desk") }))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/desk", get(queue))
        .route("/desk/tickets/:id", get(ticket))
        .route("/desk/tickets/:id/actions", post(act))
        .route("/desk/tickets/:id/progress-link", post(progress_link))
        .route(
            "/static/htmx.min.js",
            get(|| async { asset("text/javascript", HTMX) }),
        )
        .route("/static/desk.css", get(|| async { asset("text/css", CSS) }))
        .with_state(state)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

/// The CSRF token of a session: an HMAC of a fixed label under the session token, so
/// it needs no storage and is worthless without the cookie.
pub fn csrf_of(session: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(session.as_bytes()).expect("any key length");
    mac.update(b"fleet-desk-csrf");
    hex::encode(mac.finalize().into_bytes())
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The signed-in user and their session token, or the response that asks them to sign in.
pub(crate) async fn signed_in(
    s: &DeskState,
    headers: &HeaderMap,
    access: Access,
) -> Result<(User, String), Response> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Err(Redirect::to("/login").into_response());
    };
    match s.store.user_by_token(&token, s.clock.now().0).await {
        Ok(Some(u)) if u.role.may(access) => Ok((u, token)),
        // Signed in, so the page still offers to sign out (and in as someone else).
        Ok(Some(u)) => Err(page(
            StatusCode::FORBIDDEN,
            "Not allowed",
            Some(&u),
            Some(&csrf_of(&token)),
            html! { p.error { "You are signed in as " (u.name) " (" (u.role) "), which may not see this page." } },
        )),
        Ok(None) => Err(Redirect::to("/login").into_response()),
        Err(e) => Err(error_page(None, None, ApiError::store(e))),
    }
}

/// What every page's `<head>` holds: encoding, phone-width viewport, title, the stylesheet.
pub(crate) fn head(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) }
        link rel="stylesheet" href="/static/desk.css";
    }
}

fn layout(title: &str, user: Option<&User>, csrf: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                (head(&format!("{title} · Service desk")))
                script src="/static/htmx.min.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/desk" { "Service desk" }
                    @if let Some(u) = user {
                        nav.desks {
                            @if u.role.may(Access::ReadTickets) { a href="/desk" { "Tickets" } }
                            @if u.role.may(Access::ReadTradeIns) { a href="/desk/tradeins" { "Trade-ins" } }
                            @if u.role.may(Access::ReadAll) { a href="/desk/fleet" { "Fleet" } }
                            @if u.role.may(Access::ReadAll) { a href="/desk/reports" { "Reports" } }
                            @if u.role.may(Access::ReadAll) { a href="/desk/models" { "Models" } }
                        }
                        span.who { (u.name) " · " (u.role) }
                        @if let Some(c) = csrf {
                            form method="post" action="/logout" .inline {
                                input type="hidden" name="csrf" value=(c);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

pub(crate) fn page(
    status: StatusCode,
    title: &str,
    user: Option<&User>,
    csrf: Option<&str>,
    body: Markup,
) -> Response {
    let html = layout(title, user, csrf, html! { h1 { (title) } (body) });
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html.into_string(),
    )
        .into_response()
}

pub(crate) fn error_page(user: Option<&User>, csrf: Option<&str>, e: ApiError) -> Response {
    let status = e.status();
    page(
        status,
        e.title(),
        user,
        csrf,
        html! {
            p.error { (e.detail()) }
            p { a href="/desk" { "Back to the queue" } }
        },
    )
}

#[derive(Debug, Default, Deserialize)]
struct LoginQuery {
    error: Option<String>,
}

async fn login_form(Query(q): Query<LoginQuery>) -> Response {
    page(
        StatusCode::OK,
        "Sign in",
        None,
        None,
        html! {
            @if q.error.is_some() {
                p.error role="alert" { "That token is not valid. Check it and try again." }
            }
            form.card method="post" action="/login" {
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password" required
                    placeholder="fleet_…";
                p.hint { "Your administrator gives you a token (" code { "cloud-ingest users add" } ")." }
                button type="submit" { "Sign in" }
            }
        },
    )
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
}

fn session_cookie(value: &str, max_age_s: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .expect("a token is a valid header value")
}

/// Behind a TLS-terminating proxy the cookie is `Secure`.
pub(crate) fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

async fn login(
    State(s): State<DeskState>,
    headers: HeaderMap,
    form: Option<Form<LoginForm>>,
) -> Response {
    let Some(Form(f)) = form else {
        return Redirect::to("/login?error=1").into_response();
    };
    let now = s.clock.now().0;
    let user = match s.store.user_by_token(f.token.trim(), now).await {
        Ok(Some(u)) => u,
        Ok(None) => return Redirect::to("/login?error=1").into_response(),
        Err(e) => return error_page(None, None, ApiError::store(e)),
    };
    let session = match s.store.open_session(&user, now, now + SESSION_MS).await {
        Ok(t) => t,
        Err(e) => return error_page(None, None, ApiError::store(e)),
    };
    // Each role lands on the desk it works.
    let home = if user.role.may(Access::ReadTickets) {
        "/desk"
    } else {
        "/desk/tradeins"
    };
    let mut resp = Redirect::to(home).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&session, SESSION_MS / 1000, over_tls(&headers)),
    );
    resp
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    State(s): State<DeskState>,
    headers: HeaderMap,
    form: Option<Form<CsrfForm>>,
) -> Response {
    let Some(token) = cookie(&headers, SESSION_COOKIE) else {
        return Redirect::to("/login").into_response();
    };
    if form.is_none_or(|Form(f)| f.csrf != csrf_of(&token)) {
        return page(
            StatusCode::FORBIDDEN,
            "Not signed out",
            None,
            None,
            html! {
                p.error { "The form was not sent from this desk (CSRF check failed)." }
            },
        );
    }
    if let Err(e) = s.store.close_session(&token).await {
        return error_page(None, None, ApiError::store(e));
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie("", 0, over_tls(&headers)),
    );
    resp
}

pub(crate) fn ms_to_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// "in 3 h 20 min" or "2 h 5 min ago", from now.
fn relative(ms: i64, now: i64) -> String {
    let d = (ms - now).abs() / 60_000;
    let text = if d >= 60 * 48 {
        format!("{} d", d / (60 * 24))
    } else if d >= 60 {
        match d % 60 {
            0 => format!("{} h", d / 60),
            m => format!("{} h {m} min", d / 60),
        }
    } else {
        format!("{d} min")
    };
    if ms >= now {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

pub(crate) fn sla_badge(s: SlaState) -> Markup {
    let text = match s {
        SlaState::OnTime => "on time",
        SlaState::AtRisk => "at risk",
        SlaState::Breached => "breached",
        SlaState::Paused => "paused",
        SlaState::Met => "met",
    };
    html! { span class={"badge sla-" (s.as_str())} { (text) } }
}

pub(crate) fn tier_badge(t: Tier) -> Markup {
    html! { span class={"badge tier-" (t.as_str())} { (t.as_str()) } }
}

pub(crate) fn words(s: &str) -> String {
    s.replace('_', " ")
}

fn select(
    name: &str,
    label: &str,
    options: &[&str],
    chosen: Option<&str>,
    any: Option<&str>,
) -> Markup {
    html! {
        label {
            span { (label) }
            select name=(name) {
                @if let Some(any) = any {
                    option value="" selected[chosen.is_none_or(str::is_empty)] { (any) }
                }
                @for o in options {
                    option value=(o) selected[chosen == Some(*o)] { (words(o)) }
                }
            }
        }
    }
}

fn queue_table(items: &[ListedTicket], now: i64) -> Markup {
    html! {
        @if items.is_empty() {
            p.empty { "No tickets match these filters." }
        } @else {
            table.queue {
                thead { tr {
                    th { "Ticket" } th { "Tier" } th { "SLA" } th { "Due" } th { "State" }
                    th { "Category" } th { "Device" } th { "Assignee" } th.num { "Risk" }
                } }
                tbody {
                    @for t in items {
                        tr {
                            td { a href={"/desk/tickets/" (t.ticket.id)} { (t.ticket.ticket_ref) } }
                            td { (tier_badge(t.ticket.tier)) }
                            td { (sla_badge(t.sla_state)) }
                            td title=(ms_to_text(t.ticket.due_ms)) {
                                @if t.sla_state == SlaState::Paused { "—" } @else { (relative(t.ticket.due_ms, now)) }
                            }
                            td { (words(t.ticket.state.as_str())) }
                            td { (t.ticket.problem.as_str()) }
                            td {
                                a href={"/desk/devices/" (t.ticket.device_id)} { (t.ticket.device_id) }
                                @if let Some(m) = &t.ticket.model { br; small { (m) " · " (t.ticket.batch.as_deref().unwrap_or("?")) } }
                            }
                            td { (t.ticket.assignee.as_deref().unwrap_or("—")) }
                            td.num { (format!("{:.2}", t.ticket.risk)) }
                        }
                    }
                }
            }
        }
    }
}

async fn queue(
    State(s): State<DeskState>,
    headers: HeaderMap,
    q: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::ReadTickets).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let csrf = csrf_of(&token);
    let p = match q {
        Ok(Query(p)) => p,
        Err(e) => return error_page(Some(&user), Some(&csrf), ApiError::bad(e.body_text())),
    };
    let chosen = p.clone();
    let list = match casework::queue(&s, p).await {
        Ok(l) => l,
        Err(e) => return error_page(Some(&user), Some(&csrf), e),
    };
    let now = s.clock.now().0 as i64;
    let table = html! {
        div #results {
            p.count { (list.total) " matching, page " (list.page + 1) }
            (queue_table(&list.items, now))
        }
    };
    // htmx asks for the results only.
    if headers.contains_key("hx-request") {
        return (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            table.into_string(),
        )
            .into_response();
    }
    let tiers: Vec<&str> = Tier::ALL.iter().rev().map(|t| t.as_str()).collect();
    let slas = ["on_time", "at_risk", "breached", "paused"];
    let states: Vec<&str> = TicketState::ALL.iter().map(|s| s.as_str()).collect();
    let cats: Vec<&str> = Problem::ALL.iter().map(|p| p.as_str()).collect();
    page(
        StatusCode::OK,
        "Ticket queue",
        Some(&user),
        Some(&csrf),
        html! {
            div.tiles {
                @for (tier, n) in &list.open_by_tier {
                    a class={"tile tier-" (tier)} href={"/desk?tier=" (tier)} {
                        span.n { (n) } span { "open " (tier) }
                    }
                }
            }
            form.filters method="get" action="/desk" hx-get="/desk" hx-target="#results"
                hx-select="#results" hx-trigger="change" hx-push-url="true" {
                (select("tier", "Tier", &tiers, chosen.tier.as_deref(), Some("any")))
                (select("sla", "SLA", &slas, chosen.sla.as_deref(), Some("any")))
                (select("state", "State", &states, chosen.state.as_deref(), Some("open")))
                (select("category", "Category", &cats, chosen.category.as_deref(), Some("any")))
                label { span { "Assignee" } input type="text" name="assignee" value=(chosen.assignee.clone().unwrap_or_default()) placeholder="anyone"; }
                button type="submit" { "Filter" }
            }
            (table)
        },
    )
}

fn feature_bar(contribution: f64, max: f64) -> Markup {
    let w = if max > 0.0 {
        // Three quarters of the cell at most, so the figure beside it fits.
        (contribution.abs() / max * 75.0).min(75.0)
    } else {
        0.0
    };
    let class = if contribution >= 0.0 {
        "bar up"
    } else {
        "bar down"
    };
    html! { span class=(class) style=(format!("width:{w:.0}%")) {} }
}

fn ticket_page(
    user: &User,
    csrf: &str,
    d: &TicketDetail,
    now: i64,
    notice: Option<Markup>,
) -> Markup {
    let t = &d.ticket;
    let ev = d.evidence.as_ref();
    let num = |k: &str| ev.and_then(|e| e[k].as_f64());
    let features = ev
        .and_then(|e| e["top_features"].as_array())
        .cloned()
        .unwrap_or_default();
    let max = features
        .iter()
        .filter_map(|f| f["contribution"].as_f64())
        .map(f64::abs)
        .fold(0.0, f64::max);
    let list = |k: &str| -> Vec<String> {
        ev.and_then(|e| e[k].as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let open = t.state.is_open();
    let mine = t.assignee.as_deref() == Some(user.name.as_str());
    let can_work = user.role.may(Access::WorkTickets);
    let action = |name: &str, label: &str, extra: Markup| {
        html! {
            form.action method="post" action={"/desk/tickets/" (t.id) "/actions"} {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="version" value=(t.version);
                input type="hidden" name="action" value=(name);
                (extra)
                button type="submit" { (label) }
            }
        }
    };
    let outcomes: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
    let cats: Vec<&str> = Problem::ALL.iter().map(|p| p.as_str()).collect();
    let reasons: Vec<&str> = PauseReason::ALL.iter().map(|r| r.as_str()).collect();
    html! {
        @if let Some(n) = notice { (n) }
        div.summary {
            div { span.label { "State" } strong { (words(t.state.as_str())) } }
            div { span.label { "Tier" } (tier_badge(t.tier)) }
            div { span.label { "SLA" } (sla_badge(d.sla.state)) }
            div { span.label { @if t.closed_ms.is_some() { "Closed" } @else { "Due" } }
                @if let Some(c) = t.closed_ms { (ms_to_text(c)) }
                @else if d.sla.state == SlaState::Paused { "paused" } @else {
                    span title=(ms_to_text(d.sla.due_ms as i64)) { (relative(d.sla.due_ms as i64, now)) }
                }
            }
            div { span.label { "Assignee" } (t.assignee.as_deref().unwrap_or("nobody")) }
            div { span.label { "Device" } a href={"/desk/devices/" (t.device_id)} { (t.device_id) } @if let Some(m) = &t.model { " (" (m) ", batch " (t.batch.as_deref().unwrap_or("?")) ")" } }
            @if let Some(o) = &t.outcome {
                div { span.label { "Outcome" } (words(o)) @if let Some(c) = &t.outcome_category { " · " (c) } }
            }
        }
        @if open && can_work {
            section.actions {
                h2 { "Work this ticket" }
                div.row {
                    @if t.assignee.is_none() || !mine { (action("claim", "Claim", html!{})) }
                    @if t.state == TicketState::Accepted { (action("start", "Start work", html!{})) }
                    @if d.sla.paused.is_none() {
                        (action("pause", "Pause SLA", select("reason", "Reason", &reasons, None, None)))
                    } @else {
                        (action("resume", "Resume SLA", html!{}))
                    }
                }
                @if t.state == TicketState::InProgress {
                    (action("resolve", "Resolve", html! {
                        (select("outcome", "Outcome", &outcomes, None, None))
                        (select("category", "Fault category", &cats, None, Some("the ticket's")))
                        label { span { "What was done" } input type="text" name="note" maxlength="2000"; }
                    }))
                }
                (action("note", "Add note", html! {
                    label { span { "Note" } input type="text" name="text" required maxlength="2000"; }
                }))
            }
        }
        section.customer {
            h2 { "Customer" }
            @if let Some(r) = &d.rating {
                p { "Rated on " (ms_to_text(r.rated_ms)) ": result " strong { (r.rating.result) }
                    ", speed " strong { (r.rating.speed) } ", service " strong { (r.rating.service) } "." }
                @if let Some(c) = &r.rating.comment { blockquote { (c) } }
            } @else if crate::tickets::progress::may_rate(t.state).is_ok() {
                p.hint { "Not rated yet: the progress page asks the customer." }
            }
            @if can_work {
                form.action method="post" action={"/desk/tickets/" (t.id) "/progress-link"} {
                    input type="hidden" name="csrf" value=(csrf);
                    button #progress-link type="submit" { "Create a progress link" }
                    span.hint { "It opens this ticket's progress page without signing in, until it expires; it is shown once, to send to the customer." }
                }
            }
        }
        section.evidence {
            h2 { "Why this ticket opened" }
            p {
                "Risk " strong { (format!("{:.2}", num("risk").unwrap_or(t.risk))) }
                " against the alarm threshold " (format!("{:.2}", num("threshold").unwrap_or(0.0)))
                ", scored by model " code { (ev.and_then(|e| e["model_version"].as_str()).unwrap_or("?")) } "."
            }
            @if !features.is_empty() {
                table.features {
                    thead { tr { th { "Feature" } th.num { "Value" } th { "Contribution" } } }
                    tbody {
                        @for f in &features {
                            @let c = f["contribution"].as_f64().unwrap_or(0.0);
                            @let name = f["feature"].as_str().unwrap_or("?");
                            @let spec = models::schema::FEATURES.iter().find(|s| s.name == name);
                            tr {
                                td {
                                    @if let Some(spec) = spec { (spec.meaning) br; small { code { (name) } } }
                                    @else { (words(name)) }
                                }
                                td.num { (format!("{:.2} {}", f["value"].as_f64().unwrap_or(0.0), f["unit"].as_str().unwrap_or(""))) }
                                td { (feature_bar(c, max)) small { (format!("{c:+.3}")) } }
                            }
                        }
                    }
                }
            }
            @let safety = list("safety");
            @if !safety.is_empty() {
                h3 { "Safety signals" }
                ul.safety { @for s in &safety { li { (s) } } }
            }
            @let reasoning = list("reasoning");
            @if !reasoning.is_empty() {
                h3 { "What the policy weighed" }
                ul { @for r in &reasoning { li { (r) } } }
            }
        }
        @if let Some(trend) = &d.trend {
            (super::device::charts_section("The device's last 30 days", trend))
        }
        section.log {
            h2 { "History" }
            table {
                thead { tr { th { "When" } th { "What" } th { "Who" } th { "Note" } } }
                tbody {
                    @for e in &d.log {
                        tr {
                            td { (ms_to_text(e.at_ms)) }
                            td { (words(&e.kind)) @if e.kind == "move" { ": " (words(e.from.as_deref().unwrap_or("—"))) " → " (words(&e.to)) } }
                            td { (e.actor) }
                            td { (e.note.as_deref().map(words).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
        p { a href="/desk" { "← Back to the queue" } }
    }
}

async fn ticket(
    State(s): State<DeskState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::ReadTickets).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let csrf = csrf_of(&token);
    let shown = match id.parse::<i64>() {
        Ok(id) => casework::ticket(&s, id).await,
        Err(_) => Err(ApiError::bad(format!("ticket id {id:?} is not a number"))),
    };
    match shown {
        Ok(d) => {
            let now = s.clock.now().0 as i64;
            let title = format!("Ticket {}", d.ticket.ticket_ref);
            page(
                StatusCode::OK,
                &title,
                Some(&user),
                Some(&csrf),
                ticket_page(&user, &csrf, &d, now, None),
            )
        }
        Err(e) => error_page(Some(&user), Some(&csrf), e),
    }
}

/// An action form's fields (all text: browsers send strings).
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    csrf: String,
    version: Option<String>,
    action: String,
    reason: Option<String>,
    text: Option<String>,
    outcome: Option<String>,
    category: Option<String>,
    note: Option<String>,
    user: Option<String>,
}

/// The action a form asks for, or why it is not one.
pub fn action_of(f: &ActionForm) -> Result<Action, String> {
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Ok(match f.action.as_str() {
        "claim" => Action::Claim,
        "start" => Action::Start,
        "resume" => Action::Resume,
        "assign" => Action::Assign {
            user: nonempty(&f.user).ok_or("say whom to assign the ticket to")?,
        },
        "pause" => Action::Pause {
            reason: nonempty(&f.reason)
                .ok_or("a pause needs a reason")?
                .parse()
                .map_err(|e| format!("{e}"))?,
        },
        "note" => Action::Note {
            text: f.text.clone().unwrap_or_default(),
        },
        "resolve" => Action::Resolve {
            outcome: nonempty(&f.outcome)
                .ok_or("choose an outcome")?
                .parse()
                .map_err(|e| format!("{e}"))?,
            category: nonempty(&f.category)
                .map(|c| c.parse::<Problem>().map_err(|e| format!("{e}")))
                .transpose()?,
            note: nonempty(&f.note),
        },
        other => return Err(format!("{other:?} is not an action")),
    })
}

async fn act(
    State(s): State<DeskState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (user, csrf, id) = match working_on(&s, &headers, &id).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let form: Result<Form<ActionForm>, _> = axum::extract::FromRequest::from_request(req, &s).await;
    let Ok(Form(f)) = form else {
        return error_page(
            Some(&user),
            Some(&csrf),
            ApiError::bad("the form could not be read"),
        );
    };
    if f.csrf != csrf {
        return csrf_refused(&user, &csrf, &format!("/desk/tickets/{id}"));
    }
    let done = match (
        action_of(&f),
        f.version.as_deref().map(str::parse::<i64>).transpose(),
    ) {
        (Ok(a), Ok(v)) => casework::act(&s, &user, id, a, v).await,
        (Err(e), _) => Err(ApiError::unprocessable(e)),
        (_, Err(_)) => Err(ApiError::bad("the form's version is not a number")),
    };
    match done {
        // Post/redirect/get: a reload does not repeat the action.
        Ok(_) => Redirect::to(&format!("/desk/tickets/{id}")).into_response(),
        Err(e) => {
            // Show the ticket as it is now, with why the action was refused.
            let notice =
                html! { p.error role="alert" { strong { (e.title()) ": " } (e.detail()) } };
            with_notice(&s, &user, &csrf, id, e.status(), notice).await
        }
    }
}

/// The page a form with a wrong CSRF token gets: 403, nothing changed, a way back.
pub(crate) fn csrf_refused(user: &User, csrf: &str, back: &str) -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Not done",
        Some(user),
        Some(csrf),
        html! {
            p.error { "The form was not sent from this desk (CSRF check failed); nothing was changed." }
            p { a href=(back) { "Back" } }
        },
    )
}

/// Who works on which ticket: a user who may work tickets, their CSRF token and the
/// ticket id from the path, or the page that says why not.
async fn working_on(
    s: &DeskState,
    headers: &HeaderMap,
    raw_id: &str,
) -> Result<(User, String, i64), Response> {
    let (user, token) = signed_in(s, headers, Access::WorkTickets).await?;
    let csrf = csrf_of(&token);
    match raw_id.parse::<i64>() {
        Ok(id) => Ok((user, csrf, id)),
        Err(_) => Err(error_page(
            Some(&user),
            Some(&csrf),
            ApiError::bad(format!("ticket id {raw_id:?} is not a number")),
        )),
    }
}

/// The ticket page as it is now, with `notice` on top, answered with `status`.
async fn with_notice(
    s: &DeskState,
    user: &User,
    csrf: &str,
    id: i64,
    status: StatusCode,
    notice: Markup,
) -> Response {
    match casework::ticket(s, id).await {
        Ok(d) => {
            let now = s.clock.now().0 as i64;
            let title = format!("Ticket {}", d.ticket.ticket_ref);
            let body = ticket_page(user, csrf, &d, now, Some(notice));
            page(status, &title, Some(user), Some(csrf), body)
        }
        Err(e) => error_page(Some(user), Some(csrf), e),
    }
}

/// Issues a progress link and shows it once on the ticket's page.
async fn progress_link(
    State(s): State<DeskState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Option<Form<CsrfForm>>,
) -> Response {
    let (user, csrf, id) = match working_on(&s, &headers, &id).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    if form.is_none_or(|Form(f)| f.csrf != csrf) {
        let notice = html! { p.error role="alert" { "The form was not sent from this desk (CSRF check failed); no link was made." } };
        return with_notice(&s, &user, &csrf, id, StatusCode::FORBIDDEN, notice).await;
    }
    match casework::progress_link(&s, &user, id, &headers).await {
        Ok(link) => {
            let notice = html! {
                div.notice role="status" {
                    "Send this link to the customer; it is shown only now and works until "
                    (ms_to_text(link.expires_ms)) ": "
                    a #customer-link href=(link.path) { (link.url) }
                }
            };
            with_notice(&s, &user, &csrf, id, StatusCode::OK, notice).await
        }
        Err(e) => error_page(Some(&user), Some(&csrf), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(action: &str, fields: &[(&str, &str)]) -> ActionForm {
        let mut f = ActionForm {
            action: action.into(),
            ..ActionForm::default()
        };
        for (k, v) in fields {
            let v = Some(v.to_string());
            match *k {
                "reason" => f.reason = v,
                "text" => f.text = v,
                "outcome" => f.outcome = v,
                "category" => f.category = v,
                "note" => f.note = v,
                "user" => f.user = v,
                other => panic!("{other}"),
            }
        }
        f
    }

    #[test]
    fn forms_become_actions_and_bad_ones_say_why() {
        assert_eq!(action_of(&form("claim", &[])), Ok(Action::Claim));
        assert_eq!(
            action_of(&form(
                "resolve",
                &[("outcome", "repaired"), ("category", ""), ("note", " ")]
            )),
            Ok(Action::Resolve {
                outcome: Outcome::Repaired,
                category: None,
                note: None
            }),
            "empty fields are absent"
        );
        for (f, why) in [
            (form("teleport", &[]), "not an action"),
            (form("pause", &[]), "needs a reason"),
            (form("pause", &[("reason", "lunch")]), "pause reason"),
            (form("resolve", &[]), "choose an outcome"),
            (form("resolve", &[("outcome", "fixed")]), "outcome"),
            (
                form(
                    "resolve",
                    &[("outcome", "repaired"), ("category", "engine")],
                ),
                "problem",
            ),
            (form("assign", &[("user", "  ")]), "whom"),
        ] {
            let e = action_of(&f).unwrap_err();
            assert!(e.contains(why), "{f:?}: {e}");
        }
    }

    #[test]
    fn the_csrf_token_is_the_session_s_and_no_other() {
        assert_eq!(csrf_of("fleet_a"), csrf_of("fleet_a"));
        assert_ne!(csrf_of("fleet_a"), csrf_of("fleet_b"));
        assert!(!csrf_of("fleet_a").contains("fleet_a"));
    }
}
