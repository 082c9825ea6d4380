//! The models page: champion and challenger, the challenger's gate side by side with
//! the champion, the devices the two disagree on, the registered versions and every
//! change. Admins set the challenger, promote it (over a failed gate only with the
//! override ticked and a reason) and roll back to any version. Plain forms calling the
//! same functions as the API.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;

use super::api::{ApiError, DeskState};
use super::auth::{Access, User};
use super::fleet_pages::form_of;
use super::models::registry_of;
use super::pages::{csrf_of, csrf_refused, error_page, ms_to_text, page, signed_in};
use super::report_pages::refused;
use crate::registry::gate::{Figures, Gate};
use crate::registry::{self, Promotion};

const BACK: &str = "/desk/models";

/// The models page and its forms.
pub fn router(state: DeskState) -> Router {
    Router::new()
        .route("/desk/models", get(models_page))
        .route("/desk/models/challenger", post(challenger))
        .route("/desk/models/promote", post(promote))
        .route("/desk/models/rollback", post(rollback))
        .with_state(state)
}

fn figure(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.3}"))
}

fn gate_table(g: &Gate) -> Markup {
    let row = |name: &str, f: fn(&Figures) -> String| {
        html! { tr { th { (name) } td { (f(&g.champion)) } td { (f(&g.challenger)) } } }
    };
    html! {
        p #gate-window {
            "Measured on " strong { (g.outcomes) } " outcomes labelled since the challenger started ("
            (ms_to_text(g.since_ms as i64)) ", " (format!("{:.1}", g.days)) " days), "
            (g.faults) " of them faults; precision over the " (g.capacity)
            " the desk can work in that time."
        }
        table.facts #gate {
            thead { tr { th {} th { "champion" } th { "challenger" } } }
            tbody {
                tr { th { "version" } td { (g.champion.version) } td { (g.challenger.version) } }
                (row("PR-AUC", |f| figure(f.pr_auc)))
                (row("ROC-AUC", |f| figure(f.roc_auc)))
                (row("Brier score", |f| figure(f.brier)))
                (row("precision at the desk's capacity", |f| figure(f.precision_at_capacity)))
                (row("alarms a day", |f| format!("{:.2}", f.alarms_per_day)))
            }
        }
        ul #gate-checks {
            @for c in &g.checks {
                li class=(if c.passed { "pass" } else { "fail" }) {
                    span.badge.(if c.passed { "tier-low" } else { "tier-high" }) {
                        (if c.passed { "pass" } else { "fail" })
                    }
                    " " (c.detail)
                }
            }
        }
        p #verdict {
            @if g.passed { strong { "The challenger passes its gate." } }
            @else { strong { "The challenger fails its gate." } " Promoting it needs the override and a reason." }
        }
        h3 { "Where they disagree now" }
        p { (g.disagreeing) " of " (g.shadowed) " devices scored by both alarm differently." }
        @if !g.disagreements.is_empty() {
            table.queue #disagreements {
                thead { tr { th { "device" } th { "champion" } th { "challenger" } } }
                tbody {
                    @for d in &g.disagreements {
                        tr {
                            td { a href={"/desk/devices/" (d.device_id)} { (d.device_id) } }
                            td { (format!("{:.3}", d.champion_risk)) @if d.champion_alarm { " alarm" } }
                            td { (format!("{:.3}", d.challenger_risk)) @if d.challenger_alarm { " alarm" } }
                        }
                    }
                }
            }
        }
    }
}

async fn models_page(State(s): State<DeskState>, headers: HeaderMap) -> Response {
    let (user, token) = match signed_in(&s, &headers, Access::ReadAll).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let csrf = csrf_of(&token);
    let admin = user.role.may(Access::Admin);
    let reg = match registry_of(&s).await {
        Ok(r) => r,
        Err(e) => return error_page(Some(&user), Some(&csrf), e),
    };
    let gate = match registry::measure_gate(&s.store, &s.model, &s.gate, s.clock.now().0).await {
        Ok(g) => g,
        Err(e) => return error_page(Some(&user), Some(&csrf), e.into()),
    };
    let champion = reg.aliases.champion.as_ref();
    let challenger = reg.aliases.challenger.as_ref();
    page(
        StatusCode::OK,
        "Models",
        Some(&user),
        Some(&csrf),
        html! {
            p.hint { "The champion's risks drive the policy; a challenger is scored beside it on every device and promoted once its gate, measured on the outcomes the desk labels, shows it is at least as good." }
            div.tiles #aliases {
                div.tile #champion {
                    span.n { (champion.map_or("—", |c| c.version.as_str())) }
                    span { "champion" }
                    @if let Some(c) = champion { small { "since " (ms_to_text(c.since_ms)) " · " (c.set_by) } }
                }
                div.tile #challenger {
                    span.n { (challenger.map_or("—", |c| c.version.as_str())) }
                    span { "challenger" }
                    @if let Some(c) = challenger { small { "since " (ms_to_text(c.since_ms)) " · " (c.set_by) } }
                }
            }
            @if Some(reg.in_force.as_str()) != champion.map(|c| c.version.as_str()) {
                p.hint #catching-up { "This replica scores with " (reg.in_force) " until its next check of the registry." }
            }
            @if let (Some(g), Some(c)) = (&gate, challenger) {
                h2 { "The challenger's gate" }
                (gate_table(g))
                @if admin {
                    form.card #promote-form method="post" action="/desk/models/promote" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="challenger" value=(c.version);
                        @if !g.passed {
                            label { input #override type="checkbox" name="override" value="true"; " Override the failed gate" }
                        }
                        label for="promote-reason" { "Reason (recorded)" }
                        input #promote-reason name="reason" maxlength="500";
                        button type="submit" { "Promote " (c.version) }
                    }
                }
            } @else {
                p.empty #no-challenger { "No challenger is set." }
            }
            @if admin {
                form.card #challenger-form method="post" action="/desk/models/challenger" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="challenger-version" { "Challenger" }
                    select #challenger-version name="version" {
                        option value="" { "— none —" }
                        @for v in reg.versions.iter().filter(|v| Some(v.version.as_str()) != champion.map(|c| c.version.as_str())) {
                            option value=(v.version) selected[Some(v.version.as_str()) == challenger.map(|c| c.version.as_str())] { (v.version) }
                        }
                    }
                    button type="submit" { "Set" }
                }
            }
            h2 { "Versions" }
            table.queue #versions {
                thead { tr { th { "version" } th { "kind" } th { "threshold" } th { "validation" } th { "registered" } th {} } }
                tbody {
                    @for v in &reg.versions {
                        tr {
                            td { (v.version) }
                            td { (v.kind) }
                            td { (format!("{:.3}", v.threshold)) }
                            td {
                                "ROC-AUC " (figure(v.validation["roc_auc"].as_f64()))
                                ", Brier " (figure(v.validation["brier"].as_f64()))
                                ", ECE " (figure(v.validation["ece"].as_f64()))
                            }
                            td { (ms_to_text(v.registered_ms)) " · " (v.registered_by) }
                            td {
                                @if Some(v.version.as_str()) == champion.map(|c| c.version.as_str()) {
                                    span.badge.tier-low { "champion" }
                                } @else if admin {
                                    form.inline method="post" action="/desk/models/rollback" {
                                        input type="hidden" name="csrf" value=(csrf);
                                        input type="hidden" name="version" value=(v.version);
                                        input name="reason" placeholder="why" maxlength="500" aria-label={"why roll back to " (v.version)};
                                        " "
                                        button type="submit" { "Roll back to this" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Changes" }
            table.queue #changes {
                thead { tr { th { "when" } th { "who" } th { "what" } th { "version" } th { "before" } th { "why" } } }
                tbody {
                    @for c in &reg.changes {
                        tr {
                            td { (ms_to_text(c.at_ms)) }
                            td { (c.actor) }
                            td { (c.action) @if c.overridden { " " span.badge.flag { "gate overridden" } } }
                            td { (c.version.as_deref().unwrap_or("—")) }
                            td { (c.previous.as_deref().unwrap_or("—")) }
                            td { (c.reason.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        },
    )
}

async fn admin_form<T: serde::de::DeserializeOwned + HasCsrf>(
    s: &DeskState,
    headers: &HeaderMap,
    req: Request,
) -> Result<(User, String, T), Response> {
    let (user, token) = signed_in(s, headers, Access::Admin).await?;
    let csrf = csrf_of(&token);
    match form_of::<T>(s, req).await {
        Some(f) if f.csrf() == csrf => Ok((user, csrf, f)),
        _ => Err(csrf_refused(&user, &csrf, BACK)),
    }
}

trait HasCsrf {
    fn csrf(&self) -> &str;
}

#[derive(Debug, Deserialize)]
struct ChallengerForm {
    csrf: String,
    version: String,
}

#[derive(Debug, Deserialize)]
struct PromoteForm {
    csrf: String,
    challenger: String,
    #[serde(default)]
    r#override: Option<String>,
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Deserialize)]
struct RollbackForm {
    csrf: String,
    version: String,
    #[serde(default)]
    reason: String,
}

impl HasCsrf for ChallengerForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}
impl HasCsrf for PromoteForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}
impl HasCsrf for RollbackForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

fn done(
    user: &User,
    csrf: &str,
    r: Result<crate::store::model_versions::ModelChange, registry::RegistryError>,
) -> Response {
    match r {
        Ok(_) => Redirect::to(BACK).into_response(),
        Err(e) => refused(user, csrf, ApiError::from(e), BACK),
    }
}

async fn challenger(State(s): State<DeskState>, headers: HeaderMap, req: Request) -> Response {
    let (user, csrf, f) = match admin_form::<ChallengerForm>(&s, &headers, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let version = Some(f.version.trim()).filter(|v| !v.is_empty());
    let r =
        registry::set_challenger(&s.store, &s.model, &user.name, version, s.clock.now().0).await;
    done(&user, &csrf, r)
}

async fn promote(State(s): State<DeskState>, headers: HeaderMap, req: Request) -> Response {
    let (user, csrf, f) = match admin_form::<PromoteForm>(&s, &headers, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let p = Promotion {
        challenger: f.challenger,
        override_gate: f.r#override.as_deref() == Some("true"),
        reason: Some(f.reason),
    };
    let r = registry::promote(&s.store, &s.model, &s.gate, &user.name, &p, s.clock.now().0).await;
    done(&user, &csrf, r)
}

async fn rollback(State(s): State<DeskState>, headers: HeaderMap, req: Request) -> Response {
    let (user, csrf, f) = match admin_form::<RollbackForm>(&s, &headers, req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let r = registry::rollback(
        &s.store,
        &s.model,
        &user.name,
        &f.version,
        Some(&f.reason),
        s.clock.now().0,
    )
    .await;
    done(&user, &csrf, r)
}
