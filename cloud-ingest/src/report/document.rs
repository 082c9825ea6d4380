//! The after-sales review report as data: the JSON document docs/reports.md describes
//! (schema `fleet-report/1`), assembled from the period's facts. HTML and Markdown are
//! drawn from it ([`super::html`], [`super::markdown`]), never from the store. Pure.

use serde::{Deserialize, Serialize};

use super::actions::{review, ActionStatus, Review, Target};
use super::kpis::{self, lead_days, Kpi, ProblemCount, ServiceFacts, TicketFact};
use super::root_causes::Why;
use super::trend::{self, TrendPoint};
use crate::cohorts::watch::{self, FlagKind, WatchConfig};
use crate::cohorts::{Dimension, FleetFacts};
use crate::policy::Problem;
use crate::store::actions::ActionItem;
use crate::store::cohorts::FlagRecord;
use crate::store::reports::RootCause;
use crate::tradein::routing::{period_of, period_range, Period};

/// The schema the JSON follows.
pub const SCHEMA: &str = "fleet-report/1";
/// Periods the trend covers, the report's own last.
pub const TREND_PERIODS: usize = 6;
/// Cohort rows kept per dimension (the most significant first).
pub const COHORT_ROWS: usize = 15;

/// Everything a report is made from.
#[derive(Debug, Clone, Default)]
pub struct ReportFacts {
    /// Tickets, ratings, trade-ins.
    pub service: ServiceFacts,
    /// The cohort watch's facts (cut at the period's end when the report is made).
    pub fleet: FleetFacts,
    /// Every flag recorded.
    pub flags: Vec<FlagRecord>,
    /// Every root-cause record.
    pub root_causes: Vec<RootCause>,
    /// Every action item.
    pub actions: Vec<ActionItem>,
}

/// One cohort cell in the report's table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohortRow {
    /// `model`, `batch` or `firmware`.
    pub dimension: Dimension,
    /// The cohort's name.
    pub cohort: String,
    /// The problem.
    pub problem: Problem,
    /// Devices in it.
    pub devices: u64,
    /// Device-days in service.
    pub exposure_days: f64,
    /// Confirmed failures.
    pub failures: u64,
    /// Failures the rest of the fleet's rates at the same ages predict.
    pub expected: f64,
    /// Failures per device-year.
    pub rate: f64,
    /// Its exact 95 % interval, per device-year.
    pub rate_low: f64,
    /// Upper end.
    pub rate_high: f64,
    /// The age-matched expectation, per device-year.
    pub expected_rate: f64,
    /// The empirical-Bayes shrunk rate, per device-year.
    pub shrunk_rate: f64,
    /// Benjamini–Hochberg q-value.
    pub q_value: f64,
    /// Whether a flag stands on it.
    pub flagged: bool,
}

/// A firmware version against its predecessor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirmwareRow {
    /// The version.
    pub firmware: String,
    /// The version before it.
    pub predecessor: Option<String>,
    /// Device-days it ran.
    pub device_days: f64,
    /// Unexpected restarts per device-day.
    pub restarts_per_device_day: f64,
    /// The predecessor's.
    pub predecessor_restarts_per_device_day: Option<f64>,
    /// Crash-free hours per device-day.
    pub crash_free_hours_per_device_day: f64,
    /// The predecessor's.
    pub predecessor_crash_free_hours_per_device_day: Option<f64>,
    /// Benjamini–Hochberg q-value of the comparison.
    pub q_value: f64,
}

/// Outcomes kept out of the failure rates, by problem (to the period's end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExcludedRow {
    /// The problem.
    pub problem: Problem,
    /// No fault found, user damage and abuse together.
    pub outcomes: u64,
}

/// A flag standing in the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagRow {
    /// Its id.
    pub id: i64,
    /// What kind.
    pub kind: FlagKind,
    /// The cohort.
    pub cohort: String,
    /// The problem (none for a firmware regression).
    pub problem: Option<Problem>,
    /// Observed against expected, in words.
    pub evidence: String,
    /// When it was first flagged, ms.
    pub first_flagged_ms: u64,
    /// Whether it was first flagged in this period.
    pub new: bool,
    /// `open`, `campaign` or `dismissed`.
    pub status: String,
    /// Its page.
    pub link: String,
}

/// A case worth telling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotableCase {
    /// The ticket.
    pub ticket_ref: String,
    /// Its page.
    pub link: String,
    /// The device.
    pub device_id: String,
    /// Its model.
    pub model: Option<String>,
    /// The problem.
    pub problem: Problem,
    /// The outcome's name.
    pub outcome: Option<String>,
    /// The risk it opened on.
    pub risk: f64,
    /// Days from the warning to the confirmed fault.
    pub lead_days: Option<f64>,
    /// Why it is notable, with its figures.
    pub story: String,
}

/// A root-cause record in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootCauseRow {
    /// The flag it explains.
    pub flag_id: i64,
    /// The flag's cohort and problem, in words.
    pub subject: String,
    /// The whys.
    pub whys: Vec<Why>,
    /// The root cause.
    pub conclusion: String,
    /// Who wrote it.
    pub written_by: String,
}

/// A comment a customer left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    /// The ticket.
    pub ticket_ref: String,
    /// Result, speed, service.
    pub stars: [u8; 3],
    /// What they wrote.
    pub text: String,
}

/// The customers' ratings in the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Satisfaction {
    /// Ratings given.
    pub ratings: u64,
    /// Mean result stars.
    pub result: Option<f64>,
    /// Mean speed stars.
    pub speed: Option<f64>,
    /// Mean service stars.
    pub service: Option<f64>,
    /// The comments, newest first.
    pub comments: Vec<Comment>,
}

/// An action item as the report reviews it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRow {
    /// Its id.
    pub id: i64,
    /// The problem.
    pub problem: String,
    /// Its owner.
    pub owner: String,
    /// Due, `YYYY-MM-DD`.
    pub due: String,
    /// Where it stands.
    pub status: ActionStatus,
    /// How it reads at the period's end.
    pub review: Review,
    /// The KPI in words.
    pub kpi: String,
    /// Its target.
    pub target: String,
    /// The report figure measuring it.
    pub measure: Option<String>,
    /// That figure in this period.
    pub value: Option<f64>,
    /// That figure in the period the item was raised.
    pub baseline: Option<f64>,
    /// Whether the figure meets the target (`null`: not measured, or no baseline).
    pub met: Option<bool>,
    /// Where it was raised.
    pub source: String,
    /// Whether it was raised in this period (else carried over for review).
    pub raised_here: bool,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `fleet-report/1`.
    pub schema: String,
    /// The period, `2026-11` or `2026-W48`.
    pub period: String,
    /// The period before, compared against.
    pub previous_period: String,
    /// The period's start, ms.
    pub from_ms: u64,
    /// Its end (exclusive), ms.
    pub to_ms: u64,
    /// When the report was made, ms.
    pub generated_ms: u64,
    /// Two sentences.
    pub summary: String,
    /// The figures against the previous period.
    pub kpis: Vec<Kpi>,
    /// Problem frequency.
    pub problems: Vec<ProblemCount>,
    /// The cohort table: SKUs, batches, firmware.
    pub cohorts: Vec<CohortRow>,
    /// Cells tested in the watch's one false-discovery family.
    pub cohort_tests: usize,
    /// Firmware versions against their predecessors.
    pub firmware: Vec<FirmwareRow>,
    /// Outcomes kept out of the failure rates.
    pub excluded: Vec<ExcludedRow>,
    /// Flags standing in the period.
    pub flags: Vec<FlagRow>,
    /// The trend, oldest first, this period last.
    pub trend: Vec<TrendPoint>,
    /// One or two cases.
    pub notable: Vec<NotableCase>,
    /// Root-cause records of the flags standing.
    pub root_causes: Vec<RootCauseRow>,
    /// What customers said.
    pub satisfaction: Satisfaction,
    /// Action items: raised here, and earlier ones still open or closed in the period.
    pub actions: Vec<ActionRow>,
}

fn day(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// `YYYY-MM-DD HH:MM` of `ms`.
pub fn day_time(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// A q-value as people read it: three decimals, or a power of ten when smaller.
pub fn q_text(q: f64) -> String {
    if q < 1e-15 {
        "< 1e-15".to_owned()
    } else if q < 0.001 {
        format!("{q:.1e}")
    } else {
        format!("{q:.3}")
    }
}

fn plural(n: f64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1.0 { one } else { many })
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn subject(f: &FlagRecord) -> String {
    let what = f
        .flag
        .problem
        .map_or("unexpected restarts", Problem::as_str);
    format!(
        "{} {} — {}",
        f.flag.kind.as_str().replace('_', " "),
        f.flag.cohort,
        what
    )
}

/// The report for `period` made at `now_ms` from `facts` (the fleet facts as stored:
/// they are cut at the period's end here).
pub fn build(
    period: &str,
    facts: &ReportFacts,
    watch_config: &WatchConfig,
    now_ms: u64,
) -> Result<Report, String> {
    let (from, to, kind) = period_range(period)?;
    let previous = trend::previous(period)?;
    let (prev_from, _, _) = period_range(&previous)?;
    let s = &facts.service;
    let kpis = kpis::kpis(s, prev_from, from, to);
    let problems = kpis::problems(s, from, to);

    let fleet = facts.fleet.as_of(to);
    let watched = watch::run(&fleet, watch_config, to);
    let flagged: std::collections::HashSet<(Dimension, &str, Problem)> = watched
        .flags
        .iter()
        .filter_map(|f| {
            let dim = match f.kind {
                FlagKind::Model => Dimension::Model,
                FlagKind::Batch => Dimension::Batch,
                FlagKind::Firmware => Dimension::Firmware,
                _ => return None,
            };
            Some((dim, f.cohort.as_str(), f.problem?))
        })
        .collect();
    let mut cohorts = Vec::new();
    for dim in [Dimension::Model, Dimension::Batch, Dimension::Firmware] {
        let mut rows: Vec<&crate::cohorts::table::Cell> = watched
            .cells
            .iter()
            .filter(|c| c.dimension == dim && c.observed > 0)
            .collect();
        rows.sort_by(|a, b| {
            a.q_value
                .total_cmp(&b.q_value)
                .then(b.shrunk_rate.total_cmp(&a.shrunk_rate))
        });
        cohorts.extend(rows.into_iter().take(COHORT_ROWS).map(|c| CohortRow {
            dimension: dim,
            cohort: c.cohort.clone(),
            problem: c.problem,
            devices: c.devices,
            exposure_days: c.exposure_days,
            failures: c.observed,
            expected: c.expected,
            rate: c.rate.rate,
            rate_low: c.rate.low,
            rate_high: c.rate.high,
            expected_rate: c.expected_rate,
            shrunk_rate: c.shrunk_rate,
            q_value: c.q_value,
            flagged: flagged.contains(&(dim, c.cohort.as_str(), c.problem)),
        }));
    }
    let firmware = watched
        .firmware
        .iter()
        .map(|f| FirmwareRow {
            firmware: f.firmware.clone(),
            predecessor: f.predecessor.clone(),
            device_days: f.device_days,
            restarts_per_device_day: f.restarts_per_device_day,
            predecessor_restarts_per_device_day: f.predecessor_restarts_per_device_day,
            crash_free_hours_per_device_day: f.crash_free_hours_per_device_day,
            predecessor_crash_free_hours_per_device_day: f
                .predecessor_crash_free_hours_per_device_day,
            q_value: f.q_value,
        })
        .collect();
    let excluded = watched
        .excluded
        .iter()
        .map(|e| ExcludedRow {
            problem: e.problem,
            outcomes: e.outcomes,
        })
        .collect();

    let standing: Vec<&FlagRecord> = facts
        .flags
        .iter()
        .filter(|f| {
            f.first_flagged_ms < to && (f.status != "dismissed" || f.last_flagged_ms >= from)
        })
        .collect();
    let flags: Vec<FlagRow> = standing
        .iter()
        .map(|f| FlagRow {
            id: f.id,
            kind: f.flag.kind,
            cohort: f.flag.cohort.clone(),
            problem: f.flag.problem,
            evidence: format!(
                "{} observed against {:.1} expected (q = {})",
                f.flag.evidence.observed,
                f.flag.evidence.expected,
                q_text(f.flag.evidence.q_value)
            ),
            first_flagged_ms: f.first_flagged_ms,
            new: f.first_flagged_ms >= from,
            status: f.status.clone(),
            link: format!("/desk/flags/{}", f.id),
        })
        .collect();
    let root_causes = facts
        .root_causes
        .iter()
        .filter(|r| (r.written_ms.max(0) as u64) < to)
        .filter_map(|r| {
            let f = standing.iter().find(|f| f.id == r.flag_id)?;
            Some(RootCauseRow {
                flag_id: r.flag_id,
                subject: subject(f),
                whys: r.whys.clone(),
                conclusion: r.conclusion.clone(),
                written_by: r.written_by.clone(),
            })
        })
        .collect();

    let mut trend = trend::trend(s, &fleet.devices, &trend::periods(period, TREND_PERIODS)?);
    // Periods before any device was in service say nothing.
    while trend.len() > 1 && trend[0].exposure_days == 0.0 && trend[0].tickets == 0 {
        trend.remove(0);
    }
    let notable = notable(s, from, to);
    let satisfaction = satisfaction(s, from, to);
    let actions = action_rows(facts, kind, from, to);
    let kpi = |k: &str| kpis.iter().find(|x| x.key == k);
    let summary = summary(period, &previous, &kpis, &flags, kpi("caught_early"));
    Ok(Report {
        schema: SCHEMA.to_owned(),
        period: period.to_owned(),
        previous_period: previous,
        from_ms: from,
        to_ms: to,
        generated_ms: now_ms,
        summary,
        kpis,
        problems,
        cohorts,
        cohort_tests: watched.tests,
        firmware,
        excluded,
        flags,
        trend,
        notable,
        root_causes,
        satisfaction,
        actions,
    })
}

fn summary(
    period: &str,
    previous: &str,
    kpis: &[Kpi],
    flags: &[FlagRow],
    caught: Option<&Kpi>,
) -> String {
    let get = |k: &str| kpis.iter().find(|x| x.key == k);
    let n = |k: &str| get(k).and_then(|x| x.value).unwrap_or(0.0);
    let tickets = get("tickets");
    let change = match tickets.and_then(|t| Some((t.value?, t.previous?))) {
        Some((now, before)) if before > 0.0 => {
            format!("{:+.0} % on {previous}", (now / before - 1.0) * 100.0)
        }
        _ => format!("none in {previous}"),
    };
    let lead = get("lead_days")
        .and_then(|x| x.value)
        .map_or_else(String::new, |d| format!(", a median {d:.1} days ahead"));
    let first = format!(
        "In {period} the service opened {} ({change}) and confirmed {} before the customer noticed{lead}.",
        plural(n("tickets"), "ticket", "tickets"),
        plural(caught.and_then(|c| c.value).unwrap_or(0.0), "fault", "faults")
    );
    let new: Vec<&FlagRow> = flags.iter().filter(|f| f.new).collect();
    let watch = match new.first() {
        None if flags.is_empty() => "The cohort watch flagged no cohort".to_owned(),
        None => format!("No new cohort was flagged ({} still standing)", flags.len()),
        Some(f) => format!(
            "The cohort watch flagged {} new {} (first: {} {}{})",
            new.len(),
            if new.len() == 1 { "cohort" } else { "cohorts" },
            f.kind.as_str().replace('_', " "),
            f.cohort,
            f.problem
                .map_or_else(String::new, |p| format!(", {}", p.as_str()))
        ),
    };
    let conv = get("proactive_conversion")
        .and_then(|x| x.value)
        .map_or_else(
            || "no offer went out".to_owned(),
            |c| format!("{:.0} % of proactive offers were accepted", c * 100.0),
        );
    let sat = get("satisfaction").and_then(|x| x.value).map_or_else(
        || "no customer rated the service".to_owned(),
        |s| format!("customers rated the service {s:.1} of 5"),
    );
    format!("{first} {watch}; {conv} and {sat}.")
}

/// Up to two cases: the confirmed fault caught with the longest lead, and the riskiest
/// ticket opened in the period on another device.
fn notable(s: &ServiceFacts, from: u64, to: u64) -> Vec<NotableCase> {
    let case = |t: &TicketFact, story: String| NotableCase {
        ticket_ref: t.ticket_ref.clone(),
        link: format!("/desk/tickets/{}", t.id),
        device_id: t.device_id.clone(),
        model: t.model.clone(),
        problem: t.problem,
        outcome: t.outcome.map(|o| o.as_str().to_owned()),
        risk: t.risk,
        lead_days: t.confirmed().and_then(|_| lead_days(t)),
        story,
    };
    let mut out = Vec::new();
    let caught = s
        .tickets
        .iter()
        .filter(|t| t.closed_ms.is_some_and(|c| (from..to).contains(&c)) && t.confirmed().is_some())
        .max_by(|a, b| {
            lead_days(a)
                .unwrap_or(0.0)
                .total_cmp(&lead_days(b).unwrap_or(0.0))
                .then(b.id.cmp(&a.id))
        });
    if let Some(t) = caught {
        let p = t.confirmed().expect("confirmed");
        out.push(case(
            t,
            format!(
                "Opened at risk {:.2} by {} on {}; a {} fault was confirmed {:.1} days after the telemetry warned, before the customer reported anything.",
                t.risk,
                t.model_version,
                day(t.opened_ms),
                p.as_str(),
                lead_days(t).unwrap_or(0.0)
            ),
        ));
    }
    let riskiest = s
        .tickets
        .iter()
        .filter(|t| (from..to).contains(&t.opened_ms))
        .filter(|t| out.iter().all(|c| c.device_id != t.device_id))
        .max_by(|a, b| a.risk.total_cmp(&b.risk).then(b.id.cmp(&a.id)));
    if let Some(t) = riskiest {
        let status = match (t.outcome, t.closed_ms) {
            (Some(o), Some(c)) => {
                format!("resolved {} as {}", day(c), o.as_str().replace('_', " "))
            }
            _ => "still open at the period's end".to_owned(),
        };
        out.push(case(
            t,
            format!(
                "The riskiest ticket of the period: {} at risk {:.2} on {}, {status}.",
                t.problem.as_str(),
                t.risk,
                day(t.opened_ms)
            ),
        ));
    }
    out
}

fn satisfaction(s: &ServiceFacts, from: u64, to: u64) -> Satisfaction {
    let rated: Vec<_> = s
        .ratings
        .iter()
        .filter(|r| (from..to).contains(&r.rated_ms))
        .collect();
    let of = |i: usize| {
        mean(
            &rated
                .iter()
                .map(|r| f64::from(r.stars[i]))
                .collect::<Vec<_>>(),
        )
    };
    let mut comments: Vec<Comment> = rated
        .iter()
        .rev()
        .filter_map(|r| {
            let text = r.comment.as_deref()?.trim();
            (!text.is_empty()).then(|| Comment {
                ticket_ref: r.ticket_ref.clone(),
                stars: r.stars,
                text: text.to_owned(),
            })
        })
        .collect();
    comments.truncate(20);
    Satisfaction {
        ratings: rated.len() as u64,
        result: of(0),
        speed: of(1),
        service: of(2),
        comments,
    }
}

/// The action items a period reviews: raised before its end and not closed before its
/// start.
fn action_rows(facts: &ReportFacts, kind: Period, from: u64, to: u64) -> Vec<ActionRow> {
    let ms = |v: i64| v.max(0) as u64;
    facts
        .actions
        .iter()
        .filter(|a| ms(a.created_ms) < to && a.done_ms.is_none_or(|d| ms(d) >= from))
        .map(|a| {
            // The status as it stood at the period's end.
            let (status, done) = match a.done_ms.map(ms) {
                Some(d) if d >= to => (ActionStatus::InProgress, None),
                d => (a.status, d),
            };
            let raised_in = period_of(ms(a.created_ms), kind);
            let (value, baseline, met) = match a.measure.as_deref() {
                Some(m) => {
                    let value = kpis::measure(&facts.service, m, from, to).ok().flatten();
                    let baseline = period_range(&raised_in).ok().and_then(|(f, t, _)| {
                        kpis::measure(&facts.service, m, f, t).ok().flatten()
                    });
                    let met = match (Target::parse(&a.target), value) {
                        (Some(target), Some(v)) => target.met(v, baseline),
                        _ => None,
                    };
                    (value, baseline, met)
                }
                None => (None, None, None),
            };
            ActionRow {
                id: a.id,
                problem: a.problem.clone(),
                owner: a.owner.clone(),
                due: day(ms(a.due_ms)),
                status,
                review: review(status, ms(a.due_ms), done, to),
                kpi: a.kpi.clone(),
                target: a.target.clone(),
                measure: a.measure.clone(),
                value,
                baseline,
                met,
                source: a.source.clone(),
                raised_here: ms(a.created_ms) >= from,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cohorts::DeviceFacts;
    use crate::report::kpis::RatingFact;
    use crate::tickets::work::Outcome;
    use crate::tickets::Tier;

    const D: u64 = 86_400_000;

    fn facts() -> ReportFacts {
        let nov = period_range("2026-11").unwrap().0;
        let devices: Vec<DeviceFacts> = (0..20)
            .map(|i| DeviceFacts {
                device_id: format!("d{i}"),
                model: Some("S1".into()),
                batch: Some(if i < 5 { "A12" } else { "A11" }.into()),
                firmware: Some("3.2.0".into()),
                purchased_ms: Some(nov - 200 * D),
                from_ms: nov - 120 * D,
                to_ms: nov + 25 * D,
            })
            .collect();
        let tickets: Vec<TicketFact> = (0..4)
            .map(|i| TicketFact {
                id: i + 1,
                ticket_ref: format!("T-{i}"),
                device_id: format!("d{i}"),
                model: Some("S1".into()),
                problem: Problem::Battery,
                tier: Tier::Medium,
                opened_ms: nov + (2 + i as u64) * D,
                closed_ms: Some(nov + (9 + i as u64) * D),
                outcome: Some(Outcome::BatteryReplaced),
                outcome_category: None,
                breached_ms: None,
                offered_ms: Some(nov + (2 + i as u64) * D + 60_000),
                accepted_ms: (i % 2 == 0).then_some(nov + (3 + i as u64) * D),
                scored_ms: Some(nov + (1 + i as u64) * D),
                risk: 0.8,
                model_version: "forest-7".into(),
            })
            .collect();
        let fleet = FleetFacts {
            devices,
            failures: tickets
                .iter()
                .map(|t| crate::cohorts::Incident {
                    device_id: t.device_id.clone(),
                    problem: t.problem,
                    at_ms: t.opened_ms,
                })
                .collect(),
            ..FleetFacts::default()
        };
        ReportFacts {
            service: ServiceFacts {
                tickets,
                ratings: vec![RatingFact {
                    ticket_ref: "T-0".into(),
                    stars: [5, 4, 5],
                    comment: Some("Fixed before it broke.".into()),
                    rated_ms: nov + 12 * D,
                }],
                tradeins: vec![],
            },
            fleet,
            ..ReportFacts::default()
        }
    }

    #[test]
    fn a_report_is_built_from_its_period_alone() {
        let f = facts();
        let r = build("2026-11", &f, &WatchConfig::default(), 0).unwrap();
        assert_eq!(r.schema, SCHEMA);
        assert_eq!(r.previous_period, "2026-10");
        // Six periods but June, before any device was watched.
        assert_eq!(r.trend.len(), TREND_PERIODS - 1);
        assert_eq!(r.trend[0].period, "2026-07");
        let caught = r.kpis.iter().find(|k| k.key == "caught_early").unwrap();
        assert_eq!((caught.value, caught.previous), (Some(4.0), Some(0.0)));
        // The batch with every failure heads the table.
        let top = r
            .cohorts
            .iter()
            .find(|c| c.dimension == Dimension::Batch)
            .unwrap();
        assert_eq!((top.cohort.as_str(), top.failures), ("A12", 4));
        assert_eq!(r.notable.len(), 2);
        assert_eq!(r.notable[0].lead_days, Some(8.0));
        assert_eq!(r.satisfaction.comments[0].text, "Fixed before it broke.");
        assert!(
            r.summary
                .starts_with("In 2026-11 the service opened 4 tickets"),
            "{}",
            r.summary
        );
        // October knows nothing of November.
        let oct = build("2026-10", &f, &WatchConfig::default(), 0).unwrap();
        assert!(oct.cohorts.is_empty() && oct.notable.is_empty());
        assert!(build("2026-13", &f, &WatchConfig::default(), 0).is_err());
    }

    #[test]
    fn the_documented_report_reads_as_a_report() {
        let doc = include_str!("../../../docs/reports.md");
        let marker = "<!-- report example -->\n```json\n";
        let start = doc
            .find(marker)
            .expect("docs/reports.md has a report example")
            + marker.len();
        let end = start + doc[start..].find("```").expect("the example ends");
        let example: serde_json::Value =
            serde_json::from_str(&doc[start..end]).expect("the example is JSON");
        let r: Report = serde_json::from_value(example.clone()).expect("the example is a report");
        assert_eq!(r.schema, SCHEMA);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            example,
            "every documented field, and no other"
        );
        // The documented figures are the ones a report has.
        let made = build("2026-11", &facts(), &WatchConfig::default(), 0).unwrap();
        let keys = |r: &Report| r.kpis.iter().map(|k| k.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&r), keys(&made));
        for k in keys(&made) {
            assert!(doc.contains(&format!("`{k}`")), "docs/reports.md names {k}");
        }
    }
}
