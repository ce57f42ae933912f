//! The room's shared media: one pipeline holding the canvas and the full
//! audio mix, plus one encoder per codec family and quality tier in use.
//!
//! ```text
//! appsrc(background) ─► imagefreeze(live) ─► compositor ─► capsfilter(I420 WxH@fps) ─► overlaycomposition(decorations) ─► canvas tee ─► [family encoders]
//!   participant tiles ───────►─┘
//! audiotestsrc(silence, live) ─► silence tee ─► audiomixer ─► capsfilter(F32 48k mono) ─► full-mix tee ─► queue ─► [opus] ─► shared tee (non-talkers)
//!   participant voices' mix tees ──────────────►─┘
//! silence tee + every other voice's mix tee ─► [own mix per talker]
//! ```
//!
//! The canvas caps are fixed, so joins and leaves never renegotiate it. The
//! live background sources keep both mixers ticking in an empty room.
//!
//! Each participant receives one (family, tier) encoder's stream, or none
//! in the audio-only tier. The room counts the receivers of each encoder
//! and stops it when it has none (unless the recording uses it), so the
//! encoders running are at most the families times the tiers in use.

use crate::ids::ParticipantId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::build::Added;
use super::codec::MediaChoice;
use super::family::{EncodedCount, FamilyEncoder};
use super::formats::{canvas_caps, mix_audio_caps, CANVAS_SLACK, MIX_BUFFER, MIX_SLACK};
use super::latency::LatencyUpdates;
use super::make::{
    add_chain, configure_aggregator, link_into_new_pad, make_capsfilter, make_element,
    make_leaky_queue, make_tee,
};
use super::overlay::CanvasOverlay;
use super::participant::{LabelStyle, ParticipantMedia, Room};
use super::recorder::Recorder;
use super::rest::Rest;
use super::still::SolidSource;
use super::templates::TemplateKind;
use super::{CodecFamily, MediaEvent, MediaSettings};
use crate::ids::Tier;
use crate::layout::file::Fit;
use crate::layout::Rect;

/// The room pipeline and its shared elements. Dropping it stops the pipeline.
#[must_use = "dropping RoomMedia stops the room's pipeline"]
pub struct RoomMedia {
    pipeline: gst::Pipeline,
    settings: MediaSettings,
    compositor: gst::Element,
    canvas_tee: gst::Element,
    full_mixer: gst::Element,
    /// The room's silence: it feeds the full mix and every talker's own.
    silence_tee: gst::Element,
    /// One Opus encode of the full mix, for everyone who is not talking.
    shared_opus_tee: gst::Element,
    shared_opus_enc: gst::Element,
    /// The running encoders, by family and tier.
    encoders: HashMap<Encoding, FamilyEncoder>,
    /// How many participants receive each encoder's stream.
    receivers: HashMap<Encoding, usize>,
    /// Encoders whose last receiver moved to another tier, and since when:
    /// they run on a moment, for a receiver whose trial of the tier above
    /// fails to come back to.
    lingering: HashMap<Encoding, std::time::Instant>,
    /// Keyframes owed to receivers that moved down a tier, and when: their
    /// link first drains what the tier above left queued on it.
    owed_keyframes: Vec<(Encoding, std::time::Instant)>,
    /// What each encoder has put out, kept across its restarts.
    encoded: HashMap<Encoding, Arc<EncodedCount>>,
    room: String,
    overlay: CanvasOverlay,
    /// The canvas background's still frame, and its colour now.
    background: SolidSource,
    background_rgb: AtomicU32,
    /// The running recording, if any.
    recorder: Option<Recorder>,
    latency: LatencyUpdates,
    /// Canvas frames skipped because they were late.
    canvas_skips: Arc<super::on_time::CanvasSkips>,
    /// Holds the canvas and the shared mix while a direct pair talks.
    rest: Rest,
}

impl std::fmt::Debug for RoomMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomMedia")
            .field("room", &self.room)
            .finish()
    }
}

impl RoomMedia {
    /// Builds and starts the room pipeline.
    pub fn new(room: &str, settings: MediaSettings) -> anyhow::Result<RoomMedia> {
        let pipeline = gst::Pipeline::with_name(&format!("room-{room}"));
        let bin = pipeline.upcast_ref::<gst::Bin>();

        // Canvas.
        let background = SolidSource::new("canvas-bg", settings.canvas)?;
        background.show(0x000000)?;
        let bg_freeze = super::still::freeze("canvas-bg-freeze")?;
        let bg_caps = make_capsfilter(
            "canvas-bg-caps",
            &canvas_caps(settings.canvas, settings.framerate),
        )?;
        let compositor = make_element("compositor", "canvas")?;
        configure_aggregator(&compositor, CANVAS_SLACK);
        let canvas_skips =
            super::on_time::keep_on_time(&compositor, super::on_time::MAX_CANVAS_LAG);
        compositor.set_property_from_str("background", "black");
        let canvas_caps = make_capsfilter(
            "canvas-caps",
            &canvas_caps(settings.canvas, settings.framerate),
        )?;
        // Borders, highlight and muted markers, drawn once for all encoders.
        let decor = make_element("overlaycomposition", "canvas-decor")?;
        let overlay = CanvasOverlay::default();
        overlay.attach(&decor)?;
        let canvas_tee = make_tee("canvas-tee")?;
        add_chain(bin, &[background.element(), &bg_freeze, &bg_caps])?;
        add_chain(bin, &[&compositor, &canvas_caps, &decor, &canvas_tee])?;
        link_into_new_pad(&bg_caps, &compositor)?.set_property("zorder", 0u32);
        // The background's frame of latency would only delay every canvas frame.
        let bg_src = bg_caps.static_pad("src").context("background src")?;
        super::probes::hide_latency(&bg_src);
        // imagefreeze stamps frames on the exact 1/fps grid, and the canvas
        // starts from its first frame: the VP8 encoder, counting in whole
        // frames, would round the second canvas frame (33.333333 ms) down
        // onto the first and warn. A millisecond off the grid keeps every
        // frame in its own count.
        super::probes::run_ahead(&bg_src, std::time::Duration::from_millis(1));

        // Full audio mix.
        let silence = make_element("audiotestsrc", "mix-silence")?;
        silence.set_property("is-live", true);
        silence.set_property_from_str("wave", "silence");
        silence.set_property("samplesperbuffer", 960i32);
        let silence_caps = make_capsfilter("mix-silence-caps", &mix_audio_caps())?;
        let full_mixer = make_element("audiomixer", "full-mix")?;
        configure_aggregator(&full_mixer, MIX_SLACK);
        // Created with the pipeline, so time zero is now: its output then sits
        // on the 48 kHz sample grid, where the voices' sample clocks put them.
        full_mixer.set_property_from_str("start-time-selection", "zero");
        full_mixer.set_property("output-buffer-duration", MIX_BUFFER.as_nanos() as u64);
        let full_caps = make_capsfilter("full-mix-caps", &mix_audio_caps())?;
        let full_tee = make_tee("full-mix-tee")?;
        // The silence also keeps every talker's own mix ticking (talk.rs).
        let silence_tee = make_tee("mix-silence-tee")?;
        add_chain(bin, &[&silence, &silence_caps, &silence_tee])?;
        add_chain(bin, &[&full_mixer, &full_caps, &full_tee])?;
        silence_tee
            .request_pad_simple("src_%u")
            .context("requesting a pad from the silence tee")?
            .link(
                &full_mixer
                    .request_pad_simple("sink_%u")
                    .context("requesting a pad from the full mixer")?,
            )
            .context("linking the silence into the full mix")?;
        // The silence only keeps the mix ticking in a quiet room; it must
        // never be what the mix waits for. A live source delivers each buffer
        // when its time is over, so each output would wait a whole buffer for
        // it: its buffers are stamped one buffer ahead, and its latency hidden.
        let silence_src = silence_caps.static_pad("src").context("silence src")?;
        super::probes::hide_latency(&silence_src);
        super::probes::run_ahead(&silence_src, MIX_BUFFER);

        // The shared encode of the full mix, heard by everyone not talking.
        let shared_queue = make_leaky_queue("shared-mix-queue", 25)?;
        let shared_convert = make_element("audioconvert", "shared-mix-convert")?;
        let shared_enc = settings
            .templates
            .build(TemplateKind::Opus, "shared-mix-opusenc")?
            .upcast::<gst::Element>();
        let shared_opus_tee = make_tee("shared-mix-tee")?;
        add_chain(
            bin,
            &[
                &shared_queue,
                &shared_convert,
                &shared_enc,
                &shared_opus_tee,
            ],
        )?;
        full_tee
            .link(&shared_queue)
            .context("linking the full mix to its shared encoder")?;

        let rest = Rest::new(
            compositor.static_pad("src").context("compositor src")?,
            &shared_queue.static_pad("sink").context("shared mix sink")?,
        );
        pipeline
            .set_state(gst::State::Playing)
            .context("starting the room pipeline")?;
        Ok(RoomMedia {
            pipeline,
            settings,
            compositor,
            canvas_tee,
            full_mixer,
            silence_tee,
            shared_opus_tee,
            shared_opus_enc: shared_enc,
            encoders: HashMap::new(),
            receivers: HashMap::new(),
            lingering: HashMap::new(),
            owed_keyframes: Vec::new(),
            encoded: HashMap::new(),
            room: room.to_string(),
            overlay,
            background,
            background_rgb: AtomicU32::new(0x000000),
            recorder: None,
            latency: Default::default(),
            canvas_skips,
            rest,
        })
    }

    /// Stops composing the canvas and encoding the full mix, every element
    /// and connection staying up (`rest.rs`): the room's pair talks
    /// directly, and nobody receives either.
    pub fn rest(&mut self) {
        if !self.rest.resting() {
            tracing::info!(room = %self.room, "media resting: no canvas, no mix encode");
            self.rest.rest();
        }
    }

    /// Composes and encodes again after [`RoomMedia::rest`].
    pub fn wake(&mut self) {
        if self.rest.resting() {
            tracing::info!(room = %self.room, "media awake");
            self.canvas_skips.rested();
            self.rest.wake();
        }
    }

    /// Whether the room's media rests now.
    pub fn resting(&self) -> bool {
        self.rest.resting()
    }

    /// An element's latency changed (or elements were added): the pipeline's
    /// is recomputed soon, off the caller's thread.
    pub fn latency_changed(&self) {
        self.latency.request(&self.pipeline);
    }

    /// The pipeline, for its bus and for debugging.
    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.pipeline
    }

    /// The canvas size.
    pub fn canvas(&self) -> crate::layout::Size {
        self.settings.canvas
    }

    /// Sets the canvas background colour (0xRRGGBB), shown around tiles.
    pub fn set_background(&self, rgb: u32) {
        let rgb = rgb & 0x00ff_ffff;
        if self.background_rgb.swap(rgb, Ordering::Relaxed) == rgb {
            return;
        }
        if let Err(e) = self.background.show(rgb) {
            tracing::warn!(room = %self.room, "canvas background not changed: {e:#}");
        }
    }

    /// Draws tile decorations over the canvas, replacing the previous ones.
    pub fn set_decorations(&self, paints: &[crate::layout::decor::Paint]) {
        if let Err(e) = self.overlay.set(paints) {
            tracing::warn!(room = %self.room, "tile decorations not drawn: {e:#}");
        }
    }

    /// Rectangles the canvas overlay draws now.
    pub fn decoration_count(&self) -> u32 {
        self.overlay.rectangles()
    }

    /// Canvas frames per second.
    pub fn framerate(&self) -> u32 {
        self.settings.framerate
    }

    /// Families with an encoder running now (in any tier).
    pub fn active_families(&self) -> Vec<CodecFamily> {
        let mut v: Vec<_> = self.encoders.keys().map(|(f, _)| *f).collect();
        v.sort();
        v.dedup();
        v
    }

    /// The encoders running now, by family and tier.
    pub fn video_encoders(&self) -> Vec<Encoding> {
        let mut v: Vec<_> = self.encoders.keys().copied().collect();
        v.sort();
        v
    }

    /// Starts the encoder of `key` if it is not running yet.
    fn ensure_encoder(&mut self, key: Encoding) -> anyhow::Result<&FamilyEncoder> {
        let (family, tier) = key;
        if !self.encoders.contains_key(&key) {
            let output = self.encoded.entry(key).or_default().clone();
            let enc = FamilyEncoder::start(
                self.pipeline.upcast_ref(),
                &self.canvas_tee,
                family,
                tier,
                &self.settings,
                output,
            )
            .with_context(|| format!("starting the {family} encoder of the {tier} tier"))?;
            tracing::info!(room = %self.room, %family, %tier, "encoder started");
            self.encoders.insert(key, enc);
        }
        Ok(&self.encoders[&key])
    }

    /// Stops the encoder of `key` if nobody receives it and the recording
    /// does not use it.
    fn stop_if_idle(&mut self, key: Encoding) {
        if self.receivers.get(&key).copied().unwrap_or(0) > 0 || self.records(key) {
            return;
        }
        if let Some(enc) = self.encoders.remove(&key) {
            enc.stop(self.pipeline.upcast_ref(), &self.canvas_tee);
            tracing::info!(room = %self.room, family = %key.0, tier = %key.1, "encoder stopped");
        }
    }

    /// The room's frequent chores: keyframe requests held back by the rate
    /// limit, keyframes owed to receivers that moved down, and encoders
    /// nobody receives any more.
    pub fn tick(&mut self) {
        self.flush_keyframe_requests();
        let now = std::time::Instant::now();
        let mut due = Vec::new();
        self.owed_keyframes.retain(|(key, at)| {
            let is_due = *at <= now;
            if is_due {
                due.push(*key);
            }
            !is_due
        });
        for key in due {
            if let Some(enc) = self.encoders.get(&key) {
                enc.welcome_keyframe();
            }
        }
        self.stop_lingering_encoders();
    }

    /// Stops the encoders that nobody has received for [`LINGER`].
    fn stop_lingering_encoders(&mut self) {
        let due: Vec<Encoding> = self
            .lingering
            .iter()
            .filter(|(_, since)| since.elapsed() >= LINGER)
            .map(|(key, _)| *key)
            .collect();
        for key in due {
            self.lingering.remove(&key);
            self.stop_if_idle(key);
        }
    }

    /// Re-issues keyframe requests that the rate limit held back.
    fn flush_keyframe_requests(&self) {
        for enc in self.encoders.values() {
            enc.flush_pending_keyframe();
        }
    }

    /// Frames and bytes each encoder has put out in this room, for every
    /// one that has run, with whether it runs now.
    pub fn encoded(&self) -> Vec<EncoderOutput> {
        let mut v: Vec<_> = self
            .encoded
            .iter()
            .map(|(key, count)| EncoderOutput {
                family: key.0,
                tier: key.1,
                frames: count.frames(),
                keyframes: count.keyframes(),
                bytes: count.bytes(),
                running: self.encoders.contains_key(key),
            })
            .collect();
        v.sort_by_key(|o| (o.family, o.tier));
        v
    }

    /// Canvas frames skipped so far because the compositor fell behind
    /// the clock (the machine short of CPU).
    pub fn canvas_frames_skipped(&self) -> u64 {
        self.canvas_skips.frames()
    }

    /// Keyframes forced so far on a family's running encoders, all tiers
    /// (for tests and metrics).
    pub fn forced_keyframes(&self, family: CodecFamily) -> u64 {
        self.encoders
            .iter()
            .filter(|((f, _), _)| *f == family)
            .map(|(_, e)| e.forced_keyframes())
            .sum()
    }
}

/// Participants: the entry points. The work is done by the participant
/// wing (`participant/`), which sees the room only through [`Room`].
impl RoomMedia {
    /// What of the room a participant plugs into, lent for one call.
    fn participant_room(&self) -> Room<'_> {
        Room {
            pipeline: &self.pipeline,
            settings: &self.settings,
            room: &self.room,
            compositor: &self.compositor,
            full_mixer: &self.full_mixer,
            silence_tee: &self.silence_tee,
            shared_opus_tee: &self.shared_opus_tee,
            latency: &self.latency,
        }
    }

    /// Builds a participant's webrtcbin and send chains, and a placeholder
    /// tile. It receives the high tier.
    ///
    /// Its family's encoder starts here if this is its first receiver.
    pub fn add_participant(
        &mut self,
        id: &ParticipantId,
        name: &str,
        choice: &MediaChoice,
        events: &UnboundedSender<MediaEvent>,
    ) -> anyhow::Result<ParticipantMedia> {
        self.wake();
        let key = (choice.video.family, Tier::High);
        self.lingering.remove(&key);
        let mut added = Added::default();
        let result = self
            .ensure_encoder(key)
            .map(|enc| enc.tee().clone())
            .and_then(|tee| {
                let room = self.participant_room();
                ParticipantMedia::build(&room, &tee, id, name, choice, events, &mut added)
            });
        match &result {
            Ok(_) => *self.receivers.entry(key).or_default() += 1,
            Err(_) => {
                // Leave the room exactly as it was.
                added.undo(self.pipeline.upcast_ref());
                self.stop_if_idle(key);
            }
        }
        result
    }

    /// Adds a phone caller: its RTP leg on `socket`, its audio and a
    /// placeholder tile named `name`; no encoder of the canvas starts for
    /// it. Gives where its RTP arrives, for the SDP answer.
    pub fn add_phone(
        &mut self,
        id: &ParticipantId,
        name: &str,
        leg: &crate::media::phone::PhoneLeg,
        socket: std::net::UdpSocket,
        events: &UnboundedSender<MediaEvent>,
    ) -> anyhow::Result<(ParticipantMedia, std::net::SocketAddr)> {
        self.wake();
        let mut added = Added::default();
        let room = self.participant_room();
        let result =
            ParticipantMedia::build_phone(&room, id, name, leg, socket, events, &mut added);
        if result.is_err() {
            added.undo(self.pipeline.upcast_ref());
        }
        result
    }

    /// Removes a participant's elements and pads without disturbing the
    /// others; the encoder it received stops if nobody else does.
    pub fn remove_participant(&mut self, pm: ParticipantMedia) {
        self.wake();
        let key = (pm.family(), pm.tier());
        let tee = self.encoders.get(&key).map(|enc| enc.tee());
        pm.dismantle(&self.participant_room(), tee);
        if key.1.has_video() {
            self.unreceive(key);
        }
    }

    /// One receiver fewer for `key`'s encoder.
    fn unreceive(&mut self, key: Encoding) {
        if let Some(n) = self.receivers.get_mut(&key) {
            *n = n.saturating_sub(1);
        }
        self.stop_if_idle(key);
    }

    /// Tells the shared encode of the full mix how much loss its listeners
    /// see, percent (the worst of them): it puts in FEC for it.
    pub fn expect_shared_audio_loss(&self, percent: u8) {
        super::templates::expect_loss(&self.shared_opus_enc, percent);
    }

    /// Moves a participant to `tier`: its video comes from that tier's
    /// encoder from the next keyframe on, or stops in the audio-only tier.
    /// The keyframe is asked for at once on a move up, and [`DRAIN`] after
    /// a move down: the link is still full of the tier above, and a
    /// keyframe sent into it now would be lost. The connection is not renegotiated. The encoder
    /// it leaves stops if nobody else receives it. On failure the
    /// participant stays where it was.
    pub fn set_tier(&mut self, pm: &mut ParticipantMedia, tier: Tier) -> anyhow::Result<()> {
        let from = (pm.family(), pm.tier());
        let to = (pm.family(), tier);
        if from == to {
            return Ok(());
        }
        let started = tier.has_video() && !self.encoders.contains_key(&to);
        let new_tee = if tier.has_video() {
            Some(self.ensure_encoder(to)?.tee().clone())
        } else {
            None
        };
        let old_tee = self.encoders.get(&from).map(|e| e.tee().clone());
        if let Err(e) = pm.switch_video(old_tee.as_ref(), new_tee.as_ref(), tier) {
            if pm.tier() != from.1 && from.1.has_video() {
                // It came off the old encoder before the new link failed.
                self.unreceive(from);
            }
            if started {
                self.stop_if_idle(to);
            }
            return Err(e);
        }
        if tier.has_video() {
            *self.receivers.entry(to).or_default() += 1;
            self.lingering.remove(&to);
            if tier > from.1 {
                if let Some(enc) = self.encoders.get(&to) {
                    enc.welcome_keyframe();
                }
            } else {
                self.owed_keyframes
                    .push((to, std::time::Instant::now() + DRAIN));
            }
        }
        if from.1.has_video() {
            if let Some(n) = self.receivers.get_mut(&from) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.lingering.insert(from, std::time::Instant::now());
                }
            }
        }
        Ok(())
    }

    /// Links a new incoming stream of `pm` and releases its blocking probe.
    pub fn link_incoming(
        &mut self,
        pm: &mut ParticipantMedia,
        pad: &gst::Pad,
        probe: gst::PadProbeId,
        events: &UnboundedSender<MediaEvent>,
    ) -> anyhow::Result<()> {
        pm.link_incoming(&self.participant_room(), pad, probe, events)
    }

    /// Moves a participant's tile (placeholder and video) to `rect`, at
    /// stacking level `z` (higher above; overlays of a layout).
    pub fn place_tile(&self, pm: &mut ParticipantMedia, rect: Rect, z: u32, fit: Fit) {
        pm.place_tile(rect, z, fit);
    }

    /// Shows a participant's shared screen at `rect`, stacking level `z`.
    pub fn place_screen(&self, pm: &mut ParticipantMedia, rect: Rect, z: u32, fit: Fit) {
        pm.place_screen(rect, z, fit);
    }

    /// Takes a participant's shared screen off the canvas.
    pub fn hide_screen(&self, pm: &mut ParticipantMedia) {
        pm.hide_screen();
    }

    /// Asks a participant for a keyframe of its camera (after a pause).
    pub fn request_camera_keyframe(&self, pm: &ParticipantMedia) {
        pm.request_camera_keyframe();
    }

    /// Asks the participant for a keyframe of its screen (it starts sharing).
    pub fn request_screen_keyframe(&self, pm: &ParticipantMedia) {
        pm.request_screen_keyframe();
    }

    /// Switches what a participant hears when it starts or stops talking:
    /// its own mix-minus is built when it starts and removed when it stops.
    /// If the build fails, the participant goes on hearing the shared mix.
    pub fn set_talking(&self, pm: &mut ParticipantMedia, talking: bool) -> anyhow::Result<()> {
        pm.set_talking(&self.participant_room(), talking)
    }

    /// Puts the participant's name label where the layout wants it.
    pub fn set_label(&self, pm: &mut ParticipantMedia, style: LabelStyle) {
        pm.set_label(style);
    }

    /// Takes a participant off the canvas (the layout has no place for it).
    pub fn hide_tile(&self, pm: &mut ParticipantMedia) {
        pm.hide_tile();
    }

    /// A participant's connection is up: the encoder it receives sends a
    /// keyframe, so the newcomer's first canvas frame is a whole one.
    pub fn welcome(&self, pm: &ParticipantMedia) {
        if let Some(enc) = self.encoders.get(&(pm.family(), pm.tier())) {
            enc.welcome_keyframe();
        }
    }

    /// Hides the placeholder once the participant's own video is shown.
    pub fn hide_placeholder(&self, pm: &mut ParticipantMedia) {
        pm.hide_placeholder();
    }
}

/// Recording: the entry points. The recorder itself is `recorder.rs`.
impl RoomMedia {
    /// Starts recording into `dir` in segments of `segment`; returns the
    /// family whose encode is recorded. Uses a running family's encoder, or
    /// starts `fallback`'s.
    pub fn start_recording(
        &mut self,
        id: &str,
        dir: &Path,
        segment: Duration,
        fallback: CodecFamily,
        events: &UnboundedSender<MediaEvent>,
    ) -> anyhow::Result<CodecFamily> {
        anyhow::ensure!(self.recorder.is_none(), "a recording is already running");
        self.wake();
        // The recording is of the full canvas: the high tier's encode.
        let family = [CodecFamily::Vp8, CodecFamily::H264]
            .into_iter()
            .find(|f| self.encoders.contains_key(&(*f, Tier::High)))
            .unwrap_or(fallback);
        let result = self.build_recorder(id, dir, segment, family, events);
        if result.is_err() {
            self.stop_if_idle((family, Tier::High));
        }
        result.map(|r| {
            self.recorder = Some(r);
            family
        })
    }

    fn build_recorder(
        &mut self,
        id: &str,
        dir: &Path,
        segment: Duration,
        family: CodecFamily,
        events: &UnboundedSender<MediaEvent>,
    ) -> anyhow::Result<Recorder> {
        let video_tee = self.ensure_encoder((family, Tier::High))?.tee().clone();
        let recorder = Recorder::start(
            &self.pipeline,
            &video_tee,
            &self.shared_opus_tee,
            id,
            dir,
            segment,
            family,
            events,
        )?;
        if let Some(enc) = self.encoders.get(&(family, Tier::High)) {
            enc.request_keyframe();
        }
        Ok(recorder)
    }

    /// The running recording's id.
    pub fn recording(&self) -> Option<&str> {
        self.recorder.as_ref().map(|r| r.id())
    }

    /// Begins stopping the recording: its inputs are cut and EOS sent, so
    /// the open segment is finalised. The bin's EOS, forwarded on the bus,
    /// says when it is done; then call [`RoomMedia::finish_recording`].
    pub fn stop_recording(&mut self) -> bool {
        let Some(mut r) = self.recorder.take() else {
            return false;
        };
        let video_tee = self
            .encoders
            .get(&(r.family(), Tier::High))
            .map(|enc| enc.tee());
        r.stop(video_tee, &self.shared_opus_tee);
        self.recorder = Some(r);
        true
    }

    /// Removes a stopped recorder (its files are closed), and the encoder
    /// it kept running if nobody receives it.
    pub fn finish_recording(&mut self) {
        let Some(r) = self.recorder.take() else {
            return;
        };
        let key = (r.family(), Tier::High);
        let video_tee = self.encoders.get(&key).map(|enc| enc.tee());
        r.remove(&self.pipeline, video_tee, &self.shared_opus_tee);
        self.stop_if_idle(key);
    }

    /// Whether `key`'s encoder feeds the recording.
    fn records(&self, key: Encoding) -> bool {
        key.1 == Tier::High && self.recorder.as_ref().is_some_and(|r| r.family() == key.0)
    }
}

/// How long after a move down the receiver's keyframe is asked for.
const DRAIN: Duration = Duration::from_millis(300);

/// How long an encoder runs on after its last receiver moved to another tier.
const LINGER: Duration = Duration::from_secs(5);

/// An encoding of the canvas: its codec family and quality tier.
pub type Encoding = (CodecFamily, Tier);

/// What one encoder (a family in a tier) has put out in a room so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderOutput {
    /// The family.
    pub family: CodecFamily,
    /// The tier.
    pub tier: Tier,
    /// Encoded frames, over all the encoder's runs in this room.
    pub frames: u64,
    /// Keyframes among them.
    pub keyframes: u64,
    /// Encoded bytes, likewise.
    pub bytes: u64,
    /// Whether the encoder runs now.
    pub running: bool,
}

impl Drop for RoomMedia {
    fn drop(&mut self) {
        self.rest.wake();
        if let Err(e) = self.pipeline.set_state(gst::State::Null) {
            tracing::warn!(room = %self.room, "stopping room pipeline: {e}");
        }
    }
}
