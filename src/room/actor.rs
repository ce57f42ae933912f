//! The room actor: one tokio task that owns a room's participants and its
//! [`RoomMedia`]. It takes [`RoomCommand`]s from signaling sessions,
//! [`MediaEvent`]s from GStreamer callbacks, and the pipeline's bus messages,
//! and is the only code that changes the room.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, info_span, warn, Instrument};

use super::talk::{Floor, TalkDetector};
use super::{LeaveReason, Registry};
use crate::auth::Identity;
use std::sync::Arc;

use crate::layout::decor::{decorate, DecorStyle, TileDecor};
use crate::layout::file::{parse_colour, LayoutFile};
use crate::layout::{place, send_hint, Member};
use crate::media::codec::{check_offer_shape, choose_codecs, parse_sdp, CodecError};
use crate::media::{CodecFamily, LabelStyle, MediaEvent, ParticipantMedia, RoomMedia};
use crate::protocol::{ErrorCode, ParticipantInfo, Role, ServerMessage, PROTOCOL_VERSION};

mod moderate;
mod record;
mod stats;

pub use moderate::Moderation;
pub use stats::MediaFigures;

/// How often held-back keyframe requests are re-checked.
const KEYFRAME_TICK: Duration = Duration::from_millis(100);

/// A command from a signaling session (or the server) to a room.
#[derive(Debug)]
pub enum RoomCommand {
    /// A client joins.
    Join {
        /// Its new id.
        participant: String,
        /// Name, role and token, checked by the session.
        who: Identity,
        /// Family it asked for, if any.
        codec: Option<CodecFamily>,
        /// Where the room sends this client's messages.
        outbox: mpsc::Sender<ServerMessage>,
    },
    /// The client's SDP offer.
    Offer {
        /// Sender.
        participant: String,
        /// SDP text.
        sdp: String,
        /// The `a=mid` of its screen-share m-line, if any.
        screen: Option<String>,
    },
    /// The client's microphone went off or on.
    Mute {
        /// Sender.
        participant: String,
        /// True while off.
        muted: bool,
    },
    /// The client started or stopped sharing its screen.
    Screen {
        /// Sender.
        participant: String,
        /// True while sharing.
        sharing: bool,
    },
    /// A remote ICE candidate.
    Ice {
        /// Sender.
        participant: String,
        /// m-line index.
        mline: u32,
        /// Candidate line.
        candidate: String,
    },
    /// The client leaves (or its socket closed).
    Leave {
        /// Who.
        participant: String,
        /// Why.
        reason: LeaveReason,
    },
    /// Switch the room's layout. `by` is the participant asking (it must be
    /// a teacher), or None for the admin API.
    SetLayout {
        /// Layout name.
        name: String,
        /// The layout.
        layout: Arc<LayoutFile>,
        /// Who asks.
        by: Option<String>,
        /// Outcome, for the admin API.
        reply: Option<oneshot::Sender<Result<(), String>>>,
    },
    /// Pin a participant (or unpin with None); `by` as for `SetLayout`.
    Pin {
        /// Participant to pin.
        participant: Option<String>,
        /// Who asks.
        by: Option<String>,
        /// Outcome, for the admin API.
        reply: Option<oneshot::Sender<Result<(), String>>>,
    },
    /// Layout files changed: rooms using `name` take the new version.
    LayoutReloaded {
        /// Layout name.
        name: String,
        /// The new version.
        layout: Arc<LayoutFile>,
    },
    /// Start (`on`) or stop recording; `by` as for `SetLayout`.
    Record {
        /// Start or stop.
        on: bool,
        /// Who asks.
        by: Option<String>,
        /// The recording's id, for the admin API.
        reply: Option<oneshot::Sender<Result<String, String>>>,
    },
    /// A teacher's (or, with `by` None, the admin API's) action on others.
    Moderate {
        /// Who asks.
        by: Option<String>,
        /// What to do.
        action: Moderation,
        /// Outcome, for the admin API.
        reply: Option<oneshot::Sender<Result<(), String>>>,
    },
    /// Report the room's state.
    Inspect {
        /// Where to send it.
        reply: oneshot::Sender<RoomSnapshot>,
    },
    /// Remove everyone and close (server shutdown).
    Close,
}

/// A view of a room, for the API and tests.
#[derive(Debug, Clone)]
pub struct RoomSnapshot {
    /// Room id.
    pub room: String,
    /// Participants in join order.
    pub participants: Vec<ParticipantInfo>,
    /// Families whose encoder is running.
    pub encoders: Vec<CodecFamily>,
    /// Keyframes forced per running family.
    pub forced_keyframes: Vec<(CodecFamily, u64)>,
    /// Ids of participants who are talking (they hear their own mix-minus
    /// encode; the others share one encode of the full mix).
    pub talking: Vec<String>,
    /// Name of the layout in force.
    pub layout: String,
    /// Pinned participant, if any.
    pub pinned: Option<String>,
    /// The active speaker, if any.
    pub speaker: Option<String>,
    /// Participants whose shared screen is on the canvas.
    pub screens: Vec<String>,
    /// Decorations (borders, highlight, muted markers) drawn over the canvas.
    pub decorations: u32,
    /// The recording being made, if any.
    pub recording: Option<String>,
    /// Canvas size.
    pub canvas: crate::layout::Size,
    /// Canvas frames per second.
    pub framerate: u32,
    /// Each shown camera's tile on the canvas, by participant id.
    pub tiles: Vec<(String, crate::layout::Rect)>,
    /// Each participant's video size and connection figures, by id.
    pub media: Vec<(String, MediaFigures)>,
    /// Bytes the running recording has written so far.
    pub recording_bytes: Option<u64>,
    /// The room's pipeline, weakly: upgrading fails once the room is freed.
    pub pipeline: glib::WeakRef<gst::Pipeline>,
}

struct Participant {
    name: String,
    role: Role,
    wanted: Option<CodecFamily>,
    outbox: mpsc::Sender<ServerMessage>,
    media: Option<ParticipantMedia>,
    /// Join order, for the layout.
    seq: u64,
    /// Whether the participant is talking (its own mix-minus encode is on).
    talk: TalkDetector,
    /// Its microphone is off.
    muted: bool,
    /// A teacher silenced its voice.
    silenced: bool,
    /// Id and expiry of the token it joined with.
    token: Option<(String, u64)>,
    /// It says it shares its screen.
    sharing: bool,
    /// Its screen's first frame reached the canvas.
    screen_started: bool,
    /// Its latest connection figures.
    stats: stats::ParticipantStats,
}

/// The actor's state. Created by the registry, consumed by [`RoomActor::run`].
pub(super) struct RoomActor {
    room: String,
    media: RoomMedia,
    commands: mpsc::Receiver<RoomCommand>,
    registry: Registry,
    preferred: CodecFamily,
    participants: BTreeMap<String, Participant>,
    next_seq: u64,
    events_tx: mpsc::UnboundedSender<MediaEvent>,
    events_rx: mpsc::UnboundedReceiver<MediaEvent>,
    layout: Arc<LayoutFile>,
    layout_name: String,
    pinned: Option<String>,
    /// The active speaker.
    floor: Floor,
    /// Latest loudness (dBFS) of each voice.
    loudness: std::collections::HashMap<String, f64>,
    closing: bool,
    /// Only teachers may join.
    locked: bool,
    /// The recording being made.
    recording: Option<record::ActiveRecording>,
    /// `recording.auto_record` already started one in this room.
    auto_recorded: bool,
    /// The room's share of the server's metrics.
    metrics: crate::metrics::RoomMetrics,
    /// When the stats were last gathered.
    last_stats_tick: std::time::Instant,
    /// Whether the canvas skipped late frames in the last stats interval.
    canvas_behind: bool,
}

impl RoomActor {
    pub(super) fn new(
        room: &str,
        media: RoomMedia,
        commands: mpsc::Receiver<RoomCommand>,
        registry: Registry,
        preferred: CodecFamily,
        initial: InitialLayout,
    ) -> RoomActor {
        let InitialLayout {
            name: layout_name,
            layout,
            speaker_hold,
        } = initial;
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        RoomActor {
            room: room.to_string(),
            commands,
            preferred,
            participants: BTreeMap::new(),
            next_seq: 0,
            events_tx,
            events_rx,
            layout,
            layout_name,
            pinned: None,
            floor: Floor::new(speaker_hold),
            loudness: std::collections::HashMap::new(),
            closing: false,
            locked: false,
            recording: None,
            auto_recorded: false,
            metrics: crate::metrics::RoomMetrics::new(registry.metrics().clone(), room),
            last_stats_tick: std::time::Instant::now(),
            canvas_behind: false,
            registry,
            media,
        }
    }

    /// Runs until the last participant has left.
    pub(super) async fn run(mut self) {
        let span = info_span!("room", room = %self.room);
        async move {
            info!("room opened");
            let Some(bus) = self.media.pipeline().bus() else {
                error!("room pipeline has no bus");
                return;
            };
            let mut bus = bus.stream();
            let mut tick = tokio::time::interval(KEYFRAME_TICK);
            let mut stats_tick = tokio::time::interval(stats::STATS_INTERVAL);
            stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    cmd = self.commands.recv() => match cmd {
                        Some(cmd) => self.on_command(cmd),
                        None => break,
                    },
                    Some(ev) = self.events_rx.recv() => self.on_media_event(ev),
                    Some(msg) = bus.next() => self.on_bus_message(&msg),
                    _ = tick.tick() => {
                        self.media.flush_keyframe_requests();
                        self.check_recording();
                    }
                    _ = stats_tick.tick() => self.on_stats_tick(),
                }
                // The last one out stops the recording; the room stays
                // until its files are closed.
                if self.participants.is_empty() && self.recording.is_some() {
                    let _ = self.stop_recording(None, "everyone left");
                }
                // An empty room retires, unless a command (a join) is queued.
                let mut retired = false;
                while self.participants.is_empty() && self.recording.is_none() {
                    match self.registry.retire(&self.room, &mut self.commands) {
                        Some(cmd) => self.on_command(cmd),
                        None => {
                            retired = true;
                            break;
                        }
                    }
                }
                if retired {
                    break;
                }
            }
            info!("room closed");
            // Dropping `self` frees the participants, then the pipeline.
        }
        .instrument(span)
        .await
    }

    fn on_command(&mut self, cmd: RoomCommand) {
        match cmd {
            RoomCommand::Join {
                participant,
                who,
                codec,
                outbox,
            } => self.on_join(participant, who, codec, outbox),
            RoomCommand::Moderate { by, action, reply } => {
                let result = self.moderate(by.as_deref(), action);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            RoomCommand::Offer {
                participant,
                sdp,
                screen,
            } => self.on_offer(&participant, &sdp, screen.as_deref()),
            RoomCommand::Mute { participant, muted } => {
                if let Some(p) = self.participants.get_mut(&participant) {
                    if p.muted != muted {
                        p.muted = muted;
                        self.relayout();
                        self.broadcast_participants(None);
                    }
                }
            }
            RoomCommand::Screen {
                participant,
                sharing,
            } => self.on_screen(&participant, sharing),
            RoomCommand::Ice {
                participant,
                mline,
                candidate,
            } => {
                if let Some(m) = self
                    .participants
                    .get(&participant)
                    .and_then(|p| p.media.as_ref())
                {
                    m.add_ice_candidate(mline, &candidate);
                } else {
                    self.reply_error(
                        &participant,
                        ErrorCode::OutOfOrder,
                        "ice candidate before offer: send the offer first".into(),
                    );
                }
            }
            RoomCommand::Leave {
                participant,
                reason,
            } => self.remove(&participant, reason),
            RoomCommand::SetLayout {
                name,
                layout,
                by,
                reply,
            } => {
                let result = self
                    .authorize(by.as_deref(), "switch the layout")
                    .map(|()| {
                        info!(layout = %name, "layout switched");
                        self.note(|at_ms| crate::recording::Event::Layout {
                            at_ms,
                            name: name.clone(),
                        });
                        self.layout = layout;
                        self.layout_name = name;
                        self.relayout();
                        self.broadcast_layout();
                    });
                respond(reply, result);
            }
            RoomCommand::Pin {
                participant,
                by,
                reply,
            } => {
                let result = self
                    .authorize(by.as_deref(), "pin a participant")
                    .and_then(|()| match &participant {
                        Some(p) if !self.participants.contains_key(p) => {
                            let message = format!("no participant {p} in room {}", self.room);
                            if let Some(asker) = by.as_deref() {
                                self.reply_error(asker, ErrorCode::NotFound, message.clone());
                            }
                            Err(message)
                        }
                        _ => Ok(()),
                    })
                    .map(|()| {
                        self.pinned = participant;
                        self.relayout();
                        self.broadcast_layout();
                    });
                respond(reply, result);
            }
            RoomCommand::LayoutReloaded { name, layout } => {
                if name == self.layout_name {
                    info!(layout = %name, "layout file reloaded");
                    self.layout = layout;
                    self.relayout();
                }
            }
            RoomCommand::Record { on, by, reply } => {
                let result = if on {
                    self.start_recording(by.as_deref())
                } else {
                    self.stop_recording(by.as_deref(), "stopped by a teacher or admin")
                };
                if let Some(r) = reply {
                    let _ = r.send(result);
                }
            }
            RoomCommand::Inspect { reply } => {
                let _ = reply.send(self.snapshot());
            }
            RoomCommand::Close => {
                self.closing = true;
                if self.recording.is_some() {
                    let _ = self.stop_recording(None, "the server is shutting down");
                }
                let ids: Vec<_> = self.participants.keys().cloned().collect();
                for id in ids {
                    self.remove(&id, LeaveReason::Shutdown);
                }
            }
        }
    }

    fn on_join(
        &mut self,
        id: String,
        who: Identity,
        codec: Option<CodecFamily>,
        outbox: mpsc::Sender<ServerMessage>,
    ) {
        if let Some((code, message)) = self.join_refusal(&who) {
            info!(participant = %id, "join refused: {message}");
            let _ = outbox.try_send(ServerMessage::Error { code, message });
            // Tell the session it is not in the room after all.
            let _ = outbox.try_send(ServerMessage::Left {
                reason: "the join was refused".into(),
            });
            return;
        }
        let Identity { name, role, token } = who;
        info!(participant = %id, "joined");
        self.next_seq += 1;
        self.participants.insert(
            id.clone(),
            Participant {
                name,
                role,
                wanted: codec,
                outbox,
                media: None,
                seq: self.next_seq,
                talk: TalkDetector::default(),
                muted: false,
                silenced: false,
                token,
                sharing: false,
                screen_started: false,
                stats: Default::default(),
            },
        );
        let joined = ServerMessage::Joined {
            version: PROTOCOL_VERSION,
            room: self.room.clone(),
            participant_id: id.clone(),
            participants: self.participant_list(),
            ice_servers: crate::auth::turn::ice_servers(
                &self.registry.policy().ice,
                &id,
                crate::auth::bans::unix_now(),
            ),
            locked: self.locked,
        };
        self.send(&id, joined);
        let layout = self.layout_message();
        self.send(&id, layout);
        self.broadcast_participants(Some(&id));
        if let Some(r) = self.recording_id() {
            self.send(
                &id,
                ServerMessage::Recording {
                    active: true,
                    id: Some(r),
                },
            );
        }
        let (name, role) = {
            let p = &self.participants[&id];
            (p.name.clone(), p.role)
        };
        self.note(|at_ms| crate::recording::Event::Joined {
            at_ms,
            participant: id.clone(),
            name,
            role: serde_json::to_value(role)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        });
    }

    fn on_screen(&mut self, id: &str, sharing: bool) {
        let Some(p) = self.participants.get_mut(id) else {
            return;
        };
        let refusal = match &p.media {
            None => Some("send the offer before sharing a screen"),
            Some(m) if sharing && !m.can_share() => Some(
                "no screen m-line was negotiated: offer a second video m-line and name its mid in the offer's `screen` field",
            ),
            Some(_) => None,
        };
        if let Some(why) = refusal {
            return self.reply_error(id, ErrorCode::OutOfOrder, why.into());
        }
        if p.sharing == sharing {
            return;
        }
        p.sharing = sharing;
        info!(participant = %id, sharing, "screen share");
        if let Some(pm) = p.media.as_ref().filter(|_| sharing) {
            self.media.request_screen_keyframe(pm);
        }
        self.relayout();
        self.broadcast_participants(None);
    }

    fn on_offer(&mut self, id: &str, sdp: &str, screen: Option<&str>) {
        let span = info_span!("offer", participant = %id);
        let _enter = span.enter();
        let Some(p) = self.participants.get(id) else {
            return;
        };
        if p.media.is_some() {
            self.reply_error(
                id,
                ErrorCode::OutOfOrder,
                "this participant already negotiated; renegotiation is not supported, leave and join again".into(),
            );
            return;
        }
        let offer = match parse_sdp(sdp).and_then(|o| check_offer_shape(&o).map(|()| o)) {
            Ok(o) => o,
            Err(e) => {
                info!("offer refused: {e}");
                return self.reply_error(id, ErrorCode::BadOffer, e.to_string());
            }
        };
        let choice = match choose_codecs(&offer, p.wanted, self.preferred, screen) {
            Ok(c) => c,
            Err(e) => {
                let code = match e {
                    CodecError::Unparsable
                    | CodecError::MissingMedia(_)
                    | CodecError::NoScreenMline(_) => ErrorCode::BadOffer,
                    _ => ErrorCode::UnsupportedCodec,
                };
                info!("offer refused: {e}");
                return self.reply_error(id, code, e.to_string());
            }
        };
        let name = p.name.clone();
        let pm = match self
            .media
            .add_participant(id, &name, &choice, &self.events_tx)
        {
            Ok(pm) => pm,
            Err(e) => {
                error!("building participant media: {e:#}");
                return self.reply_error(
                    id,
                    ErrorCode::Internal,
                    format!("the server could not set up your media: {e}"),
                );
            }
        };
        info!(family = %choice.video.family, video_pt = choice.video.payload, audio_pt = choice.audio_payload, "offer accepted");
        pm.negotiate(offer, &self.events_tx);
        if let Some(p) = self.participants.get_mut(id) {
            p.media = Some(pm);
        }
        self.count_participants();
        self.relayout();
        self.broadcast_participants(None);
        if !self.auto_recorded && self.registry.recordings().auto_records(&self.room) {
            // Once per room: a teacher who stops it is not overruled.
            self.auto_recorded = true;
            let _ = self.start_recording(None);
        }
    }

    fn on_media_event(&mut self, ev: MediaEvent) {
        match ev {
            MediaEvent::IceCandidate {
                participant,
                mline,
                candidate,
            } => {
                let ice = &self.registry.policy().ice;
                match crate::auth::candidates::announce(&candidate, ice) {
                    Some(candidate) => self.send(
                        &participant,
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
            MediaEvent::AnswerCreated {
                participant,
                answer,
            } => {
                let Some(pm) = self
                    .participants
                    .get(&participant)
                    .and_then(|p| p.media.as_ref())
                else {
                    return;
                };
                match answer {
                    Ok(answer) => {
                        pm.set_local_answer(&answer);
                        let sdp = answer.sdp().as_text().unwrap_or_default();
                        debug!(participant = %participant, "answer ready");
                        self.send(&participant, ServerMessage::Answer { sdp });
                    }
                    Err(why) => {
                        warn!(participant = %participant, "no answer: {why}");
                        self.reply_error(
                            &participant,
                            ErrorCode::BadOffer,
                            format!("the offer could not be answered: {why}"),
                        );
                        self.remove(&participant, LeaveReason::MediaFailed(why));
                    }
                }
            }
            MediaEvent::IncomingStream {
                participant,
                pad,
                probe,
            } => {
                let Some(p) = self.participants.get_mut(&participant) else {
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
            MediaEvent::VideoStarted {
                participant,
                screen,
            } => {
                let Some(p) = self.participants.get_mut(&participant) else {
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
            MediaEvent::VideoTooLarge {
                participant,
                width,
                height,
                over,
            } => {
                let max = self.registry.policy().limits.clone();
                if over {
                    warn!(participant = %participant, width, height, "video over the size limit; its frames are dropped");
                    self.reply_error(
                        &participant,
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
            MediaEvent::Connected { participant } => {
                if let Some(pm) = self
                    .participants
                    .get(&participant)
                    .and_then(|p| p.media.as_ref())
                {
                    debug!(participant = %participant, "connected; asking for a keyframe");
                    self.media.welcome(pm);
                }
            }
            MediaEvent::ConnectionFailed { participant, what } => {
                info!(participant = %participant, "{what} failed");
                self.remove(
                    &participant,
                    LeaveReason::MediaFailed(format!("{what} failed")),
                );
            }
        }
    }

    fn on_bus_message(&mut self, msg: &gst::Message) {
        use gst::MessageView;
        if self.on_recorder_message(msg) {
            return;
        }
        match msg.view() {
            MessageView::Error(err) => {
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

    /// Feeds a voice level to the participant's talk detector and switches
    /// what it hears when it starts or stops talking.
    fn on_voice_level(&mut self, id: &str, rms_dbfs: f64) {
        self.loudness.insert(id.to_string(), rms_dbfs);
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
            .update(loudest.as_deref(), std::time::Instant::now())
        {
            info!(participant = %speaker, "active speaker");
            self.relayout();
            self.broadcast_speaker();
        }
    }

    fn broadcast_speaker(&mut self) {
        let speaker = self.floor.speaker().map(str::to_string);
        self.note(|at_ms| crate::recording::Event::Speaker {
            at_ms,
            participant: speaker.clone(),
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

    /// Removes a participant and re-flows the canvas.
    fn remove(&mut self, id: &str, reason: LeaveReason) {
        let Some(p) = self.participants.remove(id) else {
            return;
        };
        info!(participant = %id, reason = %reason.describe(), "left");
        self.note(|at_ms| crate::recording::Event::Left {
            at_ms,
            participant: id.to_string(),
        });
        if self.pinned.as_deref() == Some(id) {
            self.pinned = None;
            self.broadcast_layout();
        }
        self.loudness.remove(id);
        if self.floor.remove(id) {
            self.broadcast_speaker();
        }
        if let Some(pm) = p.media {
            let family = pm.family();
            let last = !self
                .participants
                .values()
                .any(|o| o.media.as_ref().is_some_and(|m| m.family() == family));
            self.media.remove_participant(pm, last);
        }
        self.metrics.participant_left(id);
        self.count_participants();
        if reason != LeaveReason::SocketClosed {
            let _ = p.outbox.try_send(ServerMessage::Left {
                reason: reason.describe(),
            });
        }
        self.relayout();
        self.broadcast_participants(None);
    }

    /// Applies the layout to every participant with media, in join order
    /// (a shared screen right after its owner's camera), draws the tile
    /// decorations, and tells each participant whose tile changed what to send.
    fn relayout(&mut self) {
        let mut order: Vec<(u64, String)> = self
            .participants
            .iter()
            .filter(|(_, p)| p.media.is_some())
            .map(|(id, p)| (p.seq, id.clone()))
            .collect();
        order.sort();
        let mut tiles: Vec<(String, bool)> = Vec::new();
        let mut members: Vec<Member> = Vec::new();
        for (_, id) in order {
            let p = &self.participants[&id];
            members.push(Member {
                teacher: p.role == Role::Teacher,
                pinned: self.pinned.as_deref() == Some(id.as_str()),
                speaker: self.floor.speaker() == Some(id.as_str()),
                ..Member::default()
            });
            let screen = p.sharing && p.screen_started;
            tiles.push((id.clone(), false));
            if screen {
                members.push(Member {
                    screen: true,
                    ..Member::default()
                });
                tiles.push((id, true));
            }
        }
        let placements = place(&self.layout, self.media.canvas(), &members);
        if let Some(rgb) = parse_colour(&self.layout.background) {
            self.media.set_background(rgb);
        }
        let framerate = self.media.framerate();
        let mut decor = Vec::new();
        for (index, (id, screen)) in tiles.iter().enumerate() {
            let speaker = self.floor.speaker() == Some(id.as_str());
            let Some(p) = self.participants.get_mut(id) else {
                continue;
            };
            let muted = p.muted || p.silenced;
            let Some(pm) = p.media.as_mut() else {
                continue;
            };
            let placement = placements.iter().find(|p| p.member == index);
            if *screen {
                match placement {
                    Some(pl) => self.media.place_screen(pm, pl.rect, pl.z, pl.fit),
                    None => self.media.hide_screen(pm),
                }
                decor.extend(placement.map(|pl| TileDecor {
                    rect: pl.rect,
                    z: pl.z,
                    speaker: false,
                    muted: false,
                }));
                continue;
            }
            if !tiles.contains(&(id.clone(), true)) {
                self.media.hide_screen(pm);
            }
            let Some(placement) = placement else {
                self.media.hide_tile(pm);
                continue;
            };
            let rect = placement.rect;
            let changed = pm.tile() != Some(rect);
            self.media.place_tile(pm, rect, placement.z, placement.fit);
            self.media.set_label(pm, label_style(&self.layout));
            decor.push(TileDecor {
                rect,
                z: placement.z,
                speaker,
                muted,
            });
            if changed {
                let hint = send_hint(rect, framerate);
                self.send(
                    id,
                    ServerMessage::Tile {
                        width: hint.width,
                        height: hint.height,
                        framerate: hint.framerate,
                        max_bitrate: hint.max_bitrate,
                    },
                );
            }
        }
        self.media
            .set_decorations(&decorate(&decor, &DecorStyle::of(&self.layout)));
    }

    fn participant_list(&self) -> Vec<ParticipantInfo> {
        let mut list: Vec<_> = self.participants.iter().collect();
        list.sort_by_key(|(_, p)| p.seq);
        list.into_iter()
            .map(|(id, p)| ParticipantInfo {
                id: id.clone(),
                name: p.name.clone(),
                role: p.role,
                codec: p.media.as_ref().map(|m| m.family()),
                muted: p.muted,
                sharing: p.sharing,
                silenced: p.silenced,
            })
            .collect()
    }

    fn broadcast_participants(&mut self, except: Option<&str>) {
        let list = self.participant_list();
        let ids: Vec<_> = self
            .participants
            .keys()
            .filter(|id| Some(id.as_str()) != except)
            .cloned()
            .collect();
        for id in ids {
            self.send(
                &id,
                ServerMessage::Participants {
                    participants: list.clone(),
                },
            );
        }
    }

    /// Checks that `by` (a participant, or None for the admin API) may
    /// change the room; tells a refused participant why.
    fn authorize(&mut self, by: Option<&str>, what: &str) -> Result<(), String> {
        let Some(id) = by else {
            return Ok(());
        };
        match self.participants.get(id) {
            Some(p) if p.role == Role::Teacher => Ok(()),
            Some(_) => {
                let message = format!("only a teacher may {what}");
                self.reply_error(id, ErrorCode::Forbidden, message.clone());
                Err(message)
            }
            None => Err(format!("{id} is not in room {}", self.room)),
        }
    }

    fn broadcast_layout(&mut self) {
        let ids: Vec<_> = self.participants.keys().cloned().collect();
        for id in ids {
            let layout = self.layout_message();
            self.send(&id, layout);
        }
    }

    fn layout_message(&self) -> ServerMessage {
        ServerMessage::Layout {
            name: self.layout_name.clone(),
            pinned: self.pinned.clone(),
            available: self.registry.layouts().library().names(),
        }
    }

    fn reply_error(&mut self, id: &str, code: ErrorCode, message: String) {
        self.send(id, ServerMessage::Error { code, message });
    }

    /// Queues a message for one client; a client that cannot keep up is removed.
    fn send(&mut self, id: &str, msg: ServerMessage) {
        let Some(p) = self.participants.get(id) else {
            return;
        };
        match p.outbox.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => {
                // The session is gone; its Leave is on the way.
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                warn!(participant = %id, "outbox full, removing participant");
                self.remove(id, LeaveReason::TooSlow);
            }
        }
    }

    fn snapshot(&self) -> RoomSnapshot {
        let encoders = self.media.active_families();
        RoomSnapshot {
            room: self.room.clone(),
            participants: self.participant_list(),
            forced_keyframes: encoders
                .iter()
                .map(|f| (*f, self.media.forced_keyframes(*f)))
                .collect(),
            encoders,
            talking: {
                let mut t: Vec<_> = self
                    .participants
                    .iter()
                    .filter(|(_, p)| p.talk.is_talking())
                    .map(|(id, _)| id.clone())
                    .collect();
                t.sort();
                t
            },
            layout: self.layout_name.clone(),
            pinned: self.pinned.clone(),
            speaker: self.floor.speaker().map(str::to_string),
            screens: {
                let mut ids: Vec<_> = self
                    .participants
                    .iter()
                    .filter(|(_, p)| p.media.as_ref().is_some_and(|m| m.screen_shown()))
                    .map(|(id, _)| id.clone())
                    .collect();
                ids.sort();
                ids
            },
            decorations: self.media.decoration_count(),
            recording: self.recording_id(),
            canvas: self.media.canvas(),
            framerate: self.media.framerate(),
            tiles: self
                .participants
                .iter()
                .filter_map(|(id, p)| Some((id.clone(), p.media.as_ref()?.tile()?)))
                .collect(),
            media: self.media_figures(),
            recording_bytes: self.recording_progress().map(|(_, bytes)| bytes),
            pipeline: self.media.pipeline().downgrade(),
        }
    }
}

impl Drop for RoomActor {
    /// Takes participants out one by one, as when they leave, before the
    /// pipeline stops: stopping it whole while media flows, with its loops
    /// from each webrtcbin through the mixers back to it, can deadlock.
    /// (A room normally ends empty; this covers a runtime shutting down.)
    fn drop(&mut self) {
        for (_, p) in std::mem::take(&mut self.participants) {
            if let Some(pm) = p.media {
                self.media.remove_participant(pm, false);
            }
        }
        // What the encoders put out since the last tick still counts.
        let outputs = self.media.encoded();
        self.metrics.encoders(&outputs, Duration::ZERO);
    }
}

/// The layout a room starts with.
pub(super) struct InitialLayout {
    /// Layout name.
    pub(super) name: String,
    /// The layout.
    pub(super) layout: Arc<LayoutFile>,
    /// How long the active speaker keeps the floor at least.
    pub(super) speaker_hold: std::time::Duration,
}

/// Where the layout wants name labels: clear of borders and the highlight.
fn label_style(layout: &LayoutFile) -> LabelStyle {
    LabelStyle {
        position: layout.labels.position,
        inset: DecorStyle::of(layout).edge(),
    }
}

/// Sends an outcome to the admin API, if it asked.
fn respond(reply: Option<oneshot::Sender<Result<(), String>>>, result: Result<(), String>) {
    if let Some(r) = reply {
        let _ = r.send(result);
    }
}

/// A voice level report: the participant and its loudness in dBFS.
fn voice_level(msg: &gst::Message, s: Option<&gst::StructureRef>) -> Option<(String, f64)> {
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
    Some((id.to_string(), loudest))
}

/// The participant whose element posted `msg`: the name prefix of the
/// pipeline's direct child that contains the source (`p1a2b3c4d-vp8dec`).
fn owner_participant(msg: &gst::Message, pipeline: &gst::Pipeline) -> Option<String> {
    let mut obj = msg.src()?.clone();
    loop {
        let parent = obj.parent()?;
        if parent.as_ptr() == pipeline.upcast_ref::<gst::Object>().as_ptr() {
            let name = obj.name();
            let (prefix, _) = name.split_once('-')?;
            return (prefix.starts_with('p') && prefix.len() == 9).then(|| prefix.to_string());
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
