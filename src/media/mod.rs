//! GStreamer media for one room: the canvas and audio mix ([`RoomMedia`]),
//! one encoder per codec family in use ([`family`]), and per participant a
//! transport (`webrtcbin`) with its ingest (depay + decode) and egress
//! (payload) chains.
//!
//! Nothing here owns room state. GStreamer callbacks only post a
//! [`MediaEvent`] to the room actor, which decides and calls back in.
//!
//! # Layout
//!
//! - `mod.rs`: the module's contract: [`MediaSettings`], [`MediaEvent`], re-exports.
//! - `room_media.rs`: [`RoomMedia`], the room pipeline (canvas, full mix,
//!   shared Opus encode) and every call the room makes on it, participants
//!   and recording included.
//! - `participant/`: one participant ([`ParticipantMedia`]): its transport
//!   (`webrtcbin`), ingest, egress, tiles and talk switch.
//! - `family.rs`: one encoder of the canvas per codec family, its keyframe gate.
//! - `recorder.rs`: recording the encoded canvas and mix into segment files.
//! - `codec.rs`: codec choice from an SDP offer (pure).
//! - `templates.rs`: the encoder templates of `pipelines/`.
//! - `elements.rs`: the GStreamer elements the server needs, checked at start.
//! - `ice_agent.rs`: where a participant's ICE agent may open sockets.
//! - `webrtc_stats.rs`: webrtcbin's statistics, parsed (pure).
//! - `rtcp_feedback.rs`: what receivers' RTCP says of the streams we send.
//! - `retransmit.rs`: the budget for retransmissions we send.
//! - `memory.rs`: malloc arenas capped, and memory given back after a room.
//! - `build.rs`: [`Added`](build::Added), the undo log of something half-built.
//! - `make.rs`: element makers, chains, firewalled queues, teardown.
//! - `probes.rs`: shared pad probes and pad-time helpers.
//! - `formats.rs`: raw formats (I420 caps, the mix's audio format) and slack.
//! - `latency.rs`: pipeline latency recomputed off the caller's thread.
//! - `on_time.rs`: the canvas skips frames it is too late for.
//! - `rest.rs`: a direct pair's room at rest: no canvas composed, no mix
//!   encoded, every connection up.
//! - `phone.rs`: a phone caller's codecs and leg (pure), its RTP socket;
//!   `phone_prompt.rs`: prompts played and keys read before it is in a room.
//! - `overlay.rs`: tile decorations drawn over the canvas; `i420_fill.rs`
//!   fills I420 frames; `still.rs`: still frames repeated live.

mod build;
pub mod codec;
pub mod elements;
mod family;
mod formats;
mod i420_fill;
pub mod ice_agent;
mod latency;
mod make;
pub mod memory;
mod on_time;
mod overlay;
mod participant;
pub mod phone;
pub mod phone_prompt;
mod probes;
mod recorder;
mod rest;
mod retransmit;
mod room_media;
pub mod rtcp_feedback;
mod still;
pub mod templates;
pub mod webrtc_stats;

use std::time::Duration;

use gstreamer as gst;

pub use codec::{CodecFamily, MediaChoice};
pub use formats::{i420_caps, mix_audio_caps};
pub use make::make_element;
pub use participant::{
    from_own_mix, send_unheld, LabelStyle, ParticipantMedia, VOICE_LEVEL_SUFFIX,
};
pub use recorder::from_recorder;
pub use room_media::{EncoderOutput, RoomMedia};
pub use templates::Templates;

use crate::ids::ParticipantId;
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
    /// The low tier's canvas: its size and frame rate.
    pub low_tier: LowTier,
}

/// The canvas of the low tier, scaled down from the full one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowTier {
    /// Its size (even width and height).
    pub size: Size,
    /// Its frames per second (at most the canvas's).
    pub framerate: u32,
    /// The shortest time between two keyframes its receivers ask for.
    pub keyframe_min_interval: Duration,
}

/// Something a GStreamer callback saw, posted to the room actor.
#[derive(Debug)]
pub enum MediaEvent {
    /// A receiver's RTCP said something about the streams we send it.
    Feedback {
        /// Participant.
        participant: ParticipantId,
        /// The receiver's estimate of its downlink (REMB), bit/s.
        remb: Option<u64>,
        /// Its reception report on our video.
        video: Option<rtcp_feedback::Reception>,
        /// Its reception report on our audio.
        audio: Option<rtcp_feedback::Reception>,
    },
    /// webrtcbin gathered a local ICE candidate.
    IceCandidate {
        /// Participant the webrtcbin belongs to.
        participant: ParticipantId,
        /// m-line index.
        mline: u32,
        /// Candidate line.
        candidate: String,
    },
    /// The answer for a participant's offer was created (or failed).
    AnswerCreated {
        /// Participant.
        participant: ParticipantId,
        /// The answer, or why not.
        answer: Result<gstreamer_webrtc::WebRTCSessionDescription, String>,
    },
    /// A new incoming stream appeared; its pad is blocked until linked.
    IncomingStream {
        /// Participant.
        participant: ParticipantId,
        /// The webrtcbin source pad.
        pad: gst::Pad,
        /// Probe holding the pad blocked.
        probe: gst::PadProbeId,
    },
    /// The first decoded video frame of a participant reached its tile.
    VideoStarted {
        /// Participant.
        participant: ParticipantId,
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
        participant: ParticipantId,
        /// Which branch (video, mix, shared mix).
        branch: &'static str,
        /// The flow error it returned.
        error: gst::FlowError,
    },
    /// A participant's decoded video went over (or back under) the size
    /// limit; while over, its frames are dropped and its tile holds still.
    VideoTooLarge {
        /// Participant.
        participant: ParticipantId,
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
        participant: ParticipantId,
        /// Its connection's counters.
        sample: webrtc_stats::StatsSample,
    },
    /// ICE or DTLS failed for a participant: it cannot be reached any more.
    ConnectionFailed {
        /// Participant.
        participant: ParticipantId,
        /// Which state went to failed.
        what: &'static str,
    },
    /// A participant's peer connection (ICE and DTLS) is up.
    Connected {
        /// Participant.
        participant: ParticipantId,
    },
}
