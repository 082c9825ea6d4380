//! The cohort table: for each cohort of a dimension and each problem, the devices,
//! their exposure (device-days watched), the events counted and the number the rest of
//! the fleet predicts at the same ages. Age matters: batteries wear, so an old batch
//! fails more than a young one without anything being wrong with it. Exposure and
//! events are split into age bands (days since purchase), and a cohort's expectation is
//! the sum over bands of its exposure there times the rest of the fleet's rate there.
//! A batch is compared with the other batches of its own model (a phone's battery is not
//! a hub's), every other cohort with the rest of the fleet.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike};

use super::poisson::{AnnualRate, DAYS_PER_YEAR};
use super::{Dimension, FleetFacts, Incident, Measure};
use crate::policy::Problem;

const DAY_MS: f64 = 86_400_000.0;

/// Lower edges of the age bands, days since purchase; the last is open-ended. The
/// first three are the early-warning windows' edges.
pub const AGE_BANDS_DAYS: [f64; 9] = [0.0, 30.0, 60.0, 90.0, 180.0, 365.0, 545.0, 730.0, 1095.0];
/// Bands, with one more for devices whose purchase date is unknown.
const BANDS: usize = AGE_BANDS_DAYS.len() + 1;
const UNKNOWN_AGE: usize = AGE_BANDS_DAYS.len();
const PROBLEMS: usize = Problem::ALL.len();

/// The name of the cohort of devices a dimension knows nothing about.
pub const UNKNOWN: &str = "unknown";

/// One cohort and problem: what was counted, what was expected, and the tests' results
/// (filled in by [`super::watch`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Cell {
    /// The dimension.
    pub dimension: Dimension,
    /// The cohort's name within it (a model id, a batch id, a version, `2026-03`).
    pub cohort: String,
    /// What it is compared within: a batch's model; `None` for the whole fleet.
    pub within: Option<String>,
    /// The problem.
    pub problem: Problem,
    /// `None`: the devices' whole watched life; `Some(n)`: their first n days after purchase.
    pub window_days: Option<u32>,
    /// What `observed` counts.
    pub measure: Measure,
    /// Devices with exposure in the cohort.
    pub devices: u64,
    /// Device-days watched.
    pub exposure_days: f64,
    /// Events counted (of `measure`).
    pub observed: u64,
    /// Events the rest of the fleet at the same ages predicts.
    pub expected: f64,
    /// Events in the rest of the fleet (what `expected` was estimated from).
    pub rest_observed: u64,
    /// The cohort's share of all events (its own and the rest's) if it failed as the
    /// whole fleet does at each age: the conditional test's null share.
    pub null_share: f64,
    /// Events at the whole comparison group's rates (the cohort's own included) at its
    /// ages: what the shrinkage measures the cohort against (it is never zero while the
    /// group has any event, as `expected` is when only the cohort had them).
    pub pooled_expected: f64,
    /// Confirmed failures (equal to `observed` when that is what it counts).
    pub failures: u64,
    /// Tickets opened.
    pub tickets: u64,
    /// In simulation: failures that really happened.
    pub true_failures: Option<u64>,
    /// Outcomes kept out of the rate (no fault found, user damage, abuse).
    pub excluded: u64,
    /// Observed events per device-year, with the exact 95 % interval.
    pub rate: AnnualRate,
    /// Expected events per device-year.
    pub expected_rate: f64,
    /// The empirical-Bayes rate per device-year (the shrunk ratio times the expectation).
    pub shrunk_rate: f64,
    /// One-sided exact p-value of `observed`: conditional on all events of the cohort
    /// and the rest, binomial with the `null_share` (so a small reference group's own
    /// uncertainty counts, which a Poisson test against `expected` would ignore).
    pub p_value: f64,
    /// Benjamini–Hochberg q-value across every cell tested in the same run.
    pub q_value: f64,
    /// The first counted event, ms.
    pub first_event_ms: Option<u64>,
    /// In simulation: the first real failure, ms.
    pub first_true_ms: Option<u64>,
}

impl Cell {
    /// Observed over expected (infinite when something happened where nothing was due).
    pub fn ratio(&self) -> f64 {
        if self.expected > 0.0 {
            self.observed as f64 / self.expected
        } else if self.observed > 0 {
            f64::INFINITY
        } else {
            1.0
        }
    }
}

/// A stretch of one device's watched time in one cohort.
#[derive(Debug, Clone, PartialEq)]
struct Spell<'a> {
    device: usize,
    cohort: &'a str,
    stratum: &'a str,
    purchased_ms: Option<u64>,
    from_ms: u64,
    to_ms: u64,
}

/// The month `ms` falls in, `2026-03` (UTC).
pub fn month_of(ms: u64) -> String {
    DateTime::from_timestamp_millis(ms as i64)
        .map(|t| format!("{:04}-{:02}", t.year(), t.month()))
        .unwrap_or_else(|| UNKNOWN.to_owned())
}

/// The age band a device `age_ms` old is in; `UNKNOWN_AGE` without a purchase date.
fn band_of(age_ms: Option<i64>) -> usize {
    match age_ms {
        None => UNKNOWN_AGE,
        Some(a) => {
            let days = a.max(0) as f64 / DAY_MS;
            AGE_BANDS_DAYS
                .iter()
                .rposition(|&lo| days >= lo)
                .unwrap_or(0)
        }
    }
}

/// A spell's exposure per band, days; within the first `window` days only when given
/// (devices of unknown age then have none).
fn exposure(s: &Spell<'_>, window: Option<u32>) -> [f64; BANDS] {
    let mut out = [0.0; BANDS];
    let span = s.to_ms.saturating_sub(s.from_ms) as f64 / DAY_MS;
    let Some(p) = s.purchased_ms else {
        if window.is_none() {
            out[UNKNOWN_AGE] = span;
        }
        return out;
    };
    let from = (s.from_ms as f64 - p as f64) / DAY_MS;
    let to = (s.to_ms as f64 - p as f64) / DAY_MS;
    let cap = window.map_or(f64::INFINITY, f64::from);
    for (b, &lo) in AGE_BANDS_DAYS.iter().enumerate() {
        let hi = AGE_BANDS_DAYS
            .get(b + 1)
            .copied()
            .unwrap_or(f64::INFINITY)
            .min(cap);
        let (a, z) = (from.max(lo), to.min(hi));
        if z > a {
            out[b] += z - a;
        }
    }
    out
}

/// What one cohort accumulates.
#[derive(Debug, Clone)]
struct Tally {
    devices: HashSet<usize>,
    exposure: [f64; BANDS],
    counts: [[[u64; BANDS]; PROBLEMS]; 4],
    first: [[Option<u64>; PROBLEMS]; 4],
}

// Rows of `Tally::counts`.
const FAILURES: usize = 0;
const TICKETS: usize = 1;
const TRUTH: usize = 2;
const EXCLUDED: usize = 3;

impl Tally {
    fn new() -> Tally {
        Tally {
            devices: HashSet::new(),
            exposure: [0.0; BANDS],
            counts: [[[0; BANDS]; PROBLEMS]; 4],
            first: [[None; PROBLEMS]; 4],
        }
    }
}

fn problem_index(p: Problem) -> usize {
    Problem::ALL
        .iter()
        .position(|&q| q == p)
        .expect("every problem is listed")
}

/// The spells of a dimension: one per device, or for firmware one per device and day
/// on each version (a device with no firmware days counts on its current version).
fn spells<'a>(dim: Dimension, facts: &'a FleetFacts) -> Vec<Spell<'a>> {
    let index: HashMap<&str, usize> = facts
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.device_id.as_str(), i))
        .collect();
    let whole = |i: usize, cohort: &'a str| {
        let d = &facts.devices[i];
        Spell {
            device: i,
            cohort,
            stratum: "",
            purchased_ms: d.purchased_ms,
            from_ms: d.from_ms,
            to_ms: d.to_ms.max(d.from_ms),
        }
    };
    let name = |o: &'a Option<String>| o.as_deref().unwrap_or(UNKNOWN);
    match dim {
        Dimension::Model => (0..facts.devices.len())
            .map(|i| whole(i, name(&facts.devices[i].model)))
            .collect(),
        Dimension::Batch => (0..facts.devices.len())
            .map(|i| Spell {
                stratum: name(&facts.devices[i].model),
                ..whole(i, name(&facts.devices[i].batch))
            })
            .collect(),
        Dimension::PurchaseMonth => Vec::new(), // built with owned names below
        Dimension::Firmware => {
            let mut out = Vec::new();
            let mut covered = vec![false; facts.devices.len()];
            for day in &facts.firmware_days {
                let Some(&i) = index.get(day.device_id.as_str()) else {
                    continue;
                };
                covered[i] = true;
                out.push(Spell {
                    device: i,
                    cohort: day.firmware.as_str(),
                    stratum: "",
                    purchased_ms: facts.devices[i].purchased_ms,
                    from_ms: day.day_ms,
                    to_ms: day.day_ms + day.operational_s.min(86_400) * 1000,
                });
            }
            for (i, seen) in covered.into_iter().enumerate() {
                if !seen {
                    out.push(whole(i, name(&facts.devices[i].firmware)));
                }
            }
            out
        }
    }
}

/// The cells of one dimension, over the devices' whole life (`window` `None`) or their
/// first `window` days, for each problem and measure: counts and expectations only
/// (the tests are the watch's).
pub fn cells(
    dim: Dimension,
    window: Option<u32>,
    measures: &[Measure],
    facts: &FleetFacts,
) -> Vec<Cell> {
    let months: Vec<String>;
    let spells = if dim == Dimension::PurchaseMonth {
        months = facts
            .devices
            .iter()
            .map(|d| d.purchased_ms.map_or_else(|| UNKNOWN.to_owned(), month_of))
            .collect();
        facts
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| Spell {
                device: i,
                cohort: months[i].as_str(),
                stratum: "",
                purchased_ms: d.purchased_ms,
                from_ms: d.from_ms,
                to_ms: d.to_ms.max(d.from_ms),
            })
            .collect()
    } else {
        spells(dim, facts)
    };
    tabulate(dim, window, measures, facts, &spells)
}

fn tabulate(
    dim: Dimension,
    window: Option<u32>,
    measures: &[Measure],
    facts: &FleetFacts,
    spells: &[Spell<'_>],
) -> Vec<Cell> {
    let mut tallies: Vec<((&str, &str), Tally)> = Vec::new();
    let mut slot: HashMap<(&str, &str), usize> = HashMap::new();
    // Each device's spells, in time order, to place its events.
    let mut by_device: HashMap<usize, Vec<usize>> = HashMap::new();
    for (n, s) in spells.iter().enumerate() {
        let t = *slot.entry((s.stratum, s.cohort)).or_insert_with(|| {
            tallies.push(((s.stratum, s.cohort), Tally::new()));
            tallies.len() - 1
        });
        let x = exposure(s, window);
        if x.iter().any(|&d| d > 0.0) {
            tallies[t].1.devices.insert(s.device);
        }
        for (b, d) in x.iter().enumerate() {
            tallies[t].1.exposure[b] += d;
        }
        by_device.entry(s.device).or_default().push(n);
    }
    for list in by_device.values_mut() {
        list.sort_by_key(|&n| spells[n].from_ms);
    }
    let index: HashMap<&str, usize> = facts
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| (d.device_id.as_str(), i))
        .collect();
    let mut count = |row: usize, e: &Incident| {
        let Some(&dev) = index.get(e.device_id.as_str()) else {
            return;
        };
        let Some(list) = by_device.get(&dev) else {
            return;
        };
        // The spell it happened in, else the last one before it, else the first.
        let n = list
            .iter()
            .rev()
            .find(|&&n| spells[n].from_ms <= e.at_ms)
            .or(list.first())
            .copied()
            .expect("a listed device has a spell");
        let s = &spells[n];
        let age = s.purchased_ms.map(|p| e.at_ms as i64 - p as i64);
        if let Some(w) = window {
            match age {
                Some(a) if (a as f64) < f64::from(w) * DAY_MS => {}
                _ => return,
            }
        }
        let t = &mut tallies[slot[&(s.stratum, s.cohort)]].1;
        let k = problem_index(e.problem);
        t.counts[row][k][band_of(age)] += 1;
        let first = &mut t.first[row][k];
        *first = Some(first.map_or(e.at_ms, |f| f.min(e.at_ms)));
    };
    for e in &facts.failures {
        count(FAILURES, e);
    }
    for e in &facts.tickets {
        count(TICKETS, e);
    }
    for (e, _) in &facts.special {
        count(EXCLUDED, e);
    }
    for e in facts.truth.iter().flatten() {
        count(TRUTH, e);
    }
    // Each stratum's totals, to take each cohort's own share out of.
    let mut totals: HashMap<&str, Tally> = HashMap::new();
    for ((stratum, _), t) in &tallies {
        let total = totals.entry(stratum).or_insert_with(Tally::new);
        for b in 0..BANDS {
            total.exposure[b] += t.exposure[b];
            for row in 0..4 {
                for k in 0..PROBLEMS {
                    total.counts[row][k][b] += t.counts[row][k][b];
                }
            }
        }
    }
    tallies.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    for ((stratum, name), t) in &tallies {
        let total = &totals[stratum];
        let exposure_days: f64 = t.exposure.iter().sum();
        let total_days: f64 = total.exposure.iter().sum();
        // A cohort with no exposure, or that is the whole fleet, has nothing to be
        // compared with.
        if exposure_days <= 0.0 || total_days - exposure_days <= 1e-9 * total_days {
            continue;
        }
        for &measure in measures {
            let row = match measure {
                Measure::Failures => FAILURES,
                Measure::Tickets => TICKETS,
            };
            for (k, &problem) in Problem::ALL.iter().enumerate() {
                let expected = expectation(t, total, row, k);
                let observed: u64 = t.counts[row][k].iter().sum();
                let all: u64 = total.counts[row][k].iter().sum();
                let pooled_expected = pooled(t, total, row, k);
                let null_share = if all > 0 {
                    (pooled_expected / all as f64).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let sum = |r: usize| t.counts[r][k].iter().sum::<u64>();
                out.push(Cell {
                    dimension: dim,
                    cohort: (*name).to_owned(),
                    within: (!stratum.is_empty()).then(|| (*stratum).to_owned()),
                    problem,
                    window_days: window,
                    measure,
                    devices: t.devices.len() as u64,
                    exposure_days,
                    observed,
                    expected,
                    rest_observed: all - observed,
                    null_share,
                    pooled_expected,
                    failures: sum(FAILURES),
                    tickets: sum(TICKETS),
                    true_failures: facts.truth.as_ref().map(|_| sum(TRUTH)),
                    excluded: sum(EXCLUDED),
                    rate: AnnualRate::of(observed, exposure_days),
                    expected_rate: expected / exposure_days * DAYS_PER_YEAR,
                    shrunk_rate: 0.0,
                    p_value: 1.0,
                    q_value: 1.0,
                    first_event_ms: t.first[row][k],
                    first_true_ms: t.first[TRUTH][k],
                });
            }
        }
    }
    out
}

/// Events of `row`, problem `k`, the cohort would have at the whole stratum's (its own
/// and the rest's) rate at each age.
fn pooled(t: &Tally, total: &Tally, row: usize, k: usize) -> f64 {
    (0..BANDS)
        .filter(|&b| total.exposure[b] > 0.0)
        .map(|b| t.exposure[b] * total.counts[row][k][b] as f64 / total.exposure[b])
        .sum()
}

/// Events of `row`, problem `k`, the rest of the fleet at the cohort's ages predicts:
/// Σ over bands of the cohort's exposure times the rest's rate there. A band where the
/// rest has no exposure takes the rest's rate over all ages.
fn expectation(t: &Tally, total: &Tally, row: usize, k: usize) -> f64 {
    let rest_x: f64 = (0..BANDS).map(|b| total.exposure[b] - t.exposure[b]).sum();
    let rest_n: u64 = (0..BANDS)
        .map(|b| total.counts[row][k][b] - t.counts[row][k][b])
        .sum();
    let overall = if rest_x > 0.0 {
        rest_n as f64 / rest_x
    } else {
        0.0
    };
    (0..BANDS)
        .map(|b| {
            let x = t.exposure[b];
            if x <= 0.0 {
                return 0.0;
            }
            let rx = total.exposure[b] - x;
            let rn = total.counts[row][k][b] - t.counts[row][k][b];
            // Exposure is summed in floating point: a band the cohort has to itself
            // leaves a rounding error, not exposure.
            if rx > 1e-9 * total.exposure[b].max(1.0) {
                x * rn as f64 / rx
            } else {
                x * overall
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cohorts::DeviceFacts;

    const D: u64 = 86_400_000;

    fn device(
        id: &str,
        batch: &str,
        purchased_day: u64,
        from_day: u64,
        to_day: u64,
    ) -> DeviceFacts {
        DeviceFacts {
            device_id: id.into(),
            model: Some("m".into()),
            batch: Some(batch.into()),
            firmware: Some("1.0".into()),
            purchased_ms: Some(purchased_day * D),
            from_ms: from_day * D,
            to_ms: to_day * D,
        }
    }

    fn failure(id: &str, day: u64) -> Incident {
        Incident {
            device_id: id.into(),
            problem: Problem::Battery,
            at_ms: day * D,
        }
    }

    fn battery<'a>(cells: &'a [Cell], cohort: &str) -> &'a Cell {
        cells
            .iter()
            .find(|c| c.cohort == cohort && c.problem == Problem::Battery)
            .unwrap()
    }

    #[test]
    fn the_expectation_is_age_matched_not_a_raw_average() {
        // Batch A is young (0–30 days), batch B old (400–430 days); old devices fail
        // more. C is old too. A's expectation must come from the young rest only, which
        // is nobody else: it falls back to the rest's overall rate.
        let facts = FleetFacts {
            devices: vec![
                device("a1", "A", 1000, 1000, 1030),
                device("b1", "B", 600, 1000, 1030),
                device("b2", "B", 600, 1000, 1030),
                device("c1", "C", 600, 1000, 1030),
                device("c2", "C", 600, 1000, 1030),
            ],
            failures: vec![
                failure("c1", 1010),
                failure("c2", 1020),
                failure("b1", 1015),
            ],
            ..FleetFacts::default()
        };
        let cells = cells(Dimension::Batch, None, &[Measure::Failures], &facts);
        let b = battery(&cells, "B");
        assert_eq!((b.devices, b.observed), (2, 1));
        assert!((b.exposure_days - 60.0).abs() < 1e-9);
        // The rest at B's age (365–545 band): C's 60 days (2 failures) and nothing of A.
        assert!(
            (b.expected - 60.0 * 2.0 / 60.0).abs() < 1e-9,
            "{}",
            b.expected
        );
        let a = battery(&cells, "A");
        // Nobody else is 0–30 days old: the rest's overall rate, 3 failures in 120 days.
        assert!(
            (a.expected - 30.0 * 3.0 / 120.0).abs() < 1e-9,
            "{}",
            a.expected
        );
        assert!((b.rate.rate - 1.0 / 60.0 * DAYS_PER_YEAR).abs() < 1e-9);
        // The conditional test's share: B's 60 days of the 120 at its age (A is younger).
        assert_eq!(b.rest_observed, 2);
        assert!(
            (b.null_share - 60.0 * 3.0 / 120.0 / 3.0).abs() < 1e-9,
            "{}",
            b.null_share
        );
        assert!(b.rate.low < b.rate.rate && b.rate.rate < b.rate.high);
    }

    #[test]
    fn a_batch_is_compared_with_its_own_models_other_batches() {
        let on = |id: &str, model: &str, batch: &str| DeviceFacts {
            model: Some(model.into()),
            ..device(id, batch, 0, 0, 100)
        };
        let facts = FleetFacts {
            devices: vec![
                on("x1", "X", "X-1"),
                on("x2", "X", "X-2"),
                on("y1", "Y", "Y-1"),
                on("y2", "Y", "Y-2"),
            ],
            // Model Y's batteries fail a lot, X's rarely.
            failures: vec![
                failure("x2", 50),
                failure("y1", 10),
                failure("y2", 20),
                failure("y2", 30),
            ],
            ..FleetFacts::default()
        };
        let cells = cells(Dimension::Batch, None, &[Measure::Failures], &facts);
        let x1 = battery(&cells, "X-1");
        assert_eq!(x1.within.as_deref(), Some("X"));
        assert!(
            (x1.expected - 1.0).abs() < 1e-9,
            "X-2 only: {}",
            x1.expected
        );
        let y1 = battery(&cells, "Y-1");
        assert!(
            (y1.expected - 2.0).abs() < 1e-9,
            "Y-2 only: {}",
            y1.expected
        );
        let models = super::cells(Dimension::Model, None, &[Measure::Failures], &facts);
        assert_eq!(battery(&models, "X").within, None);
    }

    #[test]
    fn a_device_crossing_a_band_edge_splits_its_exposure() {
        let s = Spell {
            device: 0,
            cohort: "x",
            stratum: "",
            purchased_ms: Some(0),
            from_ms: 20 * D,
            to_ms: 70 * D,
        };
        let x = exposure(&s, None);
        assert_eq!(&x[..3], &[10.0, 30.0, 10.0]);
        let early = exposure(&s, Some(60));
        assert_eq!(&early[..3], &[10.0, 30.0, 0.0]);
        let unknown = Spell {
            purchased_ms: None,
            ..s
        };
        assert_eq!(exposure(&unknown, None)[UNKNOWN_AGE], 50.0);
        assert_eq!(exposure(&unknown, Some(30)).iter().sum::<f64>(), 0.0);
    }

    #[test]
    fn early_windows_count_only_events_in_the_first_days() {
        let facts = FleetFacts {
            devices: vec![device("a1", "A", 0, 0, 200), device("b1", "B", 0, 0, 200)],
            failures: vec![failure("a1", 10), failure("a1", 100), failure("b1", 150)],
            ..FleetFacts::default()
        };
        let cells = cells(Dimension::Batch, Some(30), &[Measure::Failures], &facts);
        let a = battery(&cells, "A");
        assert_eq!(a.observed, 1);
        assert!((a.exposure_days - 30.0).abs() < 1e-9);
        assert_eq!(a.first_event_ms, Some(10 * D));
    }

    #[test]
    fn firmware_exposure_follows_the_days_each_version_ran() {
        let day = |id: &str, d: u64, fw: &str| crate::cohorts::FirmwareDay {
            device_id: id.into(),
            day_ms: d * D,
            firmware: fw.into(),
            operational_s: 86_400,
            crash_free_s: 86_400,
            unexpected_restarts: 0,
            crashes: 0,
        };
        let facts = FleetFacts {
            devices: vec![device("a1", "A", 0, 0, 10), device("b1", "A", 0, 0, 10)],
            firmware_days: vec![
                day("a1", 0, "1.0"),
                day("a1", 1, "2.0"),
                day("a1", 2, "2.0"),
            ],
            failures: vec![failure("a1", 2)],
            ..FleetFacts::default()
        };
        let cells = cells(Dimension::Firmware, None, &[Measure::Failures], &facts);
        let v2 = battery(&cells, "2.0");
        assert_eq!((v2.devices, v2.observed), (1, 1));
        assert!((v2.exposure_days - 2.0).abs() < 1e-9);
        // b1 has no firmware days: it counts on its current version, 1.0, for 10 days.
        let v1 = battery(&cells, "1.0");
        assert!((v1.exposure_days - 11.0).abs() < 1e-9);
        assert_eq!(month_of(0), "1970-01");
    }
}
