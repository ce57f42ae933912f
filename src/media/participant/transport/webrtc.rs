//! The `webrtcbin` transport: the element and its tweaks for a room
//! pipeline, transceivers and send pads with the RTP caps the answer
//! carries, its signals posted as [`MediaEvent`]s, negotiation, ICE
//! candidates and statistics requests.

use crate::ids::ParticipantId;
use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use tokio::sync::mpsc::UnboundedSender;

use super::super::Room;
use super::Transport;
use crate::media::build::Added;
use crate::media::codec::{CodecFamily, MediaChoice, Track, VideoChoice, TRANSPORT_CC_URI};
use crate::media::make::make_element;
use crate::media::webrtc_stats::StatsSample;
use crate::media::MediaEvent;

/// Builds a participant's `webrtcbin`, adds it to the room and requests its
/// transceivers in the offer's m-line order.
pub(super) fn build(
    room: &Room<'_>,
    added: &mut Added,
    id: &ParticipantId,
    choice: &MediaChoice,
    events: &UnboundedSender<MediaEvent>,
) -> anyhow::Result<Transport> {
    let bin = room.bin();
    let n = |what: &str| format!("{id}-{what}");

    let webrtcbin = make_element("webrtcbin", &n("webrtc"))?;
    webrtcbin.set_property_from_str("bundle-policy", "max-bundle");
    webrtcbin.set_property("latency", room.settings.jitter_buffer.as_millis() as u32);
    send_unheld(&webrtcbin);
    arrive_unsynced(&webrtcbin);
    ask_again_only_for_gaps(&webrtcbin);
    crate::media::ice_agent::confine(&webrtcbin, &room.settings.ice)?;
    let retransmits =
        crate::media::retransmit::limit_retransmissions(&webrtcbin, choice.video.payload);
    added.chain(&bin, &[&webrtcbin])?;
    connect_webrtcbin_signals(&webrtcbin, id, events);

    // Transceivers in the offer's m-line order: webrtcbin gives each
    // m-line the first transceiver not yet associated.
    let (mut audio_pad, mut video_pad, mut screen_mline) = (None, None, None);
    let video_ssrc = glib::random_int();
    let audio_ssrc = video_ssrc.wrapping_add(1 + glib::random_int_range(0, 1 << 30) as u32);
    watch_downlink(&webrtcbin, id, video_ssrc, audio_ssrc, events);
    for (mline, track) in choice.order.iter().enumerate() {
        match track {
            Track::Audio => {
                let pad = request_send_pad(&webrtcbin, &audio_rtp_caps(choice, audio_ssrc))?;
                if choice.audio_red.is_some() {
                    super::red_audio::answer_red(&pad);
                }
                audio_pad = Some(pad);
            }
            Track::Camera => {
                video_pad = Some(request_send_pad(
                    &webrtcbin,
                    &video_rtp_caps(choice, &choice.video, Some(video_ssrc)),
                )?)
            }
            Track::Screen => {
                let v = choice
                    .screen
                    .as_ref()
                    .context("screen m-line without a codec")?;
                let trans = webrtcbin.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
                    "add-transceiver",
                    &[
                        &gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly,
                        &video_rtp_caps(choice, v, None),
                    ],
                );
                repair_losses(&trans);
                screen_mline = Some(mline as u32);
            }
        }
    }
    Ok(Transport {
        element: webrtcbin,
        audio_send: audio_pad.context("no audio m-line")?,
        video_send: video_pad.context("no camera m-line")?,
        audio_ssrc,
        video_ssrc,
        screen_mline,
        retransmits,
        red: choice
            .audio_red
            .map(|red| super::RedAudio::new(red, choice.audio_payload)),
        extra: Vec::new(),
        kind: super::Kind::Webrtc,
        heard: None,
    })
}

/// Posts what the participant's RTCP says about the streams we send it
/// (its downlink) as [`MediaEvent::Feedback`].
fn watch_downlink(
    webrtcbin: &gst::Element,
    id: &ParticipantId,
    video_ssrc: u32,
    audio_ssrc: u32,
    events: &UnboundedSender<MediaEvent>,
) {
    let id = id.clone();
    let events = events.clone();
    crate::media::rtcp_feedback::watch_receiver_feedback(
        webrtcbin,
        [video_ssrc, audio_ssrc],
        move |feedback| {
            let on = |ssrc: u32| feedback.receptions.iter().find(|r| r.ssrc == ssrc).copied();
            let _ = events.send(MediaEvent::Feedback {
                participant: id.clone(),
                remb: feedback.remb,
                video: on(video_ssrc),
                audio: on(audio_ssrc),
            });
        },
    );
}

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
fn arrive_unsynced(webrtcbin: &gst::Element) {
    let Some(rtpbin) = rtpbin_of(webrtcbin) else {
        return;
    };
    // rtpbin ignores corrections larger than max-ts-offset (zero would
    // mean no limit): one nanosecond leaves none.
    rtpbin.set_property("max-ts-offset", 1i64);
}

/// The `rtpbin` inside a `webrtcbin`.
fn rtpbin_of(webrtcbin: &gst::Element) -> Option<gst::Element> {
    webrtcbin
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("rtpbin"))
}

/// Makes the jitter buffers of what the participant sends ask for a packet
/// again only once a later one shows it missing. By default they also
/// guess when the next packet is due and ask for it when it is late: on a
/// busy server, or from a browser whose pacer spreads a frame out, that
/// is dozens of requests a second for packets that were never lost, each
/// an RTCP packet on the participant's downlink (some 40 kbit/s seen,
/// half of an 80 kbit/s link, which its audio then lacked).
fn ask_again_only_for_gaps(webrtcbin: &gst::Element) {
    let Some(rtpbin) = rtpbin_of(webrtcbin) else {
        return;
    };
    rtpbin.connect("new-jitterbuffer", false, |values| {
        if let Some(jb) = values.get(1).and_then(|v| v.get::<gst::Element>().ok()) {
            if jb.find_property("rtx-next-seqnum").is_some() {
                jb.set_property("rtx-next-seqnum", false);
            }
        }
        None
    });
}

/// The `application/x-rtp` caps a video transceiver answers with; with
/// `ssrc`, the answer announces it (`a=ssrc`), which is how the browser
/// routes our stream when two video m-lines share a payload type.
/// `goog-remb` asks the receiver for its estimate of its downlink, which
/// places it in a tier (docs/weak-networks.md); `nack` lets either side
/// ask for a lost packet again (see [`repair_losses`]).
fn video_rtp_caps(choice: &MediaChoice, v: &VideoChoice, ssrc: Option<u32>) -> gst::Caps {
    let mut b = gst::Caps::builder("application/x-rtp")
        .field("media", "video")
        .field("encoding-name", v.family.encoding_name())
        .field("payload", i32::from(v.payload))
        .field("clock-rate", 90000i32)
        .field("rtcp-fb-nack", true)
        .field("rtcp-fb-nack-pli", true)
        .field("rtcp-fb-ccm-fir", true)
        .field("rtcp-fb-goog-remb", true);
    if v.family == CodecFamily::H264 {
        b = b
            .field("packetization-mode", "1")
            .field("profile-level-id", v.h264_profile_level_id());
    }
    if let Some(ssrc) = ssrc {
        b = b.field("ssrc", ssrc);
    }
    with_transport_cc(b, choice).build()
}

/// Answers the offer's transport-wide congestion control extension, so that
/// our RTP session sends the participant TWCC feedback on what it sends us:
/// a browser on a narrow uplink then lowers its rate before its packets are
/// lost, and its tile keeps moving.
fn with_transport_cc(
    b: gst::caps::Builder<gst::caps::NoFeature>,
    choice: &MediaChoice,
) -> gst::caps::Builder<gst::caps::NoFeature> {
    match choice.transport_cc {
        Some(id) => b
            .field(format!("extmap-{id}"), TRANSPORT_CC_URI)
            .field("rtcp-fb-transport-cc", true),
        None => b,
    }
}

/// The Opus caps an audio transceiver answers with. `useinbandfec=1` asks
/// the participant to put in-band FEC in what it sends us (our decoders
/// use it, ingest.rs); what we send carries FEC as its listeners' loss
/// calls for (`packet-loss-percentage`, set by the room from their reports).
fn audio_rtp_caps(choice: &MediaChoice, ssrc: u32) -> gst::Caps {
    let b = gst::Caps::builder("application/x-rtp")
        .field("ssrc", ssrc)
        .field("media", "audio")
        .field("encoding-name", "OPUS")
        .field("payload", i32::from(choice.audio_payload))
        .field("clock-rate", 48000i32)
        .field("encoding-params", "2")
        .field("useinbandfec", "1");
    with_transport_cc(b, choice).build()
}

/// Turns on retransmission for a transceiver's video, both ways: the answer
/// carries generic `nack` and an `rtx` payload type (when the offer has
/// one, as browsers' do), webrtcbin keeps what it sent to resend it when
/// the participant asks, and its jitter buffer asks the participant for
/// packets missing from what it receives.
fn repair_losses(trans: &gst_webrtc::WebRTCRTPTransceiver) {
    trans.set_property("do-nack", true);
}

/// Requests a webrtcbin sink pad whose transceiver answers with exactly `caps`.
///
/// Setting codec preferences up front lets `create-answer` succeed before any
/// media has flowed into the pad.
fn request_send_pad(webrtcbin: &gst::Element, caps: &gst::Caps) -> anyhow::Result<gst::Pad> {
    let templ = webrtcbin
        .pad_template("sink_%u")
        .context("webrtcbin has no sink_%u template")?;
    let pad = webrtcbin
        .request_pad(&templ, None, Some(caps))
        .context("requesting a webrtcbin sink pad")?;
    let trans = pad.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
    trans.set_property("codec-preferences", caps);
    if caps
        .structure(0)
        .is_some_and(|s| s.get::<&str>("media") == Ok("video"))
    {
        repair_losses(&trans);
    }
    trans.set_property(
        "direction",
        gst_webrtc::WebRTCRTPTransceiverDirection::Sendrecv,
    );
    Ok(pad)
}

/// The m-line an incoming webrtcbin pad's transceiver is associated with.
pub(super) fn mline_of(pad: &gst::Pad) -> Option<u32> {
    pad.property::<Option<gst_webrtc::WebRTCRTPTransceiver>>("transceiver")
        .map(|t| t.mlineindex())
}

/// Applies the remote offer and asks for an answer; the answer arrives as
/// [`MediaEvent::AnswerCreated`]. With `red` (the RED and Opus payload
/// types), the answer gives RED as the browser offered it.
pub(super) fn negotiate(
    webrtcbin: &gst::Element,
    id: &ParticipantId,
    offer: gst_sdp::SDPMessage,
    red: Option<(u8, u8)>,
    events: &UnboundedSender<MediaEvent>,
) {
    let desc = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, offer);
    webrtcbin.emit_by_name::<()>("set-remote-description", &[&desc, &None::<gst::Promise>]);
    let events = events.clone();
    let id = id.clone();
    let promise = gst::Promise::with_change_func(move |reply| {
        let answer = match reply {
            Ok(Some(s)) => s
                .get::<gst_webrtc::WebRTCSessionDescription>("answer")
                .map(|answer| match red {
                    Some((red, opus)) => {
                        let mut sdp = answer.sdp().to_owned();
                        super::red_audio::red_as_offered(&mut sdp, red, opus);
                        gst_webrtc::WebRTCSessionDescription::new(answer.type_(), sdp)
                    }
                    None => answer,
                })
                .map_err(|_| {
                    s.get::<glib::Error>("error")
                        .map(|e| e.to_string())
                        .unwrap_or_else(|_| "webrtcbin returned no answer".into())
                }),
            Ok(None) => Err("webrtcbin returned no answer".into()),
            Err(e) => Err(format!("create-answer failed: {e:?}")),
        };
        let _ = events.send(MediaEvent::AnswerCreated {
            participant: id.clone(),
            answer,
        });
    });
    // webrtcbin runs its operations in order: this answer sees the offer above.
    webrtcbin.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
}

/// Applies the answer we created as the local description.
pub(super) fn set_local_answer(
    webrtcbin: &gst::Element,
    answer: &gst_webrtc::WebRTCSessionDescription,
) {
    webrtcbin.emit_by_name::<()>("set-local-description", &[answer, &None::<gst::Promise>]);
}

/// Adds a remote ICE candidate.
pub(super) fn add_ice_candidate(webrtcbin: &gst::Element, mline: u32, candidate: &str) {
    webrtcbin.emit_by_name::<()>("add-ice-candidate", &[&mline, &candidate]);
}

/// Asks webrtcbin for its statistics; the answer arrives as
/// [`MediaEvent::Stats`]. Call without holding any lock: the signal takes
/// webrtcbin's own.
pub(super) fn request_stats(
    webrtcbin: &gst::Element,
    id: &ParticipantId,
    events: &UnboundedSender<MediaEvent>,
) {
    let (events, id) = (events.clone(), id.clone());
    let promise = gst::Promise::with_change_func(move |reply| match reply {
        Ok(Some(s)) => {
            let _ = events.send(MediaEvent::Stats {
                participant: id,
                sample: StatsSample::parse(s),
            });
        }
        other => tracing::debug!(participant = %id, "no stats: {other:?}"),
    });
    webrtcbin.emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, &promise]);
}

/// Wires webrtcbin's signals to posted events. Callbacks hold no room state.
fn connect_webrtcbin_signals(
    webrtcbin: &gst::Element,
    id: &ParticipantId,
    events: &UnboundedSender<MediaEvent>,
) {
    {
        let (events, id) = (events.clone(), id.clone());
        webrtcbin.connect("on-ice-candidate", false, move |values| {
            let mline = values.get(1).and_then(|v| v.get::<u32>().ok());
            let candidate = values.get(2).and_then(|v| v.get::<String>().ok());
            if let (Some(mline), Some(candidate)) = (mline, candidate) {
                let _ = events.send(MediaEvent::IceCandidate {
                    participant: id.clone(),
                    mline,
                    candidate,
                });
            }
            None
        });
    }
    {
        let (events, id) = (events.clone(), id.clone());
        webrtcbin.connect_pad_added(move |_, pad| {
            if pad.direction() != gst::PadDirection::Src {
                return;
            }
            // Hold data until the actor has linked a decoder: an unlinked pad
            // would return not-linked and stop the whole receive path.
            let Some(probe) = pad.add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, |_, _| {
                gst::PadProbeReturn::Ok
            }) else {
                return;
            };
            let _ = events.send(MediaEvent::IncomingStream {
                participant: id.clone(),
                pad: pad.clone(),
                probe,
            });
        });
    }
    for (property, what) in [
        ("ice-connection-state", "ice"),
        ("connection-state", "dtls"),
    ] {
        let (events, id) = (events.clone(), id.clone());
        webrtcbin.connect_notify(Some(property), move |w, _| {
            let failed = match property {
                "ice-connection-state" => {
                    w.property::<gst_webrtc::WebRTCICEConnectionState>(property)
                        == gst_webrtc::WebRTCICEConnectionState::Failed
                }
                _ => {
                    w.property::<gst_webrtc::WebRTCPeerConnectionState>(property)
                        == gst_webrtc::WebRTCPeerConnectionState::Failed
                }
            };
            if failed {
                let _ = events.send(MediaEvent::ConnectionFailed {
                    participant: id.clone(),
                    what,
                });
            } else if property == "connection-state"
                && w.property::<gst_webrtc::WebRTCPeerConnectionState>(property)
                    == gst_webrtc::WebRTCPeerConnectionState::Connected
            {
                let _ = events.send(MediaEvent::Connected {
                    participant: id.clone(),
                });
            }
        });
    }
}
