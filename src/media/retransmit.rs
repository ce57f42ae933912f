//! A budget for the retransmissions we send a participant.
//!
//! Browsers ask again for every video packet they miss, and again each
//! round trip until it arrives. On a link that is already overloaded, that
//! more than doubles what we send: the retransmissions crowd out the new
//! packets (and the audio), and the loss the receiver reports says nothing
//! of what its link carries any more. So `webrtcbin`'s `rtprtxsend` honours
//! requests only within a budget: [`SHARE`] of the video packets sent,
//! saved up to at most [`BURST`]. On a clean link, with a lost packet now
//! and then, every request is honoured.
//!
//! When the participant's video moves to another tier, what was sent
//! before is of no use to it: the new stream starts from its own keyframe.
//! A browser that moved down from an overloaded link still asks for the
//! hundreds of packets it lost there, and resending them would fill the
//! narrow link again. So after [`Retransmits::new_stream`], requests for
//! packets sent before the new stream's first are dropped.
//!
//! The distinct packets a participant asks for, against those sent
//! ([`Retransmits::requests`]), measure its loss when it sends nothing
//! else (`room/downlink.rs`).

use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;

/// Retransmissions allowed per video packet sent.
pub const SHARE: f64 = 0.25;

/// Retransmissions that may be saved up for a burst of loss.
pub const BURST: f64 = 60.0;

/// The upstream event with which the RTP session asks for a packet again.
const REQUEST: &str = "GstRTPRetransmissionRequest";

/// A token bucket: earned by packets sent, spent by retransmissions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    tokens: f64,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget { tokens: BURST }
    }
}

impl Budget {
    /// A video packet was sent.
    pub fn sent(&mut self) {
        self.tokens = (self.tokens + SHARE).min(BURST);
    }

    /// Whether a retransmission may go now; spends it if so.
    pub fn allow(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Packets after a stream's first for which requests of packets before it
/// are still dropped; by then those have long left `rtprtxsend`'s history,
/// and sequence numbers this far apart are still told apart.
const FLOOR_PACKETS: u32 = 1000;

/// Where the current video stream began, in sequence numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StreamStart {
    /// A new stream begins with the next video packet.
    pending: bool,
    /// Its first packet's sequence number, and packets sent since.
    first: Option<(u16, u32)>,
}

impl StreamStart {
    /// The next video packet begins a new stream.
    pub fn restart(&mut self) {
        self.pending = true;
    }

    /// A video packet with sequence number `seq` was sent.
    pub fn sent(&mut self, seq: u16) {
        if std::mem::take(&mut self.pending) {
            self.first = Some((seq, 0));
        } else if let Some((first, n)) = self.first {
            self.first = (n < FLOOR_PACKETS).then_some((first, n + 1));
        }
    }

    /// Whether packet `seq` was sent before the current stream began.
    pub fn before(&self, seq: u16) -> bool {
        self.first
            .is_some_and(|(first, _)| (first.wrapping_sub(seq) as i16) > 0)
    }
}

/// Which video packets a receiver asked for again, to count each once
/// however often it asks: a bit per sequence number, cleared when that
/// number is sent anew.
#[derive(Clone)]
pub struct Asked {
    bits: Box<[u64; 1024]>,
    /// Distinct packets asked for.
    distinct: u64,
    /// Video packets sent.
    sent: u64,
}

impl Default for Asked {
    fn default() -> Asked {
        Asked {
            bits: Box::new([0; 1024]),
            distinct: 0,
            sent: 0,
        }
    }
}

impl std::fmt::Debug for Asked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asked")
            .field("distinct", &self.distinct)
            .field("sent", &self.sent)
            .finish()
    }
}

impl Asked {
    /// Packet `seq` was sent.
    pub fn sent(&mut self, seq: u16) {
        self.bits[usize::from(seq >> 6)] &= !(1u64 << (seq & 63));
        self.sent += 1;
    }

    /// The receiver asked for packet `seq` again.
    pub fn asked(&mut self, seq: u16) {
        let (word, bit) = (usize::from(seq >> 6), 1u64 << (seq & 63));
        if self.bits[word] & bit == 0 {
            self.bits[word] |= bit;
            self.distinct += 1;
        }
    }

    /// Distinct packets asked for, and packets sent, so far.
    pub fn totals(&self) -> (u64, u64) {
        (self.distinct, self.sent)
    }
}

#[derive(Debug, Default)]
struct State {
    budget: Budget,
    start: StreamStart,
    asked: Asked,
}

/// The retransmission rules of one participant's `webrtcbin`.
#[derive(Debug, Clone, Default)]
pub struct Retransmits(Arc<Mutex<State>>);

impl Retransmits {
    /// The participant's video starts a new stream (another tier's
    /// encoder) with the next packet: nothing sent before is resent.
    pub fn new_stream(&self) {
        self.lock().start.restart();
    }

    /// Distinct video packets the participant asked for again (those of
    /// an earlier stream aside), and video packets sent, so far.
    pub fn requests(&self) -> (u64, u64) {
        self.lock().asked.totals()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Puts every `rtprtxsend` that `webrtcbin` makes on a [`Budget`]; only
/// packets of payload type `video_pt` earn it and start streams.
pub fn limit_retransmissions(webrtcbin: &gst::Element, video_pt: u8) -> Retransmits {
    let rules = Retransmits::default();
    if let Some(bin) = webrtcbin.downcast_ref::<gst::Bin>() {
        let rules = rules.clone();
        bin.connect_deep_element_added(move |_, _, element| {
            if element.factory().is_some_and(|f| f.name() == "rtprtxsend") {
                put_on_budget(element, video_pt, rules.clone());
            }
        });
    }
    rules
}

fn put_on_budget(rtxsend: &gst::Element, video_pt: u8, rules: Retransmits) {
    let (Some(sink), Some(src)) = (rtxsend.static_pad("sink"), rtxsend.static_pad("src")) else {
        return;
    };
    let earn = rules.clone();
    sink.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |_, info| {
            let count = |b: &gst::BufferRef| {
                if let Some(seq) = video_seq(b, video_pt) {
                    let mut state = earn.lock();
                    state.budget.sent();
                    state.start.sent(seq);
                    state.asked.sent(seq);
                }
            };
            match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => count(b),
                Some(gst::PadProbeData::BufferList(l)) => l.iter().for_each(count),
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
    src.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        let Some(gst::PadProbeData::Event(ev)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(request) = ev.structure().filter(|s| s.name() == REQUEST) else {
            return gst::PadProbeReturn::Ok;
        };
        let mut state = rules.lock();
        // Sequence numbers are 16 bits; the event carries them widened.
        let seq = request.get::<u32>("seqnum").ok().map(|s| s as u16);
        if seq.is_some_and(|s| state.start.before(s)) {
            tracing::trace!(?seq, "retransmission of an earlier stream: not sent");
            return super::probes::swallow(info);
        }
        if let Some(seq) = seq {
            state.asked.asked(seq);
        }
        if !state.budget.allow() {
            tracing::debug!("retransmission over budget: not sent");
            return super::probes::swallow(info);
        }
        gst::PadProbeReturn::Ok
    });
}

/// The sequence number of an RTP packet of payload type `pt` (the low 7
/// bits of its second byte); None for other packets.
fn video_seq(b: &gst::BufferRef, pt: u8) -> Option<u16> {
    let mut head = [0u8; 4];
    (b.size() >= 12 && b.copy_to_slice(0, &mut head).is_ok() && head[0] >> 6 == 2).then_some(())?;
    (head[1] & 0x7f == pt).then(|| u16::from_be_bytes([head[2], head[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_link_gets_every_retransmission_and_a_storm_a_share() {
        let mut b = Budget::default();
        // A lost packet now and then, after a hundred sent: always resent.
        for _ in 0..10 {
            for _ in 0..100 {
                b.sent();
            }
            assert!(b.allow());
        }
        // A storm: a request for every packet sent. The saved-up burst
        // goes first, then one in four.
        let mut allowed = 0;
        for _ in 0..1000 {
            b.sent();
            allowed += usize::from(b.allow());
        }
        assert!((250..=250 + BURST as usize).contains(&allowed), "{allowed}");
    }

    #[test]
    fn a_packet_asked_for_again_and_again_counts_once_until_sent_anew() {
        let mut a = Asked::default();
        for seq in 0..100u16 {
            a.sent(seq);
        }
        for _ in 0..5 {
            a.asked(7);
            a.asked(64);
        }
        assert_eq!(a.totals(), (2, 100));
        // 65536 packets later, number 7 is another packet.
        for seq in 100..=u16::MAX {
            a.sent(seq);
        }
        for seq in 0..8u16 {
            a.sent(seq);
        }
        a.asked(7);
        a.asked(64);
        assert_eq!(a.totals(), (3, 65_544));
    }

    #[test]
    fn the_sequence_number_is_read_from_video_packets_only() {
        gst::init().unwrap();
        let rtp = gst::Buffer::from_slice([0x80u8, 0xe0, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(video_seq(&rtp, 96), Some(0x1234));
        assert_eq!(video_seq(&rtp, 111), None, "another payload type");
        let short = gst::Buffer::from_slice([0x80u8]);
        assert_eq!(video_seq(&short, 96), None);
        let not_rtp = gst::Buffer::from_slice([0x00u8, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(video_seq(&not_rtp, 96), None);
    }

    #[test]
    fn a_request_over_budget_is_swallowed_before_rtprtxsend() {
        gst::init().unwrap();
        let criticals = crate::media::probes::criticals();
        let rtx = gst::ElementFactory::make("rtprtxsend").build().unwrap();
        let rules = Retransmits::default();
        put_on_budget(&rtx, 96, rules.clone());
        let downstream = gst::Pad::builder(gst::PadDirection::Sink).build();
        rtx.static_pad("src").unwrap().link(&downstream).unwrap();
        downstream.set_active(true).unwrap();
        rtx.set_state(gst::State::Paused).unwrap();
        // Nothing sent yet: the saved-up burst is honoured, the rest refused.
        let asked = BURST as u32 + 20;
        for seq in 0..asked {
            let request = gst::Structure::builder(REQUEST)
                .field("seqnum", seq)
                .field("ssrc", 1234u32)
                .build();
            downstream.push_event(gst::event::CustomUpstream::new(request));
        }
        assert_eq!(
            rules.requests().0,
            u64::from(asked),
            "every request counted"
        );
        assert_eq!(
            crate::media::probes::criticals(),
            criticals,
            "refused requests are swallowed, not handed back empty"
        );
        rtx.set_state(gst::State::Null).unwrap();
    }

    #[test]
    fn after_a_new_stream_only_its_own_packets_are_resent() {
        let mut s = StreamStart::default();
        for seq in 65_000..65_500u32 {
            s.sent(seq as u16);
        }
        assert!(!s.before(65_100), "no new stream yet");
        s.restart();
        // The new stream's first packet wraps past zero.
        s.sent(65_530);
        for seq in 65_531..65_536u32 {
            s.sent(seq as u16);
        }
        s.sent(0);
        s.sent(1);
        assert!(s.before(65_499) && s.before(65_100) && s.before(65_529));
        assert!(!s.before(65_530) && !s.before(65_535) && !s.before(1));
        // Long after, the rule lapses: sequence numbers wrap round again.
        for seq in 2..2000u16 {
            s.sent(seq);
        }
        assert!(!s.before(1500));
        assert!(!s.before(65_499));
    }
}
