//! What a room is told and what it reports: the [`RoomCommand`]s that
//! signaling sessions, the admin API and the server send to a room's actor,
//! and the [`RoomSnapshot`] it answers `Inspect` with.

use std::sync::Arc;

use gstreamer as gst;
use tokio::sync::{mpsc, oneshot};

use super::{LeaveReason, MediaFigures, Moderation, Refusal};
use crate::auth::Identity;
use crate::ids::{CodecFamily, ParticipantId, RoomId};
use crate::layout::file::LayoutFile;
use crate::protocol::{ParticipantInfo, ServerMessage};

/// A command from a signaling session (or the server) to a room.
#[derive(Debug)]
pub enum RoomCommand {
    /// A client joins.
    Join {
        /// Its new id.
        participant: ParticipantId,
        /// Name, role and token, checked by the session.
        who: Identity,
        /// Family it asked for, if any.
        codec: Option<CodecFamily>,
        /// It asked to send and receive media only through the TURN relay.
        relay: bool,
        /// Its client can connect directly to one other (peer-to-peer).
        p2p: bool,
        /// Where the room sends this client's messages.
        outbox: mpsc::Sender<ServerMessage>,
    },
    /// The client sent a chat message.
    Chat {
        /// Sender.
        participant: ParticipantId,
        /// The message.
        text: String,
    },
    /// The client raised or lowered its hand.
    Hand {
        /// Sender.
        participant: ParticipantId,
        /// Raised or lowered.
        raised: bool,
    },
    /// The client's SDP offer.
    Offer {
        /// Sender.
        participant: ParticipantId,
        /// SDP text.
        sdp: String,
        /// The `a=mid` of its screen-share m-line, if any.
        screen: Option<String>,
    },
    /// A joined phone caller's media leg (the SIP side answered the
    /// caller's INVITE with what the reply gives).
    Phone {
        /// The caller, already joined.
        participant: ParticipantId,
        /// The name on its tile.
        tile: String,
        /// Its codec and where it receives RTP.
        leg: crate::media::phone::PhoneLeg,
        /// How long it may send no RTP before the room lets it go (a
        /// phone that vanished without BYE).
        timeout: std::time::Duration,
        /// The socket its RTP is received on and sent from (bound by the
        /// SIP side: its address is in the answer).
        socket: std::net::UdpSocket,
        /// Where its RTP is received, or why the room could not take it.
        reply: oneshot::Sender<Result<std::net::SocketAddr, String>>,
    },
    /// The client's microphone went off or on.
    Mute {
        /// Sender.
        participant: ParticipantId,
        /// True while off.
        muted: bool,
    },
    /// The client started or stopped sharing its screen.
    Screen {
        /// Sender.
        participant: ParticipantId,
        /// True while sharing.
        sharing: bool,
    },
    /// A remote ICE candidate.
    Ice {
        /// Sender.
        participant: ParticipantId,
        /// m-line index.
        mline: u32,
        /// Candidate line.
        candidate: String,
    },
    /// Peer-to-peer signaling for the other participant of the pair.
    Peer {
        /// Sender.
        participant: ParticipantId,
        /// What to pass on.
        signal: PeerSignal,
    },
    /// The client's direct connection came up, or failed or dropped.
    Direct {
        /// Sender.
        participant: ParticipantId,
        /// Whether media flows directly.
        connected: bool,
    },
    /// The client leaves (or its socket closed).
    Leave {
        /// Who.
        participant: ParticipantId,
        /// Why.
        reason: LeaveReason,
    },
    /// Switch the room's layout. `by` is the participant asking (it must be
    /// a teacher), or None for the admin API.
    SetLayout {
        /// Layout name.
        name: String,
        /// The layout.
        layout: Arc<LayoutFile>,
        /// Who asks.
        by: Option<ParticipantId>,
        /// Outcome, for the admin API.
        reply: Option<oneshot::Sender<Result<(), Refusal>>>,
    },
    /// Pin a participant (or unpin with None); `by` as for `SetLayout`.
    Pin {
        /// Participant to pin.
        participant: Option<ParticipantId>,
        /// Who asks.
        by: Option<ParticipantId>,
        /// Outcome, for the admin API.
        reply: Option<oneshot::Sender<Result<(), Refusal>>>,
    },
    /// Layout files changed: rooms using `name` take the new version.
    LayoutReloaded {
        /// Layout name.
        name: String,
        /// The new version.
        layout: Arc<LayoutFile>,
    },
    /// Start (`on`) or stop recording; `by` as for `SetLayout`.
    Record {
        /// Start or stop.
        on: bool,
        /// Who asks.
        by: Option<ParticipantId>,
        /// The recording's id, for the admin API.
        reply: Option<oneshot::Sender<Result<String, Refusal>>>,
    },
    /// A teacher's (or, with `by` None, the admin API's) action on others.
    Moderate {
        /// Who asks.
        by: Option<ParticipantId>,
        /// What to do.
        action: Moderation,
        /// Outcome, for the admin API.
        reply: Option<oneshot::Sender<Result<(), Refusal>>>,
    },
    /// Report the room's state.
    Inspect {
        /// Where to send it.
        reply: oneshot::Sender<RoomSnapshot>,
    },
    /// Remove everyone and close (server shutdown).
    Close,
    /// The room moves to another node (this one is draining): tell every
    /// client to reconnect at `url`, stop the recording, and close.
    Move {
        /// The other node's signaling socket.
        url: String,
        /// Its name.
        node: String,
    },
}

/// What one participant of a peer-to-peer pair passes to the other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSignal {
    /// The direct connection's offer.
    Offer(String),
    /// The answer to it.
    Answer(String),
    /// An ICE candidate (empty: end of candidates).
    Ice {
        /// Candidate line.
        candidate: String,
        /// m-line index.
        mline: u32,
        /// Media id, if known.
        mid: Option<String>,
    },
}

/// A view of a room, for the API and tests.
#[derive(Debug, Clone)]
pub struct RoomSnapshot {
    /// Room id.
    pub room: RoomId,
    /// Participants in join order.
    pub participants: Vec<ParticipantInfo>,
    /// Families whose encoder is running.
    pub encoders: Vec<CodecFamily>,
    /// The encoders running, by family and quality tier.
    pub video_encoders: Vec<(CodecFamily, crate::ids::Tier)>,
    /// Keyframes forced per running family.
    pub forced_keyframes: Vec<(CodecFamily, u64)>,
    /// Ids of participants who are talking (they hear their own mix-minus
    /// encode; the others share one encode of the full mix).
    pub talking: Vec<ParticipantId>,
    /// Name of the layout in force.
    pub layout: String,
    /// Pinned participant, if any.
    pub pinned: Option<ParticipantId>,
    /// The active speaker, if any.
    pub speaker: Option<ParticipantId>,
    /// Participants whose shared screen is on the canvas.
    pub screens: Vec<ParticipantId>,
    /// Decorations (borders, highlight, muted markers) drawn over the canvas.
    pub decorations: u32,
    /// The recording being made, if any.
    pub recording: Option<String>,
    /// Canvas size.
    pub canvas: crate::layout::Size,
    /// Canvas frames per second.
    pub framerate: u32,
    /// Each shown camera's tile on the canvas, by participant id.
    pub tiles: Vec<(ParticipantId, crate::layout::Rect)>,
    /// Each participant's video size and connection figures, by id.
    pub media: Vec<(ParticipantId, MediaFigures)>,
    /// Bytes the running recording has written so far.
    pub recording_bytes: Option<u64>,
    /// The room's pipeline, weakly: upgrading fails once the room is freed.
    pub pipeline: glib::WeakRef<gst::Pipeline>,
    /// Peer-to-peer or the MCU, since when, and why.
    pub mode: super::mode::ModeFigures,
}
