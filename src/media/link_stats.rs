//! Asking a participant's `webrtcbin` how its connection does, and reading
//! the size of the video it sends.
//!
//! `get-stats` answers through a [`gst::Promise`] on a GStreamer thread.
//! The callback parses the reply ([`StatsSample::parse`], pure) and posts it
//! to the room actor as [`MediaEvent::Stats`]; it touches no room state.

use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::mpsc::UnboundedSender;

use super::webrtc_stats::StatsSample;
use super::{MediaEvent, ParticipantMedia};
use crate::layout::Size;

impl ParticipantMedia {
    /// Asks webrtcbin for its statistics; the answer arrives as
    /// [`MediaEvent::Stats`]. Call without holding any lock: the signal
    /// takes webrtcbin's own.
    pub fn request_stats(&self, events: &UnboundedSender<MediaEvent>) {
        let (events, id) = (events.clone(), self.id.clone());
        let promise = gst::Promise::with_change_func(move |reply| match reply {
            Ok(Some(s)) => {
                let _ = events.send(MediaEvent::Stats {
                    participant: id,
                    sample: StatsSample::parse(s),
                });
            }
            other => tracing::debug!(participant = %id, "no stats: {other:?}"),
        });
        self.webrtcbin
            .emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, &promise]);
    }

    /// Canvas frames sent to the participant since it joined.
    pub fn canvas_frames_sent(&self) -> u64 {
        self.canvas_sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The size of the camera video the participant sends, as decoded;
    /// None until its first frame was decoded.
    pub fn sent_resolution(&self) -> Option<Size> {
        let caps = self.video.as_ref()?.decoded.current_caps()?;
        let s = caps.structure(0)?;
        let (width, height) = (s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?);
        Some(Size {
            width: u32::try_from(width).ok()?,
            height: u32::try_from(height).ok()?,
        })
    }
}
