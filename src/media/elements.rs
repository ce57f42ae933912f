//! The GStreamer elements the media code creates, each with the Debian
//! package that ships it. The server refuses to start without them, and
//! `/readyz` reports any that went missing since. (The encoders are not
//! listed: they come from the templates, which are checked at start-up.)

use gstreamer as gst;

/// Element factory name and the Debian 12 package that provides it.
pub const REQUIRED: &[(&str, &str)] = &[
    ("webrtcbin", "gstreamer1.0-plugins-bad"),
    ("nicesrc", "gstreamer1.0-nice"),
    ("dtlssrtpenc", "gstreamer1.0-plugins-bad"),
    ("tee", "libgstreamer1.0-0"),
    ("queue", "libgstreamer1.0-0"),
    ("capsfilter", "libgstreamer1.0-0"),
    ("valve", "libgstreamer1.0-0"),
    ("input-selector", "libgstreamer1.0-0"),
    ("compositor", "gstreamer1.0-plugins-base"),
    ("audiomixer", "gstreamer1.0-plugins-base"),
    ("appsrc", "gstreamer1.0-plugins-base"),
    ("imagefreeze", "gstreamer1.0-plugins-good"),
    ("audiotestsrc", "gstreamer1.0-plugins-base"),
    ("videoscale", "gstreamer1.0-plugins-base"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("audioconvert", "gstreamer1.0-plugins-base"),
    ("audioresample", "gstreamer1.0-plugins-base"),
    ("audiorate", "gstreamer1.0-plugins-base"),
    ("overlaycomposition", "gstreamer1.0-plugins-base"),
    ("volume", "gstreamer1.0-plugins-base"),
    ("opusdec", "gstreamer1.0-plugins-base"),
    ("textoverlay", "gstreamer1.0-x"),
    ("videocrop", "gstreamer1.0-plugins-good"),
    ("audioamplify", "gstreamer1.0-plugins-good"),
    ("level", "gstreamer1.0-plugins-good"),
    ("capssetter", "gstreamer1.0-plugins-good"),
    ("rtpvp8depay", "gstreamer1.0-plugins-good"),
    ("rtpvp8pay", "gstreamer1.0-plugins-good"),
    ("rtph264depay", "gstreamer1.0-plugins-good"),
    ("rtph264pay", "gstreamer1.0-plugins-good"),
    ("rtpopusdepay", "gstreamer1.0-plugins-good"),
    ("rtpopuspay", "gstreamer1.0-plugins-good"),
    ("vp8dec", "gstreamer1.0-plugins-good"),
    ("splitmuxsink", "gstreamer1.0-plugins-good"),
    ("webmmux", "gstreamer1.0-plugins-good"),
    ("matroskamux", "gstreamer1.0-plugins-good"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("avdec_h264", "gstreamer1.0-libav"),
];

/// The required elements `exists` does not know, with their packages.
pub fn missing(exists: impl Fn(&str) -> bool) -> Vec<(&'static str, &'static str)> {
    REQUIRED
        .iter()
        .filter(|(name, _)| !exists(name))
        .copied()
        .collect()
}

/// The required elements missing from this GStreamer installation
/// (GStreamer must be initialised).
pub fn missing_here() -> Vec<(&'static str, &'static str)> {
    missing(|name| gst::ElementFactory::find(name).is_some())
}

/// Draws one line of text through `textoverlay`, on the calling thread,
/// the first time it is called in the process.
///
/// Pango and fontconfig build their font map, and register the types
/// behind it, the first time text is drawn. Drawn once here, before any
/// room exists, that set-up is done by one thread, not by the first frames
/// of several tiles at once. (A crash once put down to that set-up came
/// from restyling a label while it was drawn: `participant/label.rs`.)
pub fn warm_up_text() -> anyhow::Result<()> {
    use anyhow::Context as _;
    use gst::prelude::*;
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let draw = || -> anyhow::Result<()> {
        let pipeline = gst::parse::launch(
            "videotestsrc num-buffers=1 ! video/x-raw,format=I420,width=320,height=180 \
             ! textoverlay text=Tessera font-desc=\"Sans Bold 20\" shaded-background=true \
             ! fakesink",
        )
        .context("building the text warm-up")?;
        pipeline
            .set_state(gst::State::Playing)
            .context("starting the text warm-up")?;
        let done = pipeline.bus().and_then(|bus| {
            bus.timed_pop_filtered(
                gst::ClockTime::from_seconds(10),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
        });
        let _ = pipeline.set_state(gst::State::Null);
        match done.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => Ok(()),
            Some(gst::MessageView::Error(e)) => anyhow::bail!("drawing text: {}", e.error()),
            _ => anyhow::bail!("drawing text took more than 10 s"),
        }
    };
    DONE.get_or_init(|| draw().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_only_what_is_absent() {
        let got = missing(|name| !matches!(name, "webrtcbin" | "avdec_h264"));
        assert_eq!(
            got,
            vec![
                ("webrtcbin", "gstreamer1.0-plugins-bad"),
                ("avdec_h264", "gstreamer1.0-libav")
            ]
        );
        assert!(missing(|_| true).is_empty());
    }

    #[test]
    fn text_is_drawn_once_before_any_room() {
        gst::init().unwrap();
        warm_up_text().unwrap();
        warm_up_text().unwrap();
    }

    #[test]
    fn every_element_the_media_code_uses_is_installed_here() {
        gst::init().unwrap();
        assert_eq!(missing_here(), vec![]);
    }
}
