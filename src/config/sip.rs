//! `[sip]`: phone callers dialling into rooms over SIP (docs/phone.md).
//! Off unless `listen` is set.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[sip]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Where SIP is received, UDP and TCP (e.g. `0.0.0.0:5060`); unset: no
    /// phone callers.
    pub listen: Option<SocketAddr>,
    /// The address put in SDP answers for callers to send RTP to; by
    /// default `listen`'s, or `ice.public_ip` when `listen` is a wildcard.
    pub media_address: Option<IpAddr>,
    /// Dialled number (the request URI's user part) to room id.
    pub rooms: BTreeMap<String, String>,
    /// The number that asks the caller for a room's PIN (by a spoken
    /// prompt; typed on the keypad, then `#`).
    pub lobby: Option<String>,
    /// Room id to its PIN (4 to 12 digits), for the lobby. A room without
    /// one cannot be joined through the lobby.
    pub pins: BTreeMap<String, String>,
    /// Where the lobby's spoken prompts are (`enter-pin.wav`,
    /// `wrong-pin.wav`, `welcome.wav`, `goodbye.wav`).
    pub prompts_dir: std::path::PathBuf,
    /// Caller number to the name on its tile (instead of the `From`
    /// display name).
    pub names: BTreeMap<String, String>,
    /// Digest authentication of the trunk: user name (with `password`).
    pub username: Option<String>,
    /// Digest authentication of the trunk: password (also
    /// `TESSERA_SIP__PASSWORD`).
    pub password: Option<String>,
    /// The realm of the digest challenge.
    pub realm: String,
    /// Source addresses allowed to call without digest authentication
    /// (the trunk's or PBX's). With neither these nor a password, anyone
    /// who reaches `listen` may call.
    pub allowed_sources: Vec<IpAddr>,
    /// Answer a source that may not call with 403 (true), or not at all.
    pub answer_unknown: bool,
    /// SIP messages one source may send per second, on average; more are
    /// dropped unanswered.
    pub messages_per_second: u32,
    /// Calls at once on this node; more get 486.
    pub max_calls: usize,
    /// A caller that sends no RTP for this long is let go (BYE), seconds:
    /// a phone that vanished without hanging up.
    pub media_timeout_seconds: u64,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: None,
            media_address: None,
            rooms: BTreeMap::new(),
            lobby: None,
            pins: BTreeMap::new(),
            prompts_dir: "assets/prompts".into(),
            names: BTreeMap::new(),
            username: None,
            password: None,
            realm: "tessera".into(),
            allowed_sources: Vec::new(),
            answer_unknown: true,
            messages_per_second: 20,
            max_calls: 100,
            media_timeout_seconds: 30,
        }
    }
}

impl SipConfig {
    /// Checks the room table, the credentials and the limits.
    pub(super) fn validate(&self, source_name: &str) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, reason: String| ConfigError::Invalid {
            source_name: source_name.to_string(),
            field,
            reason,
        };
        for (number, room) in &self.rooms {
            if crate::ids::RoomId::parse(room).is_err() {
                return Err(invalid(
                    "sip.rooms",
                    format!("maps `{number}` to `{room}`, which is not a room id; use letters, digits, `-` and `_`"),
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (room, pin) in &self.pins {
            if crate::ids::RoomId::parse(room).is_err() {
                return Err(invalid(
                    "sip.pins",
                    format!(
                        "names `{room}`, which is not a room id; use letters, digits, `-` and `_`"
                    ),
                ));
            }
            if !(4..=12).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(
                    "sip.pins",
                    format!("gives room `{room}` the PIN `{pin}`; use 4 to 12 digits"),
                ));
            }
            if !seen.insert(pin) {
                return Err(invalid(
                    "sip.pins",
                    format!("gives room `{room}` a PIN another room has; each room needs its own"),
                ));
            }
        }
        if let Some(lobby) = &self.lobby {
            if self.rooms.contains_key(lobby) {
                return Err(invalid(
                    "sip.lobby",
                    format!(
                        "is `{lobby}`, which sip.rooms also maps to a room; use another number"
                    ),
                ));
            }
            if self.pins.is_empty() {
                return Err(invalid(
                    "sip.lobby",
                    format!("is `{lobby}` but no room has a PIN: add rooms to sip.pins, or unset sip.lobby"),
                ));
            }
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(invalid(
                "sip.username",
                "and sip.password go together: set both for digest authentication, or neither"
                    .into(),
            ));
        }
        if self.messages_per_second == 0 {
            return Err(invalid(
                "sip.messages_per_second",
                "is 0; use at least 1 (20 by default)".into(),
            ));
        }
        if !(2..=3600).contains(&self.media_timeout_seconds) {
            return Err(invalid(
                "sip.media_timeout_seconds",
                format!(
                    "is {}; use 2 to 3600 (30 by default)",
                    self.media_timeout_seconds
                ),
            ));
        }
        if self.max_calls == 0 {
            return Err(invalid(
                "sip.max_calls",
                "is 0; use at least 1 (100 by default), or leave sip.listen unset to take no calls"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The address callers send RTP to, given the ICE public address.
    pub fn media_address(&self, public_ip: Option<IpAddr>) -> Option<IpAddr> {
        let listen = self.listen?.ip();
        self.media_address
            .or((!listen.is_unspecified()).then_some(listen))
            .or(public_ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_is_off_by_default_and_checks_its_table_and_credentials() {
        let d = SipConfig::default();
        assert!(d.listen.is_none());
        assert!(d.validate("t.toml").is_ok());
        let mut bad = d.clone();
        bad.rooms.insert("100".into(), "no spaces".into());
        let e = bad.validate("t.toml").unwrap_err().to_string();
        assert!(e.contains("sip.rooms") && e.contains("100"), "{e}");
        let half = SipConfig {
            username: Some("trunk".into()),
            ..d.clone()
        };
        let e = half.validate("t.toml").unwrap_err().to_string();
        assert!(e.contains("sip.password"), "{e}");
    }

    #[test]
    fn the_media_address_follows_listen_then_the_public_address() {
        let mut c = SipConfig {
            listen: Some("127.0.0.1:5060".parse().unwrap()),
            ..SipConfig::default()
        };
        let public: IpAddr = "203.0.113.7".parse().unwrap();
        assert_eq!(
            c.media_address(Some(public)),
            Some("127.0.0.1".parse().unwrap())
        );
        c.listen = Some("0.0.0.0:5060".parse().unwrap());
        assert_eq!(c.media_address(Some(public)), Some(public));
        assert_eq!(c.media_address(None), None);
        c.media_address = Some("10.0.0.2".parse().unwrap());
        assert_eq!(c.media_address(None), Some("10.0.0.2".parse().unwrap()));
    }
}
