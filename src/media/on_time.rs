//! Keeps the canvas on the clock when the machine runs short of CPU.
//!
//! A live compositor makes one canvas frame per frame interval of running
//! time, in order, and never skips one. When compositing a frame takes
//! longer than the interval (too many tiles for the CPU left, or a burst of
//! joins), each frame leaves later than the one before, and the room's
//! picture drifts behind real time by seconds without bound: measured,
//! 55 s behind after a minute of thirty joins on two cores.
//!
//! A probe on the compositor's source pad measures how far each canvas
//! frame's running time lies behind the clock. Past [`MAX_CANVAS_LAG`] it
//! sends the compositor a QoS event saying so; the compositor then drops the
//! frames that are already late without compositing them (its own QoS
//! handling) and goes on from now. The frame rate falls instead of the
//! delay growing.
//!
//! The QoS event would also travel upstream into every participant's scaler
//! and decoder, which would then drop frames of their own: a probe on each
//! compositor sink pad stops it there.
//!
//! The frames the canvas skipped are counted ([`CanvasSkips`]) from gaps in
//! its output timeline, for the room's metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

/// How far behind the clock a canvas frame may leave the compositor before
/// the late frames are skipped. A healthy room's canvas leaves about 50 ms
/// behind (the slack and the time to composite); this leaves room for a
/// busy moment without skipping.
pub(crate) const MAX_CANVAS_LAG: Duration = Duration::from_millis(150);

/// Canvas frames a room's compositor skipped because they were late. Written
/// by a pad probe, read by the room actor.
#[derive(Debug, Default)]
pub struct CanvasSkips {
    frames: AtomicU64,
    /// The next gap in the timeline is a rest, not a skip.
    rested: AtomicBool,
}

impl CanvasSkips {
    /// Frames skipped so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// The canvas was held on purpose (`rest.rs`): the next gap in its
    /// timeline is the rest, skipped to catch up with the clock, and not
    /// counted as frames a busy machine lost.
    pub(crate) fn rested(&self) {
        self.rested.store(true, Ordering::Relaxed);
    }
}

/// Frames missing between two consecutive canvas frames: none when `next`
/// starts where `previous` ended (within half a frame).
fn frames_between(
    previous_end: gst::ClockTime,
    next: gst::ClockTime,
    frame: gst::ClockTime,
) -> u64 {
    if frame.is_zero() || next <= previous_end {
        return 0;
    }
    let gap = next - previous_end;
    (gap.nseconds() + frame.nseconds() / 2) / frame.nseconds()
}

/// Makes `compositor` (live, in a running pipeline) skip canvas frames that
/// are more than `max_lag` behind the clock, and counts what it skipped.
pub(crate) fn keep_on_time(compositor: &gst::Element, max_lag: Duration) -> Arc<CanvasSkips> {
    let skips = Arc::new(CanvasSkips::default());
    compositor.connect_pad_added(|_, pad| {
        if pad.direction() == gst::PadDirection::Sink {
            stop_qos_upstream(pad);
        }
    });
    let Some(src) = compositor.static_pad("src") else {
        return skips;
    };
    let max_lag = gst::ClockTime::from_nseconds(max_lag.as_nanos() as u64);
    let counted = skips.clone();
    // The end of the previous canvas frame (ns); none yet.
    let previous_end = AtomicU64::new(u64::MAX);
    src.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let (Some(pts), Some(duration)) = (buffer.pts(), buffer.duration()) else {
            return gst::PadProbeReturn::Ok;
        };
        let end = previous_end.swap((pts + duration).nseconds(), Ordering::Relaxed);
        if end != u64::MAX {
            let skipped = frames_between(gst::ClockTime::from_nseconds(end), pts, duration);
            if skipped > 0 && !counted.rested.swap(false, Ordering::Relaxed) {
                counted.frames.fetch_add(skipped, Ordering::Relaxed);
            }
        }
        if let Some((running, now)) = super::probes::against_clock(pad, pts) {
            if now > running + max_lag {
                // Everything before `now` is late: timestamp + diff = now,
                // which a live compositor takes as the earliest frame worth
                // making.
                let late = (now - running).nseconds() as i64;
                let qos = gst::event::Qos::new(gst::QOSType::Underflow, 1.0, late, running);
                pad.send_event(qos);
            }
        }
        gst::PadProbeReturn::Ok
    });
    skips
}

/// Keeps QoS events from leaving the compositor through `pad`: the late
/// canvas is the compositor's to skip, not the tiles' to drop.
fn stop_qos_upstream(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, |_, info| {
        let is_qos = info
            .event()
            .is_some_and(|e| e.type_() == gst::EventType::Qos);
        if !is_qos {
            return gst::PadProbeReturn::Ok;
        }
        super::probes::swallow(info)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn gaps_in_the_timeline_count_as_skipped_frames() {
        let ms = gst::ClockTime::from_mseconds;
        let frame = ms(33);
        assert_eq!(frames_between(ms(100), ms(100), frame), 0);
        assert_eq!(frames_between(ms(100), ms(110), frame), 0);
        assert_eq!(frames_between(ms(100), ms(133), frame), 1);
        assert_eq!(frames_between(ms(100), ms(430), frame), 10);
        assert_eq!(frames_between(ms(100), ms(50), frame), 0);
        assert_eq!(frames_between(ms(100), ms(200), gst::ClockTime::ZERO), 0);
    }

    /// How far behind the clock the last canvas frame left, after running a
    /// live compositor whose every frame takes twice its interval.
    fn lag_of_a_slow_canvas(keep: bool) -> (Duration, u64) {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(
            "videotestsrc is-live=true pattern=black ! video/x-raw,width=64,height=64,framerate=30/1 \
             ! compositor name=canvas latency=5000000 ! fakesink name=sink sync=false async=false",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let compositor = pipeline.by_name("canvas").unwrap();
        let skips = keep.then(|| keep_on_time(&compositor, MAX_CANVAS_LAG));
        let lag = Arc::new(Mutex::new(Duration::ZERO));
        let sink_pad = pipeline
            .by_name("sink")
            .unwrap()
            .static_pad("sink")
            .unwrap();
        {
            let lag = lag.clone();
            let compositor = compositor.clone();
            sink_pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                // A compositor short of CPU: 66 ms a frame at 30 fps.
                std::thread::sleep(Duration::from_millis(66));
                if let (Some(pts), Some(now)) = (
                    info.buffer().and_then(|b| b.pts()),
                    compositor.current_running_time(),
                ) {
                    *lag.lock().unwrap() = Duration::from_nanos(now.saturating_sub(pts).nseconds());
                }
                gst::PadProbeReturn::Ok
            });
        }
        pipeline.set_state(gst::State::Playing).unwrap();
        std::thread::sleep(Duration::from_secs(3));
        pipeline.set_state(gst::State::Null).unwrap();
        let lag = *lag.lock().unwrap();
        (lag, skips.map(|s| s.frames()).unwrap_or(0))
    }

    #[test]
    fn a_slow_canvas_skips_late_frames_instead_of_falling_behind() {
        let (lag, skipped) = lag_of_a_slow_canvas(true);
        assert!(
            // A frame's own 66 ms plus a busy machine's scheduling.
            lag < MAX_CANVAS_LAG + Duration::from_millis(400),
            "the canvas left {lag:?} behind the clock"
        );
        assert!(skipped > 10, "only {skipped} frames skipped");
    }

    #[test]
    fn without_the_probe_a_slow_canvas_falls_behind() {
        // The case the probe exists for, so that the test above shows the
        // probe's effect and not a compositor that keeps up anyway.
        let (lag, _) = lag_of_a_slow_canvas(false);
        assert!(lag > Duration::from_millis(800), "lag only {lag:?}");
    }
}
