//! One device's recent telemetry, kept compactly, and the feature vector computed from
//! it: the single implementation the trainer and cloud-ingest share.
//!
//! Messages may arrive in any order (spooled messages come late) and more than once only
//! if the caller does not deduplicate; the state is a set of daily sums and a list of
//! timestamped occurrences, so arrival order does not change the features. Everything
//! older than [`HORIZON_DAYS`] before the newest message is forgotten, which bounds the
//! memory per device.

use std::collections::VecDeque;

use protocol::event::Event;
use protocol::heartbeat::Heartbeat;
use protocol::reboot::RebootReason;
use protocol::{Message, Timestamp};

use crate::features::{self, DAY_MS, HOUR_MS};
use crate::schema::{idx, FEATURES, FEATURE_COUNT};

/// Days of history kept: the longest feature window plus the partial current day.
pub const HORIZON_DAYS: u64 = 31;
/// Occurrences kept at most; a crash-looping device cannot grow the state without end.
pub const MAX_OCCURRENCES: usize = 4096;

/// One device's features at one moment, in [`FEATURES`] order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureVector(pub [f64; FEATURE_COUNT]);

impl FeatureVector {
    /// Every feature at its missing value.
    pub fn missing() -> Self {
        FeatureVector(FEATURES.map(|f| f.missing))
    }

    /// The value of a feature by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        FEATURES
            .iter()
            .position(|f| f.name == name)
            .map(|i| self.0[i])
    }
}

/// Something that happened at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Occurrence {
    /// An unexpected restart other than the kinds below.
    Reboot,
    BrownOut,
    Watchdog,
    ThermalReset,
    Crash,
    StorageError,
    BatteryDrop,
    OverTemperature,
}

impl Occurrence {
    fn is_unexpected_reboot(self) -> bool {
        matches!(
            self,
            Occurrence::Reboot
                | Occurrence::BrownOut
                | Occurrence::Watchdog
                | Occurrence::ThermalReset
        )
    }

    fn of_reboot(reason: &RebootReason) -> Option<Self> {
        use RebootReason::*;
        match reason {
            BrownOut => Some(Occurrence::BrownOut),
            HardwareWatchdog | SoftwareWatchdog => Some(Occurrence::Watchdog),
            OverTemperature => Some(Occurrence::ThermalReset),
            r if r.is_unexpected() => Some(Occurrence::Reboot),
            _ => None,
        }
    }
}

/// Heartbeat sums for one day `(day start, day end]`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Day {
    index: u64,
    interval_s: u64,
    operational_s: u64,
    connected_s: u64,
    disconnects: u64,
    /// State-of-charge fall while discharging, percentage points.
    discharged_pct: f64,
    /// Active time in heartbeats that had a battery, seconds.
    battery_active_s: u64,
    max_drop_pct: f32,
    temp_max_c: Option<f32>,
    /// Sum of mean temperature times interval, for a time-weighted mean.
    temp_weighted: f64,
    temp_s: u64,
    above_threshold_s: u64,
    /// The day's latest state of health with its time.
    soh: Option<(u64, f32)>,
}

/// One device's recent history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceHistory {
    purchased_at: Option<Timestamp>,
    first_seen: Option<u64>,
    newest: u64,
    days: VecDeque<Day>,
    occurrences: VecDeque<(u64, Occurrence)>,
    soh: Option<(u64, f32)>,
    charge_cycles: Option<u32>,
    has_battery: bool,
}

/// The day a timestamp belongs to: days run `(start, end]`, so a heartbeat stamped exactly
/// at midnight closes the day before, as a window that includes its end expects.
fn day_of(ts: u64) -> u64 {
    ts.saturating_sub(1) / DAY_MS
}

impl DeviceHistory {
    /// An empty history; `purchased_at` comes from the device registry when known.
    pub fn new(purchased_at: Option<Timestamp>) -> Self {
        DeviceHistory {
            purchased_at,
            ..DeviceHistory::default()
        }
    }

    /// Sets or corrects the purchase date.
    pub fn set_purchased_at(&mut self, at: Option<Timestamp>) {
        self.purchased_at = at;
    }

    /// The time of the newest message seen, if any.
    pub fn newest(&self) -> Option<Timestamp> {
        self.first_seen.map(|_| Timestamp(self.newest))
    }

    /// Takes in one decoded message of this device. Messages without telemetry (commands,
    /// acks, liveness) are ignored; so is anything older than the kept horizon.
    pub fn observe(&mut self, message: &Message) {
        match message {
            Message::Heartbeat(m) => self.heartbeat(m.ts_ms.0, &m.body),
            Message::Event(m) => self.event(m.ts_ms.0, &m.body),
            Message::State(_) | Message::Command(_) | Message::Ack(_) => {}
        }
    }

    fn seen(&mut self, ts: u64) -> bool {
        if ts + HORIZON_DAYS * DAY_MS <= self.newest {
            return false;
        }
        self.first_seen = Some(self.first_seen.map_or(ts, |f| f.min(ts)));
        if ts > self.newest {
            self.newest = ts;
            let oldest_day = day_of(ts).saturating_sub(HORIZON_DAYS - 1);
            while self.days.front().is_some_and(|d| d.index < oldest_day) {
                self.days.pop_front();
            }
            let cutoff = ts.saturating_sub(HORIZON_DAYS * DAY_MS);
            while self.occurrences.front().is_some_and(|o| o.0 <= cutoff) {
                self.occurrences.pop_front();
            }
        }
        true
    }

    fn day_mut(&mut self, ts: u64) -> &mut Day {
        let index = day_of(ts);
        let pos = match self.days.binary_search_by_key(&index, |d| d.index) {
            Ok(pos) => pos,
            Err(pos) => {
                self.days.insert(
                    pos,
                    Day {
                        index,
                        ..Day::default()
                    },
                );
                pos
            }
        };
        &mut self.days[pos]
    }

    fn heartbeat(&mut self, ts: u64, hb: &Heartbeat) {
        if !self.seen(ts) {
            return;
        }
        if let Some(b) = &hb.battery {
            self.has_battery = true;
            if let Some(soh) = b.soh_pct {
                if self.soh.is_none_or(|(t, _)| t <= ts) {
                    self.soh = Some((ts, soh));
                }
            }
            self.charge_cycles = Some(self.charge_cycles.unwrap_or(0).max(b.charge_cycles));
        }
        let day = self.day_mut(ts);
        day.interval_s += u64::from(hb.interval_s);
        day.operational_s += u64::from(hb.operational_s);
        day.connected_s += u64::from(hb.connectivity.connected_s);
        day.disconnects += u64::from(hb.connectivity.disconnects);
        if let Some(b) = &hb.battery {
            // Without charging the fall is start to end; with charging in between, the
            // fall to the interval's low point is what was certainly discharged.
            let fall = if b.charging_s == 0 {
                b.soc_start_pct - b.soc_end_pct
            } else {
                b.soc_start_pct - b.soc_min_pct
            };
            day.discharged_pct += f64::from(fall.max(0.0));
            day.battery_active_s += u64::from(hb.active_s);
            day.max_drop_pct = day.max_drop_pct.max(b.max_drop_pct);
            if let Some(soh) = b.soh_pct {
                if day.soh.is_none_or(|(t, _)| t <= ts) {
                    day.soh = Some((ts, soh));
                }
            }
        }
        if let Some(t) = &hb.thermal {
            day.temp_max_c = Some(day.temp_max_c.map_or(t.max_c, |m| m.max(t.max_c)));
            day.temp_weighted += f64::from(t.mean_c) * f64::from(hb.interval_s);
            day.temp_s += u64::from(hb.interval_s);
            day.above_threshold_s += u64::from(t.above_threshold_s);
        }
    }

    fn event(&mut self, ts: u64, event: &Event) {
        let occurrence = match event {
            Event::Reboot(r) => Occurrence::of_reboot(&r.reason),
            Event::Crash(_) => Some(Occurrence::Crash),
            Event::StorageError(_) => Some(Occurrence::StorageError),
            Event::BatteryDrop(d) => {
                if self.seen(ts) {
                    let day = self.day_mut(ts);
                    day.max_drop_pct = day.max_drop_pct.max(d.from_pct - d.to_pct);
                }
                Some(Occurrence::BatteryDrop)
            }
            Event::OverTemperature(_) => Some(Occurrence::OverTemperature),
        };
        let Some(occurrence) = occurrence else {
            return;
        };
        if !self.seen(ts) {
            return;
        }
        let pos = self.occurrences.partition_point(|o| o.0 <= ts);
        self.occurrences.insert(pos, (ts, occurrence));
        if self.occurrences.len() > MAX_OCCURRENCES {
            self.occurrences.pop_front();
        }
    }

    /// The feature vector at `now`. Windows end at `now` and include it; rates are per
    /// day of the window that the device has been seen for, so a device first seen two
    /// days ago is not diluted over thirty.
    pub fn features(&self, now: Timestamp) -> FeatureVector {
        let mut v = FeatureVector::missing();
        let now_ms = now.0;
        let x = &mut v.0;
        let seen_days = |window_days: u64| -> f64 {
            let first = self.first_seen.unwrap_or(now_ms);
            let span = now_ms.saturating_sub(first) as f64 / DAY_MS as f64;
            span.clamp(1.0, window_days as f64)
        };
        let count = |window_days: u64, what: &dyn Fn(Occurrence) -> bool| -> f64 {
            self.occurrences
                .iter()
                .filter(|(ts, o)| {
                    what(*o) && features::in_window(Timestamp(*ts), now, window_days * DAY_MS)
                })
                .count() as f64
        };
        let unexpected = |o: Occurrence| o.is_unexpected_reboot();
        let reboots_1d = count(1, &unexpected);
        let reboots_7d = count(7, &unexpected);
        let reboots_30d = count(30, &unexpected);
        x[idx::UNEXPECTED_REBOOTS_1D] = reboots_1d;
        x[idx::UNEXPECTED_REBOOTS_7D] = reboots_7d / seen_days(7);
        x[idx::UNEXPECTED_REBOOTS_30D] = reboots_30d / seen_days(30);
        x[idx::UNEXPECTED_REBOOT_TREND] =
            x[idx::UNEXPECTED_REBOOTS_7D] - x[idx::UNEXPECTED_REBOOTS_30D];
        x[idx::BROWN_OUTS_7D] = count(7, &|o| o == Occurrence::BrownOut) / seen_days(7);
        if reboots_30d > 0.0 {
            x[idx::BROWN_OUT_SHARE_30D] = count(30, &|o| o == Occurrence::BrownOut) / reboots_30d;
        }
        x[idx::WATCHDOG_RESETS_7D] = count(7, &|o| o == Occurrence::Watchdog) / seen_days(7);
        x[idx::THERMAL_RESETS_30D] = count(30, &|o| o == Occurrence::ThermalReset);
        let crashes_7d = count(7, &|o| o == Occurrence::Crash) / seen_days(7);
        x[idx::CRASHES_7D] = crashes_7d;
        x[idx::CRASH_TREND] = crashes_7d - count(30, &|o| o == Occurrence::Crash) / seen_days(30);
        x[idx::BATTERY_DROPS_7D] = count(7, &|o| o == Occurrence::BatteryDrop);
        x[idx::OVER_TEMPERATURE_7D] = count(7, &|o| o == Occurrence::OverTemperature);
        x[idx::STORAGE_ERRORS_7D] = count(7, &|o| o == Occurrence::StorageError);
        x[idx::STORAGE_ERRORS_30D] = count(30, &|o| o == Occurrence::StorageError);
        x[idx::STORAGE_ERRORS_1D] = count(1, &|o| o == Occurrence::StorageError);

        // Daily sums over the days of the window that have ended by `now` or contain it.
        let last_day = day_of(now_ms);
        let days = |window_days: u64| {
            self.days
                .iter()
                .filter(move |d| d.index <= last_day && d.index + window_days > last_day)
        };
        let drain = |window_days: u64| {
            let (pct, active) = days(window_days).fold((0.0, 0), |(p, a), d| {
                (p + d.discharged_pct, a + d.battery_active_s)
            });
            features::drain_per_active_hour(pct, active).map(f64::from)
        };
        if let Some(d7) = drain(7) {
            x[idx::DRAIN_7D] = d7;
            x[idx::DRAIN_TREND] = drain(30).map_or(0.0, |d30| d7 - d30);
        }
        x[idx::MAX_DROP_7D] = days(7)
            .map(|d| f64::from(d.max_drop_pct))
            .fold(0.0, f64::max);
        if let Some((_, soh)) = self.soh.filter(|(t, _)| *t <= now_ms) {
            x[idx::SOH] = f64::from(soh);
        }
        let soh_points: Vec<(Timestamp, f32)> = days(30)
            .filter_map(|d| d.soh.map(|(t, s)| (Timestamp(t), s)))
            .collect();
        if let Some(slope) = features::slope_per_30d(&soh_points) {
            x[idx::SOH_SLOPE] = f64::from(slope);
        }
        if let Some(c) = self.charge_cycles {
            x[idx::CHARGE_CYCLES] = f64::from(c);
        }
        if let Some(t) = days(7).filter_map(|d| d.temp_max_c).reduce(f32::max) {
            x[idx::TEMP_MAX_7D] = f64::from(t);
        }
        if let Some(t) = days(1).filter_map(|d| d.temp_max_c).reduce(f32::max) {
            x[idx::TEMP_MAX_1D] = f64::from(t);
        }
        let mean_temp = |window_days: u64| {
            let (w, s) =
                days(window_days).fold((0.0, 0), |(w, s), d| (w + d.temp_weighted, s + d.temp_s));
            (s > 0).then(|| w / s as f64)
        };
        if let (Some(t7), Some(t30)) = (mean_temp(7), mean_temp(30)) {
            x[idx::TEMP_MEAN_TREND] = t7 - t30;
        }
        x[idx::HOT_HOURS_7D] =
            days(7).map(|d| d.above_threshold_s).sum::<u64>() as f64 / (HOUR_MS / 1000) as f64;
        let (interval, operational, connected, disconnects) =
            days(7).fold((0, 0, 0, 0), |(i, o, c, n), d| {
                (
                    i + d.interval_s,
                    o + d.operational_s,
                    c + d.connected_s,
                    n + d.disconnects,
                )
            });
        if operational > 0 {
            x[idx::OFFLINE_SHARE_7D] =
                (1.0 - connected as f64 / operational as f64).clamp(0.0, 1.0);
        }
        x[idx::DISCONNECTS_7D] = disconnects as f64 / seen_days(7);
        if interval > 0 {
            x[idx::DOWNTIME_SHARE_7D] =
                (1.0 - operational as f64 / interval as f64).clamp(0.0, 1.0);
        }
        if let Some(p) = self.purchased_at {
            x[idx::DEVICE_AGE] = now_ms.saturating_sub(p.0) as f64 / DAY_MS as f64;
        }
        x[idx::HAS_BATTERY] = if self.has_battery { 1.0 } else { 0.0 };
        v
    }
}

/// Version of [`DeviceHistory::to_snapshot`]'s layout; with the feature schema's
/// fingerprint it names what a stored snapshot can be read back as.
#[cfg(feature = "score")]
pub const SNAPSHOT_FORMAT: u32 = 1;

/// What a stored snapshot must be labelled with to be read back by this build: the
/// layout version and the feature schema's fingerprint. Any other label means rebuild.
#[cfg(feature = "score")]
pub fn snapshot_version() -> String {
    format!("{SNAPSHOT_FORMAT}-{}", crate::schema::schema_fingerprint())
}

/// A stored snapshot that does not read back.
#[cfg(feature = "score")]
#[derive(Debug, thiserror::Error)]
#[error("feature snapshot: {0}")]
pub struct SnapshotError(String);

/// The compact stored form: positional, so a month of days costs about 2 KB.
#[cfg(feature = "score")]
mod wire {
    use serde::{Deserialize, Serialize};

    /// A day: index, interval, operational, connected, disconnects, discharged,
    /// battery-active, max drop, max temperature, weighted temperature, temperature
    /// seconds, seconds above threshold, state of health.
    pub type Day = (
        u64,
        u64,
        u64,
        u64,
        u64,
        f64,
        u64,
        f32,
        Option<f32>,
        f64,
        u64,
        u64,
        Option<(u64, f32)>,
    );

    #[derive(Serialize, Deserialize)]
    pub struct History {
        pub p: Option<u64>,
        pub f: Option<u64>,
        pub n: u64,
        pub d: Vec<Day>,
        pub o: Vec<(u64, u8)>,
        pub s: Option<(u64, f32)>,
        pub c: Option<u32>,
        pub b: bool,
    }
}

#[cfg(feature = "score")]
const OCCURRENCES: [Occurrence; 8] = [
    Occurrence::Reboot,
    Occurrence::BrownOut,
    Occurrence::Watchdog,
    Occurrence::ThermalReset,
    Occurrence::Crash,
    Occurrence::StorageError,
    Occurrence::BatteryDrop,
    Occurrence::OverTemperature,
];

#[cfg(feature = "score")]
impl DeviceHistory {
    /// The history as compact JSON, to keep in a store between processes.
    pub fn to_snapshot(&self) -> String {
        let w = wire::History {
            p: self.purchased_at.map(|t| t.0),
            f: self.first_seen,
            n: self.newest,
            d: self
                .days
                .iter()
                .map(|d| {
                    (
                        d.index,
                        d.interval_s,
                        d.operational_s,
                        d.connected_s,
                        d.disconnects,
                        d.discharged_pct,
                        d.battery_active_s,
                        d.max_drop_pct,
                        d.temp_max_c,
                        d.temp_weighted,
                        d.temp_s,
                        d.above_threshold_s,
                        d.soh,
                    )
                })
                .collect(),
            o: self
                .occurrences
                .iter()
                .map(|&(t, o)| {
                    (
                        t,
                        OCCURRENCES.iter().position(|&k| k == o).unwrap_or(0) as u8,
                    )
                })
                .collect(),
            s: self.soh,
            c: self.charge_cycles,
            b: self.has_battery,
        };
        serde_json::to_string(&w).unwrap_or_default()
    }

    /// Reads back what [`DeviceHistory::to_snapshot`] wrote.
    pub fn from_snapshot(text: &str) -> Result<Self, SnapshotError> {
        let w: wire::History =
            serde_json::from_str(text).map_err(|e| SnapshotError(e.to_string()))?;
        let occurrences =
            w.o.into_iter()
                .map(|(t, k)| {
                    OCCURRENCES
                        .get(usize::from(k))
                        .map(|&o| (t, o))
                        .ok_or_else(|| SnapshotError(format!("unknown occurrence kind {k}")))
                })
                .collect::<Result<_, _>>()?;
        Ok(DeviceHistory {
            purchased_at: w.p.map(Timestamp),
            first_seen: w.f,
            newest: w.n,
            days: w
                .d
                .into_iter()
                .map(|d| Day {
                    index: d.0,
                    interval_s: d.1,
                    operational_s: d.2,
                    connected_s: d.3,
                    disconnects: d.4,
                    discharged_pct: d.5,
                    battery_active_s: d.6,
                    max_drop_pct: d.7,
                    temp_max_c: d.8,
                    temp_weighted: d.9,
                    temp_s: d.10,
                    above_threshold_s: d.11,
                    soh: d.12,
                })
                .collect(),
            occurrences,
            soh: w.s,
            charge_cycles: w.c,
            has_battery: w.b,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::event::{CrashEvent, RebootEvent, StorageErrorEvent};
    use protocol::heartbeat::{BatteryReport, ConnectivityReport, ThermalReport};
    use protocol::ids::BootId;
    use protocol::ids::Epoch;
    use protocol::{DeviceId, Envelope, Seq};

    const T0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn env<B>(ts: u64, body: B) -> Envelope<B> {
        Envelope::new(
            DeviceId::new("dev-1").unwrap(),
            (Epoch(1), Seq(ts / 1000)),
            BootId::new("boot-1").unwrap(),
            Timestamp(ts),
            body,
        )
    }

    fn reboot(ts: u64, reason: RebootReason) -> Message {
        Message::Event(env(
            ts,
            Event::Reboot(RebootEvent {
                reason,
                unclean: true,
                prev_boot_id: None,
                prev_uptime_s: None,
            }),
        ))
    }

    fn heartbeat(
        ts: u64,
        soc: (f32, f32),
        active_s: u32,
        soh: f32,
        max_c: f32,
        connected_s: u32,
    ) -> Message {
        Message::Heartbeat(env(
            ts,
            Heartbeat {
                interval_s: 3600,
                operational_s: 3600,
                crash_free_s: 3600,
                active_s,
                reboots: Default::default(),
                crashes: 0,
                storage_errors: 0,
                battery: Some(BatteryReport {
                    soc_start_pct: soc.0,
                    soc_end_pct: soc.1,
                    soc_min_pct: soc.0.min(soc.1),
                    max_drop_pct: 2.0,
                    voltage_v: 3.8,
                    soh_pct: Some(soh),
                    charge_cycles: 300,
                    charging_s: 0,
                }),
                thermal: Some(ThermalReport {
                    min_c: 20.0,
                    mean_c: 30.0,
                    max_c,
                    above_threshold_s: 0,
                }),
                connectivity: ConnectivityReport {
                    connected_s,
                    disconnects: 1,
                    rssi_dbm: None,
                },
                features: None,
                spool_dropped: 0,
                metrics: Default::default(),
            },
        ))
    }

    #[test]
    fn features_of_a_hand_computed_history() {
        let day = DAY_MS;
        let mut h = DeviceHistory::new(Some(Timestamp(T0 - 100 * day)));
        // Ten days of history: first message at T0.
        h.observe(&heartbeat(T0, (80.0, 70.0), 3600, 90.0, 35.0, 3600));
        // Two brown-outs and a watchdog in the last day, a panic 5 days ago, a user
        // restart (expected) yesterday, a brown-out 20 days ago (before first seen: kept
        // as it is within the horizon of the newest message).
        let now = T0 + 10 * day;
        for m in [
            reboot(now - 2 * HOUR_MS, RebootReason::BrownOut),
            reboot(now - 3 * HOUR_MS, RebootReason::BrownOut),
            reboot(now - 4 * HOUR_MS, RebootReason::HardwareWatchdog),
            reboot(now - 5 * day, RebootReason::KernelPanic),
            reboot(now - day - HOUR_MS, RebootReason::UserRequest),
        ] {
            h.observe(&m);
        }
        h.observe(&Message::Event(env(
            now - HOUR_MS,
            Event::Crash(CrashEvent {
                signature: "x".into(),
                process: None,
            }),
        )));
        for k in 0..3 {
            h.observe(&Message::Event(env(
                now - (k + 1) * 2 * day,
                Event::StorageError(StorageErrorEvent {
                    code: "io_error".into(),
                    detail: None,
                }),
            )));
        }
        // Last day: two hours of heartbeats, 20 points discharged over 1 h of use, SoH 88.
        h.observe(&heartbeat(
            now - HOUR_MS,
            (60.0, 50.0),
            1800,
            88.0,
            41.0,
            1800,
        ));
        h.observe(&heartbeat(now, (50.0, 40.0), 1800, 88.0, 45.0, 3600));
        let v = h.features(Timestamp(now));
        let f = |name| v.get(name).unwrap();
        assert_eq!(f("unexpected_reboots_per_day_1d"), 3.0);
        assert!((f("unexpected_reboots_per_day_7d") - 4.0 / 7.0).abs() < 1e-9);
        assert!(
            (f("unexpected_reboots_per_day_30d") - 4.0 / 10.0).abs() < 1e-9,
            "seen for 10 days"
        );
        assert!((f("unexpected_reboot_trend") - (4.0 / 7.0 - 0.4)).abs() < 1e-9);
        assert!((f("brown_outs_per_day_7d") - 2.0 / 7.0).abs() < 1e-9);
        assert_eq!(f("brown_out_share_30d"), 0.5);
        assert!((f("watchdog_resets_per_day_7d") - 1.0 / 7.0).abs() < 1e-9);
        assert!((f("crashes_per_day_7d") - 1.0 / 7.0).abs() < 1e-9);
        assert_eq!(f("storage_errors_7d"), 3.0);
        assert_eq!(f("storage_errors_1d"), 0.0);
        // Last 7 days: 20 points over 3600 s of use = 20 %/h; 30 days add the first
        // heartbeat: 30 points over 7200 s = 15 %/h.
        assert!((f("drain_pct_per_active_h_7d") - 20.0).abs() < 1e-9);
        assert!((f("drain_trend") - 5.0).abs() < 1e-9);
        assert_eq!(f("soh_pct"), 88.0);
        // 90 → 88 over 10 days: -6 points per 30 days.
        assert!(
            (f("soh_slope_pct_per_30d") + 6.0).abs() < 1e-3,
            "{}",
            f("soh_slope_pct_per_30d")
        );
        assert_eq!(f("charge_cycles"), 300.0);
        assert_eq!(f("temp_max_c_7d"), 45.0);
        assert_eq!(f("temp_max_c_1d"), 45.0);
        // 5400 of 7200 operational seconds connected.
        assert!((f("offline_share_7d") - 0.25).abs() < 1e-9);
        assert!((f("disconnects_per_day_7d") - 2.0 / 7.0).abs() < 1e-9);
        assert_eq!(f("downtime_share_7d"), 0.0);
        assert!((f("device_age_days") - 110.0).abs() < 1e-9);
        assert_eq!(f("has_battery"), 1.0);
    }

    #[cfg(feature = "score")]
    #[test]
    fn a_snapshot_reads_back_as_the_same_history_and_a_month_stays_small() {
        let mut h = DeviceHistory::new(Some(Timestamp(T0 - 100 * DAY_MS)));
        for day in 0..40 {
            for hour in 0..24 {
                let ts = T0 + day * DAY_MS + hour * HOUR_MS;
                let soc = 90.0 - hour as f32;
                h.observe(&heartbeat(ts, (soc, soc - 1.3), 1800, 88.7, 41.3, 3600));
            }
            h.observe(&reboot(T0 + day * DAY_MS + 7, RebootReason::BrownOut));
        }
        let text = h.to_snapshot();
        let back = DeviceHistory::from_snapshot(&text).unwrap();
        assert_eq!(back, h);
        let now = Timestamp(T0 + 40 * DAY_MS);
        assert_eq!(back.features(now), h.features(now));
        assert!(text.len() < 4096, "{} bytes: {text}", text.len());
        assert!(DeviceHistory::from_snapshot("{\"p\":1}").is_err());
        let bad_kind = text.replacen(",1]]", ",99]]", 1);
        assert!(
            DeviceHistory::from_snapshot(&bad_kind).is_err(),
            "{bad_kind}"
        );
    }

    /// docs/protocol.md §6: occurrences count from events; a heartbeat's totals are
    /// the interval's summary and are not added to them.
    #[test]
    fn restarts_and_crashes_count_from_events_not_from_heartbeat_totals() {
        let now = T0 + DAY_MS;
        let mut hb = heartbeat(now - HOUR_MS, (80.0, 70.0), 600, 95.0, 35.0, 3600);
        if let Message::Heartbeat(h) = &mut hb {
            h.body.crashes = 5;
            h.body.reboots.insert(RebootReason::BrownOut, 2);
        }
        let mut h = DeviceHistory::new(None);
        h.observe(&hb);
        let v = h.features(Timestamp(now));
        assert_eq!(v.get("crashes_per_day_7d"), Some(0.0));
        assert_eq!(v.get("unexpected_reboots_per_day_1d"), Some(0.0));
        h.observe(&reboot(now - 2 * HOUR_MS, RebootReason::BrownOut));
        let v = h.features(Timestamp(now));
        assert_eq!(v.get("unexpected_reboots_per_day_1d"), Some(1.0));
    }

    #[test]
    fn arrival_order_does_not_change_the_features() {
        let now = T0 + 3 * DAY_MS;
        let messages = [
            heartbeat(T0 + HOUR_MS, (90.0, 80.0), 3600, 95.0, 33.0, 3600),
            reboot(T0 + 2 * DAY_MS, RebootReason::BrownOut),
            heartbeat(T0 + 2 * DAY_MS, (70.0, 60.0), 3600, 94.0, 38.0, 3000),
            reboot(now - HOUR_MS, RebootReason::OverTemperature),
        ];
        let mut in_order = DeviceHistory::new(None);
        messages.iter().for_each(|m| in_order.observe(m));
        let mut reversed = DeviceHistory::new(None);
        messages.iter().rev().for_each(|m| reversed.observe(m));
        assert_eq!(
            in_order.features(Timestamp(now)),
            reversed.features(Timestamp(now))
        );
        assert_eq!(
            in_order.features(Timestamp(now)).get("thermal_resets_30d"),
            Some(1.0)
        );
    }

    #[test]
    fn history_is_bounded_and_forgets_the_old() {
        let mut h = DeviceHistory::new(None);
        h.observe(&reboot(T0, RebootReason::BrownOut));
        let later = T0 + 40 * DAY_MS;
        h.observe(&heartbeat(later, (50.0, 40.0), 600, 90.0, 30.0, 3600));
        assert_eq!(
            h.features(Timestamp(later))
                .get("unexpected_reboots_per_day_30d"),
            Some(0.0)
        );
        // A message older than the horizon is ignored.
        h.observe(&reboot(T0 + DAY_MS, RebootReason::BrownOut));
        assert_eq!(h.occurrences.len(), 0);
        for k in 0..(MAX_OCCURRENCES as u64 + 10) {
            h.observe(&reboot(later + k, RebootReason::KernelPanic));
        }
        assert_eq!(h.occurrences.len(), MAX_OCCURRENCES);
    }

    #[test]
    fn missing_signals_take_their_missing_value() {
        let v = DeviceHistory::new(None).features(Timestamp(T0));
        assert_eq!(v, FeatureVector::missing());
        assert_eq!(v.get("soh_pct"), Some(100.0));
        assert_eq!(v.get("no_such_feature"), None);
    }
}
