//! How much loss an Opus encoder should expect, from the reception reports
//! of its listeners: libopus puts in-band FEC (a coarse copy of each frame
//! in the next packet) only when told to expect loss, and spends more bits
//! on it the more loss it is told. Too little and a lost packet is only
//! concealed; too much and the voice itself gets fewer bits.
//!
//! Loss is measured over spans of [`LOSS_SPAN`](super::downlink::LOSS_SPAN)
//! from the reports' running totals (audio is never retransmitted, so what
//! the reports count lost was lost). The expected loss is the worst span of
//! the last [`HOLD`], rounded up to a whole percent, at most [`MAX_PERCENT`]:
//! it rises at the first lossy span and falls only once the link has been
//! clean for a while, so the encoder is not retuned every second.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::downlink::{LossWindow, ReportTotals};
use crate::ids::Tier;

/// How long a lossy span keeps the expectation up.
pub const HOLD: Duration = Duration::from_secs(10);

/// The most loss an encoder is told to expect: beyond it, FEC takes bits
/// from the voice without saving much more of it.
pub const MAX_PERCENT: u8 = 25;

/// One listener's loss on our audio, as the percentage its encoder should
/// expect.
#[derive(Debug, Default)]
pub struct ExpectedLoss {
    window: LossWindow,
    /// Spans of the last [`HOLD`]: when each ended and its loss, percent.
    spans: VecDeque<(Instant, u8)>,
    current: u8,
}

impl ExpectedLoss {
    /// The percentage to expect now.
    pub fn percent(&self) -> u8 {
        self.current
    }

    /// Takes in a reception report on our audio; returns the new
    /// percentage when it changed.
    pub fn report(&mut self, now: Instant, totals: ReportTotals) -> Option<u8> {
        if let Some(loss) = self.window.report(now, totals.lost, totals.highest_seq) {
            let percent = (loss * 100.0).ceil().clamp(0.0, f64::from(MAX_PERCENT)) as u8;
            self.spans.push_back((now, percent));
        }
        while self
            .spans
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > HOLD)
        {
            self.spans.pop_front();
        }
        let worst = self.spans.iter().map(|(_, p)| *p).max().unwrap_or(0);
        (worst != self.current).then(|| {
            self.current = worst;
            worst
        })
    }
}

/// What a shared encoder heard by many should expect: the worst of its
/// listeners' expectations.
pub fn shared_percent<'a>(listeners: impl IntoIterator<Item = &'a ExpectedLoss>) -> u8 {
    listeners
        .into_iter()
        .map(ExpectedLoss::percent)
        .max()
        .unwrap_or(0)
}

/// Whether a receiver's audio should carry the previous packet again (RED,
/// where negotiated): when its link loses our audio, though less than
/// `congestion` (the loss, 0–1, that marks a link overloaded), and still
/// carries video. Redundancy doubles the audio's payload, some 32 kbit/s:
/// a link that loses more, or whose video is paused, loses because it is
/// full, and more would only lose more.
pub fn wants_redundancy(expected_percent: u8, congestion: f64, receiving: Tier) -> bool {
    expected_percent > 0
        && f64::from(expected_percent) <= congestion * 100.0
        && receiving != Tier::AudioOnly
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redundancy_is_for_lossy_links_that_carry_video() {
        assert!(!wants_redundancy(0, 0.10, Tier::High));
        assert!(wants_redundancy(1, 0.10, Tier::High));
        assert!(wants_redundancy(6, 0.10, Tier::Low));
        assert!(wants_redundancy(10, 0.10, Tier::High));
        assert!(
            !wants_redundancy(11, 0.10, Tier::High),
            "an overloaded link"
        );
        assert!(!wants_redundancy(25, 0.10, Tier::Low), "an overloaded link");
        assert!(!wants_redundancy(5, 0.10, Tier::AudioOnly));
    }

    /// Feeds one report a second at 50 packets a second, `lost_per_s` of
    /// them lost, for `secs` seconds; returns the changes seen.
    fn feed(
        e: &mut ExpectedLoss,
        t0: Instant,
        from_s: u64,
        secs: u64,
        lost_per_s: u32,
        totals: &mut ReportTotals,
    ) -> Vec<u8> {
        let mut changes = Vec::new();
        for s in from_s..from_s + secs {
            totals.highest_seq += 50;
            totals.lost += lost_per_s;
            changes.extend(e.report(t0 + Duration::from_secs(s), *totals));
        }
        changes
    }

    #[test]
    fn a_clean_link_expects_no_loss() {
        let (mut e, t0) = (ExpectedLoss::default(), Instant::now());
        let mut totals = ReportTotals {
            lost: 0,
            highest_seq: 1000,
        };
        assert!(feed(&mut e, t0, 0, 30, 0, &mut totals).is_empty());
        assert_eq!(e.percent(), 0);
    }

    #[test]
    fn loss_raises_the_expectation_at_once_and_it_falls_after_the_hold() {
        let (mut e, t0) = (ExpectedLoss::default(), Instant::now());
        let mut totals = ReportTotals {
            lost: 0,
            highest_seq: 1000,
        };
        feed(&mut e, t0, 0, 5, 0, &mut totals);
        // 5 % loss (2.5 of 50 a second, as 2 and 3).
        let up = feed(&mut e, t0, 5, 1, 3, &mut totals);
        assert_eq!(up, vec![6], "3 of 50 lost is 6 %");
        let steady = feed(&mut e, t0, 6, 10, 2, &mut totals);
        assert!(steady.is_empty(), "the worst span holds: {steady:?}");
        assert_eq!(e.percent(), 6);
        // Clean again: down only once the lossy spans are older than HOLD.
        let clean = feed(&mut e, t0, 16, 9, 0, &mut totals);
        assert_eq!(clean, vec![4], "the 6 % span aged out first: {clean:?}");
        let clean = feed(&mut e, t0, 25, 3, 0, &mut totals);
        assert_eq!(clean, vec![0]);
    }

    #[test]
    fn heavy_loss_is_capped() {
        let (mut e, t0) = (ExpectedLoss::default(), Instant::now());
        let mut totals = ReportTotals {
            lost: 0,
            highest_seq: 1000,
        };
        feed(&mut e, t0, 0, 3, 40, &mut totals);
        assert_eq!(e.percent(), MAX_PERCENT);
    }

    #[test]
    fn a_shared_encoder_expects_the_worst_listeners_loss() {
        let t0 = Instant::now();
        let mut lossy = ExpectedLoss::default();
        let mut totals = ReportTotals {
            lost: 0,
            highest_seq: 0,
        };
        feed(&mut lossy, t0, 0, 3, 5, &mut totals);
        let clean = ExpectedLoss::default();
        assert_eq!(shared_percent([&clean, &lossy]), 10);
        assert_eq!(shared_percent([&clean]), 0);
        assert_eq!(shared_percent([]), 0);
    }
}
