//! How much SIP one source may send (pure): a token bucket per source
//! address, refilled at the configured rate with a burst of a second's
//! worth and a few more; what overflows is dropped unanswered. The table
//! is bounded: past its size, sources not heard from for a while go.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Sources remembered at most.
const MAX_SOURCES: usize = 10_000;
/// A source silent this long is forgotten when the table is full.
const IDLE: Duration = Duration::from_secs(60);

/// Token buckets per source address.
#[derive(Debug)]
pub struct SourceLimits {
    rate: f64,
    burst: f64,
    sources: HashMap<IpAddr, (f64, Instant)>,
}

impl SourceLimits {
    /// `per_second` messages a second on average per source.
    pub fn new(per_second: u32) -> SourceLimits {
        let rate = f64::from(per_second.max(1));
        SourceLimits {
            rate,
            burst: rate + 10.0,
            sources: HashMap::new(),
        }
    }

    /// Whether one more message from `source` at `now` is within its limit.
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&source) {
            self.sources
                .retain(|_, (_, last)| now.saturating_duration_since(*last) < IDLE);
            if self.sources.len() >= MAX_SOURCES {
                return false;
            }
        }
        let (tokens, last) = self.sources.entry(source).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.rate;
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_rate_and_others_are_untouched() {
        let mut l = SourceLimits::new(20);
        let t0 = Instant::now();
        let flood: IpAddr = "192.0.2.1".parse().unwrap();
        let passed = (0..1000).filter(|_| l.allow(flood, t0)).count();
        assert_eq!(passed, 30, "the burst, then nothing");
        assert!(l.allow("192.0.2.2".parse().unwrap(), t0));
        // A second later, a second's worth more.
        let t1 = t0 + Duration::from_secs(1);
        let passed = (0..1000).filter(|_| l.allow(flood, t1)).count();
        assert_eq!(passed, 20);
    }
}
