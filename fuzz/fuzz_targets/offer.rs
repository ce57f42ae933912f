//! Any offer text is parsed, checked for shape and given a codec choice
//! or a precise refusal, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::media::codec::{check_offer_shape, choose_codecs, parse_sdp};
use tessera::media::CodecFamily;

fuzz_target!(|data: &[u8]| {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| gstreamer::init().expect("GStreamer initialises"));
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(offer) = parse_sdp(text) else {
        return;
    };
    if check_offer_shape(&offer).is_err() {
        return;
    }
    for wanted in [None, Some(CodecFamily::Vp8), Some(CodecFamily::H264)] {
        let _ = choose_codecs(&offer, wanted, CodecFamily::Vp8, Some("2"));
        let _ = choose_codecs(&offer, wanted, CodecFamily::H264, None);
    }
});
