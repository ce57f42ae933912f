//! The PNG chart: server CPU (Tessera beside the baseline) and video and
//! audio latency added, against participant count.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use crate::report::Report;

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

    let cpu_max = levels
        .iter()
        .flat_map(|l| [Some(l.server_cores_mean), l.baseline_cores_mean])
        .flatten()
        .fold(0.5f64, f64::max)
        * 1.2;
    let mut cpu = ChartBuilder::on(&left)
        .caption("Server CPU (cores)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..max_x, 0f64..cpu_max)
        .map_err(draw_err)?;
    cpu.configure_mesh()
        .x_desc("participants")
        .y_desc("cores")
        .draw()
        .map_err(draw_err)?;
    let tessera: Vec<(f64, f64)> = levels
        .iter()
        .map(|l| (l.participants as f64, l.server_cores_mean))
        .collect();
    let baseline: Vec<(f64, f64)> = levels
        .iter()
        .filter_map(|l| Some((l.participants as f64, l.baseline_cores_mean?)))
        .collect();
    for (points, colour, name) in [
        (tessera, RED, "Tessera"),
        (baseline, BLUE, "bare GStreamer baseline"),
    ] {
        cpu.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(draw_err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        cpu.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 4, colour.filled())),
        )
        .map_err(draw_err)?;
    }
    cpu.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(draw_err)?;

    let lat_max = levels
        .iter()
        .flat_map(|l| {
            [
                l.video_added_ms.map(|s| s.p95),
                l.audio_added_ms.map(|s| s.p95),
            ]
        })
        .flatten()
        .fold(100f64, f64::max)
        * 1.2;
    let lat_min = levels
        .iter()
        .flat_map(|l| {
            [
                l.video_added_ms.map(|s| s.p95),
                l.audio_added_ms.map(|s| s.p95),
            ]
        })
        .flatten()
        .fold(0f64, f64::min);
    let mut lat = ChartBuilder::on(&right)
        .caption("Latency added by the server, p95 (ms)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..max_x, lat_min..lat_max)
        .map_err(draw_err)?;
    lat.configure_mesh()
        .x_desc("participants")
        .y_desc("ms")
        .draw()
        .map_err(draw_err)?;
    let video: Vec<(f64, f64)> = levels
        .iter()
        .filter_map(|l| Some((l.participants as f64, l.video_added_ms?.p95)))
        .collect();
    let audio: Vec<(f64, f64)> = levels
        .iter()
        .filter_map(|l| Some((l.participants as f64, l.audio_added_ms?.p95)))
        .collect();
    for (points, colour, name) in [(video, RED, "video"), (audio, GREEN, "audio")] {
        lat.draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(draw_err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        lat.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 4, colour.filled())),
        )
        .map_err(draw_err)?;
    }
    lat.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(draw_err)?;
    root.present().map_err(draw_err)?;
    Ok(())
}
