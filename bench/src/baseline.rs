//! The CPU baseline: the same media work as a Tessera room, as one plain
//! GStreamer pipeline per room, with no WebRTC and no network. Each input
//! is decoded, scaled to its tile and composited onto the canvas, which is
//! encoded once per family in use; each voice is decoded and mixed (one full
//! mix, plus a mix of the others for every talker) and encoded. Inputs are the same
//! pre-encoded clips the synthetic participants send, on the same live
//! schedule; the encoders are the server's own templates.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use serde::{Deserialize, Serialize};
use tessera::config::Config;
use tessera::layout::{place, Member, Size};
use tessera::media::templates::{TemplateKind, Templates};
use tessera::media::{i420_caps, mix_audio_caps, CodecFamily};

use crate::clip::{self, ClipKind, Codec, Feed};

/// One room's work.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomWork {
    /// Each participant's video codec, in join order.
    pub participants: Vec<Codec>,
    /// Families the canvas is encoded in.
    pub families: Vec<Codec>,
    /// Families the low tier's smaller, slower canvas is encoded in.
    #[serde(default)]
    pub low_families: Vec<Codec>,
    /// Participants talking, each with its own mix-minus encode.
    pub talkers: usize,
}

/// Everything the baseline process needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Work {
    /// Rooms.
    pub rooms: Vec<RoomWork>,
    /// Send size of every participant.
    pub send: (u32, u32),
    /// Shared schedule start (Unix ms).
    pub epoch_ms: f64,
    /// Where the clips are.
    pub media_dir: std::path::PathBuf,
}

/// An element of `factory`, or an error naming the missing element.
pub(crate) fn el(factory: &str) -> anyhow::Result<gst::Element> {
    gst::ElementFactory::make(factory)
        .build()
        .with_context(|| format!("the GStreamer element {factory} is missing"))
}

fn caps_filter(caps: gst::Caps) -> anyhow::Result<gst::Element> {
    let f = el("capsfilter")?;
    f.set_property("caps", caps);
    Ok(f)
}

fn chain(pipeline: &gst::Pipeline, elements: &[&gst::Element]) -> anyhow::Result<()> {
    pipeline.add_many(elements.iter().copied())?;
    gst::Element::link_many(elements.iter().copied())?;
    Ok(())
}

/// Links a new pad of `tee` to a new pad of `mixer` (element linking
/// does not pair two request pads).
fn tee_into_mixer(tee: &gst::Element, mixer: &gst::Element) -> anyhow::Result<()> {
    let src = tee.request_pad_simple("src_%u").context("tee pad")?;
    let sink = mixer.request_pad_simple("sink_%u").context("mixer pad")?;
    src.link(&sink)?;
    Ok(())
}

fn family(c: Codec) -> CodecFamily {
    match c {
        Codec::Vp8 => CodecFamily::Vp8,
        Codec::H264 => CodecFamily::H264,
    }
}

fn mixer() -> anyhow::Result<gst::Element> {
    let m = el("audiomixer")?;
    m.set_property("latency", 40_000_000u64);
    m.set_property("output-buffer-duration", 20_000_000u64);
    Ok(m)
}

/// Builds one room's pipeline; returns it and the feeds to pace.
fn room(
    index: usize,
    work: &RoomWork,
    all: &Work,
    config: &Config,
    templates: &Templates,
) -> anyhow::Result<(gst::Pipeline, Vec<Feed>)> {
    let pipeline = gst::Pipeline::with_name(&format!("baseline-{index}"));
    let canvas = Size {
        width: config.media.canvas_width,
        height: config.media.canvas_height,
    };
    let fps = config.media.framerate;
    let layout = tessera::server::default_layout(config)?;
    let members = vec![Member::default(); work.participants.len()];
    let placements = place(&layout, canvas, &members);

    // The server's background: one black frame, repeated live.
    let bg = el("videotestsrc")?;
    bg.set_property("num-buffers", 1i32);
    bg.set_property_from_str("pattern", "black");
    let freeze = el("imagefreeze")?;
    freeze.set_property("is-live", true);
    let compositor = el("compositor")?;
    compositor.set_property("latency", 40_000_000u64);
    compositor.set_property_from_str("background", "black");
    let bg_caps = caps_filter(i420_caps(canvas, Some(fps)))?;
    let canvas_caps = caps_filter(i420_caps(canvas, Some(fps)))?;
    let tee = el("tee")?;
    chain(&pipeline, &[&bg, &freeze, &bg_caps])?;
    chain(&pipeline, &[&compositor, &canvas_caps, &tee])?;
    bg_caps.link(&compositor)?;
    for (i, fam) in work.families.iter().enumerate() {
        let q = el("queue")?;
        q.set_property_from_str("leaky", "downstream");
        q.set_property("max-size-buffers", 2u32);
        let enc = templates
            .build(TemplateKind::Video(family(*fam)), &format!("enc-{i}"))?
            .upcast::<gst::Element>();
        let sink = el("fakesink")?;
        sink.set_property("sync", false);
        chain(&pipeline, &[&q, &enc, &sink])?;
        tee.link(&q)?;
    }
    // The low tier: the canvas thinned and scaled as the server does it,
    // then encoded with the low tier's templates.
    let low = &config.downlink;
    let (low_w, low_h) = low.low_size((canvas.width, canvas.height));
    for (i, fam) in work.low_families.iter().enumerate() {
        let q = el("queue")?;
        q.set_property_from_str("leaky", "downstream");
        q.set_property("max-size-buffers", 2u32);
        let rate = el("videorate")?;
        rate.set_property("drop-only", true);
        let scale = el("videoscale")?;
        let caps = caps_filter(i420_caps(
            Size {
                width: low_w,
                height: low_h,
            },
            Some(low.low_framerate),
        ))?;
        let enc = templates
            .build(
                TemplateKind::LowVideo(family(*fam)),
                &format!("low-enc-{i}"),
            )?
            .upcast::<gst::Element>();
        let sink = el("fakesink")?;
        sink.set_property("sync", false);
        chain(&pipeline, &[&q, &rate, &scale, &caps, &enc, &sink])?;
        tee.link(&q)?;
    }

    // Audio: one full mix, encoded once, plus a mix per talker of the
    // silence and every voice but its own.
    let full = mixer()?;
    let full_tee = el("tee")?;
    let silence_tee = el("tee")?;
    let silence = el("audiotestsrc")?;
    silence.set_property("is-live", true);
    silence.set_property_from_str("wave", "silence");
    silence.set_property("samplesperbuffer", 960i32);
    let silence_caps = caps_filter(mix_audio_caps())?;
    let full_caps = caps_filter(mix_audio_caps())?;
    chain(&pipeline, &[&full, &full_caps, &full_tee])?;
    chain(&pipeline, &[&silence, &silence_caps, &silence_tee])?;
    tee_into_mixer(&silence_tee, &full)?;
    let encode = |from: &gst::Element, name: &str| -> anyhow::Result<()> {
        let q = el("queue")?;
        let convert = el("audioconvert")?;
        let enc = templates
            .build(TemplateKind::Opus, name)?
            .upcast::<gst::Element>();
        let sink = el("fakesink")?;
        sink.set_property("sync", false);
        chain(&pipeline, &[&q, &convert, &enc, &sink])?;
        from.link(&q)?;
        Ok(())
    };
    encode(&full_tee, "full-opus")?;
    let mut own_mixes = Vec::new();
    for t in 0..work.talkers.min(work.participants.len()) {
        let own = mixer()?;
        pipeline.add(&own)?;
        tee_into_mixer(&silence_tee, &own)?;
        encode(&own, &format!("minus-{t}"))?;
        own_mixes.push(own);
    }

    let mut feeds = Vec::new();
    let quiet = clip::load(&all.media_dir, ClipKind::Quiet)?;
    let clicks = clip::load(&all.media_dir, ClipKind::Clicks)?;
    for (p, codec) in work.participants.iter().enumerate() {
        let video = clip::load(
            &all.media_dir,
            ClipKind::Video(*codec, all.send.0, all.send.1),
        )?;
        let Some(placement) = placements.iter().find(|pl| pl.member == p) else {
            continue;
        };
        let r = placement.rect;
        let src = clip::appsrc(&video, &format!("v{p}"));
        let dec = match codec {
            Codec::Vp8 => {
                let d = el("vp8dec")?;
                d.set_property("threads", 1u32);
                d
            }
            Codec::H264 => {
                let d = el("avdec_h264")?;
                d.set_property("max-threads", 1i32);
                d
            }
        };
        let convert = el("videoconvert")?;
        let scale = el("videoscale")?;
        scale.set_property_from_str("method", "bilinear");
        scale.set_property("add-borders", true);
        let tile = caps_filter(i420_caps(
            Size {
                width: r.width,
                height: r.height,
            },
            None,
        ))?;
        let q = el("queue")?;
        q.set_property_from_str("leaky", "downstream");
        q.set_property("max-size-buffers", 3u32);
        chain(
            &pipeline,
            &[src.upcast_ref(), &dec, &convert, &scale, &tile, &q],
        )?;
        let pad = compositor
            .request_pad_simple("sink_%u")
            .context("compositor pad")?;
        pad.set_property("xpos", r.x as i32);
        pad.set_property("ypos", r.y as i32);
        pad.set_property("width", r.width as i32);
        pad.set_property("height", r.height as i32);
        pad.set_property("zorder", 1 + placement.z);
        q.static_pad("src").unwrap().link(&pad)?;
        feeds.push(Feed {
            src,
            clip: video,
            bytes: Arc::new(AtomicU64::new(0)),
        });

        let voice = if p == 0 {
            clicks.clone()
        } else {
            quiet.clone()
        };
        let asrc = clip::appsrc(&voice, &format!("a{p}"));
        let dec = el("opusdec")?;
        let convert = el("audioconvert")?;
        let resample = el("audioresample")?;
        let caps = caps_filter(mix_audio_caps())?;
        let q = el("queue")?;
        let voice_tee = el("tee")?;
        chain(
            &pipeline,
            &[
                asrc.upcast_ref(),
                &dec,
                &convert,
                &resample,
                &caps,
                &q,
                &voice_tee,
            ],
        )?;
        tee_into_mixer(&voice_tee, &full)?;
        for (t, own) in own_mixes.iter().enumerate() {
            if t != p {
                tee_into_mixer(&voice_tee, own)?;
            }
        }
        feeds.push(Feed {
            src: asrc,
            clip: voice,
            bytes: Arc::new(AtomicU64::new(0)),
        });
    }
    Ok((pipeline, feeds))
}

/// Runs the baseline until `stop` is set.
pub fn run(work: &Work, config_path: Option<&Path>, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    gst::init()?;
    let config = Config::load(config_path)?;
    let templates = Templates::load(&config.media.pipelines_dir)?;
    let mut pipelines = Vec::new();
    let mut feeds = Vec::new();
    for (i, r) in work.rooms.iter().enumerate() {
        let (p, f) = room(i, r, work, &config, &templates)?;
        pipelines.push(p);
        feeds.extend(f);
    }
    for p in &pipelines {
        p.set_state(gst::State::Playing)
            .context("the baseline pipeline does not play")?;
    }
    let pacer = clip::pace(feeds, work.epoch_ms, stop.clone());
    println!("ready");
    let _ = pacer.join();
    for p in &pipelines {
        if let Some(bus) = p.bus() {
            if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
                eprintln!("baseline: {msg:?}");
            }
        }
        let _ = p.set_state(gst::State::Null);
    }
    Ok(())
}
