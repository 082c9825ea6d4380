//! Root-cause records: the "five whys" an analyst writes for a flagged problem, each
//! answer linked to the evidence behind it, and the conclusion they lead to. Pure: what
//! a record must satisfy.

use serde::{Deserialize, Serialize};

/// One why, its answer, and where the evidence for the answer is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Why {
    /// The question (1–300 bytes).
    pub why: String,
    /// Its answer (1–500 bytes).
    pub answer: String,
    /// A link to the evidence: a desk path (`/desk/devices/d-17`, `/api/v1/cohorts`) or
    /// an `https://` address.
    pub evidence: String,
}

/// A root-cause record as a person writes it.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRootCause {
    /// One to five whys, in order: each answer is asked "why?" again.
    pub whys: Vec<Why>,
    /// The root cause they end at (1–500 bytes).
    pub conclusion: String,
    /// The version of the record it replaces (0 for the first).
    #[serde(default)]
    pub version: i64,
}

/// Why a record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootCauseError {
    /// Too few or too many whys.
    #[error("whys: 1 to 5, not {0}")]
    Count(usize),
    /// A text is empty or too long.
    #[error("{field} {index}: 1 to {max} bytes, not {len}")]
    Length {
        /// Which field.
        field: &'static str,
        /// Which why (1-based); 0 for the conclusion.
        index: usize,
        /// Its limit.
        max: usize,
        /// Its length, trimmed.
        len: usize,
    },
    /// The evidence is not a link.
    #[error(
        "evidence {index}: {link:?} is not a desk path (/desk/…, /api/v1/…) or an https:// address"
    )]
    BadLink {
        /// Which why (1-based).
        index: usize,
        /// What was given.
        link: String,
    },
}

fn text(field: &'static str, index: usize, v: &str, max: usize) -> Result<String, RootCauseError> {
    let t = v.trim();
    if t.is_empty() || t.len() > max {
        return Err(RootCauseError::Length {
            field,
            index,
            max,
            len: t.len(),
        });
    }
    Ok(t.to_owned())
}

/// Whether `link` points at evidence a reader can open: the desk's own pages and API,
/// or a web address; nothing that could run script.
pub fn is_evidence_link(link: &str) -> bool {
    let ok_chars = !link.is_empty()
        && link.len() <= 500
        && link
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '<' | '>' | '\\' | '`'));
    ok_chars
        && (link.starts_with("/desk/")
            || link.starts_with("/api/v1/")
            || link.starts_with("https://")
            || link.starts_with("http://"))
}

/// The record, trimmed, or why it is refused.
pub fn check(r: &NewRootCause) -> Result<(Vec<Why>, String), RootCauseError> {
    if r.whys.is_empty() || r.whys.len() > 5 {
        return Err(RootCauseError::Count(r.whys.len()));
    }
    let whys = r
        .whys
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let index = i + 1;
            let evidence = w.evidence.trim();
            if !is_evidence_link(evidence) {
                return Err(RootCauseError::BadLink {
                    index,
                    link: evidence.to_owned(),
                });
            }
            Ok(Why {
                why: text("why", index, &w.why, 300)?,
                answer: text("answer", index, &w.answer, 500)?,
                evidence: evidence.to_owned(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((whys, text("conclusion", 0, &r.conclusion, 500)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why(n: usize) -> Why {
        Why {
            why: format!("Why {n}?"),
            answer: format!(" Because {n}. "),
            evidence: "/desk/fleet".into(),
        }
    }

    #[test]
    fn a_record_has_one_to_five_linked_answers_and_a_conclusion() {
        let ok = NewRootCause {
            whys: (1..=5).map(why).collect(),
            conclusion: "A supplier changed the cell chemistry.".into(),
            version: 0,
        };
        let (whys, conclusion) = check(&ok).unwrap();
        assert_eq!(whys[0].answer, "Because 1.");
        assert_eq!(conclusion, "A supplier changed the cell chemistry.");
        let mut six = ok.clone();
        six.whys.push(why(6));
        assert_eq!(check(&six), Err(RootCauseError::Count(6)));
        let mut none = ok.clone();
        none.whys.clear();
        assert_eq!(check(&none), Err(RootCauseError::Count(0)));
        let mut empty = ok.clone();
        empty.whys[2].answer = " ".into();
        assert!(matches!(
            check(&empty),
            Err(RootCauseError::Length {
                field: "answer",
                index: 3,
                ..
            })
        ));
        for link in [
            "javascript:alert(1)",
            "desk/fleet",
            "/etc/passwd",
            "https://x/\"onmouseover=",
            "",
        ] {
            let mut bad = ok.clone();
            bad.whys[1].evidence = link.into();
            assert!(
                matches!(check(&bad), Err(RootCauseError::BadLink { index: 2, .. })),
                "{link:?}"
            );
        }
        for link in [
            "/api/v1/cohorts",
            "/desk/devices/d-17",
            "https://wiki.example/rca/12",
        ] {
            assert!(is_evidence_link(link), "{link}");
        }
    }
}
