//! The SDP of a phone call (pure): the caller's offer read into a
//! [`PhoneLeg`] (the best codec both sides have, the telephone-event
//! payload type, where the caller receives RTP), and our answer.

use std::net::{IpAddr, SocketAddr};

use gstreamer_sdp as gst_sdp;

use crate::media::phone::{PhoneCodec, PhoneLeg};

/// Why an offer cannot be answered; the text is the SIP reason phrase's
/// detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// The body is not SDP.
    #[error("the body is not SDP")]
    Unparsable,
    /// No audio m-line with a port.
    #[error("the offer has no audio stream")]
    NoAudio,
    /// No connection address for the audio.
    #[error("the offer gives no IPv4 or IPv6 connection address")]
    NoAddress,
    /// None of our codecs.
    #[error("none of the offered codecs is one of ours (Opus, G722, PCMU, PCMA)")]
    NoCodec,
}

/// One payload type of the offer: its number, our codec it is (if any),
/// and its `rtpmap` name and clock rate (if given).
type Offered = (u8, Option<PhoneCodec>, Option<(String, u32)>);

/// Reads the caller's offer: its first audio m-line, the best of our
/// codecs it lists (in [`PhoneCodec::PREFERENCE`] order), and its
/// telephone-event payload type at 8000 Hz.
pub fn read_offer(body: &[u8]) -> Result<PhoneLeg, OfferError> {
    let sdp = gst_sdp::SDPMessage::parse_buffer(body)
        .ok()
        .filter(|s| s.version() == Some("0"))
        .ok_or(OfferError::Unparsable)?;
    let media = sdp
        .medias()
        .find(|m| m.media() == Some("audio") && m.port() != 0)
        .ok_or(OfferError::NoAudio)?;
    let address = media
        .connections()
        .next()
        .and_then(|c| c.address())
        .or_else(|| sdp.connection().and_then(|c| c.address()))
        .and_then(|a| a.parse::<IpAddr>().ok())
        .ok_or(OfferError::NoAddress)?;
    let port = u16::try_from(media.port()).map_err(|_| OfferError::NoAudio)?;
    let rtpmap = |pt: u8| -> Option<(String, u32)> {
        media.attributes().find_map(|a| {
            if a.key() != "rtpmap" {
                return None;
            }
            let value = a.value()?;
            let (p, rest) = value.split_once(' ')?;
            if p.trim().parse::<u8>().ok()? != pt {
                return None;
            }
            let mut parts = rest.trim().split('/');
            let name = parts.next()?.to_string();
            let rate = parts.next()?.parse().ok()?;
            Some((name, rate))
        })
    };
    let offered: Vec<Offered> = media
        .formats()
        .filter_map(|f| f.parse::<u8>().ok())
        .map(|pt| {
            let map = rtpmap(pt);
            let codec = match &map {
                Some((name, rate)) => {
                    PhoneCodec::from_encoding_name(name).filter(|c| c.clock_rate() == *rate)
                }
                None => PhoneCodec::from_static_payload(pt),
            };
            (pt, codec, map)
        })
        .collect();
    let (codec, payload) = PhoneCodec::PREFERENCE
        .into_iter()
        .find_map(|want| {
            offered
                .iter()
                .find(|(_, c, _)| *c == Some(want))
                .map(|(pt, _, _)| (want, *pt))
        })
        .ok_or(OfferError::NoCodec)?;
    let dtmf_payload = offered.iter().find_map(|(pt, _, map)| {
        map.as_ref()
            .filter(|(name, rate)| name.eq_ignore_ascii_case("telephone-event") && *rate == 8000)
            .map(|_| *pt)
    });
    Ok(PhoneLeg {
        codec,
        payload,
        dtmf_payload,
        remote: SocketAddr::new(address, port),
    })
}

/// Our answer: one audio stream at `local` with the leg's codec (and
/// telephone-events when the caller offered them), 20 ms packets.
pub fn answer(leg: &PhoneLeg, local: SocketAddr, session: u64) -> String {
    let family = if local.is_ipv4() { "IP4" } else { "IP6" };
    let ip = local.ip();
    let mut formats = leg.payload.to_string();
    let mut attributes = format!(
        "a=rtpmap:{} {}/{}{}\r\n",
        leg.payload,
        leg.codec.encoding_name(),
        leg.codec.clock_rate(),
        if leg.codec == PhoneCodec::Opus {
            "/2"
        } else {
            ""
        }
    );
    if let Some(dtmf) = leg.dtmf_payload {
        formats.push_str(&format!(" {dtmf}"));
        attributes.push_str(&format!(
            "a=rtpmap:{dtmf} telephone-event/8000\r\na=fmtp:{dtmf} 0-15\r\n"
        ));
    }
    format!(
        "v=0\r\no=tessera {session} {session} IN {family} {ip}\r\ns=Tessera\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {formats}\r\n{attributes}a=ptime:20\r\na=sendrecv\r\n",
        port = local.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARESIP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 10000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n";

    #[test]
    fn an_offer_gives_the_best_codec_dtmf_and_the_callers_address() {
        gstreamer::init().unwrap();
        let leg = read_offer(BARESIP.as_bytes()).unwrap();
        assert_eq!(leg.codec, PhoneCodec::Pcmu);
        assert_eq!(leg.payload, 0);
        assert_eq!(leg.dtmf_payload, Some(101));
        assert_eq!(leg.remote, "127.0.0.1:10000".parse().unwrap());

        let wide = BARESIP.replace("RTP/AVP 0 8 101", "RTP/AVP 8 9 96 101")
            + "a=rtpmap:96 opus/48000/2\r\n";
        let leg = read_offer(wide.as_bytes()).unwrap();
        assert_eq!((leg.codec, leg.payload), (PhoneCodec::Opus, 96));
        let g722 = BARESIP.replace("RTP/AVP 0 8 101", "RTP/AVP 8 9");
        assert_eq!(read_offer(g722.as_bytes()).unwrap().codec, PhoneCodec::G722);
        // Static payload types need no rtpmap.
        let bare = "v=0\r\no=- 1 2 IN IP4 10.0.0.9\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\nc=IN IP4 10.0.0.9\r\n";
        let leg = read_offer(bare.as_bytes()).unwrap();
        assert_eq!((leg.codec, leg.dtmf_payload), (PhoneCodec::Pcma, None));
        assert_eq!(leg.remote, "10.0.0.9:4000".parse().unwrap());
    }

    #[test]
    fn offers_we_cannot_answer_say_why() {
        gstreamer::init().unwrap();
        assert_eq!(read_offer(b"hello"), Err(OfferError::Unparsable));
        let video = BARESIP.replace("m=audio", "m=video");
        assert_eq!(read_offer(video.as_bytes()), Err(OfferError::NoAudio));
        let gsm = BARESIP.replace("RTP/AVP 0 8 101", "RTP/AVP 3");
        assert_eq!(read_offer(gsm.as_bytes()), Err(OfferError::NoCodec));
        let no_c = BARESIP.replace("c=IN IP4 127.0.0.1\r\n", "");
        assert_eq!(read_offer(no_c.as_bytes()), Err(OfferError::NoAddress));
    }

    #[test]
    fn the_answer_names_our_address_codec_and_dtmf() {
        gstreamer::init().unwrap();
        let leg = read_offer(BARESIP.as_bytes()).unwrap();
        let a = answer(&leg, "127.0.0.1:40000".parse().unwrap(), 7);
        assert!(a.contains("c=IN IP4 127.0.0.1\r\n"), "{a}");
        assert!(a.contains("m=audio 40000 RTP/AVP 0 101\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:0 PCMU/8000\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:101 telephone-event/8000\r\n"), "{a}");
        // It parses as SDP, and as an offer gives the same leg back.
        let back = read_offer(a.as_bytes()).unwrap();
        assert_eq!((back.codec, back.payload), (leg.codec, leg.payload));
    }
}
