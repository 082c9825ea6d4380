//! The cohort watch's statistics against values scipy and statsmodels computed once
//! (`tests/reference/cohort_statistics.py` made `cohort_statistics.json`).

use cloud_ingest::cohorts::fdr::q_values;
use cloud_ingest::cohorts::poisson::{mean_interval, rate_ratio_upper_tail, share_upper_tail};
use cloud_ingest::cohorts::shrinkage::Prior;
use serde_json::Value;

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/cohort_statistics.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("the reference file")).unwrap()
}

/// Relative agreement, with an absolute floor for values near zero.
fn close(what: &str, got: f64, want: f64, rel: f64) {
    let tol = rel * want.abs().max(1e-300);
    assert!(
        (got - want).abs() <= tol,
        "{what}: {got} against scipy's {want} (relative {})",
        (got - want).abs() / want.abs()
    );
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"))
}

#[test]
fn conditional_binomial_tails_match_scipy() {
    let r = reference();
    let cases = r["share_upper_tail"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for c in cases {
        let (k, n) = (
            c["observed"].as_u64().unwrap(),
            c["total"].as_u64().unwrap(),
        );
        let got = share_upper_tail(k, n, f(c, "share"));
        close(
            &format!("P(X ≥ {k} of {n}) at {}", c["share"]),
            got,
            f(c, "p"),
            1e-9,
        );
    }
}

#[test]
fn garwood_intervals_match_statsmodels() {
    let r = reference();
    for c in r["poisson_interval_95"].as_array().unwrap() {
        let k = c["observed"].as_u64().unwrap();
        let (low, high) = mean_interval(k, 0.95);
        if k == 0 {
            assert_eq!(low, 0.0);
        } else {
            // statrs inverts the chi-squared CDF by bisection: agreement to 1e-8.
            close(&format!("low at {k}"), low, f(c, "low"), 1e-8);
        }
        close(&format!("high at {k}"), high, f(c, "high"), 1e-8);
    }
}

#[test]
fn the_two_rate_test_matches_scipys_binomial_test() {
    let r = reference();
    for c in r["rate_ratio_upper_tail"].as_array().unwrap() {
        let (a, b) = (c["a"].as_u64().unwrap(), c["b"].as_u64().unwrap());
        let got = rate_ratio_upper_tail(a, f(c, "exposure_a"), b, f(c, "exposure_b"));
        close(&format!("{a} against {b}"), got, f(c, "p"), 1e-9);
    }
}

#[test]
fn bh_q_values_match_statsmodels() {
    let r = reference();
    let p: Vec<f64> = r["bh"]["p"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let want: Vec<f64> = r["bh"]["q"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let got = q_values(&p);
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        close(&format!("q[{i}]"), *g, *w, 1e-12);
    }
}

#[test]
fn empirical_bayes_matches_the_method_of_moments_reference() {
    let r = reference();
    let pairs: Vec<(u64, f64)> = r["eb"]["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    let prior = Prior::fit(&pairs).expect("something is expected");
    close("mean", prior.mean, f(&r["eb"], "mean"), 1e-12);
    close(
        "variance",
        prior
            .variance
            .expect("the reference cohorts vary beyond noise"),
        f(&r["eb"], "variance"),
        1e-12,
    );
    for (i, ((o, e), want)) in pairs
        .iter()
        .zip(r["eb"]["shrunk"].as_array().unwrap())
        .enumerate()
    {
        close(
            &format!("shrunk[{i}]"),
            prior.shrink(*o, *e),
            want.as_f64().unwrap(),
            1e-12,
        );
    }
}
