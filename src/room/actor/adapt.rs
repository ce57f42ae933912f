//! The room actor's downlink concern: each receiver's feedback (REMB and
//! reception reports, [`MediaEvent::Feedback`](crate::media::MediaEvent))
//! goes into its [`Downlink`], which places it in a tier; the actor moves
//! its video to that tier's encoder and tells the client when a move
//! settles. What each tier needs is measured: the bytes each encoder put
//! out over the last stats interval. The reports on our audio also tell
//! the receiver's Opus encoders how much loss to expect, so that they put
//! in the in-band FEC it needs ([`ExpectedLoss`](crate::room::audio_loss::ExpectedLoss)).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::RoomActor;
use crate::ids::{CodecFamily, ParticipantId, Tier};
use crate::media::rtcp_feedback::Reception;
use crate::media::EncoderOutput;
use crate::protocol::ServerMessage;
use crate::room::audio_loss::{shared_percent, wants_redundancy};
use crate::room::downlink::{Needs, ReportTotals, RequestTotals, AUDIO_RESERVE};

/// RTP, SRTP and UDP/IP headers on top of the encoded video (about 60
/// bytes on packets of 1200).
const OVERHEAD: f64 = 1.06;

/// What an encoder puts out before it was ever measured, bit/s: the low
/// tier's template target.
const LOW_UNMEASURED: u64 = 150_000;
/// Likewise, the high tier's.
const HIGH_UNMEASURED: u64 = 1_500_000;

/// How much of a new measurement goes into the running figure.
const SMOOTHING: f64 = 0.5;

/// A receiver's downlink as the admin API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownlinkFigures {
    /// The estimate of what its link carries, bit/s, once there is feedback.
    pub estimate: Option<u64>,
    /// The tier it is placed in.
    pub tier: Tier,
    /// Whether the tier above is on trial now.
    pub probing: bool,
    /// Audio packets sent to it with a redundant block (RED), when its
    /// offer had RED.
    pub redundant_audio: Option<u64>,
}

/// The video bit rate each encoder puts out, smoothed, kept after it stops.
#[derive(Debug, Default)]
pub(super) struct EncodingRates {
    /// Bytes counted so far per encoder, at the last update.
    bytes: HashMap<(CodecFamily, Tier), u64>,
    /// Smoothed bit/s per encoder.
    rates: HashMap<(CodecFamily, Tier), f64>,
}

impl EncodingRates {
    /// Takes in the encoders' totals after `elapsed`.
    pub(super) fn update(&mut self, outputs: &[EncoderOutput], elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        for o in outputs {
            let key = (o.family, o.tier);
            let before = self.bytes.insert(key, o.bytes);
            let (Some(before), true) = (before, o.running && secs > 0.5) else {
                continue;
            };
            let bps = o.bytes.saturating_sub(before) as f64 * 8.0 / secs;
            if bps <= 0.0 {
                continue;
            }
            let rate = self.rates.entry(key).or_insert(bps);
            *rate += SMOOTHING * (bps - *rate);
        }
    }

    /// What each tier of `family` needs on a receiver's link, audio included.
    pub(super) fn needs(&self, family: CodecFamily) -> Needs {
        let of = |tier, unmeasured: u64| {
            let video = self
                .rates
                .get(&(family, tier))
                .copied()
                .unwrap_or(unmeasured as f64);
            (video * OVERHEAD) as u64 + AUDIO_RESERVE
        };
        Needs {
            low: of(Tier::Low, LOW_UNMEASURED),
            high: of(Tier::High, HIGH_UNMEASURED),
        }
    }
}

impl RoomActor {
    /// A receiver's RTCP said something about what we send it.
    pub(super) fn on_feedback(
        &mut self,
        id: &ParticipantId,
        remb: Option<u64>,
        video: Option<Reception>,
        audio: Option<Reception>,
    ) {
        tracing::trace!(participant = %id, ?remb, ?video, ?audio, "downlink feedback");
        let Some(p) = self.participants.get_mut(id) else {
            return;
        };
        let Some(family) = p.media.as_ref().map(|m| m.family()) else {
            return;
        };
        let needs = self.rates.needs(family);
        let rate = needs.of(p.downlink.sending());
        let totals = |r: Reception| ReportTotals {
            lost: r.total_lost,
            highest_seq: r.highest_seq,
        };
        let now = Instant::now();
        p.downlink
            .receive(now, remb, video.map(totals), audio.map(totals), rate);
        let expect = audio.and_then(|a| p.audio_loss.report(now, totals(a)));
        if let (Some(percent), Some(pm)) = (expect, p.media.as_mut()) {
            tracing::debug!(participant = %id, percent, "audio loss to expect");
            pm.expect_audio_loss(percent);
            self.expect_shared_audio_loss();
        }
        self.place(id);
    }

    /// Places a receiver's video, then tells its audio whether to carry
    /// redundancy, which depends on the tier and on the loss.
    fn place(&mut self, id: &ParticipantId) {
        self.place_video(id);
        let congestion = self
            .registry
            .downlink_policy()
            .unwrap_or_default()
            .congestion_loss;
        if let Some(p) = self.participants.get_mut(id) {
            let percent = p.audio_loss.percent();
            if let Some(pm) = p.media.as_mut() {
                pm.set_audio_redundancy(wants_redundancy(percent, congestion, pm.tier()));
            }
        }
    }

    /// Tells the shared encode of the full mix the worst loss its
    /// listeners see.
    pub(super) fn expect_shared_audio_loss(&mut self) {
        let shared = shared_percent(self.participants.values().map(|p| &p.audio_loss));
        self.media.expect_shared_audio_loss(shared);
    }

    /// Places every receiver again (time alone settles trials, and a
    /// receiver that sends no reports is placed by its requests), and
    /// publishes their estimates.
    pub(super) fn place_all(&mut self) {
        let now = Instant::now();
        for p in self.participants.values_mut() {
            let Some(pm) = p.media.as_ref() else {
                continue;
            };
            let (asked, sent) = pm.video_requests();
            let rate = self.rates.needs(pm.family()).of(p.downlink.sending());
            p.downlink
                .requests(now, RequestTotals { asked, sent }, rate);
        }
        let ids: Vec<_> = self.participants.keys().cloned().collect();
        for id in ids {
            self.place(&id);
            if let Some(estimate) = self
                .participants
                .get(&id)
                .and_then(|p| p.downlink.estimate())
            {
                self.metrics.downlink_estimate(&id, estimate);
            }
        }
    }

    /// Lets the receiver's downlink decide, and moves its video if the
    /// tier to send changed.
    fn place_video(&mut self, id: &ParticipantId) {
        let Some(p) = self.participants.get_mut(id) else {
            return;
        };
        let Some(pm) = p.media.as_mut() else {
            return;
        };
        if p.phone.is_some() {
            // A phone caller receives no video, whatever its link.
            return;
        }
        if p.parked {
            // Its direct connection carries its video; a branch that came
            // up after the pair connected is parked too.
            if pm.tier().has_video() {
                if let Err(e) = self.media.set_tier(pm, Tier::AudioOnly) {
                    warn!(participant = %id, "canvas not parked: {e:#}");
                }
            }
            return;
        }
        if self.registry.downlink_policy().is_none() {
            return;
        }
        let settled_before = p.downlink.tier();
        let needs = self.rates.needs(pm.family());
        let sent = p.downlink.decide(Instant::now(), needs);
        if let Some(tier) = sent {
            if let Err(e) = self.media.set_tier(pm, tier) {
                warn!(participant = %id, %tier, "tier not changed: {e:#}");
                return;
            }
        }
        // A trial that settles changes the tier placed in, not the one sent.
        let settled = p.downlink.tier();
        let estimate = p.downlink.estimate();
        if settled == settled_before {
            if let Some(tier) = sent {
                tracing::debug!(participant = %id, sending = %tier, "downlink trial");
            }
            return;
        }
        info!(
            participant = %id,
            from = %settled_before,
            to = %settled,
            estimate = estimate.unwrap_or(0),
            low_needs = needs.low,
            high_needs = needs.high,
            "downlink tier changed"
        );
        self.metrics.tier_changed(settled_before, settled);
        self.send(
            id,
            ServerMessage::Quality {
                tier: settled,
                estimate,
            },
        );
        self.count_tiers();
    }

    /// Publishes how many receivers each tier has.
    pub(super) fn count_tiers(&mut self) {
        let mut counts = [0i64; 3];
        for p in self.participants.values().filter(|p| p.media.is_some()) {
            counts[p.downlink.tier() as usize] += 1;
        }
        let counts: Vec<_> = Tier::ALL.into_iter().zip(counts).collect();
        self.metrics.set_tiers(&counts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(tier: Tier, bytes: u64, running: bool) -> EncoderOutput {
        EncoderOutput {
            family: CodecFamily::Vp8,
            tier,
            frames: 0,
            keyframes: 0,
            bytes,
            running,
        }
    }

    #[test]
    fn needs_follow_what_the_encoders_put_out() {
        let mut r = EncodingRates::default();
        let unmeasured = r.needs(CodecFamily::Vp8);
        assert_eq!(
            unmeasured.low,
            (150_000.0 * OVERHEAD) as u64 + AUDIO_RESERVE
        );
        let two = Duration::from_secs(2);
        r.update(&[output(Tier::High, 0, true)], two);
        // 125 kB in 2 s: 500 kbit/s.
        r.update(&[output(Tier::High, 125_000, true)], two);
        let needs = r.needs(CodecFamily::Vp8);
        assert_eq!(needs.high, (500_000.0 * OVERHEAD) as u64 + AUDIO_RESERVE);
        // Stopped, it keeps its last figure.
        r.update(&[output(Tier::High, 125_000, false)], two);
        assert_eq!(r.needs(CodecFamily::Vp8), needs);
        // The other family knows nothing yet.
        assert_eq!(r.needs(CodecFamily::H264), unmeasured);
    }
}
