//! Why a room refuses what a participant or the admin API asked of it
//! (switching the layout, pinning, moderating, recording). The text of a
//! [`Refusal`] is exactly what the asker is told: in an `error` message to
//! a participant, or in the admin API's reply
//! ([`RoomCommand`](crate::room::RoomCommand)'s replies carry the refusal).

use crate::ids::{ParticipantId, RoomId};
use crate::protocol::ErrorCode;

/// A request the room did not carry out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The asker is a participant but not a teacher.
    #[error("only a teacher may {what}")]
    NotTeacher {
        /// What it asked to do.
        what: &'static str,
    },
    /// The asker is no longer in the room.
    #[error("{participant} is not in room {room}")]
    AskerGone {
        /// Room id.
        room: RoomId,
        /// The asker's id.
        participant: ParticipantId,
    },
    /// The participant to act on is not in the room.
    #[error("no participant {participant} in room {room}")]
    NoParticipant {
        /// Room id.
        room: RoomId,
        /// The target's id.
        participant: ParticipantId,
    },
    /// A teacher asked to act on another teacher.
    #[error("a teacher cannot {what} who is a teacher")]
    TargetIsTeacher {
        /// What it asked to do.
        what: &'static str,
    },
    /// A stop was asked for while the room is not recording.
    #[error("this room is not recording")]
    NotRecording,
    /// The recording could not start (disk space, the store, the recorder).
    #[error("{reason}")]
    RecordingFailed {
        /// Why, for the asker.
        reason: String,
    },
}

impl Refusal {
    /// The code a refused participant is sent with the text.
    pub(super) fn code(&self) -> ErrorCode {
        match self {
            Refusal::NotTeacher { .. } | Refusal::TargetIsTeacher { .. } => ErrorCode::Forbidden,
            Refusal::AskerGone { .. } | Refusal::NoParticipant { .. } => ErrorCode::NotFound,
            Refusal::NotRecording => ErrorCode::OutOfOrder,
            Refusal::RecordingFailed { .. } => ErrorCode::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_what_clients_and_the_admin_api_are_told() {
        let room = || RoomId::parse("r1").unwrap();
        let cases = [
            (
                Refusal::NotTeacher {
                    what: "pin a participant",
                },
                "only a teacher may pin a participant",
                ErrorCode::Forbidden,
            ),
            (
                Refusal::AskerGone {
                    room: room(),
                    participant: ParticipantId::parse("p00000001").unwrap(),
                },
                "p00000001 is not in room r1",
                ErrorCode::NotFound,
            ),
            (
                Refusal::NoParticipant {
                    room: room(),
                    participant: ParticipantId::parse("p00000002").unwrap(),
                },
                "no participant p00000002 in room r1",
                ErrorCode::NotFound,
            ),
            (
                Refusal::TargetIsTeacher {
                    what: "remove a participant",
                },
                "a teacher cannot remove a participant who is a teacher",
                ErrorCode::Forbidden,
            ),
            (
                Refusal::NotRecording,
                "this room is not recording",
                ErrorCode::OutOfOrder,
            ),
            (
                Refusal::RecordingFailed {
                    reason: "only 3 MiB free".into(),
                },
                "only 3 MiB free",
                ErrorCode::Internal,
            ),
        ];
        for (refusal, text, code) in cases {
            assert_eq!(refusal.to_string(), text);
            assert_eq!(refusal.code(), code, "{text}");
        }
    }
}
