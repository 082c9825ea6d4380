//! The analysts' pages: the cohort watch (flags with their evidence, the cohorts that
//! stand out most, firmware against its predecessor), the campaigns with their progress,
//! and a campaign's page with its decision form and members. Plain forms, so they work
//! without JavaScript; they call the same store as the API.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{html, Markup};
use serde::Deserialize;

use super::api::{ApiError, DeskState};
use super::auth::{Access, User};
use super::fleet::{not_found, parse_id};
use super::pages::{csrf_of, csrf_refused, error_page, ms_to_text, page, signed_in};
use crate::campaigns::{CampaignState, Verdict};
use crate::cohorts::table::Cell;
use crate::cohorts::watch::{self, WatchReport};
use crate::store::campaigns::{Campaign, Member};
use crate::store::cohorts::FlagRecord;
use crate::tradein::settlement::format_money;

/// The analysts' pages.
pub fn router(state: DeskState) -> Router {
    Router::new()
        .route("/desk/fleet", get(fleet))
        .route("/desk/fleet/run", post(run))
        .route("/desk/fleet/flags/:id/:what", post(flag_action))
        .route("/desk/campaigns/:id", get(campaign_page))
        .route("/desk/campaigns/:id/decision", post(decision))
        .with_state(state)
}

/// Cells shown per table: the ones that stand out most.
const TOP: usize = 15;

fn q_text(q: f64) -> String {
    if q < 0.001 {
        format!("{q:.1e}")
    } else {
        format!("{q:.3}")
    }
}

fn costs(map: &std::collections::BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(c, m)| format_money(*m, c))
        .collect::<Vec<_>>()
        .join(" + ")
}

fn state_badge(s: CampaignState) -> Markup {
    html! { span class={"badge campaign-" (s.as_str())} { (s.as_str().replace('_', " ")) } }
}

async fn fleet(State(s): State<DeskState>, headers: HeaderMap) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::ReadAll).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let csrf = csrf_of(&token);
    let loaded = async {
        let facts = s.store.fleet_facts().await?;
        let flags = s.store.cohort_flags(None).await?;
        let campaigns = s.store.campaigns(&s.policy.repair_cost_minor).await?;
        Ok::<_, crate::store::StoreError>((facts, flags, campaigns))
    };
    let (facts, flags, campaigns) = match loaded.await {
        Ok(v) => v,
        Err(e) => return error_page(Some(&user), Some(&csrf), ApiError::store(e)),
    };
    let report = watch::run(&facts, &s.watch.config, s.clock.now().0);
    let works = user.role.may(Access::WorkFleet);
    page(
        StatusCode::OK,
        "Fleet",
        Some(&user),
        Some(&csrf),
        html! {
            p.hint {
                (report.tests) " cohort cells and firmware comparisons tested against the rest of the fleet at the same ages; false discovery rate "
                (s.watch.config.fdr) ". "
                @let excluded = report.excluded.iter().map(|e| e.outcomes).sum::<u64>();
                (excluded) @if excluded == 1 { " outcome" } @else { " outcomes" } " (no fault found, user damage, abuse) kept out of the rates."
            }
            @if works {
                form.inline method="post" action="/desk/fleet/run" {
                    input type="hidden" name="csrf" value=(csrf);
                    button #run-watch type="submit" { "Run the watch now" }
                }
            }
            (flags_section(&flags, works, &csrf))
            (campaigns_section(&campaigns))
            (cells_section(&report))
            (firmware_section(&report))
        },
    )
}

fn flags_section(flags: &[FlagRecord], works: bool, csrf: &str) -> Markup {
    html! {
        h2 { "Flagged cohorts" }
        @if flags.is_empty() {
            p.empty { "No cohort stands out." }
        } @else {
            table.queue #flags {
                thead { tr { th { "Cohort" } th { "Problem" } th.num { "Devices" } th.num { "Observed" } th.num { "Expected" } th.num { "Rate / yr" } th.num { "q" } th { "First flagged" } th { "Status" } } }
                tbody {
                    @for r in flags {
                        @let f = &r.flag;
                        @let e = &f.evidence;
                        tr id={"flag-" (r.id)} {
                            td { strong { a href={"/desk/flags/" (r.id)} { (f.cohort) } } br; small { (f.kind.as_str().replace('_', " ")) @if let Some(w) = f.window_days { ", first " (w) " days" } } }
                            td { (f.problem.map_or("unexpected restarts", |p| p.as_str())) }
                            td.num { (e.devices) }
                            td.num { (e.observed) }
                            td.num { (format!("{:.1}", e.expected)) }
                            td.num {
                                @if f.problem.is_some() { (format!("{:.3}", e.rate)) br; small { (format!("[{:.3}, {:.3}]", e.rate_low, e.rate_high)) } }
                                @else { (format!("{:.3}", e.rate)) " /day" }
                            }
                            td.num { (q_text(e.q_value)) }
                            td { (ms_to_text(r.first_flagged_ms as i64)) }
                            td {
                                (r.status)
                                @if works && r.status == "open" {
                                    form.inline method="post" action={"/desk/fleet/flags/" (r.id) "/campaign"} {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button.propose type="submit" { "Propose a campaign" }
                                    }
                                    " "
                                    form.inline method="post" action={"/desk/fleet/flags/" (r.id) "/dismiss"} {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button.secondary type="submit" { "Dismiss" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn campaigns_section(campaigns: &[Campaign]) -> Markup {
    html! {
        h2 { "Campaigns" }
        @if campaigns.is_empty() {
            p.empty { "No campaign yet: a flagged cohort proposes one." }
        } @else {
            table.queue #campaigns {
                thead { tr { th { "Campaign" } th { "State" } th.num { "Members" } th.num { "Reached" } th.num { "Accepted" } th.num { "Faults" } th.num { "Cost so far" } } }
                tbody {
                    @for c in campaigns {
                        tr {
                            td { a href={"/desk/campaigns/" (c.id)} { (c.title) } }
                            td { (state_badge(c.state)) }
                            td.num { (c.progress.members) }
                            td.num { (c.progress.reached) }
                            td.num { (c.progress.accepted) }
                            td.num { (c.progress.faults_confirmed) }
                            td.num { (format_money(c.progress.cost_so_far_minor, c.proposal.expected_cost_minor.keys().next().map_or("EUR", String::as_str))) }
                        }
                    }
                }
            }
        }
    }
}

fn cell_rows(cells: &[&Cell]) -> Markup {
    html! {
        @for c in cells {
            tr {
                td { strong { (c.cohort) } br; small { (c.dimension.as_str().replace('_', " ")) @if let Some(w) = &c.within { " of " (w) } } }
                td { (c.problem.as_str()) }
                td.num { (c.devices) }
                td.num { (format!("{:.0}", c.exposure_days)) }
                td.num { (c.observed) @if let Some(t) = c.true_failures { br; small { (t) " real" } } }
                td.num { (format!("{:.1}", c.expected)) }
                td.num { (format!("{:.3}", c.rate.rate)) br; small { (format!("[{:.3}, {:.3}]", c.rate.low, c.rate.high)) } }
                td.num { (format!("{:.3}", c.shrunk_rate)) }
                td.num { (q_text(c.q_value)) }
                td.num { (c.excluded) }
            }
        }
    }
}

fn cells_section(r: &WatchReport) -> Markup {
    let mut top: Vec<&Cell> = r.cells.iter().filter(|c| c.observed > 0).collect();
    top.sort_by(|a, b| {
        a.q_value
            .total_cmp(&b.q_value)
            .then(b.ratio().total_cmp(&a.ratio()))
    });
    top.truncate(TOP);
    html! {
        h2 { "Cohorts that stand out most" }
        p.hint { "Failures per device-year with the exact 95 % interval, against what the rest of the fleet at the same ages had (a batch against its model's other batches); the shrunk rate pulls thin evidence towards the common rate." }
        @if top.is_empty() {
            p.empty { "No confirmed failure yet." }
        } @else {
            table.queue #cohorts {
                thead { tr { th { "Cohort" } th { "Problem" } th.num { "Devices" } th.num { "Device-days" } th.num { "Failures" } th.num { "Expected" } th.num { "Rate / yr" } th.num { "Shrunk" } th.num { "q" } th.num { "Excluded" } } }
                tbody { (cell_rows(&top)) }
            }
        }
    }
}

fn firmware_section(r: &WatchReport) -> Markup {
    html! {
        h2 { "Firmware against its predecessor" }
        @if r.firmware.is_empty() {
            p.empty { "No heartbeat has been counted per firmware yet." }
        } @else {
            table.queue #firmware {
                thead { tr { th { "Version" } th { "Predecessor" } th.num { "Devices" } th.num { "Device-days" } th.num { "Unexpected restarts / day" } th.num { "Crash-free h / day" } th.num { "q" } } }
                tbody {
                    @for f in &r.firmware {
                        tr {
                            td { strong { (f.firmware) } }
                            td { (f.predecessor.as_deref().unwrap_or("—")) }
                            td.num { (f.devices) }
                            td.num { (format!("{:.0}", f.device_days)) }
                            td.num { (format!("{:.3}", f.restarts_per_device_day)) @if let Some(b) = f.predecessor_restarts_per_device_day { br; small { "was " (format!("{b:.3}")) } } }
                            td.num { (format!("{:.1}", f.crash_free_hours_per_device_day)) @if let Some(b) = f.predecessor_crash_free_hours_per_device_day { br; small { "was " (format!("{b:.1}")) } } }
                            td.num { @if f.predecessor.is_some() { (q_text(f.q_value)) } @else { "—" } }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: String,
}

pub(crate) async fn form_of<T: serde::de::DeserializeOwned>(
    s: &DeskState,
    req: Request,
) -> Option<T> {
    let form: Result<Form<T>, _> = axum::extract::FromRequest::from_request(req, s).await;
    form.ok().map(|Form(f)| f)
}

async fn run(State(s): State<DeskState>, headers: HeaderMap, req: Request) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::WorkFleet).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let csrf = csrf_of(&token);
    match form_of::<CsrfForm>(&s, req).await {
        Some(f) if f.csrf == csrf => {}
        _ => return csrf_refused(&user, &csrf, "/desk/fleet"),
    }
    match s
        .watch
        .check(&s.store, s.clock.now().0, None, &s.metrics)
        .await
    {
        Ok(_) => Redirect::to("/desk/fleet").into_response(),
        Err(e) => error_page(Some(&user), Some(&csrf), ApiError::store(e)),
    }
}

async fn flag_action(
    State(s): State<DeskState>,
    headers: HeaderMap,
    Path((raw, what)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::WorkFleet).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let csrf = csrf_of(&token);
    match form_of::<CsrfForm>(&s, req).await {
        Some(f) if f.csrf == csrf => {}
        _ => return csrf_refused(&user, &csrf, "/desk/fleet"),
    }
    let id = match parse_id("flag", &raw) {
        Ok(id) => id,
        Err(e) => return error_page(Some(&user), Some(&csrf), e),
    };
    let now = s.clock.now().0;
    let done = match what.as_str() {
        "campaign" => match s
            .store
            .propose_campaign(id, &user.name, &s.policy, now)
            .await
        {
            Ok(Some(c)) => Ok(format!("/desk/campaigns/{}", c.id)),
            Ok(None) => Err(not_found("cohort flag", id)),
            Err(e) => Err(ApiError::store(e)),
        },
        "dismiss" => match s.store.dismiss_flag(id, &user.name, now).await {
            Ok(true) => Ok("/desk/fleet".to_owned()),
            Ok(false) => Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                &format!("flag {id} is not open (or does not exist)"),
            )),
            Err(e) => Err(ApiError::store(e)),
        },
        other => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not found",
            &format!("no flag action {other:?}: campaign or dismiss"),
        )),
    };
    match done {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(e) => error_page(Some(&user), Some(&csrf), e),
    }
}

async fn campaign_page(
    State(s): State<DeskState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::ReadAll).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let csrf = csrf_of(&token);
    let id = match parse_id("campaign", &raw) {
        Ok(id) => id,
        Err(e) => return error_page(Some(&user), Some(&csrf), e),
    };
    render_campaign(&s, &user, &csrf, id, StatusCode::OK, None).await
}

async fn render_campaign(
    s: &DeskState,
    user: &User,
    csrf: &str,
    id: i64,
    status: StatusCode,
    notice: Option<Markup>,
) -> Response {
    let (c, members) = match s.store.campaign(id, &s.policy.repair_cost_minor).await {
        Ok(Some(v)) => v,
        Ok(None) => return error_page(Some(user), Some(csrf), not_found("campaign", id)),
        Err(e) => return error_page(Some(user), Some(csrf), ApiError::store(e)),
    };
    let works = user.role.may(Access::WorkFleet);
    page(
        status,
        &format!("Campaign {} · {}", c.id, c.title),
        Some(user),
        Some(csrf),
        html! {
            @if let Some(n) = notice { (n) }
            p { (state_badge(c.state)) " proposed by " (c.proposed_by) " " (ms_to_text(c.proposed_ms))
                @if let (Some(by), Some(at)) = (&c.decided_by, c.decided_ms) { "; decided by " (by) " " (ms_to_text(at)) }
                @if let Some(n) = &c.note { " — " em { (n) } }
            }
            (progress_tiles(&c))
            section.card #proposal {
                h2 { "Proposal" }
                table.facts { tbody {
                    tr { th { "Devices" } td.num { (c.proposal.devices) } }
                    @for (kind, n) in &c.proposal.offers { tr { th { "Offer: " (kind.replace('_', " ")) } td.num { (n) } } }
                    tr { th { "Attached to a ticket already open" } td.num { (c.proposal.attached) } }
                    @for (why, n) in &c.proposal.held { tr { th { "Held back: " (why.replace('_', " ")) } td.num { (n) } } }
                    tr { th { "Cost if every offer is taken up" } td.num { (costs(&c.proposal.expected_cost_minor)) } }
                } }
                p.hint { "Repairs at the policy's repair estimate, trade-ins at their quote. Offers go out through the same contact rules as single tickets; a device with a ticket open for the problem gets the campaign on that ticket." }
            }
            @if works && c.state == CampaignState::Proposed {
                section.actions #decide {
                    h2 { "Decision" }
                    form.action method="post" action={"/desk/campaigns/" (c.id) "/decision"} {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="version" value=(c.version);
                        label { span { "Note" } input #note type="text" name="note" maxlength="2000"; }
                        button #approve type="submit" name="decision" value="approve" { "Approve and contact " (c.proposal.devices - c.proposal.held.values().sum::<u64>()) " customers" }
                        button.secondary #reject type="submit" name="decision" value="reject" { "Reject" }
                    }
                }
            }
            (members_table(&members))
        },
    )
}

fn progress_tiles(c: &Campaign) -> Markup {
    let p = &c.progress;
    let currency = c
        .proposal
        .expected_cost_minor
        .keys()
        .next()
        .map_or("EUR", String::as_str);
    html! {
        div.tiles #progress {
            div.tile { span.n { (p.members) } span { "members" } }
            div.tile { span.n { (p.offered) } span { "offered" } }
            div.tile { span.n { (p.attached) } span { "attached" } }
            div.tile { span.n { (p.held) } span { "held back" } }
            div.tile #reached { span.n { (p.reached) } span { "reached" } }
            div.tile #accepted { span.n { (p.accepted) } span { "accepted" } }
            div.tile #faults { span.n { (p.faults_confirmed) } span { "faults confirmed" } }
            div.tile #cost { span.n { (format_money(p.cost_so_far_minor, currency)) } span { "cost so far" } }
        }
    }
}

fn members_table(members: &[Member]) -> Markup {
    html! {
        h2 { "Members" }
        table.queue #members {
            thead { tr { th { "Device" } th { "Status" } th { "Ticket" } th { "Why held" } } }
            tbody {
                @for m in members {
                    tr {
                        td { a href={"/desk/devices/" (m.device_id)} { (m.device_id) } }
                        td { (m.status.as_str()) }
                        td { @if let Some(t) = m.ticket_id { a href={"/desk/tickets/" (t)} { "#" (t) } " " small { (m.ticket_state.as_deref().unwrap_or("")) } } }
                        td { (m.reason.as_deref().unwrap_or("").replace('_', " ")) }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct DecisionForm {
    csrf: String,
    version: String,
    decision: String,
    #[serde(default)]
    note: String,
}

async fn decision(
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
    let id = match parse_id("campaign", &raw) {
        Ok(id) => id,
        Err(e) => return error_page(Some(&user), Some(&csrf), e),
    };
    let Some(f) = form_of::<DecisionForm>(&s, req).await else {
        return error_page(
            Some(&user),
            Some(&csrf),
            ApiError::bad("the form could not be read"),
        );
    };
    if f.csrf != csrf {
        return csrf_refused(&user, &csrf, &format!("/desk/campaigns/{id}"));
    }
    let verdict = match f.decision.as_str() {
        "approve" => Verdict::Approve,
        "reject" => Verdict::Reject,
        other => {
            let e = ApiError::unprocessable(format!("decision {other:?}: approve or reject"));
            let notice =
                html! { p.error role="alert" { strong { (e.title()) ": " } (e.detail()) } };
            return render_campaign(&s, &user, &csrf, id, e.status(), Some(notice)).await;
        }
    };
    let Ok(version) = f.version.parse::<i64>() else {
        return error_page(
            Some(&user),
            Some(&csrf),
            ApiError::bad("the form's version is not a number"),
        );
    };
    let note = Some(f.note.trim()).filter(|n| !n.is_empty());
    match s
        .store
        .decide_campaign(id, verdict, version, &user.name, note, s.clock.now().0)
        .await
    {
        Ok(Some(_)) => Redirect::to(&format!("/desk/campaigns/{id}")).into_response(),
        Ok(None) => error_page(Some(&user), Some(&csrf), not_found("campaign", id)),
        Err(e) => {
            let e = ApiError::store(e);
            let notice =
                html! { p.error role="alert" { strong { (e.title()) ": " } (e.detail()) } };
            render_campaign(&s, &user, &csrf, id, e.status(), Some(notice)).await
        }
    }
}
