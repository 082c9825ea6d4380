//! Battery and thermal physics, deliberately simple and documented in
//! `docs/simulation.md`: enough to make the telemetry behave like a real cell's.

use rand::{Rng, RngExt};

/// Brown-out detector threshold, volts.
pub const BROWN_OUT_V: f32 = 3.1;
/// Internal resistance of a new cell, ohms.
pub const R_NEW_OHM: f32 = 0.11;

/// One battery cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Design capacity, mAh.
    pub design_mah: f32,
    /// State of charge, 0..1.
    pub soc: f32,
    /// Calendar and cycle fade so far, as a share of design capacity.
    pub fade: f32,
    /// Extra fade from a wearing cell (failure mode), share of design capacity.
    pub wear_fade: f32,
    /// Equivalent full cycles so far.
    pub cycles: f32,
    /// Extra internal resistance factor from wear (1 = none).
    pub wear_resistance: f32,
}

/// The outcome of one step of the cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellStep {
    /// Terminal voltage at the step's average load, V.
    pub voltage_v: f32,
    /// Lowest voltage under the step's peak load, V.
    pub sag_v: f32,
    /// Current, mA, positive while charging.
    pub current_ma: f32,
}

impl Cell {
    /// A cell of `design_mah` that has aged `age_days` with `cycles_per_day` cycles.
    pub fn aged(design_mah: f32, age_days: f64, cycles_per_day: f64, mean_temp_c: f32) -> Cell {
        let cycles = (age_days * cycles_per_day) as f32;
        let mut cell = Cell {
            design_mah,
            soc: 0.7,
            fade: 0.0,
            wear_fade: 0.0,
            cycles,
            wear_resistance: 1.0,
        };
        cell.fade = calendar_fade(age_days, mean_temp_c) + cycle_fade(cycles);
        cell
    }

    /// Full-charge capacity now, mAh.
    pub fn full_mah(&self) -> f32 {
        self.design_mah * (1.0 - self.fade - self.wear_fade).max(0.05)
    }

    /// State of health, percent.
    pub fn soh_pct(&self) -> f32 {
        self.full_mah() / self.design_mah * 100.0
    }

    /// Internal resistance, ohms: grows as the cell fades, with wear, and in the cold.
    pub fn resistance(&self, temp_c: f32) -> f32 {
        let cold = if temp_c < 10.0 {
            1.0 + (10.0 - temp_c) * 0.04
        } else {
            1.0
        };
        R_NEW_OHM * (1.0 + 2.0 * self.fade) * self.wear_resistance * cold
    }

    /// Open-circuit voltage at the current state of charge, V.
    pub fn ocv(&self) -> f32 {
        3.35 + 0.85 * self.soc.max(0.0).powf(0.7)
    }

    /// Runs the cell for `hours` at `load_ma` (negative while charging at the charger's
    /// current), with a burst of `peak_ma`. Returns voltages and current.
    pub fn step(
        &mut self,
        hours: f32,
        load_ma: f32,
        charge_ma: f32,
        peak_ma: f32,
        temp_c: f32,
    ) -> CellStep {
        let full = self.full_mah();
        let net_ma = charge_ma - load_ma;
        let before = self.soc;
        // Charging tapers above 80 %.
        let taper = if net_ma > 0.0 && self.soc > 0.8 {
            (1.0 - self.soc) / 0.2
        } else {
            1.0
        };
        self.soc = (self.soc + net_ma * taper * hours / full).clamp(0.0, 1.0);
        self.cycles += (self.soc - before).abs() / 2.0;
        self.fade = self.fade.max(0.0)
            + cycle_fade_rate() * (self.soc - before).abs() / 2.0
            + calendar_rate(temp_c) * hours / 24.0;
        let r = self.resistance(temp_c);
        let ocv = self.ocv();
        CellStep {
            voltage_v: (ocv - load_ma / 1000.0 * r + charge_ma.max(0.0) / 1000.0 * r * 0.5)
                .clamp(2.5, 4.45),
            sag_v: ocv - peak_ma / 1000.0 * r,
            current_ma: net_ma * taper,
        }
    }
}

/// Calendar fade after `days` at a mean temperature: square-root of time, doubling per
/// 10 °C above 25 °C (an Arrhenius rule of thumb).
pub fn calendar_fade(days: f64, mean_temp_c: f32) -> f32 {
    let accel = 2f32.powf((mean_temp_c - 25.0) / 10.0);
    (0.015 * (days as f32 / 30.0).sqrt() * accel).min(0.4)
}

fn calendar_rate(temp_c: f32) -> f32 {
    // The derivative of calendar fade, linearised over a device's remaining life.
    0.000_08 * 2f32.powf((temp_c - 25.0) / 10.0)
}

/// Cycle fade: about 12 % after 1000 full cycles.
pub fn cycle_fade(cycles: f32) -> f32 {
    cycles * cycle_fade_rate()
}

fn cycle_fade_rate() -> f32 {
    0.000_12
}

/// Normal noise with standard deviation `sd`.
pub fn noise(rng: &mut impl Rng, sd: f32) -> f32 {
    let z: f32 = rng.sample(rand_distr::StandardNormal);
    sd * z
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_heavily_cycled_cell_has_lost_capacity_and_gained_resistance() {
        let new = Cell::aged(4000.0, 30.0, 0.5, 25.0);
        let old = Cell::aged(4000.0, 900.0, 1.3, 30.0);
        assert!(new.soh_pct() > 95.0, "{}", new.soh_pct());
        assert!((65.0..85.0).contains(&old.soh_pct()), "{}", old.soh_pct());
        assert!(old.resistance(25.0) > new.resistance(25.0) * 1.3);
    }

    #[test]
    fn load_drains_and_a_charger_fills() {
        let mut c = Cell::aged(4000.0, 100.0, 1.0, 25.0);
        c.soc = 0.5;
        let s = c.step(1.0, 400.0, 0.0, 0.0, 25.0);
        assert!(c.soc < 0.5 && s.current_ma < 0.0);
        let s = c.step(1.0, 0.0, 2000.0, 0.0, 25.0);
        assert!(c.soc > 0.5 && s.current_ma > 0.0);
    }

    #[test]
    fn a_worn_cell_sags_below_brown_out_under_peak_load_when_a_new_one_does_not() {
        let mut new = Cell::aged(4000.0, 60.0, 1.0, 25.0);
        new.soc = 0.3;
        let mut worn = new.clone();
        worn.wear_resistance = 3.5;
        assert!(new.step(0.01, 300.0, 0.0, 2600.0, 25.0).sag_v > BROWN_OUT_V);
        assert!(worn.step(0.01, 300.0, 0.0, 2600.0, 25.0).sag_v < BROWN_OUT_V);
    }
}
