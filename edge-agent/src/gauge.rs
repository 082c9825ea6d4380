//! A register-level driver for a MAX17055-class fuel gauge over embedded-hal `I2c`.
//!
//! Why our own driver: the `max170xx` crate drives the MAX17048 family, which reports
//! state of charge and voltage only; the agent also needs full-charge capacity (for
//! state of health), the cycle counter and the battery temperature, which the
//! MAX17055's ModelGauge m5 registers provide. Register addresses and units live in
//! [`reg`]; only [`Max17055::read_register`] and [`Max17055::write_register`] touch
//! raw bytes. Units assume the usual 10 mΩ sense resistor.

use embedded_hal::i2c::I2c;

use crate::hal::{BatteryMonitor, BatterySample, HalError};

/// The gauge's 7-bit I2C address.
pub const ADDRESS: u8 = 0x36;

/// Register addresses and their units.
pub mod reg {
    /// Status flags.
    pub const STATUS: u8 = 0x00;
    /// Reported remaining capacity; LSB 0.5 mAh.
    pub const REP_CAP: u8 = 0x05;
    /// Reported state of charge; LSB 1/256 %.
    pub const REP_SOC: u8 = 0x06;
    /// Temperature, signed; LSB 1/256 °C.
    pub const TEMP: u8 = 0x08;
    /// Cell voltage; LSB 78.125 µV.
    pub const VCELL: u8 = 0x09;
    /// Battery current, signed, positive while charging; LSB 156.25 µA.
    pub const CURRENT: u8 = 0x0A;
    /// Full-charge capacity as learned; LSB 0.5 mAh.
    pub const FULL_CAP_REP: u8 = 0x10;
    /// Charge cycles; LSB 0.01 cycle, wraps after 655.35.
    pub const CYCLES: u8 = 0x17;
    /// Design capacity; LSB 0.5 mAh.
    pub const DESIGN_CAP: u8 = 0x18;

    /// mAh per capacity LSB.
    pub const CAPACITY_LSB_MAH: f32 = 0.5;
    /// Percent per state-of-charge LSB.
    pub const SOC_LSB_PCT: f32 = 1.0 / 256.0;
    /// °C per temperature LSB.
    pub const TEMP_LSB_C: f32 = 1.0 / 256.0;
    /// Volts per voltage LSB.
    pub const VCELL_LSB_V: f32 = 78.125e-6;
    /// Milliamps per current LSB.
    pub const CURRENT_LSB_MA: f32 = 0.156_25;
    /// Cycles per cycle-counter LSB.
    pub const CYCLES_LSB: f32 = 0.01;
    /// The cycle counter's range: it wraps to zero after this many cycles.
    pub const CYCLES_RANGE: f32 = 65_536.0 * CYCLES_LSB;
}

/// A MAX17055-class gauge on an I2C bus.
pub struct Max17055<I2C> {
    i2c: I2C,
}

impl<I2C: I2c> Max17055<I2C> {
    /// Takes the bus the gauge sits on.
    pub fn new(i2c: I2C) -> Self {
        Max17055 { i2c }
    }

    /// Gives the bus back.
    pub fn destroy(self) -> I2C {
        self.i2c
    }

    /// The bus, for a simulator that drives the chip behind it.
    pub fn bus_mut(&mut self) -> &mut I2C {
        &mut self.i2c
    }

    /// State of charge, percent.
    pub fn soc_pct(&mut self) -> Result<f32, I2C::Error> {
        Ok(f32::from(self.read_register(reg::REP_SOC)?) * reg::SOC_LSB_PCT)
    }

    /// Cell voltage, volts.
    pub fn voltage_v(&mut self) -> Result<f32, I2C::Error> {
        Ok(f32::from(self.read_register(reg::VCELL)?) * reg::VCELL_LSB_V)
    }

    /// Battery current, mA; positive while charging.
    pub fn current_ma(&mut self) -> Result<f32, I2C::Error> {
        Ok(f32::from(self.read_register(reg::CURRENT)? as i16) * reg::CURRENT_LSB_MA)
    }

    /// Battery temperature, °C.
    pub fn temperature_c(&mut self) -> Result<f32, I2C::Error> {
        Ok(f32::from(self.read_register(reg::TEMP)? as i16) * reg::TEMP_LSB_C)
    }

    /// Full-charge capacity, mAh.
    pub fn full_capacity_mah(&mut self) -> Result<f32, I2C::Error> {
        Ok(f32::from(self.read_register(reg::FULL_CAP_REP)?) * reg::CAPACITY_LSB_MAH)
    }

    /// Design capacity, mAh.
    pub fn design_capacity_mah(&mut self) -> Result<f32, I2C::Error> {
        Ok(f32::from(self.read_register(reg::DESIGN_CAP)?) * reg::CAPACITY_LSB_MAH)
    }

    /// Sets the design capacity, mAh (done once at manufacture).
    pub fn set_design_capacity_mah(&mut self, mah: f32) -> Result<(), I2C::Error> {
        let raw = (mah / reg::CAPACITY_LSB_MAH).round().clamp(0.0, 65_535.0) as u16;
        self.write_register(reg::DESIGN_CAP, raw)
    }

    /// The cycle counter, cycles; wraps after [`reg::CYCLES_RANGE`].
    pub fn cycles(&mut self) -> Result<f32, I2C::Error> {
        Ok(f32::from(self.read_register(reg::CYCLES)?) * reg::CYCLES_LSB)
    }

    fn read_register(&mut self, register: u8) -> Result<u16, I2C::Error> {
        let mut data = [0u8; 2];
        self.i2c.write_read(ADDRESS, &[register], &mut data)?;
        Ok(u16::from_le_bytes(data))
    }

    fn write_register(&mut self, register: u8, value: u16) -> Result<(), I2C::Error> {
        let [lo, hi] = value.to_le_bytes();
        self.i2c.write(ADDRESS, &[register, lo, hi])
    }
}

impl<I2C: I2c> BatteryMonitor for Max17055<I2C> {
    fn read(&mut self) -> Result<BatterySample, HalError> {
        let bus = |e: I2C::Error| HalError::Bus(format!("{e:?}"));
        let soc_pct = self.soc_pct().map_err(bus)?;
        let voltage_v = self.voltage_v().map_err(bus)?;
        let current_ma = self.current_ma().map_err(bus)?;
        let temp_c = self.temperature_c().map_err(bus)?;
        let full = self.full_capacity_mah().map_err(bus)?;
        let design = self.design_capacity_mah().map_err(bus)?;
        let cycles = self.cycles().map_err(bus)?;
        // Right after power-on the gauge reports up to a few LSBs above 100 %.
        if !(0.0..=101.0).contains(&soc_pct) {
            return Err(HalError::Implausible {
                source_name: "gauge state of charge",
                detail: format!("{soc_pct} %"),
            });
        }
        Ok(BatterySample {
            soc_pct: soc_pct.min(100.0),
            voltage_v,
            charging: current_ma > 0.0,
            temp_c: Some(temp_c),
            soh_pct: (design > 0.0).then(|| full / design * 100.0),
            cycles: Some(cycles),
        })
    }
}

#[cfg(test)]
mod tests {
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction};

    use super::*;

    // The register map again, from the datasheet, so a wrong constant in `reg` fails here.
    const REP_SOC: u8 = 0x06;
    const TEMP: u8 = 0x08;
    const VCELL: u8 = 0x09;
    const CURRENT: u8 = 0x0A;
    const FULL_CAP_REP: u8 = 0x10;
    const CYCLES: u8 = 0x17;
    const DESIGN_CAP: u8 = 0x18;

    fn read(register: u8, value: u16) -> Transaction {
        Transaction::write_read(0x36, vec![register], value.to_le_bytes().to_vec())
    }

    #[test]
    fn reads_a_full_sample_in_units() {
        let expectations = [
            read(REP_SOC, 50 * 256 + 128),    // 50.5 %
            read(VCELL, 48_000),              // 3.75 V
            read(CURRENT, (-3200i16) as u16), // -500 mA: discharging
            read(TEMP, (-5 * 256) as u16),    // -5 °C
            read(FULL_CAP_REP, 5_400),        // 2700 mAh
            read(DESIGN_CAP, 6_000),          // 3000 mAh
            read(CYCLES, 12_345),             // 123.45 cycles
        ];
        let mut gauge = Max17055::new(Mock::new(&expectations));
        let s = gauge.read().unwrap();
        assert_eq!(s.soc_pct, 50.5);
        assert!((s.voltage_v - 3.75).abs() < 1e-6);
        assert!(!s.charging);
        assert_eq!(s.temp_c, Some(-5.0));
        assert!((s.soh_pct.unwrap() - 90.0).abs() < 1e-4);
        assert!((s.cycles.unwrap() - 123.45).abs() < 1e-3);
        gauge.destroy().done();
    }

    #[test]
    fn positive_current_means_charging() {
        let mut gauge = Max17055::new(Mock::new(&[read(CURRENT, 640)]));
        assert_eq!(gauge.current_ma().unwrap(), 100.0);
        gauge.destroy().done();
    }

    #[test]
    fn writes_design_capacity_little_endian() {
        let expectations = [Transaction::write(0x36, vec![DESIGN_CAP, 0x70, 0x17])];
        let mut gauge = Max17055::new(Mock::new(&expectations));
        gauge.set_design_capacity_mah(3000.0).unwrap(); // 6000 = 0x1770
        gauge.destroy().done();
    }

    #[test]
    fn an_implausible_charge_is_an_error_not_a_sample() {
        let expectations = [
            read(REP_SOC, 200 * 256),
            read(VCELL, 48_000),
            read(CURRENT, 0),
            read(TEMP, 0),
            read(FULL_CAP_REP, 1),
            read(DESIGN_CAP, 1),
            read(CYCLES, 0),
        ];
        let mut gauge = Max17055::new(Mock::new(&expectations));
        assert!(matches!(gauge.read(), Err(HalError::Implausible { .. })));
        gauge.destroy().done();
    }
}
