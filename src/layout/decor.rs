//! Tile decorations drawn over the canvas: borders, the active speaker's
//! highlight, the muted-microphone marker and the raised hand. Pure geometry: the room's
//! overlay turns the [`Paint`]s into pixels.
//!
//! Decorations of a tile never cover a tile stacked above it (a
//! picture-in-picture keeps its own edges clean).

use super::file::{parse_colour, LayoutFile};
use super::{Rect, Size};

/// What decorations need to know about one tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileDecor {
    /// Where the tile is.
    pub rect: Rect,
    /// Its stacking level.
    pub z: u32,
    /// It shows the active speaker.
    pub speaker: bool,
    /// Its participant's microphone is off.
    pub muted: bool,
    /// Its participant raised a hand.
    pub hand: bool,
}

/// How a layout decorates its tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecorStyle {
    /// Border width in pixels (0: none).
    pub border: u32,
    /// Border colour, 0xRRGGBB.
    pub border_colour: u32,
    /// Active speaker's border colour, 0xRRGGBB, if highlighted.
    pub highlight: Option<u32>,
}

impl DecorStyle {
    /// The decoration settings of a layout file (its colours were validated at load).
    pub fn of(layout: &LayoutFile) -> DecorStyle {
        DecorStyle {
            border: layout.border,
            border_colour: parse_colour(&layout.border_colour).unwrap_or(0x3c3c3c),
            highlight: layout.highlight.as_deref().and_then(parse_colour),
        }
    }

    /// The widest edge any tile may get: its border or the highlight.
    pub fn edge(&self) -> u32 {
        match self.highlight {
            Some(_) => self.border.max(MIN_HIGHLIGHT),
            None => self.border,
        }
    }
}

/// One thing to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paint {
    /// A solid rectangle of colour 0xRRGGBB.
    Fill {
        /// Where.
        rect: Rect,
        /// Colour.
        rgb: u32,
    },
    /// The muted-microphone marker, drawn to fill `rect` (a square).
    Muted {
        /// Where.
        rect: Rect,
    },
    /// The raised-hand marker, drawn to fill `rect` (a square).
    Hand {
        /// Where.
        rect: Rect,
    },
}

impl Paint {
    /// Where it is drawn.
    pub fn rect(&self) -> Rect {
        match self {
            Paint::Fill { rect, .. } | Paint::Muted { rect } | Paint::Hand { rect } => *rect,
        }
    }
}

/// A marker in a tile's corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Muted,
    Hand,
}

/// The highlight is at least this wide, so it shows even without borders.
const MIN_HIGHLIGHT: u32 = 4;

/// Side of the muted marker on a tile `tile_height` pixels high.
pub fn marker_side(tile_height: u32) -> u32 {
    super::even((tile_height / 8).clamp(12, 40))
}

/// The decorations of `tiles`, bottom to top.
pub fn decorate(tiles: &[TileDecor], style: &DecorStyle) -> Vec<Paint> {
    let mut order: Vec<&TileDecor> = tiles.iter().collect();
    order.sort_by_key(|t| t.z);
    let mut out = Vec::new();
    for t in order {
        let mut own = Vec::new();
        let (width, rgb) = match style.highlight {
            Some(h) if t.speaker => (style.border.max(MIN_HIGHLIGHT), Some(h)),
            _ => (
                style.border,
                (style.border > 0).then_some(style.border_colour),
            ),
        };
        if let Some(rgb) = rgb {
            own.extend(frame(t.rect, width).into_iter().map(|rect| (rect, Ok(rgb))));
        }
        // The muted marker in the top-right corner, the hand top-left.
        let side = marker_side(t.rect.height);
        let margin = width + 4;
        let high = t.rect.height > side + 2 * margin;
        for (on, mark, x, wide) in [
            (
                t.muted,
                Mark::Muted,
                t.rect.x + t.rect.width.saturating_sub(margin + side),
                t.rect.width > side + 2 * margin,
            ),
            // Beside the muted marker, never over it.
            (
                t.hand,
                Mark::Hand,
                t.rect.x + margin,
                t.rect.width > 2 * side + 3 * margin,
            ),
        ] {
            if on && high && wide {
                let rect = Rect {
                    x,
                    y: t.rect.y + margin,
                    width: side,
                    height: side,
                };
                own.push((rect, Err(mark)));
            }
        }
        let above: Vec<Rect> = tiles.iter().filter(|o| o.z > t.z).map(|o| o.rect).collect();
        for (rect, rgb) in own {
            match rgb {
                Ok(rgb) => out.extend(
                    clip(rect, &above)
                        .into_iter()
                        .map(|rect| Paint::Fill { rect, rgb }),
                ),
                // A marker is whole or not drawn.
                Err(_) if above.iter().any(|a| a.overlaps(&rect)) => {}
                Err(Mark::Muted) => out.push(Paint::Muted { rect }),
                Err(Mark::Hand) => out.push(Paint::Hand { rect }),
            }
        }
    }
    out
}

/// The four strips of a `width`-pixel frame just inside `r`.
fn frame(r: Rect, width: u32) -> Vec<Rect> {
    if width == 0 || r.width <= 2 * width || r.height <= 2 * width {
        return Vec::new();
    }
    vec![
        Rect { height: width, ..r },
        Rect {
            y: r.y + r.height - width,
            height: width,
            ..r
        },
        Rect {
            y: r.y + width,
            width,
            height: r.height - 2 * width,
            ..r
        },
        Rect {
            x: r.x + r.width - width,
            y: r.y + width,
            width,
            height: r.height - 2 * width,
        },
    ]
}

/// The parts of `r` outside every rect of `holes`.
fn clip(r: Rect, holes: &[Rect]) -> Vec<Rect> {
    let mut parts = vec![r];
    for h in holes {
        parts = parts.into_iter().flat_map(|p| subtract(p, *h)).collect();
    }
    parts
}

/// `a` minus `b`, as up to four rectangles.
fn subtract(a: Rect, b: Rect) -> Vec<Rect> {
    if !a.overlaps(&b) {
        return vec![a];
    }
    let (ax2, ay2) = (a.x + a.width, a.y + a.height);
    let (bx2, by2) = (b.x + b.width, b.y + b.height);
    let (top, bottom) = (b.y.max(a.y), by2.min(ay2));
    let mut out = Vec::new();
    let mut push = |x: u32, y: u32, x2: u32, y2: u32| {
        if x2 > x && y2 > y {
            out.push(Rect {
                x,
                y,
                width: x2 - x,
                height: y2 - y,
            });
        }
    };
    push(a.x, a.y, ax2, top);
    push(a.x, bottom, ax2, ay2);
    push(a.x, top, b.x.max(a.x), bottom);
    push(bx2.min(ax2), top, ax2, bottom);
    out
}

/// The muted marker as straight-alpha RGBA pixels, `side` × `side`: a red
/// disc with a white microphone struck through.
pub fn muted_marker(side: u32) -> Vec<u8> {
    let s = side as f64;
    let mut px = Vec::with_capacity((side * side * 4) as usize);
    for y in 0..side {
        for x in 0..side {
            // Pixel centre, in units of the side.
            let (u, v) = ((f64::from(x) + 0.5) / s, (f64::from(y) + 0.5) / s);
            let disc = (u - 0.5).hypot(v - 0.5) <= 0.5;
            let capsule = (0.4..=0.6).contains(&u) && (0.2..=0.58).contains(&v);
            let stem = (0.47..=0.53).contains(&u) && (0.58..=0.78).contains(&v);
            let base = (0.35..=0.65).contains(&u) && (0.74..=0.8).contains(&v);
            // The stroke from top-left to bottom-right.
            let strike = (u - v).abs() < 0.06 && (0.18..=0.82).contains(&u);
            let rgba: [u8; 4] = if !disc {
                [0, 0, 0, 0]
            } else if capsule || stem || base || strike {
                [255, 255, 255, 255]
            } else {
                [0xd0, 0x21, 0x2b, 235]
            };
            px.extend_from_slice(&rgba);
        }
    }
    px
}

/// The colour of the raised-hand marker's disc, 0xRRGGBB.
pub const HAND_RGB: u32 = 0xf2a900;

/// The raised-hand marker as straight-alpha RGBA pixels, `side` × `side`:
/// an amber disc with a white open hand (palm, four fingers, a thumb).
pub fn hand_marker(side: u32) -> Vec<u8> {
    let s = side as f64;
    let [r, g, b] = [
        (HAND_RGB >> 16) as u8,
        (HAND_RGB >> 8) as u8,
        HAND_RGB as u8,
    ];
    let mut px = Vec::with_capacity((side * side * 4) as usize);
    for y in 0..side {
        for x in 0..side {
            let (u, v) = ((f64::from(x) + 0.5) / s, (f64::from(y) + 0.5) / s);
            let disc = (u - 0.5).hypot(v - 0.5) <= 0.5;
            let palm = (0.33..=0.67).contains(&u) && (0.45..=0.78).contains(&v);
            let finger = (0..4).any(|i| {
                let left = 0.33 + 0.0875 * f64::from(i);
                (left..=left + 0.06).contains(&u) && (0.2..=0.5).contains(&v)
            });
            let thumb = (u - 0.27).abs() + (v - 0.55).abs() * 0.6 < 0.07 || {
                let t = (u - 0.26, v - 0.5);
                (0.2..=0.33).contains(&u)
                    && (t.0 + t.1 * 0.5).abs() < 0.05
                    && (0.42..=0.64).contains(&v)
            };
            let rgba: [u8; 4] = if !disc {
                [0, 0, 0, 0]
            } else if palm || finger || thumb {
                [255, 255, 255, 255]
            } else {
                [r, g, b, 240]
            };
            px.extend_from_slice(&rgba);
        }
    }
    px
}

/// True when every paint lies inside the canvas (used by tests).
pub fn inside(paints: &[Paint], canvas: Size) -> bool {
    paints.iter().all(|p| p.rect().inside(canvas))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    fn tile(r: Rect, z: u32) -> TileDecor {
        TileDecor {
            rect: r,
            z,
            speaker: false,
            muted: false,
            hand: false,
        }
    }

    const STYLE: DecorStyle = DecorStyle {
        border: 2,
        border_colour: 0x333333,
        highlight: Some(0xffd23f),
    };

    fn fills(p: &[Paint]) -> Vec<(Rect, u32)> {
        p.iter()
            .filter_map(|p| match p {
                Paint::Fill { rect, rgb } => Some((*rect, *rgb)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_border_is_four_strips_inside_the_tile() {
        let t = rect(10, 20, 100, 50);
        let p = decorate(&[tile(t, 0)], &STYLE);
        let f = fills(&p);
        assert_eq!(f.len(), 4);
        let area: u32 = f.iter().map(|(r, _)| r.width * r.height).sum();
        assert_eq!(area, 100 * 50 - 96 * 46);
        for (r, rgb) in f {
            assert_eq!(rgb, 0x333333);
            assert!(
                !r.overlaps(&rect(12, 22, 96, 46)),
                "{r:?} inside the picture"
            );
            assert!(r.inside(Size {
                width: 110,
                height: 70
            }));
        }
    }

    #[test]
    fn no_border_and_no_highlight_draws_nothing() {
        let style = DecorStyle {
            border: 0,
            border_colour: 0,
            highlight: None,
        };
        let mut t = tile(rect(0, 0, 100, 100), 0);
        t.speaker = true;
        assert!(decorate(&[t], &style).is_empty());
    }

    #[test]
    fn the_speaker_gets_a_highlight_even_without_borders() {
        let style = DecorStyle { border: 0, ..STYLE };
        let mut t = tile(rect(0, 0, 100, 100), 0);
        t.speaker = true;
        let f = fills(&decorate(&[t, tile(rect(100, 0, 100, 100), 0)], &style));
        assert_eq!(f.len(), 4);
        assert!(f.iter().all(|(r, rgb)| *rgb == 0xffd23f && r.x < 100));
        assert!(f.iter().any(|(r, _)| r.height == MIN_HIGHLIGHT));
    }

    #[test]
    fn decorations_never_cover_a_tile_above() {
        let mut big = tile(rect(0, 0, 400, 300), 0);
        big.muted = true;
        big.speaker = true;
        let pip = tile(rect(300, 200, 100, 100), 1);
        // Where the big tile's marker would go.
        let corner = tile(rect(340, 0, 60, 60), 1);
        let p = decorate(&[big, pip, corner], &STYLE);
        let within = |r: &Rect, o: &Rect| {
            r.x >= o.x
                && r.y >= o.y
                && r.x + r.width <= o.x + o.width
                && r.y + r.height <= o.y + o.height
        };
        for paint in &p {
            let rect = paint.rect();
            for above in [pip.rect, corner.rect] {
                assert!(
                    !rect.overlaps(&above) || within(&rect, &above),
                    "{paint:?} reaches into {above:?}"
                );
            }
        }
        // The big tile's highlight is still drawn where it is uncovered,
        // and its marker, covered, is left out.
        assert!(p
            .iter()
            .any(|p| matches!(p, Paint::Fill { rgb: 0xffd23f, rect } if rect.x == 0)));
        assert!(!p.iter().any(|p| matches!(p, Paint::Muted { .. })));
    }

    #[test]
    fn a_muted_tile_gets_a_marker_in_its_top_right_corner() {
        let mut t = tile(rect(100, 100, 320, 180), 0);
        t.muted = true;
        let p = decorate(&[t], &STYLE);
        let marker = p
            .iter()
            .find_map(|p| match p {
                Paint::Muted { rect } => Some(*rect),
                _ => None,
            })
            .unwrap();
        assert_eq!(marker.width, marker_side(180));
        assert_eq!(marker.x + marker.width + 6, 420);
        assert_eq!(marker.y, 106);
        assert!(inside(
            &p,
            Size {
                width: 420,
                height: 280
            }
        ));
    }

    #[test]
    fn a_raised_hand_is_marked_top_left_beside_the_muted_marker() {
        let mut t = tile(rect(100, 100, 320, 180), 0);
        t.muted = true;
        t.hand = true;
        let p = decorate(&[t], &STYLE);
        let find = |hand: bool| {
            p.iter()
                .find_map(|p| match (p, hand) {
                    (Paint::Hand { rect }, true) | (Paint::Muted { rect }, false) => Some(*rect),
                    _ => None,
                })
                .unwrap()
        };
        let (hand, muted) = (find(true), find(false));
        assert_eq!((hand.x, hand.y), (106, 106));
        assert_eq!(hand.width, muted.width);
        assert!(!hand.overlaps(&muted));
        // Too narrow for both: the muted marker stays, the hand goes.
        let mut narrow = tile(rect(0, 0, 50, 180), 0);
        narrow.muted = true;
        narrow.hand = true;
        let p = decorate(&[narrow], &STYLE);
        assert!(p.iter().any(|p| matches!(p, Paint::Muted { .. })));
        assert!(!p.iter().any(|p| matches!(p, Paint::Hand { .. })));
    }

    #[test]
    fn the_hand_marker_is_an_amber_disc_with_a_white_hand() {
        let side = 40;
        let px = hand_marker(side);
        let at = |x: u32, y: u32| {
            let i = ((y * side + x) * 4) as usize;
            [px[i], px[i + 1], px[i + 2], px[i + 3]]
        };
        assert_eq!(at(0, 0)[3], 0, "outside the disc: clear");
        assert_eq!(
            &at(4, 20)[..3],
            &[0xf2, 0xa9, 0x00],
            "the disc's edge: amber"
        );
        assert_eq!(at(20, 26), [255, 255, 255, 255], "the palm: white");
    }

    #[test]
    fn subtract_leaves_the_rest_of_the_rectangle() {
        let a = rect(0, 0, 10, 10);
        let parts = subtract(a, rect(3, 3, 4, 4));
        let area: u32 = parts.iter().map(|r| r.width * r.height).sum();
        assert_eq!(area, 100 - 16);
        assert!(parts.iter().all(|r| !r.overlaps(&rect(3, 3, 4, 4))));
        assert_eq!(subtract(a, rect(20, 20, 5, 5)), vec![a]);
        assert!(subtract(a, rect(0, 0, 10, 10)).is_empty());
    }

    #[test]
    fn the_marker_is_red_with_a_white_stroke_and_clear_corners() {
        let side = 24;
        let px = muted_marker(side);
        assert_eq!(px.len(), (side * side * 4) as usize);
        let at = |x: u32, y: u32| &px[((y * side + x) * 4) as usize..][..4];
        assert_eq!(at(0, 0)[3], 0, "corner is transparent");
        assert_eq!(at(12, 8), [255, 255, 255, 255], "microphone is white");
        assert_eq!(at(4, 12)[0], 0xd0, "disc is red");
    }
}
