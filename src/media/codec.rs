//! Codec choice: which payload types of a client's SDP offer the room will use.
//!
//! Pure logic over a parsed offer. Only VP8, H.264 (constrained baseline or
//! baseline, packetization-mode 1) and Opus are accepted, so an offer can never
//! pull an arbitrary depayloader or decoder into the room.

use gstreamer_sdp as gst_sdp;

pub use crate::ids::CodecFamily;

/// The H.264 profile-level-id the room's encoder produces: constrained baseline, level 3.1.
pub const H264_PROFILE_LEVEL_ID: &str = "42e01f";

/// The video codec chosen from an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoChoice {
    /// Codec family the participant sends and receives.
    pub family: CodecFamily,
    /// Payload type the offer uses for it.
    pub payload: u8,
    /// For H.264, the offered profile-level-id of that payload type.
    pub profile_level_id: Option<String>,
}

impl VideoChoice {
    /// The H.264 profile-level-id an answer carries: the offer's own for the
    /// chosen payload type (a receiver matches on it), else the encoder's.
    pub(crate) fn h264_profile_level_id(&self) -> String {
        self.profile_level_id
            .clone()
            .unwrap_or_else(|| H264_PROFILE_LEVEL_ID.to_string())
    }
}

/// What one m-line of an offer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// The microphone.
    Audio,
    /// The camera.
    Camera,
    /// A shared screen (received only).
    Screen,
}

/// Everything the room needs from an offer to build a participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaChoice {
    /// Opus payload type of the audio m-line.
    pub audio_payload: u8,
    /// The payload type of the offer's redundant audio (RFC 2198,
    /// `red/48000/2` whose blocks are all Opus), if it has one.
    pub audio_red: Option<u8>,
    /// Chosen video codec of the camera's m-line.
    pub video: VideoChoice,
    /// The screen-share m-line's codec (same family as the camera), if the
    /// offer has one.
    pub screen: Option<VideoChoice>,
    /// The tracks in the offer's m-line order (transceivers are created in it).
    pub order: Vec<Track>,
    /// The offer's id for the transport-wide congestion control header
    /// extension, if it has one: answered, it makes our RTP session send
    /// the participant the feedback its congestion control needs (TWCC).
    pub transport_cc: Option<u8>,
}

/// The transport-wide congestion control header extension's URI.
pub const TRANSPORT_CC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// The id an m-line gives a header extension (`a=extmap:<id> <uri>`).
fn extmap_id(media: &gst_sdp::SDPMediaRef, uri: &str) -> Option<u8> {
    media.attributes().find_map(|a| {
        if a.key() != "extmap" {
            return None;
        }
        let mut parts = a.value()?.split_whitespace();
        // "3" or "3/sendrecv"
        let id = parts.next()?.split('/').next()?.parse().ok()?;
        (parts.next()? == uri).then_some(id)
    })
}

/// Why an offer cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// The text is not SDP.
    #[error("the offer is not valid SDP")]
    Unparsable,
    /// No `m=audio` or no `m=video` section.
    #[error("the offer has no {0} m-line; send one audio and one video transceiver")]
    MissingMedia(&'static str),
    /// The audio m-line lacks Opus.
    #[error("the offer's audio m-line has no opus/48000/2 (offered: {offered})")]
    NoOpus {
        /// Encoding names offered.
        offered: String,
    },
    /// The video m-line has neither VP8 nor a usable H.264.
    #[error(
        "the offer's video m-line has no supported codec: VP8, or H264 with a baseline profile and packetization-mode=1 (offered: {offered})"
    )]
    NoVideoCodec {
        /// Encoding names offered.
        offered: String,
    },
    /// The offer message named a screen m-line the offer does not have.
    #[error("`screen` names mid `{0}`, but the offer has no other video m-line with that a=mid")]
    NoScreenMline(String),
    /// The screen m-line lacks the camera's codec.
    #[error("the screen m-line must offer the camera's codec ({family}) (offered: {offered})")]
    ScreenCodec {
        /// The camera's family.
        family: CodecFamily,
        /// Encoding names offered for the screen.
        offered: String,
    },
    /// The offer is shaped in a way no real client sends.
    #[error("the offer is refused: {0}")]
    Shape(String),
    /// The client asked for a family its own offer does not contain.
    #[error(
        "codec `{wanted}` was requested but the offer does not contain it (offered: {offered})"
    )]
    WantedNotOffered {
        /// The family asked for in `join`.
        wanted: CodecFamily,
        /// Encoding names offered.
        offered: String,
    },
}

/// One `a=rtpmap` entry with its `a=fmtp` parameters.
#[derive(Debug, Clone)]
struct Format {
    payload: u8,
    encoding: String,
    clock_rate: u32,
    fmtp: Vec<(String, String)>,
}

impl Format {
    fn param(&self, key: &str) -> Option<&str> {
        self.fmtp
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

fn formats_of(media: &gst_sdp::SDPMediaRef) -> Vec<Format> {
    let mut out = Vec::new();
    for fmt in media.formats() {
        let Ok(payload) = fmt.parse::<u8>() else {
            continue;
        };
        let Some(rtpmap) = attribute_for(media, "rtpmap", payload) else {
            continue;
        };
        // "VP8/90000" or "opus/48000/2"
        let mut parts = rtpmap.split('/');
        let encoding = parts.next().unwrap_or_default().trim().to_string();
        let clock_rate = parts
            .next()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(0);
        let fmtp = attribute_for(media, "fmtp", payload)
            .map(|p| {
                p.split(';')
                    .filter_map(|kv| {
                        let (k, v) = kv.split_once('=')?;
                        Some((k.trim().to_string(), v.trim().to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Format {
            payload,
            encoding,
            clock_rate,
            fmtp,
        });
    }
    out
}

/// The value of `a=<key>:<payload> <value>` in a media section.
fn attribute_for(media: &gst_sdp::SDPMediaRef, key: &str, payload: u8) -> Option<String> {
    let prefix = format!("{payload} ");
    media.attributes().find_map(|a| {
        if a.key() != key {
            return None;
        }
        a.value()?.strip_prefix(&prefix).map(str::to_string)
    })
}

/// The payload type of redundant audio (`red/48000/2`) in an audio m-line
/// whose every block is `opus` (`a=fmtp:63 111/111`): what browsers offer
/// and the only kind we send.
fn pick_red(media: &gst_sdp::SDPMediaRef, formats: &[Format], opus: u8) -> Option<u8> {
    formats
        .iter()
        .filter(|f| f.encoding.eq_ignore_ascii_case("red") && f.clock_rate == 48000)
        .find(|f| {
            attribute_for(media, "fmtp", f.payload).is_some_and(|blocks| {
                blocks
                    .trim()
                    .split('/')
                    .all(|b| b.trim().parse::<u8>() == Ok(opus))
            })
        })
        .map(|f| f.payload)
}

fn offered_names(formats: &[Format]) -> String {
    let mut names: Vec<&str> = formats.iter().map(|f| f.encoding.as_str()).collect();
    names.dedup();
    names.join(", ")
}

/// True for an H.264 format the room can send and receive: a baseline-family
/// profile (profile_idc 0x42) and packetization-mode 1.
fn is_usable_h264(f: &Format) -> bool {
    f.encoding.eq_ignore_ascii_case("H264")
        && f.clock_rate == 90000
        && f.param("packetization-mode") == Some("1")
        && f.param("profile-level-id")
            .is_some_and(|p| p.len() == 6 && p[..2].eq_ignore_ascii_case("42"))
}

fn pick_video(formats: &[Format], family: CodecFamily) -> Option<VideoChoice> {
    match family {
        CodecFamily::Vp8 => formats
            .iter()
            .find(|f| f.encoding.eq_ignore_ascii_case("VP8") && f.clock_rate == 90000)
            .map(|f| VideoChoice {
                family,
                payload: f.payload,
                profile_level_id: None,
            }),
        CodecFamily::H264 => {
            let usable: Vec<&Format> = formats.iter().filter(|f| is_usable_h264(f)).collect();
            // Exactly what the encoder makes, if offered; otherwise any baseline one.
            let best = usable
                .iter()
                .find(|f| {
                    f.param("profile-level-id")
                        .is_some_and(|p| p.eq_ignore_ascii_case(H264_PROFILE_LEVEL_ID))
                })
                .or_else(|| usable.first())?;
            Some(VideoChoice {
                family,
                payload: best.payload,
                profile_level_id: best.param("profile-level-id").map(str::to_ascii_lowercase),
            })
        }
    }
}

/// Chooses the audio and video codecs for a participant from its offer.
///
/// `wanted` is the family the client asked for in `join`; without it,
/// `preferred` wins when the offer has both families. `screen_mid` is the
/// `a=mid` of the video m-line that carries a screen share, if any; the
/// camera is the first other video m-line.
pub fn choose_codecs(
    offer: &gst_sdp::SDPMessageRef,
    wanted: Option<CodecFamily>,
    preferred: CodecFamily,
    screen_mid: Option<&str>,
) -> Result<MediaChoice, CodecError> {
    let is_screen = |m: &gst_sdp::SDPMediaRef| {
        screen_mid.is_some() && m.media() == Some("video") && m.attribute_val("mid") == screen_mid
    };
    let audio_index = offer
        .medias()
        .position(|m| m.media() == Some("audio"))
        .ok_or(CodecError::MissingMedia("audio"))?;
    let video_index = offer
        .medias()
        .position(|m| m.media() == Some("video") && !is_screen(m))
        .ok_or(CodecError::MissingMedia("video"))?;
    let screen_index = match screen_mid {
        Some(mid) => Some(
            offer
                .medias()
                .position(is_screen)
                .ok_or_else(|| CodecError::NoScreenMline(mid.to_string()))?,
        ),
        None => None,
    };
    let media = |i: usize| offer.media(i as u32).expect("index from medias()");
    let (audio, video) = (media(audio_index), media(video_index));

    let audio_formats = formats_of(audio);
    let opus = audio_formats
        .iter()
        .find(|f| f.encoding.eq_ignore_ascii_case("opus") && f.clock_rate == 48000)
        .ok_or_else(|| CodecError::NoOpus {
            offered: offered_names(&audio_formats),
        })?;

    let video_formats = formats_of(video);
    let choice = match wanted {
        Some(family) => {
            pick_video(&video_formats, family).ok_or_else(|| CodecError::WantedNotOffered {
                wanted: family,
                offered: offered_names(&video_formats),
            })?
        }
        None => {
            let other = if preferred == CodecFamily::Vp8 {
                CodecFamily::H264
            } else {
                CodecFamily::Vp8
            };
            pick_video(&video_formats, preferred)
                .or_else(|| pick_video(&video_formats, other))
                .ok_or_else(|| CodecError::NoVideoCodec {
                    offered: offered_names(&video_formats),
                })?
        }
    };
    let screen = match screen_index {
        Some(i) => {
            let formats = formats_of(media(i));
            Some(
                pick_video(&formats, choice.family).ok_or_else(|| CodecError::ScreenCodec {
                    family: choice.family,
                    offered: offered_names(&formats),
                })?,
            )
        }
        None => None,
    };
    let mut order = vec![(audio_index, Track::Audio), (video_index, Track::Camera)];
    order.extend(screen_index.map(|i| (i, Track::Screen)));
    order.sort_by_key(|(i, _)| *i);
    Ok(MediaChoice {
        audio_payload: opus.payload,
        audio_red: pick_red(audio, &audio_formats, opus.payload),
        video: choice,
        screen,
        order: order.into_iter().map(|(_, t)| t).collect(),
        transport_cc: extmap_id(video, TRANSPORT_CC_URI),
    })
}

/// Parses SDP text, mapping failure to [`CodecError::Unparsable`].
pub fn parse_sdp(text: &str) -> Result<gst_sdp::SDPMessage, CodecError> {
    let msg =
        gst_sdp::SDPMessage::parse_buffer(text.as_bytes()).map_err(|_| CodecError::Unparsable)?;
    if msg.medias_len() == 0 && !text.trim_start().starts_with("v=") {
        return Err(CodecError::Unparsable);
    }
    Ok(msg)
}

/// Most m-lines an offer may have: audio, camera and screen, with room to spare.
pub const MAX_MLINES: u32 = 8;
/// Most payload types one m-line may offer (browsers offer about 30).
pub const MAX_FORMATS: u32 = 64;

/// Refuses offers no real client sends: too many m-lines or payload
/// types, payload types outside 0 to 127, or no DTLS fingerprint (every
/// m-line needs one, at session or media level).
pub fn check_offer_shape(msg: &gst_sdp::SDPMessage) -> Result<(), CodecError> {
    let shape = |why: String| Err(CodecError::Shape(why));
    if msg.medias_len() > MAX_MLINES {
        return shape(format!(
            "it has {} m-lines; at most {MAX_MLINES} are accepted (audio, camera, screen)",
            msg.medias_len()
        ));
    }
    let session_fingerprint = msg.attribute_val("fingerprint").is_some();
    for (i, media) in msg.medias().enumerate() {
        if media.formats_len() > MAX_FORMATS {
            return shape(format!(
                "m-line {i} offers {} payload types; at most {MAX_FORMATS}",
                media.formats_len()
            ));
        }
        for f in media.formats() {
            if media.media() == Some("application") {
                continue;
            }
            if !f.parse::<u8>().is_ok_and(|pt| pt <= 127) {
                return shape(format!(
                    "m-line {i} has payload type `{f}`; payload types are numbers from 0 to 127"
                ));
            }
        }
        if !session_fingerprint && media.attribute_val("fingerprint").is_none() {
            return shape(format!(
                "m-line {i} has no a=fingerprint; DTLS-SRTP needs the certificate fingerprint"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_offers_have_a_sane_shape() {
        gstreamer::init().unwrap();
        for text in [CHROMIUM, CHROMIUM_H264, CHROMIUM_RECVONLY, FIREFOX] {
            check_offer_shape(&parse_sdp(text).unwrap()).unwrap();
        }
    }

    #[test]
    fn absurd_offers_are_refused_with_the_reason() {
        gstreamer::init().unwrap();
        let shaped = |text: &str| match check_offer_shape(&parse_sdp(text).unwrap()) {
            Err(CodecError::Shape(why)) => why,
            other => panic!("expected a shape error, got {other:?}"),
        };
        let no_fingerprint: String = CHROMIUM
            .lines()
            .filter(|l| !l.starts_with("a=fingerprint"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        assert!(shaped(&no_fingerprint).contains("no a=fingerprint"));
        let video = &CHROMIUM[CHROMIUM.find("m=video").unwrap()..];
        let many = format!("{CHROMIUM}{}", video.repeat(200));
        assert!(shaped(&many).contains("at most 8"));
        let absurd = CHROMIUM.replacen(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111 4000",
            1,
        );
        assert_ne!(absurd, CHROMIUM, "the fixture's audio m-line changed");
        assert!(shaped(&absurd).contains("payload type `4000`"));
    }

    const CHROMIUM: &str = include_str!("../../tests/fixtures/sdp/chromium-offer.sdp");
    const CHROMIUM_H264: &str = include_str!("../../tests/fixtures/sdp/chromium-h264-offer.sdp");
    const CHROMIUM_RECVONLY: &str =
        include_str!("../../tests/fixtures/sdp/chromium-recvonly-offer.sdp");
    const FIREFOX: &str = include_str!("../../tests/fixtures/sdp/firefox-offer.sdp");

    fn choose(
        text: &str,
        wanted: Option<CodecFamily>,
        pref: CodecFamily,
    ) -> Result<MediaChoice, CodecError> {
        gstreamer::init().unwrap();
        choose_codecs(&parse_sdp(text).unwrap(), wanted, pref, None)
    }

    /// The Chromium offer with a second, send-only video m-line (mid `2`).
    fn with_screen(text: &str) -> String {
        let video = &text[text.find("m=video").unwrap()..];
        let screen = video
            .replace("a=mid:1", "a=mid:2")
            .replace("a=sendrecv", "a=sendonly");
        format!("{text}{screen}")
    }

    #[test]
    fn redundant_audio_is_taken_only_when_its_blocks_are_opus() {
        let c = choose(CHROMIUM, None, CodecFamily::Vp8).unwrap();
        assert_eq!((c.audio_payload, c.audio_red), (111, Some(63)));
        let c = choose(FIREFOX, None, CodecFamily::Vp8).unwrap();
        assert_eq!(c.audio_red, None, "Firefox offers no audio RED");
        for fmtp in ["a=fmtp:63 111/0", "a=fmtp:63 ", "a=fmtp:63 1x1/111"] {
            let other = CHROMIUM.replacen("a=fmtp:63 111/111", fmtp, 1);
            assert_ne!(other, CHROMIUM, "the fixture's RED line changed");
            let c = choose(&other, None, CodecFamily::Vp8).unwrap();
            assert_eq!(c.audio_red, None, "{fmtp}");
        }
        let deeper = CHROMIUM.replacen("a=fmtp:63 111/111", "a=fmtp:63 111/111/111", 1);
        assert_eq!(
            choose(&deeper, None, CodecFamily::Vp8).unwrap().audio_red,
            Some(63)
        );
    }

    #[test]
    fn the_transport_cc_extension_id_is_taken_from_the_offer() {
        let c = choose(CHROMIUM, None, CodecFamily::Vp8).unwrap();
        assert_eq!(c.transport_cc, Some(3));
        let c = choose(FIREFOX, None, CodecFamily::Vp8).unwrap();
        assert_eq!(c.transport_cc, Some(7));
        let without: String = CHROMIUM
            .lines()
            .filter(|l| !l.contains("transport-wide-cc"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        let c = choose(&without, None, CodecFamily::Vp8).unwrap();
        assert_eq!(c.transport_cc, None);
    }

    #[test]
    fn a_screen_mline_is_found_by_mid_and_ordered() {
        gstreamer::init().unwrap();
        let offer = parse_sdp(&with_screen(CHROMIUM)).unwrap();
        let c =
            choose_codecs(&offer, Some(CodecFamily::H264), CodecFamily::Vp8, Some("2")).unwrap();
        assert_eq!(c.order, vec![Track::Audio, Track::Camera, Track::Screen]);
        assert_eq!(c.screen.as_ref().unwrap().payload, c.video.payload);
        assert_eq!(c.screen.unwrap().family, CodecFamily::H264);
        // Without `screen`, the extra m-line is not ours.
        let c = choose_codecs(&offer, None, CodecFamily::Vp8, None).unwrap();
        assert_eq!(c.order, vec![Track::Audio, Track::Camera]);
        assert_eq!(
            choose_codecs(&offer, None, CodecFamily::Vp8, Some("7")),
            Err(CodecError::NoScreenMline("7".into()))
        );
        // The camera's m-line cannot be the screen too: the camera is then the other one.
        let c = choose_codecs(&offer, None, CodecFamily::Vp8, Some("1")).unwrap();
        assert_eq!(c.order, vec![Track::Audio, Track::Screen, Track::Camera]);
    }

    #[test]
    fn a_screen_without_the_cameras_codec_is_refused() {
        gstreamer::init().unwrap();
        let text = with_screen(CHROMIUM);
        let (head, screen) = text.split_at(text.rfind("m=video").unwrap());
        let screen = screen.replace("VP8/", "XV8/");
        let offer = parse_sdp(&format!("{head}{screen}")).unwrap();
        let e =
            choose_codecs(&offer, Some(CodecFamily::Vp8), CodecFamily::Vp8, Some("2")).unwrap_err();
        assert!(
            matches!(
                e,
                CodecError::ScreenCodec {
                    family: CodecFamily::Vp8,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn chromium_prefers_vp8_by_default() {
        let c = choose(CHROMIUM, None, CodecFamily::Vp8).unwrap();
        assert_eq!(c.audio_payload, 111);
        assert_eq!(
            c.video,
            VideoChoice {
                family: CodecFamily::Vp8,
                payload: 96,
                profile_level_id: None
            }
        );
    }

    #[test]
    fn chromium_h264_picks_constrained_baseline_mode_1() {
        for text in [CHROMIUM, CHROMIUM_H264] {
            let c = choose(text, Some(CodecFamily::H264), CodecFamily::Vp8).unwrap();
            assert_eq!(c.video.family, CodecFamily::H264);
            // 108 is 42e01f packetization-mode=1 in both fixtures
            assert_eq!(c.video.payload, 108);
            assert_eq!(c.video.profile_level_id.as_deref(), Some("42e01f"));
        }
        let c = choose(CHROMIUM, None, CodecFamily::H264).unwrap();
        assert_eq!(c.video.payload, 108);
    }

    #[test]
    fn firefox_uses_its_own_payload_types() {
        let c = choose(FIREFOX, None, CodecFamily::Vp8).unwrap();
        assert_eq!(c.audio_payload, 109);
        assert_eq!(c.video.payload, 120);
        // Firefox ESR here has no H.264: preference falls back to VP8 ...
        let c = choose(FIREFOX, None, CodecFamily::H264).unwrap();
        assert_eq!(c.video.family, CodecFamily::Vp8);
        // ... but an explicit wish that cannot be met is an error.
        let e = choose(FIREFOX, Some(CodecFamily::H264), CodecFamily::Vp8).unwrap_err();
        assert!(
            matches!(
                e,
                CodecError::WantedNotOffered {
                    wanted: CodecFamily::H264,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("VP8"), "{e}");
    }

    #[test]
    fn recvonly_offer_is_accepted() {
        let c = choose(CHROMIUM_RECVONLY, None, CodecFamily::Vp8).unwrap();
        assert_eq!(c.video.payload, 96);
        assert_eq!(c.audio_payload, 111);
    }

    #[test]
    fn only_unsupported_video_is_rejected() {
        let vp9_only = CHROMIUM
            .lines()
            .map(|l| {
                if l.starts_with("a=rtpmap:") && (l.contains("VP8/") || l.contains("H264/")) {
                    l.replace("VP8/", "XV8/").replace("H264/", "XH264/")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\r\n");
        let e = choose(&vp9_only, None, CodecFamily::Vp8).unwrap_err();
        assert!(matches!(e, CodecError::NoVideoCodec { .. }), "{e}");
        assert!(e.to_string().contains("VP9"), "{e}");
    }

    #[test]
    fn h264_without_mode_1_or_baseline_is_rejected() {
        let offer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 100 101\r\na=rtpmap:100 H264/90000\r\n\
a=fmtp:100 profile-level-id=42e01f;packetization-mode=0\r\n\
a=rtpmap:101 H264/90000\r\na=fmtp:101 profile-level-id=640c1f;packetization-mode=1\r\n";
        let e = choose(offer, None, CodecFamily::H264).unwrap_err();
        assert!(matches!(e, CodecError::NoVideoCodec { .. }), "{e}");
    }

    #[test]
    fn missing_media_and_garbage_are_errors() {
        let audio_only = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert_eq!(
            choose(audio_only, None, CodecFamily::Vp8),
            Err(CodecError::MissingMedia("video"))
        );
        let no_opus = CHROMIUM.replace("opus/48000/2", "speex/48000/2");
        assert!(matches!(
            choose(&no_opus, None, CodecFamily::Vp8),
            Err(CodecError::NoOpus { .. })
        ));
        gstreamer::init().unwrap();
        assert!(parse_sdp("hello").is_err());
    }
}
