//! The room page on any screen: Chromium emulating phones (390×844 and
//! 360×640 portrait, 844×390 landscape) and a desktop window joins a lesson
//! as its teacher, with a student in the room. On each, every visible
//! control lies inside the viewport and overlaps no other control, nothing
//! scrolls sideways, the self-view covers no part of the canvas picture and
//! no control, and
//! in portrait the picture takes at least 90 % of the screen's width. The
//! name prompt shows only what works before joining. Screenshots are saved
//! under the target's tmp directory.

mod common;

use std::time::Duration;

use common::browser::{wait_stats, Browser};
use common::peer::{PeerOptions, TestPeer};
use common::{init, test_config, TestServer, SERIAL};
use serde_json::Value;

const ROOM: &str = "phones";

/// The page's geometry: the boxes of its visible controls, those outside
/// the viewport, the pairs that overlap, the canvas picture (the video's
/// box less its letterbox) and what covers it.
const GEOMETRY: &str = r#"
    const vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight;
    const box = (e) => e.getBoundingClientRect();
    const shown = (e) => {
      const r = box(e);
      return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden';
    };
    const label = (e) => e.id || e.textContent.trim() || e.tagName;
    const meet = (a, b) =>
      Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1 &&
      Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
    const controls = [...document.querySelectorAll('button, select, input')].filter(shown);
    const outside = controls.filter((e) => {
      const r = box(e);
      return r.left < -0.5 || r.top < -0.5 || r.right > vw + 0.5 || r.bottom > vh + 0.5;
    }).map(label);
    const overlaps = [];
    controls.forEach((a, i) => controls.slice(i + 1).forEach((b) => {
      if (meet(box(a), box(b))) overlaps.push([label(a), label(b)]);
    }));
    const v = document.getElementById('canvas');
    const r = box(v);
    const ratio = v.videoWidth && v.videoHeight ? v.videoWidth / v.videoHeight : 16 / 9;
    let w = r.width, h = r.width / ratio;
    if (h > r.height) { h = r.height; w = h * ratio; }
    const picture = { left: r.left + (r.width - w) / 2, top: r.top + (r.height - h) / 2,
                      right: r.left + (r.width + w) / 2, bottom: r.top + (r.height + h) / 2 };
    const preview = document.getElementById('preview');
    const covering = [...controls, ...(shown(preview) ? [preview] : [])]
      .filter((e) => meet(box(e), picture)).map(label);
    const underPreview = shown(preview)
      ? controls.filter((e) => meet(box(e), box(preview))).map(label) : [];
    return {
      vw, vh, controls: controls.map(label), outside, overlaps, covering, underPreview,
      pictureWidth: w, pictureHeight: h, previewShown: shown(preview),
      sideways: document.documentElement.scrollWidth > vw + 0.5,
    };
"#;

fn url(server: &TestServer, extra: &str) -> String {
    format!("http://{}/r/{ROOM}{extra}", server.addr)
}

/// Joins as the teacher on `b`, checks the page's geometry, and saves a
/// screenshot named `label`.
async fn check_joined(b: &Browser, server: &TestServer, label: &str, portrait: bool) {
    b.client
        .goto(&url(server, "?name=Tea&autojoin=1&role=teacher"))
        .await
        .unwrap();
    let (ok, s) = wait_stats(b, Duration::from_secs(40), |s| {
        s["state"] == "connected"
            && s["participants"] == 2
            && s["framesDecoded"].as_u64().unwrap_or(0) >= 10
    })
    .await;
    assert!(ok, "{label}: {s:#}");
    // The roster has drawn the student with its buttons.
    let mut listed = false;
    for _ in 0..50 {
        let n = b
            .run("return document.querySelectorAll('#roster button').length;")
            .await;
        listed = n.as_u64().unwrap_or(0) >= 2;
        if listed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let g = b.run(GEOMETRY).await;
    b.screenshot(&format!("room-page-{label}")).await;
    eprintln!("{label}: {g}");
    assert!(listed, "{label}: the roster shows no student buttons: {g}");
    for id in ["mic", "cam", "leave", "record", "lock"] {
        assert!(
            g["controls"].as_array().unwrap().contains(&Value::from(id)),
            "{label}: {id} is not shown: {g}"
        );
    }
    assert_eq!(g["outside"], Value::Array(vec![]), "{label}: {g}");
    assert_eq!(g["overlaps"], Value::Array(vec![]), "{label}: {g}");
    assert_eq!(g["covering"], Value::Array(vec![]), "{label}: {g}");
    assert_eq!(g["underPreview"], Value::Array(vec![]), "{label}: {g}");
    assert_eq!(g["sideways"], false, "{label}: {g}");
    assert_eq!(g["previewShown"], true, "{label}: {g}");
    if portrait {
        let share = g["pictureWidth"].as_f64().unwrap() / g["vw"].as_f64().unwrap();
        assert!(
            share >= 0.9,
            "{label}: the picture takes {share:.2} of the width: {g}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_page_fits_phones_in_both_orientations_and_a_desktop() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(test_config()).await;
    let student = TestPeer::join(&server.ws_url(), PeerOptions::new(ROOM, "Stu", 0x00ff00)).await;

    for (label, width, height) in [
        ("phone-390x844", 390, 844),
        ("phone-360x640", 360, 640),
        ("phone-844x390", 844, 390),
    ] {
        let b = Browser::launch_phone(&format!("page-{label}"), width, height).await;
        check_joined(&b, &server, label, height > width).await;
        b.close().await;
    }
    let b = Browser::launch(common::browser::Kind::Chromium, "page-desktop").await;
    check_joined(&b, &server, "desktop", false).await;

    // The name prompt shows only what works before joining: its field
    // and its button.
    b.client.goto(&url(&server, "")).await.unwrap();
    let g = b
        .run(&format!(
            "await new Promise((r) => setTimeout(r, 500)); {GEOMETRY}"
        ))
        .await;
    b.screenshot("room-page-prompt").await;
    assert_eq!(
        g["controls"],
        serde_json::json!(["name", "Join"]),
        "before joining: {g}"
    );
    b.close().await;
    student.leave().await;
}
