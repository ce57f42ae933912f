//! Chat rules, pure: what a message may be (not blank, at most
//! [`MAX_CHARS`] characters) and how fast one participant may send them (a
//! burst of [`BURST`], then one every [`REFILL`]). The room actor applies
//! them (`actor/chat.rs`); text is passed on exactly as written, and every
//! client shows it as text.

use std::time::{Duration, Instant};

/// The longest chat message, in characters.
pub const MAX_CHARS: usize = 500;
/// Messages a participant may send at once.
pub const BURST: u32 = 5;
/// After the burst, one more message each this long.
pub const REFILL: Duration = Duration::from_secs(2);
/// Messages kept for participants who join later.
pub const HISTORY: usize = 50;

/// Why a chat message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatRefusal {
    /// Nothing but white space.
    #[error("a chat message needs some text: `text` is blank")]
    Blank,
    /// Longer than [`MAX_CHARS`].
    #[error("a chat message is at most {MAX_CHARS} characters; this one has {0}")]
    TooLong(usize),
    /// Sent faster than the rate allows.
    #[error("at most {BURST} chat messages at once, then one every {} s: wait {} ms", REFILL.as_secs(), .0.as_millis())]
    TooFast(Duration),
}

/// Checks a message's text.
pub fn check_text(text: &str) -> Result<(), ChatRefusal> {
    let chars = text.chars().count();
    if chars > MAX_CHARS {
        return Err(ChatRefusal::TooLong(chars));
    }
    if text.trim().is_empty() {
        return Err(ChatRefusal::Blank);
    }
    Ok(())
}

/// One participant's allowance (a token bucket): full at first.
#[derive(Debug, Clone)]
pub struct ChatRate {
    /// Messages it may send now, in [`REFILL`]s: up to [`BURST`].
    tokens: f64,
    last: Option<Instant>,
}

impl Default for ChatRate {
    fn default() -> Self {
        ChatRate {
            tokens: f64::from(BURST),
            last: None,
        }
    }
}

impl ChatRate {
    /// Takes one message's allowance at `now`, or says how long to wait.
    pub fn take(&mut self, now: Instant) -> Result<(), ChatRefusal> {
        if let Some(last) = self.last {
            let earned = now.saturating_duration_since(last).as_secs_f64() / REFILL.as_secs_f64();
            self.tokens = (self.tokens + earned).min(f64::from(BURST));
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = REFILL.mul_f64(1.0 - self.tokens);
            Err(ChatRefusal::TooFast(wait))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_not_blank_and_at_most_the_limit_in_characters() {
        assert_eq!(check_text("hello"), Ok(()));
        assert_eq!(check_text(" \n\t "), Err(ChatRefusal::Blank));
        assert_eq!(check_text(""), Err(ChatRefusal::Blank));
        // Characters, not bytes: 500 of a two-byte letter is fine.
        assert_eq!(check_text(&"é".repeat(MAX_CHARS)), Ok(()));
        assert_eq!(
            check_text(&"a".repeat(MAX_CHARS + 1)),
            Err(ChatRefusal::TooLong(MAX_CHARS + 1))
        );
        // Markup is text like any other.
        assert_eq!(check_text("<script>alert(1)</script>"), Ok(()));
    }

    #[test]
    fn a_burst_then_one_per_refill() {
        let t0 = Instant::now();
        let mut rate = ChatRate::default();
        for _ in 0..BURST {
            assert_eq!(rate.take(t0), Ok(()));
        }
        let Err(ChatRefusal::TooFast(wait)) = rate.take(t0) else {
            panic!("the sixth at once is refused");
        };
        assert_eq!(wait, REFILL);
        // Half a refill later: still too soon, by the other half.
        let half = t0 + REFILL / 2;
        assert_eq!(rate.take(half), Err(ChatRefusal::TooFast(REFILL / 2)));
        assert_eq!(rate.take(t0 + REFILL), Ok(()));
        // A long pause fills the burst again, no further.
        let later = t0 + REFILL * 100;
        for _ in 0..BURST {
            assert_eq!(rate.take(later), Ok(()));
        }
        assert!(rate.take(later).is_err());
    }

    #[test]
    fn refusals_say_the_limit_and_the_wait() {
        let e = ChatRefusal::TooFast(Duration::from_millis(1500)).to_string();
        assert!(e.contains("at most 5") && e.contains("1500 ms"), "{e}");
        let e = ChatRefusal::TooLong(501).to_string();
        assert!(e.contains("500 characters") && e.contains("501"), "{e}");
    }
}
