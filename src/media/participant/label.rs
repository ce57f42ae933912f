//! A tile's name label: a `textoverlay` whose style is changed only on the
//! thread that draws it.
//!
//! `textoverlay` lays out and draws its text outside its object lock, so a
//! property set from another thread while a frame is drawn (the font size,
//! when the layout changes and every tile is resized) can free the Pango
//! fonts that the drawing is using, and crash the server. The room actor
//! therefore only leaves the new style here; a probe on the label's sink
//! pad applies it just before the next frame, on the streaming thread that
//! draws. Until then the label keeps its old style, which nobody sees for
//! longer than a frame.

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;

use crate::layout::file::LabelPosition;
use crate::media::make::make_element;

/// Where a tile's name label goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LabelStyle {
    /// Top, bottom or none.
    pub position: LabelPosition,
    /// Pixels kept clear along the tile's edges (its border).
    pub inset: u32,
}

/// A style waiting for the label's next frame: the style and the height of
/// the tile it labels.
type Pending = Arc<Mutex<Option<(LabelStyle, u32)>>>;

/// A name label over a video tile.
pub(super) struct TileLabel {
    element: gst::Element,
    pending: Pending,
}

impl TileLabel {
    /// A label showing `text` in `style` over a tile `tile_height` pixels
    /// high. Its element is not started yet, so the style is set at once.
    pub(super) fn new(
        name: &str,
        text: &str,
        style: LabelStyle,
        tile_height: u32,
    ) -> anyhow::Result<TileLabel> {
        let element = make_element("textoverlay", name)?;
        element.set_property("text", text);
        element.set_property_from_str("halignment", "left");
        // Sized in pixels of the tile, not scaled against a reference width.
        element.set_property("auto-resize", false);
        element.set_property("shaded-background", true);
        apply(&element, style, tile_height);
        let pending: Pending = Arc::default();
        let sink = element
            .static_pad("video_sink")
            .context("textoverlay video sink")?;
        let waiting = pending.clone();
        sink.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
            let next = waiting.lock().ok().and_then(|mut p| p.take());
            if let (Some((style, height)), Some(label)) = (next, pad.parent_element()) {
                apply(&label, style, height);
            }
            gst::PadProbeReturn::Ok
        });
        Ok(TileLabel { element, pending })
    }

    /// The `textoverlay` element.
    pub(super) fn element(&self) -> &gst::Element {
        &self.element
    }

    /// Restyles the label from its next frame on (see the module header).
    pub(super) fn restyle(&self, style: LabelStyle, tile_height: u32) {
        if let Ok(mut pending) = self.pending.lock() {
            *pending = Some((style, tile_height));
        }
    }
}

/// Places (or hides) a name label, sized to stay legible on a tile
/// `tile_height` pixels high. Only before the element starts, or on its
/// streaming thread.
fn apply(label: &gst::Element, style: LabelStyle, tile_height: u32) {
    label.set_property("silent", style.position == LabelPosition::None);
    // Clear of the tile's border.
    label.set_property("xpad", 6 + style.inset as i32);
    label.set_property("ypad", 4 + style.inset as i32);
    let valign = if style.position == LabelPosition::Top {
        "top"
    } else {
        "bottom"
    };
    label.set_property_from_str("valignment", valign);
    label.set_property(
        "font-desc",
        format!("Sans Bold {}px", label_px(tile_height)),
    );
}

/// Label text height: a twelfth of the tile, never below 9 px or above 28.
fn label_px(tile_height: u32) -> u32 {
    (tile_height / 12).clamp(9, 28)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_text_stays_legible_and_small() {
        assert_eq!(label_px(60), 9);
        assert_eq!(label_px(180), 15);
        assert_eq!(label_px(1080), 28);
    }

    #[test]
    fn a_new_style_waits_for_the_next_frame() {
        gst::init().unwrap();
        let style = LabelStyle {
            position: LabelPosition::Top,
            inset: 2,
        };
        let label = TileLabel::new("label-check", "Ada", style, 180).unwrap();
        assert_eq!(label.element().property::<i32>("ypad"), 6);
        label.restyle(
            LabelStyle {
                position: LabelPosition::None,
                inset: 8,
            },
            360,
        );
        // Not applied from this thread.
        assert_eq!(label.element().property::<i32>("ypad"), 6);
        assert!(!label.element().property::<bool>("silent"));

        // One frame through the label applies it.
        let make = |factory: &str| gst::ElementFactory::make(factory).build().unwrap();
        let (src, caps, sink) = (make("videotestsrc"), make("capsfilter"), make("fakesink"));
        src.set_property("num-buffers", 1i32);
        caps.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("format", "I420")
                .field("width", 320i32)
                .field("height", 180i32)
                .build(),
        );
        let pipeline = gst::Pipeline::new();
        let chain = [&src, &caps, label.element(), &sink];
        pipeline.add_many(chain).unwrap();
        gst::Element::link_many(chain).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        let done = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        pipeline.set_state(gst::State::Null).unwrap();
        assert!(matches!(
            done.as_ref().map(|m| m.view()),
            Some(gst::MessageView::Eos(_))
        ));
        assert_eq!(label.element().property::<i32>("ypad"), 12);
        assert!(label.element().property::<bool>("silent"));
    }
}
