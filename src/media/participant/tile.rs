//! A participant's place on the canvas: the placeholder shown until its
//! video arrives, the decoded video tiles (camera and screen) with their
//! name labels, and where the layout puts them (pad geometry, stacking,
//! visibility).
//!
//! ```text
//! placeholder: appsrc(grey still) ─► textoverlay(name) ─► freeze ─► caps(placeholder) ─► compositor (until video arrives)
//! ```

use crate::ids::ParticipantId;
use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;

use super::crop::TileCrop;
use super::label::{LabelStyle, TileLabel};
use super::{ParticipantMedia, Room};
use crate::layout::file::Fit;
use crate::layout::{Rect, Size};
use crate::media::build::Added;
use crate::media::formats::i420_caps;
use crate::media::make::{make_capsfilter, make_element};
use crate::media::probes::hide_latency;
use crate::media::still::{self, SolidSource};

/// Size of a placeholder tile before the first layout is applied.
pub(super) const INITIAL_TILE: Size = Size {
    width: 320,
    height: 180,
};
/// The placeholder is rendered once at this size and scaled by its compositor
/// pad, so a re-flow never renegotiates it.
const PLACEHOLDER_SIZE: Size = Size {
    width: 320,
    height: 180,
};
/// The placeholder's grey, behind the name.
const PLACEHOLDER_GREY: u32 = 0x404040;
/// The placeholder never changes: a few repeats a second keep its pad live.
const PLACEHOLDER_FPS: u32 = 5;

/// A decoded video branch (camera or screen) feeding one compositor pad.
pub(super) struct VideoTile {
    pub(super) caps: gst::Element,
    pub(super) pad: gst::Pad,
    /// The name label drawn over the video.
    pub(super) label: TileLabel,
    /// Crops the picture to the tile's aspect ratio when the layout's fit is `crop`.
    pub(super) crop: TileCrop,
    /// The depayloader's sink, to ask the sender for a keyframe.
    pub(super) depay_sink: gst::Pad,
    /// The decoder's source pad: its caps are the size the sender sends.
    pub(super) decoded: gst::Pad,
}

impl VideoTile {
    /// Moves the tile to `rect` at compositor z-order `zorder`, filling it per `fit`.
    pub(super) fn place(&self, rect: Rect, zorder: u32, fit: Fit) {
        self.pad.set_property("zorder", zorder);
        set_pad_geometry(&self.pad, rect);
        self.caps.set_property(
            "caps",
            i420_caps(
                Size {
                    width: rect.width,
                    height: rect.height,
                },
                None,
            ),
        );
        self.crop.set_target((fit == Fit::Crop).then_some(Size {
            width: rect.width,
            height: rect.height,
        }));
    }

    /// Asks the sender for a keyframe.
    pub(super) fn request_keyframe(&self) {
        self.depay_sink.push_event(
            gstreamer_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build(),
        );
    }
}

/// A participant's screen-share m-line and, once it arrived, its tile.
pub(super) struct ScreenShare {
    /// The m-line the screen arrives on.
    pub(super) mline: u32,
    /// The decoded screen, once its stream arrived.
    pub(super) tile: Option<VideoTile>,
    /// Where the layout shows it, or None while hidden.
    pub(super) rect: Option<Rect>,
}

/// The placeholder's elements, downstream first, and its compositor pad.
pub(super) struct Placeholder {
    pub(super) elements: [gst::Element; 4],
    pub(super) pad: gst::Pad,
}

fn placeholder_caps(tile: Size) -> gst::Caps {
    i420_caps(tile, Some(PLACEHOLDER_FPS))
}

/// Builds the placeholder tile with the participant's name and links it
/// into the compositor; its elements are not started yet.
pub(super) fn build_placeholder(
    room: &Room<'_>,
    added: &mut Added,
    id: &ParticipantId,
    name: &str,
) -> anyhow::Result<Placeholder> {
    let bin = room.bin();
    let n = |what: &str| format!("{id}-{what}");
    // Drawn once (grey frame, name), then repeated live (still.rs).
    let ph_src = SolidSource::new(&n("placeholder"), PLACEHOLDER_SIZE)?;
    ph_src.show(PLACEHOLDER_GREY)?;
    let ph_text = make_element("textoverlay", &n("placeholder-name"))?;
    ph_text.set_property("text", name);
    ph_text.set_property_from_str("valignment", "center");
    ph_text.set_property_from_str("halignment", "center");
    ph_text.set_property("font-desc", "Sans Bold 20");
    ph_text.set_property("shaded-background", true);
    let ph_freeze = still::freeze(&n("placeholder-freeze"))?;
    let ph_caps = make_capsfilter(&n("placeholder-caps"), &placeholder_caps(PLACEHOLDER_SIZE))?;
    added.chain(&bin, &[ph_src.element(), &ph_text, &ph_freeze, &ph_caps])?;
    let placeholder_pad = added.request(room.compositor, "sink_%u")?;
    hide_latency(&ph_caps.static_pad("src").context("placeholder src")?);
    placeholder_pad.set_property("zorder", 1u32);
    ph_caps
        .static_pad("src")
        .context("placeholder src")?
        .link(&placeholder_pad)
        .context("linking placeholder to compositor")?;
    Ok(Placeholder {
        elements: [ph_caps, ph_freeze, ph_text, ph_src.element().clone()],
        pad: placeholder_pad,
    })
}

impl ParticipantMedia {
    /// Moves the tile (placeholder and video) to `rect`, at stacking level
    /// `z` (higher above; overlays of a layout).
    pub(in crate::media) fn place_tile(&mut self, rect: Rect, z: u32, fit: Fit) {
        self.placeholder_pad.set_property("zorder", 1 + 2 * z);
        set_pad_geometry(&self.placeholder_pad, rect);
        if let Some(v) = &self.video {
            v.place(rect, 2 + 2 * z, fit);
        }
        self.visible = true;
        apply_visibility(self);
        self.tile = rect;
        self.fit = fit;
        self.placed = true;
    }

    /// Shows the shared screen at `rect`, stacking level `z`.
    pub(in crate::media) fn place_screen(&mut self, rect: Rect, z: u32, fit: Fit) {
        if let Some(s) = self.screen.as_mut() {
            if let Some(v) = &s.tile {
                v.place(rect, 2 + 2 * z, fit);
                v.pad.set_property("alpha", 1.0f64);
            }
            s.rect = Some(rect);
        }
    }

    /// Takes the shared screen off the canvas.
    pub(in crate::media) fn hide_screen(&mut self) {
        if let Some(s) = self.screen.as_mut() {
            if let Some(v) = &s.tile {
                v.pad.set_property("alpha", 0.0f64);
            }
            s.rect = None;
        }
    }

    /// Asks the participant for a keyframe of its camera.
    pub(in crate::media) fn request_camera_keyframe(&self) {
        if let Some(v) = &self.video {
            v.request_keyframe();
        }
    }

    /// Asks the participant for a keyframe of its screen.
    pub(in crate::media) fn request_screen_keyframe(&self) {
        if let Some(v) = self.screen.as_ref().and_then(|s| s.tile.as_ref()) {
            v.request_keyframe();
        }
    }

    /// Puts the name labels where the layout wants them.
    pub(in crate::media) fn set_label(&mut self, style: LabelStyle) {
        self.label = style;
        if let Some(v) = &self.video {
            v.label.restyle(style, self.tile.height);
        }
        if let Some(s) = &self.screen {
            if let (Some(v), Some(r)) = (&s.tile, s.rect) {
                v.label.restyle(style, screen_label_height(r.height));
            }
        }
    }

    /// Takes the tile off the canvas (the layout has no place for it).
    pub(in crate::media) fn hide_tile(&mut self) {
        self.visible = false;
        apply_visibility(self);
    }

    /// Hides the placeholder once the participant's own video is shown.
    pub(in crate::media) fn hide_placeholder(&mut self) {
        self.video_started = true;
        apply_visibility(self);
    }
}

/// Shows or hides the placeholder and the video per the participant's state.
/// Alpha 0 pads are skipped by the compositor: no blending cost.
pub(super) fn apply_visibility(pm: &ParticipantMedia) {
    let alpha = |on: bool| if on { 1.0f64 } else { 0.0 };
    pm.placeholder_pad
        .set_property("alpha", alpha(pm.visible && !pm.video_started));
    if let Some(v) = &pm.video {
        v.pad.set_property("alpha", alpha(pm.visible));
    }
}

/// A screen's label is sized as for a tile half its height: screens are
/// large and their content matters more than the name.
pub(super) fn screen_label_height(tile_height: u32) -> u32 {
    tile_height / 2
}

/// Sets a compositor pad's position and size.
fn set_pad_geometry(pad: &gst::Pad, rect: Rect) {
    pad.set_property("xpos", rect.x as i32);
    pad.set_property("ypos", rect.y as i32);
    pad.set_property("width", rect.width as i32);
    pad.set_property("height", rect.height as i32);
}
