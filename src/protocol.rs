//! The signaling wire protocol: JSON text frames over the `/ws` WebSocket.
//!
//! Every message is an object with a `type` field. Client messages are
//! [`ClientMessage`], server messages are [`ServerMessage`]. Unknown types and
//! unknown fields are rejected, so a typo gets a precise error instead of being
//! silently ignored. `docs/protocol.md` shows every message with an example.

use serde::{Deserialize, Serialize};

pub use crate::ids::{CodecFamily, Role, MAX_NAME_LEN, MAX_ROOM_ID_LEN};
use crate::ids::{IdError, ParticipantId, RoomId};

/// Version of this protocol, sent in [`ServerMessage::Joined`].
pub const PROTOCOL_VERSION: u32 = 1;

/// A message from a client to the server.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum ClientMessage {
    /// Enter a room, creating it if it does not exist. Must come first.
    #[serde(rename_all = "camelCase")]
    Join {
        /// Room id: 1 to 64 characters of `A-Z a-z 0-9 - _ .`.
        room: String,
        /// Display name shown to the others: 1 to 64 characters. With a
        /// token, the token's name is used and this may be left out.
        #[serde(default)]
        name: String,
        /// Codec family this client wants to receive; the offer decides when absent.
        #[serde(default)]
        codec: Option<CodecFamily>,
        /// Role in the room (default `student`). Layouts place teachers
        /// apart. With a token, the token's role is used instead.
        #[serde(default)]
        role: Role,
        /// Join token (a signed JWT), required unless the server runs with
        /// `auth.mode = "open"`.
        #[serde(default)]
        token: Option<String>,
        /// Send and receive media only through the TURN relay, so that
        /// this client's own address reaches nothing but the relay. The
        /// server may require it of everyone (`ice.relay_only`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        relay: bool,
        /// This client can connect directly to one other client, so that a
        /// room of two may run peer-to-peer (`mode`, `peerOffer`...).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        p2p: bool,
    },
    /// The client's SDP offer: one audio and one video m-line (sendrecv),
    /// and optionally a second video m-line for screen sharing.
    Offer {
        /// Session description text.
        sdp: String,
        /// The `a=mid` of the screen-share m-line, if the offer has one.
        #[serde(default)]
        screen: Option<String>,
    },
    /// The client's microphone was switched off or on (drawn as a marker on its tile).
    Mute {
        /// True while the microphone is off.
        muted: bool,
    },
    /// The client started or stopped sending its screen on the screen m-line.
    Screen {
        /// True while the screen is shared.
        sharing: bool,
    },
    /// A trickled ICE candidate from the client.
    #[serde(rename_all = "camelCase")]
    Ice {
        /// Candidate line (`candidate:...`); empty signals end of candidates.
        candidate: String,
        /// Index of the m-line the candidate belongs to.
        sdp_m_line_index: u32,
        /// Media id the candidate belongs to, if the client knows it.
        #[serde(default)]
        sdp_mid: Option<String>,
    },
    /// Teachers only: switch the room's layout.
    SetLayout {
        /// Name of a layout (see `GET /api/layouts`).
        layout: String,
    },
    /// Teachers only: pin a participant (the `pinned` slot of layouts), or
    /// unpin with null.
    Pin {
        /// Participant id, or null.
        participant: Option<ParticipantId>,
    },
    /// Teachers only: start (`on: true`) or stop recording the room.
    Record {
        /// Start or stop.
        on: bool,
    },
    /// Teachers only: silence (or restore) a participant's voice for
    /// everyone; the participant cannot undo it.
    MuteParticipant {
        /// Participant id.
        participant: ParticipantId,
        /// Silence or restore.
        muted: bool,
    },
    /// Teachers only: remove a participant. With tokens, the removed
    /// participant's token cannot rejoin the room until it expires.
    Remove {
        /// Participant id.
        participant: ParticipantId,
    },
    /// Teachers only: lock the room (only teachers may join) or unlock it.
    Lock {
        /// Lock or unlock.
        locked: bool,
    },
    /// Peer-to-peer only: the offer for the direct connection, passed to
    /// the other participant of the pair (sent by the pair's offerer).
    PeerOffer {
        /// Session description text.
        sdp: String,
    },
    /// Peer-to-peer only: the answer to the other's `peerOffer`.
    PeerAnswer {
        /// Session description text.
        sdp: String,
    },
    /// Peer-to-peer only: an ICE candidate of the direct connection, passed
    /// to the other participant of the pair.
    #[serde(rename_all = "camelCase")]
    PeerIce {
        /// Candidate line (`candidate:...`); empty signals end of candidates.
        candidate: String,
        /// Index of the m-line the candidate belongs to.
        sdp_m_line_index: u32,
        /// Media id the candidate belongs to, if the client knows it.
        #[serde(default)]
        sdp_mid: Option<String>,
    },
    /// Peer-to-peer only: the direct connection came up (`connected:
    /// true`), or failed or dropped (`false`: the room goes back to the MCU).
    Direct {
        /// Whether media flows directly.
        connected: bool,
    },
    /// Raise your hand (`raised: true`) or lower it.
    Hand {
        /// Raised or lowered.
        raised: bool,
    },
    /// Teachers only: lower one participant's raised hand, or everyone's
    /// when `participant` is absent.
    LowerHand {
        /// Participant id; absent: all hands.
        #[serde(default)]
        participant: Option<ParticipantId>,
    },
    /// Send a chat message to everyone in the room.
    Chat {
        /// The message, as written: at most 500 characters, not blank.
        text: String,
    },
    /// Teachers only: let students chat, or not (teachers always may).
    SetChat {
        /// Chat on for students.
        enabled: bool,
    },
    /// Leave the room. The socket stays open and may join again.
    /// (A struct variant, so that unknown fields are rejected here too.)
    Leave {},
}

/// A participant as the others see them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantInfo {
    /// Participant id, unique within the server's lifetime.
    pub id: ParticipantId,
    /// Display name.
    pub name: String,
    /// Role in the room.
    pub role: Role,
    /// Codec family the participant receives, once its offer was accepted.
    pub codec: Option<CodecFamily>,
    /// The participant's microphone is off.
    #[serde(default)]
    pub muted: bool,
    /// The participant is sharing its screen.
    #[serde(default)]
    pub sharing: bool,
    /// A teacher silenced the participant's voice.
    #[serde(default)]
    pub silenced: bool,
    /// The participant's hand is up: its place among the raised hands, 1
    /// for the first raised; null when down.
    #[serde(default)]
    pub hand: Option<u32>,
    /// How the participant's media travels: `webrtc`, or `sip` for a
    /// phone caller (audio only).
    #[serde(default)]
    pub transport: TransportKind,
}

/// How a participant's media travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// WebRTC: a browser or another WebRTC peer.
    #[default]
    Webrtc,
    /// A phone caller: SIP and plain RTP, audio only.
    Sip,
}

/// Which ICE candidates a client's peer connection may use (the
/// `RTCPeerConnection`'s `iceTransportPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IceTransportPolicy {
    /// Any: direct, through STUN or through the relay.
    #[default]
    All,
    /// Only the TURN relay's.
    Relay,
}

/// A message from the server to a client.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerMessage {
    /// The join was accepted; send the offer next.
    #[serde(rename_all = "camelCase")]
    Joined {
        /// Protocol version spoken by the server.
        version: u32,
        /// Room joined.
        room: RoomId,
        /// The id this client has in the room.
        participant_id: ParticipantId,
        /// Everyone in the room, this client included.
        participants: Vec<ParticipantInfo>,
        /// STUN and TURN servers for the peer connection (TURN with a
        /// credential minted for this join).
        ice_servers: Vec<crate::auth::turn::IceServer>,
        /// Which candidates the peer connection may use: `relay` when
        /// media must go through the TURN relay.
        ice_transport_policy: IceTransportPolicy,
        /// Whether the room is locked.
        locked: bool,
    },
    /// The server's SDP answer to the client's offer.
    Answer {
        /// Session description text.
        sdp: String,
    },
    /// A trickled ICE candidate from the server.
    #[serde(rename_all = "camelCase")]
    Ice {
        /// Candidate line.
        candidate: String,
        /// Index of the m-line the candidate belongs to.
        sdp_m_line_index: u32,
    },
    /// The room's participant list changed (join, codec chosen, or leave).
    Participants {
        /// Everyone in the room.
        participants: Vec<ParticipantInfo>,
    },
    /// The size and frame rate this client's video is shown at, and a
    /// bitrate cap: send no more than this. Sent when the client's tile is
    /// first placed and whenever the canvas re-flows.
    #[serde(rename_all = "camelCase")]
    Tile {
        /// Tile width in pixels.
        width: u32,
        /// Tile height in pixels.
        height: u32,
        /// Canvas frames per second.
        framerate: u32,
        /// Video bitrate cap, bits per second.
        max_bitrate: u32,
    },
    /// The room's layout and pinned participant; sent after `joined` and
    /// whenever either changes.
    Layout {
        /// Layout name.
        name: String,
        /// Pinned participant id, if any.
        pinned: Option<ParticipantId>,
        /// Names of the layouts a teacher may switch to.
        available: Vec<String>,
    },
    /// The active speaker changed (it fills layouts' `speaker` slot).
    #[serde(rename_all = "camelCase")]
    Speaker {
        /// Participant id of the active speaker, or null.
        participant_id: Option<ParticipantId>,
    },
    /// The room started or stopped recording; sent to everyone, and on
    /// joining a room that records.
    Recording {
        /// True while recording.
        active: bool,
        /// The recording's id (also while it is being closed).
        id: Option<String>,
    },
    /// A teacher locked or unlocked the room.
    Locked {
        /// True while only teachers may join.
        locked: bool,
    },
    /// A chat message, to everyone in the room (its sender too). After
    /// `joined`, the room's recent messages come with `history: true`.
    Chat {
        /// Sender's participant id.
        from: ParticipantId,
        /// Sender's display name.
        name: String,
        /// The message, as written: show it as text, never as markup.
        text: String,
        /// When the room took it (RFC 3339, UTC).
        at: String,
        /// Sent before this client joined.
        #[serde(default)]
        history: bool,
    },
    /// Whether students may chat: sent on every change, and after `joined`
    /// when chat is off (a room opens with chat on).
    ChatState {
        /// Chat on for students.
        enabled: bool,
    },
    /// What this client receives changed with its downlink: `high` (the
    /// canvas), `low` (a smaller, slower canvas) or `audio-only` (no video;
    /// the client keeps its last picture).
    Quality {
        /// The tier it gets now.
        tier: crate::ids::Tier,
        /// What its link is estimated to carry, bit/s, if known.
        estimate: Option<u64>,
    },
    /// How the room carries its media now. `p2p`: connect directly to
    /// `peer` (the `offerer` sends `peerOffer`), and pause what goes to the
    /// server once the direct connection is up. `mcu`: send to the server
    /// and show its canvas again, then close the direct connection.
    Mode {
        /// `p2p` or `mcu`.
        mode: crate::ids::Mode,
        /// The other participant of the pair, in `p2p`.
        peer: Option<ParticipantId>,
        /// Whether this client makes the direct connection's offer.
        offerer: bool,
        /// Why the room is on the MCU, in `mcu`.
        reason: Option<String>,
    },
    /// The other participant's offer for the direct connection.
    PeerOffer {
        /// Who sent it.
        from: ParticipantId,
        /// Session description text.
        sdp: String,
    },
    /// The other participant's answer for the direct connection.
    PeerAnswer {
        /// Who sent it.
        from: ParticipantId,
        /// Session description text.
        sdp: String,
    },
    /// An ICE candidate of the other participant's direct connection.
    #[serde(rename_all = "camelCase")]
    PeerIce {
        /// Who sent it.
        from: ParticipantId,
        /// Candidate line; empty signals end of candidates.
        candidate: String,
        /// Index of the m-line the candidate belongs to.
        sdp_m_line_index: u32,
        /// Media id the candidate belongs to, if known.
        sdp_mid: Option<String>,
    },
    /// The room lives on another node of the cluster, or moves there:
    /// connect to `url` and send the same `join` again. Sent instead of
    /// `joined`, or to everyone in a room whose node is draining.
    Redirect {
        /// The signaling socket to use (`ws://node-b:8080/ws`).
        url: String,
        /// The node's name in the cluster.
        node: String,
        /// Why: `elsewhere` (the room lives there) or `draining` (this
        /// node is going away).
        reason: String,
    },
    /// This client is no longer in the room (after `leave`, or removed).
    Left {
        /// Why, in plain words.
        reason: String,
    },
    /// Something this client sent was refused. The socket stays usable.
    Error {
        /// Stable machine-readable code, see [`ErrorCode`].
        code: ErrorCode,
        /// What went wrong and how to fix it, for humans.
        message: String,
    },
}

/// Stable error codes sent in [`ServerMessage::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The text was not a JSON object of a known message type with valid fields.
    BadMessage,
    /// The message is valid but not allowed now (e.g. an offer before join).
    OutOfOrder,
    /// The offer could not be parsed or lacks an audio or video m-line.
    BadOffer,
    /// The offer has no codec this server accepts for some m-line.
    UnsupportedCodec,
    /// The room cannot take this participant right now.
    RoomUnavailable,
    /// The participant's role does not allow this (e.g. a student switching layouts).
    Forbidden,
    /// The join token is missing, invalid, expired, for another room, or removed.
    Unauthorized,
    /// The socket sends too many messages; this one was dropped.
    RateLimited,
    /// The message is larger than `limits.max_message_bytes`.
    TooLarge,
    /// The video sent is larger than `limits.max_video_width/height`; it is not shown.
    VideoTooLarge,
    /// The named layout or participant does not exist.
    NotFound,
    /// The server failed; the message says what.
    Internal,
}

impl ErrorCode {
    /// The code as the wire spells it (`bad-message`, `rate-limited`...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadMessage => "bad-message",
            ErrorCode::OutOfOrder => "out-of-order",
            ErrorCode::BadOffer => "bad-offer",
            ErrorCode::UnsupportedCodec => "unsupported-codec",
            ErrorCode::RoomUnavailable => "room-unavailable",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::VideoTooLarge => "video-too-large",
            ErrorCode::NotFound => "not-found",
            ErrorCode::Internal => "internal",
        }
    }
}

/// Why a client text frame was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// Not JSON, not an object, unknown type, or a missing/unknown field.
    #[error("{0}")]
    Malformed(String),
    /// A field has a value outside its allowed range.
    #[error("field `{field}`: {reason}")]
    Invalid {
        /// Name of the offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl DecodeError {
    /// The error reply to send back for this decode failure.
    pub fn to_reply(&self) -> ServerMessage {
        ServerMessage::Error {
            code: ErrorCode::BadMessage,
            message: self.to_string(),
        }
    }
}

/// Parses and validates one text frame from a client.
pub fn decode_client_message(text: &str) -> Result<ClientMessage, DecodeError> {
    let msg: ClientMessage =
        serde_json::from_str(text).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if let ClientMessage::Join {
        room, name, token, ..
    } = &msg
    {
        validate_room_id(room)?;
        if token.is_none() && name.is_empty() {
            return Err(DecodeError::Invalid {
                field: "name",
                reason: "is missing: give a display name, or join with a token".into(),
            });
        }
        if !name.is_empty() {
            validate_name(name)?;
        }
    }
    match &msg {
        ClientMessage::PeerOffer { sdp } | ClientMessage::PeerAnswer { sdp }
            if !sdp.starts_with("v=0") =>
        {
            return Err(DecodeError::Invalid {
                field: "sdp",
                reason: "is not a session description: it must start with `v=0`".into(),
            });
        }
        ClientMessage::PeerIce { candidate, .. }
            if !candidate.is_empty() && !candidate.starts_with("candidate:") =>
        {
            return Err(DecodeError::Invalid {
                field: "candidate",
                reason: "must be a `candidate:` line, or empty for the end of candidates".into(),
            });
        }
        _ => {}
    }
    Ok(msg)
}

/// Checks a room id (see [`crate::ids::RoomId`]), naming the field.
pub fn validate_room_id(room: &str) -> Result<(), DecodeError> {
    Ok(crate::ids::validate_room_id(room)?)
}

/// Checks a display name (see [`crate::ids::validate_name`]), naming the field.
pub fn validate_name(name: &str) -> Result<(), DecodeError> {
    Ok(crate::ids::validate_name(name)?)
}

impl From<IdError> for DecodeError {
    fn from(e: IdError) -> Self {
        DecodeError::Invalid {
            field: e.field(),
            reason: e.to_string(),
        }
    }
}

/// Serializes a server message to a JSON text frame.
pub fn encode_server_message(msg: &ServerMessage) -> String {
    // Serializing these plain structs cannot fail.
    serde_json::to_string(msg).expect("server messages always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn malformed(text: &str) -> String {
        match decode_client_message(text) {
            Err(DecodeError::Malformed(m)) => m,
            other => panic!("expected malformed for {text}, got {other:?}"),
        }
    }

    #[test]
    fn parses_every_client_message() {
        assert_eq!(
            decode_client_message(r#"{"type":"join","room":"math-1","name":"Ada","codec":"h264"}"#),
            Ok(ClientMessage::Join {
                room: "math-1".into(),
                name: "Ada".into(),
                codec: Some(CodecFamily::H264),
                role: Role::Student,
                token: None,
                relay: false,
                p2p: false,
            })
        );
        assert_eq!(
            decode_client_message(r#"{"type":"join","room":"r","name":"Bo"}"#),
            Ok(ClientMessage::Join {
                room: "r".into(),
                name: "Bo".into(),
                codec: None,
                role: Role::Student,
                token: None,
                relay: false,
                p2p: false,
            })
        );
        // With a token the name may be left out: the token names the participant.
        assert_eq!(
            decode_client_message(r#"{"type":"join","room":"r","token":"t.t.t"}"#),
            Ok(ClientMessage::Join {
                room: "r".into(),
                name: String::new(),
                codec: None,
                role: Role::Student,
                token: Some("t.t.t".into()),
                relay: false,
                p2p: false,
            })
        );
        assert!(decode_client_message(r#"{"type":"join","room":"r"}"#).is_err());
        // Relay-only media, asked for by the client.
        assert!(matches!(
            decode_client_message(r#"{"type":"join","room":"r","name":"Bo","relay":true}"#),
            Ok(ClientMessage::Join { relay: true, .. })
        ));
        assert_eq!(
            decode_client_message(r#"{"type":"muteParticipant","participant":"p1","muted":true}"#),
            Ok(ClientMessage::MuteParticipant {
                participant: ParticipantId::parse("p1").unwrap(),
                muted: true
            })
        );
        assert_eq!(
            decode_client_message(r#"{"type":"remove","participant":"p1"}"#),
            Ok(ClientMessage::Remove {
                participant: ParticipantId::parse("p1").unwrap()
            })
        );
        assert_eq!(
            decode_client_message(r#"{"type":"lock","locked":true}"#),
            Ok(ClientMessage::Lock { locked: true })
        );
        assert_eq!(
            decode_client_message(r#"{"type":"offer","sdp":"v=0"}"#),
            Ok(ClientMessage::Offer {
                sdp: "v=0".into(),
                screen: None
            })
        );
        assert_eq!(
            decode_client_message(
                r#"{"type":"ice","candidate":"candidate:1 1 UDP 1 127.0.0.1 5000 typ host","sdpMLineIndex":1,"sdpMid":"1"}"#
            ),
            Ok(ClientMessage::Ice {
                candidate: "candidate:1 1 UDP 1 127.0.0.1 5000 typ host".into(),
                sdp_m_line_index: 1,
                sdp_mid: Some("1".into())
            })
        );
        assert_eq!(
            decode_client_message(r#"{"type":"leave"}"#),
            Ok(ClientMessage::Leave {})
        );
    }

    #[test]
    fn peer_to_peer_messages_parse_and_refuse_what_is_not_sdp_or_a_candidate() {
        assert!(matches!(
            decode_client_message(r#"{"type":"join","room":"r","name":"Bo","p2p":true}"#),
            Ok(ClientMessage::Join { p2p: true, .. })
        ));
        assert_eq!(
            decode_client_message(r#"{"type":"peerOffer","sdp":"v=0\r\n"}"#),
            Ok(ClientMessage::PeerOffer {
                sdp: "v=0\r\n".into()
            })
        );
        assert_eq!(
            decode_client_message(r#"{"type":"direct","connected":true}"#),
            Ok(ClientMessage::Direct { connected: true })
        );
        assert!(matches!(
            decode_client_message(r#"{"type":"peerIce","candidate":"","sdpMLineIndex":0}"#),
            Ok(ClientMessage::PeerIce { .. })
        ));
        let e = decode_client_message(r#"{"type":"peerAnswer","sdp":"hello"}"#).unwrap_err();
        assert!(
            matches!(e, DecodeError::Invalid { field: "sdp", .. }),
            "{e:?}"
        );
        let e = decode_client_message(r#"{"type":"peerIce","candidate":"x","sdpMLineIndex":0}"#)
            .unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::Invalid {
                    field: "candidate",
                    ..
                }
            ),
            "{e:?}"
        );
        let text = encode_server_message(&ServerMessage::Mode {
            mode: crate::ids::Mode::PeerToPeer,
            peer: Some(ParticipantId::parse("p2").unwrap()),
            offerer: true,
            reason: None,
        });
        assert_eq!(
            text,
            r#"{"type":"mode","mode":"p2p","peer":"p2","offerer":true,"reason":null}"#
        );
    }

    #[test]
    fn teacher_commands_parse() {
        assert_eq!(
            decode_client_message(r#"{"type":"setLayout","layout":"presenter"}"#),
            Ok(ClientMessage::SetLayout {
                layout: "presenter".into()
            })
        );
        assert_eq!(
            decode_client_message(r#"{"type":"pin","participant":null}"#),
            Ok(ClientMessage::Pin { participant: None })
        );
    }

    #[test]
    fn join_carries_a_role() {
        let m = decode_client_message(r#"{"type":"join","room":"r","name":"T","role":"teacher"}"#);
        assert!(
            matches!(
                m,
                Ok(ClientMessage::Join {
                    role: Role::Teacher,
                    ..
                })
            ),
            "{m:?}"
        );
    }

    #[test]
    fn malformed_json_is_an_error() {
        assert!(malformed("{not json").contains("key must be a string"));
        assert!(malformed("[1,2]").contains("expected"));
        assert!(malformed("").contains("EOF"));
    }

    #[test]
    fn unknown_type_is_named() {
        let m = malformed(r#"{"type":"dance"}"#);
        assert!(m.contains("unknown variant `dance`"), "{m}");
        let m = malformed(r#"{"room":"r"}"#);
        assert!(m.contains("missing field `type`"), "{m}");
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        let e = decode_client_message(r#"{"type":"join","room":"r"}"#).unwrap_err();
        assert!(e.to_string().starts_with("field `name`: is missing"), "{e}");
        let m = malformed(r#"{"type":"join","name":"n"}"#);
        assert!(m.contains("missing field `room`"), "{m}");
        let m = malformed(r#"{"type":"offer","sdp":"v=0","extra":1}"#);
        assert!(m.contains("unknown field `extra`"), "{m}");
        let m = malformed(r#"{"type":"leave","now":true}"#);
        assert!(m.contains("unknown field `now`"), "{m}");
        let m = malformed(r#"{"type":"join","room":"r","name":"n","role":"boss"}"#);
        assert!(m.contains("unknown variant `boss`"), "{m}");
        let m = malformed(r#"{"type":"join","room":"r","name":"n","codec":"vp9"}"#);
        assert!(m.contains("unknown variant `vp9`"), "{m}");
    }

    #[test]
    fn invalid_values_name_the_field() {
        let e = decode_client_message(r#"{"type":"join","room":"../etc","name":"n"}"#).unwrap_err();
        assert!(
            matches!(e, DecodeError::Invalid { field: "room", .. }),
            "{e:?}"
        );
        let e = decode_client_message(r#"{"type":"join","room":"r","name":"  "}"#).unwrap_err();
        assert!(
            matches!(e, DecodeError::Invalid { field: "name", .. }),
            "{e:?}"
        );
        let long = "x".repeat(65);
        let e = decode_client_message(&format!(r#"{{"type":"join","room":"{long}","name":"n"}}"#))
            .unwrap_err();
        assert!(e.to_string().starts_with("field `room`"), "{e}");
    }

    #[test]
    fn error_reply_has_code_and_message() {
        let reply = DecodeError::Malformed("oops".into()).to_reply();
        let text = encode_server_message(&reply);
        assert_eq!(
            text,
            r#"{"type":"error","code":"bad-message","message":"oops"}"#
        );
    }

    #[test]
    fn error_code_names_match_the_wire() {
        use ErrorCode::*;
        for code in [
            BadMessage,
            OutOfOrder,
            BadOffer,
            UnsupportedCodec,
            RoomUnavailable,
            Forbidden,
            Unauthorized,
            RateLimited,
            TooLarge,
            VideoTooLarge,
            NotFound,
            Internal,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }

    #[test]
    fn server_messages_use_camel_case() {
        let text = encode_server_message(&ServerMessage::Ice {
            candidate: "c".into(),
            sdp_m_line_index: 0,
        });
        assert_eq!(text, r#"{"type":"ice","candidate":"c","sdpMLineIndex":0}"#);
    }
}
