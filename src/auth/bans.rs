//! Tokens a teacher removed from a room: they cannot join that room again
//! until they expire. Shared by all rooms (a room may close and reopen).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Banned (room, token id) pairs with their expiry, Unix seconds.
#[derive(Debug, Clone, Default)]
pub struct Bans {
    inner: Arc<Mutex<HashMap<(String, String), u64>>>,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Bans {
    /// Bans token `jti` (valid until `exp`) from `room`.
    pub fn ban(&self, room: &str, jti: &str, exp: u64) {
        let now = unix_now();
        let mut bans = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        bans.retain(|_, until| *until > now);
        bans.insert((room.to_string(), jti.to_string()), exp);
    }

    /// True if token `jti` was removed from `room` and has not expired.
    pub fn is_banned(&self, room: &str, jti: &str) -> bool {
        let bans = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        bans.get(&(room.to_string(), jti.to_string()))
            .is_some_and(|until| *until > unix_now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ban_holds_for_its_room_until_the_token_expires() {
        let bans = Bans::default();
        bans.ban("math", "t1", unix_now() + 60);
        bans.ban("math", "t2", unix_now() - 1);
        assert!(bans.is_banned("math", "t1"));
        assert!(!bans.is_banned("art", "t1"));
        assert!(!bans.is_banned("math", "t2"));
    }
}
