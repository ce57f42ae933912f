//! What a receiver's RTCP says about the streams the room sends it: the
//! loss, jitter and round trip of its reception reports on our audio and
//! video SSRCs, and its receiver-side estimate of its downlink (REMB,
//! negotiated as `goog-remb`). Parsing is the `rtcp` crate's; this module
//! picks out what the downlink estimate needs.
//!
//! [`watch_receiver_feedback`] hooks the parse onto a webrtcbin's RTP
//! session: each RTCP packet that carries something about our streams is
//! posted as a [`MediaEvent::Feedback`](super::MediaEvent::Feedback).

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtcp::receiver_report::ReceiverReport;
use rtcp::reception_report::ReceptionReport;
use rtcp::sender_report::SenderReport;

/// A reception report about one of the streams we send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reception {
    /// The stream reported on (our SSRC).
    pub ssrc: u32,
    /// Share of its packets lost since the previous report, 0.0–1.0.
    pub fraction_lost: f64,
    /// Packets lost since the stream began (never below zero: see
    /// [`cumulative_lost`]).
    pub total_lost: u32,
    /// The extended highest sequence number received: with `total_lost`,
    /// the loss over any span of reports.
    pub highest_seq: u32,
    /// Interarrival jitter, in RTP timestamp units.
    pub jitter: u32,
}

/// What one RTCP packet from a receiver says about what we send it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Feedback {
    /// Reports on our streams.
    pub receptions: Vec<Reception>,
    /// The receiver's estimate of what its downlink carries, bit/s.
    pub remb: Option<u64>,
}

impl Feedback {
    /// Nothing about our streams.
    pub fn is_empty(&self) -> bool {
        self.receptions.is_empty() && self.remb.is_none()
    }
}

/// A report's cumulative number of packets lost, a signed 24-bit field
/// (RFC 3550 6.4.1): expected minus received, which goes below zero when
/// duplicates arrive, as retransmitted packets do. Below zero, nothing was
/// lost.
fn cumulative_lost(field: u32) -> u32 {
    let field = field & 0x00ff_ffff;
    if field & 0x0080_0000 != 0 {
        0
    } else {
        field
    }
}

/// Picks out of a compound RTCP packet what concerns the streams `ours`.
/// A packet that does not parse says nothing (browsers only send valid
/// ones; a damaged one is no reason to act).
pub fn parse(data: &[u8], ours: &[u32]) -> Feedback {
    let mut out = Feedback::default();
    let mut buf = Bytes::copy_from_slice(data);
    let Ok(packets) = rtcp::packet::unmarshal(&mut buf) else {
        return out;
    };
    let mut take = |reports: &[ReceptionReport]| {
        for r in reports.iter().filter(|r| ours.contains(&r.ssrc)) {
            out.receptions.push(Reception {
                ssrc: r.ssrc,
                fraction_lost: f64::from(r.fraction_lost) / 256.0,
                total_lost: cumulative_lost(r.total_lost),
                highest_seq: r.last_sequence_number,
                jitter: r.jitter,
            });
        }
    };
    let mut remb = None;
    for p in &packets {
        let any = p.as_any();
        if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
            take(&rr.reports);
        } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
            take(&sr.reports);
        } else if let Some(e) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
            if e.ssrcs.iter().any(|s| ours.contains(s)) && e.bitrate.is_finite() {
                remb = Some(e.bitrate.max(0.0) as u64);
            }
        }
    }
    out.remb = remb;
    out
}

/// How often the RTP session sends a sender its transport-wide congestion
/// control feedback.
pub const TWCC_FEEDBACK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// Paces the TWCC feedback the session sends. Left alone, it sends one
/// with every video frame it receives (the frame's last packet): at 30 fps
/// some 20 kbit/s of feedback on the participant's downlink, a quarter of a
/// narrow link's worth, crowding out the audio of a receiver that has
/// nothing else left. Every 200 ms is as often as congestion control needs.
fn pace_twcc_feedback(session: &glib::Object) {
    if session.find_property("twcc-feedback-interval").is_some() {
        session.set_property(
            "twcc-feedback-interval",
            TWCC_FEEDBACK_INTERVAL.as_nanos() as u64,
        );
    }
}

/// Calls `on_feedback` with what each incoming RTCP packet of `webrtcbin`
/// says about the streams `ours`. The callback runs on the receive thread:
/// it must only post.
/// It also paces the TWCC feedback its RTP session sends.
pub fn watch_receiver_feedback(
    webrtcbin: &gst::Element,
    ours: [u32; 2],
    on_feedback: impl Fn(Feedback) + Send + Sync + Clone + 'static,
) {
    let Some(rtpbin) = webrtcbin
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("rtpbin"))
        .and_then(|e| e.downcast::<gst::Bin>().ok())
    else {
        return;
    };
    rtpbin.connect_element_added(move |_, element| {
        if element.factory().is_none_or(|f| f.name() != "rtpsession") {
            return;
        }
        let session = element.property::<glib::Object>("internal-session");
        pace_twcc_feedback(&session);
        let on_feedback = on_feedback.clone();
        session.connect("on-receiving-rtcp", false, move |values| {
            let buffer = values.get(1).and_then(|v| v.get::<gst::Buffer>().ok())?;
            let Ok(map) = buffer.map_readable() else {
                return None;
            };
            let feedback = parse(map.as_slice(), &ours);
            if !feedback.is_empty() {
                on_feedback(feedback);
            }
            None
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtcp::packet::Packet;

    fn compound(packets: Vec<Box<dyn Packet + Send + Sync>>) -> Vec<u8> {
        let mut out = Vec::new();
        for p in packets {
            out.extend_from_slice(&p.marshal().unwrap());
        }
        out
    }

    fn report(ssrc: u32, fraction_lost: u8) -> ReceptionReport {
        ReceptionReport {
            ssrc,
            fraction_lost,
            total_lost: 7,
            last_sequence_number: 1000,
            jitter: 90,
            last_sender_report: 0,
            delay: 0,
        }
    }

    #[test]
    fn takes_reports_on_our_streams_and_the_estimate() {
        let data = compound(vec![
            Box::new(ReceiverReport {
                ssrc: 99,
                reports: vec![report(1, 64), report(555, 255), report(2, 0)],
                profile_extensions: Bytes::new(),
            }),
            Box::new(ReceiverEstimatedMaximumBitrate {
                sender_ssrc: 99,
                bitrate: 250_000.0,
                ssrcs: vec![2, 1],
            }),
        ]);
        let f = parse(&data, &[1, 2]);
        assert_eq!(f.receptions.len(), 2, "{f:?}");
        assert_eq!(f.receptions[0].ssrc, 1);
        assert!((f.receptions[0].fraction_lost - 0.25).abs() < 1e-9);
        assert_eq!(f.receptions[1].fraction_lost, 0.0);
        // REMB's mantissa keeps 18 bits: 250 000 is exact.
        assert_eq!(f.remb, Some(250_000));
    }

    #[test]
    fn a_negative_cumulative_loss_is_no_loss() {
        let mut r = report(1, 0);
        // -1 in 24 bits: one duplicate more than the packets lost.
        r.total_lost = 0x00ff_ffff;
        let data = compound(vec![Box::new(ReceiverReport {
            ssrc: 99,
            reports: vec![r],
            profile_extensions: Bytes::new(),
        })]);
        assert_eq!(parse(&data, &[1]).receptions[0].total_lost, 0);
        assert_eq!(cumulative_lost(0x007f_ffff), 0x007f_ffff);
        assert_eq!(cumulative_lost(12), 12);
    }

    #[test]
    fn says_nothing_of_other_streams_or_garbage() {
        let data = compound(vec![Box::new(ReceiverEstimatedMaximumBitrate {
            sender_ssrc: 99,
            bitrate: 1e6,
            ssrcs: vec![7],
        })]);
        assert!(parse(&data, &[1, 2]).is_empty());
        assert!(parse(&[0x80, 0xc9, 0xff, 0xff, 1, 2], &[1, 2]).is_empty());
        assert!(parse(&[], &[1, 2]).is_empty());
    }
}
