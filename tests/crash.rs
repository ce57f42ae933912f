//! A recording survives the server process ending: SIGTERM finalises every
//! open recording before exit; after a SIGKILL, every segment closed before
//! it plays, and the next start closes the manifest, names what was lost
//! and exports the rest.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::child::ChildServer;
use common::peer::{PeerOptions, TestPeer};
use common::{init, wait_until, SERIAL};
use gstreamer as gst;
use gstreamer_pbutils as gst_pbutils;
use nix::sys::signal::Signal;
use serde_json::Value;

/// Starts the server as its own process, recording into `dir` in 2 s segments.
async fn start(dir: &Path) -> ChildServer {
    ChildServer::start(&[
        ("TESSERA_RECORDINGS_DIR", dir.display().to_string()),
        ("TESSERA_RECORDING__SEGMENT_SECONDS", "2".into()),
        ("TESSERA_RECORDING__MIN_FREE_MB", "1".into()),
    ])
    .await
}

/// Joins a peer to `room`, starts recording it and records for `secs`.
async fn record(server: &ChildServer, room: &str, secs: u64) -> TestPeer {
    let peer = TestPeer::join(&server.ws, PeerOptions::new(room, "a", 0x00ff00)).await;
    assert!(
        wait_until(Duration::from_secs(20), || peer.frames() > 10).await,
        "no media"
    );
    let started = reqwest::Client::new()
        .post(format!("{}/api/rooms/{room}/recording", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 201);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    peer
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The only recording under `dir`: its directory and manifest.
fn the_recording(dir: &Path) -> (PathBuf, Value) {
    let rec = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .next()
        .expect("a recording directory")
        .path();
    let text = std::fs::read_to_string(rec.join("manifest.json")).unwrap();
    (rec, serde_json::from_str(&text).unwrap())
}

/// Duration of a media file, checking it has one video and one audio track.
fn playable_secs(path: &Path) -> f64 {
    let discoverer = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(10)).unwrap();
    let info = discoverer
        .discover_uri(&format!("file://{}", path.display()))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(info.video_streams().len(), 1, "{}", path.display());
    assert_eq!(info.audio_streams().len(), 1, "{}", path.display());
    info.duration().map_or(0.0, |d| d.seconds_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finalises_the_recording_before_exit() {
    let _serial = SERIAL.lock().await;
    init();
    let dir = temp_dir("sigterm");
    let server = start(&dir).await;
    let peer = record(&server, "term", 6).await;
    assert!(server.end(Signal::SIGTERM), "tessera exits 0 on SIGTERM");
    drop(peer);

    let (rec, manifest) = the_recording(&dir);
    assert!(manifest["ended_at"].is_string(), "{manifest}");
    assert!(manifest["error"].is_null(), "{manifest}");
    let stopped = manifest["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "recording-stopped")
        .unwrap_or_else(|| panic!("no stop in {manifest}"));
    assert!(
        stopped["reason"]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{stopped}"
    );
    let export = manifest["export"]
        .as_str()
        .unwrap_or_else(|| panic!("exported before exit: {manifest}"));
    let secs = playable_secs(&rec.join(export));
    let truth = manifest["duration_ms"].as_u64().unwrap() as f64 / 1000.0;
    assert!(
        (secs - truth).abs() < 1.0 && secs > 5.0,
        "export lasts {secs} s, the recording {truth} s"
    );
    for seg in manifest["segments"].as_array().unwrap() {
        playable_secs(&rec.join(seg.as_str().unwrap()));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_segments_play_after_a_sigkill_and_the_next_start_says_what_was_lost() {
    let _serial = SERIAL.lock().await;
    init();
    let dir = temp_dir("sigkill");
    let server = start(&dir).await;
    let peer = record(&server, "crash", 7).await;
    // No goodbye: the recorder gets no chance to close anything.
    assert!(!server.end(Signal::SIGKILL));
    drop(peer);

    let (rec, manifest) = the_recording(&dir);
    assert!(manifest["ended_at"].is_null(), "{manifest}");
    let closed = manifest["segments"].as_array().unwrap().clone();
    assert!(
        closed.len() >= 2,
        "7 s in 2 s segments closes at least 2: {manifest}"
    );
    let mut saved = 0.0;
    for seg in &closed {
        let secs = playable_secs(&rec.join(seg.as_str().unwrap()));
        assert!(secs > 1.5, "{seg}: {secs} s");
        saved += secs;
    }

    // The next start closes the recording and exports what was saved.
    let server = start(&dir).await;
    let mut manifest = Value::Null;
    let exported = wait_until(Duration::from_secs(30), || {
        manifest = the_recording(&dir).1;
        manifest["export"].is_string()
    })
    .await;
    assert!(exported, "not exported after a restart: {manifest}");
    assert!(server.end(Signal::SIGTERM));
    assert!(manifest["ended_at"].is_string(), "{manifest}");
    let lost = manifest["lost"].as_array().expect("lost segments named");
    assert_eq!(lost.len(), 1, "{manifest}");
    let error = manifest["error"].as_str().unwrap();
    assert!(
        error.contains("interrupted") && error.contains(lost[0].as_str().unwrap()),
        "{error}"
    );
    assert_eq!(manifest["segments"].as_array().unwrap(), &closed);
    let secs = playable_secs(&rec.join(manifest["export"].as_str().unwrap()));
    assert!(
        (secs - saved).abs() < 1.0,
        "closed segments of {saved} s in all export to {secs} s"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
