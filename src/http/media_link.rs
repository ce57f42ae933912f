//! Playback links for recordings. A `<video>` element cannot send the admin
//! key, and fetching a whole lesson into memory to play it is slow to start
//! and cannot seek before it has all arrived. So an admin asks for a link
//! (`POST /api/recordings/{id}/link`): the media URL with an `access`
//! parameter, an HS256 token naming that one recording and an expiry,
//! signed with a key derived from `admin.key`. Range requests then work as
//! for any file, and the link is worthless for other recordings or later.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// How long a playback link works: a long lesson, watched with pauses.
pub const LINK_TTL_SECONDS: u64 = 4 * 3600;
/// The `aud` claim of playback links (no join token can pass for one).
const AUDIENCE: &str = "tessera-recording";

#[derive(Debug, Serialize, Deserialize)]
struct LinkClaims {
    sub: String,
    aud: String,
    exp: u64,
}

/// Why a link was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    /// Past its expiry.
    #[error(
        "this playback link has expired; ask for a new one (POST /api/recordings/{{id}}/link)"
    )]
    Expired,
    /// Made for another recording.
    #[error("this playback link is for another recording")]
    OtherRecording,
    /// Not signed by this server's admin key, or not a link at all.
    #[error("this playback link is not valid here")]
    Invalid,
}

fn secret(admin_key: &str) -> Vec<u8> {
    // A key of its own, so a link is never a valid signature for anything else.
    format!("tessera recording links\0{admin_key}").into_bytes()
}

/// A link token for recording `id`, valid until `now + LINK_TTL_SECONDS`;
/// returns it with its expiry (Unix seconds).
pub fn issue(admin_key: &str, id: &str, now: u64) -> (String, u64) {
    let exp = now + LINK_TTL_SECONDS;
    let claims = LinkClaims {
        sub: id.to_string(),
        aud: AUDIENCE.to_string(),
        exp,
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&secret(admin_key)),
    )
    .unwrap_or_default();
    (token, exp)
}

/// Checks that `token` is a live link for recording `id`.
pub fn verify(admin_key: &str, token: &str, id: &str) -> Result<(), LinkError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[AUDIENCE]);
    validation.leeway = 0;
    validation.required_spec_claims = ["exp", "aud", "sub"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let data = jsonwebtoken::decode::<LinkClaims>(
        token,
        &DecodingKey::from_secret(&secret(admin_key)),
        &validation,
    )
    .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => LinkError::Expired,
        _ => LinkError::Invalid,
    })?;
    if data.claims.sub != id {
        return Err(LinkError::OtherRecording);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> u64 {
        crate::auth::bans::unix_now()
    }

    #[test]
    fn a_link_opens_its_recording_only() {
        let (token, exp) = issue("k".repeat(40).as_str(), "rec-1", now());
        assert!(exp > now());
        assert_eq!(verify(&"k".repeat(40), &token, "rec-1"), Ok(()));
        assert_eq!(
            verify(&"k".repeat(40), &token, "rec-2"),
            Err(LinkError::OtherRecording)
        );
        assert_eq!(
            verify(&"x".repeat(40), &token, "rec-1"),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            verify(&"k".repeat(40), "not-a-token", "rec-1"),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn an_old_link_has_expired() {
        let (token, _) = issue("key", "rec-1", now() - LINK_TTL_SECONDS - 10);
        assert_eq!(verify("key", &token, "rec-1"), Err(LinkError::Expired));
    }
}
