//! The config sections that keep strangers out and clients in bounds:
//! `[auth]` (join tokens), `[limits]` (per-socket and per-server caps) and
//! `[ice]` (STUN/TURN handed to clients, which server addresses to offer).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// How joins are authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No tokens: the join message names the role. Loopback only.
    Open,
    /// Every join carries a join token signed with `auth.secret`.
    Token,
}

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `open` or `token`. Unset: `token` when a secret is set, else `open`
    /// (which only a loopback listener may use).
    pub mode: Option<AuthMode>,
    /// HMAC-SHA256 key that signs join tokens (also `TESSERA_TOKEN_SECRET`):
    /// at least 32 characters, random.
    pub secret: String,
    /// The `aud` claim every token must carry.
    pub audience: String,
    /// Clock skew allowed when checking `exp` and `nbf`, seconds.
    pub leeway_seconds: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: None,
            secret: String::new(),
            audience: "tessera".into(),
            leeway_seconds: 30,
        }
    }
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest signaling message, bytes.
    pub max_message_bytes: usize,
    /// Signaling messages per second one socket may send, on average.
    pub messages_per_second: u32,
    /// Messages one socket may send at once above that rate.
    pub message_burst: u32,
    /// Open WebSockets per client IP address.
    pub sockets_per_ip: usize,
    /// Rooms open at once.
    pub max_rooms: usize,
    /// Participants in one room.
    pub participants_per_room: usize,
    /// A socket that has not joined a room after this long is closed, seconds.
    pub join_timeout_seconds: u64,
    /// A socket that sends nothing (not even a pong) this long is closed, seconds.
    pub idle_timeout_seconds: u64,
    /// Widest decoded video accepted from a participant; wider is dropped.
    pub max_video_width: u32,
    /// Tallest decoded video accepted from a participant; taller is dropped.
    pub max_video_height: u32,
    /// Open TCP connections per client address (HTTP, WebSocket, TLS);
    /// more are refused at accept time.
    pub connections_per_ip: usize,
    /// Open TCP connections in all; more are refused at accept time.
    pub max_connections: usize,
    /// A connection must send a whole request head within this, seconds.
    pub request_head_seconds: u64,
    /// A TLS handshake must finish within this, seconds.
    pub tls_handshake_seconds: u64,
    /// A request body (the admin API's) must arrive within this, seconds.
    pub request_body_seconds: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            messages_per_second: 20,
            message_burst: 60,
            sockets_per_ip: 20,
            max_rooms: 100,
            participants_per_room: 50,
            join_timeout_seconds: 10,
            idle_timeout_seconds: 60,
            max_video_width: 1920,
            max_video_height: 1088,
            connections_per_ip: 64,
            max_connections: 512,
            request_head_seconds: 10,
            tls_handshake_seconds: 10,
            request_body_seconds: 10,
        }
    }
}

/// `[ice]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IceConfig {
    /// STUN server URLs handed to clients, e.g. `stun:stun.example.org:3478`.
    pub stun: Vec<String>,
    /// TURN server URLs handed to clients, e.g. `turn:turn.example.org:3478?transport=udp`.
    pub turn: Vec<String>,
    /// The TURN server's shared secret (coturn `static-auth-secret`), used to
    /// mint a time-limited credential per join (also `TESSERA_TURN_SECRET`).
    pub turn_secret: String,
    /// How long a minted TURN credential stays valid, seconds.
    pub turn_ttl_seconds: u64,
    /// Local addresses the server offers as ICE candidates; empty: all.
    pub addresses: Vec<IpAddr>,
    /// Public address for a 1:1 NAT: host candidates are announced with
    /// this address instead of the local one.
    pub public_ip: Option<IpAddr>,
    /// Offer ICE-TCP (passive TCP candidates) besides UDP, for clients on
    /// networks that block UDP.
    pub tcp: bool,
    /// Every client sends and receives media only through the TURN relay
    /// (`iceTransportPolicy: "relay"`): no participant's own address
    /// reaches the server. Needs `ice.turn`. A client may also ask for it
    /// alone (the room page's `?relay=1`).
    pub relay_only: bool,
}

impl Default for IceConfig {
    fn default() -> Self {
        Self {
            stun: Vec::new(),
            turn: Vec::new(),
            turn_secret: String::new(),
            turn_ttl_seconds: 6 * 3600,
            addresses: Vec::new(),
            public_ip: None,
            tcp: true,
            relay_only: false,
        }
    }
}

impl super::Config {
    /// Checks `[auth]`, `[limits]`, `[ice]` and the origins. Whether the
    /// secrets are strong enough, given the listen address, is checked at
    /// start-up (`auth::startup`), where the fix can be spelled out.
    pub(super) fn validate_security(&self, source_name: &str) -> Result<(), super::ConfigError> {
        let invalid = |field: &'static str, reason: String| super::ConfigError::Invalid {
            source_name: source_name.to_string(),
            field,
            reason,
        };
        let l = &self.limits;
        let ranges: [(&'static str, u64, u64, u64); 13] = [
            (
                "limits.max_message_bytes",
                l.max_message_bytes as u64,
                1024,
                1 << 20,
            ),
            (
                "limits.messages_per_second",
                u64::from(l.messages_per_second),
                1,
                10_000,
            ),
            (
                "limits.message_burst",
                u64::from(l.message_burst),
                1,
                100_000,
            ),
            ("limits.sockets_per_ip", l.sockets_per_ip as u64, 1, 100_000),
            ("limits.max_rooms", l.max_rooms as u64, 1, 100_000),
            (
                "limits.participants_per_room",
                l.participants_per_room as u64,
                1,
                1000,
            ),
            (
                "limits.join_timeout_seconds",
                l.join_timeout_seconds,
                1,
                3600,
            ),
            (
                "limits.idle_timeout_seconds",
                l.idle_timeout_seconds,
                5,
                86_400,
            ),
            (
                "limits.connections_per_ip",
                l.connections_per_ip as u64,
                1,
                1_000_000,
            ),
            (
                "limits.max_connections",
                l.max_connections as u64,
                1,
                1_000_000,
            ),
            (
                "limits.request_head_seconds",
                l.request_head_seconds,
                1,
                300,
            ),
            (
                "limits.tls_handshake_seconds",
                l.tls_handshake_seconds,
                1,
                300,
            ),
            (
                "limits.request_body_seconds",
                l.request_body_seconds,
                1,
                300,
            ),
        ];
        for (field, v, min, max) in ranges {
            if !(min..=max).contains(&v) {
                return Err(invalid(field, format!("is {v}; use {min} to {max}")));
            }
        }
        for (field, v) in [
            ("limits.max_video_width", l.max_video_width),
            ("limits.max_video_height", l.max_video_height),
        ] {
            if !(64..=7680).contains(&v) {
                return Err(invalid(field, format!("is {v}; use 64 to 7680")));
            }
        }
        let ice = &self.ice;
        for url in &ice.stun {
            if !(url.starts_with("stun:") || url.starts_with("stuns:")) {
                return Err(invalid(
                    "ice.stun",
                    format!("`{url}` is not a STUN URL; write `stun:host:port`"),
                ));
            }
        }
        for url in &ice.turn {
            if !(url.starts_with("turn:") || url.starts_with("turns:")) {
                return Err(invalid(
                    "ice.turn",
                    format!("`{url}` is not a TURN URL; write `turn:host:port?transport=udp`"),
                ));
            }
        }
        if ice.relay_only && ice.turn.is_empty() {
            return Err(invalid(
                "ice.relay_only",
                "needs a TURN server for the clients to relay through: set ice.turn (and ice.turn_secret)".into(),
            ));
        }
        if !ice.turn.is_empty() && ice.turn_secret.len() < 16 {
            return Err(invalid(
                "ice.turn_secret",
                "must be the TURN server's static-auth-secret (at least 16 characters) when ice.turn is set; credentials are minted from it per join".into(),
            ));
        }
        if !(60..=7 * 86_400).contains(&ice.turn_ttl_seconds) {
            return Err(invalid(
                "ice.turn_ttl_seconds",
                format!("is {}; use 60 to 604800", ice.turn_ttl_seconds),
            ));
        }
        let s = &self.server;
        if s.tls_cert.as_os_str().is_empty() != s.tls_key.as_os_str().is_empty() {
            return Err(invalid(
                "server.tls_cert",
                "and server.tls_key go together: set both (PEM files) for HTTPS/WSS, or neither"
                    .into(),
            ));
        }
        for origin in &self.server.allowed_origins {
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin
                    .trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .contains('/');
            if !ok {
                return Err(invalid(
                    "server.allowed_origins",
                    format!("`{origin}` is not an origin; write scheme and host, e.g. `https://school.example.org` (no path)"),
                ));
            }
        }
        Ok(())
    }
}
