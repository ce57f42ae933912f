//! `[downlink]`: the quality tiers of the canvas and whether receivers are
//! moved between them by what their links carry (docs/weak-networks.md).

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[downlink]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DownlinkConfig {
    /// Move each receiver to the tier its downlink carries. `false`: every
    /// receiver gets the full canvas, whatever its link.
    pub adapt: bool,
    /// The low tier's width in pixels (even); 0: half the canvas.
    pub low_width: u32,
    /// The low tier's height in pixels (even); 0: half the canvas.
    pub low_height: u32,
    /// The low tier's frames per second (at most `media.framerate`).
    pub low_framerate: u32,
    /// Whether a receiver whose link cannot carry even the low tier may
    /// get the audio alone. `false`: the low tier is the floor.
    pub audio_only: bool,
    /// The shortest time between two keyframes the low tier's receivers
    /// ask for, in milliseconds. Longer than the high tier's
    /// (`media.keyframe_min_interval_ms`): on a narrow link each keyframe
    /// is a burst that loses more packets, and each loss asks for another.
    /// Newcomers and receivers moving in get theirs at once regardless.
    pub low_keyframe_min_interval_ms: u64,
}

impl Default for DownlinkConfig {
    fn default() -> Self {
        Self {
            adapt: true,
            low_width: 0,
            low_height: 0,
            low_framerate: 15,
            audio_only: true,
            low_keyframe_min_interval_ms: 3000,
        }
    }
}

impl DownlinkConfig {
    /// Checks the low tier against the canvas it is scaled from.
    pub(super) fn validate(
        &self,
        canvas: (u32, u32),
        framerate: u32,
        source_name: &str,
    ) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, reason: String| ConfigError::Invalid {
            source_name: source_name.to_string(),
            field,
            reason,
        };
        for (field, v, max) in [
            ("downlink.low_width", self.low_width, canvas.0),
            ("downlink.low_height", self.low_height, canvas.1),
        ] {
            if v != 0 && (v < 32 || v > max || v % 2 != 0) {
                return Err(invalid(
                    field,
                    format!(
                        "is {v}; use 0 (half the canvas) or an even number from 32 to the \
                         canvas's {max}"
                    ),
                ));
            }
        }
        if !(100..=60_000).contains(&self.low_keyframe_min_interval_ms) {
            return Err(invalid(
                "downlink.low_keyframe_min_interval_ms",
                format!(
                    "is {}; use 100 to 60000 (3000 by default)",
                    self.low_keyframe_min_interval_ms
                ),
            ));
        }
        if !(1..=framerate).contains(&self.low_framerate) {
            return Err(invalid(
                "downlink.low_framerate",
                format!(
                    "is {}; use 1 to media.framerate ({framerate})",
                    self.low_framerate
                ),
            ));
        }
        Ok(())
    }

    /// The low tier's size for a canvas of `canvas` (width, height).
    pub fn low_size(&self, canvas: (u32, u32)) -> (u32, u32) {
        let half = |v: u32| ((v / 2) & !1).max(2);
        let pick = |set: u32, whole: u32| if set == 0 { half(whole) } else { set };
        (
            pick(self.low_width, canvas.0),
            pick(self.low_height, canvas.1),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_low_tier_is_half_the_canvas_unless_set() {
        let d = DownlinkConfig::default();
        assert_eq!(d.low_size((1280, 720)), (640, 360));
        assert_eq!(d.low_size((1366, 766)), (682, 382));
        let set = DownlinkConfig {
            low_width: 320,
            low_height: 180,
            ..d
        };
        assert_eq!(set.low_size((1280, 720)), (320, 180));
    }

    #[test]
    fn a_low_tier_larger_than_the_canvas_or_faster_is_refused() {
        let wide = DownlinkConfig {
            low_width: 1920,
            ..Default::default()
        };
        let e = wide.validate((1280, 720), 30, "t.toml").unwrap_err();
        assert!(e.to_string().contains("downlink.low_width"), "{e}");
        let fast = DownlinkConfig {
            low_framerate: 60,
            ..Default::default()
        };
        let e = fast.validate((1280, 720), 30, "t.toml").unwrap_err();
        assert!(
            e.to_string().contains("downlink.low_framerate") && e.to_string().contains("30"),
            "{e}"
        );
        assert!(DownlinkConfig::default()
            .validate((1280, 720), 30, "t.toml")
            .is_ok());
    }

    #[test]
    fn a_low_tier_keyframe_interval_out_of_range_is_refused() {
        for ms in [0, 99, 60_001] {
            let d = DownlinkConfig {
                low_keyframe_min_interval_ms: ms,
                ..Default::default()
            };
            let e = d.validate((1280, 720), 30, "t.toml").unwrap_err();
            assert!(
                e.to_string()
                    .contains("downlink.low_keyframe_min_interval_ms"),
                "{e}"
            );
        }
    }
}
