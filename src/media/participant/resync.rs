//! After a participant's send queue drops canvas frames, that participant
//! gets nothing more until the next keyframe.
//!
//! The queue in front of each participant's payloader drops the oldest
//! encoded frames when the participant's send thread falls behind (a
//! machine short of CPU). The payloader numbers packets and VP8 pictures on
//! without a gap, so the receiver cannot tell that frames are missing: it
//! decodes the next ones against pictures it never got, and shows a
//! corrupted picture until the next keyframe, which may be seconds away.
//! Instead, the frames after a gap are held back and a keyframe is asked
//! for, through the family's rate limit like a receiver's request: the
//! picture holds still a moment and resumes whole.
//!
//! The same holds when a participant moves to another tier's encoder: its
//! frames only make sense from that encoder's next keyframe on.
//! [`SwitchGate`], on the send queue's sink pad, drops the new encoder's
//! frames until it; what the queue still holds of the old encoder goes out
//! first and whole.
//!
//! A queue marks the first buffer it lets through after dropping DISCONT.
//! Before the branch's first keyframe nothing is asked for: a newcomer's
//! keyframe is requested when its connection comes up, and the frames
//! before it, which it could not decode, are not sent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;

use crate::media::probes::swallow;

/// What happens to one encoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Pass,
    Drop,
    /// The first frame after a gap: dropped, and a keyframe asked for.
    DropAndAsk,
}

/// Where a participant's branch stands.
#[derive(Debug, Default)]
struct Branch {
    /// A keyframe has passed: the receiver can decode what follows.
    synced: bool,
    /// Frames were dropped since the last keyframe that passed.
    waiting: bool,
}

impl Branch {
    /// Decides for one frame.
    fn step(&mut self, keyframe: bool, after_gap: bool) -> Step {
        if keyframe {
            self.synced = true;
            self.waiting = false;
            Step::Pass
        } else if !self.synced {
            // A newcomer's keyframe is asked for when its connection comes
            // up; what comes before it cannot be decoded.
            Step::Drop
        } else if after_gap {
            // Asked again at every gap: the keyframe itself may have been dropped.
            self.waiting = true;
            Step::DropAndAsk
        } else if self.waiting {
            Step::Drop
        } else {
            Step::Pass
        }
    }
}

/// Applies the rule to the encoded frames leaving `pad`, the source pad of a
/// participant's send queue. Keyframe requests go upstream from it.
pub(crate) fn resync_after_gaps(pad: &gst::Pad) {
    let branch = Mutex::new(Branch::default());
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let flags = buffer.flags();
        let decided = branch.lock().map(|mut b| {
            b.step(
                !flags.contains(gst::BufferFlags::DELTA_UNIT),
                flags.contains(gst::BufferFlags::DISCONT),
            )
        });
        match decided {
            Ok(Step::Pass) | Err(_) => gst::PadProbeReturn::Ok,
            Ok(Step::Drop) => swallow(info),
            Ok(Step::DropAndAsk) => {
                tracing::debug!(pad = %pad.name(), "frames dropped for a slow sender: waiting for a keyframe");
                let request = gst_video::UpstreamForceKeyUnitEvent::builder()
                    .all_headers(true)
                    .build();
                pad.send_event(request);
                swallow(info)
            }
        }
    });
}

/// Holds a participant's video back from a switch of encoder to the new
/// encoder's first keyframe.
#[derive(Debug, Clone, Default)]
pub(super) struct SwitchGate {
    waiting: Arc<AtomicBool>,
}

impl SwitchGate {
    /// Installs the gate on `pad`, the sink pad of the send queue. It lets
    /// everything through until [`SwitchGate::arm`].
    pub(super) fn install(pad: &gst::Pad) -> SwitchGate {
        let gate = SwitchGate::default();
        let waiting = gate.waiting.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if !waiting.load(Ordering::Acquire) {
                return gst::PadProbeReturn::Ok;
            }
            let keyframe = info
                .buffer()
                .is_some_and(|b| !b.flags().contains(gst::BufferFlags::DELTA_UNIT));
            if keyframe {
                waiting.store(false, Ordering::Release);
                gst::PadProbeReturn::Ok
            } else {
                swallow(info)
            }
        });
        gate
    }

    /// From now on, nothing passes until a keyframe. Arm it before the pad
    /// is linked to the new encoder.
    pub(super) fn arm(&self) {
        self.waiting.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn after_a_gap_only_a_keyframe_passes() {
        let mut branch = Branch::default();
        let mut run = |keyframe, gap| branch.step(keyframe, gap);
        assert_eq!(run(false, false), Step::Drop, "nothing before a keyframe");
        assert_eq!(
            run(false, true),
            Step::Drop,
            "a newcomer's gap asks for nothing"
        );
        assert_eq!(run(true, false), Step::Pass);
        assert_eq!(run(false, false), Step::Pass);
        assert_eq!(run(false, true), Step::DropAndAsk);
        assert_eq!(run(false, false), Step::Drop);
        assert_eq!(run(false, true), Step::DropAndAsk, "asked again");
        assert_eq!(run(true, false), Step::Pass);
        assert_eq!(run(false, false), Step::Pass);
        assert_eq!(
            run(true, true),
            Step::Pass,
            "a keyframe after a gap is whole"
        );
    }

    /// A frame as an encoder flags it.
    fn frame(n: u64, keyframe: bool) -> gst::Buffer {
        let mut b = gst::Buffer::with_size(16).unwrap();
        let b_mut = b.get_mut().unwrap();
        b_mut.set_pts(gst::ClockTime::from_mseconds(33 * n));
        if !keyframe {
            b_mut.set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        b
    }

    #[test]
    fn a_leaking_queue_holds_back_deltas_until_a_keyframe_and_asks_for_one() {
        gst::init().unwrap();
        let criticals = crate::media::probes::criticals();
        let pipeline = gst::Pipeline::new();
        let src = gst::ElementFactory::make("appsrc")
            .property("format", gst::Format::Time)
            .property("caps", gst::Caps::new_empty_simple("video/x-vp8"))
            .build()
            .unwrap();
        let queue = crate::media::make::make_leaky_queue("q", 2).unwrap();
        let sink = gst::ElementFactory::make("appsink")
            .property("sync", false)
            .build()
            .unwrap();
        pipeline.add_many([&src, &queue, &sink]).unwrap();
        gst::Element::link_many([&src, &queue, &sink]).unwrap();
        let queue_src = queue.static_pad("src").unwrap();
        resync_after_gaps(&queue_src);
        let asked = Arc::new(AtomicU32::new(0));
        {
            let asked = asked.clone();
            src.static_pad("src").unwrap().add_probe(
                gst::PadProbeType::EVENT_UPSTREAM,
                move |_, info| {
                    if info
                        .event()
                        .is_some_and(|e| gst_video::ForceKeyUnitEvent::is(e))
                    {
                        asked.fetch_add(1, Ordering::SeqCst);
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
        pipeline.set_state(gst::State::Playing).unwrap();
        let appsrc = src.downcast_ref::<gstreamer_app::AppSrc>().unwrap();
        let appsink = sink.downcast_ref::<gstreamer_app::AppSink>().unwrap();
        let pull = || appsink.try_pull_sample(gst::ClockTime::from_seconds(2));

        appsrc.push_buffer(frame(0, true)).unwrap();
        appsrc.push_buffer(frame(1, false)).unwrap();
        assert!(pull().is_some() && pull().is_some(), "frames flow");

        // The sender stalls: its queue holds 2 and drops the oldest.
        let stall = queue_src
            .add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, |_, _| {
                gst::PadProbeReturn::Ok
            })
            .unwrap();
        // The first of these is taken by the stalled push, the next two are
        // dropped, the last two stay queued.
        for n in 2..7 {
            appsrc.push_buffer(frame(n, false)).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        queue_src.remove_probe(stall);
        // Let the queue hand on what it holds before the next frames come:
        // pushed at once, they could push the queued ones out too, and the
        // first frame after the gap would be the keyframe, which needs no ask.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while queue.property::<u32>("current-level-buffers") > 0
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        appsrc.push_buffer(frame(7, false)).unwrap();
        appsrc.push_buffer(frame(8, true)).unwrap();
        appsrc.push_buffer(frame(9, false)).unwrap();

        let mut got = Vec::new();
        while let Some(s) = pull() {
            let pts = s.buffer().unwrap().pts().unwrap().mseconds() / 33;
            got.push(pts);
            if pts == 9 {
                break;
            }
        }
        assert_eq!(
            got,
            vec![2, 8, 9],
            "after the gap, nothing until the keyframe"
        );
        assert_eq!(asked.load(Ordering::SeqCst), 1, "one keyframe asked for");
        assert_eq!(
            crate::media::probes::criticals(),
            criticals,
            "the dropped frames were swallowed, not handed back empty"
        );
        pipeline.set_state(gst::State::Null).unwrap();
    }
}
