//! A headless WebRTC client built on GStreamer `webrtcbin`: sends a solid
//! colour and a sine tone, offers like a browser, and keeps what it receives
//! (the canvas frames, the audio, the server's messages) for assertions.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_sdp as gst_sdp;
use gstreamer_video as gst_video;
use gstreamer_webrtc as gst_webrtc;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::media::Frame;
use super::wait_until;

/// What the peer sends and offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendCodec {
    Vp8,
    H264,
    /// VP9 only: a codec the server refuses.
    Vp9,
}

#[derive(Clone, Debug)]
pub struct PeerOptions {
    pub room: String,
    pub name: String,
    pub codec: SendCodec,
    /// `codec` field of the join message.
    pub ask: Option<&'static str>,
    /// Solid colour sent, 0xRRGGBB.
    pub color: u32,
    /// A `videotestsrc` pattern sent instead of the colour (`snow`: a
    /// camera's worth of detail, which costs the canvas encoder bits).
    pub pattern: Option<&'static str>,
    /// Sine tone sent, Hz; 0 sends silence.
    pub tone_hz: f64,
    /// False: no camera; the video m-line is recvonly, like a browser
    /// without one.
    pub send_video: bool,
    /// `role` field of the join message.
    pub role: Option<&'static str>,
    /// A second video source, offered as the screen share, in this solid
    /// colour. It is sent from the start; the server shows it after
    /// [`TestPeer::share_screen`].
    pub screen_color: Option<u32>,
    /// Sync marks instead of colour and tone: black video that flashes
    /// white, and silence with a 1 kHz beep, both for the first
    /// [`MARK_MS`] of every second of the pipeline's running time, at 30 fps.
    pub sync_marks: bool,
    /// Share of sent RTP packets (camera and microphone) dropped before
    /// they reach the network, 0.0 to 1.0.
    pub send_loss: f64,
    /// `token` field of the join message.
    pub token: Option<String>,
    /// Camera size sent.
    pub send_size: (u32, u32),
    /// Garbage: the camera's RTP payloads are overwritten with noise.
    pub corrupt_video: bool,
    /// Gather ICE candidates on 127.0.0.1 only, where the test servers
    /// gather (the default). False: on the machine's other interfaces,
    /// libnice's own choice, which leaves loopback out.
    pub loopback_ice: bool,
}

/// Length of a sync mark (flash and beep), milliseconds.
pub const MARK_MS: u64 = 100;

impl PeerOptions {
    /// A VP8 peer sending `color` and silence, with a camera, no role and no
    /// codec wish; change fields with struct update syntax.
    pub fn new(room: &str, name: &str, color: u32) -> PeerOptions {
        PeerOptions {
            room: room.into(),
            name: name.into(),
            codec: SendCodec::Vp8,
            ask: None,
            color,
            pattern: None,
            tone_hz: 0.0,
            send_video: true,
            role: None,
            screen_color: None,
            sync_marks: false,
            send_loss: 0.0,
            token: None,
            send_size: (320, 240),
            corrupt_video: false,
            loopback_ice: true,
        }
    }
}

/// Seconds of received audio kept.
const AUDIO_KEEP: usize = 48000 * 3;

#[derive(Default)]
pub struct Received {
    pub messages: Vec<Value>,
    pub frames: u64,
    pub last_frame: Option<Frame>,
    pub video_caps: Option<String>,
    pub keyframes: u64,
    pub audio: VecDeque<f32>,
    pub audio_samples: u64,
    /// Keyframe requests (PLI/FIR from the server) that reached our sender.
    pub key_requests: u64,
    /// A region of the received canvas to watch (x, y, width, height), the
    /// frames in which it changed, and its last samples.
    pub watch: Option<(u32, u32, u32, u32)>,
    pub watch_changes: u64,
    watch_last: Vec<u8>,
    /// Times the server sent the join to another node (`redirect`).
    pub redirects: u32,
    /// The signaling socket the peer joined through.
    pub signaling: String,
}

/// Whether a watched region differs from its last samples: at least one
/// in 1,000 of the sampled bytes moved by more than coding noise.
fn region_changed(last: &[u8], now: &[u8]) -> bool {
    let moved = last
        .iter()
        .zip(now)
        .filter(|(a, b)| a.abs_diff(**b) > 16)
        .count();
    last.len() == now.len() && moved * 1000 >= now.len().max(1000)
}

/// Every 4th pixel of a region of a packed RGB frame, each row.
fn sample_region(f: &Frame, (x, y, w, h): (u32, u32, u32, u32)) -> Vec<u8> {
    let mut out = Vec::new();
    for py in (y..(y + h).min(f.height)).step_by(4) {
        for px in (x..(x + w).min(f.width)).step_by(4) {
            let i = py as usize * f.stride + px as usize * 3;
            out.extend_from_slice(&f.data[i..i + 3]);
        }
    }
    out
}

pub struct TestPeer {
    pub id: String,
    pub opts: PeerOptions,
    pipeline: gst::Pipeline,
    pub state: Arc<Mutex<Received>>,
    out: mpsc::UnboundedSender<Message>,
    ws_task: tokio::task::JoinHandle<()>,
}

fn send_branch(opts: &PeerOptions) -> String {
    let (encode, pt, caps) = match opts.codec {
        SendCodec::Vp8 => (
            "vp8enc deadline=1 cpu-used=8 threads=1 target-bitrate=300000 keyframe-max-dist=30 ! rtpvp8pay pt=96",
            96,
            "encoding-name=VP8",
        ),
        SendCodec::H264 => (
            "x264enc tune=zerolatency speed-preset=ultrafast threads=1 bitrate=300 key-int-max=30 ! video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 pt=102 aggregate-mode=zero-latency",
            102,
            "encoding-name=H264,packetization-mode=(string)1",
        ),
        SendCodec::Vp9 => (
            "vp9enc deadline=1 cpu-used=8 threads=1 ! rtpvp9pay pt=98",
            98,
            "encoding-name=VP9",
        ),
    };
    let lossy = if opts.send_loss > 0.0 {
        format!(" ! netsim drop-probability={}", opts.send_loss)
    } else {
        String::new()
    };
    let video = if opts.sync_marks {
        format!(
            "videotestsrc is-live=true pattern=black \
               ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! identity name=flash \
               ! videoconvert ! {encode}{lossy} \
               ! identity name=send-video-rtp ! application/x-rtp,media=video,clock-rate=90000,payload={pt},{caps} ! webrtc."
        )
    } else if opts.send_video {
        format!(
            "videotestsrc is-live=true {pattern} \
               ! video/x-raw,width={w},height={h},framerate=15/1 ! videoconvert ! {encode}{lossy} \
               ! identity name=send-video-rtp ! application/x-rtp,media=video,clock-rate=90000,payload={pt},{caps} ! webrtc.",
            pattern = match opts.pattern {
                Some(p) => format!("pattern={p}"),
                None => format!(
                    "pattern=solid-color foreground-color={}",
                    0xff00_0000u32 | opts.color
                ),
            },
            w = opts.send_size.0,
            h = opts.send_size.1,
        )
    } else {
        String::new()
    };
    // The screen is wider than the camera, as screens are.
    let screen = match opts.screen_color {
        Some(color) => format!(
            "videotestsrc is-live=true pattern=solid-color foreground-color={fg} \
               ! video/x-raw,width=640,height=360,framerate=15/1 ! videoconvert ! {encode} \
               ! application/x-rtp,media=video,clock-rate=90000,payload={pt},{caps} ! webrtc.",
            fg = 0xff00_0000u32 | color,
        ),
        None => String::new(),
    };
    format!(
        "webrtcbin name=webrtc bundle-policy=max-bundle latency=60 {video} \
         audiotestsrc is-live=true {wave} volume=0.3 ! audio/x-raw,format=F32LE,rate=48000,channels=1 \
           ! identity name=beep ! audioconvert ! audioresample \
           ! opusenc bitrate=32000 ! rtpopuspay pt=111 {lossy} \
           ! application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=111 ! webrtc. {screen}",
        wave = if opts.tone_hz > 0.0 {
            format!("wave=sine freq={}", opts.tone_hz)
        } else {
            "wave=silence".to_string()
        },
    )
}

impl TestPeer {
    /// Connects, joins, and starts negotiating. Returns once `joined` arrived.
    pub async fn join(ws_url: &str, opts: PeerOptions) -> TestPeer {
        let state = Arc::new(Mutex::new(Received::default()));
        let mut ws_url = ws_url.to_string();
        // A node of a cluster may send the join to the room's node
        // (`redirect`): follow, as the web client does.
        let (out, mut inbound, ws_task, id) = loop {
            let (out, mut inbound, ws_task) = open_socket(&ws_url, state.clone()).await;
            let mut join = json!({"type": "join", "room": opts.room, "name": opts.name});
            if let Some(c) = opts.ask {
                join["codec"] = json!(c);
            }
            if let Some(r) = opts.role {
                join["role"] = json!(r);
            }
            if let Some(t) = &opts.token {
                join["token"] = json!(t);
            }
            out.send(Message::text(join.to_string())).unwrap();
            let joined = loop {
                let v = tokio::time::timeout(Duration::from_secs(10), inbound.recv())
                    .await
                    .expect("joined in time")
                    .expect("socket open");
                if v["type"] == "joined" {
                    break Some(v["participantId"].as_str().unwrap().to_string());
                }
                if v["type"] == "redirect" {
                    ws_url = v["url"].as_str().unwrap().to_string();
                    break None;
                }
                assert_ne!(v["type"], "error", "join refused: {v}");
            };
            match joined {
                Some(id) => break (out, inbound, ws_task, id),
                None => {
                    ws_task.abort();
                    state.lock().unwrap().redirects += 1;
                }
            }
        };
        state.lock().unwrap().signaling = ws_url.clone();

        let pipeline = gst::parse::launch(&send_branch(&opts))
            .expect("peer pipeline parses")
            .downcast::<gst::Pipeline>()
            .unwrap();
        pipeline.set_property("name", format!("peer-{}", opts.name));
        if let (true, Some(tap)) = (opts.corrupt_video, pipeline.by_name("send-video-rtp")) {
            // Keep the RTP header and VP8 descriptor, overwrite the rest.
            let seed = std::sync::atomic::AtomicU32::new(0x1234_5678);
            tap.static_pad("src")
                .unwrap()
                .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                    if let Some(buf) = info.buffer_mut() {
                        let buf = buf.make_mut();
                        if let Ok(mut map) = buf.map_writable() {
                            let mut x = seed.load(std::sync::atomic::Ordering::Relaxed);
                            for b in map.iter_mut().skip(16) {
                                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                                *b = (x >> 24) as u8;
                            }
                            seed.store(x, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    gst::PadProbeReturn::Ok
                });
        }
        if let Some(tap) = pipeline.by_name("send-video-rtp") {
            // Count the server's PLI/FIR: webrtcbin turns them into upstream
            // force-key-unit events towards our encoder.
            let st = state.clone();
            tap.static_pad("src").unwrap().add_probe(
                gst::PadProbeType::EVENT_UPSTREAM,
                move |_, info| {
                    if info
                        .event()
                        .is_some_and(|e| gst_video::ForceKeyUnitEvent::is(e))
                    {
                        st.lock().unwrap().key_requests += 1;
                    }
                    gst::PadProbeReturn::Ok
                },
            );
        }
        if opts.sync_marks {
            add_sync_marks(&pipeline);
        }
        let webrtc = pipeline.by_name("webrtc").unwrap();
        if opts.loopback_ice {
            let ice = webrtc.property::<gst::glib::Object>("ice-agent");
            assert!(ice.emit_by_name::<bool>("add-local-ip-address", &[&"127.0.0.1"]));
        }
        if !opts.send_video {
            let caps = gst::Caps::builder("application/x-rtp")
                .field("media", "video")
                .field("encoding-name", "VP8")
                .field("payload", 96i32)
                .field("clock-rate", 90000i32)
                .build();
            webrtc.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
                "add-transceiver",
                &[&gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &caps],
            );
        }
        for t in 0..2u32 {
            if let Some(tr) = webrtc.emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>(
                "get-transceiver",
                &[&(t as i32)],
            ) {
                tr.set_property(
                    "direction",
                    gst_webrtc::WebRTCRTPTransceiverDirection::Sendrecv,
                );
            }
        }

        // Offer when webrtcbin wants to negotiate.
        {
            let out = out.clone();
            let screen = opts.screen_color.is_some();
            webrtc.connect("on-negotiation-needed", false, move |values| {
                let webrtc = values[0].get::<gst::Element>().unwrap();
                let out = out.clone();
                let w = webrtc.clone();
                let promise = gst::Promise::with_change_func(move |reply| {
                    let reply = reply.expect("offer").expect("offer structure");
                    let offer = reply
                        .get::<gst_webrtc::WebRTCSessionDescription>("offer")
                        .expect("offer in reply");
                    w.emit_by_name::<()>("set-local-description", &[&offer, &None::<gst::Promise>]);
                    let mut msg = json!({"type": "offer", "sdp": offer.sdp().as_text().unwrap()});
                    // The screen is the last m-line (its source is linked last).
                    if screen {
                        let last = offer.sdp().medias().last().unwrap();
                        msg["screen"] = json!(last.attribute_val("mid").unwrap());
                    }
                    let _ = out.send(Message::text(msg.to_string()));
                });
                webrtc.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
                None
            });
        }
        {
            let out = out.clone();
            webrtc.connect("on-ice-candidate", false, move |values| {
                let mline = values[1].get::<u32>().unwrap();
                let cand = values[2].get::<String>().unwrap();
                let _ = out.send(Message::text(
                    json!({"type": "ice", "candidate": cand, "sdpMLineIndex": mline}).to_string(),
                ));
                None
            });
        }
        {
            let pipeline_weak = pipeline.downgrade();
            let state = state.clone();
            webrtc.connect_pad_added(move |_, pad| {
                if pad.direction() != gst::PadDirection::Src {
                    return;
                }
                let Some(pipeline) = pipeline_weak.upgrade() else {
                    return;
                };
                attach_receiver(&pipeline, pad, state.clone());
            });
        }
        pipeline
            .set_state(gst::State::Playing)
            .expect("peer pipeline plays");

        // Apply the server's answer and candidates as they come.
        let webrtc_weak = webrtc.downgrade();
        tokio::spawn(async move {
            while let Some(v) = inbound.recv().await {
                let Some(webrtc) = webrtc_weak.upgrade() else {
                    break;
                };
                match v["type"].as_str() {
                    Some("answer") => {
                        let sdp = gst_sdp::SDPMessage::parse_buffer(
                            v["sdp"].as_str().unwrap().as_bytes(),
                        )
                        .unwrap();
                        let answer = gst_webrtc::WebRTCSessionDescription::new(
                            gst_webrtc::WebRTCSDPType::Answer,
                            sdp,
                        );
                        webrtc.emit_by_name::<()>(
                            "set-remote-description",
                            &[&answer, &None::<gst::Promise>],
                        );
                    }
                    Some("ice") => {
                        let mline = v["sdpMLineIndex"].as_u64().unwrap() as u32;
                        let cand = v["candidate"].as_str().unwrap().to_string();
                        webrtc.emit_by_name::<()>("add-ice-candidate", &[&mline, &cand]);
                    }
                    _ => {}
                }
            }
        });

        TestPeer {
            id,
            opts,
            pipeline,
            state,
            out,
            ws_task,
        }
    }

    /// Sends a raw text frame on the signaling socket.
    pub fn send_text(&self, text: &str) {
        let _ = self.out.send(Message::text(text.to_string()));
    }

    pub fn frames(&self) -> u64 {
        self.state.lock().unwrap().frames
    }

    /// Starts counting the received frames in which a region of the canvas
    /// changed (a tile's picture moving); returns the count so far.
    pub fn watch_region(&self, region: (u32, u32, u32, u32)) -> u64 {
        let mut st = self.state.lock().unwrap();
        if st.watch != Some(region) {
            st.watch = Some(region);
            st.watch_last.clear();
        }
        st.watch_changes
    }

    pub fn key_requests(&self) -> u64 {
        self.state.lock().unwrap().key_requests
    }

    pub fn keyframes(&self) -> u64 {
        self.state.lock().unwrap().keyframes
    }

    pub fn last_frame(&self) -> Option<Frame> {
        self.state.lock().unwrap().last_frame.clone()
    }

    pub fn video_caps(&self) -> Option<String> {
        self.state.lock().unwrap().video_caps.clone()
    }

    /// The last `secs` seconds of received audio (48 kHz mono).
    pub fn recent_audio(&self, secs: f64) -> Vec<f32> {
        let st = self.state.lock().unwrap();
        let n = ((secs * 48000.0) as usize).min(st.audio.len());
        st.audio.iter().skip(st.audio.len() - n).copied().collect()
    }

    pub fn audio_samples(&self) -> u64 {
        self.state.lock().unwrap().audio_samples
    }

    /// Times a node sent the join on to another (`redirect`) before it
    /// was joined.
    pub fn redirects(&self) -> u32 {
        self.state.lock().unwrap().redirects
    }

    /// The signaling socket the peer joined through.
    pub fn signaling(&self) -> String {
        self.state.lock().unwrap().signaling.clone()
    }

    pub fn messages(&self) -> Vec<Value> {
        self.state.lock().unwrap().messages.clone()
    }

    /// Waits for a server message matching `pred`.
    pub async fn wait_message(
        &self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let mut found = None;
        wait_until(timeout, || {
            found = self
                .state
                .lock()
                .unwrap()
                .messages
                .iter()
                .find(|m| pred(m))
                .cloned();
            found.is_some()
        })
        .await;
        found
    }

    /// Number of participants in the latest list the server sent.
    pub fn participant_count(&self) -> Option<usize> {
        let st = self.state.lock().unwrap();
        st.messages
            .iter()
            .rev()
            .find_map(|m| match m["type"].as_str() {
                Some("participants") | Some("joined") => {
                    m["participants"].as_array().map(|a| a.len())
                }
                _ => None,
            })
    }

    /// Sends a PLI to the server: an upstream force-key-unit event on the
    /// received video stream, which webrtcbin turns into RTCP.
    pub fn request_keyframe(&self) {
        let depay = self
            .pipeline
            .iterate_recurse()
            .into_iter()
            .flatten()
            .find(|e| e.name().starts_with("recv-depay-video"))
            .expect("receiving video");
        let ev = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        assert!(depay.static_pad("sink").unwrap().push_event(ev));
    }

    /// Tells the server the screen is (or is no longer) shared.
    pub fn share_screen(&self, sharing: bool) {
        self.send_text(&json!({"type": "screen", "sharing": sharing}).to_string());
    }

    /// Tells the server the microphone is off (or on again).
    pub fn mute(&self, muted: bool) {
        self.send_text(&json!({"type": "mute", "muted": muted}).to_string());
    }

    /// Sends `leave` and stops media.
    pub async fn leave(self) {
        self.send_text(r#"{"type":"leave"}"#);
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.shutdown();
    }

    /// Drops the socket without a `leave`, as a crashed client would.
    pub fn drop_abruptly(self) {
        self.shutdown();
    }

    fn shutdown(self) {
        self.ws_task.abort();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.ws_task.abort();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Paints the sync marks: a white frame and a 1 kHz beep during the first
/// [`MARK_MS`] of every second, by the buffers' own timestamps.
fn add_sync_marks(pipeline: &gst::Pipeline) {
    let in_mark = |t: gst::ClockTime| t.nseconds() % 1_000_000_000 < MARK_MS * 1_000_000;
    let flash = pipeline
        .by_name("flash")
        .unwrap()
        .static_pad("src")
        .unwrap();
    flash.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buf) = info.buffer_mut() {
            if buf.pts().is_some_and(in_mark) {
                let buf = buf.make_mut();
                let mut map = buf.map_writable().unwrap();
                // I420 320x240: the luma plane white, chroma neutral (already).
                map.as_mut_slice()[..320 * 240].fill(235);
            }
        }
        gst::PadProbeReturn::Ok
    });
    let beep = pipeline.by_name("beep").unwrap().static_pad("src").unwrap();
    beep.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(buf) = info.buffer_mut() {
            let Some(pts) = buf.pts() else {
                return gst::PadProbeReturn::Ok;
            };
            let buf = buf.make_mut();
            // audiotestsrc marks silence as a gap, which encoders skip.
            buf.unset_flags(gst::BufferFlags::GAP);
            let mut map = buf.map_writable().unwrap();
            for (i, b) in map.as_mut_slice().chunks_exact_mut(4).enumerate() {
                let t = pts + gst::ClockTime::from_nseconds(i as u64 * 1_000_000_000 / 48_000);
                let secs = t.nseconds() as f64 / 1e9;
                let v = if in_mark(t) {
                    (2.0 * std::f64::consts::PI * 1000.0 * secs).sin() as f32 * 0.5
                } else {
                    0.0
                };
                b.copy_from_slice(&v.to_le_bytes());
            }
        }
        gst::PadProbeReturn::Ok
    });
}

/// Decodes a received stream into an appsink that records it.
fn attach_receiver(pipeline: &gst::Pipeline, pad: &gst::Pad, state: Arc<Mutex<Received>>) {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let s = caps.structure(0).unwrap();
    let media = s.get::<&str>("media").unwrap_or_default().to_string();
    let encoding = s
        .get::<&str>("encoding-name")
        .unwrap_or_default()
        .to_string();
    let desc = match (media.as_str(), encoding.as_str()) {
        ("video", "VP8") => "rtpvp8depay name=recv-depay-video ! vp8dec ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false",
        ("video", "H264") => "rtph264depay name=recv-depay-video ! avdec_h264 ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false",
        ("audio", "OPUS") => "rtpopusdepay ! opusdec ! audioconvert ! audioresample ! audio/x-raw,format=F32LE,rate=48000,channels=1,layout=interleaved ! appsink name=sink sync=false",
        _ => "fakesink name=sink",
    };
    let bin = gst::parse::bin_from_description(desc, true).unwrap();
    pipeline.add(&bin).unwrap();
    bin.sync_state_with_parent().unwrap();
    pad.link(&bin.static_pad("sink").unwrap()).unwrap();
    if media == "video" {
        state.lock().unwrap().video_caps = Some(caps.to_string());
        let depay = bin.by_name("recv-depay-video").unwrap();
        let st = state.clone();
        depay
            .static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(buf) = info.buffer() {
                    if !buf.flags().contains(gst::BufferFlags::DELTA_UNIT) {
                        st.lock().unwrap().keyframes += 1;
                    }
                }
                gst::PadProbeReturn::Ok
            });
    }
    let Some(sink) = bin
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
    else {
        return;
    };
    let is_video = media == "video";
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                let mut st = state.lock().unwrap();
                if is_video {
                    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
                    st.frames += 1;
                    let frame = Frame {
                        width: info.width(),
                        height: info.height(),
                        data: map.as_slice().to_vec(),
                        stride: info.stride()[0] as usize,
                    };
                    if let Some(region) = st.watch {
                        let now = sample_region(&frame, region);
                        if region_changed(&st.watch_last, &now) {
                            st.watch_changes += 1;
                        }
                        st.watch_last = now;
                    }
                    st.last_frame = Some(frame);
                } else {
                    let samples: &[f32] = bytemuck_f32(map.as_slice());
                    st.audio_samples += samples.len() as u64;
                    st.audio.extend(samples.iter().copied());
                    while st.audio.len() > AUDIO_KEEP {
                        st.audio.pop_front();
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}

/// Views raw little-endian F32 bytes as samples.
fn bytemuck_f32(bytes: &[u8]) -> &[f32] {
    let n = bytes.len() / 4;
    // SAFETY: GStreamer buffer memory is aligned for any primitive, F32LE is
    // the native layout on the test machines (x86_64), and n*4 <= len.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), n) }
}

/// Opens the signaling socket at `url`: a task moves frames, what arrives
/// is kept in `state` and passed on.
async fn open_socket(
    url: &str,
    state: Arc<Mutex<Received>>,
) -> (
    mpsc::UnboundedSender<Message>,
    mpsc::UnboundedReceiver<Value>,
    tokio::task::JoinHandle<()>,
) {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    let (mut sink, mut stream) = ws.split();
    let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
    let (inbound_tx, inbound) = mpsc::unbounded_channel::<Value>();
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(m) = out_rx.recv() => {
                    if sink.send(m).await.is_err() { break; }
                }
                frame = stream.next() => {
                    let Some(Ok(Message::Text(t))) = frame else {
                        if frame.is_none() { break; }
                        continue;
                    };
                    let v: Value = serde_json::from_str(&t).expect("server sends JSON");
                    state.lock().unwrap().messages.push(v.clone());
                    let _ = inbound_tx.send(v);
                }
                else => break,
            }
        }
    });
    (out, inbound, task)
}
