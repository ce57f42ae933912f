//! The canvas overlay: tile decorations ([`Paint`]s: borders, the active
//! speaker's highlight, muted markers) blended over the composited canvas by
//! one `overlaycomposition` element, once for every family's encoder.
//!
//! The room actor builds a composition when the layout or a participant's
//! state changes; the element's `draw` callback only hands out the latest
//! one, so the streaming thread never waits on room state.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;

use crate::layout::decor::{muted_marker, Paint};
use crate::layout::Rect;

/// The decorations in force, shared with the streaming thread.
#[derive(Clone, Default)]
pub(super) struct CanvasOverlay {
    current: Arc<Mutex<Option<gst_video::VideoOverlayComposition>>>,
}

impl CanvasOverlay {
    /// Serves this overlay's compositions to an `overlaycomposition` element.
    pub(super) fn attach(&self, element: &gst::Element) {
        let current = self.current.clone();
        element.connect("draw", false, move |_| {
            let comp = current.lock().ok().and_then(|c| c.clone());
            Some(comp.to_value())
        });
    }

    /// Replaces the decorations (an empty list draws nothing).
    pub(super) fn set(&self, paints: &[Paint]) -> anyhow::Result<()> {
        let comp = composition(paints)?;
        if let Ok(mut c) = self.current.lock() {
            *c = comp;
        }
        Ok(())
    }

    /// Number of rectangles drawn now (for tests).
    pub(super) fn rectangles(&self) -> u32 {
        self.current
            .lock()
            .ok()
            .and_then(|c| c.as_ref().map(|c| c.n_rectangles()))
            .unwrap_or(0)
    }
}

fn composition(paints: &[Paint]) -> anyhow::Result<Option<gst_video::VideoOverlayComposition>> {
    let rects = paints
        .iter()
        .map(|p| match p {
            Paint::Fill { rect, rgb } => {
                let [_, r, g, b] = rgb.to_be_bytes();
                rectangle(*rect, &[b, g, r, 255].repeat(pixels(*rect)))
            }
            Paint::Muted { rect } => {
                let mut px = muted_marker(rect.width);
                // RGBA to the overlay's BGRA.
                for p in px.chunks_exact_mut(4) {
                    p.swap(0, 2);
                }
                rectangle(*rect, &px)
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

fn pixels(r: Rect) -> usize {
    r.width as usize * r.height as usize
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
