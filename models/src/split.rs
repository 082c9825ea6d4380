//! Splitting a labelled set for validation without leaks: by device and by time.
//!
//! Validation devices are held out whole (no row of theirs is trained on), and validation
//! rows start a gap after the last training row, so neither a device nor the future leaks
//! into training. Training rows must also have their label settled by the split time: a
//! row's label looks `horizon` days ahead, so the gap is at least the horizon.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

use crate::features::DAY_MS;
use crate::labels::LabelledSet;

/// How to split.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitConfig {
    /// Share of devices held out for validation.
    pub holdout_share: f64,
    /// Where in the time span training ends, as a share of the span.
    pub train_until: f64,
    /// Days between the last training row and the first validation row; at least the
    /// label horizon.
    pub gap_days: u32,
    /// Seed of the device draw.
    pub seed: u64,
}

impl SplitConfig {
    /// The default split for a horizon: 25 % of devices, training on the first 65 % of
    /// the span, a gap of one horizon.
    pub fn for_horizon(horizon_days: u32, seed: u64) -> Self {
        SplitConfig {
            holdout_share: 0.25,
            train_until: 0.65,
            gap_days: horizon_days,
            seed,
        }
    }
}

/// Row indices of each side.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Training rows: training devices, before the split time.
    pub train: Vec<usize>,
    /// Validation rows: held-out devices, from the split time plus the gap.
    pub validation: Vec<usize>,
    /// The split time of the first source, ms since the epoch.
    pub split_at_ms: u64,
    /// Whether each device (by index) is held out.
    pub held_out: Vec<bool>,
}

/// Splits `set`. Failing and healthy devices are drawn separately, so both sides get
/// their share of failures.
pub fn split(set: &LabelledSet, config: &SplitConfig) -> Split {
    let mut rng = Pcg64Mcg::seed_from_u64(config.seed);
    let mut held_out = vec![false; set.devices.len()];
    for failed in [true, false] {
        let mut group: Vec<usize> = (0..set.devices.len())
            .filter(|&d| set.devices[d].failed == failed)
            .collect();
        group.shuffle(&mut rng);
        let n = (group.len() as f64 * config.holdout_share).round() as usize;
        for &d in &group[..n.min(group.len())] {
            held_out[d] = true;
        }
    }
    // Each source of a merged set is split on its own span: a simulated fleet's months
    // and the field's need not overlap.
    let origins = set.devices.iter().map(|d| d.origin).max().unwrap_or(0) as usize + 1;
    let mut span = vec![(u64::MAX, 0u64); origins];
    for (t, d) in set.t_ms.iter().zip(&set.device) {
        let s = &mut span[set.devices[*d as usize].origin as usize];
        *s = (s.0.min(*t), s.1.max(*t));
    }
    let split_of: Vec<u64> = span
        .iter()
        .map(|&(first, last)| {
            if first > last {
                0
            } else {
                first + ((last - first) as f64 * config.train_until) as u64
            }
        })
        .collect();
    let split_at_ms = split_of[0];
    let gap = u64::from(config.gap_days.max(set.horizon_days)) * DAY_MS;
    let mut train = Vec::new();
    let mut validation = Vec::new();
    for i in 0..set.len() {
        let t = set.t_ms[i];
        let split_at_ms = split_of[set.devices[set.device[i] as usize].origin as usize];
        if held_out[set.device[i] as usize] {
            if t >= split_at_ms + gap {
                validation.push(i);
            }
        } else if t < split_at_ms {
            train.push(i);
        }
    }
    Split {
        train,
        validation,
        split_at_ms,
        held_out,
    }
}

/// Deals devices into `k` folds, failing and healthy devices separately so each fold
/// gets its share of failures. Returns each device's fold.
pub fn device_folds(set: &LabelledSet, k: usize, seed: u64) -> Vec<usize> {
    let mut rng = Pcg64Mcg::seed_from_u64(seed.wrapping_add(1));
    let mut fold = vec![0; set.devices.len()];
    for failed in [true, false] {
        let mut group: Vec<usize> = (0..set.devices.len())
            .filter(|&d| set.devices[d].failed == failed)
            .collect();
        group.shuffle(&mut rng);
        for (n, d) in group.into_iter().enumerate() {
            fold[d] = n % k.max(1);
        }
    }
    fold
}
