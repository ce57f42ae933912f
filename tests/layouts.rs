//! Layouts on a live room: with `presenter`, the teacher fills the large
//! region whoever joined first, and the students share the strip.

mod common;

use std::time::Duration;

use common::media::color_matches;
use common::peer::{PeerOptions, TestPeer};
use common::{init, layout_tiles, test_config, wait_until, TestServer, SERIAL};
use tessera::layout::Member;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presenter_shows_the_teacher_large_and_students_in_the_strip() {
    let _serial = SERIAL.lock().await;
    init();
    let mut config = test_config();
    config.layouts.default = "presenter".into();
    let server = TestServer::start(config).await;
    let url = server.ws_url();
    let opts = |name: &str, color: u32, role| PeerOptions {
        role,
        ..PeerOptions::new("class", name, color)
    };
    // Three students first, the teacher last.
    let peers = [
        TestPeer::join(&url, opts("s1", 0x00ff00, Some("student"))).await,
        TestPeer::join(&url, opts("s2", 0x0000ff, None)).await,
        TestPeer::join(&url, opts("s3", 0xffff00, Some("guest"))).await,
        TestPeer::join(&url, opts("teacher", 0xff0000, Some("teacher"))).await,
    ];
    let mut members = vec![Member::default(); 4];
    members[3].teacher = true;
    let rects = layout_tiles(&server.config, "presenter", &members);
    let teacher = rects[3];
    assert!(
        rects[..3]
            .iter()
            .all(|r| r.width * r.height * 4 < teacher.width * teacher.height),
        "the teacher's region is the large one: {rects:?}"
    );
    let colors = [0x00ff00, 0x0000ff, 0xffff00, 0xff0000];
    let viewer = &peers[0];
    let shows = || {
        viewer.last_frame().is_some_and(|f| {
            rects.iter().zip(colors).all(|(r, c)| {
                let (x, y) = r.center();
                color_matches(f.rgb_at(x, y), c)
            })
        })
    };
    let ok = wait_until(Duration::from_secs(30), shows).await;
    let seen = viewer.last_frame().map(|f| {
        rects
            .iter()
            .map(|r| f.rgb_at(r.center().0, r.center().1))
            .collect::<Vec<_>>()
    });
    assert!(ok, "presenter canvas: {seen:?} for {rects:?}");
    if let Some(f) = viewer.last_frame() {
        let path = concat!(env!("CARGO_TARGET_TMPDIR"), "/presenter-canvas.ppm");
        std::fs::write(path, f.to_ppm()).unwrap();
    }
    // The teacher's role is visible to everyone.
    let list = viewer
        .wait_message(Duration::from_secs(5), |m| {
            m["type"] == "participants"
                && m["participants"].as_array().is_some_and(|a| a.len() == 4)
        })
        .await
        .expect("participant list");
    let roles: Vec<_> = list["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["role"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(roles, ["student", "student", "guest", "teacher"]);

    // The admin API lists the layouts and switches the room to grid: the
    // canvas re-flows within about a second.
    let api = format!("http://{}/api", server.addr);
    let http = reqwest::Client::new();
    let list: serde_json::Value = get_json(&http, &format!("{api}/layouts")).await;
    let names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["grid", "pip", "presenter", "screen", "speaker"]);
    let room: serde_json::Value = get_json(&http, &format!("{api}/rooms/class")).await;
    assert_eq!(room["layout"], "presenter");
    let switched = std::time::Instant::now();
    let res = http
        .put(format!("{api}/rooms/class/layout"))
        .json(&serde_json::json!({"layout": "grid"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let grid = common::grid_tiles(&server.config, 4);
    let in_grid = || {
        viewer.last_frame().is_some_and(|f| {
            grid.iter()
                .zip(colors)
                .all(|(r, c)| color_matches(f.rgb_at(r.center().0, r.center().1), c))
        })
    };
    assert!(
        wait_until(Duration::from_secs(5), in_grid).await,
        "no re-flow to grid"
    );
    println!(
        "grid on the canvas {} ms after the API call",
        switched.elapsed().as_millis()
    );
    assert!(
        switched.elapsed() < Duration::from_millis(1500),
        "re-flow took {:?}",
        switched.elapsed()
    );
    let res = http
        .put(format!("{api}/rooms/class/layout"))
        .json(&serde_json::json!({"layout": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = http
        .get(format!("{api}/rooms/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // Over signaling: a student may not switch layouts; a teacher may, and
    // everyone is told.
    peers[0].send_text(r#"{"type":"setLayout","layout":"speaker"}"#);
    let refused = peers[0]
        .wait_message(Duration::from_secs(5), |m| m["type"] == "error")
        .await
        .expect("a refusal");
    assert_eq!(refused["code"], "forbidden", "{refused}");
    peers[3].send_text(r#"{"type":"setLayout","layout":"speaker"}"#);
    for p in &peers {
        let m = p
            .wait_message(Duration::from_secs(5), |m| {
                m["type"] == "layout" && m["name"] == "speaker"
            })
            .await;
        assert!(
            m.is_some(),
            "{} was not told of the layout change",
            p.opts.name
        );
    }
    let room: serde_json::Value = get_json(&http, &format!("{api}/rooms/class")).await;
    assert_eq!(room["layout"], "speaker");

    // Nobody talks, so a pinned participant fills the speaker slot.
    let res = http
        .put(format!("{api}/rooms/class/pin"))
        .json(&serde_json::json!({"participant": peers[1].id}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut pinned = vec![Member::default(); 4];
    pinned[1].pinned = true;
    pinned[3].teacher = true;
    let speaker_rects = layout_tiles(&server.config, "speaker", &pinned);
    let big = speaker_rects[1];
    assert!(
        speaker_rects.iter().all(|r| r.width <= big.width),
        "{speaker_rects:?}"
    );
    let pinned_large = || {
        viewer.last_frame().is_some_and(|f| {
            speaker_rects
                .iter()
                .zip(colors)
                .all(|(r, c)| color_matches(f.rgb_at(r.center().0, r.center().1), c))
        })
    };
    assert!(
        wait_until(Duration::from_secs(5), pinned_large).await,
        "the pinned student is not large"
    );
    let room = get_json(&http, &format!("{api}/rooms/class")).await;
    assert_eq!(room["pinned"], peers[1].id.as_str());
    for p in peers {
        p.leave().await;
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// A two-tile layout: side by side on black, or (with `big_second`) the
/// second participant large and the first in a strip below, on green.
fn duo(big_second: bool) -> String {
    if big_second {
        "description = \"second large\"\nbackground = \"#00ff00\"\n[[group]]\n\
         [[group.region]]\nx = 0.0\ny = 0.8\nw = 1.0\nh = 0.2\narrange = \"row\"\nmax = 1\n\
         [[group.region]]\nx = 0.0\ny = 0.0\nw = 1.0\nh = 0.8\n"
            .into()
    } else {
        "description = \"side by side\"\n[[group]]\n[[group.region]]\nx = 0.0\ny = 0.0\nw = 1.0\nh = 1.0\narrange = \"row\"\n".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_a_layout_file_changes_running_rooms_and_a_broken_edit_changes_nothing() {
    let _serial = SERIAL.lock().await;
    init();
    let dir = std::env::temp_dir().join(format!("tessera-hot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("duo.toml");
    std::fs::write(&file, duo(false)).unwrap();
    let mut config = test_config();
    config.layouts.dir = dir.clone();
    config.layouts.default = "duo".into();
    let server = TestServer::start(config).await;
    let url = server.ws_url();
    let opts = |name: &str, color: u32| PeerOptions::new("hot", name, color);
    let a = TestPeer::join(&url, opts("a", 0xff0000)).await;
    let b = TestPeer::join(&url, opts("b", 0x0000ff)).await;
    let (w, h) = (
        server.config.media.canvas_width,
        server.config.media.canvas_height,
    );
    let at = |x: f64, y: f64| ((f64::from(w) * x) as u32, (f64::from(h) * y) as u32);
    let shows = |pts: &[((u32, u32), u32)]| {
        a.last_frame().is_some_and(|f| {
            pts.iter()
                .all(|((x, y), c)| color_matches(f.rgb_at(*x, *y), *c))
        })
    };
    // Side by side: red left, blue right, black below them.
    let side = [
        (at(0.25, 0.5), 0xff0000),
        (at(0.75, 0.5), 0x0000ff),
        (at(0.1, 0.9), 0x000000),
    ];
    assert!(
        wait_until(Duration::from_secs(30), || shows(&side)).await,
        "side by side"
    );

    // Rewrite the file: blue large on top, red in the strip, the
    // background beside the strip's tile now green.
    std::fs::write(&file, duo(true)).unwrap();
    let stacked = [
        (at(0.5, 0.4), 0x0000ff),
        (at(0.5, 0.9), 0xff0000),
        (at(0.1, 0.9), 0x00ff00),
    ];
    assert!(
        wait_until(Duration::from_secs(5), || shows(&stacked)).await,
        "no hot reload"
    );

    // A broken edit: the room keeps the last good version, the API says why.
    std::fs::write(
        &file,
        "[[group]]\n[[group.region]]\nx = 0.0\ny = 0.0\nw = 1.5\nh = 1.0\n",
    )
    .unwrap();
    let api = format!("http://{}/api/layouts/duo", server.addr);
    let mut info = serde_json::Value::Null;
    for _ in 0..50 {
        info = reqwest::get(&api).await.unwrap().json().await.unwrap();
        if info["error"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let error = info["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error reported: {info}"));
    assert!(
        error.contains("duo.toml:2:1: group[0].region[0].w: is 1.5"),
        "{error}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(shows(&stacked), "a broken file disturbed the room");
    assert_eq!(
        info["description"], "second large",
        "the last good version stays in force"
    );
    a.leave().await;
    b.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_talker_takes_the_speaker_slot() {
    let _serial = SERIAL.lock().await;
    init();
    let mut config = test_config();
    config.layouts.default = "speaker".into();
    let server = TestServer::start(config).await;
    let url = server.ws_url();
    let quiet = |name: &str, color: u32| PeerOptions::new("talk", name, color);
    let a = TestPeer::join(&url, quiet("a", 0xff0000)).await;
    let b = TestPeer::join(&url, quiet("b", 0x00ff00)).await;
    // Only the last to join talks.
    let c = TestPeer::join(
        &url,
        PeerOptions {
            tone_hz: 800.0,
            ..quiet("c", 0x0000ff)
        },
    )
    .await;
    let mut members = vec![Member::default(); 3];
    members[2].speaker = true;
    let rects = layout_tiles(&server.config, "speaker", &members);
    let big = rects[2];
    assert!(
        rects[..2].iter().all(|r| r.width < big.width / 2),
        "{rects:?}"
    );
    let shows_c_large = || {
        a.last_frame().is_some_and(|f| {
            [(big, 0x0000ff), (rects[0], 0xff0000), (rects[1], 0x00ff00)]
                .iter()
                .all(|(r, col)| color_matches(f.rgb_at(r.center().0, r.center().1), *col))
        })
    };
    assert!(
        wait_until(Duration::from_secs(30), shows_c_large).await,
        "the talker is not in the speaker slot"
    );
    for p in [&a, &b, &c] {
        let m = p
            .wait_message(Duration::from_secs(5), |m| {
                m["type"] == "speaker" && m["participantId"] == c.id.as_str()
            })
            .await;
        assert!(m.is_some(), "{} was not told who speaks", p.opts.name);
    }
    assert_eq!(
        server.room("talk").await.unwrap().speaker.as_deref(),
        Some(c.id.as_str())
    );
    for p in [a, b, c] {
        p.leave().await;
    }
}
