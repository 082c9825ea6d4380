//! SLA clocks: where a ticket stands against the window its tier gives the service
//! team (`policy.*_due_hours`, frozen into the ticket when it opens), computed from the
//! ticket's event log alone, so every replica and
//! every restart sees the same state. Pure.
//!
//! The clock starts when the ticket opens and stops when it closes. Pausing (waiting
//! for the customer, waiting for parts) needs a reason; the time paused does not count,
//! so resuming moves the due time on. A ticket is at risk in the last quarter of its
//! window and breached once the window is used up; a breach is a fact from then on,
//! however the ticket ends.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::UnknownName;

/// Why a ticket's clock is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// The customer has to answer or bring the device.
    WaitingForCustomer,
    /// A part is on order.
    WaitingForParts,
}

impl PauseReason {
    /// Every reason.
    pub const ALL: [PauseReason; 2] = [
        PauseReason::WaitingForCustomer,
        PauseReason::WaitingForParts,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::WaitingForCustomer => "waiting_for_customer",
            PauseReason::WaitingForParts => "waiting_for_parts",
        }
    }
}

impl fmt::Display for PauseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PauseReason {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        PauseReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownName::new("pause reason", s))
    }
}

/// What the clock reads from a ticket's log, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockEvent {
    /// The clock was paused.
    Paused {
        /// When.
        at_ms: u64,
        /// Why.
        reason: PauseReason,
    },
    /// It runs again.
    Resumed {
        /// When.
        at_ms: u64,
    },
    /// The ticket closed: the clock stops for good.
    Closed {
        /// When.
        at_ms: u64,
    },
}

/// Where a ticket stands against its SLA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SlaState {
    /// Running, more than a quarter of the window left.
    OnTime,
    /// Running, in the last quarter of the window.
    AtRisk,
    /// The window is used up (paused or closed after that, it stays breached).
    Breached,
    /// Stopped by a pause, not breached.
    Paused,
    /// Closed within the window.
    Met,
}

impl SlaState {
    /// Every state.
    pub const ALL: [SlaState; 5] = [
        SlaState::OnTime,
        SlaState::AtRisk,
        SlaState::Breached,
        SlaState::Paused,
        SlaState::Met,
    ];

    /// The displayed and filtered-on name.
    pub fn as_str(self) -> &'static str {
        match self {
            SlaState::OnTime => "on_time",
            SlaState::AtRisk => "at_risk",
            SlaState::Breached => "breached",
            SlaState::Paused => "paused",
            SlaState::Met => "met",
        }
    }
}

impl fmt::Display for SlaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SlaState {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        SlaState::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownName::new("SLA state", s))
    }
}

/// A ticket's SLA clock as of some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SlaClock {
    /// Where it stands.
    pub state: SlaState,
    /// When the window ends, pauses so far counted in (for a paused clock: if it were
    /// resumed now).
    pub due_ms: u64,
    /// Time left in the window, ms (negative once breached).
    pub remaining_ms: i64,
    /// Time spent paused, ms.
    pub paused_ms: u64,
    /// Of that, the pause in force so far, ms.
    pub current_pause_ms: u64,
    /// The pause in force, with its start: `[reason, ms]`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub paused: Option<(PauseReason, u64)>,
    /// When the window was used up, if it was.
    pub breached_at_ms: Option<u64>,
}

/// Why a pause or resume is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// Pausing a paused clock.
    #[error("the SLA clock is already paused ({0})")]
    AlreadyPaused(PauseReason),
    /// Resuming a running clock.
    #[error("the SLA clock is not paused")]
    NotPaused,
    /// Pausing or resuming a closed ticket.
    #[error("the ticket is closed; its SLA clock has stopped")]
    Closed,
}

/// Reads a ticket's clock at `now_ms`: it opened at `opened_ms` with a window of
/// `window_ms`, and `events` (in log order) paused, resumed or closed it. Events after
/// `now_ms` are not seen.
pub fn clock(opened_ms: u64, window_ms: u64, events: &[ClockEvent], now_ms: u64) -> SlaClock {
    let mut paused_ms = 0u64;
    let mut pause: Option<(PauseReason, u64)> = None;
    let mut closed: Option<u64> = None;
    let mut breached_at: Option<u64> = None;
    // Running time is measured between `since` and each event.
    let mut since = opened_ms;
    let mut used = 0u64;
    let run_until = |from: u64, to: u64, used: &mut u64, breached_at: &mut Option<u64>| {
        let span = to.saturating_sub(from);
        if breached_at.is_none() && *used + span > window_ms {
            *breached_at = Some(from + (window_ms - *used));
        }
        *used += span;
    };
    for e in events {
        let at = match *e {
            ClockEvent::Paused { at_ms, .. }
            | ClockEvent::Resumed { at_ms }
            | ClockEvent::Closed { at_ms } => at_ms,
        };
        if at > now_ms || closed.is_some() {
            break;
        }
        let at = at.max(since);
        match *e {
            ClockEvent::Paused { reason, .. } if pause.is_none() => {
                run_until(since, at, &mut used, &mut breached_at);
                pause = Some((reason, at));
            }
            ClockEvent::Resumed { .. } => {
                if let Some((_, from)) = pause.take() {
                    paused_ms += at - from;
                    since = at;
                }
            }
            ClockEvent::Closed { .. } => {
                match pause.take() {
                    Some((_, from)) => paused_ms += at - from,
                    None => run_until(since, at, &mut used, &mut breached_at),
                }
                closed = Some(at);
            }
            // A second pause while paused changes nothing (the desk refuses it).
            ClockEvent::Paused { .. } => {}
        }
        if pause.is_none() {
            since = at;
        }
    }
    let mut current_pause = 0;
    if closed.is_none() {
        match pause {
            Some((_, from)) => current_pause = now_ms.saturating_sub(from),
            None => run_until(since, now_ms, &mut used, &mut breached_at),
        }
    }
    let due_ms = opened_ms + window_ms + paused_ms + current_pause;
    let remaining_ms = window_ms as i64 - used as i64;
    let state = match (breached_at, closed, pause) {
        (Some(_), _, _) => SlaState::Breached,
        (None, Some(_), _) => SlaState::Met,
        (None, None, Some(_)) => SlaState::Paused,
        (None, None, None) if remaining_ms * 4 <= window_ms as i64 => SlaState::AtRisk,
        (None, None, None) => SlaState::OnTime,
    };
    SlaClock {
        state,
        due_ms,
        remaining_ms,
        paused_ms: paused_ms + current_pause,
        current_pause_ms: current_pause,
        paused: pause,
        breached_at_ms: breached_at,
    }
}

/// Checks that the clock may be paused now.
pub fn can_pause(c: &SlaClock, closed: bool) -> Result<(), ClockError> {
    match (closed, c.paused) {
        (true, _) => Err(ClockError::Closed),
        (false, Some((reason, _))) => Err(ClockError::AlreadyPaused(reason)),
        (false, None) => Ok(()),
    }
}

/// Checks that the clock may be resumed now.
pub fn can_resume(c: &SlaClock, closed: bool) -> Result<(), ClockError> {
    match (closed, c.paused) {
        (true, _) => Err(ClockError::Closed),
        (false, None) => Err(ClockError::NotPaused),
        (false, Some(_)) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;
    const T0: u64 = 1_795_334_400_000;

    #[test]
    fn a_running_clock_goes_on_time_at_risk_breached() {
        let w = 4 * H;
        let at = |h: f64| clock(T0, w, &[], T0 + (h * H as f64) as u64);
        assert_eq!(at(0.0).state, SlaState::OnTime);
        assert_eq!(at(2.9).state, SlaState::OnTime);
        assert_eq!(at(3.0).state, SlaState::AtRisk, "the last quarter");
        assert_eq!(
            at(4.0).state,
            SlaState::AtRisk,
            "the last instant is still in time"
        );
        let late = at(5.0);
        assert_eq!(late.state, SlaState::Breached);
        assert_eq!(late.breached_at_ms, Some(T0 + 4 * H));
        assert_eq!(late.remaining_ms, -(H as i64));
        assert_eq!(late.due_ms, T0 + 4 * H);
    }

    #[test]
    fn a_pause_stops_the_clock_and_resuming_moves_the_due_time_on() {
        let w = 24 * H;
        let events = [
            ClockEvent::Paused {
                at_ms: T0 + 10 * H,
                reason: PauseReason::WaitingForParts,
            },
            ClockEvent::Resumed { at_ms: T0 + 40 * H },
        ];
        let paused = clock(T0, w, &events[..1], T0 + 30 * H);
        assert_eq!(paused.state, SlaState::Paused, "30 h in, but only 10 h ran");
        assert_eq!(
            paused.paused,
            Some((PauseReason::WaitingForParts, T0 + 10 * H))
        );
        assert_eq!(paused.remaining_ms, (14 * H) as i64);
        assert_eq!(paused.due_ms, T0 + 44 * H, "if resumed now");
        let resumed = clock(T0, w, &events, T0 + 41 * H);
        assert_eq!(resumed.state, SlaState::OnTime);
        assert_eq!(resumed.due_ms, T0 + 54 * H, "24 h plus 30 h paused");
        assert_eq!(resumed.paused_ms, 30 * H);
        assert_eq!(clock(T0, w, &events, T0 + 49 * H).state, SlaState::AtRisk);
        let late = clock(T0, w, &events, T0 + 55 * H);
        assert_eq!(late.state, SlaState::Breached);
        assert_eq!(late.breached_at_ms, Some(T0 + 54 * H));
    }

    #[test]
    fn a_breach_stays_a_breach_and_closing_in_time_is_met() {
        let w = 4 * H;
        let late_pause = [ClockEvent::Paused {
            at_ms: T0 + 5 * H,
            reason: PauseReason::WaitingForCustomer,
        }];
        let c = clock(T0, w, &late_pause, T0 + 9 * H);
        assert_eq!(
            (c.state, c.breached_at_ms),
            (SlaState::Breached, Some(T0 + 4 * H))
        );
        let closed = [ClockEvent::Closed { at_ms: T0 + 3 * H }];
        let c = clock(T0, w, &closed, T0 + 100 * H);
        assert_eq!((c.state, c.remaining_ms), (SlaState::Met, H as i64));
        let closed_late = [ClockEvent::Closed { at_ms: T0 + 6 * H }];
        assert_eq!(
            clock(T0, w, &closed_late, T0 + 100 * H).state,
            SlaState::Breached
        );
        // Closed while paused: the pause ends with it, the clock stays as it was.
        let paused_then_closed = [
            ClockEvent::Paused {
                at_ms: T0 + H,
                reason: PauseReason::WaitingForCustomer,
            },
            ClockEvent::Closed { at_ms: T0 + 50 * H },
        ];
        let c = clock(T0, w, &paused_then_closed, T0 + 100 * H);
        assert_eq!((c.state, c.paused), (SlaState::Met, None));
        // What happens after `now` is not seen.
        assert_eq!(clock(T0, w, &closed_late, T0 + H).state, SlaState::OnTime);
    }

    #[test]
    fn pausing_and_resuming_are_checked() {
        let w = 4 * H;
        let running = clock(T0, w, &[], T0 + H);
        assert_eq!(can_pause(&running, false), Ok(()));
        assert_eq!(can_resume(&running, false), Err(ClockError::NotPaused));
        assert_eq!(can_pause(&running, true), Err(ClockError::Closed));
        let paused = clock(
            T0,
            w,
            &[ClockEvent::Paused {
                at_ms: T0,
                reason: PauseReason::WaitingForParts,
            }],
            T0 + H,
        );
        assert_eq!(
            can_pause(&paused, false),
            Err(ClockError::AlreadyPaused(PauseReason::WaitingForParts))
        );
        assert_eq!(can_resume(&paused, false), Ok(()));
    }
}

/// The state a clock's summary (the ticket's `due_ms`, `sla_paused_ms` and
/// `sla_window_ms` columns) gives at `now_ms`, for an open ticket: what the queue
/// filters on, the same as [`clock`] reads from the log.
pub fn state_of(
    due_ms: u64,
    paused_since_ms: Option<u64>,
    window_ms: u64,
    now_ms: u64,
) -> SlaState {
    match paused_since_ms {
        Some(since) if due_ms < since => SlaState::Breached,
        Some(_) => SlaState::Paused,
        None if due_ms < now_ms => SlaState::Breached,
        None if (due_ms - now_ms).saturating_mul(4) <= window_ms => SlaState::AtRisk,
        None => SlaState::OnTime,
    }
}

#[cfg(test)]
mod summary {
    use super::*;

    const H: u64 = 3_600_000;
    const T0: u64 = 1_795_334_400_000;

    /// The queue's reading of the columns agrees with the log's at every hour.
    #[test]
    fn the_summary_reads_as_the_log_does() {
        let w = 8 * H;
        let events = [
            ClockEvent::Paused {
                at_ms: T0 + 2 * H,
                reason: PauseReason::WaitingForCustomer,
            },
            ClockEvent::Resumed { at_ms: T0 + 5 * H },
            ClockEvent::Paused {
                at_ms: T0 + 13 * H,
                reason: PauseReason::WaitingForParts,
            },
        ];
        for hour in 0..20 {
            let now = T0 + hour * H;
            let c = clock(T0, w, &events, now);
            let cols = crate::tickets::work::SlaColumns::of(&c);
            assert_eq!(
                state_of(cols.due_ms, cols.paused_since_ms, w, now),
                c.state,
                "hour {hour}: {c:?}"
            );
        }
    }
}
