//! Peer-to-peer signaling, over the real server and its WebSocket: a room
//! of two clients that can connect directly is told who offers, passes
//! their offer, answer and candidates between them, falls back to the MCU
//! when the direct connection does not come up in 5 s, moves to the MCU
//! when a third joins, a recording starts or a token says so, and comes
//! back to peer-to-peer after the hold. The browsers' media over the
//! direct connection is in `tests/browsers_p2p.rs`.

mod common;

use std::time::{Duration, Instant};

use common::ws::{connect, join, next_of, send};
use common::{init, test_config, TestServer, SERIAL};
use serde_json::{json, Value};
use tessera::config::{Config, P2pPolicy};

fn p2p_config() -> Config {
    let mut c = test_config();
    c.rooms.p2p = P2pPolicy::Auto;
    c.rooms.p2p_hold_seconds = 1;
    c
}

async fn room_mode(server: &TestServer, room: &str) -> (String, Option<String>) {
    let snap = server.room(room).await.expect("the room");
    (
        snap.mode.mode.as_str().to_string(),
        snap.mode.mcu_cause.clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_signals_through_the_server_and_falls_back_to_the_mcu_when_it_cannot_connect() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(p2p_config()).await;
    let room = "pair";
    let (mut ada, ada_id) = join(&server, room, "Ada", json!({"p2p": true})).await;
    let (mut bo, bo_id) = join(&server, room, "Bo", json!({"p2p": true})).await;

    // The first to join offers; each is told the other.
    let to_ada = next_of(&mut ada, "mode", Duration::from_secs(5))
        .await
        .expect("ada is told the mode");
    assert_eq!(
        to_ada,
        json!({"type": "mode", "mode": "p2p", "peer": bo_id, "offerer": true, "reason": null})
    );
    let to_bo = next_of(&mut bo, "mode", Duration::from_secs(5))
        .await
        .expect("bo is told the mode");
    assert_eq!(to_bo["peer"], ada_id.as_str());
    assert_eq!(to_bo["offerer"], false);
    assert_eq!(room_mode(&server, room).await.0, "p2p");

    // The offer, answer and candidates pass between them, marked with who
    // sent them; the answerer cannot send an offer.
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
    send(&mut ada, json!({"type": "peerOffer", "sdp": sdp})).await;
    let offer = next_of(&mut bo, "peerOffer", Duration::from_secs(5))
        .await
        .expect("bo gets the offer");
    assert_eq!(
        offer,
        json!({"type": "peerOffer", "from": ada_id, "sdp": sdp})
    );
    send(&mut bo, json!({"type": "peerOffer", "sdp": sdp})).await;
    let refused = next_of(&mut bo, "error", Duration::from_secs(5))
        .await
        .expect("a refusal");
    assert_eq!(refused["code"], "out-of-order", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("peerAnswer"),
        "{refused}"
    );
    send(&mut bo, json!({"type": "peerAnswer", "sdp": sdp})).await;
    let answer = next_of(&mut ada, "peerAnswer", Duration::from_secs(5))
        .await
        .expect("ada gets the answer");
    assert_eq!(answer["from"], bo_id.as_str());
    let candidate = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host";
    send(
        &mut bo,
        json!({"type": "peerIce", "candidate": candidate, "sdpMLineIndex": 0, "sdpMid": "0"}),
    )
    .await;
    let ice = next_of(&mut ada, "peerIce", Duration::from_secs(5))
        .await
        .expect("ada gets the candidate");
    assert_eq!(
        ice,
        json!({"type": "peerIce", "from": bo_id, "candidate": candidate, "sdpMLineIndex": 0, "sdpMid": "0"})
    );
    // Hostile relays are refused with the field named, and nothing passes.
    send(
        &mut ada,
        json!({"type": "peerIce", "candidate": "<script>", "sdpMLineIndex": 0}),
    )
    .await;
    let refused = next_of(&mut ada, "error", Duration::from_secs(5))
        .await
        .expect("a refusal");
    assert_eq!(refused["code"], "bad-message", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("`candidate`"),
        "{refused}"
    );

    // Only Ada says the direct connection is up: 5 s after the switch the
    // room moves to the MCU, tells both why, and the API says it too.
    send(&mut ada, json!({"type": "direct", "connected": true})).await;
    let switched = Instant::now();
    let back = next_of(&mut bo, "mode", Duration::from_secs(8))
        .await
        .expect("bo is moved to the MCU");
    let waited = switched.elapsed();
    assert_eq!(back["mode"], "mcu", "{back}");
    assert_eq!(back["peer"], Value::Null);
    assert!(
        back["reason"]
            .as_str()
            .unwrap()
            .contains("direct connection did not come up"),
        "{back}"
    );
    assert!(
        waited > Duration::from_secs(3) && waited < Duration::from_secs(7),
        "{waited:?}"
    );
    let to_ada = next_of(&mut ada, "mode", Duration::from_secs(2))
        .await
        .expect("ada too");
    assert_eq!(to_ada["mode"], "mcu");
    let (mode, cause) = room_mode(&server, room).await;
    assert_eq!(mode, "mcu");
    assert!(
        cause.unwrap_or_default().contains("did not come up"),
        "the API says why"
    );

    // The pair that failed stays on the MCU, past the hold, and may not
    // relay any more.
    assert!(next_of(&mut ada, "mode", Duration::from_secs(2))
        .await
        .is_none());
    send(&mut ada, json!({"type": "peerOffer", "sdp": sdp})).await;
    let refused = next_of(&mut ada, "error", Duration::from_secs(5))
        .await
        .expect("a refusal");
    assert_eq!(refused["code"], "out-of-order", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("mode mcu"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_a_recording_or_a_token_moves_the_pair_to_the_mcu_and_two_come_back_after_the_hold()
{
    let _serial = SERIAL.lock().await;
    init();
    let recordings = std::env::temp_dir().join(format!("tessera-p2p-rec-{}", std::process::id()));
    let mut config = p2p_config();
    config.recording.dir = recordings.clone();
    let server = TestServer::start(config).await;
    let room = "lesson";
    let (mut ada, _) = join(
        &server,
        room,
        "Ada",
        json!({"p2p": true, "role": "teacher"}),
    )
    .await;
    let (mut bo, bo_id) = join(&server, room, "Bo", json!({"p2p": true})).await;
    for ws in [&mut ada, &mut bo] {
        let m = next_of(ws, "mode", Duration::from_secs(5)).await.unwrap();
        assert_eq!(m["mode"], "p2p");
        send(ws, json!({"type": "direct", "connected": true})).await;
    }
    // Connected in time: no fallback.
    assert!(next_of(&mut bo, "mode", Duration::from_secs(6))
        .await
        .is_none());
    assert_eq!(room_mode(&server, room).await.0, "p2p");

    // A third participant (a client that cannot connect directly): both
    // are moved to the MCU at once.
    let (cy, _) = join(&server, room, "Cy", json!({})).await;
    for ws in [&mut ada, &mut bo] {
        let m = next_of(ws, "mode", Duration::from_secs(2))
            .await
            .expect("moved at the join");
        assert_eq!(m["mode"], "mcu");
        assert!(
            m["reason"].as_str().unwrap().contains("3 participants"),
            "{m}"
        );
    }
    // Back to two: peer-to-peer again after the hold (1 s here), not before.
    let left = Instant::now();
    drop(cy);
    let again = next_of(&mut ada, "mode", Duration::from_secs(5))
        .await
        .expect("back to peer-to-peer");
    assert_eq!(again["mode"], "p2p");
    assert!(
        left.elapsed() >= Duration::from_millis(900),
        "{:?}",
        left.elapsed()
    );
    assert_eq!(
        next_of(&mut bo, "mode", Duration::from_secs(2))
            .await
            .unwrap()["mode"],
        "p2p"
    );

    // The teacher starts recording: the recording needs both on the server.
    send(&mut ada, json!({"type": "record", "on": true})).await;
    for ws in [&mut ada, &mut bo] {
        let m = next_of(ws, "mode", Duration::from_secs(5))
            .await
            .expect("moved for the recording");
        assert_eq!(m["mode"], "mcu");
        assert!(m["reason"].as_str().unwrap().contains("recording"), "{m}");
    }
    send(&mut ada, json!({"type": "record", "on": false})).await;
    let m = next_of(&mut bo, "mode", Duration::from_secs(8))
        .await
        .expect("back after the recording and the hold");
    assert_eq!(m["mode"], "p2p");
    assert_eq!(
        next_of(&mut ada, "mode", Duration::from_secs(2))
            .await
            .unwrap()["mode"],
        "p2p"
    );

    // The teacher removes the other in peer-to-peer: it is told it left
    // (its client closes the direct connection), and the teacher is back
    // on the MCU, alone.
    send(&mut ada, json!({"type": "remove", "participant": bo_id})).await;
    assert!(next_of(&mut bo, "left", Duration::from_secs(5))
        .await
        .is_some());
    let m = next_of(&mut ada, "mode", Duration::from_secs(5))
        .await
        .expect("the teacher is moved to the MCU");
    assert_eq!(m["mode"], "mcu");
    assert!(
        m["reason"].as_str().unwrap().contains("1 participants"),
        "{m}"
    );
    drop((ada, bo));
    let _ = std::fs::remove_dir_all(&recordings);

    // A participant whose token says so keeps a room of two on the MCU.
    let mut config = p2p_config();
    config.auth.secret = "Vb7Qe2Lr9Xp4Mz1Ks8Tn3Wd6Hy0Jc5Gu".into();
    let server = TestServer::start(config).await;
    let keys = tessera::auth::TokenKeys::new("Vb7Qe2Lr9Xp4Mz1Ks8Tn3Wd6Hy0Jc5Gu", "tessera", 0);
    let now = tessera::auth::bans::unix_now();
    let hour = Duration::from_secs(3600);
    let role = tessera::ids::Role::Student;
    let free = keys.issue("t", tessera::ids::Role::Teacher, "Ada", hour, now);
    let held = keys.issue_with("t", role, "Bo", hour, now, false);
    let mut ws = Vec::new();
    for token in [free, held] {
        let mut s = connect(&server.ws_url()).await;
        send(
            &mut s,
            json!({"type": "join", "room": "t", "token": token, "p2p": true}),
        )
        .await;
        next_of(&mut s, "joined", Duration::from_secs(5))
            .await
            .expect("joined");
        ws.push(s);
    }
    assert!(next_of(&mut ws[0], "mode", Duration::from_secs(2))
        .await
        .is_none());
    let (mode, cause) = room_mode(&server, "t").await;
    assert_eq!(mode, "mcu");
    assert!(cause.unwrap_or_default().contains("off for this room"));
}
