//! Joins a recording's segments into one file without re-encoding:
//! VP8 canvases into WebM (`export.webm`), H.264 canvases into MP4 with
//! the index up front (`export.mp4`). `splitmuxsrc` reads the segments the
//! manifest lists (the closed ones: after a crash, not the one left open)
//! as one continuous stream.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use gstreamer as gst;
use gstreamer::prelude::*;

use super::Manifest;

/// The longest an export may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(600);

/// Segment file extension and export file name for a codec family.
pub fn names(codec: &str) -> (&'static str, &'static str) {
    if codec == "h264" {
        ("mkv", "export.mp4")
    } else {
        ("webm", "export.webm")
    }
}

/// MIME type of an exported file.
pub fn content_type(file: &str) -> &'static str {
    if file.ends_with(".mp4") {
        "video/mp4"
    } else {
        "video/webm"
    }
}

/// Joins the segments in `dir`; returns the export's file name.
/// Blocking: run it off the async runtime.
pub fn export(dir: &Path, m: &Manifest) -> anyhow::Result<String> {
    if m.segments.is_empty() {
        bail!("recording {} has no segments", m.id);
    }
    let (ext, out_name) = names(&m.codec);
    let (mux, parse) = if m.codec == "h264" {
        ("mp4mux faststart=true", "h264parse ! ")
    } else {
        ("webmmux", "")
    };
    let tmp = dir.join(format!(".{out_name}.tmp"));
    let desc = format!(
        "splitmuxsrc name=src \
         {mux} name=mux ! filesink location=\"{}\" \
         queue name=vq max-size-time=0 max-size-buffers=0 max-size-bytes=0 ! {parse}mux.video_0 \
         queue name=aq max-size-time=0 max-size-buffers=0 max-size-bytes=0 ! mux.audio_0",
        tmp.display()
    );
    let files: Vec<String> = m
        .segments
        .iter()
        .filter(|s| s.ends_with(&format!(".{ext}")) && !s.contains('/'))
        .map(|s| dir.join(s).to_string_lossy().to_string())
        .collect();
    if files.is_empty() {
        bail!("recording {} has no .{ext} segments", m.id);
    }
    let pipeline = gst::parse::launch(&desc)
        .context("building the export pipeline")?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let src = pipeline.by_name("src").context("splitmuxsrc")?;
    src.connect("format-location", false, move |_| Some(files.to_value()));
    let vq = pipeline.by_name("vq").context("video queue")?;
    let aq = pipeline.by_name("aq").context("audio queue")?;
    src.connect_pad_added(move |_, pad| {
        let target = if pad.name().starts_with("video") {
            &vq
        } else {
            &aq
        };
        if let Some(sink) = target.static_pad("sink") {
            if !sink.is_linked() {
                let _ = pad.link(&sink);
            }
        }
    });
    let result = run_to_eos(&pipeline);
    let _ = pipeline.set_state(gst::State::Null);
    result.with_context(|| format!("joining the segments of {}", m.id))?;
    std::fs::rename(&tmp, dir.join(out_name)).context("moving the export into place")?;
    Ok(out_name.to_string())
}

fn run_to_eos(pipeline: &gst::Pipeline) -> anyhow::Result<()> {
    let bus = pipeline.bus().context("pipeline without a bus")?;
    pipeline
        .set_state(gst::State::Playing)
        .context("starting the export")?;
    let deadline = std::time::Instant::now() + EXPORT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            bail!("the export took longer than {EXPORT_TIMEOUT:?}");
        }
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_nseconds(left.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) => bail!("{} ({:?})", e.error(), e.debug()),
            _ => {}
        }
    }
}
