//! The customer's progress page: opened by an unguessable, expiring link without
//! signing in, it shows that one ticket only, like a parcel tracker: why we got in
//! touch, the offer, and the stages with their times. The customer answers the offer
//! there (as the device's acknowledgement would) and, once the case is resolved, rates
//! it. Every form is plain HTML with a CSRF token derived from the link.

use crate::tradein::lifecycle::{Answer as TradeInAnswer, Consent, TradeInState};
use crate::tradein::settlement::format_money;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use serde_json::Value;

use super::api::{ApiError, DeskState};
use super::pages::{csrf_of, head, ms_to_text};
use crate::store::progress::StoredRating;
use crate::store::tickets::QueueItem;
use crate::tickets::progress::{self, Answer, AnswerRefused, Rating, StageView};
use crate::tickets::TicketState;

/// The progress pages' router.
pub fn router(state: DeskState) -> Router {
    Router::new()
        .route("/progress/:token", get(show))
        .route("/progress/:token/answer", post(answer))
        .route("/progress/:token/rating", post(rate))
        .route("/progress/:token/tradein", post(tradein_answer))
        .with_state(state)
}

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                (head(title))
                // The link is the credential: keep it out of referrers and indexes.
                meta name="referrer" content="no-referrer";
                meta name="robots" content="noindex";
            }
            body.customer {
                header.top { span.brand { "Device care" } }
                main.narrow { h1 { (title) } (body) }
            }
        }
    }
}

fn respond(status: StatusCode, title: &str, body: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        layout(title, body).into_string(),
    )
        .into_response()
}

fn not_found() -> Response {
    respond(
        StatusCode::NOT_FOUND,
        "Link not valid",
        html! {
            p.error { "This link is not valid, or it has expired." }
            p { "Ask us for a new one: reply to the message that brought you here." }
        },
    )
}

fn unavailable(e: ApiError) -> Response {
    respond(
        e.status(),
        "Please try again",
        html! { p.error { "We could not load your case just now; nothing was changed. Please try again in a moment." } },
    )
}

/// The ticket a link opens, or the page to answer with.
async fn ticket_of(s: &DeskState, token: &str) -> Result<i64, Response> {
    match s.store.progress_ticket(token, s.clock.now().0).await {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(not_found()),
        Err(e) => Err(unavailable(ApiError::store(e))),
    }
}

/// What the page shows, read from the store.
struct Case {
    ticket: QueueItem,
    stages: Vec<StageView>,
    offer: Option<crate::store::progress::OfferText>,
    noticed: Vec<String>,
    rating: Option<StoredRating>,
    tradein: Option<crate::store::tradeins::TradeIn>,
}

async fn load(s: &DeskState, id: i64) -> Result<Case, ApiError> {
    let store = &s.store;
    let ticket = store
        .queue_item(id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| ApiError::bad("the ticket is gone"))?;
    let log = store.ticket_log(id).await.map_err(ApiError::store)?;
    let moves: Vec<(TicketState, i64)> = log
        .iter()
        .filter(|e| e.kind == "move")
        .filter_map(|e| Some((e.to.parse().ok()?, e.at_ms)))
        .collect();
    let evidence: Option<Value> = store
        .ticket_evidence(id)
        .await
        .map_err(ApiError::store)?
        .and_then(|e| serde_json::from_str(&e).ok());
    Ok(Case {
        stages: progress::stages(ticket.state, &moves, ticket.opened_ms),
        offer: store.offer_text(id).await.map_err(ApiError::store)?,
        noticed: evidence.as_ref().map(noticed).unwrap_or_default(),
        rating: store.ticket_rating(id).await.map_err(ApiError::store)?,
        tradein: store.tradein(id).await.map_err(ApiError::store)?,
        ticket,
    })
}

/// What we saw, in words: the features that raised the risk, by their meaning, and
/// the safety signals.
fn noticed(evidence: &Value) -> Vec<String> {
    let mut out: Vec<String> = evidence["top_features"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["contribution"].as_f64().is_some_and(|c| c > 0.0))
        .filter_map(|f| {
            let name = f["feature"].as_str()?;
            let spec = models::schema::FEATURES.iter().find(|s| s.name == name)?;
            let value = f["value"].as_f64()?;
            // A share reads as a percentage to a customer.
            let (value, unit) = match spec.unit {
                "ratio" => (value * 100.0, "%"),
                unit => (value, unit),
            };
            Some(format!(
                "{} Your device: {} {unit}.",
                spec.meaning,
                trim_number(value),
            ))
        })
        .take(3)
        .collect();
    out.extend(
        evidence["safety"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(|s| format!("Safety: {s}"))),
    );
    out
}

fn trim_number(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

fn case_page(token: &str, c: &Case, notice: Option<Markup>) -> Markup {
    let t = &c.ticket;
    let csrf = csrf_of(token);
    let base = format!("/progress/{token}");
    html! {
        @if let Some(n) = notice { (n) }
        p.hint { "Case " strong { (t.ticket_ref) } " · device " (t.device_id) }
        @if let Some(o) = &c.offer {
            section.offer {
                h2 { (o.title) }
                @for para in o.message.split('\n') { p { (para) } }
                @if let Some(by) = o.respond_by_ms {
                    @if t.state.is_unanswered() { p.hint { "Please answer by " (ms_to_text(by)) "." } }
                }
            }
        }
        @if !c.noticed.is_empty() {
            section {
                h2 { "Why we got in touch" }
                ul.noticed { @for n in &c.noticed { li { (n) } } }
            }
        }
        @if t.state.is_unanswered() {
            section.answer {
                h2 { "Your answer" }
                div.row {
                    form method="post" action={(base) "/answer"} {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="answer" value="accept";
                        button #accept type="submit" { "Yes, please" }
                    }
                    form method="post" action={(base) "/answer"} {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="answer" value="decline";
                        button.secondary #decline type="submit" { "No, thank you" }
                    }
                }
            }
        }
        @if let Some(tr) = c.tradein.as_ref().filter(|tr| tr.state != TradeInState::Quoted) {
            (tradein_section(&base, &csrf, tr))
        }
        section {
            h2 { "Progress" }
            ol.tracker {
                @for st in &c.stages {
                    @let class = if st.current { "stage current" } else if st.at_ms.is_some() { "stage done" } else { "stage" };
                    li class=(class) {
                        span.dot {}
                        span.what { (st.label) }
                        span.when { @if let Some(at) = st.at_ms { (ms_to_text(at)) } @else { "—" } }
                    }
                }
            }
        }
        @if progress::may_rate(t.state).is_ok() {
            section.rating {
                h2 { "How did we do?" }
                @if let Some(r) = &c.rating {
                    p { "Thank you for rating this case on " (ms_to_text(r.rated_ms)) ": result "
                        (r.rating.result) ", speed " (r.rating.speed) ", service " (r.rating.service) "." }
                    @if let Some(comment) = &r.rating.comment { blockquote { (comment) } }
                } @else {
                    form.card method="post" action={(base) "/rating"} {
                        input type="hidden" name="csrf" value=(csrf);
                        (stars("result", "The result"))
                        (stars("speed", "How fast it went"))
                        (stars("service", "How we treated you"))
                        label { span { "Anything else? (optional)" }
                            textarea name="comment" rows="3" maxlength=(progress::MAX_COMMENT_CHARS) {} }
                        button #rate type="submit" { "Send rating" }
                    }
                }
            }
        }
    }
}

/// The trade-in as the customer sees it: where the device is, its grade and the
/// settled price with the reason, and the choice when the price is below the quote.
fn tradein_section(base: &str, csrf: &str, tr: &crate::store::tradeins::TradeIn) -> Markup {
    let quote = format_money(tr.quote_minor.max(0) as u64, &tr.currency);
    let r = &tr.record;
    html! {
        section.tradein #tradein {
            h2 { "Your trade-in" }
            p { "Status: " strong #tradein-state { (tr.state.title()) } " · quoted " (quote) }
            @if let Some(s) = &r.shipping_ref { p.hint { "Shipping reference " (s) } }
            @if let Some(g) = &r.graded {
                p { "Our inspection: functional grade " (g.grade.functional) " ("
                    (g.grade.functional.meaning()) "), appearance " (g.grade.cosmetic) " ("
                    (g.grade.cosmetic.meaning()) ")"
                    @if let Some(b) = g.grade.battery_pct { ", battery " (b) " %" } "." }
            }
            @if r.erasure.is_some() { p { "Your data has been erased; a certificate is on file." } }
            @if let Some(st) = &r.settlement {
                p.price { "Final price: " strong #settled-price { (format_money(st.final_minor, &st.currency)) } }
                @if let Some(why) = &st.reason { p #settle-reason { "Why it differs from the quote: " (why) } }
                @if r.consent == Some(Consent::Pending) && tr.state == TradeInState::Settled {
                    div.row {
                        form method="post" action={(base) "/tradein"} {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="answer" value="accept_price";
                            button #accept-price type="submit" { "Accept " (format_money(st.final_minor, &st.currency)) }
                        }
                        form method="post" action={(base) "/tradein"} {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="answer" value="return_device";
                            button.secondary #return-device type="submit" { "Send my device back" }
                        }
                    }
                }
                @if r.consent == Some(Consent::Accepted) { p.hint { "You accepted this price." } }
            }
            @if tr.state == TradeInState::DeviceReturned { p { "We are sending your device back to you." } }
        }
    }
}

/// The customer's answer to a settled trade-in price.
async fn tradein_answer(
    State(s): State<DeskState>,
    Path(token): Path<String>,
    form: Option<Form<AnswerForm>>,
) -> Response {
    let f = form.map(|Form(f)| f);
    let csrf = f.as_ref().and_then(|f| f.csrf.as_deref());
    let id = match form_ticket(&s, &token, csrf, "answer").await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let answer = match f.and_then(|f| f.answer).as_deref() {
        Some("accept_price") => TradeInAnswer::AcceptPrice,
        Some("return_device") => TradeInAnswer::ReturnDevice,
        other => {
            let why = format!(
                "{:?} is not an answer: accept the price or ask for the device back.",
                other.unwrap_or("")
            );
            return render(
                &s,
                &token,
                id,
                StatusCode::UNPROCESSABLE_ENTITY,
                refused(why),
            )
            .await;
        }
    };
    match super::recycling::customer_answer(&s, id, answer).await {
        Ok(_) => Redirect::to(&format!("/progress/{token}#tradein")).into_response(),
        Err(e) if e.status().is_client_error() => {
            let why = format!("{} Nothing was changed.", e.detail());
            render(&s, &token, id, e.status(), refused(why)).await
        }
        Err(e) => unavailable(e),
    }
}

fn stars(name: &str, legend: &str) -> Markup {
    html! {
        fieldset.stars {
            legend { (legend) }
            @for n in 1..=5u8 {
                label.star {
                    input type="radio" name=(name) value=(n) required;
                    span { (n) }
                }
            }
            span.hint { "1 poor · 5 excellent" }
        }
    }
}

async fn render(
    s: &DeskState,
    token: &str,
    id: i64,
    status: StatusCode,
    notice: Option<Markup>,
) -> Response {
    match load(s, id).await {
        Ok(c) => respond(status, "Your service case", case_page(token, &c, notice)),
        Err(e) => unavailable(e),
    }
}

async fn show(State(s): State<DeskState>, Path(token): Path<String>) -> Response {
    let id = match ticket_of(&s, &token).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    render(&s, &token, id, StatusCode::OK, None).await
}

/// The answer form's fields (absent ones are refused with a message, not by the parser).
#[derive(Debug, Deserialize)]
struct AnswerForm {
    csrf: Option<String>,
    answer: Option<String>,
}

/// The ticket of a form posted to a link's page, once its CSRF token is the link's;
/// otherwise the page that says nothing was changed.
async fn form_ticket(
    s: &DeskState,
    token: &str,
    csrf: Option<&str>,
    what: &str,
) -> Result<i64, Response> {
    let id = ticket_of(s, token).await?;
    if csrf != Some(csrf_of(token).as_str()) {
        let why = format!(
            "Your {what} could not be accepted (the form did not come from this page); nothing was changed."
        );
        return Err(render(s, token, id, StatusCode::FORBIDDEN, refused(why)).await);
    }
    Ok(id)
}

fn refused(text: String) -> Option<Markup> {
    Some(html! { p.error role="alert" { (text) } })
}

async fn answer(
    State(s): State<DeskState>,
    Path(token): Path<String>,
    form: Option<Form<AnswerForm>>,
) -> Response {
    let f = form.map(|Form(f)| f);
    let csrf = f.as_ref().and_then(|f| f.csrf.as_deref());
    let id = match form_ticket(&s, &token, csrf, "answer").await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let answer = match f.and_then(|f| f.answer).as_deref() {
        Some("accept") => Answer::Accept,
        Some("decline") => Answer::Decline,
        other => {
            let why = match other {
                Some(a) => format!("{a:?} is not an answer: choose yes or no."),
                None => "Choose yes or no.".to_owned(),
            };
            return render(
                &s,
                &token,
                id,
                StatusCode::UNPROCESSABLE_ENTITY,
                refused(why),
            )
            .await;
        }
    };
    match s.store.customer_answer(id, answer, s.clock.now().0).await {
        Ok(Ok(_)) => Redirect::to(&format!("/progress/{token}")).into_response(),
        Ok(Err(AnswerRefused::AlreadyAnswered(state))) => {
            let why = format!(
                "This offer was answered already; nothing was changed. The case is now: {}.",
                state.as_str().replace('_', " ")
            );
            render(&s, &token, id, StatusCode::CONFLICT, refused(why)).await
        }
        Err(e) => unavailable(ApiError::store(e)),
    }
}

/// The rating form's fields (text: browsers send strings).
#[derive(Debug, Default, Deserialize)]
struct RatingForm {
    csrf: Option<String>,
    result: Option<String>,
    speed: Option<String>,
    service: Option<String>,
    comment: Option<String>,
}

async fn rate(
    State(s): State<DeskState>,
    Path(token): Path<String>,
    form: Option<Form<RatingForm>>,
) -> Response {
    let f = form.map(|Form(f)| f).unwrap_or_default();
    let id = match form_ticket(&s, &token, f.csrf.as_deref(), "rating").await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let rating = match Rating::from_fields(
        f.result.as_deref(),
        f.speed.as_deref(),
        f.service.as_deref(),
        f.comment.as_deref(),
    ) {
        Ok(r) => r,
        Err(e) => {
            return render(
                &s,
                &token,
                id,
                StatusCode::UNPROCESSABLE_ENTITY,
                refused(e.to_string()),
            )
            .await
        }
    };
    match s.store.rate_ticket(id, &rating, s.clock.now().0).await {
        Ok(Ok(())) => Redirect::to(&format!("/progress/{token}")).into_response(),
        Ok(Err(e)) => render(&s, &token, id, StatusCode::CONFLICT, refused(e.to_string())).await,
        Err(e) => unavailable(ApiError::store(e)),
    }
}
