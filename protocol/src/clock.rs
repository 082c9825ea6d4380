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

/// A clock that stands where it is set: for tests and measurements that move time
/// on themselves.
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicU64);

impl ManualClock {
    /// A clock standing at `at`.
    pub fn at(at: Timestamp) -> Self {
        ManualClock(std::sync::atomic::AtomicU64::new(at.0))
    }

    /// Moves it to `at`.
    pub fn set(&self, at: Timestamp) {
        self.0.store(at.0, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(std::sync::atomic::Ordering::SeqCst))
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

    #[test]
    fn a_manual_clock_stands_where_it_is_set() {
        let c = ManualClock::at(Timestamp(5));
        assert_eq!(c.now(), Timestamp(5));
        c.set(Timestamp(9));
        assert_eq!((c.now(), c.now()), (Timestamp(9), Timestamp(9)));
    }
}
