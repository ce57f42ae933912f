//! What a receiver's Opus decoder had to conceal: the audio packets lost
//! on the way (gaps in the sequence numbers that leave the jitter buffer),
//! less those the next packet's in-band FEC repairs (an Opus packet in
//! SILK or hybrid mode with its LBRR flag set carries a copy of the frame
//! before it). A browser reports the same figure as `concealedSamples`.

use serde::{Deserialize, Serialize};

/// Whether an Opus packet carries in-band FEC (LBRR) for the frame before
/// it. Only packets of one SILK or hybrid frame (TOC code 0) are read:
/// the header's first symbols (RFC 6716, 4.2.3: the mid channel's VAD
/// flag, then its LBRR flag) are coded at even odds, so the range coder
/// reads them as the first bits of the byte after the TOC.
pub fn opus_has_fec(packet: &[u8]) -> bool {
    let [toc, first, ..] = *packet else {
        return false;
    };
    let config = toc >> 3;
    let one_frame = toc & 0x3 == 0;
    // Configs 0–15 have a SILK layer; 16–31 are CELT only.
    // Configs 3, 7 and 11 are 60 ms, 2, 6 and 10 40 ms SILK frames: more
    // than one VAD flag precedes the LBRR flag, so skip them.
    let silk_20ms_or_less = config < 16 && (config >= 12 || config % 4 < 2);
    one_frame && silk_20ms_or_less && first & 0x40 != 0
}

/// Counts of one receiver's audio packets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioCounts {
    /// Packets that arrived.
    pub received: u64,
    /// Packets that never arrived.
    pub lost: u64,
    /// Lost packets that the next packet's FEC did not repair.
    pub concealed: u64,
}

impl AudioCounts {
    /// The share of the audio the decoder concealed.
    pub fn concealed_share(&self) -> Option<f64> {
        let all = self.received + self.lost;
        (all > 0).then(|| self.concealed as f64 / all as f64)
    }
}

/// Follows one stream's sequence numbers as packets leave the jitter
/// buffer, in order.
#[derive(Debug, Default, Clone)]
pub struct AudioGaps {
    last: Option<u16>,
    /// Counts so far.
    pub counts: AudioCounts,
}

/// Gaps this long or longer are a restart of the stream (a new SSRC, a
/// pause), not loss.
const RESTART: u16 = 1000;

impl AudioGaps {
    /// A packet `seq` arrived, with in-band FEC for the one before it or
    /// not.
    pub fn packet(&mut self, seq: u16, fec: bool) {
        if let Some(last) = self.last {
            let step = seq.wrapping_sub(last);
            if step == 0 || step >= u16::MAX / 2 {
                // A duplicate or a late packet: the jitter buffer lets
                // none through, and one would not be loss.
                return;
            }
            let missing = u64::from(step - 1);
            if step < RESTART && missing > 0 {
                self.counts.lost += missing;
                // Only the packet right before this one can be repaired
                // from it; the others in the gap are concealed.
                self.counts.concealed += missing - u64::from(fec);
            }
        }
        self.last = Some(seq);
        self.counts.received += 1;
    }

    /// Starts counting again, keeping the stream's position.
    pub fn reset(&mut self) {
        self.counts = AudioCounts::default();
    }
}

/// The sequence number and payload of an RTP packet, if it is one.
pub fn rtp_seq_and_payload(packet: &[u8]) -> Option<(u16, &[u8])> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return None;
    }
    let seq = u16::from_be_bytes([packet[2], packet[3]]);
    let csrcs = usize::from(packet[0] & 0x0f) * 4;
    let mut start = 12 + csrcs;
    if packet[0] & 0x10 != 0 {
        let ext = packet.get(start + 2..start + 4)?;
        start += 4 + usize::from(u16::from_be_bytes([ext[0], ext[1]])) * 4;
    }
    let mut end = packet.len();
    if packet[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*packet.last()?))?;
    }
    (start <= end).then(|| (seq, &packet[start..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_packet_is_repaired_by_the_next_ones_fec() {
        let mut g = AudioGaps::default();
        for (seq, fec) in [(1, true), (2, true), (4, true), (5, false), (7, false)] {
            g.packet(seq, fec);
        }
        assert_eq!(
            g.counts,
            AudioCounts {
                received: 5,
                lost: 2,
                concealed: 1
            }
        );
        // Two lost in a row: the first is concealed whatever follows.
        g.packet(10, true);
        assert_eq!(g.counts.lost, 4);
        assert_eq!(g.counts.concealed, 2);
        assert!((g.counts.concealed_share().unwrap() - 2.0 / 10.0).abs() < 1e-9);
    }

    #[test]
    fn wraps_duplicates_and_restarts_are_not_loss() {
        let mut g = AudioGaps::default();
        for seq in [65534, 65535, 0, 1, 1, 0] {
            g.packet(seq, false);
        }
        g.packet(30000, false);
        assert_eq!(g.counts.lost, 0);
        assert_eq!(g.counts.received, 5);
        g.reset();
        g.packet(30002, true);
        assert_eq!(
            g.counts,
            AudioCounts {
                received: 1,
                lost: 1,
                concealed: 0
            }
        );
    }

    #[test]
    fn rtp_payloads_are_found_past_csrcs_extensions_and_padding() {
        let mut p = vec![0x90, 111, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 1];
        p.extend([0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]);
        p.extend([0x0b, 0xc0, 0x01]);
        assert_eq!(
            rtp_seq_and_payload(&p),
            Some((0x1234, &[0x0b, 0xc0, 0x01][..]))
        );
        p[0] |= 0x20;
        p.extend([0, 2]);
        assert_eq!(
            rtp_seq_and_payload(&p),
            Some((0x1234, &[0x0b, 0xc0, 0x01][..]))
        );
        assert_eq!(rtp_seq_and_payload(&[0x80, 111, 0, 1]), None);
    }

    #[test]
    fn the_lbrr_flag_is_read_only_where_it_can_be() {
        // SILK wideband 20 ms (config 9), one frame, VAD and LBRR set.
        assert!(opus_has_fec(&[9 << 3, 0xc0, 0]));
        assert!(!opus_has_fec(&[9 << 3, 0x80, 0]), "no LBRR");
        assert!(!opus_has_fec(&[(9 << 3) | 1, 0xc0, 0]), "two frames");
        assert!(!opus_has_fec(&[10 << 3, 0xc0, 0]), "40 ms");
        assert!(opus_has_fec(&[13 << 3, 0x40, 0]), "hybrid");
        assert!(!opus_has_fec(&[20 << 3, 0xff, 0]), "CELT only");
        assert!(!opus_has_fec(&[9 << 3]));
    }

    /// Real packets from `opusenc`: with FEC on and loss expected, the
    /// flag is read as set in (nearly) every packet of a loud tone (SILK
    /// codes LBRR only after frames its VAD finds active); with FEC off,
    /// never.
    #[test]
    fn opusenc_packets_with_fec_read_as_such() {
        use gstreamer as gst;
        use gstreamer::prelude::*;
        gst::init().unwrap();
        let count = |fec: bool| -> (usize, usize) {
            let desc = format!(
                "audiotestsrc num-buffers=100 samplesperbuffer=960 wave=sine ! \
                 audio/x-raw,rate=48000,channels=1 ! opusenc inband-fec={fec} \
                 packet-loss-percentage=10 audio-type=voice bandwidth=wideband \
                 bitrate=32000 ! appsink name=out sync=false"
            );
            let p = gst::parse::launch(&desc)
                .unwrap()
                .downcast::<gst::Pipeline>()
                .unwrap();
            let sink = p
                .by_name("out")
                .unwrap()
                .downcast::<gstreamer_app::AppSink>()
                .unwrap();
            p.set_state(gst::State::Playing).unwrap();
            let (mut all, mut with) = (0, 0);
            while let Ok(s) = sink.pull_sample() {
                let map = s.buffer().unwrap().map_readable().unwrap();
                all += 1;
                with += usize::from(opus_has_fec(&map));
            }
            p.set_state(gst::State::Null).unwrap();
            (all, with)
        };
        let (all, with) = count(true);
        assert!(all >= 90 && with * 10 >= all * 9, "{with} of {all}");
        let (all, with) = count(false);
        assert!(all >= 90 && with == 0, "{with} of {all}");
    }
}
