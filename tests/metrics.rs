//! Live metrics and room stats end to end: a real server and real webrtcbin
//! peers. `/metrics` follows peers joining and leaving (participants by
//! family, encoder counters, per-participant loss, jitter and RTT series
//! that go with their participant), counts signaling errors by code, and
//! refuses a wrong admin key; `/healthz` and `/readyz` answer, `/readyz`
//! naming an unwritable recordings directory; the admin API shows each
//! participant's codec, video size, inbound bitrate and tile.

mod common;

use std::time::Duration;

use common::peer::{PeerOptions, SendCodec, TestPeer};
use common::ws::send_and_read;
use common::{init, test_config, TestServer, SERIAL};
use serde_json::Value;

/// The value of one series (`name{labels}`, or a bare name) in an
/// exposition, if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn participant_series(name: &str, room: &str, id: &str) -> String {
    format!("{name}{{room=\"{room}\",participant=\"{id}\"}}")
}

/// Series kept per participant.
const LINK_SERIES: [&str; 3] = [
    "tessera_participant_inbound_loss_ratio",
    "tessera_participant_inbound_jitter_seconds",
    "tessera_participant_rtt_seconds",
];

struct Admin {
    http: reqwest::Client,
    base: String,
}

impl Admin {
    fn new(server: &TestServer) -> Admin {
        Admin {
            http: reqwest::Client::new(),
            base: format!("http://{}", server.addr),
        }
    }

    async fn metrics(&self) -> String {
        let r = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let kind = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
        r.text().await.unwrap()
    }

    async fn json(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.unwrap()
    }

    /// Scrapes until `cond` holds for the exposition, or panics with it.
    async fn wait_metrics(&self, what: &str, mut cond: impl FnMut(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.metrics().await;
            if cond(&text) {
                return text;
            }
            if std::time::Instant::now() > deadline {
                panic!("{what}; last scrape:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn participants(text: &str, family: &str) -> f64 {
    sample(
        text,
        &format!("tessera_participants{{family=\"{family}\"}}"),
    )
    .unwrap_or(0.0)
}

fn frames(text: &str, family: &str) -> f64 {
    sample(
        text,
        &format!("tessera_encoder_frames_total{{family=\"{family}\",tier=\"high\"}}"),
    )
    .unwrap_or(0.0)
}

fn keyframes(text: &str, family: &str) -> f64 {
    sample(
        text,
        &format!("tessera_encoder_keyframes_total{{family=\"{family}\",tier=\"high\"}}"),
    )
    .unwrap_or(0.0)
}

fn has_link_series(text: &str, room: &str, id: &str) -> bool {
    LINK_SERIES
        .iter()
        .all(|name| sample(text, &participant_series(name, room, id)).is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_room_stats_follow_peers_joining_and_leaving() {
    let _serial = SERIAL.lock().await;
    init();
    let mut config = test_config();
    // Rooms of two may go peer-to-peer, as by default: these peers cannot.
    config.rooms.p2p = tessera::config::P2pPolicy::Auto;
    let server = TestServer::start(config).await;
    let admin = Admin::new(&server);
    let room = "stats";

    let before = admin.metrics().await;
    assert_eq!(sample(&before, "tessera_rooms_open"), Some(0.0), "{before}");
    assert_eq!(
        participants(&before, "vp8") + participants(&before, "h264"),
        0.0
    );

    let vp8 = TestPeer::join(
        &server.ws_url(),
        PeerOptions {
            ask: Some("vp8"),
            ..PeerOptions::new(room, "ada", 0xff0000)
        },
    )
    .await;
    let h264 = TestPeer::join(
        &server.ws_url(),
        PeerOptions {
            codec: SendCodec::H264,
            ask: Some("h264"),
            send_size: (320, 180),
            ..PeerOptions::new(room, "bo", 0x00ff00)
        },
    )
    .await;

    // Two participants, one per family; the room is open; both encoders run.
    let text = admin
        .wait_metrics("two participants, one per family", |t| {
            participants(t, "vp8") == 1.0 && participants(t, "h264") == 1.0
        })
        .await;
    assert_eq!(sample(&text, "tessera_rooms_open"), Some(1.0), "{text}");
    let text = admin
        .wait_metrics("both encoders counting frames", |t| {
            frames(t, "vp8") > 0.0 && frames(t, "h264") > 0.0
        })
        .await;
    let (vp8_frames, h264_frames) = (frames(&text, "vp8"), frames(&text, "h264"));
    let text = admin
        .wait_metrics("encoder frame counters growing", |t| {
            frames(t, "vp8") > vp8_frames + 10.0 && frames(t, "h264") > h264_frames + 10.0
        })
        .await;
    for family in ["vp8", "h264"] {
        let series = format!("tessera_encoder_bytes_total{{family=\"{family}\",tier=\"high\"}}");
        assert!(sample(&text, &series).unwrap_or(0.0) > 0.0, "{text}");
        // The newcomer's keyframe at least, and far from every frame.
        let k = keyframes(&text, family);
        assert!(
            k >= 1.0 && k < frames(&text, family) / 2.0,
            "{family}: {k}\n{text}"
        );
    }
    // A receiver's PLI shows as one more keyframe of its family (at once,
    // or once the one-per-second limit lets the held request through).
    let vp8_keyframes = keyframes(&text, "vp8");
    vp8.request_keyframe();
    admin
        .wait_metrics("a VP8 keyframe for the PLI", |t| {
            keyframes(t, "vp8") > vp8_keyframes
        })
        .await;

    // Each joined participant has its connection series.
    let text = admin
        .wait_metrics("loss, jitter and RTT series for both", |t| {
            has_link_series(t, room, &vp8.id) && has_link_series(t, room, &h264.id)
        })
        .await;
    let fps = sample(
        &text,
        &format!(
            "tessera_encoder_frames_per_second{{room=\"{room}\",family=\"vp8\",tier=\"high\"}}"
        ),
    );
    assert!(fps.is_some_and(|f| f > 1.0), "{fps:?}\n{text}");

    // The admin API: a summary per room, and per participant its codec,
    // the size it sends, inbound bitrate, loss, jitter, RTT and tile.
    let list = admin.json("/api/rooms").await;
    let summary = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room)
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(summary["participants"], 2, "{summary}");
    assert_eq!(summary["layout"], "grid", "{summary}");
    assert_eq!(summary["recording"], Value::Null, "{summary}");
    assert_eq!(summary["encoders"], serde_json::json!(["vp8", "h264"]));
    // A room of two whose clients cannot connect directly stays on the MCU
    // (the test peers do not offer it), and says why.
    assert_eq!(summary["mode"], "mcu", "{summary}");
    assert!(
        summary["modeSince"]
            .as_str()
            .is_some_and(|t| humantime::parse_rfc3339(t).is_ok()),
        "{summary}"
    );
    let detail = admin.json(&format!("/api/rooms/{room}")).await;
    let cause = detail["mcuCause"].as_str().unwrap_or_default();
    assert!(
        cause.contains(vp8.id.as_str()) && cause.contains("cannot connect directly"),
        "{detail:#}"
    );
    assert_eq!(
        sample(&text, "tessera_rooms_by_mode{mode=\"mcu\"}"),
        Some(1.0),
        "{text}"
    );

    let mut detail = Value::Null;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let ready = |d: &Value| {
        d["participants"].as_array().is_some_and(|ps| {
            ps.len() == 2
                && ps
                    .iter()
                    .all(|p| p["resolution"].is_object() && p["inboundBitrate"].as_u64() > Some(0))
        })
    };
    while std::time::Instant::now() < deadline {
        detail = admin.json(&format!("/api/rooms/{room}")).await;
        if ready(&detail) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ready(&detail), "{detail:#}");
    assert_eq!(
        detail["canvas"],
        serde_json::json!({"width": 640, "height": 360, "framerate": 15})
    );
    assert_eq!(detail["recording"], Value::Null);
    let tiles = common::grid_tiles(&server.config, 2);
    for (peer, codec, size, tile) in [
        (&vp8, "vp8", (320, 240), tiles[0]),
        (&h264, "h264", (320, 180), tiles[1]),
    ] {
        let p = detail["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == peer.id.as_str())
            .unwrap_or_else(|| panic!("{detail:#}"));
        assert_eq!(p["codec"], codec, "{p}");
        assert_eq!(
            (
                p["resolution"]["width"].as_u64(),
                p["resolution"]["height"].as_u64()
            ),
            (Some(size.0), Some(size.1)),
            "{p}"
        );
        assert_eq!(
            p["tile"],
            serde_json::json!({"x": tile.x, "y": tile.y, "width": tile.width, "height": tile.height}),
            "{p}"
        );
        assert!(p["outboundBitrate"].as_u64() > Some(0), "{p}");
        let loss = p["packetLoss"]["fraction"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&loss), "{p}");
        assert!(p["packetLoss"]["packets"].is_u64(), "{p}");
        assert!(p["jitterMs"].as_f64().is_some_and(|j| j >= 0.0), "{p}");
        assert!(p.get("rttMs").is_some(), "{p}");
    }
    // Canvas frames sent to each participant keep counting at the canvas
    // rate (15 fps here).
    let sent = |d: &Value| -> Vec<u64> {
        d["participants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["canvasFrames"].as_u64().unwrap_or(0))
            .collect()
    };
    let before = sent(&detail);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = sent(&admin.json(&format!("/api/rooms/{room}")).await);
    for (b, a) in before.iter().zip(&after) {
        assert!(
            *b > 0 && a - b >= 20,
            "canvas frames sent: {before:?} then {after:?}"
        );
    }

    // The H.264 peer leaves: 2 -> 1, its series go, the other's stay.
    let gone_id = h264.id.clone();
    h264.leave().await;
    let text = admin
        .wait_metrics("one participant left", |t| {
            participants(t, "vp8") == 1.0 && participants(t, "h264") == 0.0
        })
        .await;
    let text = if has_link_series(&text, room, &vp8.id) {
        text
    } else {
        admin
            .wait_metrics("the remaining participant's series", |t| {
                has_link_series(t, room, &vp8.id)
            })
            .await
    };
    for name in LINK_SERIES {
        let gone = participant_series(name, room, &gone_id);
        assert_eq!(sample(&text, &gone), None, "{gone} still there:\n{text}");
    }

    // The last one leaves: the room closes and takes its series along.
    let last = vp8.id.clone();
    vp8.leave().await;
    let text = admin
        .wait_metrics("the room closed", |t| {
            sample(t, "tessera_rooms_open") == Some(0.0)
        })
        .await;
    assert_eq!(
        participants(&text, "vp8") + participants(&text, "h264"),
        0.0
    );
    assert!(!text.contains(&format!("participant=\"{last}\"")), "{text}");
    assert!(!text.contains(&format!("room=\"{room}\"")), "{text}");
    // Counters stay.
    assert!(frames(&text, "vp8") > vp8_frames, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signaling_errors_are_counted_by_code() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(test_config()).await;
    let admin = Admin::new(&server);
    let count = |text: &str, code: &str| {
        sample(
            text,
            &format!("tessera_signaling_errors_total{{code=\"{code}\"}}"),
        )
        .unwrap_or(0.0)
    };
    let text = admin.metrics().await;
    assert_eq!(count(&text, "bad-message"), 0.0);

    let mut ws = common::ws::connect(&server.ws_url()).await;
    for _ in 0..2 {
        let reply = send_and_read(&mut ws, "{not json").await;
        assert_eq!(reply["code"], "bad-message", "{reply}");
    }
    let reply = send_and_read(&mut ws, r#"{"type":"offer","sdp":"v=0"}"#).await;
    assert_eq!(reply["code"], "out-of-order", "{reply}");
    // A room's own error (a garbage offer) comes through the outbox.
    let reply = send_and_read(&mut ws, r#"{"type":"join","room":"errs","name":"Ada"}"#).await;
    assert_eq!(reply["type"], "joined", "{reply}");
    let _layout = common::ws::read(&mut ws).await;
    let reply = send_and_read(&mut ws, r#"{"type":"offer","sdp":"hello"}"#).await;
    assert_eq!(reply["code"], "bad-offer", "{reply}");

    let text = admin.metrics().await;
    assert_eq!(count(&text, "bad-message"), 2.0, "{text}");
    assert_eq!(count(&text, "out-of-order"), 1.0, "{text}");
    assert_eq!(count(&text, "bad-offer"), 1.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let _serial = SERIAL.lock().await;
    init();
    let (config, dir) = common::recordings::recording_config("readyz");
    let server = TestServer::start(config).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["ready"], true, "{body}");
    // The probe file is gone again.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    drop(server);

    // recording.dir under a regular file: not ready, and the answer says
    // which directory and what to do.
    let file = dir.join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    let mut config = test_config();
    config.recording.dir = file.join("recordings");
    let server = TestServer::start(config).await;
    let base = format!("http://{}", server.addr);
    let r = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["ready"], false, "{body}");
    let problems = body["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{body}");
    let what = problems[0]["what"].as_str().unwrap();
    assert!(
        what.contains(&file.join("recordings").display().to_string()),
        "{body}"
    );
    assert!(
        problems[0]["fix"]
            .as_str()
            .unwrap()
            .contains("recording.dir"),
        "{body}"
    );
    // Alive all the same.
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_refuse_a_wrong_admin_key() {
    let _serial = SERIAL.lock().await;
    init();
    let key = "Zq8vTn2LwR5pXc7KmB3yHd9sFg4jUe6a";
    let mut config = test_config();
    config.admin.key = key.into();
    let server = TestServer::start(config).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/metrics", server.addr);
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(&url)
        .bearer_auth("Zq8vTn2LwR5pXc7KmB3yHd9sFg4jUe6b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("admin key"),
        "{body}"
    );
    let r = http.get(&url).bearer_auth(key).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("tessera_rooms_open"));
    // Health and readiness stay open for probes.
    let r = http
        .get(format!("http://{}/readyz", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
