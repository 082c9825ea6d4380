//! Outcomes as training labels: each resolved ticket's feature vector, as scored when it
//! opened, with the label its outcome gives, written as the CSV `models train --csv`
//! reads (docs/features.md, "Labels from the desk"). Pure: tickets in, rows and lines out.

use std::collections::BTreeMap;

use models::schema::{FEATURES, FEATURE_COUNT};
use serde::Serialize;

use super::work::Outcome;
use crate::store::tickets::ScoredFeatures;

/// A closed ticket with an outcome, as the store gives it to the export.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeTicket {
    /// The ticket's reference.
    pub ticket_ref: String,
    /// The device.
    pub device_id: String,
    /// The problem it opened for.
    pub problem: String,
    /// The outcome's stored name.
    pub outcome: String,
    /// The confirmed fault's category, when given.
    pub outcome_category: Option<String>,
    /// When it was resolved (service clock), ms.
    pub closed_ms: Option<u64>,
    /// Device time the features were scored at (the evidence's `scored_at_ms`).
    pub scored_ms: Option<u64>,
    /// When it opened (service clock), ms: the time of a row without `scored_ms`.
    pub opened_ms: u64,
    /// The model that scored it.
    pub model_version: String,
    /// The feature vector it opened on, JSON ([`ScoredFeatures`]); older tickets have none.
    pub features: Option<String>,
}

/// Why a ticket gives no row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// The customer declined or traded the device in: nothing was learnt about a fault.
    NoVerdict,
    /// Opened before tickets kept their feature vector.
    NoFeatures,
    /// Scored on another feature schema: its columns would not line up.
    OtherSchema,
    /// The stored vector or outcome cannot be read.
    Unreadable,
}

/// One training row.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRow {
    /// The device.
    pub device_id: String,
    /// Device time of the features, ms.
    pub ts_ms: u64,
    /// Whether a fault was confirmed.
    pub label: bool,
    /// The confirmed fault's category (its own, or the ticket's problem); empty for 0.
    pub mode: Option<String>,
    /// The ticket.
    pub ticket_ref: String,
    /// The outcome's name.
    pub outcome: String,
    /// When it was resolved, ms.
    pub resolved_ms: Option<u64>,
    /// The model that scored it.
    pub model_version: String,
    /// The features, in schema order.
    pub values: [f64; FEATURE_COUNT],
    /// The devices the row stands for: 1, or 1 / the share drawn for a random check.
    pub weight: f64,
}

/// The row ticket `t` gives under the schema with fingerprint `schema`, or why none.
pub fn row_of(t: &OutcomeTicket, schema: &str) -> Result<LabelRow, Skip> {
    let outcome: Outcome = t.outcome.parse().map_err(|_| Skip::Unreadable)?;
    // Damage by the user says nothing about whether the device would have failed.
    if matches!(
        outcome,
        Outcome::CustomerDeclined | Outcome::TradedIn | Outcome::UserDamage | Outcome::Abuse
    ) {
        return Err(Skip::NoVerdict);
    }
    let (values, weight) = vector(t.features.as_deref(), schema)?;
    let label = outcome.confirms_fault();
    Ok(LabelRow {
        device_id: t.device_id.clone(),
        ts_ms: t.scored_ms.unwrap_or(t.opened_ms),
        label,
        mode: label.then(|| {
            t.outcome_category
                .clone()
                .unwrap_or_else(|| t.problem.clone())
        }),
        ticket_ref: t.ticket_ref.clone(),
        outcome: outcome.as_str().to_owned(),
        resolved_ms: t.closed_ms,
        model_version: t.model_version.clone(),
        values,
        weight,
    })
}

/// A stored feature vector under the schema `schema` and its row's weight, or why it
/// cannot be used.
fn vector(stored: Option<&str>, schema: &str) -> Result<([f64; FEATURE_COUNT], f64), Skip> {
    let stored = stored.ok_or(Skip::NoFeatures)?;
    let f: ScoredFeatures = serde_json::from_str(stored).map_err(|_| Skip::Unreadable)?;
    if f.schema != schema {
        return Err(Skip::OtherSchema);
    }
    let values: [f64; FEATURE_COUNT] = f.values.try_into().map_err(|_| Skip::Unreadable)?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err(Skip::Unreadable);
    }
    let weight = f.sample_weight.unwrap_or(1.0);
    if !(weight.is_finite() && weight > 0.0) {
        return Err(Skip::Unreadable);
    }
    Ok((values, weight))
}

/// A graded trade-in, as the store gives it to the export: its ticket's features as
/// scored when quoted, and what the bench found.
#[derive(Debug, Clone, PartialEq)]
pub struct GradedTradeIn {
    /// The ticket as the label export reads it (outcome `graded`).
    pub ticket: OutcomeTicket,
    /// Battery health telemetry showed when quoted, %.
    pub quoted_soh: Option<f64>,
    /// The bench grade.
    pub graded: crate::tradein::lifecycle::Graded,
}

/// A trade-in's row: the label row (1 when the bench confirmed a fault: functional
/// grade 3 or worse, or the battery below `battery_floor_pct`; its mode `battery` when
/// the battery failed, else the ticket's problem) and the bench columns.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    /// The label row.
    pub row: LabelRow,
    /// Bench battery health, %.
    pub bench_battery_pct: Option<u8>,
    /// Telemetry's at quote time, %.
    pub quoted_soh_pct: Option<f64>,
    /// Functional grade 0–9.
    pub functional: u8,
    /// Cosmetic grade A–E.
    pub cosmetic: &'static str,
    /// The route the rules gave.
    pub route: &'static str,
}

/// The row a graded trade-in gives, or why none.
pub fn bench_row_of(
    t: &GradedTradeIn,
    schema: &str,
    battery_floor_pct: u8,
) -> Result<BenchRow, Skip> {
    let (values, weight) = vector(t.ticket.features.as_deref(), schema)?;
    let g = &t.graded.grade;
    let battery_failed = g.battery_pct.is_some_and(|b| b < battery_floor_pct);
    let label = g.functional.get() >= 3 || battery_failed;
    Ok(BenchRow {
        row: LabelRow {
            device_id: t.ticket.device_id.clone(),
            ts_ms: t.ticket.scored_ms.unwrap_or(t.ticket.opened_ms),
            label,
            mode: label.then(|| {
                if battery_failed {
                    "battery".to_owned()
                } else {
                    t.ticket.problem.clone()
                }
            }),
            ticket_ref: t.ticket.ticket_ref.clone(),
            outcome: "graded".into(),
            resolved_ms: Some(t.graded.at_ms),
            model_version: t.ticket.model_version.clone(),
            values,
            weight,
        },
        bench_battery_pct: g.battery_pct,
        quoted_soh_pct: t.quoted_soh,
        functional: g.functional.get(),
        cosmetic: g.cosmetic.as_str(),
        route: t.graded.route.as_str(),
    })
}

/// The trade-ins' CSV header: [`header`], then the bench columns.
pub fn bench_header() -> String {
    format!(
        "{},bench_battery_pct,quoted_soh_pct,battery_gap_pts,functional_grade,cosmetic_grade,route",
        header()
    )
}

/// A trade-in row as a CSV line (no line break).
pub fn bench_line(r: &BenchRow) -> String {
    let gap = match (r.bench_battery_pct, r.quoted_soh_pct) {
        (Some(b), Some(q)) => (f64::from(b) - q).to_string(),
        _ => String::new(),
    };
    format!(
        "{},{},{},{gap},{},{},{}",
        line(&r.row),
        r.bench_battery_pct
            .map(|b| b.to_string())
            .unwrap_or_default(),
        r.quoted_soh_pct.map(|q| q.to_string()).unwrap_or_default(),
        r.functional,
        r.cosmetic,
        r.route
    )
}

/// What an export holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Rows written.
    pub rows: u64,
    /// Of which labelled 1.
    pub positives: u64,
    /// Tickets with an outcome that gave no row, by why.
    pub skipped: BTreeMap<Skip, u64>,
}

impl Tally {
    /// Counts one ticket's result.
    pub fn count(&mut self, r: &Result<LabelRow, Skip>) {
        match r {
            Ok(row) => {
                self.rows += 1;
                self.positives += u64::from(row.label);
            }
            Err(s) => *self.skipped.entry(*s).or_default() += 1,
        }
    }
}

/// The columns before the features.
const LEAD: [&str; 8] = [
    "device_id",
    "ts",
    "label",
    "mode",
    "ticket_ref",
    "outcome",
    "resolved_ms",
    "weight",
];

/// The CSV header line: [`LEAD`], then `model_version`, then every feature by name.
pub fn header() -> String {
    let mut cols: Vec<&str> = LEAD.to_vec();
    cols.push("model_version");
    cols.extend(FEATURES.iter().map(|f| f.name));
    cols.join(",")
}

/// A CSV field: quoted (RFC 4180) only when it holds a comma, quote or line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// A row as a CSV line (no line break).
pub fn line(r: &LabelRow) -> String {
    let mut cells = vec![
        field(&r.device_id),
        r.ts_ms.to_string(),
        u8::from(r.label).to_string(),
        field(r.mode.as_deref().unwrap_or("")),
        field(&r.ticket_ref),
        field(&r.outcome),
        r.resolved_ms.map(|t| t.to_string()).unwrap_or_default(),
        r.weight.to_string(),
        field(&r.model_version),
    ];
    // `{}` on f64 prints the shortest text that reads back as the same number.
    cells.extend(r.values.iter().map(|v| v.to_string()));
    cells.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::schema::schema_fingerprint;

    #[test]
    fn a_graded_trade_in_is_labelled_by_what_the_bench_found() {
        use crate::tradein::grading::{BenchGrade, Cosmetic, Functional};
        use crate::tradein::lifecycle::Graded;
        use crate::tradein::routing::Route;
        let schema = schema_fingerprint();
        let graded = |f: u8, b: Option<u8>| GradedTradeIn {
            ticket: ticket("traded_in", Some(vector(&schema, 0.5))),
            quoted_soh: Some(88.0),
            graded: Graded {
                grade: BenchGrade {
                    functional: Functional::new(f).unwrap(),
                    cosmetic: Cosmetic::C,
                    battery_pct: b,
                    activation_lock_off: true,
                },
                labels: vec![],
                battery_gap: None,
                route: Route::Recycle,
                route_rule: String::new(),
                by: "rae".into(),
                at_ms: 9_000,
            },
        };
        // (functional, bench battery) → (label, mode)
        for (f, b, label, mode) in [
            (0, Some(90), false, None),
            (2, Some(80), false, None),
            // The ticket's problem (battery) when the battery passed.
            (3, Some(90), true, Some("battery")),
            (0, Some(79), true, Some("battery")),
            (0, None, false, None),
        ] {
            let r = bench_row_of(&graded(f, b), &schema, 80).unwrap();
            assert_eq!(r.row.label, label, "{f} {b:?}");
            assert_eq!(r.row.mode.as_deref(), mode);
            assert_eq!(r.row.outcome, "graded");
            assert_eq!(r.row.resolved_ms, Some(9_000));
        }
        let r = bench_row_of(&graded(1, Some(75)), &schema, 80).unwrap();
        let line = bench_line(&r);
        assert!(line.ends_with(",75,88,-13,1,C,recycle"), "{line}");
        assert_eq!(line.split(',').count(), bench_header().split(',').count());
        let mut other = graded(0, Some(90));
        other.ticket.features = Some(vector("other", 0.5));
        assert_eq!(bench_row_of(&other, &schema, 80), Err(Skip::OtherSchema));
        other.ticket.features = None;
        assert_eq!(bench_row_of(&other, &schema, 80), Err(Skip::NoFeatures));
    }

    fn ticket(outcome: &str, features: Option<String>) -> OutcomeTicket {
        OutcomeTicket {
            ticket_ref: "T-1".into(),
            device_id: "dev-1".into(),
            problem: "battery".into(),
            outcome: outcome.into(),
            outcome_category: None,
            closed_ms: Some(5_000),
            scored_ms: Some(1_000),
            opened_ms: 2_000,
            model_version: "forest-1".into(),
            features,
        }
    }

    fn vector(schema: &str, fill: f64) -> String {
        serde_json::to_string(&ScoredFeatures {
            schema: schema.into(),
            values: vec![fill; FEATURE_COUNT],
            sample_weight: None,
        })
        .unwrap()
    }

    #[test]
    fn outcomes_become_labels_and_the_rest_say_why_not() {
        let fp = schema_fingerprint();
        let v = Some(vector(&fp, 0.25));
        let yes = row_of(&ticket("battery_replaced", v.clone()), &fp).unwrap();
        assert!(yes.label);
        assert_eq!(yes.mode.as_deref(), Some("battery"), "the ticket's problem");
        assert_eq!(yes.ts_ms, 1_000, "the features' own time");
        let mut categorised = ticket("fault_confirmed", v.clone());
        categorised.outcome_category = Some("thermal".into());
        assert_eq!(
            row_of(&categorised, &fp).unwrap().mode.as_deref(),
            Some("thermal")
        );
        let no = row_of(&ticket("no_fault_found", v.clone()), &fp).unwrap();
        assert!(!no.label && no.mode.is_none());
        assert_eq!(no.weight, 1.0, "a scored ticket stands for itself");
        let sampled = |w: f64| {
            serde_json::to_string(&ScoredFeatures {
                schema: fp.clone(),
                values: vec![0.25; FEATURE_COUNT],
                sample_weight: Some(w),
            })
            .ok()
        };
        let drawn = row_of(&ticket("no_fault_found", sampled(500.0)), &fp).unwrap();
        assert_eq!(
            drawn.weight, 500.0,
            "a random check stands for the devices it was drawn from"
        );
        let cells: Vec<String> = line(&drawn).split(',').map(str::to_owned).collect();
        let at = header().split(',').position(|c| c == "weight").unwrap();
        assert_eq!(cells[at], "500");
        assert_eq!(
            row_of(&ticket("no_fault_found", sampled(0.0)), &fp),
            Err(Skip::Unreadable)
        );
        for o in ["customer_declined", "traded_in"] {
            assert_eq!(
                row_of(&ticket(o, v.clone()), &fp),
                Err(Skip::NoVerdict),
                "{o}"
            );
        }
        assert_eq!(
            row_of(&ticket("repaired", None), &fp),
            Err(Skip::NoFeatures)
        );
        assert_eq!(
            row_of(&ticket("repaired", Some(vector("other", 0.0))), &fp),
            Err(Skip::OtherSchema)
        );
        let short = serde_json::to_string(&ScoredFeatures {
            schema: fp.clone(),
            values: vec![1.0; 3],
            sample_weight: None,
        })
        .unwrap();
        assert_eq!(
            row_of(&ticket("repaired", Some(short)), &fp),
            Err(Skip::Unreadable)
        );
        assert_eq!(row_of(&ticket("mended", v), &fp), Err(Skip::Unreadable));
        let mut t = Tally::default();
        t.count(&Ok(yes));
        t.count(&Ok(no));
        t.count(&Err(Skip::NoVerdict));
        assert_eq!(
            (t.rows, t.positives, t.skipped[&Skip::NoVerdict]),
            (2, 1, 1)
        );
    }

    #[test]
    fn lines_match_the_header_and_quote_only_when_needed() {
        let fp = schema_fingerprint();
        let mut t = ticket("repaired", Some(vector(&fp, 0.1)));
        t.ticket_ref = "T-1,\"x\"".into();
        let row = row_of(&t, &fp).unwrap();
        let l = line(&row);
        assert!(
            l.starts_with("dev-1,1000,1,battery,\"T-1,\"\"x\"\"\",repaired,5000,1,forest-1,0.1,")
        );
        assert_eq!(header().split(',').count(), 9 + FEATURE_COUNT);
        assert!(header().starts_with("device_id,ts,label,mode,"));
        assert!(header().ends_with(FEATURES[FEATURE_COUNT - 1].name));
        // The plain line has exactly as many cells as the header.
        let plain = line(&row_of(&ticket("repaired", Some(vector(&fp, 0.1))), &fp).unwrap());
        assert_eq!(plain.split(',').count(), header().split(',').count());
    }
}
