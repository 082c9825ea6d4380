//! A device's page on the desk (`/desk/devices/:id`): identity, batch, firmware,
//! liveness, sequence gaps, score history, its tickets and the charts of its last 30
//! days; and the charts' section the ticket page shares.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, PreEscaped};

use super::api::{DeskState, DeviceDetail};
use super::auth::Access;
use super::casework;
use super::charts;
use super::pages::{csrf_of, error_page, ms_to_text, page, signed_in, tier_badge, words};
use super::trend::Trend;

/// The device page's router.
pub fn router(state: DeskState) -> Router {
    Router::new()
        .route("/desk/devices/:id", get(device))
        .with_state(state)
}

/// The evidence charts of `t` as a page section, each with its figures in words.
pub fn charts_section(heading: &str, t: &Trend) -> Markup {
    html! {
        section.charts {
            h2 { (heading) }
            p.hint {
                (ms_to_text(t.start_ms() as i64)) " to "
                (ms_to_text((t.start_ms() + t.days.len() as u64 * models::features::DAY_MS - 60_000) as i64))
                ", device time."
                @if t.scored_ms.is_some() { " The red line marks the scoring moment." }
                @if t.unreadable > 0 { " " (t.unreadable) " stored messages could not be read and are left out." }
                @if t.truncated { " The device sent more than these charts read: only its newest " (super::casework::MAX_CHART_MESSAGES) " messages are drawn, so the earliest days are incomplete." }
            }
            @if t.is_empty() {
                p.empty { "No telemetry is stored for these days." }
            }
            div.chart-grid {
                @for c in charts::evidence(t) {
                    figure.chart role="img" aria-label=(c.summary) {
                        (PreEscaped(c.svg))
                        figcaption { (c.summary) }
                    }
                }
            }
        }
    }
}

fn or_unknown(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("unknown")
}

fn device_page(d: &DeviceDetail) -> Markup {
    let c = &d.device;
    html! {
        div.summary {
            div { span.label { "Model" } (or_unknown(&c.model)) }
            div { span.label { "Class" } (or_unknown(&c.device_class)) }
            div { span.label { "Hardware" } (or_unknown(&c.hw_revision)) }
            div { span.label { "Batch" } (or_unknown(&c.batch)) }
            div { span.label { "Firmware" } (or_unknown(&c.firmware)) }
            div { span.label { "Customer" } (or_unknown(&c.customer_id)) }
            @if let Some(p) = c.purchased_ms { div { span.label { "Bought" } (ms_to_text(p as i64)) } }
            @if let Some(w) = c.warranty_until_ms { div { span.label { "Warranty until" } (ms_to_text(w as i64)) } }
        }
        section.liveness {
            h2 { "Liveness" }
            @let online = d.status.as_ref().is_some_and(|s| s.online);
            p {
                span class={"badge " (if online { "sla-on_time" } else { "sla-breached" })} {
                    (if online { "online" } else { "offline" })
                }
                " First seen " (ms_to_text(c.first_seen_ms as i64))
                ", last message " (ms_to_text(c.last_seen_ms as i64)) "."
            }
            @if let Some(s) = &d.status {
                table.facts {
                    tbody {
                        tr { th { "Messages stored" } td.num { (s.stats.count) } }
                        tr { th { "Sequence numbers, this epoch" } td.num { (s.stats.min_seq) "–" (s.stats.max_seq) } }
                        tr { th { "Missing (gaps)" } td.num { strong { (s.missing) } } }
                        tr { th { "Epoch" } td.num { (s.epoch) } }
                        tr { th { "Sequence restarts" } td.num { (s.seq_resets) } }
                    }
                }
                @if s.missing > 0 {
                    p.hint { "Gaps are messages the device numbered but the store has not received: lost, or still in the device's spool." }
                }
            }
        }
        section.scores {
            h2 { "Score history" }
            @match (c.risk, c.scored_ms) {
                (Some(r), Some(at)) => p { "Latest risk " strong { (format!("{r:.2}")) } " at " (ms_to_text(at as i64))
                    ", model " code { (or_unknown(&c.model_version)) } "." },
                _ => p.empty { "Not scored yet." },
            }
            @if !d.scores.is_empty() {
                table.scores {
                    thead { tr { th { "Day" } th.num { "Highest risk" } th.num { "Last risk" } th { "Alarm" } th { "Model" } } }
                    tbody {
                        @for s in d.scores.iter().rev() {
                            tr {
                                td { (ms_to_text(s.day_ms as i64).split(' ').next().unwrap_or_default()) }
                                td.num { (format!("{:.2}", s.risk_max)) }
                                td.num { (format!("{:.2}", s.risk_last)) }
                                td { @if s.alarm { span.badge.sla-breached { "alarm" } } @else { "—" } }
                                td { code { (s.model_version) } }
                            }
                        }
                    }
                }
            }
        }
        section.tickets {
            h2 { "Tickets" }
            @if d.tickets.is_empty() {
                p.empty { "No tickets for this device." }
            } @else {
                table.queue {
                    thead { tr { th { "Ticket" } th { "Opened" } th { "Tier" } th { "Category" } th { "State" } th { "Outcome" } } }
                    tbody {
                        @for t in &d.tickets {
                            tr {
                                td { a href={"/desk/tickets/" (t.id)} { (t.ticket_ref) } }
                                td { (ms_to_text(t.opened_ms)) }
                                td { (tier_badge(t.tier)) }
                                td { (t.problem.as_str()) }
                                td { (words(t.state.as_str())) }
                                td { (t.outcome.as_deref().map(words).unwrap_or_else(|| "—".into())) }
                            }
                        }
                    }
                }
            }
        }
        (charts_section("The last 30 days", &d.trend))
        p { a href="/desk" { "← Back to the queue" } }
    }
}

async fn device(
    State(s): State<DeskState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::ReadTickets).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let csrf = csrf_of(&token);
    match casework::device(&s, &id).await {
        Ok(d) => page(
            StatusCode::OK,
            &format!("Device {}", d.device.device_id),
            Some(&user),
            Some(&csrf),
            device_page(&d),
        ),
        Err(e) => error_page(Some(&user), Some(&csrf), e),
    }
}
