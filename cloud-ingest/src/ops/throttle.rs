//! Log throttling: one warning line per key (a rejection reason and a device) per
//! interval, with the count of what was left out since, so a device that sends garbage
//! every second is visible to an operator without flooding the log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys remembered at most; past this the oldest half is forgotten (those keys log at
/// their next occurrence, which errs on the side of a line too many).
const MAX_KEYS: usize = 10_000;

/// One key's state.
#[derive(Debug, Clone, Copy)]
struct Seen {
    logged: Instant,
    suppressed: u64,
}

/// Decides which occurrences of a key get a log line.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    keys: Mutex<HashMap<String, Seen>>,
}

impl Throttle {
    /// At most one line per key per `every`.
    pub fn new(every: Duration) -> Self {
        Throttle {
            every,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Whether an occurrence of `key` at `now` gets a line: `Some(n)` with the `n`
    /// occurrences left out since the last line, or `None` to stay quiet.
    pub fn admit(&self, key: &str, now: Instant) -> Option<u64> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(seen) = keys.get_mut(key) {
            if now.saturating_duration_since(seen.logged) < self.every {
                seen.suppressed += 1;
                return None;
            }
            let left_out = seen.suppressed;
            *seen = Seen {
                logged: now,
                suppressed: 0,
            };
            return Some(left_out);
        }
        if keys.len() >= MAX_KEYS {
            let mut by_age: Vec<Instant> = keys.values().map(|s| s.logged).collect();
            by_age.sort_unstable();
            let cut = by_age[by_age.len() / 2];
            keys.retain(|_, s| s.logged > cut);
        }
        keys.insert(
            key.to_owned(),
            Seen {
                logged: now,
                suppressed: 0,
            },
        );
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_key_and_interval_with_the_count_left_out() {
        let t = Throttle::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(t.admit("bad_json dev-a", at(0)), Some(0));
        assert_eq!(t.admit("bad_json dev-a", at(1)), None);
        assert_eq!(t.admit("bad_json dev-a", at(59)), None);
        // Another device, another reason: lines of their own.
        assert_eq!(t.admit("bad_json dev-b", at(2)), Some(0));
        assert_eq!(t.admit("too_large dev-a", at(3)), Some(0));
        assert_eq!(t.admit("bad_json dev-a", at(60)), Some(2));
        assert_eq!(t.admit("bad_json dev-a", at(61)), None);
    }

    #[test]
    fn memory_is_bounded() {
        let t = Throttle::new(Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS as u64 + 10) {
            t.admit(&format!("k{i}"), t0 + Duration::from_millis(i));
        }
        let n = t.keys.lock().unwrap().len();
        assert!(n <= MAX_KEYS, "{n}");
        // The newest keys are still remembered.
        assert_eq!(
            t.admit(&format!("k{}", MAX_KEYS + 9), t0 + Duration::from_secs(1)),
            None
        );
    }
}
