//! A phone caller's media leg: the codecs a SIP caller may send and
//! receive over plain RTP ([`PhoneCodec`]), the leg the room builds for it
//! ([`PhoneLeg`]), and the choice among what the caller offers (pure).

use std::net::{IpAddr, SocketAddr, UdpSocket};

use anyhow::Context as _;

/// An audio codec a phone leg can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhoneCodec {
    /// Opus, 48 kHz.
    Opus,
    /// G.722, 16 kHz wideband (announced with an 8000 clock, RFC 3551).
    G722,
    /// G.711 µ-law, 8 kHz.
    Pcmu,
    /// G.711 A-law, 8 kHz.
    Pcma,
}

impl PhoneCodec {
    /// Every codec, best first: the order a caller's offer is answered in.
    pub const PREFERENCE: [PhoneCodec; 4] = [
        PhoneCodec::Opus,
        PhoneCodec::G722,
        PhoneCodec::Pcmu,
        PhoneCodec::Pcma,
    ];

    /// The `encoding-name` of its RTP caps and SDP `rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            PhoneCodec::Opus => "OPUS",
            PhoneCodec::G722 => "G722",
            PhoneCodec::Pcmu => "PCMU",
            PhoneCodec::Pcma => "PCMA",
        }
    }

    /// The RTP clock rate it is announced with.
    pub fn clock_rate(self) -> u32 {
        match self {
            PhoneCodec::Opus => 48000,
            // RFC 3551 keeps G.722's RTP clock at 8000 for history's sake.
            PhoneCodec::G722 | PhoneCodec::Pcmu | PhoneCodec::Pcma => 8000,
        }
    }

    /// The sample rate of its decoded audio.
    pub fn sample_rate(self) -> u32 {
        match self {
            PhoneCodec::Opus => 48000,
            PhoneCodec::G722 => 16000,
            PhoneCodec::Pcmu | PhoneCodec::Pcma => 8000,
        }
    }

    /// Its static payload type (RFC 3551), if it has one.
    pub fn static_payload(self) -> Option<u8> {
        match self {
            PhoneCodec::Pcmu => Some(0),
            PhoneCodec::Pcma => Some(8),
            PhoneCodec::G722 => Some(9),
            PhoneCodec::Opus => None,
        }
    }

    /// The codec an `rtpmap` encoding name (any case) names.
    pub fn from_encoding_name(name: &str) -> Option<PhoneCodec> {
        PhoneCodec::PREFERENCE
            .into_iter()
            .find(|c| c.encoding_name().eq_ignore_ascii_case(name))
    }

    /// The codec a static payload type stands for.
    pub fn from_static_payload(pt: u8) -> Option<PhoneCodec> {
        PhoneCodec::PREFERENCE
            .into_iter()
            .find(|c| c.static_payload() == Some(pt))
    }
}

impl std::fmt::Display for PhoneCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.encoding_name())
    }
}

/// What the room needs to build a caller's media: the codec both sides
/// use, its payload type, the telephone-event payload type for keys
/// pressed (RFC 4733), and where the caller receives RTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneLeg {
    /// The codec of both directions.
    pub codec: PhoneCodec,
    /// Its payload type in the caller's offer.
    pub payload: u8,
    /// The caller's telephone-event payload type, if it offered one.
    pub dtmf_payload: Option<u8>,
    /// Where the caller receives RTP.
    pub remote: SocketAddr,
}

/// A UDP socket on `ip`, on the first free port of `ports` (any free
/// port without a range).
pub fn bind_rtp_socket(ip: IpAddr, ports: Option<(u16, u16)>) -> anyhow::Result<UdpSocket> {
    let Some((min, max)) = ports else {
        return UdpSocket::bind((ip, 0)).with_context(|| format!("binding an RTP socket on {ip}"));
    };
    // Start at a random port of the range: calls spread over it.
    let span = u32::from(max - min) + 1;
    let first = glib::random_int_range(0, span as i32) as u32;
    (0..span)
        .map(|i| min + ((first + i) % span) as u16)
        .find_map(|port| UdpSocket::bind(SocketAddr::new(ip, port)).ok())
        .with_context(|| {
            format!("no free UDP port on {ip} in the media port range {min}-{max} (media.rtp_port_min and media.rtp_port_max)")
        })
}

/// A key the caller pressed (RFC 4733 event 0-15), once, at its end.
pub fn dtmf_key(event: u8) -> Option<char> {
    Some(match event {
        0..=9 => (b'0' + event) as char,
        10 => '*',
        11 => '#',
        12..=15 => (b'A' + event - 12) as char,
        _ => return None,
    })
}

/// The event in an RFC 4733 telephone-event payload, when the payload
/// marks the event's end (the packet to act on; senders repeat it).
pub fn dtmf_end(payload: &[u8]) -> Option<u8> {
    let (&event, &flags) = (payload.first()?, payload.get(1)?);
    (payload.len() >= 4 && flags & 0x80 != 0).then_some(event)
}

/// The caller's name on its tile: a telephone sign, its name, and the
/// last four digits of its number when it has any.
pub fn tile_name(name: &str, number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits
        .chars()
        .skip(digits.len().saturating_sub(4))
        .collect();
    if tail.is_empty() || name.ends_with(&tail) {
        format!("\u{260E} {name}")
    } else {
        format!("\u{260E} {name} \u{2026}{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_are_known_by_name_and_static_payload() {
        assert_eq!(
            PhoneCodec::from_encoding_name("pcmu"),
            Some(PhoneCodec::Pcmu)
        );
        assert_eq!(
            PhoneCodec::from_encoding_name("opus"),
            Some(PhoneCodec::Opus)
        );
        assert_eq!(PhoneCodec::from_encoding_name("GSM"), None);
        assert_eq!(PhoneCodec::from_static_payload(8), Some(PhoneCodec::Pcma));
        assert_eq!(PhoneCodec::from_static_payload(9), Some(PhoneCodec::G722));
        assert_eq!(PhoneCodec::from_static_payload(3), None);
        assert_eq!(PhoneCodec::G722.clock_rate(), 8000);
        assert_eq!(PhoneCodec::G722.sample_rate(), 16000);
    }

    #[test]
    fn dtmf_acts_on_the_end_of_an_event_only() {
        assert_eq!(dtmf_end(&[5, 0x0a, 0, 160]), None);
        assert_eq!(dtmf_end(&[5, 0x8a, 3, 32]), Some(5));
        assert_eq!(dtmf_end(&[5, 0x8a]), None);
        assert_eq!(dtmf_key(5), Some('5'));
        assert_eq!(dtmf_key(10), Some('*'));
        assert_eq!(dtmf_key(11), Some('#'));
        assert_eq!(dtmf_key(16), None);
    }

    #[test]
    fn a_tile_shows_a_phone_the_name_and_the_last_digits() {
        assert_eq!(
            tile_name("Ann", "+44 20 7946 0123"),
            "\u{260E} Ann \u{2026}0123"
        );
        assert_eq!(tile_name("Ann", ""), "\u{260E} Ann");
        assert_eq!(tile_name("Phone 0123", "0123"), "\u{260E} Phone 0123");
        assert_eq!(tile_name("Bo", "12"), "\u{260E} Bo \u{2026}12");
    }
}
