//! A room's media at rest, while its pair talks directly: the canvas is not
//! composed and the full mix is not encoded or sent, but every element and
//! connection stays up, so the way back to the MCU needs no new ICE.
//!
//! - **Canvas.** A blocking probe holds the compositor's output: its thread
//!   waits in the push and composes nothing. On waking, its first frames are
//!   late by the whole rest; the canvas's keep-on-time check
//!   (`on_time.rs`) sees that and has the compositor skip the missed frames
//!   without composing them, so the canvas is back on the clock at once;
//!   the frames late by the rest are dropped before the encoders.
//! - **Mix.** The full mix keeps its clock (its catch-up would have to
//!   replay the rest buffer by buffer), but what it puts out is dropped
//!   before the shared Opus encode: nothing encodes or sends it. The first
//!   buffer after waking is marked discontinuous, so the encoder starts
//!   its timeline anew instead of carrying on the rest's.
//!
//! A held compositor answers no serialized query on its inputs, so a tile
//! chain that asks one waits, holding its stream lock: a participant's
//! elements could not then be stopped. The room wakes before it adds or
//! removes anyone, records, or stops (`RoomMedia`).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;

/// A canvas frame this far behind the clock after waking is dropped.
const LATE: std::time::Duration = super::on_time::MAX_CANVAS_LAG;

/// The shared mix's gate, read by its probe.
const FLOWING: u8 = 0;
const RESTING: u8 = 1;
const WOKEN: u8 = 2;

/// Holds a room's canvas and drops its shared mix while the room rests.
#[derive(Debug)]
pub(crate) struct Rest {
    canvas: gst::Pad,
    held: Option<gst::PadProbeId>,
    mix: Arc<AtomicU8>,
}

impl Rest {
    /// Gates `canvas` (the compositor's output) and `mix` (the pad before
    /// the shared mix's encode). Both flow until [`Rest::rest`].
    pub(crate) fn new(canvas: gst::Pad, mix: &gst::Pad) -> Rest {
        let gate = Arc::new(AtomicU8::new(FLOWING));
        let state = gate.clone();
        mix.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
            move |_, info| match state.load(Ordering::Relaxed) {
                FLOWING => gst::PadProbeReturn::Ok,
                RESTING => super::probes::swallow(info),
                _ => {
                    // Only one buffer is marked, even if two threads race here.
                    if state
                        .compare_exchange(WOKEN, FLOWING, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                    {
                        if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() {
                            buffer.make_mut().set_flags(gst::BufferFlags::DISCONT);
                        }
                    }
                    gst::PadProbeReturn::Ok
                }
            },
        );
        Rest {
            canvas,
            held: None,
            mix: gate,
        }
    }

    /// Whether the room's media rests now.
    pub(crate) fn resting(&self) -> bool {
        self.held.is_some()
    }

    /// Stops composing the canvas and encoding the mix.
    pub(crate) fn rest(&mut self) {
        if self.held.is_some() {
            return;
        }
        self.mix.store(RESTING, Ordering::Relaxed);
        self.held =
            self.canvas
                .add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, |_, info| {
                    // Events and queries pass; data waits.
                    match info.data {
                        Some(gst::PadProbeData::Buffer(_))
                        | Some(gst::PadProbeData::BufferList(_)) => gst::PadProbeReturn::Ok,
                        _ => gst::PadProbeReturn::Pass,
                    }
                });
    }

    /// Composes and encodes again. The frame held through the rest, and
    /// any made before the compositor has skipped to the present, are
    /// dropped: the encoders would otherwise get frames stamped the whole
    /// rest in the past, and then a leap.
    pub(crate) fn wake(&mut self) {
        if let Some(id) = self.held.take() {
            // Added after the hold, so it sees the held frame first.
            let limit = gst::ClockTime::from_nseconds(LATE.as_nanos() as u64);
            self.canvas
                .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                    let late = info
                        .buffer()
                        .and_then(|b| b.pts())
                        .and_then(|pts| super::probes::against_clock(pad, pts))
                        .is_some_and(|(running, now)| now > running + limit);
                    if late {
                        super::probes::swallow(info)
                    } else {
                        gst::PadProbeReturn::Remove
                    }
                });
            self.canvas.remove_probe(id);
            self.mix.store(WOKEN, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    /// Counts the buffers reaching `pad`, those marked discontinuous, and
    /// how far behind the clock the latest was at most (ms).
    fn count(pad: &gst::Pad) -> Arc<(AtomicU64, AtomicU64, AtomicU64)> {
        let n = Arc::new((AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)));
        let m = n.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            m.0.fetch_add(1, Ordering::Relaxed);
            let Some(buffer) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            if buffer.flags().contains(gst::BufferFlags::DISCONT) {
                m.1.fetch_add(1, Ordering::Relaxed);
            }
            if let Some((running, now)) = buffer
                .pts()
                .and_then(|pts| crate::media::probes::against_clock(pad, pts))
            {
                let lag = now.saturating_sub(running).mseconds();
                m.2.fetch_max(lag, Ordering::Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
        n
    }

    fn during(n: &(AtomicU64, AtomicU64, AtomicU64), wait: Duration) -> u64 {
        let before = n.0.load(Ordering::Relaxed);
        std::thread::sleep(wait);
        n.0.load(Ordering::Relaxed) - before
    }

    #[test]
    fn a_resting_room_composes_and_encodes_nothing_and_wakes_on_the_clock() {
        gst::init().unwrap();
        let held = Duration::from_secs(3);
        let pipeline = gst::parse::launch(
            "videotestsrc is-live=true ! video/x-raw,width=64,height=64,framerate=30/1 \
             ! compositor name=canvas latency=5000000 ! fakesink name=v sync=false async=false \
             audiotestsrc is-live=true samplesperbuffer=960 ! queue name=mix ! fakesink name=a sync=false async=false",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let pad = |element: &str, name: &str| {
            pipeline.by_name(element).unwrap().static_pad(name).unwrap()
        };
        // As in a room: late canvas frames are skipped, not made.
        let skips = crate::media::on_time::keep_on_time(
            &pipeline.by_name("canvas").unwrap(),
            crate::media::on_time::MAX_CANVAS_LAG,
        );
        let mut rest = Rest::new(pad("canvas", "src"), &pad("mix", "sink"));
        let (video, audio) = (count(&pad("v", "sink")), count(&pad("a", "sink")));
        pipeline.set_state(gst::State::Playing).unwrap();
        let step = Duration::from_millis(400);
        assert!(during(&video, step) > 5, "the canvas runs");
        assert!(during(&audio, step) > 10, "the mix runs");

        rest.rest();
        skips.rested();
        assert!(rest.resting());
        std::thread::sleep(Duration::from_millis(100));
        // At most the frame already on its way when the hold began.
        assert!(during(&video, held) <= 1, "the canvas rests");
        assert!(during(&audio, step) <= 1, "the mix rests");

        let disconts = audio.1.load(Ordering::Relaxed);
        video.2.store(0, Ordering::Relaxed);
        rest.wake();
        assert!(!rest.resting());
        // Back on the clock at once: the held time (90 frames) was skipped,
        // not made, and not counted as frames a busy machine lost.
        let made = during(&video, step);
        assert!(
            (6..=20).contains(&made),
            "{made} canvas frames in {step:?} after waking"
        );
        // No frame from the rest reached the encoders.
        let lag = video.2.load(Ordering::Relaxed);
        assert!(lag < 150, "a canvas frame {lag} ms behind the clock");
        assert_eq!(skips.frames(), 0);
        assert!(during(&audio, step) > 10, "the mix runs again");
        assert_eq!(
            audio.1.load(Ordering::Relaxed) - disconts,
            1,
            "the first buffer after waking is marked, and only it"
        );
        pipeline.set_state(gst::State::Null).unwrap();
    }
}
