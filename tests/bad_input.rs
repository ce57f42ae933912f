//! Bad input over the real signaling socket: malformed and out-of-order
//! messages get a precise error and the socket stays usable; an offer with
//! only an unsupported codec, or shaped as no real client sends it, is
//! refused while the room carries on.

mod common;

use std::time::Duration;

use common::peer::{PeerOptions, SendCodec, TestPeer};
use common::ws::{read, send_and_read};
use common::{init, test_config, wait_until, TestServer, SERIAL};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_out_of_order_messages_get_errors_and_the_socket_stays_usable() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(test_config()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .unwrap();

    let cases = [
        ("{not json", "bad-message", "key must be a string"),
        (
            r#"{"type":"dance"}"#,
            "bad-message",
            "unknown variant `dance`",
        ),
        (
            r#"{"type":"join","room":"r"}"#,
            "bad-message",
            "field `name`: is missing",
        ),
        (
            r#"{"type":"join","room":"r","name":"n","x":1}"#,
            "bad-message",
            "unknown field `x`",
        ),
        (
            r#"{"type":"join","room":"a/b","name":"n"}"#,
            "bad-message",
            "field `room`",
        ),
        (
            r#"{"type":"offer","sdp":"v=0"}"#,
            "out-of-order",
            "send join first",
        ),
        (r#"{"type":"leave"}"#, "out-of-order", "send join first"),
    ];
    for (text, code, needle) in cases {
        let reply = send_and_read(&mut ws, text).await;
        assert_eq!(reply["type"], "error", "{text} -> {reply}");
        assert_eq!(reply["code"], code, "{text} -> {reply}");
        let message = reply["message"].as_str().unwrap();
        assert!(message.contains(needle), "{text} -> {message}");
    }
    // Still usable: a proper join works on the same socket.
    let reply = send_and_read(&mut ws, r#"{"type":"join","room":"r1","name":"Ada"}"#).await;
    assert_eq!(reply["type"], "joined", "{reply}");
    assert_eq!(reply["version"], 1);
    let id = reply["participantId"].as_str().unwrap().to_string();
    assert_eq!(reply["participants"][0]["id"], id.as_str());
    // Then the room's layout.
    let layout = read(&mut ws).await;
    assert_eq!(
        (layout["type"].as_str(), layout["name"].as_str()),
        (Some("layout"), Some("grid")),
        "{layout}"
    );
    // Joining twice is out of order; garbage SDP is a bad offer.
    let reply = send_and_read(&mut ws, r#"{"type":"join","room":"r2","name":"Ada"}"#).await;
    assert_eq!(reply["code"], "out-of-order", "{reply}");
    let reply = send_and_read(&mut ws, r#"{"type":"offer","sdp":"hello"}"#).await;
    assert_eq!(reply["code"], "bad-offer", "{reply}");
    // Leave, then the room is gone.
    let reply = send_and_read(&mut ws, r#"{"type":"leave"}"#).await;
    assert_eq!(reply["type"], "left", "{reply}");
    assert!(wait_until(Duration::from_secs(5), || server.registry.room_count() == 0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_with_only_an_unsupported_codec_is_refused_and_the_room_carries_on() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(test_config()).await;
    let url = server.ws_url();
    let opts = |name: &str, codec, color, ask| PeerOptions {
        codec,
        ask,
        tone_hz: 600.0,
        ..PeerOptions::new("club", name, color)
    };
    let good = TestPeer::join(&url, opts("good", SendCodec::Vp8, 0xff0000, None)).await;
    assert!(
        wait_until(Duration::from_secs(20), || good.frames() > 15).await,
        "first peer gets no canvas"
    );

    let bad = TestPeer::join(&url, opts("vp9", SendCodec::Vp9, 0x00ff00, None)).await;
    let err = bad
        .wait_message(Duration::from_secs(10), |m| m["type"] == "error")
        .await
        .expect("an error for the VP9-only offer");
    assert_eq!(err["code"], "unsupported-codec", "{err}");
    assert!(err["message"].as_str().unwrap().contains("VP9"), "{err}");

    // Asking for a family the offer lacks is refused too.
    let h264_ask = TestPeer::join(
        &url,
        opts("wants-h264", SendCodec::Vp8, 0x0000ff, Some("h264")),
    )
    .await;
    let err = h264_ask
        .wait_message(Duration::from_secs(10), |m| m["type"] == "error")
        .await
        .expect("an error for an unmet codec wish");
    assert_eq!(err["code"], "unsupported-codec", "{err}");

    // Offers no real client sends are refused with the reason.
    let chromium = include_str!("fixtures/sdp/chromium-offer.sdp");
    let video = &chromium[chromium.find("m=video").unwrap()..];
    let hostile = [
        (
            chromium
                .lines()
                .filter(|l| !l.starts_with("a=fingerprint"))
                .map(|l| format!("{l}\r\n"))
                .collect::<String>(),
            "no a=fingerprint",
        ),
        (format!("{chromium}{}", video.repeat(10)), "at most 8"),
        (
            chromium.replacen(
                "m=audio 9 UDP/TLS/RTP/SAVPF 111",
                "m=audio 9 UDP/TLS/RTP/SAVPF 111 4000",
                1,
            ),
            "payload type `4000`",
        ),
    ];
    for (sdp, words) in hostile {
        let mut ws = common::ws::connect(&url).await;
        let joined = send_and_read(&mut ws, r#"{"type":"join","room":"club","name":"odd"}"#).await;
        assert_eq!(joined["type"], "joined", "{joined}");
        let offer = serde_json::json!({"type": "offer", "sdp": sdp}).to_string();
        let mut reply = send_and_read(&mut ws, &offer).await;
        while reply["type"] != "error" {
            reply = read(&mut ws).await;
        }
        assert_eq!(reply["code"], "bad-offer", "{reply}");
        assert!(
            reply["message"].as_str().unwrap().contains(words),
            "{reply}"
        );
    }

    // The first participant is undisturbed: frames keep coming, one tile, red.
    let before = good.frames();
    assert!(
        wait_until(Duration::from_secs(5), || good.frames() > before + 30).await,
        "frames stopped for the good peer"
    );
    let frame = good.last_frame().unwrap();
    let (r, g, b) = frame.rgb_at(frame.width / 2, frame.height / 2);
    assert!(
        r > 150 && g < 80 && b < 80,
        "centre is not red: {:?}",
        (r, g, b)
    );
    let snap = server.room("club").await.unwrap();
    assert_eq!(snap.encoders.len(), 1, "no encoder for the refused offers");
    drop(bad);
    drop(h264_ask);
    good.leave().await;
    assert!(
        wait_until(Duration::from_secs(10), || server.registry.room_count()
            == 0)
        .await
    );
}

/// A participant whose connection never comes up (an offer, then nothing:
/// the offer names no candidate to reach) holds up nobody. webrtcbin holds
/// back what reaches a connection whose DTLS keys are not set, in the
/// pushing thread: the participant's own send queues take that wait, and
/// the encoded canvas and the shared mix flow on to everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_whose_connection_never_comes_up_holds_nobody_up() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(test_config()).await;
    let url = server.ws_url();
    let good = TestPeer::join(&url, PeerOptions::new("club", "good", 0xff0000)).await;
    assert!(
        wait_until(Duration::from_secs(20), || good.frames() > 15
            && good.audio_samples() > 48_000)
        .await,
        "the first peer gets no canvas or no mix"
    );

    let mut ws = common::ws::connect(&url).await;
    let joined = send_and_read(&mut ws, r#"{"type":"join","room":"club","name":"stuck"}"#).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let stuck = joined["participantId"].as_str().unwrap().to_string();
    let offer = serde_json::json!({
        "type": "offer",
        "sdp": include_str!("fixtures/sdp/chromium-offer.sdp"),
    })
    .to_string();
    let mut reply = send_and_read(&mut ws, &offer).await;
    while reply["type"] != "answer" {
        assert_ne!(reply["type"], "error", "{reply}");
        reply = read(&mut ws).await;
    }

    // Same family as the first peer: the one VP8 encode feeds both.
    let snap = server.room("club").await.unwrap();
    assert_eq!(snap.encoders.len(), 1, "{:?}", snap.encoders);
    let (frames, samples) = (good.frames(), good.audio_samples());
    tokio::time::sleep(Duration::from_secs(3)).await;
    // 45 canvas frames (at the tests' 15 fps) and 144 000 samples in 3 s;
    // a blocked encoder or mix would give next to none.
    assert!(
        good.frames() > frames + 22,
        "the canvas stalled: {} frames in 3 s",
        good.frames() - frames
    );
    assert!(
        good.audio_samples() > samples + 72_000,
        "the mix stalled: {} samples in 3 s",
        good.audio_samples() - samples
    );
    let snap = server.room("club").await.unwrap();
    assert!(
        snap.media.iter().any(|(id, _)| *id == stuck),
        "the stuck participant is not in the room"
    );

    drop(ws);
    assert!(
        wait_until(Duration::from_secs(10), || good.participant_count()
            == Some(1))
        .await,
        "the stuck participant was not removed when its socket closed"
    );
    good.leave().await;
}
