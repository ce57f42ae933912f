//! A room's life around its participants: a participant without a camera
//! gets a placeholder tile with its name, and a server shutdown tells every
//! client and closes every room.

mod common;

use std::time::Duration;

use common::media::{color_matches, Frame};
use common::peer::{PeerOptions, TestPeer};
use common::{init, test_config, wait_until, TestServer, SERIAL};
use tessera::layout::Rect;

/// The placeholder's grey (0x404040).
const PLACEHOLDER: u32 = 0x404040;

/// Pixels much brighter than the placeholder in the middle band of a tile:
/// the name label drawn in white.
fn bright_pixels_in_middle(frame: &Frame, r: &Rect) -> usize {
    let (y0, y1) = (r.y + r.height * 2 / 5, r.y + r.height * 3 / 5);
    let mut n = 0;
    for y in y0..y1 {
        for x in r.x..r.x + r.width {
            let i = y as usize * frame.stride + x as usize * 3;
            let (red, g, b) = (frame.data[i], frame.data[i + 1], frame.data[i + 2]);
            if red > 180 && g > 180 && b > 180 {
                n += 1;
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_less_participant_gets_a_named_placeholder_and_shutdown_tells_everyone() {
    let _serial = SERIAL.lock().await;
    init();
    let mut server = TestServer::start(test_config()).await;
    let url = server.ws_url();
    let opts = |name: &str, send_video: bool| PeerOptions {
        tone_hz: 700.0,
        send_video,
        ..PeerOptions::new("studio", name, 0xff0000)
    };
    let cam = TestPeer::join(&url, opts("cam", true)).await;
    let nocam = TestPeer::join(&url, opts("Noor", false)).await;

    let rects = common::grid_tiles(&server.config, 2);
    // The camera-less participant receives the canvas too; its tile is the
    // grey placeholder (sampled off-centre, clear of the label) with a
    // bright name label across its middle.
    let shows = |p: &TestPeer| {
        let Some(f) = p.last_frame() else {
            return false;
        };
        let t = rects[1];
        let corner = f.rgb_at(t.x + t.width / 6, t.y + t.height / 6);
        color_matches(f.rgb_at(rects[0].center().0, rects[0].center().1), 0xff0000)
            && color_matches(corner, PLACEHOLDER)
            && bright_pixels_in_middle(&f, &t) > 40
            && bright_pixels_in_middle(&f, &rects[0]) == 0
    };
    let ok = wait_until(Duration::from_secs(20), || shows(&cam) && shows(&nocam)).await;
    let f = nocam.last_frame().or(cam.last_frame());
    assert!(
        ok,
        "no named placeholder: {:?}",
        f.map(|f| (
            f.rgb_at(
                rects[1].x + rects[1].width / 6,
                rects[1].y + rects[1].height / 6
            ),
            bright_pixels_in_middle(&f, &rects[1])
        ))
    );

    // Keep what the camera-less participant saw, for a person to look at.
    if let Some(f) = nocam.last_frame() {
        let path = concat!(env!("CARGO_TARGET_TMPDIR"), "/placeholder-canvas.ppm");
        std::fs::write(path, f.to_ppm()).unwrap();
    }

    // Video tiles carry their participant's name along the bottom edge.
    let f = nocam.last_frame().unwrap();
    let r = rects[0];
    let mut label_pixels = 0;
    for y in r.y + r.height * 4 / 5..r.y + r.height {
        for x in r.x..r.x + r.width / 2 {
            let i = y as usize * f.stride + x as usize * 3;
            if f.data[i] > 200 && f.data[i + 1] > 200 && f.data[i + 2] > 200 {
                label_pixels += 1;
            }
        }
    }
    assert!(
        label_pixels > 20,
        "no name label on the video tile ({label_pixels} white pixels)"
    );

    // Shutdown: both are told, and the room is gone.
    server.shutdown();
    for p in [&cam, &nocam] {
        let left = p
            .wait_message(Duration::from_secs(10), |m| m["type"] == "left")
            .await
            .unwrap_or_else(|| panic!("{} was not told", p.opts.name));
        assert!(
            left["reason"].as_str().unwrap().contains("shutting down"),
            "{left}"
        );
    }
    assert!(
        wait_until(Duration::from_secs(10), || server.registry.room_count()
            == 0)
        .await
    );
}
