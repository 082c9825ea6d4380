//! The one retry policy of the workspace: exponential backoff with a ceiling, with
//! optional jitter. The agent's reconnect loop, ingest's MQTT session, its batch retries
//! and every outbox worker use it, so "how long until the next try" has one answer.
//!
//! The policy is plain data and reads no clock and no random source: callers pass the
//! attempt number (and, for jitter, a uniform draw), so schedules are testable and a
//! worker can store the next attempt's time in a row.

use std::time::Duration;

/// Exponential backoff: `first × 2^attempt`, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay before the first retry.
    pub first: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Backoff {
    /// A policy from its first and longest delay.
    pub const fn new(first: Duration, max: Duration) -> Self {
        Backoff { first, max }
    }

    /// The delay before retry `attempt` (0 for the first retry): doubling, capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        // 2^32 × any useful first delay is past any ceiling: stop doubling there.
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.first.saturating_mul(factor).min(self.max)
    }

    /// The delay with "equal jitter": uniformly in the upper half of [`Backoff::delay`],
    /// from a draw `unit` in `[0, 1)`. Spreads reconnecting devices apart while keeping
    /// every delay at least half the schedule's.
    pub fn jittered(&self, attempt: u32, unit: f64) -> Duration {
        let d = self.delay(attempt);
        d / 2 + d.mul_f64(unit.clamp(0.0, 1.0) / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_from_the_first_delay_up_to_the_ceiling() {
        let b = Backoff::new(100 * MS, 10_000 * MS);
        let got: Vec<u128> = (0..9).map(|a| b.delay(a).as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]);
        assert_eq!(b.delay(u32::MAX), 10_000 * MS, "no overflow at any attempt");
        let huge = Backoff::new(Duration::from_secs(u64::MAX / 2), Duration::MAX);
        assert_eq!(huge.delay(40), Duration::MAX, "saturates");
    }

    #[test]
    fn jitter_stays_in_the_upper_half() {
        let b = Backoff::new(1000 * MS, 60_000 * MS);
        assert_eq!(b.jittered(2, 0.0), 2000 * MS);
        assert_eq!(b.jittered(2, 0.5), 3000 * MS);
        assert!(b.jittered(2, 0.999_999) <= 4000 * MS);
        assert_eq!(b.jittered(2, 7.0), 4000 * MS, "a bad draw is clamped");
    }
}
