//! One participant's media: a `webrtcbin` whose transceivers use the codecs
//! chosen from the offer, the egress chains feeding it, the tile it occupies
//! on the canvas, and its mix-minus.
//!
//! ```text
//! family tee ─► queue(leaky) ─► (after a drop: nothing until a keyframe, resync.rs) ─► rtp{vp8,h264}pay(pt) ─► webrtcbin (video)
//! own mix-minus (only while talking, own_mix.rs) ─────────────┐ (talking)
//!                                                              input-selector ─► rtpopuspay(pt) ─► webrtcbin (audio)
//! shared tee (one Opus encode of the full mix) ─► queue(leaky) ┘ (not talking)
//! placeholder: appsrc(grey still) ─► caps(tile) ─► textoverlay(name) ─► compositor (until video arrives)
//! ```
//!
//! Each person hears everyone but themselves: a talker their own mix-minus,
//! everyone else the shared encode of the full mix, in which their own
//! voice is below the talk threshold.

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use tokio::sync::mpsc::UnboundedSender;

use super::codec::{MediaChoice, Track, VideoChoice};
use super::crop::TileCrop;
use super::own_mix::OwnMix;
use super::still::SolidSource;
use super::{
    firewalled_queue, i420_caps, make_capsfilter, make_element, remove_elements, CodecFamily,
    MediaEvent, RoomMedia,
};
use crate::layout::file::{Fit, LabelPosition};
use crate::layout::{Rect, Size};

/// Size of a placeholder tile before the first layout is applied.
const INITIAL_TILE: Size = Size {
    width: 320,
    height: 180,
};
/// The placeholder is rendered once at this size and scaled by its compositor
/// pad, so a re-flow never renegotiates it.
const PLACEHOLDER_SIZE: Size = Size {
    width: 320,
    height: 180,
};
/// The placeholder's grey, behind the name.
const PLACEHOLDER_GREY: u32 = 0x404040;
/// The placeholder never changes: a few repeats a second keep its pad live.
const PLACEHOLDER_FPS: u32 = 5;
/// Video buffers a participant's send queue may hold before dropping the oldest.
const VIDEO_EGRESS_QUEUE: u32 = 5;
/// Audio buffers (20 ms each) the queues around the mixers may hold.
pub(super) const AUDIO_QUEUE: u32 = 25;

/// Chooses what a participant hears: its own mix-minus encode (talking) or
/// the shared encode of the full mix (not talking).
pub(super) struct TalkSwitch {
    pub(super) selector: gst::Element,
    shared: gst::Pad,
    /// The own mix-minus, while the participant talks.
    own: Option<OwnMix>,
}

/// Where a tile's name label goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LabelStyle {
    /// Top, bottom or none.
    pub position: LabelPosition,
    /// Pixels kept clear along the tile's edges (its border).
    pub inset: u32,
}

/// A decoded video branch (camera or screen) feeding one compositor pad.
pub(super) struct VideoTile {
    pub(super) caps: gst::Element,
    pub(super) pad: gst::Pad,
    /// The name label drawn over the video.
    pub(super) label: gst::Element,
    /// Crops the picture to the tile's aspect ratio when the layout's fit is `crop`.
    pub(super) crop: TileCrop,
    /// The depayloader's sink, to ask the sender for a keyframe.
    pub(super) depay_sink: gst::Pad,
    /// The decoder's source pad: its caps are the size the sender sends.
    pub(super) decoded: gst::Pad,
}

impl VideoTile {
    /// Moves the tile to `rect` at compositor z-order `zorder`, filling it per `fit`.
    pub(super) fn place(&self, rect: Rect, zorder: u32, fit: Fit) {
        self.pad.set_property("zorder", zorder);
        set_pad_geometry(&self.pad, rect);
        self.caps.set_property(
            "caps",
            i420_caps(
                Size {
                    width: rect.width,
                    height: rect.height,
                },
                None,
            ),
        );
        self.crop.set_target((fit == Fit::Crop).then_some(Size {
            width: rect.width,
            height: rect.height,
        }));
    }

    /// Asks the sender for a keyframe.
    pub(super) fn request_keyframe(&self) {
        self.depay_sink.push_event(
            gstreamer_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build(),
        );
    }
}

/// A participant's screen-share m-line and, once it arrived, its tile.
pub(super) struct ScreenShare {
    /// The m-line the screen arrives on.
    pub(super) mline: u32,
    /// The decoded screen, once its stream arrived.
    pub(super) tile: Option<VideoTile>,
    /// Where the layout shows it, or None while hidden.
    pub(super) rect: Option<Rect>,
}

/// Everything the room pipeline holds for one participant. Give it back to
/// [`RoomMedia::remove_participant`] to free it.
#[must_use = "pass to RoomMedia::remove_participant to free its elements"]
pub struct ParticipantMedia {
    pub(super) id: String,
    /// Display name, for the tile's label.
    pub(super) name: String,
    pub(super) family: CodecFamily,
    pub(super) webrtcbin: gst::Element,
    pub(super) elements: Vec<gst::Element>,
    family_tee_pad: gst::Pad,
    shared_tee_pad: gst::Pad,
    pub(super) talk: TalkSwitch,
    placeholder_pad: gst::Pad,
    pub(super) video: Option<VideoTile>,
    /// The screen share, if the offer had a screen m-line.
    pub(super) screen: Option<ScreenShare>,
    /// The own voice's pad on the full mixer, once audio arrived.
    pub(super) own_mix_pad: Option<gst::Pad>,
    /// The decoded voice, for a talker's own mix-minus, once audio arrived.
    pub(super) voice_tee: Option<gst::Element>,
    /// Where the participant's media tells the room what happened.
    pub(super) events: UnboundedSender<MediaEvent>,
    /// Silences the voice in every mix (a teacher muted it), once audio arrived.
    pub(super) voice_gate: Option<gst::Element>,
    /// Whether a teacher has silenced this participant.
    pub(super) silenced: bool,
    pub(super) tile: Rect,
    /// Whether a layout has placed the tile yet.
    placed: bool,
    /// Whether the layout shows this participant at all.
    visible: bool,
    /// Whether decoded video has reached the tile.
    video_started: bool,
    /// Where the layout wants the name label.
    pub(super) label: LabelStyle,
    /// How the layout wants the picture to fill the tile.
    pub(super) fit: Fit,
    /// Canvas frames sent to the participant (past its own queue, which
    /// drops frames it cannot send in time, and past the frames held back
    /// after such a drop until a keyframe: `resync.rs`).
    pub(super) canvas_sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for ParticipantMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParticipantMedia")
            .field("id", &self.id)
            .field("family", &self.family)
            .finish()
    }
}

/// What a participant's firewalled branch of a shared stream does when it
/// fails: tells the room, which removes the participant.
pub(super) fn branch_failed(
    events: &UnboundedSender<MediaEvent>,
    id: &str,
    branch: &'static str,
) -> impl Fn(gst::FlowError) + Send + Sync + 'static {
    let (events, id) = (events.clone(), id.to_string());
    move |error| {
        let _ = events.send(MediaEvent::BranchFailed {
            participant: id.clone(),
            branch,
            error,
        });
    }
}

/// The `application/x-rtp` caps a video transceiver answers with; with
/// `ssrc`, the answer announces it (`a=ssrc`), which is how the browser
/// routes our stream when two video m-lines share a payload type.
fn video_rtp_caps(v: &VideoChoice, ssrc: Option<u32>) -> gst::Caps {
    let mut b = gst::Caps::builder("application/x-rtp")
        .field("media", "video")
        .field("encoding-name", v.family.encoding_name())
        .field("payload", i32::from(v.payload))
        .field("clock-rate", 90000i32)
        .field("rtcp-fb-nack-pli", true)
        .field("rtcp-fb-ccm-fir", true);
    if v.family == CodecFamily::H264 {
        b = b
            .field("packetization-mode", "1")
            .field("profile-level-id", h264_profile_level_id(v));
    }
    if let Some(ssrc) = ssrc {
        b = b.field("ssrc", ssrc);
    }
    b.build()
}

/// The profile-level-id the answer carries: the offer's own for the chosen
/// payload type (a receiver matches on it), else the encoder's.
fn h264_profile_level_id(v: &VideoChoice) -> String {
    v.profile_level_id
        .clone()
        .unwrap_or_else(|| super::codec::H264_PROFILE_LEVEL_ID.to_string())
}

/// Takes `sprop-parameter-sets` out of the RTP caps leaving `pad`.
///
/// webrtcbin 1.22 matches an offer's m-line against a transceiver's codec
/// preferences intersected with the caps its sink pad has received. Our
/// payloader puts our encoder's SPS and PPS there; an offer that carries
/// its own (GStreamer and SIP clients do) then intersects with nothing, and
/// the participant was answered receive-only: no canvas. The parameter sets
/// travel in-band with every keyframe anyway.
fn without_parameter_sets(pad: &gst::Pad) {
    pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| {
        let Some(gst::PadProbeData::Event(ev)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        let gst::EventView::Caps(c) = ev.view() else {
            return gst::PadProbeReturn::Ok;
        };
        if !c
            .caps()
            .structure(0)
            .is_some_and(|s| s.has_field("sprop-parameter-sets"))
        {
            return gst::PadProbeReturn::Ok;
        }
        let mut caps = c.caps_owned();
        if let Some(s) = caps.make_mut().structure_mut(0) {
            s.remove_field("sprop-parameter-sets");
        }
        info.data = Some(gst::PadProbeData::Event(gst::event::Caps::new(&caps)));
        gst::PadProbeReturn::Ok
    });
}

fn audio_rtp_caps(choice: &MediaChoice, ssrc: u32) -> gst::Caps {
    gst::Caps::builder("application/x-rtp")
        .field("ssrc", ssrc)
        .field("media", "audio")
        .field("encoding-name", "OPUS")
        .field("payload", i32::from(choice.audio_payload))
        .field("clock-rate", 48000i32)
        .field("encoding-params", "2")
        .build()
}

/// Requests a webrtcbin sink pad whose transceiver answers with exactly `caps`.
///
/// Setting codec preferences up front lets `create-answer` succeed before any
/// media has flowed into the pad.
fn request_send_pad(webrtcbin: &gst::Element, caps: &gst::Caps) -> anyhow::Result<gst::Pad> {
    let templ = webrtcbin
        .pad_template("sink_%u")
        .context("webrtcbin has no sink_%u template")?;
    let pad = webrtcbin
        .request_pad(&templ, None, Some(caps))
        .context("requesting a webrtcbin sink pad")?;
    let trans = pad.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
    trans.set_property("codec-preferences", caps);
    trans.set_property(
        "direction",
        gst_webrtc::WebRTCRTPTransceiverDirection::Sendrecv,
    );
    Ok(pad)
}

fn placeholder_caps(tile: Size) -> gst::Caps {
    i420_caps(tile, Some(PLACEHOLDER_FPS))
}

impl RoomMedia {
    /// Builds a participant's webrtcbin and send chains, and a placeholder tile.
    ///
    /// The family encoder starts here if this is its first participant.
    pub fn add_participant(
        &mut self,
        id: &str,
        name: &str,
        choice: &MediaChoice,
        events: &UnboundedSender<MediaEvent>,
    ) -> anyhow::Result<ParticipantMedia> {
        let family = choice.video.family;
        let had_family = self.families.contains_key(&family);
        let mut added = Added::default();
        let result = self.build_participant(id, name, choice, events, &mut added);
        if result.is_err() {
            // Leave the room exactly as it was.
            added.undo(self.pipeline.upcast_ref());
            if !had_family {
                self.stop_family(family);
            }
        }
        result
    }

    fn build_participant(
        &mut self,
        id: &str,
        name: &str,
        choice: &MediaChoice,
        events: &UnboundedSender<MediaEvent>,
        added: &mut Added,
    ) -> anyhow::Result<ParticipantMedia> {
        let family = choice.video.family;
        let family_tee = self.ensure_family(family)?.tee.clone();
        let bin = self.pipeline.clone().upcast::<gst::Bin>();
        let n = |what: &str| format!("{id}-{what}");

        let webrtcbin = make_element("webrtcbin", &n("webrtc"))?;
        webrtcbin.set_property_from_str("bundle-policy", "max-bundle");
        webrtcbin.set_property("latency", self.settings.jitter_buffer.as_millis() as u32);
        super::send_unheld(&webrtcbin);
        super::arrive_unsynced(&webrtcbin);
        super::ice_agent::confine(&webrtcbin, &self.settings.ice)?;
        added.chain(&bin, &[&webrtcbin])?;
        connect_webrtcbin_signals(&webrtcbin, id, events);

        // Transceivers in the offer's m-line order: webrtcbin gives each
        // m-line the first transceiver not yet associated.
        let (mut audio_pad, mut video_pad, mut screen) = (None, None, None);
        let video_ssrc = glib::random_int();
        let audio_ssrc = video_ssrc.wrapping_add(1 + glib::random_int_range(0, 1 << 30) as u32);
        for (mline, track) in choice.order.iter().enumerate() {
            match track {
                Track::Audio => {
                    audio_pad = Some(request_send_pad(
                        &webrtcbin,
                        &audio_rtp_caps(choice, audio_ssrc),
                    )?)
                }
                Track::Camera => {
                    video_pad = Some(request_send_pad(
                        &webrtcbin,
                        &video_rtp_caps(&choice.video, Some(video_ssrc)),
                    )?)
                }
                Track::Screen => {
                    let v = choice
                        .screen
                        .as_ref()
                        .context("screen m-line without a codec")?;
                    webrtcbin.emit_by_name::<gst_webrtc::WebRTCRTPTransceiver>(
                        "add-transceiver",
                        &[
                            &gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly,
                            &video_rtp_caps(v, None),
                        ],
                    );
                    screen = Some(ScreenShare {
                        mline: mline as u32,
                        tile: None,
                        rect: None,
                    });
                }
            }
        }
        let audio_pad = audio_pad.context("no audio m-line")?;
        let video_pad = video_pad.context("no camera m-line")?;

        // Video egress: one shared encoded stream, payloaded per participant.
        // Each branch of a shared stream sits behind a firewalled queue: if
        // it fails, the room is told and the shared stream flows on.
        let vqueue = firewalled_queue(
            &n("video-out-queue"),
            VIDEO_EGRESS_QUEUE,
            branch_failed(events, id, "video"),
        )?;
        let (pay, pay_tail) = match family {
            CodecFamily::Vp8 => {
                let p = make_element("rtpvp8pay", &n("vp8pay"))?;
                p.set_property_from_str("picture-id-mode", "15-bit");
                (p.clone(), p)
            }
            CodecFamily::H264 => {
                let p = make_element("rtph264pay", &n("h264pay"))?;
                p.set_property("config-interval", -1i32);
                p.set_property_from_str("aggregate-mode", "zero-latency");
                // The payloader derives profile-level-id from the encoder's
                // SPS (its level follows the canvas size); the transceiver
                // answered with the offer's. Stamp the negotiated one on the
                // caps: a constrained-baseline stream plays on any baseline
                // decoder whatever level the offer named.
                let stamp = make_element("capssetter", &n("h264-caps"))?;
                stamp.set_property(
                    "caps",
                    gst::Caps::builder("application/x-rtp")
                        .field("profile-level-id", h264_profile_level_id(&choice.video))
                        .build(),
                );
                added.chain(&bin, &[&p, &stamp])?;
                without_parameter_sets(&stamp.static_pad("src").context("h264 caps src")?);
                (p, stamp)
            }
        };
        pay.set_property("pt", u32::from(choice.video.payload));
        pay.set_property("ssrc", video_ssrc);
        pay.set_property("mtu", 1200u32);
        added.chain(&bin, &[&vqueue])?;
        if family == CodecFamily::Vp8 {
            added.chain(&bin, &[&pay])?;
        }
        vqueue
            .link(&pay)
            .context("linking video queue to payloader")?;
        pay_tail
            .static_pad("src")
            .context("payloader src")?
            .link(&video_pad)
            .context("linking video payloader to webrtcbin")?;

        // Audio egress. A talker hears its own mix-minus (own_mix.rs),
        // encoded for it alone; everyone else shares the full mix's one
        // encode.
        let shared_queue = firewalled_queue(
            &n("shared-mix-queue"),
            AUDIO_QUEUE,
            branch_failed(events, id, "shared mix"),
        )?;
        let selector = make_element("input-selector", &n("audio-select"))?;
        // Drop what the inactive input brings instead of holding it back.
        selector.set_property("sync-streams", false);
        let opuspay = make_element("rtpopuspay", &n("opuspay"))?;
        opuspay.set_property("pt", u32::from(choice.audio_payload));
        opuspay.set_property("ssrc", audio_ssrc);
        added.chain(&bin, &[&shared_queue])?;
        super::private_copies(&shared_queue.static_pad("src").context("shared queue src")?);
        added.chain(&bin, &[&selector, &opuspay])?;
        let shared_select_pad = selector
            .request_pad_simple("sink_%u")
            .context("requesting the selector's shared-mix input")?;
        shared_queue
            .static_pad("src")
            .context("shared queue src")?
            .link(&shared_select_pad)
            .context("linking shared mix to the selector")?;
        selector.set_property("active-pad", &shared_select_pad);
        opuspay
            .static_pad("src")
            .context("opus payloader src")?
            .link(&audio_pad)
            .context("linking opus payloader to webrtcbin")?;

        // Placeholder tile with the participant's name.
        // Drawn once (grey frame, name), then repeated live (still.rs).
        let ph_src = SolidSource::new(&n("placeholder"), PLACEHOLDER_SIZE)?;
        ph_src.show(PLACEHOLDER_GREY)?;
        let ph_text = make_element("textoverlay", &n("placeholder-name"))?;
        ph_text.set_property("text", name);
        ph_text.set_property_from_str("valignment", "center");
        ph_text.set_property_from_str("halignment", "center");
        ph_text.set_property("font-desc", "Sans Bold 20");
        ph_text.set_property("shaded-background", true);
        let ph_freeze = super::still::freeze(&n("placeholder-freeze"))?;
        let ph_caps = make_capsfilter(&n("placeholder-caps"), &placeholder_caps(PLACEHOLDER_SIZE))?;
        added.chain(&bin, &[ph_src.element(), &ph_text, &ph_freeze, &ph_caps])?;
        let placeholder_pad = added.request(&self.compositor, "sink_%u")?;
        super::hide_latency(&ph_caps.static_pad("src").context("placeholder src")?);
        placeholder_pad.set_property("zorder", 1u32);
        ph_caps
            .static_pad("src")
            .context("placeholder src")?
            .link(&placeholder_pad)
            .context("linking placeholder to compositor")?;

        // Downstream first within each chain. Started in this order, no
        // element pushes into one that is not ready yet (a live source that
        // pushes into a still-flushing pad pauses its task for good: the
        // placeholder would never show). Stopped in this order
        // (`remove_participant`), no streaming thread is left blocked inside
        // an element that still runs, such as webrtcbin holding media back
        // until DTLS is up.
        let mut elements = vec![webrtcbin.clone()];
        if pay_tail != pay {
            elements.push(pay_tail.clone());
        }
        elements.extend([
            pay.clone(),
            vqueue.clone(),
            opuspay.clone(),
            selector.clone(),
            shared_queue.clone(),
            ph_caps.clone(),
            ph_freeze.clone(),
            ph_text.clone(),
            ph_src.element().clone(),
        ]);
        for e in &elements {
            e.sync_state_with_parent()
                .with_context(|| format!("starting {}", e.name()))?;
        }

        // Connect to the shared streams last, once every element is playing.
        let family_tee_pad = added.request(&family_tee, "src_%u")?;
        family_tee_pad
            .link(&vqueue.static_pad("sink").context("video queue sink")?)
            .context("linking family tee to participant")?;
        let shared_tee_pad = added.request(&self.shared_opus_tee, "src_%u")?;
        shared_tee_pad
            .link(
                &shared_queue
                    .static_pad("sink")
                    .context("shared queue sink")?,
            )
            .context("linking the shared encode to participant")?;
        self.latency_changed();
        // The newcomer's keyframe is asked for once its connection is up
        // (MediaEvent::Connected): one sent now would reach nobody and use
        // up the family's keyframe allowance for the next second.

        super::resync::resync_after_gaps(&vqueue.static_pad("src").context("video queue src")?);
        let canvas_sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        {
            let count = canvas_sent.clone();
            pay.static_pad("sink")
                .context("video payloader sink")?
                .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                });
        }

        let pm = ParticipantMedia {
            id: id.to_string(),
            name: name.to_string(),
            family,
            webrtcbin,
            elements,
            family_tee_pad,
            shared_tee_pad,
            talk: TalkSwitch {
                selector,
                shared: shared_select_pad,
                own: None,
            },
            placeholder_pad,
            video: None,
            screen,
            own_mix_pad: None,
            voice_tee: None,
            events: events.clone(),
            voice_gate: None,
            silenced: false,
            tile: Rect {
                x: 0,
                y: 0,
                width: INITIAL_TILE.width,
                height: INITIAL_TILE.height,
            },
            placed: false,
            visible: true,
            video_started: false,
            label: LabelStyle::default(),
            fit: Fit::Letterbox,
            canvas_sent,
        };
        Ok(pm)
    }

    /// Removes a participant's elements and pads without disturbing the others.
    /// Stops its family's encoder when `last_of_family`.
    pub fn remove_participant(&mut self, mut pm: ParticipantMedia, last_of_family: bool) {
        let bin = self.pipeline.clone().upcast::<gst::Bin>();
        // 1. Shared producers stop pushing into this participant.
        if let Some(enc) = self.families.get(&pm.family) {
            enc.tee.release_request_pad(&pm.family_tee_pad);
        }
        self.shared_opus_tee.release_request_pad(&pm.shared_tee_pad);
        if let Some(own) = pm.talk.own.take() {
            pm.talk.selector.set_property("active-pad", &pm.talk.shared);
            self.stop_own_mix(own, &pm.talk.selector);
        }
        // 2. Its own elements stop (webrtcbin first: it feeds the ingest chains).
        remove_elements(&bin, &pm.elements);
        // 3. Its inputs to the shared mixers go away.
        self.compositor.release_request_pad(&pm.placeholder_pad);
        if let Some(v) = &pm.video {
            self.compositor.release_request_pad(&v.pad);
        }
        if let Some(v) = pm.screen.as_ref().and_then(|s| s.tile.as_ref()) {
            self.compositor.release_request_pad(&v.pad);
        }
        if let Some(p) = &pm.own_mix_pad {
            self.full_mixer.release_request_pad(p);
        }
        if last_of_family {
            self.stop_family(pm.family);
        }
    }

    /// Moves a participant's tile (placeholder and video) to `rect`, at
    /// stacking level `z` (higher above; overlays of a layout).
    pub fn place_tile(&self, pm: &mut ParticipantMedia, rect: Rect, z: u32, fit: Fit) {
        pm.placeholder_pad.set_property("zorder", 1 + 2 * z);
        set_pad_geometry(&pm.placeholder_pad, rect);
        if let Some(v) = &pm.video {
            v.place(rect, 2 + 2 * z, fit);
        }
        pm.visible = true;
        apply_visibility(pm);
        pm.tile = rect;
        pm.fit = fit;
        pm.placed = true;
    }

    /// Shows a participant's shared screen at `rect`, stacking level `z`.
    pub fn place_screen(&self, pm: &mut ParticipantMedia, rect: Rect, z: u32, fit: Fit) {
        if let Some(s) = pm.screen.as_mut() {
            if let Some(v) = &s.tile {
                v.place(rect, 2 + 2 * z, fit);
                v.pad.set_property("alpha", 1.0f64);
            }
            s.rect = Some(rect);
        }
    }

    /// Takes a participant's shared screen off the canvas.
    pub fn hide_screen(&self, pm: &mut ParticipantMedia) {
        if let Some(s) = pm.screen.as_mut() {
            if let Some(v) = &s.tile {
                v.pad.set_property("alpha", 0.0f64);
            }
            s.rect = None;
        }
    }

    /// Asks the participant for a keyframe of its screen (it starts sharing).
    pub fn request_screen_keyframe(&self, pm: &ParticipantMedia) {
        if let Some(v) = pm.screen.as_ref().and_then(|s| s.tile.as_ref()) {
            v.request_keyframe();
        }
    }

    /// Switches what a participant hears when it starts or stops talking:
    /// its own mix-minus is built when it starts and removed when it stops.
    /// If the build fails, the participant goes on hearing the shared mix.
    pub fn set_talking(&self, pm: &mut ParticipantMedia, talking: bool) -> anyhow::Result<()> {
        if talking == pm.talk.own.is_some() {
            return Ok(());
        }
        if talking {
            let own = self
                .start_own_mix(pm)
                .with_context(|| format!("building the mix-minus of {}", pm.id))?;
            pm.talk.selector.set_property("active-pad", &own.output);
            pm.talk.own = Some(own);
        } else if let Some(own) = pm.talk.own.take() {
            pm.talk.selector.set_property("active-pad", &pm.talk.shared);
            self.stop_own_mix(own, &pm.talk.selector);
        }
        // No pipeline latency update: the new mixer asks its own upstream
        // for its latency when it starts, and what it feeds never syncs to
        // the clock. A recomputation walks the whole room; talk switches
        // are frequent.
        Ok(())
    }

    /// Puts the participant's name label where the layout wants it.
    pub fn set_label(&self, pm: &mut ParticipantMedia, style: LabelStyle) {
        pm.label = style;
        if let Some(v) = &pm.video {
            apply_label(&v.label, style, pm.tile.height);
        }
        if let Some(s) = &pm.screen {
            if let (Some(v), Some(r)) = (&s.tile, s.rect) {
                apply_label(&v.label, style, screen_label_height(r.height));
            }
        }
    }

    /// Takes a participant off the canvas (the layout has no place for it).
    pub fn hide_tile(&self, pm: &mut ParticipantMedia) {
        pm.visible = false;
        apply_visibility(pm);
    }

    /// A participant's connection is up: its family encoder sends a
    /// keyframe, so the newcomer's first canvas frame is a whole one.
    pub fn welcome(&self, pm: &ParticipantMedia) {
        if let Some(enc) = self.families.get(&pm.family) {
            enc.welcome_keyframe();
        }
    }

    /// Hides the placeholder once the participant's own video is shown.
    pub fn hide_placeholder(&self, pm: &mut ParticipantMedia) {
        pm.video_started = true;
        apply_visibility(pm);
    }
}

/// What a half-built participant has added to the room, so a failure can
/// take it all back out.
#[derive(Default)]
pub(super) struct Added {
    elements: Vec<gst::Element>,
    pads: Vec<(gst::Element, gst::Pad)>,
}

impl Added {
    /// Adds elements to the bin, remembers them, then links them in order.
    pub(super) fn chain(&mut self, bin: &gst::Bin, chain: &[&gst::Element]) -> anyhow::Result<()> {
        for e in chain {
            bin.add(*e)
                .with_context(|| format!("adding {}", e.name()))?;
            self.elements.push((*e).clone());
        }
        if chain.len() > 1 {
            gst::Element::link_many(chain.iter().copied()).with_context(|| {
                let names: Vec<_> = chain.iter().map(|e| e.name().to_string()).collect();
                format!("linking {}", names.join(" ! "))
            })?;
        }
        Ok(())
    }

    /// Requests a pad from a shared element and remembers it.
    pub(super) fn request(
        &mut self,
        owner: &gst::Element,
        template: &str,
    ) -> anyhow::Result<gst::Pad> {
        let pad = owner
            .request_pad_simple(template)
            .with_context(|| format!("requesting {template} from {}", owner.name()))?;
        self.pads.push((owner.clone(), pad.clone()));
        Ok(pad)
    }

    /// The elements, once everything succeeded and the participant owns them.
    pub(super) fn into_elements(self) -> Vec<gst::Element> {
        self.elements
    }

    /// The elements and the requested pads, once everything succeeded.
    pub(super) fn into_parts(self) -> (Vec<gst::Element>, Vec<(gst::Element, gst::Pad)>) {
        (self.elements, self.pads)
    }

    /// Releases the pads, then stops and removes the elements.
    pub(super) fn undo(self, bin: &gst::Bin) {
        for (owner, pad) in &self.pads {
            owner.release_request_pad(pad);
        }
        remove_elements(bin, &self.elements);
    }
}

/// Shows or hides the placeholder and the video per the participant's state.
/// Alpha 0 pads are skipped by the compositor: no blending cost.
pub(super) fn apply_visibility(pm: &ParticipantMedia) {
    let alpha = |on: bool| if on { 1.0f64 } else { 0.0 };
    pm.placeholder_pad
        .set_property("alpha", alpha(pm.visible && !pm.video_started));
    if let Some(v) = &pm.video {
        v.pad.set_property("alpha", alpha(pm.visible));
    }
}

/// Places (or hides) a tile's name label, sized to stay legible on a tile
/// `tile_height` pixels high.
pub(super) fn apply_label(label: &gst::Element, style: LabelStyle, tile_height: u32) {
    label.set_property("silent", style.position == LabelPosition::None);
    // Clear of the tile's border.
    label.set_property("xpad", 6 + style.inset as i32);
    label.set_property("ypad", 4 + style.inset as i32);
    let valign = if style.position == LabelPosition::Top {
        "top"
    } else {
        "bottom"
    };
    label.set_property_from_str("valignment", valign);
    label.set_property(
        "font-desc",
        format!("Sans Bold {}px", label_px(tile_height)),
    );
}

/// A screen's label is sized as for a tile half its height: screens are
/// large and their content matters more than the name.
pub(super) fn screen_label_height(tile_height: u32) -> u32 {
    tile_height / 2
}

/// Label text height: a twelfth of the tile, never below 9 px or above 28.
pub(super) fn label_px(tile_height: u32) -> u32 {
    (tile_height / 12).clamp(9, 28)
}

/// Sets a compositor pad's position and size.
pub(super) fn set_pad_geometry(pad: &gst::Pad, rect: Rect) {
    pad.set_property("xpos", rect.x as i32);
    pad.set_property("ypos", rect.y as i32);
    pad.set_property("width", rect.width as i32);
    pad.set_property("height", rect.height as i32);
}

impl ParticipantMedia {
    /// Participant id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the layout put this participant's tile, once placed.
    pub fn tile(&self) -> Option<Rect> {
        self.placed.then_some(self.tile)
    }

    /// Whether the shared screen is on the canvas.
    pub fn screen_shown(&self) -> bool {
        self.screen
            .as_ref()
            .is_some_and(|s| s.tile.is_some() && s.rect.is_some())
    }

    /// Whether the offer had a screen-share m-line.
    pub fn can_share(&self) -> bool {
        self.screen.is_some()
    }

    /// Silences (or restores) this participant's voice in every mix and in
    /// talk detection, now or as soon as its audio arrives.
    pub fn set_silenced(&mut self, silenced: bool) {
        self.silenced = silenced;
        if let Some(gate) = &self.voice_gate {
            gate.set_property("mute", silenced);
        }
    }

    /// The family this participant receives.
    pub fn family(&self) -> CodecFamily {
        self.family
    }

    /// Applies the remote offer and asks for an answer; the answer arrives as
    /// [`MediaEvent::AnswerCreated`].
    pub fn negotiate(&self, offer: gst_sdp::SDPMessage, events: &UnboundedSender<MediaEvent>) {
        let desc =
            gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, offer);
        self.webrtcbin
            .emit_by_name::<()>("set-remote-description", &[&desc, &None::<gst::Promise>]);
        let events = events.clone();
        let id = self.id.clone();
        let promise = gst::Promise::with_change_func(move |reply| {
            let answer = match reply {
                Ok(Some(s)) => s
                    .get::<gst_webrtc::WebRTCSessionDescription>("answer")
                    .map_err(|_| {
                        s.get::<glib::Error>("error")
                            .map(|e| e.to_string())
                            .unwrap_or_else(|_| "webrtcbin returned no answer".into())
                    }),
                Ok(None) => Err("webrtcbin returned no answer".into()),
                Err(e) => Err(format!("create-answer failed: {e:?}")),
            };
            let _ = events.send(MediaEvent::AnswerCreated {
                participant: id.clone(),
                answer,
            });
        });
        // webrtcbin runs its operations in order: this answer sees the offer above.
        self.webrtcbin
            .emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
    }

    /// Applies the answer we created as the local description.
    pub fn set_local_answer(&self, answer: &gst_webrtc::WebRTCSessionDescription) {
        self.webrtcbin
            .emit_by_name::<()>("set-local-description", &[answer, &None::<gst::Promise>]);
    }

    /// Adds a remote ICE candidate.
    pub fn add_ice_candidate(&self, mline: u32, candidate: &str) {
        self.webrtcbin
            .emit_by_name::<()>("add-ice-candidate", &[&mline, &candidate]);
    }
}

/// Wires webrtcbin's signals to posted events. Callbacks hold no room state.
fn connect_webrtcbin_signals(
    webrtcbin: &gst::Element,
    id: &str,
    events: &UnboundedSender<MediaEvent>,
) {
    {
        let (events, id) = (events.clone(), id.to_string());
        webrtcbin.connect("on-ice-candidate", false, move |values| {
            let mline = values.get(1).and_then(|v| v.get::<u32>().ok());
            let candidate = values.get(2).and_then(|v| v.get::<String>().ok());
            if let (Some(mline), Some(candidate)) = (mline, candidate) {
                let _ = events.send(MediaEvent::IceCandidate {
                    participant: id.clone(),
                    mline,
                    candidate,
                });
            }
            None
        });
    }
    {
        let (events, id) = (events.clone(), id.to_string());
        webrtcbin.connect_pad_added(move |_, pad| {
            if pad.direction() != gst::PadDirection::Src {
                return;
            }
            // Hold data until the actor has linked a decoder: an unlinked pad
            // would return not-linked and stop the whole receive path.
            let Some(probe) = pad.add_probe(gst::PadProbeType::BLOCK_DOWNSTREAM, |_, _| {
                gst::PadProbeReturn::Ok
            }) else {
                return;
            };
            let _ = events.send(MediaEvent::IncomingStream {
                participant: id.clone(),
                pad: pad.clone(),
                probe,
            });
        });
    }
    for (property, what) in [
        ("ice-connection-state", "ice"),
        ("connection-state", "dtls"),
    ] {
        let (events, id) = (events.clone(), id.to_string());
        webrtcbin.connect_notify(Some(property), move |w, _| {
            let failed = match property {
                "ice-connection-state" => {
                    w.property::<gst_webrtc::WebRTCICEConnectionState>(property)
                        == gst_webrtc::WebRTCICEConnectionState::Failed
                }
                _ => {
                    w.property::<gst_webrtc::WebRTCPeerConnectionState>(property)
                        == gst_webrtc::WebRTCPeerConnectionState::Failed
                }
            };
            if failed {
                let _ = events.send(MediaEvent::ConnectionFailed {
                    participant: id.clone(),
                    what,
                });
            } else if property == "connection-state"
                && w.property::<gst_webrtc::WebRTCPeerConnectionState>(property)
                    == gst_webrtc::WebRTCPeerConnectionState::Connected
            {
                let _ = events.send(MediaEvent::Connected {
                    participant: id.clone(),
                });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The H.264 payloader puts our SPS and PPS in its caps once a keyframe
    /// went through; what reaches webrtcbin has none.
    #[test]
    fn our_h264_rtp_caps_carry_no_parameter_sets() {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(
            "videotestsrc num-buffers=3 ! video/x-raw,width=64,height=64 \
             ! x264enc tune=zerolatency speed-preset=ultrafast ! rtph264pay name=pay \
             ! capssetter name=stamp ! fakesink name=sink",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let stamp = pipeline.by_name("stamp").unwrap();
        without_parameter_sets(&stamp.static_pad("src").unwrap());
        pipeline.set_state(gst::State::Playing).unwrap();
        let bus = pipeline.bus().unwrap();
        let done = bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(10),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        assert!(
            matches!(
                done.as_ref().map(|m| m.view()),
                Some(gst::MessageView::Eos(_))
            ),
            "{done:?}"
        );
        let caps_of = |name: &str, pad: &str| {
            pipeline
                .by_name(name)
                .and_then(|e| e.static_pad(pad))
                .and_then(|p| p.current_caps())
                .unwrap()
        };
        let has_sets = |c: &gst::Caps| c.structure(0).unwrap().has_field("sprop-parameter-sets");
        assert!(has_sets(&caps_of("pay", "src")), "the payloader sets them");
        let sent = caps_of("sink", "sink");
        assert!(!has_sets(&sent), "{sent}");
        assert!(sent.structure(0).unwrap().has_field("packetization-mode"));
        pipeline.set_state(gst::State::Null).unwrap();
    }
}
