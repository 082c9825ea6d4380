//! A period's key figures, each under a stable key so an action item can name the one
//! that says whether it worked, and the next report can measure it again. Pure: the
//! facts the store gives in, the figures out.

use serde::{Deserialize, Serialize};

use crate::policy::Problem;
use crate::tickets::work::Outcome;
use crate::tickets::Tier;
use crate::tradein::totals::{totals, Milestones};

const DAY_MS: u64 = 86_400_000;

/// A ticket as the report reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketFact {
    /// Its id.
    pub id: i64,
    /// Its reference.
    pub ticket_ref: String,
    /// The device.
    pub device_id: String,
    /// The device's model (SKU), when known.
    pub model: Option<String>,
    /// The problem it opened for.
    pub problem: Problem,
    /// Its tier.
    pub tier: Tier,
    /// When it opened, ms.
    pub opened_ms: u64,
    /// When it closed, ms.
    pub closed_ms: Option<u64>,
    /// Its outcome, once resolved.
    pub outcome: Option<Outcome>,
    /// The confirmed fault's category, when given.
    pub outcome_category: Option<Problem>,
    /// When its SLA was breached, if it was.
    pub breached_ms: Option<u64>,
    /// When its offer went to the customer.
    pub offered_ms: Option<u64>,
    /// When the customer accepted it.
    pub accepted_ms: Option<u64>,
    /// Device time of the telemetry that opened it (the warning), ms.
    pub scored_ms: Option<u64>,
    /// The risk it opened on.
    pub risk: f64,
    /// The model version (or `campaign`).
    pub model_version: String,
}

impl TicketFact {
    /// The category of the fault it confirmed, if it confirmed one.
    pub fn confirmed(&self) -> Option<Problem> {
        self.outcome
            .filter(|o| o.confirms_fault())
            .map(|_| self.outcome_category.unwrap_or(self.problem))
    }
}

/// A customer's rating of a ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingFact {
    /// The ticket's reference.
    pub ticket_ref: String,
    /// Result, speed, service: 1–5 each.
    pub stars: [u8; 3],
    /// What they wrote.
    pub comment: Option<String>,
    /// When, ms.
    pub rated_ms: u64,
}

/// What the figures are computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceFacts {
    /// Every ticket.
    pub tickets: Vec<TicketFact>,
    /// Every rating.
    pub ratings: Vec<RatingFact>,
    /// Trade-ins' milestones.
    pub tradeins: Vec<Milestones>,
}

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// More is better.
    Up,
    /// Less is better.
    Down,
    /// Neither: a volume.
    Neither,
}

/// One figure of a period against the one before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kpi {
    /// Its stable key (docs/reports.md lists them).
    pub key: String,
    /// What it is, in words.
    pub label: String,
    /// Its unit.
    pub unit: String,
    /// This period's value; `null` when nothing was there to measure.
    pub value: Option<f64>,
    /// The previous period's value.
    pub previous: Option<f64>,
    /// Which way is better.
    pub better: Better,
}

fn within(t: Option<u64>, from: u64, to: u64) -> bool {
    t.is_some_and(|t| (from..to).contains(&t))
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn share(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// The lead of a confirmed fault, days: from the telemetry that warned (or the ticket's
/// opening) to the fault's confirmation.
pub fn lead_days(t: &TicketFact) -> Option<f64> {
    let closed = t.closed_ms?;
    let from = t.scored_ms.unwrap_or(t.opened_ms).min(closed);
    Some((closed - from) as f64 / DAY_MS as f64)
}

/// The value of the figure `key` over `[from, to)`; `None` when the key is unknown or
/// nothing was there to measure. `Err` names an unknown key.
pub fn measure(f: &ServiceFacts, key: &str, from: u64, to: u64) -> Result<Option<f64>, String> {
    let opened = || {
        f.tickets
            .iter()
            .filter(|t| within(Some(t.opened_ms), from, to))
    };
    let closed = || {
        f.tickets
            .iter()
            .filter(move |t| within(t.closed_ms, from, to))
    };
    let caught = || closed().filter(|t| t.confirmed().is_some());
    let rated = || {
        f.ratings
            .iter()
            .filter(|r| within(Some(r.rated_ms), from, to))
    };
    let parts: Vec<&str> = key.split(':').collect();
    let tier = |name: &str| Tier::ALL.into_iter().find(|t| t.as_str() == name);
    let problem = |name: &str| Problem::ALL.into_iter().find(|p| p.as_str() == name);
    let unknown = || Err(format!("unknown KPI {key:?} (docs/reports.md lists them)"));
    Ok(match parts.as_slice() {
        ["tickets"] => Some(opened().count() as f64),
        ["tickets", t] => match tier(t) {
            Some(t) => Some(opened().filter(|x| x.tier == t).count() as f64),
            None => return unknown(),
        },
        ["sla_met", t] => match tier(t) {
            Some(t) => {
                let c: Vec<_> = closed().filter(|x| x.tier == t).collect();
                share(
                    c.iter().filter(|x| x.breached_ms.is_none()).count(),
                    c.len(),
                )
            }
            None => return unknown(),
        },
        ["proactive_conversion"] => {
            let sent: Vec<_> = f
                .tickets
                .iter()
                .filter(|t| within(t.offered_ms, from, to))
                .collect();
            share(
                sent.iter().filter(|t| t.accepted_ms.is_some()).count(),
                sent.len(),
            )
        }
        ["offers_sent"] => Some(
            f.tickets
                .iter()
                .filter(|t| within(t.offered_ms, from, to))
                .count() as f64,
        ),
        ["satisfaction"] => {
            let r: Vec<_> = rated().collect();
            (!r.is_empty()).then(|| {
                r.iter()
                    .map(|r| r.stars.iter().map(|&s| f64::from(s)).sum::<f64>() / 3.0)
                    .sum::<f64>()
                    / r.len() as f64
            })
        }
        ["resolve_days"] => median(
            closed()
                .map(|t| {
                    (t.closed_ms.unwrap_or(0).saturating_sub(t.opened_ms)) as f64 / DAY_MS as f64
                })
                .collect(),
        ),
        ["tradeins_received"] => Some(totals(&f.tradeins, from, to).received as f64),
        ["tradeins_settled"] => Some(
            totals(&f.tradeins, from, to)
                .quote_vs_settled
                .iter()
                .map(|q| q.settled)
                .sum::<u64>() as f64,
        ),
        ["settled_value", cur] => totals(&f.tradeins, from, to)
            .quote_vs_settled
            .iter()
            .find(|q| q.currency == *cur)
            .map(|q| q.total_settled_minor as f64 / 100.0)
            .or(Some(0.0)),
        ["ewaste_kg"] => Some(totals(&f.tradeins, from, to).ewaste_kg),
        ["caught_early"] => Some(caught().count() as f64),
        ["lead_days"] => median(caught().filter_map(lead_days).collect()),
        ["faults", p] => match problem(p) {
            Some(p) => Some(caught().filter(|t| t.confirmed() == Some(p)).count() as f64),
            None => return unknown(),
        },
        ["faults", p, model] => match problem(p) {
            Some(p) => Some(
                caught()
                    .filter(|t| t.confirmed() == Some(p) && t.model.as_deref() == Some(*model))
                    .count() as f64,
            ),
            None => return unknown(),
        },
        _ => return unknown(),
    })
}

/// The currencies trade-ins were settled in over `[from, to)`.
fn currencies(f: &ServiceFacts, from: u64, to: u64) -> Vec<String> {
    totals(&f.tradeins, from, to)
        .quote_vs_settled
        .into_iter()
        .map(|q| q.currency)
        .collect()
}

/// The report's figures for `[from, to)`, each against `[prev_from, from)`.
pub fn kpis(f: &ServiceFacts, prev_from: u64, from: u64, to: u64) -> Vec<Kpi> {
    let mut rows: Vec<(String, String, &str, Better)> = vec![(
        "tickets".into(),
        "Tickets opened".into(),
        "tickets",
        Better::Neither,
    )];
    for t in Tier::ALL {
        rows.push((
            format!("tickets:{}", t.as_str()),
            format!("Tickets opened, {} tier", t.as_str()),
            "tickets",
            Better::Neither,
        ));
    }
    for t in Tier::ALL {
        rows.push((
            format!("sla_met:{}", t.as_str()),
            format!("SLA met, {} tier (of tickets resolved)", t.as_str()),
            "share",
            Better::Up,
        ));
    }
    rows.extend([
        (
            "offers_sent".into(),
            "Proactive offers sent".into(),
            "offers",
            Better::Neither,
        ),
        (
            "proactive_conversion".into(),
            "Proactive conversion (offers accepted / offers sent)".into(),
            "share",
            Better::Up,
        ),
        (
            "satisfaction".into(),
            "Customer satisfaction (mean of three ratings)".into(),
            "stars",
            Better::Up,
        ),
        (
            "resolve_days".into(),
            "Time to resolve (median)".into(),
            "days",
            Better::Down,
        ),
        (
            "tradeins_received".into(),
            "Trade-ins received".into(),
            "devices",
            Better::Neither,
        ),
        (
            "tradeins_settled".into(),
            "Trade-ins settled".into(),
            "devices",
            Better::Neither,
        ),
    ]);
    let mut curs = currencies(f, prev_from, to);
    curs.sort();
    curs.dedup();
    for c in curs {
        rows.push((
            format!("settled_value:{c}"),
            format!("Settled trade-in value, {c}"),
            "money",
            Better::Neither,
        ));
    }
    rows.extend([
        (
            "ewaste_kg".into(),
            "E-waste diverted from landfill".into(),
            "kg",
            Better::Up,
        ),
        (
            "caught_early".into(),
            "Failures caught before the customer noticed (confirmed on a proactive ticket)".into(),
            "faults",
            Better::Up,
        ),
        (
            "lead_days".into(),
            "Lead time of those (median, warning to confirmation)".into(),
            "days",
            Better::Up,
        ),
    ]);
    rows.into_iter()
        .map(|(key, label, unit, better)| Kpi {
            value: measure(f, &key, from, to).expect("a listed key"),
            previous: measure(f, &key, prev_from, from).expect("a listed key"),
            key,
            label,
            unit: unit.to_owned(),
            better,
        })
        .collect()
}

/// One problem's count in a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemCount {
    /// The category.
    pub problem: Problem,
    /// Tickets opened for it.
    pub tickets: u64,
    /// Faults of it confirmed.
    pub confirmed: u64,
    /// Outcomes kept out of the failure rates (no fault found, user damage, abuse).
    pub excluded: u64,
}

/// Problem frequency over `[from, to)`: tickets by the problem they opened for, faults by
/// the category confirmed, special cases by the ticket's problem.
pub fn problems(f: &ServiceFacts, from: u64, to: u64) -> Vec<ProblemCount> {
    let mut by: Vec<ProblemCount> = Problem::ALL
        .into_iter()
        .map(|problem| ProblemCount {
            problem,
            tickets: 0,
            confirmed: 0,
            excluded: 0,
        })
        .collect();
    let slot = |p: Problem| {
        Problem::ALL
            .iter()
            .position(|&q| q == p)
            .expect("every problem")
    };
    for t in &f.tickets {
        if within(Some(t.opened_ms), from, to) {
            by[slot(t.problem)].tickets += 1;
        }
        if within(t.closed_ms, from, to) {
            if let Some(p) = t.confirmed() {
                by[slot(p)].confirmed += 1;
            } else if t.outcome.and_then(Outcome::special_case).is_some() {
                by[slot(t.problem)].excluded += 1;
            }
        }
    }
    by
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: u64 = DAY_MS;

    pub(crate) fn ticket(id: i64, problem: Problem, tier: Tier, opened: u64) -> TicketFact {
        TicketFact {
            id,
            ticket_ref: format!("T-{id}"),
            device_id: format!("d{id}"),
            model: Some("S1".into()),
            problem,
            tier,
            opened_ms: opened,
            closed_ms: None,
            outcome: None,
            outcome_category: None,
            breached_ms: None,
            offered_ms: Some(opened),
            accepted_ms: None,
            scored_ms: None,
            risk: 0.5,
            model_version: "m1".into(),
        }
    }

    #[test]
    fn figures_count_what_happened_in_the_period() {
        use Problem::*;
        let mut a = ticket(1, Battery, Tier::Medium, 12 * D);
        a.accepted_ms = Some(13 * D);
        a.closed_ms = Some(16 * D);
        a.scored_ms = Some(11 * D);
        a.outcome = Some(Outcome::BatteryReplaced);
        let mut b = ticket(2, Thermal, Tier::High, 15 * D);
        b.closed_ms = Some(17 * D);
        b.breached_ms = Some(15 * D + 1);
        b.outcome = Some(Outcome::NoFaultFound);
        let mut c = ticket(3, Battery, Tier::Medium, 5 * D);
        c.closed_ms = Some(6 * D);
        c.outcome = Some(Outcome::FaultConfirmed);
        c.outcome_category = Some(Storage);
        let f = ServiceFacts {
            tickets: vec![a, b, c],
            ratings: vec![RatingFact {
                ticket_ref: "T-1".into(),
                stars: [5, 4, 3],
                comment: None,
                rated_ms: 17 * D,
            }],
            tradeins: vec![],
        };
        let m = |k: &str, from: u64, to: u64| measure(&f, k, from, to).unwrap();
        assert_eq!(m("tickets", 10 * D, 20 * D), Some(2.0));
        assert_eq!(m("tickets:high", 10 * D, 20 * D), Some(1.0));
        assert_eq!(m("sla_met:high", 10 * D, 20 * D), Some(0.0));
        assert_eq!(m("sla_met:medium", 10 * D, 20 * D), Some(1.0));
        assert_eq!(m("sla_met:low", 10 * D, 20 * D), None);
        assert_eq!(m("proactive_conversion", 10 * D, 20 * D), Some(0.5));
        assert_eq!(m("satisfaction", 10 * D, 20 * D), Some(4.0));
        // Closed in the period: 4 and 2 days.
        assert_eq!(m("resolve_days", 10 * D, 20 * D), Some(3.0));
        assert_eq!(m("caught_early", 10 * D, 20 * D), Some(1.0));
        assert_eq!(m("lead_days", 10 * D, 20 * D), Some(5.0));
        assert_eq!(m("faults:battery:S1", 10 * D, 20 * D), Some(1.0));
        assert_eq!(m("faults:battery:S2", 10 * D, 20 * D), Some(0.0));
        // The earlier ticket's fault was confirmed as storage, not its problem.
        assert_eq!(m("faults:storage", 0, 10 * D), Some(1.0));
        assert_eq!(m("faults:battery", 0, 10 * D), Some(0.0));
        assert!(measure(&f, "tickets:urgent", 0, D).is_err());
        assert!(measure(&f, "happiness", 0, D).is_err());

        let k = kpis(&f, 0, 10 * D, 20 * D);
        let get = |key: &str| k.iter().find(|k| k.key == key).unwrap();
        assert_eq!(get("tickets").value, Some(2.0));
        assert_eq!(get("tickets").previous, Some(1.0));
        assert_eq!(get("caught_early").previous, Some(1.0));
        assert_eq!(get("resolve_days").better, Better::Down);

        let p = problems(&f, 10 * D, 20 * D);
        let bat = p.iter().find(|p| p.problem == Battery).unwrap();
        assert_eq!((bat.tickets, bat.confirmed, bat.excluded), (1, 1, 0));
        let th = p.iter().find(|p| p.problem == Thermal).unwrap();
        assert_eq!((th.tickets, th.confirmed, th.excluded), (1, 0, 1));
    }
}
