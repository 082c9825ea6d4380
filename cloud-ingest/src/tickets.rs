//! Service tickets: the states a ticket moves through, the legal moves between them,
//! and the evidence frozen into a ticket when it opens.

pub mod labels;
pub mod progress;
pub mod sla;
pub mod work;

use std::fmt;
use std::str::FromStr;

use protocol::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::policy::Problem;

/// Where a ticket stands. The customer sees these stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// Opened by the policy; the offer is on its way to the device.
    Opened,
    /// The device showed the offer to the customer.
    Offered,
    /// The customer accepted.
    Accepted,
    /// A service team is working on the device.
    InProgress,
    /// Done: the fault was confirmed and remedied (or the tip applied).
    Resolved,
    /// The customer declined the offer.
    Declined,
    /// Inspected, and nothing was wrong.
    NoFaultFound,
    /// Withdrawn: superseded, expired or cancelled by an operator.
    Cancelled,
}

impl TicketState {
    /// Every state, in lifecycle order.
    pub const ALL: [TicketState; 8] = [
        TicketState::Opened,
        TicketState::Offered,
        TicketState::Accepted,
        TicketState::InProgress,
        TicketState::Resolved,
        TicketState::Declined,
        TicketState::NoFaultFound,
        TicketState::Cancelled,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::Opened => "opened",
            TicketState::Offered => "offered",
            TicketState::Accepted => "accepted",
            TicketState::InProgress => "in_progress",
            TicketState::Resolved => "resolved",
            TicketState::Declined => "declined",
            TicketState::NoFaultFound => "no_fault_found",
            TicketState::Cancelled => "cancelled",
        }
    }

    /// Whether the ticket still blocks a second one for the same device and problem.
    /// The store's unique index lists the same states.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            TicketState::Opened
                | TicketState::Offered
                | TicketState::Accepted
                | TicketState::InProgress
        )
    }

    /// Whether the customer has not answered yet (the offer is on its way or shown):
    /// only such a ticket may be superseded by policy.
    pub fn is_unanswered(self) -> bool {
        matches!(self, TicketState::Opened | TicketState::Offered)
    }

    /// Whether `self → to` is a legal move.
    pub fn can_move_to(self, to: TicketState) -> bool {
        use TicketState::*;
        matches!(
            (self, to),
            (Opened, Offered)
                | (Offered, Accepted)
                | (Offered, Declined)
                | (Accepted, InProgress)
                | (InProgress, Resolved)
                | (InProgress, NoFaultFound)
                // A self-service tip needs no service team: accepted is as far as it goes.
                | (Accepted, Resolved)
                | (Opened | Offered | Accepted | InProgress, Cancelled)
        )
    }

    /// Checks a move, naming both ends when it is illegal.
    pub fn move_to(self, to: TicketState) -> Result<TicketState, TransitionError> {
        if self.can_move_to(to) {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to })
        }
    }
}

impl fmt::Display for TicketState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TicketState {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        TicketState::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownName::new("ticket state", s))
    }
}

/// A move the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a ticket cannot move from {from} to {to}")]
pub struct TransitionError {
    /// Where the ticket is.
    pub from: TicketState,
    /// Where it was asked to go.
    pub to: TicketState,
}

/// A stored name that matches no variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownName {
    kind: &'static str,
    value: String,
}

impl UnknownName {
    pub(crate) fn new(kind: &'static str, value: &str) -> Self {
        UnknownName {
            kind,
            value: value.to_owned(),
        }
    }
}

/// How fast a ticket must be answered.
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
pub enum Tier {
    /// Handled by a self-service tip.
    Low,
    /// Answered within a day by default.
    Medium,
    /// Safety or high value: answered within hours.
    High,
}

impl Tier {
    /// Every tier, lowest first.
    pub const ALL: [Tier; 3] = [Tier::Low, Tier::Medium, Tier::High];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Low => "low",
            Tier::Medium => "medium",
            Tier::High => "high",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownName::new("tier", s))
    }
}

/// One feature behind a score, as frozen into a ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceFeature {
    /// Feature name (see docs/features.md).
    pub feature: String,
    /// Its unit.
    pub unit: String,
    /// Its value for the device.
    pub value: f64,
    /// How much it moved the score (positive raises risk).
    pub contribution: f64,
}

/// Why a ticket was opened, frozen when it opens: later telemetry or a new model does
/// not change it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Probability of failing within the model's horizon.
    pub risk: f64,
    /// The model's alarm threshold.
    pub threshold: f64,
    /// The model version that scored.
    pub model_version: String,
    /// Device time of the newest telemetry scored.
    pub scored_at_ms: u64,
    /// The features that raised the score most.
    pub top_features: Vec<EvidenceFeature>,
    /// Safety signals seen, if any.
    pub safety: Vec<String>,
    /// The newest messages behind the score, as received (JSON), oldest first.
    pub telemetry: Vec<serde_json::Value>,
    /// What the policy weighed: category, age, warranty, cost against value.
    pub reasoning: Vec<String>,
}

/// A ticket reference derived from what opens it, so every replica names the same
/// ticket the same way: `T-` and 16 hex digits.
pub fn ticket_ref(device: &str, problem: Problem, at: Timestamp) -> String {
    let mut h = Sha256::new();
    h.update(device.as_bytes());
    h.update([0]);
    h.update(problem.as_str().as_bytes());
    h.update(at.0.to_be_bytes());
    format!("T-{}", hex::encode(&h.finalize()[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use TicketState::*;

    #[test]
    fn the_happy_path_is_legal_and_nothing_leaves_a_closed_state() {
        let mut s = Opened;
        for next in [Offered, Accepted, InProgress, Resolved] {
            s = s.move_to(next).unwrap();
        }
        for closed in [Resolved, Declined, NoFaultFound, Cancelled] {
            assert!(!closed.is_open());
            for to in TicketState::ALL {
                assert!(closed.move_to(to).is_err(), "{closed} -> {to}");
            }
        }
    }

    #[test]
    fn illegal_moves_are_refused_with_both_ends_named() {
        let e = Opened.move_to(Resolved).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a ticket cannot move from opened to resolved"
        );
        assert!(Opened.move_to(Accepted).is_err(), "must be offered first");
        assert!(
            Offered.move_to(InProgress).is_err(),
            "must be accepted first"
        );
        assert!(Accepted.move_to(Declined).is_err());
        assert!(Offered.move_to(Offered).is_err());
        for open in [Opened, Offered, Accepted, InProgress] {
            assert!(open.is_open());
            assert!(open.can_move_to(Cancelled));
        }
        assert!(InProgress.can_move_to(NoFaultFound));
    }

    #[test]
    fn names_round_trip() {
        for s in TicketState::ALL {
            assert_eq!(s.as_str().parse::<TicketState>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for t in Tier::ALL {
            assert_eq!(t.as_str().parse::<Tier>().unwrap(), t);
        }
        assert!("closed".parse::<TicketState>().is_err());
    }
}
