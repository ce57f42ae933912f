//! The classroom over the real signaling: students raise and lower their
//! hands, everyone's participant list shows the raised ones in the order
//! they went up, a teacher lowers one or all (a student may not), bad
//! messages get their error codes, and the recording's timeline keeps the
//! hands. Chat reaches everyone in the room in order and nobody outside
//! it, markup arrives as the text it is, too long, blank and too fast get
//! their codes, a teacher turns it off for students, a latecomer gets the
//! history, and the timeline keeps it. What browsers show of both is in
//! `tests/browsers_classroom.rs`.

mod common;

use std::time::Duration;

use common::recordings::recording_config;
use common::ws::{join, next_of, send, Ws};
use common::{init, TestServer, SERIAL};
use serde_json::{json, Value};

const ROOM: &str = "class";

/// Raised hands in a participant list, in queue order: (name, place).
fn hands_in(list: &Value) -> Vec<(String, u64)> {
    let mut up: Vec<(String, u64)> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| Some((p["name"].as_str()?.to_string(), p["hand"].as_u64()?)))
        .collect();
    up.sort_by_key(|(_, place)| *place);
    up
}

/// Reads participant lists until one shows exactly `want` raised (names in
/// queue order); panics with the last one seen after 5 s.
async fn wait_hands(ws: &mut Ws, who: &str, want: &[&str]) {
    let mut last = Value::Null;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        let Some(m) = next_of(ws, "participants", Duration::from_millis(500)).await else {
            continue;
        };
        let got = hands_in(&m["participants"]);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        if names == want {
            let places: Vec<u64> = got.iter().map(|(_, p)| *p).collect();
            assert_eq!(places, (1..=want.len() as u64).collect::<Vec<_>>());
            return;
        }
        last = m;
    }
    panic!("{who} never saw the hands {want:?}: {last}");
}

/// The manifest of the recording running in `room` (recorded into `dir`).
async fn manifest_of(server: &TestServer, room: &str, dir: &std::path::Path) -> Value {
    let id = server
        .room(room)
        .await
        .unwrap()
        .recording
        .expect("a recording");
    serde_json::from_slice(&std::fs::read(dir.join(&id).join("manifest.json")).unwrap()).unwrap()
}

async fn error_of(ws: &mut Ws, msg: Value) -> Value {
    send(ws, msg).await;
    next_of(ws, "error", Duration::from_secs(5))
        .await
        .expect("an error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hands_go_up_in_order_and_a_teacher_lowers_one_or_all() {
    let _serial = SERIAL.lock().await;
    init();
    let (config, dir) = recording_config("hands");
    let server = TestServer::start(config).await;
    let (mut tea, _) = join(&server, ROOM, "Tea", json!({"role": "teacher"})).await;
    let (mut ann, ann_id) = join(&server, ROOM, "Ann", json!({})).await;
    let (mut ben, ben_id) = join(&server, ROOM, "Ben", json!({})).await;
    send(&mut tea, json!({"type": "record", "on": true})).await;
    let recording = next_of(&mut tea, "recording", Duration::from_secs(10))
        .await
        .expect("recording");
    assert_eq!(recording["active"], true, "{recording}");

    // Ben first, then Ann: everyone sees them in that order.
    send(&mut ben, json!({"type": "hand", "raised": true})).await;
    wait_hands(&mut tea, "the teacher", &["Ben"]).await;
    send(&mut ann, json!({"type": "hand", "raised": true})).await;
    for (ws, who) in [
        (&mut tea, "the teacher"),
        (&mut ann, "Ann"),
        (&mut ben, "Ben"),
    ] {
        wait_hands(ws, who, &["Ben", "Ann"]).await;
    }
    // Raising it again keeps Ben's place.
    send(&mut ben, json!({"type": "hand", "raised": true})).await;
    // Ben lowers his own: Ann is first now.
    send(&mut ben, json!({"type": "hand", "raised": false})).await;
    wait_hands(&mut tea, "the teacher", &["Ann"]).await;

    // A student may not lower another's hand.
    let e = error_of(
        &mut ben,
        json!({"type": "lowerHand", "participant": ann_id}),
    )
    .await;
    assert_eq!(e["code"], "forbidden", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("lower a raised hand"),
        "{e}"
    );
    // Nor name nobody, or leave out whether the hand goes up.
    let e = error_of(
        &mut tea,
        json!({"type": "lowerHand", "participant": "p0000dead"}),
    )
    .await;
    assert_eq!(e["code"], "not-found", "{e}");
    let e = error_of(&mut ann, json!({"type": "hand"})).await;
    assert_eq!(e["code"], "bad-message", "{e}");
    assert!(e["message"].as_str().unwrap().contains("raised"), "{e}");

    // The teacher lowers Ann's, then, with both up again, everyone's.
    send(
        &mut tea,
        json!({"type": "lowerHand", "participant": ann_id}),
    )
    .await;
    wait_hands(&mut tea, "the teacher", &[]).await;
    send(&mut ann, json!({"type": "hand", "raised": true})).await;
    wait_hands(&mut tea, "the teacher", &["Ann"]).await;
    send(&mut ben, json!({"type": "hand", "raised": true})).await;
    wait_hands(&mut tea, "the teacher", &["Ann", "Ben"]).await;
    send(&mut tea, json!({"type": "lowerHand"})).await;
    for (ws, who) in [
        (&mut tea, "the teacher"),
        (&mut ann, "Ann"),
        (&mut ben, "Ben"),
    ] {
        wait_hands(ws, who, &[]).await;
    }

    // The timeline has every hand, and who lowered it.
    let manifest = manifest_of(&server, ROOM, &dir).await;
    let hands: Vec<(String, bool, bool)> = manifest["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "hand")
        .map(|e| {
            let who = if e["participant"] == ann_id.as_str() {
                "Ann"
            } else if e["participant"] == ben_id.as_str() {
                "Ben"
            } else {
                "?"
            };
            (who.to_string(), e["raised"] == true, e["by"].is_string())
        })
        .collect();
    let want = [
        ("Ben", true, false),
        ("Ann", true, false),
        ("Ben", false, false),
        ("Ann", false, true),
        ("Ann", true, false),
        ("Ben", true, false),
        ("Ann", false, true),
        ("Ben", false, true),
    ];
    let want: Vec<(String, bool, bool)> = want
        .iter()
        .map(|(n, r, b)| (n.to_string(), *r, *b))
        .collect();
    // The last two are lowered together, in either order.
    assert_eq!(hands[..6], want[..6], "{manifest:#}");
    let mut last = hands[6..].to_vec();
    last.sort();
    assert_eq!(last, want[6..], "{manifest:#}");
    send(&mut tea, json!({"type": "record", "on": false})).await;
}

/// Sends `text` from `ws` and waits until `observer`, in the same room,
/// has it (so that the next message is sent after this one arrived).
async fn say(ws: &mut Ws, observer: &mut Ws, text: &str) {
    send(ws, json!({"type": "chat", "text": text})).await;
    let m = next_of(observer, "chat", Duration::from_secs(5))
        .await
        .expect("the room passes a chat message on");
    assert_eq!(m["text"], text, "{m}");
}

/// The chat messages `ws` receives within `wait`: (name, text).
async fn heard(ws: &mut Ws, wait: Duration) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some(m) = next_of(ws, "chat", wait).await {
        out.push((
            m["name"].as_str().unwrap().to_string(),
            m["text"].as_str().unwrap().to_string(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_reaches_the_room_in_order_and_nobody_else_and_is_kept() {
    let _serial = SERIAL.lock().await;
    init();
    let (config, dir) = recording_config("chat");
    let server = TestServer::start(config).await;
    let room = "chatroom";
    let (mut tea, _) = join(&server, room, "Tea", json!({"role": "teacher"})).await;
    let (mut ann, ann_id) = join(&server, room, "Ann", json!({})).await;
    let (mut ben, _) = join(&server, room, "Ben", json!({})).await;
    let (mut obs, _) = join(&server, room, "Obs", json!({})).await;
    let (mut out, _) = join(&server, "elsewhere", "Out", json!({})).await;
    send(&mut tea, json!({"type": "record", "on": true})).await;
    next_of(&mut tea, "recording", Duration::from_secs(10))
        .await
        .expect("recording");

    // Markup is text: it arrives exactly as written.
    let hostile = r#"<img src=x onerror="alert(1)"> & <script>alert(2)</script>"#;
    let sent = [
        ("Ann", "good morning"),
        ("Ann", "how do you spell \"necessary\"?"),
        ("Tea", "n-e-c-e-s-s-a-r-y"),
        ("Ben", hostile),
        ("Ann", "thanks ✔"),
    ];
    for (who, text) in sent {
        let ws = match who {
            "Ann" => &mut ann,
            "Ben" => &mut ben,
            _ => &mut tea,
        };
        say(ws, &mut obs, text).await;
    }
    let want: Vec<(String, String)> = sent
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    // Everyone in the room has them all, their own too, in order.
    let quiet = Duration::from_millis(800);
    for (ws, who) in [(&mut tea, "Tea"), (&mut ann, "Ann"), (&mut ben, "Ben")] {
        assert_eq!(heard(ws, quiet).await, want, "{who}");
    }
    assert_eq!(
        heard(&mut out, quiet).await,
        vec![],
        "another room heard the chat"
    );

    // Too long, blank, too fast: each refused with its code.
    let e = error_of(&mut ann, json!({"type": "chat", "text": "a".repeat(501)})).await;
    assert_eq!(e["code"], "too-large", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("500 characters"),
        "{e}"
    );
    let e = error_of(&mut ann, json!({"type": "chat", "text": " \n "})).await;
    assert_eq!(e["code"], "bad-message", "{e}");
    for i in 0..6 {
        send(
            &mut ben,
            json!({"type": "chat", "text": format!("spam {i}")}),
        )
        .await;
    }
    let e = next_of(&mut ben, "error", Duration::from_secs(5))
        .await
        .expect("a flood is refused");
    assert_eq!(e["code"], "rate-limited", "{e}");
    assert!(e["message"].as_str().unwrap().contains("wait"), "{e}");
    let flood = heard(&mut tea, quiet).await;
    assert!(
        (1..6).contains(&flood.len()),
        "of 6 at once, some and not all pass: {flood:?}"
    );
    heard(&mut obs, quiet).await;

    // Only a teacher turns chat off; then students are refused and the
    // others see nothing, while the teacher may still write.
    let e = error_of(&mut ann, json!({"type": "setChat", "enabled": false})).await;
    assert_eq!(e["code"], "forbidden", "{e}");
    send(&mut tea, json!({"type": "setChat", "enabled": false})).await;
    for ws in [&mut tea, &mut ann, &mut ben] {
        let s = next_of(ws, "chatState", Duration::from_secs(5))
            .await
            .expect("chatState");
        assert_eq!(s["enabled"], false, "{s}");
    }
    let e = error_of(&mut ann, json!({"type": "chat", "text": "may I?"})).await;
    assert_eq!(e["code"], "forbidden", "{e}");
    assert!(e["message"].as_str().unwrap().contains("chat off"), "{e}");
    assert_eq!(
        heard(&mut ben, quiet).await,
        vec![],
        "a refused message arrived"
    );
    say(&mut tea, &mut obs, "questions after the break").await;

    // Someone joining later learns chat is off and gets what was said.
    let (mut cy, _) = join(&server, room, "Cy", json!({})).await;
    let s = next_of(&mut cy, "chatState", Duration::from_secs(5))
        .await
        .expect("chatState");
    assert_eq!(s["enabled"], false, "{s}");
    let mut history = Vec::new();
    while let Some(m) = next_of(&mut cy, "chat", quiet).await {
        assert_eq!(m["history"], true, "{m}");
        history.push(m["text"].as_str().unwrap().to_string());
    }
    assert_eq!(history.first().map(String::as_str), Some("good morning"));
    assert_eq!(
        history.last().map(String::as_str),
        Some("questions after the break")
    );

    // The recording's timeline holds every message, with its sender.
    let manifest = manifest_of(&server, room, &dir).await;
    let chats: Vec<(String, String)> = manifest["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "chat")
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(chats[..want.len()], want[..], "{manifest:#}");
    assert_eq!(
        chats.last().map(|(_, t)| t.as_str()),
        Some("questions after the break")
    );
    assert!(manifest["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "chat" && e["participant"] == ann_id.as_str()));
    send(&mut tea, json!({"type": "record", "on": false})).await;
}
