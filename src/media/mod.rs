//! GStreamer media for one room: the canvas and audio mix ([`RoomMedia`]),
//! one encoder per codec family in use ([`family`]), and per participant one
//! `webrtcbin` with its ingest (depay + decode) and egress (payload) chains.
//!
//! Nothing here owns room state. GStreamer callbacks only post a
//! [`MediaEvent`] to the room actor, which decides and calls back in.

mod catch_up;
pub mod codec;
mod crop;
pub mod elements;
mod family;
mod i420_fill;
pub mod ice_agent;
mod ingest;
mod latency;
mod link_stats;
mod newest_frame;
mod on_time;
mod overlay;
mod own_mix;
mod participant;
mod recorder;
mod resync;
mod room_media;
mod still;
pub mod templates;
pub mod webrtc_stats;

use std::time::Duration;

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;

pub use codec::{CodecFamily, MediaChoice};
pub use ingest::VOICE_LEVEL_SUFFIX;
pub use own_mix::from_own_mix;
pub use participant::{LabelStyle, ParticipantMedia};
pub use recorder::from_recorder;
pub use room_media::{EncoderOutput, RoomMedia};
pub use templates::Templates;

use crate::layout::Size;
use ice_agent::IcePolicy;

/// What a room's media is built with; shared by all rooms.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    /// Canvas size.
    pub canvas: Size,
    /// Canvas frames per second.
    pub framerate: u32,
    /// Receive jitter buffer.
    pub jitter_buffer: Duration,
    /// Shortest gap between receiver-forced keyframes per family.
    pub keyframe_min_interval: Duration,
    /// Where each participant's ICE agent may open sockets.
    pub ice: IcePolicy,
    /// Validated encoder templates.
    pub templates: std::sync::Arc<Templates>,
    /// Largest decoded video accepted from a participant; larger frames
    /// are dropped before they reach the canvas.
    pub max_input: Size,
}

/// Something a GStreamer callback saw, posted to the room actor.
#[derive(Debug)]
pub enum MediaEvent {
    /// webrtcbin gathered a local ICE candidate.
    IceCandidate {
        /// Participant the webrtcbin belongs to.
        participant: String,
        /// m-line index.
        mline: u32,
        /// Candidate line.
        candidate: String,
    },
    /// The answer for a participant's offer was created (or failed).
    AnswerCreated {
        /// Participant.
        participant: String,
        /// The answer, or why not.
        answer: Result<gstreamer_webrtc::WebRTCSessionDescription, String>,
    },
    /// A new incoming stream appeared; its pad is blocked until linked.
    IncomingStream {
        /// Participant.
        participant: String,
        /// The webrtcbin source pad.
        pad: gst::Pad,
        /// Probe holding the pad blocked.
        probe: gst::PadProbeId,
    },
    /// The first decoded video frame of a participant reached its tile.
    VideoStarted {
        /// Participant.
        participant: String,
        /// True for the shared screen, false for the camera.
        screen: bool,
    },
    /// The recorder could not write and was cut off.
    RecordingFailed {
        /// Recording id.
        recording: String,
        /// What failed.
        reason: String,
    },
    /// A participant's branch of a shared stream failed and was cut off.
    BranchFailed {
        /// Participant.
        participant: String,
        /// Which branch (video, mix, shared mix).
        branch: &'static str,
        /// The flow error it returned.
        error: gst::FlowError,
    },
    /// A participant's decoded video went over (or back under) the size
    /// limit; while over, its frames are dropped and its tile holds still.
    VideoTooLarge {
        /// Participant.
        participant: String,
        /// Decoded size.
        width: i32,
        /// Decoded size.
        height: i32,
        /// True while over the limit.
        over: bool,
    },
    /// webrtcbin answered a `get-stats` request.
    Stats {
        /// Participant.
        participant: String,
        /// Its connection's counters.
        sample: webrtc_stats::StatsSample,
    },
    /// ICE or DTLS failed for a participant: it cannot be reached any more.
    ConnectionFailed {
        /// Participant.
        participant: String,
        /// Which state went to failed.
        what: &'static str,
    },
    /// A participant's peer connection (ICE and DTLS) is up.
    Connected {
        /// Participant.
        participant: String,
    },
}

/// Creates an element, naming it after its owner (`p1a2b-vp8dec`) so that a
/// bus error can be traced back to a participant.
pub fn make_element(factory: &str, name: &str) -> anyhow::Result<gst::Element> {
    gst::ElementFactory::make(factory)
        .name(name)
        .build()
        .with_context(|| format!("creating element {factory} ({name}); is its plugin installed?"))
}

/// A capsfilter with the given caps.
pub(crate) fn make_capsfilter(name: &str, caps: &gst::Caps) -> anyhow::Result<gst::Element> {
    let e = make_element("capsfilter", name)?;
    e.set_property("caps", caps);
    Ok(e)
}

/// A queue that drops the oldest data instead of blocking when it holds
/// `max_buffers`: late frames are dropped, never piled up as latency.
pub(crate) fn make_leaky_queue(name: &str, max_buffers: u32) -> anyhow::Result<gst::Element> {
    let q = make_element("queue", name)?;
    q.set_property_from_str("leaky", "downstream");
    q.set_property("max-size-buffers", max_buffers);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", 0u64);
    Ok(q)
}

/// A tee whose consumers come and go: pushing on with none linked is fine.
pub(crate) fn make_tee(name: &str) -> anyhow::Result<gst::Element> {
    let tee = make_element("tee", name)?;
    tee.set_property("allow-not-linked", true);
    Ok(tee)
}

/// Requests a pad from `aggregator` (compositor or mixer) and links the
/// source pad of `from` into it.
pub(crate) fn link_into_new_pad(
    from: &gst::Element,
    aggregator: &gst::Element,
) -> anyhow::Result<gst::Pad> {
    let pad = aggregator
        .request_pad_simple("sink_%u")
        .with_context(|| format!("requesting a pad from {}", aggregator.name()))?;
    from.static_pad("src")
        .with_context(|| format!("{} has no src pad", from.name()))?
        .link(&pad)
        .with_context(|| format!("linking {} to {}", from.name(), aggregator.name()))?;
    Ok(pad)
}

/// A leaky queue that keeps one consumer's failure from stopping a shared
/// producer.
///
/// A tee stops at the first fatal flow return of any branch, so a
/// participant whose send branch fails (not-negotiated, error) would stop
/// the family encoder or the mix for the whole room. This queue sits in a bin
/// whose sink pad answers OK whatever the branch returns: the tee never sees
/// the failure. The first fatal result runs `on_failure` (so the room can
/// remove the participant); from then on the branch's buffers are dropped.
pub(crate) fn firewalled_queue(
    name: &str,
    max_buffers: u32,
    on_failure: impl Fn(gst::FlowError) + Send + Sync + 'static,
) -> anyhow::Result<gst::Element> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let queue = make_leaky_queue(&format!("{name}-q"), max_buffers)?;
    let bin = gst::Bin::with_name(name);
    bin.add(&queue).context("adding the branch queue")?;
    let failed = Arc::new(AtomicBool::new(false));
    let on_failure = Arc::new(on_failure);
    // Maps a branch's result to what the tee sees.
    let shield = move |result: Result<gst::FlowSuccess, gst::FlowError>| match result {
        Err(e) => {
            // Flushing and not-linked are states of a branch being set up or
            // torn down, not failures worth a removal.
            let fatal = !matches!(e, gst::FlowError::Flushing | gst::FlowError::NotLinked);
            if fatal && !failed.swap(true, Ordering::SeqCst) {
                on_failure(e);
            }
            Ok(gst::FlowSuccess::Ok)
        }
        ok => ok,
    };
    let shield = Arc::new(shield);
    let shield_list = shield.clone();
    let sink =
        gst::GhostPad::builder_with_target(&queue.static_pad("sink").context("queue sink pad")?)
            .context("ghosting the queue's sink pad")?
            .name("sink")
            .chain_function(move |pad, parent, buffer| {
                shield(gst::ProxyPad::chain_default(pad, parent, buffer))
            })
            .chain_list_function(move |pad, parent, list| {
                shield_list(gst::ProxyPad::chain_list_default(pad, parent, list))
            })
            .build();
    let src =
        gst::GhostPad::builder_with_target(&queue.static_pad("src").context("queue src pad")?)
            .context("ghosting the queue's src pad")?
            .name("src")
            .build();
    bin.add_pad(&sink).context("adding the bin's sink pad")?;
    bin.add_pad(&src).context("adding the bin's src pad")?;
    Ok(bin.upcast())
}

/// Adds elements to a bin and links them in order.
pub(crate) fn add_chain(bin: &gst::Bin, chain: &[&gst::Element]) -> anyhow::Result<()> {
    bin.add_many(chain.iter().copied())
        .context("adding elements to the pipeline")?;
    gst::Element::link_many(chain.iter().copied()).with_context(|| {
        let names: Vec<_> = chain.iter().map(|e| e.name().to_string()).collect();
        format!("linking {}", names.join(" ! "))
    })
}

/// Brings elements to the bin's state, downstream first so that no element
/// pushes into one that is not ready yet.
pub(crate) fn sync_downstream_first(chain: &[&gst::Element]) -> anyhow::Result<()> {
    for e in chain.iter().rev() {
        e.sync_state_with_parent()
            .with_context(|| format!("starting {}", e.name()))?;
    }
    Ok(())
}

/// Stops elements and removes them from the bin. Errors are logged, not
/// returned: teardown goes on whatever one element says.
pub(crate) fn remove_elements(bin: &gst::Bin, elements: &[gst::Element]) {
    for e in elements {
        if let Err(err) = e.set_state(gst::State::Null) {
            tracing::warn!(element = %e.name(), "stopping element: {err}");
        }
    }
    for e in elements {
        if e.parent().as_ref() == Some(bin.upcast_ref()) {
            if let Err(err) = bin.remove(e) {
                tracing::warn!(element = %e.name(), "removing element: {err}");
            }
        }
    }
}

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

/// The room's internal audio format: 48 kHz mono float, so that summing and
/// subtracting (mix-minus) never clips and never resamples.
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
/// a margin. Inputs whose latency is hidden ([`hide_latency`]) add nothing
/// to it.
pub(crate) const MIX_SLACK: Duration = Duration::from_millis(20);

/// How long the compositor waits past each canvas frame's end for tiles
/// that have nothing new. A tile frame that misses it is not lost: it shows
/// from the next canvas frame on. Decoded frames are stamped when their
/// packets arrive, so only decoding and scaling (a few milliseconds) can
/// make one miss a canvas frame it belongs to.
pub(crate) const CANVAS_SLACK: Duration = Duration::from_millis(5);

/// Makes `webrtcbin` send each RTP packet as soon as it is made.
///
/// webrtcbin puts a `clocksync` in front of every send stream, which holds
/// each buffer until its timestamp plus the whole pipeline's latency. In a
/// room pipeline that latency is the longest path (jitter buffer, the full
/// mix, a mix-minus mix, the encoders), so the hold delayed every stream,
/// video included, by about a quarter of a second. The mixers and the
/// compositor already pace the output live, so the hold buys nothing.
pub fn send_unheld(webrtcbin: &gst::Element) {
    let Some(bin) = webrtcbin.downcast_ref::<gst::Bin>() else {
        return;
    };
    let unhold = |e: &gst::Element| {
        if e.factory().is_some_and(|f| f.name() == "clocksync") {
            e.set_property("sync", false);
        }
    };
    for e in bin.iterate_elements().into_iter().flatten() {
        unhold(&e);
    }
    bin.connect_element_added(move |_, e| unhold(e));
}

/// Makes `webrtcbin` time each incoming stream by its arrival alone.
///
/// rtpbin lines up the audio and video of one sender from its RTCP sender
/// reports, by adding an offset to the timestamps of whichever stream is
/// ahead. The compositor and the mixers present what they receive at its
/// timestamp, so that offset became latency for everyone in the room, and
/// its size followed the sender reports' accuracy and the state of the
/// jitter buffers when the first reports came in: 0 to 230 ms, changing
/// from one run to the next. A participant's audio and video are captured
/// and sent within a frame of each other, so the room presents both as
/// they arrive.
pub(crate) fn arrive_unsynced(webrtcbin: &gst::Element) {
    let Some(rtpbin) = webrtcbin
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("rtpbin"))
    else {
        return;
    };
    // rtpbin ignores corrections larger than max-ts-offset (zero would
    // mean no limit): one nanosecond leaves none.
    rtpbin.set_property("max-ts-offset", 1i64);
}

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

/// Configures a live aggregator (compositor or audiomixer) for a room, with
/// `slack` ([`MIX_SLACK`], [`CANVAS_SLACK`]) on top of its own output
/// buffer's duration.
pub(crate) fn configure_aggregator(agg: &gst::Element, slack: Duration) {
    agg.set_property("latency", slack.as_nanos() as u64);
    // Start from the first buffer's time: an aggregator added mid-lesson
    // must not produce the whole lesson's worth of output from time zero.
    agg.set_property_from_str("start-time-selection", "first");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

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

    /// One tee, a healthy branch and a branch that fails mid-stream: with the
    /// failing branch behind a firewalled queue, the healthy one gets every
    /// buffer.
    #[test]
    fn a_firewalled_failing_branch_does_not_stop_the_tee() {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(
            "audiotestsrc num-buffers=300 ! tee name=t \
             t. ! queue ! fakesink name=goodsink \
             identity name=bad error-after=5 ! fakesink",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let failures = Arc::new(Mutex::new(Vec::new()));
        let firewall = {
            let failures = failures.clone();
            firewalled_queue("branch", 5, move |e| failures.lock().unwrap().push(e)).unwrap()
        };
        pipeline.add(&firewall).unwrap();
        let tee = pipeline.by_name("t").unwrap();
        tee.link(&firewall).unwrap();
        firewall.link(&pipeline.by_name("bad").unwrap()).unwrap();
        let received = Arc::new(AtomicU64::new(0));
        {
            let received = received.clone();
            let sink = pipeline.by_name("goodsink").unwrap();
            sink.static_pad("sink")
                .unwrap()
                .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    received.fetch_add(1, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                });
        }
        pipeline.set_state(gst::State::Playing).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while received.load(Ordering::Relaxed) < 300 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        pipeline.set_state(gst::State::Null).unwrap();
        // Without the firewall the tee stops after a handful of buffers.
        assert_eq!(
            received.load(Ordering::Relaxed),
            300,
            "the healthy branch was starved"
        );
        assert_eq!(*failures.lock().unwrap(), vec![gst::FlowError::Error]);
    }
}
