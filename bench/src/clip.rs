//! Pre-encoded media: short clips (VP8 or H.264 video carrying a frame code,
//! Opus audio with or without clicks) made once with GStreamer and cached on
//! disk, then pushed into `appsrc`s on a shared live schedule, so that the
//! synthetic participants and the baseline spend no time encoding.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use crate::code;

/// Video frames per clip (10 s at 30 fps); the frame code runs modulo this.
pub const VIDEO_FRAMES: u32 = 300;
/// Video frame rate of every clip.
pub const FPS: u32 = 30;
/// Opus frame length.
const AUDIO_FRAME_MS: f64 = 20.0;
/// Audio frames per clip (10 s).
const AUDIO_FRAMES: u32 = 500;
const MAGIC: &[u8] = b"TSCLIP1\n";

/// A video codec a synthetic participant sends and receives.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// VP8.
    Vp8,
    /// H.264 constrained baseline.
    H264,
}

impl Codec {
    /// Lower-case name, as on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Vp8 => "vp8",
            Codec::H264 => "h264",
        }
    }
}

/// What a clip holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClipKind {
    /// Moving test picture with the frame code, in this codec and size.
    Video(Codec, u32, u32),
    /// Silence with a click at the start of every second.
    Clicks,
    /// A quiet tone below the server's talking threshold.
    Quiet,
    /// A voice-like sound, loud enough to be talking: a vowel's harmonics
    /// rising and falling at the pace of syllables, never silent.
    Voice,
}

/// Encoded frames, ready to push.
#[derive(Debug)]
pub struct Clip {
    /// Caps of the encoded stream.
    pub caps: gst::Caps,
    /// Frame duration.
    pub frame_ms: f64,
    /// Frames in order, flagged as delta units where they are not keyframes.
    pub frames: Vec<gst::Buffer>,
}

impl ClipKind {
    fn file_name(self) -> String {
        match self {
            ClipKind::Video(c, w, h) => format!("{}-{w}x{h}.clip", c.name()),
            ClipKind::Clicks => "opus-clicks.clip".into(),
            ClipKind::Quiet => "opus-quiet.clip".into(),
            ClipKind::Voice => "opus-voice.clip".into(),
        }
    }
}

/// Loads a clip from `dir`, making it first if it is not there.
pub fn load(dir: &Path, kind: ClipKind) -> anyhow::Result<Arc<Clip>> {
    let path = dir.join(kind.file_name());
    if !path.exists() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let clip = make(kind).with_context(|| format!("encoding {}", path.display()))?;
        save(&clip, &path)?;
    }
    read(&path).map(Arc::new)
}

/// Writes `clip` to `path` whole or not at all. The part file is this
/// process's own: two runs making the same clip at once (the smoke tests
/// do) each write their own and rename it into place, and either one wins.
fn save(clip: &Clip, path: &Path) -> anyhow::Result<()> {
    let tmp = PathBuf::from(format!("{}.{}.part", path.display(), std::process::id()));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    out.write_all(MAGIC)?;
    writeln!(out, "{}", clip.caps)?;
    writeln!(out, "{}", clip.frame_ms)?;
    for buf in &clip.frames {
        let map = buf.map_readable()?;
        out.write_all(&(map.len() as u32).to_le_bytes())?;
        out.write_all(&[u8::from(
            !buf.flags().contains(gst::BufferFlags::DELTA_UNIT),
        )])?;
        out.write_all(&map)?;
    }
    out.flush()?;
    drop(out);
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<Clip> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .with_context(|| format!("reading {}", path.display()))?;
    let bad = || {
        anyhow::anyhow!(
            "{} is not a clip; delete it to have it made again",
            path.display()
        )
    };
    let rest = bytes.strip_prefix(MAGIC).ok_or_else(bad)?;
    let mut lines = rest.splitn(3, |&b| b == b'\n');
    let caps: gst::Caps = std::str::from_utf8(lines.next().ok_or_else(bad)?)?
        .parse()
        .map_err(|_| bad())?;
    let frame_ms: f64 = std::str::from_utf8(lines.next().ok_or_else(bad)?)?.parse()?;
    let mut data = lines.next().ok_or_else(bad)?;
    let mut frames = Vec::new();
    while !data.is_empty() {
        if data.len() < 5 {
            return Err(bad());
        }
        let len = u32::from_le_bytes(data[..4].try_into()?) as usize;
        let key = data[4] == 1;
        let payload = data.get(5..5 + len).ok_or_else(bad)?;
        let mut buf = gst::Buffer::from_slice(payload.to_vec());
        if !key {
            buf.get_mut()
                .unwrap()
                .set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        frames.push(buf);
        data = &data[5 + len..];
    }
    Ok(Clip {
        caps,
        frame_ms,
        frames,
    })
}

fn video_encoder(codec: Codec, width: u32) -> String {
    let kbps = match width {
        0..=400 => 250,
        401..=700 => 600,
        _ => 1500,
    };
    match codec {
        Codec::Vp8 => format!(
            "vp8enc deadline=1 cpu-used=4 threads=1 end-usage=cbr target-bitrate={} keyframe-max-dist=30 lag-in-frames=0",
            kbps * 1000
        ),
        Codec::H264 => format!(
            "x264enc tune=zerolatency speed-preset=veryfast threads=1 bitrate={kbps} key-int-max=30 bframes=0 \
             ! video/x-h264,profile=constrained-baseline,stream-format=byte-stream,alignment=au"
        ),
    }
}

/// Encodes a clip with GStreamer.
fn make(kind: ClipKind) -> anyhow::Result<Clip> {
    let (description, frame_ms) = match kind {
        ClipKind::Video(codec, w, h) => (
            format!(
                "videotestsrc num-buffers={VIDEO_FRAMES} pattern=smpte horizontal-speed=3 \
                 ! video/x-raw,format=I420,width={w},height={h},framerate={FPS}/1 \
                 ! identity name=mark ! {} ! appsink name=out sync=false",
                video_encoder(codec, w)
            ),
            1000.0 / f64::from(FPS),
        ),
        ClipKind::Clicks | ClipKind::Quiet | ClipKind::Voice => (
            "appsrc name=pcm format=time caps=audio/x-raw,format=F32LE,rate=48000,channels=1,layout=interleaved \
             ! audioconvert ! opusenc bitrate=32000 frame-size=20 ! appsink name=out sync=false"
                .to_string(),
            AUDIO_FRAME_MS,
        ),
    };
    let pipeline = gst::parse::launch(&description)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    if let Some(mark) = pipeline.by_name("mark") {
        let count = Mutex::new(0u32);
        mark.static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                let Some(caps) = pad.current_caps() else {
                    return gst::PadProbeReturn::Ok;
                };
                let Ok(vinfo) = gst_video::VideoInfo::from_caps(&caps) else {
                    return gst::PadProbeReturn::Ok;
                };
                let mut n = count.lock().unwrap();
                if let Some(buf) = info.buffer_mut() {
                    if let Ok(mut frame) =
                        gst_video::VideoFrameRef::from_buffer_ref_writable(buf.make_mut(), &vinfo)
                    {
                        let stride = frame.plane_stride()[0] as usize;
                        if let Ok(luma) = frame.plane_data_mut(0) {
                            code::draw(luma, stride, vinfo.width(), vinfo.height(), *n);
                        }
                    }
                }
                *n += 1;
                gst::PadProbeReturn::Ok
            });
    }
    let sink = pipeline
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing)?;
    if let Some(src) = pipeline.by_name("pcm") {
        let src = src.downcast::<gst_app::AppSrc>().unwrap();
        let samples = pcm(kind);
        for (i, chunk) in samples.chunks(960).enumerate() {
            let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
            let mut buf = gst::Buffer::from_slice(bytes);
            let b = buf.get_mut().unwrap();
            b.set_pts(gst::ClockTime::from_mseconds(i as u64 * 20));
            b.set_duration(gst::ClockTime::from_mseconds(20));
            src.push_buffer(buf)?;
        }
        src.end_of_stream()?;
    }
    let mut frames = Vec::new();
    let mut caps = None;
    while let Ok(sample) = sink.pull_sample() {
        caps = caps.or_else(|| sample.caps().map(|c| c.to_owned()));
        if let Some(buf) = sample.buffer() {
            let mut copy = gst::Buffer::from_slice(buf.map_readable()?.to_vec());
            copy.get_mut()
                .unwrap()
                .set_flags(buf.flags() & gst::BufferFlags::DELTA_UNIT);
            frames.push(copy);
        }
    }
    pipeline.set_state(gst::State::Null)?;
    let expected = match kind {
        ClipKind::Video(..) => VIDEO_FRAMES as usize,
        _ => AUDIO_FRAMES as usize,
    };
    if frames.len() < expected {
        bail!("the encoder gave {} frames of {expected}", frames.len());
    }
    frames.truncate(expected);
    if frames[0].flags().contains(gst::BufferFlags::DELTA_UNIT) {
        bail!("the clip does not start with a keyframe");
    }
    let caps = caps.ok_or_else(|| anyhow::anyhow!("the encoder gave no caps"))?;
    Ok(Clip {
        caps,
        frame_ms,
        frames,
    })
}

/// Ten seconds of 48 kHz mono: a click (a few ms of 2 kHz) at the start of
/// each second, a quiet 440 Hz tone (about −54 dBFS), or a voice.
fn pcm(kind: ClipKind) -> Vec<f32> {
    let rate = 48_000usize;
    let len = rate * (AUDIO_FRAMES as usize) * 20 / 1000;
    (0..len)
        .map(|i| {
            let t = i as f32 / rate as f32;
            match kind {
                ClipKind::Clicks if i % rate < 240 => {
                    0.9 * (std::f32::consts::TAU * 2000.0 * t).sin()
                }
                ClipKind::Quiet => 0.002 * (std::f32::consts::TAU * 440.0 * t).sin(),
                ClipKind::Voice => {
                    // Four syllables a second, between a third and all of
                    // the voice's strength, on a 150 Hz voice's first
                    // harmonics.
                    let syllable = 0.65 - 0.35 * (std::f32::consts::TAU * 4.0 * t).cos();
                    let vowel: f32 = (1..=8)
                        .map(|h| (std::f32::consts::TAU * 150.0 * h as f32 * t).sin() / h as f32)
                        .sum();
                    0.12 * syllable * vowel
                }
                _ => 0.0,
            }
        })
        .collect()
}

/// One source on the schedule: an `appsrc` and the clip it loops.
pub struct Feed {
    /// Where frames go.
    pub src: gst_app::AppSrc,
    /// What is sent.
    pub clip: Arc<Clip>,
    /// Bytes pushed so far.
    pub bytes: Arc<std::sync::atomic::AtomicU64>,
}

/// The appsrc caps and properties every feed uses: live, timestamped on push.
pub fn appsrc(clip: &Clip, name: &str) -> gst_app::AppSrc {
    gst_app::AppSrc::builder()
        .name(name)
        .caps(&clip.caps)
        .is_live(true)
        .do_timestamp(true)
        .format(gst::Format::Time)
        .max_bytes(2_000_000)
        .build()
}

/// Milliseconds since the Unix epoch, as the schedule counts them.
pub fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// Pushes every feed's frames on the shared schedule (frame `n` of a clip at
/// `epoch_ms + n * frame_ms`, looping), from one thread, until `stop`. Video
/// feeds start at a keyframe.
pub fn pace(feeds: Vec<Feed>, epoch_ms: f64, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let now = now_ms();
        let mut next: Vec<u64> = feeds
            .iter()
            .map(|f| ((now - epoch_ms) / f.clip.frame_ms).ceil().max(0.0) as u64)
            .collect();
        let mut started = vec![false; feeds.len()];
        // A camera has a picture at once, and webrtcbin offers only once
        // its inputs have caps: send the latest keyframe now, out of
        // schedule, then go on from the next scheduled keyframe.
        for (feed, n) in feeds.iter().zip(&next) {
            let len = feed.clip.frames.len();
            let due = (*n % len as u64) as usize;
            let key = (0..=due).rev().find(|i| {
                !feed.clip.frames[*i]
                    .flags()
                    .contains(gst::BufferFlags::DELTA_UNIT)
            });
            if let Some(k) = key.filter(|k| *k != due) {
                let _ = feed.src.push_buffer(feed.clip.frames[k].copy());
            }
        }
        while !stop.load(Ordering::Relaxed) {
            let (i, due) = next
                .iter()
                .enumerate()
                .map(|(i, n)| (i, epoch_ms + *n as f64 * feeds[i].clip.frame_ms))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .expect("at least one feed");
            let wait = due - now_ms();
            if wait > 0.0 {
                std::thread::sleep(Duration::from_micros((wait * 1000.0) as u64));
            }
            let feed = &feeds[i];
            let frame = &feed.clip.frames[(next[i] % feed.clip.frames.len() as u64) as usize];
            next[i] += 1;
            if !started[i] && frame.flags().contains(gst::BufferFlags::DELTA_UNIT) {
                continue;
            }
            started[i] = true;
            feed.bytes.fetch_add(frame.size() as u64, Ordering::Relaxed);
            if feed.src.push_buffer(frame.copy()).is_err() {
                // Flushing or shut down: keep the schedule, the pipeline may come back.
            }
        }
    })
}
