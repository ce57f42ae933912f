//! One participant's media: what the room pipeline holds for it
//! ([`ParticipantMedia`]), how it is put together and taken apart, and what
//! the room asks of it.
//!
//! ```text
//! transport (webrtcbin) ─► ingest: depay ─► decode ─► tile ─► compositor;  voice ─► full mixer (+ own mix-minus)
//! tier encoder's tee / shared Opus tee / own mix-minus ─► egress ─► transport
//! ```
//!
//! - `mod.rs`: [`ParticipantMedia`], its state and accessors; [`Room`], the
//!   narrow view of the room it plugs into; building and removing one.
//! - `transport/`: the seam to the participant (`webrtcbin`, or plain RTP
//!   for a phone caller): send pads, incoming streams, negotiation,
//!   statistics.
//! - `phone.rs`: a phone caller's media: RTP leg, audio, placeholder tile.
//! - `ingest.rs`: what the participant sends, depayloaded, decoded and
//!   placed on the canvas and in the mix.
//! - `egress.rs`: what is sent to it: the canvas and what it hears.
//! - `tile.rs`: its tiles on the canvas: placeholder, video and screen,
//!   labels, geometry and visibility.
//! - `label.rs`: a video tile's name label, restyled only on the thread
//!   that draws it.
//! - `talk.rs`: the talk switch and a talker's own mix-minus.
//! - `crop.rs`, `newest_frame.rs`: a video tile's crop to its aspect ratio,
//!   and its queue that keeps only the newest frame.
//! - `catch_up.rs`: a voice laid out ahead of real time catches up.
//! - `resync.rs`: after a drop in the video egress, or a switch of tier,
//!   nothing until a keyframe.
//!
//! Each person hears everyone but themselves: a talker their own mix-minus,
//! everyone else the shared encode of the full mix, in which their own
//! voice is below the talk threshold.

mod catch_up;
mod crop;
mod egress;
mod ingest;
mod label;
mod newest_frame;
mod phone;
mod resync;
mod talk;
mod tile;
mod transport;

use crate::ids::{ParticipantId, Tier};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use tokio::sync::mpsc::UnboundedSender;

use crate::layout::file::Fit;
use crate::layout::{Rect, Size};
use crate::media::build::Added;
use crate::media::codec::{CodecFamily, MediaChoice};
use crate::media::latency::LatencyUpdates;
use crate::media::make::remove_elements;
use crate::media::{MediaEvent, MediaSettings};

pub use ingest::VOICE_LEVEL_SUFFIX;
pub use label::LabelStyle;
pub use talk::from_own_mix;
pub use transport::send_unheld;

use talk::TalkSwitch;
use tile::{ScreenShare, VideoTile, INITIAL_TILE};
use transport::Transport;

/// What of the room a participant plugs into: the pipeline, the shared
/// mixers and tees, and the settings. Lent by `RoomMedia` for one call.
pub(in crate::media) struct Room<'a> {
    pub(in crate::media) pipeline: &'a gst::Pipeline,
    pub(in crate::media) settings: &'a MediaSettings,
    pub(in crate::media) room: &'a str,
    pub(in crate::media) compositor: &'a gst::Element,
    pub(in crate::media) full_mixer: &'a gst::Element,
    /// The room's silence, which feeds the full mix and every own mix.
    pub(in crate::media) silence_tee: &'a gst::Element,
    /// One Opus encode of the full mix, for everyone who is not talking.
    pub(in crate::media) shared_opus_tee: &'a gst::Element,
    pub(in crate::media) latency: &'a LatencyUpdates,
}

impl Room<'_> {
    /// The pipeline as a bin, to add elements to.
    fn bin(&self) -> gst::Bin {
        self.pipeline.clone().upcast::<gst::Bin>()
    }

    /// Elements were added: the pipeline's latency is recomputed soon.
    fn latency_changed(&self) {
        self.latency.request(self.pipeline);
    }
}

/// Everything the room pipeline holds for one participant. Give it back to
/// [`RoomMedia::remove_participant`](crate::media::RoomMedia::remove_participant)
/// to free it.
#[must_use = "pass to RoomMedia::remove_participant to free its elements"]
pub struct ParticipantMedia {
    id: ParticipantId,
    /// Display name, for the tile's label.
    name: String,
    family: CodecFamily,
    /// How the media reaches the participant.
    transport: Transport,
    elements: Vec<gst::Element>,
    /// The tier it receives, and the pad of that tier's encoder tee that
    /// feeds its video (none in the audio-only tier).
    tier: Tier,
    video_tee_pad: Option<gst::Pad>,
    /// Its video send queue, linked to `video_tee_pad`.
    video_queue: gst::Element,
    /// Holds the video back from a tier switch to the next keyframe.
    switch_gate: resync::SwitchGate,
    shared_tee_pad: gst::Pad,
    talk: TalkSwitch,
    placeholder_pad: gst::Pad,
    video: Option<VideoTile>,
    /// The screen share, if the offer had a screen m-line.
    screen: Option<ScreenShare>,
    /// The decoded voice's tee into the full mix and every other talker's
    /// own mix, once audio arrived.
    mix_tee: Option<gst::Element>,
    /// Where the participant's media tells the room what happened.
    events: UnboundedSender<MediaEvent>,
    /// Silences the voice in every mix (a teacher muted it), once audio arrived.
    voice_gate: Option<gst::Element>,
    /// Whether a teacher has silenced this participant.
    silenced: bool,
    tile: Rect,
    /// Whether a layout has placed the tile yet.
    placed: bool,
    /// Whether the layout shows this participant at all.
    visible: bool,
    /// Whether decoded video has reached the tile.
    video_started: bool,
    /// Where the layout wants the name label.
    label: LabelStyle,
    /// How the layout wants the picture to fill the tile.
    fit: Fit,
    /// Canvas frames sent to the participant (past its own queue, which
    /// drops frames it cannot send in time, and past the frames held back
    /// after such a drop until a keyframe: `resync.rs`).
    canvas_sent: Arc<AtomicU64>,
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
fn branch_failed(
    events: &UnboundedSender<MediaEvent>,
    id: &ParticipantId,
    branch: &'static str,
) -> impl Fn(gst::FlowError) + Send + Sync + 'static {
    let (events, id) = (events.clone(), id.clone());
    move |error| {
        let _ = events.send(MediaEvent::BranchFailed {
            participant: id.clone(),
            branch,
            error,
        });
    }
}

impl ParticipantMedia {
    /// Builds a participant's transport and send chains, and a placeholder
    /// tile, fed from `video_tee` (the high tier's encoder). What it added
    /// is in `added`, for the caller to undo on failure.
    pub(in crate::media) fn build(
        room: &Room<'_>,
        video_tee: &gst::Element,
        id: &ParticipantId,
        name: &str,
        choice: &MediaChoice,
        events: &UnboundedSender<MediaEvent>,
        added: &mut Added,
    ) -> anyhow::Result<ParticipantMedia> {
        let family = choice.video.family;
        let bin = room.bin();

        let transport = Transport::webrtc(room, added, id, choice, events)?;
        let video = egress::build_video(&bin, added, id, choice, &transport, events)?;
        let audio = egress::build_audio(&bin, added, id, choice.audio_payload, &transport, events)?;
        // Placeholder tile with the participant's name.
        let placeholder = tile::build_placeholder(room, added, id, name)?;

        // Downstream first within each chain. Started in this order, no
        // element pushes into one that is not ready yet (a live source that
        // pushes into a still-flushing pad pauses its task for good: the
        // placeholder would never show). Stopped in this order
        // (`remove_participant`), no streaming thread is left blocked inside
        // an element that still runs, such as webrtcbin holding media back
        // until DTLS is up.
        let mut elements = transport.elements();
        if video.tail != video.pay {
            elements.push(video.tail.clone());
        }
        elements.extend([
            video.pay.clone(),
            video.queue.clone(),
            audio.opuspay.clone(),
            audio.selector.clone(),
            audio.shared_queue.clone(),
        ]);
        elements.extend(placeholder.elements.iter().cloned());
        for e in &elements {
            e.sync_state_with_parent()
                .with_context(|| format!("starting {}", e.name()))?;
        }

        // Connect to the shared streams last, once every element is playing.
        let video_queue_sink = video.queue.static_pad("sink").context("video queue sink")?;
        let switch_gate = resync::SwitchGate::install(&video_queue_sink);
        let video_tee_pad = added.request(video_tee, "src_%u")?;
        video_tee_pad
            .link(&video_queue_sink)
            .context("linking the encoder's tee to participant")?;
        let shared_tee_pad = added.request(room.shared_opus_tee, "src_%u")?;
        shared_tee_pad
            .link(
                &audio
                    .shared_queue
                    .static_pad("sink")
                    .context("shared queue sink")?,
            )
            .context("linking the shared encode to participant")?;
        room.latency_changed();
        // The newcomer's keyframe is asked for once its connection is up
        // (MediaEvent::Connected): one sent now would reach nobody and use
        // up the family's keyframe allowance for the next second.

        let canvas_sent = video.watch()?;

        let screen = transport.screen_mline.map(|mline| ScreenShare {
            mline,
            tile: None,
            rect: None,
        });
        Ok(ParticipantMedia {
            id: id.clone(),
            name: name.to_string(),
            family,
            transport,
            elements,
            tier: Tier::High,
            video_tee_pad: Some(video_tee_pad),
            video_queue: video.queue.clone(),
            switch_gate,
            shared_tee_pad,
            talk: TalkSwitch::new(audio.selector, audio.shared_select_pad),
            placeholder_pad: placeholder.pad,
            video: None,
            screen,
            mix_tee: None,
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
        })
    }

    /// Removes the participant's elements and pads without disturbing the
    /// others. `video_tee` is the tee of the encoder it receives, if any.
    pub(in crate::media) fn dismantle(mut self, room: &Room<'_>, video_tee: Option<&gst::Element>) {
        // 1. Shared producers stop pushing into this participant.
        if let (Some(tee), Some(pad)) = (video_tee, &self.video_tee_pad) {
            tee.release_request_pad(pad);
        }
        room.shared_opus_tee
            .release_request_pad(&self.shared_tee_pad);
        self.talk.stop(room);
        // 2. Its own elements stop (the transport first: it feeds the ingest chains).
        remove_elements(&room.bin(), &self.elements);
        // 3. Its inputs to the shared mixers go away.
        room.compositor.release_request_pad(&self.placeholder_pad);
        if let Some(v) = &self.video {
            room.compositor.release_request_pad(&v.pad);
        }
        if let Some(v) = self.screen.as_ref().and_then(|s| s.tile.as_ref()) {
            room.compositor.release_request_pad(&v.pad);
        }
        if let Some(tee) = &self.mix_tee {
            talk::leave_mixers(tee);
        }
    }

    /// Participant id.
    pub fn id(&self) -> &ParticipantId {
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

    /// The tier this participant receives.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Feeds its video from `new_tee` (another tier's encoder, or none for
    /// the audio-only tier) instead of `old_tee`, from the new encoder's
    /// next keyframe on. The payloader numbers on without a break, so the
    /// receiver sees one stream that changes size: no renegotiation.
    pub(in crate::media) fn switch_video(
        &mut self,
        old_tee: Option<&gst::Element>,
        new_tee: Option<&gst::Element>,
        tier: Tier,
    ) -> anyhow::Result<()> {
        let sink = self
            .video_queue
            .static_pad("sink")
            .context("video queue sink")?;
        let new_pad = match new_tee {
            Some(tee) => Some(
                tee.request_pad_simple("src_%u")
                    .context("requesting a pad of the new tier's encoder tee")?,
            ),
            None => None,
        };
        // The old stream stops before the new one is linked, and the gate
        // is armed before either: no frame of the new encoder passes ahead
        // of its keyframe.
        self.switch_gate.arm();
        self.transport.retransmits.new_stream();
        if let Some(pad) = self.video_tee_pad.take() {
            if let Some(tee) = old_tee {
                tee.release_request_pad(&pad);
            } else if let Some(peer) = pad.peer() {
                let _ = pad.unlink(&peer);
            }
        }
        if let (Some(pad), Some(tee)) = (&new_pad, new_tee) {
            if let Err(e) = pad.link(&sink) {
                tee.release_request_pad(pad);
                // Unlinked from both: it receives no video now.
                self.tier = Tier::AudioOnly;
                return Err(anyhow::anyhow!("linking the new tier's encoder: {e:?}"));
            }
        }
        self.video_tee_pad = new_pad;
        self.tier = tier;
        Ok(())
    }

    /// Puts the previous audio packet in every one sent to the participant
    /// (RED), or stops; nothing when its offer had no RED.
    pub fn set_audio_redundancy(&mut self, on: bool) {
        self.transport.set_audio_redundancy(on);
    }

    /// Distinct video packets the participant asked for again, and video
    /// packets sent to it, so far.
    pub fn video_requests(&self) -> (u64, u64) {
        self.transport.retransmits.requests()
    }

    /// Audio packets sent to the participant with a redundant block, when
    /// its offer had RED.
    pub fn redundant_audio_sent(&self) -> Option<u64> {
        self.transport.red.as_ref().map(|r| r.redundant_sent())
    }

    /// Applies the remote offer and asks for an answer; the answer arrives as
    /// [`MediaEvent::AnswerCreated`].
    pub fn negotiate(&self, offer: gst_sdp::SDPMessage, events: &UnboundedSender<MediaEvent>) {
        self.transport.negotiate(&self.id, offer, events);
    }

    /// Applies the answer we created as the local description.
    pub fn set_local_answer(&self, answer: &gst_webrtc::WebRTCSessionDescription) {
        self.transport.set_local_answer(answer);
    }

    /// Adds a remote ICE candidate.
    pub fn add_ice_candidate(&self, mline: u32, candidate: &str) {
        self.transport.add_ice_candidate(mline, candidate);
    }

    /// Asks webrtcbin for its statistics; the answer arrives as
    /// [`MediaEvent::Stats`]. Call without holding any lock: the signal
    /// takes webrtcbin's own.
    pub fn request_stats(&self, events: &UnboundedSender<MediaEvent>) {
        self.transport.request_stats(&self.id, events);
    }

    /// Canvas frames sent to the participant since it joined.
    pub fn canvas_frames_sent(&self) -> u64 {
        self.canvas_sent.load(Ordering::Relaxed)
    }

    /// The size of the camera video the participant sends, as decoded;
    /// None until its first frame was decoded.
    pub fn sent_resolution(&self) -> Option<Size> {
        let caps = self.video.as_ref()?.decoded.current_caps()?;
        let s = caps.structure(0)?;
        let (width, height) = (s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?);
        Some(Size {
            width: u32::try_from(width).ok()?,
            height: u32::try_from(height).ok()?,
        })
    }
}
