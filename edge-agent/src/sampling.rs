//! Sampling: each sample folds into the current heartbeat interval and the rolling
//! windows behind the edge features, and may trip an immediate event.
//!
//! Pure state, no I/O: [`Sampler::sample`] takes the readings and the time and returns
//! the events to publish; [`Sampler::close_interval`] returns the heartbeat.

use std::collections::{BTreeMap, VecDeque};

use models::features::{self, DAY_MS, HOUR_MS};
use protocol::event::{BatteryDropEvent, Event, OverTemperatureEvent};
use protocol::heartbeat::{
    self, BatteryReport, ConnectivityReport, EdgeFeatures, Heartbeat, Metric, ThermalReport,
    MAX_METRICS,
};
use protocol::reboot::RebootReason;
use protocol::Timestamp;
use serde::{Deserialize, Serialize};

use crate::gauge::reg::CYCLES_RANGE;
use crate::hal::BatterySample;
use crate::reboot_log::RebootLog;
use crate::settings::Settings;

/// Degrees below the threshold the temperature must fall before the event can fire again.
pub const OVER_TEMP_HYSTERESIS_C: f32 = 2.0;
/// Days of state-of-health points kept for the trend.
pub const SOH_DAYS: usize = 30;

/// One sample's readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Readings {
    /// The battery, when the device has one and it read.
    pub battery: Option<BatterySample>,
    /// The device temperature, when it read.
    pub temp_c: Option<f32>,
    /// True while in active use.
    pub active: bool,
    /// True while connected to the broker.
    pub connected: bool,
}

/// Aggregates of the current heartbeat interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    start: Timestamp,
    operational_s: u64,
    crash_free_s: u64,
    active_s: u64,
    reboots: BTreeMap<RebootReason, u32>,
    crashes: u32,
    storage_errors: u32,
    fault_pending: bool,
    battery: Option<BatteryAgg>,
    thermal: Option<ThermalAgg>,
    connected_s: u64,
    disconnects: u32,
    /// The maker's own metrics so far this interval, by name.
    #[serde(default)]
    metrics: BTreeMap<String, MetricAgg>,
}

/// One custom metric over the interval so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum MetricAgg {
    Count(u64),
    Gauge { sum: f64, n: u32 },
    Timer(u64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct BatteryAgg {
    soc_start: f32,
    soc_end: f32,
    soc_min: f32,
    max_drop: f32,
    voltage: f32,
    soh: Option<f32>,
    charging_s: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ThermalAgg {
    min: f32,
    max: f32,
    sum: f64,
    n: u32,
    above_s: u64,
}

impl Interval {
    fn new(start: Timestamp) -> Self {
        Interval {
            start,
            operational_s: 0,
            crash_free_s: 0,
            active_s: 0,
            reboots: BTreeMap::new(),
            crashes: 0,
            storage_errors: 0,
            fault_pending: false,
            battery: None,
            thermal: None,
            connected_s: 0,
            disconnects: 0,
            metrics: BTreeMap::new(),
        }
    }
}

/// Rolling state behind the edge features and the event triggers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampler {
    interval: Interval,
    last_sample: Option<Timestamp>,
    /// State of charge over the drop window, oldest first.
    soc_window: VecDeque<(Timestamp, f32)>,
    /// A drop was reported and the charge has not recovered since.
    drop_latched: bool,
    over_temp_latched: bool,
    /// Per hour: (hour index, percentage points discharged, active seconds), 24 kept.
    drain_hours: VecDeque<(u64, f64, u64)>,
    /// One state-of-health point per day, [`SOH_DAYS`] kept.
    soh_days: VecDeque<(Timestamp, f32)>,
    /// The gauge's raw cycle count last read, and how often it wrapped.
    cycles_raw: Option<f32>,
    cycles_wraps: u32,
    was_connected: bool,
}

impl Sampler {
    /// A sampler whose first interval starts at `now`.
    pub fn new(now: Timestamp) -> Self {
        Sampler {
            interval: Interval::new(now),
            last_sample: None,
            soc_window: VecDeque::new(),
            drop_latched: false,
            over_temp_latched: false,
            drain_hours: VecDeque::new(),
            soh_days: VecDeque::new(),
            cycles_raw: None,
            cycles_wraps: 0,
            was_connected: false,
        }
    }

    /// Continues after a restart: keeps the interval and windows, forgets the last
    /// sample so the time the device was down is not counted as operational.
    pub fn resume(&mut self, reason: &RebootReason) {
        self.last_sample = None;
        *self.interval.reboots.entry(reason.clone()).or_default() += 1;
        if reason.is_unexpected() {
            self.interval.fault_pending = true;
        }
    }

    /// Counts a crash; the current sample period is not crash-free.
    pub fn note_crash(&mut self) {
        self.interval.crashes += 1;
        self.interval.fault_pending = true;
    }

    /// Counts a storage error.
    pub fn note_storage_error(&mut self) {
        self.interval.storage_errors += 1;
    }

    /// When the current interval started.
    pub fn interval_start(&self) -> Timestamp {
        self.interval.start
    }

    /// Folds one sample in; returns the events it trips.
    pub fn sample(&mut self, now: Timestamp, r: &Readings, settings: &Settings) -> Vec<Event> {
        let mut events = Vec::new();
        // Time since the last sample, capped: a longer gap is time the device was off
        // or asleep, not time it was running.
        let cap = u64::from(settings.sample_interval_s) * 2;
        let dt = self
            .last_sample
            .map_or(0, |last| (now.0.saturating_sub(last.0) / 1000).min(cap));
        self.last_sample = Some(now);
        let iv = &mut self.interval;
        iv.operational_s += dt;
        // A fault costs the sample period it fell in (the first one with length).
        if dt > 0 && !std::mem::take(&mut iv.fault_pending) {
            iv.crash_free_s += dt;
        }
        if r.active {
            iv.active_s += dt;
        }
        if r.connected {
            iv.connected_s += dt;
        } else if self.was_connected {
            iv.disconnects += 1;
        }
        self.was_connected = r.connected;

        if let Some(b) = r.battery {
            events.extend(self.battery_sample(now, dt, r.active, &b, settings));
        }
        if let Some(t) = r.temp_c {
            events.extend(self.thermal_sample(dt, t, settings));
        }
        events
    }

    /// Folds the maker's own metrics of one sample in. A name the protocol would refuse,
    /// one past [`MAX_METRICS`] or one whose type changed within the interval is dropped
    /// (and logged), so the heartbeat stays one the cloud accepts.
    pub fn sample_metrics(&mut self, metrics: &[(String, Metric)]) {
        let held = &mut self.interval.metrics;
        for (name, metric) in metrics {
            if !heartbeat::is_metric_name(name) {
                tracing::warn!(metric = ?name, "custom metric name refused");
                continue;
            }
            if !held.contains_key(name) && held.len() >= MAX_METRICS {
                tracing::warn!(metric = %name, "more than {MAX_METRICS} custom metrics");
                continue;
            }
            // The name is copied once per interval, not once per sample.
            if !held.contains_key(name) {
                let empty = match metric {
                    Metric::Count(_) => MetricAgg::Count(0),
                    Metric::Gauge(_) => MetricAgg::Gauge { sum: 0.0, n: 0 },
                    Metric::Timer(_) => MetricAgg::Timer(0),
                };
                held.insert(name.clone(), empty);
            }
            let Some(agg) = held.get_mut(name) else {
                continue;
            };
            match (agg, *metric) {
                (MetricAgg::Count(c), Metric::Count(n)) => *c += u64::from(n),
                (MetricAgg::Timer(t), Metric::Timer(s)) => *t += u64::from(s),
                (MetricAgg::Gauge { sum, n }, Metric::Gauge(g)) if g.is_finite() => {
                    *sum += g;
                    *n += 1;
                }
                _ => tracing::warn!(metric = %name, "custom metric changed type or is not finite"),
            }
        }
    }

    fn battery_sample(
        &mut self,
        now: Timestamp,
        dt: u64,
        active: bool,
        b: &BatterySample,
        settings: &Settings,
    ) -> Option<Event> {
        let soc = b.soc_pct;
        let prev_soc = self.soc_window.back().map(|p| p.1);
        let agg = self.interval.battery.get_or_insert(BatteryAgg {
            soc_start: soc,
            soc_end: soc,
            soc_min: soc,
            max_drop: 0.0,
            voltage: b.voltage_v,
            soh: None,
            charging_s: 0,
        });
        agg.soc_end = soc;
        agg.soc_min = agg.soc_min.min(soc);
        agg.voltage = b.voltage_v;
        if b.soh_pct.is_some() {
            agg.soh = b.soh_pct;
        }
        if b.charging {
            agg.charging_s += dt;
        }

        // Usage-normalised drain, in hourly buckets.
        let hour = now.0 / HOUR_MS;
        let discharged = match prev_soc {
            Some(p) if !b.charging && p > soc => f64::from(p - soc),
            _ => 0.0,
        };
        match self.drain_hours.back_mut() {
            Some(h) if h.0 == hour => {
                h.1 += discharged;
                h.2 += if active { dt } else { 0 };
            }
            _ => self
                .drain_hours
                .push_back((hour, discharged, if active { dt } else { 0 })),
        }
        while self.drain_hours.front().is_some_and(|h| h.0 + 24 <= hour) {
            self.drain_hours.pop_front();
        }

        if let Some(soh) = b.soh_pct {
            let day = now.0 / DAY_MS;
            match self.soh_days.back_mut() {
                Some(p) if p.0 .0 / DAY_MS == day => *p = (now, soh),
                _ => self.soh_days.push_back((now, soh)),
            }
            if self.soh_days.len() > SOH_DAYS {
                self.soh_days.pop_front();
            }
        }
        if let Some(raw) = b.cycles {
            // The counter wraps; a large fall is a wrap, not a new battery.
            if self
                .cycles_raw
                .is_some_and(|last| raw + CYCLES_RANGE / 2.0 < last)
            {
                self.cycles_wraps += 1;
            }
            self.cycles_raw = Some(raw);
        }

        // Sudden drop: the highest charge in the window against now.
        let window_ms = u64::from(settings.battery_drop_window_s) * 1000;
        self.soc_window.push_back((now, soc));
        while self
            .soc_window
            .front()
            .is_some_and(|p| !features::in_window(p.0, now, window_ms + 1))
        {
            self.soc_window.pop_front();
        }
        let (peak_ts, peak) =
            self.soc_window
                .iter()
                .copied()
                .fold((now, soc), |a, p| if p.1 > a.1 { p } else { a });
        let drop = peak - soc;
        agg.max_drop = agg.max_drop.max(drop);
        if drop < settings.battery_drop_threshold_pct / 2.0 {
            self.drop_latched = false;
        }
        if drop >= settings.battery_drop_threshold_pct && !self.drop_latched {
            self.drop_latched = true;
            let window_s = ((now.0 - peak_ts.0) / 1000).max(1) as u32;
            return Some(Event::BatteryDrop(BatteryDropEvent {
                from_pct: peak,
                to_pct: soc,
                window_s,
            }));
        }
        None
    }

    fn thermal_sample(&mut self, dt: u64, t: f32, settings: &Settings) -> Option<Event> {
        let agg = self.interval.thermal.get_or_insert(ThermalAgg {
            min: t,
            max: t,
            sum: 0.0,
            n: 0,
            above_s: 0,
        });
        agg.min = agg.min.min(t);
        agg.max = agg.max.max(t);
        agg.sum += f64::from(t);
        agg.n += 1;
        let threshold = settings.over_temp_threshold_c;
        if t >= threshold {
            agg.above_s += dt;
            if !self.over_temp_latched {
                self.over_temp_latched = true;
                return Some(Event::OverTemperature(OverTemperatureEvent {
                    temp_c: t,
                    threshold_c: threshold,
                    sensor: None,
                }));
            }
        } else if t < threshold - OVER_TEMP_HYSTERESIS_C {
            self.over_temp_latched = false;
        }
        None
    }

    /// True when the interval has run its length.
    pub fn interval_due(&self, now: Timestamp, settings: &Settings) -> bool {
        now.0.saturating_sub(self.interval.start.0)
            >= u64::from(settings.heartbeat_interval_s) * 1000
    }

    /// Ends the interval at `now`, returns its heartbeat and starts the next.
    pub fn close_interval(
        &mut self,
        now: Timestamp,
        reboots: &RebootLog,
        spool_dropped: u32,
    ) -> Heartbeat {
        let next = Interval::new(now);
        let iv = std::mem::replace(&mut self.interval, next);
        // A device that was off longer than the longest interval reports the longest.
        let interval_s = clamp_u32((now.0.saturating_sub(iv.start.0) / 1000).max(1))
            .min(protocol::heartbeat::MAX_INTERVAL_S);
        let operational_s = clamp_u32(iv.operational_s).min(interval_s);
        let cycles = self
            .cycles_raw
            .map(|raw| raw + self.cycles_wraps as f32 * CYCLES_RANGE);
        let battery = iv.battery.map(|b| BatteryReport {
            soc_start_pct: b.soc_start,
            soc_end_pct: b.soc_end,
            soc_min_pct: b.soc_min,
            max_drop_pct: b.max_drop,
            voltage_v: b.voltage,
            soh_pct: b.soh,
            charge_cycles: cycles.map_or(0, |c| c.floor() as u32),
            charging_s: clamp_u32(b.charging_s).min(interval_s),
        });
        let thermal = iv.thermal.map(|t| ThermalReport {
            min_c: t.min,
            mean_c: ((t.sum / f64::from(t.n.max(1))) as f32).clamp(t.min, t.max),
            max_c: t.max,
            above_threshold_s: clamp_u32(t.above_s).min(interval_s),
        });
        let (discharged, active) = self
            .drain_hours
            .iter()
            .fold((0.0, 0), |a, h| (a.0 + h.1, a.1 + h.2));
        let features = EdgeFeatures {
            unexpected_reboots_24h: Some(features::unexpected_reboots(reboots.iter(), now, DAY_MS)),
            unexpected_reboots_7d: Some(features::unexpected_reboots(
                reboots.iter(),
                now,
                7 * DAY_MS,
            )),
            soc_drain_pct_per_active_h: features::drain_per_active_hour(discharged, active),
            soh_slope_pct_per_30d: features::slope_per_30d(self.soh_days.make_contiguous()),
        };
        Heartbeat {
            interval_s,
            operational_s,
            crash_free_s: clamp_u32(iv.crash_free_s).min(operational_s),
            active_s: clamp_u32(iv.active_s).min(operational_s),
            reboots: iv.reboots,
            crashes: iv.crashes,
            storage_errors: iv.storage_errors,
            battery,
            thermal,
            connectivity: ConnectivityReport {
                connected_s: clamp_u32(iv.connected_s).min(interval_s),
                disconnects: iv.disconnects,
                rssi_dbm: None,
            },
            features: Some(features),
            spool_dropped,
            metrics: iv
                .metrics
                .into_iter()
                .filter_map(|(name, agg)| {
                    let m = match agg {
                        MetricAgg::Count(c) => Metric::Count(
                            u32::try_from(c)
                                .unwrap_or(u32::MAX)
                                .min(heartbeat::MAX_COUNT),
                        ),
                        MetricAgg::Timer(t) => Metric::Timer(clamp_u32(t).min(interval_s)),
                        MetricAgg::Gauge { n: 0, .. } => return None,
                        MetricAgg::Gauge { sum, n } => Metric::Gauge(
                            (sum / f64::from(n)).clamp(-heartbeat::MAX_GAUGE, heartbeat::MAX_GAUGE),
                        ),
                    };
                    Some((name, m))
                })
                .collect(),
        }
    }
}

fn clamp_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn at(s: u64) -> Timestamp {
        Timestamp(T0 + s * 1000)
    }

    fn battery(soc: f32, charging: bool) -> BatterySample {
        BatterySample {
            soc_pct: soc,
            voltage_v: 3.8,
            charging,
            temp_c: None,
            soh_pct: Some(95.0),
            cycles: Some(10.0),
        }
    }

    fn readings(soc: f32, temp: f32, active: bool) -> Readings {
        Readings {
            battery: Some(battery(soc, false)),
            temp_c: Some(temp),
            active,
            connected: true,
        }
    }

    #[test]
    fn an_hour_of_samples_aggregates_into_one_heartbeat() {
        let settings = Settings::default();
        let mut s = Sampler::new(at(0));
        for i in 0..=60 {
            // One point per minute, active the first half hour, 30 → 33 °C.
            let soc = 90.0 - i as f32 * 0.25;
            let ev = s.sample(
                at(i * 60),
                &readings(soc, 30.0 + i as f32 / 20.0, i <= 30),
                &settings,
            );
            assert!(ev.is_empty(), "{ev:?}");
        }
        assert!(s.interval_due(at(3600), &settings));
        let hb = s.close_interval(at(3600), &RebootLog::default(), 0);
        hb.validate_for_test();
        assert_eq!(hb.interval_s, 3600);
        assert_eq!(hb.operational_s, 3600);
        assert_eq!(hb.crash_free_s, 3600);
        assert_eq!(hb.active_s, 1800);
        let b = hb.battery.unwrap();
        assert_eq!(
            (b.soc_start_pct, b.soc_end_pct, b.soc_min_pct),
            (90.0, 75.0, 75.0)
        );
        assert_eq!(b.charge_cycles, 10);
        let t = hb.thermal.unwrap();
        assert_eq!((t.min_c, t.max_c), (30.0, 33.0));
        assert!((t.mean_c - 31.5).abs() < 1e-4);
        // 15 points over 0.5 h of use.
        let f = hb.features.unwrap();
        assert_eq!(f.soc_drain_pct_per_active_h, Some(30.0));
        assert_eq!(f.unexpected_reboots_24h, Some(0));
    }

    #[test]
    fn custom_metrics_are_summed_averaged_and_kept_within_the_protocol() {
        let settings = Settings::default();
        let mut s = Sampler::new(at(0));
        let m = |pairs: &[(&str, Metric)]| -> Vec<(String, Metric)> {
            pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
        };
        for i in 0..=60u64 {
            s.sample(at(i * 60), &readings(80.0, 30.0, true), &settings);
            s.sample_metrics(&m(&[
                ("modem_resets", Metric::Count(u32::from(i % 20 == 0))),
                ("fan_rpm", Metric::Gauge(3000.0 + i as f64 * 10.0)),
                ("gps_on_s", Metric::Timer(120)),
                ("Bad Name", Metric::Count(1)),
            ]));
        }
        // A type change within the interval is dropped, not mixed in.
        s.sample_metrics(&m(&[("fan_rpm", Metric::Count(9))]));
        let hb = s.close_interval(at(3600), &RebootLog::default(), 0);
        hb.validate_for_test();
        assert_eq!(hb.metrics.get("modem_resets"), Some(&Metric::Count(4)));
        assert_eq!(hb.metrics.get("fan_rpm"), Some(&Metric::Gauge(3300.0)));
        // 61 samples of 120 s is more than the hour: capped at the interval.
        assert_eq!(hb.metrics.get("gps_on_s"), Some(&Metric::Timer(3600)));
        assert_eq!(hb.metrics.len(), 3, "{:?}", hb.metrics);
        // The next interval starts empty; at most 32 names are kept.
        let many: Vec<(String, Metric)> = (0..40)
            .map(|i| (format!("m{i}"), Metric::Count(1)))
            .collect();
        s.sample_metrics(&many);
        let hb = s.close_interval(at(7200), &RebootLog::default(), 0);
        hb.validate_for_test();
        assert_eq!(hb.metrics.len(), MAX_METRICS);
        assert!(!hb.metrics.contains_key("fan_rpm"));
    }

    #[test]
    fn a_sudden_drop_fires_once_until_the_charge_recovers() {
        let settings = Settings::default(); // 10 points within 15 minutes
        let mut s = Sampler::new(at(0));
        let mut fired = Vec::new();
        for (i, soc) in [80.0, 79.0, 72.0, 66.0, 60.0, 59.0, 58.0]
            .iter()
            .enumerate()
        {
            fired.extend(s.sample(at(i as u64 * 60), &readings(*soc, 25.0, false), &settings));
        }
        assert_eq!(fired.len(), 1, "{fired:?}");
        let Event::BatteryDrop(d) = &fired[0] else {
            panic!("{fired:?}")
        };
        assert_eq!((d.from_pct, d.to_pct, d.window_s), (80.0, 66.0, 180));
    }

    #[test]
    fn a_slow_drain_never_fires() {
        let settings = Settings::default();
        let mut s = Sampler::new(at(0));
        for i in 0..200u64 {
            let ev = s.sample(
                at(i * 60),
                &readings(100.0 - i as f32 * 0.4, 25.0, true),
                &settings,
            );
            assert!(ev.is_empty(), "minute {i}: {ev:?}");
        }
    }

    #[test]
    fn over_temperature_fires_on_crossing_with_hysteresis() {
        let settings = Settings::default(); // 60 °C
        let mut s = Sampler::new(at(0));
        let temps = [50.0, 61.0, 62.0, 59.0, 61.0, 55.0, 60.5];
        let fired: Vec<_> = temps
            .iter()
            .enumerate()
            .flat_map(|(i, t)| s.sample(at(i as u64 * 60), &readings(50.0, *t, false), &settings))
            .collect();
        assert_eq!(fired.len(), 2, "{fired:?}");
        let hb = s.close_interval(at(3600), &RebootLog::default(), 0);
        // Samples at 61, 62, 61 and 60.5 °C, each counting the minute before it.
        assert_eq!(hb.thermal.unwrap().above_threshold_s, 240);
    }

    #[test]
    fn downtime_after_a_restart_is_not_operational_and_faults_cost_crash_free_time() {
        let settings = Settings::default();
        let mut s = Sampler::new(at(0));
        s.sample(at(0), &readings(50.0, 25.0, false), &settings);
        s.sample(at(600), &readings(50.0, 25.0, false), &settings); // capped at 120 s
        s.resume(&RebootReason::BrownOut);
        s.sample(at(1200), &readings(50.0, 25.0, false), &settings); // first after boot
        s.sample(at(1260), &readings(50.0, 25.0, false), &settings); // not crash-free
        s.sample(at(1320), &readings(50.0, 25.0, false), &settings);
        let mut log = RebootLog::default();
        log.push(at(1200), RebootReason::BrownOut);
        let hb = s.close_interval(at(3600), &log, 3);
        assert_eq!(hb.operational_s, 240);
        assert_eq!(hb.crash_free_s, 180);
        assert_eq!(hb.reboots.get(&RebootReason::BrownOut), Some(&1));
        assert_eq!(hb.features.unwrap().unexpected_reboots_24h, Some(1));
        assert_eq!(hb.spool_dropped, 3);
    }

    #[test]
    fn cycle_counter_wraps_are_unwrapped() {
        let settings = Settings::default();
        let mut s = Sampler::new(at(0));
        for (i, c) in [650.0, 655.0, 2.0, 3.0].iter().enumerate() {
            let mut r = readings(50.0, 25.0, false);
            r.battery.as_mut().unwrap().cycles = Some(*c);
            s.sample(at(i as u64 * 60), &r, &settings);
        }
        let hb = s.close_interval(at(3600), &RebootLog::default(), 0);
        assert_eq!(hb.battery.unwrap().charge_cycles, 658);
    }

    #[test]
    fn state_of_health_trend_comes_from_daily_points() {
        let settings = Settings::default();
        let mut s = Sampler::new(at(0));
        for day in 0..10u64 {
            let mut r = readings(50.0, 25.0, false);
            r.battery.as_mut().unwrap().soh_pct = Some(95.0 - day as f32 * 0.2);
            s.sample(at(day * 86_400), &r, &settings);
        }
        let hb = s.close_interval(at(10 * 86_400), &RebootLog::default(), 0);
        let slope = hb.features.unwrap().soh_slope_pct_per_30d.unwrap();
        assert!((slope + 6.0).abs() < 1e-3, "{slope}");
    }

    trait ValidateForTest {
        fn validate_for_test(&self);
    }
    impl ValidateForTest for Heartbeat {
        fn validate_for_test(&self) {
            use protocol::validate::Validate;
            self.validate(&protocol::Limits::default()).unwrap();
        }
    }
}
