//! Canvas geometry: where each participant's tile goes.
//!
//! Rooms place tiles with layout files ([`file`]: format and validation,
//! [`engine`]: placement by role and state, [`library`]: the built-ins and a
//! directory, [`watch`]: hot reload, [`render`]: pictures). The arithmetic
//! of equal tiles is [`grid`]; the five built-ins ship in `layouts/`.

pub mod decor;
pub mod engine;
pub mod file;
mod grid;
mod hint;
pub mod library;
pub mod render;
pub mod watch;

pub use engine::{place, Member, Placement, BUILTIN};
pub use grid::grid;
pub use hint::{send_hint, SendHint};

/// A size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Size {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A rectangle on the canvas, in pixels from the top-left corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl Rect {
    /// The centre point, rounded down.
    pub fn center(&self) -> (u32, u32) {
        (self.x + self.width / 2, self.y + self.height / 2)
    }

    /// True when the two rectangles share any pixel.
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.x + other.width
            && other.x < self.x + self.width
            && self.y < other.y + other.height
            && other.y < self.y + self.height
    }

    /// True when the rectangle lies entirely within a canvas of `size`.
    pub fn inside(&self, size: Size) -> bool {
        self.x + self.width <= size.width && self.y + self.height <= size.height
    }
}

/// Pixels to cut from each side of a picture of `input` size so that what
/// remains has `tile`'s aspect ratio, centred: (left, right, top, bottom),
/// even so that I420 chroma stays aligned.
pub fn crop_to_aspect(input: Size, tile: Size) -> (u32, u32, u32, u32) {
    if input.width < 2 || input.height < 2 || tile.width == 0 || tile.height == 0 {
        return (0, 0, 0, 0);
    }
    let (iw, ih) = (u64::from(input.width), u64::from(input.height));
    let (tw, th) = (u64::from(tile.width), u64::from(tile.height));
    if iw * th > ih * tw {
        // Wider than the tile: cut the sides.
        let keep = (ih * tw / th) as u32;
        let cut = even(input.width.saturating_sub(keep) / 2);
        (cut, cut, 0, 0)
    } else {
        let keep = (iw * th / tw) as u32;
        let cut = even(input.height.saturating_sub(keep) / 2);
        (0, 0, cut, cut)
    }
}

/// Rounds down to an even number, so I420 tiles align with chroma samples.
pub(crate) fn even(v: u32) -> u32 {
    v & !1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(width: u32, height: u32) -> Size {
        Size { width, height }
    }

    #[test]
    fn crop_keeps_the_tiles_aspect_centred() {
        // 4:3 into 16:9: cut top and bottom.
        assert_eq!(
            crop_to_aspect(size(640, 480), size(320, 180)),
            (0, 0, 60, 60)
        );
        // 16:9 into a square: cut the sides.
        assert_eq!(
            crop_to_aspect(size(1280, 720), size(100, 100)),
            (280, 280, 0, 0)
        );
        // Same aspect: nothing.
        assert_eq!(
            crop_to_aspect(size(1280, 720), size(640, 360)),
            (0, 0, 0, 0)
        );
        // Degenerate sizes crop nothing.
        assert_eq!(crop_to_aspect(size(0, 0), size(640, 360)), (0, 0, 0, 0));
        for (input, tile) in [
            (size(641, 479), size(316, 178)),
            (size(320, 240), size(140, 80)),
            (size(1920, 1080), size(120, 300)),
        ] {
            let (l, r, t, b) = crop_to_aspect(input, tile);
            for v in [l, r, t, b] {
                assert_eq!(v % 2, 0, "{input:?} in {tile:?}");
            }
            let (w, h) = (input.width - l - r, input.height - t - b);
            let got = f64::from(w) / f64::from(h);
            let want = f64::from(tile.width) / f64::from(tile.height);
            assert!(
                (got - want).abs() / want < 0.02,
                "{input:?} in {tile:?}: {w}x{h}"
            );
        }
    }
}
