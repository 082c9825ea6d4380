//! Time for the host loop: the wall clock on a device, a scaled clock in the simulator.

use std::time::Duration;

use protocol::Timestamp;

/// The time source the device loop uses. The agent core never reads it; the loop
/// passes its readings in.
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
