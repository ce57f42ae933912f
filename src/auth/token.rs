//! Join tokens: JWTs signed with HMAC-SHA256 (`HS256`, the only algorithm
//! accepted) that name the room, the role, the display name and the
//! validity window. `exp`, `nbf` and `aud` are required and checked.

use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::ids::{validate_name, validate_room_id, Role};

/// What a join token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The only room it opens.
    pub room: String,
    /// Role in that room.
    pub role: Role,
    /// Display name.
    pub name: String,
    /// Audience: this deployment (`auth.audience`).
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Not valid before, Unix seconds.
    pub nbf: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Token id; a teacher's removal bans it from the room.
    pub jti: String,
    /// False: while this participant is in the room, the room stays on the
    /// MCU and never runs peer-to-peer (for a lesson the school wants on
    /// its server). Absent means true.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub p2p: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Why a join token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The join carried no token.
    #[error("this server needs a join token: open the join link you were sent (it ends in ?token=...), or ask the teacher or admin for one")]
    Missing,
    /// Past `exp`.
    #[error("the join token has expired; ask for a new link")]
    Expired,
    /// Before `nbf`.
    #[error("the join token is not valid yet; check the time of the lesson or the clock")]
    NotYetValid,
    /// Not signed with this server's secret.
    #[error("the join token's signature is not valid for this server")]
    BadSignature,
    /// Signed (or unsigned) with another algorithm.
    #[error("the join token uses algorithm `{0}`; only HS256 is accepted")]
    WrongAlgorithm(String),
    /// Another deployment's token.
    #[error("the join token is for another server (its `aud` does not match auth.audience)")]
    WrongAudience,
    /// Another room's token.
    #[error("the join token is for room `{token_room}`, not `{room}`")]
    WrongRoom {
        /// Room in the token.
        token_room: String,
        /// Room asked for.
        room: String,
    },
    /// Removed from this room by a teacher.
    #[error("this join token was removed from room `{0}` by a teacher; it cannot rejoin until it expires")]
    Removed(String),
    /// An open server got a join with a token but no name.
    #[error("this server does not use join tokens: give a display name in `name`")]
    NameRequired,
    /// Not a JWT, or claims missing or out of range.
    #[error("the join token is malformed: {0}")]
    Malformed(String),
}

/// Signs and checks join tokens with one secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    audience: String,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("TokenKeys")
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// The `alg` a token's header names, if it can be read.
fn header_alg(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("alg")?.as_str().map(str::to_string)
}

impl TokenKeys {
    /// Keys for `secret`, accepting tokens for `audience` with `leeway`
    /// seconds of clock skew.
    pub fn new(secret: &str, audience: &str, leeway: u64) -> TokenKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.validate_nbf = true;
        validation.leeway = leeway;
        validation.required_spec_claims = ["exp", "nbf", "aud"]
            .into_iter()
            .map(str::to_string)
            .collect();
        TokenKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            audience: audience.to_string(),
        }
    }

    /// A token for `name` as `role` in `room`, valid from `now` (Unix
    /// seconds) for `ttl`.
    pub fn issue(&self, room: &str, role: Role, name: &str, ttl: Duration, now: u64) -> String {
        self.issue_with(room, role, name, ttl, now, true)
    }

    /// As [`TokenKeys::issue`]; `p2p: false` keeps the room on the MCU
    /// while the participant is in it.
    pub fn issue_with(
        &self,
        room: &str,
        role: Role,
        name: &str,
        ttl: Duration,
        now: u64,
        p2p: bool,
    ) -> String {
        let claims = Claims {
            room: room.to_string(),
            role,
            name: name.to_string(),
            aud: self.audience.clone(),
            exp: now + ttl.as_secs(),
            nbf: now,
            iat: now,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            p2p,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing does not fail")
    }

    /// Checks a token for a join to `room`.
    pub fn verify(&self, token: &str, room: &str) -> Result<Claims, TokenError> {
        match header_alg(token) {
            Some(alg) if alg != "HS256" => return Err(TokenError::WrongAlgorithm(alg)),
            _ => {}
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    TokenError::WrongAlgorithm(header_alg(token).unwrap_or_default())
                }
                _ => TokenError::Malformed(e.to_string()),
            })?;
        let claims = data.claims;
        validate_room_id(&claims.room).map_err(|e| TokenError::Malformed(e.named()))?;
        validate_name(&claims.name).map_err(|e| TokenError::Malformed(e.named()))?;
        if claims.room != room {
            return Err(TokenError::WrongRoom {
                token_room: claims.room,
                room: room.to_string(),
            });
        }
        Ok(claims)
    }
}

/// A token from the config's secret, for `tessera token`: checks the
/// secret, the room, the role and the name, and says which to fix.
pub fn issue_from_config(
    config: &crate::config::Config,
    room: &str,
    role: &str,
    name: &str,
    ttl: Duration,
    p2p: bool,
) -> anyhow::Result<String> {
    if let Some(why) = super::secret::weakness(&config.auth.secret) {
        anyhow::bail!(
            "auth.secret (or TESSERA_TOKEN_SECRET) {why}; {}",
            super::secret::HOW_TO_MAKE
        );
    }
    validate_room_id(room).map_err(|e| anyhow::anyhow!("{}", e.named()).context("--room"))?;
    validate_name(name).map_err(|e| anyhow::anyhow!("{}", e.named()).context("--name"))?;
    let role: Role = serde_json::from_value(serde_json::Value::String(role.to_string()))
        .map_err(|_| anyhow::anyhow!("--role {role}: use teacher, student or guest"))?;
    if ttl < Duration::from_secs(60) || ttl > Duration::from_secs(30 * 86_400) {
        anyhow::bail!("--ttl: use 1 minute to 30 days");
    }
    let keys = TokenKeys::new(
        &config.auth.secret,
        &config.auth.audience,
        config.auth.leeway_seconds,
    );
    Ok(keys.issue_with(room, role, name, ttl, super::bans::unix_now(), p2p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::bans::unix_now;

    const SECRET: &str = "k3J9vQ2mX8pL5nR1tZ7wB4yH6dF0gC2s";

    fn keys() -> TokenKeys {
        TokenKeys::new(SECRET, "tessera", 0)
    }

    fn hour() -> Duration {
        Duration::from_secs(3600)
    }

    #[test]
    fn a_fresh_token_opens_its_room_with_its_role_and_name() {
        let t = keys().issue("math", Role::Teacher, "Ada", hour(), unix_now());
        let c = keys().verify(&t, "math").unwrap();
        assert_eq!(
            (c.room.as_str(), c.role, c.name.as_str()),
            ("math", Role::Teacher, "Ada")
        );
        assert_eq!(c.exp - c.nbf, 3600);
    }

    #[test]
    fn expired_early_wrong_room_and_foreign_tokens_are_refused() {
        let k = keys();
        let now = unix_now();
        let expired = k.issue("math", Role::Student, "Bo", hour(), now - 7200);
        assert_eq!(k.verify(&expired, "math"), Err(TokenError::Expired));
        let early = k.issue("math", Role::Student, "Bo", hour(), now + 600);
        assert_eq!(k.verify(&early, "math"), Err(TokenError::NotYetValid));
        let other_room = k.issue("art", Role::Student, "Bo", hour(), now);
        assert!(matches!(
            k.verify(&other_room, "math"),
            Err(TokenError::WrongRoom { .. })
        ));
        let other_secret = TokenKeys::new("another-k3J9vQ2mX8pL5nR1tZ7wB4yH6", "tessera", 0).issue(
            "math",
            Role::Teacher,
            "Eve",
            hour(),
            now,
        );
        assert_eq!(
            k.verify(&other_secret, "math"),
            Err(TokenError::BadSignature)
        );
        let other_aud =
            TokenKeys::new(SECRET, "elsewhere", 0).issue("math", Role::Teacher, "Eve", hour(), now);
        assert_eq!(k.verify(&other_aud, "math"), Err(TokenError::WrongAudience));
        assert!(matches!(
            k.verify("not.a.jwt", "math"),
            Err(TokenError::Malformed(_))
        ));
    }

    #[test]
    fn unsigned_and_other_algorithm_tokens_are_refused() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let now = unix_now();
        let claims = format!(
            r#"{{"room":"math","role":"teacher","name":"Eve","aud":"tessera","exp":{},"nbf":{now},"iat":{now},"jti":"x"}}"#,
            now + 3600
        );
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims));
        assert_eq!(
            keys().verify(&none, "math"),
            Err(TokenError::WrongAlgorithm("none".into()))
        );
        // HS512 with the same secret: the algorithm is pinned, not taken from the header.
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &serde_json::from_str::<Claims>(&claims).unwrap(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            keys().verify(&hs512, "math"),
            Err(TokenError::WrongAlgorithm("HS512".into()))
        );
    }

    #[test]
    fn claims_must_include_expiry_and_audience() {
        let now = unix_now();
        let signed = |claims: serde_json::Value| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap()
        };
        let no_exp = signed(serde_json::json!({
            "room": "math", "role": "teacher", "name": "Eve", "aud": "tessera",
            "nbf": now, "iat": now, "jti": "x"
        }));
        assert!(matches!(
            keys().verify(&no_exp, "math"),
            Err(TokenError::Malformed(_))
        ));
        let no_aud = signed(serde_json::json!({
            "room": "math", "role": "teacher", "name": "Eve",
            "exp": now + 60, "nbf": now, "iat": now, "jti": "x"
        }));
        assert!(keys().verify(&no_aud, "math").is_err());
    }
}
