//! Screen sharing and tile decorations on a live room: a shared screen
//! fills the `screen` slot; borders, the active speaker's highlight, the
//! muted marker and `fit = "crop"` are drawn into the canvas.

mod common;

use std::time::Duration;

use common::media::color_matches;
use common::peer::{PeerOptions, TestPeer};
use common::{init, layout_text_tiles, layout_tiles, test_config, wait_until, TestServer, SERIAL};
use tessera::layout::decor::marker_side;
use tessera::layout::{Member, Rect};

const RED: u32 = 0xff0000;
const GREEN: u32 = 0x00ff00;
const BLUE: u32 = 0x0000ff;
const YELLOW: u32 = 0xffff00;

/// Waits until `viewer`'s canvas shows each colour at its tile's centre.
async fn wait_for_tiles(viewer: &TestPeer, want: &[(Rect, u32)], secs: u64) -> bool {
    let shows = || {
        viewer.last_frame().is_some_and(|f| {
            want.iter()
                .all(|(r, c)| color_matches(f.rgb_at(r.center().0, r.center().1), *c))
        })
    };
    wait_until(Duration::from_secs(secs), shows).await
}

fn seen(viewer: &TestPeer, rects: &[Rect]) -> Vec<(u8, u8, u8)> {
    viewer
        .last_frame()
        .map(|f| {
            rects
                .iter()
                .map(|r| f.rgb_at(r.center().0, r.center().1))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_screen_fills_the_screen_slot_with_the_teacher_over_it() {
    let _serial = SERIAL.lock().await;
    init();
    let mut config = test_config();
    config.layouts.default = "screen".into();
    let server = TestServer::start(config).await;
    let url = server.ws_url();
    let teacher = TestPeer::join(
        &url,
        PeerOptions {
            role: Some("teacher"),
            screen_color: Some(BLUE),
            ..PeerOptions::new("share", "teacher", RED)
        },
    )
    .await;
    let s1 = TestPeer::join(&url, PeerOptions::new("share", "s1", GREEN)).await;
    let s2 = TestPeer::join(&url, PeerOptions::new("share", "s2", YELLOW)).await;

    // Not shared yet: the blue screen is nowhere, the three cameras are.
    let mut members = vec![Member::default(); 3];
    members[0].teacher = true;
    let before = layout_tiles(&server.config, "screen", &members);
    let cameras: Vec<_> = before.iter().copied().zip([RED, GREEN, YELLOW]).collect();
    assert!(
        wait_for_tiles(&s1, &cameras, 30).await,
        "before sharing: {:?} for {before:?}",
        seen(&s1, &before)
    );

    // Sharing: the screen comes right after its owner.
    teacher.share_screen(true);
    let mut members = vec![Member::default(); 4];
    members[0].teacher = true;
    members[1].screen = true;
    let during = layout_tiles(&server.config, "screen", &members);
    let (screen, pip) = (during[1], during[0]);
    assert!(
        pip.overlaps(&screen) && screen.width > 2 * pip.width,
        "{during:?}"
    );
    // The screen's centre, away from the teacher's picture-in-picture.
    let screen_spot = Rect {
        x: screen.x + screen.width / 8,
        y: screen.y + screen.height / 8,
        width: 2,
        height: 2,
    };
    let want = [
        (screen_spot, BLUE),
        (pip, RED),
        (during[2], GREEN),
        (during[3], YELLOW),
    ];
    assert!(
        wait_for_tiles(&s2, &want, 10).await,
        "sharing: {:?} for {want:?}",
        seen(&s2, &want.map(|w| w.0))
    );
    if let Some(f) = s2.last_frame() {
        let path = concat!(env!("CARGO_TARGET_TMPDIR"), "/screen-share-canvas.ppm");
        std::fs::write(path, f.to_ppm()).unwrap();
    }
    let list = s1
        .wait_message(Duration::from_secs(5), |m| {
            m["type"] == "participants"
                && m["participants"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|p| p["sharing"] == true))
        })
        .await;
    assert!(list.is_some(), "others are told who shares");

    // A student without a screen m-line cannot share.
    s1.share_screen(true);
    let refused = s1
        .wait_message(Duration::from_secs(5), |m| {
            m["type"] == "error" && m["message"].as_str().unwrap_or("").contains("screen")
        })
        .await;
    assert!(refused.is_some(), "{:?}", s1.messages());

    // Stopping: back to the cameras alone.
    teacher.share_screen(false);
    assert!(
        wait_for_tiles(&s1, &cameras, 10).await,
        "after sharing: {:?} for {before:?}",
        seen(&s1, &before)
    );
    for p in [teacher, s1, s2] {
        p.leave().await;
    }
}

/// A grid with thick magenta borders, a yellow highlight and cropped pictures.
const FRAMED: &str = r##"
description = "framed"
gap = 4
border = 10
border_colour = "#ff00ff"
highlight = "#ffff00"
[[group]]
[[group.region]]
x = 0.0
y = 0.0
w = 1.0
h = 1.0
arrange = "grid"
fit = "crop"
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn borders_highlight_muted_marker_and_crop_are_drawn() {
    let _serial = SERIAL.lock().await;
    init();
    let dir = std::env::temp_dir().join(format!("tessera-framed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("framed.toml"), FRAMED).unwrap();
    let mut config = test_config();
    config.layouts.dir = dir.clone();
    config.layouts.default = "framed".into();
    let server = TestServer::start(config).await;
    let url = server.ws_url();
    // The peers send 4:3 pictures into 16:9 tiles.
    let talker = TestPeer::join(
        &url,
        PeerOptions {
            tone_hz: 700.0,
            ..PeerOptions::new("framed", "talker", BLUE)
        },
    )
    .await;
    let quiet = TestPeer::join(&url, PeerOptions::new("framed", "quiet", GREEN)).await;
    let tiles = layout_text_tiles(&server.config, FRAMED, &[Member::default(); 2]);
    let edge = |r: Rect| Rect {
        x: r.x + 5,
        y: r.y + r.height / 2,
        width: 0,
        height: 0,
    };
    // Crop: the picture reaches the tile's sides (letterboxed, 4:3 in
    // 16:9 leaves black bars there); the border is drawn over its edge.
    let near_side = |r: Rect| Rect {
        x: r.x + 10 + 8,
        y: r.y + r.height / 2,
        width: 0,
        height: 0,
    };
    let want = [
        (tiles[0], BLUE),
        (tiles[1], GREEN),
        (near_side(tiles[0]), BLUE),
        (near_side(tiles[1]), GREEN),
        (edge(tiles[0]), YELLOW),
        (edge(tiles[1]), 0xff00ff),
    ];
    let all: Vec<Rect> = want.iter().map(|w| w.0).collect();
    assert!(
        wait_for_tiles(&quiet, &want, 30).await,
        "decorations: {:?} for {want:?}",
        seen(&quiet, &all)
    );

    // The quiet one mutes: a red marker appears in its tile's top-right corner.
    let side = marker_side(tiles[1].height);
    let marker = Rect {
        x: tiles[1].x + tiles[1].width - 14 - side,
        y: tiles[1].y + 14,
        width: side,
        height: side,
    };
    let reddish = |f: &common::media::Frame| {
        let (r, g, _) = f.mean_in(marker.x, marker.y, marker.width, marker.height);
        r > 150 && g < 150
    };
    assert!(
        quiet.last_frame().is_some_and(|f| !reddish(&f)),
        "a marker before muting"
    );
    quiet.mute(true);
    let marked = wait_until(Duration::from_secs(5), || {
        talker.last_frame().is_some_and(|f| reddish(&f))
    })
    .await;
    let mean = talker
        .last_frame()
        .map(|f| f.mean_in(marker.x, marker.y, marker.width, marker.height));
    assert!(marked, "no muted marker at {marker:?}: {mean:?}");
    if let Some(f) = talker.last_frame() {
        let path = concat!(env!("CARGO_TARGET_TMPDIR"), "/decorated-canvas.ppm");
        std::fs::write(path, f.to_ppm()).unwrap();
    }
    let snapshot = server.room("framed").await.unwrap();
    assert!(snapshot.participants.iter().any(|p| p.muted));
    quiet.mute(false);
    assert!(
        wait_until(Duration::from_secs(5), || {
            talker.last_frame().is_some_and(|f| !reddish(&f))
        })
        .await,
        "the marker stays after unmuting"
    );
    talker.leave().await;
    quiet.leave().await;
}
