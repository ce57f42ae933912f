//! Who may join and act: signed join tokens ([`token`]), the start-up rules
//! that refuse unsafe secrets ([`startup`], [`secret`]), removed tokens
//! ([`bans`]), per-join TURN credentials ([`turn`]) and which server
//! addresses clients learn ([`candidates`]).

pub mod bans;
pub mod candidates;
pub mod secret;
pub mod startup;
pub mod token;
pub mod turn;

use crate::config::{AuthMode, IceConfig, LimitsConfig};
use crate::ids::Role;

pub use token::{Claims, TokenError, TokenKeys};

/// Who a join says it is, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Display name.
    pub name: String,
    /// Role in the room.
    pub role: Role,
    /// Token id (`jti`) and expiry (Unix seconds), when a token was used;
    /// a removed participant's token is banned by it.
    pub token: Option<(String, u64)>,
    /// False when its token keeps the room on the MCU (claim `p2p`).
    pub p2p: bool,
}

/// How this server checks joins.
#[derive(Debug, Clone)]
pub struct Auth {
    mode: AuthMode,
    keys: Option<TokenKeys>,
}

impl Auth {
    /// Open joins: the join message names the role (loopback only).
    pub fn open() -> Auth {
        Auth {
            mode: AuthMode::Open,
            keys: None,
        }
    }

    /// Token joins, checked with `keys`.
    pub fn token(keys: TokenKeys) -> Auth {
        Auth {
            mode: AuthMode::Token,
            keys: Some(keys),
        }
    }

    /// The mode.
    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Checks a join to `room`. In open mode the message's own name and role
    /// stand; in token mode the token's do, and the token must be valid and
    /// for this room.
    pub fn check_join(
        &self,
        room: &str,
        token: Option<&str>,
        name: Option<&str>,
        role: Role,
    ) -> Result<Identity, TokenError> {
        match &self.keys {
            None => match name.filter(|n| !n.is_empty()) {
                Some(name) => Ok(Identity {
                    name: name.to_string(),
                    role,
                    token: None,
                    p2p: true,
                }),
                None => Err(TokenError::NameRequired),
            },
            Some(keys) => {
                let claims = keys.verify(token.ok_or(TokenError::Missing)?, room)?;
                Ok(Identity {
                    name: claims.name,
                    role: claims.role,
                    token: Some((claims.jti, claims.exp)),
                    p2p: claims.p2p,
                })
            }
        }
    }
}

/// Everything that decides who gets in and how much they may do: the auth
/// mode, removed tokens, the limits and the ICE servers handed out.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Join checks.
    pub auth: Auth,
    /// Tokens removed from rooms.
    pub bans: bans::Bans,
    /// Caps.
    pub limits: LimitsConfig,
    /// STUN/TURN and the server's own candidates.
    pub ice: IceConfig,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            auth: Auth::open(),
            bans: bans::Bans::default(),
            limits: LimitsConfig::default(),
            ice: IceConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_joins_need_a_name_and_keep_their_role() {
        let auth = Auth::open();
        let who = auth
            .check_join("r", None, Some("Ada"), Role::Teacher)
            .unwrap();
        assert_eq!((who.name.as_str(), who.role), ("Ada", Role::Teacher));
        assert_eq!(
            auth.check_join("r", Some("t.t.t"), Some(""), Role::Student),
            Err(TokenError::NameRequired)
        );
    }
}
