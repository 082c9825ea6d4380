//! The random inspection sample: each day a small share of the devices below the alarm
//! threshold is offered a free check, so the desk's outcomes also label devices no model
//! flagged, and training can weigh them back to the whole fleet (docs/features.md,
//! "Training from the field").
//!
//! The draw is a hash of the device and the day, not a random number: every replica and
//! every replay of the same day draws the same devices.

use sha2::{Digest, Sha256};

/// Milliseconds in a day.
const DAY_MS: u64 = 86_400_000;

/// The device's draw for the day `now_ms` falls in, uniform in [0, 1).
pub fn draw(device: &str, now_ms: u64) -> f64 {
    let mut h = Sha256::new();
    h.update(device.as_bytes());
    h.update((now_ms / DAY_MS).to_be_bytes());
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // The top 53 bits: every value an f64 in [0, 1) holds exactly.
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

/// How many devices below the threshold a sampled one stands for.
pub fn weight(share: f64) -> f64 {
    1.0 / share
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_draw_is_the_same_all_day_new_each_day_and_uniform() {
        let noon = 20_000 * DAY_MS + DAY_MS / 2;
        assert_eq!(draw("dev-1", noon), draw("dev-1", noon - DAY_MS / 2));
        assert_ne!(draw("dev-1", noon), draw("dev-1", noon + DAY_MS));
        assert_ne!(draw("dev-1", noon), draw("dev-2", noon));
        // One device-day in a hundred falls below 0.01, within sampling error.
        let n = 20_000;
        let hits = (0..n)
            .filter(|i| draw(&format!("dev-{i}"), noon) < 0.01)
            .count();
        assert!((140..=260).contains(&hits), "{hits} of {n}");
        let mean = (0..n).map(|i| draw(&format!("d{i}"), noon)).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        assert_eq!(weight(0.002), 500.0);
    }
}
