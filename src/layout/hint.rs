//! What a participant should send: its tile's size and frame rate, and a
//! bitrate cap to match. Sending more is wasted upstream bandwidth and
//! server CPU (the server scales every input down to its tile).

use serde::{Deserialize, Serialize};

use super::Rect;

/// Bits per pixel per frame allowed to the sender: enough for camera
/// content at these sizes with VP8 or H.264 in realtime mode.
pub const BITS_PER_PIXEL: f64 = 0.08;
/// No sender is asked to go below this (tiny tiles still need a picture).
pub const MIN_BITRATE: u32 = 60_000;
/// Nor above this: a full 720p canvas tile.
pub const MAX_BITRATE: u32 = 2_000_000;

/// The sending parameters for one tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendHint {
    /// Tile width in pixels.
    pub width: u32,
    /// Tile height in pixels.
    pub height: u32,
    /// Canvas frame rate.
    pub framerate: u32,
    /// Bitrate cap for the participant's video, bits per second.
    pub max_bitrate: u32,
}

/// The hint for a tile on a canvas running at `framerate`.
pub fn send_hint(tile: Rect, framerate: u32) -> SendHint {
    let bits =
        f64::from(tile.width) * f64::from(tile.height) * f64::from(framerate) * BITS_PER_PIXEL;
    SendHint {
        width: tile.width,
        height: tile.height,
        framerate,
        max_bitrate: (bits as u32).clamp(MIN_BITRATE, MAX_BITRATE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{grid, Size};

    fn rect(width: u32, height: u32) -> Rect {
        Rect {
            x: 0,
            y: 0,
            width,
            height,
        }
    }

    #[test]
    fn full_canvas_is_capped_and_small_tiles_floored() {
        assert_eq!(send_hint(rect(1280, 720), 30).max_bitrate, MAX_BITRATE);
        assert_eq!(send_hint(rect(64, 36), 30).max_bitrate, MIN_BITRATE);
        let h = send_hint(rect(640, 360), 30);
        assert_eq!((h.width, h.height, h.framerate), (640, 360, 30));
        assert_eq!(h.max_bitrate, 552_960);
    }

    #[test]
    fn a_thirty_person_room_asks_far_less_than_one_tile_per_canvas() {
        let canvas = Size {
            width: 1280,
            height: 720,
        };
        let tiles = grid(canvas, 30, 4);
        let total: u64 = tiles
            .iter()
            .map(|t| u64::from(send_hint(*t, 30).max_bitrate))
            .sum();
        let single = u64::from(send_hint(tiles[0], 30).max_bitrate);
        assert!(single < 250_000, "{single}");
        // 30 senders together ask for less than 4 full-canvas streams.
        assert!(total < 4 * u64::from(MAX_BITRATE), "{total}");
    }
}
