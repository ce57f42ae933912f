//! Per-socket and per-address caps on signaling: a token bucket for the
//! message rate, and a count of open sockets per client IP whose slots
//! free themselves when the socket ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A token bucket: `rate` messages per second on average, `burst` at once.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: u32, burst: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            at: now,
        }
    }

    /// Takes one token at `now`; false when the bucket is empty.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Open sockets per client address, capped.
#[derive(Debug, Clone, Default)]
pub struct IpSlots {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One socket's place in [`IpSlots`]; freed on drop.
#[derive(Debug)]
pub struct IpSlot {
    slots: IpSlots,
    ip: IpAddr,
}

impl IpSlots {
    /// Takes a slot for `ip` unless it already has `max` sockets open.
    pub fn take(&self, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            slots: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5, t0);
        assert_eq!((0..8).filter(|_| b.allow(t0)).count(), 5);
        // 10 per second: one more after 100 ms, not before.
        assert!(!b.allow(t0 + Duration::from_millis(50)));
        assert!(b.allow(t0 + Duration::from_millis(110)));
        // Idle time refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| b.allow(later)).count(), 5);
    }

    #[test]
    fn slots_are_capped_per_address_and_freed_on_drop() {
        let slots = IpSlots::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = slots.take(a, 2).unwrap();
        let _second = slots.take(a, 2).unwrap();
        assert!(slots.take(a, 2).is_none());
        assert!(slots.take(b, 2).is_some());
        drop(first);
        assert!(slots.take(a, 2).is_some());
    }
}
