//! What a relayout decides, as a pure function: from the room's members
//! (their role, mute state and shared screen), its layout file, canvas,
//! pin and active speaker to a [`LayoutPlan`]: where each camera and each
//! shared screen goes or that it is hidden, the send hint of each shown
//! camera, the name labels, the background and the tile decorations.
//!
//! No GStreamer and no actor here: the room actor builds the [`Seat`]s from
//! its participants and applies the plan to its media (`actor/canvas.rs`).

#[cfg(test)]
use crate::layout::decor::{decorate, Paint};
use crate::layout::decor::{DecorStyle, TileDecor};
use crate::layout::file::{parse_colour, Fit, LayoutFile};
use crate::layout::{place, send_hint, Member, Rect, SendHint, Size};
use crate::media::LabelStyle;

/// One participant as the canvas sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seat<'a> {
    /// Participant id.
    pub(super) id: &'a str,
    /// Join order: tiles are laid out by it.
    pub(super) seq: u64,
    /// Its media is set up (it sent its offer); only those get tiles.
    pub(super) media: bool,
    /// Joined as a teacher.
    pub(super) teacher: bool,
    /// Its microphone is off, or a teacher silenced it.
    pub(super) muted: bool,
    /// It shares its screen and the screen's first frame reached the canvas.
    pub(super) screen: bool,
}

/// The room-wide state a layout depends on.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stage<'a> {
    /// The layout in force.
    pub(super) layout: &'a LayoutFile,
    /// Canvas size.
    pub(super) canvas: Size,
    /// Canvas frames per second, for the send hints.
    pub(super) framerate: u32,
    /// The pinned participant, if any.
    pub(super) pinned: Option<&'a str>,
    /// The active speaker, if any.
    pub(super) speaker: Option<&'a str>,
}

/// Where a picture goes on the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Spot {
    /// Tile on the canvas.
    pub(super) rect: Rect,
    /// Stacking order, higher above.
    pub(super) z: u32,
    /// How the picture fills the tile.
    pub(super) fit: Fit,
}

/// A shown camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CameraTile {
    /// Where it goes.
    pub(super) spot: Spot,
    /// What the participant should send for that tile (sent when its tile changed).
    pub(super) hint: SendHint,
    /// Its border, highlight and muted marker.
    pub(super) decor: TileDecor,
}

/// What happens to a participant's shared screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScreenPlan {
    /// No screen is on the canvas: hidden, before the camera is placed.
    Off,
    /// The screen is a member of the layout and placed here, after the camera.
    Shown {
        /// Where it goes.
        spot: Spot,
        /// Its border (never highlighted nor marked muted).
        decor: TileDecor,
    },
    /// The screen is a member of the layout but no region took it: hidden,
    /// after the camera.
    Hidden,
}

/// The plan for one participant with media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SeatPlan {
    /// Participant id.
    pub(super) participant: String,
    /// Its camera's tile, or None when no region took it (hidden).
    pub(super) camera: Option<CameraTile>,
    /// Its shared screen.
    pub(super) screen: ScreenPlan,
}

/// Everything a relayout changes on the canvas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LayoutPlan {
    /// Canvas background, 0xRRGGBB, when the layout's colour parses.
    pub(super) background: Option<u32>,
    /// Name labels of every shown camera.
    pub(super) label: LabelStyle,
    /// How the decorations are drawn.
    pub(super) decor_style: DecorStyle,
    /// One entry per participant with media, in join order.
    pub(super) seats: Vec<SeatPlan>,
}

#[cfg(test)]
impl LayoutPlan {
    /// The tile decorations, in the order the relayout applies them: each
    /// seat's camera, then its screen.
    fn tile_decor(&self) -> Vec<TileDecor> {
        let mut out = Vec::new();
        for seat in &self.seats {
            out.extend(seat.camera.map(|c| c.decor));
            if let ScreenPlan::Shown { decor, .. } = seat.screen {
                out.push(decor);
            }
        }
        out
    }

    /// What gets drawn over the canvas, bottom to top.
    fn decorations(&self) -> Vec<Paint> {
        decorate(&self.tile_decor(), &self.decor_style)
    }

    /// The plan of one participant.
    fn seat(&self, id: &str) -> &SeatPlan {
        self.seats
            .iter()
            .find(|s| s.participant == id)
            .unwrap_or_else(|| panic!("no seat for {id}: {self:?}"))
    }
}

/// Lays out the participants with media, in join order, a shared screen
/// right after its owner's camera.
pub(super) fn plan_layout(seats: &[Seat<'_>], stage: &Stage<'_>) -> LayoutPlan {
    let mut order: Vec<(u64, &str, &Seat<'_>)> = seats
        .iter()
        .filter(|s| s.media)
        .map(|s| (s.seq, s.id, s))
        .collect();
    order.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    // Layout members: each camera, then its screen if shown. `camera_index`
    // and `screen_index` are each seat's members.
    let mut members: Vec<Member> = Vec::new();
    let mut indices: Vec<(&Seat<'_>, usize, Option<usize>)> = Vec::new();
    for (_, id, seat) in order {
        let camera_index = members.len();
        members.push(Member {
            teacher: seat.teacher,
            pinned: stage.pinned == Some(id),
            speaker: stage.speaker == Some(id),
            ..Member::default()
        });
        let screen_index = seat.screen.then(|| {
            members.push(Member {
                screen: true,
                ..Member::default()
            });
            members.len() - 1
        });
        indices.push((seat, camera_index, screen_index));
    }
    let placements = place(stage.layout, stage.canvas, &members);
    let spot = |index: usize| {
        placements.iter().find(|p| p.member == index).map(|p| Spot {
            rect: p.rect,
            z: p.z,
            fit: p.fit,
        })
    };
    let seats = indices
        .into_iter()
        .map(|(seat, camera_index, screen_index)| {
            let camera = spot(camera_index).map(|spot| CameraTile {
                spot,
                hint: send_hint(spot.rect, stage.framerate),
                decor: TileDecor {
                    rect: spot.rect,
                    z: spot.z,
                    speaker: stage.speaker == Some(seat.id),
                    muted: seat.muted,
                },
            });
            let screen = match screen_index {
                None => ScreenPlan::Off,
                Some(index) => match spot(index) {
                    Some(spot) => ScreenPlan::Shown {
                        spot,
                        decor: TileDecor {
                            rect: spot.rect,
                            z: spot.z,
                            speaker: false,
                            muted: false,
                        },
                    },
                    None => ScreenPlan::Hidden,
                },
            };
            SeatPlan {
                participant: seat.id.to_string(),
                camera,
                screen,
            }
        })
        .collect();
    LayoutPlan {
        background: parse_colour(&stage.layout.background),
        label: label_style(stage.layout),
        decor_style: DecorStyle::of(stage.layout),
        seats,
    }
}

/// Where the layout wants name labels: clear of borders and the highlight.
fn label_style(layout: &LayoutFile) -> LabelStyle {
    LabelStyle {
        position: layout.labels.position,
        inset: DecorStyle::of(layout).edge(),
    }
}
