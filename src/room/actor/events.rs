//! Media events and bus messages: what GStreamer callbacks post to the
//! room (ICE candidates, answers, incoming streams, first frames, size
//! limits, failed branches and connections, stats) and what the pipeline's
//! bus says (errors, which remove the participant whose branch failed, voice
//! levels, latency). Voice levels drive each participant's talk detector and
//! the active speaker's floor.

use crate::ids::ParticipantId;
use gstreamer as gst;
use gstreamer::prelude::*;
use tracing::{debug, error, info, warn};

use super::RoomActor;
use crate::media::MediaEvent;
use crate::protocol::{ErrorCode, ServerMessage};
use crate::room::LeaveReason;

impl RoomActor {
    /// Hands each media event to its step.
    pub(super) fn on_media_event(&mut self, ev: MediaEvent) {
        match ev {
            MediaEvent::IceCandidate {
                participant,
                mline,
                candidate,
            } => self.on_local_candidate(&participant, mline, &candidate),
            MediaEvent::AnswerCreated {
                participant,
                answer,
            } => self.on_answer(&participant, answer),
            MediaEvent::IncomingStream {
                participant,
                pad,
                probe,
            } => self.on_incoming_stream(&participant, pad, probe),
            MediaEvent::VideoStarted {
                participant,
                screen,
            } => self.on_video_started(&participant, screen),
            MediaEvent::VideoTooLarge {
                participant,
                width,
                height,
                over,
            } => self.on_video_too_large(&participant, width, height, over),
            MediaEvent::BranchFailed {
                participant,
                branch,
                error,
            } => {
                warn!(participant = %participant, branch, ?error, "send branch failed; cut off from the shared stream");
                self.remove(
                    &participant,
                    LeaveReason::MediaFailed(format!("sending {branch} failed: {error:?}")),
                );
            }
            MediaEvent::RecordingFailed { recording, reason } => {
                if self.recording_id().as_deref() == Some(recording.as_str()) {
                    error!(recording = %recording, "{reason}");
                    self.recording_failed(reason);
                }
            }
            MediaEvent::Stats {
                participant,
                sample,
            } => self.on_stats(&participant, sample),
            MediaEvent::Connected { participant } => self.on_connected(&participant),
            MediaEvent::Feedback {
                participant,
                remb,
                video,
                audio,
            } => self.on_feedback(&participant, remb, video, audio),
            MediaEvent::ConnectionFailed { participant, what } => {
                info!(participant = %participant, "{what} failed");
                self.remove(
                    &participant,
                    LeaveReason::MediaFailed(format!("{what} failed")),
                );
            }
        }
    }

    /// Sends one of our ICE candidates to the participant, unless
    /// `ice.addresses` keeps it back.
    fn on_local_candidate(&mut self, participant: &ParticipantId, mline: u32, candidate: &str) {
        let ice = &self.registry.policy().ice;
        match crate::auth::candidates::announce(candidate, ice) {
            Some(candidate) => self.send(
                participant,
                ServerMessage::Ice {
                    candidate,
                    sdp_m_line_index: mline,
                },
            ),
            None => {
                debug!(participant = %participant, "candidate kept back (ice.addresses)")
            }
        }
    }

    /// Our answer is ready: set it and send it, or give up on the participant.
    fn on_answer(
        &mut self,
        participant: &ParticipantId,
        answer: Result<gstreamer_webrtc::WebRTCSessionDescription, String>,
    ) {
        let Some(pm) = self
            .participants
            .get(participant)
            .and_then(|p| p.media.as_ref())
        else {
            return;
        };
        match answer {
            Ok(answer) => {
                pm.set_local_answer(&answer);
                let sdp = answer.sdp().as_text().unwrap_or_default();
                debug!(participant = %participant, "answer ready");
                tracing::trace!(participant = %participant, "answer:\n{sdp}");
                self.send(participant, ServerMessage::Answer { sdp });
            }
            Err(why) => {
                warn!(participant = %participant, "no answer: {why}");
                self.reply_error(
                    participant,
                    ErrorCode::BadOffer,
                    format!("the offer could not be answered: {why}"),
                );
                self.remove(participant, LeaveReason::MediaFailed(why));
            }
        }
    }

    /// A stream arrived from the participant: link it into its branch (the
    /// pad stays blocked by `probe` until then).
    fn on_incoming_stream(
        &mut self,
        participant: &ParticipantId,
        pad: gst::Pad,
        probe: gst::PadProbeId,
    ) {
        let Some(p) = self.participants.get_mut(participant) else {
            pad.remove_probe(probe);
            return;
        };
        let Some(pm) = p.media.as_mut() else {
            pad.remove_probe(probe);
            return;
        };
        if let Err(e) = self.media.link_incoming(pm, &pad, probe, &self.events_tx) {
            warn!(participant = %participant, "incoming stream refused: {e:#}");
        }
    }

    /// A camera's or a screen's first frame reached the canvas.
    fn on_video_started(&mut self, participant: &ParticipantId, screen: bool) {
        let Some(p) = self.participants.get_mut(participant) else {
            return;
        };
        info!(participant = %participant, screen, "video showing on the canvas");
        if screen {
            p.screen_started = true;
            if p.sharing {
                self.relayout();
            }
        } else if let Some(pm) = p.media.as_mut() {
            self.media.hide_placeholder(pm);
        }
    }

    /// The participant's video went over the size limit (its frames are
    /// dropped) or came back within it.
    fn on_video_too_large(
        &mut self,
        participant: &ParticipantId,
        width: i32,
        height: i32,
        over: bool,
    ) {
        let max = self.registry.policy().limits.clone();
        if over {
            warn!(participant = %participant, width, height, "video over the size limit; its frames are dropped");
            self.reply_error(
                participant,
                ErrorCode::VideoTooLarge,
                format!(
                    "your video is {width}x{height}, larger than this server takes ({}x{}, limits.max_video_width/height); it is not shown until you send a smaller one",
                    max.max_video_width, max.max_video_height
                ),
            );
        } else {
            info!(participant = %participant, width, height, "video back within the size limit");
        }
    }

    /// The participant's connection is up: it gets a keyframe.
    fn on_connected(&mut self, participant: &ParticipantId) {
        if let Some(pm) = self
            .participants
            .get(participant)
            .and_then(|p| p.media.as_ref())
        {
            debug!(participant = %participant, "connected; asking for a keyframe");
            self.media.welcome(pm);
        }
    }

    /// Handles a message from the pipeline's bus.
    pub(super) fn on_bus_message(&mut self, msg: &gst::Message) {
        use gst::MessageView;
        if self.on_recorder_message(msg) {
            return;
        }
        match msg.view() {
            MessageView::Error(err) => self.on_pipeline_error(msg, err),
            MessageView::Warning(w) => {
                debug!("pipeline warning: {} ({:?})", w.error(), w.debug());
            }
            MessageView::Element(e) => {
                if let Some((id, rms)) = voice_level(msg, e.structure()) {
                    self.on_voice_level(&id, rms);
                }
            }
            MessageView::Latency(_) if !crate::media::from_own_mix(msg) => {
                self.media.latency_changed();
            }
            _ => {}
        }
    }

    /// An element failed: the participant whose branch it is in leaves; an
    /// error in the room's shared media is only logged.
    fn on_pipeline_error(&mut self, msg: &gst::Message, err: &gst::message::Error) {
        let path = msg
            .src()
            .map(|s| s.path_string().to_string())
            .unwrap_or_default();
        let owner = owner_participant(msg, self.media.pipeline());
        warn!(element = %path, "pipeline error: {} ({:?})", err.error(), err.debug());
        dump_dot(self.media.pipeline(), "error");
        match owner {
            Some(id) if self.participants.contains_key(&id) => {
                self.remove(&id, LeaveReason::MediaFailed(format!("{}", err.error())))
            }
            _ => {
                error!(element = %path, "error in the room's shared media: {}", err.error())
            }
        }
    }

    /// Feeds a voice level to the participant's talk detector and switches
    /// what it hears when it starts or stops talking.
    fn on_voice_level(&mut self, id: &ParticipantId, rms_dbfs: f64) {
        self.loudness.insert(id.clone(), rms_dbfs);
        self.update_floor();
        let Some(p) = self.participants.get_mut(id) else {
            return;
        };
        let Some(talking) = p.talk.update(rms_dbfs, std::time::Instant::now()) else {
            return;
        };
        if let Some(pm) = p.media.as_mut() {
            debug!(participant = %id, talking, "talk state");
            if let Err(e) = self.media.set_talking(pm, talking) {
                error!(participant = %id, "{e:#}; they hear the shared mix, their own voice in it");
            }
        }
    }

    /// Gives the floor to the loudest talker (subject to the hold) and
    /// re-flows the canvas when it changes hands.
    fn update_floor(&mut self) {
        let loudest = self
            .participants
            .iter()
            .filter(|(_, p)| p.talk.is_talking())
            .filter_map(|(id, _)| self.loudness.get(id).map(|l| (id, *l)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(id, _)| id.clone());
        if let Some(speaker) = self
            .floor
            .update(loudest.as_ref(), std::time::Instant::now())
        {
            info!(participant = %speaker, "active speaker");
            self.relayout();
            self.broadcast_speaker();
        }
    }

    pub(super) fn broadcast_speaker(&mut self) {
        let speaker = self.floor.speaker().cloned();
        self.note(|at_ms| crate::recording::Event::Speaker {
            at_ms,
            participant: speaker.as_ref().map(ParticipantId::to_string),
        });
        let ids: Vec<_> = self.participants.keys().cloned().collect();
        for id in ids {
            self.send(
                &id,
                ServerMessage::Speaker {
                    participant_id: speaker.clone(),
                },
            );
        }
    }
}

/// A voice level report: the participant and its loudness in dBFS.
fn voice_level(msg: &gst::Message, s: Option<&gst::StructureRef>) -> Option<(ParticipantId, f64)> {
    let s = s?;
    if s.name() != "level" {
        return None;
    }
    let name = msg.src()?.name();
    let id = name
        .strip_suffix(crate::media::VOICE_LEVEL_SUFFIX)?
        .strip_suffix('-')?;
    let rms = s.get::<glib::ValueArray>("rms").ok()?;
    let loudest = rms
        .iter()
        .filter_map(|v| v.get::<f64>().ok())
        .fold(f64::NEG_INFINITY, f64::max);
    Some((ParticipantId::parse(id).ok()?, loudest))
}

/// The participant whose element posted `msg`: the name prefix of the
/// pipeline's direct child that contains the source (`p1a2b3c4d-vp8dec`).
fn owner_participant(msg: &gst::Message, pipeline: &gst::Pipeline) -> Option<ParticipantId> {
    let mut obj = msg.src()?.clone();
    loop {
        let parent = obj.parent()?;
        if parent.as_ptr() == pipeline.upcast_ref::<gst::Object>().as_ptr() {
            let name = obj.name();
            let (prefix, _) = name.split_once('-')?;
            return (prefix.starts_with('p') && prefix.len() == 9)
                .then(|| ParticipantId::parse(prefix).ok())
                .flatten();
        }
        obj = parent;
    }
}

/// Writes a `.dot` graph of the pipeline when `GST_DEBUG_DUMP_DOT_DIR` is set.
fn dump_dot(pipeline: &gst::Pipeline, what: &str) {
    if std::env::var_os("GST_DEBUG_DUMP_DOT_DIR").is_some() {
        pipeline.debug_to_dot_file_with_ts(gst::DebugGraphDetails::all(), what);
    }
}
