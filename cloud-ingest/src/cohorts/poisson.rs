//! Exact tests and intervals for counts of rare events: a cohort's share of its own and
//! the rest of the fleet's failures against the share its exposure at each age predicts,
//! and one firmware's restarts against its predecessor's (both conditional binomial
//! tests, exact given the total), and the Garwood interval of a Poisson rate.
//! Distributions are statrs'.

use statrs::distribution::{Binomial, ChiSquared, ContinuousCDF, DiscreteCDF};

/// Days in a year, for annualised rates.
pub const DAYS_PER_YEAR: f64 = 365.25;

/// The exact (Garwood) two-sided interval for a Poisson mean given `observed` events,
/// at confidence `level` (0.95 for a 95 % interval): (low, high) in events.
pub fn mean_interval(observed: u64, level: f64) -> (f64, f64) {
    let alpha = 1.0 - level;
    let k = observed as f64;
    let low = if observed == 0 {
        0.0
    } else {
        ChiSquared::new(2.0 * k)
            .expect("positive degrees of freedom")
            .inverse_cdf(alpha / 2.0)
            / 2.0
    };
    let high = ChiSquared::new(2.0 * k + 2.0)
        .expect("positive degrees of freedom")
        .inverse_cdf(1.0 - alpha / 2.0)
        / 2.0;
    (low, high)
}

/// An annualised rate (events per device-year) with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AnnualRate {
    /// Events per device-year.
    pub rate: f64,
    /// Lower end of the exact 95 % interval.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

impl AnnualRate {
    /// `observed` events over `exposure_days` device-days; all zero without exposure.
    pub fn of(observed: u64, exposure_days: f64) -> AnnualRate {
        if exposure_days <= 0.0 || exposure_days.is_nan() {
            return AnnualRate {
                rate: 0.0,
                low: 0.0,
                high: 0.0,
            };
        }
        let years = exposure_days / DAYS_PER_YEAR;
        let (low, high) = mean_interval(observed, 0.95);
        AnnualRate {
            rate: observed as f64 / years,
            low: low / years,
            high: high / years,
        }
    }
}

/// One-sided exact test that rate A (`a` events over `exposure_a`) exceeds rate B (`b`
/// over `exposure_b`): conditional on the total, A's count is binomial with A's share of
/// the exposure under equal rates, so p = P(X ≥ a), X ~ Binomial(a + b, share).
pub fn rate_ratio_upper_tail(a: u64, exposure_a: f64, b: u64, exposure_b: f64) -> f64 {
    if exposure_a <= 0.0 || exposure_a.is_nan() || exposure_b <= 0.0 || exposure_b.is_nan() {
        return 1.0;
    }
    share_upper_tail(a, a + b, exposure_a / (exposure_a + exposure_b))
}

/// One-sided exact p-value that `observed` of `total` events is more than `share` of
/// them would be: P(X ≥ observed), X ~ Binomial(total, share).
pub fn share_upper_tail(observed: u64, total: u64, share: f64) -> f64 {
    if observed == 0 || share >= 1.0 || share.is_nan() {
        return 1.0;
    }
    if share <= 0.0 {
        return 0.0;
    }
    let d = Binomial::new(share, total).expect("a share in (0, 1)");
    d.sf(observed - 1).clamp(0.0, 1.0)
}
