//! Empirical-Bayes (gamma–Poisson) shrinkage of cohort ratios: a cohort of twelve
//! devices with one failure has a huge raw rate and almost no evidence. Each cohort's
//! ratio of observed to expected failures, θ, is given a gamma prior fitted to all the
//! cohorts of its kind by Marshall's method of moments (1991); the posterior mean
//! (O + α) / (E + β) pulls small cohorts to the common ratio and leaves large ones be.

/// The fitted prior: θ ~ Gamma(shape α, rate β); `None` for both when the cohorts vary
/// no more than Poisson noise would make them (every cohort then gets the common ratio).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    /// The common ratio, ΣO / ΣE.
    pub mean: f64,
    /// The between-cohort variance of θ beyond Poisson noise; `None` when there is none.
    pub variance: Option<f64>,
}

impl Prior {
    /// Fits the prior to (observed, expected) pairs; pairs with nothing expected carry no
    /// information about θ and are left out. `None` when nothing at all is expected.
    pub fn fit(cells: &[(u64, f64)]) -> Option<Prior> {
        let used: Vec<(f64, f64)> = cells
            .iter()
            .filter(|(_, e)| *e > 0.0)
            .map(|&(o, e)| (o as f64, e))
            .collect();
        let total_e: f64 = used.iter().map(|(_, e)| e).sum();
        if used.is_empty() || (total_e <= 0.0 || total_e.is_nan()) {
            return None;
        }
        let total_o: f64 = used.iter().map(|(o, _)| o).sum();
        let mean = total_o / total_e;
        let spread = used
            .iter()
            .map(|(o, e)| e * (o / e - mean).powi(2))
            .sum::<f64>()
            / total_e;
        let mean_e = total_e / used.len() as f64;
        let variance = spread - mean / mean_e;
        Some(Prior {
            mean,
            variance: (variance > 0.0 && mean > 0.0).then_some(variance),
        })
    }

    /// The posterior mean of θ for a cohort with `observed` over `expected`.
    pub fn shrink(&self, observed: u64, expected: f64) -> f64 {
        match self.variance {
            None => self.mean,
            Some(v) => {
                let alpha = self.mean * self.mean / v;
                let beta = self.mean / v;
                (observed as f64 + alpha) / (expected.max(0.0) + beta)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_cohort_is_pulled_further_than_a_large_one() {
        // Same raw ratio (3×) on very different evidence.
        let cells = [
            (3, 1.0),
            (300, 100.0),
            (100, 100.0),
            (90, 100.0),
            (110, 100.0),
        ];
        let prior = Prior::fit(&cells).unwrap();
        assert!(
            prior.variance.is_some(),
            "the big cohort varies beyond noise"
        );
        let small = prior.shrink(3, 1.0);
        let large = prior.shrink(300, 100.0);
        assert!(small < large, "{small} vs {large}");
        assert!(large > 2.5 && large < 3.0, "{large}");
        assert!(small > prior.mean && small < 3.0, "{small}");
    }

    #[test]
    fn cohorts_that_vary_only_by_chance_all_get_the_common_ratio() {
        let prior = Prior::fit(&[(10, 10.0), (11, 10.0), (9, 10.0)]).unwrap();
        assert_eq!(prior.variance, None);
        assert!((prior.shrink(11, 10.0) - 1.0).abs() < 1e-12);
        assert_eq!(Prior::fit(&[(0, 0.0)]), None);
    }
}
