//! The room's shared media: one pipeline holding the canvas and the full
//! audio mix, plus one encoder per codec family in use.
//!
//! ```text
//! appsrc(background) ─► imagefreeze(live) ─► compositor ─► capsfilter(I420 WxH@fps) ─► overlaycomposition(decorations) ─► canvas tee ─► [family encoders]
//!   participant tiles ───────►─┘
//! audiotestsrc(silence, live) ─► audiomixer ─► capsfilter(F32 48k mono) ─► full-mix tee ─► [mix-minus per participant]
//!                                                                     full-mix tee ─► queue ─► [opus] ─► shared tee (non-talkers)
//!   participant voices ─────────►─┘
//! ```
//!
//! The canvas caps are fixed, so joins and leaves never renegotiate it. The
//! live background sources keep both mixers ticking in an empty room.

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
use super::formats::{i420_caps, mix_audio_caps, CANVAS_SLACK, MIX_BUFFER, MIX_SLACK};
use super::latency::LatencyUpdates;
use super::make::{
    add_chain, configure_aggregator, link_into_new_pad, make_capsfilter, make_element,
    make_leaky_queue, make_tee,
};
use super::overlay::CanvasOverlay;
use super::participant::{LabelStyle, ParticipantMedia, Room};
use super::recorder::Recorder;
use super::still::SolidSource;
use super::templates::TemplateKind;
use super::{CodecFamily, MediaEvent, MediaSettings};
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
    full_tee: gst::Element,
    /// One Opus encode of the full mix, for everyone who is not talking.
    shared_opus_tee: gst::Element,
    families: HashMap<CodecFamily, FamilyEncoder>,
    /// What each family's encoder has put out, kept across its restarts.
    encoded: HashMap<CodecFamily, Arc<EncodedCount>>,
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
            &i420_caps(settings.canvas, Some(settings.framerate)),
        )?;
        let compositor = make_element("compositor", "canvas")?;
        configure_aggregator(&compositor, CANVAS_SLACK);
        let canvas_skips =
            super::on_time::keep_on_time(&compositor, super::on_time::MAX_CANVAS_LAG);
        compositor.set_property_from_str("background", "black");
        let canvas_caps = make_capsfilter(
            "canvas-caps",
            &i420_caps(settings.canvas, Some(settings.framerate)),
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
        // on the 48 kHz sample grid, and every mix-minus mixer anchored on it
        // places each voice at the very same sample offset as this mix does.
        full_mixer.set_property_from_str("start-time-selection", "zero");
        full_mixer.set_property("output-buffer-duration", MIX_BUFFER.as_nanos() as u64);
        let full_caps = make_capsfilter("full-mix-caps", &mix_audio_caps())?;
        let full_tee = make_tee("full-mix-tee")?;
        add_chain(bin, &[&silence, &silence_caps])?;
        add_chain(bin, &[&full_mixer, &full_caps, &full_tee])?;
        link_into_new_pad(&silence_caps, &full_mixer)?;
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

        pipeline
            .set_state(gst::State::Playing)
            .context("starting the room pipeline")?;
        Ok(RoomMedia {
            pipeline,
            settings,
            compositor,
            canvas_tee,
            full_mixer,
            full_tee,
            shared_opus_tee,
            families: HashMap::new(),
            encoded: HashMap::new(),
            room: room.to_string(),
            overlay,
            background,
            background_rgb: AtomicU32::new(0x000000),
            recorder: None,
            latency: Default::default(),
            canvas_skips,
        })
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

    /// Families whose encoder is running now.
    pub fn active_families(&self) -> Vec<CodecFamily> {
        let mut v: Vec<_> = self.families.keys().copied().collect();
        v.sort();
        v
    }

    /// Starts the family's encoder if it is not running yet.
    fn ensure_family(&mut self, family: CodecFamily) -> anyhow::Result<&FamilyEncoder> {
        if !self.families.contains_key(&family) {
            let output = self.encoded.entry(family).or_default().clone();
            let enc = FamilyEncoder::start(
                self.pipeline.upcast_ref(),
                &self.canvas_tee,
                family,
                &self.settings,
                output,
            )
            .with_context(|| format!("starting the {family} encoder"))?;
            tracing::info!(room = %self.room, %family, "encoder started");
            self.families.insert(family, enc);
        }
        Ok(&self.families[&family])
    }

    /// Stops the family's encoder (its last receiver left), unless the
    /// recording uses it.
    pub fn stop_family(&mut self, family: CodecFamily) {
        if self.records(family) {
            return;
        }
        if let Some(enc) = self.families.remove(&family) {
            enc.stop(self.pipeline.upcast_ref(), &self.canvas_tee);
            tracing::info!(room = %self.room, %family, "encoder stopped");
        }
    }

    /// Re-issues keyframe requests that the rate limit held back.
    pub fn flush_keyframe_requests(&self) {
        for enc in self.families.values() {
            enc.flush_pending_keyframe();
        }
    }

    /// Frames and bytes each family's encoder has put out in this room,
    /// for every family that has run, with whether it runs now.
    pub fn encoded(&self) -> Vec<EncoderOutput> {
        let mut v: Vec<_> = self
            .encoded
            .iter()
            .map(|(family, count)| EncoderOutput {
                family: *family,
                frames: count.frames(),
                keyframes: count.keyframes(),
                bytes: count.bytes(),
                running: self.families.contains_key(family),
            })
            .collect();
        v.sort_by_key(|o| o.family);
        v
    }

    /// Canvas frames skipped so far because the compositor fell behind
    /// the clock (the machine short of CPU).
    pub fn canvas_frames_skipped(&self) -> u64 {
        self.canvas_skips.frames()
    }

    /// Number of keyframes forced so far on a family's encoder (for tests and metrics).
    pub fn forced_keyframes(&self, family: CodecFamily) -> u64 {
        self.families
            .get(&family)
            .map(|f| f.forced_keyframes())
            .unwrap_or(0)
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
            full_tee: &self.full_tee,
            shared_opus_tee: &self.shared_opus_tee,
            latency: &self.latency,
        }
    }

    /// Builds a participant's webrtcbin and send chains, and a placeholder tile.
    ///
    /// The family encoder starts here if this is its first participant.
    pub fn add_participant(
        &mut self,
        id: &ParticipantId,
        name: &str,
        choice: &MediaChoice,
        events: &UnboundedSender<MediaEvent>,
    ) -> anyhow::Result<ParticipantMedia> {
        let family = choice.video.family;
        let had_family = self.families.contains_key(&family);
        let mut added = Added::default();
        let result = self
            .ensure_family(family)
            .map(|enc| enc.tee().clone())
            .and_then(|family_tee| {
                let room = self.participant_room();
                ParticipantMedia::build(&room, &family_tee, id, name, choice, events, &mut added)
            });
        if result.is_err() {
            // Leave the room exactly as it was.
            added.undo(self.pipeline.upcast_ref());
            if !had_family {
                self.stop_family(family);
            }
        }
        result
    }

    /// Removes a participant's elements and pads without disturbing the others.
    /// Stops its family's encoder when `last_of_family`.
    pub fn remove_participant(&mut self, pm: ParticipantMedia, last_of_family: bool) {
        let family = pm.family();
        let family_tee = self.families.get(&family).map(|enc| enc.tee());
        pm.dismantle(&self.participant_room(), family_tee);
        if last_of_family {
            self.stop_family(family);
        }
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

    /// A participant's connection is up: its family encoder sends a
    /// keyframe, so the newcomer's first canvas frame is a whole one.
    pub fn welcome(&self, pm: &ParticipantMedia) {
        if let Some(enc) = self.families.get(&pm.family()) {
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
        let family = [CodecFamily::Vp8, CodecFamily::H264]
            .into_iter()
            .find(|f| self.families.contains_key(f))
            .unwrap_or(fallback);
        let started_family = !self.families.contains_key(&family);
        let result = self.build_recorder(id, dir, segment, family, events);
        if result.is_err() && started_family {
            self.stop_family(family);
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
        let video_tee = self.ensure_family(family)?.tee().clone();
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
        if let Some(enc) = self.families.get(&family) {
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
        let video_tee = self.families.get(&r.family()).map(|enc| enc.tee());
        r.stop(video_tee, &self.shared_opus_tee);
        self.recorder = Some(r);
        true
    }

    /// Removes a stopped recorder (its files are closed); returns the
    /// family it kept running, which the caller stops if nobody uses it.
    pub fn finish_recording(&mut self) -> Option<CodecFamily> {
        let r = self.recorder.take()?;
        let family = r.family();
        let video_tee = self.families.get(&family).map(|enc| enc.tee());
        r.remove(&self.pipeline, video_tee, &self.shared_opus_tee);
        Some(family)
    }

    /// Whether `family`'s encoder feeds the recording.
    fn records(&self, family: CodecFamily) -> bool {
        self.recorder.as_ref().is_some_and(|r| r.family() == family)
    }
}

/// What one family's encoder has put out in a room so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderOutput {
    /// The family.
    pub family: CodecFamily,
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
        if let Err(e) = self.pipeline.set_state(gst::State::Null) {
            tracing::warn!(room = %self.room, "stopping room pipeline: {e}");
        }
    }
}
