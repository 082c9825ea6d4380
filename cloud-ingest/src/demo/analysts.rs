//! The simulated analysts: run the cohort watch every simulated week on what the store
//! knows (confirmed outcomes, tickets, firmware days), with the simulation's ground
//! truth beside it for the table's `true_failures`, note each cohort when it is first
//! flagged and how long after its first real failure, and approve a campaign for each
//! flagged batch (the rollout inside `serve` contacts its customers).

use std::collections::BTreeMap;
use std::sync::Arc;

use firmware_sim::fleet::{Fleet, DAY_MS};
use protocol::clock::Clock;
use serde::Serialize;
use tokio::sync::watch;

use super::team::Fate;
use crate::campaigns::Verdict;
use crate::cohorts::watch::{Flag, FlagKind, WatchReport};
use crate::cohorts::watcher::Watcher;
use crate::cohorts::Incident;
use crate::ops::metrics::Metrics;
use crate::policy::PolicyConfig;
use crate::store::Store;

/// A cohort the watch flagged during the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlaggedCohort {
    /// `batch`, `firmware_regression`, ...
    pub kind: String,
    /// The cohort.
    pub name: String,
    /// The problem (`restarts` for a firmware regression).
    pub problem: String,
    /// `None`: whole life; else the first days after purchase.
    pub window_days: Option<u32>,
    /// The simulated day it was first flagged.
    pub flagged_day: f64,
    /// Days from the cohort's first real failure (its first restart-heavy day for a
    /// firmware regression) to the flag.
    pub days_after_first_failure: Option<f64>,
}

/// The analysts' weekly watch.
pub struct Analysts {
    /// The store.
    pub store: Store,
    /// The watch.
    pub watcher: Watcher,
    /// The simulated fleet (its ground truth).
    pub fleet: Arc<Fleet>,
    /// The simulation's clock.
    pub clock: Arc<dyn Clock>,
    /// Where flags are counted.
    pub metrics: Arc<Metrics>,
    /// The policy campaigns are proposed under.
    pub policy: PolicyConfig,
}

/// The analyst's name on what the simulated analysts decide.
pub const ANALYST: &str = "analyst-sim";

impl Analysts {
    /// The failures that have really happened by `now`.
    fn truth(&self, now: u64) -> Vec<Incident> {
        self.fleet
            .devices
            .iter()
            .filter_map(|d| {
                let f = d.fate.as_ref()?;
                (f.failed_at.0 <= now).then(|| Incident {
                    device_id: d.id.as_str().to_owned(),
                    problem: Fate::of_mode(f.mode.as_str()).problem(),
                    at_ms: f.failed_at.0,
                })
            })
            .collect()
    }

    /// One run now; the flags seen for the first time are added to `seen`.
    pub async fn check(
        &self,
        seen: &mut BTreeMap<String, FlaggedCohort>,
    ) -> anyhow::Result<WatchReport> {
        let now = self.clock.now().0;
        let report = self
            .watcher
            .check(&self.store, now, Some(self.truth(now)), &self.metrics)
            .await?;
        let day = now.saturating_sub(self.fleet.start.0) as f64 / DAY_MS as f64;
        for f in &report.flags {
            seen.entry(f.key())
                .or_insert_with(|| flagged(f, day, now, self.fleet.start.0));
        }
        self.campaign(now).await?;
        Ok(report)
    }

    /// Proposes and approves a campaign for every open whole-life flag of a batch (the
    /// hardware a recall is about); the rest are left for a person: a firmware
    /// regression is answered by the next release, not by inspecting every device.
    async fn campaign(&self, now: u64) -> anyhow::Result<()> {
        for r in self.store.cohort_flags(Some("open")).await? {
            let f = &r.flag;
            let wanted = f.window_days.is_none()
                && f.measure == crate::cohorts::Measure::Failures
                && f.kind == FlagKind::Batch;
            if !wanted {
                continue;
            }
            let Some(c) = self
                .store
                .propose_campaign(r.id, ANALYST, &self.policy, now)
                .await?
            else {
                continue;
            };
            self.store
                .decide_campaign(
                    c.id,
                    Verdict::Approve,
                    c.version,
                    ANALYST,
                    Some("approved by the simulated analysts"),
                    now,
                )
                .await?;
            eprintln!(
                "campaign {} approved: {} ({} devices)",
                c.id, c.title, c.proposal.devices
            );
            self.raise_action(r.id, f, now).await?;
        }
        Ok(())
    }

    /// Raises the action item a campaign answers to: the flagged problem's confirmed
    /// faults down 30 % within sixty days, measured by the report.
    async fn raise_action(&self, flag: i64, f: &Flag, now: u64) -> anyhow::Result<()> {
        let Some(problem) = f.problem else {
            return Ok(());
        };
        if !self.store.users().await?.iter().any(|u| u.name == ANALYST) {
            self.store
                .add_user(ANALYST, crate::desk::auth::Role::Analyst, "demo", now)
                .await?;
        }
        let due = chrono::DateTime::from_timestamp_millis((now + 60 * DAY_MS) as i64)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let item = crate::report::actions::NewAction {
            problem: format!(
                "{} {}: {} faults at {:.1} times the expected rate",
                f.kind.as_str(),
                f.cohort,
                problem.as_str(),
                f.evidence.rate / f.evidence.expected_rate.max(1e-9)
            ),
            owner: ANALYST.to_owned(),
            due,
            kpi: format!("{} faults confirmed in the fleet", problem.as_str()),
            target: "down 30 % within two months".to_owned(),
            source: Some(format!("flag:{flag}")),
            measure: Some(format!("faults:{}", problem.as_str())),
        };
        let checked = crate::report::actions::check(&item, |u| u == ANALYST, now)
            .map_err(|e| anyhow::anyhow!("the campaign's action item: {e}"))?;
        self.store.add_action(&checked, ANALYST, now).await?;
        Ok(())
    }

    /// Runs every simulated week (and at most every five wall seconds, so a fast
    /// simulation does not spend its cores on the watch) until `stop`, then once more;
    /// what was flagged.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Vec<FlaggedCohort> {
        let mut seen = BTreeMap::new();
        let mut next = self.clock.now().0 + 7 * DAY_MS;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let now = self.clock.now().0;
            if now < next {
                continue;
            }
            next = now + 7 * DAY_MS;
            if let Err(e) = self.check(&mut seen).await {
                eprintln!("the cohort watch failed: {e:#}");
            }
        }
        if let Err(e) = self.check(&mut seen).await {
            eprintln!("the cohort watch failed: {e:#}");
        }
        let mut out: Vec<FlaggedCohort> = seen.into_values().collect();
        out.sort_by(|a, b| a.flagged_day.total_cmp(&b.flagged_day));
        out
    }
}

fn flagged(f: &Flag, day: f64, now: u64, start: u64) -> FlaggedCohort {
    let first = f.evidence.first_true_ms.or(f.evidence.first_event_ms);
    FlaggedCohort {
        kind: f.kind.as_str().to_owned(),
        name: f.cohort.clone(),
        problem: f.problem.map_or("restarts", |p| p.as_str()).to_owned(),
        window_days: f.window_days,
        flagged_day: (day * 10.0).round() / 10.0,
        days_after_first_failure: first
            .filter(|&t| t >= start)
            .map(|t| (now.saturating_sub(t) as f64 / DAY_MS as f64 * 10.0).round() / 10.0),
    }
}

/// A campaign as the run left it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignSummary {
    /// What it is about.
    pub title: String,
    /// Where it stands.
    pub state: String,
    /// Its figures.
    pub progress: crate::campaigns::Progress,
    /// Its cost if every offer were taken up, per currency, minor units.
    pub expected_cost_minor: BTreeMap<String, u64>,
}

/// Every campaign of the run.
pub async fn campaigns(
    store: &Store,
    policy: &PolicyConfig,
) -> anyhow::Result<Vec<CampaignSummary>> {
    Ok(store
        .campaigns(&policy.repair_cost_minor)
        .await?
        .into_iter()
        .map(|c| CampaignSummary {
            title: c.title,
            state: c.state.as_str().to_owned(),
            progress: c.progress,
            expected_cost_minor: c.proposal.expected_cost_minor,
        })
        .collect())
}
