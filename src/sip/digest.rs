//! Digest authentication of a SIP trunk (RFC 3261 §22, MD5 with
//! `qop=auth`): nonces we issue and can check without keeping them (a
//! time and an HMAC of it under a key of this process), and the check of
//! a caller's `Authorization` against the configured credentials.

use hmac::{Hmac, KeyInit, Mac};
use rsipstack::dialog::authenticate::compute_digest;
use rsipstack::sip::headers::auth::{Algorithm, AuthQop, Qop, Scheme};
use rsipstack::sip::typed::{Authorization, WwwAuthenticate};
use rsipstack::sip::Method;
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// How long a nonce is good for, seconds.
pub const NONCE_LIFETIME: u64 = 300;

/// Issues and checks nonces, and checks answers to them.
#[derive(Clone)]
pub struct Digest {
    key: [u8; 32],
    realm: String,
    username: String,
    password: String,
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Digest")
            .field("realm", &self.realm)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Digest {
    /// Credentials the trunk must prove, under a fresh nonce key.
    pub fn new(realm: &str, username: &str, password: &str) -> Digest {
        let mut key = [0u8; 32];
        for chunk in key.chunks_mut(4) {
            chunk.copy_from_slice(&glib::random_int().to_le_bytes());
        }
        Digest {
            key,
            realm: realm.into(),
            username: username.into(),
            password: password.into(),
        }
    }

    fn mac(&self, issued: u64) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(&self.key).expect("any key length");
        mac.update(&issued.to_be_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A nonce issued at `now` (Unix seconds).
    pub fn nonce(&self, now: u64) -> String {
        format!("{now:x}.{}", self.mac(now))
    }

    /// Whether `nonce` is one of ours and still good at `now`.
    pub fn nonce_valid(&self, nonce: &str, now: u64) -> bool {
        let Some((issued, mac)) = nonce.split_once('.') else {
            return false;
        };
        let Ok(issued) = u64::from_str_radix(issued, 16) else {
            return false;
        };
        issued <= now
            && now - issued <= NONCE_LIFETIME
            && bool::from(self.mac(issued).as_bytes().ct_eq(mac.as_bytes()))
    }

    /// The challenge of a 401, with a nonce issued at `now`.
    pub fn challenge(&self, now: u64) -> WwwAuthenticate {
        WwwAuthenticate {
            scheme: Scheme::Digest,
            realm: self.realm.clone(),
            nonce: self.nonce(now),
            algorithm: Some(Algorithm::Md5),
            qop: Some(Qop::Auth),
            ..Default::default()
        }
    }

    /// Whether `auth` answers one of our nonces with our credentials for
    /// a request with `method`.
    pub fn check(&self, auth: &Authorization, method: &Method, now: u64) -> bool {
        let md5 = matches!(auth.algorithm, None | Some(Algorithm::Md5));
        if !md5
            || auth.scheme != Scheme::Digest
            || auth.username != self.username
            || auth.realm != self.realm
            || !self.nonce_valid(&auth.nonce, now)
            || matches!(auth.qop, Some(AuthQop::AuthInt { .. }))
        {
            return false;
        }
        let expected = compute_digest(
            &self.username,
            &self.password,
            &self.realm,
            &auth.nonce,
            method,
            &auth.uri.to_string(),
            Algorithm::Md5,
            auth.qop.as_ref(),
        );
        bool::from(
            expected
                .to_ascii_lowercase()
                .as_bytes()
                .ct_eq(auth.response.to_ascii_lowercase().as_bytes()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(d: &Digest, password: &str, nonce: &str, qop: Option<AuthQop>) -> Authorization {
        let uri: rsipstack::sip::Uri = "sip:100@127.0.0.1:5060".try_into().unwrap();
        let response = compute_digest(
            "trunk",
            password,
            "tessera",
            nonce,
            &Method::Invite,
            &uri.to_string(),
            Algorithm::Md5,
            qop.as_ref(),
        );
        Authorization {
            scheme: Scheme::Digest,
            username: "trunk".into(),
            realm: d.realm.clone(),
            nonce: nonce.into(),
            uri,
            response,
            algorithm: Some(Algorithm::Md5),
            opaque: None,
            qop,
        }
    }

    #[test]
    fn a_right_answer_passes_and_a_wrong_or_stale_one_does_not() {
        let d = Digest::new("tessera", "trunk", "s3cret");
        let now = 1_000_000;
        let nonce = d.nonce(now);
        let qop = Some(AuthQop::Auth {
            cnonce: "abc".into(),
            nc: 1,
        });
        assert!(d.check(
            &answer(&d, "s3cret", &nonce, qop.clone()),
            &Method::Invite,
            now + 5
        ));
        assert!(d.check(&answer(&d, "s3cret", &nonce, None), &Method::Invite, now));
        assert!(!d.check(
            &answer(&d, "guess", &nonce, qop.clone()),
            &Method::Invite,
            now
        ));
        // For another method, or once the nonce is stale.
        assert!(!d.check(&answer(&d, "s3cret", &nonce, None), &Method::Bye, now));
        assert!(!d.check(
            &answer(&d, "s3cret", &nonce, None),
            &Method::Invite,
            now + NONCE_LIFETIME + 1
        ));
        // A nonce we did not issue, and one of another process.
        let forged = format!("{now:x}.{}", "0".repeat(40));
        assert!(!d.check(&answer(&d, "s3cret", &forged, None), &Method::Invite, now));
        let other = Digest::new("tessera", "trunk", "s3cret");
        assert!(!other.nonce_valid(&nonce, now));
        assert!(!d.nonce_valid("zz.1", now));
    }
}
