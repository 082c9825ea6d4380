//! Why a device restarted: the standard reason table, split into expected and
//! unexpected restarts, with a namespace for vendor codes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::{IdError, VendorCode};

/// Whether a restart was intended (by the user, an update, the battery guard) or is a
/// symptom worth counting as a fault signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RebootClass {
    /// Intended restarts; not a fault signal.
    Expected,
    /// Restarts that indicate a hardware or software fault.
    Unexpected,
}

/// The reason for one restart, as the device's reset-cause source reports it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum RebootReason {
    /// The user asked for a restart.
    UserRequest,
    /// Restart to install or activate a firmware update.
    FirmwareUpdate,
    /// The power manager shut down on an empty battery and the device later restarted.
    LowBatteryShutdown,
    /// Restart after a factory reset.
    FactoryReset,
    /// Restart requested by a cloud command.
    RemoteCommand,
    /// A scheduled maintenance restart.
    Scheduled,
    /// A cold start after the device was powered off normally.
    PowerOn,
    /// Supply voltage fell below the brown-out threshold (a weak battery under load).
    BrownOut,
    /// The hardware watchdog fired.
    HardwareWatchdog,
    /// A software watchdog fired (a task stopped responding).
    SoftwareWatchdog,
    /// The kernel panicked.
    KernelPanic,
    /// A firmware assertion failed.
    Assert,
    /// The system ran out of memory.
    OutOfMemory,
    /// Thermal protection shut the device down.
    OverTemperature,
    /// The reset cause could not be determined.
    Unknown,
    /// A vendor-specific reason with its declared class.
    Vendor {
        /// Whether the vendor reason is expected or a fault signal.
        class: RebootClass,
        /// The vendor's own code.
        code: VendorCode,
    },
}

const STANDARD: [(RebootReason, &str); 15] = [
    (RebootReason::UserRequest, "user_request"),
    (RebootReason::FirmwareUpdate, "firmware_update"),
    (RebootReason::LowBatteryShutdown, "low_battery_shutdown"),
    (RebootReason::FactoryReset, "factory_reset"),
    (RebootReason::RemoteCommand, "remote_command"),
    (RebootReason::Scheduled, "scheduled"),
    (RebootReason::PowerOn, "power_on"),
    (RebootReason::BrownOut, "brown_out"),
    (RebootReason::HardwareWatchdog, "hardware_watchdog"),
    (RebootReason::SoftwareWatchdog, "software_watchdog"),
    (RebootReason::KernelPanic, "kernel_panic"),
    (RebootReason::Assert, "assert"),
    (RebootReason::OutOfMemory, "out_of_memory"),
    (RebootReason::OverTemperature, "over_temperature"),
    (RebootReason::Unknown, "unknown"),
];

const VENDOR_EXPECTED: &str = "vendor_expected:";
const VENDOR_UNEXPECTED: &str = "vendor_unexpected:";

/// A reboot-reason code that is neither standard nor a well-formed vendor code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReasonError {
    /// Not in the standard table and not in the vendor namespace.
    #[error("unknown reboot reason `{0}`; vendor reasons are written vendor_expected:CODE or vendor_unexpected:CODE")]
    Unknown(String),
    /// In the vendor namespace, with a malformed code.
    #[error("bad vendor reboot reason: {0}")]
    Vendor(IdError),
}

impl RebootReason {
    /// The standard reasons with their wire codes, in table order.
    pub fn standard() -> impl Iterator<Item = (RebootReason, &'static str)> {
        STANDARD.into_iter()
    }

    /// Expected or unexpected.
    pub fn class(&self) -> RebootClass {
        use RebootReason::*;
        match self {
            UserRequest | FirmwareUpdate | LowBatteryShutdown | FactoryReset | RemoteCommand
            | Scheduled | PowerOn => RebootClass::Expected,
            BrownOut | HardwareWatchdog | SoftwareWatchdog | KernelPanic | Assert | OutOfMemory
            | OverTemperature | Unknown => RebootClass::Unexpected,
            Vendor { class, .. } => *class,
        }
    }

    /// Whether this restart counts as a fault signal.
    pub fn is_unexpected(&self) -> bool {
        self.class() == RebootClass::Unexpected
    }
}

impl fmt::Display for RebootReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RebootReason::Vendor { class, code } => {
                let prefix = match class {
                    RebootClass::Expected => VENDOR_EXPECTED,
                    RebootClass::Unexpected => VENDOR_UNEXPECTED,
                };
                write!(f, "{prefix}{code}")
            }
            standard => {
                let code = STANDARD
                    .iter()
                    .find(|(r, _)| r == standard)
                    .map(|(_, c)| *c)
                    .expect("every non-vendor reason is in the table");
                f.write_str(code)
            }
        }
    }
}

impl FromStr for RebootReason {
    type Err = ReasonError;
    fn from_str(s: &str) -> Result<Self, ReasonError> {
        if let Some((r, _)) = STANDARD.iter().find(|(_, c)| *c == s) {
            return Ok(r.clone());
        }
        let (class, code) = if let Some(code) = s.strip_prefix(VENDOR_EXPECTED) {
            (RebootClass::Expected, code)
        } else if let Some(code) = s.strip_prefix(VENDOR_UNEXPECTED) {
            (RebootClass::Unexpected, code)
        } else {
            return Err(ReasonError::Unknown(s.to_owned()));
        };
        let code = VendorCode::new(code).map_err(ReasonError::Vendor)?;
        Ok(RebootReason::Vendor { class, code })
    }
}

impl TryFrom<String> for RebootReason {
    type Error = ReasonError;
    fn try_from(s: String) -> Result<Self, ReasonError> {
        s.parse()
    }
}

impl From<RebootReason> for String {
    fn from(r: RebootReason) -> String {
        r.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_codes_round_trip_and_are_classified() {
        let mut expected = 0;
        for (reason, code) in RebootReason::standard() {
            assert_eq!(reason.to_string(), code);
            assert_eq!(code.parse::<RebootReason>().unwrap(), reason);
            if reason.class() == RebootClass::Expected {
                expected += 1;
            }
        }
        assert_eq!(expected, 7);
        assert!(RebootReason::BrownOut.is_unexpected());
        assert!(!RebootReason::FirmwareUpdate.is_unexpected());
        assert!(RebootReason::Unknown.is_unexpected());
    }

    #[test]
    fn vendor_codes_carry_their_class() {
        let r: RebootReason = "vendor_unexpected:pmic_fault_7".parse().unwrap();
        assert!(r.is_unexpected());
        assert_eq!(r.to_string(), "vendor_unexpected:pmic_fault_7");
        let r: RebootReason = "vendor_expected:ota_stage2".parse().unwrap();
        assert_eq!(r.class(), RebootClass::Expected);
    }

    #[test]
    fn rejects_unknown_and_malformed_codes() {
        assert_eq!(
            "exploded".parse::<RebootReason>(),
            Err(ReasonError::Unknown("exploded".into()))
        );
        assert!(matches!(
            "vendor_unexpected:".parse::<RebootReason>(),
            Err(ReasonError::Vendor(IdError::Empty { .. }))
        ));
        assert!(matches!(
            "vendor_expected:a b".parse::<RebootReason>(),
            Err(ReasonError::Vendor(IdError::BadChar { .. }))
        ));
    }

    #[test]
    fn works_as_json_map_key() {
        let m: std::collections::BTreeMap<RebootReason, u32> =
            serde_json::from_str(r#"{"brown_out":2,"vendor_expected:x":1}"#).unwrap();
        assert_eq!(m[&RebootReason::BrownOut], 2);
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"brown_out":2,"vendor_expected:x":1}"#
        );
    }
}
