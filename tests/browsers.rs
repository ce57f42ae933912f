//! Real browsers against the real server: headless Chromium (VP8 and H.264)
//! and Firefox ESR (VP8) with fake camera and microphone, driven over
//! WebDriver. Screenshots of each page are saved under target/tmp.

mod common;

use std::time::{Duration, Instant};

use common::browser::{wait_stats, Browser, Kind};
use common::media::color_matches;
use common::peer::{PeerOptions, TestPeer};
use common::recordings::{recording_config, start_recording, stop_and_export};
use common::{init, test_config, TestServer, SERIAL};
use serde_json::Value;

fn room_url(server: &TestServer, room: &str, name: &str, codec: &str) -> String {
    format!(
        "http://{}/r/{room}?name={name}&codec={codec}&autojoin=1",
        server.addr
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_h264_chromium_vp8_and_firefox_vp8_share_a_room() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(test_config()).await;
    let specs = [
        (Kind::Chromium, "chromium-h264", "h264"),
        (Kind::Chromium, "chromium-vp8", "vp8"),
        (Kind::Firefox, "firefox-vp8", "vp8"),
    ];
    let mut browsers = Vec::new();
    for (kind, label, codec) in specs {
        let b = Browser::launch(kind, label).await;
        b.client
            .goto(&room_url(&server, "club", label, codec))
            .await
            .unwrap();
        browsers.push((b, codec));
    }

    // Each decodes 60+ frames of the canvas in the codec it asked for, hears
    // audio, and shows three participants.
    for (b, codec) in &browsers {
        let (ok, s) = wait_stats(b, Duration::from_secs(60), |s| {
            s["framesDecoded"].as_u64().unwrap_or(0) >= 60
                && s["frameWidth"] == 640
                && s["frameHeight"] == 360
                && s["codec"] == *codec
                && s["participants"] == 3
                && s["audioEnergy"].as_f64().unwrap_or(0.0) > 1e-4
        })
        .await;
        b.screenshot(&format!("browser-{}", b.label)).await;
        assert!(ok, "{}: {s}", b.label);
    }

    // One browser crashes; the other two keep decoding and show two.
    let (gone, _) = browsers.remove(0);
    gone.kill_abruptly();
    for (b, _) in &browsers {
        let before = b.stats().await["framesDecoded"].as_u64().unwrap_or(0);
        let (ok, s) = wait_stats(b, Duration::from_secs(30), |s| {
            s["participants"] == 2 && s["framesDecoded"].as_u64().unwrap_or(0) > before + 30
        })
        .await;
        assert!(ok, "{} after the crash: {s}", b.label);
    }
    drop(gone);
    for (b, _) in browsers {
        b.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sees_a_peer_in_its_tile_and_sends_only_what_its_tile_needs() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(test_config()).await;
    let b = Browser::launch(Kind::Chromium, "chromium-alone").await;
    b.client
        .goto(&room_url(&server, "desk", "viewer", "vp8"))
        .await
        .unwrap();

    // Alone, the browser's tile is the whole canvas: measure what it sends.
    let (ok, s) = wait_stats(&b, Duration::from_secs(40), |s| {
        s["framesDecoded"].as_u64().unwrap_or(0) >= 30
            && s["sentFrameWidth"].as_u64().unwrap_or(0) > 0
    })
    .await;
    assert!(ok, "alone: {s}");
    let alone = sent_rate(&b).await;

    // A GStreamer peer joins, then two more: the browser's tile shrinks.
    let opts = |name: &str, color: u32| PeerOptions::new("desk", name, color);
    let blue = TestPeer::join(&server.ws_url(), opts("blue", 0x0000ff)).await;

    // The browser's canvas, read back from the video element, shows the
    // peer's colour in the peer's tile (the second of two).
    let two = common::grid_tiles(&server.config, 2);
    let (x, y) = two[1].center();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = None;
    while Instant::now() < deadline {
        seen = b.canvas_rgb(x, y).await;
        if seen.is_some_and(|c| color_matches(c, 0x0000ff)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    b.screenshot("browser-with-peer").await;
    assert!(
        seen.is_some_and(|c| color_matches(c, 0x0000ff)),
        "peer tile shows {seen:?}"
    );

    let red = TestPeer::join(&server.ws_url(), opts("red", 0xff0000)).await;
    let green = TestPeer::join(&server.ws_url(), opts("green", 0x00ff00)).await;
    let four = common::grid_tiles(&server.config, 4);
    let (ok, s) = wait_stats(&b, Duration::from_secs(30), |s| {
        s["participants"] == 4
            && s["tile"]["width"] == four[0].width
            && s["sentFrameWidth"].as_u64().unwrap_or(u64::MAX) <= u64::from(four[0].width)
    })
    .await;
    assert!(
        ok,
        "the browser did not shrink what it sends to its tile: {s}"
    );
    // Let the encoder settle on the new size and cap, then measure again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let in_four = sent_rate(&b).await;
    println!(
        "upstream video: alone {:.0} kbit/s, in a 4-tile canvas {:.0} kbit/s ({:.0} % less)",
        alone / 1000.0,
        in_four / 1000.0,
        100.0 * (1.0 - in_four / alone)
    );
    assert!(
        in_four < alone * 0.7,
        "upstream did not drop: {alone} -> {in_four} bit/s"
    );

    drop((blue, red, green));
    b.close().await;
}

/// The browser's outbound video bitrate over two seconds, bits per second.
async fn sent_rate(b: &Browser) -> f64 {
    let bytes = |s: &Value| s["sentBytes"].as_f64().unwrap_or(0.0);
    let t0 = Instant::now();
    let s0 = bytes(&b.stats().await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s1 = bytes(&b.stats().await);
    (s1 - s0) * 8.0 / t0.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_reconnects_by_itself_after_a_server_restart() {
    let _serial = SERIAL.lock().await;
    init();
    let mut server = TestServer::start(test_config()).await;
    let addr = server.addr;
    let b = Browser::launch(Kind::Chromium, "chromium-restart").await;
    b.client
        .goto(&room_url(&server, "lab", "phoenix", "vp8"))
        .await
        .unwrap();
    let (ok, before) = wait_stats(&b, Duration::from_secs(40), |s| {
        s["state"] == "connected" && s["framesDecoded"].as_u64().unwrap_or(0) >= 20
    })
    .await;
    assert!(ok, "first connection: {before}");

    // The server goes away: the page says it is reconnecting.
    server.shutdown();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut state = String::new();
    while Instant::now() < deadline && !state.starts_with("Reconnecting") {
        state = b
            .run("return document.getElementById('state').textContent;")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.screenshot("browser-reconnecting").await;
    assert!(state.starts_with("Reconnecting"), "state shown: {state:?}");
    drop(server);

    // A new server on the same address: the page rejoins on its own.
    let server = TestServer::start_at(test_config(), addr).await;
    let (ok, after) = wait_stats(&b, Duration::from_secs(60), |s| {
        s["state"] == "connected"
            && s["participantId"] != before["participantId"]
            && s["participants"] == 1
            && s["framesDecoded"].as_u64().unwrap_or(0) >= 20
    })
    .await;
    assert!(ok, "no rejoin after the restart: {after}");
    assert_eq!(server.registry.room_ids(), vec!["lab".to_string()]);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teacher_shares_a_screen_from_chromium() {
    let _serial = SERIAL.lock().await;
    init();
    let mut config = test_config();
    config.layouts.default = "screen".into();
    let server = TestServer::start(config).await;
    let b = Browser::launch(Kind::Chromium, "chromium-share").await;
    b.client
        .goto(&format!(
            "{}&role=teacher",
            room_url(&server, "shared", "teacher", "vp8")
        ))
        .await
        .unwrap();
    let (ok, s) = wait_stats(&b, Duration::from_secs(40), |s| {
        s["framesDecoded"].as_u64().unwrap_or(0) >= 10
    })
    .await;
    assert!(ok, "joined: {s}");
    let viewer = TestPeer::join(
        &server.ws_url(),
        PeerOptions::new("shared", "viewer", 0x00ff00),
    )
    .await;

    // A click is the user gesture getDisplayMedia needs; the fake UI picks a screen.
    let share = b
        .client
        .find(fantoccini::Locator::Id("share"))
        .await
        .expect("share button");
    share.click().await.expect("click share");
    let (ok, s) = wait_stats(&b, Duration::from_secs(20), |s| {
        s["sharing"] == true && s["screenBytes"].as_u64().unwrap_or(0) > 20_000
    })
    .await;
    assert!(ok, "the browser does not send its screen: {s}");
    let mut shown = false;
    for _ in 0..50 {
        let room = server.room("shared").await.unwrap();
        if room.screens.len() == 1 && room.participants[0].sharing {
            shown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(shown, "the screen is not on the canvas");
    // The viewer sees the screen slot filled (the fake screen is not black).
    let mut members = vec![tessera::layout::Member::default(); 3];
    members[0].teacher = true;
    members[1].screen = true;
    let rects = common::layout_tiles(&server.config, "screen", &members);
    let spot = (
        rects[1].x + rects[1].width / 4,
        rects[1].y + rects[1].height / 4,
    );
    let filled = common::wait_until(Duration::from_secs(10), || {
        viewer.last_frame().is_some_and(|f| {
            let (r, g, bl) = f.rgb_at(spot.0, spot.1);
            u32::from(r) + u32::from(g) + u32::from(bl) > 60
        })
    })
    .await;
    b.screenshot("browser-sharing").await;
    assert!(
        filled,
        "the screen slot is empty: {:?}",
        viewer.last_frame().map(|f| f.rgb_at(spot.0, spot.1))
    );

    // Stopping from the page takes the screen off the canvas.
    share.click().await.expect("click stop");
    let mut gone = false;
    for _ in 0..50 {
        if server.room("shared").await.unwrap().screens.is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(gone, "the screen stayed after stopping");
    drop(viewer);
    b.close().await;
}

/// The admin key of the playback test: the page asks for it, then plays
/// through a playback link.
const PLAYBACK_ADMIN_KEY: &str = "Pl4yback-admin-key-for-the-browser-test-9f3c";

/// What a browser's `/recordings` page makes of the newest recording:
/// played, then sought to the middle (an HTTP Range request) and sampled.
const PLAY_NEWEST: &str = r#"
    const until = async (f, ms) => {
        const end = Date.now() + ms;
        while (!f()) {
            if (Date.now() > end) return false;
            await new Promise((r) => setTimeout(r, 100));
        }
        return true;
    };
    if (!await until(() => document.querySelector('#list button:enabled'), 10000))
        return { error: 'no playable recording listed' };
    document.querySelector('#list button').click();
    const v = document.getElementById('video');
    v.muted = true;
    if (!await until(() => v.readyState >= 2 || v.error, 10000))
        return { error: 'not loaded: ' + (v.error ? v.error.message || v.error.code : v.readyState) };
    await v.play();
    if (!await until(() => v.currentTime > 1.0, 10000)) return { error: 'does not play' };
    v.pause();
    v.currentTime = v.duration / 2;
    await until(() => !v.seeking && v.readyState >= 2, 10000);
    const c = document.createElement('canvas');
    c.width = v.videoWidth; c.height = v.videoHeight;
    const g = c.getContext('2d');
    g.drawImage(v, 0, 0);
    const d = g.getImageData(v.videoWidth / 2, v.videoHeight / 2, 1, 1).data;
    return {
        width: v.videoWidth, height: v.videoHeight, duration: v.duration,
        at: v.currentTime, centre: [d[0], d[1], d[2]],
        chapters: document.querySelectorAll('#chapters li').length,
        chat: [...document.querySelectorAll('#chat-replay li')].length,
        chatShown: [...document.querySelectorAll('#chat-replay li')].filter((li) => !li.hidden)
            .map((li) => li.querySelector('span').textContent),
        chatMarkup: document.querySelectorAll('#chat-replay b b, #chat-replay span b').length,
    };
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_and_firefox_play_an_exported_lesson_and_seek_in_it() {
    let _serial = SERIAL.lock().await;
    init();
    let (mut config, dir) = recording_config("playback");
    config.recording.segment_seconds = 2;
    config.admin.key = PLAYBACK_ADMIN_KEY.into();
    let server = TestServer::start(config).await;
    let peer = TestPeer::join(
        &server.ws_url(),
        PeerOptions::new("playback", "a", 0x00ff00),
    )
    .await;
    assert!(
        common::wait_until(Duration::from_secs(20), || peer.frames() > 10).await,
        "no media"
    );
    let mut admin = reqwest::header::HeaderMap::new();
    admin.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {PLAYBACK_ADMIN_KEY}").parse().unwrap(),
    );
    let http = reqwest::Client::builder()
        .default_headers(admin)
        .build()
        .unwrap();
    let api = format!("http://{}/api", server.addr);
    let id = start_recording(&http, &api, "playback").await;
    // Someone chats a second in, and again near the end: the page shows
    // each message once the video reaches it.
    let (mut chatty, _) =
        common::ws::join(&server, "playback", "Chatty", serde_json::json!({})).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let chat = |text: &str| serde_json::json!({"type": "chat", "text": text});
    common::ws::send(&mut chatty, chat("<b>early</b> question")).await;
    common::ws::send(
        &mut chatty,
        serde_json::json!({"type": "hand", "raised": true}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    common::ws::send(&mut chatty, chat("late remark")).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let manifest = stop_and_export(&http, &api, "playback", &id).await;
    assert!(manifest["export"].is_string(), "{manifest}");
    peer.leave().await;
    let truth = manifest["duration_ms"].as_u64().unwrap() as f64 / 1000.0;
    let chapters = manifest["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["kind"] == "layout" || (e["kind"] == "speaker" && e["participant"].is_string())
        })
        .count();

    for (kind, label) in [
        (Kind::Chromium, "chromium-playback"),
        (Kind::Firefox, "firefox-playback"),
    ] {
        let b = Browser::launch(kind, label).await;
        let page = format!("http://{}/recordings", server.addr);
        b.client.goto(&page).await.unwrap();
        // The page asks for the admin key; give it as a person would.
        let asked = b
            .run("return !document.getElementById('key-form').hidden || await new Promise((r) => setTimeout(() => r(!document.getElementById('key-form').hidden), 2000));")
            .await;
        assert_eq!(
            asked,
            Value::Bool(true),
            "{label}: the page asks for the key"
        );
        b.run(&format!(
            "document.getElementById('key').value = '{PLAYBACK_ADMIN_KEY}'; document.getElementById('key-form').requestSubmit(); return true;"
        ))
        .await;
        let r = b.run(PLAY_NEWEST).await;
        b.screenshot(label).await;
        b.close().await;
        assert!(r["error"].is_null(), "{label}: {r}");
        assert_eq!(
            (r["width"].as_u64(), r["height"].as_u64()),
            (Some(640), Some(360)),
            "{label}: {r}"
        );
        let duration = r["duration"].as_f64().unwrap_or(0.0);
        assert!(
            (duration - truth).abs() < 1.0,
            "{label}: {duration} s, recorded {truth} s: {r}"
        );
        assert!(
            r["at"].as_f64().unwrap() > truth / 2.0 - 1.0,
            "{label}: seek: {r}"
        );
        let c = &r["centre"];
        let rgb = (
            c[0].as_u64().unwrap() as u8,
            c[1].as_u64().unwrap() as u8,
            c[2].as_u64().unwrap() as u8,
        );
        assert!(color_matches(rgb, 0x00ff00), "{label}: centre {rgb:?}");
        assert_eq!(
            r["chapters"].as_u64(),
            Some(chapters as u64),
            "{label}: {r}"
        );
        // Halfway through, the chat and the hand of a second in show, as
        // text; the message sent near the end does not yet.
        assert_eq!(r["chat"], 3, "{label}: {r}");
        assert_eq!(
            r["chatShown"],
            serde_json::json!(["<b>early</b> question", "raised a hand"]),
            "{label}: {r}"
        );
        assert_eq!(r["chatMarkup"], 0, "{label}: {r}");
    }

    // Over HTTP: the media needs the key or a link, and a link opens its
    // own recording only.
    let open = reqwest::Client::new();
    let media = format!("{api}/recordings/{id}/media");
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(open.get(&media).send().await.unwrap()), 401);
    let link: Value = http
        .post(format!("{api}/recordings/{id}/link"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!("http://{}{}", server.addr, link["url"].as_str().unwrap());
    assert!(link["expires_at"].as_u64().is_some(), "{link}");
    let part = open
        .get(&url)
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.bytes().await.unwrap().len(), 100);
    let other = url.replace(&id, "playback-19700101T000000-000000");
    let refused = open.get(&other).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let why: Value = refused.json().await.unwrap();
    assert!(
        why["error"].as_str().unwrap().contains("another recording"),
        "{why}"
    );
    let tampered = format!("{}x", url);
    assert_eq!(status(open.get(&tampered).send().await.unwrap()), 401);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_link_with_a_token_brings_a_teacher_in_from_chromium() {
    let _serial = SERIAL.lock().await;
    init();
    let secret = "Vb7Qe2Lr9Xp4Mz1Ks8Tn3Wd6Hy0Jc5Gu";
    let mut config = test_config();
    config.auth.secret = secret.into();
    let server = TestServer::start(config).await;
    let token = tessera::auth::TokenKeys::new(secret, "tessera", 0).issue(
        "linked",
        tessera::ids::Role::Teacher,
        "Ada",
        Duration::from_secs(3600),
        tessera::auth::bans::unix_now(),
    );
    let b = Browser::launch(Kind::Chromium, "chromium-token").await;
    b.client
        .goto(&format!("http://{}/r/linked?token={token}", server.addr))
        .await
        .unwrap();
    let (ok, s) = wait_stats(&b, Duration::from_secs(30), |s| {
        s["framesDecoded"].as_u64().unwrap_or(0) > 10
    })
    .await;
    let page = b
        .run("return { url: location.href, lock: !document.getElementById('lock').hidden };")
        .await;
    b.screenshot("chromium-token").await;
    let room = server.room("linked").await;
    b.close().await;
    assert!(ok, "no canvas frames: {s}");
    assert!(!page["url"].as_str().unwrap().contains("token"), "{page}");
    assert_eq!(page["lock"], true, "teacher controls hidden: {page}");
    let room = room.expect("the room is open");
    assert_eq!(room.participants.len(), 1);
    assert_eq!(room.participants[0].name, "Ada");
    assert_eq!(room.participants[0].role, tessera::ids::Role::Teacher);
}
