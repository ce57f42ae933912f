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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A rectangle on the canvas, in pixels from the top-left corner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Rounds down to an even number, so I420 tiles align with chroma samples.
pub(crate) fn even(v: u32) -> u32 {
    v & !1
}
