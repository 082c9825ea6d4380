//! The simulated service team and web customers at work: [`team::plan`]'s steps carried
//! out over the desk's HTTP API and the customer's progress page, exactly as people in
//! a browser or a CRM would call them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use protocol::clock::Clock;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use super::team::{self, Fate, Listed, Step, TeamConfig, TeamState};
use crate::tickets::work::Outcome;

/// How often the team looks at the queue (wall clock): at the demo's speed-up a look
/// every 25 ms is one every 20 simulated minutes.
const LOOK_EVERY: Duration = Duration::from_millis(25);
/// Looks between checks of linked tickets that left the queue (for ratings).
const RATING_EVERY: u32 = 20;

/// What the team and customers did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StaffReport {
    /// Actions the desk accepted.
    pub actions: u64,
    /// Actions refused with 409 (someone, or the device, moved first).
    pub refused: u64,
    /// Progress links made.
    pub links: u64,
    /// Offers answered on the progress page.
    pub web_answers: u64,
    /// Web answers refused because the device had answered first.
    pub web_answers_too_late: u64,
    /// Ratings given on the progress page.
    pub ratings: u64,
    /// Requests that failed otherwise (logged).
    pub errors: u64,
    /// The first few failures, for the summary.
    pub first_errors: Vec<String>,
}

impl StaffReport {
    fn failed(&mut self, what: String) {
        self.errors += 1;
        if self.first_errors.len() < 5 {
            self.first_errors.push(what);
        }
    }
}

/// How a step went.
#[derive(Debug, Clone, PartialEq)]
enum Done {
    /// The desk took the action.
    Acted,
    /// 409: someone (or the device) moved first.
    Refused,
    /// A link, at this path.
    Linked(String),
    /// The page took the customer's answer.
    Answered,
    /// The page refused it: answered already.
    TooLate,
}

/// Records what a step did.
fn apply(state: &mut TeamState, report: &mut StaffReport, step: &Step, done: Done, now: u64) {
    match (step, done) {
        (Step::Act { ticket, body, .. }, Done::Acted) => {
            report.actions += 1;
            if body["action"] == "start" {
                state.started.insert(*ticket, now);
            }
        }
        (_, Done::Refused) => report.refused += 1,
        (Step::Link { ticket, .. }, Done::Linked(path)) => {
            state.links.insert(*ticket, (path, now));
            report.links += 1;
        }
        (Step::Answer { ticket, .. }, d) => {
            state.answered.insert(*ticket);
            if d == Done::Answered {
                report.web_answers += 1;
            } else {
                report.web_answers_too_late += 1;
            }
        }
        _ => {}
    }
}

/// The simulated people, with their desk tokens.
pub struct Staff {
    /// The desk's base address, `http://HOST:PORT`.
    pub base: String,
    /// Each agent's API token, by name.
    pub tokens: HashMap<String, String>,
    /// How they work.
    pub config: TeamConfig,
    /// The ground truth: how each failing device fails.
    pub fates: HashMap<String, Fate>,
    /// The service clock.
    pub clock: Arc<dyn Clock>,
}

impl Staff {
    /// Works until `stop` turns true; what was done.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> StaffReport {
        let http = reqwest::Client::new();
        let mut state = TeamState::default();
        let mut report = StaffReport::default();
        let mut looks = 0u32;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(LOOK_EVERY) => {}
                _ = stop.wait_for(|s| *s) => return report,
            }
            looks += 1;
            let lead = &self.config.agents[0];
            let queue = match self.queue(&http, lead).await {
                Ok(q) => q,
                Err(e) => {
                    report.failed(format!("reading the queue: {e:#}"));
                    tracing::warn!(error = %e, "demo team: reading the queue");
                    continue;
                }
            };
            let now = self.clock.now().0;
            let steps = team::plan(
                &queue,
                &state,
                &self.config,
                |d| self.fates.get(d).copied(),
                now,
            );
            // People work different tickets at once; one ticket's steps go in order (two
            // at once on one ticket would race each other's version).
            let mut by_ticket: Vec<(i64, Vec<Step>)> = Vec::new();
            for step in steps {
                match by_ticket.iter_mut().find(|(t, _)| *t == step.ticket()) {
                    Some((_, v)) => v.push(step),
                    None => by_ticket.push((step.ticket(), vec![step])),
                }
            }
            let snapshot = state.clone();
            let done = futures::future::join_all(by_ticket.into_iter().map(|(_, steps)| {
                let (http, snapshot, me) = (&http, &snapshot, &self);
                async move {
                    let mut out = Vec::new();
                    for step in steps {
                        let r = me.carry_out(http, &step, snapshot).await;
                        out.push((step, r));
                    }
                    out
                }
            }))
            .await;
            for (step, r) in done.into_iter().flatten() {
                match r {
                    Ok(done) => apply(&mut state, &mut report, &step, done, now),
                    Err(e) => {
                        report.failed(format!("{step:?}: {e:#}"));
                        tracing::warn!(error = %e, ?step, "demo team: a step failed");
                    }
                }
            }
            if looks.is_multiple_of(RATING_EVERY) {
                let open: std::collections::HashSet<i64> = queue.iter().map(|t| t.id).collect();
                if let Err(e) = self.rate(&http, &open, &mut state, &mut report).await {
                    report.failed(format!("rating: {e:#}"));
                    tracing::warn!(error = %e, "demo team: rating");
                }
            }
        }
    }

    fn token(&self, agent: &str) -> &str {
        self.tokens
            .get(agent)
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// `GET path` on the API as `agent`, its JSON.
    async fn get(&self, http: &reqwest::Client, path: &str, agent: &str) -> anyhow::Result<Value> {
        Ok(http
            .get(format!("{}{path}", self.base))
            .bearer_auth(self.token(agent))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    async fn queue(&self, http: &reqwest::Client, agent: &str) -> anyhow::Result<Vec<Listed>> {
        let v = self
            .get(http, "/api/v1/tickets?per_page=200", agent)
            .await?;
        Ok(serde_json::from_value(v["items"].clone())?)
    }

    async fn carry_out(
        &self,
        http: &reqwest::Client,
        step: &Step,
        state: &TeamState,
    ) -> anyhow::Result<Done> {
        match step {
            Step::Act {
                ticket,
                agent,
                body,
            } => {
                let r = http
                    .post(format!("{}/api/v1/tickets/{ticket}/actions", self.base))
                    .bearer_auth(self.token(agent))
                    .json(body)
                    .send()
                    .await?;
                match r.status().as_u16() {
                    200 => Ok(Done::Acted),
                    409 => Ok(Done::Refused),
                    s => anyhow::bail!("{s} for {body} on ticket {ticket}: {}", r.text().await?),
                }
            }
            Step::Link { ticket, agent } => {
                let v: Value = http
                    .post(format!(
                        "{}/api/v1/tickets/{ticket}/progress-link",
                        self.base
                    ))
                    .bearer_auth(self.token(agent))
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                Ok(Done::Linked(
                    v["path"].as_str().unwrap_or_default().to_owned(),
                ))
            }
            Step::Answer { ticket, accept } => {
                let path = state.links[ticket].0.clone();
                // The offer was answered on the device (or lapsed) since the customer
                // decided to look: the page shows where the case is, without a form.
                let Some(csrf) = self.page_csrf(http, &path).await? else {
                    return Ok(Done::TooLate);
                };
                let answer = if *accept { "accept" } else { "decline" };
                let r = http
                    .post(format!("{}{path}/answer", self.base))
                    .form(&[("csrf", csrf.as_str()), ("answer", answer)])
                    .send()
                    .await?;
                match r.status().as_u16() {
                    200 => Ok(Done::Answered),
                    409 => Ok(Done::TooLate),
                    s => anyhow::bail!("{s} answering on {path}"),
                }
            }
        }
    }

    /// Opens the progress page as the customer's browser does and reads its form's CSRF
    /// token; `None` when the page has no form.
    async fn page_csrf(
        &self,
        http: &reqwest::Client,
        path: &str,
    ) -> anyhow::Result<Option<String>> {
        let page = http
            .get(format!("{}{path}", self.base))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let marker = "name=\"csrf\" value=\"";
        let Some(start) = page.find(marker).map(|i| i + marker.len()) else {
            return Ok(None);
        };
        let end = page[start..]
            .find('"')
            .ok_or_else(|| anyhow::anyhow!("{path}: an unterminated csrf value"))?;
        Ok(Some(page[start..start + end].to_owned()))
    }

    /// Customers of linked tickets that left the queue rate them once resolved.
    async fn rate(
        &self,
        http: &reqwest::Client,
        open: &std::collections::HashSet<i64>,
        state: &mut TeamState,
        report: &mut StaffReport,
    ) -> anyhow::Result<()> {
        let lead = &self.config.agents[0];
        let done: Vec<(i64, String)> = state
            .links
            .iter()
            .filter(|(id, _)| !open.contains(id) && !state.rated.contains(id))
            .map(|(id, (path, _))| (*id, path.clone()))
            .collect();
        for (id, path) in done {
            state.rated.insert(id);
            let t = self
                .get(http, &format!("/api/v1/tickets/{id}"), lead)
                .await?;
            let Some(outcome) = t["ticket"]["outcome"]
                .as_str()
                .and_then(|o| o.parse::<Outcome>().ok())
            else {
                continue;
            };
            let met = t["sla"]["state"] == "met";
            let Some([result, speed, service]) = team::rating(id, outcome, met, &self.config)
            else {
                continue;
            };
            let csrf = self.page_csrf(http, &path).await?.ok_or_else(|| {
                anyhow::anyhow!("{path}: a resolved case's page has no rating form")
            })?;
            let r = http
                .post(format!("{}{path}/rating", self.base))
                .form(&[
                    ("csrf", csrf),
                    ("result", result.to_string()),
                    ("speed", speed.to_string()),
                    ("service", service.to_string()),
                    ("comment", String::new()),
                ])
                .send()
                .await?;
            if r.status().is_success() {
                report.ratings += 1;
            } else {
                anyhow::bail!("{} rating on {path}", r.status());
            }
        }
        Ok(())
    }
}
