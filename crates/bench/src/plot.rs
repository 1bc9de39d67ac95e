//! Plots the suite draws itself (SVG, so they diff and render anywhere): latency against load for
//! Sirr and its peers, and a surge over time.

use std::path::Path;

use plotters::prelude::*;

/// One system's figures on a latency-against-load plot.
pub struct Series {
    pub name: String,
    /// Every run: (delivered messages/s, p99 ms).
    pub points: Vec<(f64, f64)>,
    /// The median of each offered rate's runs, joined by a line.
    pub line: Vec<(f64, f64)>,
}

/// p99 latency (log scale) against delivered messages/s, one colour per system.
pub fn latency_vs_load(path: &Path, title: &str, series: &[Series]) -> anyhow::Result<()> {
    let all = || series.iter().flat_map(|s| s.points.iter().chain(&s.line));
    let xmax = all().map(|p| p.0).fold(1.0, f64::max) * 1.08;
    let ymax = all().map(|p| p.1).fold(1.0, f64::max) * 1.5;
    let ymin = all().map(|p| p.1).filter(|y| *y > 0.0).fold(ymax, f64::min) / 1.5;
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..xmax, (ymin.max(0.001)..ymax).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("delivered messages/s")
        .y_desc("p99 send-to-receipt latency, ms (log scale)")
        .x_label_formatter(&|x| format!("{:.0}k", x / 1000.0))
        .draw()?;
    for (k, s) in series.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        chart.draw_series(LineSeries::new(s.line.iter().copied(), color.stroke_width(2)))?;
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))?
            .label(s.name.clone())
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// One second of a surge.
pub struct SurgeSecond {
    pub t: f64,
    pub offered: f64,
    pub ok: f64,
    pub retry_after: f64,
    pub failed: f64,
    pub ok_p99_ms: Option<f64>,
}

/// A line of the surge plot: its label, colour and the figure it draws.
type Line = (&'static str, RGBColor, fn(&SurgeSecond) -> f64);

/// Answers per second (offered, ok, retry-after, errors + timeouts) and the admitted sign-ups'
/// p99 latency (right axis) over the surge's time.
pub fn surge_timeline(path: &Path, title: &str, seconds: &[SurgeSecond]) -> anyhow::Result<()> {
    let tmax = seconds.iter().map(|s| s.t).fold(1.0, f64::max) + 1.0;
    let ymax = seconds
        .iter()
        .map(|s| s.offered.max(s.ok + s.retry_after + s.failed))
        .fold(1.0, f64::max)
        * 1.1;
    let pmax = seconds.iter().filter_map(|s| s.ok_p99_ms).fold(1.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .right_y_label_area_size(64)
        .build_cartesian_2d(0f64..tmax, 0f64..ymax)?
        .set_secondary_coord(0f64..tmax, 0f64..pmax);
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("sign-ups per second")
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("admitted p99, ms (dashed)")
        .draw()?;
    let lines: [Line; 4] = [
        ("offered", RGBColor(150, 150, 150), |s| s.offered),
        ("ok", RGBColor(0, 140, 60), |s| s.ok),
        ("retry-after", RGBColor(230, 140, 0), |s| s.retry_after),
        ("error + timeout", RGBColor(200, 0, 0), |s| s.failed),
    ];
    for (name, color, f) in lines {
        chart
            .draw_series(LineSeries::new(
                seconds.iter().map(|s| (s.t, f(s))),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    let p99: Vec<(f64, f64)> = seconds.iter().filter_map(|s| Some((s.t, s.ok_p99_ms?))).collect();
    let blue = RGBColor(30, 60, 200);
    chart
        .draw_secondary_series(DashedLineSeries::new(p99, 6, 4, blue.stroke_width(2)))?
        .label("admitted p99 ms")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], blue.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
