//! The classroom over the real signaling: students raise and lower their
//! hands, everyone's participant list shows the raised ones in the order
//! they went up, a teacher lowers one or all (a student may not), bad
//! messages get their error codes, and the recording's timeline keeps the
//! hands. The marker on the canvas, seen by browsers, is in
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
    let id = server
        .room(ROOM)
        .await
        .unwrap()
        .recording
        .expect("a recording");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join(&id).join("manifest.json")).unwrap())
            .unwrap();
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
