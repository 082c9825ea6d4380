//! Campaigns: a flagged cohort proposes one (which devices, which offer each gets, what
//! it would cost), a person approves or rejects it, and once approved every affected
//! customer is offered a remedy through the same policy, outbox and contact rules as a
//! single ticket; a device that already has an open ticket for the problem gets the
//! campaign attached to it instead of a second ticket. [`proposal`] decides who gets
//! what, purely; [`rollout`] works an approved campaign's members off in batches.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::tickets::UnknownName;

pub mod proposal;
pub mod rollout;

/// What a campaign's tickets carry where a scored ticket names its model: they were
/// opened for the cohort, not by a score.
pub const CAMPAIGN_MODEL: &str = "campaign";

/// Where a campaign stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    /// Waiting for a person's decision.
    Proposed,
    /// Approved: its members are being offered their remedy.
    Approved,
    /// Rejected: nobody is contacted.
    Rejected,
    /// Every member has been offered, attached or held.
    RolledOut,
}

impl CampaignState {
    /// Every state.
    pub const ALL: [CampaignState; 4] = [
        CampaignState::Proposed,
        CampaignState::Approved,
        CampaignState::Rejected,
        CampaignState::RolledOut,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Proposed => "proposed",
            CampaignState::Approved => "approved",
            CampaignState::Rejected => "rejected",
            CampaignState::RolledOut => "rolled_out",
        }
    }
}

impl fmt::Display for CampaignState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CampaignState {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        CampaignState::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownName::new("campaign state", s))
    }
}

/// A person's decision on a proposed campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Go ahead.
    Approve,
    /// Do not contact anyone.
    Reject,
}

/// A decision the campaign's state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a campaign that is {0} cannot be decided again")]
pub struct AlreadyDecided(pub CampaignState);

/// The state a verdict moves a campaign to: only a proposed one can be decided.
pub fn decide(state: CampaignState, verdict: Verdict) -> Result<CampaignState, AlreadyDecided> {
    match (state, verdict) {
        (CampaignState::Proposed, Verdict::Approve) => Ok(CampaignState::Approved),
        (CampaignState::Proposed, Verdict::Reject) => Ok(CampaignState::Rejected),
        (s, _) => Err(AlreadyDecided(s)),
    }
}

/// What happened to one member of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    /// Not worked yet.
    Pending,
    /// A ticket was opened with the campaign's offer.
    Offered,
    /// The device's open ticket for the problem carries the campaign.
    Attached,
    /// The contact rules held the offer back (cool-down, contact cap).
    Held,
    /// The campaign was rejected before the member was worked.
    Dropped,
}

impl MemberStatus {
    /// Every status.
    pub const ALL: [MemberStatus; 5] = [
        MemberStatus::Pending,
        MemberStatus::Offered,
        MemberStatus::Attached,
        MemberStatus::Held,
        MemberStatus::Dropped,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Pending => "pending",
            MemberStatus::Offered => "offered",
            MemberStatus::Attached => "attached",
            MemberStatus::Held => "held",
            MemberStatus::Dropped => "dropped",
        }
    }
}

impl FromStr for MemberStatus {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        MemberStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownName::new("campaign member status", s))
    }
}

/// A member's ticket as the campaign's progress reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberTicket {
    /// Whether the offer reached the device (it was shown, or answered on the page).
    pub reached: bool,
    /// Whether the customer accepted.
    pub accepted: bool,
    /// Whether its outcome confirmed a fault.
    pub fault_confirmed: bool,
    /// What it cost: the repair estimate for a confirmed repair, the settled price for a
    /// trade-in, nothing otherwise.
    pub cost_minor: u64,
}

/// How far a campaign has got.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    /// Members.
    pub members: u64,
    /// Not worked yet.
    pub pending: u64,
    /// Offered on a ticket of their own.
    pub offered: u64,
    /// Attached to a ticket already open.
    pub attached: u64,
    /// Held back by the contact rules.
    pub held: u64,
    /// Offers that reached the customer.
    pub reached: u64,
    /// Offers accepted.
    pub accepted: u64,
    /// Faults confirmed on the campaign's tickets.
    pub faults_confirmed: u64,
    /// Cost so far, minor units.
    pub cost_so_far_minor: u64,
}

/// Sums members' statuses and their tickets.
pub fn progress<'a>(
    members: impl IntoIterator<Item = (MemberStatus, Option<&'a MemberTicket>)>,
) -> Progress {
    let mut p = Progress::default();
    for (status, ticket) in members {
        p.members += 1;
        match status {
            MemberStatus::Pending => p.pending += 1,
            MemberStatus::Offered => p.offered += 1,
            MemberStatus::Attached => p.attached += 1,
            MemberStatus::Held | MemberStatus::Dropped => p.held += 1,
        }
        if let Some(t) = ticket {
            p.reached += u64::from(t.reached);
            p.accepted += u64::from(t.accepted);
            p.faults_confirmed += u64::from(t.fault_confirmed);
            p.cost_so_far_minor += t.cost_minor;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_proposed_campaign_is_decided() {
        use CampaignState::*;
        assert_eq!(decide(Proposed, Verdict::Approve), Ok(Approved));
        assert_eq!(decide(Proposed, Verdict::Reject), Ok(Rejected));
        for s in [Approved, Rejected, RolledOut] {
            assert_eq!(decide(s, Verdict::Approve), Err(AlreadyDecided(s)));
            assert_eq!(s.as_str().parse::<CampaignState>().unwrap(), s);
        }
        assert!("maybe".parse::<CampaignState>().is_err());
    }

    #[test]
    fn progress_counts_members_and_their_tickets() {
        let t = |reached, accepted, fault, cost| MemberTicket {
            reached,
            accepted,
            fault_confirmed: fault,
            cost_minor: cost,
        };
        let (a, b, c) = (
            t(true, true, true, 8900),
            t(true, false, false, 0),
            t(false, false, false, 0),
        );
        let p = progress([
            (MemberStatus::Offered, Some(&a)),
            (MemberStatus::Attached, Some(&b)),
            (MemberStatus::Offered, Some(&c)),
            (MemberStatus::Held, None),
            (MemberStatus::Pending, None),
        ]);
        assert_eq!(
            p,
            Progress {
                members: 5,
                pending: 1,
                offered: 2,
                attached: 1,
                held: 1,
                reached: 2,
                accepted: 1,
                faults_confirmed: 1,
                cost_so_far_minor: 8900,
            }
        );
    }
}
