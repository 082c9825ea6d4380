//! Calibration: a model's probabilities mapped so that a risk reads as a probability (of
//! the rows given 0.3, about 30 % fail within the horizon). Platt scaling on the
//! log-odds, `p' = σ(a · logit(p) + b)`, fitted on out-of-fold scores (never on rows a
//! tree was grown on): strictly increasing, so rankings, ROC and PR curves and the rows
//! a threshold alarms are unchanged; only what the numbers say is corrected (a forest's
//! vote shares are under-confident). The expected calibration error and the Brier score
//! measure the result.

use serde::{Deserialize, Serialize};

/// A fitted map from raw to calibrated probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Slope on the raw log-odds (1: unchanged).
    pub a: f64,
    /// Intercept (0: unchanged).
    pub b: f64,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration::IDENTITY
    }
}

const EPS: f64 = 1e-6;

fn logit(p: f64) -> f64 {
    let p = p.clamp(EPS, 1.0 - EPS);
    (p / (1.0 - p)).ln()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Calibration {
    /// The map that changes nothing (artifacts trained before calibration).
    pub const IDENTITY: Calibration = Calibration { a: 1.0, b: 0.0 };

    /// The calibrated probability of raw probability `p`.
    pub fn apply(&self, p: f64) -> f64 {
        if *self == Calibration::IDENTITY {
            return p;
        }
        sigmoid(self.a * logit(p) + self.b)
    }

    /// The raw probability that calibrates to `q` (a threshold's raw equivalent).
    pub fn invert(&self, q: f64) -> f64 {
        if *self == Calibration::IDENTITY {
            return q;
        }
        sigmoid((logit(q) - self.b) / self.a)
    }

    /// Fits `a` and `b` by maximum likelihood (Newton's method) on `scores` and their
    /// `labels`, with Platt's smoothed targets so that a separable set keeps a finite
    /// slope. The identity when the data cannot fit a map (one class, no spread) or
    /// when the fit would reverse the order. `weights` (one per row) make a row count
    /// as that many.
    pub fn fit(scores: &[f64], labels: &[bool], weights: Option<&[f64]>) -> Calibration {
        assert_eq!(scores.len(), labels.len(), "one label per score");
        let weight = |i: usize| weights.map_or(1.0, |w| w[i]);
        let pos: f64 = (0..labels.len()).filter(|&i| labels[i]).map(weight).sum();
        let neg = (0..labels.len()).map(weight).sum::<f64>() - pos;
        if pos == 0.0 || neg == 0.0 {
            return Calibration::IDENTITY;
        }
        let (t_pos, t_neg) = ((pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0));
        let x: Vec<f64> = scores.iter().map(|&s| logit(s)).collect();
        let t: Vec<f64> = labels
            .iter()
            .map(|&y| if y { t_pos } else { t_neg })
            .collect();
        let w: Vec<f64> = (0..labels.len()).map(weight).collect();
        let (mut a, mut b) = (1.0, 0.0);
        let loss = |a: f64, b: f64| -> f64 {
            x.iter()
                .zip(&t)
                .zip(&w)
                .map(|((&x, &t), &w)| {
                    let p = sigmoid(a * x + b).clamp(1e-15, 1.0 - 1e-15);
                    -w * (t * p.ln() + (1.0 - t) * (1.0 - p).ln())
                })
                .sum()
        };
        let mut current = loss(a, b);
        for _ in 0..100 {
            // Gradient and Hessian of the log-loss in (a, b).
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for ((&x, &t), &r) in x.iter().zip(&t).zip(&w) {
                let p = sigmoid(a * x + b);
                let w = r * (p * (1.0 - p)).max(1e-12);
                ga += r * (p - t) * x;
                gb += r * (p - t);
                haa += w * x * x;
                hab += w * x;
                hbb += w;
            }
            let det = haa * hbb - hab * hab;
            if det.abs() < 1e-12 {
                break;
            }
            let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
            // Halve the step until the loss falls.
            let mut step = 1.0;
            let mut next = loss(a - step * da, b - step * db);
            while next > current && step > 1e-6 {
                step /= 2.0;
                next = loss(a - step * da, b - step * db);
            }
            if next > current {
                break;
            }
            a -= step * da;
            b -= step * db;
            let gain = current - next;
            current = next;
            if gain < 1e-10 * (1.0 + current) {
                break;
            }
        }
        if !(a.is_finite() && b.is_finite()) || a <= 0.0 {
            return Calibration::IDENTITY;
        }
        Calibration { a, b }
    }
}

/// Mean squared difference between probability and outcome, each row weighing its
/// weight.
pub fn weighted_brier(scores: &[f64], labels: &[bool], weights: &[f64]) -> f64 {
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    scores
        .iter()
        .zip(labels)
        .zip(weights)
        .map(|((&p, &y), &w)| w * (p - f64::from(u8::from(y))).powi(2))
        .sum::<f64>()
        / total
}

/// Mean squared difference between probability and outcome.
pub fn brier(scores: &[f64], labels: &[bool]) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    scores
        .iter()
        .zip(labels)
        .map(|(&p, &y)| (p - f64::from(u8::from(y))).powi(2))
        .sum::<f64>()
        / scores.len() as f64
}

/// Expected calibration error over `bins` equal-width bins: the row-weighted mean gap
/// between the mean probability and the share failing in each bin.
pub fn ece(scores: &[f64], labels: &[bool], bins: usize) -> f64 {
    let mut sums = vec![(0usize, 0.0f64, 0.0f64); bins];
    for (&p, &y) in scores.iter().zip(labels) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        sums[b].0 += 1;
        sums[b].1 += p;
        sums[b].2 += f64::from(u8::from(y));
    }
    let n = scores.len().max(1) as f64;
    sums.iter()
        .filter(|s| s.0 > 0)
        .map(|&(k, p, y)| (k as f64 / n) * ((p - y) / k as f64).abs())
        .sum()
}

#[cfg(all(test, feature = "train"))]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    /// Rows whose true risk is `q`, scored by an under-confident model: its score is
    /// pulled towards 0.5 in log-odds (slope 0.4) and shifted down.
    fn rows(n: usize, seed: u64) -> (Vec<f64>, Vec<bool>) {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let q: f64 = sigmoid(rng.random_range(-6.0..2.0));
                let score = sigmoid(0.4 * logit(q) - 0.8);
                (score, rng.random_bool(q))
            })
            .unzip()
    }

    #[test]
    fn calibration_on_other_rows_improves_the_brier_score_and_keeps_the_order() {
        let (fit_s, fit_y) = rows(20_000, 1);
        let c = Calibration::fit(&fit_s, &fit_y, None);
        // The true map inverts the distortion: slope 2.5, intercept 2.
        assert!((c.a - 2.5).abs() < 0.25, "{c:?}");
        assert!((c.b - 2.0).abs() < 0.4, "{c:?}");
        // Held-out rows, never seen by the fit.
        let (s, y) = rows(20_000, 2);
        let cal: Vec<f64> = s.iter().map(|&p| c.apply(p)).collect();
        let (before, after) = (brier(&s, &y), brier(&cal, &y));
        assert!(after < before * 0.95, "Brier {before} -> {after}");
        let (e0, e1) = (ece(&s, &y, 10), ece(&cal, &y, 10));
        assert!(e1 < e0 / 3.0 && e1 < 0.02, "ECE {e0} -> {e1}");
        // Strictly increasing: the order, and so every ranking metric, is kept.
        let mut pairs: Vec<(f64, f64)> = s.iter().copied().zip(cal.iter().copied()).collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(pairs.windows(2).all(|w| w[0].1 <= w[1].1));
        // A threshold maps back to the raw score it stands for.
        let q = c.apply(0.2);
        assert!((c.invert(q) - 0.2).abs() < 1e-9);
    }

    #[test]
    fn degenerate_data_leaves_scores_as_they_are() {
        assert_eq!(
            Calibration::fit(&[0.1, 0.2], &[false, false], None),
            Calibration::IDENTITY
        );
        assert_eq!(Calibration::IDENTITY.apply(0.37), 0.37);
        // Perfectly separable: a finite, increasing map all the same.
        let c = Calibration::fit(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true], None);
        assert!(c.a.is_finite() && c.a > 0.0, "{c:?}");
        assert!(c.apply(0.9) > c.apply(0.1));
        assert!((ece(&[0.05, 0.95], &[false, true], 10) - 0.05).abs() < 1e-12);
        assert!((brier(&[0.2, 0.9], &[false, true]) - (0.04 + 0.01) / 2.0).abs() < 1e-12);
    }
}
