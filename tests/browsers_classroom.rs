//! The classroom in real browsers. Raised hands: a Chromium student and a
//! Firefox teacher in one room; the student presses Raise hand, the
//! teacher's list shows it within a second and the student's tile on the
//! canvas the teacher decodes gets the amber hand marker; the teacher
//! presses Lower, and the marker goes. Chat: a Chromium teacher and a
//! Firefox student write to each other; both show every message in order,
//! markup as text with nothing injected, another room hears nothing, an
//! over-long and a too-fast message are refused, and the teacher turns chat
//! off for the student.

mod common;

use std::time::{Duration, Instant};

use common::browser::{wait_stats, Browser, Kind};
use common::{init, test_config, TestServer, SERIAL};
use serde_json::Value;
use tessera::layout::decor::{marker_side, HAND_RGB};
use tessera::layout::Rect;

const ROOM: &str = "hands";

fn url(server: &TestServer, name: &str, extra: &str) -> String {
    format!(
        "http://{}/r/{ROOM}?name={name}&autojoin=1{extra}",
        server.addr
    )
}

/// Whether `rgb` is the marker's amber (after the canvas's encoding).
fn amber(rgb: (u8, u8, u8)) -> bool {
    let [r, g, b] = [
        (HAND_RGB >> 16) as u8,
        (HAND_RGB >> 8) as u8,
        HAND_RGB as u8,
    ];
    rgb.0.abs_diff(r) < 50 && rgb.1.abs_diff(g) < 50 && rgb.2.abs_diff(b) < 70
}

/// Points inside the hand marker's amber disc on `tile`, for each place
/// the marker can take: its margin is the tile's edge (none, or the
/// speaker's 4-pixel highlight) plus 4.
fn marker_points(tile: Rect) -> Vec<(u32, u32)> {
    let side = marker_side(tile.height);
    [4, 8]
        .iter()
        .map(|margin| {
            // Right of the palm, level with it: amber.
            (
                tile.x + margin + side * 82 / 100,
                tile.y + margin + side / 2,
            )
        })
        .collect()
}

/// Whether the teacher's canvas shows the marker on `tile` now.
async fn marked(b: &Browser, tile: Rect) -> (bool, Vec<Option<(u8, u8, u8)>>) {
    let mut seen = Vec::new();
    for p in marker_points(tile) {
        seen.push(b.canvas_rgb_within(p.0, p.1, 1).await);
    }
    (seen.iter().flatten().any(|c| amber(*c)), seen)
}

/// Waits up to `limit` for the marker to be shown (or gone).
async fn wait_marker(b: &Browser, tile: Rect, shown: bool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let (now, seen) = marked(b, tile).await;
        if now == shown {
            return true;
        }
        if Instant::now() > deadline {
            eprintln!(
                "marker {}: saw {seen:?}",
                if shown { "missing" } else { "still there" }
            );
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_student_raises_a_hand_and_the_teacher_sees_it_and_lowers_it() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(test_config()).await;
    let teacher = Browser::launch(Kind::Firefox, "hands-teacher").await;
    teacher
        .client
        .goto(&url(&server, "Tea", "&role=teacher"))
        .await
        .unwrap();
    let student = Browser::launch(Kind::Chromium, "hands-student").await;
    student.client.goto(&url(&server, "Stu", "")).await.unwrap();
    for b in [&teacher, &student] {
        let (ok, s) = wait_stats(b, Duration::from_secs(40), |s| {
            s["participants"] == 2 && s["framesDecoded"].as_u64().unwrap_or(0) > 30
        })
        .await;
        assert!(ok, "{}: {s:#}", b.label);
    }
    let snap = server.room(ROOM).await.unwrap();
    let stu = snap
        .participants
        .iter()
        .find(|p| p.name == "Stu")
        .unwrap()
        .id
        .clone();
    let tile = snap
        .tiles
        .iter()
        .find(|(id, _)| *id == stu)
        .map(|(_, r)| *r)
        .expect("the student's tile");
    let (before, seen) = marked(&teacher, tile).await;
    assert!(
        !before,
        "amber on the student's tile before any hand: {seen:?}"
    );

    // Raised: the teacher's list has it within a second, then the canvas.
    let raised = Instant::now();
    student
        .run("document.getElementById('hand').click(); return null;")
        .await;
    let (ok, s) = wait_stats(&teacher, Duration::from_secs(1), |s| {
        s["hands"][0]["name"] == "Stu" && s["hands"][0]["place"] == 1
    })
    .await;
    assert!(ok, "the teacher's list after {:?}: {s:#}", raised.elapsed());
    eprintln!(
        "the teacher saw the hand {:?} after it went up",
        raised.elapsed()
    );
    let roster = teacher
        .run("return document.getElementById('roster').textContent;")
        .await;
    assert!(roster.as_str().unwrap().contains("✋ 1 · Stu"), "{roster}");
    assert_eq!(student.stats().await["hand"], true);
    let shown = wait_marker(&teacher, tile, true, Duration::from_secs(5)).await;
    teacher.screenshot("hands-raised").await;
    assert!(shown, "no hand marker on the student's tile");

    // Lowered by the teacher: gone from the list, the tile and the
    // student's button.
    teacher
        .run("document.querySelector('#roster li.hand button').click(); return null;")
        .await;
    let (ok, s) = wait_stats(&student, Duration::from_secs(5), |s| {
        s["hand"] == false && s["hands"] == Value::Array(vec![])
    })
    .await;
    assert!(ok, "the student after the teacher lowered the hand: {s:#}");
    let gone = wait_marker(&teacher, tile, false, Duration::from_secs(5)).await;
    teacher.screenshot("hands-lowered").await;
    assert!(gone, "the hand marker stayed on the student's tile");
    let text = student
        .run("return document.getElementById('hand').textContent;")
        .await;
    assert_eq!(text, "Raise hand");
    teacher.close().await;
    student.close().await;
}

/// Types `text` into `b`'s chat box and sends it, as a person would.
async fn write(b: &Browser, text: &str) {
    let text = serde_json::to_string(text).unwrap();
    b.run(&format!(
        "const t = document.getElementById('chat-text'); t.value = {text};
         document.getElementById('chat-form').requestSubmit(); return null;"
    ))
    .await;
}

/// The chat texts `b` shows, as its page reports them.
async fn shown(b: &Browser) -> Vec<String> {
    b.stats().await["chat"]["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| m["text"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_and_firefox_chat_as_text_in_order_and_a_teacher_turns_it_off() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(test_config()).await;
    let teacher = Browser::launch(Kind::Chromium, "chat-teacher").await;
    teacher
        .client
        .goto(&url(&server, "Tea", "&role=teacher"))
        .await
        .unwrap();
    let student = Browser::launch(Kind::Firefox, "chat-student").await;
    student.client.goto(&url(&server, "Stu", "")).await.unwrap();
    let (mut outside, _) =
        common::ws::join(&server, "another-room", "Out", serde_json::json!({})).await;
    for b in [&teacher, &student] {
        let (ok, s) = wait_stats(b, Duration::from_secs(40), |s| {
            s["participants"] == 2 && s["state"] == "connected"
        })
        .await;
        assert!(ok, "{}: {s:#}", b.label);
    }

    let img = r#"<img src=x onerror="window.pwned = 1">"#;
    let script = "<script>window.pwned = 2</script>";
    let said = [
        (&student, "hello"),
        (&teacher, "hi Stu, welcome"),
        (&student, img),
        (&student, script),
    ];
    let mut want = Vec::new();
    for (b, text) in said {
        write(b, text).await;
        want.push(text.to_string());
        for b in [&teacher, &student] {
            let (ok, s) = wait_stats(b, Duration::from_secs(5), |s| {
                s["chat"]["messages"].as_array().map(Vec::len) == Some(want.len())
            })
            .await;
            assert!(ok, "{} after {text:?}: {s:#}", b.label);
        }
    }
    for b in [&teacher, &student] {
        assert_eq!(shown(b).await, want, "{}", b.label);
        // Shown as the text it is: no element or handler came of it.
        let page = b
            .run(
                "return {
                   injected: document.querySelectorAll('#chat-log img, #chat-log script, #chat-log [onerror]').length,
                   pwned: window.pwned ?? null,
                   texts: [...document.querySelectorAll('#chat-log li span')].map((s) => s.textContent),
                 };",
            )
            .await;
        assert_eq!(page["injected"], 0, "{}: {page}", b.label);
        assert_eq!(page["pwned"], Value::Null, "{}: {page}", b.label);
        assert_eq!(
            page["texts"],
            serde_json::json!(want),
            "{}: {page}",
            b.label
        );
        b.screenshot(&format!("chat-{}", b.label)).await;
    }
    assert!(
        common::ws::next_of(&mut outside, "chat", Duration::from_secs(1))
            .await
            .is_none(),
        "another room got the chat"
    );

    // Too long (past the box's own limit) and too fast: the page shows the
    // server's refusal.
    write(&student, &"x".repeat(600)).await;
    let (ok, s) = wait_stats(&student, Duration::from_secs(5), |s| {
        s["lastError"]["code"] == "too-large"
    })
    .await;
    assert!(ok, "an over-long message: {s:#}");
    for i in 0..7 {
        write(&student, &format!("quick {i}")).await;
    }
    let (ok, s) = wait_stats(&student, Duration::from_secs(5), |s| {
        s["lastError"]["code"] == "rate-limited"
    })
    .await;
    assert!(ok, "seven at once: {s:#}");

    // The teacher turns chat off: the student's box is closed, and says why.
    teacher
        .run("document.getElementById('chat-toggle').click(); return null;")
        .await;
    let (ok, s) = wait_stats(&student, Duration::from_secs(5), |s| {
        s["chat"]["enabled"] == false
    })
    .await;
    assert!(ok, "the student after chat went off: {s:#}");
    let chat_box = student
        .run("const t = document.getElementById('chat-text'); return [t.disabled, t.placeholder];")
        .await;
    assert_eq!(chat_box[0], true, "{chat_box}");
    assert!(chat_box[1].as_str().unwrap().contains("off"), "{chat_box}");
    let text = teacher
        .run("return document.getElementById('chat-toggle').textContent;")
        .await;
    assert_eq!(text, "Chat on");
    teacher.close().await;
    student.close().await;
}
