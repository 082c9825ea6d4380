//! The demo's simulated people: a service team working the queue and customers who
//! answer offers on the progress page. What each does next is decided here from the queue
//! as the API lists it, the simulation's ground truth and the time. Pure; `staff` carries
//! the decisions out over HTTP.

use std::collections::{HashMap, HashSet};

use models::features::HOUR_MS;
use protocol::command::OfferKind;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::policy::Problem;
use crate::tickets::work::Outcome;
use crate::tickets::{TicketState, Tier};

/// A ticket as `GET /api/v1/tickets` lists it: the fields the team reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Listed {
    /// Row id.
    pub id: i64,
    /// The device.
    pub device_id: String,
    /// Its problem.
    pub problem: Problem,
    /// Where it stands.
    pub state: TicketState,
    /// Its tier.
    pub tier: Tier,
    /// The remedy offered.
    pub offer_kind: String,
    /// Who has it.
    pub assignee: Option<String>,
    /// Start of the pause in force.
    pub sla_paused_ms: Option<i64>,
}

impl Listed {
    fn offer(&self) -> Option<OfferKind> {
        OfferKind::from_name(&self.offer_kind)
    }
}

/// How the simulated team works.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamConfig {
    /// The agents' user names.
    pub agents: Vec<String>,
    /// Tickets an agent works at once.
    pub per_agent: usize,
    /// Share of customers who answer on the progress page rather than the device.
    pub web_share: f64,
    /// Share of web customers who accept.
    pub web_accept: f64,
    /// Share of customers who rate a resolved case.
    pub rating_share: f64,
}

impl Default for TeamConfig {
    fn default() -> Self {
        TeamConfig {
            agents: vec!["ana".into(), "ben".into(), "chloe".into()],
            per_agent: 2,
            web_share: 0.4,
            web_accept: 0.6,
            rating_share: 0.6,
        }
    }
}

/// How a failing device fails, as the simulation's ground truth says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// The battery wears out.
    Battery,
    /// Cooling fails.
    Thermal,
    /// Flash wears out.
    Storage,
    /// A board fault.
    Board,
}

impl Fate {
    /// The problem category an inspection files this fate under.
    pub fn problem(self) -> Problem {
        match self {
            Fate::Battery => Problem::Battery,
            Fate::Thermal => Problem::Thermal,
            Fate::Storage => Problem::Storage,
            Fate::Board => Problem::Stability,
        }
    }

    /// The fate of a failure mode's name (`firmware_sim::fleet::FailureMode::as_str`).
    pub fn of_mode(mode: &str) -> Fate {
        match mode {
            "battery_wear" => Fate::Battery,
            "thermal" => Fate::Thermal,
            "storage_wear" => Fate::Storage,
            _ => Fate::Board,
        }
    }
}

/// What the inspection finds: the outcome and category the ground truth implies. A
/// trade-in taken is `traded_in`; a device that fails within the run had the fault; one
/// that does not shows none.
pub fn outcome_for(offer: Option<OfferKind>, fate: Option<Fate>) -> (Outcome, Option<Problem>) {
    if offer == Some(OfferKind::TradeIn) {
        return (Outcome::TradedIn, None);
    }
    match fate {
        None => (Outcome::NoFaultFound, None),
        Some(Fate::Battery) => (Outcome::BatteryReplaced, Some(Problem::Battery)),
        Some(Fate::Thermal) => (Outcome::Repaired, Some(Problem::Thermal)),
        Some(Fate::Storage) => (Outcome::Replaced, Some(Problem::Storage)),
        Some(Fate::Board) => (Outcome::Replaced, Some(Problem::Stability)),
    }
}

/// A number in [0, 1) drawn from `id` and `salt`: the same ticket always gets the same
/// draw, so a run is repeatable.
pub fn draw(id: i64, salt: u64) -> f64 {
    // splitmix64's finaliser.
    let mut z = (id as u64) ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// How long the team works a ticket once started, ms: half an hour to two hours for
/// high, half a day for medium, one to two days for low.
pub fn work_ms(id: i64, tier: Tier) -> u64 {
    let (lo, hi) = match tier {
        Tier::High => (0.5, 2.0),
        Tier::Medium => (4.0, 16.0),
        Tier::Low => (8.0, 48.0),
    };
    ((lo + (hi - lo) * draw(id, 1)) * HOUR_MS as f64) as u64
}

/// What the team remembers between looks at the queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamState {
    /// When work on a ticket started (service clock).
    pub started: HashMap<i64, u64>,
    /// Tickets whose customer has a progress link: its path, and when it was made.
    pub links: HashMap<i64, (String, u64)>,
    /// Tickets whose web customer has answered (or found it answered).
    pub answered: HashSet<i64>,
    /// Tickets whose customer has rated (or chose not to).
    pub rated: HashSet<i64>,
}

/// One thing someone does.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// An agent acts on a ticket through the API (`body` as `POST .../actions` takes it).
    Act {
        /// The ticket.
        ticket: i64,
        /// Who acts.
        agent: String,
        /// The action.
        body: Value,
    },
    /// An agent makes the customer's progress link.
    Link {
        /// The ticket.
        ticket: i64,
        /// Who.
        agent: String,
    },
    /// The customer answers the offer on the progress page.
    Answer {
        /// The ticket.
        ticket: i64,
        /// Accept or decline.
        accept: bool,
    },
}

/// What happens next on the open tickets `queue` (most urgent first) at `now`; `fate`
/// gives a device's ground truth.
pub fn plan(
    queue: &[Listed],
    state: &TeamState,
    config: &TeamConfig,
    fate: impl Fn(&str) -> Option<Fate>,
    now: u64,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut load: HashMap<&str, usize> = config.agents.iter().map(|a| (a.as_str(), 0)).collect();
    for t in queue.iter().filter(|t| t.state == TicketState::InProgress) {
        if let Some(n) = t.assignee.as_deref().and_then(|a| load.get_mut(a)) {
            *n += 1;
        }
    }
    let lead = config.agents[0].clone();
    for t in queue {
        let tip = t.offer() == Some(OfferKind::SelfServiceTip);
        // An accepted trade-in is the recycling desk's to work (it resolves the ticket);
        // the service team only keeps its clock running.
        if t.offer() == Some(OfferKind::TradeIn)
            && matches!(t.state, TicketState::Accepted | TicketState::InProgress)
        {
            if t.sla_paused_ms.is_some() {
                steps.push(act(t.id, &lead, json!({"action": "resume"})));
            }
            continue;
        }
        match t.state {
            // The offer is on its way to the customer: the team waits for the answer.
            TicketState::Opened if t.sla_paused_ms.is_none() && !tip => {
                steps.push(act(
                    t.id,
                    &lead,
                    json!({"action": "pause", "reason": "waiting_for_customer"}),
                ));
            }
            TicketState::Offered => {
                if !state.links.contains_key(&t.id) {
                    steps.push(Step::Link {
                        ticket: t.id,
                        agent: lead.clone(),
                    });
                }
                // The customer has the offer: the team waits for the answer.
                if t.sla_paused_ms.is_none() && !tip {
                    steps.push(act(
                        t.id,
                        &lead,
                        json!({"action": "pause", "reason": "waiting_for_customer"}),
                    ));
                }
                if let Some(&(_, linked)) = state.links.get(&t.id) {
                    let web = draw(t.id, 2) < config.web_share;
                    // Web customers answer half an hour to eight hours after the link.
                    let after = ((0.5 + 7.5 * draw(t.id, 3)) * HOUR_MS as f64) as u64;
                    if web && !state.answered.contains(&t.id) && now >= linked + after {
                        steps.push(Step::Answer {
                            ticket: t.id,
                            accept: draw(t.id, 4) < config.web_accept,
                        });
                    }
                }
            }
            TicketState::Accepted if !tip => {
                if t.sla_paused_ms.is_some() {
                    steps.push(act(t.id, &lead, json!({"action": "resume"})));
                }
                // The least-loaded agent with room starts it (starting claims it too).
                let free = config
                    .agents
                    .iter()
                    .map(String::as_str)
                    .filter(|a| t.assignee.as_deref().is_none_or(|x| x == *a))
                    .filter(|a| load[a] < config.per_agent)
                    .min_by_key(|a| load[a]);
                if let Some(a) = free {
                    *load.get_mut(a).expect("an agent") += 1;
                    steps.push(act(t.id, a, json!({"action": "start"})));
                }
            }
            TicketState::InProgress => {
                let Some(agent) = t.assignee.clone() else {
                    continue;
                };
                let started = state.started.get(&t.id).copied().unwrap_or(now);
                if now >= started + work_ms(t.id, t.tier) {
                    let (outcome, category) = outcome_for(t.offer(), fate(&t.device_id));
                    let mut body = json!({"action": "resolve", "outcome": outcome, "note": "simulated inspection"});
                    if let Some(c) = category {
                        body["category"] = json!(c);
                    }
                    steps.push(act(t.id, &agent, body));
                }
            }
            _ => {}
        }
    }
    steps
}

impl Step {
    /// The ticket it is about.
    pub fn ticket(&self) -> i64 {
        match self {
            Step::Act { ticket, .. } | Step::Link { ticket, .. } | Step::Answer { ticket, .. } => {
                *ticket
            }
        }
    }
}

fn act(ticket: i64, agent: &str, body: Value) -> Step {
    Step::Act {
        ticket,
        agent: agent.to_owned(),
        body,
    }
}

/// The customer's ratings of a resolved case (result, speed, service), or `None` when
/// they do not rate: a confirmed and fixed fault rates the result higher than "nothing
/// found", a breached SLA rates the speed lower.
pub fn rating(id: i64, outcome: Outcome, sla_met: bool, config: &TeamConfig) -> Option<[u8; 3]> {
    if draw(id, 5) >= config.rating_share {
        return None;
    }
    let result = if outcome.confirms_fault() {
        5
    } else {
        3 + (draw(id, 6) < 0.5) as u8
    };
    let speed = if sla_met {
        4 + (draw(id, 7) < 0.6) as u8
    } else {
        2
    };
    let service = 4 + (draw(id, 8) < 0.5) as u8;
    Some([result, speed, service])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(id: i64, state: TicketState, tier: Tier, assignee: Option<&str>) -> Listed {
        Listed {
            id,
            device_id: format!("dev-{id}"),
            problem: Problem::Battery,
            state,
            tier,
            offer_kind: "inspection".into(),
            assignee: assignee.map(str::to_owned),
            sla_paused_ms: None,
        }
    }

    fn actions(steps: &[Step]) -> Vec<(i64, String, String)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Act {
                    ticket,
                    agent,
                    body,
                } => Some((
                    *ticket,
                    agent.clone(),
                    body["action"].as_str().unwrap().to_owned(),
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn offers_get_a_link_and_a_paused_clock_and_accepted_tickets_go_to_free_agents() {
        let config = TeamConfig {
            agents: vec!["a".into(), "b".into()],
            per_agent: 1,
            ..TeamConfig::default()
        };
        let mut busy = listed(4, TicketState::InProgress, Tier::High, Some("a"));
        busy.sla_paused_ms = None;
        let queue = vec![
            busy,
            listed(5, TicketState::Opened, Tier::High, None),
            listed(1, TicketState::Offered, Tier::High, None),
            listed(2, TicketState::Accepted, Tier::High, None),
            listed(3, TicketState::Accepted, Tier::Low, None),
        ];
        let mut state = TeamState::default();
        state.started.insert(4, 0);
        let steps = plan(&queue, &state, &config, |_| None, HOUR_MS / 3);
        assert!(steps.contains(&Step::Link {
            ticket: 1,
            agent: "a".into()
        }));
        let acts = actions(&steps);
        assert!(acts.contains(&(1, "a".into(), "pause".into())));
        assert!(
            acts.contains(&(5, "a".into(), "pause".into())),
            "on its way: waiting too"
        );
        assert!(
            !steps.contains(&Step::Link {
                ticket: 5,
                agent: "a".into()
            }),
            "no offer yet"
        );
        // a is busy with 4: b starts the urgent 2; nobody is left for 3.
        assert!(acts.contains(&(2, "b".into(), "start".into())));
        assert!(!acts.iter().any(|(t, _, _)| *t == 3));
        // 4 is not done after twenty minutes (high tier work takes half an hour to two).
        assert!(!acts.iter().any(|(t, _, _)| *t == 4));
        let later = plan(
            &queue,
            &state,
            &config,
            |_| Some(Fate::Battery),
            4 * HOUR_MS,
        );
        let resolve = later
            .iter()
            .find_map(|s| match s {
                Step::Act {
                    ticket: 4, body, ..
                } => Some(body.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(resolve["outcome"], "battery_replaced");
        assert_eq!(resolve["category"], "battery");
    }

    #[test]
    fn web_customers_answer_after_their_delay_and_only_once() {
        let config = TeamConfig {
            web_share: 1.0,
            ..TeamConfig::default()
        };
        let mut t = listed(9, TicketState::Offered, Tier::Medium, None);
        t.sla_paused_ms = Some(0);
        let mut state = TeamState::default();
        state.links.insert(9, ("/progress/x".into(), 0));
        let answers = |s: &[Step]| {
            s.iter()
                .filter(|s| matches!(s, Step::Answer { .. }))
                .count()
        };
        assert_eq!(
            answers(&plan(&[t.clone()], &state, &config, |_| None, 0)),
            0,
            "not yet"
        );
        assert_eq!(
            answers(&plan(&[t.clone()], &state, &config, |_| None, 9 * HOUR_MS)),
            1
        );
        state.answered.insert(9);
        assert_eq!(
            answers(&plan(&[t.clone()], &state, &config, |_| None, 9 * HOUR_MS)),
            0
        );
        // Paused already: no second pause.
        assert!(actions(&plan(&[t], &state, &config, |_| None, 0)).is_empty());
    }

    #[test]
    fn accepted_trade_ins_are_left_to_the_recycling_desk() {
        let config = TeamConfig::default();
        let mut paused = listed(1, TicketState::Accepted, Tier::Medium, None);
        paused.offer_kind = "trade_in".into();
        paused.sla_paused_ms = Some(5);
        let mut working = listed(2, TicketState::InProgress, Tier::Medium, Some("ana"));
        working.offer_kind = "trade_in".into();
        let steps = plan(
            &[paused, working],
            &TeamState::default(),
            &config,
            |_| None,
            1 << 40,
        );
        let acts = actions(&steps);
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert_eq!(
            (acts[0].0, acts[0].2.as_str()),
            (1, "resume"),
            "the clock runs; no start, no resolve"
        );
    }

    #[test]
    fn ground_truth_decides_the_outcome() {
        assert_eq!(
            outcome_for(Some(OfferKind::Inspection), None),
            (Outcome::NoFaultFound, None)
        );
        assert_eq!(
            outcome_for(Some(OfferKind::Repair), Some(Fate::of_mode("thermal"))),
            (Outcome::Repaired, Some(Problem::Thermal))
        );
        assert_eq!(
            outcome_for(Some(OfferKind::TradeIn), Some(Fate::Board)).0,
            Outcome::TradedIn
        );
        assert_eq!(Fate::of_mode("storage_wear"), Fate::Storage);
        for id in 0..200 {
            let d = draw(id, 3);
            assert!((0.0..1.0).contains(&d));
            assert_eq!(d, draw(id, 3), "repeatable");
            let w = work_ms(id, Tier::High);
            assert!((HOUR_MS / 2..=2 * HOUR_MS).contains(&w));
        }
        let always = TeamConfig {
            rating_share: 1.0,
            ..TeamConfig::default()
        };
        let r = rating(1, Outcome::Repaired, false, &always).unwrap();
        assert_eq!((r[0], r[1]), (5, 2));
        let never = TeamConfig {
            rating_share: 0.0,
            ..TeamConfig::default()
        };
        assert_eq!(rating(1, Outcome::Repaired, true, &never), None);
    }
}
