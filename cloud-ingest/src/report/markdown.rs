//! The report as Markdown, for pasting into a ticket, a wiki or a mail: the same sections
//! as the HTML, tables as pipe tables, the charts as their one-line summaries. Pure.

use std::fmt::Write;

use super::document::{day_time, q_text, Report};
use super::figures;
use super::html::{change_text, link, value_text};

/// A table cell: pipes and line breaks would break the table.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.digits$}"))
}

/// The report in Markdown, its links to the desk under `base`.
pub fn document(r: &Report, base: &str) -> String {
    let mut m = String::new();
    let _ = writeln!(m, "# After-sales review {}\n", r.period);
    let _ = writeln!(
        m,
        "Compared with {}. Made {} UTC; schema {}.\n",
        r.previous_period,
        day_time(r.generated_ms),
        r.schema
    );
    let _ = writeln!(m, "> {}\n", cell(&r.summary));

    let _ = writeln!(m, "## Key figures\n");
    let _ = writeln!(
        m,
        "| Figure | {} | {} | Change |",
        r.period, r.previous_period
    );
    let _ = writeln!(m, "|---|---:|---:|---:|");
    for k in &r.kpis {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} |",
            cell(&k.label),
            value_text(k, k.value),
            value_text(k, k.previous),
            change_text(k).0
        );
    }

    let _ = writeln!(m, "\n## Problem frequency\n");
    let _ = writeln!(m, "{}\n", figures::problems(r).summary);
    let _ = writeln!(m, "| Problem | Tickets | Faults confirmed | Kept out |");
    let _ = writeln!(m, "|---|---:|---:|---:|");
    for p in &r.problems {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} |",
            p.problem.as_str(),
            p.tickets,
            p.confirmed,
            p.excluded
        );
    }

    let _ = writeln!(m, "\n## Cohorts\n");
    let excluded: u64 = r.excluded.iter().map(|e| e.outcomes).sum();
    let _ = writeln!(
        m,
        "Failures per device-year against the fleet at the same ages; q-values over {} tests; {excluded} special-case outcomes kept out. **Bold**: flagged.\n",
        r.cohort_tests
    );
    if r.cohorts.is_empty() {
        let _ = writeln!(m, "No cohort has a confirmed failure yet.");
    } else {
        let _ = writeln!(
            m,
            "| Dimension | Cohort | Problem | Devices | Failures | Expected | Rate / yr | 95 % interval | Shrunk | q |"
        );
        let _ = writeln!(m, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for c in &r.cohorts {
            let name = if c.flagged {
                format!("**{}**", cell(&c.cohort))
            } else {
                cell(&c.cohort)
            };
            let _ = writeln!(
                m,
                "| {} | {name} | {} | {} | {} | {:.1} | {:.3} | {:.3}–{:.3} | {:.3} | {} |",
                c.dimension.as_str(),
                c.problem.as_str(),
                c.devices,
                c.failures,
                c.expected,
                c.rate,
                c.rate_low,
                c.rate_high,
                c.shrunk_rate,
                q_text(c.q_value)
            );
        }
    }
    if !r.firmware.is_empty() {
        let _ = writeln!(
            m,
            "\n| Firmware | Before it | Restarts / day | Before | Crash-free h / day | q |"
        );
        let _ = writeln!(m, "|---|---|---:|---:|---:|---:|");
        for f in &r.firmware {
            let _ = writeln!(
                m,
                "| {} | {} | {:.4} | {} | {:.2} | {} |",
                cell(&f.firmware),
                f.predecessor.as_deref().map_or("—".into(), cell),
                f.restarts_per_device_day,
                opt(f.predecessor_restarts_per_device_day, 4),
                f.crash_free_hours_per_device_day,
                if f.predecessor.is_some() {
                    q_text(f.q_value)
                } else {
                    "—".into()
                }
            );
        }
    }
    if !r.flags.is_empty() {
        let _ = writeln!(m, "\nFlags standing:\n");
        for f in &r.flags {
            let _ = writeln!(
                m,
                "- [{} {}{}]({}): {}; {}{}",
                f.kind.as_str().replace('_', " "),
                f.cohort,
                f.problem
                    .map_or_else(String::new, |p| format!(", {}", p.as_str())),
                link(base, &f.link),
                f.evidence,
                f.status,
                if f.new { " (new)" } else { "" }
            );
        }
    }

    let _ = writeln!(m, "\n## Trend\n");
    let _ = writeln!(m, "{}\n", figures::trend(r).summary);
    let _ = writeln!(
        m,
        "| Period | Tickets | Per 1,000 | Faults | Per 1,000 | Stepped up |"
    );
    let _ = writeln!(m, "|---|---:|---:|---:|---:|---|");
    for p in &r.trend {
        let step = match (p.tickets_step_up, p.faults_step_up) {
            (true, true) => "tickets, faults",
            (true, false) => "tickets",
            (false, true) => "faults",
            _ => "",
        };
        let _ = writeln!(
            m,
            "| {} | {} | {:.1} | {} | {:.1} | {step} |",
            p.period, p.tickets, p.tickets_per_1000, p.faults, p.faults_per_1000
        );
    }

    let _ = writeln!(m, "\n## Notable cases\n");
    if r.notable.is_empty() {
        let _ = writeln!(m, "No ticket in this period.");
    }
    for c in &r.notable {
        let _ = writeln!(
            m,
            "- [{}]({}) ({}): {}",
            c.ticket_ref,
            link(base, &c.link),
            c.device_id,
            c.story
        );
    }

    let _ = writeln!(m, "\n## Root causes\n");
    if r.root_causes.is_empty() {
        let _ = writeln!(m, "No root-cause record was written for a standing flag.");
    }
    for rc in &r.root_causes {
        let _ = writeln!(m, "**{}** (by {})\n", rc.subject, rc.written_by);
        for (i, w) in rc.whys.iter().enumerate() {
            let _ = writeln!(
                m,
                "{}. *{}* {} ([evidence]({}))",
                i + 1,
                w.why,
                w.answer,
                link(base, &w.evidence)
            );
        }
        let _ = writeln!(m, "\nRoot cause: {}\n", rc.conclusion);
    }

    let _ = writeln!(m, "\n## Customer satisfaction\n");
    let s = &r.satisfaction;
    if s.ratings == 0 {
        let _ = writeln!(m, "No customer rated a ticket in this period.");
    } else {
        let _ = writeln!(
            m,
            "{} ratings. Result {}, speed {}, service {}.\n",
            s.ratings,
            opt(s.result, 2),
            opt(s.speed, 2),
            opt(s.service, 2)
        );
        for c in &s.comments {
            let _ = writeln!(m, "> “{}” — {}\n", cell(&c.text), c.ticket_ref);
        }
    }

    let _ = writeln!(m, "\n## Action items\n");
    if r.actions.is_empty() {
        let _ = writeln!(m, "No action item is open or due for review.");
    } else {
        let _ = writeln!(
            m,
            "| Problem | Owner | Due | Review | KPI | Target | Now | Baseline | Met |"
        );
        let _ = writeln!(m, "|---|---|---|---|---|---|---:|---:|---|");
        for a in &r.actions {
            let review = serde_json::to_value(a.review)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let _ = writeln!(
                m,
                "| {}{} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&a.problem),
                if a.raised_here { "" } else { " (carried over)" },
                cell(&a.owner),
                a.due,
                review.replace('_', " "),
                cell(&a.kpi),
                cell(&a.target),
                opt(a.value, 2),
                opt(a.baseline, 2),
                match a.met {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "—",
                }
            );
        }
    }
    m
}
