//! Trust over the real signaling socket: join tokens decide who gets in and
//! as what, teachers' powers are refused to students, removed tokens stay
//! out, and a locked room takes only teachers. Every refusal is precise
//! and changes nothing.

mod common;

use std::time::Duration;

use common::media::{dropouts, tone_power};
use common::peer::{PeerOptions, TestPeer};
use common::ws::{connect, read, send_and_read, Ws};
use common::{init, live_elements, test_config, wait_until, TestServer, SERIAL};
use serde_json::{json, Value};
use tessera::auth::TokenKeys;
use tessera::config::Config;
use tessera::ids::Role;

const SECRET: &str = "Vb7Qe2Lr9Xp4Mz1Ks8Tn3Wd6Hy0Jc5Gu";

fn keys() -> TokenKeys {
    TokenKeys::new(SECRET, "tessera", 0)
}

fn now() -> u64 {
    tessera::auth::bans::unix_now()
}

fn token(room: &str, role: Role, name: &str) -> String {
    keys().issue(room, role, name, Duration::from_secs(3600), now())
}

fn token_config() -> Config {
    let mut c = test_config();
    c.auth.secret = SECRET.into();
    c
}

/// Joins `room` with `token`; returns the reply (joined, or an error).
async fn join(server: &TestServer, room: &str, token: &str, extra: Value) -> (Ws, Value) {
    let mut ws = connect(&server.ws_url()).await;
    let mut msg = json!({"type": "join", "room": room, "token": token});
    for (k, v) in extra.as_object().unwrap() {
        msg[k] = v.clone();
    }
    let reply = send_and_read(&mut ws, &msg.to_string()).await;
    (ws, reply)
}

/// Reads until a message of `kind` arrives.
async fn read_until(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let m = read(ws).await;
        if m["type"] == kind {
            return m;
        }
    }
}

fn assert_error(reply: &Value, code: &str, words: &str) {
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], code, "{reply}");
    let message = reply["message"].as_str().unwrap();
    assert!(message.contains(words), "`{message}` lacks `{words}`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_and_leave_no_trace() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(token_config()).await;
    let t = now();
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let unsigned = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&format!(
            r#"{{"room":"math","role":"teacher","name":"Eve","aud":"tessera","exp":{},"nbf":{t},"iat":{t},"jti":"x"}}"#,
            t + 3600
        ))
    );
    let hour = Duration::from_secs(3600);
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "needs a join token"),
        (
            keys().issue("math", Role::Teacher, "Eve", hour, t - 7200),
            "expired",
        ),
        (
            keys().issue("math", Role::Teacher, "Eve", hour, t + 600),
            "not valid yet",
        ),
        (
            TokenKeys::new("Zq8Wx7Ec6Rv5Tb4Yn3Um2Ik1Ol0Pa9Sd", "tessera", 0).issue(
                "math",
                Role::Teacher,
                "Eve",
                hour,
                t,
            ),
            "signature",
        ),
        (unsigned, "algorithm `none`"),
        (token("art", Role::Teacher, "Eve"), "for room `art`"),
        ("garbage".into(), "malformed"),
    ];
    for (tok, words) in &cases {
        let mut ws = connect(&server.ws_url()).await;
        let msg = if tok.is_empty() {
            json!({"type": "join", "room": "math", "name": "Eve", "role": "teacher"})
        } else {
            json!({"type": "join", "room": "math", "token": tok})
        };
        let reply = send_and_read(&mut ws, &msg.to_string()).await;
        assert_error(&reply, "unauthorized", words);
        assert_eq!(
            server.registry.room_count(),
            0,
            "{words}: a room was opened"
        );
        // The socket stays usable: a good token joins on it.
        let good = token("math", Role::Student, "Sam");
        let reply = send_and_read(
            &mut ws,
            &json!({"type": "join", "room": "math", "token": good}).to_string(),
        )
        .await;
        assert_eq!(reply["type"], "joined", "{reply}");
        drop(ws);
        assert!(
            wait_until(Duration::from_secs(5), || server.registry.room_count() == 0).await,
            "the room did not close"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_come_from_the_token_and_students_cannot_act_as_teachers() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(token_config()).await;
    let (mut teacher, joined) = join(
        &server,
        "math",
        &token("math", Role::Teacher, "Ada"),
        json!({}),
    )
    .await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let teacher_id = joined["participantId"].as_str().unwrap().to_string();
    // The message's own name and role do not count next to a token's.
    let (mut student, joined) = join(
        &server,
        "math",
        &token("math", Role::Student, "Sam"),
        json!({"name": "Mallory", "role": "teacher"}),
    )
    .await;
    assert_eq!(joined["type"], "joined", "{joined}");
    let student_id = joined["participantId"].as_str().unwrap().to_string();
    let me = joined["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == student_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("Sam"), Some("student"))
    );

    let before = server.room("math").await.unwrap();
    for msg in [
        json!({"type": "setLayout", "layout": "presenter"}),
        json!({"type": "record", "on": true}),
        json!({"type": "muteParticipant", "participant": teacher_id, "muted": true}),
        json!({"type": "remove", "participant": teacher_id}),
        json!({"type": "lock", "locked": true}),
        json!({"type": "pin", "participant": student_id}),
    ] {
        student.send_text(&msg).await;
        let reply = read_until(&mut student, "error").await;
        assert_error(&reply, "forbidden", "only a teacher may");
    }
    let after = server.room("math").await.unwrap();
    assert_eq!(after.layout, before.layout);
    assert_eq!(after.recording, None);
    assert_eq!(after.pinned, None);
    assert_eq!(after.participants, before.participants);

    // A locked room takes teachers only.
    teacher
        .send_text(&json!({"type": "lock", "locked": true}))
        .await;
    assert_eq!(read_until(&mut student, "locked").await["locked"], true);
    let (_late, reply) = join(
        &server,
        "math",
        &token("math", Role::Student, "Lee"),
        json!({}),
    )
    .await;
    assert_error(&reply, "forbidden", "locked");
    let (_t2, reply) = join(
        &server,
        "math",
        &token("math", Role::Teacher, "Bea"),
        json!({}),
    )
    .await;
    assert_eq!(reply["type"], "joined", "{reply}");
    teacher
        .send_text(&json!({"type": "lock", "locked": false}))
        .await;
    assert_eq!(read_until(&mut student, "locked").await["locked"], false);

    // A removed token stays out; a new one gets in.
    let sams_token = token("math", Role::Student, "Sam");
    let (mut sam, reply) = join(&server, "math", &sams_token, json!({})).await;
    assert_eq!(reply["type"], "joined", "{reply}");
    let sam_id = reply["participantId"].as_str().unwrap().to_string();
    teacher
        .send_text(&json!({"type": "remove", "participant": sam_id}))
        .await;
    let left = read_until(&mut sam, "left").await;
    assert!(
        left["reason"].as_str().unwrap().contains("removed"),
        "{left}"
    );
    sam.send_text(&json!({"type": "join", "room": "math", "token": sams_token}))
        .await;
    let again = read_until(&mut sam, "error").await;
    assert_error(&again, "unauthorized", "removed from room `math`");
    let snapshot = server.room("math").await.unwrap();
    assert!(snapshot.participants.iter().all(|p| p.id != sam_id));
    let (_sam2, reply) = join(
        &server,
        "math",
        &token("math", Role::Student, "Sam"),
        json!({}),
    )
    .await;
    assert_eq!(reply["type"], "joined", "{reply}");

    // Teachers cannot remove teachers.
    let bea = server
        .room("math")
        .await
        .unwrap()
        .participants
        .iter()
        .find(|p| p.name == "Bea")
        .unwrap()
        .id
        .clone();
    teacher
        .send_text(&json!({"type": "remove", "participant": bea}))
        .await;
    let reply = read_until(&mut teacher, "error").await;
    assert_error(&reply, "forbidden", "who is a teacher");
}

trait SendText {
    async fn send_text(&mut self, v: &Value);
}

impl SendText for Ws {
    async fn send_text(&mut self, v: &Value) {
        use futures_util::SinkExt as _;
        self.send(tokio_tungstenite::tungstenite::Message::text(v.to_string()))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teacher_silences_a_student_for_everyone() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(token_config()).await;
    let baseline = live_elements().len();
    let teacher = TestPeer::join(
        &server.ws_url(),
        PeerOptions {
            token: Some(token("talk", Role::Teacher, "Ada")),
            tone_hz: 440.0,
            ..PeerOptions::new("talk", "ada", 0xff0000)
        },
    )
    .await;
    let student = TestPeer::join(
        &server.ws_url(),
        PeerOptions {
            token: Some(token("talk", Role::Student, "Sam")),
            tone_hz: 880.0,
            ..PeerOptions::new("talk", "sam", 0x0000ff)
        },
    )
    .await;
    let hears = |p: &TestPeer, hz: f64| tone_power(&p.recent_audio(0.5), hz, 48000.0) > 1e-4;
    assert!(
        wait_until(Duration::from_secs(20), || hears(&teacher, 880.0)).await,
        "the teacher never heard the student"
    );
    teacher.send_text(
        &json!({"type": "muteParticipant", "participant": student.id, "muted": true}).to_string(),
    );
    assert!(
        wait_until(Duration::from_secs(5), || !hears(&teacher, 880.0)).await,
        "the silenced student is still heard"
    );
    // Only the student is silenced: the student still hears the teacher.
    assert!(hears(&student, 440.0));
    let snapshot = server.room("talk").await.unwrap();
    let sam = snapshot
        .participants
        .iter()
        .find(|p| p.id == student.id)
        .unwrap();
    assert!(sam.silenced);
    // Silenced, the student stops talking (and loses its own mix-minus)
    // once its talk hold has passed.
    let only_teacher = vec![teacher.id.clone()];
    let mut talking = Vec::new();
    for _ in 0..50 {
        talking = server.room("talk").await.unwrap().talking;
        if talking == only_teacher {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(talking, only_teacher);
    // The student cannot undo it.
    student.send_text(
        &json!({"type": "muteParticipant", "participant": student.id, "muted": false}).to_string(),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !hears(&teacher, 880.0),
        "a student lifted the teacher's mute"
    );
    let unmuted_at = student.audio_samples();
    teacher.send_text(
        &json!({"type": "muteParticipant", "participant": student.id, "muted": false}).to_string(),
    );
    assert!(
        wait_until(Duration::from_secs(5), || hears(&teacher, 880.0)).await,
        "the student is not heard again"
    );
    // Talking again, the student gets a new mix-minus: it hears the teacher
    // and not itself. Its own voice comes back in the shared mix until the
    // server has seen it talk and built its mix-minus; how long that takes
    // depends on how busy the machine is, so the test waits for it.
    let own_mix = |p: &TestPeer| {
        let audio = p.recent_audio(0.5);
        (
            tone_power(&audio, 440.0, 48000.0),
            tone_power(&audio, 880.0, 48000.0),
        )
    };
    let mut both = vec![teacher.id.clone(), student.id.clone()];
    both.sort();
    for _ in 0..80 {
        talking = server.room("talk").await.unwrap().talking;
        talking.sort();
        if talking == both {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(talking, both, "the student talks again");
    let switched = wait_until(Duration::from_secs(5), || {
        let (theirs, own) = own_mix(&student);
        theirs > 1e-4 && own < theirs / 100.0
    })
    .await;
    let (theirs, own) = own_mix(&student);
    assert!(
        switched,
        "the student should hear the teacher and not itself: 440 Hz {theirs}, 880 Hz {own}"
    );
    // What it hears of the teacher ran on through the switch from the
    // shared mix to its own, which has just happened: since the unmute.
    let since_unmute = (student.audio_samples() - unmuted_at) as f64 / 48000.0;
    let heard = student.recent_audio(since_unmute);
    let dropouts = dropouts(&heard);
    assert!(
        dropouts.is_empty(),
        "the teacher broke off for the student at these ms of the last {since_unmute:.1} s: {dropouts:?}"
    );
    teacher.leave().await;
    student.leave().await;
    // Nothing of either mix-minus is left once the room closes.
    let mut left = usize::MAX;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        left = live_elements().len();
        if left <= baseline {
            break;
        }
    }
    assert!(
        left <= baseline,
        "elements left behind: {left} > {baseline}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_get_minted_turn_credentials_and_only_allowed_server_addresses() {
    let _serial = SERIAL.lock().await;
    init();
    let turn_secret = "Hk2Jd8Ls4Pq6Wm0Xn3Bv7Cz5Rt1Yu9Ge";
    let mut config = test_config();
    config.ice.stun = vec!["stun:stun.example.org:3478".into()];
    config.ice.turn = vec!["turn:turn.example.org:3478?transport=udp".into()];
    config.ice.turn_secret = turn_secret.into();
    config.ice.turn_ttl_seconds = 600;
    // The machine's own LAN address (libnice offers no loopback candidates).
    let lan = {
        let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        probe.connect("10.255.255.255:9").unwrap();
        probe.local_addr().unwrap().ip()
    };
    config.ice.addresses = vec![lan];
    config.ice.public_ip = Some("203.0.113.9".parse().unwrap());
    let server = TestServer::start(config).await;
    let before = now();
    let peer = TestPeer::join(
        &server.ws_url(),
        PeerOptions {
            // Where the server is: a loopback socket reaches no LAN address.
            loopback_ice: false,
            ..PeerOptions::new("ice", "a", 0x00ff00)
        },
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(20), || peer.frames() > 10).await,
        "no media"
    );
    let messages = peer.messages();
    let joined = messages.iter().find(|m| m["type"] == "joined").unwrap();
    let servers = joined["iceServers"].as_array().unwrap();
    assert_eq!(servers[0]["urls"][0], "stun:stun.example.org:3478");
    let user = servers[1]["username"].as_str().unwrap();
    let (expiry, who) = user.split_once(':').unwrap();
    assert_eq!(who, peer.id);
    let expiry: u64 = expiry.parse().unwrap();
    assert!((before + 600..=now() + 600).contains(&expiry), "{user}");
    // coturn's check: base64(HMAC-SHA1(secret, username)).
    let expected = {
        use base64::Engine as _;
        use hmac::{Hmac, KeyInit as _, Mac as _};
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(turn_secret.as_bytes()).unwrap();
        mac.update(user.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    };
    assert_eq!(servers[1]["credential"], expected.as_str());
    let candidates: Vec<&str> = messages
        .iter()
        .filter(|m| m["type"] == "ice")
        .filter_map(|m| m["candidate"].as_str())
        .filter(|c| !c.is_empty())
        .collect();
    assert!(!candidates.is_empty(), "no candidates on {lan}");
    for c in &candidates {
        assert!(
            c.contains(" 203.0.113.9 ") && c.contains("typ host"),
            "a candidate off ice.addresses, or not mapped to ice.public_ip: {c}"
        );
    }
    peer.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_over_wss_with_a_test_certificate() {
    let _serial = SERIAL.lock().await;
    init();
    let dir = std::env::temp_dir().join(format!("tessera-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), issued.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), issued.signing_key.serialize_pem()).unwrap();
    let mut config = token_config();
    config.server.tls_cert = dir.join("cert.pem");
    config.server.tls_key = dir.join("key.pem");
    let server = TestServer::start(config).await;

    let client = common::tls_client_trusting(issued.cert.der().clone());
    let url = format!("wss://localhost:{}/ws", server.addr.port());
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        &url,
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(client)),
    )
    .await
    .expect("a WSS connection trusting the test certificate");
    let reply = send_and_read(
        &mut ws,
        &json!({"type": "join", "room": "secure", "token": token("secure", Role::Teacher, "Ada")})
            .to_string(),
    )
    .await;
    assert_eq!(reply["type"], "joined", "{reply}");
    assert_eq!(server.room("secure").await.unwrap().participants.len(), 1);

    // Plain WebSocket to the TLS port gets nowhere.
    let plain = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", server.addr.port())),
    )
    .await;
    assert!(!matches!(plain, Ok(Ok(_))), "a plain WebSocket got through");
    let _ = std::fs::remove_dir_all(&dir);
}
