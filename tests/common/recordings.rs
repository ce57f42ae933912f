//! The recordings admin API as tests drive it: start, stop and wait for the
//! export, read a manifest; and an exported WebM decoded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use serde_json::Value;

/// GET `url` as JSON.
pub async fn get(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Starts recording `room` over the API; returns the recording's id.
pub async fn start_recording(http: &reqwest::Client, api: &str, room: &str) -> String {
    let r = http
        .post(format!("{api}/rooms/{room}/recording"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_string()
}

/// Stops recording `room` and waits for the export (or its error); returns
/// the final manifest.
pub async fn stop_and_export(http: &reqwest::Client, api: &str, room: &str, id: &str) -> Value {
    let r = http
        .delete(format!("{api}/rooms/{room}/recording"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut manifest = Value::Null;
    for _ in 0..100 {
        manifest = get(http, &format!("{api}/recordings/{id}")).await;
        if manifest["export"].is_string() || manifest["error"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    manifest
}

/// A test config recording into a fresh directory named for `name`
/// (emptied first) and content with 1 MiB of free disk; returns it and the
/// directory.
pub fn recording_config(name: &str) -> (tessera::config::Config, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("tessera-rec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = super::test_config();
    config.recording.dir = dir.clone();
    config.recording.min_free_mb = 1;
    (config, dir)
}

/// A whole WebM file decoded: its frame count, the first frame at or
/// after each of the times asked for, all audio (48 kHz mono) and any
/// errors.
#[derive(Default)]
pub struct Decoded {
    pub frames: u64,
    pub stills: Vec<super::media::Frame>,
    pub audio: Vec<f32>,
    pub errors: Vec<String>,
}

pub fn decode_webm(path: &std::path::Path, at: &[gst::ClockTime]) -> Decoded {
    let desc = format!(
        "filesrc location=\"{}\" ! matroskademux name=d \
         d.video_0 ! queue ! vp8dec ! videoconvert ! video/x-raw,format=RGB ! appsink name=v sync=false \
         d.audio_0 ! queue ! opusdec ! audioconvert ! audioresample \
           ! audio/x-raw,format=F32LE,channels=1,rate=48000 ! appsink name=a sync=false",
        path.display()
    );
    let pipeline = gst::parse::launch(&desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let out = Arc::new(Mutex::new(Decoded::default()));
    let at = at.to_vec();
    let v = pipeline
        .by_name("v")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let o = out.clone();
    v.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buf = sample.buffer().unwrap();
                let mut o = o.lock().unwrap();
                o.frames += 1;
                let due = at.get(o.stills.len()).copied();
                if due.is_some_and(|due| buf.pts().is_some_and(|t| t >= due)) {
                    let info =
                        gstreamer_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
                    let map = buf.map_readable().unwrap();
                    o.stills.push(super::media::Frame {
                        width: info.width(),
                        height: info.height(),
                        data: map.as_slice().to_vec(),
                        stride: info.stride()[0] as usize,
                    });
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let a = pipeline
        .by_name("a")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let o = out.clone();
    a.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |s| {
                let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let map = sample.buffer().unwrap().map_readable().unwrap();
                let floats = map
                    .as_slice()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                o.lock().unwrap().audio.extend(floats);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                out.lock().unwrap().errors.push(e.error().to_string());
                break;
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let decoded = std::mem::take(&mut *out.lock().unwrap());
    decoded
}
