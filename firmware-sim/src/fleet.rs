//! The fleet: device models (SKUs), hardware batches, firmware releases, customers'
//! usage, and each device's fate (whether, when and how it fails), all drawn from one
//! seed. `docs/simulation.md` explains the numbers.

use protocol::ids::{BatchId, DeviceId, FirmwareVersion, ModelId};
use protocol::state::DeviceClass;
use protocol::Timestamp;
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use rand_pcg::Pcg64Mcg;
use serde::Serialize;

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;

/// A device model for sale.
#[derive(Debug, Clone, PartialEq)]
pub struct Sku {
    /// The model id.
    pub model: &'static str,
    /// Its class.
    pub class: DeviceClass,
    /// Its price, in minor units of EUR.
    pub price_minor: u64,
    /// Its weight, grams (the e-waste a recycled or refurbished one keeps from landfill).
    pub weight_g: u32,
    /// How long it is expected to last, days.
    pub expected_life_days: u32,
    /// Battery design capacity, mAh; `None` when mains-powered.
    pub design_mah: Option<f32>,
    /// Current drawn idle, mA.
    pub idle_ma: f32,
    /// Current drawn in active use, mA.
    pub active_ma: f32,
    /// Peak current of a load burst (radio, camera, amplifier), mA.
    pub peak_ma: f32,
    /// Share of the fleet.
    pub share: f32,
}

/// The catalogue.
pub const SKUS: [Sku; 5] = [
    Sku {
        model: "phone-a12",
        weight_g: 185,
        class: DeviceClass::Phone,
        price_minor: 69_900,
        expected_life_days: 1095,
        design_mah: Some(4000.0),
        idle_ma: 18.0,
        active_ma: 420.0,
        peak_ma: 2600.0,
        share: 0.35,
    },
    Sku {
        model: "phone-x9",
        weight_g: 204,
        class: DeviceClass::Phone,
        price_minor: 109_900,
        expected_life_days: 1278,
        design_mah: Some(4500.0),
        idle_ma: 20.0,
        active_ma: 480.0,
        peak_ma: 3000.0,
        share: 0.2,
    },
    Sku {
        model: "speaker-s3",
        weight_g: 840,
        class: DeviceClass::Speaker,
        price_minor: 19_900,
        expected_life_days: 1460,
        design_mah: Some(5200.0),
        idle_ma: 35.0,
        active_ma: 650.0,
        peak_ma: 3200.0,
        share: 0.15,
    },
    Sku {
        model: "watch-w2",
        weight_g: 38,
        class: DeviceClass::Wearable,
        price_minor: 34_900,
        expected_life_days: 912,
        design_mah: Some(300.0),
        idle_ma: 1.5,
        active_ma: 45.0,
        peak_ma: 260.0,
        share: 0.15,
    },
    Sku {
        model: "hub-h1",
        weight_g: 320,
        class: DeviceClass::Hub,
        price_minor: 14_900,
        expected_life_days: 1825,
        design_mah: None,
        idle_ma: 0.0,
        active_ma: 0.0,
        peak_ma: 0.0,
        share: 0.15,
    },
];

/// A hardware production batch with its own defect multipliers.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The batch id.
    pub id: String,
    /// Multiplier on the base rate of each failure mode, in [`FailureMode::ALL`] order.
    pub defect: [f32; 4],
}

/// Three batches per model; the middle one of some models carries a defect.
pub fn batches(sku: &Sku) -> Vec<Batch> {
    let prefix = sku.model.split('-').nth(1).unwrap_or("x").to_uppercase();
    let bad: [f32; 4] = match sku.model {
        "phone-a12" => [4.0, 1.0, 1.0, 1.0],  // a weak cell supplier
        "speaker-s3" => [1.0, 4.0, 1.0, 1.0], // thermal pad misapplied
        "hub-h1" => [1.0, 1.0, 3.5, 1.0],     // a cheap flash part
        "watch-w2" => [1.0, 1.0, 1.0, 3.0],   // a solder-joint defect
        _ => [1.0; 4],
    };
    vec![
        Batch {
            id: format!("{prefix}-2024Q3"),
            defect: [1.0; 4],
        },
        Batch {
            id: format!("{prefix}-2024Q4"),
            defect: bad,
        },
        Batch {
            id: format!("{prefix}-2025Q2"),
            defect: [0.8; 4],
        },
    ]
}

/// A firmware release and its behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// The version.
    pub version: &'static str,
    /// Days after the simulation starts that it rolls out (negative: already out).
    pub released_day: f64,
    /// Application crashes per device-day.
    pub crash_rate: f64,
    /// Fatal software-watchdog resets per device-day.
    pub watchdog_rate: f64,
}

/// The firmware history: a stable release, a buggy one, and its fix.
pub const RELEASES: [Release; 3] = [
    Release {
        version: "3.1.4",
        released_day: -200.0,
        crash_rate: 0.03,
        watchdog_rate: 0.002,
    },
    Release {
        version: "3.2.0",
        released_day: 30.0,
        crash_rate: 0.4,
        watchdog_rate: 0.25,
    },
    Release {
        version: "3.2.1",
        released_day: 70.0,
        crash_rate: 0.04,
        watchdog_rate: 0.003,
    },
];

/// How a device fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// The battery wears out: fast capacity fade, rising resistance, brown-outs, drops.
    BatteryWear,
    /// Cooling fails: rising temperature, over-temperature events, thermal cut-offs.
    Thermal,
    /// Flash wears out: storage errors, then kernel panics.
    StorageWear,
    /// A board fault (solder joint, PMIC): usually sudden, sometimes watchdog resets first.
    Board,
}

impl FailureMode {
    /// All modes, in the order of [`Batch::defect`].
    pub const ALL: [FailureMode; 4] = [
        FailureMode::BatteryWear,
        FailureMode::Thermal,
        FailureMode::StorageWear,
        FailureMode::Board,
    ];

    /// The name written in `ground_truth.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureMode::BatteryWear => "battery_wear",
            FailureMode::Thermal => "thermal",
            FailureMode::StorageWear => "storage_wear",
            FailureMode::Board => "board",
        }
    }

    /// Chance of failing this way within 180 days for a typical device of the first batch.
    fn base_180d(self) -> f64 {
        match self {
            FailureMode::BatteryWear => 0.035,
            FailureMode::Thermal => 0.012,
            FailureMode::StorageWear => 0.015,
            FailureMode::Board => 0.018,
        }
    }
}

/// How a customer uses the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Usage {
    /// An hour or two a day.
    Light,
    /// Three to four hours.
    Medium,
    /// Six hours or more, often while charging.
    Heavy,
}

impl Usage {
    /// Active hours per day, mean.
    pub fn active_hours(self) -> f64 {
        match self {
            Usage::Light => 1.5,
            Usage::Medium => 3.5,
            Usage::Heavy => 7.0,
        }
    }
}

/// A failure and its precursor window.
#[derive(Debug, Clone, PartialEq)]
pub struct Fate {
    /// How.
    pub mode: FailureMode,
    /// When the device stops working.
    pub failed_at: Timestamp,
    /// When its precursors start (equal to `failed_at` for a failure without warning).
    pub onset: Timestamp,
}

impl Fate {
    /// Degradation in [0, 1]: 0 before onset, rising to 1 at failure.
    pub fn degradation(&self, now: Timestamp) -> f64 {
        if now.0 < self.onset.0 {
            return 0.0;
        }
        let span = self.failed_at.0.saturating_sub(self.onset.0).max(1) as f64;
        ((now.0 - self.onset.0) as f64 / span).min(1.0)
    }
}

/// One simulated device: what it is, who uses it, and how it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSpec {
    /// Its id.
    pub id: DeviceId,
    /// Index into [`SKUS`].
    pub sku: usize,
    /// Its batch.
    pub batch: Batch,
    /// Purchase time.
    pub purchased: Timestamp,
    /// Usage profile.
    pub usage: Usage,
    /// State of charge at which the customer plugs in, percent.
    pub charge_at_pct: f32,
    /// True when the customer charges overnight whatever the level.
    pub charges_overnight: bool,
    /// Ambient temperature around the device, °C.
    pub ambient_c: f32,
    /// Expected connectivity outages per day.
    pub outage_rate: f64,
    /// Median outage length, hours.
    pub outage_median_h: f64,
    /// Hot spells per day (left in a car, in the sun): a healthy device overheating.
    pub hot_spells_per_day: f64,
    /// Days after release at which this device takes each firmware update
    /// (`None`: it never updates).
    pub update_lag_days: Option<f64>,
    /// The failure, when it fails inside the simulated window.
    pub fate: Option<Fate>,
    /// This device's own seed.
    pub seed: u64,
}

impl DeviceSpec {
    /// The SKU.
    pub fn sku(&self) -> &'static Sku {
        &SKUS[self.sku]
    }

    /// The firmware installed at `now`.
    pub fn firmware_at(&self, start: Timestamp, now: Timestamp) -> &'static Release {
        let day = (now.0 as f64 - start.0 as f64) / DAY_MS as f64;
        let lag = self.update_lag_days;
        RELEASES
            .iter()
            .rev()
            .find(|r| r.released_day <= -100.0 || lag.is_some_and(|l| r.released_day + l <= day))
            .unwrap_or(&RELEASES[0])
    }

    /// Typed ids for the birth message.
    pub fn model_id(&self) -> ModelId {
        ModelId::new(self.sku().model).expect("catalogue ids are valid")
    }

    /// The batch id, typed.
    pub fn batch_id(&self) -> BatchId {
        BatchId::new(&self.batch.id).expect("batch ids are valid")
    }

    /// A firmware version, typed.
    pub fn firmware_id(release: &Release) -> FirmwareVersion {
        FirmwareVersion::new(release.version).expect("release versions are valid")
    }
}

/// The simulated window and the fleet in it.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Start of the simulated window.
    pub start: Timestamp,
    /// Its length, days.
    pub days: u32,
    /// The devices.
    pub devices: Vec<DeviceSpec>,
}

/// The start of every simulation: 2026-01-01T00:00:00Z.
pub const DEFAULT_START: Timestamp = Timestamp(1_767_225_600_000);

impl Fleet {
    /// Draws a fleet of `n` devices over `days` days from `seed`.
    pub fn generate(seed: u64, n: usize, days: u32, start: Timestamp) -> Fleet {
        Fleet::generate_with(seed, n, days, start, batches)
    }

    /// As [`Fleet::generate`], with each model's batches (and their defects) from
    /// `batches_of` instead of the catalogue's: a test plants a defect of known size.
    pub fn generate_with(
        seed: u64,
        n: usize,
        days: u32,
        start: Timestamp,
        batches_of: impl Fn(&Sku) -> Vec<Batch>,
    ) -> Fleet {
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        let window_ms = u64::from(days) * DAY_MS;
        let devices = (0..n)
            .map(|i| {
                let sku = pick_sku(&mut rng);
                let batches = batches_of(&SKUS[sku]);
                let batch = batches[rng.random_range(0..batches.len())].clone();
                // Bought between 1 month and 3 years before the start, more of them recently.
                let age_days = 30.0 + 1065.0 * rng.random::<f64>().powf(1.6);
                let purchased = Timestamp(start.0 - (age_days * DAY_MS as f64) as u64);
                let usage = match rng.random::<f64>() {
                    u if u < 0.35 => Usage::Light,
                    u if u < 0.8 => Usage::Medium,
                    _ => Usage::Heavy,
                };
                let fate = draw_fate(
                    &mut rng, &SKUS[sku], &batch, usage, age_days, start, window_ms,
                );
                let traveller = rng.random_bool(0.06);
                DeviceSpec {
                    id: DeviceId::new(format!("dev-{i:06}")).expect("valid id"),
                    sku,
                    batch,
                    purchased,
                    usage,
                    charge_at_pct: rng.random_range(8.0..45.0),
                    charges_overnight: rng.random_bool(0.6),
                    ambient_c: rng.random_range(17.0..29.0),
                    outage_rate: if traveller { 0.12 } else { 0.04 },
                    outage_median_h: if traveller { 30.0 } else { 4.0 },
                    hot_spells_per_day: if rng.random_bool(0.3) {
                        1.0 / 45.0
                    } else {
                        0.0
                    },
                    update_lag_days: (!rng.random_bool(0.12))
                        .then(|| LogNormal::new(2.0f64, 0.8).expect("valid").sample(&mut rng)),
                    fate,
                    seed: rng.random(),
                }
            })
            .collect();
        Fleet {
            start,
            days,
            devices,
        }
    }

    /// End of the simulated window.
    pub fn end(&self) -> Timestamp {
        Timestamp(self.start.0 + u64::from(self.days) * DAY_MS)
    }
}

fn pick_sku(rng: &mut impl Rng) -> usize {
    let mut u = rng.random::<f32>();
    for (i, s) in SKUS.iter().enumerate() {
        if u < s.share {
            return i;
        }
        u -= s.share;
    }
    SKUS.len() - 1
}

fn draw_fate(
    rng: &mut impl Rng,
    sku: &Sku,
    batch: &Batch,
    usage: Usage,
    age_days: f64,
    start: Timestamp,
    window_ms: u64,
) -> Option<Fate> {
    let window_days = window_ms as f64 / DAY_MS as f64;
    let mut first: Option<(FailureMode, f64)> = None;
    for (k, mode) in FailureMode::ALL.iter().enumerate() {
        let mut mult = f64::from(batch.defect[k]);
        match mode {
            FailureMode::BatteryWear => {
                if sku.design_mah.is_none() {
                    continue;
                }
                // Wear-out: rises with age and with use.
                mult *= 0.4 + age_days / 365.0 * 0.6;
                mult *= match usage {
                    Usage::Light => 0.6,
                    Usage::Medium => 1.0,
                    Usage::Heavy => 1.8,
                };
            }
            FailureMode::Thermal => {
                mult *= if usage == Usage::Heavy { 1.6 } else { 1.0 };
            }
            FailureMode::StorageWear => mult *= 0.5 + age_days / 365.0 * 0.5,
            FailureMode::Board => {}
        }
        // Constant hazard over the window, scaled from the 180-day base.
        let rate = -(1.0 - mode.base_180d()).ln() / 180.0 * mult;
        let t = -rng.random::<f64>().max(1e-12).ln() / rate;
        if t < window_days && first.is_none_or(|(_, f)| t < f) {
            first = Some((*mode, t));
        }
    }
    let (mode, t_days) = first?;
    let failed_at = Timestamp(start.0 + (t_days * DAY_MS as f64) as u64);
    // Wear shows before it ends a device: a cell's impedance and fade, a flash chip's
    // corrected errors and a cooling path's creeping temperature are visible for weeks.
    // Board faults are the sudden ones.
    let lead_days = match mode {
        FailureMode::BatteryWear => LogNormal::new(21f64.ln(), 0.4)
            .expect("valid")
            .sample(rng)
            .clamp(12.0, 45.0),
        FailureMode::Thermal => rng.random_range(12.0..28.0),
        FailureMode::StorageWear => rng.random_range(14.0..35.0),
        // Many board faults give no warning at all.
        FailureMode::Board if rng.random_bool(0.4) => 0.0,
        FailureMode::Board => rng.random_range(3.0..14.0),
    };
    let onset = Timestamp(
        failed_at
            .0
            .saturating_sub((lead_days * DAY_MS as f64) as u64),
    );
    Some(Fate {
        mode,
        failed_at,
        onset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_fleet_and_another_seed_another() {
        let a = Fleet::generate(7, 200, 180, DEFAULT_START);
        let b = Fleet::generate(7, 200, 180, DEFAULT_START);
        let c = Fleet::generate(8, 200, 180, DEFAULT_START);
        assert_eq!(a.devices, b.devices);
        assert_ne!(a.devices, c.devices);
    }

    #[test]
    fn a_fleet_has_several_failure_modes_and_mostly_healthy_devices() {
        let f = Fleet::generate(1, 2000, 180, DEFAULT_START);
        let failed: Vec<_> = f.devices.iter().filter_map(|d| d.fate.as_ref()).collect();
        let share = failed.len() as f64 / 2000.0;
        assert!((0.04..0.25).contains(&share), "{share}");
        for mode in FailureMode::ALL {
            assert!(failed.iter().any(|x| x.mode == mode), "{mode:?}");
        }
        for x in &failed {
            assert!(x.onset <= x.failed_at);
            assert!(x.failed_at < f.end());
        }
        // Mains-powered hubs cannot wear out a battery.
        assert!(f.devices.iter().all(|d| d.sku().design_mah.is_some()
            || d.fate
                .as_ref()
                .is_none_or(|x| x.mode != FailureMode::BatteryWear)));
    }

    #[test]
    fn degradation_rises_from_onset_to_failure() {
        let fate = Fate {
            mode: FailureMode::Thermal,
            failed_at: Timestamp(3000),
            onset: Timestamp(1000),
        };
        assert_eq!(fate.degradation(Timestamp(500)), 0.0);
        assert_eq!(fate.degradation(Timestamp(2000)), 0.5);
        assert_eq!(fate.degradation(Timestamp(9000)), 1.0);
    }
}
