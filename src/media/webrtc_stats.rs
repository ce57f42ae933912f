//! What `webrtcbin`'s `get-stats` says about one participant's connection,
//! as a typed [`StatsSample`], and the live figures two samples give
//! ([`LinkFigures`]: bitrates, loss, jitter, round-trip time).
//!
//! `get-stats` answers with one structure whose fields are structures named
//! after the W3C stats types. Tessera reads four of them:
//!
//! | structure | fields read |
//! |---|---|
//! | `inbound-rtp` (what the participant sends us) | `bytes-received`, `packets-received`, `packets-lost`, `jitter` (s) |
//! | `outbound-rtp` (what we send it) | `bytes-sent` |
//! | `remote-inbound-rtp` (its receiver reports on our streams) | `round-trip-time` (s) |
//!
//! Parsing is a pure function of the structure, so it is tested on
//! structures built by hand.

use std::time::Duration;

use gstreamer as gst;

/// Counters and latest values of one participant's connection, summed over
/// its streams (audio, camera, screen).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StatsSample {
    /// RTP bytes received from the participant.
    pub bytes_received: u64,
    /// RTP bytes sent to the participant.
    pub bytes_sent: u64,
    /// RTP packets received from the participant.
    pub packets_received: u64,
    /// Packets from the participant that never arrived (cumulative; may
    /// dip when duplicates arrive, as RFC 3550 counts them).
    pub packets_lost: i64,
    /// Worst interarrival jitter of its incoming streams, seconds.
    pub jitter: Option<f64>,
    /// Worst round-trip time its receiver reports give, seconds.
    pub rtt: Option<f64>,
}

/// A number field of any integer width, as webrtcbin's versions differ.
fn int_field(s: &gst::StructureRef, name: &str) -> Option<i128> {
    s.get::<u64>(name)
        .map(i128::from)
        .or_else(|_| s.get::<i64>(name).map(i128::from))
        .or_else(|_| s.get::<u32>(name).map(i128::from))
        .or_else(|_| s.get::<i32>(name).map(i128::from))
        .ok()
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl StatsSample {
    /// Reads the reply of `get-stats`. Unknown or missing fields count as
    /// absent, never as an error: a connection still being set up has few.
    pub fn parse(stats: &gst::StructureRef) -> StatsSample {
        let mut out = StatsSample::default();
        for (_, value) in stats.iter() {
            let Ok(s) = value.get::<gst::Structure>() else {
                continue;
            };
            match s.name().as_str() {
                "inbound-rtp" => {
                    let count = |f| int_field(&s, f).unwrap_or(0);
                    out.bytes_received += count("bytes-received").max(0) as u64;
                    out.packets_received += count("packets-received").max(0) as u64;
                    out.packets_lost += count("packets-lost") as i64;
                    let jitter = s.get::<f64>("jitter").ok().filter(|j| j.is_finite());
                    out.jitter = max_opt(out.jitter, jitter);
                }
                "outbound-rtp" => {
                    out.bytes_sent += int_field(&s, "bytes-sent").unwrap_or(0).max(0) as u64;
                }
                "remote-inbound-rtp" => {
                    // Zero until a receiver report with timing came back.
                    let rtt = s
                        .get::<f64>("round-trip-time")
                        .ok()
                        .filter(|r| r.is_finite() && *r > 0.0);
                    out.rtt = max_opt(out.rtt, rtt);
                }
                _ => {}
            }
        }
        out
    }
}

/// Live figures of a participant's connection over the last interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkFigures {
    /// Bits per second received from the participant.
    pub inbound_bps: f64,
    /// Bits per second sent to it.
    pub outbound_bps: f64,
    /// Share of its packets lost during the interval, 0 to 1.
    pub loss_fraction: f64,
    /// Its packets lost since it joined.
    pub packets_lost: u64,
    /// Interarrival jitter of what it sends, milliseconds.
    pub jitter_ms: Option<f64>,
    /// Round-trip time to it, milliseconds.
    pub rtt_ms: Option<f64>,
}

impl LinkFigures {
    /// Figures from the sample `now`, taken `elapsed` after `prev` (None for
    /// the first sample: rates are zero, loss is counted since the start).
    pub fn between(
        prev: Option<&StatsSample>,
        now: &StatsSample,
        elapsed: Duration,
    ) -> LinkFigures {
        let base = prev.copied().unwrap_or_default();
        let secs = elapsed.as_secs_f64();
        let rate = |now: u64, then: u64| {
            if prev.is_some() && secs > 0.0 {
                now.saturating_sub(then) as f64 * 8.0 / secs
            } else {
                0.0
            }
        };
        let lost = (now.packets_lost - base.packets_lost).max(0) as f64;
        let received = now.packets_received.saturating_sub(base.packets_received) as f64;
        LinkFigures {
            inbound_bps: rate(now.bytes_received, base.bytes_received),
            outbound_bps: rate(now.bytes_sent, base.bytes_sent),
            loss_fraction: if lost + received > 0.0 {
                lost / (lost + received)
            } else {
                0.0
            },
            packets_lost: now.packets_lost.max(0) as u64,
            jitter_ms: now.jitter.map(|j| j * 1000.0),
            rtt_ms: now.rtt.map(|r| r * 1000.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply() -> gst::Structure {
        gst::init().unwrap();
        let audio_in = gst::Structure::builder("inbound-rtp")
            .field("ssrc", 1u32)
            .field("bytes-received", 10_000u64)
            .field("packets-received", 100u64)
            .field("packets-lost", 4i64)
            .field("jitter", 0.002f64)
            .build();
        let video_in = gst::Structure::builder("inbound-rtp")
            .field("ssrc", 2u32)
            .field("bytes-received", 90_000u64)
            .field("packets-received", 300u64)
            .field("packets-lost", 1i64)
            .field("jitter", 0.005f64)
            .build();
        let video_out = gst::Structure::builder("outbound-rtp")
            .field("bytes-sent", 50_000u64)
            .field("packets-sent", 80u64)
            .build();
        let remote_in = gst::Structure::builder("remote-inbound-rtp")
            .field("round-trip-time", 0.040f64)
            .field("fraction-lost", 0.0f64)
            .build();
        let transport = gst::Structure::builder("transport")
            .field("bytes-received", 1_000_000u64)
            .build();
        gst::Structure::builder("application/x-webrtc-stats")
            .field("RTCInboundRTPAudioStream_1", audio_in)
            .field("RTCInboundRTPVideoStream_2", video_in)
            .field("RTCOutboundRTPVideoStream_3", video_out)
            .field("RTCRemoteInboundRTPVideoStream_3", remote_in)
            .field("transport_1", transport)
            .field("not-a-structure", 7i32)
            .build()
    }

    #[test]
    fn sums_streams_and_takes_the_worst_jitter_and_rtt() {
        let s = StatsSample::parse(&reply());
        assert_eq!(
            s,
            StatsSample {
                bytes_received: 100_000,
                bytes_sent: 50_000,
                packets_received: 400,
                packets_lost: 5,
                jitter: Some(0.005),
                rtt: Some(0.040),
            }
        );
    }

    #[test]
    fn a_connection_being_set_up_has_nothing_yet() {
        gst::init().unwrap();
        let empty = gst::Structure::new_empty("application/x-webrtc-stats");
        assert_eq!(StatsSample::parse(&empty), StatsSample::default());
        // An RTT of zero means no timed receiver report yet.
        let early = gst::Structure::builder("application/x-webrtc-stats")
            .field(
                "r",
                gst::Structure::builder("remote-inbound-rtp")
                    .field("round-trip-time", 0.0f64)
                    .build(),
            )
            .build();
        assert_eq!(StatsSample::parse(&early).rtt, None);
    }

    #[test]
    fn integer_widths_vary_between_versions() {
        gst::init().unwrap();
        let s = gst::Structure::builder("application/x-webrtc-stats")
            .field(
                "i",
                gst::Structure::builder("inbound-rtp")
                    .field("bytes-received", 1200u32)
                    .field("packets-received", 3i32)
                    .field("packets-lost", -1i32)
                    .build(),
            )
            .build();
        let p = StatsSample::parse(&s);
        assert_eq!(
            (p.bytes_received, p.packets_received, p.packets_lost),
            (1200, 3, -1)
        );
    }

    #[test]
    fn figures_over_an_interval() {
        let then = StatsSample {
            bytes_received: 100_000,
            bytes_sent: 50_000,
            packets_received: 400,
            packets_lost: 5,
            jitter: Some(0.004),
            rtt: None,
        };
        let now = StatsSample {
            bytes_received: 350_000,
            bytes_sent: 150_000,
            packets_received: 590,
            packets_lost: 15,
            jitter: Some(0.006),
            rtt: Some(0.025),
        };
        let f = LinkFigures::between(Some(&then), &now, Duration::from_secs(2));
        assert_eq!(f.inbound_bps, 1_000_000.0);
        assert_eq!(f.outbound_bps, 400_000.0);
        assert!((f.loss_fraction - 0.05).abs() < 1e-9, "{}", f.loss_fraction);
        assert_eq!(f.packets_lost, 15);
        assert_eq!(f.jitter_ms, Some(6.0));
        assert_eq!(f.rtt_ms, Some(25.0));
    }

    #[test]
    fn the_first_sample_has_no_rates_and_counters_never_go_backwards() {
        let now = StatsSample {
            bytes_received: 10_000,
            packets_received: 95,
            packets_lost: 5,
            ..StatsSample::default()
        };
        let first = LinkFigures::between(None, &now, Duration::from_secs(2));
        assert_eq!((first.inbound_bps, first.outbound_bps), (0.0, 0.0));
        assert!((first.loss_fraction - 0.05).abs() < 1e-9);
        // A restarted stream resets webrtcbin's counters: no negative rate.
        let restarted = StatsSample {
            bytes_received: 1_000,
            packets_received: 10,
            packets_lost: -2,
            ..StatsSample::default()
        };
        let f = LinkFigures::between(Some(&now), &restarted, Duration::from_secs(2));
        assert_eq!(f.inbound_bps, 0.0);
        assert_eq!(f.loss_fraction, 0.0);
        assert_eq!(f.packets_lost, 0);
        // No time passed: no rate rather than infinity.
        let f = LinkFigures::between(Some(&now), &now, Duration::ZERO);
        assert_eq!(f.inbound_bps, 0.0);
    }
}
