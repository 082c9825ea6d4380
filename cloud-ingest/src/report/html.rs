//! The report as one self-contained HTML file: inline style and SVG, no script, no
//! external asset, laid out to print on A4. [`sections`] is shared with the desk's
//! report page. Pure: a [`Report`] in, markup out.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::document::{q_text, Report};
use super::figures;
use super::kpis::{Better, Kpi};
use crate::desk::charts::Chart;

/// The style of the file and the page section.
pub const STYLE: &str = r#"
.report { font: 15px/1.45 system-ui, sans-serif; color: #1b1f24; max-width: 980px; }
.report h1 { font-size: 1.6em; margin: 0 0 .2em; }
.report h2 { font-size: 1.2em; margin: 1.4em 0 .5em; border-bottom: 1px solid #d0d7de; padding-bottom: .2em; }
.report .meta { color: #57606a; margin: 0 0 1em; }
.report .report-summary { font-size: 1.05em; background: #f6f8fa; border-left: 4px solid #0969da; padding: .6em .9em; }
.report table { border-collapse: collapse; width: 100%; margin: .3em 0 .8em; font-size: .92em; }
.report th, .report td { text-align: left; padding: .25em .5em; border-bottom: 1px solid #eaeef2; vertical-align: top; }
.report td.n, .report th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.report .better { color: #1a7f37; } .report .worse { color: #cf222e; }
.report .flagged { font-weight: 600; color: #cf222e; }
.report figure { margin: .5em 0 1em; } .report figure svg { max-width: 100%; height: auto; }
.report figcaption { color: #57606a; font-size: .9em; }
.report .case { border: 1px solid #d0d7de; border-radius: 6px; padding: .5em .8em; margin: .5em 0; }
.report ol.whys li { margin: .2em 0; } .report .empty { color: #57606a; font-style: italic; }
.report blockquote { margin: .3em 0; padding-left: .8em; border-left: 3px solid #d0d7de; }
.report .review-overdue, .report .met-no { color: #cf222e; font-weight: 600; }
.report .review-done_on_time, .report .met-yes { color: #1a7f37; font-weight: 600; }
@media (max-width: 48rem) {
  .report table { display: block; overflow-x: auto; }
  .report figure svg { width: 100%; }
}
@media print {
  .report { max-width: none; font-size: 11pt; }
  .report section, .report table, .report figure, .report .case { break-inside: avoid; }
  .report h2 { break-after: avoid; }
  nav, form, .no-print { display: none !important; }
}
@page { size: A4; margin: 16mm; }
"#;

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e12 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A figure in its unit.
pub fn value_text(k: &Kpi, v: Option<f64>) -> String {
    let Some(v) = v else {
        return "—".to_owned();
    };
    match k.unit.as_str() {
        "share" => format!("{:.0} %", v * 100.0),
        "days" => format!("{v:.1} d"),
        "stars" => format!("{v:.2} / 5"),
        "kg" => format!("{v:.1} kg"),
        "money" => format!("{} {v:.2}", k.key.rsplit(':').next().unwrap_or("")),
        _ => num(v),
    }
}

/// The change from the previous period, and whether it is for the better.
pub fn change_text(k: &Kpi) -> (String, &'static str) {
    let (Some(v), Some(p)) = (k.value, k.previous) else {
        return ("—".to_owned(), "");
    };
    let d = v - p;
    let text = if k.unit == "share" {
        format!("{:+.0} pt", d * 100.0)
    } else if p != 0.0 {
        format!("{:+.0} %", (v / p - 1.0) * 100.0)
    } else if d == 0.0 {
        "±0".to_owned()
    } else {
        if d.fract() == 0.0 {
            format!("{d:+.0}")
        } else {
            format!("{d:+.2}")
        }
    };
    let class = match (k.better, d.partial_cmp(&0.0)) {
        (Better::Up, Some(std::cmp::Ordering::Greater))
        | (Better::Down, Some(std::cmp::Ordering::Less)) => "better",
        (Better::Up, Some(std::cmp::Ordering::Less))
        | (Better::Down, Some(std::cmp::Ordering::Greater)) => "worse",
        _ => "",
    };
    (text, class)
}

fn rate(v: f64) -> String {
    format!("{v:.3}")
}

fn figure(c: &Chart, id: &str) -> Markup {
    html! {
        figure id=(id) {
            (PreEscaped(&c.svg))
            figcaption { (c.summary) }
        }
    }
}

/// The report's sections, from its summary to its action items (the title is the
/// file's or the page's).
pub fn sections(r: &Report, base: &str) -> Markup {
    let link = |l: &str| link(base, l);
    let problems = figures::problems(r);
    let trend = figures::trend(r);
    html! {
        p.meta { "Compared with " (r.previous_period) ". Made " (super::document::day_time(r.generated_ms)) " UTC; schema " (r.schema) "." }
        p.report-summary #summary { (r.summary) }

        section #kpis {
            h2 { "Key figures" }
            table {
                thead { tr { th { "Figure" } th.n { (r.period) } th.n { (r.previous_period) } th.n { "Change" } } }
                tbody {
                    @for k in &r.kpis {
                        @let (change, class) = change_text(k);
                        tr data-key=(k.key) {
                            td { (k.label) }
                            td.n { (value_text(k, k.value)) }
                            td.n { (value_text(k, k.previous)) }
                            td.n class=(class) { (change) }
                        }
                    }
                }
            }
        }

        section #problems {
            h2 { "Problem frequency" }
            (figure(&problems, "problems-chart"))
            table {
                thead { tr { th { "Problem" } th.n { "Tickets" } th.n { "Faults confirmed" } th.n { "Kept out (no fault, damage, abuse)" } } }
                tbody { @for p in &r.problems {
                    tr { td { (p.problem.as_str()) } td.n { (p.tickets) } td.n { (p.confirmed) } td.n { (p.excluded) } }
                } }
            }
        }

        section #cohorts {
            h2 { "Cohorts" }
            p { "Failures per device-year with the exact 95 % interval, against the rest of the fleet at the same ages; q-values control the false discovery rate over all "
                (r.cohort_tests) " tests; the shrunk rate keeps a small cohort with one failure from topping the list. Confirmed faults only: "
                (r.excluded.iter().map(|e| e.outcomes).sum::<u64>()) " outcomes (no fault found, user damage, abuse) are kept out." }
            @if r.cohorts.is_empty() {
                p.empty { "No cohort has a confirmed failure yet." }
            } @else {
                table {
                    thead { tr { th { "Dimension" } th { "Cohort" } th { "Problem" } th.n { "Devices" } th.n { "Failures" } th.n { "Expected" }
                        th.n { "Rate / yr" } th.n { "95 % interval" } th.n { "Shrunk" } th.n { "q" } } }
                    tbody { @for c in &r.cohorts {
                        tr class=[c.flagged.then_some("flagged")] {
                            td { (c.dimension.as_str().replace('_', " ")) } td { (c.cohort) } td { (c.problem.as_str()) }
                            td.n { (c.devices) } td.n { (c.failures) } td.n { (format!("{:.1}", c.expected)) }
                            td.n { (rate(c.rate)) } td.n { (rate(c.rate_low)) "–" (rate(c.rate_high)) }
                            td.n { (rate(c.shrunk_rate)) } td.n { (q_text(c.q_value)) }
                        }
                    } }
                }
            }
            @if !r.firmware.is_empty() {
                h3 { "Firmware against its predecessor" }
                table {
                    thead { tr { th { "Version" } th { "Before it" } th.n { "Device-days" } th.n { "Restarts / day" } th.n { "Before" }
                        th.n { "Crash-free h / day" } th.n { "Before" } th.n { "q" } } }
                    tbody { @for f in &r.firmware {
                        tr {
                            td { (f.firmware) } td { (f.predecessor.as_deref().unwrap_or("—")) } td.n { (format!("{:.0}", f.device_days)) }
                            td.n { (format!("{:.4}", f.restarts_per_device_day)) }
                            td.n { (f.predecessor_restarts_per_device_day.map_or("—".into(), |v| format!("{v:.4}"))) }
                            td.n { (format!("{:.2}", f.crash_free_hours_per_device_day)) }
                            td.n { (f.predecessor_crash_free_hours_per_device_day.map_or("—".into(), |v| format!("{v:.2}"))) }
                            td.n { (if f.predecessor.is_some() { q_text(f.q_value) } else { "—".into() }) }
                        }
                    } }
                }
            }
            h3 { "Flags standing" }
            @if r.flags.is_empty() {
                p.empty { "No cohort is flagged." }
            } @else {
                ul #flags { @for f in &r.flags {
                    li {
                        a href=(link(&f.link)) { (f.kind.as_str().replace('_', " ") ) " " (f.cohort) }
                        @if let Some(p) = f.problem { ", " (p.as_str()) }
                        ": " (f.evidence) "; " (f.status)
                        @if f.new { " — " strong { "new in " (r.period) } }
                    }
                } }
            }
        }

        section #trend {
            h2 { "Trend" }
            (figure(&trend, "trend-chart"))
        }

        section #notable {
            h2 { "Notable cases" }
            @if r.notable.is_empty() { p.empty { "No ticket in this period." } }
            @for c in &r.notable {
                div.case {
                    strong { a href=(link(&c.link)) { (c.ticket_ref) } } " — " (c.device_id)
                    @if let Some(m) = &c.model { " (" (m) ")" }
                    p { (c.story) }
                }
            }
        }

        section #root-causes {
            h2 { "Root causes" }
            @if r.root_causes.is_empty() { p.empty { "No root-cause record was written for a standing flag." } }
            @for rc in &r.root_causes {
                div.case {
                    strong { a href=(link(&format!("/desk/flags/{}", rc.flag_id))) { (rc.subject) } } " — by " (rc.written_by)
                    ol.whys { @for w in &rc.whys {
                        li { em { (w.why) } " " (w.answer) " " a href=(link(&w.evidence)) { "evidence" } }
                    } }
                    p { strong { "Root cause: " } (rc.conclusion) }
                }
            }
        }

        section #satisfaction {
            h2 { "Customer satisfaction" }
            @let s = &r.satisfaction;
            @if s.ratings == 0 {
                p.empty { "No customer rated a ticket in this period." }
            } @else {
                p { (s.ratings) " ratings. Result " (stars(s.result)) ", speed " (stars(s.speed)) ", service " (stars(s.service)) "." }
                @for c in &s.comments {
                    blockquote { "“" (c.text) "” — " (c.ticket_ref) " (" (c.stars[0]) "/" (c.stars[1]) "/" (c.stars[2]) ")" }
                }
            }
        }

        section #actions {
            h2 { "Action items" }
            @if r.actions.is_empty() {
                p.empty { "No action item is open or due for review." }
            } @else {
                table {
                    thead { tr { th { "Problem" } th { "Owner" } th { "Due" } th { "Review" } th { "KPI" } th { "Target" } th.n { "Now" } th.n { "Baseline" } th { "Met" } } }
                    tbody { @for a in &r.actions {
                        tr data-action=(a.id) {
                            td { (a.problem) @if !a.raised_here { " " small { "(carried over)" } } }
                            td { (a.owner) } td { (a.due) }
                            td class={"review-" (review_name(a.review))} { (review_name(a.review).replace('_', " ")) }
                            td { (a.kpi) @if let Some(m) = &a.measure { br; small { code { (m) } } } }
                            td { (a.target) }
                            td.n { (a.value.map_or("—".into(), num)) }
                            td.n { (a.baseline.map_or("—".into(), num)) }
                            td class=[a.met.map(|m| if m { "met-yes" } else { "met-no" })] {
                                (match a.met { Some(true) => "yes", Some(false) => "no", None => "—" })
                            }
                        }
                    } }
                }
            }
        }
    }
}

/// A desk path under `base` (the desk's address; empty on the desk's own page); an
/// outside address as it is.
pub fn link(base: &str, l: &str) -> String {
    if l.starts_with('/') {
        format!("{}{l}", base.trim_end_matches('/'))
    } else {
        l.to_owned()
    }
}

fn stars(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.2}"))
}

fn review_name(r: super::actions::Review) -> &'static str {
    use super::actions::Review::*;
    match r {
        DoneOnTime => "done_on_time",
        DoneLate => "done_late",
        Dropped => "dropped",
        Overdue => "overdue",
        Pending => "pending",
    }
}

/// The whole file, its links to the desk under `base`.
pub fn document(r: &Report, base: &str) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "After-sales review " (r.period) }
                style { (PreEscaped(STYLE)) "body { margin: 24px; }" }
            }
            body { main.report { h1 { "After-sales review " (r.period) } (sections(r, base)) } }
        }
    }
    .into_string()
}
