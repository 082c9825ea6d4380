//! The evidence charts: a device's last days drawn on the server as SVG (plotters), the
//! scoring moment marked. Pure: a [`Trend`] in, SVG text out; the browser sets the text.

use models::features::DAY_MS;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::trend::{Day, Trend};

/// One chart: its title, the SVG and a sentence saying what it shows (for screen readers
/// and for the page when the SVG is not shown).
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// What it shows.
    pub title: &'static str,
    /// The drawing, an `<svg>` element.
    pub svg: String,
    /// The figures in words.
    pub summary: String,
}

const W: u32 = 640;
const H: u32 = 260;
pub(crate) const FONT: &str = "sans-serif";
pub(crate) const SCORED: RGBColor = RGBColor(200, 30, 30);
// Restart reasons' colours, in the order reasons are first met; more reasons reuse them.
pub(crate) const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
];

/// The four evidence charts of `t`: state of health, battery drops, unexpected restarts by
/// reason, temperature.
pub fn evidence(t: &Trend) -> Vec<Chart> {
    vec![soh(t), drops(t), restarts(t), temperature(t)]
}

/// Draws with `f` on a fresh canvas; a drawing error (never expected: the backend writes
/// to a string) leaves the chart's summary to speak for it.
pub(crate) fn draw(
    size: (u32, u32),
    f: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<(), String>,
) -> String {
    let mut svg = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|_| f(&root))
            .and_then(|_| root.present().map_err(|e| e.to_string()))
    };
    match drawn {
        Ok(()) => svg,
        Err(e) => {
            tracing::warn!(error = %e, "a chart could not be drawn");
            String::new()
        }
    }
}

fn date(start_ms: u64, x: f64) -> String {
    let ms = start_ms as i64 + (x * DAY_MS as f64) as i64;
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%m-%d").to_string())
        .unwrap_or_default()
}

/// Where the scoring moment falls on the day axis (days from the window's start).
fn scored_x(t: &Trend) -> Option<f64> {
    t.scored_ms
        .map(|s| (s - t.start_ms()) as f64 / DAY_MS as f64)
}

pub(crate) type Ctx<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A chart's frame: day axis with dates, the y axis from `y0` to `y1` described by `unit`.
fn frame<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    t: &Trend,
    title: &str,
    unit: &str,
    (y0, y1): (f64, f64),
) -> Result<Ctx<'a, 'b>, String> {
    let n = t.days.len() as f64;
    let start = t.start_ms();
    let mut c = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(8)
        .margin_right(28)
        .x_label_area_size(30)
        .y_label_area_size(52)
        .build_cartesian_2d(0.0..n, y0..y1)
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_labels(6)
        .y_labels(5)
        .x_label_formatter(&|x| date(start, *x))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc(unit)
        .light_line_style(WHITE)
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(c)
}

/// The scoring moment: a vertical line across the chart, in the legend as "scored".
fn mark_scored(c: &mut Ctx<'_, '_>, t: &Trend, (y0, y1): (f64, f64)) -> Result<(), String> {
    if let Some(x) = scored_x(t) {
        c.draw_series(std::iter::once(PathElement::new(
            vec![(x, y0), (x, y1)],
            SCORED.stroke_width(2),
        )))
        .map_err(|e| e.to_string())?
        .label("scored")
        .legend(|(x, y)| PathElement::new(vec![(x, y - 6), (x, y + 6)], SCORED.stroke_width(2)));
    }
    Ok(())
}

pub(crate) fn legend<'a, 'b: 'a>(c: &mut Ctx<'a, 'b>) -> Result<(), String> {
    legend_at(c, SeriesLabelPosition::UpperLeft)
}

/// The legend at `at`.
pub(crate) fn legend_at<'a, 'b: 'a>(
    c: &mut Ctx<'a, 'b>,
    at: SeriesLabelPosition,
) -> Result<(), String> {
    c.configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 14))
        .draw()
        .map_err(|e| e.to_string())
}

/// Bars of `value` per day, stacked when a day has several parts.
fn bar(x: usize, from: f64, to: f64, color: RGBColor) -> Rectangle<(f64, f64)> {
    let x = x as f64;
    Rectangle::new([(x + 0.15, from), (x + 0.85, to)], color.filled())
}

pub(crate) fn upper(max: f64, floor: f64) -> f64 {
    // A little headroom above the highest figure, whole numbers for counts.
    (max * 1.15).max(floor).ceil()
}

fn soh(t: &Trend) -> Chart {
    let points: Vec<(f64, f64)> = t
        .days
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.soh_pct.map(|s| (i as f64 + 0.5, f64::from(s))))
        .collect();
    let low = points.iter().map(|p| p.1).fold(100.0, f64::min);
    let range = (((low - 5.0) / 5.0).floor() * 5.0).max(0.0);
    let range = (range, 100.0);
    let summary = match (points.first(), points.last()) {
        (Some(a), Some(b)) => format!(
            "State of health went from {:.1} % on {} to {:.1} % on {}.",
            a.1,
            date(t.start_ms(), a.0),
            b.1,
            date(t.start_ms(), b.0)
        ),
        _ => "No state of health was reported in these days.".to_owned(),
    };
    let svg = draw((W, H), |root| {
        let mut c = frame(root, t, "Battery state of health", "%", range)?;
        c.draw_series(LineSeries::new(
            points.iter().copied(),
            BLUE.stroke_width(2),
        ))
        .map_err(|e| e.to_string())?
        .label("state of health")
        .legend(|(x, y)| PathElement::new(vec![(x - 8, y), (x + 8, y)], BLUE.stroke_width(2)));
        c.draw_series(points.iter().map(|&p| Circle::new(p, 2, BLUE.filled())))
            .map_err(|e| e.to_string())?;
        mark_scored(&mut c, t, range)?;
        legend(&mut c)
    });
    Chart {
        title: "Battery state of health",
        svg,
        summary,
    }
}

fn drops(t: &Trend) -> Chart {
    let total: u32 = t.days.iter().map(|d| d.battery_drops).sum();
    let max = t.days.iter().map(|d| d.battery_drops).max().unwrap_or(0);
    let range = (0.0, upper(f64::from(max), 3.0));
    let color = RGBColor(230, 140, 20);
    let svg = draw((W, H), |root| {
        let mut c = frame(root, t, "Battery drops per day", "drops", range)?;
        c.draw_series(
            t.days
                .iter()
                .enumerate()
                .filter(|(_, d)| d.battery_drops > 0)
                .map(|(i, d)| bar(i, 0.0, f64::from(d.battery_drops), color)),
        )
        .map_err(|e| e.to_string())?
        .label("battery drops")
        .legend(move |(x, y)| Rectangle::new([(x - 6, y - 5), (x + 6, y + 5)], color.filled()));
        mark_scored(&mut c, t, range)?;
        legend(&mut c)
    });
    Chart {
        title: "Battery drops per day",
        svg,
        summary: format!(
            "{total} sudden battery drop{} in {} days, at most {max} in a day.",
            plural(total),
            t.days.len()
        ),
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The reasons met in `days`, most frequent first (ties by name).
fn reasons(days: &[Day]) -> Vec<(String, u32)> {
    let mut all = std::collections::BTreeMap::<&str, u32>::new();
    for d in days {
        for (r, n) in &d.restarts {
            *all.entry(r).or_default() += n;
        }
    }
    let mut v: Vec<(String, u32)> = all.into_iter().map(|(r, n)| (r.to_owned(), n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

fn restarts(t: &Trend) -> Chart {
    let reasons = reasons(&t.days);
    let max = t.days.iter().map(Day::restart_count).max().unwrap_or(0);
    let range = (0.0, upper(f64::from(max), 3.0));
    let svg = draw((W, H), |root| {
        let mut c = frame(
            root,
            t,
            "Unexpected restarts per day, by reason",
            "restarts",
            range,
        )?;
        for (k, (reason, _)) in reasons.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            // Each reason's bars sit on the reasons before it that day.
            let bars = t.days.iter().enumerate().filter_map(|(i, d)| {
                let n = *d.restarts.get(reason)?;
                let below: u32 = reasons[..k]
                    .iter()
                    .filter_map(|(r, _)| d.restarts.get(r))
                    .sum();
                Some(bar(i, f64::from(below), f64::from(below + n), color))
            });
            c.draw_series(bars)
                .map_err(|e| e.to_string())?
                .label(reason.replace('_', " "))
                .legend(move |(x, y)| {
                    Rectangle::new([(x - 6, y - 5), (x + 6, y + 5)], color.filled())
                });
        }
        mark_scored(&mut c, t, range)?;
        legend(&mut c)
    });
    let summary = if reasons.is_empty() {
        "No unexpected restarts in these days.".to_owned()
    } else {
        let parts: Vec<String> = reasons
            .iter()
            .map(|(r, n)| format!("{n} {}", r.replace('_', " ")))
            .collect();
        format!("Unexpected restarts: {}.", parts.join(", "))
    };
    Chart {
        title: "Unexpected restarts per day, by reason",
        svg,
        summary,
    }
}

fn temperature(t: &Trend) -> Chart {
    let series = |f: fn(&Day) -> Option<f32>| -> Vec<(f64, f64)> {
        t.days
            .iter()
            .enumerate()
            .filter_map(|(i, d)| f(d).map(|v| (i as f64 + 0.5, f64::from(v))))
            .collect()
    };
    let max = series(|d| d.temp_max_c);
    let mean = series(|d| d.temp_mean_c);
    let hi = max
        .iter()
        .chain(&mean)
        .map(|p| p.1)
        .fold(f64::MIN, f64::max);
    let lo = max
        .iter()
        .chain(&mean)
        .map(|p| p.1)
        .fold(f64::MAX, f64::min);
    let range = if max.is_empty() && mean.is_empty() {
        (0.0, 50.0)
    } else {
        (
            ((lo - 5.0) / 5.0).floor() * 5.0,
            ((hi + 5.0) / 5.0).ceil() * 5.0,
        )
    };
    let hot = RGBColor(210, 60, 40);
    let warm = RGBColor(240, 160, 60);
    let svg = draw((W, H), |root| {
        let mut c = frame(root, t, "Temperature", "°C", range)?;
        c.draw_series(LineSeries::new(max.iter().copied(), hot.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("daily highest")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x - 8, y), (x + 8, y)], hot.stroke_width(2))
            });
        c.draw_series(LineSeries::new(mean.iter().copied(), warm.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("daily mean")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x - 8, y), (x + 8, y)], warm.stroke_width(2))
            });
        mark_scored(&mut c, t, range)?;
        legend(&mut c)
    });
    let summary = if max.is_empty() {
        "No temperature was reported in these days.".to_owned()
    } else {
        format!(
            "The highest temperature was {:.1} °C; daily means ranged from {:.1} to {:.1} °C.",
            max.iter().map(|p| p.1).fold(f64::MIN, f64::max),
            mean.iter().map(|p| p.1).fold(f64::MAX, f64::min),
            mean.iter().map(|p| p.1).fold(f64::MIN, f64::max),
        )
    };
    Chart {
        title: "Temperature",
        svg,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trend(days: Vec<Day>, scored_ms: Option<u64>) -> Trend {
        Trend {
            days,
            scored_ms,
            unreadable: 0,
            truncated: false,
        }
    }

    fn days(n: u64) -> Vec<Day> {
        let start = 1_699_920_000_000 - 1_699_920_000_000 % DAY_MS;
        (0..n)
            .map(|i| Day {
                start_ms: start + i * DAY_MS,
                ..Day::default()
            })
            .collect()
    }

    #[test]
    fn each_chart_is_an_svg_marking_the_score_and_naming_its_figures() {
        let mut d = days(30);
        d[3].soh_pct = Some(91.0);
        d[20].soh_pct = Some(84.5);
        d[20].battery_drops = 4;
        d[21].restarts.insert("brown_out".into(), 3);
        d[21].restarts.insert("kernel_panic".into(), 1);
        d[22].restarts.insert("brown_out".into(), 2);
        d[21].temp_max_c = Some(47.0);
        d[21].temp_mean_c = Some(31.0);
        let scored = d[22].start_ms + DAY_MS / 2;
        let t = trend(d, Some(scored));
        let charts = evidence(&t);
        assert_eq!(charts.len(), 4);
        for c in &charts {
            assert!(
                c.svg.starts_with("<svg"),
                "{}: {}",
                c.title,
                &c.svg[..80.min(c.svg.len())]
            );
            assert!(c.svg.contains("viewBox"), "{} scales", c.title);
            assert!(
                c.svg.contains(">\nscored\n<") || c.svg.contains(">scored<"),
                "{} marks the score",
                c.title
            );
        }
        assert!(charts[0].summary.contains("91.0 %") && charts[0].summary.contains("84.5 %"));
        assert!(charts[1].summary.starts_with("4 sudden battery drops"));
        // Brown-outs lead (5 against 1), both in the legend.
        assert_eq!(
            charts[2].summary,
            "Unexpected restarts: 5 brown out, 1 kernel panic."
        );
        assert!(charts[2].svg.contains("brown out") && charts[2].svg.contains("kernel panic"));
        assert!(charts[3].summary.contains("47.0 °C"));
    }

    #[test]
    fn a_quiet_device_gets_empty_charts_that_say_so_and_no_mark() {
        let t = trend(days(30), None);
        let charts = evidence(&t);
        assert!(charts
            .iter()
            .all(|c| c.svg.starts_with("<svg") && !c.svg.contains("scored")));
        assert_eq!(charts[2].summary, "No unexpected restarts in these days.");
        assert!(charts[0].summary.starts_with("No state of health"));
        assert!(charts[3].summary.starts_with("No temperature"));
    }

    #[test]
    fn stacked_restart_bars_sit_on_each_other() {
        let mut d = days(2);
        d[0].restarts.insert("brown_out".into(), 2);
        d[0].restarts.insert("watchdog".into(), 1);
        let r = reasons(&d);
        assert_eq!(r, vec![("brown_out".into(), 2), ("watchdog".into(), 1)]);
        // Three restarts that day: the axis reaches past them.
        assert!(upper(3.0, 3.0) >= 4.0);
        assert_eq!(upper(0.0, 3.0), 3.0);
    }
}
