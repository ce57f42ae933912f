//! The room's raw media formats: I420 video caps, the mix's audio format
//! (48 kHz mono float) and its sample arithmetic, and the aggregators' slack.

use std::time::Duration;

use gstreamer as gst;

use crate::layout::Size;

/// Caps of raw I420 video of a size (and optionally a frame rate).
pub fn i420_caps(size: Size, framerate: Option<u32>) -> gst::Caps {
    let mut b = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", size.width as i32)
        .field("height", size.height as i32)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
    if let Some(fps) = framerate {
        b = b.field("framerate", gst::Fraction::new(fps as i32, 1));
    }
    b.build()
}

/// Caps of the canvas (and its background): I420 of `size` at
/// `framerate`, with its colour description fixed. Left open, the
/// compositor takes it from its inputs, and it flips (from BT.601 to the
/// BT.709 of an HD background) when the inputs change, as when a
/// participant leaves: every encoder then renegotiates, and a recording's
/// muxer, which cannot change caps mid-stream, fails. BT.601 is what VP8
/// decoders assume, and what decoded camera tiles carry.
pub fn canvas_caps(size: Size, framerate: u32) -> gst::Caps {
    let mut caps = i420_caps(size, Some(framerate));
    if let Some(s) = caps.make_mut().structure_mut(0) {
        s.set("colorimetry", "bt601");
        s.set("chroma-site", "jpeg");
    }
    caps
}

/// The room's internal audio format: 48 kHz mono float, so that summing a
/// room's voices never clips and never resamples.
pub fn mix_audio_caps() -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("rate", 48000i32)
        .field("channels", 1i32)
        .field("layout", "interleaved")
        .build()
}

/// Bytes per sample in the mix format ([`mix_audio_caps`]).
pub(crate) const MIX_BYTES_PER_SAMPLE: usize = 4;
/// Samples per second in the mix format.
pub(crate) const MIX_RATE: u64 = 48_000;

/// Cuts the first `samples` samples from a buffer in the mix format and
/// moves its timestamp on by as much. False when it is too short.
pub(crate) fn cut_samples(buffer: &mut gst::BufferRef, samples: u64) -> bool {
    let shift = gst::ClockTime::from_nseconds(samples * 1_000_000_000 / MIX_RATE);
    if buffer
        .resize(samples as usize * MIX_BYTES_PER_SAMPLE..)
        .is_err()
    {
        return false;
    }
    if let Some(pts) = buffer.pts() {
        buffer.set_pts(pts + shift);
    }
    if let Some(d) = buffer.duration() {
        buffer.set_duration(d.saturating_sub(shift));
    }
    // No longer the decoder's sample offsets (GST_BUFFER_OFFSET_NONE).
    buffer.set_offset(u64::MAX);
    buffer.set_offset_end(u64::MAX);
    true
}

/// Duration of the mixers' output buffers: one 20 ms Opus frame.
pub(crate) const MIX_BUFFER: Duration = Duration::from_millis(20);

/// How long the audio mixers wait past each output buffer's end for voices
/// that have nothing new: decode and scheduling slack on a busy two-core
/// machine. Voice that comes later than this is dropped, so the mixers keep
/// a margin. Inputs whose latency is hidden ([`hide_latency`](super::probes::hide_latency)) add nothing
/// to it.
pub(crate) const MIX_SLACK: Duration = Duration::from_millis(20);

/// How long the compositor waits past each canvas frame's end for tiles
/// that have nothing new. A tile frame that misses it is not lost: it shows
/// from the next canvas frame on. Decoded frames are stamped when their
/// packets arrive, so only decoding and scaling (a few milliseconds) can
/// make one miss a canvas frame it belongs to.
pub(crate) const CANVAS_SLACK: Duration = Duration::from_millis(5);
