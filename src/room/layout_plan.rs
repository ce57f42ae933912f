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
    /// It raised a hand.
    pub(super) hand: bool,
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
                    hand: seat.hand,
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
                            hand: false,
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::layout::file::{parse, LabelPosition};
    use crate::layout::BUILTIN;

    const HD: Size = Size {
        width: 1280,
        height: 720,
    };
    /// The whole canvas.
    const HD_RECT: Rect = Rect {
        x: 0,
        y: 0,
        width: 1280,
        height: 720,
    };
    /// The built-ins' highlight colour.
    const HIGHLIGHT: u32 = 0xffd23f;

    fn builtin(name: &str) -> LayoutFile {
        let text = BUILTIN.iter().find(|(n, _)| *n == name).unwrap().1;
        parse(Path::new(name), text).unwrap()
    }

    /// One region for one tile: everyone after the first is hidden.
    fn single() -> LayoutFile {
        parse(
            Path::new("single"),
            r##"
background = "#102030"
border = 6
border_colour = "#ffffff"
[labels]
position = "top"
[[group]]
[[group.region]]
x = 0.0
y = 0.0
w = 1.0
h = 1.0
fit = "crop"
"##,
        )
        .unwrap()
    }

    fn seat(id: &str, seq: u64) -> Seat<'_> {
        Seat {
            id,
            seq,
            media: true,
            teacher: false,
            muted: false,
            hand: false,
            screen: false,
        }
    }

    fn stage(layout: &LayoutFile) -> Stage<'_> {
        Stage {
            layout,
            canvas: HD,
            framerate: 30,
            pinned: None,
            speaker: None,
        }
    }

    fn camera(plan: &LayoutPlan, id: &str) -> CameraTile {
        plan.seat(id)
            .camera
            .unwrap_or_else(|| panic!("{id}'s camera is hidden: {plan:?}"))
    }

    fn area(r: Rect) -> u32 {
        r.width * r.height
    }

    fn order(plan: &LayoutPlan) -> Vec<&str> {
        plan.seats.iter().map(|s| s.participant.as_str()).collect()
    }

    #[test]
    fn an_empty_room_places_nothing_and_draws_nothing() {
        let layout = builtin("grid");
        let plan = plan_layout(&[], &stage(&layout));
        assert!(plan.seats.is_empty());
        assert!(plan.decorations().is_empty());
        assert_eq!(plan.background, Some(0x000000));
        // Only those with media are laid out.
        let waiting = Seat {
            media: false,
            ..seat("p00000001", 1)
        };
        let plan = plan_layout(&[waiting], &stage(&layout));
        assert!(plan.seats.is_empty(), "{plan:?}");
    }

    #[test]
    fn grid_places_everyone_in_join_order_with_a_hint_per_tile() {
        let layout = builtin("grid");
        // Given out of join order; the ids sort the other way.
        let seats = [
            seat("pa", 3),
            seat("pd", 1),
            Seat {
                media: false,
                ..seat("pc", 2)
            },
            seat("pb", 4),
            seat("pe", 5),
        ];
        let plan = plan_layout(&seats, &stage(&layout));
        assert_eq!(order(&plan), ["pd", "pa", "pb", "pe"]);
        let tiles: Vec<CameraTile> = order(&plan).iter().map(|id| camera(&plan, id)).collect();
        for (i, t) in tiles.iter().enumerate() {
            assert!(t.spot.rect.inside(HD), "{t:?}");
            assert_eq!(t.spot.fit, Fit::Letterbox);
            assert_eq!(t.hint, send_hint(t.spot.rect, 30));
            assert_eq!(
                (t.hint.width, t.hint.height, t.hint.framerate),
                (t.spot.rect.width, t.spot.rect.height, 30)
            );
            assert_eq!(t.decor.rect, t.spot.rect);
            for o in &tiles[i + 1..] {
                assert!(!t.spot.rect.overlaps(&o.spot.rect), "{t:?} {o:?}");
            }
        }
        // Four in a 2x2 grid, filled row by row in join order.
        let (first, second, third) = (tiles[0].spot.rect, tiles[1].spot.rect, tiles[2].spot.rect);
        assert_eq!(first.y, second.y);
        assert!(first.x < second.x);
        assert!(third.y > first.y);
        assert_eq!(first.width, second.width);
        assert!(plan.seats.iter().all(|s| s.screen == ScreenPlan::Off));
    }

    #[test]
    fn members_no_region_takes_are_hidden() {
        let layout = single();
        let seats = [seat("p1", 1), seat("p2", 2), seat("p3", 3)];
        let plan = plan_layout(&seats, &stage(&layout));
        let first = camera(&plan, "p1");
        assert_eq!(first.spot.fit, Fit::Crop);
        assert!(area(first.spot.rect) > area(HD_RECT) * 9 / 10, "{first:?}");
        assert_eq!(plan.seat("p2").camera, None);
        assert_eq!(plan.seat("p3").camera, None);
        // Hidden cameras are still in the plan (the relayout hides them).
        assert_eq!(order(&plan), ["p1", "p2", "p3"]);
        // The layout's background, border and labels.
        assert_eq!(plan.background, Some(0x102030));
        assert_eq!(
            plan.label,
            LabelStyle {
                position: LabelPosition::Top,
                inset: 6
            }
        );
        let borders = plan.decorations();
        assert!(!borders.is_empty());
        for paint in borders {
            match paint {
                Paint::Fill { rect, rgb } => {
                    assert_eq!(rgb, 0xffffff);
                    assert!(rect.overlaps(&first.spot.rect));
                }
                Paint::Muted { .. } | Paint::Hand { .. } => {
                    panic!("nobody is muted or has a hand up")
                }
            }
        }
    }

    #[test]
    fn a_shared_screen_goes_large_with_the_teacher_over_it() {
        let layout = builtin("screen");
        let seats = [
            Seat {
                teacher: true,
                ..seat("pt", 1)
            },
            seat("ps", 2),
            Seat {
                screen: true,
                ..seat("pw", 3)
            },
        ];
        let plan = plan_layout(&seats, &stage(&layout));
        let ScreenPlan::Shown { spot, decor } = plan.seat("pw").screen else {
            panic!("pw's screen is not shown: {plan:?}");
        };
        assert_eq!(decor.rect, spot.rect);
        assert!(!decor.speaker && !decor.muted);
        // The screen is the largest tile; the teacher's camera sits above it.
        for id in ["pt", "ps", "pw"] {
            assert!(area(camera(&plan, id).spot.rect) < area(spot.rect), "{id}");
        }
        let teacher = camera(&plan, "pt").spot;
        assert!(teacher.z > spot.z && teacher.rect.overlaps(&spot.rect));
        // Nobody else shares.
        assert_eq!(plan.seat("pt").screen, ScreenPlan::Off);
        assert_eq!(plan.seat("ps").screen, ScreenPlan::Off);
        // Applied in order: each camera, then its owner's screen.
        let decor_rects: Vec<Rect> = plan.tile_decor().iter().map(|d| d.rect).collect();
        assert_eq!(
            decor_rects,
            [
                teacher.rect,
                camera(&plan, "ps").spot.rect,
                camera(&plan, "pw").spot.rect,
                spot.rect
            ]
        );
    }

    #[test]
    fn a_shared_screen_no_region_takes_is_hidden() {
        let layout = single();
        let sharing = Seat {
            screen: true,
            ..seat("p1", 1)
        };
        let plan = plan_layout(&[sharing], &stage(&layout));
        assert!(plan.seat("p1").camera.is_some());
        assert_eq!(plan.seat("p1").screen, ScreenPlan::Hidden);
    }

    #[test]
    fn the_pinned_participant_and_the_speaker_go_large() {
        let layout = builtin("speaker");
        let seats = [seat("p1", 1), seat("p2", 2), seat("p3", 3), seat("p4", 4)];
        let largest = |plan: &LayoutPlan| {
            plan.seats
                .iter()
                .max_by_key(|s| area(s.camera.unwrap().spot.rect))
                .unwrap()
                .participant
                .clone()
        };
        // Nobody pinned, nobody talking: the first to join.
        let plan = plan_layout(&seats, &stage(&layout));
        assert_eq!(largest(&plan), "p1");
        let pinned = Stage {
            pinned: Some("p3"),
            ..stage(&layout)
        };
        assert_eq!(largest(&plan_layout(&seats, &pinned)), "p3");
        // The active speaker comes before the pin in this layout.
        let talking = Stage {
            speaker: Some("p2"),
            ..pinned
        };
        assert_eq!(largest(&plan_layout(&seats, &talking)), "p2");
    }

    #[test]
    fn the_speaker_is_highlighted_and_the_muted_marked() {
        let layout = builtin("speaker");
        let seats = [
            seat("p1", 1),
            seat("p2", 2),
            Seat {
                muted: true,
                ..seat("p3", 3)
            },
        ];
        let stage = Stage {
            speaker: Some("p2"),
            ..stage(&layout)
        };
        let plan = plan_layout(&seats, &stage);
        let (p1, p2, p3) = (
            camera(&plan, "p1"),
            camera(&plan, "p2"),
            camera(&plan, "p3"),
        );
        assert!(p2.decor.speaker && !p2.decor.muted);
        assert!(!p1.decor.speaker && !p1.decor.muted);
        assert!(!p3.decor.speaker && p3.decor.muted);
        // Labels stay clear of the highlight (the built-ins have no border).
        assert_eq!(plan.label.inset, 4);
        let paints = plan.decorations();
        let fills: Vec<Rect> = paints
            .iter()
            .filter_map(|p| match p {
                Paint::Fill { rect, rgb } => {
                    assert_eq!(*rgb, HIGHLIGHT);
                    Some(*rect)
                }
                Paint::Muted { .. } | Paint::Hand { .. } => None,
            })
            .collect();
        assert!(!fills.is_empty());
        assert!(fills.iter().all(|r| r.overlaps(&p2.spot.rect)), "{fills:?}");
        let markers: Vec<Rect> = paints
            .iter()
            .filter_map(|p| match p {
                Paint::Muted { rect } => Some(*rect),
                Paint::Fill { .. } | Paint::Hand { .. } => None,
            })
            .collect();
        assert_eq!(markers.len(), 1, "{paints:?}");
        assert!(markers[0].overlaps(&p3.spot.rect));
        // Without a speaker nothing is highlighted.
        let quiet = plan_layout(
            &seats,
            &Stage {
                speaker: None,
                ..stage
            },
        );
        assert!(quiet
            .decorations()
            .iter()
            .all(|p| matches!(p, Paint::Muted { .. })));
    }
}
