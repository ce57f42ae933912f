//! Lossy and narrow links, repaired: a Chromium receiver whose every
//! packet crosses a link that loses 5 % each way (an impairment relay in
//! front of a real coturn, the client relay-only), and a Chromium sender
//! whose uplink is capped at 150 kbit/s (`tc tbf` in a network
//! namespace). Retransmission, Opus in-band FEC and the feedback the
//! sender's congestion control needs keep both in the lesson.

mod common;

use std::time::{Duration, Instant};

use common::browser::{wait_stats, Browser, Kind};
use common::coturn::{Coturn, TURN_SECRET};
use common::impair::{ImpairRelay, Impairment};
use common::netns::{Forwarder, Namespace};
use common::peer::{PeerOptions, TestPeer};
use common::{grid_tiles, init, test_config, TestServer, SERIAL};
use serde_json::Value;

/// The canvas rate of these tests: the lossy receiver must keep 25 fps of it.
const FPS: u32 = 30;

/// Starts watching the canvas frames the page decodes, from now: every
/// 50 ms it reads the decoded count, and keeps the longest time the count
/// stood still (a freeze), and the frames presented on screen.
const WATCH_FRAMES: &str = r#"
    const v = document.getElementById('canvas');
    const decoded = async () => {
        let n = 0;
        (await window.tessera.pc.getStats()).forEach((r) => {
            if (r.type === 'inbound-rtp' && r.kind === 'video') n = r.framesDecoded || 0;
        });
        return n;
    };
    const w = { presented: 0, maxGap: 0, count: await decoded(), last: performance.now() };
    window.frameWatch = w;
    w.timer = setInterval(async () => {
        const n = await decoded(), now = performance.now();
        if (n !== w.count) {
            w.maxGap = Math.max(w.maxGap, now - w.last);
            w.count = n;
            w.last = now;
        }
    }, 50);
    const tick = () => {
        if (window.frameWatch !== w) return;
        w.presented += 1;
        v.requestVideoFrameCallback(tick);
    };
    v.requestVideoFrameCallback(tick);
    return true;
"#;

/// What the watch saw, with the wait since the last decoded frame
/// counted as a gap.
const READ_FRAMES: &str = r#"
    const w = window.frameWatch;
    clearInterval(w.timer);
    return { presented: w.presented, maxGap: Math.max(w.maxGap, performance.now() - w.last) };
"#;

/// Retransmission figures of the page's connection, both ways.
const REPAIRS: &str = r#"
    const out = { nacksSent: 0, rtxReceived: 0, nacksReceived: 0, rtxSent: 0, plisSent: 0 };
    const stats = await window.tessera.pc.getStats();
    const codec = (id) => (stats.get(id) || {}).mimeType;
    stats.forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') {
            out.nacksSent += r.nackCount || 0;
            out.rtxReceived += r.retransmittedPacketsReceived || 0;
            out.plisSent += r.pliCount || 0;
        } else if (r.type === 'inbound-rtp' && r.kind === 'audio') {
            out.audioLost = r.packetsLost;
            out.audioFec = r.fecPacketsReceived;
            out.audioCodec = codec(r.codecId);
            out.concealmentEvents = r.concealmentEvents;
            out.silentConcealed = r.silentConcealedSamples;
            out.accelerated = r.removedSamplesForAcceleration;
            out.decelerated = r.insertedSamplesForDeceleration;
        } else if (r.type === 'outbound-rtp' && r.kind === 'video') {
            out.nacksReceived += r.nackCount || 0;
            out.rtxSent += r.retransmittedPacketsSent || 0;
        } else if (r.type === 'outbound-rtp' && r.kind === 'audio') {
            out.audioCodecSent = codec(r.codecId);
        }
    });
    return out;
"#;

/// The RED payload type and its blocks (`a=fmtp`) in the page's audio, as
/// our answer gave them.
const ANSWERED_RED: &str = r#"
    const sdp = window.tessera.pc.remoteDescription.sdp;
    const audio = sdp.split('m=')[1] || '';
    const pt = (audio.match(/a=rtpmap:(\d+) red\/48000\/2/i) || [])[1];
    if (!pt) return null;
    const blocks = (audio.match(new RegExp('a=fmtp:' + pt + ' ([^\r\n]*)')) || [])[1];
    return { pt: Number(pt), blocks: blocks || null };
"#;

/// Audio packets the server sent `name` with a redundant block (RED);
/// None when its offer had no RED.
async fn redundant_audio(server: &TestServer, room: &str, name: &str) -> Option<u64> {
    let snapshot = server.room(room).await?;
    let id = &snapshot.participants.iter().find(|p| p.name == name)?.id;
    let (_, figures) = snapshot.media.iter().find(|(i, _)| i == id)?;
    figures.downlink?.redundant_audio
}

/// Frames the page's camera sent, and their size now.
const SENT_FRAMES: &str = r#"
    let out = {};
    (await window.tessera.pc.getStats()).forEach((r) => {
        if (r.type === 'outbound-rtp' && r.kind === 'video' && r.framesSent) {
            out = { framesSent: r.framesSent, width: r.frameWidth, height: r.frameHeight,
                    limitation: r.qualityLimitationReason };
        }
    });
    return out;
"#;

/// The page's estimate of what its uplink carries.
const OUTGOING_ESTIMATE: &str = r#"
    let out = null;
    (await window.tessera.pc.getStats()).forEach((r) => {
        if (r.type === 'candidate-pair' && r.nominated && r.availableOutgoingBitrate) {
            out = r.availableOutgoingBitrate;
        }
    });
    return out;
"#;

fn delta(before: &Value, after: &Value, k: &str) -> f64 {
    after[k].as_f64().unwrap_or(0.0) - before[k].as_f64().unwrap_or(0.0)
}

/// Three GStreamer participants with a picture and a voice each.
async fn three_peers(server: &TestServer, room: &str) -> [TestPeer; 3] {
    let mut teacher = PeerOptions::new(room, "teacher", 0x2040c0);
    teacher.role = Some("teacher");
    teacher.tone_hz = 440.0;
    teacher.pattern = Some("ball");
    let teacher = TestPeer::join(&server.ws_url(), teacher).await;
    let mut student = PeerOptions::new(room, "student", 0xc08020);
    student.tone_hz = 660.0;
    let student = TestPeer::join(&server.ws_url(), student).await;
    let mut third = PeerOptions::new(room, "third", 0x20c040);
    third.tone_hz = 880.0;
    let third = TestPeer::join(&server.ws_url(), third).await;
    [teacher, student, third]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_losing_five_percent_each_way_keeps_the_picture_and_the_voice() {
    let _serial = SERIAL.lock().await;
    init();
    let coturn = Coturn::start();
    let lossy = ImpairRelay::start(
        "127.0.0.1:0".parse().unwrap(),
        ([127, 0, 0, 1], coturn.port).into(),
        Impairment {
            loss: 0.05,
            delay: Duration::from_millis(15),
            jitter: Duration::from_millis(10),
            seed: 23,
        },
    )
    .await;
    let mut config = test_config();
    config.media.framerate = FPS;
    // The only TURN server the clients know is the lossy way to coturn.
    config.ice.turn = vec![format!("turn:{}?transport=udp", lossy.addr)];
    config.ice.turn_secret = TURN_SECRET.into();
    let server = TestServer::start(config).await;
    let room = "lossy";
    let peers = three_peers(&server, room).await;

    let b = Browser::launch(Kind::Chromium, "chromium-lossy").await;
    b.client
        .goto(&format!(
            "http://{}/r/{room}?name=lossy&codec=vp8&autojoin=1&relay=1",
            server.addr
        ))
        .await
        .unwrap();
    let (ok, s) = wait_stats(&b, Duration::from_secs(60), |s| {
        s["framesDecoded"].as_u64().unwrap_or(0) >= 30
            && s["participants"] == 4
            && s["localCandidateType"] == "relay"
    })
    .await;
    assert!(
        ok,
        "the lossy page joins through the relay: {s}\n{}",
        coturn.log()
    );

    // The first 5 s are the picture's to settle; then 20 s are watched.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(b.run(WATCH_FRAMES).await, Value::Bool(true));
    let (before, repairs_before) = (b.stats().await, b.run(REPAIRS).await);
    let lost_before = lossy.counts.lost.load(std::sync::atomic::Ordering::Relaxed);
    let red_before = redundant_audio(&server, room, "lossy").await;
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let secs = start.elapsed().as_secs_f64();
    let red_sent = redundant_audio(&server, room, "lossy").await;
    let answered_red = b.run(ANSWERED_RED).await;
    let (frames, after, repairs) = (
        b.run(READ_FRAMES).await,
        b.stats().await,
        b.run(REPAIRS).await,
    );
    let lost = lossy.counts.lost.load(std::sync::atomic::Ordering::Relaxed) - lost_before;
    b.screenshot("lossy-receiver").await;

    let fps = delta(&before, &after, "framesDecoded") / secs;
    let presented = frames["presented"].as_f64().unwrap_or(0.0) / secs;
    let max_gap = frames["maxGap"].as_f64().unwrap_or(f64::MAX);
    let samples = delta(&before, &after, "audioSamples");
    let concealed = delta(&before, &after, "concealedSamples") / samples.max(1.0);
    let report = format!(
        "{fps:.1} fps decoded, {presented:.1} presented, longest decoding gap {max_gap:.0} ms, \
         {:.2} % concealed, relay lost {lost} packets ({:.1} % of all); repairs {repairs} \
         (before {repairs_before}); tier {} (before {}); RED answered {answered_red}, \
         audio packets sent with a redundant block {red_before:?} then {red_sent:?}",
        concealed * 100.0,
        lossy.counts.loss() * 100.0,
        after["tier"],
        before["tier"],
    );
    eprintln!("lossy receiver: {report}");
    // The link really lost what it should, each way.
    assert!(
        (0.035..=0.065).contains(&lossy.counts.loss()) && lost > 100,
        "the relay's loss: {report}"
    );
    assert!(fps >= 25.0, "at least 25 fps decoded: {report}");
    assert!(max_gap <= 500.0, "no freeze over 500 ms: {report}");
    assert!(
        concealed < 0.03,
        "under 3 % of the audio concealed: {report}"
    );
    // Repaired both ways: the page asked for lost packets and the server
    // resent them; the server asked for the page's and the page resent.
    assert!(
        delta(&repairs_before, &repairs, "rtxReceived") > 0.0
            && delta(&repairs_before, &repairs, "rtxSent") > 0.0,
        "retransmission both ways: {report}"
    );
    // The audio we send carries in-band FEC: most of its 50 packets a second.
    assert!(
        delta(&repairs_before, &repairs, "audioFec") >= 25.0 * secs,
        "Opus FEC in what we send: {report}"
    );
    // Chromium offers RED around Opus: the answer takes it, saying its
    // blocks are Opus, and the audio we send carries the packet before
    // in most of its 50 packets a second.
    assert!(
        answered_red["pt"].is_u64()
            && answered_red["blocks"].as_str().is_some_and(|b| {
                let opus: Vec<&str> = b.split('/').collect();
                opus.len() == 2 && opus[0] == opus[1]
            }),
        "RED answered with its blocks: {report}"
    );
    let red = red_sent
        .unwrap_or(0)
        .saturating_sub(red_before.unwrap_or(0));
    assert!(
        red as f64 >= 25.0 * secs,
        "redundant audio packets sent: {report}"
    );
    // Everyone else carries on: the GStreamer peers see the canvas.
    for p in &peers {
        assert!(p.frames() > 100, "{} decoded {}", p.opts.name, p.frames());
    }
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_on_a_150_kbit_uplink_keeps_its_tile_moving() {
    let _serial = SERIAL.lock().await;
    init();
    let ns = Namespace::create();
    let mut config = test_config();
    config.media.framerate = FPS;
    // A tile large enough that the page sends more than the cap.
    config.media.canvas_width = 1280;
    config.media.canvas_height = 720;
    config.ice.addresses.push(std::net::IpAddr::V4(ns.host_ip));
    let server = TestServer::start(config.clone()).await;
    let fwd = Forwarder::start(ns.host_ip, server.addr).await;
    let room = "uplink";
    let [teacher, student, third] = three_peers(&server, room).await;

    let origin = format!("http://{}", fwd.addr);
    let b = Browser::launch_in(Kind::Chromium, "chromium-uplink", Some(&ns), Some(&origin)).await;
    b.client
        .goto(&format!(
            "{origin}/r/{room}?name=narrow&codec=vp8&autojoin=1"
        ))
        .await
        .unwrap();
    let (ok, s) = wait_stats(&b, Duration::from_secs(60), |s| {
        s["framesDecoded"].as_u64().unwrap_or(0) >= 30 && s["participants"] == 4
    })
    .await;
    assert!(ok, "the page joins: {s}");

    // The sender's tile: fourth in join order on the grid.
    let tile = grid_tiles(&config, 4)[3];
    let region = (tile.x, tile.y, tile.width, tile.height);
    let rate = |a: &Value, b: &Value, secs: f64| delta(a, b, "sentBytes") * 8.0 / secs;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let open = b.stats().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let open_end = b.stats().await;
    let open_rate = rate(&open, &open_end, 3.0);
    let open_estimate = b.run(OUTGOING_ESTIMATE).await;

    ns.cap_uplink(150);
    // Its congestion control has 5 s to find the narrow link.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let changes_before = teacher.watch_region(region);
    // A tile whose picture stands still (the student sends one colour),
    // watched the same way: the count of changes tells motion from none.
    let still = grid_tiles(&config, 4)[1];
    let still_region = (still.x, still.y, still.width, still.height);
    third.watch_region(still_region);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let changes_before = teacher.watch_region(region).max(changes_before);
    let (before, sent_before) = (b.stats().await, b.run(SENT_FRAMES).await);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let secs = start.elapsed().as_secs_f64();
    let changes = teacher.watch_region(region) - changes_before;
    let still_changes = third.watch_region(still_region);
    let after = b.stats().await;
    let capped_rate = rate(&before, &after, secs);
    let capped_estimate = b.run(OUTGOING_ESTIMATE).await;
    let sent = b.run(SENT_FRAMES).await;
    let sent_fps = delta(&sent_before, &sent, "framesSent") / secs;
    let change_fps = changes as f64 / secs;
    let report = format!(
        "sent {:.0} kbit/s open, {:.0} kbit/s capped; its estimate of its uplink \
         {open_estimate} bit/s open, {capped_estimate} capped; its tile changed \
         {change_fps:.1} times a second; it sent {sent_fps:.1} fps ({sent})",
        open_rate / 1000.0,
        capped_rate / 1000.0
    );
    eprintln!("narrow uplink: {report}");
    if let Some(f) = teacher.last_frame() {
        let _ = std::fs::write(
            std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("uplink-canvas.ppm"),
            f.to_ppm(),
        );
    }
    // The cap bit: the page sent far more before it, and fits under it now.
    assert!(open_rate > 250_000.0, "{report}");
    assert!(capped_rate < 160_000.0, "{report}");
    // Its congestion control found the narrow link from our feedback.
    assert!(
        capped_estimate.as_f64().is_some_and(|e| e < 200_000.0),
        "{report}"
    );
    assert!(change_fps >= 10.0, "the tile keeps moving: {report}");
    assert!(
        (still_changes as f64) < 2.0 * secs,
        "a still tile counted {still_changes} changes: the count means nothing"
    );
    for p in [&student, &third] {
        assert!(p.frames() > 100, "{} decoded {}", p.opts.name, p.frames());
    }
    b.close().await;
}
