//! The plain-RTP transport of a phone caller (SIP): one UDP socket from
//! the media port range, used both ways (symmetric RTP).
//!
//! ```text
//! udpsrc ─► (caller's audio payload type only) ─► rtpjitterbuffer ─► IncomingStream
//! egress (Opus RTP) ─► [rtpopusdepay ─► opusdec ─► resample ─► encoder ─► payloader] ─► udpsink
//! ```
//!
//! An Opus caller gets the room's Opus packets as they are; any other
//! codec is decoded and encoded again for it alone. No video is sent: the
//! video pad ends in a `fakesink` the egress never feeds (a phone stays in
//! the audio-only tier).

use std::net::UdpSocket;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::mpsc::UnboundedSender;

use super::super::Room;
use super::{Kind, Transport};
use crate::ids::ParticipantId;
use crate::media::build::Added;
use crate::media::make::make_element;
use crate::media::phone::{PhoneCodec, PhoneLeg};
use crate::media::MediaEvent;

/// Builds the caller's RTP leg on `socket` (bound by the SIP side, on a
/// port of the media range), sending to `leg.remote`.
pub(super) fn build(
    room: &Room<'_>,
    added: &mut Added,
    id: &ParticipantId,
    leg: &PhoneLeg,
    socket: UdpSocket,
    events: &UnboundedSender<MediaEvent>,
) -> anyhow::Result<Transport> {
    let bin = room.bin();
    let n = |what: &str| format!("{id}-{what}");
    let local = socket.local_addr().context("the RTP socket's address")?;
    let gsocket = gio::Socket::from_fd(std::os::fd::OwnedFd::from(socket))
        .context("handing the RTP socket to GStreamer")?;

    let src = make_element("udpsrc", &n("rtp-in"))?;
    src.set_property("socket", &gsocket);
    src.set_property("close-socket", false);
    src.set_property("caps", incoming_caps(leg));
    let heard = Arc::new(AtomicI64::new(glib::monotonic_time()));
    only_payload(&src, leg.payload, heard.clone())?;
    let jitter = make_element("rtpjitterbuffer", &n("rtp-jitter"))?;
    jitter.set_property("latency", room.settings.jitter_buffer.as_millis() as u32);
    // Lost packets become gaps the decoder's concealment fills.
    jitter.set_property("do-lost", true);
    added.chain(&bin, &[&src, &jitter])?;

    let sink = make_element("udpsink", &n("rtp-out"))?;
    sink.set_property("socket", &gsocket);
    sink.set_property("close-socket", false);
    sink.set_property("host", leg.remote.ip().to_string());
    sink.set_property("port", i32::from(leg.remote.port()));
    sink.set_property("sync", false);
    sink.set_property("async", false);
    let mut send_chain = transcoder(id, leg)?;
    send_chain.push(sink);
    let refs: Vec<&gst::Element> = send_chain.iter().collect();
    added.chain(&bin, &refs)?;
    let audio_send = send_chain[0].static_pad("sink").context("RTP send sink")?;

    let no_video = make_element("fakesink", &n("no-video"))?;
    no_video.set_property("sync", false);
    no_video.set_property("async", false);
    added.chain(&bin, &[&no_video])?;
    let video_send = no_video.static_pad("sink").context("fakesink sink")?;

    // The jitter buffer's output is the caller's one incoming stream;
    // held until the room has linked its decoder, as webrtcbin's are.
    let out = jitter.static_pad("src").context("jitter buffer src")?;
    let probe = out
        .add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, |_, _| {
            gst::PadProbeReturn::Ok
        })
        .context("blocking the caller's audio")?;
    let _ = events.send(MediaEvent::IncomingStream {
        participant: id.clone(),
        pad: out,
        probe,
    });

    // Started downstream first: the live source last.
    let mut extra = send_chain;
    extra.extend([no_video, jitter]);
    tracing::info!(participant = %id, %local, remote = %leg.remote, codec = %leg.codec, "phone RTP leg");
    Ok(Transport {
        element: src,
        extra,
        audio_send,
        video_send,
        audio_ssrc: glib::random_int(),
        video_ssrc: glib::random_int(),
        screen_mline: None,
        retransmits: Default::default(),
        red: None,
        kind: Kind::Rtp { local },
        heard: Some(heard),
    })
}

/// The RTP caps of what the caller sends.
fn incoming_caps(leg: &PhoneLeg) -> gst::Caps {
    let b = gst::Caps::builder("application/x-rtp")
        .field("media", "audio")
        .field("encoding-name", leg.codec.encoding_name())
        .field("clock-rate", leg.codec.clock_rate() as i32)
        .field("payload", i32::from(leg.payload));
    match leg.codec {
        PhoneCodec::Opus => b.field("encoding-params", "2").build(),
        _ => b.build(),
    }
}

/// Lets only RTP packets of the caller's audio payload type through:
/// keys pressed (telephone-events), comfort noise and anything else on the
/// socket stay out of the decoder. Any RTP packet notes in `heard` when
/// the caller was last heard from (GLib's monotonic time, µs).
fn only_payload(src: &gst::Element, payload: u8, heard: Arc<AtomicI64>) -> anyhow::Result<()> {
    src.static_pad("src").context("udpsrc src")?.add_probe(
        gst::PadProbeType::BUFFER,
        move |_, info| {
            let Some(gst::PadProbeData::Buffer(buf)) = &info.data else {
                return gst::PadProbeReturn::Ok;
            };
            let (rtp, ours) = buf.map_readable().ok().map_or((false, false), |m| {
                let rtp = m.len() >= 12 && m[0] >> 6 == 2;
                (rtp, rtp && m[1] & 0x7f == payload)
            });
            if rtp {
                heard.store(glib::monotonic_time(), Ordering::Relaxed);
            }
            if ours {
                gst::PadProbeReturn::Ok
            } else {
                crate::media::probes::swallow(info)
            }
        },
    );
    Ok(())
}

/// The chain from the room's Opus RTP to what the caller receives, before
/// the socket: nothing but a pass-through for an Opus caller.
fn transcoder(id: &ParticipantId, leg: &PhoneLeg) -> anyhow::Result<Vec<gst::Element>> {
    let n = |what: &str| format!("{id}-{what}");
    if leg.codec == PhoneCodec::Opus {
        return Ok(vec![make_element("identity", &n("rtp-pass"))?]);
    }
    let depay = make_element("rtpopusdepay", &n("phone-opusdepay"))?;
    let dec = make_element("opusdec", &n("phone-opusdec"))?;
    dec.set_property("plc", true);
    let mut chain = vec![depay, dec];
    chain.extend(crate::media::phone_prompt::encoder_chain(
        leg.codec,
        leg.payload,
        id.as_str(),
    )?);
    Ok(chain)
}
