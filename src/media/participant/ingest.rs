//! Ingest: what a participant sends, depayloaded and decoded with explicit
//! elements for the codecs the answer allowed (no `decodebin`), then placed
//! into the canvas and the audio mix.
//!
//! ```text
//! webrtcbin src (VP8)  ─► rtpvp8depay ─► vp8dec(threads=1) ─┐
//! webrtcbin src (H264) ─► rtph264depay ─► avdec_h264 ───────┴► videoconvert ─► videoscale(bilinear, borders)
//!                         ─► caps(I420, tile size) ─► queue(leaky) ─► compositor (tile)
//! webrtcbin src (OPUS) ─► rtpopusdepay ─► opusdec ─┐
//! phone RTP (PCMU, PCMA, G722) ─► depay ─► decoder ─► spanplc ─┴► audioconvert ─► audioresample ─► caps(F32 48k mono)
//!                         ─► audiorate ─► volume (teacher's mute) ─► level (talk detection) ─► queue ─► mix tee
//!                         mix tee ─► full mixer
//!                         mix tee ─► every other talker's own mixer (talk.rs)
//! ```

use anyhow::{bail, Context as _};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use tokio::sync::mpsc::UnboundedSender;

use super::crop::TileCrop;
use super::label::TileLabel;
use super::tile::{apply_visibility, screen_label_height, VideoTile};
use super::{talk, ParticipantMedia, Room};
use crate::ids::ParticipantId;
use crate::layout::file::Fit;
use crate::layout::Size;
use crate::media::build::Added;
use crate::media::codec::CodecFamily;
use crate::media::formats::{i420_caps, mix_audio_caps};
use crate::media::make::{
    make_capsfilter, make_element, make_leaky_queue, make_tee, sync_downstream_first,
};
use crate::media::phone::PhoneCodec;
use crate::media::probes::{drop_stale, hide_latency, swallow, time_segment};
use crate::media::MediaEvent;

/// Name suffix of a voice's `level` element; its bus messages carry the
/// participant id as the name's prefix.
pub const VOICE_LEVEL_SUFFIX: &str = "voice-level";
/// How often a voice's loudness is reported. Short enough that a talker's
/// own encoder takes over before the full mix carries their first syllable
/// back to them (the mixers' latency is longer than this).
const LEVEL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// How long a decoded frame stays on the canvas unless a newer one comes.
///
/// Frames from the network carry no duration. The compositor then waits,
/// for every canvas frame, for a participant frame that starts within it,
/// and when none does (a sender a little slower than the canvas, jitter,
/// a frozen camera) it waits out its whole latency, delaying everyone's
/// canvas. With this duration the last frame simply stays up until the
/// next one arrives, and the canvas goes out on the canvas clock.
const FRAME_HOLD: gst::ClockTime = gst::ClockTime::from_seconds(3600);

/// How long past the jitter buffer's latency an incoming packet may reach
/// its depayloader before it is dropped as stale ([`drop_stale`]).
const STALE_MARGIN: std::time::Duration = std::time::Duration::from_millis(250);

/// Decoded frames a tile's queue may hold before dropping the oldest.
const TILE_QUEUE: u32 = 3;
/// Decoded 20 ms audio buffers queued in front of the mixers: a full
/// second, so that only a stalled mixer ever drops voice.
const VOICE_QUEUE: u32 = 50;

/// Which of a participant's video streams an incoming pad carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Camera,
    Screen,
}

impl ParticipantMedia {
    /// Links a new incoming stream and releases its blocking probe.
    pub(in crate::media) fn link_incoming(
        &mut self,
        room: &Room<'_>,
        pad: &gst::Pad,
        probe: gst::PadProbeId,
        events: &UnboundedSender<MediaEvent>,
    ) -> anyhow::Result<()> {
        let caps = pad
            .current_caps()
            .or_else(|| Some(pad.query_caps(None)))
            .context("incoming pad has no caps")?;
        let s = caps.structure(0).context("incoming caps are empty")?;
        let media = s.get::<&str>("media").unwrap_or_default().to_string();
        let encoding = s
            .get::<&str>("encoding-name")
            .unwrap_or_default()
            .to_ascii_uppercase();
        let mline = self.transport.mline_of(pad);
        let screen = self.screen.as_ref().is_some_and(|s| Some(s.mline) == mline);
        let mut added = Added::default();
        let video_family = match encoding.as_str() {
            "VP8" => Some(CodecFamily::Vp8),
            "H264" => Some(CodecFamily::H264),
            _ => None,
        };
        let result = match (media.as_str(), encoding.as_str()) {
            ("video", _) if video_family == Some(self.family) => {
                let source = if screen {
                    Source::Screen
                } else {
                    Source::Camera
                };
                self.link_video(room, pad, source, events, &mut added)
            }
            ("audio", _) => match PhoneCodec::from_encoding_name(&encoding) {
                Some(codec) => self.link_audio(room, pad, codec, &mut added),
                None => Err(anyhow::anyhow!(
                    "incoming audio in {encoding} was not negotiated"
                )),
            },
            _ => Err(anyhow::anyhow!(
                "incoming {media} stream in {encoding} was not negotiated"
            )),
        };
        match &result {
            Ok(()) => self.elements.extend(added.into_elements()),
            Err(_) => {
                // Unlinked, the pad drops what arrives; the rest of the participant goes on.
                if let Some(peer) = pad.peer() {
                    let _ = pad.unlink(&peer);
                }
                added.undo(room.pipeline.upcast_ref());
                if media != "video" {
                    self.mix_tee = None;
                }
            }
        }
        pad.remove_probe(probe);
        result
    }

    fn link_video(
        &mut self,
        room: &Room<'_>,
        pad: &gst::Pad,
        source: Source,
        events: &UnboundedSender<MediaEvent>,
        added: &mut Added,
    ) -> anyhow::Result<()> {
        let (rect, text) = match source {
            Source::Camera if self.video.is_some() => {
                bail!("a second incoming camera stream is not supported")
            }
            Source::Camera => (self.tile, self.name.clone()),
            Source::Screen => match &self.screen {
                Some(s) if s.tile.is_some() => {
                    bail!("a second incoming screen stream is not supported")
                }
                Some(s) => (
                    s.rect.unwrap_or(self.tile),
                    format!("{} (screen)", self.name),
                ),
                None => bail!("no screen m-line was negotiated"),
            },
        };
        let family = self.family;
        let id = self.id.clone();
        let n = |what: &str| match source {
            Source::Camera => format!("{id}-{what}"),
            Source::Screen => format!("{id}-screen-{what}"),
        };
        let (depay, dec) = match family {
            CodecFamily::Vp8 => {
                let dec = make_element("vp8dec", &n("vp8dec"))?;
                // libvpx threads spin-wait on an oversubscribed two-core machine.
                dec.set_property("threads", 1u32);
                (make_element("rtpvp8depay", &n("vp8depay"))?, dec)
            }
            CodecFamily::H264 => {
                let dec = make_element("avdec_h264", &n("h264dec"))?;
                dec.set_property("max-threads", 1i32);
                (make_element("rtph264depay", &n("h264depay"))?, dec)
            }
        };
        // Ask the sender for a keyframe (PLI) on loss, and decode nothing until one came.
        depay.set_property("request-keyframe", true);
        depay.set_property("wait-for-keyframe", true);
        guard_input(
            &dec,
            room.settings.max_input,
            room.settings.framerate,
            &id,
            events,
        )?;
        let crop = TileCrop::new(make_element("videocrop", &n("crop"))?)?;
        let convert = make_element("videoconvert", &n("videoconvert"))?;
        let scale = make_element("videoscale", &n("videoscale"))?;
        scale.set_property_from_str("method", "bilinear");
        scale.set_property("add-borders", true);
        let tile_size = Size {
            width: rect.width,
            height: rect.height,
        };
        let tile_caps = make_capsfilter(&n("tile-caps"), &i420_caps(tile_size, None))?;
        let label_height = match source {
            Source::Camera => rect.height,
            Source::Screen => screen_label_height(rect.height),
        };
        let label = TileLabel::new(&n("label"), &text, self.label, label_height)?;
        let label_element = label.element().clone();
        let queue = make_leaky_queue(&n("tile-queue"), TILE_QUEUE)?;
        // A frame that comes late shows from the next canvas frame on
        // (FRAME_HOLD keeps the previous one up): the compositor must not
        // wait out the jitter buffer's latency for it.
        hide_latency(&queue.static_pad("src").context("tile queue src")?);
        super::newest_frame::newest_frame_only(&queue.static_pad("src").context("tile queue src")?);
        let chain = [
            &depay,
            &dec,
            crop.element(),
            &convert,
            &scale,
            &tile_caps,
            &label_element,
            &queue,
        ];
        let bin = room.bin();
        added.chain(&bin, &chain)?;
        let comp_pad = added.request(room.compositor, "sink_%u")?;
        queue
            .static_pad("src")
            .context("tile queue src")?
            .link(&comp_pad)
            .context("linking tile to compositor")?;
        let tile = VideoTile {
            caps: tile_caps.clone(),
            pad: comp_pad.clone(),
            label,
            crop: crop.clone(),
            depay_sink: depay.static_pad("sink").context("depayloader sink")?,
            decoded: dec.static_pad("src").context("decoder src")?,
        };
        match source {
            Source::Camera => {
                tile.place(rect, 2, self.fit);
                self.video = Some(tile);
                apply_visibility(self);
            }
            Source::Screen => {
                // Hidden until the actor places it (the user is sharing).
                tile.place(rect, 2, Fit::Letterbox);
                comp_pad.set_property("alpha", 0.0f64);
                if let Some(s) = self.screen.as_mut() {
                    s.tile = Some(tile);
                }
            }
        }

        // Tell the actor when the first decoded frame reaches the canvas.
        {
            let events = events.clone();
            let id = id.clone();
            let screen = source == Source::Screen;
            comp_pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                let _ = events.send(MediaEvent::VideoStarted {
                    participant: id.clone(),
                    screen,
                });
                gst::PadProbeReturn::Remove
            });
        }

        sync_downstream_first(&chain)?;
        let depay_sink = depay.static_pad("sink").context("depayloader sink")?;
        drop_stale(&depay_sink, room.settings.jitter_buffer + STALE_MARGIN);
        pad.link(&depay_sink)
            .context("linking webrtcbin to depayloader")?;
        room.latency_changed();
        // Ask the sender for a keyframe now rather than at its next periodic one.
        depay_sink.push_event(
            gst_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build(),
        );
        Ok(())
    }

    fn link_audio(
        &mut self,
        room: &Room<'_>,
        pad: &gst::Pad,
        codec: PhoneCodec,
        added: &mut Added,
    ) -> anyhow::Result<()> {
        if self.mix_tee.is_some() {
            bail!("a second incoming audio stream is not supported");
        }
        let id = self.id.clone();
        let n = |what: &str| format!("{id}-{what}");
        let (depay, decoders) = voice_decoder(&id, codec)?;
        let convert = make_element("audioconvert", &n("audioconvert"))?;
        let resample = make_element("audioresample", &n("audioresample"))?;
        let caps = make_capsfilter(&n("voice-caps"), &mix_audio_caps())?;
        // Sample-exact timestamps: a gapless voice, placed alike by every
        // mixer it goes into, which RTP arrival jitter would otherwise shift.
        let rate = make_element("audiorate", &n("voice-rate"))?;
        // Start at the first real sample, not with silence from time zero.
        rate.set_property("skip-to-first", true);
        // A burst would leave the voice laid out ahead of real time for
        // good, and every mix would wait for it (catch_up.rs).
        super::catch_up::catch_up(&rate, room.room, &id).context("voice audiorate pads")?;
        // A teacher's mute: silence before the level and the tee, so the
        // voice leaves every mix together, and a silenced participant
        // cannot become the active speaker.
        let gate = make_element("volume", &n("voice-gate"))?;
        gate.set_property("mute", self.silenced);
        // Loudness for talk detection, posted on the bus every LEVEL_INTERVAL.
        let level = make_element("level", &n(VOICE_LEVEL_SUFFIX))?;
        level.set_property("interval", LEVEL_INTERVAL.as_nanos() as u64);
        level.set_property("post-messages", true);
        let to_mixers = make_leaky_queue(&n("voice-queue"), VOICE_QUEUE)?;
        let tee = make_tee(&n("voice-mix-tee"))?;

        center_on_sample(&to_mixers.static_pad("sink").context("voice queue sink")?);
        let bin = room.bin();
        let mut main = vec![&depay];
        main.extend(decoders.iter());
        main.extend([
            &convert, &resample, &caps, &rate, &gate, &level, &to_mixers, &tee,
        ]);
        added.chain(&bin, &main)?;

        // Voice that comes later than a mixer's deadline is late for the
        // whole room: the mixers do not wait out the jitter buffer for it
        // (audio is not retransmitted; Opus in-band FEC covers loss).
        hide_latency(&to_mixers.static_pad("src").context("voice queue src")?);
        // Into the full mix, and into the own mix of everyone talking now
        // (talk.rs adds it to the mix of whoever starts later).
        for mixer in talk::room_mixers(room) {
            let sink = added.request(&mixer, "sink_%u")?;
            let src = added.request(&tee, "src_%u")?;
            src.link(&sink)
                .with_context(|| format!("linking the voice into {}", mixer.name()))?;
        }

        sync_downstream_first(&main)?;
        self.voice_gate = Some(gate);
        self.mix_tee = Some(tee);
        let depay_sink = depay.static_pad("sink").context("voice depayloader sink")?;
        drop_stale(&depay_sink, room.settings.jitter_buffer + STALE_MARGIN);
        pad.link(&depay_sink)
            .context("linking the transport to the voice depayloader")?;
        room.latency_changed();
        Ok(())
    }
}

/// The depayloader and the decoders of an incoming voice in `codec`,
/// with loss concealment: Opus's own, with the FEC in the next packet
/// (asked for with `useinbandfec=1` in a WebRTC answer); for the
/// telephone codecs, `spanplc` fills the gaps the jitter buffer reports.
fn voice_decoder(
    id: &ParticipantId,
    codec: PhoneCodec,
) -> anyhow::Result<(gst::Element, Vec<gst::Element>)> {
    let n = |what: &str| format!("{id}-{what}");
    let (depay, dec) = match codec {
        PhoneCodec::Opus => ("rtpopusdepay", "opusdec"),
        PhoneCodec::Pcmu => ("rtppcmudepay", "mulawdec"),
        PhoneCodec::Pcma => ("rtppcmadepay", "alawdec"),
        PhoneCodec::G722 => ("rtpg722depay", "avdec_g722"),
    };
    let depay = make_element(depay, &n("voice-depay"))?;
    let dec = make_element(dec, &n("voice-dec"))?;
    if codec == PhoneCodec::Opus {
        dec.set_property("plc", true);
        dec.set_property("use-inband-fec", true);
        return Ok((depay, vec![dec]));
    }
    let convert = make_element("audioconvert", &n("voice-plc-convert"))?;
    let plc = make_element("spanplc", &n("voice-plc"))?;
    Ok((depay, vec![dec, convert, plc]))
}

/// Lets frames through at no more than the canvas's rate on average: a
/// token bucket filled by the frames' own timestamps, so arrival jitter
/// passes and a sender faster than the canvas is thinned at once, without
/// the frame of delay a `videorate` would add.
#[derive(Debug)]
struct RateGate {
    /// Frames allowed per second (a little above the canvas rate).
    rate: f64,
    tokens: f64,
    last: Option<u64>,
}

/// Frames a gate lets through back to back after a pause.
const RATE_BURST: f64 = 4.0;

impl RateGate {
    fn new(fps: u32) -> RateGate {
        RateGate {
            rate: f64::from(fps.max(1)) * 1.1,
            tokens: RATE_BURST,
            last: None,
        }
    }

    /// Whether a frame stamped `pts` (nanoseconds) goes on.
    fn pass(&mut self, pts: Option<u64>) -> bool {
        let Some(pts) = pts else {
            return true;
        };
        if let Some(last) = self.last {
            let elapsed = pts.saturating_sub(last) as f64 / 1e9;
            self.tokens = (self.tokens + elapsed * self.rate).min(RATE_BURST);
        }
        self.last = Some(pts);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Drops decoded frames larger than `max` (an 8K or size-flipping sender
/// must not stall or blow up the canvas) and tells the room when the
/// sender goes over or comes back under; drops frames beyond the canvas's
/// `fps` (a 120 fps sender costs the canvas no more than a 30 fps one).
fn guard_input(
    dec: &gst::Element,
    max: Size,
    fps: u32,
    participant: &ParticipantId,
    events: &UnboundedSender<MediaEvent>,
) -> anyhow::Result<()> {
    let over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = std::sync::Mutex::new(RateGate::new(fps));
    let (participant, events) = (participant.clone(), events.clone());
    let src = dec.static_pad("src").context("decoder src")?;
    src.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            use std::sync::atomic::Ordering;
            if let Some(gst::PadProbeData::Event(ev)) = &info.data {
                let gst::EventView::Caps(c) = ev.view() else {
                    return gst::PadProbeReturn::Ok;
                };
                let Some(s) = c.caps().structure(0) else {
                    return gst::PadProbeReturn::Ok;
                };
                let (w, h) = (
                    s.get::<i32>("width").unwrap_or(0),
                    s.get::<i32>("height").unwrap_or(0),
                );
                let too_big = w > max.width as i32 || h > max.height as i32;
                if over.swap(too_big, Ordering::SeqCst) != too_big {
                    let _ = events.send(MediaEvent::VideoTooLarge {
                        participant: participant.clone(),
                        width: w,
                        height: h,
                        over: too_big,
                    });
                }
                // The caps pass (downstream scales to the tile whatever
                // comes); the frames do not.
                return gst::PadProbeReturn::Ok;
            }
            let pts = info.buffer().and_then(|b| b.pts()).map(|t| t.nseconds());
            let in_time = gate.lock().map_or(true, |mut g| g.pass(pts));
            if over.load(Ordering::SeqCst) || !in_time {
                return swallow(info);
            }
            if let Some(buf) = info.buffer_mut() {
                buf.make_mut().set_duration(FRAME_HOLD);
            }
            gst::PadProbeReturn::Ok
        },
    );
    Ok(())
}

/// The running time of the middle of 48 kHz sample `n`.
fn sample_middle(n: u64) -> u64 {
    (u128::from(n) * 1_000_000_000 / 48_000) as u64 + HALF_SAMPLE_NS
}

/// The 48 kHz sample that running time `rt` falls in.
fn sample_at(rt: u64) -> u64 {
    (u128::from(rt) * 48_000 / 1_000_000_000) as u64
}

/// Half of one 48 kHz sample period, in nanoseconds.
const HALF_SAMPLE_NS: u64 = 10_417;
/// A buffer this far from where the previous one ended starts a new run.
const RESYNC_NS: u64 = 10_000_000;

/// Counts samples along a voice and times each buffer at the middle of its
/// first sample's period.
///
/// Mixers turn running time into a sample offset by rounding down. Two
/// mixers whose origins differ by a nanosecond round a time that sits a hair
/// before a sample boundary to different samples, so the full mix and a
/// talker's own mix would place the same voice a sample apart. A time in
/// the middle of a sample period rounds alike in both; counting samples
/// (instead of flooring each buffer's own time) keeps consecutive buffers
/// exactly contiguous.
#[derive(Debug, Default)]
struct SampleClock {
    next: Option<u64>,
}

impl SampleClock {
    /// The running time for a buffer arriving at `rt` with `samples` samples.
    fn place(&mut self, rt: u64, samples: u64) -> u64 {
        let start = match self.next {
            Some(n) if sample_middle(n).abs_diff(rt) < RESYNC_NS => n,
            _ => sample_at(rt),
        };
        self.next = Some(start + samples);
        sample_middle(start)
    }
}

/// Retimes every buffer through `pad` with a [`SampleClock`], so that
/// every mixer places each sample of this voice alike.
fn center_on_sample(pad: &gst::Pad) {
    let clock = std::sync::Mutex::new(SampleClock::default());
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(segment) = time_segment(pad) else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(buffer) = info.buffer_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(rt) = buffer.pts().and_then(|pts| segment.to_running_time(pts)) else {
            return gst::PadProbeReturn::Ok;
        };
        // F32 mono: four bytes a sample.
        let samples = (buffer.size() / 4) as u64;
        let placed = match clock.lock() {
            Ok(mut c) => c.place(rt.nseconds(), samples),
            Err(_) => return gst::PadProbeReturn::Ok,
        };
        if let Some(pts) = segment.position_from_running_time(gst::ClockTime::from_nseconds(placed))
        {
            buffer.make_mut().set_pts(pts);
        }
        gst::PadProbeReturn::Ok
    });
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_rate_gate_keeps_the_canvas_rate_and_drops_the_rest() {
        let ms = |n: u64| Some(n * 1_000_000);
        // 30 fps with arrival jitter (pairs 10 ms apart): every frame passes.
        let mut gate = RateGate::new(30);
        let jittery = (0..300u64).map(|i| i * 33 + if i % 2 == 0 { 0 } else { 23 });
        assert!(jittery.into_iter().all(|t| gate.pass(ms(t))));
        // 120 fps for 10 s: about 33 a second pass.
        let mut gate = RateGate::new(30);
        let passed = (0..1200u64)
            .filter(|i| gate.pass(ms(i * 1000 / 120)))
            .count();
        assert!((320..=340).contains(&passed), "{passed}");
        assert!(gate.pass(None));
    }

    use super::*;

    #[test]
    fn sample_clock_keeps_buffers_contiguous_and_mid_sample() {
        // A base a hair before a sample boundary, plus per-buffer rounding.
        let base = 416_583_333u64;
        let mut clock = SampleClock::default();
        let mut prev: Option<u64> = None;
        for k in 0..500u64 {
            let rt = base + (u128::from(k * 960) * 1_000_000_000 / 48_000) as u64 + (k % 3);
            let placed = clock.place(rt, 960);
            let n = sample_at(placed);
            if let Some(p) = prev {
                assert_eq!(n - p, 960, "buffer {k}");
            }
            prev = Some(n);
            // Mid-sample: 0.5 of a period from the sample's start, give or take a nanosecond.
            let frac = (u128::from(placed) * 48_000 % 1_000_000_000) as f64 / 1e9;
            assert!((frac - 0.5).abs() < 0.001, "buffer {k}: {frac}");
        }
    }

    #[test]
    fn sample_clock_resyncs_after_a_gap() {
        let mut clock = SampleClock::default();
        let a = clock.place(1_000_000_000, 960);
        let b = clock.place(2_000_000_000, 960);
        assert_eq!(sample_at(a), 48_000);
        assert_eq!(sample_at(b), 96_000);
    }
}
