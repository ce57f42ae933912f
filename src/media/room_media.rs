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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;

use super::family::{EncodedCount, FamilyEncoder};
use super::overlay::CanvasOverlay;
use super::still::SolidSource;
use super::templates::TemplateKind;
use super::{
    add_chain, configure_aggregator, i420_caps, link_into_new_pad, make_capsfilter, make_element,
    make_leaky_queue, make_tee, mix_audio_caps, CodecFamily, MediaSettings, MIX_BUFFER,
};

/// The room pipeline and its shared elements. Dropping it stops the pipeline.
#[must_use = "dropping RoomMedia stops the room's pipeline"]
pub struct RoomMedia {
    pub(super) pipeline: gst::Pipeline,
    pub(super) settings: MediaSettings,
    pub(super) compositor: gst::Element,
    pub(super) canvas_tee: gst::Element,
    pub(super) full_mixer: gst::Element,
    pub(super) full_tee: gst::Element,
    /// One Opus encode of the full mix, for everyone who is not talking.
    pub(super) shared_opus_tee: gst::Element,
    pub(super) families: HashMap<CodecFamily, FamilyEncoder>,
    /// What each family's encoder has put out, kept across its restarts.
    encoded: HashMap<CodecFamily, Arc<EncodedCount>>,
    pub(super) room: String,
    overlay: CanvasOverlay,
    /// The canvas background's still frame, and its colour now.
    background: SolidSource,
    background_rgb: AtomicU32,
    /// The running recording, if any.
    pub(super) recorder: Option<super::recorder::Recorder>,
    latency: super::latency::LatencyUpdates,
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
        configure_aggregator(&compositor, super::CANVAS_SLACK);
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
        super::hide_latency(&bg_src);
        // imagefreeze stamps frames on the exact 1/fps grid, and the canvas
        // starts from its first frame: the VP8 encoder, counting in whole
        // frames, would round the second canvas frame (33.333333 ms) down
        // onto the first and warn. A millisecond off the grid keeps every
        // frame in its own count.
        super::run_ahead(&bg_src, std::time::Duration::from_millis(1));

        // Full audio mix.
        let silence = make_element("audiotestsrc", "mix-silence")?;
        silence.set_property("is-live", true);
        silence.set_property_from_str("wave", "silence");
        silence.set_property("samplesperbuffer", 960i32);
        let silence_caps = make_capsfilter("mix-silence-caps", &mix_audio_caps())?;
        let full_mixer = make_element("audiomixer", "full-mix")?;
        configure_aggregator(&full_mixer, super::MIX_SLACK);
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
        super::hide_latency(&silence_src);
        super::run_ahead(&silence_src, MIX_BUFFER);

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
    pub(super) fn ensure_family(&mut self, family: CodecFamily) -> anyhow::Result<&FamilyEncoder> {
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
