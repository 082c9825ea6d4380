//! A trade-in's lifecycle: its states, the legal moves between them, and what each desk
//! action (ship, receive, grade, erase, settle, route, close, cancel) or customer answer
//! changes, decided from the trade-in as it stands. Pure: the store applies a
//! [`Change`] only if the trade-in is still at the version it was decided on.

use std::fmt;
use std::str::FromStr;

use protocol::command::Money;
use serde::{Deserialize, Serialize};

use super::erasure::{Erasure, Method};
use super::grading::{self, BatteryGap, BenchGrade, Cosmetic, Functional, Label};
use super::routing::{self, Route};
use super::settlement::{self, Settlement};
use super::Rules;
use crate::tickets::UnknownName;

/// Where a trade-in stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TradeInState {
    /// Offered to the customer at the quote.
    Quoted,
    /// The customer accepted the quote.
    Accepted,
    /// A shipping label is out; the device is on its way.
    AwaitingDevice,
    /// The device is at the desk.
    Received,
    /// Graded on the bench.
    Graded,
    /// Its data is erased.
    Erased,
    /// The final price is set (the customer agrees, or must, when it is below the quote).
    Settled,
    /// On its way to refurbishment and resale.
    Refurbish,
    /// On its way to recycling.
    Recycle,
    /// Done.
    Closed,
    /// The customer said no to the quote.
    Declined,
    /// Withdrawn before the device arrived.
    Cancelled,
    /// The customer refused the settled price; the device goes back.
    DeviceReturned,
}

impl TradeInState {
    /// Every state, in lifecycle order.
    pub const ALL: [TradeInState; 13] = [
        TradeInState::Quoted,
        TradeInState::Accepted,
        TradeInState::AwaitingDevice,
        TradeInState::Received,
        TradeInState::Graded,
        TradeInState::Erased,
        TradeInState::Settled,
        TradeInState::Refurbish,
        TradeInState::Recycle,
        TradeInState::Closed,
        TradeInState::Declined,
        TradeInState::Cancelled,
        TradeInState::DeviceReturned,
    ];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            TradeInState::Quoted => "quoted",
            TradeInState::Accepted => "accepted",
            TradeInState::AwaitingDevice => "awaiting_device",
            TradeInState::Received => "received",
            TradeInState::Graded => "graded",
            TradeInState::Erased => "erased",
            TradeInState::Settled => "settled",
            TradeInState::Refurbish => "refurbish",
            TradeInState::Recycle => "recycle",
            TradeInState::Closed => "closed",
            TradeInState::Declined => "declined",
            TradeInState::Cancelled => "cancelled",
            TradeInState::DeviceReturned => "device_returned",
        }
    }

    /// The name for people.
    pub fn title(self) -> &'static str {
        match self {
            TradeInState::Quoted => "Quoted",
            TradeInState::Accepted => "Accepted",
            TradeInState::AwaitingDevice => "Awaiting device",
            TradeInState::Received => "Received",
            TradeInState::Graded => "Graded",
            TradeInState::Erased => "Data erased",
            TradeInState::Settled => "Settled",
            TradeInState::Refurbish => "Refurbish",
            TradeInState::Recycle => "Recycle",
            TradeInState::Closed => "Closed",
            TradeInState::Declined => "Declined",
            TradeInState::Cancelled => "Cancelled",
            TradeInState::DeviceReturned => "Device returned",
        }
    }

    /// Whether nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TradeInState::Closed
                | TradeInState::Declined
                | TradeInState::Cancelled
                | TradeInState::DeviceReturned
        )
    }

    /// Whether the device is (or was) at the desk.
    pub fn device_at_desk(self) -> bool {
        matches!(
            self,
            TradeInState::Received
                | TradeInState::Graded
                | TradeInState::Erased
                | TradeInState::Settled
                | TradeInState::Refurbish
                | TradeInState::Recycle
                | TradeInState::Closed
                | TradeInState::DeviceReturned
        )
    }

    /// Whether `self → to` is a legal move.
    pub fn can_move_to(self, to: TradeInState) -> bool {
        use TradeInState::*;
        matches!(
            (self, to),
            (Quoted, Accepted | Declined)
                | (Accepted, AwaitingDevice)
                | (AwaitingDevice, Received)
                | (Received, Graded)
                | (Graded, Erased)
                | (Erased, Settled)
                | (Settled, Refurbish | Recycle | DeviceReturned)
                | (Refurbish | Recycle, Closed)
                | (Quoted | Accepted | AwaitingDevice, Cancelled)
        )
    }
}

impl fmt::Display for TradeInState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TradeInState {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        TradeInState::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownName::new("trade-in state", s))
    }
}

/// Whether the customer agreed to a settled price below the quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consent {
    /// The price is the quote or more: nothing to agree to.
    NotNeeded,
    /// Waiting for the customer's answer on the progress page.
    Pending,
    /// The customer accepted the price.
    Accepted,
}

/// What the bench found, with what the rules derived from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Graded {
    /// The grades and readings.
    pub grade: BenchGrade,
    /// The resale labels, each with the rule that gave it.
    pub labels: Vec<Label>,
    /// Bench battery against the telemetry the quote was made on.
    pub battery_gap: Option<BatteryGap>,
    /// The route the rules give, and why.
    pub route: Route,
    /// Why.
    pub route_rule: String,
    /// Who graded it.
    pub by: String,
    /// When, ms.
    pub at_ms: u64,
}

/// Where it went, and who sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Routing {
    /// The route taken.
    pub route: Route,
    /// The route the rules gave (a passing device may still be recycled).
    pub ruled: Route,
    /// Its SKU's weight, grams.
    pub weight_g: u32,
    /// Who.
    pub by: String,
    /// When, ms.
    pub at_ms: u64,
}

/// Everything recorded about a trade-in after its quote.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Record {
    /// The shipping reference of the label sent to the customer.
    pub shipping_ref: Option<String>,
    /// When the device arrived, ms.
    pub received_ms: Option<u64>,
    /// The bench grade.
    pub graded: Option<Graded>,
    /// The data erasure.
    pub erasure: Option<Erasure>,
    /// The settlement.
    pub settlement: Option<Settlement>,
    /// The customer's consent to the settled price.
    pub consent: Option<Consent>,
    /// The routing.
    pub routing: Option<Routing>,
}

/// Something the recycling desk does to a trade-in. On the wire an object tagged by
/// `action`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// A shipping label went out to the customer.
    Ship {
        /// The carrier's reference (3–64 characters).
        shipping_ref: String,
    },
    /// The device arrived.
    Receive,
    /// The bench grade.
    Grade {
        /// 0 (fully functional) to 9.
        #[schema(value_type = u8, minimum = 0, maximum = 9)]
        functional: Functional,
        /// A to E.
        cosmetic: Cosmetic,
        /// Battery health on the bench, %; leave out for a device without a battery.
        #[serde(default)]
        battery_pct: Option<i64>,
        /// Whether the activation lock is off.
        activation_lock_off: bool,
    },
    /// The data erasure.
    Erase {
        /// `clear` or `purge` (NIST SP 800-88).
        method: Method,
        /// The tool and its version.
        tool: String,
        /// The tool's certificate id.
        certificate_id: String,
    },
    /// Sets the final price: the rules' price, or one given with a reason.
    Settle {
        /// A price by hand, in the quote's currency.
        #[serde(default)]
        #[schema(value_type = Option<Object>)]
        price: Option<Money>,
        /// Why the price by hand differs.
        #[serde(default)]
        reason: Option<String>,
    },
    /// Sends the device on: the rules' route, or recycling for a device that passed.
    Route {
        /// Leave out for the rules' route.
        #[serde(default)]
        route: Option<Route>,
    },
    /// The device left the desk.
    Close,
    /// Withdraws a trade-in whose device has not arrived.
    Cancel {
        /// Why (1–500 characters).
        reason: String,
    },
}

impl Action {
    /// The name the log and the audit use.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Ship { .. } => "ship",
            Action::Receive => "receive",
            Action::Grade { .. } => "grade",
            Action::Erase { .. } => "erase",
            Action::Settle { .. } => "settle",
            Action::Route { .. } => "route",
            Action::Close => "close",
            Action::Cancel { .. } => "cancel",
        }
    }
}

/// The customer's answer to a settled price, on the progress page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// Agrees to the price.
    AcceptPrice,
    /// Wants the device back.
    ReturnDevice,
}

/// A trade-in as a decision sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    /// Its state.
    pub state: TradeInState,
    /// Its quote.
    pub quote: Money,
    /// The battery health telemetry showed when quoted, %.
    pub quoted_soh: Option<f64>,
    /// Whether the device has a battery.
    pub has_battery: bool,
    /// What is recorded.
    pub record: Record,
}

/// What the decision needs besides the trade-in.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The grading, settlement and routing rules.
    pub rules: &'a Rules,
    /// Who acts.
    pub by: &'a str,
    /// Now, ms.
    pub now_ms: u64,
    /// The device's SKU weight from the registry, grams.
    pub weight_g: Option<u32>,
}

/// What an action changes; the store writes it with one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The state afterwards.
    pub to: TradeInState,
    /// The record afterwards.
    pub record: Record,
    /// The event's note.
    pub note: Option<String>,
}

/// Why an action is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a legal move from where it stands (409).
    #[error("a trade-in cannot {action} when {state}: {hint}")]
    Illegal {
        /// The action.
        action: &'static str,
        /// Where it stands.
        state: TradeInState,
        /// What would be legal.
        hint: String,
    },
    /// The action's content is wrong (422).
    #[error("{0}")]
    Invalid(String),
}

fn illegal(action: &'static str, state: TradeInState, hint: impl Into<String>) -> Refusal {
    Refusal::Illegal {
        action,
        state,
        hint: hint.into(),
    }
}

/// What the desk may do next from `state`, in words, for a refusal's hint.
fn next_step(state: TradeInState) -> &'static str {
    use TradeInState::*;
    match state {
        Quoted => "the customer has not accepted the quote yet",
        Accepted => "send a shipping label first (ship)",
        AwaitingDevice => "receive the device first",
        Received => "grade it first",
        Graded => "erase its data first",
        Erased => "settle the price first",
        Settled => "route it next",
        Refurbish | Recycle => "close it next",
        Closed | Declined | Cancelled | DeviceReturned => "it is finished",
    }
}

fn step(s: &Standing, action: &'static str, to: TradeInState) -> Result<(), Refusal> {
    if s.state.can_move_to(to) {
        Ok(())
    } else {
        Err(illegal(action, s.state, next_step(s.state)))
    }
}

/// Decides what a desk action does to the trade-in as it stands.
pub fn decide(s: &Standing, action: &Action, cx: &Context<'_>) -> Result<Change, Refusal> {
    let mut record = s.record.clone();
    let name = action.name();
    let (to, note) = match action {
        Action::Ship { shipping_ref } => {
            step(s, name, TradeInState::AwaitingDevice)?;
            let r = shipping_ref.trim();
            if !(3..=64).contains(&r.chars().count()) || r.chars().any(char::is_control) {
                return Err(Refusal::Invalid(format!(
                    "shipping_ref {r:?} must be 3 to 64 characters"
                )));
            }
            record.shipping_ref = Some(r.to_owned());
            (TradeInState::AwaitingDevice, Some(format!("shipping {r}")))
        }
        Action::Receive => {
            step(s, name, TradeInState::Received)?;
            record.received_ms = Some(cx.now_ms);
            (TradeInState::Received, None)
        }
        Action::Grade {
            functional,
            cosmetic,
            battery_pct,
            activation_lock_off,
        } => {
            step(s, name, TradeInState::Graded)?;
            let grade = BenchGrade::new(
                *functional,
                *cosmetic,
                *battery_pct,
                *activation_lock_off,
                s.has_battery,
            )
            .map_err(|e| Refusal::Invalid(e.to_string()))?;
            let labels = grading::labels(&grade, &cx.rules.labels);
            let (route, route_rule) = routing::route_for(&grade, &cx.rules.refurbish);
            let battery_gap =
                grading::battery_gap(grade.battery_pct, s.quoted_soh, cx.rules.battery_gap_pct);
            let note = format!(
                "functional {functional}, cosmetic {cosmetic}{}{}",
                grade
                    .battery_pct
                    .map(|b| format!(", battery {b} %"))
                    .unwrap_or_default(),
                if *activation_lock_off {
                    ""
                } else {
                    ", activation lock ON"
                }
            );
            record.graded = Some(Graded {
                grade,
                labels,
                battery_gap,
                route,
                route_rule,
                by: cx.by.to_owned(),
                at_ms: cx.now_ms,
            });
            (TradeInState::Graded, Some(note))
        }
        Action::Erase {
            method,
            tool,
            certificate_id,
        } => {
            step(s, name, TradeInState::Erased)?;
            let e = Erasure::new(*method, tool, cx.by, cx.now_ms, certificate_id)
                .map_err(|e| Refusal::Invalid(e.to_string()))?;
            let note = format!(
                "{} with {}, certificate {}",
                e.method, e.tool, e.certificate_id
            );
            record.erasure = Some(e);
            (TradeInState::Erased, Some(note))
        }
        Action::Settle { price, reason } => {
            step(s, name, TradeInState::Settled)?;
            let graded = s
                .record
                .graded
                .as_ref()
                .ok_or_else(|| illegal(name, s.state, "it has no grade"))?;
            let ruled =
                settlement::settle(&s.quote, &graded.grade, s.quoted_soh, &cx.rules.settlement);
            let settled = match price {
                Some(p) => settlement::by_hand(ruled, p, reason.as_deref())
                    .map_err(|e| Refusal::Invalid(e.to_string()))?,
                None => ruled,
            };
            let note = format!(
                "{}{}",
                settlement::format_money(settled.final_minor, &settled.currency),
                settled
                    .reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
            record.consent = Some(if settled.needs_consent() {
                Consent::Pending
            } else {
                Consent::NotNeeded
            });
            record.settlement = Some(settled);
            (TradeInState::Settled, Some(note))
        }
        Action::Route { route } => {
            let graded = s.record.graded.as_ref();
            let ruled = graded.map_or(Route::Recycle, |g| g.route);
            let chosen = route.unwrap_or(ruled);
            let to = match chosen {
                Route::Refurbish => TradeInState::Refurbish,
                Route::Recycle => TradeInState::Recycle,
            };
            step(s, name, to)?;
            if s.record.erasure.is_none() {
                return Err(illegal(name, s.state, "its data erasure is not recorded"));
            }
            if s.record.consent == Some(Consent::Pending) {
                return Err(illegal(
                    name,
                    s.state,
                    "the customer has not accepted the settled price yet",
                ));
            }
            if !routing::may_choose(ruled, chosen) {
                return Err(Refusal::Invalid(format!(
                    "the rules route this device to {ruled} ({}); it cannot be refurbished",
                    graded.map_or("", |g| g.route_rule.as_str())
                )));
            }
            let weight_g = cx.weight_g.ok_or_else(|| {
                Refusal::Invalid(
                    "the device's SKU has no weight in the registry: set it first (POST /api/v1/skus)"
                        .into(),
                )
            })?;
            record.routing = Some(Routing {
                route: chosen,
                ruled,
                weight_g,
                by: cx.by.to_owned(),
                at_ms: cx.now_ms,
            });
            (
                to,
                (chosen != ruled).then(|| format!("{chosen} instead of {ruled}")),
            )
        }
        Action::Close => {
            step(s, name, TradeInState::Closed)?;
            (TradeInState::Closed, None)
        }
        Action::Cancel { reason } => {
            if s.state == TradeInState::Quoted {
                // The quote is the ticket's offer, withdrawn with the ticket.
                return Err(illegal(
                    name,
                    s.state,
                    "the quote is the ticket's offer: cancel the ticket at the service desk",
                ));
            }
            step(s, name, TradeInState::Cancelled)?;
            let r = reason.trim();
            if r.is_empty() || r.chars().count() > 500 {
                return Err(Refusal::Invalid(
                    "a cancellation needs a reason of 1 to 500 characters".into(),
                ));
            }
            (TradeInState::Cancelled, Some(r.to_owned()))
        }
    };
    Ok(Change { to, record, note })
}

/// Decides the customer's answer to a settled price.
pub fn answer(s: &Standing, a: Answer) -> Result<Change, Refusal> {
    let name = match a {
        Answer::AcceptPrice => "accept the price",
        Answer::ReturnDevice => "return the device",
    };
    if s.state != TradeInState::Settled {
        return Err(illegal(
            name,
            s.state,
            "only a settled price can be answered",
        ));
    }
    let mut record = s.record.clone();
    match a {
        Answer::AcceptPrice => {
            if record.consent != Some(Consent::Pending) {
                return Err(illegal(name, s.state, "the price needs no answer"));
            }
            record.consent = Some(Consent::Accepted);
            Ok(Change {
                to: TradeInState::Settled,
                record,
                note: Some("the customer accepted the settled price".into()),
            })
        }
        Answer::ReturnDevice => {
            if record.consent != Some(Consent::Pending) {
                return Err(illegal(name, s.state, "the customer already accepted"));
            }
            Ok(Change {
                to: TradeInState::DeviceReturned,
                record,
                note: Some("the customer asked for the device back".into()),
            })
        }
    }
}

/// The trade-in state a ticket move implies while the device has not reached the desk:
/// the customer's answer to the quote, or the ticket's withdrawal.
pub fn follow_ticket(
    current: TradeInState,
    ticket_to: crate::tickets::TicketState,
) -> Option<TradeInState> {
    use crate::tickets::TicketState as T;
    let to = match ticket_to {
        T::Accepted => TradeInState::Accepted,
        T::Declined => TradeInState::Declined,
        T::Cancelled => TradeInState::Cancelled,
        _ => return None,
    };
    current.can_move_to(to).then_some(to)
}

/// The ticket move a trade-in move implies: the ticket is in progress once the device
/// is at the desk, resolved (traded in) when the trade-in closes or (declined) when the
/// device goes back, cancelled with it; the outcome when the move closes the ticket.
pub fn ticket_follows(
    trade_to: TradeInState,
    ticket: crate::tickets::TicketState,
) -> Option<(
    crate::tickets::TicketState,
    Option<crate::tickets::work::Outcome>,
)> {
    use crate::tickets::work::Outcome;
    use crate::tickets::TicketState as T;
    let (to, outcome) = match trade_to {
        TradeInState::Received => (T::InProgress, None),
        TradeInState::Closed => (T::Resolved, Some(Outcome::TradedIn)),
        TradeInState::DeviceReturned => (T::Resolved, Some(Outcome::CustomerDeclined)),
        TradeInState::Cancelled => (T::Cancelled, None),
        _ => return None,
    };
    ticket.can_move_to(to).then_some((to, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use TradeInState::*;

    fn standing(state: TradeInState) -> Standing {
        Standing {
            state,
            quote: Money {
                amount_minor: 30_000,
                currency: "EUR".into(),
            },
            quoted_soh: Some(88.0),
            has_battery: true,
            record: Record::default(),
        }
    }

    fn grade(f: u8, c: Cosmetic, b: i64, lock_off: bool) -> Action {
        Action::Grade {
            functional: Functional::new(f).unwrap(),
            cosmetic: c,
            battery_pct: Some(b),
            activation_lock_off: lock_off,
        }
    }

    fn erase() -> Action {
        Action::Erase {
            method: Method::Purge,
            tool: "Blancco 7".into(),
            certificate_id: "BL-0001".into(),
        }
    }

    fn run(s: &mut Standing, a: &Action, cx: &Context<'_>) -> Result<(), Refusal> {
        let c = decide(s, a, cx)?;
        s.state = c.to;
        s.record = c.record;
        Ok(())
    }

    fn every_action() -> Vec<Action> {
        vec![
            Action::Ship {
                shipping_ref: "DHL-123".into(),
            },
            Action::Receive,
            grade(0, Cosmetic::A, 95, true),
            erase(),
            Action::Settle {
                price: None,
                reason: None,
            },
            Action::Route { route: None },
            Action::Close,
            Action::Cancel {
                reason: "never sent".into(),
            },
        ]
    }

    #[test]
    fn the_legal_moves_are_exactly_the_lifecycle() {
        let legal = [
            (Quoted, Accepted),
            (Quoted, Declined),
            (Quoted, Cancelled),
            (Accepted, AwaitingDevice),
            (Accepted, Cancelled),
            (AwaitingDevice, Received),
            (AwaitingDevice, Cancelled),
            (Received, Graded),
            (Graded, Erased),
            (Erased, Settled),
            (Settled, Refurbish),
            (Settled, Recycle),
            (Settled, DeviceReturned),
            (Refurbish, Closed),
            (Recycle, Closed),
        ];
        for from in TradeInState::ALL {
            for to in TradeInState::ALL {
                assert_eq!(
                    from.can_move_to(to),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
            if from.is_final() {
                assert!(TradeInState::ALL.iter().all(|&t| !from.can_move_to(t)));
            }
        }
        for s in TradeInState::ALL {
            assert_eq!(s.as_str().parse::<TradeInState>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn each_action_is_legal_only_from_its_one_state() {
        let rules = Rules::default();
        let cx = Context {
            rules: &rules,
            by: "rita",
            now_ms: 1_000,
            weight_g: Some(190),
        };
        // The state each action is legal from (cancel: three).
        let from = |a: &Action| -> &[TradeInState] {
            match a {
                Action::Ship { .. } => &[Accepted],
                Action::Receive => &[AwaitingDevice],
                Action::Grade { .. } => &[Received],
                Action::Erase { .. } => &[Graded],
                Action::Settle { .. } => &[Erased],
                Action::Route { .. } => &[Settled],
                Action::Close => &[Refurbish, Recycle],
                Action::Cancel { .. } => &[Accepted, AwaitingDevice],
            }
        };
        for a in every_action() {
            for state in TradeInState::ALL {
                let mut s = standing(state);
                // What earlier steps would have recorded.
                s.record.graded =
                    decide(&standing(Received), &grade(0, Cosmetic::A, 95, true), &cx)
                        .unwrap()
                        .record
                        .graded;
                s.record.erasure = decide(&standing(Graded), &erase(), &cx)
                    .unwrap()
                    .record
                    .erasure;
                s.record.consent = Some(Consent::NotNeeded);
                let got = decide(&s, &a, &cx);
                if from(&a).contains(&state) {
                    assert!(got.is_ok(), "{} from {state}: {got:?}", a.name());
                } else {
                    match got {
                        Err(Refusal::Illegal { state: st, .. }) => assert_eq!(st, state),
                        other => panic!("{} from {state}: {other:?}", a.name()),
                    }
                }
            }
        }
        let e = decide(&standing(Received), &erase(), &cx).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a trade-in cannot erase when received: grade it first"
        );
    }

    #[test]
    fn a_good_device_goes_from_accepted_to_refurbished_and_a_worn_one_to_recycling() {
        let rules = Rules::default();
        let cx = Context {
            rules: &rules,
            by: "rita",
            now_ms: 5_000,
            weight_g: Some(190),
        };
        let mut s = standing(Accepted);
        let ship = Action::Ship {
            shipping_ref: " DHL-123 ".into(),
        };
        for a in [
            ship.clone(),
            Action::Receive,
            grade(0, Cosmetic::B, 90, true),
            erase(),
        ] {
            run(&mut s, &a, &cx).unwrap();
        }
        assert_eq!(s.record.shipping_ref.as_deref(), Some("DHL-123"));
        let g = s.record.graded.as_ref().unwrap();
        assert_eq!(g.labels[0].label.as_deref(), Some("Excellent"));
        assert_eq!(g.route, Route::Refurbish);
        assert!(!g.battery_gap.unwrap().flagged);
        run(
            &mut s,
            &Action::Settle {
                price: None,
                reason: None,
            },
            &cx,
        )
        .unwrap();
        assert_eq!(s.record.consent, Some(Consent::NotNeeded));
        assert_eq!(s.record.settlement.as_ref().unwrap().final_minor, 30_000);
        run(&mut s, &Action::Route { route: None }, &cx).unwrap();
        assert_eq!(s.state, Refurbish);
        assert_eq!(s.record.routing.as_ref().unwrap().weight_g, 190);
        run(&mut s, &Action::Close, &cx).unwrap();
        assert_eq!(s.state, Closed);

        // Worn: battery 70 % (18 points below telemetry), cosmetic D.
        let mut w = standing(AwaitingDevice);
        for a in [Action::Receive, grade(1, Cosmetic::D, 70, true), erase()] {
            run(&mut w, &a, &cx).unwrap();
        }
        let g = w.record.graded.as_ref().unwrap();
        assert_eq!(g.route, Route::Recycle);
        assert!(g.battery_gap.unwrap().flagged);
        run(
            &mut w,
            &Action::Settle {
                price: None,
                reason: None,
            },
            &cx,
        )
        .unwrap();
        let st = w.record.settlement.clone().unwrap();
        assert!(st.final_minor < 30_000 && st.reason.is_some());
        assert_eq!(w.record.consent, Some(Consent::Pending));
        // Not before the customer agrees; never to refurbishment.
        assert!(matches!(
            decide(&w, &Action::Route { route: None }, &cx),
            Err(Refusal::Illegal { .. })
        ));
        let agreed = answer(&w, Answer::AcceptPrice).unwrap();
        w.record = agreed.record;
        assert_eq!(w.record.consent, Some(Consent::Accepted));
        assert!(matches!(
            decide(
                &w,
                &Action::Route {
                    route: Some(Route::Refurbish)
                },
                &cx
            ),
            Err(Refusal::Invalid(_))
        ));
        let no_weight = Context {
            weight_g: None,
            ..cx
        };
        assert!(decide(&w, &Action::Route { route: None }, &no_weight)
            .unwrap_err()
            .to_string()
            .contains("no weight"));
        run(&mut w, &Action::Route { route: None }, &cx).unwrap();
        assert_eq!(w.state, Recycle);
    }

    #[test]
    fn the_customer_may_refuse_a_lower_price_and_get_the_device_back() {
        let rules = Rules::default();
        let cx = Context {
            rules: &rules,
            by: "rita",
            now_ms: 5_000,
            weight_g: Some(190),
        };
        let mut s = standing(Received);
        for a in [
            grade(0, Cosmetic::C, 90, true),
            erase(),
            Action::Settle {
                price: None,
                reason: None,
            },
        ] {
            run(&mut s, &a, &cx).unwrap();
        }
        let back = answer(&s, Answer::ReturnDevice).unwrap();
        assert_eq!(back.to, DeviceReturned);
        let mut accepted = s.clone();
        accepted.record = answer(&s, Answer::AcceptPrice).unwrap().record;
        assert!(
            answer(&accepted, Answer::AcceptPrice).is_err(),
            "answered once"
        );
        assert!(answer(&accepted, Answer::ReturnDevice).is_err());
        assert!(answer(&standing(Graded), Answer::AcceptPrice).is_err());
        // A price at the quote needs no answer.
        let mut full = standing(Received);
        for a in [
            grade(0, Cosmetic::A, 90, true),
            erase(),
            Action::Settle {
                price: None,
                reason: None,
            },
        ] {
            run(&mut full, &a, &cx).unwrap();
        }
        assert!(answer(&full, Answer::AcceptPrice).is_err());
        assert!(answer(&full, Answer::ReturnDevice).is_err());
    }

    #[test]
    fn bad_content_is_refused_and_changes_nothing() {
        let rules = Rules::default();
        let cx = Context {
            rules: &rules,
            by: "rita",
            now_ms: 5_000,
            weight_g: Some(190),
        };
        let r = standing(Received);
        for a in [
            grade(0, Cosmetic::A, 101, true),
            grade(0, Cosmetic::A, -1, true),
        ] {
            assert!(matches!(decide(&r, &a, &cx), Err(Refusal::Invalid(_))));
        }
        let no_battery = Action::Grade {
            functional: Functional::new(0).unwrap(),
            cosmetic: Cosmetic::A,
            battery_pct: None,
            activation_lock_off: true,
        };
        assert!(matches!(
            decide(&r, &no_battery, &cx),
            Err(Refusal::Invalid(_))
        ));
        let a = standing(Accepted);
        for bad in ["", "ab", &"x".repeat(65)] {
            let ship = Action::Ship {
                shipping_ref: bad.into(),
            };
            assert!(matches!(decide(&a, &ship, &cx), Err(Refusal::Invalid(_))));
        }
        assert!(matches!(
            decide(&a, &Action::Cancel { reason: " ".into() }, &cx),
            Err(Refusal::Invalid(_))
        ));
        let mut e = standing(Graded);
        e.record.graded = decide(&r, &grade(0, Cosmetic::A, 90, true), &cx)
            .unwrap()
            .record
            .graded;
        let bad_cert = Action::Erase {
            method: Method::Clear,
            tool: "t".into(),
            certificate_id: "x".into(),
        };
        assert!(matches!(
            decide(&e, &bad_cert, &cx),
            Err(Refusal::Invalid(_))
        ));
        e.state = Erased;
        let usd = Action::Settle {
            price: Some(Money {
                amount_minor: 100,
                currency: "USD".into(),
            }),
            reason: Some("x".into()),
        };
        assert!(decide(&e, &usd, &cx)
            .unwrap_err()
            .to_string()
            .contains("quote is in EUR"));
        // The rules need JSON to parse to a grade at all.
        assert!(serde_json::from_str::<Action>(
            r#"{"action":"grade","functional":10,"cosmetic":"A","activation_lock_off":true}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Action>(
            r#"{"action":"grade","functional":1,"cosmetic":"F","activation_lock_off":true}"#
        )
        .is_err());
    }

    #[test]
    fn ticket_answers_move_a_trade_in_only_before_the_device_arrives() {
        use crate::tickets::work::Outcome;
        use crate::tickets::TicketState as T;
        assert_eq!(
            ticket_follows(Received, T::Accepted),
            Some((T::InProgress, None))
        );
        assert_eq!(
            ticket_follows(Received, T::InProgress),
            None,
            "already started"
        );
        assert_eq!(
            ticket_follows(Closed, T::InProgress),
            Some((T::Resolved, Some(Outcome::TradedIn)))
        );
        assert_eq!(
            ticket_follows(DeviceReturned, T::InProgress),
            Some((T::Resolved, Some(Outcome::CustomerDeclined)))
        );
        assert_eq!(
            ticket_follows(Cancelled, T::Accepted),
            Some((T::Cancelled, None))
        );
        assert_eq!(
            ticket_follows(Closed, T::Resolved),
            None,
            "closed at the desk already"
        );
        assert_eq!(ticket_follows(Graded, T::InProgress), None);
        assert_eq!(follow_ticket(Quoted, T::Accepted), Some(Accepted));
        assert_eq!(follow_ticket(Quoted, T::Declined), Some(Declined));
        assert_eq!(follow_ticket(Quoted, T::Offered), None);
        assert_eq!(follow_ticket(AwaitingDevice, T::Cancelled), Some(Cancelled));
        assert_eq!(follow_ticket(Received, T::Cancelled), None);
        assert_eq!(follow_ticket(Accepted, T::Accepted), None);
    }
}
