//! One simulated device: its hardware (behind the agent's own [`Platform`] trait and
//! the real gauge driver), its physics, its customer and its fate, as the agent's
//! [`Host`].

use edge_agent::agent::Identity;
use edge_agent::gauge::Max17055;
use edge_agent::hal::BatteryMonitor;
use edge_agent::hal::{BatterySample, HalError, Platform, ResetCause};
use edge_agent::session::{Host, HostEvent};
use edge_agent::{Agent, AgentState};
use protocol::command::Offer;
use protocol::ids::{CommandId, FirmwareVersion, HardwareRevision};
use protocol::reboot::RebootReason;
use protocol::state::Birth;
use protocol::Timestamp;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use rand_pcg::Pcg64Mcg;

use crate::fleet::{DeviceSpec, FailureMode, Release, Usage, DAY_MS};
use crate::peripherals::{GaugeChip, GaugeState};
use crate::physics::{noise, Cell, BROWN_OUT_V};

/// Temperature at which the power-management IC cuts power, °C.
pub const THERMAL_CUTOFF_C: f32 = 72.0;

/// The simulated board as the agent sees it.
pub struct SimHardware {
    gauge: Option<Max17055<GaugeChip>>,
    temp_c: f32,
    active: bool,
    reset_latch: ResetCause,
    storage_ok: bool,
    entropy: Pcg64Mcg,
}

impl Platform for SimHardware {
    fn battery(&mut self) -> Result<Option<BatterySample>, HalError> {
        self.gauge.as_mut().map(|g| g.read()).transpose()
    }

    fn temperature_c(&mut self) -> Result<Option<f32>, HalError> {
        Ok(Some(self.temp_c))
    }

    fn reset_cause(&mut self) -> Result<ResetCause, HalError> {
        // The register latches the last cause until read.
        Ok(std::mem::replace(
            &mut self.reset_latch,
            ResetCause::PowerOn,
        ))
    }

    fn is_active(&mut self) -> bool {
        self.active
    }

    fn storage_self_test(&mut self) -> Result<(), HalError> {
        if self.storage_ok {
            Ok(())
        } else {
            Err(HalError::Implausible {
                source_name: "storage self-test",
                detail: "read back differs from what was written".into(),
            })
        }
    }

    fn entropy(&mut self) -> u32 {
        self.entropy.random()
    }
}

/// One device of the fleet, stepping through simulated time.
pub struct SimDevice {
    /// What the device is.
    pub spec: DeviceSpec,
    start: Timestamp,
    hw: SimHardware,
    cell: Option<Cell>,
    rng: Pcg64Mcg,
    last: Option<Timestamp>,
    charging: bool,
    firmware: &'static Release,
    net_down_until: Option<Timestamp>,
    hot_until: Option<(Timestamp, f32)>,
    /// The agent's state as last persisted (the device's flash).
    pub saved: Option<AgentState>,
    /// True once the device has failed for good.
    pub dead: bool,
    pending_answers: Vec<(Timestamp, CommandId, bool)>,
    now: Timestamp,
    /// Offers shown to this device's customer.
    pub offers_seen: Vec<(CommandId, Offer)>,
}

impl SimDevice {
    /// The device at the start of the simulated window.
    pub fn new(spec: DeviceSpec, start: Timestamp) -> Self {
        let mut rng = Pcg64Mcg::seed_from_u64(spec.seed);
        let age_days = (start.0 - spec.purchased.0) as f64 / DAY_MS as f64;
        let cycles_per_day = match spec.usage {
            Usage::Light => 0.45,
            Usage::Medium => 0.8,
            Usage::Heavy => 1.4,
        } * rng.random_range(0.8..1.2);
        let cell = spec.sku().design_mah.map(|mah| {
            let mut c = Cell::aged(mah, age_days, cycles_per_day, spec.ambient_c + 3.0);
            c.soc = rng.random_range(0.3..0.95);
            c
        });
        let gauge = spec
            .sku()
            .design_mah
            .map(|mah| Max17055::new(GaugeChip::new(mah)));
        let firmware = spec.firmware_at(start, start);
        let entropy = Pcg64Mcg::seed_from_u64(spec.seed ^ 0x5eed);
        let mut dev = SimDevice {
            spec,
            start,
            hw: SimHardware {
                gauge,
                temp_c: 25.0,
                active: false,
                reset_latch: ResetCause::PowerOn,
                storage_ok: true,
                entropy,
            },
            cell,
            rng,
            last: None,
            charging: false,
            firmware,
            net_down_until: None,
            hot_until: None,
            saved: None,
            dead: false,
            pending_answers: Vec::new(),
            now: start,
            offers_seen: Vec::new(),
        };
        dev.write_gauge(0.0);
        dev
    }

    /// The identity the agent announces, with the firmware installed now.
    pub fn identity(&self) -> Identity {
        Identity {
            device_id: self.spec.id.clone(),
            birth: Birth {
                model: self.spec.model_id(),
                device_class: self.spec.sku().class,
                hw_revision: HardwareRevision::new("r1").expect("valid"),
                batch: self.spec.batch_id(),
                firmware: DeviceSpec::firmware_id(self.firmware),
                agent_version: FirmwareVersion::new(env!("CARGO_PKG_VERSION")).expect("valid"),
            },
        }
    }

    /// The firmware installed now.
    pub fn firmware(&self) -> &'static Release {
        self.firmware
    }

    /// The hardware, for booting the agent.
    pub fn hardware(&mut self) -> &mut SimHardware {
        &mut self.hw
    }

    /// How long the device stays off after it left the loop for `exit`, ms.
    pub fn downtime_ms(&mut self, exit: &HostEvent) -> u64 {
        let minutes = match exit {
            HostEvent::Reset { .. } => self.rng.random_range(0.5..3.0),
            HostEvent::Shutdown {
                reason: RebootReason::FirmwareUpdate,
            } => 6.0,
            HostEvent::Shutdown {
                reason: RebootReason::LowBatteryShutdown,
            } => {
                // Until the customer notices and plugs it in.
                let hours: f64 = self.rng.random_range(0.5..10.0);
                if let Some(c) = self.cell.as_mut() {
                    c.soc = (hours as f32 * 0.12).min(0.6);
                }
                hours * 60.0
            }
            HostEvent::Shutdown { .. } => self.rng.random_range(0.5..2.0),
            HostEvent::Crash { .. } | HostEvent::StorageError { .. } => 0.0,
        };
        self.last = None;
        (minutes * 60_000.0) as u64
    }

    fn write_gauge(&mut self, current_ma: f32) {
        let (Some(cell), Some(gauge)) = (self.cell.as_ref(), self.hw.gauge.as_mut()) else {
            return;
        };
        let soc_pct = (cell.soc * 100.0 + noise(&mut self.rng, 0.3)).clamp(0.0, 100.0);
        gauge.bus_mut().set(&GaugeState {
            soc_pct,
            voltage_v: cell.ocv() + current_ma / 1000.0 * cell.resistance(self.hw.temp_c),
            current_ma,
            temp_c: self.hw.temp_c - 2.0 + noise(&mut self.rng, 0.3),
            full_mah: cell.full_mah() * (1.0 + noise(&mut self.rng, 0.004)),
            cycles: cell.cycles,
        });
    }

    fn chance(&mut self, per_day: f64, dt_days: f64) -> bool {
        let p = (per_day * dt_days).clamp(0.0, 1.0);
        p > 0.0 && self.rng.random_bool(p)
    }

    fn degradation(&self, mode: FailureMode, now: Timestamp) -> f64 {
        match &self.spec.fate {
            Some(f) if f.mode == mode => f.degradation(now),
            _ => 0.0,
        }
    }
}

impl Host for SimDevice {
    fn platform(&mut self) -> &mut dyn Platform {
        &mut self.hw
    }

    fn advance(&mut self, now: Timestamp) -> Vec<HostEvent> {
        self.now = now;
        let dt_h = self.last.map_or(0.0, |l| {
            ((now.0.saturating_sub(l.0)) as f64 / 3.6e6).min(1.0)
        });
        self.last = Some(now);
        let dt_days = dt_h / 24.0;
        let mut events = Vec::new();

        if let Some(f) = &self.spec.fate {
            if now >= f.failed_at {
                self.dead = true;
                return vec![HostEvent::Reset { fatal: None }];
            }
        }
        let installed = self.spec.firmware_at(self.start, now);
        if installed.version != self.firmware.version {
            self.firmware = installed;
            return vec![HostEvent::Shutdown {
                reason: RebootReason::FirmwareUpdate,
            }];
        }

        // The customer.
        let hour = (now.0 / 3_600_000) % 24;
        let awake = (7..23).contains(&hour);
        let p_active = if awake {
            self.spec.usage.active_hours() / 16.0
        } else {
            0.02
        };
        self.hw.active = self.rng.random_bool(p_active.clamp(0.0, 1.0));
        let sku = self.spec.sku();

        // Network path.
        if self.net_down_until.is_some_and(|t| now >= t) {
            self.net_down_until = None;
        }
        if self.net_down_until.is_none() && self.chance(self.spec.outage_rate, dt_days) {
            let hours = LogNormal::new(self.spec.outage_median_h.ln(), 1.0)
                .expect("valid")
                .sample(&mut self.rng);
            self.net_down_until = Some(Timestamp(now.0 + (hours.min(24.0 * 10.0) * 3.6e6) as u64));
        }

        // Heat.
        let thermal_d = self.degradation(FailureMode::Thermal, now) as f32;
        let daily = 2.5 * ((hour as f32 - 9.0) / 24.0 * std::f32::consts::TAU).sin();
        let use_heat = if self.hw.active {
            let base: f32 = match sku.class {
                protocol::state::DeviceClass::Speaker => 13.0,
                protocol::state::DeviceClass::Wearable => 4.0,
                protocol::state::DeviceClass::Hub => 6.0,
                _ => 10.0,
            };
            base * if self.spec.usage == Usage::Heavy {
                1.3
            } else {
                1.0
            }
        } else {
            0.0
        };
        let charge_heat = if self.charging { 4.0 } else { 0.0 };
        let fault_heat = if thermal_d > 0.0 {
            26.0 * thermal_d.powf(1.2)
        } else {
            0.0
        } + if thermal_d > 0.0 {
            noise(&mut self.rng, 2.0 * thermal_d)
        } else {
            0.0
        };
        let hub_base = if self.cell.is_none() { 8.0 } else { 0.0 };
        // A healthy device left in the sun overheats too, for an hour or three.
        if self.hot_until.is_some_and(|(t, _)| now >= t) {
            self.hot_until = None;
        }
        if self.hot_until.is_none() && awake && self.chance(self.spec.hot_spells_per_day, dt_days) {
            let hours = self.rng.random_range(1.0..3.0);
            let extra = self.rng.random_range(16.0..30.0);
            self.hot_until = Some((Timestamp(now.0 + (hours * 3.6e6) as u64), extra));
        }
        let spell = self.hot_until.map_or(0.0, |(_, extra)| extra);
        self.hw.temp_c = self.spec.ambient_c
            + daily
            + use_heat
            + charge_heat
            + fault_heat
            + hub_base
            + spell
            + noise(&mut self.rng, 0.8);
        if self.hw.temp_c >= THERMAL_CUTOFF_C {
            self.hw.reset_latch = ResetCause::Thermal;
            return vec![HostEvent::Reset { fatal: None }];
        }

        // The battery.
        let mut current_ma = 0.0;
        if self.cell.is_some() {
            let wear = self.degradation(FailureMode::BatteryWear, now) as f32;
            let soc = self.cell.as_ref().map_or(1.0, |c| c.soc);
            if self.charging && (soc >= 0.99 || (self.spec.charges_overnight && hour == 7)) {
                self.charging = false;
            } else if !self.charging
                && (soc * 100.0 < self.spec.charge_at_pct
                    || (self.spec.charges_overnight && hour >= 22 && self.rng.random_bool(0.5)))
            {
                self.charging = true;
            }
            let intensity = self.rng.random_range(0.7..1.3);
            let load = if self.hw.active {
                sku.active_ma
            } else {
                sku.idle_ma
            } * intensity;
            let peak = if self.hw.active && self.rng.random_bool(0.35) {
                sku.peak_ma * self.rng.random_range(0.6..1.0)
            } else {
                0.0
            };
            let charge = if self.charging {
                sku.design_mah.unwrap_or(0.0) * 0.5
            } else {
                0.0
            };
            let temp = self.hw.temp_c;
            let cell = self.cell.as_mut().expect("checked");
            if wear > 0.0 {
                cell.wear_fade = 0.3 * wear.powf(1.5);
                cell.wear_resistance = 1.0 + 3.8 * wear.powf(1.3);
            }
            let step = cell.step(dt_h as f32, load, charge, peak, temp);
            current_ma = step.current_ma;
            // A wearing cell's gauge loses track: sudden drops of charge.
            let drop_chance = 0.02 * f64::from(wear) * (dt_h * 6.0);
            if wear > 0.2 && self.rng.random_bool(drop_chance.clamp(0.0, 1.0)) {
                cell.soc = (cell.soc - self.rng.random_range(0.08..0.3)).max(0.0);
            }
            let empty = cell.soc <= 0.0;
            if dt_h > 0.0 && step.sag_v < BROWN_OUT_V {
                self.hw.reset_latch = ResetCause::BrownOut;
                self.write_gauge(current_ma);
                return vec![HostEvent::Reset { fatal: None }];
            }
            if empty {
                self.charging = false;
                self.write_gauge(current_ma);
                return vec![HostEvent::Shutdown {
                    reason: RebootReason::LowBatteryShutdown,
                }];
            }
        }
        self.write_gauge(current_ma);

        // Firmware and storage.
        let fw = self.firmware;
        let crash_rate = fw.crash_rate
            * if self.spec.usage == Usage::Heavy {
                1.8
            } else {
                1.0
            };
        if self.chance(crash_rate, dt_days) {
            let process = ["launcher", "media", "sync", "camera"][self.rng.random_range(0..4)];
            events.push(HostEvent::Crash {
                signature: format!("{process}:{}:{}", fw.version, self.rng.random_range(1..4)),
                process: Some(process.to_owned()),
            });
        }
        let storage_d = self.degradation(FailureMode::StorageWear, now);
        self.hw.storage_ok = storage_d < 0.5;
        if self.chance(0.004 + 14.0 * storage_d * storage_d, dt_days) {
            events.push(HostEvent::StorageError {
                code: "io_error".into(),
            });
        }
        if storage_d > 0.6 && self.chance(1.2 * storage_d, dt_days) {
            self.hw.reset_latch = ResetCause::Software;
            events.push(HostEvent::Reset {
                fatal: Some(RebootReason::KernelPanic),
            });
            return events;
        }
        if self.chance(fw.watchdog_rate, dt_days) {
            self.hw.reset_latch = ResetCause::Software;
            events.push(HostEvent::Reset {
                fatal: Some(RebootReason::SoftwareWatchdog),
            });
            return events;
        }
        let board_d = self.degradation(FailureMode::Board, now);
        if self.chance(0.002 + 3.0 * board_d, dt_days) {
            self.hw.reset_latch = ResetCause::Watchdog;
            events.push(HostEvent::Reset { fatal: None });
            return events;
        }
        if self.chance(1.0 / 40.0, dt_days) {
            events.push(HostEvent::Shutdown {
                reason: RebootReason::UserRequest,
            });
        }
        events
    }

    fn network_up(&self) -> bool {
        self.net_down_until.is_none()
    }

    fn offer(&mut self, command_id: &CommandId, offer: &Offer) {
        self.offers_seen.push((command_id.clone(), offer.clone()));
        let hours = self.rng.random_range(1.0..48.0);
        let accept = self.rng.random_bool(0.55);
        let at = Timestamp(self.now.0 + (hours * 3.6e6) as u64);
        self.pending_answers.push((at, command_id.clone(), accept));
    }

    fn withdraw(&mut self, command_id: &CommandId) {
        // The customer never sees it again, so never answers it.
        self.pending_answers.retain(|(_, id, _)| id != command_id);
    }

    fn offer_answers(&mut self) -> Vec<(CommandId, bool)> {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) =
            self.pending_answers.drain(..).partition(|a| a.0 <= now);
        self.pending_answers = later;
        due.into_iter().map(|(_, id, yes)| (id, yes)).collect()
    }

    fn persist(&mut self, agent: &mut Agent) {
        if agent.take_dirty() {
            self.saved = Some(agent.state().clone());
        }
    }
}
