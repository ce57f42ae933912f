//! Limits under abuse: oversized and flooding messages, idle and silent
//! sockets, too many sockets from one address, full rooms, too many rooms,
//! and pages from other sites are refused with precise errors while a
//! legitimate participant in the same room keeps receiving frames. Unsafe
//! configurations refuse to start.

mod common;

use std::time::Duration;

use common::peer::{PeerOptions, TestPeer};
use common::ws::{connect, read, send_and_read, Ws};
use common::{init, test_config, wait_until, TestServer, SERIAL};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Reads until the server closes the socket; returns the last error message
/// seen and the close reason.
async fn until_closed(ws: &mut Ws) -> (String, String) {
    let (mut last_error, mut reason) = (String::new(), String::new());
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        match frame {
            Ok(Message::Text(t)) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "error" {
                    last_error = v["message"].as_str().unwrap().to_string();
                }
            }
            Ok(Message::Close(Some(c))) => reason = c.reason.to_string(),
            Ok(Message::Close(None)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    (last_error, reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abusive_sockets_are_refused_while_the_lesson_goes_on() {
    let _serial = SERIAL.lock().await;
    init();
    let mut config = test_config();
    config.limits.participants_per_room = 3;
    config.limits.max_rooms = 2;
    config.limits.join_timeout_seconds = 2;
    config.limits.messages_per_second = 20;
    config.limits.message_burst = 20;
    let server = TestServer::start(config).await;
    let peer = TestPeer::join(&server.ws_url(), PeerOptions::new("lesson", "a", 0x00ff00)).await;
    assert!(
        wait_until(Duration::from_secs(20), || peer.frames() > 10).await,
        "no media"
    );
    let frames_before = peer.frames();

    // Oversized: a precise error, and the socket stays usable.
    let mut ws = connect(&server.ws_url()).await;
    let big = json!({"type": "offer", "sdp": "v".repeat(70 * 1024)}).to_string();
    let reply = send_and_read(&mut ws, &big).await;
    assert_eq!(reply["code"], "too-large", "{reply}");
    assert!(reply["message"]
        .as_str()
        .unwrap()
        .contains("limits.max_message_bytes"));
    let reply = send_and_read(&mut ws, r#"{"type":"leave"}"#).await;
    assert_eq!(reply["code"], "out-of-order", "{reply}");

    // A flood: rate-limited, then closed.
    for _ in 0..300 {
        if ws.send(Message::text(r#"{"type":"leave"}"#)).await.is_err() {
            break;
        }
    }
    let mut rate_limited = false;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        match frame {
            Message::Text(t) if t.contains("rate-limited") => rate_limited = true,
            Message::Close(c) => {
                let reason = c.map(|c| c.reason.to_string()).unwrap_or_default();
                assert!(reason.contains("limits.messages_per_second"), "{reason}");
                break;
            }
            _ => {}
        }
    }
    assert!(rate_limited, "no rate-limited error");

    // A socket that never joins is closed.
    let mut idle = connect(&server.ws_url()).await;
    let (error, reason) = until_closed(&mut idle).await;
    assert!(error.contains("no join within 2 s"), "{error}");
    assert!(reason.contains("limits.join_timeout_seconds"), "{reason}");

    // A full room.
    let join =
        |room: &str, name: &str| json!({"type": "join", "room": room, "name": name}).to_string();
    let mut b = connect(&server.ws_url()).await;
    assert_eq!(
        send_and_read(&mut b, &join("lesson", "b")).await["type"],
        "joined"
    );
    let mut c = connect(&server.ws_url()).await;
    assert_eq!(
        send_and_read(&mut c, &join("lesson", "c")).await["type"],
        "joined"
    );
    let mut d = connect(&server.ws_url()).await;
    let reply = send_and_read(&mut d, &join("lesson", "d")).await;
    assert_eq!(reply["code"], "room-unavailable", "{reply}");
    assert!(reply["message"]
        .as_str()
        .unwrap()
        .contains("limits.participants_per_room"));
    assert_eq!(
        read(&mut d).await["type"],
        "left",
        "a refused join ends in `left`"
    );
    assert_eq!(server.room("lesson").await.unwrap().participants.len(), 3);

    // Too many rooms.
    let mut e = connect(&server.ws_url()).await;
    assert_eq!(
        send_and_read(&mut e, &join("second", "e")).await["type"],
        "joined"
    );
    let reply = send_and_read(&mut d, &join("third", "d")).await;
    assert_eq!(reply["code"], "room-unavailable", "{reply}");
    assert!(reply["message"]
        .as_str()
        .unwrap()
        .contains("limits.max_rooms"));
    assert!(server.room("third").await.is_none());

    // Through it all the legitimate participant kept receiving.
    assert!(
        wait_until(Duration::from_secs(5), || peer.frames()
            > frames_before + 30)
        .await,
        "the lesson stalled: {} frames before, {} now",
        frames_before,
        peer.frames()
    );
    peer.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_per_address_silent_sockets_and_foreign_pages_are_refused() {
    let _serial = SERIAL.lock().await;
    init();
    let mut config = test_config();
    config.limits.sockets_per_ip = 2;
    config.limits.idle_timeout_seconds = 5;
    config.server.allowed_origins = vec!["https://school.example.org".into()];
    let server = TestServer::start(config).await;

    let request = |origin: Option<&str>| {
        let mut r = server.ws_url().into_client_request().unwrap();
        if let Some(o) = origin {
            r.headers_mut().insert("Origin", o.parse().unwrap());
        }
        r
    };
    let refused = tokio_tungstenite::connect_async(request(Some("https://evil.example.com")))
        .await
        .unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(resp) = refused else {
        panic!("{refused}");
    };
    assert_eq!(resp.status(), 403);
    let body = String::from_utf8(resp.body().clone().unwrap_or_default()).unwrap();
    assert!(body.contains("server.allowed_origins"), "{body}");
    let own = format!("http://{}", server.addr);
    let (mut a, _) = tokio_tungstenite::connect_async(request(Some(&own)))
        .await
        .unwrap();
    let (_b, _) = tokio_tungstenite::connect_async(request(Some("https://school.example.org")))
        .await
        .unwrap();

    // Two sockets from 127.0.0.1 are open: a third is refused.
    let third = tokio_tungstenite::connect_async(request(None))
        .await
        .unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(resp) = third else {
        panic!("{third}");
    };
    assert_eq!(resp.status(), 429);

    // A joined socket that stops answering pings is closed after 5 s.
    let reply = send_and_read(&mut a, r#"{"type":"join","room":"quiet","name":"q"}"#).await;
    assert_eq!(reply["type"], "joined");
    assert!(
        wait_until(Duration::from_secs(15), || server.registry.room_count()
            == 0)
        .await,
        "the silent participant is still in its room"
    );
    // The socket is closed. Reading answers the queued pings, which may
    // meet the closed connection and reset it before the reason is read,
    // so the words are checked only when they arrived.
    let (error, reason) = until_closed(&mut a).await;
    assert!(
        error.is_empty() || error.contains("limits.idle_timeout_seconds"),
        "{error}"
    );
    assert!(
        reason.is_empty() || reason.contains("nothing received"),
        "{reason}"
    );
    // Its slot is free again.
    drop(a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = connect(&server.ws_url()).await;
    let reply = send_and_read(&mut c, r#"{"type":"leave"}"#).await;
    assert_eq!(reply["code"], "out-of-order");
}

/// Runs `tessera check`-free start-up of the real binary with `env`;
/// returns its exit success and stderr.
fn start_binary(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TESSERA_LOG", "error")
        .env_remove("TESSERA_TOKEN_SECRET")
        .env_remove("TESSERA_ADMIN_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn unsafe_configurations_refuse_to_start_and_say_what_to_set() {
    let secret = "Vb7Qe2Lr9Xp4Mz1Ks8Tn3Wd6Hy0Jc5Gu";
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[], "set auth.secret (or TESSERA_TOKEN_SECRET)"),
        (
            &[("TESSERA_TOKEN_SECRET", "change-me")],
            "auth.secret (or TESSERA_TOKEN_SECRET) is 9 characters",
        ),
        (
            &[("TESSERA_TOKEN_SECRET", secret)],
            "set admin.key (or TESSERA_ADMIN_KEY)",
        ),
        (
            &[
                ("TESSERA_TOKEN_SECRET", secret),
                ("TESSERA_ADMIN_KEY", "example-admin-key-example-admin-key"),
            ],
            "admin.key (or TESSERA_ADMIN_KEY) contains `example`",
        ),
    ];
    for (env, words) in cases {
        let (ok, stderr) = start_binary(&["serve", "--listen", "0.0.0.0:0"], env);
        assert!(!ok, "{env:?} started");
        assert!(stderr.contains(words), "{env:?}: {stderr}");
    }
}

#[test]
fn tessera_token_prints_a_join_link_that_the_server_accepts() {
    let secret = "Vb7Qe2Lr9Xp4Mz1Ks8Tn3Wd6Hy0Jc5Gu";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "token",
            "--room",
            "math-1",
            "--role",
            "teacher",
            "--name",
            "Ada Lovelace",
            "--ttl",
            "90m",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TESSERA_TOKEN_SECRET", secret)
        .env("TESSERA_SERVER__PUBLIC_URL", "https://lessons.example.org/")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = String::from_utf8(out.stdout).unwrap();
    let token = link
        .trim()
        .strip_prefix("https://lessons.example.org/r/math-1?token=")
        .unwrap_or_else(|| panic!("{link}"));
    let claims = tessera::auth::TokenKeys::new(secret, "tessera", 0)
        .verify(token, "math-1")
        .unwrap();
    assert_eq!(claims.name, "Ada Lovelace");
    assert_eq!(claims.role, tessera::ids::Role::Teacher);
    assert_eq!(claims.exp - claims.nbf, 90 * 60);
    // Without a secret it says what to set.
    let (ok, stderr) = start_binary(&["token", "--room", "r", "--name", "n"], &[]);
    assert!(!ok);
    assert!(
        stderr.contains("auth.secret (or TESSERA_TOKEN_SECRET) is empty"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_garbage_senders_do_not_take_the_room_down() {
    let _serial = SERIAL.lock().await;
    init();
    let mut config = test_config();
    config.limits.max_video_width = 256;
    config.limits.max_video_height = 200;
    let server = TestServer::start(config.clone()).await;
    let small = |name: &str, color: u32| PeerOptions {
        send_size: (160, 120),
        ..PeerOptions::new("hostile", name, color)
    };
    let a = TestPeer::join(&server.ws_url(), small("a", 0x00ff00)).await;
    let b = TestPeer::join(&server.ws_url(), small("b", 0x0000ff)).await;
    assert!(
        wait_until(Duration::from_secs(20), || a.frames() > 10
            && b.frames() > 10)
        .await,
        "no media"
    );
    // 320x240 is over this server's 256x200.
    let big = TestPeer::join(
        &server.ws_url(),
        PeerOptions::new("hostile", "big", 0xff0000),
    )
    .await;
    let told = big
        .wait_message(Duration::from_secs(20), |m| m["code"] == "video-too-large")
        .await;
    assert!(told.is_some(), "{:?}", big.messages());
    let garbage = TestPeer::join(
        &server.ws_url(),
        PeerOptions {
            corrupt_video: true,
            ..small("garbage", 0xffff00)
        },
    )
    .await;
    let (fa, fb) = (a.frames(), b.frames());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        a.frames() > fa + 40 && b.frames() > fb + 40,
        "the room stalled: {fa}->{} and {fb}->{}",
        a.frames(),
        b.frames()
    );
    // The oversized sender's tile never shows its picture.
    let tiles = common::grid_tiles(&config, 4);
    let frame = a.last_frame().unwrap();
    let t = tiles[2];
    let centre = frame.rgb_at(t.x + t.width / 2, t.y + t.height / 2);
    assert!(
        !common::media::color_matches(centre, 0xff0000),
        "the oversized video reached the canvas: {centre:?}"
    );
    // The good peers still see each other.
    let t = tiles[1];
    assert!(common::media::color_matches(
        frame.rgb_at(t.x + t.width / 2, t.y + t.height / 2),
        0x0000ff
    ));
    for p in [a, b, big, garbage] {
        p.leave().await;
    }
}
