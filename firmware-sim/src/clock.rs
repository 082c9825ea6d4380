//! Simulated time for live runs: the wall clock, sped up.

use std::time::{Duration, Instant};

use protocol::clock::Clock;
use protocol::Timestamp;

/// A clock that starts at a chosen simulated time and runs `speedup` times faster
/// than the wall clock.
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    wall_origin: Instant,
    sim_origin: Timestamp,
    speedup: f64,
}

impl ScaledClock {
    /// Starts now at `sim_origin`.
    pub fn new(sim_origin: Timestamp, speedup: f64) -> Self {
        ScaledClock {
            wall_origin: Instant::now(),
            sim_origin,
            speedup: speedup.max(1e-6),
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Timestamp {
        let elapsed = self.wall_origin.elapsed().as_secs_f64() * self.speedup * 1000.0;
        Timestamp(self.sim_origin.0 + elapsed as u64)
    }

    fn wall_delay(&self, ms: u64) -> Duration {
        Duration::from_secs_f64(ms as f64 / 1000.0 / self.speedup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_passes_in_a_fraction_of_a_second_at_a_million_times() {
        let c = ScaledClock::new(Timestamp(0), 1e6);
        assert_eq!(c.wall_delay(86_400_000), Duration::from_secs_f64(0.0864));
        std::thread::sleep(Duration::from_millis(10));
        let t = c.now().0;
        assert!(t >= 10_000_000, "{t}"); // at least 10 ms × 10^6
    }
}
