//! What is sent to a participant: the canvas from its family's encoder and
//! what it hears, payloaded into the transport's send pads.
//!
//! ```text
//! family tee ─► queue(leaky, firewalled) ─► (after a drop: nothing until a keyframe, resync.rs) ─► rtp{vp8,h264}pay(pt) ─► transport (video)
//! own mix-minus (only while talking, talk.rs) ─────────────────────┐ (talking)
//!                                                                   input-selector ─► rtpopuspay(pt) ─► transport (audio)
//! shared tee (one Opus encode of the full mix) ─► queue(leaky, fw) ┘ (not talking)
//! ```
//!
//! Each branch of a shared stream sits behind a firewalled queue: if it
//! fails, the room is told and the shared stream flows on. The transport's
//! TWCC feedback events stop at the payloaders (`probes.rs`): they would
//! otherwise climb the shared streams into every sender's chains.

use crate::ids::ParticipantId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::mpsc::UnboundedSender;

use super::branch_failed;
use super::transport::Transport;
use crate::media::build::Added;
use crate::media::codec::{CodecFamily, MediaChoice};
use crate::media::make::{firewalled_queue, make_element};
use crate::media::probes::{private_copies, stop_twcc_feedback_events};
use crate::media::MediaEvent;

/// Video buffers a participant's send queue may hold before dropping the oldest.
const VIDEO_EGRESS_QUEUE: u32 = 5;
/// Audio buffers (20 ms each) the queues around the mixers may hold.
pub(super) const AUDIO_QUEUE: u32 = 25;

/// The canvas's way to the participant: its queue on the family tee and
/// the payloader (and, for H.264, the caps stamp after it).
pub(super) struct VideoEgress {
    pub(super) queue: gst::Element,
    pub(super) pay: gst::Element,
    /// The last element before the transport: the payloader, or its caps stamp.
    pub(super) tail: gst::Element,
}

/// What the participant hears: the shared encode's queue, the talk
/// selector and the Opus payloader.
pub(super) struct AudioEgress {
    pub(super) shared_queue: gst::Element,
    pub(super) selector: gst::Element,
    pub(super) opuspay: gst::Element,
    /// The selector's input from the shared encode.
    pub(super) shared_select_pad: gst::Pad,
}

/// Builds and links the video egress into the transport; not started yet.
pub(super) fn build_video(
    bin: &gst::Bin,
    added: &mut Added,
    id: &ParticipantId,
    choice: &MediaChoice,
    transport: &Transport,
    events: &UnboundedSender<MediaEvent>,
) -> anyhow::Result<VideoEgress> {
    let family = choice.video.family;
    let n = |what: &str| format!("{id}-{what}");
    // One shared encoded stream, payloaded per participant.
    let vqueue = firewalled_queue(
        &n("video-out-queue"),
        VIDEO_EGRESS_QUEUE,
        branch_failed(events, id, "video"),
    )?;
    let (pay, pay_tail) = match family {
        CodecFamily::Vp8 => {
            let p = make_element("rtpvp8pay", &n("vp8pay"))?;
            p.set_property_from_str("picture-id-mode", "15-bit");
            (p.clone(), p)
        }
        CodecFamily::H264 => {
            let p = make_element("rtph264pay", &n("h264pay"))?;
            p.set_property("config-interval", -1i32);
            p.set_property_from_str("aggregate-mode", "zero-latency");
            // The payloader derives profile-level-id from the encoder's
            // SPS (its level follows the canvas size); the transceiver
            // answered with the offer's. Stamp the negotiated one on the
            // caps: a constrained-baseline stream plays on any baseline
            // decoder whatever level the offer named.
            let stamp = make_element("capssetter", &n("h264-caps"))?;
            stamp.set_property(
                "caps",
                gst::Caps::builder("application/x-rtp")
                    .field("profile-level-id", choice.video.h264_profile_level_id())
                    .build(),
            );
            added.chain(bin, &[&p, &stamp])?;
            without_parameter_sets(&stamp.static_pad("src").context("h264 caps src")?);
            (p, stamp)
        }
    };
    pay.set_property("pt", u32::from(choice.video.payload));
    pay.set_property("ssrc", transport.video_ssrc);
    pay.set_property("mtu", 1200u32);
    added.chain(bin, &[&vqueue])?;
    if family == CodecFamily::Vp8 {
        added.chain(bin, &[&pay])?;
    }
    vqueue
        .link(&pay)
        .context("linking video queue to payloader")?;
    let pay_src = pay_tail.static_pad("src").context("payloader src")?;
    stop_twcc_feedback_events(&pay_src);
    pay_src
        .link(&transport.video_send)
        .context("linking video payloader to webrtcbin")?;
    Ok(VideoEgress {
        queue: vqueue,
        pay,
        tail: pay_tail,
    })
}

/// Builds and links the audio egress into the transport, listening to the
/// shared encode; not started yet.
///
/// A talker hears its own mix-minus (talk.rs), encoded for it alone;
/// everyone else shares the full mix's one encode.
pub(super) fn build_audio(
    bin: &gst::Bin,
    added: &mut Added,
    id: &ParticipantId,
    audio_payload: u8,
    transport: &Transport,
    events: &UnboundedSender<MediaEvent>,
) -> anyhow::Result<AudioEgress> {
    let n = |what: &str| format!("{id}-{what}");
    let shared_queue = firewalled_queue(
        &n("shared-mix-queue"),
        AUDIO_QUEUE,
        branch_failed(events, id, "shared mix"),
    )?;
    let selector = make_element("input-selector", &n("audio-select"))?;
    // Drop what the inactive input brings instead of holding it back.
    selector.set_property("sync-streams", false);
    let opuspay = make_element("rtpopuspay", &n("opuspay"))?;
    opuspay.set_property("pt", u32::from(audio_payload));
    opuspay.set_property("ssrc", transport.audio_ssrc);
    added.chain(bin, &[&shared_queue])?;
    private_copies(&shared_queue.static_pad("src").context("shared queue src")?);
    added.chain(bin, &[&selector, &opuspay])?;
    let shared_select_pad = selector
        .request_pad_simple("sink_%u")
        .context("requesting the selector's shared-mix input")?;
    shared_queue
        .static_pad("src")
        .context("shared queue src")?
        .link(&shared_select_pad)
        .context("linking shared mix to the selector")?;
    selector.set_property("active-pad", &shared_select_pad);
    let pay_src = opuspay.static_pad("src").context("opus payloader src")?;
    stop_twcc_feedback_events(&pay_src);
    pay_src
        .link(&transport.audio_send)
        .context("linking opus payloader to webrtcbin")?;
    Ok(AudioEgress {
        shared_queue,
        selector,
        opuspay,
        shared_select_pad,
    })
}

impl VideoEgress {
    /// Once the video flows: after a drop in its queue, nothing is sent
    /// until a keyframe (resync.rs), and what reaches the payloader is
    /// counted as canvas frames sent.
    pub(super) fn watch(&self) -> anyhow::Result<Arc<AtomicU64>> {
        super::resync::resync_after_gaps(&self.queue.static_pad("src").context("video queue src")?);
        let canvas_sent = Arc::new(AtomicU64::new(0));
        {
            let count = canvas_sent.clone();
            self.pay
                .static_pad("sink")
                .context("video payloader sink")?
                .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    count.fetch_add(1, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                });
        }
        Ok(canvas_sent)
    }
}

/// Takes `sprop-parameter-sets` out of the RTP caps leaving `pad`.
///
/// webrtcbin 1.22 matches an offer's m-line against a transceiver's codec
/// preferences intersected with the caps its sink pad has received. Our
/// payloader puts our encoder's SPS and PPS there; an offer that carries
/// its own (GStreamer and SIP clients do) then intersects with nothing, and
/// the participant was answered receive-only: no canvas. The parameter sets
/// travel in-band with every keyframe anyway.
fn without_parameter_sets(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| {
        let Some(gst::PadProbeData::Event(ev)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let gst::EventView::Caps(c) = ev.view() else {
            return gst::PadProbeReturn::Ok;
        };
        if !c
            .caps()
            .structure(0)
            .is_some_and(|s| s.has_field("sprop-parameter-sets"))
        {
            return gst::PadProbeReturn::Ok;
        }
        let mut caps = c.caps_owned();
        if let Some(s) = caps.make_mut().structure_mut(0) {
            s.remove_field("sprop-parameter-sets");
        }
        info.data = Some(gst::PadProbeData::Event(gst::event::Caps::new(&caps)));
        gst::PadProbeReturn::Ok
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The H.264 payloader puts our SPS and PPS in its caps once a keyframe
    /// went through; what reaches webrtcbin has none.
    #[test]
    fn our_h264_rtp_caps_carry_no_parameter_sets() {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(
            "videotestsrc num-buffers=3 ! video/x-raw,width=64,height=64 \
             ! x264enc tune=zerolatency speed-preset=ultrafast ! rtph264pay name=pay \
             ! capssetter name=stamp ! fakesink name=sink",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let stamp = pipeline.by_name("stamp").unwrap();
        without_parameter_sets(&stamp.static_pad("src").unwrap());
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        let done = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        assert!(
            matches!(
                done.as_ref().map(|m| m.view()),
                Some(gst::MessageView::Eos(_))
            ),
            "{done:?}"
        );
        let caps_of = |name: &str, pad: &str| {
            pipeline
                .by_name(name)
                .and_then(|e| e.static_pad(pad))
                .and_then(|p| p.current_caps())
                .unwrap()
        };
        let has_sets = |c: &gst::Caps| c.structure(0).unwrap().has_field("sprop-parameter-sets");
        assert!(has_sets(&caps_of("pay", "src")), "the payloader sets them");
        let sent = caps_of("sink", "sink");
        assert!(!has_sets(&sent), "{sent}");
        assert!(sent.structure(0).unwrap().has_field("packetization-mode"));
        pipeline.set_state(gst::State::Null).unwrap();
    }
}
