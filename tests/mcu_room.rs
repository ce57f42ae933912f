//! End to end over real WebRTC: four GStreamer peers in one room, three
//! receiving VP8 and one H.264, three talking (each a distinct tone) and one
//! listening. Checks the composited canvas (each peer's colour in its grid
//! tile), mix-minus audio (the others' tones, not one's own; the listener
//! hears all), keyframes on PLI, re-flow after an abrupt drop, and full
//! teardown.

mod common;

use std::time::Duration;

use common::media::{color_matches, tone_power};
use common::peer::{PeerOptions, SendCodec, TestPeer};
use common::{init, live_elements, test_config, wait_until, TestServer, SERIAL};
use tessera::layout::Rect;
use tessera::media::CodecFamily;

const RED: u32 = 0xff0000;
const GREEN: u32 = 0x00ff00;
const BLUE: u32 = 0x0000ff;
const YELLOW: u32 = 0xffff00;

fn opts(
    room: &str,
    name: &str,
    codec: SendCodec,
    ask: Option<&'static str>,
    color: u32,
    tone_hz: f64,
) -> PeerOptions {
    PeerOptions {
        codec,
        ask,
        tone_hz,
        ..PeerOptions::new(room, name, color)
    }
}

fn tiles(server: &TestServer, n: usize) -> Vec<Rect> {
    common::grid_tiles(&server.config, n)
}

/// True when `peer`'s latest canvas shows `colors[i]` at the centre of tile i.
fn canvas_shows(peer: &TestPeer, rects: &[Rect], colors: &[u32]) -> bool {
    let Some(frame) = peer.last_frame() else {
        return false;
    };
    rects.iter().zip(colors).all(|(r, c)| {
        let (x, y) = r.center();
        color_matches(frame.rgb_at(x, y), *c)
    })
}

fn describe_canvas(peer: &TestPeer, rects: &[Rect]) -> String {
    match peer.last_frame() {
        None => format!("{}: no frame", peer.opts.name),
        Some(f) => format!(
            "{}: {}x{} frames={} centres={:?}",
            peer.opts.name,
            f.width,
            f.height,
            peer.frames(),
            rects
                .iter()
                .map(|r| f.rgb_at(r.center().0, r.center().1))
                .collect::<Vec<_>>()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_composite_mix_minus_pli_reflow_and_teardown() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(test_config()).await;
    let baseline = live_elements().len();
    let url = server.ws_url();
    let room = "lesson";

    let a = TestPeer::join(&url, opts(room, "ada", SendCodec::Vp8, None, RED, 500.0)).await;
    let b = TestPeer::join(
        &url,
        opts(room, "bo", SendCodec::Vp8, Some("vp8"), GREEN, 1700.0),
    )
    .await;
    let c = TestPeer::join(
        &url,
        opts(room, "cy", SendCodec::H264, Some("h264"), BLUE, 3100.0),
    )
    .await;
    // dee listens without talking: it hears the shared encode of the full mix.
    let d = TestPeer::join(&url, opts(room, "dee", SendCodec::Vp8, None, YELLOW, 0.0)).await;
    let peers = [&a, &b, &c, &d];

    // Every peer decodes the canvas at the configured size, in its own codec,
    // with each participant's colour in the tile the grid gives it.
    let rects = tiles(&server, 4);
    let colors = [RED, GREEN, BLUE, YELLOW];
    let ok = wait_until(Duration::from_secs(30), || {
        peers
            .iter()
            .all(|p| canvas_shows(p, &rects, &colors) && p.frames() > 30)
    })
    .await;
    assert!(
        ok,
        "canvas did not show all three tiles: {}",
        peers
            .iter()
            .map(|p| describe_canvas(p, &rects))
            .collect::<Vec<_>>()
            .join("; ")
    );
    for p in peers {
        let f = p.last_frame().unwrap();
        assert_eq!((f.width, f.height), (640, 360), "{}", p.opts.name);
        assert_eq!(p.participant_count(), Some(4), "{}", p.opts.name);
    }
    assert!(
        a.video_caps().unwrap().contains("VP8"),
        "{:?}",
        a.video_caps()
    );
    assert!(
        b.video_caps().unwrap().contains("VP8"),
        "{:?}",
        b.video_caps()
    );
    assert!(
        c.video_caps().unwrap().contains("H264"),
        "{:?}",
        c.video_caps()
    );
    let snap = server.room(room).await.unwrap();
    assert_eq!(snap.encoders, vec![CodecFamily::Vp8, CodecFamily::H264]);

    // Each peer was told the size its tile is shown at.
    for (p, r) in peers.iter().zip(&rects) {
        let tile = p
            .messages()
            .into_iter()
            .rev()
            .find(|m| m["type"] == "tile")
            .unwrap_or_else(|| panic!("{} got no tile hint", p.opts.name));
        assert_eq!(
            (tile["width"].as_u64(), tile["height"].as_u64()),
            (Some(r.width.into()), Some(r.height.into())),
            "{tile}"
        );
        assert_eq!(tile["framerate"], 15);
        assert!(tile["maxBitrate"].as_u64().unwrap() >= 60_000, "{tile}");
    }

    // The server's ICE candidates use the configured UDP range.
    for p in peers {
        let ports: Vec<u16> = p
            .messages()
            .iter()
            .filter(|m| m["type"] == "ice")
            .filter_map(|m| {
                // candidate:<foundation> <component> <transport> <priority> <address> <port> ...
                let fields: Vec<&str> = m["candidate"].as_str()?.split_whitespace().collect();
                fields.get(2)?.eq_ignore_ascii_case("udp").then_some(())?;
                fields.get(5)?.parse().ok()
            })
            .collect();
        assert!(!ports.is_empty(), "{} got no candidates", p.opts.name);
        let (lo, hi) = common::TEST_RTP_PORTS;
        assert!(
            ports.iter().all(|port| (lo..=hi).contains(port)),
            "{}: {ports:?}",
            p.opts.name
        );
    }

    // Mix-minus: each hears the other two tones and not its own.
    assert!(
        wait_until(Duration::from_secs(10), || peers
            .iter()
            .all(|p| p.audio_samples() > 48000 * 2))
        .await,
        "audio did not arrive"
    );
    // No tone is near a sum or difference of two others (intermodulation
    // through the Opus codec would otherwise look like a leak).
    let tones = [500.0, 1700.0, 3100.0];
    let talkers = [&a, &b, &c];
    // What is wrong with what each talker hears over the last second.
    let mix_minus = |i: usize, p: &TestPeer| -> Option<String> {
        let audio = p.recent_audio(1.0);
        let powers: Vec<f64> = tones
            .iter()
            .map(|f| tone_power(&audio, *f, 48000.0))
            .collect();
        let own = powers[i];
        let name = &p.opts.name;
        (0..tones.len()).filter(|j| *j != i).find_map(|j| {
            if powers[j] <= 1e-4 {
                Some(format!(
                    "{name} should hear tone {} Hz: powers {powers:?}",
                    tones[j]
                ))
            } else if own >= powers[j] / 100.0 {
                Some(format!("{name} hears its own tone: powers {powers:?}"))
            } else {
                None
            }
        })
    };
    // A talker hears itself in the shared mix until the server has seen it
    // talk and built its own mix-minus, which takes longer on a busy
    // machine: wait for that (up to 10 s), then say what is wrong, if
    // anything still is.
    let _ = wait_until(Duration::from_secs(10), || {
        talkers
            .iter()
            .enumerate()
            .all(|(i, p)| mix_minus(i, p).is_none())
    })
    .await;
    if std::env::var_os("TESSERA_TEST_DEBUG").is_some() {
        for (i, p) in talkers.iter().enumerate() {
            for w in p.recent_audio(2.0).chunks(12000) {
                let pw: Vec<f64> = tones.iter().map(|f| tone_power(w, *f, 48000.0)).collect();
                eprintln!("{} window powers {pw:?} (tone {})", p.opts.name, tones[i]);
            }
        }
    }
    for (i, p) in talkers.iter().enumerate() {
        if let Some(wrong) = mix_minus(i, p) {
            panic!("{wrong}");
        }
    }

    // The silent listener hears all three talkers through the shared encode,
    // and only the three talkers count as talking.
    let audio = d.recent_audio(1.0);
    let powers: Vec<f64> = tones
        .iter()
        .map(|f| tone_power(&audio, *f, 48000.0))
        .collect();
    assert!(
        powers.iter().all(|p| *p > 1e-4),
        "dee should hear every tone: {powers:?}"
    );
    let mut talkers = vec![a.id.clone(), b.id.clone(), c.id.clone()];
    talkers.sort();
    assert_eq!(server.room(room).await.unwrap().talking, talkers);

    // The server asked every sender for a keyframe (PLI) once its stream was linked.
    for p in peers {
        assert!(
            p.key_requests() >= 1,
            "{} got no keyframe request",
            p.opts.name
        );
    }

    // A receiver's PLI yields a keyframe on its family's stream.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = b.keyframes();
    let forced_before = server.room(room).await.unwrap().forced_keyframes;
    b.request_keyframe();
    assert!(
        wait_until(Duration::from_secs(3), || b.keyframes() > before).await,
        "no keyframe after PLI (keyframes seen {before})"
    );
    let forced_after = server.room(room).await.unwrap().forced_keyframes;
    let vp8 = |v: &Vec<(CodecFamily, u64)>| {
        v.iter()
            .find(|(f, _)| *f == CodecFamily::Vp8)
            .map(|x| x.1)
            .unwrap_or(0)
    };
    assert!(
        vp8(&forced_after) > vp8(&forced_before),
        "{forced_before:?} -> {forced_after:?}"
    );

    // c drops its socket without leave: the canvas re-flows to three tiles
    // and frames keep coming to the others.
    c.drop_abruptly();
    let rest = [&a, &b, &d];
    let rects3 = tiles(&server, 3);
    let ok = wait_until(Duration::from_secs(15), || {
        rest.iter().all(|p| {
            canvas_shows(p, &rects3, &[RED, GREEN, YELLOW]) && p.participant_count() == Some(3)
        })
    })
    .await;
    let seen: Vec<String> = rest.iter().map(|p| describe_canvas(p, &rects3)).collect();
    assert!(ok, "no re-flow: {}", seen.join("; "));
    let counts: Vec<u64> = rest.iter().map(|p| p.frames()).collect();
    let flowing = wait_until(Duration::from_secs(5), || {
        rest.iter().zip(&counts).all(|(p, n)| p.frames() > n + 15)
    })
    .await;
    assert!(flowing, "frames stopped after the drop");
    let snap = server.room(room).await.unwrap();
    assert_eq!(
        snap.encoders,
        vec![CodecFamily::Vp8],
        "H.264 encoder stops with its last receiver"
    );
    let pipeline = snap.pipeline.clone();
    drop(snap);

    // Last ones leave: the room and its pipeline are gone.
    a.leave().await;
    b.leave().await;
    d.leave().await;
    assert!(
        wait_until(Duration::from_secs(10), || server.registry.room_count()
            == 0)
        .await,
        "room still open: {:?}",
        server.registry.room_ids()
    );
    assert!(
        wait_until(Duration::from_secs(10), || pipeline.upgrade().is_none()).await,
        "room pipeline still alive"
    );
    // The leaks tracer must not be asked while objects are being finalised
    // (it would take a reference to a dying one): let the teardown settle,
    // then look once a second.
    let mut ok = false;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if live_elements().len() <= baseline {
            ok = true;
            break;
        }
    }
    assert!(
        ok,
        "elements left behind: {} > {baseline}: {:?}",
        live_elements().len(),
        live_elements()
    );
}
