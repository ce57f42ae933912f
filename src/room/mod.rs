//! Rooms: one actor task per room owning its GStreamer pipeline
//! ([`actor`]), the [`Registry`] that creates a room on its first join
//! and forgets it when its last participant has left, the commands a room
//! takes and the snapshot it reports ([`command`]), what a relayout puts
//! where ([`layout_plan`], pure), who is talking ([`talk`]), each
//! receiver's tier ([`downlink`]), the audio loss its encoders expect
//! ([`audio_loss`]), whether it runs peer-to-peer or on the MCU
//! ([`mode`]) and what its chat accepts ([`chat`]).

mod actor;
pub mod audio_loss;
pub mod chat;
mod command;
pub mod downlink;
mod layout_plan;
pub mod mode;
mod registry;
pub mod talk;

pub use actor::{DownlinkFigures, MediaFigures, Moderation, Refusal};
pub use command::{PeerSignal, RoomCommand, RoomSnapshot};
pub use mode::Mode;
pub use registry::{Registry, RoomError, RoomHandle};

/// Why a participant left the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaveReason {
    /// It sent `leave`.
    Requested,
    /// Its WebSocket closed.
    SocketClosed,
    /// ICE or DTLS failed, or its media branch hit an error.
    MediaFailed(String),
    /// Its outgoing message queue overflowed (a stuck client).
    TooSlow,
    /// The server is shutting down.
    Shutdown,
    /// A teacher (or the admin API) removed it.
    Removed,
    /// The room moved to another node of the cluster.
    Moved,
}

impl LeaveReason {
    /// Words for the `left` message and logs.
    pub fn describe(&self) -> String {
        match self {
            LeaveReason::Requested => "you left the room".into(),
            LeaveReason::SocketClosed => "connection closed".into(),
            LeaveReason::MediaFailed(why) => format!("media connection failed: {why}"),
            LeaveReason::TooSlow => "the connection could not keep up with signaling".into(),
            LeaveReason::Shutdown => "the server is shutting down".into(),
            LeaveReason::Removed => "you were removed from the room".into(),
            LeaveReason::Moved => "the room moved to another server".into(),
        }
    }
}

/// A fresh participant id: `p` and 8 hex digits.
pub fn new_participant_id() -> crate::ids::ParticipantId {
    crate::ids::ParticipantId::random()
}
