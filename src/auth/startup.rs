//! The start-up rules: open joins and an open admin API only on loopback;
//! on any other address a strong token secret and admin key are required,
//! and a weak one is refused wherever the server listens. Each refusal
//! names the setting and how to fix it.

use std::net::IpAddr;

use super::secret::{weakness, HOW_TO_MAKE};
use super::{Auth, TokenKeys};
use crate::config::{AuthMode, Config};

/// Why the server refuses to start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct UnsafeConfig(pub String);

/// Resolves the auth mode for a server listening on `ip`, or refuses.
pub fn check(config: &Config, ip: IpAddr) -> Result<Auth, UnsafeConfig> {
    let loopback = ip.is_loopback();
    let listen = &config.server.listen;
    let secret = &config.auth.secret;
    let mode = config.auth.mode.unwrap_or(if secret.is_empty() {
        AuthMode::Open
    } else {
        AuthMode::Token
    });
    let auth = match mode {
        AuthMode::Open if !loopback => {
            return Err(UnsafeConfig(format!(
                "server.listen = {listen} is reachable from the network, so joins need tokens: set auth.secret (or TESSERA_TOKEN_SECRET) to at least 32 random characters ({HOW_TO_MAKE}); auth.mode = \"open\" is for loopback only"
            )))
        }
        AuthMode::Open => Auth::open(),
        AuthMode::Token => {
            if let Some(why) = weakness(secret) {
                return Err(UnsafeConfig(format!(
                    "auth.secret (or TESSERA_TOKEN_SECRET) {why}; {HOW_TO_MAKE}"
                )));
            }
            Auth::token(TokenKeys::new(
                secret,
                &config.auth.audience,
                config.auth.leeway_seconds,
            ))
        }
    };
    let key = &config.admin.key;
    if key.is_empty() && !loopback {
        return Err(UnsafeConfig(format!(
            "server.listen = {listen} is reachable from the network, so the admin API needs a key: set admin.key (or TESSERA_ADMIN_KEY) to at least 32 random characters ({HOW_TO_MAKE})"
        )));
    }
    if !key.is_empty() {
        if let Some(why) = weakness(key) {
            return Err(UnsafeConfig(format!(
                "admin.key (or TESSERA_ADMIN_KEY) {why}; {HOW_TO_MAKE}"
            )));
        }
    }
    if !config.ice.turn.is_empty() {
        if let Some(why) = weakness(&config.ice.turn_secret) {
            return Err(UnsafeConfig(format!(
                "ice.turn_secret (or TESSERA_TURN_SECRET) {why}; use the TURN server's static-auth-secret"
            )));
        }
    }
    Ok(auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "k3J9vQ2mX8pL5nR1tZ7wB4yH6dF0gC2s";
    const GOOD2: &str = "Q8w2Ee4Rr6Tt8Yy0Uu2Ii4Oo6Pp8Aa0Ss";

    fn loopback() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    fn public() -> IpAddr {
        "0.0.0.0".parse().unwrap()
    }

    #[test]
    fn loopback_defaults_are_open() {
        let auth = check(&Config::default(), loopback()).unwrap();
        assert_eq!(auth.mode(), AuthMode::Open);
    }

    #[test]
    fn a_network_address_needs_a_secret_and_a_key() {
        let mut c = Config::default();
        let err = check(&c, public()).unwrap_err().0;
        assert!(
            err.contains("auth.secret") && err.contains("TESSERA_TOKEN_SECRET"),
            "{err}"
        );
        c.auth.secret = GOOD.into();
        let err = check(&c, public()).unwrap_err().0;
        assert!(err.contains("admin.key"), "{err}");
        c.admin.key = GOOD2.into();
        assert_eq!(check(&c, public()).unwrap().mode(), AuthMode::Token);
        c.auth.mode = Some(AuthMode::Open);
        let err = check(&c, public()).unwrap_err().0;
        assert!(err.contains("loopback only"), "{err}");
    }

    #[test]
    fn weak_secrets_are_refused_even_on_loopback() {
        let mut c = Config::default();
        c.auth.secret = "change-me".into();
        let err = check(&c, loopback()).unwrap_err().0;
        assert!(err.starts_with("auth.secret"), "{err}");
        c.auth.secret = String::new();
        c.auth.mode = Some(AuthMode::Token);
        assert!(check(&c, loopback()).unwrap_err().0.contains("is empty"));
        c.auth.mode = None;
        c.admin.key = "secret".into();
        let err = check(&c, loopback()).unwrap_err().0;
        assert!(err.starts_with("admin.key"), "{err}");
    }
}
