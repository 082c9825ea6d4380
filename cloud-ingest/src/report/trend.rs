//! The trend over the periods leading to a report's: tickets opened and faults confirmed
//! per 1,000 devices in service, with the periods where a series stepped up marked. A
//! step-up is a rate that an exact test says exceeds the three periods before it (p <
//! 0.01) by at least a quarter: a noisy wobble is not one. Pure.

use serde::{Deserialize, Serialize};

use super::kpis::ServiceFacts;
use crate::cohorts::poisson::rate_ratio_upper_tail;
use crate::cohorts::DeviceFacts;
use crate::tradein::routing::{period_of, period_range};

const DAY_MS: f64 = 86_400_000.0;
/// A step-up's p-value bound.
pub const STEP_P: f64 = 0.01;
/// A step-up's least rate ratio against the periods before it.
pub const STEP_RATIO: f64 = 1.25;
/// Periods a step-up is measured against.
pub const BASELINE_PERIODS: usize = 3;

/// One period of the trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    /// The period's name.
    pub period: String,
    /// Device-days in service in it.
    pub exposure_days: f64,
    /// Tickets opened.
    pub tickets: u64,
    /// Faults confirmed.
    pub faults: u64,
    /// Tickets per 1,000 devices in service over the period.
    pub tickets_per_1000: f64,
    /// Faults per 1,000 devices in service over the period.
    pub faults_per_1000: f64,
    /// Whether tickets stepped up here.
    pub tickets_step_up: bool,
    /// Whether faults stepped up here.
    pub faults_step_up: bool,
}

/// The period before `name`, named the same way.
pub fn previous(name: &str) -> Result<String, String> {
    let (from, _, kind) = period_range(name)?;
    if from == 0 {
        return Err(format!("period {name:?} has no period before it"));
    }
    Ok(period_of(from - 1, kind))
}

/// `n` periods ending with `name`, oldest first (fewer when the calendar starts sooner).
pub fn periods(name: &str, n: usize) -> Result<Vec<String>, String> {
    let mut out = vec![name.to_owned()];
    while out.len() < n {
        match previous(out.last().expect("one period")) {
            Ok(p) => out.push(p),
            Err(_) => break,
        }
    }
    out.reverse();
    Ok(out)
}

/// Device-days in service over `[from, to)`.
pub fn exposure(devices: &[DeviceFacts], from: u64, to: u64) -> f64 {
    devices
        .iter()
        .map(|d| {
            let a = d.from_ms.max(from);
            let b = d.to_ms.min(to);
            b.saturating_sub(a) as f64 / DAY_MS
        })
        .sum()
}

/// Whether `count` over `exposure` stepped up against the `base` points before it.
fn stepped(count: u64, exposure: f64, base: &[(u64, f64)]) -> bool {
    let (b, e) = base
        .iter()
        .fold((0u64, 0.0), |(b, e), &(c, x)| (b + c, e + x));
    if base.len() < BASELINE_PERIODS || e <= 0.0 || exposure <= 0.0 || count == 0 {
        return false;
    }
    let ratio = if b == 0 {
        f64::INFINITY
    } else {
        (count as f64 / exposure) / (b as f64 / e)
    };
    ratio >= STEP_RATIO && rate_ratio_upper_tail(count, exposure, b, e) < STEP_P
}

/// The trend over `names` (oldest first).
pub fn trend(f: &ServiceFacts, devices: &[DeviceFacts], names: &[String]) -> Vec<TrendPoint> {
    let mut points: Vec<TrendPoint> = Vec::new();
    for name in names {
        let Ok((from, to, _)) = period_range(name) else {
            continue;
        };
        let x = exposure(devices, from, to);
        let days = (to - from) as f64 / DAY_MS;
        let per_1000 = |n: u64| {
            if x > 0.0 {
                n as f64 * 1000.0 * days / x
            } else {
                0.0
            }
        };
        let tickets = f
            .tickets
            .iter()
            .filter(|t| (from..to).contains(&t.opened_ms))
            .count() as u64;
        let faults = f
            .tickets
            .iter()
            .filter(|t| {
                t.closed_ms.is_some_and(|c| (from..to).contains(&c)) && t.confirmed().is_some()
            })
            .count() as u64;
        let base = &points[points.len().saturating_sub(BASELINE_PERIODS)..];
        let tb: Vec<(u64, f64)> = base.iter().map(|p| (p.tickets, p.exposure_days)).collect();
        let fb: Vec<(u64, f64)> = base.iter().map(|p| (p.faults, p.exposure_days)).collect();
        points.push(TrendPoint {
            period: name.clone(),
            exposure_days: x,
            tickets,
            faults,
            tickets_per_1000: per_1000(tickets),
            faults_per_1000: per_1000(faults),
            tickets_step_up: stepped(tickets, x, &tb),
            faults_step_up: stepped(faults, x, &fb),
        });
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Problem;
    use crate::report::kpis::TicketFact;
    use crate::tickets::Tier;

    fn fact(id: i64, opened: u64) -> TicketFact {
        TicketFact {
            id,
            ticket_ref: format!("T-{id}"),
            device_id: format!("d{id}"),
            model: None,
            problem: Problem::Battery,
            tier: Tier::Medium,
            opened_ms: opened,
            closed_ms: None,
            outcome: None,
            outcome_category: None,
            breached_ms: None,
            offered_ms: None,
            accepted_ms: None,
            scored_ms: None,
            risk: 0.5,
            model_version: "m".into(),
        }
    }

    #[test]
    fn periods_walk_back_across_years_and_weeks() {
        assert_eq!(previous("2026-01").unwrap(), "2025-12");
        assert_eq!(previous("2026-W01").unwrap(), "2025-W52");
        assert_eq!(
            periods("2026-02", 4).unwrap(),
            ["2025-11", "2025-12", "2026-01", "2026-02"]
        );
        assert!(previous("2026-13").is_err());
    }

    #[test]
    fn a_jump_is_a_step_up_and_a_wobble_is_not() {
        let names = periods("2026-06", 6).unwrap();
        // 1,000 devices in service all year.
        let devices: Vec<DeviceFacts> = (0..1000)
            .map(|i| DeviceFacts {
                device_id: format!("d{i}"),
                model: None,
                batch: None,
                firmware: None,
                purchased_ms: None,
                from_ms: period_range("2026-01").unwrap().0,
                to_ms: period_range("2026-07").unwrap().0,
            })
            .collect();
        // 20 tickets a month, 23 in May (a wobble), 60 in June (a jump).
        let mut tickets = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let from = period_range(name).unwrap().0;
            let n = match i {
                4 => 23,
                5 => 60,
                _ => 20,
            };
            for k in 0..n {
                tickets.push(fact((i * 100 + k) as i64, from + k as u64 * 1000));
            }
        }
        let f = ServiceFacts {
            tickets,
            ..Default::default()
        };
        let t = trend(&f, &devices, &names);
        assert_eq!(t.len(), 6);
        let steps: Vec<bool> = t.iter().map(|p| p.tickets_step_up).collect();
        assert_eq!(steps, [false, false, false, false, false, true]);
        assert_eq!(t[5].tickets, 60);
        // 60 tickets over 30 days of 1,000 devices: 60 per 1,000.
        assert!((t[5].tickets_per_1000 - 60.0).abs() < 1e-9);
        assert!(t.iter().all(|p| !p.faults_step_up));
    }
}
