//! `fit = "crop"`: a `videocrop` in front of a tile's scaler cuts the
//! picture to the tile's aspect ratio, centred.
//!
//! The cut depends on two things that change independently: the size the
//! sender sends (a caps event on the streaming thread) and the tile's shape
//! (a re-layout in the room actor). Whichever changes, the crop is
//! recomputed from both; `videocrop` renegotiates by itself before its next
//! buffer.

use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::layout::{crop_to_aspect, Size};

#[derive(Debug, Default)]
struct State {
    /// The decoded picture's size.
    input: Option<Size>,
    /// The tile's shape when cropping, None when letterboxing.
    target: Option<Size>,
}

/// A tile's crop, shared between the actor and the streaming thread.
#[derive(Clone)]
pub(super) struct TileCrop {
    element: gst::Element,
    state: Arc<Mutex<State>>,
}

impl TileCrop {
    /// Wraps a `videocrop` element and follows the size of what enters it.
    pub(super) fn new(element: gst::Element) -> anyhow::Result<TileCrop> {
        let crop = TileCrop {
            element,
            state: Arc::default(),
        };
        let sink = crop
            .element
            .static_pad("sink")
            .ok_or_else(|| anyhow::anyhow!("videocrop has no sink pad"))?;
        // Weakly: the element owns this probe.
        let element = crop.element.downgrade();
        let state = crop.state.clone();
        sink.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, move |_, info| {
            if let Some(gst::EventView::Caps(c)) = info.event().map(|e| e.view()) {
                let s = c.caps().structure(0);
                let w = s.and_then(|s| s.get::<i32>("width").ok());
                let h = s.and_then(|s| s.get::<i32>("height").ok());
                if let (Some(w), Some(h), Some(element)) = (w, h, element.upgrade()) {
                    update(&element, &state, |st| {
                        st.input = Some(Size {
                            width: w.max(0) as u32,
                            height: h.max(0) as u32,
                        })
                    });
                }
            }
            gst::PadProbeReturn::Ok
        });
        Ok(crop)
    }

    /// The element to link into the chain.
    pub(super) fn element(&self) -> &gst::Element {
        &self.element
    }

    /// Crops to `tile`'s aspect ratio, or not at all with None.
    pub(super) fn set_target(&self, tile: Option<Size>) {
        update(&self.element, &self.state, |st| st.target = tile);
    }
}

/// Changes the state and sets the crop it calls for.
fn update(element: &gst::Element, state: &Mutex<State>, change: impl FnOnce(&mut State)) {
    let (left, right, top, bottom) = {
        let Ok(mut st) = state.lock() else {
            return;
        };
        change(&mut st);
        match (st.input, st.target) {
            (Some(input), Some(target)) => crop_to_aspect(input, target),
            _ => (0, 0, 0, 0),
        }
    };
    // Set outside the lock: videocrop takes its own.
    for (name, v) in [
        ("left", left),
        ("right", right),
        ("top", top),
        ("bottom", bottom),
    ] {
        if element.property::<i32>(name) != v as i32 {
            element.set_property(name, v as i32);
        }
    }
}
