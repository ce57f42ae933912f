//! Recording a live room: the canvas and the full mix land in segment
//! files, are joined into one WebM that decodes end to end with the peers'
//! colours in their tiles and all their tones, and the API serves it with
//! byte ranges.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::media::{color_matches, tone_power};
use common::peer::{PeerOptions, TestPeer};
use common::recordings::{decode_webm, get, recording_config, start_recording, stop_and_export};
use common::{grid_tiles, init, test_config, wait_until, TestServer, SERIAL};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_pbutils as gst_pbutils;
use gstreamer_pbutils::prelude::*;
use serde_json::Value;

const COLORS: [u32; 3] = [0xff0000, 0x00ff00, 0x0000ff];
const TONES: [f64; 3] = [440.0, 660.0, 880.0];
const RECORD_SECS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_lesson_decodes_with_every_tile_and_voice() {
    let _serial = SERIAL.lock().await;
    init();
    let (mut config, dir) = recording_config("rec");
    config.recording.segment_seconds = 4;
    let server = TestServer::start(config).await;
    let url = server.ws_url();
    let mut peers = Vec::new();
    for (i, (color, tone)) in COLORS.iter().zip(TONES).enumerate() {
        let opts = PeerOptions {
            tone_hz: tone,
            ..PeerOptions::new("rec", &format!("p{i}"), *color)
        };
        peers.push(TestPeer::join(&url, opts).await);
    }
    let tiles = grid_tiles(&server.config, 3);
    let ready = wait_until(Duration::from_secs(30), || {
        peers[0].last_frame().is_some_and(|f| {
            tiles
                .iter()
                .zip(COLORS)
                .all(|(r, c)| color_matches(f.rgb_at(r.center().0, r.center().1), c))
        })
    })
    .await;
    assert!(ready, "the room never showed all three peers");

    let http = reqwest::Client::new();
    let api = format!("http://{}/api", server.addr);
    let id = start_recording(&http, &api, "rec").await;
    for p in &peers {
        let told = p
            .wait_message(Duration::from_secs(5), |m| {
                m["type"] == "recording" && m["active"] == true
            })
            .await;
        assert!(told.is_some(), "{} was not told", p.opts.name);
    }
    tokio::time::sleep(Duration::from_secs(RECORD_SECS)).await;
    // The export appears in the manifest once the segments are joined.
    let manifest = stop_and_export(&http, &api, "rec", &id).await;
    assert!(manifest["export"].is_string(), "no export: {manifest}");
    let segments = manifest["segments"].as_array().unwrap().len();
    assert!(
        segments >= 4,
        "{segments} segments of 4 s in {RECORD_SECS} s: {manifest}"
    );
    let joined = manifest["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "joined")
        .count();
    assert_eq!(joined, 3, "{manifest}");
    let truth = manifest["duration_ms"].as_u64().unwrap() as f64 / 1000.0;
    assert!((truth - RECORD_SECS as f64).abs() < 1.5, "{truth}");

    // What the file says about itself.
    let file = dir.join(&id).join(manifest["export"].as_str().unwrap());
    let uri = format!("file://{}", file.display());
    let info = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(20))
        .unwrap()
        .discover_uri(&uri)
        .unwrap();
    let duration = info.duration().unwrap().seconds_f64();
    assert!(
        (duration - truth).abs() < 1.0,
        "file lasts {duration} s, the recording {truth} s"
    );
    let video = info.video_streams();
    assert_eq!(video.len(), 1);
    assert_eq!(
        (video[0].width(), video[0].height()),
        (
            server.config.media.canvas_width,
            server.config.media.canvas_height
        )
    );
    let audio = info.audio_streams();
    assert_eq!(audio.len(), 1);
    let caps = audio[0].caps().unwrap().to_string();
    assert!(caps.starts_with("audio/x-opus"), "{caps}");

    // Decoded whole: no errors, the tiles in the middle, all three voices.
    let d = decode_webm(&file, &[gst::ClockTime::from_seconds(RECORD_SECS / 2)]);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    let fps = server.config.media.framerate as f64;
    assert!(
        d.frames as f64 > truth * fps * 0.8,
        "{} frames in {truth} s",
        d.frames
    );
    let middle = d.stills.first().expect("a frame from the middle");
    for (r, c) in tiles.iter().zip(COLORS) {
        let got = middle.rgb_at(r.center().0, r.center().1);
        assert!(color_matches(got, c), "tile {r:?}: {got:?} not {c:06x}");
    }
    let mid = d.audio.len() / 2;
    let window = &d.audio[mid - 48000..mid + 48000];
    for f in TONES {
        let p = tone_power(window, f, 48000.0);
        assert!(p > 1e-4, "tone {f} Hz missing from the full mix: {p}");
    }

    // The API serves it by range, with the right type.
    let media = format!("{api}/recordings/{id}/media");
    let part = http
        .get(&media)
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-type"], "video/webm");
    let len = std::fs::metadata(&file).unwrap().len();
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 0-99/{len}").as_str()
    );
    assert_eq!(part.bytes().await.unwrap().len(), 100);
    let whole = http.get(&media).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.unwrap().len() as u64, len);
    let vtt = http
        .get(format!("{api}/recordings/{id}/chapters"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(vtt.starts_with("WEBVTT"), "{vtt}");
    let list = get(&http, &format!("{api}/recordings")).await;
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == id.as_str()));
    for bad in ["..%2F..%2Fetc", "%2Fetc%2Fpasswd", "nope"] {
        let r = http
            .get(format!("{api}/recordings/{bad}/media"))
            .send()
            .await
            .unwrap();
        assert!(
            r.status() == 400 || r.status() == 404,
            "{bad}: {}",
            r.status()
        );
    }
    let deleted = http
        .delete(format!("{api}/recordings/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert!(!dir.join(&id).exists());
    for p in peers {
        p.leave().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teachers_record_from_signaling_and_the_last_to_leave_closes_the_files() {
    let _serial = SERIAL.lock().await;
    init();
    let (mut config, dir) = recording_config("sig");
    config.recording.export = false;
    let server = TestServer::start(config).await;
    let url = server.ws_url();
    let teacher = TestPeer::join(
        &url,
        PeerOptions {
            role: Some("teacher"),
            ..PeerOptions::new("sig", "teacher", 0xff0000)
        },
    )
    .await;
    let student = TestPeer::join(&url, PeerOptions::new("sig", "student", 0x00ff00)).await;
    assert!(
        wait_until(Duration::from_secs(20), || student.frames() > 10).await,
        "no media"
    );

    // A student may not record.
    student.send_text(r#"{"type":"record","on":true}"#);
    let refused = student
        .wait_message(Duration::from_secs(5), |m| m["code"] == "forbidden")
        .await;
    assert!(refused.is_some(), "{:?}", student.messages());
    assert_eq!(server.room("sig").await.unwrap().recording, None);

    // A teacher may; everyone is told.
    teacher.send_text(r#"{"type":"record","on":true}"#);
    let told = student
        .wait_message(Duration::from_secs(5), |m| {
            m["type"] == "recording" && m["active"] == true
        })
        .await
        .expect("the student is told recording started");
    let id = told["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Everyone leaves while recording: the files are closed all the same.
    teacher.leave().await;
    student.leave().await;
    assert!(
        wait_until(Duration::from_secs(15), || server.registry.room_count()
            == 0)
        .await,
        "the room did not close"
    );
    let text = std::fs::read_to_string(dir.join(&id).join("manifest.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    assert!(manifest["ended_at"].is_string(), "{manifest}");
    let events = manifest["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["kind"] == "left"),
        "leaves are on the timeline: {manifest}"
    );
    assert_eq!(
        events.last().unwrap()["kind"],
        "recording-stopped",
        "{manifest}"
    );
    let segments = manifest["segments"].as_array().unwrap();
    assert!(!segments.is_empty(), "{manifest}");
    let first = dir.join(&id).join(segments[0].as_str().unwrap());
    let info = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(10))
        .unwrap()
        .discover_uri(&format!("file://{}", first.display()))
        .unwrap();
    let secs = info.duration().unwrap().seconds_f64();
    assert!(secs > 2.0, "the closed segment plays {secs} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_matching_auto_record_record_from_the_first_participant() {
    let _serial = SERIAL.lock().await;
    init();
    let (mut config, dir) = recording_config("auto");
    config.recording.export = false;
    config.recording.auto_record = vec!["class-*".into()];
    let server = TestServer::start(config).await;
    let url = server.ws_url();
    let plain = TestPeer::join(&url, PeerOptions::new("chat", "a", 0xff0000)).await;
    let class = TestPeer::join(&url, PeerOptions::new("class-7b", "b", 0x00ff00)).await;
    let told = class
        .wait_message(Duration::from_secs(10), |m| {
            m["type"] == "recording" && m["active"] == true
        })
        .await;
    assert!(told.is_some(), "class-7b did not start recording");
    assert!(server.room("class-7b").await.unwrap().recording.is_some());
    assert_eq!(server.room("chat").await.unwrap().recording, None);
    class.leave().await;
    plain.leave().await;
    assert!(
        wait_until(Duration::from_secs(15), || server.registry.room_count()
            == 0)
        .await,
        "rooms did not close"
    );
    let recorded: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert!(recorded[0].starts_with("class-7b-"), "{recorded:?}");
}

/// Decoded samples with the timestamp of their buffer, seconds.
type StampedAudio = (f64, Vec<f32>);

/// Onsets of the flashes (a large share of the canvas turning white) and of the beeps
/// (5 ms audio windows turning loud) in a recorded file, in seconds.
fn mark_onsets(path: &std::path::Path) -> (Vec<f64>, Vec<f64>) {
    let desc = format!(
        "filesrc location=\"{}\" ! matroskademux name=d \
         d.video_0 ! queue ! vp8dec ! videoconvert ! video/x-raw,format=GRAY8 ! appsink name=v sync=false \
         d.audio_0 ! queue ! opusdec ! audioconvert ! audioresample \
           ! audio/x-raw,format=F32LE,channels=1,rate=48000 ! appsink name=a sync=false",
        path.display()
    );
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    // (timestamp, share of bright pixels) of every frame.
    let frames: Arc<Mutex<Vec<(f64, f64)>>> = Arc::default();
    // Each decoded buffer with its own timestamp: a gap in the file must
    // not shift what comes after it.
    let audio: Arc<Mutex<Vec<StampedAudio>>> = Arc::default();
    let sink = |name: &str| {
        pipeline
            .by_name(name)
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap()
    };
    let f = frames.clone();
    sink("v").set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let info = gstreamer_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
                let buf = sample.buffer().unwrap();
                let map = buf.map_readable().unwrap();
                let (w, h, stride) = (
                    info.width() as usize,
                    info.height() as usize,
                    info.stride()[0] as usize,
                );
                let rows = map.as_slice().chunks(stride).take(h);
                let bright = rows.flat_map(|r| &r[..w]).filter(|&&p| p >= 150).count();
                let t = buf.pts().unwrap().nseconds() as f64 / 1e9;
                f.lock().unwrap().push((t, bright as f64 / (w * h) as f64));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let a = audio.clone();
    sink("a").set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buf = sample.buffer().unwrap();
                let map = buf.map_readable().unwrap();
                let t = buf.pts().unwrap().nseconds() as f64 / 1e9;
                let samples = map
                    .as_slice()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                a.lock().unwrap().push((t, samples));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    for msg in pipeline
        .bus()
        .unwrap()
        .iter_timed(gst::ClockTime::from_seconds(60))
    {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("decoding the recording: {}", e.error()),
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let flashes = {
        let frames = frames.lock().unwrap();
        frames
            .windows(2)
            // The flashing tile fills the canvas, or a good part of it
            // once someone joins: either way white jumps by a large share.
            // A new tile (a grey placeholder, a name label) does not.
            .filter(|w| w[1].1 - w[0].1 >= 0.05)
            .map(|w| w[1].0)
            .collect()
    };
    let beeps = {
        // 5 ms windows, each at its buffer's timestamp plus its offset.
        let windows: Vec<(f64, f32)> = audio
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(t, s)| {
                s.chunks(240).enumerate().map(move |(i, c)| {
                    let rms = (c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32).sqrt();
                    (t + i as f64 * 0.005, rms)
                })
            })
            .collect();
        windows
            .windows(2)
            .filter(|w| w[0].1 < 0.05 && w[1].1 >= 0.05)
            .map(|w| w[1].0)
            .collect()
    };
    (flashes, beeps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flash_and_beep_line_up_through_a_late_join_and_packet_loss() {
    let _serial = SERIAL.lock().await;
    init();
    let (mut config, dir) = recording_config("sync");
    config.media.framerate = 30;
    config.recording.segment_seconds = 4;
    let server = TestServer::start(config).await;
    let peer = TestPeer::join(
        &server.ws_url(),
        PeerOptions {
            sync_marks: true,
            send_loss: 0.02,
            ..PeerOptions::new("sync", "metronome", 0)
        },
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(20), || peer.frames() > 30).await,
        "no media"
    );
    let http = reqwest::Client::new();
    let api = format!("http://{}/api", server.addr);
    let id = start_recording(&http, &api, "sync").await;
    // Halfway through, a dark and silent participant joins: the room
    // re-flows and a mixer input is added while the marks go on.
    tokio::time::sleep(Duration::from_secs(RECORD_SECS / 2)).await;
    let late = TestPeer::join(&server.ws_url(), PeerOptions::new("sync", "late", 0)).await;
    tokio::time::sleep(Duration::from_secs(RECORD_SECS - RECORD_SECS / 2)).await;
    let manifest = stop_and_export(&http, &api, "sync", &id).await;
    assert!(
        manifest["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "joined" && e["participant"] == late.id.as_str()),
        "{manifest}"
    );
    let file = dir
        .join(&id)
        .join(manifest["export"].as_str().expect("exported"));
    let (flashes, beeps) = mark_onsets(&file);
    let offsets: Vec<f64> = flashes
        .iter()
        .filter_map(|f| {
            beeps
                .iter()
                .map(|b| f - b)
                .min_by(|x, y| x.abs().total_cmp(&y.abs()))
        })
        .collect();
    let worst = offsets.iter().fold(0.0f64, |m, o| m.max(o.abs()));
    println!("A/V: flashes at {:.2?}, beeps at {:.2?}", flashes, beeps);
    println!(
        "A/V: {} flashes, {} beeps; video minus audio per mark (ms): {:?}",
        flashes.len(),
        beeps.len(),
        offsets
            .iter()
            .map(|o| (o * 1000.0).round() as i64)
            .collect::<Vec<_>>()
    );
    // A lost packet of a flash frame freezes the picture until the next
    // keyframe, so a flash or two may not show; every one that does is
    // checked below.
    assert!(
        flashes.len() as u64 >= RECORD_SECS / 2 && beeps.len() as u64 >= RECORD_SECS - 3,
        "{} flashes and {} beeps in {RECORD_SECS} s",
        flashes.len(),
        beeps.len()
    );
    assert!(
        worst <= 0.080,
        "flash and beep {worst:.3} s apart at worst: {offsets:?}"
    );
    late.leave().await;
    peer.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h264_room_records_matroska_and_exports_mp4() {
    let _serial = SERIAL.lock().await;
    init();
    let (mut config, dir) = recording_config("h264");
    config.recording.segment_seconds = 2;
    let server = TestServer::start(config).await;
    let peer = TestPeer::join(
        &server.ws_url(),
        PeerOptions {
            codec: common::peer::SendCodec::H264,
            ask: Some("h264"),
            tone_hz: 500.0,
            ..PeerOptions::new("h264rec", "a", 0x0000ff)
        },
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(20), || peer.frames() > 10).await,
        "no media"
    );
    let http = reqwest::Client::new();
    let api = format!("http://{}/api", server.addr);
    let id = start_recording(&http, &api, "h264rec").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let manifest = stop_and_export(&http, &api, "h264rec", &id).await;
    assert_eq!(manifest["codec"], "h264", "{manifest}");
    assert_eq!(manifest["export"], "export.mp4", "{manifest}");
    assert!(manifest["segments"][0]
        .as_str()
        .is_some_and(|s| s.ends_with(".mkv")));
    let file = dir.join(&id).join("export.mp4");
    let info = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(20))
        .unwrap()
        .discover_uri(&format!("file://{}", file.display()))
        .unwrap();
    let secs = info.duration().unwrap().seconds_f64();
    assert!((secs - 6.0).abs() < 1.0, "{secs} s");
    let video = info.video_streams();
    assert!(video[0]
        .caps()
        .unwrap()
        .to_string()
        .starts_with("video/x-h264"));
    assert!(info.audio_streams()[0]
        .caps()
        .unwrap()
        .to_string()
        .starts_with("audio/x-opus"));
    let part = http
        .get(format!("{api}/recordings/{id}/media"))
        .header("range", "bytes=10-")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-type"], "video/mp4");
    peer.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_little_free_disk_refuses_to_record_and_says_why() {
    let _serial = SERIAL.lock().await;
    init();
    let mut config = test_config();
    config.recording.dir =
        std::env::temp_dir().join(format!("tessera-rec-full-{}", std::process::id()));
    // More free space than any disk has.
    config.recording.min_free_mb = 1 << 40;
    let server = TestServer::start(config).await;
    let teacher = TestPeer::join(
        &server.ws_url(),
        PeerOptions {
            role: Some("teacher"),
            ..PeerOptions::new("full", "t", 0xff0000)
        },
    )
    .await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://{}/api/rooms/full/recording", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 507);
    let body: Value = r.json().await.unwrap();
    let why = body["error"].as_str().unwrap();
    assert!(why.contains("recording.min_free_mb"), "{why}");
    teacher.send_text(r#"{"type":"record","on":true}"#);
    let told = teacher
        .wait_message(Duration::from_secs(5), |m| {
            m["type"] == "error"
                && m["message"]
                    .as_str()
                    .is_some_and(|s| s.contains("recording.min_free_mb"))
        })
        .await;
    assert!(told.is_some(), "{:?}", teacher.messages());
    assert_eq!(server.room("full").await.unwrap().recording, None);
    teacher.leave().await;
}

/// Free space on the file system holding `path`, MiB.
fn free_mb(path: &std::path::Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(path).unwrap();
    st.blocks_available() as u64 * st.fragment_size() as u64 / (1024 * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_filling_up_mid_lesson_stops_the_recording_and_the_lesson_goes_on() {
    let _serial = SERIAL.lock().await;
    init();
    let dir = std::env::temp_dir().join(format!("tessera-rec-filling-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The threshold sits 150 MiB below what is free now; a 400 MiB file
    // written mid-lesson takes the disk under it.
    let free = free_mb(&dir);
    assert!(free > 1000, "the test needs 1 GiB free, {free} MiB is");
    let mut config = test_config();
    config.recording.dir = dir.clone();
    config.recording.segment_seconds = 2;
    config.recording.min_free_mb = free - 150;
    let server = TestServer::start(config).await;
    let teacher = TestPeer::join(
        &server.ws_url(),
        PeerOptions {
            role: Some("teacher"),
            ..PeerOptions::new("filling", "t", 0xff0000)
        },
    )
    .await;
    let student =
        TestPeer::join(&server.ws_url(), PeerOptions::new("filling", "s", 0x0000ff)).await;
    assert!(
        wait_until(Duration::from_secs(20), || teacher.frames() > 10
            && student.frames() > 10)
        .await,
        "no media"
    );
    let http = reqwest::Client::new();
    let api = format!("http://{}/api", server.addr);
    let id = start_recording(&http, &api, "filling").await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    let filler = dir.join("filler.bin");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0x5au8; 1 << 20];
        for _ in 0..400 {
            f.write_all(&chunk).unwrap();
        }
        f.sync_all().unwrap();
    }
    let told = teacher
        .wait_message(Duration::from_secs(10), |m| {
            m["type"] == "error"
                && m["message"]
                    .as_str()
                    .is_some_and(|s| s.contains("recording.min_free_mb"))
        })
        .await;
    assert!(told.is_some(), "teacher not told: {:?}", teacher.messages());
    let stopped = student
        .wait_message(Duration::from_secs(10), |m| {
            m["type"] == "recording" && m["active"] == false
        })
        .await;
    assert!(stopped.is_some(), "{:?}", student.messages());
    std::fs::remove_file(&filler).unwrap();

    // What was recorded is closed and exported.
    let mut manifest = Value::Null;
    let exported = wait_until(Duration::from_secs(30), || {
        let text = std::fs::read_to_string(dir.join(&id).join("manifest.json")).unwrap();
        manifest = serde_json::from_str(&text).unwrap();
        manifest["export"].is_string()
    })
    .await;
    assert!(exported, "{manifest}");
    assert!(
        manifest["error"]
            .as_str()
            .is_some_and(|e| e.contains("recording.min_free_mb")),
        "{manifest}"
    );
    let discoverer = gst_pbutils::Discoverer::new(gst::ClockTime::from_seconds(10)).unwrap();
    let path = dir.join(&id).join(manifest["export"].as_str().unwrap());
    let info = discoverer
        .discover_uri(&format!("file://{}", path.display()))
        .unwrap();
    let secs = info.duration().unwrap().seconds_f64();
    assert!(secs > 4.0, "{secs} s recorded before the disk filled");

    // The lesson carries on.
    let (t, s) = (teacher.frames(), student.frames());
    assert!(
        wait_until(Duration::from_secs(10), || teacher.frames() > t + 30
            && student.frames() > s + 30)
        .await,
        "media stopped with the recording"
    );
    assert_eq!(server.room("filling").await.unwrap().participants.len(), 2);
    teacher.leave().await;
    student.leave().await;
    let _ = std::fs::remove_dir_all(&dir);
}
