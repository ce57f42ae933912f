//! Pad probes and pad-time helpers shared by the room's chains: dropping
//! stale data, reading a pad's running time, swallowing what a probe holds,
//! private buffer copies, hidden latency, stamping ahead, and telling which
//! bin a bus message comes from.

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

/// Drops what reaches `pad` more than `limit` after it arrived (its
/// timestamp, in running time, is its arrival).
///
/// A participant's jitter buffer hands packets on from its own thread,
/// which also depayloads, decodes and scales them. When that thread falls
/// behind (a machine short of CPU), the jitter buffer keeps everything
/// that arrives meanwhile, without limit: on a full 2-core machine tiles
/// ran ten seconds behind, and stayed there. Dropped here instead, stale
/// packets leave a gap: the video depayloader waits for a keyframe and
/// asks the sender for one, and the tile catches up; Opus conceals the
/// audio gap. `limit` lies well past the jitter buffer's own wait for a
/// lost packet, so loss recovery is untouched.
pub(crate) fn drop_stale(pad: &gst::Pad, limit: Duration) {
    let limit = gst::ClockTime::from_nseconds(limit.as_nanos() as u64);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        match info
            .buffer()
            .and_then(|b| b.pts())
            .and_then(|pts| against_clock(pad, pts))
        {
            Some((arrived, now)) if now > arrived + limit => swallow(info),
            _ => gst::PadProbeReturn::Ok,
        }
    });
}

/// A buffer stamped `pts` passing `pad`: its running time, and the
/// running time now on the clock of the pad's element.
pub(crate) fn against_clock(
    pad: &gst::Pad,
    pts: gst::ClockTime,
) -> Option<(gst::ClockTime, gst::ClockTime)> {
    let running = running_time(pad, pts)?;
    let now = pad.parent_element()?.current_running_time()?;
    Some((running, now))
}

/// The running time of a buffer stamped `pts` on `pad`, by the pad's
/// segment.
pub(crate) fn running_time(pad: &gst::Pad, pts: gst::ClockTime) -> Option<gst::ClockTime> {
    time_segment(pad).and_then(|seg| seg.to_running_time(pts))
}

/// The time segment in force on `pad`, if any.
pub(crate) fn time_segment(pad: &gst::Pad) -> Option<gst::FormattedSegment<gst::ClockTime>> {
    pad.sticky_event::<gst::event::Segment>(0)
        .and_then(|e| e.segment().clone().downcast::<gst::ClockTime>().ok())
}

/// Swallows what a probe holds (a buffer or an event): takes (and so
/// frees) it and reports it handled. Use it instead of returning `Drop`:
/// gstreamer-rs hands a probe the data itself, leaving GStreamer's pointer
/// empty, and on `Drop` GStreamer 1.22 then unrefs that empty pointer (a
/// critical warning for every buffer dropped, hundreds a minute in a
/// speaking club) or, for an upstream event, the event a second time.
pub(crate) fn swallow(info: &mut gst::PadProbeInfo) -> gst::PadProbeReturn {
    drop(info.data.take());
    gst::PadProbeReturn::Handled
}

/// GStreamer's critical warnings in this process so far. A probe that
/// returns `Drop` after gstreamer-rs took its data makes one per buffer or
/// event (see [`swallow`]); tests read this before and after.
#[cfg(test)]
pub(crate) fn criticals() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNT: AtomicU32 = AtomicU32::new(0);
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        glib::log_set_handler(
            Some("GStreamer"),
            glib::LogLevels::LEVEL_CRITICAL,
            false,
            false,
            |_, _, msg| {
                COUNT.fetch_add(1, Ordering::SeqCst);
                eprintln!("GStreamer-CRITICAL: {msg}");
            },
        );
    });
    COUNT.load(Ordering::SeqCst)
}

/// The upstream event an RTP session sends each time transport-wide
/// congestion control (TWCC) feedback arrives about what it sent: every
/// packet's fate, for an encoder that adapts its rate itself.
pub(crate) const TWCC_PACKETS_EVENT: &str = "RTPTWCCPackets";

/// Stops, at `pad` (a payloader's source pad, linked to the transport), the
/// TWCC feedback events the transport sends upstream; everything else
/// upstream (keyframe requests, reconfigure, latency) goes on.
///
/// Nothing in the room reads them: the room's encoders adapt to the
/// receivers' reports (`rtcp_feedback.rs`). Left alone, each one climbs
/// the shared stream: into the family's encoder, through the tee into the
/// compositor, and from there into every sender's tile, scaler, decoder
/// and jitter buffer, down to its socket. A participant whose client
/// sends TWCC feedback (browsers do, five to ten times a second) thus
/// costs every other participant's chains an event each time: in a room
/// of twelve, one reached some pad 16,000 times a second, and in a room of
/// thirty passing them on took more than a third of the server's time.
pub(crate) fn stop_twcc_feedback_events(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, |_, info| {
        let twcc = matches!(
            info.data.as_ref(),
            Some(gst::PadProbeData::Event(e))
                if e.type_() == gst::EventType::CustomUpstream
                    && e.structure().is_some_and(|s| s.name() == TWCC_PACKETS_EVENT)
        );
        if twcc {
            swallow(info)
        } else {
            gst::PadProbeReturn::Ok
        }
    });
}

/// Whether a bus message comes from an element whose name, or an enclosing
/// bin's, satisfies `named`.
pub(crate) fn posted_within(msg: &gst::Message, named: impl Fn(&str) -> bool) -> bool {
    let mut obj = msg.src().cloned();
    while let Some(o) = obj {
        if named(o.name().as_str()) {
            return true;
        }
        obj = o.parent();
    }
    false
}

/// Gives every buffer leaving `pad` memory of its own.
///
/// A tee hands the same buffer, and so the same memory, to every branch. A
/// payloader that appends that memory to its RTP packet makes the packet
/// one more parent of the memory, and GStreamer guards a memory's parents
/// with a spin lock: thirty participants' send threads doing so for the
/// same Opus packet spun on each other on two cores (a spinning thread
/// waits out the time slice of the one it waits for). A copy of a small
/// packet is far cheaper.
pub(crate) fn private_copies(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::BUFFER, |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() {
            if let Ok(copy) = buffer.copy_deep() {
                *buffer = copy;
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Makes `pad` answer latency queries with no minimum latency, so that the
/// aggregator downstream does not add its input's latency to its deadline.
///
/// A live aggregator waits, for each output buffer, until its inputs'
/// largest latency plus its own has passed whenever some input has nothing
/// new (with inputs at their own rates and phases, one nearly always has
/// not). For the compositor that meant every canvas frame waited out the
/// participants' jitter buffer, and the 5 fps placeholders' 200 ms frame.
/// Inputs that hold their last frame need no such wait: what comes late
/// shows from the next canvas frame on.
pub(crate) fn hide_latency(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::QUERY_UPSTREAM, |_, info| {
        if !info.mask.contains(gst::PadProbeType::PULL) {
            return gst::PadProbeReturn::Ok;
        }
        if let Some(gst::QueryViewMut::Latency(q)) = info.query_mut().map(|q| q.view_mut()) {
            let (live, _, max) = q.result();
            q.set(live, gst::ClockTime::ZERO, max);
        }
        gst::PadProbeReturn::Ok
    });
}

/// Stamps every buffer through `pad` `by` later than it was made, so that
/// a live background source is always ahead of the aggregator it feeds.
pub(crate) fn run_ahead(pad: &gst::Pad, by: Duration) {
    let by = gst::ClockTime::from_nseconds(by.as_nanos() as u64);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buffer) = info.buffer_mut() {
            let buffer = buffer.make_mut();
            if let Some(pts) = buffer.pts() {
                buffer.set_pts(pts + by);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    /// TWCC feedback events stop at the payloader; a keyframe request
    /// passes on upstream.
    #[test]
    fn twcc_feedback_events_stop_and_keyframe_requests_pass() {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(
            "fakesrc name=src num-buffers=1 ! identity name=shared ! identity name=pay \
             ! fakesink name=sink async=false",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let pad = |el: &str, pad: &str| pipeline.by_name(el).unwrap().static_pad(pad).unwrap();
        stop_twcc_feedback_events(&pad("pay", "src"));
        // Pads pass events only once active.
        pipeline.set_state(gst::State::Paused).unwrap();
        let reached: Arc<Mutex<Vec<String>>> = Arc::default();
        {
            let reached = reached.clone();
            pad("shared", "src").add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
                if let Some(gst::PadProbeData::Event(e)) = info.data.as_ref() {
                    if let Some(s) = e.structure() {
                        reached.lock().unwrap().push(s.name().to_string());
                    }
                }
                gst::PadProbeReturn::Ok
            });
        }
        let sink = pad("sink", "sink");
        sink.push_event(gst::event::CustomUpstream::new(gst::Structure::new_empty(
            TWCC_PACKETS_EVENT,
        )));
        sink.push_event(
            gstreamer_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build(),
        );
        pipeline.set_state(gst::State::Null).unwrap();
        assert_eq!(
            *reached.lock().unwrap(),
            vec!["GstForceKeyUnit".to_string()]
        );
    }

    /// In a live pipeline, a buffer stamped a second before now is dropped
    /// and one stamped now passes, without GStreamer complaining: a probe
    /// that returned `Drop` made it unref an empty pointer, a critical
    /// warning per dropped buffer.
    #[test]
    fn stale_buffers_are_dropped_and_fresh_ones_pass() {
        gst::init().unwrap();
        let empty_unrefs = Arc::new(AtomicU64::new(0));
        let handler = {
            let empty_unrefs = empty_unrefs.clone();
            gst::glib::log_set_handler(
                Some("GStreamer"),
                gst::glib::LogLevels::LEVEL_CRITICAL,
                false,
                false,
                move |_, _, message| {
                    if message.contains("mini_object != NULL") {
                        empty_unrefs.fetch_add(1, Ordering::Relaxed);
                    }
                },
            )
        };
        let pipeline = gst::parse::launch(
            "appsrc name=src is-live=true format=time do-timestamp=false \
             ! fakesink name=sink sync=false async=false",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let src = pipeline
            .by_name("src")
            .unwrap()
            .downcast::<gstreamer_app::AppSrc>()
            .unwrap();
        let sink = pipeline.by_name("sink").unwrap();
        drop_stale(
            &sink.static_pad("sink").unwrap(),
            Duration::from_millis(300),
        );
        let passed = Arc::new(Mutex::new(Vec::new()));
        {
            let passed = passed.clone();
            sink.static_pad("sink").unwrap().add_probe(
                gst::PadProbeType::BUFFER,
                move |_, info| {
                    if let Some(b) = info.buffer() {
                        passed.lock().unwrap().push(b.offset());
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
        // A running time of two seconds from the start, without waiting for
        // it: the pipeline keeps a base time two seconds in the past.
        let clock = gst::SystemClock::obtain();
        pipeline.use_clock(Some(&clock));
        pipeline.set_start_time(gst::ClockTime::NONE);
        pipeline.set_base_time(clock.time() - 2 * gst::ClockTime::SECOND);
        pipeline.set_state(gst::State::Playing).unwrap();
        let now = pipeline.current_running_time().unwrap();
        assert!(now >= 2 * gst::ClockTime::SECOND);
        for (offset, pts) in [(1u64, now - gst::ClockTime::SECOND), (2, now)] {
            let mut b = gst::Buffer::with_size(4).unwrap();
            {
                let b = b.get_mut().unwrap();
                b.set_pts(pts);
                b.set_offset(offset);
            }
            src.push_buffer(b).unwrap();
        }
        src.end_of_stream().unwrap();
        let bus = pipeline.bus().unwrap();
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Eos])
            .expect("end of stream");
        pipeline.set_state(gst::State::Null).unwrap();
        gst::glib::log_remove_handler(Some("GStreamer"), handler);
        assert_eq!(
            *passed.lock().unwrap(),
            vec![2],
            "only the fresh buffer passes"
        );
        assert_eq!(
            empty_unrefs.load(Ordering::Relaxed),
            0,
            "GStreamer unreffed an empty pointer"
        );
    }
}
