//! The shared words of the crate: validated ids ([`RoomId`],
//! [`ParticipantId`]), display names ([`validate_name`]), [`Role`] and
//! [`CodecFamily`]. This module is the ground floor: it imports nothing of
//! ours, and every other layer may use it.
//!
//! An id is checked once, where it enters (the wire, a token, the CLI), and
//! carried as its type from then on; [`IdError`] says which rule it broke.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest room id accepted: ids end up in URLs, logs and file names.
pub const MAX_ROOM_ID_LEN: usize = 64;
/// Longest display name accepted, in characters.
pub const MAX_NAME_LEN: usize = 64;
/// Longest participant id accepted. The server's own are `p` and 8 hex
/// digits; the limit only bounds what a client may name in a message.
pub const MAX_PARTICIPANT_ID_LEN: usize = 64;

/// Why a room id, participant id or display name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// A room id that is empty or too long.
    #[error("must be 1 to {MAX_ROOM_ID_LEN} characters long")]
    RoomLength,
    /// A room id with a character outside its alphabet, or a leading dot.
    #[error("may contain only letters, digits, '-', '_' and '.', and may not start with '.'")]
    RoomCharacters,
    /// A participant id that is empty, too long, or not letters and digits.
    #[error("a participant id is 1 to {MAX_PARTICIPANT_ID_LEN} letters and digits")]
    Participant,
    /// A display name that is blank or too long.
    #[error("must be 1 to {MAX_NAME_LEN} characters and not blank")]
    NameLength,
    /// A display name with a control character.
    #[error("may not contain control characters")]
    NameControl,
}

impl IdError {
    /// The message field the refused value came in (`room`, `participant`, `name`).
    pub fn field(&self) -> &'static str {
        match self {
            IdError::RoomLength | IdError::RoomCharacters => "room",
            IdError::Participant => "participant",
            IdError::NameLength | IdError::NameControl => "name",
        }
    }

    /// The error with its field: "field `room`: must be ...".
    pub fn named(&self) -> String {
        format!("field `{}`: {self}", self.field())
    }
}

/// Defines a string id that is checked when made and when deserialized.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `text` and makes it an id.
            pub fn parse(text: impl Into<String>) -> Result<Self, IdError> {
                let text = text.into();
                $check(&text)?;
                Ok(Self(text))
            }

            /// The id's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(text: String) -> Result<Self, IdError> {
                Self::parse(text)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(text: &str) -> Result<Self, IdError> {
                Self::parse(text)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

string_id!(
    /// A room's id: 1 to [`MAX_ROOM_ID_LEN`] of `A-Z a-z 0-9 - _ .`, not
    /// starting with `.` (it names recording files and URLs).
    RoomId,
    validate_room_id
);

string_id!(
    /// A participant's id, unique within the server's lifetime: the server
    /// makes them ([`ParticipantId::random`]); clients name them back.
    ParticipantId,
    validate_participant_id
);

impl ParticipantId {
    /// A fresh id: `p` and 8 hex digits.
    pub fn random() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self(format!("p{}", &id[..8]))
    }
}

/// Checks a room id (see [`RoomId`]).
pub fn validate_room_id(room: &str) -> Result<(), IdError> {
    if room.is_empty() || room.len() > MAX_ROOM_ID_LEN {
        return Err(IdError::RoomLength);
    }
    if room.starts_with('.')
        || !room
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(IdError::RoomCharacters);
    }
    Ok(())
}

/// Checks a participant id (see [`ParticipantId`]).
pub fn validate_participant_id(id: &str) -> Result<(), IdError> {
    if id.is_empty()
        || id.len() > MAX_PARTICIPANT_ID_LEN
        || !id.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Err(IdError::Participant);
    }
    Ok(())
}

/// Checks a display name: 1 to [`MAX_NAME_LEN`] characters, not blank, no
/// control characters.
pub fn validate_name(name: &str) -> Result<(), IdError> {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(IdError::NameLength);
    }
    if name.chars().any(char::is_control) {
        return Err(IdError::NameControl);
    }
    Ok(())
}

/// What a participant is in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Leads the lesson: the presenter layout shows them large.
    Teacher,
    /// Takes part.
    #[default]
    Student,
    /// A visitor.
    Guest,
}

/// A family of video codecs the room can encode its canvas in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CodecFamily {
    /// VP8, RTP payload format RFC 7741.
    Vp8,
    /// H.264 constrained baseline, packetization-mode 1 (RFC 6184).
    H264,
}

impl CodecFamily {
    /// Both families, in the default order of preference.
    pub const ALL: [CodecFamily; 2] = [CodecFamily::Vp8, CodecFamily::H264];

    /// The SDP / RTP caps encoding name.
    pub fn encoding_name(self) -> &'static str {
        match self {
            CodecFamily::Vp8 => "VP8",
            CodecFamily::H264 => "H264",
        }
    }

    /// Lower-case name used in config, protocol and file names.
    pub fn as_str(self) -> &'static str {
        match self {
            CodecFamily::Vp8 => "vp8",
            CodecFamily::H264 => "h264",
        }
    }
}

impl fmt::Display for CodecFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A quality tier of the canvas a receiver gets, chosen by its downlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    /// No video: the receiver hears the room and keeps its last picture.
    AudioOnly,
    /// The canvas at half its size and a lower frame rate.
    Low,
    /// The canvas as configured.
    High,
}

impl Tier {
    /// Every tier, lowest first.
    pub const ALL: [Tier; 3] = [Tier::AudioOnly, Tier::Low, Tier::High];

    /// The name used in the protocol, the API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::AudioOnly => "audio-only",
            Tier::Low => "low",
            Tier::High => "high",
        }
    }

    /// The next tier up, if any.
    pub fn up(self) -> Option<Tier> {
        match self {
            Tier::AudioOnly => Some(Tier::Low),
            Tier::Low => Some(Tier::High),
            Tier::High => None,
        }
    }

    /// Whether the tier carries video.
    pub fn has_video(self) -> bool {
        self != Tier::AudioOnly
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a room carries its media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// The two participants send their media to each other.
    #[serde(rename = "p2p")]
    PeerToPeer,
    #[serde(rename = "mcu")]
    /// Every participant sends to the server and receives the canvas.
    Mcu,
}

impl Mode {
    /// The name the API and metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::PeerToPeer => "p2p",
            Mode::Mcu => "mcu",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_are_checked() {
        for good in ["math-1", "a", "Room_2.b", &"r".repeat(MAX_ROOM_ID_LEN)] {
            assert_eq!(RoomId::parse(good).unwrap().as_str(), good);
        }
        assert_eq!(RoomId::parse(""), Err(IdError::RoomLength));
        assert_eq!(
            RoomId::parse("r".repeat(MAX_ROOM_ID_LEN + 1)),
            Err(IdError::RoomLength)
        );
        for bad in [".hidden", "a/b", "a b", "../x", "ü", "a\0"] {
            assert_eq!(RoomId::parse(bad), Err(IdError::RoomCharacters), "{bad}");
        }
        assert_eq!(IdError::RoomCharacters.field(), "room");
    }

    #[test]
    fn participant_ids_are_checked_and_fresh_ones_pass() {
        let fresh = ParticipantId::random();
        assert_eq!(fresh.len(), 9);
        assert!(fresh.starts_with('p'));
        assert_eq!(ParticipantId::parse(fresh.as_str()), Ok(fresh.clone()));
        assert_ne!(fresh, ParticipantId::random());
        for bad in [
            "",
            "p-1",
            "p 1",
            "p\n",
            &"p".repeat(MAX_PARTICIPANT_ID_LEN + 1),
        ] {
            assert_eq!(
                ParticipantId::parse(bad),
                Err(IdError::Participant),
                "{bad:?}"
            );
        }
        assert_eq!(IdError::Participant.field(), "participant");
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(validate_name("Ada Lovelace"), Ok(()));
        assert_eq!(validate_name(&"é".repeat(MAX_NAME_LEN)), Ok(()));
        assert_eq!(validate_name("   "), Err(IdError::NameLength));
        assert_eq!(
            validate_name(&"a".repeat(MAX_NAME_LEN + 1)),
            Err(IdError::NameLength)
        );
        assert_eq!(validate_name("a\u{7}b"), Err(IdError::NameControl));
        assert_eq!(IdError::NameControl.field(), "name");
    }

    #[test]
    fn ids_deserialize_only_when_valid_and_serialize_as_text() {
        let id: RoomId = serde_json::from_str("\"math-1\"").unwrap();
        assert_eq!(id, "math-1");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"math-1\"");
        let err = serde_json::from_str::<RoomId>("\"../etc\"").unwrap_err();
        assert!(
            err.to_string().contains("may contain only letters"),
            "{err}"
        );
        assert!(serde_json::from_str::<ParticipantId>("\"p-\"").is_err());
    }

    #[test]
    fn families_and_roles_speak_lower_case() {
        assert_eq!(
            serde_json::to_string(&CodecFamily::H264).unwrap(),
            "\"h264\""
        );
        assert_eq!(CodecFamily::Vp8.encoding_name(), "VP8");
        assert_eq!(
            serde_json::to_string(&Role::Teacher).unwrap(),
            "\"teacher\""
        );
        assert_eq!(Role::default(), Role::Student);
    }
}
