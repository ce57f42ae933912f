//! Peer-to-peer with real browsers: Chromium and Firefox in a room of two
//! connect directly and the server's media for them rests; a third browser
//! (Chromium, H.264) moves the room to the MCU without either losing the
//! picture or the sound for long; when it leaves, the pair goes direct
//! again after the hold. A recording the teacher starts moves the pair to
//! the MCU, and its export shows both cameras and holds both voices. The
//! server's CPU for the pair is measured beside the same pair on the MCU.

mod common;

use std::time::{Duration, Instant};

use common::browser::{wait_stats, Browser, Kind};
use common::media::{tone_power, Frame};
use common::netns::{Forwarder, Namespace};
use common::recordings::{decode_webm, recording_config};
use common::{init, test_config, TestServer, SERIAL};
use gstreamer as gst;
use serde_json::Value;
use tessera::config::P2pPolicy;

const ROOM: &str = "pair";

fn count(s: &Value, path: &[&str]) -> u64 {
    path.iter().fold(s, |v, k| &v[*k]).as_u64().unwrap_or(0)
}

/// The pair sees each other directly: the direct connection's picture is
/// shown and moving, over a host (or peer-reflexive) pair; that it ends at
/// the other browser is [`browser_to_browser`].
fn direct_and_moving(s: &Value, at_least: u64) -> bool {
    let port = count(s, &["direct", "remotePort"]);
    s["mode"] == "p2p"
        && s["direct"]["shown"] == true
        && count(s, &["direct", "framesDecoded"]) >= at_least
        // Host, or peer-reflexive when the other's check arrived before its
        // candidate: either way the other browser's own address.
        && ["host", "prflx"].contains(&s["direct"]["remoteCandidateType"].as_str().unwrap_or(""))
        && port != 0
}

/// Each browser's direct connection ends at a port the other browser
/// gathered: the pair talks browser to browser, not through the server.
/// (A range check against the server's ports failed when a browser's own
/// ephemeral port fell in that range; requiring the two selected pairs to
/// be one failed on a machine with two interfaces, where each side may
/// send over a different valid pair.)
fn browser_to_browser(a: &Value, b: &Value) -> bool {
    let ends = |from: &Value, to: &Value| {
        let remote = count(from, &["direct", "remotePort"]);
        let gathered = to["direct"]["localPorts"].as_array();
        remote != 0
            && gathered.is_some_and(|ports| ports.iter().any(|p| p.as_u64() == Some(remote)))
    };
    ends(a, b) && ends(b, a)
}

fn url(server: &TestServer, room: &str, name: &str, extra: &str) -> String {
    format!(
        "http://{}/r/{room}?name={name}&autojoin=1{extra}",
        server.addr
    )
}

/// How long the teacher records the pair.
const RECORD_SECS: u64 = 8;

/// The exported recording of the pair: it decodes, both tiles show a
/// moving camera (each differs between two frames 2 s apart; a placeholder
/// or a frozen tile would not), and both voices are in the mix: Firefox's
/// fake microphone is a steady 1 kHz tone, Chromium's beeps at 400 Hz.
fn check_recording(server: &TestServer, file: &std::path::Path) {
    let at = [
        gst::ClockTime::from_seconds(RECORD_SECS / 2 - 1),
        gst::ClockTime::from_seconds(RECORD_SECS / 2 + 1),
    ];
    let d = decode_webm(file, &at);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let [early, late] = d.stills.as_slice() else {
        panic!("{} frames decoded, no stills at {at:?}", d.frames);
    };
    for (i, tile) in common::grid_tiles(&server.config, 2).iter().enumerate() {
        let (a, b) = (
            early.mean_in(tile.x, tile.y, tile.width, tile.height),
            late.mean_in(tile.x, tile.y, tile.width, tile.height),
        );
        let moved = changed_pixels(early, late, tile);
        eprintln!("recorded tile {i}: mean {a:?} then {b:?}, {moved:.2} of its pixels changed");
        assert!(
            moved > 0.01,
            "tile {i} did not move: {moved:.3} of it changed"
        );
    }
    // Each voice by the power at its frequency in every 100 ms of the
    // recording. Firefox's microphone is a steady tone: at its loudest it
    // must stand well above a frequency nobody sends. Chromium's beeps
    // are short, and short beeps spread over every frequency, so they
    // lift that reference too (250 Hz measured from 1.5e-6 to 1.3e-4
    // between runs, with beeps from 6.7e-5 to 3.2e-3 at their loudest):
    // they must stand well above the same frequency's quiet between them
    // (about 1e-11), which a recording without Chromium's voice has
    // everywhere.
    let powers = |f: f64| -> Vec<f64> {
        d.audio
            .chunks(4_800)
            .filter(|w| w.len() == 4_800)
            .map(|w| tone_power(w, f, 48000.0))
            .collect()
    };
    let peak = |f: f64| powers(f).into_iter().fold(0.0, f64::max);
    let median = |f: f64| {
        let mut p = powers(f);
        p.sort_by(f64::total_cmp);
        p.get(p.len() / 2).copied().unwrap_or(0.0)
    };
    let floor = peak(250.0);
    let tone = peak(1000.0);
    eprintln!("recorded mix at 1000 Hz (Firefox's microphone): peak {tone:.2e}, against {floor:.2e} at 250 Hz");
    assert!(
        tone > 1e-4 && tone > floor * 10.0,
        "Firefox's voice (1 kHz) missing from the recording: {tone:.2e} at its loudest, {floor:.2e} at 250 Hz"
    );
    let (beeps, between) = (peak(400.0), median(400.0));
    eprintln!(
        "recorded mix at 400 Hz (Chromium's microphone): peak {beeps:.2e}, median {between:.2e}"
    );
    assert!(
        beeps > 1e-5 && beeps > between * 100.0,
        "Chromium's voice (400 Hz beeps) missing from the recording: {beeps:.2e} at its loudest, {between:.2e} between"
    );
}

fn changed_pixels(a: &Frame, b: &Frame, tile: &tessera::layout::Rect) -> f64 {
    let mut changed = 0u64;
    for y in (tile.y..tile.y + tile.height).step_by(2) {
        for x in (tile.x..tile.x + tile.width).step_by(2) {
            let (p, q) = (a.rgb_at(x, y), b.rgb_at(x, y));
            let d = p.0.abs_diff(q.0) as u32 + p.1.abs_diff(q.1) as u32 + p.2.abs_diff(q.2) as u32;
            if d > 48 {
                changed += 1;
            }
        }
    }
    changed as f64 / (tile.width as f64 / 2.0 * tile.height as f64 / 2.0)
}

/// This process's CPU time (the server runs in it), in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name's closing parenthesis; utime and
    // stime are the 14th and 15th fields, in clock ticks (100 a second).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// The server's CPU over `secs`, in cores.
async fn cores_over(secs: u64) -> f64 {
    let start = cpu_seconds();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    (cpu_seconds() - start) / secs as f64
}

/// The direct connection's frames per second over 3 s.
async fn direct_fps(b: &Browser) -> f64 {
    let before = count(&b.stats().await, &["direct", "framesDecoded"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    (count(&b.stats().await, &["direct", "framesDecoded"]) - before) as f64 / 3.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_and_firefox_go_direct_a_third_moves_them_to_the_mcu_and_they_go_back() {
    let _serial = SERIAL.lock().await;
    init();
    let (mut config, rec_dir) = recording_config("p2p");
    config.rooms.p2p = P2pPolicy::Auto;
    config.rooms.p2p_hold_seconds = 2;
    let server = TestServer::start(config).await;
    let mut pair = Vec::new();
    for (kind, name, extra) in [
        (Kind::Chromium, "Ada", "&role=teacher"),
        (Kind::Firefox, "Bo", ""),
    ] {
        let b = Browser::launch_at_fps(kind, &format!("p2p-{name}"), 30).await;
        b.client
            .goto(&url(&server, ROOM, name, extra))
            .await
            .unwrap();
        pair.push(b);
    }

    // Direct: each decodes the other's camera over a host-to-host pair.
    let mut direct_stats = Vec::new();
    for b in &pair {
        let (ok, s) = wait_stats(b, Duration::from_secs(40), |s| direct_and_moving(s, 30)).await;
        assert!(ok, "{}: {s:#}", b.label);
        direct_stats.push(s);
    }
    assert!(
        browser_to_browser(&direct_stats[0], &direct_stats[1]),
        "the direct connection runs browser to browser: {:#} {:#}",
        direct_stats[0]["direct"],
        direct_stats[1]["direct"]
    );
    let snap = server.room(ROOM).await.unwrap();
    assert_eq!(snap.mode.mode.as_str(), "p2p");
    for b in &pair {
        let fps = direct_fps(b).await;
        eprintln!("{}: {fps:.1} fps over the direct connection", b.label);
        assert!(fps >= 25.0, "{}: {fps:.1} fps direct", b.label);
    }
    // The server's media for the pair rests: no video encoder once the
    // last one lingered out, and almost nothing arrives from either.
    let rested = common::wait_until(Duration::from_secs(10), || {
        block_on_room(&server, ROOM).is_some_and(|snap| rests(&snap))
    })
    .await;
    let snap = server.room(ROOM).await.unwrap();
    assert!(
        rested,
        "encoders {:?}, media {:?}",
        snap.video_encoders, snap.media
    );
    let p2p_cores = cores_over(10).await;
    for b in &pair {
        b.screenshot(&format!("p2p-direct-{}", b.label)).await;
    }

    // A third browser joins (Chromium, H.264, and it cannot connect
    // directly): the room is on the MCU, all three decode the canvas with
    // three tiles within 2 s of the join, and the pair never went more
    // than a second without a new picture or 300 ms without sound.
    let mut before = Vec::new();
    for b in &pair {
        b.run("window.tessera.resetGaps(); return null;").await;
        before.push(count(&b.stats().await, &["framesDecoded"]));
    }
    let third = Browser::launch(Kind::Chromium, "p2p-Cy").await;
    third
        .client
        .goto(&url(&server, ROOM, "Cy", "&codec=h264&p2p=0"))
        .await
        .unwrap();
    let present = common::wait_until(Duration::from_secs(30), || {
        block_on_room(&server, ROOM).is_some_and(|s| s.participants.len() == 3)
    })
    .await;
    assert!(present, "the third never joined");
    let joined = Instant::now();
    let everyone: Vec<(&Browser, u64)> = pair.iter().zip(before).chain([(&third, 0)]).collect();
    // Each one's first canvas frame with the three in the room.
    let mut first_frame: Vec<Option<Duration>> = vec![None; everyone.len()];
    let mut last = vec![Value::Null; everyone.len()];
    while first_frame.iter().any(Option::is_none) && joined.elapsed() < Duration::from_secs(20) {
        for (i, (b, server_frames)) in everyone.iter().enumerate() {
            if first_frame[i].is_some() {
                continue;
            }
            let s = b.stats().await;
            if s["mode"] == "mcu"
                && s["participants"] == 3
                && s["frameWidth"] == 640
                && count(&s, &["framesDecoded"]) > *server_frames
            {
                first_frame[i] = Some(joined.elapsed());
            }
            last[i] = s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (i, (b, _)) in everyone.iter().enumerate() {
        assert!(
            first_frame[i].is_some(),
            "{} on the MCU: {:#}",
            b.label,
            last[i]
        );
    }
    let to_canvas = first_frame.iter().flatten().max().copied().unwrap();
    let tiles = server.room(ROOM).await.unwrap().tiles.len();
    assert_eq!(tiles, 3);
    for b in pair.iter().chain([&third]) {
        b.screenshot(&format!("p2p-mcu-{}", b.label)).await;
    }
    // Each of the pair shows the canvas once it moves (a few frames), then
    // closes the direct connection: the gaps are read after that.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut gaps = Vec::new();
    for b in &pair {
        let s = b.stats().await;
        let (video, audio) = (count(&s, &["frameGapMs"]), count(&s, &["audioGapMs"]));
        eprintln!(
            "{}: longest wait through the switch: {video} ms for a frame (ending {} ms after the join), {audio} ms for sound; told and shown: {}",
            b.label, s["frameGapEndMs"], s["switchTimes"]
        );
        gaps.push((b.label.clone(), video, audio));
    }
    eprintln!("first canvas frames after the third was in the room: {first_frame:?}");
    assert!(to_canvas <= Duration::from_secs(2), "{to_canvas:?}");
    for (label, video, audio) in &gaps {
        assert!(*video <= 1000, "{label}: {video} ms without a new frame");
        // The target is 300 ms; the page polls getStats every 100 ms, and
        // under load one poll of Firefox's can take 300 ms (picture and
        // sound then show the same wait): the bound leaves room for that.
        assert!(*audio <= 500, "{label}: {audio} ms without sound");
    }

    // The third leaves: after the 2 s hold the pair is direct again.
    let left = Instant::now();
    third.close().await;
    for b in &pair {
        let direct_before = count(&b.stats().await, &["direct", "framesDecoded"]);
        let (ok, s) = wait_stats(b, Duration::from_secs(30), |s| {
            direct_and_moving(s, direct_before + 30)
        })
        .await;
        assert!(ok, "{} back to direct: {s:#}", b.label);
    }
    assert!(left.elapsed() >= Duration::from_secs(2));
    assert_eq!(server.room(ROOM).await.unwrap().mode.mode.as_str(), "p2p");

    // The teacher records: the room moves to the MCU first, and the
    // exported recording shows both cameras and holds both voices.
    let ada = &pair[0];
    ada.run("document.getElementById('record').click(); return null;")
        .await;
    for b in &pair {
        let from = count(&b.stats().await, &["framesDecoded"]);
        let (ok, s) = wait_stats(b, Duration::from_secs(20), |s| {
            s["mode"] == "mcu" && s["recording"] == true && count(s, &["framesDecoded"]) > from + 30
        })
        .await;
        assert!(ok, "{} recording on the MCU: {s:#}", b.label);
    }
    let snap = server.room(ROOM).await.unwrap();
    assert_eq!(snap.mode.mode.as_str(), "mcu");
    let id = snap.recording.clone().expect("a recording runs");
    tokio::time::sleep(Duration::from_secs(RECORD_SECS)).await;
    ada.run("document.getElementById('record').click(); return null;")
        .await;
    let manifest_path = rec_dir.join(&id).join("manifest.json");
    let mut manifest = Value::Null;
    let exported = common::wait_until(Duration::from_secs(30), || {
        manifest = std::fs::read(&manifest_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        manifest["export"].is_string()
    })
    .await;
    assert!(exported, "{manifest:#}");
    check_recording(
        &server,
        &rec_dir.join(&id).join(manifest["export"].as_str().unwrap()),
    );
    // Recording over, the pair goes direct again after the hold.
    for b in &pair {
        let direct_before = count(&b.stats().await, &["direct", "framesDecoded"]);
        let (ok, s) = wait_stats(b, Duration::from_secs(30), |s| {
            direct_and_moving(s, direct_before + 30)
        })
        .await;
        assert!(ok, "{} direct after the recording: {s:#}", b.label);
    }

    // The teacher silences the student: its voice no longer arrives over
    // the direct connection.
    ada.run("document.querySelector('#roster button').click(); return null;")
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let heard = count(&ada.stats().await, &["direct", "audioBytes"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = count(&ada.stats().await, &["direct", "audioBytes"]);
    assert!(
        later - heard < 2_000,
        "{} bytes of the silenced student's voice arrived in 3 s",
        later - heard
    );
    // The teacher removes the student: the teacher is on the MCU at once.
    let removed = Instant::now();
    ada.run("document.querySelectorAll('#roster button')[1].click(); return null;")
        .await;
    let (ok, s) = wait_stats(ada, Duration::from_secs(5), |s| {
        s["mode"] == "mcu" && s["participants"] == 1
    })
    .await;
    assert!(ok, "the teacher after the removal: {s:#}");
    eprintln!(
        "the teacher was on the MCU {:?} after the removal",
        removed.elapsed()
    );

    // The same two on the MCU (the page's ?p2p=0), for the CPU beside it.
    for b in &pair {
        let name = b.label.trim_start_matches("p2p-");
        b.client
            .goto(&url(&server, "pair-mcu", name, "&p2p=0"))
            .await
            .unwrap();
    }
    for b in &pair {
        let (ok, s) = wait_stats(b, Duration::from_secs(40), |s| {
            s["mode"] == "mcu" && s["participants"] == 2 && count(s, &["framesDecoded"]) > 60
        })
        .await;
        assert!(ok, "{} in the MCU room: {s:#}", b.label);
    }
    assert_eq!(
        server.room("pair-mcu").await.unwrap().mode.mode.as_str(),
        "mcu"
    );
    let mcu_cores = cores_over(10).await;
    eprintln!(
        "server CPU for a pair: {p2p_cores:.3} cores peer-to-peer, {mcu_cores:.3} on the MCU ({:.0} %)",
        100.0 * p2p_cores / mcu_cores
    );
    // The canvas, the encoders and the sending rest; the full mix keeps its
    // clock (docs/peer-to-peer.md, Limits). Measured at 7-10 % of the MCU
    // pair's; the bound leaves room for a busy machine.
    assert!(
        p2p_cores < mcu_cores / 5.0,
        "{p2p_cores:.3} cores peer-to-peer against {mcu_cores:.3} on the MCU"
    );
    for b in pair {
        b.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_that_cannot_reach_each_other_stays_on_the_mcu_and_works() {
    let _serial = SERIAL.lock().await;
    init();
    // Each browser in its own namespace, which reaches the server's side
    // of its link and nothing else: the direct connection cannot come up.
    let spaces = [Namespace::create(), Namespace::create()];
    for ns in &spaces {
        ns.isolate();
    }
    let mut config = test_config();
    config.rooms.p2p = P2pPolicy::Auto;
    config
        .ice
        .addresses
        .extend(spaces.iter().map(|ns| std::net::IpAddr::V4(ns.host_ip)));
    let server = TestServer::start(config).await;
    let mut pair = Vec::new();
    for (ns, name) in spaces.iter().zip(["Ada", "Bo"]) {
        let fwd = Forwarder::start(ns.host_ip, server.addr).await;
        let origin = format!("http://{}", fwd.addr);
        let b = Browser::launch_in(
            Kind::Chromium,
            &format!("apart-{name}"),
            Some(ns),
            Some(&origin),
        )
        .await;
        b.client
            .goto(&format!("{origin}/r/apart?name={name}&autojoin=1"))
            .await
            .unwrap();
        pair.push((b, fwd));
    }
    // They are told to connect directly, cannot, and 5 s later the room is
    // on the MCU for good, saying why; both see the canvas.
    let fell_back = common::wait_until(Duration::from_secs(40), || {
        block_on_room(&server, "apart").is_some_and(|s| {
            s.mode.mode.as_str() == "mcu"
                && s.mode
                    .mcu_cause
                    .as_deref()
                    .is_some_and(|c| c.contains("did not come up"))
        })
    })
    .await;
    assert!(
        fell_back,
        "{:?}",
        block_on_room(&server, "apart").map(|s| s.mode)
    );
    for (b, _) in &pair {
        let (ok, s) = wait_stats(b, Duration::from_secs(30), |s| {
            s["mode"] == "mcu" && s["participants"] == 2 && count(s, &["framesDecoded"]) > 60
        })
        .await;
        assert!(ok, "{} on the MCU: {s:#}", b.label);
    }
    // Past the hold, it stays there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        server.room("apart").await.unwrap().mode.mode.as_str(),
        "mcu"
    );
    for (b, fwd) in pair {
        b.close().await;
        drop(fwd);
    }
}

/// No video encoder runs and next to nothing arrives from the pair.
fn rests(snap: &tessera::room::RoomSnapshot) -> bool {
    snap.video_encoders.is_empty()
        && snap.media.len() == 2
        && snap
            .media
            .iter()
            .all(|(_, m)| m.link.as_ref().is_some_and(|l| l.inbound_bps < 30_000.0))
}

fn block_on_room(server: &TestServer, room: &str) -> Option<tessera::room::RoomSnapshot> {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(server.room(room)))
}
