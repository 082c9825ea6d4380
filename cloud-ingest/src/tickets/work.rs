//! Working a ticket at the service desk: what each action (claim, assign, start,
//! pause, resume, note, resolve) changes, decided from the ticket as it stands. Pure:
//! the store applies a [`Change`] only if the ticket is still at the version it was
//! decided on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::sla::{self, ClockError, PauseReason, SlaClock};
use super::{TicketState, TransitionError, UnknownName};
use crate::policy::Problem;

/// How a ticket ended: the label its outcome gives the next model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The fault was confirmed (its category says which).
    FaultConfirmed,
    /// Confirmed and repaired.
    Repaired,
    /// Confirmed; the battery was replaced.
    BatteryReplaced,
    /// Confirmed; the device was replaced.
    Replaced,
    /// Inspected; nothing was wrong.
    NoFaultFound,
    /// The customer said no.
    CustomerDeclined,
    /// The customer traded the device in.
    TradedIn,
    /// Inspected; the device was damaged by the user (dropped, liquid): not a failure
    /// of the device, kept out of failure rates and training labels.
    UserDamage,
    /// Inspected; the device was abused (used far outside its terms): kept out as
    /// user damage is.
    Abuse,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 9] = [
        Outcome::FaultConfirmed,
        Outcome::Repaired,
        Outcome::BatteryReplaced,
        Outcome::Replaced,
        Outcome::NoFaultFound,
        Outcome::CustomerDeclined,
        Outcome::TradedIn,
        Outcome::UserDamage,
        Outcome::Abuse,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::FaultConfirmed => "fault_confirmed",
            Outcome::Repaired => "repaired",
            Outcome::BatteryReplaced => "battery_replaced",
            Outcome::Replaced => "replaced",
            Outcome::NoFaultFound => "no_fault_found",
            Outcome::CustomerDeclined => "customer_declined",
            Outcome::TradedIn => "traded_in",
            Outcome::UserDamage => "user_damage",
            Outcome::Abuse => "abuse",
        }
    }

    /// Whether the outcome confirms a fault (a positive label).
    pub fn confirms_fault(self) -> bool {
        matches!(
            self,
            Outcome::FaultConfirmed
                | Outcome::Repaired
                | Outcome::BatteryReplaced
                | Outcome::Replaced
        )
    }

    /// The special case this outcome is, kept out of failure rates (and counted apart).
    pub fn special_case(self) -> Option<crate::cohorts::SpecialCase> {
        use crate::cohorts::SpecialCase;
        match self {
            Outcome::NoFaultFound => Some(SpecialCase::NoFaultFound),
            Outcome::UserDamage => Some(SpecialCase::UserDamage),
            Outcome::Abuse => Some(SpecialCase::Abuse),
            _ => None,
        }
    }

    /// The state a ticket resolved with this outcome ends in. A customer who says no
    /// once work has started (to a repair quote, say) ends the ticket resolved with that
    /// outcome: `declined` is the customer's answer to the offer itself.
    pub fn end_state(self) -> TicketState {
        match self {
            Outcome::NoFaultFound => TicketState::NoFaultFound,
            _ => TicketState::Resolved,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownName::new("outcome", s))
    }
}

/// Something a person does to a ticket. On the wire an object tagged by `action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Take the ticket for oneself.
    Claim,
    /// Give it to someone (a desk user's name).
    Assign {
        /// Who.
        user: String,
    },
    /// Start work on an accepted ticket (claims it too, if nobody has).
    Start,
    /// Stop the SLA clock, with a reason.
    Pause {
        /// Why.
        reason: PauseReason,
    },
    /// Run the SLA clock again.
    Resume,
    /// Add a note.
    Note {
        /// What to say (1–2000 bytes).
        text: String,
    },
    /// Close the ticket with its outcome.
    Resolve {
        /// How it ended.
        outcome: Outcome,
        /// The fault's category, when one was confirmed (defaults to the ticket's
        /// problem).
        #[serde(default)]
        category: Option<Problem>,
        /// What was done.
        #[serde(default)]
        note: Option<String>,
    },
}

impl Action {
    /// The name the audit log and the events use.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Claim => "claim",
            Action::Assign { .. } => "assign",
            Action::Start => "start",
            Action::Pause { .. } => "pause",
            Action::Resume => "resume",
            Action::Note { .. } => "note",
            Action::Resolve { .. } => "resolve",
        }
    }
}

/// A ticket as an action sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// Its state.
    pub state: TicketState,
    /// Its problem.
    pub problem: Problem,
    /// Who has it.
    pub assignee: Option<String>,
    /// Its SLA clock now.
    pub clock: SlaClock,
}

/// What an action changes; the store writes it with one ticket event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The event's kind: `move`, `assign`, `note`, `pause`, `resume`.
    pub kind: &'static str,
    /// The state afterwards (the same unless the action moves the ticket).
    pub to: TicketState,
    /// The new assignee, when it changes.
    pub assignee: Option<String>,
    /// The outcome and its category, when the action closes the ticket.
    pub outcome: Option<(Outcome, Option<Problem>)>,
    /// The event's note.
    pub note: Option<String>,
    /// The SLA clock's summary afterwards.
    pub sla: SlaColumns,
}

/// The clock's summary kept on the ticket for the queue (see the `tickets` columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaColumns {
    /// Due time, completed pauses counted in.
    pub due_ms: u64,
    /// Start of the pause in force.
    pub paused_since_ms: Option<u64>,
}

impl SlaColumns {
    /// The summary of a clock.
    pub fn of(c: &SlaClock) -> SlaColumns {
        SlaColumns {
            // A paused clock's due_ms counts the running pause in; the column does not.
            due_ms: c.due_ms - c.current_pause_ms,
            paused_since_ms: c.paused.map(|(_, since)| since),
        }
    }
}

/// Why an action is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkError {
    /// The state machine does not allow it from where the ticket is.
    #[error(transparent)]
    Move(#[from] TransitionError),
    /// The SLA clock cannot do it.
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// Claimed by someone else.
    #[error("the ticket is assigned to {0}; ask them or an admin to reassign it")]
    Taken(String),
    /// The action's content is wrong.
    #[error("{0}")]
    Invalid(String),
}

impl WorkError {
    /// Whether the ticket's state is what refuses the action (409), not its content (422).
    pub fn is_conflict(&self) -> bool {
        !matches!(self, WorkError::Invalid(_))
    }
}

/// The longest note, bytes.
pub const MAX_NOTE: usize = 2000;

fn note(text: &str) -> Result<String, WorkError> {
    let t = text.trim();
    if t.is_empty() || t.len() > MAX_NOTE {
        return Err(WorkError::Invalid(format!(
            "a note must have 1 to {MAX_NOTE} bytes of text; this one has {}",
            t.len()
        )));
    }
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(WorkError::Invalid(
            "a note must not contain control characters".into(),
        ));
    }
    Ok(t.to_owned())
}

/// Decides what `action` by `user` at `at_ms` changes on a ticket standing as `t`.
/// `users` says whether a name is a desk user (for assignment).
pub fn decide(
    t: &Standing,
    action: &Action,
    user: &str,
    at_ms: u64,
    is_user: impl Fn(&str) -> bool,
) -> Result<Change, WorkError> {
    let closed = !t.state.is_open();
    let same = |kind, note: Option<String>| Change {
        kind,
        to: t.state,
        assignee: None,
        outcome: None,
        note,
        sla: SlaColumns::of(&t.clock),
    };
    let mine = |t: &Standing| match &t.assignee {
        Some(a) if a != user => Err(WorkError::Taken(a.clone())),
        _ => Ok(()),
    };
    match action {
        Action::Claim => {
            if closed {
                return Err(WorkError::Clock(ClockError::Closed));
            }
            mine(t)?;
            Ok(Change {
                assignee: Some(user.to_owned()),
                ..same("assign", Some(format!("claimed by {user}")))
            })
        }
        Action::Assign { user: to } => {
            if closed {
                return Err(WorkError::Clock(ClockError::Closed));
            }
            if !is_user(to) {
                return Err(WorkError::Invalid(format!("no desk user is called {to:?}")));
            }
            Ok(Change {
                assignee: Some(to.clone()),
                ..same("assign", Some(format!("assigned to {to} by {user}")))
            })
        }
        Action::Start => {
            mine(t)?;
            let to = t.state.move_to(TicketState::InProgress)?;
            Ok(Change {
                to,
                assignee: t.assignee.is_none().then(|| user.to_owned()),
                ..same("move", None)
            })
        }
        Action::Pause { reason } => {
            sla::can_pause(&t.clock, closed)?;
            let mut c = same("pause", Some(reason.as_str().to_owned()));
            c.sla.paused_since_ms = Some(at_ms);
            Ok(c)
        }
        Action::Resume => {
            sla::can_resume(&t.clock, closed)?;
            let mut c = same("resume", None);
            let since = c.sla.paused_since_ms.take().unwrap_or(at_ms);
            c.sla.due_ms += at_ms.saturating_sub(since);
            Ok(c)
        }
        Action::Note { text } => Ok(same("note", Some(note(text)?))),
        Action::Resolve {
            outcome,
            category,
            note: text,
        } => {
            mine(t)?;
            if category.is_some() && !outcome.confirms_fault() {
                return Err(WorkError::Invalid(format!(
                    "a category belongs to a confirmed fault, not to {outcome}"
                )));
            }
            let to = t.state.move_to(outcome.end_state())?;
            let category = outcome
                .confirms_fault()
                .then(|| category.unwrap_or(t.problem));
            let mut c = Change {
                to,
                outcome: Some((*outcome, category)),
                ..same("move", text.as_deref().map(note).transpose()?)
            };
            // Closing ends a pause; its time is counted in.
            if let Some(since) = c.sla.paused_since_ms.take() {
                c.sla.due_ms += at_ms.saturating_sub(since);
            }
            Ok(c)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::sla::{clock, ClockEvent};

    const H: u64 = 3_600_000;
    const T0: u64 = 1_795_334_400_000;

    fn standing(state: TicketState, assignee: Option<&str>, events: &[ClockEvent]) -> Standing {
        Standing {
            state,
            problem: Problem::Battery,
            assignee: assignee.map(str::to_owned),
            clock: clock(T0, 24 * H, events, T0 + 2 * H),
        }
    }

    fn anyone(_: &str) -> bool {
        true
    }

    #[test]
    fn the_desk_works_a_ticket_from_claim_to_outcome() {
        let t = standing(TicketState::Accepted, None, &[]);
        let c = decide(&t, &Action::Claim, "ana", T0 + 2 * H, anyone).unwrap();
        assert_eq!((c.kind, c.assignee.as_deref()), ("assign", Some("ana")));
        let t = standing(TicketState::Accepted, Some("ana"), &[]);
        let c = decide(&t, &Action::Start, "ana", T0 + 2 * H, anyone).unwrap();
        assert_eq!(
            (c.kind, c.to, c.assignee),
            ("move", TicketState::InProgress, None)
        );
        let t = standing(TicketState::InProgress, Some("ana"), &[]);
        let resolve = |outcome, category| Action::Resolve {
            outcome,
            category,
            note: Some("new cell fitted".into()),
        };
        let c = decide(
            &t,
            &resolve(Outcome::BatteryReplaced, None),
            "ana",
            T0,
            anyone,
        )
        .unwrap();
        assert_eq!(c.to, TicketState::Resolved);
        assert_eq!(
            c.outcome,
            Some((Outcome::BatteryReplaced, Some(Problem::Battery)))
        );
        let c = decide(&t, &resolve(Outcome::NoFaultFound, None), "ana", T0, anyone).unwrap();
        assert_eq!(
            (c.to, c.outcome),
            (
                TicketState::NoFaultFound,
                Some((Outcome::NoFaultFound, None))
            )
        );
        let e = decide(
            &t,
            &resolve(Outcome::NoFaultFound, Some(Problem::Thermal)),
            "ana",
            T0,
            anyone,
        )
        .unwrap_err();
        assert!(!e.is_conflict(), "{e}");
    }

    #[test]
    fn illegal_and_foreign_actions_are_refused() {
        // Not accepted yet: work cannot start.
        let t = standing(TicketState::Offered, None, &[]);
        let e = decide(&t, &Action::Start, "ana", T0, anyone).unwrap_err();
        assert!(matches!(e, WorkError::Move(_)) && e.is_conflict(), "{e}");
        // Someone else's ticket.
        let t = standing(TicketState::Accepted, Some("bo"), &[]);
        assert_eq!(
            decide(&t, &Action::Claim, "ana", T0, anyone),
            Err(WorkError::Taken("bo".into()))
        );
        // A closed ticket takes no claim, pause or outcome.
        let t = standing(TicketState::Resolved, Some("ana"), &[]);
        for a in [
            Action::Claim,
            Action::Pause {
                reason: PauseReason::WaitingForParts,
            },
            Action::Resume,
        ] {
            assert!(
                decide(&t, &a, "ana", T0, anyone).unwrap_err().is_conflict(),
                "{a:?}"
            );
        }
        // Assigning to nobody known, and empty notes, are bad content.
        let t = standing(TicketState::Accepted, None, &[]);
        let e = decide(
            &t,
            &Action::Assign {
                user: "ghost".into(),
            },
            "ana",
            T0,
            |_| false,
        )
        .unwrap_err();
        assert!(!e.is_conflict());
        let e = decide(&t, &Action::Note { text: "  ".into() }, "ana", T0, anyone).unwrap_err();
        assert!(!e.is_conflict());
    }

    #[test]
    fn pausing_and_resuming_move_the_due_time() {
        let t = standing(TicketState::InProgress, Some("ana"), &[]);
        let pause = Action::Pause {
            reason: PauseReason::WaitingForParts,
        };
        let c = decide(&t, &pause, "ana", T0 + 2 * H, anyone).unwrap();
        assert_eq!(
            c.sla,
            SlaColumns {
                due_ms: T0 + 24 * H,
                paused_since_ms: Some(T0 + 2 * H)
            }
        );
        assert_eq!(c.note.as_deref(), Some("waiting_for_parts"));
        let paused = standing(
            TicketState::InProgress,
            Some("ana"),
            &[ClockEvent::Paused {
                at_ms: T0 + H,
                reason: PauseReason::WaitingForParts,
            }],
        );
        assert!(decide(&paused, &pause, "ana", T0 + 2 * H, anyone).is_err());
        let c = decide(&paused, &Action::Resume, "ana", T0 + 2 * H, anyone).unwrap();
        assert_eq!(
            c.sla,
            SlaColumns {
                due_ms: T0 + 25 * H,
                paused_since_ms: None
            },
            "an hour paused moves the due time an hour on"
        );
    }
}
