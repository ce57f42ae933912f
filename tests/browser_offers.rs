//! The server answers real browser offers (Chromium and Firefox SDP kept as
//! fixtures in tests/fixtures/sdp/): the answer uses the offer's own payload
//! types, bundles both m-lines on one transport with rtcp-mux, and keeps the
//! offer's directions.

mod common;

use std::time::Duration;

use common::{init, test_config, TestServer, SERIAL};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sdp");

/// Joins `room`, sends the fixture's offer, and returns the answer's SDP.
async fn answer_for(server: &TestServer, room: &str, fixture: &str, codec: Option<&str>) -> String {
    let offer = std::fs::read_to_string(format!("{FIXTURES}/{fixture}")).unwrap();
    let (sdp, mut ws) = offer_answer(server, room, fixture, &offer, codec).await;
    ws.send(Message::text(r#"{"type":"leave"}"#)).await.unwrap();
    sdp
}

/// Joins `room` as `name`, sends `offer`, and returns the answer's SDP with
/// the socket, still in the room.
async fn offer_answer(
    server: &TestServer,
    room: &str,
    name: &str,
    offer: &str,
    codec: Option<&str>,
) -> (
    String,
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();
    let mut join = json!({"type": "join", "room": room, "name": name});
    if let Some(c) = codec {
        join["codec"] = json!(c);
    }
    ws.send(Message::text(join.to_string())).await.unwrap();
    ws.send(Message::text(
        json!({"type": "offer", "sdp": offer}).to_string(),
    ))
    .await
    .unwrap();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an answer in time")
            .expect("socket open")
            .unwrap();
        let Message::Text(t) = frame else { continue };
        let v: Value = serde_json::from_str(&t).unwrap();
        match v["type"].as_str() {
            Some("answer") => return (v["sdp"].as_str().unwrap().to_string(), ws),
            Some("error") => panic!("{name}: {v}"),
            _ => {}
        }
    }
}

/// The lines of the m-section of `kind` (audio or video).
fn section<'a>(sdp: &'a str, kind: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = sdp.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(&format!("m={kind} ")))
        .unwrap_or_else(|| panic!("no m={kind} in answer:\n{sdp}"));
    lines[start..]
        .iter()
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !l.starts_with("m="))
        .map(|(_, l)| *l)
        .collect()
}

fn check(sdp: &str, audio_pt: u8, video_pt: u8, video_codec: &str, direction: &str) {
    assert!(sdp.contains("a=group:BUNDLE"), "{sdp}");
    for kind in ["audio", "video"] {
        let s = section(sdp, kind);
        assert!(s.contains(&"a=rtcp-mux"), "{kind} lacks rtcp-mux:\n{sdp}");
        assert!(s.contains(&direction), "{kind} is not {direction}:\n{sdp}");
    }
    let audio = section(sdp, "audio");
    // Opus first (what the browser sends us); beside it only the offer's
    // RED, given as the browser offered it: two channels, Opus blocks.
    let audio_pts: Vec<&str> = audio[0].split(' ').skip(3).collect();
    assert_eq!(audio_pts[0], audio_pt.to_string(), "{}", audio[0]);
    for red in &audio_pts[1..] {
        assert!(
            audio.contains(&format!("a=rtpmap:{red} red/48000/2").as_str())
                && audio.contains(&format!("a=fmtp:{red} {audio_pt}/{audio_pt}").as_str()),
            "{} is not RED around Opus:\n{sdp}",
            red
        );
    }
    assert!(
        audio
            .iter()
            .any(|l| l.eq_ignore_ascii_case(&format!("a=rtpmap:{audio_pt} OPUS/48000/2"))),
        "{sdp}"
    );
    let video = section(sdp, "video");
    // The chosen codec, and its retransmission format (apt = the codec).
    let pts: Vec<&str> = video[0].split(' ').skip(3).collect();
    assert_eq!(pts[0], video_pt.to_string(), "{}", video[0]);
    assert!(
        pts.len() <= 2,
        "only the chosen codec is answered: {}",
        video[0]
    );
    if let Some(rtx) = pts.get(1) {
        assert!(
            video
                .iter()
                .any(|l| *l == format!("a=fmtp:{rtx} apt={video_pt}")),
            "the second payload type retransmits the codec:\n{sdp}"
        );
    }
    assert!(
        video.iter().any(|l| l.ends_with(" nack")),
        "generic NACK negotiated:\n{sdp}"
    );
    assert!(
        audio.iter().any(|l| l.contains("useinbandfec=1")),
        "Opus in-band FEC asked for:\n{sdp}"
    );
    assert!(
        video
            .iter()
            .any(|l| l.eq_ignore_ascii_case(&format!("a=rtpmap:{video_pt} {video_codec}/90000"))),
        "{sdp}"
    );
    assert!(
        video.iter().any(|l| l.contains("nack pli")),
        "PLI feedback negotiated:\n{sdp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_browser_offers_are_answered() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(test_config()).await;

    let sdp = answer_for(&server, "o1", "chromium-offer.sdp", None).await;
    check(&sdp, 111, 96, "VP8", "a=sendrecv");
    assert!(
        section(&sdp, "audio")[0].ends_with(" 111 63"),
        "Chromium's RED is answered:\n{sdp}"
    );

    let sdp = answer_for(&server, "o2", "chromium-h264-offer.sdp", Some("h264")).await;
    check(&sdp, 111, 108, "H264", "a=sendrecv");
    let video = section(&sdp, "video");
    assert!(
        video.iter().any(|l| l.contains("packetization-mode=1")),
        "{sdp}"
    );
    assert!(
        video.iter().any(|l| l.contains("profile-level-id=42e01f")),
        "{sdp}"
    );

    let sdp = answer_for(&server, "o3", "firefox-offer.sdp", None).await;
    check(&sdp, 109, 120, "VP8", "a=sendrecv");
    assert!(
        section(&sdp, "audio")[0].ends_with(" 109"),
        "Firefox offers no RED:\n{sdp}"
    );

    // A client with no camera or microphone still receives the room.
    let sdp = answer_for(&server, "o4", "chromium-recvonly-offer.sdp", None).await;
    check(&sdp, 111, 96, "VP8", "a=sendonly");
}

/// An H.264 offer that carries its own parameter sets is still answered
/// send-and-receive. The offer that starts a room's H.264 encoder is the
/// one at risk: the encoder's first keyframe puts our own parameter sets on
/// the participant's send pad while the answer is being made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h264_offer_with_parameter_sets_gets_the_canvas() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(test_config()).await;
    let plain = std::fs::read_to_string(format!("{FIXTURES}/chromium-h264-offer.sdp")).unwrap();
    let with_sets = plain.replace(
        "profile-level-id=42e01f",
        "profile-level-id=42e01f;sprop-parameter-sets=Z0LAHtkAUAW7ARAAAAMAEAAAAwPI8WLkgA==,aMuMsg==",
    );
    assert_ne!(with_sets, plain, "the fixture has the fmtp line to extend");
    for room in ["o5", "o6", "o7", "o8"] {
        let (sdp, ws) = offer_answer(&server, room, "with-sets", &with_sets, Some("h264")).await;
        check(&sdp, 111, 108, "H264", "a=sendrecv");
        drop(ws);
    }
}
