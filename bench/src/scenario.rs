//! Named load presets and the targets a level must hold.

use serde::Serialize;

use crate::clip::Codec;

/// A load: rooms of participants sending video of one size.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// Preset name.
    pub name: String,
    /// Rooms.
    pub rooms: usize,
    /// Participants in each room.
    pub per_room: usize,
    /// Video size every participant sends.
    pub send: (u32, u32),
    /// Every this many participants, one sends and receives H.264 (the
    /// rest VP8); 0: VP8 only.
    pub h264_every: usize,
}

/// Preset names, for help and errors.
pub const NAMES: &[&str] = &[
    "lesson-1on1",
    "group-8",
    "speaking-club-30",
    "school-morning",
    "weak-links",
    "school-day",
];

/// The presets run when none is named: the load presets. `weak-links`
/// needs root and coturn, and `school-day` runs for hours: they run only
/// when asked for.
pub const DEFAULT: &[&str] = &[
    "lesson-1on1",
    "group-8",
    "speaking-club-30",
    "school-morning",
];

impl Scenario {
    /// A preset by name.
    pub fn preset(name: &str) -> Option<Scenario> {
        let (rooms, per_room, send) = match name {
            "lesson-1on1" => (1, 2, (640, 360)),
            "group-8" => (1, 8, (480, 270)),
            "speaking-club-30" => (1, 30, (320, 180)),
            // A start; --find-capacity adds rooms until a target breaks.
            "school-morning" => (2, 6, (480, 270)),
            // Five on clean links, three on weak ones (`weak.rs`).
            "weak-links" => (1, 8, (480, 270)),
            // Rooms of 2, 6 and 12 come and go (`school.rs`).
            "school-day" => (1, 12, (320, 180)),
            _ => return None,
        };
        Some(Scenario {
            name: name.into(),
            rooms,
            per_room,
            send,
            // Both families in every room: one of two, else one of three.
            h264_every: if per_room <= 2 { 2 } else { 3 },
        })
    }

    /// Participants in all rooms.
    pub fn participants(&self) -> usize {
        self.rooms * self.per_room
    }

    /// Codec of participant `index` of a room: mixed in each room.
    pub fn codec(&self, index: usize) -> Codec {
        if self.h264_every > 0 && index % self.h264_every == self.h264_every - 1 {
            Codec::H264
        } else {
            Codec::Vp8
        }
    }

    /// The next, heavier level for `--find-capacity`: more rooms for
    /// school-morning, else more participants in the room.
    pub fn heavier(&self) -> Scenario {
        let mut next = self.clone();
        if self.name == "school-morning" {
            next.rooms += 1;
        } else {
            next.per_room = match self.per_room {
                n if n < 4 => n + 2,
                n if n < 16 => n + 4,
                n => n + 6,
            };
        }
        next
    }
}

/// The targets a level must hold, on this machine class.
pub mod targets {
    /// Canvas frames per second every receiver must get (of 30).
    pub const MIN_FPS: f64 = 29.0;
    /// Video latency the server may add, p95 (ms).
    pub const VIDEO_ADDED_P95_MS: f64 = 100.0;
    /// Audio latency the server may add, p95 (ms).
    pub const AUDIO_ADDED_P95_MS: f64 = 60.0;
    /// Join to first canvas frame, p95 (ms).
    pub const JOIN_P95_MS: f64 = 1000.0;
    /// Tessera CPU over the baseline's.
    pub const CPU_RATIO: f64 = 1.25;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_mix_codecs_and_grow() {
        let s = Scenario::preset("group-8").unwrap();
        let h264 = (0..s.per_room)
            .filter(|i| s.codec(*i) == Codec::H264)
            .count();
        assert_eq!(h264, 2);
        assert_eq!(s.heavier().per_room, 12);
        let m = Scenario::preset("school-morning").unwrap();
        assert_eq!(m.heavier().rooms, 3);
        assert_eq!(m.heavier().per_room, 6);
        for name in NAMES {
            assert!(Scenario::preset(name).is_some());
        }
        assert!(Scenario::preset("nope").is_none());
    }
}
