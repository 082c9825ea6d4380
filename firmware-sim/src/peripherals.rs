//! Simulated peripherals behind the same embedded-hal traits the real hardware uses.
//!
//! [`GaugeChip`] is a MAX17055-class register file answering I2C transactions, so the
//! agent's real driver ([`edge_agent::gauge::Max17055`]) reads it exactly as it would
//! read the chip. The physics writes the registers; the driver reads them.

use edge_agent::gauge::{reg, ADDRESS};
use embedded_hal::i2c::{self, ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};

/// An I2C error of the simulated bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusError(ErrorKind);

impl i2c::Error for BusError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

/// The simulated gauge: 256 16-bit registers and the register pointer.
#[derive(Debug, Clone)]
pub struct GaugeChip {
    regs: [u16; 256],
    pointer: u8,
}

impl Default for GaugeChip {
    fn default() -> Self {
        GaugeChip {
            regs: [0; 256],
            pointer: 0,
        }
    }
}

/// What the physics knows about the battery, in physical units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaugeState {
    /// State of charge, percent.
    pub soc_pct: f32,
    /// Cell voltage, V.
    pub voltage_v: f32,
    /// Current, mA, positive while charging.
    pub current_ma: f32,
    /// Temperature, °C.
    pub temp_c: f32,
    /// Full-charge capacity, mAh.
    pub full_mah: f32,
    /// Charge cycles (the register wraps as the real one does).
    pub cycles: f32,
}

impl GaugeChip {
    /// A chip configured for a battery of `design_mah`.
    pub fn new(design_mah: f32) -> Self {
        let mut chip = GaugeChip::default();
        chip.regs[reg::DESIGN_CAP as usize] = to_raw(design_mah / reg::CAPACITY_LSB_MAH);
        chip
    }

    /// Writes the physics into the registers, quantised as the chip would.
    pub fn set(&mut self, s: &GaugeState) {
        let r = &mut self.regs;
        r[reg::REP_SOC as usize] = to_raw(s.soc_pct / reg::SOC_LSB_PCT);
        r[reg::VCELL as usize] = to_raw(s.voltage_v / reg::VCELL_LSB_V);
        r[reg::CURRENT as usize] = (s.current_ma / reg::CURRENT_LSB_MA)
            .round()
            .clamp(i16::MIN as f32, i16::MAX as f32) as i16
            as u16;
        r[reg::TEMP as usize] = (s.temp_c / reg::TEMP_LSB_C)
            .round()
            .clamp(i16::MIN as f32, i16::MAX as f32) as i16 as u16;
        r[reg::FULL_CAP_REP as usize] = to_raw(s.full_mah / reg::CAPACITY_LSB_MAH);
        r[reg::REP_CAP as usize] = to_raw(s.full_mah * s.soc_pct / 100.0 / reg::CAPACITY_LSB_MAH);
        let cycles = (s.cycles / reg::CYCLES_LSB).round() as u64 % 65_536;
        r[reg::CYCLES as usize] = cycles as u16;
    }

    /// A register's raw value.
    pub fn register(&self, address: u8) -> u16 {
        self.regs[address as usize]
    }
}

fn to_raw(v: f32) -> u16 {
    v.round().clamp(0.0, 65_535.0) as u16
}

impl ErrorType for GaugeChip {
    type Error = BusError;
}

impl I2c for GaugeChip {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), BusError> {
        if address != ADDRESS {
            return Err(BusError(ErrorKind::NoAcknowledge(
                NoAcknowledgeSource::Address,
            )));
        }
        for op in operations {
            match op {
                Operation::Write(bytes) => match bytes {
                    [] => {}
                    [ptr] => self.pointer = *ptr,
                    [ptr, lo, hi] => {
                        self.pointer = *ptr;
                        self.regs[*ptr as usize] = u16::from_le_bytes([*lo, *hi]);
                    }
                    _ => return Err(BusError(ErrorKind::Other)),
                },
                Operation::Read(buf) => {
                    // Reads stream little-endian words from the pointer on.
                    let mut p = self.pointer;
                    for pair in buf.chunks_mut(2) {
                        let word = self.regs[p as usize].to_le_bytes();
                        pair.copy_from_slice(&word[..pair.len()]);
                        p = p.wrapping_add(1);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use edge_agent::gauge::Max17055;
    use edge_agent::hal::BatteryMonitor;

    use super::*;

    #[test]
    fn the_real_driver_reads_back_what_the_physics_wrote() {
        let mut chip = GaugeChip::new(4000.0);
        chip.set(&GaugeState {
            soc_pct: 42.5,
            voltage_v: 3.71,
            current_ma: -320.0,
            temp_c: 31.25,
            full_mah: 3400.0,
            cycles: 700.5,
        });
        let mut gauge = Max17055::new(chip);
        let s = gauge.read().unwrap();
        assert_eq!(s.soc_pct, 42.5);
        assert!((s.voltage_v - 3.71).abs() < 1e-4);
        assert!(!s.charging);
        assert_eq!(s.temp_c, Some(31.25));
        assert!((s.soh_pct.unwrap() - 85.0).abs() < 1e-3);
        // The register wrapped after 655.35 cycles, as the real one does.
        assert!((s.cycles.unwrap() - (700.5 - 655.36)).abs() < 0.01);
    }

    #[test]
    fn the_chip_answers_only_its_address_and_takes_register_writes() {
        let mut chip = GaugeChip::new(1000.0);
        let mut buf = [0u8; 2];
        assert!(chip.write_read(0x55, &[reg::VCELL], &mut buf).is_err());
        chip.write(ADDRESS, &[reg::DESIGN_CAP, 0x10, 0x27]).unwrap();
        assert_eq!(chip.register(reg::DESIGN_CAP), 10_000);
    }
}
