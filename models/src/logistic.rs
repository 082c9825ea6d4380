//! Logistic regression on standardised features (linfa-logistic), with the rarer failing
//! rows replicated so the fit sees both classes in a workable ratio.

#[cfg(feature = "train")]
use linfa::prelude::*;
#[cfg(feature = "train")]
use linfa_logistic::LogisticRegression;
#[cfg(feature = "train")]
use ndarray::{Array1, ArrayView2};
use serde::{Deserialize, Serialize};

#[cfg(feature = "train")]
use crate::TrainError;

#[cfg(feature = "train")]
/// Hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticParams {
    /// L2 penalty.
    pub alpha: f64,
    /// Iteration cap of the optimiser.
    pub max_iterations: u64,
    /// Healthy rows per failing row after replicating the failing rows.
    pub neg_per_pos: f64,
}

#[cfg(feature = "train")]
impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams {
            alpha: 1.0,
            max_iterations: 300,
            neg_per_pos: 1.0,
        }
    }
}

/// A fitted model: the log-odds are `intercept + coef · z` for standardised features `z`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogisticModel {
    /// The intercept.
    pub intercept: f64,
    /// One coefficient per feature.
    pub coef: Vec<f64>,
}

impl LogisticModel {
    #[cfg(feature = "train")]
    /// Fits on standardised rows `z` with labels `y`. Returns the model and the share of
    /// positives in what it was fitted on (for the prior correction).
    pub fn fit(
        z: ArrayView2<'_, f64>,
        y: &[bool],
        params: &LogisticParams,
    ) -> Result<(Self, f64), TrainError> {
        let positives: Vec<usize> = (0..y.len()).filter(|&i| y[i]).collect();
        let negatives = y.len() - positives.len();
        if positives.is_empty() || negatives == 0 {
            return Err(TrainError::OneClass);
        }
        // Replicate failing rows (the fit ignores sample weights: pitfall 23).
        let copies = ((negatives as f64 / params.neg_per_pos / positives.len() as f64).round()
            as usize)
            .max(1);
        let mut rows: Vec<usize> = (0..y.len()).collect();
        for _ in 1..copies {
            rows.extend_from_slice(&positives);
        }
        let x = z.select(ndarray::Axis(0), &rows);
        let t: Array1<bool> = rows.iter().map(|&i| y[i]).collect();
        let fitted = LogisticRegression::default()
            .alpha(params.alpha)
            .max_iterations(params.max_iterations)
            .fit(&Dataset::new(x, t))
            .map_err(|e| TrainError::Fit(e.to_string()))?;
        // linfa treats the more frequent class as positive (pitfall 21): orient the
        // coefficients so they always give the log-odds of failing.
        let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
        let model = LogisticModel {
            intercept: sign * fitted.intercept(),
            coef: fitted.params().iter().map(|c| sign * c).collect(),
        };
        let sample_prior = (positives.len() * copies) as f64 / rows.len() as f64;
        Ok((model, sample_prior))
    }

    /// Log-odds of failing for standardised features.
    pub fn log_odds(&self, z: &[f64]) -> f64 {
        self.intercept + self.coef.iter().zip(z).map(|(c, v)| c * v).sum::<f64>()
    }

    /// Each feature's contribution to the log-odds: coefficient times standardised value.
    pub fn contributions(&self, z: &[f64]) -> Vec<f64> {
        self.coef.iter().zip(z).map(|(c, v)| c * v).collect()
    }
}

/// The logistic function.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
