//! Line charts written as SVG and PNG with `plotters`, using an embedded DejaVu Sans font
//! (plotters needs a font to lay out text even for SVG, and a fresh machine may have none).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

/// DejaVu Sans (Bitstream Vera license, see `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            eprintln!("warning: could not register the embedded font; plots may lack text");
        }
    });
}

/// One line of a chart.
pub struct Series {
    /// Legend label.
    pub label: String,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
    /// Drawn thin and dark, without markers, for reference lines such as "ideal".
    pub reference: bool,
}

/// What a chart shows.
pub struct Chart<'a> {
    /// Title.
    pub title: &'a str,
    /// Small text under the plot (machine stamp).
    pub caption: &'a str,
    /// X axis label.
    pub x_label: &'a str,
    /// Y axis label.
    pub y_label: &'a str,
    /// Logarithmic x axis.
    pub log_x: bool,
}

/// Draws `series` into `<stem>.svg` and `<stem>.png`.
pub fn line_chart(stem: &Path, chart: &Chart, series: &[Series]) -> Result<(), String> {
    register_font();
    let svg = stem.with_extension("svg");
    draw(
        SVGBackend::new(&svg, (900, 600)).into_drawing_area(),
        chart,
        series,
    )?;
    let png = stem.with_extension("png");
    draw(
        BitMapBackend::new(&png, (900, 600)).into_drawing_area(),
        chart,
        series,
    )?;
    Ok(())
}

/// An x tick label: whole numbers without decimals; on a log axis only 1, 2 and 5 times a power
/// of ten are labelled (the others stay as grid lines), so labels do not collide.
fn tick(x: f64, log: bool) -> String {
    if log {
        let mantissa = x / 10f64.powf(x.log10().floor());
        if ![1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6) {
            return String::new();
        }
    }
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else {
        format!("{x:.1}")
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    chart: &Chart,
    series: &[Series],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: &dyn std::fmt::Display| format!("plotting {}: {e}", chart.title);
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (plot_area, caption_area) = root.split_vertically(560);
    caption_area
        .draw(&Text::new(
            chart.caption.to_string(),
            (10, 12),
            ("sans-serif", 13).into_font().color(&BLACK),
        ))
        .map_err(|e| err(&e))?;
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        return Err(format!("plotting {}: no points", chart.title));
    }
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let y1 = if y1 > 0.0 { y1 * 1.1 } else { 1.0 };
    let mut builder = ChartBuilder::on(&plot_area);
    builder
        .caption(chart.title, ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70);
    macro_rules! finish {
        ($ctx:expr) => {{
            let mut ctx = $ctx;
            ctx.configure_mesh()
                .x_label_formatter(&|x| tick(*x, chart.log_x))
                .x_desc(chart.x_label)
                .y_desc(chart.y_label)
                .draw()
                .map_err(|e| err(&e))?;
            for (i, s) in series.iter().enumerate() {
                let color = if s.reference {
                    RGBColor(40, 40, 40).to_rgba()
                } else {
                    Palette99::pick(i).to_rgba()
                };
                let style = ShapeStyle {
                    color,
                    filled: true,
                    stroke_width: if s.reference { 1 } else { 2 },
                };
                ctx.draw_series(LineSeries::new(s.points.iter().copied(), style))
                    .map_err(|e| err(&e))?
                    .label(s.label.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
                if !s.reference {
                    ctx.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, style)))
                        .map_err(|e| err(&e))?;
                }
            }
            ctx.configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(&e))?;
        }};
    }
    if chart.log_x {
        finish!(
            builder
                .build_cartesian_2d((x0..x1).log_scale(), 0.0..y1)
                .map_err(|e| err(&e))?
        );
    } else {
        finish!(
            builder
                .build_cartesian_2d(x0..x1, 0.0..y1)
                .map_err(|e| err(&e))?
        );
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
