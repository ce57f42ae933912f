//! The PNG chart: server CPU (Tessera beside the baseline) and video and
//! audio latency added, against participant count.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use crate::report::{Level, Report};

const FONT_FILES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Makes a system font available to plotters under the name "sans-serif".
fn register_font() -> anyhow::Result<()> {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        FONT_FILES.iter().any(|f| {
            std::fs::read(f).is_ok_and(|bytes| {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    });
    ok.then_some(()).ok_or_else(|| {
        anyhow!(
            "no font for the chart: install fonts-dejavu-core ({})",
            FONT_FILES[0]
        )
    })
}

fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart: {e:?}")
}

/// One line on a panel: its points, colour and legend.
type Series = (Vec<(f64, f64)>, RGBColor, &'static str);

/// The x axis of a panel: its name and largest value.
struct Axis {
    desc: &'static str,
    max: f64,
}

/// Draws one panel: `series` against `x`, y from `y.0` to `y.1`; each
/// point marked unless there are many.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    y_desc: &str,
    x: Axis,
    y: (f64, f64),
    series: Vec<Series>,
) -> anyhow::Result<()> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..x.max, y.0..y.1)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc(x.desc)
        .y_desc(y_desc)
        .draw()
        .map_err(draw_err)?;
    for (points, colour, name) in series {
        let marked = points.len() <= 60;
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(draw_err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(
                points
                    .into_iter()
                    .filter(|_| marked)
                    .map(|p| Circle::new(p, 4, colour.filled())),
            )
            .map_err(draw_err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

/// Draws the chart of `report` into a PNG at `path`.
pub fn draw(report: &Report, path: &Path) -> anyhow::Result<()> {
    register_font()?;
    let mut levels: Vec<_> = report.levels.iter().collect();
    levels.sort_by_key(|l| l.participants);
    let root = BitMapBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let (left, right) = root.split_horizontally(600);
    let max_x = levels
        .iter()
        .map(|l| l.participants)
        .max()
        .unwrap_or(2)
        .max(2) as f64
        * 1.05;
    let points = |figure: &dyn Fn(&Level) -> Option<f64>| -> Vec<(f64, f64)> {
        levels
            .iter()
            .filter_map(|l| Some((l.participants as f64, figure(l)?)))
            .collect()
    };

    let tessera = points(&|l| Some(l.server_cores_mean));
    let baseline = points(&|l| l.baseline_cores_mean);
    let cpu_max = tessera
        .iter()
        .chain(&baseline)
        .map(|p| p.1)
        .fold(0.5, f64::max)
        * 1.2;
    panel(
        &left,
        "Server CPU (cores)",
        "cores",
        Axis {
            desc: "participants",
            max: max_x,
        },
        (0.0, cpu_max),
        vec![
            (tessera, RED, "Tessera"),
            (baseline, BLUE, "bare GStreamer baseline"),
        ],
    )?;

    let video = points(&|l| Some(l.video_added_ms?.p95));
    let audio = points(&|l| Some(l.audio_added_ms?.p95));
    let added = || video.iter().chain(&audio).map(|p| p.1);
    let lat = (
        added().fold(0.0, f64::min),
        added().fold(100.0, f64::max) * 1.2,
    );
    panel(
        &right,
        "Latency added by the server, p95 (ms)",
        "ms",
        Axis {
            desc: "participants",
            max: max_x,
        },
        lat,
        vec![
            (video.clone(), RED, "video"),
            (audio.clone(), GREEN, "audio"),
        ],
    )?;
    root.present().map_err(draw_err)?;
    Ok(())
}

/// Draws the school day's RSS, threads and open files against time into a
/// PNG at `path`.
pub fn draw_school_day(d: &crate::school::SchoolDay, path: &Path) -> anyhow::Result<()> {
    register_font()?;
    let root = BitMapBackend::new(path, (1500, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let areas = root.split_evenly((1, 3));
    let max_x = (d.duration_s / 60.0).max(1.0) * 1.02;
    let colours = [RED, BLUE, GREEN];
    for ((name, points), (area, colour)) in crate::school::series(d)
        .into_iter()
        .zip(areas.iter().zip(colours))
    {
        let top = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.2;
        panel(
            area,
            name,
            name,
            Axis {
                desc: "minutes",
                max: max_x,
            },
            (0.0, top),
            vec![(points, colour, name)],
        )?;
    }
    root.present().map_err(draw_err)?;
    Ok(())
}
