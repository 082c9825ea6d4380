//! Action items: a problem, who owns it, when it is due, the KPI that says whether it
//! worked and the target for it, and where it stands. Raised from a period's report or a
//! flagged cohort; the next period's report reviews each. Pure: what a new item or a
//! move must satisfy, and how an item reads at the end of a period.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::tickets::UnknownName;

/// Where an action item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Raised, not started.
    Open,
    /// Being worked on.
    InProgress,
    /// Done.
    Done,
    /// Given up (with a note saying why).
    Dropped,
}

impl ActionStatus {
    /// Every status.
    pub const ALL: [ActionStatus; 4] = [
        ActionStatus::Open,
        ActionStatus::InProgress,
        ActionStatus::Done,
        ActionStatus::Dropped,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Open => "open",
            ActionStatus::InProgress => "in_progress",
            ActionStatus::Done => "done",
            ActionStatus::Dropped => "dropped",
        }
    }

    /// Whether nothing follows.
    pub fn is_final(self) -> bool {
        matches!(self, ActionStatus::Done | ActionStatus::Dropped)
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActionStatus {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        ActionStatus::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownName::new("action item status", s))
    }
}

/// A new action item, as a person writes it.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAction {
    /// The problem it addresses (1–500 bytes).
    pub problem: String,
    /// Who owns it: a desk user's name.
    pub owner: String,
    /// When it is due, `YYYY-MM-DD` (UTC, the end of that day).
    pub due: String,
    /// The measure that says whether it worked (1–500 bytes).
    pub kpi: String,
    /// The KPI's target (1–200 bytes).
    pub target: String,
    /// Where it was raised: `report:2026-11`, `report:2026-W48` or `flag:12`.
    #[serde(default)]
    pub source: Option<String>,
    /// The report figure that measures the KPI (`faults:battery:S1`; docs/reports.md
    /// lists the keys), so the next report can say whether the target was met; the
    /// target must then read as one (`below 4`, `down 30 %`).
    #[serde(default)]
    pub measure: Option<String>,
}

/// A new action item that passed its checks.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedAction {
    /// The problem, trimmed.
    pub problem: String,
    /// The owner.
    pub owner: String,
    /// The end of the due day, ms.
    pub due_ms: u64,
    /// The KPI, trimmed.
    pub kpi: String,
    /// The target, trimmed.
    pub target: String,
    /// Where it was raised (`manual` when not given).
    pub source: String,
    /// The report figure that measures it, if named.
    pub measure: Option<String>,
}

/// Why an action item or a move is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// A text field is empty or too long.
    #[error("{field}: 1 to {max} bytes, not {len}")]
    Length {
        /// Which field.
        field: &'static str,
        /// Its limit.
        max: usize,
        /// Its length, trimmed.
        len: usize,
    },
    /// The owner is nobody on the desk.
    #[error("owner {0:?} is not a desk user")]
    UnknownOwner(String),
    /// The due date does not read.
    #[error("due {0:?}: a date, YYYY-MM-DD")]
    BadDate(String),
    /// The due date has passed.
    #[error("due {0}: that day has passed")]
    Past(String),
    /// The source is not a period's report or a flag.
    #[error("source {0:?}: report:2026-11, report:2026-W48 or flag:ID")]
    BadSource(String),
    /// The measure is not a report figure.
    #[error("measure: {0}")]
    UnknownMeasure(String),
    /// A measured item's target does not read as a bound or a change.
    #[error("target {0:?}: with a measure, `below 4`, `above 0.8`, `down 30 %` or `up 10 %`")]
    BadTarget(String),
    /// The item is done or dropped.
    #[error("the action item is {0}: nothing follows")]
    Final(ActionStatus),
}

const DAY_MS: u64 = 86_400_000;

fn text(field: &'static str, v: &str, max: usize) -> Result<String, ActionError> {
    let t = v.trim();
    if t.is_empty() || t.len() > max {
        return Err(ActionError::Length {
            field,
            max,
            len: t.len(),
        });
    }
    Ok(t.to_owned())
}

/// Checks a new item at `now_ms`, `is_user` saying who is on the desk.
pub fn check(
    n: &NewAction,
    is_user: impl Fn(&str) -> bool,
    now_ms: u64,
) -> Result<CheckedAction, ActionError> {
    let problem = text("problem", &n.problem, 500)?;
    let kpi = text("kpi", &n.kpi, 500)?;
    let target = text("target", &n.target, 200)?;
    let owner = n.owner.trim().to_owned();
    if !is_user(&owner) {
        return Err(ActionError::UnknownOwner(owner));
    }
    let day = NaiveDate::parse_from_str(n.due.trim(), "%Y-%m-%d")
        .map_err(|_| ActionError::BadDate(n.due.clone()))?;
    let start = day
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
        .timestamp_millis();
    let due_ms = (start.max(0) as u64) + DAY_MS - 1;
    if due_ms < now_ms {
        return Err(ActionError::Past(n.due.trim().to_owned()));
    }
    let source = match n.source.as_deref().map(str::trim) {
        None | Some("") => "manual".to_owned(),
        Some(s) => {
            let ok = match s.split_once(':') {
                Some(("report", p)) => crate::tradein::routing::period_range(p).is_ok(),
                Some(("flag", id)) => id.parse::<u64>().is_ok(),
                _ => false,
            };
            if !ok {
                return Err(ActionError::BadSource(s.to_owned()));
            }
            s.to_owned()
        }
    };
    let measure = match n.measure.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(m) => {
            super::kpis::measure(&Default::default(), m, 0, 1)
                .map_err(ActionError::UnknownMeasure)?;
            Target::parse(&target).ok_or_else(|| ActionError::BadTarget(target.clone()))?;
            Some(m.to_owned())
        }
    };
    Ok(CheckedAction {
        problem,
        owner,
        due_ms,
        kpi,
        target,
        source,
        measure,
    })
}

/// Whether an item may move from `from` to `to`: anything but out of a final status.
pub fn check_move(from: ActionStatus, to: ActionStatus) -> Result<(), ActionError> {
    if from.is_final() && from != to {
        return Err(ActionError::Final(from));
    }
    Ok(())
}

/// How an item reads when a period ending at `end_ms` is reviewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Review {
    /// Done by its due date.
    DoneOnTime,
    /// Done, after its due date.
    DoneLate,
    /// Dropped.
    Dropped,
    /// Not done, and its due date has passed.
    Overdue,
    /// Not done, not due yet.
    Pending,
}

/// The review of an item with `status` (reached at `done_ms` when final), due `due_ms`,
/// at the end of a period `end_ms`.
pub fn review(status: ActionStatus, due_ms: u64, done_ms: Option<u64>, end_ms: u64) -> Review {
    match status {
        ActionStatus::Done if done_ms.is_some_and(|d| d <= due_ms) => Review::DoneOnTime,
        ActionStatus::Done => Review::DoneLate,
        ActionStatus::Dropped => Review::Dropped,
        _ if due_ms < end_ms => Review::Overdue,
        _ => Review::Pending,
    }
}

/// A target as a rule: a bound on the figure, or a change against its value in the
/// period the item was raised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// At most this.
    AtMost(f64),
    /// At least this.
    AtLeast(f64),
    /// Down by this share (0.3 for 30 %) from the baseline.
    DownBy(f64),
    /// Up by this share from the baseline.
    UpBy(f64),
}

impl Target {
    /// Reads `below 4`, `≤ 4`, `above 0.8`, `>= 0.8`, `down 30 %`, `-30%`, `up 10 %`,
    /// `+10%` (words after the number are the reader's: `down 30 % within two months`).
    pub fn parse(text: &str) -> Option<Target> {
        let t = text.trim().to_lowercase();
        let (kind, rest) = [
            ("below", 0),
            ("under", 0),
            ("at most", 0),
            ("<=", 0),
            ("≤", 0),
            ("<", 0),
            ("above", 1),
            ("over", 1),
            ("at least", 1),
            (">=", 1),
            ("≥", 1),
            (">", 1),
            ("down by", 2),
            ("down", 2),
            ("-", 2),
            ("up by", 3),
            ("up", 3),
            ("+", 3),
        ]
        .into_iter()
        .find_map(|(w, k)| t.strip_prefix(w).map(|r| (k, r.trim_start())))?;
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let x: f64 = rest[..end].parse().ok().filter(|x: &f64| x.is_finite())?;
        let after = rest[end..].trim_start();
        let percent = after.starts_with('%');
        Some(match kind {
            0 => Target::AtMost(x),
            1 => Target::AtLeast(x),
            // A change must say it is a percentage: "down 3" is ambiguous.
            2 if percent && x <= 100.0 => Target::DownBy(x / 100.0),
            3 if percent => Target::UpBy(x / 100.0),
            _ => return None,
        })
    }

    /// Whether `now` meets the target, `baseline` being the figure when the item was
    /// raised; `None` when a change has no baseline to read against.
    pub fn met(self, now: f64, baseline: Option<f64>) -> Option<bool> {
        match self {
            Target::AtMost(x) => Some(now <= x),
            Target::AtLeast(x) => Some(now >= x),
            Target::DownBy(s) => baseline
                .filter(|b| *b > 0.0)
                .map(|b| now <= b * (1.0 - s) + 1e-9),
            Target::UpBy(s) => baseline
                .filter(|b| *b > 0.0)
                .map(|b| now >= b * (1.0 + s) - 1e-9),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-22T08:00:00Z.
    const NOW: u64 = 1_795_334_400_000;

    fn item() -> NewAction {
        NewAction {
            problem: "Batch A12-2024Q4 batteries fail at 3x their model's rate".into(),
            owner: "ana".into(),
            due: "2026-12-15".into(),
            kpi: "battery failures per device-year, A12-2024Q4".into(),
            target: "below 0.12".into(),
            source: Some("report:2026-11".into()),
            measure: None,
        }
    }

    #[test]
    fn a_new_item_names_an_owner_a_future_due_day_a_kpi_and_a_target() {
        let ok = check(&item(), |u| u == "ana", NOW).unwrap();
        assert_eq!(ok.source, "report:2026-11");
        // The end of 2026-12-15, UTC.
        assert_eq!(ok.due_ms, 1_797_379_199_999);
        let bad = |f: fn(&mut NewAction)| {
            let mut n = item();
            f(&mut n);
            check(&n, |u| u == "ana", NOW).unwrap_err()
        };
        assert!(matches!(
            bad(|n| n.problem = "  ".into()),
            ActionError::Length {
                field: "problem",
                ..
            }
        ));
        assert!(matches!(
            bad(|n| n.target = "x".repeat(201)),
            ActionError::Length {
                field: "target",
                ..
            }
        ));
        assert_eq!(
            bad(|n| n.owner = "zed".into()),
            ActionError::UnknownOwner("zed".into())
        );
        assert_eq!(
            bad(|n| n.due = "15/12/2026".into()),
            ActionError::BadDate("15/12/2026".into())
        );
        assert_eq!(
            bad(|n| n.due = "2026-11-21".into()),
            ActionError::Past("2026-11-21".into())
        );
        assert_eq!(
            bad(|n| n.source = Some("mail".into())),
            ActionError::BadSource("mail".into())
        );
        assert_eq!(
            bad(|n| n.source = Some("report:2026-13".into())),
            ActionError::BadSource("report:2026-13".into())
        );
        let mut today = item();
        today.due = "2026-11-22".into();
        assert!(
            check(&today, |_| true, NOW).is_ok(),
            "due today is not past"
        );
        assert_eq!(
            bad(|n| n.measure = Some("happiness".into())),
            ActionError::UnknownMeasure(
                "unknown KPI \"happiness\" (docs/reports.md lists them)".into()
            )
        );
        assert_eq!(
            bad(|n| {
                n.measure = Some("faults:battery".into());
                n.target = "fewer".into();
            }),
            ActionError::BadTarget("fewer".into())
        );
        let mut measured = item();
        measured.measure = Some("faults:battery:S1".into());
        assert_eq!(
            check(&measured, |_| true, NOW).unwrap().measure.as_deref(),
            Some("faults:battery:S1")
        );
        today.source = Some("flag:7".into());
        assert_eq!(check(&today, |_| true, NOW).unwrap().source, "flag:7");
    }

    #[test]
    fn targets_read_as_bounds_or_changes_and_are_met_against_the_baseline() {
        use Target::*;
        assert_eq!(Target::parse("below 0.12"), Some(AtMost(0.12)));
        assert_eq!(Target::parse("≤ 4"), Some(AtMost(4.0)));
        assert_eq!(Target::parse("At least 0.8"), Some(AtLeast(0.8)));
        assert_eq!(
            Target::parse("down 30 % within two months"),
            Some(DownBy(0.3))
        );
        assert_eq!(Target::parse("-30%"), Some(DownBy(0.3)));
        assert_eq!(Target::parse("+10 %"), Some(UpBy(0.1)));
        for bad in ["down 30", "fewer returns", "below", "down 130 %", ""] {
            assert_eq!(Target::parse(bad), None, "{bad:?}");
        }
        assert_eq!(AtMost(4.0).met(4.0, None), Some(true));
        assert_eq!(AtLeast(0.8).met(0.7, None), Some(false));
        assert_eq!(DownBy(0.3).met(7.0, Some(10.0)), Some(true));
        assert_eq!(DownBy(0.3).met(8.0, Some(10.0)), Some(false));
        assert_eq!(DownBy(0.3).met(0.0, None), None);
        assert_eq!(UpBy(0.1).met(11.0, Some(10.0)), Some(true));
    }

    #[test]
    fn done_and_dropped_are_final_and_reviews_read_the_due_date() {
        use ActionStatus::*;
        assert!(check_move(Open, InProgress).is_ok());
        assert!(check_move(InProgress, Done).is_ok());
        assert_eq!(check_move(Done, Open), Err(ActionError::Final(Done)));
        assert_eq!(
            check_move(Dropped, InProgress),
            Err(ActionError::Final(Dropped))
        );
        assert_eq!(review(Done, 100, Some(90), 200), Review::DoneOnTime);
        assert_eq!(review(Done, 100, Some(150), 200), Review::DoneLate);
        assert_eq!(review(InProgress, 100, None, 200), Review::Overdue);
        assert_eq!(review(Open, 300, None, 200), Review::Pending);
        assert_eq!(review(Dropped, 100, Some(50), 200), Review::Dropped);
        assert_eq!("in_progress".parse::<ActionStatus>().unwrap(), InProgress);
    }
}
