//! The recycling desk's pages: the queues per state with counts and ages and the
//! period's totals, and a trade-in's record (its telemetry condition at quote time
//! beside the bench grade, erasure, settlement, routing, log) with the form for its next
//! step. Plain forms, so they work without JavaScript; they call the same casework as
//! the API.

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use protocol::command::Money;
use serde::Deserialize;

use super::api::{certificate_response, ApiError, DeskState};
use super::auth::{Access, User};
use super::pages::{csrf_of, csrf_refused, error_page, ms_to_text, page, signed_in};
use super::recycling::{self, DeskTotals, TradeInDetail, TradeInList};
use crate::store::tradeins::TradeIn;
use crate::tradein::erasure::Method;
use crate::tradein::grading::{Cosmetic, Functional};
use crate::tradein::lifecycle::{Action, Consent, TradeInState};
use crate::tradein::routing::Route;
use crate::tradein::settlement::format_money;

/// The recycling desk's pages.
pub fn router(state: DeskState) -> Router {
    Router::new()
        .route("/desk/tradeins", get(queue))
        .route("/desk/tradeins/:id", get(record))
        .route("/desk/tradeins/:id/actions", post(act))
        .route("/desk/tradeins/:id/certificate", get(certificate))
        .route("/desk/skus", post(set_sku))
        .with_state(state)
}

/// Which queue and period.
#[derive(Debug, Default, Deserialize)]
struct QueueQuery {
    state: Option<String>,
    period: Option<String>,
    page: Option<u32>,
}

fn state_badge(s: TradeInState) -> Markup {
    html! { span class={"badge tradein-" (s.as_str())} { (s.title()) } }
}

fn money(minor: i64, currency: &str) -> String {
    format_money(minor.max(0) as u64, currency)
}

fn labels_of(t: &TradeIn) -> String {
    t.record
        .graded
        .as_ref()
        .map(|g| {
            g.labels
                .iter()
                .filter_map(|l| l.label.clone())
                .collect::<Vec<_>>()
                .join(" · ")
        })
        .unwrap_or_default()
}

/// How long something has waited: "under a minute", "40 min", "5 h", "3 d".
fn age_text(ms: i64) -> String {
    let min = ms.max(0) / 60_000;
    match min {
        0 => "under a minute".into(),
        1..=59 => format!("{min} min"),
        60..=2879 => format!("{} h", min / 60),
        _ => format!("{} d", min / 1440),
    }
}

/// The current month, `2026-11`.
fn this_month(now_ms: u64) -> String {
    crate::tradein::routing::period_of(now_ms, crate::tradein::routing::Period::Month)
}

async fn queue(
    State(s): State<DeskState>,
    headers: HeaderMap,
    q: Result<Query<QueueQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::ReadTradeIns).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let csrf = csrf_of(&token);
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return error_page(Some(&user), Some(&csrf), ApiError::bad(e.body_text())),
    };
    let now = s.clock.now().0;
    let period = q
        .period
        .clone()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| this_month(now));
    let list = match recycling::list(&s, q.state.as_deref(), q.page, None).await {
        Ok(l) => l,
        Err(e) => return error_page(Some(&user), Some(&csrf), e),
    };
    let totals = match recycling::desk_totals(&s, Some(&period), None).await {
        Ok(t) => t,
        Err(e) => return error_page(Some(&user), Some(&csrf), e),
    };
    let skus = match s.store.skus().await {
        Ok(k) => k,
        Err(e) => return error_page(Some(&user), Some(&csrf), ApiError::store(e)),
    };
    let works = user.role.may(Access::WorkTradeIns);
    page(
        StatusCode::OK,
        "Recycling desk",
        Some(&user),
        Some(&csrf),
        html! {
            (queue_tiles(&list, now as i64))
            (queue_table(&list, now as i64))
            (totals_section(&totals, &period))
            section.card #skus {
                h2 { "SKU weights" }
                p.hint { "Kilograms diverted are counted from each model's weight." }
                @if skus.is_empty() { p.empty { "No SKU has a weight yet." } }
                @else {
                    table.facts { tbody { @for k in &skus { tr { th { (k.model) } td.num { (k.weight_g) " g" } } } } }
                }
                @if works {
                    form.inline method="post" action="/desk/skus" {
                        input type="hidden" name="csrf" value=(csrf);
                        label { span { "Model" } input #sku-model type="text" name="model" required; }
                        label { span { "Weight, g" } input #sku-weight type="number" name="weight_g" required; }
                        button #set-weight type="submit" { "Set weight" }
                    }
                }
            }
        },
    )
}

fn queue_tiles(list: &TradeInList, now: i64) -> Markup {
    html! {
        nav.tiles aria-label="Trade-ins by state" {
            a.tile href="/desk/tradeins" { span.n { (list.counts.iter().filter(|c| !c.state.is_final()).map(|c| c.count).sum::<u64>()) } span { "open" } }
            @for c in list.counts.iter().filter(|c| c.count > 0 || !c.state.is_final()) {
                a class={"tile state-" (c.state.as_str())} href={"/desk/tradeins?state=" (c.state.as_str())}
                    aria-current=[(list.state == Some(c.state)).then_some("page")] {
                    span.n { (c.count) }
                    span { (c.state.title()) }
                    @if let (Some(since), false) = (c.oldest_since_ms, c.state.is_final()) {
                        small { "oldest " (age_text(now - since)) }
                    }
                }
            }
        }
    }
}

fn queue_table(list: &TradeInList, now: i64) -> Markup {
    html! {
        h2 { @match list.state { Some(s) => { (s.title()) }, None => { "Open trade-ins" } } }
        p.count { (list.total) " matching, page " (list.page + 1) }
        @if list.items.is_empty() {
            p.empty { "No trade-ins here." }
        } @else {
            table.queue #tradeins {
                thead { tr { th { "Trade-in" } th { "Device" } th { "State" } th { "Waiting" } th.num { "Quote" } th { "Labels" } } }
                tbody {
                    @for i in &list.items {
                        @let t = &i.tradein;
                        tr {
                            td { a href={"/desk/tradeins/" (t.id)} { (t.ticket_ref) } }
                            td { (t.device_id) br; small { (t.model.as_deref().unwrap_or("unknown model")) } }
                            td { (state_badge(t.state)) }
                            td { (age_text(now - t.state_since_ms)) }
                            td.num { (money(t.quote_minor, &t.currency)) }
                            td { (labels_of(t)) }
                        }
                    }
                }
            }
        }
    }
}

fn totals_section(d: &DeskTotals, period: &str) -> Markup {
    let t = &d.totals;
    html! {
        section.card #totals {
            h2 { "Totals for " (period) }
            form.filters method="get" action="/desk/tradeins" {
                label { span { "Period" } input type="text" name="period" value=(period) placeholder="2026-11 or 2026-W48"; }
                button type="submit" { "Show" }
            }
            div.tiles {
                div.tile { span.n #t-received { (t.received) } span { "received" } }
                div.tile { span.n #t-graded { (t.graded) } span { "graded" } }
                div.tile { span.n #t-refurbished { (t.refurbished) } span { "refurbished" } }
                div.tile { span.n #t-recycled { (t.recycled) } span { "recycled" } }
                div.tile { span.n #t-kg { (format!("{:.2}", t.ewaste_kg)) } span { "kg e-waste diverted" } }
            }
            @for m in &t.quote_vs_settled {
                p { "Average quote " (format_money(m.mean_quote_minor, &m.currency)) ", settled "
                    (format_money(m.mean_settled_minor, &m.currency)) " (" (format!("{:.0}", m.mean_ratio * 100.0))
                    " % of the quote, " (m.settled) " settled)" }
            }
            @if !d.diverted.is_empty() {
                table #diverted {
                    thead { tr { th { "Period" } th { "Model" } th { "Route" } th.num { "Devices" } th.num { "kg" } } }
                    tbody { @for c in &d.diverted { tr { td { (c.period) } td { (c.model) } td { (c.route) } td.num { (c.devices) } td.num { (format!("{:.2}", c.kg)) } } } }
                }
            }
        }
    }
}

fn id_of(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .map_err(|_| ApiError::bad(format!("trade-in id {raw:?} is not a number")))
}

async fn record(
    State(s): State<DeskState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::ReadTradeIns).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let csrf = csrf_of(&token);
    let shown = match id_of(&id) {
        Ok(id) => recycling::detail(&s, id).await,
        Err(e) => Err(e),
    };
    match shown {
        Ok(d) => record_page(&s, &user, &csrf, &d, StatusCode::OK, None),
        Err(e) => error_page(Some(&user), Some(&csrf), e),
    }
}

fn record_page(
    s: &DeskState,
    user: &User,
    csrf: &str,
    d: &TradeInDetail,
    status: StatusCode,
    notice: Option<Markup>,
) -> Response {
    let now = s.clock.now().0 as i64;
    let t = &d.tradein;
    let title = format!("Trade-in {}", t.ticket_ref);
    let works = user.role.may(Access::WorkTradeIns);
    let body = html! {
        @if let Some(n) = notice { (n) }
        p.lead {
            (state_badge(t.state)) " for " (age_text(now - t.state_since_ms)) " · device "
            a href={"/desk/devices/" (t.device_id)} { (t.device_id) } " · "
            (t.model.as_deref().unwrap_or("unknown model")) " · quote " strong #quote { (money(t.quote_minor, &t.currency)) }
            " · ticket " a href={"/desk/tickets/" (t.id)} { (t.ticket_state) }
        }
        div.chart-grid {
            section.card #at-quote {
                h2 { "Condition at quote (telemetry)" }
                table.facts { tbody {
                    tr { th { "Battery health" } td { @match t.quoted_soh { Some(v) => { (format!("{v:.0} %")) }, None => { @if t.has_battery { "not reported" } @else { "no battery" } } } } }
                    @if let Some(r) = d.at_quote.risk { tr { th { "Risk when quoted" } td { (format!("{:.0} %", r * 100.0)) } } }
                } }
                ul { @for line in &d.at_quote.reasoning { li { (line) } } }
            }
            section.card #bench {
                h2 { "Bench grade" }
                @if let Some(g) = &t.record.graded {
                    table.facts { tbody {
                        tr { th { "Functional" } td { (g.grade.functional) " — " (g.grade.functional.meaning()) } }
                        tr { th { "Cosmetic" } td { (g.grade.cosmetic) " — " (g.grade.cosmetic.meaning()) } }
                        tr { th { "Battery health" } td {
                            @match g.grade.battery_pct { Some(b) => { (b) " %" }, None => { "no battery" } }
                            @if let Some(gap) = &g.battery_gap {
                                @if gap.flagged { " " span.badge.flag #battery-gap { (format!("{:+.0} points against telemetry", gap.gap_pts)) } }
                                @else { " " small { (format!("{:+.0} points against telemetry", gap.gap_pts)) } }
                            }
                        } }
                        tr { th { "Activation lock" } td { @if g.grade.activation_lock_off { "off" } @else { span.badge.flag { "ON" } } } }
                        @for l in &g.labels {
                            tr { th { @match l.family { crate::tradein::grading::LabelFamily::Grade => "Resale grade", crate::tradein::grading::LabelFamily::Newness => "Newness" } }
                                td { strong.label { (l.label.as_deref().unwrap_or("none")) } br; small.rule { (l.rule) } } }
                        }
                        tr { th { "Route by the rules" } td { (g.route) br; small { (g.route_rule) } } }
                        tr { th { "Graded by" } td { (g.by) ", " (ms_to_text(g.at_ms as i64)) } }
                    } }
                } @else {
                    p.empty { "Not graded yet." }
                }
            }
        }
        @if let Some(e) = &t.record.erasure {
            section.card #erasure {
                h2 { "Data erasure" }
                p { (e.method.as_str()) " (NIST SP 800-88) with " (e.tool) " by " (e.operator) ", " (ms_to_text(e.at_ms as i64))
                    " · certificate " (e.certificate_id) " · "
                    a #certificate href={"/desk/tradeins/" (t.id) "/certificate"} download { "Download certificate" } }
            }
        }
        @if let Some(st) = &t.record.settlement {
            section.card #settlement {
                h2 { "Settlement" }
                p { "Quote " (format_money(st.quote_minor, &st.currency)) " → final " strong #final { (format_money(st.final_minor, &st.currency)) }
                    @if st.by_hand { " (set by hand)" } }
                @if let Some(why) = &st.reason { p #reason { "Why: " (why) } }
                p.hint { @match t.record.consent {
                    Some(Consent::Pending) => "Waiting for the customer to accept the price on their progress page.",
                    Some(Consent::Accepted) => "The customer accepted the price.",
                    _ => "At or above the quote: no answer needed.",
                } }
            }
        } @else if let Some(p) = &d.rules_price {
            section.card #rules-price {
                h2 { "Price by the rules" }
                p { (format_money(p.final_minor, &p.currency)) @if let Some(why) = &p.reason { " — " (why) } }
            }
        }
        @if let Some(r) = &t.record.routing {
            section.card #routing {
                h2 { "Routing" }
                p { "To " strong { (r.route) } " by " (r.by) ", " (ms_to_text(r.at_ms as i64)) " · " (r.weight_g) " g"
                    @if r.route != r.ruled { " (the rules said " (r.ruled) ")" } }
            }
        }
        @if works { (next_step_form(d, csrf)) }
        section {
            h2 { "Log" }
            table #log {
                thead { tr { th { "When" } th { "Step" } th { "State" } th { "Who" } th { "Note" } } }
                tbody { @for e in &d.log { tr {
                    td { (ms_to_text(e.at_ms)) } td { (e.kind) } td { (e.to.replace('_', " ")) } td { (e.actor) } td { (e.note.as_deref().unwrap_or("")) }
                } } }
            }
        }
    };
    page(status, &title, Some(user), Some(csrf), body)
}

/// The form for the trade-in's next step, by its state.
fn next_step_form(d: &TradeInDetail, csrf: &str) -> Markup {
    let t = &d.tradein;
    let action = format!("/desk/tradeins/{}/actions", t.id);
    let hidden = |name: &str| {
        html! {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="version" value=(t.version);
            input type="hidden" name="action" value=(name);
        }
    };
    let cancel = html! {
        form.action method="post" action=(action) {
            (hidden("cancel"))
            label { span { "Reason to cancel" } input type="text" name="reason" maxlength="500"; }
            button.secondary #cancel type="submit" { "Cancel trade-in" }
        }
    };
    html! {
        section.actions #next-step {
            h2 { "Next step" }
            @match t.state {
                TradeInState::Accepted => {
                    form.action method="post" action=(action) {
                        (hidden("ship"))
                        label { span { "Shipping reference" } input #shipping-ref type="text" name="shipping_ref" required; }
                        button #ship type="submit" { "Shipping label sent" }
                    }
                    (cancel)
                },
                TradeInState::AwaitingDevice => {
                    form.action method="post" action=(action) { (hidden("receive")) button #receive type="submit" { "Device received" } }
                    (cancel)
                },
                TradeInState::Received => {
                    form.action #grade-form method="post" action=(action) {
                        (hidden("grade"))
                        label { span { "Functional grade" }
                            select #functional name="functional" required {
                                @for n in 0..=9u8 { @let f = Functional::new(n).expect("0-9"); option value=(n) { (n) " — " (f.meaning()) } }
                            } }
                        label { span { "Cosmetic grade" }
                            select #cosmetic name="cosmetic" required {
                                @for c in Cosmetic::ALL { option value=(c.as_str()) { (c.as_str()) " — " (c.meaning()) } }
                            } }
                        @if t.has_battery {
                            label { span { "Battery health on the bench, %" } input #battery type="number" name="battery_pct" min="0" max="100" required; }
                        }
                        label.check { input #lock-off type="checkbox" name="activation_lock_off" value="on"; span { "Activation lock is off" } }
                        button #grade type="submit" { "Record grade" }
                    }
                },
                TradeInState::Graded => {
                    form.action method="post" action=(action) {
                        (hidden("erase"))
                        label { span { "Method (NIST SP 800-88)" }
                            select #method name="method" { option value="purge" { "Purge" } option value="clear" { "Clear" } } }
                        label { span { "Tool and version" } input #tool type="text" name="tool" required; }
                        label { span { "Certificate id" } input #certificate-id type="text" name="certificate_id" required; }
                        button #erase type="submit" { "Record erasure" }
                    }
                },
                TradeInState::Erased => {
                    form.action method="post" action=(action) {
                        (hidden("settle"))
                        @if let Some(p) = &d.rules_price {
                            p { "The rules give " strong { (format_money(p.final_minor, &p.currency)) } @if let Some(why) = &p.reason { " (" (why) ")" } "." }
                        }
                        label { span { "Price by hand, " (t.currency) " (optional)" } input #price type="text" name="price" inputmode="decimal" placeholder="250.00"; }
                        input type="hidden" name="currency" value=(t.currency);
                        label { span { "Reason for a price by hand" } input #settle-reason type="text" name="reason"; }
                        button #settle type="submit" { "Settle" }
                    }
                },
                TradeInState::Settled => {
                    @if t.record.consent == Some(Consent::Pending) {
                        p.hint #waiting { "Routing waits until the customer accepts the price (or asks for the device back)." }
                    } @else {
                        form.action method="post" action=(action) {
                            (hidden("route"))
                            @let ruled = t.record.graded.as_ref().map_or(Route::Recycle, |g| g.route);
                            label { span { "Route" }
                                select #route name="route" {
                                    @for r in Route::ALL { @if crate::tradein::routing::may_choose(ruled, r) {
                                        option value=(r.as_str()) selected[r == ruled] { (r) @if r == ruled { " (by the rules)" } }
                                    } }
                                } }
                            @if d.weight_g.is_none() { p.error { "This model has no weight yet: set it under SKU weights on the recycling desk first." } }
                            button #route-it type="submit" { "Route" }
                        }
                    }
                },
                TradeInState::Refurbish | TradeInState::Recycle => {
                    form.action method="post" action=(action) { (hidden("close")) button #close type="submit" { "Device left the desk: close" } }
                },
                TradeInState::Quoted => { p.hint { "Waiting for the customer to accept the quote." } },
                _ => { p.hint { "Finished." } },
            }
        }
    }
}

/// A step form's fields (text: browsers send strings).
#[derive(Debug, Default, Deserialize)]
pub struct StepForm {
    csrf: String,
    version: Option<String>,
    action: String,
    shipping_ref: Option<String>,
    functional: Option<String>,
    cosmetic: Option<String>,
    battery_pct: Option<String>,
    activation_lock_off: Option<String>,
    method: Option<String>,
    tool: Option<String>,
    certificate_id: Option<String>,
    price: Option<String>,
    currency: Option<String>,
    reason: Option<String>,
    route: Option<String>,
}

/// An amount typed by a person, "250", "250.5" or "250.50", in minor units.
pub fn minor_of(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let bad = || format!("{t:?} is not an amount such as 250.00");
    let (units, cents) = t.split_once('.').unwrap_or((t, ""));
    if units.is_empty()
        || !units.bytes().all(|b| b.is_ascii_digit())
        || cents.len() > 2
        || !cents.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let units: u64 = units.parse().map_err(|_| bad())?;
    let cents: u64 = format!("{cents:0<2}").parse().map_err(|_| bad())?;
    units
        .checked_mul(100)
        .and_then(|u| u.checked_add(cents))
        .ok_or_else(bad)
}

/// The action a step form asks for, or why it is not one.
pub fn action_of(f: &StepForm) -> Result<Action, String> {
    let text = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Ok(match f.action.as_str() {
        "ship" => Action::Ship {
            shipping_ref: text(&f.shipping_ref).ok_or("give the shipping reference")?,
        },
        "receive" => Action::Receive,
        "grade" => Action::Grade {
            functional: text(&f.functional)
                .ok_or("choose a functional grade")?
                .parse()
                .map_err(|e| format!("{e}"))?,
            cosmetic: text(&f.cosmetic)
                .ok_or("choose a cosmetic grade")?
                .parse()
                .map_err(|e| format!("{e}"))?,
            battery_pct: text(&f.battery_pct)
                .map(|b| {
                    b.parse::<i64>()
                        .map_err(|_| format!("battery health {b:?} is not a whole number"))
                })
                .transpose()?,
            activation_lock_off: f.activation_lock_off.as_deref() == Some("on"),
        },
        "erase" => Action::Erase {
            method: text(&f.method)
                .ok_or("choose a method")?
                .parse::<Method>()
                .map_err(|e| format!("{e}"))?,
            tool: text(&f.tool).ok_or("name the erasure tool")?,
            certificate_id: text(&f.certificate_id).ok_or("give the certificate id")?,
        },
        "settle" => Action::Settle {
            price: text(&f.price)
                .map(|p| {
                    Ok::<_, String>(Money {
                        amount_minor: minor_of(&p)?,
                        currency: text(&f.currency).ok_or("the price needs its currency")?,
                    })
                })
                .transpose()?,
            reason: text(&f.reason),
        },
        "route" => Action::Route {
            route: text(&f.route)
                .map(|r| r.parse::<Route>().map_err(|e| format!("{e}")))
                .transpose()?,
        },
        "close" => Action::Close,
        "cancel" => Action::Cancel {
            reason: f.reason.clone().unwrap_or_default(),
        },
        other => return Err(format!("{other:?} is not a trade-in step")),
    })
}

async fn act(
    State(s): State<DeskState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    req: Request,
) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::WorkTradeIns).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let csrf = csrf_of(&token);
    let id = match id_of(&raw) {
        Ok(id) => id,
        Err(e) => return error_page(Some(&user), Some(&csrf), e),
    };
    let form: Result<Form<StepForm>, _> = axum::extract::FromRequest::from_request(req, &s).await;
    let Ok(Form(f)) = form else {
        return error_page(
            Some(&user),
            Some(&csrf),
            ApiError::bad("the form could not be read"),
        );
    };
    if f.csrf != csrf {
        return csrf_refused(&user, &csrf, &format!("/desk/tradeins/{id}"));
    }
    let done = match (
        action_of(&f),
        f.version.as_deref().map(str::parse::<i64>).transpose(),
    ) {
        (Ok(a), Ok(v)) => recycling::act(&s, &user, id, a, v).await,
        (Err(e), _) => Err(ApiError::unprocessable(e)),
        (_, Err(_)) => Err(ApiError::bad("the form's version is not a number")),
    };
    match done {
        Ok(_) => Redirect::to(&format!("/desk/tradeins/{id}")).into_response(),
        Err(e) => match recycling::detail(&s, id).await {
            Ok(d) => {
                let notice =
                    html! { p.error role="alert" { strong { (e.title()) ": " } (e.detail()) } };
                record_page(&s, &user, &csrf, &d, e.status(), Some(notice))
            }
            Err(_) => error_page(Some(&user), Some(&csrf), e),
        },
    }
}

async fn certificate(
    State(s): State<DeskState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::ReadTradeIns).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let shown = match id_of(&raw) {
        Ok(id) => recycling::certificate(&s, id).await,
        Err(e) => Err(e),
    };
    match shown {
        Ok((name, text)) => certificate_response(&name, text),
        Err(e) => error_page(Some(&user), Some(&csrf_of(&token)), e),
    }
}

/// The SKU weight form's fields.
#[derive(Debug, Deserialize)]
struct SkuForm {
    csrf: String,
    model: String,
    weight_g: String,
}

async fn set_sku(
    State(s): State<DeskState>,
    headers: HeaderMap,
    form: Option<Form<SkuForm>>,
) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::WorkTradeIns).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let csrf = csrf_of(&token);
    let Some(Form(f)) = form else {
        return error_page(
            Some(&user),
            Some(&csrf),
            ApiError::bad("the form could not be read"),
        );
    };
    if f.csrf != csrf {
        return csrf_refused(&user, &csrf, "/desk/tradeins");
    }
    let grams = match f.weight_g.trim().parse::<i64>() {
        Ok(g) => g,
        Err(_) => {
            return error_page(
                Some(&user),
                Some(&csrf),
                ApiError::unprocessable(format!(
                    "weight {:?} is not a whole number of grams",
                    f.weight_g
                )),
            )
        }
    };
    match recycling::set_sku(&s, &user, &f.model, grams).await {
        Ok(_) => Redirect::to("/desk/tradeins#skus").into_response(),
        Err(e) => error_page(Some(&user), Some(&csrf), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(action: &str, fields: &[(&str, &str)]) -> StepForm {
        let mut f = StepForm {
            csrf: "c".into(),
            action: action.into(),
            ..StepForm::default()
        };
        for (k, v) in fields {
            let v = Some(v.to_string());
            match *k {
                "shipping_ref" => f.shipping_ref = v,
                "functional" => f.functional = v,
                "cosmetic" => f.cosmetic = v,
                "battery_pct" => f.battery_pct = v,
                "activation_lock_off" => f.activation_lock_off = v,
                "method" => f.method = v,
                "tool" => f.tool = v,
                "certificate_id" => f.certificate_id = v,
                "price" => f.price = v,
                "currency" => f.currency = v,
                "reason" => f.reason = v,
                "route" => f.route = v,
                other => panic!("{other}"),
            }
        }
        f
    }

    #[test]
    fn step_forms_become_actions_and_bad_ones_say_why() {
        let g = action_of(&form(
            "grade",
            &[
                ("functional", "1"),
                ("cosmetic", "C"),
                ("battery_pct", "82"),
                ("activation_lock_off", "on"),
            ],
        ))
        .unwrap();
        assert_eq!(
            g,
            Action::Grade {
                functional: Functional::new(1).unwrap(),
                cosmetic: Cosmetic::C,
                battery_pct: Some(82),
                activation_lock_off: true
            }
        );
        let locked = action_of(&form("grade", &[("functional", "0"), ("cosmetic", "A")])).unwrap();
        assert!(matches!(
            locked,
            Action::Grade {
                activation_lock_off: false,
                battery_pct: None,
                ..
            }
        ));
        let s = action_of(&form(
            "settle",
            &[
                ("price", "249.5"),
                ("currency", "EUR"),
                ("reason", "charger missing"),
            ],
        ))
        .unwrap();
        assert!(matches!(
            s,
            Action::Settle {
                price: Some(Money {
                    amount_minor: 24_950,
                    ..
                }),
                ..
            }
        ));
        assert!(matches!(
            action_of(&form("settle", &[])).unwrap(),
            Action::Settle { price: None, .. }
        ));
        for (action, fields, says) in [
            (
                "grade",
                vec![("functional", "10"), ("cosmetic", "A")],
                "0 to 9",
            ),
            (
                "grade",
                vec![("functional", "1"), ("cosmetic", "F")],
                "cosmetic",
            ),
            (
                "grade",
                vec![
                    ("functional", "1"),
                    ("cosmetic", "A"),
                    ("battery_pct", "8o"),
                ],
                "whole number",
            ),
            ("grade", vec![("cosmetic", "A")], "functional"),
            (
                "erase",
                vec![
                    ("method", "shred"),
                    ("tool", "t"),
                    ("certificate_id", "C-1"),
                ],
                "erasure method",
            ),
            (
                "erase",
                vec![("method", "purge"), ("tool", "t")],
                "certificate id",
            ),
            (
                "settle",
                vec![("price", "-5"), ("currency", "EUR")],
                "not an amount",
            ),
            (
                "settle",
                vec![("price", "2.505"), ("currency", "EUR")],
                "not an amount",
            ),
            ("route", vec![("route", "landfill")], "route"),
            ("ship", vec![], "shipping reference"),
            ("teleport", vec![], "not a trade-in step"),
        ] {
            let e = action_of(&form(action, &fields)).unwrap_err();
            assert!(e.contains(says), "{action} {fields:?}: {e}");
        }
    }

    #[test]
    fn waits_read_in_the_largest_whole_unit() {
        let m = 60_000;
        for (ms, want) in [
            (0, "under a minute"),
            (-5, "under a minute"),
            (59 * m, "59 min"),
            (60 * m, "1 h"),
            (47 * 60 * m, "47 h"),
            (48 * 60 * m, "2 d"),
        ] {
            assert_eq!(age_text(ms), want);
        }
    }

    #[test]
    fn amounts_are_read_in_minor_units() {
        for (t, want) in [
            ("250", 25_000),
            ("250.5", 25_050),
            ("250.05", 25_005),
            (" 0.99 ", 99),
        ] {
            assert_eq!(minor_of(t), Ok(want), "{t}");
        }
        for bad in [
            "",
            ".5",
            "1,50",
            "1.234",
            "abc",
            "-1",
            "99999999999999999999",
        ] {
            assert!(minor_of(bad).is_err(), "{bad}");
        }
    }
}
