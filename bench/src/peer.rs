//! A synthetic participant's media: webrtcbin sending pre-encoded clips on
//! the shared schedule, and receivers that count what arrives. A probe
//! participant also decodes the canvas and the mix to read the frame codes
//! and clicks back out, for glass-to-glass latency.
//!
//! The others receive as cheaply as a peer can: once their first canvas
//! keyframe came through webrtcbin (join to first frame), they count
//! packets from the RTP headers as they leave the socket (SRTP leaves the
//! header in the clear) and drop them there, before decryption, the jitter
//! buffer and the depayloader. RTCP and DTLS still go through.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use gstreamer_webrtc as gst_webrtc;
use serde::{Deserialize, Serialize};

use crate::audio_gaps::{opus_has_fec, rtp_seq_and_payload, AudioCounts, AudioGaps};
use crate::baseline::el;
use crate::clip::{self, Clip, Codec, Feed};
use crate::code::{self, Area};

/// What a participant sends and measures.
#[derive(Debug, Clone)]
pub struct PeerMedia {
    /// Video codec sent and received.
    pub codec: Codec,
    /// Video clip (its size is the send size); `None` receives only.
    pub video: Option<Arc<Clip>>,
    /// Send size of every participant's video, to find pictures in tiles.
    pub send_size: (u32, u32),
    /// Audio clip; `None` receives only.
    pub audio: Option<Arc<Clip>>,
    /// Decode what arrives and read latency marks out of it.
    pub probe: bool,
    /// The shared schedule's start (Unix ms).
    pub epoch_ms: f64,
    /// Receive jitter buffer (ms), as a browser would keep.
    pub jitter_ms: u32,
    /// The address its ICE agent gathers on.
    pub ice_address: std::net::IpAddr,
    /// A TURN server (`turn://user:password@host:port`) to reach the
    /// server through, relay only, as a client behind a strict firewall.
    pub turn: Option<String>,
    /// Ask for retransmission of what is missing, as a browser does; only
    /// worth it with a jitter buffer long enough to wait for the answer.
    pub repair: bool,
}

/// What a participant measured, from the start of the window.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Measured {
    /// Canvas frames that arrived, per whole second of the window.
    pub frames_per_second: Vec<u32>,
    /// From sending `join` to the first canvas keyframe (ms).
    pub join_to_first_frame_ms: Option<f64>,
    /// Bytes of RTP payload received (video and audio) in the window.
    pub bytes_down: u64,
    /// Encoded bytes sent in the window.
    pub bytes_up: u64,
    /// Window length (s).
    pub window_s: f64,
    /// Glass-to-glass video latency samples (ms).
    pub video_latency_ms: Vec<f64>,
    /// Click-to-ear audio latency samples (ms).
    pub audio_latency_ms: Vec<f64>,
    /// Codec of the canvas received.
    pub canvas_codec: Option<String>,
    /// A probe's pauses between decoded canvas frames of more than
    /// [`FREEZE_MS`] in the window, each as long as it lasted (ms).
    #[serde(default)]
    pub freezes_ms: Vec<f64>,
    /// A probe's audio packets: received, lost, concealed.
    #[serde(default)]
    pub audio: Option<AudioCounts>,
    /// Since the participant joined, over its receive jitter buffers:
    /// packets pushed on, lost for good, retransmissions asked for and
    /// those that came in time.
    #[serde(default)]
    pub repair: Repair,
}

/// What the jitter buffers saw, summed.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub struct Repair {
    pub pushed: u64,
    pub lost: u64,
    pub rtx_asked: u64,
    pub rtx_repaired: u64,
}

/// A pause between two decoded frames longer than this is a freeze.
pub const FREEZE_MS: f64 = 500.0;

#[derive(Default)]
struct Counters {
    window_start_ms: f64,
    joined_ms: f64,
    first_frame_ms: Option<f64>,
    frames: Vec<u32>,
    bytes_down: u64,
    video_latency: Vec<f64>,
    audio_latency: Vec<f64>,
    canvas_codec: Option<String>,
    /// Canvas frames a probe decoded in the window, and how many of them
    /// showed a readable code in some tile.
    decoded: u64,
    coded: u64,
    /// Received RTP is counted and dropped at the socket.
    at_socket: bool,
    /// When a probe last decoded a canvas frame.
    last_decoded_ms: Option<f64>,
    /// When the last whole canvas frame arrived (in or out of the window).
    last_frame_ms: Option<f64>,
    freezes: Vec<f64>,
    audio: AudioGaps,
    /// Whether any audio packet has reached a probe's decoder.
    audio_seen: bool,
}

impl Counters {
    fn in_window(&self, now: f64) -> bool {
        self.window_start_ms > 0.0 && now >= self.window_start_ms
    }

    /// A probe decoded a canvas frame at `now`: the pause since the one
    /// before (or since the window began) may have been a freeze.
    fn decoded_frame(&mut self, now: f64) {
        if self.in_window(now) {
            let since = self
                .last_decoded_ms
                .map_or(self.window_start_ms, |t| t.max(self.window_start_ms));
            if now - since > FREEZE_MS {
                self.freezes.push(now - since);
            }
        }
        self.last_decoded_ms = Some(now);
    }

    /// A whole canvas frame arrived at `now`.
    fn count_frame(&mut self, now: f64) {
        self.last_frame_ms = Some(now);
        if self.in_window(now) {
            let second = ((now - self.window_start_ms) / 1000.0) as usize;
            if self.frames.len() <= second {
                self.frames.resize(second + 1, 0);
            }
            self.frames[second] += 1;
        }
    }
}

/// Bytes of the authentication tag at the end of each SRTP packet with
/// AES_CM_128_HMAC_SHA1_80; the smoke test checks the byte count against a
/// decrypting receiver's.
const SRTP_TAG: usize = 10;

/// What the clear header of a packet off the socket says, if it is RTP:
/// its payload type and whether it ends a frame (the marker bit). RTCP
/// (payload types 64–95 in a multiplexed stream, RFC 5761) and DTLS are
/// not RTP.
fn rtp_header(packet: &[u8]) -> Option<(u8, bool)> {
    let [first, second, ..] = *packet else {
        return None;
    };
    let pt = second & 0x7f;
    (packet.len() >= 12 && first >> 6 == 2 && !(64..=95).contains(&pt))
        .then_some((pt, second & 0x80 != 0))
}

/// A running participant pipeline.
pub struct Peer {
    /// The pipeline.
    pub pipeline: gst::Pipeline,
    /// Its webrtcbin.
    pub webrtc: gst::Element,
    /// Tiles of the canvas to read codes from (set by whoever knows the layout).
    pub tiles: Arc<Mutex<Vec<Area>>>,
    /// Whether it decodes what arrives and reads the marks.
    pub probe: bool,
    counters: Arc<Mutex<Counters>>,
    sent: Vec<Arc<AtomicU64>>,
    sent_at_window: u64,
    stop: Arc<AtomicBool>,
    pacer: Option<std::thread::JoinHandle<()>>,
    /// The receive jitter buffers, for their loss and repair counts.
    jitterbuffers: Arc<Mutex<Vec<gst::Element>>>,
    /// While set, what it sends is dropped before webrtcbin, as a browser
    /// pauses its senders to the server while it talks to its pair directly.
    paused: Arc<AtomicBool>,
}

fn rtp_caps(media: &str, codec: Option<Codec>) -> gst::Caps {
    let b = gst::Caps::builder("application/x-rtp").field("media", media);
    match (media, codec) {
        // Like a browser, asking for Opus's in-band FEC.
        ("audio", _) => b
            .field("encoding-name", "OPUS")
            .field("clock-rate", 48000i32)
            .field("payload", 111i32)
            .field("useinbandfec", "1")
            .build(),
        (_, Some(Codec::H264)) => b
            .field("encoding-name", "H264")
            .field("clock-rate", 90000i32)
            .field("payload", i32::from(video_pt(Codec::H264)))
            .field("packetization-mode", "1")
            .field("profile-level-id", "42e01f")
            .build(),
        _ => b
            .field("encoding-name", "VP8")
            .field("clock-rate", 90000i32)
            .field("payload", i32::from(video_pt(Codec::Vp8)))
            .build(),
    }
}

/// The video payload type a participant offers (the answer keeps it).
fn video_pt(codec: Codec) -> u8 {
    match codec {
        Codec::Vp8 => 96,
        Codec::H264 => 102,
    }
}

/// Counts and drops received RTP at the socket (see the module header)
/// once the first canvas keyframe has come through webrtcbin.
fn count_at_socket(
    pipeline: &gst::Pipeline,
    name: &str,
    video_pt: u8,
    counters: &Arc<Mutex<Counters>>,
) {
    let counters = counters.clone();
    let name = name.to_string();
    pipeline.connect_deep_element_added(move |_, _, element| {
        let is_nicesrc = element.factory().is_some_and(|f| f.name() == "nicesrc");
        let Some(src) = is_nicesrc.then(|| element.static_pad("src")).flatten() else {
            return;
        };
        let counters = counters.clone();
        let name = name.clone();
        src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(buf) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            let Ok(map) = buf.map_readable() else {
                return gst::PadProbeReturn::Ok;
            };
            let Some((pt, marker)) = rtp_header(&map) else {
                return gst::PadProbeReturn::Ok;
            };
            let now = clip::now_ms();
            let mut c = counters.lock().unwrap();
            if c.first_frame_ms.is_none() {
                return gst::PadProbeReturn::Ok;
            }
            if c.in_window(now) {
                c.bytes_down += map.len().saturating_sub(SRTP_TAG) as u64;
            }
            if pt == video_pt && marker {
                c.count_frame(now);
            }
            if !c.at_socket {
                c.at_socket = true;
                // The smoke test looks for this line in peers.log.
                eprintln!("{name}: counting received RTP at the socket from now on");
            }
            gst::PadProbeReturn::Drop
        });
    });
}

/// Sends RTCP reports every second, as a browser does for video (RTP
/// sessions default to every five): the server's estimate of a link is
/// made from them. Keeps the receive jitter buffers, and with `repair`
/// has them ask for retransmissions.
fn report_every_second(
    webrtc: &gst::Element,
    repair: bool,
    buffers: Arc<Mutex<Vec<gst::Element>>>,
) {
    let Some(rtpbin) = webrtc
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("rtpbin"))
        .and_then(|e| e.downcast::<gst::Bin>().ok())
    else {
        return;
    };
    rtpbin.connect("new-jitterbuffer", false, move |args| {
        if let Some(jb) = args.get(1).and_then(|v| v.get::<gst::Element>().ok()) {
            // webrtcbin turns retransmission requests on from the
            // transceiver only when the answer names the stream's SSRC,
            // which the server's does not: ask for what is missing, as a
            // browser does. (Audio is not retransmitted: its requests go
            // unanswered, and its losses are declared a little later.)
            jb.set_property("do-retransmission", repair);
            buffers.lock().unwrap().push(jb);
        }
        None
    });
    rtpbin.connect_element_added(|_, element| {
        if element.factory().is_some_and(|f| f.name() == "rtpsession") {
            let session = element.property::<glib::Object>("internal-session");
            session.set_property("rtcp-min-interval", 1_000_000_000u64);
        }
    });
}

/// ICE on `address` only (loopback, or a namespace's own end of its
/// link), without UPnP.
fn confined_to(address: std::net::IpAddr) -> tessera::media::ice_agent::IcePolicy {
    tessera::media::ice_agent::IcePolicy {
        addresses: vec![address],
        ..Default::default()
    }
}

impl Peer {
    /// Builds the pipeline (not yet playing).
    pub fn new(media: &PeerMedia, name: &str) -> anyhow::Result<Peer> {
        let pipeline = gst::Pipeline::with_name(name);
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .property_from_str("bundle-policy", "max-bundle")
            .property("latency", media.jitter_ms)
            .build()
            .context("webrtcbin is missing (gstreamer1.0-plugins-bad)")?;
        // Like a browser, send each frame when it is ready.
        tessera::media::send_unheld(&webrtc);
        // On loopback, where the server's media is (`server_env`), or on
        // the participant's own end of its narrow link.
        tessera::media::ice_agent::confine(&webrtc, &confined_to(media.ice_address))?;
        if let Some(turn) = &media.turn {
            webrtc.set_property("turn-server", turn);
            webrtc.set_property_from_str("ice-transport-policy", "relay");
        }
        let jitterbuffers = Arc::new(Mutex::new(Vec::new()));
        report_every_second(&webrtc, media.repair, jitterbuffers.clone());
        pipeline.add(&webrtc)?;
        let counters = Arc::new(Mutex::new(Counters::default()));
        if !media.probe {
            count_at_socket(&pipeline, name, video_pt(media.codec), &counters);
        }
        let mut feeds = Vec::new();
        let mut sent = Vec::new();
        let paused = Arc::new(AtomicBool::new(false));
        let sources = [
            ("video", media.video.clone()),
            ("audio", media.audio.clone()),
        ];
        for (kind, clip) in sources {
            let Some(clip) = clip else {
                let caps = rtp_caps(kind, Some(media.codec));
                webrtc.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
                    "add-transceiver",
                    &[&gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly, &caps],
                );
                continue;
            };
            let src = clip::appsrc(&clip, &format!("{kind}-src"));
            let pay = match (kind, media.codec) {
                ("audio", _) => el("rtpopuspay")?,
                (_, Codec::Vp8) => el("rtpvp8pay")?,
                (_, Codec::H264) => {
                    let p = el("rtph264pay")?;
                    p.set_property("config-interval", -1i32);
                    p.set_property_from_str("aggregate-mode", "zero-latency");
                    p
                }
            };
            pay.set_property(
                "pt",
                if kind == "audio" {
                    111u32
                } else {
                    u32::from(video_pt(media.codec))
                },
            );
            let filter = el("capsfilter")?;
            filter.set_property("caps", rtp_caps(kind, Some(media.codec)));
            pipeline.add_many([src.upcast_ref(), &pay, &filter])?;
            gst::Element::link_many([src.upcast_ref(), &pay, &filter])?;
            let sink = webrtc
                .request_pad_simple("sink_%u")
                .context("webrtcbin gives no sink pad")?;
            let out = filter.static_pad("src").unwrap();
            let gate = paused.clone();
            out.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if gate.load(Ordering::Relaxed) {
                    drop(info.data.take());
                    gst::PadProbeReturn::Handled
                } else {
                    gst::PadProbeReturn::Ok
                }
            });
            out.link(&sink)?;
            let bytes = Arc::new(AtomicU64::new(0));
            sent.push(bytes.clone());
            feeds.push(Feed { src, clip, bytes });
        }
        // Every transceiver both sends and receives, as a browser's would,
        // and asks for what video it misses (NACK, RTX): the first is the
        // video's (`sources`).
        let mut i = 0;
        while let Some(tr) = webrtc
            .emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>("get-transceiver", &[&i])
        {
            if i == 0 {
                tr.set_property("do-nack", true);
            }
            if tr.direction() != gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly {
                tr.set_property(
                    "direction",
                    gst_webrtc::WebRTCRTPTransceiverDirection::Sendrecv,
                );
            }
            i += 1;
        }
        let tiles = Arc::new(Mutex::new(Vec::new()));
        {
            let weak = pipeline.downgrade();
            let counters = counters.clone();
            let tiles = tiles.clone();
            let media = media.clone();
            webrtc.connect_pad_added(move |_, pad| {
                if pad.direction() != gst::PadDirection::Src {
                    return;
                }
                if let Some(pipeline) = weak.upgrade() {
                    if let Err(e) = attach_receiver(&pipeline, pad, &media, &counters, &tiles) {
                        eprintln!("receiver: {e:#}");
                    }
                }
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let pacer = (!feeds.is_empty()).then(|| clip::pace(feeds, media.epoch_ms, stop.clone()));
        Ok(Peer {
            pipeline,
            webrtc,
            tiles,
            probe: media.probe,
            counters,
            sent,
            sent_at_window: 0,
            stop,
            pacer,
            jitterbuffers,
            paused,
        })
    }

    /// The switch that pauses what it sends (see `paused`).
    pub fn pause_switch(&self) -> Arc<AtomicBool> {
        self.paused.clone()
    }

    /// Reads when the last whole canvas frame arrived (Unix ms), if one
    /// has, from any thread.
    pub fn last_frame_clock(&self) -> impl Fn() -> Option<f64> + Send + Sync + 'static {
        let counters = self.counters.clone();
        move || counters.lock().unwrap().last_frame_ms
    }

    /// Notes `at` (Unix ms) as the join, for join-to-first-frame.
    pub fn mark_join_at(&self, at: f64) {
        self.counters.lock().unwrap().joined_ms = at;
    }

    /// Notes when `join` went out, for join-to-first-frame.
    pub fn mark_join(&self) {
        self.counters.lock().unwrap().joined_ms = clip::now_ms();
    }

    /// Starts the measuring window now.
    pub fn start_window(&mut self) {
        self.sent_at_window = self.sent.iter().map(|b| b.load(Ordering::Relaxed)).sum();
        let mut c = self.counters.lock().unwrap();
        c.window_start_ms = clip::now_ms();
        c.frames.clear();
        c.bytes_down = 0;
        c.video_latency.clear();
        c.audio_latency.clear();
        c.decoded = 0;
        c.coded = 0;
        c.freezes.clear();
        c.audio.reset();
    }

    /// For the participant's log: what a probe made of the canvas in the
    /// window (a run without video latency says why here).
    pub fn reads(&self) -> String {
        let c = self.counters.lock().unwrap();
        format!(
            "canvas frames decoded {}, with a readable code {}, latency samples {}, tiles {:?}",
            c.decoded,
            c.coded,
            c.video_latency.len(),
            self.tiles.lock().unwrap()
        )
    }

    /// Stops sending and media.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(p) = self.pacer.take() {
            let _ = p.join();
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }

    /// What was measured since the window started.
    pub fn measured(&self) -> Measured {
        let now = clip::now_ms();
        let sent: u64 = self.sent.iter().map(|b| b.load(Ordering::Relaxed)).sum();
        let c = self.counters.lock().unwrap();
        let window_s = if c.window_start_ms > 0.0 {
            (now - c.window_start_ms) / 1000.0
        } else {
            0.0
        };
        let whole = window_s.floor() as usize;
        let mut frames = c.frames.clone();
        frames.resize(whole, 0);
        // A pause still going on at the end of the window counts too.
        let mut freezes = c.freezes.clone();
        if self.probe && c.window_start_ms > 0.0 {
            let since = c
                .last_decoded_ms
                .map_or(c.window_start_ms, |t| t.max(c.window_start_ms));
            if now - since > FREEZE_MS {
                freezes.push(now - since);
            }
        }
        Measured {
            frames_per_second: frames,
            join_to_first_frame_ms: c.first_frame_ms.map(|t| t - c.joined_ms),
            bytes_down: c.bytes_down,
            bytes_up: sent - self.sent_at_window,
            window_s,
            video_latency_ms: c.video_latency.clone(),
            audio_latency_ms: c.audio_latency.clone(),
            canvas_codec: c.canvas_codec.clone(),
            freezes_ms: freezes,
            audio: c.audio_seen.then_some(c.audio.counts),
            repair: self.repair(),
        }
    }

    /// The jitter buffers' counts, summed.
    fn repair(&self) -> Repair {
        let mut r = Repair::default();
        for jb in self.jitterbuffers.lock().unwrap().iter() {
            let stats = jb.property::<gst::Structure>("stats");
            let get = |k: &str| stats.get::<u64>(k).unwrap_or(0);
            r.pushed += get("num-pushed");
            r.lost += get("num-lost");
            r.rtx_asked += get("rtx-count");
            r.rtx_repaired += get("rtx-success-count");
        }
        r
    }
}

fn attach_receiver(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    media: &PeerMedia,
    counters: &Arc<Mutex<Counters>>,
    tiles: &Arc<Mutex<Vec<Area>>>,
) -> anyhow::Result<()> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let s = caps.structure(0).context("pad without caps")?;
    let kind = s.get::<&str>("media").unwrap_or_default().to_string();
    let encoding = s
        .get::<&str>("encoding-name")
        .unwrap_or_default()
        .to_string();
    // A probe asks for a keyframe when video is lost for good, and decodes
    // nothing until it comes, as a browser does (PLI).
    let desc = match (kind.as_str(), encoding.as_str(), media.probe) {
        ("video", "VP8", false) => "rtpvp8depay name=depay ! fakesink sync=false async=false",
        ("video", "H264", false) => {
            "rtph264depay name=depay ! video/x-h264,stream-format=byte-stream,alignment=au ! fakesink sync=false async=false"
        }
        ("video", "VP8", true) => {
            "rtpvp8depay name=depay request-keyframe=true wait-for-keyframe=true ! vp8dec threads=1 ! video/x-raw,format=I420 ! appsink name=sink sync=false"
        }
        ("video", "H264", true) => {
            "rtph264depay name=depay request-keyframe=true wait-for-keyframe=true ! avdec_h264 max-threads=1 ! video/x-raw,format=I420 ! appsink name=sink sync=false"
        }
        ("audio", _, true) => {
            "rtpopusdepay name=adepay ! opusdec use-inband-fec=true ! audioconvert ! audioresample ! audio/x-raw,format=F32LE,rate=48000,channels=1,layout=interleaved ! appsink name=sink sync=false"
        }
        _ => "fakesink sync=false async=false",
    };
    let bin = gst::parse::bin_from_description(desc, true)?;
    pipeline.add(&bin)?;
    bin.sync_state_with_parent()?;
    {
        let counters = counters.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buf) = info.buffer() {
                let mut c = counters.lock().unwrap();
                if c.in_window(clip::now_ms()) {
                    c.bytes_down += buf.size() as u64;
                }
            }
            gst::PadProbeReturn::Ok
        });
    }
    pad.link(&bin.static_pad("sink").context("receiver bin has no sink")?)?;
    if let Some(depay) = bin.by_name("adepay") {
        count_audio_gaps(&depay, counters.clone())?;
    }
    if kind == "video" {
        counters.lock().unwrap().canvas_codec = Some(encoding.to_lowercase());
        let depay = bin.by_name("depay").context("no depayloader")?;
        let counters = counters.clone();
        depay
            .static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                let Some(buf) = info.buffer() else {
                    return gst::PadProbeReturn::Ok;
                };
                let now = clip::now_ms();
                let mut c = counters.lock().unwrap();
                if c.first_frame_ms.is_none() && !buf.flags().contains(gst::BufferFlags::DELTA_UNIT)
                {
                    c.first_frame_ms = Some(now);
                }
                c.count_frame(now);
                gst::PadProbeReturn::Ok
            });
    }
    let Some(sink) = bin
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
    else {
        return Ok(());
    };
    if kind == "video" {
        sink.set_callbacks(video_reader(media, counters.clone(), tiles.clone()));
    } else {
        sink.set_callbacks(click_reader(media, counters.clone()));
    }
    Ok(())
}

/// Follows the audio packets that leave the jitter buffer for the
/// decoder: gaps are loss, repaired or concealed (`audio_gaps`).
fn count_audio_gaps(depay: &gst::Element, counters: Arc<Mutex<Counters>>) -> anyhow::Result<()> {
    depay
        .static_pad("sink")
        .context("the audio depayloader has no sink")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(map) = info.buffer().and_then(|b| b.map_readable().ok()) else {
                return gst::PadProbeReturn::Ok;
            };
            if let Some((seq, payload)) = rtp_seq_and_payload(&map) {
                let mut c = counters.lock().unwrap();
                c.audio_seen = true;
                c.audio.packet(seq, opus_has_fec(payload));
            }
            gst::PadProbeReturn::Ok
        });
    Ok(())
}

/// Reads each tile's frame code from every decoded canvas frame; a code
/// seen for the first time in a tile is a latency sample.
fn video_reader(
    media: &PeerMedia,
    counters: Arc<Mutex<Counters>>,
    tiles: Arc<Mutex<Vec<Area>>>,
) -> gst_app::AppSinkCallbacks {
    let (epoch, send_size) = (media.epoch_ms, media.send_size);
    let frame_ms = 1000.0 / f64::from(clip::FPS);
    let mut last: Vec<Option<u32>> = Vec::new();
    let mut last_tiles: Vec<Area> = Vec::new();
    gst_app::AppSinkCallbacks::builder()
        .new_sample(move |sink| {
            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
            let now = clip::now_ms();
            let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
            let caps = sample.caps().ok_or(gst::FlowError::Error)?;
            let info = gst_video::VideoInfo::from_caps(caps).map_err(|_| gst::FlowError::Error)?;
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
                .map_err(|_| gst::FlowError::Error)?;
            let stride = frame.plane_stride()[0] as usize;
            let luma = frame.plane_data(0).map_err(|_| gst::FlowError::Error)?;
            let current = tiles.lock().unwrap().clone();
            if current != last_tiles {
                last = vec![None; current.len()];
                last_tiles = current.clone();
            }
            let mut samples = Vec::new();
            let mut coded = false;
            for (i, tile) in current.iter().enumerate() {
                let inside =
                    tile.x + tile.width <= info.width() && tile.y + tile.height <= info.height();
                if !inside {
                    continue;
                }
                let Some(c) = code::read(luma, stride, code::fitted(*tile, send_size)) else {
                    continue;
                };
                coded = true;
                if last[i] != Some(c) {
                    if last[i].is_some() {
                        samples.push(
                            now - code::send_time(c, clip::VIDEO_FRAMES, epoch, frame_ms, now),
                        );
                    }
                    last[i] = Some(c);
                }
            }
            let mut cnt = counters.lock().unwrap();
            cnt.decoded_frame(now);
            if cnt.in_window(now) {
                cnt.video_latency.extend(samples);
                cnt.decoded += 1;
                cnt.coded += u64::from(coded);
            }
            Ok(gst::FlowSuccess::Ok)
        })
        .build()
}

/// Finds clicks in the decoded mix; each is a latency sample against the
/// click schedule (one at the start of every second from the epoch).
fn click_reader(media: &PeerMedia, counters: Arc<Mutex<Counters>>) -> gst_app::AppSinkCallbacks {
    let epoch = media.epoch_ms;
    let mut detector = code::ClickDetector::new(48_000 / 5);
    gst_app::AppSinkCallbacks::builder()
        .new_sample(move |sink| {
            let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
            let now = clip::now_ms();
            let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
            let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
            let samples: Vec<f32> = map
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if let Some(i) = detector.feed(&samples) {
                // Played from the buffer's arrival, the onset is heard i samples in.
                let heard = now + i as f64 / 48.0;
                let sent = epoch + ((heard - epoch) / 1000.0).floor() * 1000.0;
                let mut c = counters.lock().unwrap();
                if c.in_window(now) {
                    c.audio_latency.push(heard - sent);
                }
            }
            Ok(gst::FlowSuccess::Ok)
        })
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_headers_are_told_from_rtcp_and_dtls() {
        let mut rtp = vec![0x80, 96, 0, 1];
        rtp.resize(40, 0);
        assert_eq!(rtp_header(&rtp), Some((96, false)));
        rtp[1] = 0x80 | 102;
        assert_eq!(rtp_header(&rtp), Some((102, true)), "marker bit");
        // A receiver report (packet type 201) in a multiplexed stream.
        let mut rtcp = vec![0x81, 201, 0, 7];
        rtcp.resize(32, 0);
        assert_eq!(rtp_header(&rtcp), None);
        // A DTLS record (content type 22, handshake).
        let mut dtls = vec![22, 0xfe, 0xfd];
        dtls.resize(40, 0);
        assert_eq!(rtp_header(&dtls), None);
        assert_eq!(rtp_header(&[0x80, 96]), None, "shorter than a header");
    }
}
