//! The seam between a participant's media and the way it reaches the
//! participant: [`Transport`].
//!
//! The rest of the participant sees only what is here: the pads its egress
//! links into (audio and video sent to the participant), the streams that
//! arrive from it ([`MediaEvent::IncomingStream`], with [`Transport::mline_of`]
//! saying which negotiated stream a pad carries), the negotiation calls, and
//! the element to stop first. The compositor and the mixers never see it.
//!
//! Two transports: `webrtcbin` ([`webrtc`]) for browsers and WebRTC
//! peers, and plain RTP over one UDP socket ([`rtp`]) for phone callers.
//! A link to another node would be another constructor here giving the
//! same pads and events.

mod red_audio;
mod rtp;
mod webrtc;

use crate::ids::ParticipantId;
use gstreamer as gst;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use tokio::sync::mpsc::UnboundedSender;

use super::Room;
use crate::media::build::Added;
use crate::media::codec::MediaChoice;
use crate::media::phone::PhoneLeg;
use crate::media::MediaEvent;

pub use red_audio::RedAudio;
pub use webrtc::send_unheld;

/// How a participant's media travels to and from it.
pub(super) struct Transport {
    /// The element carrying the media; it feeds the ingest chains, so it
    /// is stopped first.
    pub(super) element: gst::Element,
    /// Where the audio sent to the participant goes in.
    pub(super) audio_send: gst::Pad,
    /// Where the canvas sent to the participant goes in.
    pub(super) video_send: gst::Pad,
    /// SSRC of the audio sent, announced in the answer.
    pub(super) audio_ssrc: u32,
    /// SSRC of the video sent, announced in the answer.
    pub(super) video_ssrc: u32,
    /// The negotiated stream (m-line) a shared screen arrives on, if any.
    pub(super) screen_mline: Option<u32>,
    /// What of the video sent is resent on request.
    pub(super) retransmits: crate::media::retransmit::Retransmits,
    /// Redundant audio, when the offer had it.
    pub(super) red: Option<RedAudio>,
    /// More of the transport's elements, downstream first: started before
    /// `element`, stopped after it.
    pub(super) extra: Vec<gst::Element>,
    /// Which transport it is.
    pub(super) kind: Kind,
    /// When an RTP leg last received a packet (GLib monotonic time, µs).
    pub(super) heard: Option<std::sync::Arc<std::sync::atomic::AtomicI64>>,
}

/// Which transport carries a participant's media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `webrtcbin`.
    Webrtc,
    /// Plain RTP with a phone caller, from `local`.
    Rtp {
        /// Where the caller's RTP arrives.
        local: std::net::SocketAddr,
    },
}

impl Transport {
    /// A `webrtcbin` in the room pipeline, with send pads for the codecs
    /// `choice` took from the offer. Its signals become [`MediaEvent`]s.
    pub(super) fn webrtc(
        room: &Room<'_>,
        added: &mut Added,
        id: &ParticipantId,
        choice: &MediaChoice,
        events: &UnboundedSender<MediaEvent>,
    ) -> anyhow::Result<Transport> {
        webrtc::build(room, added, id, choice, events)
    }

    /// A phone caller's plain-RTP leg on `socket` (a port of the media
    /// range), audio only.
    pub(super) fn rtp(
        room: &Room<'_>,
        added: &mut Added,
        id: &ParticipantId,
        leg: &PhoneLeg,
        socket: std::net::UdpSocket,
        events: &UnboundedSender<MediaEvent>,
    ) -> anyhow::Result<Transport> {
        rtp::build(room, added, id, leg, socket, events)
    }

    /// Its elements in the order they start: `extra` (downstream first),
    /// then `element`.
    pub(super) fn elements(&self) -> Vec<gst::Element> {
        let mut all = self.extra.clone();
        all.push(self.element.clone());
        all
    }

    /// Where a phone caller's RTP arrives; None for WebRTC.
    pub(super) fn rtp_local(&self) -> Option<std::net::SocketAddr> {
        match self.kind {
            Kind::Rtp { local } => Some(local),
            Kind::Webrtc => None,
        }
    }

    /// The negotiated stream (m-line) an incoming pad carries.
    pub(super) fn mline_of(&self, pad: &gst::Pad) -> Option<u32> {
        match self.kind {
            Kind::Webrtc => webrtc::mline_of(pad),
            Kind::Rtp { .. } => Some(0),
        }
    }

    /// Applies the remote offer and asks for an answer; the answer arrives
    /// as [`MediaEvent::AnswerCreated`].
    pub(super) fn negotiate(
        &self,
        id: &ParticipantId,
        offer: gst_sdp::SDPMessage,
        events: &UnboundedSender<MediaEvent>,
    ) {
        let red = self.red.as_ref().map(|r| (r.payload, r.opus));
        if self.kind == Kind::Webrtc {
            webrtc::negotiate(&self.element, id, offer, red, events);
        }
    }

    /// Puts the previous audio packet in every one sent, or stops, when
    /// RED was negotiated.
    pub(super) fn set_audio_redundancy(&mut self, on: bool) {
        if let Some(red) = &mut self.red {
            red.set(&self.audio_send, on);
        }
    }

    /// Applies the answer we created as the local description.
    pub(super) fn set_local_answer(&self, answer: &gst_webrtc::WebRTCSessionDescription) {
        if self.kind == Kind::Webrtc {
            webrtc::set_local_answer(&self.element, answer);
        }
    }

    /// Adds a remote ICE candidate.
    pub(super) fn add_ice_candidate(&self, mline: u32, candidate: &str) {
        if self.kind == Kind::Webrtc {
            webrtc::add_ice_candidate(&self.element, mline, candidate);
        }
    }

    /// Asks for the connection's statistics; the answer arrives as
    /// [`MediaEvent::Stats`].
    pub(super) fn request_stats(&self, id: &ParticipantId, events: &UnboundedSender<MediaEvent>) {
        if self.kind == Kind::Webrtc {
            webrtc::request_stats(&self.element, id, events);
        }
    }
}
