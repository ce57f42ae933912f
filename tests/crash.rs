//! A recording survives the server being killed: every segment closed
//! before a SIGKILL plays, and the timeline written so far is on disk.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::peer::{PeerOptions, TestPeer};
use common::{init, wait_until, SERIAL};
use gstreamer as gst;
use gstreamer_pbutils as gst_pbutils;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_segments_play_after_a_sigkill() {
    let _serial = SERIAL.lock().await;
    init();
    let dir = std::env::temp_dir().join(format!("tessera-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TESSERA_LOG", "warn")
        .env("TESSERA_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("TESSERA_MEDIA__CANVAS_WIDTH", "640")
        .env("TESSERA_MEDIA__CANVAS_HEIGHT", "360")
        .env("TESSERA_MEDIA__FRAMERATE", "15")
        .env("TESSERA_RECORDINGS_DIR", &dir)
        .env("TESSERA_RECORDING__SEGMENT_SECONDS", "2")
        .env("TESSERA_RECORDING__MIN_FREE_MB", "1")
        .stdout(Stdio::null())
        .spawn()
        .expect("tessera starts");
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..100 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the server did not come up");
    let peer = TestPeer::join(
        &format!("ws://127.0.0.1:{port}/ws"),
        PeerOptions::new("crash", "a", 0x00ff00),
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(20), || peer.frames() > 10).await,
        "no media"
    );
    let started = http
        .post(format!("{base}/api/rooms/crash/recording"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 201);
    tokio::time::sleep(Duration::from_secs(7)).await;

    // No goodbye: the recorder gets no chance to close anything.
    server.kill().unwrap();
    server.wait().unwrap();
    drop(peer);

    let rec = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .next()
        .expect("a recording directory")
        .path();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rec.join("manifest.json")).unwrap()).unwrap();
    assert!(manifest["ended_at"].is_null(), "{manifest}");
    let closed = manifest["segments"].as_array().unwrap().clone();
    assert!(
        closed.len() >= 2,
        "7 s in 2 s segments closes at least 2: {manifest}"
    );
    let discoverer = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(10)).unwrap();
    for seg in &closed {
        let path = rec.join(seg.as_str().unwrap());
        let info = discoverer
            .discover_uri(&format!("file://{}", path.display()))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let secs = info.duration().map_or(0.0, |d| d.seconds_f64());
        assert!(secs > 1.5, "{}: {secs} s", path.display());
        assert_eq!(info.video_streams().len(), 1);
        assert_eq!(info.audio_streams().len(), 1);
    }
    // The files can still be joined by hand.
    let id = rec.file_name().unwrap().to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["recordings", "export", id])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TESSERA_LOG", "error")
        .env("TESSERA_RECORDINGS_DIR", &dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
