//! Keeps a tile's compositor pad from holding a backlog of frames, without
//! ever dropping the frame the canvas is about to show.
//!
//! A live aggregator pad queues up to two buffers, and the compositor takes
//! one per pad for each canvas frame. Decoded frames hold until the next
//! one comes (`FRAME_HOLD`) and never expire on their own, so two frames
//! that came close together (a burst after a stall, network jitter) would
//! leave one queued for good: from then on every frame of that tile showed
//! one canvas frame late.
//!
//! A queued frame is dropped when a newer one comes that the next canvas
//! frame would show as well. It is kept when the newer one belongs to a
//! later canvas frame: the compositor makes each canvas frame a little
//! after the frame's end (its slack), so a sender whose frames fall just
//! past the canvas frames' ends has its next frame queued before the
//! compositor took the one before. Dropping on every newer frame then threw
//! away each frame just before it was due, and the tile froze on one
//! picture for as long as the two clocks stayed in that phase (one run in
//! twenty of the benchmark's smoke test, where every sender shares a phase).
//!
//! A compositor running behind the clock (a machine short of CPU) makes
//! its late canvas frames back to back, or skips them: a frame that started
//! more than the compositor's latency and one frame before now is due
//! whatever the canvas's position, and supersedes the frames queued before
//! it, so a starved tile does not show its backlog frame by frame.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_base::prelude::AggregatorExt as _;
use gstreamer_base::prelude::AggregatorPadExt as _;
use gstreamer_base::prelude::AggregatorPadExtManual as _;

/// Whether a frame starting at `newer` (running time) makes the frames
/// queued before it pointless: it starts before `next_end`, the end of
/// the canvas frame the compositor makes next, so that canvas frame shows
/// it rather than them; or before `overdue`, the start of the newest frame
/// an on-time compositor would have shown by now.
pub(crate) fn supersedes(
    newer: gst::ClockTime,
    next_end: gst::ClockTime,
    overdue: Option<gst::ClockTime>,
) -> bool {
    newer < next_end || overdue.is_some_and(|due| newer < due)
}

/// One frame of the video on `src`, from its caps' frame rate.
fn frame_duration(src: &gst::Pad) -> Option<gst::ClockTime> {
    let caps = src.current_caps()?;
    let rate = caps.structure(0)?.get::<gst::Fraction>("framerate").ok()?;
    if rate.numer() <= 0 || rate.denom() <= 0 {
        return None;
    }
    gst::ClockTime::SECOND.mul_div_floor(rate.denom() as u64, rate.numer() as u64)
}

/// The end (running time) of the canvas frame `compositor` makes next
/// (where its output stands plus one frame; `None` before its first
/// frame), and the start before which a frame is overdue: now, less the
/// compositor's latency and one frame.
fn canvas_times(
    compositor: &gstreamer_base::Aggregator,
) -> Option<(gst::ClockTime, Option<gst::ClockTime>)> {
    let src = compositor
        .static_pad("src")?
        .downcast::<gstreamer_base::AggregatorPad>()
        .ok()?;
    let frame = frame_duration(src.upcast_ref())?;
    let segment = src.segment().downcast::<gst::ClockTime>().ok()?;
    let next_end = segment.to_running_time(segment.position()?)? + frame;
    let overdue = compositor
        .current_running_time()
        .zip(compositor.latency())
        .and_then(|(now, latency)| now.checked_sub(latency + frame));
    Some((next_end, overdue))
}

/// Makes the compositor pad that `src` feeds drop its queued frames when a
/// newer frame comes that the next canvas frame shows, or that is overdue
/// ([`supersedes`]).
pub(crate) fn newest_frame_only(src: &gst::Pad) {
    src.add_probe(gst::PadProbeType::BUFFER, |pad, info| {
        let Some(agg_pad) = pad
            .peer()
            .and_then(|p| p.downcast::<gstreamer_base::AggregatorPad>().ok())
        else {
            return gst::PadProbeReturn::Ok;
        };
        if !agg_pad.has_buffer() {
            return gst::PadProbeReturn::Ok;
        }
        let newer = info
            .buffer()
            .and_then(|b| b.pts())
            .and_then(|pts| crate::media::probes::running_time(pad, pts));
        let times = agg_pad
            .parent()
            .and_then(|c| c.downcast::<gstreamer_base::Aggregator>().ok())
            .and_then(|c| canvas_times(&c));
        if let (Some(newer), Some((next_end, overdue))) = (newer, times) {
            if supersedes(newer, next_end, overdue) {
                while agg_pad.drop_buffer() {}
            }
        }
        gst::PadProbeReturn::Ok
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};

    #[test]
    fn only_a_frame_due_in_the_next_canvas_frame_or_overdue_supersedes() {
        let ms = gst::ClockTime::from_mseconds;
        assert!(supersedes(ms(1000), ms(1033), None));
        assert!(!supersedes(ms(1033), ms(1033), None));
        assert!(!supersedes(ms(1036), ms(1033), None));
        // On time: the overdue bound lies before the next canvas frame.
        assert!(!supersedes(ms(1036), ms(1033), Some(ms(990))));
        // A compositor 300 ms behind: what started before now's bound is due.
        assert!(supersedes(ms(1036), ms(1033), Some(ms(1290))));
        assert!(!supersedes(ms(1300), ms(1033), Some(ms(1290))));
    }

    /// Canvas and tile at the same 30 fps, each tile frame starting 5 ms
    /// past a canvas frame's end and arriving right then, while the
    /// compositor waits 20 ms past each canvas frame's end (a still tile,
    /// as a placeholder or a frozen camera, has nothing new for it): every
    /// tile frame is queued before the one before it was shown. The tile
    /// must still show (nearly) every frame. Dropping the queued frame on
    /// every newer one froze the tile on its first picture.
    #[test]
    fn a_tile_just_out_of_phase_with_the_canvas_keeps_moving() {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(
            "videotestsrc is-live=true pattern=black \
               ! video/x-raw,format=I420,width=64,height=64,framerate=30/1 ! comp.sink_0 \
             appsrc name=tile is-live=true format=time do-timestamp=false \
               caps=video/x-raw,format=I420,width=32,height=32,framerate=30/1 \
               ! queue name=q ! comp.sink_1 \
             appsrc name=still is-live=true format=time do-timestamp=false \
               caps=video/x-raw,format=I420,width=16,height=16,framerate=30/1 \
               ! queue ! comp.sink_2 \
             compositor name=comp latency=20000000 \
               sink_1::zorder=1 sink_2::xpos=48 sink_2::ypos=48 \
               ! video/x-raw,format=I420,width=64,height=64,framerate=30/1 \
               ! appsink name=out sync=false",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let tile = pipeline
            .by_name("tile")
            .unwrap()
            .downcast::<gstreamer_app::AppSrc>()
            .unwrap();
        let q = pipeline.by_name("q").unwrap();
        newest_frame_only(&q.static_pad("src").unwrap());
        let out = pipeline
            .by_name("out")
            .unwrap()
            .downcast::<gstreamer_app::AppSink>()
            .unwrap();
        // Canvas frames' starts (running time) and the luma at the tile.
        let shown = Arc::new(Mutex::new(Vec::<(gst::ClockTime, u8)>::new()));
        {
            let shown = shown.clone();
            out.set_callbacks(
                gstreamer_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let b = sample.buffer().ok_or(gst::FlowError::Error)?;
                        let map = b.map_readable().map_err(|_| gst::FlowError::Error)?;
                        let seg = sample.segment().and_then(|s| {
                            s.downcast_ref::<gst::ClockTime>()
                                .and_then(|s| s.to_running_time(b.pts()?))
                        });
                        if let Some(rt) = seg {
                            shown.lock().unwrap().push((rt, map[8 * 64 + 8]));
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        pipeline.set_state(gst::State::Playing).unwrap();
        let still = pipeline
            .by_name("still")
            .unwrap()
            .downcast::<gstreamer_app::AppSrc>()
            .unwrap();
        let mut b = gst::Buffer::with_size(16 * 16 * 3 / 2).unwrap();
        {
            let b = b.get_mut().unwrap();
            b.set_pts(gst::ClockTime::ZERO);
            b.set_duration(gst::ClockTime::from_seconds(3600));
        }
        still.push_buffer(b).unwrap();
        let clock = pipeline.clock().unwrap();
        let base = pipeline.base_time().unwrap();
        // The canvas grid, from its first frames.
        let first = loop {
            if let Some(&(rt, _)) = shown.lock().unwrap().get(2) {
                break rt;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let frame = gst::ClockTime::SECOND / 30;
        let phase = gst::ClockTime::from_mseconds(5);
        for k in 0..45u64 {
            let pts = first + frame * (k + 3) + phase;
            let _ = clock.new_single_shot_id(base + pts).wait();
            let mut b = gst::Buffer::with_size(32 * 32 * 3 / 2).unwrap();
            {
                let b = b.get_mut().unwrap();
                b.set_pts(pts);
                b.set_duration(gst::ClockTime::from_seconds(3600));
                let mut map = b.map_writable().unwrap();
                map.fill(128);
                map[..32 * 32].fill(40 + (k as u8) * 4);
            }
            tile.push_buffer(b).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        pipeline.set_state(gst::State::Null).unwrap();
        let lumas: BTreeSet<u8> = shown
            .lock()
            .unwrap()
            .iter()
            .map(|&(_, y)| y)
            .filter(|&y| y >= 40)
            .collect();
        assert!(
            lumas.len() >= 40,
            "the tile showed {} of 45 frames: {lumas:?}",
            lumas.len()
        );
    }
}
