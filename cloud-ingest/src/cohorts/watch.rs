//! The cohort watch, purely: every cohort cell of every dimension, the early-life
//! windows of batches, and the firmware comparisons, tested in one family (BH across
//! all of them), shrunk per dimension and problem, and the cells that stand out
//! flagged with their evidence.

use serde::{Deserialize, Serialize};

use super::fdr::q_values;
use super::firmware::{self, FirmwareComparison};
use super::poisson::{share_upper_tail, DAYS_PER_YEAR};
use super::shrinkage::Prior;
use super::table::{self, Cell};
use super::{Dimension, FleetFacts, Measure};
use crate::policy::Problem;

/// `[cohorts]`: how the watch decides and how often it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchConfig {
    /// The false discovery rate allowed across all cells (BH), in (0, 0.5].
    pub fdr: f64,
    /// The fewest events a cell needs before it can be flagged.
    pub min_events: u64,
    /// Early-warning windows after purchase, days, for batches.
    pub early_windows_days: Vec<u32>,
    /// Seconds between runs inside `serve` (wall clock); 0 runs it only on demand.
    pub interval_s: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            fdr: 0.05,
            min_events: 3,
            early_windows_days: vec![30, 60, 90],
            interval_s: 3600,
        }
    }
}

impl WatchConfig {
    /// Checks values that parse but do not make sense.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.fdr > 0.0 && self.fdr <= 0.5) {
            return Err(format!("cohorts.fdr must be in (0, 0.5], not {}", self.fdr));
        }
        if self.min_events == 0 {
            return Err("cohorts.min_events must be at least 1".into());
        }
        if let Some(w) = self.early_windows_days.iter().find(|&&w| w == 0 || w > 365) {
            return Err(format!(
                "cohorts.early_windows_days must each be 1 to 365, not {w}"
            ));
        }
        Ok(())
    }
}

/// What a flag is about.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    /// A model failing more than the fleet.
    Model,
    /// A batch.
    Batch,
    /// A firmware version's failures.
    Firmware,
    /// A purchase month.
    PurchaseMonth,
    /// A firmware version restarting more than its predecessor.
    FirmwareRegression,
}

impl FlagKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FlagKind::Model => "model",
            FlagKind::Batch => "batch",
            FlagKind::Firmware => "firmware",
            FlagKind::PurchaseMonth => "purchase_month",
            FlagKind::FirmwareRegression => "firmware_regression",
        }
    }

    fn of(d: Dimension) -> FlagKind {
        match d {
            Dimension::Model => FlagKind::Model,
            Dimension::Batch => FlagKind::Batch,
            Dimension::Firmware => FlagKind::Firmware,
            Dimension::PurchaseMonth => FlagKind::PurchaseMonth,
        }
    }
}

/// The numbers behind a flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Evidence {
    /// Devices in the cohort.
    pub devices: u64,
    /// Device-days watched.
    pub exposure_days: f64,
    /// Events counted.
    pub observed: u64,
    /// Events expected (the rest of the fleet at the same ages, or the predecessor).
    pub expected: f64,
    /// Observed per device-year (per device-day for a firmware regression).
    pub rate: f64,
    /// Lower end of its 95 % interval.
    pub rate_low: f64,
    /// Upper end.
    pub rate_high: f64,
    /// Expected per device-year (per device-day for a firmware regression).
    pub expected_rate: f64,
    /// The empirical-Bayes rate (equal to `rate` for a firmware regression).
    pub shrunk_rate: f64,
    /// The exact test's p-value.
    pub p_value: f64,
    /// Its BH q-value.
    pub q_value: f64,
    /// The first event counted, ms.
    pub first_event_ms: Option<u64>,
    /// In simulation: the first real failure, ms.
    pub first_true_ms: Option<u64>,
    /// The version compared with (firmware regressions).
    pub predecessor: Option<String>,
    /// Crash-free hours per device-day on this version (firmware regressions).
    pub crash_free_hours: Option<f64>,
    /// And on the predecessor.
    pub predecessor_crash_free_hours: Option<f64>,
}

/// A cohort that stands out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Flag {
    /// What it is about.
    pub kind: FlagKind,
    /// The cohort (a batch id, a version, ...).
    pub cohort: String,
    /// The problem; `None` for a firmware regression (restarts).
    pub problem: Option<Problem>,
    /// `None`: whole life; `Some(n)`: the first n days after purchase.
    pub window_days: Option<u32>,
    /// What was counted.
    pub measure: Measure,
    /// Why.
    pub evidence: Evidence,
}

impl Flag {
    /// The key a flag is recorded under: one record per cohort, problem, window, measure.
    pub fn key(&self) -> String {
        format!(
            "{}:{}:{}:{}:{}",
            self.kind.as_str(),
            self.cohort,
            self.problem.map_or("restarts", Problem::as_str),
            self.window_days
                .map_or_else(|| "life".to_owned(), |w| format!("{w}d")),
            match self.measure {
                Measure::Failures => "failures",
                Measure::Tickets => "tickets",
            }
        )
    }
}

/// Outcomes of one problem kept out of the failure rates (no fault found, user damage,
/// abuse).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Excluded {
    /// The problem.
    pub problem: Problem,
    /// How many outcomes.
    pub outcomes: u64,
}

/// One run's results: every cell and comparison with its test, and the flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WatchReport {
    /// When it ran (ingest clock), ms.
    pub at_ms: u64,
    /// Whole-life cells of every dimension.
    pub cells: Vec<Cell>,
    /// Batches' early-life cells.
    pub early: Vec<Cell>,
    /// Firmware versions against their predecessors.
    pub firmware: Vec<FirmwareComparison>,
    /// Outcomes kept out of the rates, per problem.
    pub excluded: Vec<Excluded>,
    /// Tests in the BH family.
    pub tests: usize,
    /// What stands out.
    pub flags: Vec<Flag>,
}

/// Runs the watch over `facts` at `at_ms`.
pub fn run(facts: &FleetFacts, config: &WatchConfig, at_ms: u64) -> WatchReport {
    let mut cells: Vec<Cell> = Dimension::ALL
        .iter()
        .flat_map(|&d| table::cells(d, None, &[Measure::Failures], facts))
        .collect();
    let mut early: Vec<Cell> = config
        .early_windows_days
        .iter()
        .flat_map(|&w| {
            table::cells(
                Dimension::Batch,
                Some(w),
                &[Measure::Failures, Measure::Tickets],
                facts,
            )
        })
        .collect();
    let purchased: std::collections::HashMap<&str, Option<u64>> = facts
        .devices
        .iter()
        .map(|d| (d.device_id.as_str(), d.purchased_ms))
        .collect();
    let mut firmware = firmware::compare(&facts.firmware_days, &purchased);
    for c in cells.iter_mut().chain(early.iter_mut()) {
        c.p_value = share_upper_tail(c.observed, c.observed + c.rest_observed, c.null_share);
    }
    shrink(&mut cells);
    shrink(&mut early);
    // One family: every cell and every comparison with a predecessor.
    let mut p: Vec<f64> = cells.iter().chain(&early).map(|c| c.p_value).collect();
    let compared: Vec<usize> = (0..firmware.len())
        .filter(|&i| firmware[i].predecessor.is_some())
        .collect();
    p.extend(compared.iter().map(|&i| firmware[i].p_value));
    let q = q_values(&p);
    let tests = q.len();
    let mut q = q.into_iter();
    for c in cells.iter_mut().chain(early.iter_mut()) {
        c.q_value = q.next().expect("a q-value per test");
    }
    for &i in &compared {
        firmware[i].q_value = q.next().expect("a q-value per test");
    }
    let mut flags: Vec<Flag> = cells
        .iter()
        .chain(&early)
        .filter(|c| stands_out(c, config))
        .map(cell_flag)
        .collect();
    flags.extend(
        firmware
            .iter()
            .filter(|f| {
                f.q_value <= config.fdr
                    && f.compared_restarts.unwrap_or(0) >= config.min_events
                    && f.ratio().is_some_and(|r| r > 1.0)
            })
            .map(regression_flag),
    );
    let excluded = Problem::ALL
        .iter()
        .map(|&problem| Excluded {
            problem,
            outcomes: facts
                .special
                .iter()
                .filter(|(e, _)| e.problem == problem)
                .count() as u64,
        })
        .collect();
    WatchReport {
        at_ms,
        cells,
        early,
        firmware,
        excluded,
        tests,
        flags,
    }
}

/// A cell is flagged when the whole family's FDR allows it, it has enough events, and
/// even shrunk towards the common ratio it is above what the rest of the fleet predicts.
fn stands_out(c: &Cell, config: &WatchConfig) -> bool {
    let expected_rate = c.expected_rate;
    c.q_value <= config.fdr
        && c.observed >= config.min_events
        && c.observed as f64 > c.expected
        && c.shrunk_rate > expected_rate
}

/// Fills in each cell's shrunk rate, with a prior fitted per dimension, window, measure
/// and problem to the cells' ratios of observed to pooled expected events.
fn shrink(cells: &mut [Cell]) {
    let mut groups: Vec<(Dimension, Option<u32>, Measure, Problem)> = cells
        .iter()
        .map(|c| (c.dimension, c.window_days, c.measure, c.problem))
        .collect();
    groups.sort_by_key(|g| (g.0, g.1, g.2, g.3.as_str()));
    groups.dedup();
    for g in groups {
        let member = |c: &Cell| (c.dimension, c.window_days, c.measure, c.problem) == g;
        let pairs: Vec<(u64, f64)> = cells
            .iter()
            .filter(|c| member(c))
            .map(|c| (c.observed, c.pooled_expected))
            .collect();
        let prior = Prior::fit(&pairs);
        for c in cells.iter_mut().filter(|c| member(c)) {
            c.shrunk_rate = match prior {
                Some(p) if c.exposure_days > 0.0 => {
                    p.shrink(c.observed, c.pooled_expected) * c.pooled_expected / c.exposure_days
                        * DAYS_PER_YEAR
                }
                _ => c.rate.rate,
            };
        }
    }
}

fn cell_flag(c: &Cell) -> Flag {
    Flag {
        kind: FlagKind::of(c.dimension),
        cohort: c.cohort.clone(),
        problem: Some(c.problem),
        window_days: c.window_days,
        measure: c.measure,
        evidence: Evidence {
            devices: c.devices,
            exposure_days: c.exposure_days,
            observed: c.observed,
            expected: c.expected,
            rate: c.rate.rate,
            rate_low: c.rate.low,
            rate_high: c.rate.high,
            expected_rate: c.expected_rate,
            shrunk_rate: c.shrunk_rate,
            p_value: c.p_value,
            q_value: c.q_value,
            first_event_ms: c.first_event_ms,
            first_true_ms: c.first_true_ms,
            predecessor: None,
            crash_free_hours: None,
            predecessor_crash_free_hours: None,
        },
    }
}

fn regression_flag(f: &FirmwareComparison) -> Flag {
    let (low, high) = super::poisson::mean_interval(f.unexpected_restarts, 0.95);
    // Over the ages both versions ran at: the version's restarts against what the
    // predecessor's rates at those ages predict.
    let expected = f.expected_restarts.unwrap_or(0.0);
    let days = f.compared_device_days.unwrap_or(0.0);
    Flag {
        kind: FlagKind::FirmwareRegression,
        cohort: f.firmware.clone(),
        problem: None,
        window_days: None,
        measure: Measure::Failures,
        evidence: Evidence {
            devices: f.devices,
            exposure_days: f.device_days,
            observed: f.compared_restarts.unwrap_or(0),
            expected,
            rate: f.restarts_per_device_day,
            rate_low: low / f.device_days,
            rate_high: high / f.device_days,
            expected_rate: if days > 0.0 { expected / days } else { 0.0 },
            shrunk_rate: f.restarts_per_device_day,
            p_value: f.p_value,
            q_value: f.q_value,
            first_event_ms: Some(f.first_day_ms),
            first_true_ms: None,
            predecessor: f.predecessor.clone(),
            crash_free_hours: Some(f.crash_free_hours_per_device_day),
            predecessor_crash_free_hours: f.predecessor_crash_free_hours_per_device_day,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cohorts::{DeviceFacts, Incident};

    const D: u64 = 86_400_000;

    /// 20 batches of 50 devices watched for a year; batch B07 fails `bad_multiplier`× as often.
    fn fleet(bad_multiplier: u64) -> FleetFacts {
        let mut f = FleetFacts::default();
        for b in 0..20 {
            for i in 0..50 {
                let id = format!("d{b:02}-{i:02}");
                f.devices.push(DeviceFacts {
                    device_id: id.clone(),
                    model: Some("m".into()),
                    batch: Some(format!("B{b:02}")),
                    firmware: Some("1.0".into()),
                    purchased_ms: Some(0),
                    from_ms: 100 * D,
                    to_ms: 465 * D,
                });
                // A healthy device fails with 4 % a year: deterministically, one in 25.
                let fails = if b == 7 {
                    i % 25 < bad_multiplier
                } else {
                    i % 25 == 0
                };
                if fails {
                    f.failures.push(Incident {
                        device_id: id,
                        problem: Problem::Battery,
                        at_ms: (200 + i) * D,
                    });
                }
            }
        }
        f
    }

    #[test]
    fn a_bad_batch_is_flagged_and_healthy_ones_are_not() {
        let r = run(&fleet(5), &WatchConfig::default(), 500 * D);
        let batches: Vec<&Flag> = r
            .flags
            .iter()
            .filter(|f| f.kind == FlagKind::Batch)
            .collect();
        assert_eq!(batches.len(), 1, "{batches:#?}");
        assert_eq!(batches[0].cohort, "B07");
        assert_eq!(batches[0].problem, Some(Problem::Battery));
        let e = &batches[0].evidence;
        assert_eq!(e.observed, 10);
        assert!((e.expected - 365.0 * 50.0 * 38.0 / (19.0 * 50.0 * 365.0)).abs() < 1e-6);
        assert!(e.shrunk_rate < e.rate, "shrunk towards the fleet");
        assert!(e.q_value <= 0.05 && e.p_value < e.q_value);
        // Every cell was tested in one family.
        assert_eq!(r.tests, r.cells.len() + r.early.len());
    }

    #[test]
    fn the_documented_flag_reads_as_a_flag() {
        let doc = include_str!("../../../docs/reports.md");
        let start = doc
            .find("```json\n")
            .expect("docs/reports.md has a JSON example")
            + 8;
        let end = start + doc[start..].find("```").expect("the example ends");
        let f: Flag = serde_json::from_str(&doc[start..end]).expect("the example is a flag");
        assert_eq!(f.key(), "batch:A12-2024Q4:battery:life:failures");
        assert!(f.evidence.shrunk_rate < f.evidence.rate);
        let back = serde_json::to_value(&f).unwrap();
        let example: serde_json::Value = serde_json::from_str(&doc[start..end]).unwrap();
        assert_eq!(back, example, "every documented field, and no other");
    }

    #[test]
    fn nothing_is_flagged_when_every_batch_fails_alike() {
        let r = run(&fleet(1), &WatchConfig::default(), 500 * D);
        assert!(r.flags.is_empty(), "{:#?}", r.flags);
    }

    #[test]
    fn too_few_events_are_never_flagged() {
        let cfg = WatchConfig {
            min_events: 11,
            ..WatchConfig::default()
        };
        let r = run(&fleet(5), &cfg, 500 * D);
        assert!(r.flags.is_empty());
        assert!(WatchConfig {
            fdr: 0.0,
            ..cfg.clone()
        }
        .validate()
        .is_err());
        assert!(WatchConfig {
            early_windows_days: vec![0],
            ..cfg
        }
        .validate()
        .is_err());
    }
}
