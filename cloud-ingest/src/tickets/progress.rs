//! What the customer sees and says about their ticket, as plain data: the stages of a
//! parcel-tracker view read from the ticket's log, the answer to the offer (which moves
//! the ticket exactly as the device's acknowledgement does), and the satisfaction
//! ratings asked for once it is resolved.

use std::fmt;

use protocol::command::{AckStatus, OfferKind};
use serde::{Deserialize, Serialize};

use super::TicketState;
use crate::ingest::plan::answer_moves;

/// A stage the customer's page shows, in order (the order compares).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// We opened a case.
    Opened,
    /// The offer reached the customer.
    Offered,
    /// The customer accepted.
    Accepted,
    /// A service team is working on the device.
    InProgress,
    /// The case is closed, however it ended.
    Resolved,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 5] = [
        Stage::Opened,
        Stage::Offered,
        Stage::Accepted,
        Stage::InProgress,
        Stage::Resolved,
    ];

    /// The customer's words for it.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Opened => "Case opened",
            Stage::Offered => "Offer sent to you",
            Stage::Accepted => "You accepted",
            Stage::InProgress => "Being worked on",
            Stage::Resolved => "Resolved",
        }
    }

    fn of(state: TicketState) -> Option<Stage> {
        Some(match state {
            TicketState::Opened => Stage::Opened,
            TicketState::Offered => Stage::Offered,
            TicketState::Accepted => Stage::Accepted,
            TicketState::InProgress => Stage::InProgress,
            TicketState::Resolved | TicketState::NoFaultFound => Stage::Resolved,
            TicketState::Declined | TicketState::Cancelled => return None,
        })
    }
}

/// One stage as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StageView {
    /// The stage.
    pub stage: Stage,
    /// Its label (for a closed ticket, how it ended).
    pub label: String,
    /// When the ticket reached it; `None` while it has not.
    pub at_ms: Option<i64>,
    /// Whether this is where the ticket is now.
    pub current: bool,
}

/// The stages of a ticket in `state` whose log moved it to each `(to, at_ms)`, oldest
/// first. A stage skipped on the way (a tip resolved on acceptance) shows the time of
/// the next one reached; a ticket that ended off the happy path (declined, cancelled)
/// ends its view with that ending in place of the stages it never reached.
pub fn stages(state: TicketState, moves: &[(TicketState, i64)], opened_ms: i64) -> Vec<StageView> {
    let reached = |s: Stage| -> Option<i64> {
        if s == Stage::Opened {
            return Some(opened_ms);
        }
        moves
            .iter()
            .find(|(to, _)| Stage::of(*to).is_some_and(|t| t >= s))
            .map(|&(_, at)| at)
    };
    let now = Stage::of(state);
    let mut out: Vec<StageView> = Vec::new();
    for s in Stage::ALL {
        let at = reached(s);
        if now.is_none() && at.is_none() {
            break;
        }
        let label = match (s, state) {
            (Stage::Resolved, TicketState::NoFaultFound) => "Checked: no fault found".into(),
            (Stage::Offered, _) if at.is_none() && state == TicketState::Opened => {
                "Offer on its way to you".into()
            }
            _ => s.label().into(),
        };
        out.push(StageView {
            stage: s,
            label,
            at_ms: at,
            current: now == Some(s),
        });
    }
    if now.is_none() {
        let at = moves
            .iter()
            .rev()
            .find(|(to, _)| *to == state)
            .map(|&(_, at)| at);
        let label = if state == TicketState::Declined {
            "You declined the offer"
        } else {
            "Case closed by us"
        };
        out.push(StageView {
            stage: Stage::Resolved,
            label: label.into(),
            at_ms: at,
            current: true,
        });
    }
    out
}

/// The customer's answer to the offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// Yes, please.
    Accept,
    /// No, thank you.
    Decline,
}

impl Answer {
    /// The device acknowledgement the answer stands for.
    pub fn as_ack(self) -> AckStatus {
        match self {
            Answer::Accept => AckStatus::Accepted,
            Answer::Decline => AckStatus::Declined,
        }
    }
}

/// Why an answer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnswerRefused {
    /// The offer was answered already (here or on the device), or the ticket moved on.
    #[error("this offer was already answered: the case is {0}")]
    AlreadyAnswered(TicketState),
}

/// A move an answer makes: (to, actor, note).
pub type AnswerMove = (TicketState, &'static str, Option<&'static str>);

/// The moves the customer's answer makes from `state`, as the device's acknowledgement
/// would make them (actor `customer`); refused once the offer is answered.
pub fn answer(
    state: TicketState,
    answer: Answer,
    offer: OfferKind,
) -> Result<Vec<AnswerMove>, AnswerRefused> {
    if !state.is_unanswered() {
        return Err(AnswerRefused::AlreadyAnswered(state));
    }
    Ok(answer_moves(state, answer.as_ack(), offer)
        .into_iter()
        .map(|(to, _, note)| {
            (
                to,
                "customer",
                note.or(Some("answered on the progress page")),
            )
        })
        .collect())
}

/// One rating, 1 (poor) to 5 (excellent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "u8", into = "u8")]
pub struct Stars(u8);

impl Stars {
    /// The rating's value.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Stars {
    type Error = RatingError;
    fn try_from(v: u8) -> Result<Self, RatingError> {
        (1..=5)
            .contains(&v)
            .then_some(Stars(v))
            .ok_or(RatingError::OutOfRange(v.into()))
    }
}

impl From<Stars> for u8 {
    fn from(s: Stars) -> u8 {
        s.0
    }
}

impl fmt::Display for Stars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/5", self.0)
    }
}

/// The longest comment kept, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// The customer's satisfaction follow-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rating {
    /// How good the result is.
    pub result: Stars,
    /// How fast it came.
    pub speed: Stars,
    /// How the customer was treated.
    pub service: Stars,
    /// What else they said.
    pub comment: Option<String>,
}

/// Why a rating is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RatingError {
    /// Not 1 to 5.
    #[error("a rating is 1 to 5, not {0}")]
    OutOfRange(i64),
    /// Not a number.
    #[error("{0}: choose 1 to 5")]
    Missing(&'static str),
    /// The comment is too long.
    #[error("the comment is {0} characters; at most {MAX_COMMENT_CHARS} are kept")]
    CommentTooLong(usize),
    /// The ticket is not resolved (yet).
    #[error("the case is {0}: it can be rated once it is resolved")]
    NotResolved(TicketState),
    /// Rated already.
    #[error("this case was rated already; thank you")]
    AlreadyRated,
}

impl Rating {
    /// A rating from the form's text fields.
    pub fn from_fields(
        result: Option<&str>,
        speed: Option<&str>,
        service: Option<&str>,
        comment: Option<&str>,
    ) -> Result<Rating, RatingError> {
        let stars = |name: &'static str, v: Option<&str>| -> Result<Stars, RatingError> {
            let v = v.map(str::trim).filter(|v| !v.is_empty());
            let n: i64 = v
                .ok_or(RatingError::Missing(name))?
                .parse()
                .map_err(|_| RatingError::Missing(name))?;
            u8::try_from(n)
                .map_err(|_| RatingError::OutOfRange(n))
                .and_then(Stars::try_from)
        };
        let comment = comment.map(str::trim).filter(|c| !c.is_empty());
        if let Some(c) = comment {
            let n = c.chars().count();
            if n > MAX_COMMENT_CHARS {
                return Err(RatingError::CommentTooLong(n));
            }
        }
        Ok(Rating {
            result: stars("result", result)?,
            speed: stars("speed", speed)?,
            service: stars("service", service)?,
            comment: comment.map(str::to_owned),
        })
    }
}

/// Whether a ticket in `state` may be rated: once resolved, however the check came out.
pub fn may_rate(state: TicketState) -> Result<(), RatingError> {
    match state {
        TicketState::Resolved | TicketState::NoFaultFound => Ok(()),
        other => Err(RatingError::NotResolved(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TicketState::*;

    #[test]
    fn stages_follow_the_log_like_a_parcel_tracker() {
        let s = stages(Opened, &[], 100);
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].at_ms, Some(100));
        assert!(s[0].current);
        assert_eq!(s[1].label, "Offer on its way to you");
        assert!(s[1..].iter().all(|v| v.at_ms.is_none() && !v.current));

        let log = [
            (Offered, 200),
            (Accepted, 300),
            (InProgress, 400),
            (Resolved, 500),
        ];
        let s = stages(Resolved, &log, 100);
        let at: Vec<_> = s.iter().map(|v| v.at_ms).collect();
        assert_eq!(at, [Some(100), Some(200), Some(300), Some(400), Some(500)]);
        assert!(s[4].current && s.iter().filter(|v| v.current).count() == 1);

        // A tip resolves on acceptance: in progress shows the resolution's time.
        let s = stages(Resolved, &[(Offered, 2), (Accepted, 3), (Resolved, 3)], 1);
        assert_eq!(s[3].at_ms, Some(3));

        let s = stages(
            NoFaultFound,
            &[
                (Offered, 2),
                (Accepted, 3),
                (InProgress, 4),
                (NoFaultFound, 9),
            ],
            1,
        );
        assert_eq!(s[4].label, "Checked: no fault found");
        assert_eq!(s[4].at_ms, Some(9));
    }

    #[test]
    fn an_ending_off_the_happy_path_replaces_the_stages_never_reached() {
        let s = stages(Declined, &[(Offered, 2), (Declined, 5)], 1);
        let labels: Vec<_> = s.iter().map(|v| v.label.as_str()).collect();
        assert_eq!(
            labels,
            ["Case opened", "Offer sent to you", "You declined the offer"]
        );
        assert_eq!(s[2].at_ms, Some(5));
        assert!(s[2].current && !s[1].current);
        let s = stages(Cancelled, &[(Cancelled, 7)], 1);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].label, "Case closed by us");
    }

    #[test]
    fn an_answer_moves_the_ticket_as_the_device_would_and_only_once() {
        let m = answer(Opened, Answer::Accept, OfferKind::Inspection).unwrap();
        let to: Vec<_> = m.iter().map(|(t, _, _)| *t).collect();
        assert_eq!(to, [Offered, Accepted]);
        assert!(m.iter().all(|(_, who, _)| *who == "customer"));
        let to: Vec<_> = answer(Offered, Answer::Decline, OfferKind::TradeIn)
            .unwrap()
            .iter()
            .map(|(t, _, _)| *t)
            .collect();
        assert_eq!(to, [Declined]);
        let tip = answer(Offered, Answer::Accept, OfferKind::SelfServiceTip).unwrap();
        assert_eq!(tip.last().unwrap().0, Resolved, "a tip is done once taken");
        for s in [
            Accepted,
            InProgress,
            Resolved,
            Declined,
            Cancelled,
            NoFaultFound,
        ] {
            assert_eq!(
                answer(s, Answer::Decline, OfferKind::Inspection),
                Err(AnswerRefused::AlreadyAnswered(s))
            );
        }
    }

    #[test]
    fn ratings_are_one_to_five_with_a_bounded_comment_once_resolved() {
        let r = Rating::from_fields(Some("5"), Some(" 3"), Some("1"), Some("  ")).unwrap();
        assert_eq!((r.result.get(), r.speed.get(), r.service.get()), (5, 3, 1));
        assert_eq!(r.comment, None);
        for (fields, why) in [
            ([Some("0"), Some("3"), Some("3")], "not 0"),
            ([Some("6"), Some("3"), Some("3")], "not 6"),
            ([Some("300"), Some("3"), Some("3")], "not 300"),
            ([Some("3"), None, Some("3")], "speed"),
            ([Some("3"), Some("3"), Some("lots")], "service"),
        ] {
            let e = Rating::from_fields(fields[0], fields[1], fields[2], None).unwrap_err();
            assert!(e.to_string().contains(why), "{fields:?}: {e}");
        }
        let long = "x".repeat(MAX_COMMENT_CHARS + 1);
        assert!(matches!(
            Rating::from_fields(Some("3"), Some("3"), Some("3"), Some(&long)),
            Err(RatingError::CommentTooLong(_))
        ));
        assert!(serde_json::from_str::<Stars>("9").is_err());
        assert!(may_rate(Resolved).is_ok() && may_rate(NoFaultFound).is_ok());
        assert_eq!(
            may_rate(InProgress),
            Err(RatingError::NotResolved(InProgress))
        );
        assert!(may_rate(Declined).is_err());
    }
}
