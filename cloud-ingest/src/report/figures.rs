//! The report's charts, drawn on the server as SVG (plotters) so the HTML report needs
//! nothing else: problem frequency as bars, the trend as lines with its step-ups marked.
//! Pure: the report's data in, SVG text out.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::document::Report;
use crate::desk::charts::{draw, legend_at, upper, Chart, Ctx, FONT, PALETTE, SCORED};

const W: u32 = 720;
/// A trend series' value and step-up mark of a period.
type Pick = fn(&super::trend::TrendPoint) -> (f64, bool);
const H: u32 = 300;

/// A chart's frame: one slot per name along x (labelled at its middle), y from 0 to
/// `top` described by `desc` with `digits` decimals.
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    title: &str,
    names: &[&str],
    top: f64,
    (desc, digits): (&str, usize),
) -> Result<Ctx<'a, 'b>, String> {
    let n = names.len().max(1) as f64;
    let mut c = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(8)
        .margin_right(28)
        .x_label_area_size(30)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..n, 0.0..top)
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(names.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < names.len() {
                names[i].to_owned()
            } else {
                String::new()
            }
        })
        .y_labels(5)
        .y_label_formatter(&|y| format!("{y:.digits$}"))
        .y_desc(desc)
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(c)
}

/// Tickets opened and faults confirmed per problem category.
pub fn problems(r: &Report) -> Chart {
    let max = r
        .problems
        .iter()
        .map(|p| p.tickets.max(p.confirmed))
        .max()
        .unwrap_or(0);
    let top = upper(max as f64, 4.0);
    let names: Vec<&str> = r.problems.iter().map(|p| p.problem.as_str()).collect();
    let svg = draw((W, H), |root| {
        let mut c = frame(root, "Problems by category", &names, top, ("count", 0))?;
        let bars = |pick: fn(&super::kpis::ProblemCount) -> u64, off: f64, color: RGBColor| {
            r.problems
                .iter()
                .enumerate()
                .map(move |(i, p)| {
                    let x = i as f64 + off;
                    Rectangle::new([(x, 0.0), (x + 0.35, pick(p) as f64)], color.filled())
                })
                .collect::<Vec<_>>()
        };
        let (a, b) = (PALETTE[0], PALETTE[1]);
        c.draw_series(bars(|p| p.tickets, 0.12, a))
            .map_err(|e| e.to_string())?
            .label("tickets opened")
            .legend(move |(x, y)| Rectangle::new([(x - 6, y - 6), (x + 6, y + 6)], a.filled()));
        c.draw_series(bars(|p| p.confirmed, 0.52, b))
            .map_err(|e| e.to_string())?
            .label("faults confirmed")
            .legend(move |(x, y)| Rectangle::new([(x - 6, y - 6), (x + 6, y + 6)], b.filled()));
        legend_at(&mut c, SeriesLabelPosition::UpperRight)
    });
    let summary = r
        .problems
        .iter()
        .map(|p| {
            format!(
                "{}: {} tickets, {} faults confirmed",
                p.problem.as_str(),
                p.tickets,
                p.confirmed
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Chart {
        title: "Problems by category",
        svg,
        summary: format!("{summary}."),
    }
}

/// Tickets and faults per 1,000 devices over the trend's periods, step-ups circled.
pub fn trend(r: &Report) -> Chart {
    let t = &r.trend;
    let max = t
        .iter()
        .map(|p| p.tickets_per_1000.max(p.faults_per_1000))
        .fold(0.0, f64::max);
    let top = upper(max, 1.0);
    let names: Vec<&str> = t.iter().map(|p| p.period.as_str()).collect();
    let svg = draw((W, H), |root| {
        let mut c = frame(
            root,
            "Trend per 1,000 devices in service",
            &names,
            top,
            ("per 1,000", 1),
        )?;
        let series: [(&str, Pick, RGBColor); 2] = [
            (
                "tickets",
                |p| (p.tickets_per_1000, p.tickets_step_up),
                PALETTE[0],
            ),
            (
                "faults confirmed",
                |p| (p.faults_per_1000, p.faults_step_up),
                PALETTE[1],
            ),
        ];
        for (label, pick, color) in series {
            let pts: Vec<(f64, f64)> = t
                .iter()
                .enumerate()
                .map(|(i, p)| (i as f64 + 0.5, pick(p).0))
                .collect();
            c.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x - 8, y), (x + 8, y)], color.stroke_width(2))
                });
            c.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| e.to_string())?;
            c.draw_series(
                t.iter()
                    .enumerate()
                    .filter(|(_, p)| pick(p).1)
                    .map(|(i, p)| {
                        Circle::new((i as f64 + 0.5, pick(p).0), 8, SCORED.stroke_width(2))
                    }),
            )
            .map_err(|e| e.to_string())?;
        }
        if t.iter().any(|p| p.tickets_step_up || p.faults_step_up) {
            c.draw_series(std::iter::once(Circle::new(
                (-10.0, -10.0),
                0,
                SCORED.filled(),
            )))
            .map_err(|e| e.to_string())?
            .label("stepped up")
            .legend(|(x, y)| Circle::new((x, y), 6, SCORED.stroke_width(2)));
        }
        legend_at(&mut c, SeriesLabelPosition::UpperLeft)
    });
    let steps: Vec<String> = t
        .iter()
        .filter(|p| p.tickets_step_up || p.faults_step_up)
        .map(|p| {
            let what = match (p.tickets_step_up, p.faults_step_up) {
                (true, true) => "tickets and faults",
                (true, false) => "tickets",
                _ => "faults",
            };
            format!("{what} stepped up in {}", p.period)
        })
        .collect();
    let summary = match (t.first(), t.last()) {
        (Some(a), Some(b)) => format!(
            "Tickets per 1,000 devices went from {:.1} in {} to {:.1} in {}; {}.",
            a.tickets_per_1000,
            a.period,
            b.tickets_per_1000,
            b.period,
            if steps.is_empty() {
                "no period stepped up".to_owned()
            } else {
                steps.join(", ")
            }
        ),
        _ => "No period to show.".to_owned(),
    };
    Chart {
        title: "Trend per 1,000 devices in service",
        svg,
        summary,
    }
}
