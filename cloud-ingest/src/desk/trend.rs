//! A device's last days, day by day: what the evidence charts draw. Pure: stored
//! messages in, daily figures out.

use std::collections::BTreeMap;

use models::features::DAY_MS;
use protocol::{Limits, Message};
use serde::Serialize;
use utoipa::ToSchema;

use crate::score::decode_stored;
use crate::store::messages::StoredMessage;

/// Days the evidence charts cover.
pub const CHART_DAYS: u64 = 30;

/// One UTC day (device time) of a device's telemetry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Day {
    /// The day's start, ms.
    pub start_ms: u64,
    /// The battery's state of health in the day's last heartbeat that reported it, %.
    pub soh_pct: Option<f32>,
    /// Battery drop events.
    pub battery_drops: u32,
    /// Unexpected restarts by reason (expected ones, such as updates, are left out).
    pub restarts: BTreeMap<String, u32>,
    /// The day's highest temperature, °C.
    pub temp_max_c: Option<f32>,
    /// The day's mean temperature over the heartbeats' intervals, °C.
    pub temp_mean_c: Option<f32>,
}

impl Day {
    /// Unexpected restarts of any reason.
    pub fn restart_count(&self) -> u32 {
        self.restarts.values().sum()
    }
}

/// A device's telemetry over the days ending with the day of `end_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Trend {
    /// The days, oldest first; every day of the window is present, empty when silent.
    pub days: Vec<Day>,
    /// The moment the device was scored, when that falls in the window, ms.
    pub scored_ms: Option<u64>,
    /// Stored messages that could not be read back (left out of the figures).
    pub unreadable: u64,
    /// Whether there were more messages than one chart set reads: the earliest days
    /// then lack some.
    pub truncated: bool,
}

impl Trend {
    /// The first day's start, ms.
    pub fn start_ms(&self) -> u64 {
        self.days.first().map_or(0, |d| d.start_ms)
    }

    /// Whether any day holds a figure.
    pub fn is_empty(&self) -> bool {
        self.days.iter().all(|d| *d == blank(d.start_ms))
    }
}

fn blank(start_ms: u64) -> Day {
    Day {
        start_ms,
        ..Day::default()
    }
}

/// The start of the window of `days` days whose last day holds `end_ms`.
pub fn window_start(end_ms: u64, days: u64) -> u64 {
    let last = end_ms - end_ms % DAY_MS;
    last.saturating_sub(days.saturating_sub(1) * DAY_MS)
}

/// Where a ticket's charts end: at the device's last message, but no later than
/// `days_after` days after the score (and never before it), so an old ticket's charts show
/// what led to it; without a score or a last message, at what there is, else at `opened_ms`.
pub fn ticket_window_end(
    scored_ms: Option<u64>,
    last_seen_ms: Option<u64>,
    opened_ms: u64,
    days_after: u64,
) -> u64 {
    match (scored_ms, last_seen_ms) {
        (Some(sc), Some(seen)) => seen.min(sc + days_after * DAY_MS).max(sc),
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => opened_ms,
    }
}

/// The daily figures of `messages` (heartbeats and events, any order) over the `days`
/// days ending with the day of `end_ms`; messages outside the window are ignored.
pub fn trend(messages: &[StoredMessage], end_ms: u64, days: u64, scored_ms: Option<u64>) -> Trend {
    let start = window_start(end_ms, days);
    let end = start + days * DAY_MS;
    let mut out: Vec<Day> = (0..days).map(|i| blank(start + i * DAY_MS)).collect();
    // Per day: (ts of the SoH kept, weighted temperature sum, seconds weighed).
    let mut soh_at = vec![0u64; days as usize];
    let mut temp = vec![(0.0f64, 0u64); days as usize];
    let limits = Limits::default();
    let mut unreadable = 0;
    for m in messages {
        if m.ts_ms < start || m.ts_ms >= end {
            continue;
        }
        let i = ((m.ts_ms - start) / DAY_MS) as usize;
        let day = &mut out[i];
        match decode_stored(&m.channel, &m.payload, &limits) {
            Some(Message::Heartbeat(hb)) => {
                if let Some(soh) = hb.body.battery.as_ref().and_then(|b| b.soh_pct) {
                    if day.soh_pct.is_none() || m.ts_ms >= soh_at[i] {
                        day.soh_pct = Some(soh);
                        soh_at[i] = m.ts_ms;
                    }
                }
                if let Some(t) = &hb.body.thermal {
                    day.temp_max_c = Some(day.temp_max_c.map_or(t.max_c, |x| x.max(t.max_c)));
                    let w = u64::from(hb.body.interval_s.max(1));
                    temp[i].0 += f64::from(t.mean_c) * w as f64;
                    temp[i].1 += w;
                }
            }
            Some(Message::Event(ev)) => match &ev.body {
                protocol::event::Event::BatteryDrop(_) => day.battery_drops += 1,
                protocol::event::Event::Reboot(r) if r.reason.is_unexpected() => {
                    *day.restarts.entry(r.reason.to_string()).or_default() += 1;
                }
                _ => {}
            },
            Some(_) => {}
            None => unreadable += 1,
        }
    }
    for (day, (sum, secs)) in out.iter_mut().zip(temp) {
        if secs > 0 {
            day.temp_mean_c = Some((sum / secs as f64) as f32);
        }
    }
    Trend {
        days: out,
        scored_ms: scored_ms.filter(|&t| t >= start && t < end),
        unreadable,
        truncated: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::event::{BatteryDropEvent, Event, RebootEvent};
    use protocol::heartbeat::{BatteryReport, ConnectivityReport, Heartbeat, ThermalReport};
    use protocol::ids::BootId;
    use protocol::reboot::RebootReason;
    use protocol::{DeviceId, Envelope, Epoch, Seq, Timestamp};

    const T: u64 = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS;

    fn envelope<B>(ts: u64, seq: u64, body: B) -> Envelope<B> {
        Envelope::new(
            DeviceId::new("dev-1").unwrap(),
            (Epoch(1), Seq(seq)),
            BootId::new("boot-1").unwrap(),
            Timestamp(ts),
            body,
        )
    }

    fn stored<B: Serialize>(channel: &str, ts: u64, seq: u64, body: B) -> StoredMessage {
        StoredMessage {
            ts_ms: ts,
            seq,
            channel: channel.into(),
            payload: serde_json::to_string(&envelope(ts, seq, body)).unwrap(),
        }
    }

    fn heartbeat(ts: u64, seq: u64, soh: f32, max_c: f32, mean_c: f32) -> StoredMessage {
        let hb = Heartbeat {
            interval_s: 3600,
            operational_s: 3600,
            crash_free_s: 3600,
            active_s: 600,
            reboots: Default::default(),
            crashes: 0,
            storage_errors: 0,
            battery: Some(BatteryReport {
                soc_start_pct: 80.0,
                soc_end_pct: 75.0,
                soc_min_pct: 75.0,
                max_drop_pct: 5.0,
                voltage_v: 3.9,
                soh_pct: Some(soh),
                charge_cycles: 100,
                charging_s: 0,
            }),
            thermal: Some(ThermalReport {
                min_c: 20.0,
                mean_c,
                max_c,
                above_threshold_s: 0,
            }),
            connectivity: ConnectivityReport {
                connected_s: 3600,
                disconnects: 0,
                rssi_dbm: None,
            },
            features: None,
            spool_dropped: 0,
            metrics: Default::default(),
        };
        stored("heartbeat", ts, seq, hb)
    }

    fn reboot(ts: u64, seq: u64, reason: RebootReason) -> StoredMessage {
        let e = Event::Reboot(RebootEvent {
            reason,
            unclean: true,
            prev_boot_id: None,
            prev_uptime_s: None,
        });
        stored("event", ts, seq, e)
    }

    fn drop_event(ts: u64, seq: u64) -> StoredMessage {
        let e = Event::BatteryDrop(BatteryDropEvent {
            from_pct: 60.0,
            to_pct: 30.0,
            window_s: 600,
        });
        stored("event", ts, seq, e)
    }

    #[test]
    fn days_sum_what_happened_in_them_and_only_that() {
        let end = T + 29 * DAY_MS + 5 * 3_600_000;
        let last = T + 29 * DAY_MS;
        let messages = vec![
            // Out of order: the later heartbeat's SoH is the day's.
            heartbeat(last + 3 * 3_600_000, 2, 88.0, 41.0, 30.0),
            heartbeat(last + 3_600_000, 1, 90.0, 35.0, 20.0),
            reboot(last + 2 * 3_600_000, 3, RebootReason::BrownOut),
            reboot(last + 2 * 3_600_000 + 1, 4, RebootReason::BrownOut),
            reboot(last + 2 * 3_600_000 + 2, 5, RebootReason::KernelPanic),
            // An expected restart is not drawn.
            reboot(last + 2 * 3_600_000 + 3, 6, RebootReason::FirmwareUpdate),
            drop_event(T, 7),
            drop_event(T + 1, 8),
            // Before the window: ignored.
            drop_event(T - 1, 9),
            StoredMessage {
                ts_ms: T + DAY_MS,
                seq: 10,
                channel: "event".into(),
                payload: "{not json".into(),
            },
        ];
        let t = trend(&messages, end, 30, Some(last + 4 * 3_600_000));
        assert_eq!(t.days.len(), 30);
        assert_eq!(t.start_ms(), T);
        assert_eq!(t.days[0].battery_drops, 2);
        let d = &t.days[29];
        assert_eq!(d.soh_pct, Some(88.0));
        assert_eq!(d.temp_max_c, Some(41.0));
        assert_eq!(d.temp_mean_c, Some(25.0));
        assert_eq!(d.restarts.get("brown_out"), Some(&2));
        assert_eq!(d.restarts.get("kernel_panic"), Some(&1));
        assert_eq!(d.restart_count(), 3);
        assert!(t.days[1..29]
            .iter()
            .all(|d| d.restart_count() == 0 && d.soh_pct.is_none()));
        assert_eq!(t.unreadable, 1);
        assert_eq!(t.scored_ms, Some(last + 4 * 3_600_000));
        assert!(!t.is_empty());
    }

    #[test]
    fn a_ticket_s_window_ends_at_the_last_message_within_a_week_of_the_score() {
        let sc = T;
        assert_eq!(
            ticket_window_end(Some(sc), Some(sc + DAY_MS), 0, 7),
            sc + DAY_MS
        );
        assert_eq!(
            ticket_window_end(Some(sc), Some(sc + 90 * DAY_MS), 0, 7),
            sc + 7 * DAY_MS
        );
        // Scored on data older than the last message seen: the score is in the window.
        assert_eq!(ticket_window_end(Some(sc), Some(sc - DAY_MS), 0, 7), sc);
        assert_eq!(ticket_window_end(None, Some(sc), 0, 7), sc);
        assert_eq!(ticket_window_end(None, None, 42, 7), 42);
    }

    #[test]
    fn a_score_outside_the_window_is_not_marked_and_silence_is_empty() {
        let end = T + 10 * DAY_MS;
        let t = trend(&[], end, 30, Some(end + DAY_MS));
        assert_eq!(t.scored_ms, None);
        assert!(t.is_empty());
        assert_eq!(window_start(end, 30), T - 19 * DAY_MS);
        assert_eq!(window_start(5, 30), 0, "no underflow near the epoch");
    }
}
