//! Redundant audio (RFC 2198, `red/48000/2`) for a receiver whose link
//! loses our audio.
//!
//! Browsers offer RED around Opus. When the offer has it, the audio
//! transceiver answers it (webrtcbin's `ulp-red`), and webrtcbin wraps
//! each Opus packet it sends in a RED packet (`rtpredenc`). How much
//! redundancy those packets carry is ours to say: none by default (one
//! byte more per packet), or the previous packet's Opus too, which rebuilds
//! a lost packet whole where in-band FEC rebuilds it coarsely. The room
//! turns it on per receiver from its reports ([`crate::room::audio_loss::wants_redundancy`]).
//!
//! webrtcbin answers RED as `red/48000`, without the channel count of
//! the offer's `red/48000/2` and without the `a=fmtp` that says its blocks
//! are Opus; [`red_as_offered`] writes it as the offer did, so that the
//! browser matches it to its own.
//!
//! What a browser sends us in RED, webrtcbin unwraps (its `rtpreddec`).
//! Chromium sends plain Opus, the first payload type of our answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;

/// How far back the redundant block reaches, in packets, when on: the one
/// before. Each step back adds a whole Opus packet to every packet.
const DISTANCE_ON: u32 = 1;

/// RED as negotiated with one receiver.
#[derive(Debug, Clone)]
pub struct RedAudio {
    /// The RED payload type of the offer.
    pub payload: u8,
    /// The Opus payload type its blocks carry.
    pub opus: u8,
    /// Packets sent with a redundant block.
    sent_redundant: Arc<AtomicU64>,
    /// Whether the counting probe is on the encoder yet.
    counting: bool,
    /// Whether the packets carry a redundant block now.
    on: bool,
}

impl RedAudio {
    /// RED with `payload` around Opus `opus`, redundancy off.
    pub fn new(payload: u8, opus: u8) -> RedAudio {
        RedAudio {
            payload,
            opus,
            sent_redundant: Arc::default(),
            counting: false,
            on: false,
        }
    }

    /// Packets sent with a redundant block so far.
    pub fn redundant_sent(&self) -> u64 {
        self.sent_redundant.load(Ordering::Relaxed)
    }

    /// Puts the previous packet in every packet sent through `audio_send`
    /// (webrtcbin's audio sink pad), or stops. Before negotiation, when
    /// webrtcbin has not built its RED encoder yet, nothing changes: the
    /// next call tries again.
    pub fn set(&mut self, audio_send: &gst::Pad, on: bool) {
        if on == self.on {
            return;
        }
        let Some(encoder) = red_encoder(audio_send) else {
            return;
        };
        if !self.counting {
            if let Some(src) = encoder.static_pad("src") {
                count_redundant(&src, self.sent_redundant.clone());
                self.counting = true;
            }
        }
        encoder.set_property("distance", if on { DISTANCE_ON } else { 0 });
        self.on = on;
    }
}

/// Makes the audio transceiver behind `audio_send` answer the offer's RED.
pub(super) fn answer_red(audio_send: &gst::Pad) {
    let trans = audio_send.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
    trans.set_property("fec-type", gst_webrtc::WebRTCFECType::UlpRed);
}

/// Gives RED in each audio m-line of an answer as browsers offer it: two
/// channels (`a=rtpmap:<red> red/48000/2`; webrtcbin writes no channel
/// count, which a browser matches to no codec of its offer), with blocks of
/// Opus (`a=fmtp:<red> <opus>/<opus>`; webrtcbin writes none).
pub(super) fn red_as_offered(sdp: &mut gst_sdp::SDPMessageRef, red: u8, opus: u8) {
    let of_red = format!("{red} ");
    for i in 0..sdp.medias_len() {
        let Some(media) = sdp.media_mut(i) else {
            continue;
        };
        if media.media() != Some("audio") || !media.formats().any(|f| f == red.to_string()) {
            continue;
        }
        let find = |media: &gst_sdp::SDPMediaRef, key: &str| {
            media
                .attributes()
                .position(|a| a.key() == key && a.value().is_some_and(|v| v.starts_with(&of_red)))
        };
        let rtpmap = gst_sdp::SDPAttribute::new("rtpmap", Some(&format!("{red} red/48000/2")));
        match find(media, "rtpmap") {
            Some(at) => {
                let _ = media.replace_attribute(at as u32, rtpmap);
            }
            None => media.add_attribute("rtpmap", rtpmap.value()),
        }
        if find(media, "fmtp").is_none() {
            media.add_attribute("fmtp", Some(&format!("{red} {opus}/{opus}")));
        }
    }
}

/// The `rtpredenc` webrtcbin put behind its sink pad `audio_send`: the pad
/// leads to a `clocksync` (see [`super::send_unheld`]), whose output feeds
/// a bin of `rtpulpfecenc` and `rtpredenc`.
fn red_encoder(audio_send: &gst::Pad) -> Option<gst::Element> {
    let clocksync = audio_send
        .downcast_ref::<gst::GhostPad>()?
        .target()?
        .parent_element()?;
    let fec_bin = clocksync
        .static_pad("src")?
        .peer()?
        .parent_element()?
        .downcast::<gst::Bin>()
        .ok()?;
    fec_bin
        .iterate_elements()
        .into_iter()
        .flatten()
        .find(|e| e.factory().is_some_and(|f| f.name() == "rtpredenc"))
}

/// Counts the RED packets leaving `src` whose first block is redundant
/// (the F bit of a RED block header).
fn count_redundant(src: &gst::Pad, count: Arc<AtomicU64>) {
    src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
            if carries_redundant_block(buffer) {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Whether an RTP packet's RED payload starts with a redundant block.
fn carries_redundant_block(buffer: &gst::BufferRef) -> bool {
    let Ok(map) = buffer.map_readable() else {
        return false;
    };
    red_payload(&map).is_some_and(|p| p.first().is_some_and(|b| b & 0x80 != 0))
}

/// The payload of an RTP packet: past the fixed header, the CSRCs and the
/// header extension.
fn red_payload(packet: &[u8]) -> Option<&[u8]> {
    let first = *packet.first()?;
    if first >> 6 != 2 {
        return None;
    }
    let mut at = 12 + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let words = u16::from_be_bytes([*packet.get(at + 2)?, *packet.get(at + 3)?]);
        at += 4 + 4 * usize::from(words);
    }
    packet.get(at..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_gives_red_as_browsers_offer_it() {
        gst::init().unwrap();
        let text = "v=0\r\no=- 1 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=rtpmap:111 OPUS/48000/2\r\n\
            a=rtpmap:63 red/48000\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96 63\r\na=rtpmap:96 VP8/90000\r\n\
            a=rtpmap:63 red/90000\r\n";
        let mut sdp = gst_sdp::SDPMessage::parse_buffer(text.as_bytes()).unwrap();
        red_as_offered(&mut sdp, 63, 111);
        red_as_offered(&mut sdp, 63, 111);
        let out = sdp.as_text().unwrap();
        let audio = &out[..out.find("m=video").unwrap()];
        assert_eq!(
            audio.matches("a=rtpmap:63 red/48000/2\r\n").count(),
            1,
            "{out}"
        );
        assert_eq!(audio.matches("a=rtpmap:63").count(), 1, "{out}");
        assert_eq!(audio.matches("a=fmtp:63 111/111").count(), 1, "{out}");
        let video = &out[out.find("m=video").unwrap()..];
        assert!(
            video.contains("a=rtpmap:63 red/90000\r\n"),
            "only audio m-lines: {out}"
        );
        assert!(!video.contains("fmtp"), "only audio m-lines: {out}");
        let mut none = gst_sdp::SDPMessage::parse_buffer(text.as_bytes()).unwrap();
        red_as_offered(&mut none, 100, 111);
        assert_eq!(
            none.as_text().unwrap(),
            text,
            "no RED of that type: untouched"
        );
    }

    #[test]
    fn redundant_blocks_are_told_from_primary_ones() {
        let header = |x: bool| {
            let mut h = vec![
                0x80 | if x { 0x10 } else { 0 },
                63,
                0,
                1,
                0,
                0,
                0,
                1,
                0,
                0,
                0,
                2,
            ];
            if x {
                h.extend([0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0]);
            }
            h
        };
        for x in [false, true] {
            let mut redundant = header(x);
            redundant.extend([0x80 | 111, 0x03, 0xc0, 0x14, 111, 1, 2]);
            let mut primary = header(x);
            primary.extend([111, 1, 2]);
            let buf = |bytes: Vec<u8>| gst::Buffer::from_slice(bytes);
            gst::init().unwrap();
            assert!(carries_redundant_block(&buf(redundant)), "x={x}");
            assert!(!carries_redundant_block(&buf(primary)), "x={x}");
        }
        assert!(red_payload(&[0x80, 63]).is_none());
    }
}
