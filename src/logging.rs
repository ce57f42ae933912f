//! Logging: GStreamer's own warnings and errors, forwarded into `tracing`
//! (target `gst`) so they land in the same log as everything else.
//!
//! A few GStreamer warnings come with every join and every reflow of a
//! healthy room; in a busy room they were most of the log, and an admin
//! reading it could not tell them from trouble. Those are logged at debug
//! level instead (see [`routine`]).

use gstreamer as gst;

/// GStreamer warnings that healthy rooms give as a matter of course, by
/// debug category and how the message starts.
const ROUTINE: &[(&str, &str)] = &[
    // Packets sent between a join and the room's latency recomputation
    // (gathered for 200 ms, src/media/latency.rs).
    (
        "rtpsession",
        "Can't determine running time for this packet without knowing configured latency",
    ),
    // A tile size that is no simple ratio of the camera's: the scaler
    // approximates its filter.
    ("video-scaler", "can't find exact taps"),
    // webrtcbin's own rtpbin and funnel wiring.
    ("bin", "loop dected in graph"),
    ("webrtcbin", "failed to match fec decoder with transceiver"),
    // A newcomer's first packets, before its DTLS handshake gave the keys.
    ("dtlssrtpdec", "no srtp key available yet"),
    ("srtpdec", "Invalid buffer, dropping"),
    ("srtpdec", "Could not get caps for stream with SSRC"),
];

/// Whether the log is written with ANSI colours: only to a terminal, and
/// not when the user set `NO_COLOR` (<https://no-color.org>).
pub fn use_colour(stdout_is_terminal: bool, no_color_set: bool) -> bool {
    stdout_is_terminal && !no_color_set
}

/// Whether a GStreamer warning is one that healthy rooms give routinely.
pub fn routine(category: &str, message: &str) -> bool {
    ROUTINE
        .iter()
        .any(|(c, m)| *c == category && message.starts_with(m))
}

/// Routes GStreamer log output at warning level and above into `tracing`.
/// Call once, after `gst::init`. `GST_DEBUG` still works as usual for more.
pub fn bridge_gstreamer_log() {
    if gst::init().is_err() {
        return;
    }
    if std::env::var_os("GST_DEBUG").is_none() {
        gst::log::set_default_threshold(gst::DebugLevel::Warning);
        gst::log::remove_default_log_function();
    }
    gst::log::add_log_function(|category, level, file, _function, line, object, message| {
        let Some(text) = message.get() else { return };
        let obj = object.map(|o| o.to_string()).unwrap_or_default();
        let category = category.name();
        match level {
            gst::DebugLevel::Error => {
                tracing::error!(target: "gst", category, %obj, "{file}:{line}: {text}")
            }
            gst::DebugLevel::Warning if !routine(category, &text) => {
                tracing::warn!(target: "gst", category, %obj, "{file}:{line}: {text}")
            }
            _ => tracing::debug!(target: "gst", category, %obj, "{text}"),
        }
    });
}

/// The log filter for `TESSERA_LOG` (`info` when unset). The SIP stack
/// logs every packet it receives, raw, at info: scanners' floods and
/// digest answers would fill the log, so it is kept at warn unless the
/// filter names it (`TESSERA_LOG=info,rsipstack=debug` to trace SIP).
pub fn filter_spec(env: Option<&str>) -> String {
    let spec = env.filter(|s| !s.trim().is_empty()).unwrap_or("info");
    if spec.contains("rsipstack") {
        spec.to_string()
    } else {
        format!("{spec},rsipstack=warn")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, false));
        assert!(
            !use_colour(false, false),
            "a file or a pipe gets plain text"
        );
        assert!(!use_colour(true, true), "NO_COLOR is respected");
    }

    #[test]
    fn routine_warnings_are_told_from_the_rest() {
        assert!(routine("video-scaler", "can't find exact taps"));
        assert!(routine(
            "srtpdec",
            "Could not get caps for stream with SSRC 2179560909"
        ));
        // The same words from another category, or another message from
        // the same category, still warn.
        assert!(!routine("videoscale", "can't find exact taps"));
        assert!(!routine("srtpdec", "Failed to unprotect RTP packet"));
        assert!(!routine(
            "rtpsession",
            "ignoring RTP packet with invalid ssrc"
        ));
    }

    #[test]
    fn the_sip_stack_stays_at_warn_unless_the_filter_names_it() {
        assert_eq!(filter_spec(None), "info,rsipstack=warn");
        assert_eq!(filter_spec(Some("debug")), "debug,rsipstack=warn");
        assert_eq!(
            filter_spec(Some("info,rsipstack=debug")),
            "info,rsipstack=debug"
        );
    }
}
