//! Peer-to-peer with real browsers: two headless Chromium clients in a
//! room of two connect directly and the server's media for them rests; a
//! third participant moves the room to the MCU without either losing the
//! picture or the sound for long; when it leaves, the pair goes direct
//! again after the hold.

mod common;

use std::time::{Duration, Instant};

use common::browser::{wait_stats, Browser, Kind};
use common::media::color_matches;
use common::peer::{PeerOptions, TestPeer};
use common::{init, test_config, TestServer, SERIAL};
use serde_json::Value;
use tessera::config::P2pPolicy;

const ROOM: &str = "pair";
/// The third participant's colour.
const RED: u32 = 0xd02020;

fn frames(s: &Value, path: &[&str]) -> u64 {
    path.iter().fold(s, |v, k| &v[*k]).as_u64().unwrap_or(0)
}

/// The pair sees each other directly: the direct connection's picture is
/// shown and moving, over host candidates on loopback.
fn direct_and_moving(s: &Value, at_least: u64) -> bool {
    s["mode"] == "p2p"
        && s["direct"]["shown"] == true
        && frames(s, &["direct", "framesDecoded"]) >= at_least
        && s["direct"]["remoteCandidateType"] == "host"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_go_direct_a_third_moves_them_to_the_mcu_and_they_go_back_after_the_hold() {
    let _serial = SERIAL.lock().await;
    init();
    let mut config = test_config();
    config.rooms.p2p = P2pPolicy::Auto;
    config.rooms.p2p_hold_seconds = 2;
    let server = TestServer::start(config).await;
    let mut pair = Vec::new();
    for name in ["Ada", "Bo"] {
        let b = Browser::launch(Kind::Chromium, &format!("p2p-{name}")).await;
        b.client
            .goto(&format!(
                "http://{}/r/{ROOM}?name={name}&autojoin=1",
                server.addr
            ))
            .await
            .unwrap();
        pair.push(b);
    }

    // Direct: each decodes the other's camera over the direct connection.
    for b in &pair {
        let (ok, s) = wait_stats(b, Duration::from_secs(30), |s| direct_and_moving(s, 30)).await;
        assert!(ok, "{}: {s:#}", b.label);
    }
    let snap = server.room(ROOM).await.unwrap();
    assert_eq!(snap.mode.mode.as_str(), "p2p");
    // The server's media for the pair rests: no video encoder once the
    // last one lingered out, and almost nothing arrives from either.
    let rested = common::wait_until(Duration::from_secs(10), || room_rests(&server)).await;
    let snap = server.room(ROOM).await.unwrap();
    assert!(
        rested,
        "encoders {:?}, inbound {:?}",
        snap.video_encoders,
        snap.media
            .iter()
            .map(|(_, m)| m.link.as_ref().map(|l| l.inbound_bps))
            .collect::<Vec<_>>()
    );
    for b in &pair {
        b.screenshot(&format!("p2p-direct-{}", b.label)).await;
    }

    // A third joins (a client that cannot connect directly): the room is
    // on the MCU at once; both go on seeing a moving picture and hearing
    // sound through the switch, and then show the newcomer's tile.
    let mut before = Vec::new();
    for b in &pair {
        b.run("window.tessera.resetFrameGap(); return null;").await;
        before.push(b.stats().await);
    }
    let joined = Instant::now();
    let third = TestPeer::join(&server.ws_url(), PeerOptions::new(ROOM, "Cy", RED)).await;
    let on_mcu =
        common::wait_until(Duration::from_secs(5), || server_mode_is(&server, "mcu")).await;
    assert!(on_mcu, "still {:?}", server.room(ROOM).await.unwrap().mode);
    let rects = common::grid_tiles(&server.config, 3);
    let (cx, cy) = rects[2].center();
    for (b, before) in pair.iter().zip(&before) {
        let server_frames = frames(before, &["framesDecoded"]);
        let (ok, s) = wait_stats(b, Duration::from_secs(15), |s| {
            s["mode"] == "mcu" && frames(s, &["framesDecoded"]) > server_frames + 15
        })
        .await;
        assert!(ok, "{} on the MCU: {s:#}", b.label);
        let mut shows = false;
        for _ in 0..50 {
            if b.canvas_rgb(cx, cy)
                .await
                .is_some_and(|rgb| color_matches(rgb, RED))
            {
                shows = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        b.screenshot(&format!("p2p-mcu-{}", b.label)).await;
        assert!(shows, "{} does not show the newcomer's tile", b.label);
        // No more than a second without a new picture, and no more than
        // 300 ms of the sound played concealed, through the switch.
        let gap = s["frameGapMs"].as_u64().unwrap_or(u64::MAX);
        assert!(
            gap <= 1000,
            "{}: {gap} ms without a new frame: {s:#}",
            b.label
        );
        let concealed = frames(&s, &["concealedSamples"]) - frames(before, &["concealedSamples"]);
        assert!(
            concealed <= 48_000 * 300 / 1000,
            "{}: {concealed} samples concealed across the switch",
            b.label
        );
        eprintln!(
            "{}: on the MCU {:?} after the join; longest wait for a frame {gap} ms; {concealed} samples concealed",
            b.label,
            joined.elapsed()
        );
    }

    // The third leaves: after the 2 s hold the pair is direct again.
    let left = Instant::now();
    third.leave().await;
    for b in &pair {
        let direct_before = frames(&b.stats().await, &["direct", "framesDecoded"]);
        let (ok, s) = wait_stats(b, Duration::from_secs(30), |s| {
            direct_and_moving(s, direct_before + 30)
        })
        .await;
        assert!(ok, "{} back to direct: {s:#}", b.label);
    }
    assert!(left.elapsed() >= Duration::from_secs(2));
    assert_eq!(server.room(ROOM).await.unwrap().mode.mode.as_str(), "p2p");
    for b in pair {
        b.close().await;
    }
}

/// Whether the room, checked from a blocking closure, has no video
/// encoder and gets next to nothing from its members.
fn room_rests(server: &TestServer) -> bool {
    let Some(snap) = block_on_room(server) else {
        return false;
    };
    snap.video_encoders.is_empty()
        && snap.media.len() == 2
        && snap
            .media
            .iter()
            .all(|(_, m)| m.link.as_ref().is_some_and(|l| l.inbound_bps < 30_000.0))
}

fn server_mode_is(server: &TestServer, mode: &str) -> bool {
    block_on_room(server).is_some_and(|s| s.mode.mode.as_str() == mode)
}

fn block_on_room(server: &TestServer) -> Option<tessera::room::RoomSnapshot> {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(server.room(ROOM)))
}
