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

/// Puts every `rtprtxsend` that `webrtcbin` makes on a [`Budget`]; only
/// packets of payload type `video_pt` earn it.
pub fn limit_retransmissions(webrtcbin: &gst::Element, video_pt: u8) {
    let Some(bin) = webrtcbin.downcast_ref::<gst::Bin>() else {
        return;
    };
    bin.connect_deep_element_added(move |_, _, element| {
        if element.factory().is_some_and(|f| f.name() == "rtprtxsend") {
            put_on_budget(element, video_pt);
        }
    });
}

fn put_on_budget(rtxsend: &gst::Element, video_pt: u8) {
    let (Some(sink), Some(src)) = (rtxsend.static_pad("sink"), rtxsend.static_pad("src")) else {
        return;
    };
    let budget = Arc::new(Mutex::new(Budget::default()));
    let earn = budget.clone();
    sink.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |_, info| {
            let count = |b: &gst::BufferRef| {
                if payload_type(b) == Some(video_pt) {
                    earn.lock().unwrap_or_else(|e| e.into_inner()).sent();
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
        if ev.structure().is_some_and(|s| s.name() == REQUEST)
            && !budget.lock().unwrap_or_else(|e| e.into_inner()).allow()
        {
            tracing::debug!("retransmission over budget: not sent");
            return gst::PadProbeReturn::Drop;
        }
        gst::PadProbeReturn::Ok
    });
}

/// The payload type of an RTP packet (the low 7 bits of its second byte).
fn payload_type(b: &gst::BufferRef) -> Option<u8> {
    let mut pt = [0u8; 2];
    (b.size() >= 12 && b.copy_to_slice(0, &mut pt).is_ok() && pt[0] >> 6 == 2)
        .then_some(pt[1] & 0x7f)
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
    fn the_payload_type_is_read_from_rtp_packets_only() {
        gst::init().unwrap();
        let rtp = gst::Buffer::from_slice([0x80u8, 0xe0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(payload_type(&rtp), Some(96));
        let short = gst::Buffer::from_slice([0x80u8]);
        assert_eq!(payload_type(&short), None);
        let not_rtp = gst::Buffer::from_slice([0x00u8, 0x60]);
        assert_eq!(payload_type(&not_rtp), None);
    }
}
