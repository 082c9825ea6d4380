//! Who a campaign reaches and with what, decided purely from each member's terms,
//! open tickets and contact history, by the policy's own rules: the contact hold
//! ([`policy::contact_hold`]) and the remedy ([`policy::remedy`]: a repair, or a trade-in
//! for a device past its useful life or not worth repairing).

use std::collections::BTreeMap;

use models::history::FeatureVector;
use protocol::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ingest::plan::terms_of;
use crate::policy::{self, ContactHistory, Hold, PolicyConfig, Problem, Remedy};
use crate::store::registry::Registration;

/// What the store knows about one member when its campaign is planned or rolled out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberFacts {
    /// The device.
    pub device_id: String,
    /// Its owner and terms.
    pub registration: Registration,
    /// Its open ticket for the campaign's problem, if it has one.
    pub open_ticket: Option<i64>,
    /// Its recent contacts about the problem.
    pub contacts: ContactHistory,
}

/// What the campaign does for one member.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Attach the campaign to this open ticket.
    Attach(i64),
    /// Open a ticket with this remedy.
    Offer(Remedy),
    /// Leave the customer alone, for this reason.
    Hold(Hold),
}

/// One member's action, with what it would cost if taken up and the reasoning.
pub fn plan_member(
    problem: Problem,
    m: &MemberFacts,
    cfg: &PolicyConfig,
    now: Timestamp,
    reasoning: &mut Vec<String>,
) -> Action {
    if let Some(id) = m.open_ticket {
        return Action::Attach(id);
    }
    if let Some(h) = policy::contact_hold(&m.contacts, false, now.0, cfg) {
        return Action::Hold(h);
    }
    let terms = terms_of(&m.registration, now);
    // A campaign knows the cohort, not the device's telemetry: the remedy is the policy's
    // for its terms, the trade-in quoted on an unknown condition.
    Action::Offer(policy::remedy(
        problem,
        &terms,
        &FeatureVector::missing(),
        cfg,
        reasoning,
    ))
}

/// A proposed campaign's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Proposal {
    /// Members.
    pub devices: u64,
    /// Tickets that would open, by offer kind.
    pub offers: BTreeMap<String, u64>,
    /// Members whose open ticket would carry the campaign.
    pub attached: u64,
    /// Members the contact rules hold back, by reason.
    pub held: BTreeMap<String, u64>,
    /// What it would cost if every offer were taken up, per currency, minor units:
    /// repairs (and attached tickets) at the policy's repair estimate, trade-ins at their
    /// quote.
    pub expected_cost_minor: BTreeMap<String, u64>,
}

/// The figures of a campaign over `members`.
pub fn propose(
    problem: Problem,
    members: &[MemberFacts],
    cfg: &PolicyConfig,
    now: Timestamp,
) -> Proposal {
    let mut p = Proposal {
        devices: members.len() as u64,
        ..Proposal::default()
    };
    for m in members {
        let currency = m
            .registration
            .currency
            .clone()
            .unwrap_or_else(|| "EUR".to_owned());
        let cost = match plan_member(problem, m, cfg, now, &mut Vec::new()) {
            Action::Attach(_) => {
                p.attached += 1;
                cfg.repair_cost_minor.of(problem)
            }
            Action::Offer(r) => {
                *p.offers.entry(r.offer.as_str().to_owned()).or_default() += 1;
                r.cost_minor
            }
            Action::Hold(h) => {
                *p.held.entry(h.as_str().to_owned()).or_default() += 1;
                0
            }
        };
        *p.expected_cost_minor.entry(currency).or_default() += cost;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;
    const NOW: u64 = 3_000 * DAY;

    fn member(id: &str, age_days: u64, warranty: bool) -> MemberFacts {
        MemberFacts {
            device_id: id.into(),
            registration: Registration {
                customer_id: Some(format!("c-{id}")),
                purchased_ms: Some(NOW - age_days * DAY),
                warranty_until_ms: Some(if warranty { NOW + DAY } else { NOW - DAY }),
                price_minor: Some(60_000),
                currency: Some("EUR".into()),
            },
            ..MemberFacts::default()
        }
    }

    #[test]
    fn each_member_gets_the_policys_remedy_an_attachment_or_a_hold() {
        let cfg = PolicyConfig::default();
        let mut open = member("open", 200, true);
        open.open_ticket = Some(42);
        let mut capped = member("capped", 200, true);
        capped.contacts.contacts_in_window = cfg.contact_cap;
        let old = member("old", cfg.useful_life_months as u64 * 31, false);
        let members = [member("young", 200, true), open, capped, old];
        let p = propose(Problem::Battery, &members, &cfg, Timestamp(NOW));
        assert_eq!(p.devices, 4);
        assert_eq!(p.attached, 1);
        assert_eq!(p.held.get("contact_cap"), Some(&1));
        assert_eq!(p.offers.get("battery_replacement"), Some(&1), "{p:?}");
        assert_eq!(
            p.offers.get("trade_in"),
            Some(&1),
            "past its useful life: {p:?}"
        );
        let repair = cfg.repair_cost_minor.of(Problem::Battery);
        let quote = match plan_member(
            Problem::Battery,
            &members[3],
            &cfg,
            Timestamp(NOW),
            &mut vec![],
        ) {
            Action::Offer(r) => r.quote_minor.unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(p.expected_cost_minor["EUR"], 2 * repair + quote);
        assert_eq!(
            plan_member(
                Problem::Battery,
                &members[1],
                &cfg,
                Timestamp(NOW),
                &mut vec![]
            ),
            Action::Attach(42)
        );
    }
}
