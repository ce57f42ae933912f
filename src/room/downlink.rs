//! Each receiver's downlink: an estimate of what its link carries, from the
//! feedback its browser sends about our streams, and the quality tier it
//! gets (pure logic, no media).
//!
//! - **Down** when the link is overloaded: a receiver that reports more
//!   than [`DownlinkPolicy::congestion_loss`] of our packets lost in
//!   reports spanning [`DownlinkPolicy::down_after`] moves down one tier,
//!   or from `high` straight to `audio-only` when even
//!   [`OVERLOAD_HIDES`] times its estimate does not carry the low tier.
//!   The estimate is what gets through (the rate we send times what is not
//!   lost), or the receiver's REMB if that is more.
//!   A drop of the REMB alone never moves anyone down: a busy machine makes
//!   a browser's delay-based estimate dip on links that are fine.
//! - **Up** by a trial: after [`DownlinkPolicy::probe_first`] without loss,
//!   the receiver gets the next tier up for [`DownlinkPolicy::trial`]. If
//!   it reports loss or its REMB drops during the trial, it goes straight
//!   back and waits twice as long before the next (up to
//!   [`DownlinkPolicy::probe_max`]); otherwise it stays there. From the
//!   audio-only tier, trials come only every
//!   [`DownlinkPolicy::probe_audio_only`]. A REMB that
//!   already covers the tier above moves the receiver up without a trial.
//! - The tier the receiver is *placed* in (what it is told, and what the
//!   API shows) changes only when a move settles: a failed trial is not a
//!   change.

use std::time::{Duration, Instant};

use crate::ids::Tier;

/// Bit/s kept for what a receiver hears (Opus at 48 kbit/s, with RTP,
/// SRTP and UDP overhead), on top of a tier's video.
pub const AUDIO_RESERVE: u64 = 72_000;

/// How many times what gets through of our stream an overloaded link may
/// carry. Retransmissions of what was lost, keyframes asked for, RTCP and
/// the queue's backlog take part of it, and the stream's loss shows only
/// what is left: under the high tier, a 300 kbit/s link let 140 to 280
/// kbit/s of the stream through, an 80 kbit/s one 40 to 80. A move down
/// that trusts this factor too far is bounded: it goes one tier at most,
/// and a tier that still overloads the link moves down again.
pub const OVERLOAD_HIDES: u64 = 2;

/// How long a report or an estimate counts as current.
const FRESH: Duration = Duration::from_secs(3);

/// The running totals of one reception report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportTotals {
    /// Packets lost since the stream began.
    pub lost: u32,
    /// The extended highest sequence number received.
    pub highest_seq: u32,
}

/// The span over which loss is measured.
pub const LOSS_SPAN: Duration = Duration::from_secs(1);

/// Packets a trial must have sent before its loss counts.
const TRIAL_PACKETS: u32 = 10;

/// After a move down, how long reports are not measured: those still
/// coming describe the packets of the tier before, queued or in flight.
const SETTLE: Duration = Duration::from_secs(1);

/// How long without a reception report before a receiver is placed by its
/// requests. GStreamer's RTP session reports about every 5 s (2.5 to 7.5),
/// so a shorter wait would take a receiver that reports for one that
/// stopped; and a receiver's requests overstate its loss (it asks for
/// packets that are only late), so its reports win while they come.
const REPORTS_STOPPED: Duration = Duration::from_secs(10);

/// Video packets a span must have sent before the share asked for again
/// counts as its loss.
const REQUEST_SPAN_PACKETS: u64 = 20;

/// The running totals of what a receiver asked us to resend: distinct
/// video packets asked for, and video packets sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTotals {
    /// Distinct video packets it asked for again.
    pub asked: u64,
    /// Video packets sent to it.
    pub sent: u64,
}

/// The loss of one stream over spans of at least [`LOSS_SPAN`], from the
/// running totals of its reception reports. A browser sends a report with
/// every NACK or PLI, some a few packets apart: the fraction lost of one
/// report says little, the totals over a second say what the link did.
#[derive(Debug, Clone, Copy, Default)]
pub struct LossWindow {
    /// When the span began: the totals then (packets lost, highest
    /// sequence number received).
    start: Option<(Instant, u32, u32)>,
}

impl LossWindow {
    /// Takes in a report's totals; returns the loss (0–1) over the span it
    /// closes, once the span is long enough.
    pub fn report(&mut self, now: Instant, total_lost: u32, highest_seq: u32) -> Option<f64> {
        let Some((since, lost0, seq0)) = self.start else {
            self.start = Some((now, total_lost, highest_seq));
            return None;
        };
        if now.saturating_duration_since(since) < LOSS_SPAN {
            return None;
        }
        self.start = Some((now, total_lost, highest_seq));
        let expected = highest_seq.wrapping_sub(seq0);
        // Nothing sent in the span, or the receiver started counting again.
        if expected == 0 || expected > 1 << 20 {
            return None;
        }
        let lost = total_lost.saturating_sub(lost0).min(expected);
        Some(f64::from(lost) / f64::from(expected))
    }
}

/// The thresholds and times of tier placement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DownlinkPolicy {
    /// Loss (0–1) in a reception report that marks the link overloaded.
    pub congestion_loss: f64,
    /// Loss in a report that fails a trial.
    pub trial_loss: f64,
    /// A REMB below this share of the trial's starting REMB fails it.
    pub remb_drop: f64,
    /// How long reports must show overload before moving down.
    pub down_after: Duration,
    /// Clean time in a lower tier before the first trial of the next one up.
    pub probe_first: Duration,
    /// The longest wait between trials, after failures.
    pub probe_max: Duration,
    /// The wait between trials from the audio-only tier.
    pub probe_audio_only: Duration,
    /// How long a trial must stay clean to settle.
    pub trial: Duration,
    /// The lowest tier a receiver may be moved to (`low` where the video
    /// must never stop).
    pub floor: Tier,
}

impl Default for DownlinkPolicy {
    fn default() -> Self {
        Self {
            congestion_loss: 0.10,
            trial_loss: 0.05,
            remb_drop: 0.85,
            down_after: Duration::from_millis(1000),
            probe_first: Duration::from_secs(10),
            probe_max: Duration::from_secs(20),
            probe_audio_only: Duration::from_secs(45),
            trial: Duration::from_secs(4),
            floor: Tier::AudioOnly,
        }
    }
}

/// What each tier needs on a receiver's link, bit/s, audio included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// The low tier.
    pub low: u64,
    /// The high tier.
    pub high: u64,
}

impl Needs {
    /// What `tier` needs.
    pub fn of(&self, tier: Tier) -> u64 {
        match tier {
            Tier::AudioOnly => AUDIO_RESERVE,
            Tier::Low => self.low,
            Tier::High => self.high,
        }
    }

    /// The best tier that `estimate` carries.
    pub fn fitting(&self, estimate: u64) -> Tier {
        [Tier::High, Tier::Low]
            .into_iter()
            .find(|t| self.of(*t) <= estimate)
            .unwrap_or(Tier::AudioOnly)
    }
}

/// A trial of the tier above the settled one.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Trial {
    since: Instant,
    /// The receiver's REMB when the trial began.
    remb_before: Option<u64>,
    /// The totals of the trial's first report (packets lost, highest
    /// sequence number): loss during the trial is counted from them. The
    /// first report's own share may cover the time before the trial (a
    /// stream that resumes after a pause).
    baseline: Option<(u32, u32)>,
    /// Reports during the trial showed loss.
    lossy: bool,
}

/// One receiver's downlink: its estimate and its tier.
#[derive(Debug, Clone)]
pub struct Downlink {
    policy: DownlinkPolicy,
    /// The tier it is placed in.
    settled: Tier,
    trial: Option<Trial>,
    /// The latest REMB and when it came.
    remb: Option<(Instant, u64)>,
    /// The latest loss report on our video (or audio) and when it came.
    loss: Option<(Instant, f64)>,
    /// Since when every report shows overload.
    overloaded_since: Option<Instant>,
    /// Since when no report shows loss.
    clean_since: Option<Instant>,
    /// The wait before the next trial, while the REMB leaves room.
    probe_wait: Duration,
    /// The estimate, bit/s, once there is feedback.
    estimate: Option<u64>,
    /// Loss on our video and on our audio, over spans of reports.
    video_loss: LossWindow,
    audio_loss: LossWindow,
    /// Reports before this are not measured (just after a move down).
    settle_until: Option<Instant>,
    /// When the last reception report came.
    last_report: Option<Instant>,
    /// Where the current span of requests began: when, and the totals then.
    requests_since: Option<(Instant, RequestTotals)>,
}

impl Downlink {
    /// A receiver that has just joined: high tier, nothing known yet.
    pub fn new(policy: DownlinkPolicy) -> Downlink {
        Downlink {
            policy,
            settled: Tier::High,
            trial: None,
            remb: None,
            loss: None,
            overloaded_since: None,
            clean_since: None,
            probe_wait: policy.probe_first,
            estimate: None,
            video_loss: LossWindow::default(),
            audio_loss: LossWindow::default(),
            settle_until: None,
            last_report: None,
            requests_since: None,
        }
    }

    /// The tier the receiver is placed in.
    pub fn tier(&self) -> Tier {
        self.settled
    }

    /// The tier it is sent now: the settled one, or the one on trial.
    pub fn sending(&self) -> Tier {
        match self.trial {
            Some(_) => self.settled.up().unwrap_or(self.settled),
            None => self.settled,
        }
    }

    /// Whether a trial of the tier above is running.
    pub fn probing(&self) -> bool {
        self.trial.is_some()
    }

    /// The estimate of the downlink, bit/s, once there is feedback.
    pub fn estimate(&self) -> Option<u64> {
        self.estimate
    }

    /// Takes in one RTCP packet's worth of feedback: a REMB, and the
    /// reception reports on our video and audio. The loss that counts is
    /// the video's while video is sent, else the audio's: over spans of a
    /// second for placement, and report by report during a trial, which
    /// any loss ends. `rate` is what we send the receiver now.
    pub fn receive(
        &mut self,
        now: Instant,
        remb: Option<u64>,
        video: Option<ReportTotals>,
        audio: Option<ReportTotals>,
        rate: u64,
    ) {
        let (report, window) = if self.sending().has_video() {
            (video, &mut self.video_loss)
        } else {
            (audio, &mut self.audio_loss)
        };
        if video.is_some() || audio.is_some() {
            self.last_report = Some(now);
        }
        let settling = self.settle_until.is_some_and(|t| now < t);
        let loss = match report {
            Some(r) if !settling => window.report(now, r.lost, r.highest_seq),
            _ => None,
        };
        if let (Some(trial), Some(r)) = (self.trial.as_mut(), report) {
            match trial.baseline {
                None => trial.baseline = Some((r.lost, r.highest_seq)),
                Some((lost0, seq0)) => {
                    let expected = r.highest_seq.wrapping_sub(seq0);
                    let lost = r.lost.saturating_sub(lost0).min(expected);
                    if expected >= TRIAL_PACKETS
                        && f64::from(lost) >= f64::from(expected) * self.policy.trial_loss
                    {
                        trial.lossy = true;
                    }
                }
            }
        }
        self.feedback(now, remb, loss, rate);
    }

    /// Takes in the running totals of what the receiver asked us to
    /// resend. Some receivers put their reception reports off behind their
    /// requests once their link overloads, and then report nothing but
    /// requests: once no report has come for [`REPORTS_STOPPED`] after
    /// one did, the share of the video packets
    /// sent that it asked for, over spans of at least [`LOSS_SPAN`], is
    /// taken as its loss. While reports come, this does nothing.
    pub fn requests(&mut self, now: Instant, totals: RequestTotals, rate: u64) {
        let Some((since, start)) = self.requests_since else {
            self.requests_since = Some((now, totals));
            return;
        };
        if now.saturating_duration_since(since) < LOSS_SPAN {
            return;
        }
        self.requests_since = Some((now, totals));
        // Only reports that stopped: a receiver may take 10 s to send its
        // first, and ask for many packets that were only late meanwhile.
        let Some(last_report) = self.last_report else {
            return;
        };
        let reporting = now.saturating_duration_since(last_report) < REPORTS_STOPPED;
        let settling = self.settle_until.is_some_and(|t| now < t);
        let sent = totals.sent.saturating_sub(start.sent);
        if reporting || settling || !self.sending().has_video() || sent < REQUEST_SPAN_PACKETS {
            return;
        }
        let asked = totals.asked.saturating_sub(start.asked).min(sent);
        self.feedback(now, None, Some(asked as f64 / sent as f64), rate);
    }

    /// Takes in one piece of feedback: a REMB, the loss of a reception
    /// report on our video (or, with no video sent, on our audio), or both.
    /// `rate` is what we send the receiver now, bit/s.
    pub fn feedback(&mut self, now: Instant, remb: Option<u64>, loss: Option<f64>, rate: u64) {
        if let Some(r) = remb {
            self.remb = Some((now, r));
        }
        if let Some(l) = loss {
            self.loss = Some((now, l));
            if l >= self.policy.congestion_loss {
                self.overloaded_since.get_or_insert(now);
            } else {
                self.overloaded_since = None;
            }
            if l > 0.02 {
                self.clean_since = None;
            } else {
                self.clean_since.get_or_insert(now);
            }
        }
        let fresh = |t: Instant| now.saturating_duration_since(t) <= FRESH;
        // The loss measured is the video's while video is sent; the audio
        // beside it waits in the same queues on the link, and loses alike.
        let through = self
            .loss
            .filter(|(t, _)| fresh(*t))
            .map(|(_, l)| (rate as f64 * (1.0 - l)) as u64);
        // A link that loses what we send carries what gets through; the
        // receiver's REMB may say more (a link we do not fill), but under
        // overload it falls well below what gets through, so the larger
        // of the two counts.
        let remb = self.remb.filter(|(t, _)| fresh(*t)).map(|(_, r)| r);
        self.estimate = match (remb, through) {
            (Some(r), Some(t)) => Some(r.max(t)),
            (r, t) => r.or(t).or(self.estimate),
        };
    }

    /// How long the link must be clean before the next trial. A receiver
    /// in the audio-only tier is tried only every
    /// [`DownlinkPolicy::probe_audio_only`]: each trial starts with a
    /// keyframe, and on a link that carries little more than the audio,
    /// the audio waits behind it, a second of the lesson unheard.
    fn wait_before_trial(&self) -> Duration {
        match self.settled {
            Tier::AudioOnly => self.probe_wait.max(self.policy.probe_audio_only),
            _ => self.probe_wait,
        }
    }

    /// Decides where the receiver goes now; returns the tier to send when
    /// it changes (a move, or a trial starting or ending).
    pub fn decide(&mut self, now: Instant, needs: Needs) -> Option<Tier> {
        let before = self.sending();
        let fresh = |t: Instant| now.saturating_duration_since(t) <= FRESH;
        let loss = self.loss.filter(|(t, _)| fresh(*t)).map(|(_, l)| l);
        let remb = self.remb.filter(|(t, _)| fresh(*t)).map(|(_, r)| r);

        if let Some(trial) = self.trial {
            let lossy = trial.lossy
                || self
                    .loss
                    .is_some_and(|(t, l)| t >= trial.since && l >= self.policy.trial_loss);
            let dropped = match (trial.remb_before, self.remb) {
                (Some(b), Some((t, r))) => {
                    t >= trial.since && (r as f64) < b as f64 * self.policy.remb_drop
                }
                _ => false,
            };
            if lossy || dropped {
                self.trial = None;
                self.probe_wait = (self.probe_wait * 2).min(self.policy.probe_max);
                self.clean_since = None;
                self.overloaded_since = None;
            } else if now.duration_since(trial.since) >= self.policy.trial {
                self.settled = self.sending();
                self.trial = None;
                self.probe_wait = self.policy.probe_first;
                self.clean_since = Some(now);
            }
        } else if self
            .overloaded_since
            .is_some_and(|since| now.duration_since(since) >= self.policy.down_after)
            && self.settled > self.policy.floor
        {
            let below = match self.settled {
                Tier::High => Tier::Low,
                _ => Tier::AudioOnly,
            };
            let fits = self
                .estimate
                .map_or(below, |e| needs.fitting(e.saturating_mul(OVERLOAD_HIDES)));
            self.settled = fits.min(below).max(self.policy.floor);
            self.overloaded_since = None;
            self.clean_since = None;
        } else if let Some(up) = self.settled.up() {
            let clean = loss.is_none_or(|l| l <= 0.02);
            if clean && remb.is_some_and(|r| r >= needs.of(up)) {
                // The receiver's own estimate already covers the tier above.
                self.settled = up;
                self.clean_since = Some(now);
            } else if clean
                && self
                    .clean_since
                    .is_some_and(|since| now.duration_since(since) >= self.wait_before_trial())
            {
                self.trial = Some(Trial {
                    since: now,
                    remb_before: remb,
                    baseline: None,
                    lossy: false,
                });
            }
        }
        let changed = self.sending() != before;
        if self.sending() < before {
            self.settle_until = Some(now + SETTLE);
        }
        if changed {
            // What was lost before the change says nothing about the new
            // tier: loss is measured afresh from here.
            self.video_loss = LossWindow::default();
            self.audio_loss = LossWindow::default();
            self.requests_since = None;
            self.loss = None;
            self.overloaded_since = None;
        }
        changed.then(|| self.sending())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEEDS: Needs = Needs {
        low: 214_000,
        high: 900_000,
    };

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// Reports `loss` every second from `from` to `to` (ms), deciding after each.
    fn reports(
        d: &mut Downlink,
        t0: Instant,
        from: u64,
        to: u64,
        remb: Option<u64>,
        loss: f64,
        rate: u64,
    ) -> Vec<(u64, Tier)> {
        let mut moves = Vec::new();
        let mut at = from;
        while at <= to {
            d.feedback(ms(t0, at), remb, Some(loss), rate);
            if let Some(t) = d.decide(ms(t0, at), NEEDS) {
                moves.push((at, t));
            }
            at += 1000;
        }
        moves
    }

    #[test]
    fn a_clean_link_stays_high() {
        let t0 = Instant::now();
        let mut d = Downlink::new(DownlinkPolicy::default());
        let moves = reports(&mut d, t0, 0, 120_000, Some(1_200_000), 0.0, 900_000);
        assert!(moves.is_empty(), "{moves:?}");
        assert_eq!(d.tier(), Tier::High);
        assert_eq!(d.estimate(), Some(1_200_000));
    }

    #[test]
    fn an_overloaded_link_moves_down_to_what_gets_through() {
        let t0 = Instant::now();
        let mut d = Downlink::new(DownlinkPolicy::default());
        // Of 900 kbit/s, 28 % gets through: 252.
        let moves = reports(&mut d, t0, 0, 1000, None, 0.72, 900_000);
        assert_eq!(moves, vec![(1000, Tier::Low)]);
        let e = d.estimate().unwrap();
        assert!((250_000..=254_000).contains(&e), "{e}");
        // The low tier gets through whole: it stays there.
        let moves = reports(&mut d, t0, 2000, 5000, None, 0.0, NEEDS.low);
        assert!(moves.is_empty(), "{moves:?}");
        assert_eq!(d.tier(), Tier::Low);
    }

    #[test]
    fn a_link_that_lets_a_little_of_the_high_tier_through_gets_the_low_tier() {
        // What links in the end-to-end test show under the high tier: a
        // 300 kbit/s link lets 140 to 280 of the stream through (repairs,
        // RTCP and backlog take the rest), an 80 kbit/s one 40 to 80.
        let t0 = Instant::now();
        for (loss, tier) in [
            (0.91, Tier::Low),
            (0.82, Tier::Low),
            (0.975, Tier::AudioOnly),
            (0.95, Tier::AudioOnly),
        ] {
            let mut d = Downlink::new(DownlinkPolicy::default());
            let moves = reports(&mut d, t0, 0, 1000, None, loss, 1_550_000);
            assert_eq!(moves, vec![(1000, tier)], "{loss}");
        }
    }

    #[test]
    fn a_very_narrow_link_goes_straight_to_audio_only() {
        let t0 = Instant::now();
        let mut d = Downlink::new(DownlinkPolicy::default());
        let moves = reports(&mut d, t0, 0, 3000, Some(70_000), 0.95, 900_000);
        assert_eq!(moves, vec![(1000, Tier::AudioOnly)]);
    }

    #[test]
    fn a_low_tier_that_still_overloads_the_link_moves_down_again() {
        let t0 = Instant::now();
        let mut d = Downlink::new(DownlinkPolicy::default());
        // 120 of 900 kbit/s get through: it might be a link of 240.
        let moves = reports(&mut d, t0, 0, 1000, Some(70_000), 0.867, 900_000);
        assert_eq!(moves, vec![(1000, Tier::Low)]);
        // It is not: the low tier loses half. Reports wait a second after
        // the move, then a second of overload moves it down again.
        let moves = reports(&mut d, t0, 2000, 5000, Some(70_000), 0.5, NEEDS.low);
        assert_eq!(moves, vec![(3000, Tier::AudioOnly)]);
    }

    #[test]
    fn one_lossy_report_or_a_remb_dip_moves_nobody() {
        let t0 = Instant::now();
        let mut d = Downlink::new(DownlinkPolicy::default());
        d.feedback(ms(t0, 0), Some(1_000_000), Some(0.3), 900_000);
        assert_eq!(d.decide(ms(t0, 0), NEEDS), None);
        d.feedback(ms(t0, 1000), Some(300_000), Some(0.0), 900_000);
        assert_eq!(d.decide(ms(t0, 1000), NEEDS), None);
        let moves = reports(&mut d, t0, 2000, 30_000, Some(300_000), 0.0, 900_000);
        assert!(moves.is_empty(), "{moves:?}");
    }

    #[test]
    fn a_failed_trial_goes_back_at_once_and_waits_longer() {
        let t0 = Instant::now();
        let mut d = Downlink::new(DownlinkPolicy::default());
        reports(&mut d, t0, 0, 2000, None, 0.7, 900_000);
        assert_eq!(d.tier(), Tier::Low);
        // Clean in low: the first trial after probe_first.
        let moves = reports(&mut d, t0, 3000, 14_000, Some(300_000), 0.0, 214_000);
        assert_eq!(moves, vec![(13_000, Tier::High)]);
        assert!(d.probing());
        // The link is still narrow: the REMB drops and loss comes back.
        d.feedback(ms(t0, 13_500), Some(240_000), None, 900_000);
        assert_eq!(d.decide(ms(t0, 13_500), NEEDS), Some(Tier::Low));
        assert_eq!(d.tier(), Tier::Low);
        assert!(!d.probing());
        // The next trial waits twice as long once clean again.
        let moves = reports(&mut d, t0, 14_000, 40_000, Some(300_000), 0.0, 214_000);
        assert_eq!(moves.first(), Some(&(34_000, Tier::High)), "{moves:?}");
    }

    #[test]
    fn a_recovered_link_is_back_high_within_thirty_seconds() {
        let t0 = Instant::now();
        let mut d = Downlink::new(DownlinkPolicy::default());
        // A link of 300 kbit/s: the high tier loses half its packets there.
        let lifted = 120_000;
        let mut trials = 0;
        let mut back_high = None;
        let mut at = 0;
        while at <= lifted + 30_000 {
            let high = d.sending() == Tier::High;
            let loss = if high && at < lifted { 0.5 } else { 0.0 };
            let rate = if high { 900_000 } else { 214_000 };
            d.feedback(ms(t0, at), None, Some(loss), rate);
            if d.decide(ms(t0, at), NEEDS) == Some(Tier::High) {
                trials += 1;
            }
            if at >= lifted && d.tier() == Tier::High && back_high.is_none() {
                back_high = Some(at - lifted);
            }
            at += 500;
        }
        // While capped: a trial at most every probe_max after the first.
        assert!((5..=7).contains(&trials), "{trials} trials");
        let took = back_high.expect("back in the high tier");
        assert!(took <= 30_000, "{took} ms");
        assert!(!d.probing());
    }

    #[test]
    fn a_remb_that_covers_the_tier_above_moves_up_without_a_trial() {
        let t0 = Instant::now();
        let mut d = Downlink::new(DownlinkPolicy::default());
        reports(&mut d, t0, 0, 2000, None, 0.95, 900_000);
        assert_eq!(d.tier(), Tier::AudioOnly);
        d.feedback(ms(t0, 3000), Some(250_000), Some(0.0), AUDIO_RESERVE);
        assert_eq!(d.decide(ms(t0, 3000), NEEDS), Some(Tier::Low));
        assert_eq!(d.tier(), Tier::Low);
        assert!(!d.probing());
    }

    #[test]
    fn needs_pick_the_best_fitting_tier() {
        assert_eq!(NEEDS.fitting(2_000_000), Tier::High);
        assert_eq!(NEEDS.fitting(900_000), Tier::High);
        assert_eq!(NEEDS.fitting(300_000), Tier::Low);
        assert_eq!(NEEDS.fitting(80_000), Tier::AudioOnly);
    }

    #[test]
    fn loss_is_measured_over_a_second_of_reports() {
        let t0 = Instant::now();
        let mut w = LossWindow::default();
        assert_eq!(
            w.report(t0, 0, 1000),
            None,
            "the first report starts the span"
        );
        // Reports 100 ms apart say nothing until the span is a second long.
        assert_eq!(w.report(ms(t0, 100), 0, 1010), None);
        assert_eq!(w.report(ms(t0, 500), 20, 1050), None);
        // 100 packets expected in the second, 25 of them lost.
        assert_eq!(w.report(ms(t0, 1000), 25, 1100), Some(0.25));
        // Nothing sent: no figure.
        assert_eq!(w.report(ms(t0, 2000), 25, 1100), None);
        assert_eq!(w.report(ms(t0, 3000), 25, 1200), Some(0.0));
        // Sequence numbers wrap through the 32-bit extended counter.
        let mut w = LossWindow::default();
        w.report(t0, 0, u32::MAX - 9);
        assert_eq!(w.report(ms(t0, 1000), 5, 10), Some(0.25));
    }

    #[test]
    fn reports_alternating_clean_and_lossy_still_move_an_overloaded_receiver_down() {
        let t0 = Instant::now();
        let mut d = Downlink::new(DownlinkPolicy::default());
        // Every 100 ms a report; over each second 40 % of packets are lost,
        // but most single reports show none.
        let (mut lost, mut seq) = (0u32, 0u32);
        let mut moved = None;
        for i in 0..60u64 {
            seq += 10;
            if i % 5 == 0 {
                lost += 20;
            }
            let now = ms(t0, i * 100);
            let totals = ReportTotals {
                lost,
                highest_seq: seq,
            };
            d.receive(now, None, Some(totals), None, 900_000);
            if d.decide(now, NEEDS).is_some() && moved.is_none() {
                moved = Some(i * 100);
            }
        }
        assert_eq!(
            d.tier(),
            Tier::AudioOnly,
            "40 % of 900 kbit/s fits no video"
        );
        assert!(moved.is_some_and(|t| t <= 3000), "{moved:?}");
    }

    /// Reports every 100 ms on a stream of 20 packets a second, losing
    /// `loss` of them, from `from` to `to` ms; returns the moves.
    fn stream(
        d: &mut Downlink,
        t0: Instant,
        (from, to): (u64, u64),
        totals: &mut (u32, u32),
        loss: f64,
    ) -> Vec<(u64, Tier)> {
        let mut moves = Vec::new();
        let mut at = from;
        while at <= to {
            totals.1 += 2;
            totals.0 += (2.0 * loss).round() as u32;
            let r = ReportTotals {
                lost: totals.0,
                highest_seq: totals.1,
            };
            let rate = NEEDS.of(d.sending());
            d.receive(ms(t0, at), None, Some(r), Some(r), rate);
            if let Some(t) = d.decide(ms(t0, at), NEEDS) {
                moves.push((at, t));
            }
            at += 100;
        }
        moves
    }

    #[test]
    fn a_trial_ends_at_its_first_loss_counted_from_its_own_first_report() {
        let t0 = Instant::now();
        let mut d = Downlink::new(DownlinkPolicy::default());
        let mut totals = (0, 0);
        stream(&mut d, t0, (0, 2000), &mut totals, 0.5);
        assert_eq!(d.tier(), Tier::Low);
        // The stream paused and resumes with losses from before counted in
        // its first report: the trial does not end on that.
        let moves = stream(&mut d, t0, (2100, 14_000), &mut totals, 0.0);
        assert_eq!(moves.len(), 1, "{moves:?}");
        assert!(d.probing());
        totals.0 += 30;
        let moves = stream(&mut d, t0, (14_100, 14_600), &mut totals, 0.0);
        assert!(moves.is_empty(), "{moves:?}");
        assert!(d.probing());
        // Then one report in two loses a packet: back at once.
        let moves = stream(&mut d, t0, (14_700, 16_000), &mut totals, 0.25);
        assert_eq!(moves.first().map(|m| m.1), Some(Tier::Low), "{moves:?}");
        assert!(moves[0].0 <= 15_300, "{moves:?}");
    }

    /// Every 2 s from `from` to `to` (ms), 100 video packets sent and
    /// `share` of them asked for again; returns the moves.
    fn requests_only(
        d: &mut Downlink,
        t0: Instant,
        (from, to): (u64, u64),
        totals: &mut RequestTotals,
        share: f64,
    ) -> Vec<(u64, Tier)> {
        let mut moves = Vec::new();
        let mut at = from;
        while at <= to {
            totals.sent += 100;
            totals.asked += (100.0 * share).round() as u64;
            d.requests(ms(t0, at), *totals, NEEDS.of(d.sending()));
            if let Some(t) = d.decide(ms(t0, at), NEEDS) {
                moves.push((at, t));
            }
            at += 2000;
        }
        moves
    }

    #[test]
    fn a_receiver_that_only_asks_again_is_placed_by_what_it_asks_for() {
        let t0 = Instant::now();
        let mut d = Downlink::new(DownlinkPolicy::default());
        let mut totals = RequestTotals::default();
        // It reported a clean link for 2 s, then its reports stop and it
        // asks for 60 % of what the high tier sends: 10 s after its last
        // report it is placed by its requests, and moves down a span later,
        // to the low tier (40 % of 900 kbit/s, twice over, carries it).
        stream(&mut d, t0, (0, 2000), &mut (0, 0), 0.0);
        let moves = requests_only(&mut d, t0, (2000, 16_000), &mut totals, 0.6);
        assert_eq!(moves, vec![(14_000, Tier::Low)]);
        // Asking for nothing in the low tier, it is tried up after a while.
        let moves = requests_only(&mut d, t0, (18_000, 44_000), &mut totals, 0.0);
        assert_eq!(moves.first().map(|m| m.1), Some(Tier::High), "{moves:?}");
    }

    #[test]
    fn requests_count_for_nothing_while_reports_come() {
        let t0 = Instant::now();
        let mut d = Downlink::new(DownlinkPolicy::default());
        let mut totals = RequestTotals::default();
        let mut reported = (0, 0);
        for at in (0..10_000).step_by(2000) {
            // A browser asks for a packet and reports it later recovered.
            stream(&mut d, t0, (at, at + 1900), &mut reported, 0.0);
            totals.sent += 100;
            totals.asked += 60;
            d.requests(ms(t0, at + 1950), totals, NEEDS.high);
            assert_eq!(d.decide(ms(t0, at + 1950), NEEDS), None);
        }
        assert_eq!(d.tier(), Tier::High);
        // Nor do they before its first report: a GStreamer receiver over
        // a relay sent its first 10 s after joining, and asked for more
        // than 10 % of a link that lost 5 % meanwhile.
        let mut d = Downlink::new(DownlinkPolicy::default());
        let mut totals = RequestTotals::default();
        let moves = requests_only(&mut d, t0, (0, 30_000), &mut totals, 0.6);
        assert!(moves.is_empty(), "{moves:?}");
        // A span that sent almost nothing says nothing.
        let mut d = Downlink::new(DownlinkPolicy::default());
        let mut totals = RequestTotals::default();
        for at in (0..10_000).step_by(2000) {
            totals.sent += 5;
            totals.asked += 5;
            d.requests(ms(t0, at), totals, NEEDS.high);
            assert_eq!(d.decide(ms(t0, at), NEEDS), None);
        }
    }

    #[test]
    fn from_audio_only_trials_wait_longer() {
        let t0 = Instant::now();
        let mut d = Downlink::new(DownlinkPolicy::default());
        let mut totals = (0, 0);
        stream(&mut d, t0, (0, 2000), &mut totals, 0.95);
        assert_eq!(d.tier(), Tier::AudioOnly);
        let moves = stream(&mut d, t0, (2100, 60_000), &mut totals, 0.0);
        let first = moves.first().map(|m| m.0).unwrap_or(u64::MAX);
        assert!(
            (45_000..=50_000).contains(&first),
            "first trial from audio-only: {moves:?}"
        );
    }
}
