//! The canvas overlay: tile decorations ([`Paint`]s: borders, the active
//! speaker's highlight, muted markers) drawn over the composited canvas
//! once for every family's encoder, at the `overlaycomposition` element:
//! solid strips written into the frame as it reaches the element
//! (`i420_fill.rs`), markers blended by the element.
//!
//! The room actor sets new decorations when the layout or a participant's
//! state changes; the streaming thread only takes the latest, so it never
//! waits on room state.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;

use super::i420_fill;
use crate::layout::decor::{hand_marker, muted_marker, Paint};
use crate::layout::Rect;

/// The decorations in force.
#[derive(Default)]
struct Decorations {
    /// Solid rectangles (rect, 0xRRGGBB), in drawing order.
    fills: Arc<Vec<(Rect, u32)>>,
    /// The muted markers, blended over the fills.
    marks: Option<gst_video::VideoOverlayComposition>,
}

/// The decorations in force, shared with the streaming thread.
#[derive(Clone, Default)]
pub(super) struct CanvasOverlay {
    current: Arc<Mutex<Decorations>>,
}

impl CanvasOverlay {
    /// Draws this overlay's decorations at an `overlaycomposition` element.
    pub(super) fn attach(&self, element: &gst::Element) -> anyhow::Result<()> {
        let current = self.current.clone();
        element.connect("draw", false, move |_| {
            let marks = current.lock().ok().and_then(|c| c.marks.clone());
            Some(marks.to_value())
        });
        let sink = element
            .static_pad("sink")
            .context("overlaycomposition sink pad")?;
        let current = self.current.clone();
        let info: Mutex<Option<gst_video::VideoInfo>> = Mutex::default();
        sink.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, probe| {
                match &mut probe.data {
                    Some(gst::PadProbeData::Event(e)) => {
                        if let (gst::EventView::Caps(c), Ok(mut info)) = (e.view(), info.lock()) {
                            *info = gst_video::VideoInfo::from_caps(c.caps()).ok();
                        }
                    }
                    Some(gst::PadProbeData::Buffer(buffer)) => {
                        let fills = current.lock().map(|c| c.fills.clone()).unwrap_or_default();
                        if fills.is_empty() {
                            return gst::PadProbeReturn::Ok;
                        }
                        if let Some(info) = info.lock().ok().and_then(|i| i.clone()) {
                            draw_fills(buffer, &info, &fills);
                        }
                    }
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            },
        );
        Ok(())
    }

    /// Replaces the decorations (an empty list draws nothing).
    pub(super) fn set(&self, paints: &[Paint]) -> anyhow::Result<()> {
        let fills = paints
            .iter()
            .filter_map(|p| match p {
                Paint::Fill { rect, rgb } => Some((*rect, *rgb)),
                Paint::Muted { .. } | Paint::Hand { .. } => None,
            })
            .collect();
        let marks = composition(paints)?;
        if let Ok(mut c) = self.current.lock() {
            *c = Decorations {
                fills: Arc::new(fills),
                marks,
            };
        }
        Ok(())
    }

    /// Number of rectangles drawn now (for tests).
    pub(super) fn rectangles(&self) -> u32 {
        self.current
            .lock()
            .map(|c| c.fills.len() as u32 + c.marks.as_ref().map_or(0, |m| m.n_rectangles()))
            .unwrap_or(0)
    }
}

/// Writes the solid decorations into a canvas frame.
fn draw_fills(buffer: &mut gst::Buffer, info: &gst_video::VideoInfo, fills: &[(Rect, u32)]) {
    if info.format() != gst_video::VideoFormat::I420 {
        return;
    }
    let Ok(mut frame) = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer.make_mut(), info)
    else {
        return;
    };
    for (rect, rgb) in fills {
        i420_fill::fill(&mut frame, *rect, i420_fill::yuv(*rgb, &info.colorimetry()));
    }
}

/// The muted markers as one overlay composition, or None without any.
fn composition(paints: &[Paint]) -> anyhow::Result<Option<gst_video::VideoOverlayComposition>> {
    let rects = paints
        .iter()
        .filter_map(|p| match p {
            Paint::Fill { .. } => None,
            Paint::Muted { rect } | Paint::Hand { rect } => {
                let mut px = match p {
                    Paint::Hand { .. } => hand_marker(rect.width),
                    _ => muted_marker(rect.width),
                };
                // RGBA to the overlay's BGRA.
                for p in px.chunks_exact_mut(4) {
                    p.swap(0, 2);
                }
                Some(rectangle(*rect, &px))
            }
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if rects.is_empty() {
        return Ok(None);
    }
    gst_video::VideoOverlayComposition::new(rects.iter())
        .map(Some)
        .context("building the canvas overlay")
}

/// An overlay rectangle of straight-alpha BGRA pixels drawn at `r`.
fn rectangle(r: Rect, bgra: &[u8]) -> anyhow::Result<gst_video::VideoOverlayRectangle> {
    let mut buffer = gst::Buffer::from_mut_slice(bgra.to_vec());
    gst_video::VideoMeta::add(
        buffer.get_mut().context("fresh buffer is writable")?,
        gst_video::VideoFrameFlags::empty(),
        gst_video::VideoFormat::Bgra,
        r.width,
        r.height,
    )
    .context("describing an overlay rectangle")?;
    Ok(gst_video::VideoOverlayRectangle::new_raw(
        &buffer,
        r.x as i32,
        r.y as i32,
        r.width,
        r.height,
        gst_video::VideoOverlayFormatFlags::empty(),
    ))
}
