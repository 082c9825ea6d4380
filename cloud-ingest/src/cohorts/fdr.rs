//! Benjamini–Hochberg control of the false discovery rate: with hundreds of cohort
//! cells tested at once, a raw p-value below 0.05 is expected by chance in about one
//! cell in twenty; the q-value says how large a share of false flags flagging at that
//! cell's level would admit.

/// The BH-adjusted q-value of each p-value, in the order given. Not-a-number p-values
/// are treated as 1.
pub fn q_values(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    let clean = |i: usize| if p[i].is_nan() { 1.0 } else { p[i] };
    order.sort_by(|&a, &b| clean(a).total_cmp(&clean(b)));
    let mut q = vec![1.0; m];
    // From the largest p down, q is the running minimum of p·m/rank.
    let mut running: f64 = 1.0;
    for (rank0, &i) in order.iter().enumerate().rev() {
        let adjusted = clean(i) * m as f64 / (rank0 + 1) as f64;
        running = running.min(adjusted);
        q[i] = running.min(1.0);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_p_is_scaled_by_the_family_and_order_is_kept() {
        let q = q_values(&[0.04, 0.01, 0.03, 0.5]);
        // Sorted: 0.01·4/1 = 0.04, 0.03·4/2 = 0.06, 0.04·4/3 = 0.0533 → 0.0533 (monotone),
        // 0.5·4/4 = 0.5.
        assert!((q[1] - 0.04).abs() < 1e-12);
        assert!((q[2] - 0.04 * 4.0 / 3.0).abs() < 1e-12, "{q:?}");
        assert!((q[0] - 0.04 * 4.0 / 3.0).abs() < 1e-12);
        assert!((q[3] - 0.5).abs() < 1e-12);
        assert!(q_values(&[]).is_empty());
        assert_eq!(q_values(&[f64::NAN]), vec![1.0]);
    }
}
