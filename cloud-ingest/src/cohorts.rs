//! Fleet intelligence: where the fleet as a whole is failing. Devices are grouped into
//! cohorts (model, hardware batch, firmware version, purchase month); each cohort's
//! failures per problem are compared with what the rest of the fleet at the same ages
//! would have had ([`table`]), tested exactly ([`poisson`]), controlled for the number
//! of cells tested at once ([`fdr`]) and shrunk towards the common ratio where the
//! evidence is thin ([`shrinkage`]); firmware versions are also compared with their
//! predecessors ([`firmware`]). [`watch`] puts it together and decides what to flag,
//! purely; [`watcher`] runs it over the store on a schedule and on demand.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::policy::Problem;
use crate::tickets::UnknownName;

pub mod fdr;
pub mod firmware;
pub mod poisson;
pub mod shrinkage;
pub mod table;
pub mod watch;
pub mod watcher;

/// What devices are grouped by.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// The model (SKU).
    Model,
    /// The hardware production batch.
    Batch,
    /// The firmware version running (exposure counted on the days each ran).
    Firmware,
    /// The month the device was bought (`2026-03`).
    PurchaseMonth,
}

impl Dimension {
    /// Every dimension.
    pub const ALL: [Dimension; 4] = [
        Dimension::Model,
        Dimension::Batch,
        Dimension::Firmware,
        Dimension::PurchaseMonth,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Model => "model",
            Dimension::Batch => "batch",
            Dimension::Firmware => "firmware",
            Dimension::PurchaseMonth => "purchase_month",
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Dimension {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Dimension::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| UnknownName::new("cohort dimension", s))
    }
}

/// What a cell counts.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Confirmed failures (special cases left out).
    Failures,
    /// Tickets opened: the risk the model saw, before anyone confirmed anything.
    Tickets,
}

/// An outcome that is kept out of failure rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecialCase {
    /// Inspected; nothing was wrong.
    NoFaultFound,
    /// Damaged by the user.
    UserDamage,
    /// Abused (misuse beyond the terms).
    Abuse,
}

/// A device as the cohort watch sees it: what it is, when it was bought, and the span
/// it was in service and watched (first to last message).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceFacts {
    /// The device.
    pub device_id: String,
    /// Its model.
    pub model: Option<String>,
    /// Its batch.
    pub batch: Option<String>,
    /// The firmware it runs now.
    pub firmware: Option<String>,
    /// When it was bought, ms.
    pub purchased_ms: Option<u64>,
    /// First seen, ms.
    pub from_ms: u64,
    /// Last seen, ms.
    pub to_ms: u64,
}

/// A device's day on one firmware version, summed from its heartbeats.
#[derive(Debug, Clone, PartialEq)]
pub struct FirmwareDay {
    /// The device.
    pub device_id: String,
    /// The day's start (UTC, device time), ms.
    pub day_ms: u64,
    /// The version.
    pub firmware: String,
    /// Seconds it was running.
    pub operational_s: u64,
    /// Seconds of that without a crash or unexpected restart.
    pub crash_free_s: u64,
    /// Unexpected restarts.
    pub unexpected_restarts: u64,
    /// Crashes.
    pub crashes: u64,
}

/// Something that happened to a device about a problem, at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// The device.
    pub device_id: String,
    /// The problem.
    pub problem: Problem,
    /// When, ms (a ticket's opening; a confirmed failure's ticket opening).
    pub at_ms: u64,
}

/// Everything the watch reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetFacts {
    /// Every device.
    pub devices: Vec<DeviceFacts>,
    /// Firmware days.
    pub firmware_days: Vec<FirmwareDay>,
    /// Confirmed failures.
    pub failures: Vec<Incident>,
    /// Tickets opened.
    pub tickets: Vec<Incident>,
    /// Outcomes kept out of the rates.
    pub special: Vec<(Incident, SpecialCase)>,
    /// In simulation: every failure that really happened.
    pub truth: Option<Vec<Incident>>,
}

impl FleetFacts {
    /// The facts as they stood at `at_ms`: devices seen by then, their spans cut there,
    /// and only the days and incidents before it (a report's period end).
    pub fn as_of(&self, at_ms: u64) -> FleetFacts {
        let before = |i: &&Incident| i.at_ms < at_ms;
        FleetFacts {
            devices: self
                .devices
                .iter()
                .filter(|d| d.from_ms < at_ms)
                .map(|d| DeviceFacts {
                    to_ms: d.to_ms.min(at_ms),
                    ..d.clone()
                })
                .collect(),
            firmware_days: self
                .firmware_days
                .iter()
                .filter(|d| d.day_ms < at_ms)
                .cloned()
                .collect(),
            failures: self.failures.iter().filter(before).cloned().collect(),
            tickets: self.tickets.iter().filter(before).cloned().collect(),
            special: self
                .special
                .iter()
                .filter(|(i, _)| i.at_ms < at_ms)
                .cloned()
                .collect(),
            truth: self
                .truth
                .as_ref()
                .map(|t| t.iter().filter(before).cloned().collect()),
        }
    }
}
