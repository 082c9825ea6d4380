//! Time for both sides: the wall clock on a device or a server, a scaled clock in the
//! simulator and the demo. Cores never read a clock; the loops around them pass the
//! time in, read from one of these.

use std::time::Duration;

use crate::Timestamp;

/// A time source. Devices stamp messages with it; ingest dates receipts, decisions and
/// expiries with it.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
    /// How long to wait on the wall clock for `ms` milliseconds of this clock to pass.
    fn wall_delay(&self, ms: u64) -> Duration;
}

/// The system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(std::time::SystemTime::now())
    }

    fn wall_delay(&self, ms: u64) -> Duration {
        Duration::from_millis(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_is_the_wall_clock() {
        let before = Timestamp::from_system_time(std::time::SystemTime::now());
        let now = SystemClock.now();
        assert!(now.0 >= before.0 && now.0 - before.0 < 60_000);
        assert_eq!(SystemClock.wall_delay(1500), Duration::from_millis(1500));
    }
}
