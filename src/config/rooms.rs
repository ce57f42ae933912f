//! `[rooms]`: how a room carries its media. A room of two may run
//! peer-to-peer (docs/peer-to-peer.md); everything else runs on the MCU.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Whether rooms of two may run peer-to-peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum P2pPolicy {
    /// A room of exactly two whose clients can connect directly, and that
    /// needs nothing of the server's media, runs peer-to-peer.
    Auto,
    /// Every room runs on the MCU.
    Off,
}

/// `[rooms]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomsConfig {
    /// `auto` (rooms of two go peer-to-peer when they can) or `off`.
    pub p2p: P2pPolicy,
    /// How long a room back to two waits on the MCU before it goes
    /// peer-to-peer again, in seconds, so that a reconnect does not make
    /// it flap.
    pub p2p_hold_seconds: u64,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            p2p: P2pPolicy::Auto,
            p2p_hold_seconds: 10,
        }
    }
}

impl RoomsConfig {
    /// Checks the hold.
    pub(super) fn validate(&self, source_name: &str) -> Result<(), ConfigError> {
        if self.p2p_hold_seconds > 3600 {
            return Err(ConfigError::Invalid {
                source_name: source_name.to_string(),
                field: "rooms.p2p_hold_seconds",
                reason: format!(
                    "is {}; use 0 to 3600 (10 by default)",
                    self.p2p_hold_seconds
                ),
            });
        }
        Ok(())
    }

    /// The hold as a duration.
    pub fn p2p_hold(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.p2p_hold_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_default_to_auto_with_a_ten_second_hold_and_refuse_an_hour_more() {
        let d = RoomsConfig::default();
        assert_eq!(d.p2p, P2pPolicy::Auto);
        assert_eq!(d.p2p_hold(), std::time::Duration::from_secs(10));
        assert!(d.validate("t.toml").is_ok());
        let long = RoomsConfig {
            p2p_hold_seconds: 3601,
            ..d
        };
        let e = long.validate("t.toml").unwrap_err();
        assert!(e.to_string().contains("rooms.p2p_hold_seconds"), "{e}");
    }
}
