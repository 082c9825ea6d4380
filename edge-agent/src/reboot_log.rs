//! The reboot log: why each boot happened, and the recent history of restarts.
//!
//! At boot the agent combines three witnesses: the hardware reset cause, the record the
//! previous boot left (an orderly shutdown writes its reason; the crash handler writes
//! the fault it died of), and the last battery level. [`classify`] turns them into one
//! of the protocol's reasons and says whether the previous boot ended uncleanly.
//! Hardware causes that prove a fault (brown-out, watchdog, thermal cut-off, a kernel
//! panic) win over a recorded intent, because the orderly shutdown did not finish.

use std::collections::VecDeque;

use protocol::ids::BootId;
use protocol::reboot::RebootReason;
use protocol::Timestamp;
use serde::{Deserialize, Serialize};

use crate::hal::ResetCause;

/// At or below this state of charge, a power loss without a record is an empty battery.
pub const FLAT_BATTERY_PCT: f32 = 3.0;
/// How many restarts the log keeps; enough for a week of a crash-looping device.
pub const LOG_CAPACITY: usize = 256;

/// What a boot leaves behind for the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootRecord {
    /// The boot's id.
    pub boot_id: BootId,
    /// When it started.
    pub started: Timestamp,
    /// The last time it was known to be running.
    pub last_alive: Timestamp,
    /// Set by an orderly shutdown: the reason it gave.
    pub shutdown: Option<RebootReason>,
    /// Set by the crash handler: the fault the boot died of.
    pub fatal: Option<RebootReason>,
    /// The last state of charge read, percent.
    pub last_soc_pct: Option<f32>,
}

/// The outcome of [`classify`].
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// The reason for this boot.
    pub reason: RebootReason,
    /// True when the previous boot ended without an orderly shutdown.
    pub unclean: bool,
}

/// Classifies a boot from the previous boot's record and the hardware reset cause.
pub fn classify(previous: Option<&BootRecord>, cause: ResetCause) -> Classified {
    let unclean = |reason| Classified {
        reason,
        unclean: true,
    };
    let Some(prev) = previous else {
        // The first boot the agent sees: out of the box or after its storage was wiped.
        return Classified {
            reason: RebootReason::PowerOn,
            unclean: false,
        };
    };
    match cause {
        ResetCause::BrownOut => return unclean(RebootReason::BrownOut),
        ResetCause::Watchdog => return unclean(RebootReason::HardwareWatchdog),
        ResetCause::Thermal => return unclean(RebootReason::OverTemperature),
        ResetCause::KernelPanic => return unclean(RebootReason::KernelPanic),
        _ => {}
    }
    if let Some(reason) = &prev.shutdown {
        return Classified {
            reason: reason.clone(),
            unclean: false,
        };
    }
    if let Some(fatal) = &prev.fatal {
        return unclean(fatal.clone());
    }
    let flat = prev.last_soc_pct.is_some_and(|s| s <= FLAT_BATTERY_PCT);
    match cause {
        ResetCause::PowerOn if flat => unclean(RebootReason::LowBatteryShutdown),
        _ => unclean(RebootReason::Unknown),
    }
}

/// The recent restarts, oldest first, bounded to [`LOG_CAPACITY`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RebootLog {
    entries: VecDeque<(Timestamp, RebootReason)>,
}

impl RebootLog {
    /// Records a restart.
    pub fn push(&mut self, at: Timestamp, reason: RebootReason) {
        if self.entries.len() == LOG_CAPACITY {
            self.entries.pop_front();
        }
        self.entries.push_back((at, reason));
    }

    /// The restarts kept, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (Timestamp, &RebootReason)> + Clone {
        self.entries.iter().map(|(t, r)| (*t, r))
    }

    /// How many restarts are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no restart is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> BootRecord {
        BootRecord {
            boot_id: BootId::new("b1").unwrap(),
            started: Timestamp(1_700_000_000_000),
            last_alive: Timestamp(1_700_000_600_000),
            shutdown: None,
            fatal: None,
            last_soc_pct: Some(60.0),
        }
    }

    fn check(prev: Option<&BootRecord>, cause: ResetCause, reason: RebootReason, unclean: bool) {
        assert_eq!(
            classify(prev, cause),
            Classified { reason, unclean },
            "{prev:?} / {cause:?}"
        );
    }

    #[test]
    fn first_boot_is_a_clean_power_on() {
        check(None, ResetCause::Unknown, RebootReason::PowerOn, false);
    }

    #[test]
    fn a_recorded_shutdown_gives_its_reason() {
        let mut prev = record();
        prev.shutdown = Some(RebootReason::FirmwareUpdate);
        for cause in [
            ResetCause::Software,
            ResetCause::PowerOn,
            ResetCause::Unknown,
        ] {
            check(Some(&prev), cause, RebootReason::FirmwareUpdate, false);
        }
    }

    #[test]
    fn hardware_faults_win_over_a_recorded_intent() {
        let mut prev = record();
        prev.shutdown = Some(RebootReason::UserRequest);
        check(
            Some(&prev),
            ResetCause::BrownOut,
            RebootReason::BrownOut,
            true,
        );
        check(
            Some(&prev),
            ResetCause::Watchdog,
            RebootReason::HardwareWatchdog,
            true,
        );
        check(
            Some(&prev),
            ResetCause::Thermal,
            RebootReason::OverTemperature,
            true,
        );
        check(
            Some(&prev),
            ResetCause::KernelPanic,
            RebootReason::KernelPanic,
            true,
        );
    }

    #[test]
    fn the_crash_handler_record_names_the_fault() {
        let mut prev = record();
        prev.fatal = Some(RebootReason::Assert);
        check(
            Some(&prev),
            ResetCause::Software,
            RebootReason::Assert,
            true,
        );
        prev.fatal = Some(RebootReason::SoftwareWatchdog);
        check(
            Some(&prev),
            ResetCause::Software,
            RebootReason::SoftwareWatchdog,
            true,
        );
    }

    #[test]
    fn power_loss_is_a_flat_battery_or_unknown() {
        let mut prev = record();
        check(
            Some(&prev),
            ResetCause::PowerOn,
            RebootReason::Unknown,
            true,
        );
        check(
            Some(&prev),
            ResetCause::ExternalPin,
            RebootReason::Unknown,
            true,
        );
        prev.last_soc_pct = Some(2.0);
        check(
            Some(&prev),
            ResetCause::PowerOn,
            RebootReason::LowBatteryShutdown,
            true,
        );
    }

    #[test]
    fn the_log_keeps_the_newest_entries() {
        let mut log = RebootLog::default();
        for i in 0..(LOG_CAPACITY as u64 + 10) {
            log.push(Timestamp(i), RebootReason::BrownOut);
        }
        assert_eq!(log.len(), LOG_CAPACITY);
        assert_eq!(log.iter().next().unwrap().0, Timestamp(10));
    }
}
