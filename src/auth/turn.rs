//! ICE servers handed to a client at join. TURN credentials are minted per
//! join as time-limited REST credentials, as coturn checks them with
//! `use-auth-secret`: the username is `expiry:participant`, the password
//! the base64 of HMAC-SHA1(secret, username). No static TURN password is
//! ever given out.

use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};
use sha1::Sha1;

use crate::config::IceConfig;

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// STUN or TURN URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A TURN REST credential for `participant`, valid until `expiry` (Unix seconds).
pub fn turn_credential(secret: &str, participant: &str, expiry: u64) -> (String, String) {
    let username = format!("{expiry}:{participant}");
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// The ICE servers for one join at `now` (Unix seconds).
pub fn ice_servers(ice: &IceConfig, participant: &str, now: u64) -> Vec<IceServer> {
    let mut out = Vec::new();
    if !ice.stun.is_empty() {
        out.push(IceServer {
            urls: ice.stun.clone(),
            username: None,
            credential: None,
        });
    }
    if !ice.turn.is_empty() {
        let (username, credential) =
            turn_credential(&ice.turn_secret, participant, now + ice.turn_ttl_seconds);
        out.push(IceServer {
            urls: ice.turn.clone(),
            username: Some(username),
            credential: Some(credential),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_follow_the_coturn_rest_formula() {
        // HMAC-SHA1("north", "1700000000:p1"), computed independently with
        // `printf %s 1700000000:p1 | openssl dgst -sha1 -hmac north -binary | base64`.
        let (user, pass) = turn_credential("north", "p1", 1_700_000_000);
        assert_eq!(user, "1700000000:p1");
        assert_eq!(pass, "qmV1Ez2SwzrylXCPMqxg9P1hY0Y=");
    }

    #[test]
    fn stun_and_turn_are_handed_out_with_a_fresh_credential() {
        let ice = IceConfig {
            stun: vec!["stun:stun.example.org:3478".into()],
            turn: vec!["turn:turn.example.org:3478?transport=udp".into()],
            turn_secret: "0123456789abcdef".into(),
            turn_ttl_seconds: 600,
            ..IceConfig::default()
        };
        let servers = ice_servers(&ice, "p7", 1000);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].username, None);
        assert_eq!(servers[1].username.as_deref(), Some("1600:p7"));
        assert_eq!(
            servers[1].credential,
            Some(turn_credential("0123456789abcdef", "p7", 1600).1)
        );
        assert!(ice_servers(&IceConfig::default(), "p7", 0).is_empty());
    }
}
