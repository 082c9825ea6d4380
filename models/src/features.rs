//! Windowed features: one function per definition, pure, over plain data.
//!
//! Each function takes the history it needs (timestamps in milliseconds) and the time
//! "now"; a window `(now - window, now]` includes its end and excludes its start, so a
//! value recorded exactly at `now` counts and one exactly a window ago does not.

use protocol::reboot::RebootReason;
use protocol::Timestamp;

/// Milliseconds in an hour.
pub const HOUR_MS: u64 = 3_600_000;
/// Milliseconds in a day.
pub const DAY_MS: u64 = 24 * HOUR_MS;

/// Whether `ts` lies in the window of length `window_ms` that ends at `now`.
pub fn in_window(ts: Timestamp, now: Timestamp, window_ms: u64) -> bool {
    ts.0 <= now.0 && now.0 - ts.0 < window_ms
}

/// Unexpected reboots (see [`RebootReason::is_unexpected`]) in the window ending at `now`.
pub fn unexpected_reboots<'a>(
    log: impl IntoIterator<Item = (Timestamp, &'a RebootReason)>,
    now: Timestamp,
    window_ms: u64,
) -> u32 {
    let n = log
        .into_iter()
        .filter(|(ts, reason)| reason.is_unexpected() && in_window(*ts, now, window_ms))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// State-of-charge drain per hour of active use, percentage points per hour.
///
/// `discharged_pct` is the sum of state-of-charge decreases while not charging; usage
/// normalises it so a heavy user's honest drain is comparable to a light user's. Less
/// than [`MIN_ACTIVE_S`] of use gives no value: a few minutes of use make a ratio noise.
pub fn drain_per_active_hour(discharged_pct: f64, active_s: u64) -> Option<f32> {
    if active_s < MIN_ACTIVE_S || !discharged_pct.is_finite() || discharged_pct < 0.0 {
        return None;
    }
    Some((discharged_pct * 3600.0 / active_s as f64) as f32)
}

/// The least active time for which [`drain_per_active_hour`] gives a value, seconds.
pub const MIN_ACTIVE_S: u64 = 1800;

/// Least-squares slope of `(time, value)` points, in value units per 30 days.
///
/// `None` with fewer than two points or when they span less than [`MIN_SLOPE_SPAN_MS`]:
/// a slope over a few hours says nothing about a trend measured in months.
pub fn slope_per_30d(points: &[(Timestamp, f32)]) -> Option<f32> {
    let first = points.iter().map(|p| p.0 .0).min()?;
    let last = points.iter().map(|p| p.0 .0).max()?;
    if points.len() < 2 || last - first < MIN_SLOPE_SPAN_MS {
        return None;
    }
    // Centre on the first point in days, so the sums stay small and exact enough in f64.
    let xs = points
        .iter()
        .map(|p| (p.0 .0 - first) as f64 / DAY_MS as f64);
    let n = points.len() as f64;
    let mean_x = xs.clone().sum::<f64>() / n;
    let mean_y = points.iter().map(|p| f64::from(p.1)).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, p) in xs.zip(points) {
        sxy += (x - mean_x) * (f64::from(p.1) - mean_y);
        sxx += (x - mean_x) * (x - mean_x);
    }
    (sxx > 0.0).then(|| (sxy / sxx * 30.0) as f32)
}

/// The shortest span of points for which [`slope_per_30d`] gives a value: three days.
pub const MIN_SLOPE_SPAN_MS: u64 = 3 * DAY_MS;

#[cfg(test)]
mod tests {
    use super::*;

    fn t(hours: u64) -> Timestamp {
        // An arbitrary base inside the protocol's accepted range.
        Timestamp(1_700_000_000_000 + hours * HOUR_MS)
    }

    #[test]
    fn window_includes_its_end_and_excludes_its_start() {
        let now = t(48);
        assert!(in_window(now, now, DAY_MS));
        assert!(in_window(t(25), now, DAY_MS));
        assert!(!in_window(t(24), now, DAY_MS));
        assert!(!in_window(t(49), now, DAY_MS), "the future is outside");
    }

    #[test]
    fn counts_only_unexpected_reboots_inside_the_window() {
        let log = [
            (t(1), RebootReason::BrownOut), // 47 h ago: outside 24 h, inside 7 d
            (t(30), RebootReason::UserRequest), // expected: never counted
            (t(40), RebootReason::KernelPanic), // inside
            (t(47), RebootReason::SoftwareWatchdog), // inside
        ];
        let it = || log.iter().map(|(ts, r)| (*ts, r));
        assert_eq!(unexpected_reboots(it(), t(48), DAY_MS), 2);
        assert_eq!(unexpected_reboots(it(), t(48), 7 * DAY_MS), 3);
        assert_eq!(unexpected_reboots(it(), t(100), DAY_MS), 0);
    }

    #[test]
    fn drain_is_normalised_by_active_hours() {
        // 30 points over 2 h of use: 15 %/h.
        assert_eq!(drain_per_active_hour(30.0, 7200), Some(15.0));
        assert_eq!(drain_per_active_hour(30.0, 600), None, "too little use");
        assert_eq!(drain_per_active_hour(f64::NAN, 7200), None);
    }

    #[test]
    fn slope_of_a_straight_fade() {
        // 100 % falling 0.1 points a day for 20 days: -3 points per 30 days.
        let points: Vec<_> = (0..=20)
            .map(|d| (t(d * 24), 100.0 - 0.1 * d as f32))
            .collect();
        let slope = slope_per_30d(&points).unwrap();
        assert!((slope + 3.0).abs() < 1e-3, "{slope}");
    }

    #[test]
    fn slope_needs_two_points_over_three_days() {
        assert_eq!(slope_per_30d(&[]), None);
        assert_eq!(slope_per_30d(&[(t(0), 90.0)]), None);
        assert_eq!(slope_per_30d(&[(t(0), 90.0), (t(71), 80.0)]), None);
        let s = slope_per_30d(&[(t(0), 90.0), (t(72), 87.0)]).unwrap();
        assert!((s + 30.0).abs() < 1e-3, "{s}");
    }
}
