//! The report's figures: panels of named series drawn into PNGs with plotters, text in a system
//! font read at run time (DejaVu Sans or Liberation Sans).

use std::path::Path;

use anyhow::bail;
use plotters_ab_glyph::prelude::*;
use plotters_ab_glyph::style::{FontStyle, register_font};

/// A font for the plots: the first of the usual system fonts found.
pub(super) fn load_font() -> anyhow::Result<()> {
    const CANDIDATES: [&str; 5] = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
    ];
    for path in CANDIDATES {
        if let Ok(bytes) = std::fs::read(path) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return Ok(());
            }
        }
    }
    bail!(
        "no font for the plots (looked for DejaVu Sans and Liberation Sans): \
         apt-get install fonts-dejavu-core"
    )
}

/// A named series of (x, y) points.
#[derive(Debug, Clone, Default)]
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) points: Vec<(f64, f64)>,
    /// Vertical markers (resizes).
    pub(crate) marks: Vec<f64>,
}

/// One panel of a figure.
#[derive(Debug, Clone, Default)]
pub(crate) struct Panel {
    pub(crate) title: String,
    pub(crate) x_desc: String,
    pub(crate) y_desc: String,
    pub(crate) series: Vec<Series>,
    /// Horizontal reference lines.
    pub(crate) hlines: Vec<f64>,
    /// Draw points as well as lines.
    pub(crate) points: bool,
}

fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    C[i % C.len()]
}

fn bounds(panel: &Panel) -> ((f64, f64), (f64, f64)) {
    let mut xs = vec![0.0];
    let mut ys: Vec<f64> = panel.hlines.clone();
    for s in &panel.series {
        for &(x, y) in &s.points {
            if x.is_finite() && y.is_finite() {
                xs.push(x);
                ys.push(y);
            }
        }
        xs.extend(s.marks.iter().copied());
    }
    let fold = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if lo.is_finite() && hi.is_finite() {
            if (hi - lo).abs() < 1e-9 {
                (lo - 1.0, hi + 1.0)
            } else {
                (lo, hi)
            }
        } else {
            (0.0, 1.0)
        }
    };
    let (x0, x1) = fold(&xs);
    let (y0, y1) = fold(&ys);
    let pad = (y1 - y0) * 0.06;
    ((x0, x1 * 1.02), (y0 - pad, y1 + pad))
}

/// Draws `panels` (rows × cols) into a PNG.
pub(crate) fn plot(path: &Path, title: &str, cols: usize, panels: &[Panel]) -> anyhow::Result<()> {
    let rows = panels.len().div_ceil(cols.max(1));
    let size = (620 * cols as u32, 430 * rows as u32 + 40);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let areas = root.split_evenly((rows, cols));
    for (area, panel) in areas.iter().zip(panels) {
        let ((x0, x1), (y0, y1)) = bounds(panel);
        let empty = panel.series.iter().all(|s| s.points.is_empty());
        let caption = if empty {
            format!("{} — no data", panel.title)
        } else {
            panel.title.clone()
        };
        let y_digits = if y1 - y0 >= 20.0 { 0 } else { 2 };
        let mut chart = ChartBuilder::on(area)
            .caption(&caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(panel.x_desc.as_str())
            .y_desc(panel.y_desc.as_str())
            .label_style(("sans-serif", 12))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.y_digits$}"))
            .axis_desc_style(("sans-serif", 13))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for &h in &panel.hlines {
            chart.draw_series(LineSeries::new(
                vec![(x0, h), (x1, h)],
                BLACK.mix(0.35).stroke_width(1),
            ))?;
        }
        for (i, s) in panel.series.iter().enumerate() {
            if s.points.is_empty() && s.marks.is_empty() {
                continue;
            }
            let c = color(i);
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
            if panel.points {
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
            }
            for &m in &s.marks {
                chart.draw_series(LineSeries::new(
                    vec![(m, y0), (m, y1)],
                    c.mix(0.5).stroke_width(1),
                ))?;
            }
        }
        if panel
            .series
            .iter()
            .any(|s| !s.name.is_empty() && !s.points.is_empty())
        {
            chart
                .configure_series_labels()
                .label_font(("sans-serif", 11))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .position(SeriesLabelPosition::UpperRight)
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}
