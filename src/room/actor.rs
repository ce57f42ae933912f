//! The room actor: one tokio task that owns a room's participants and its
//! [`RoomMedia`]. It takes [`RoomCommand`]s from signaling sessions,
//! [`MediaEvent`]s from GStreamer callbacks, and the pipeline's bus messages,
//! and is the only code that changes the room.
//!
//! This file holds the actor's state, its `run` loop, the dispatch of each
//! command to the concern that carries it out, and sending to clients. The
//! concerns, one file each:
//! - [`members`]: join, offer, mute, screen share, ICE, leave/remove, close,
//!   the participant list;
//! - [`events`]: media events, bus messages, voice levels and the talk floor;
//! - [`canvas`]: the layout in force, pinning, and the relayout;
//! - [`moderate`]: who may change the room, who may join, teachers' actions,
//!   and [`refusal`]: why a request was refused, in the asker's words;
//! - [`record`]: the recording and its timeline;
//! - [`stats`]: live figures and metrics;
//! - [`adapt`]: each receiver's downlink and the quality tier it gets;
//! - [`mode`]: whether the room runs peer-to-peer or on the MCU.

use crate::ids::{ParticipantId, RoomId};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use gstreamer::prelude::*;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, info_span, warn, Instrument};

use super::talk::{Floor, TalkDetector};
use super::{LeaveReason, Registry, RoomCommand, RoomSnapshot};
use crate::layout::file::LayoutFile;
use crate::media::{CodecFamily, MediaEvent, ParticipantMedia, RoomMedia};
use crate::protocol::{ErrorCode, Role, ServerMessage};
pub use refusal::Refusal;

mod adapt;
mod canvas;
mod chat;
mod events;
mod hands;
mod members;
mod mode;
mod moderate;
mod phone;
mod record;
mod refusal;
mod stats;

pub use adapt::DownlinkFigures;
pub use moderate::Moderation;
pub use stats::MediaFigures;

/// How often held-back keyframe requests are re-checked.
const KEYFRAME_TICK: Duration = Duration::from_millis(100);

/// One member of the room, as the actor keeps it.
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
    /// What its downlink carries, and the tier it gets.
    downlink: super::downlink::Downlink,
    /// The loss its link shows on our audio, for the Opus FEC it gets.
    audio_loss: super::audio_loss::ExpectedLoss,
    /// Whether its client can connect directly to another (`join.p2p`).
    direct: bool,
    /// Its token keeps the room on the MCU (claim `p2p: false`).
    no_p2p: bool,
    /// Its direct connection to the other of the pair is up: the server
    /// sends it no canvas.
    parked: bool,
    /// Its hand is up: when, in the room's count of raised hands.
    hand: Option<u64>,
    /// How fast it may chat.
    chat_rate: crate::room::chat::ChatRate,
    /// A phone caller (SIP): audio only, never in another tier; let go
    /// after this long without RTP.
    phone: Option<std::time::Duration>,
}

/// The actor's state. Created by the registry, consumed by [`RoomActor::run`].
pub(super) struct RoomActor {
    room: RoomId,
    media: RoomMedia,
    commands: mpsc::Receiver<RoomCommand>,
    registry: Registry,
    preferred: CodecFamily,
    participants: BTreeMap<ParticipantId, Participant>,
    next_seq: u64,
    events_tx: mpsc::UnboundedSender<MediaEvent>,
    events_rx: mpsc::UnboundedReceiver<MediaEvent>,
    layout: Arc<LayoutFile>,
    layout_name: String,
    pinned: Option<ParticipantId>,
    /// The active speaker.
    floor: Floor<ParticipantId>,
    /// Latest loudness (dBFS) of each voice.
    loudness: std::collections::HashMap<ParticipantId, f64>,
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
    /// What each encoder puts out, for what each tier needs.
    rates: adapt::EncodingRates,
    /// Peer-to-peer or the MCU, and why.
    mode: super::mode::ModeSwitch,
    /// When the mode last changed.
    mode_since: std::time::SystemTime,
    /// The pair's direct connection, while peer-to-peer.
    direct: super::mode::DirectLink,
    /// Hands raised so far, for their order.
    hands_raised: u64,
    /// Students may chat.
    chat_enabled: bool,
    /// The latest chat messages, for those who join later.
    chat_history: std::collections::VecDeque<ServerMessage>,
}

impl RoomActor {
    pub(super) fn new(
        room: &RoomId,
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
            room: room.clone(),
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
            rates: Default::default(),
            mode: super::mode::ModeSwitch::new(
                std::time::Instant::now(),
                registry.mode_policy().hold,
            ),
            mode_since: std::time::SystemTime::now(),
            direct: Default::default(),
            hands_raised: 0,
            chat_enabled: true,
            chat_history: Default::default(),
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
                        self.media.tick();
                        self.check_recording();
                        self.check_direct();
                    }
                    _ = stats_tick.tick() => self.on_stats_tick(),
                }
                self.decide_mode();
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
            // Dropping `self` frees the participants, then the pipeline;
            // then what its threads freed goes back to the system.
            drop(self);
            crate::media::memory::give_back();
        }
        .instrument(span)
        .await
    }

    /// Hands each command to the concern that carries it out.
    fn on_command(&mut self, cmd: RoomCommand) {
        match cmd {
            RoomCommand::Join {
                participant,
                who,
                codec,
                relay,
                p2p,
                outbox,
            } => self.on_join(participant, who, codec, relay, p2p, outbox),
            RoomCommand::Moderate { by, action, reply } => {
                respond(reply, self.moderate(by.as_ref(), action));
            }
            RoomCommand::Offer {
                participant,
                sdp,
                screen,
            } => self.on_offer(&participant, &sdp, screen.as_deref()),
            RoomCommand::Phone {
                participant,
                tile,
                leg,
                timeout,
                socket,
                reply,
            } => {
                let _ = reply.send(self.on_phone(&participant, &tile, &leg, socket, timeout));
            }
            RoomCommand::Mute { participant, muted } => self.on_mute(&participant, muted),
            RoomCommand::Hand {
                participant,
                raised,
            } => self.on_hand(&participant, raised),
            RoomCommand::Chat { participant, text } => self.on_chat(&participant, text),
            RoomCommand::Screen {
                participant,
                sharing,
            } => self.on_screen(&participant, sharing),
            RoomCommand::Ice {
                participant,
                mline,
                candidate,
            } => self.on_ice(&participant, mline, &candidate),
            RoomCommand::Peer {
                participant,
                signal,
            } => self.on_peer(&participant, signal),
            RoomCommand::Direct {
                participant,
                connected,
            } => self.on_direct(&participant, connected),
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
                respond(reply, self.set_layout(name, layout, by.as_ref()));
            }
            RoomCommand::Pin {
                participant,
                by,
                reply,
            } => {
                respond(reply, self.pin(participant, by.as_ref()));
            }
            RoomCommand::LayoutReloaded { name, layout } => self.layout_reloaded(name, layout),
            RoomCommand::Record { on, by, reply } => {
                respond(reply, self.record(on, by.as_ref()));
            }
            RoomCommand::Inspect { reply } => {
                let _ = reply.send(self.snapshot());
            }
            RoomCommand::Close => self.close(LeaveReason::Shutdown),
            RoomCommand::Move { url, node } => {
                tracing::info!(to = %node, "room moves to another node");
                let ids: Vec<_> = self.participants.keys().cloned().collect();
                for id in ids {
                    self.send(
                        &id,
                        ServerMessage::Redirect {
                            url: url.clone(),
                            node: node.clone(),
                            reason: "draining".into(),
                        },
                    );
                }
                self.close(LeaveReason::Moved);
            }
        }
    }

    fn reply_error(&mut self, id: &ParticipantId, code: ErrorCode, message: String) {
        self.send(id, ServerMessage::Error { code, message });
    }

    /// Queues a message for one client; a client that cannot keep up is removed.
    fn send(&mut self, id: &ParticipantId, msg: ServerMessage) {
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
            video_encoders: self.media.video_encoders(),
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
            speaker: self.floor.speaker().cloned(),
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
            mode: self.mode_figures(),
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
                self.media.remove_participant(pm);
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

/// Sends an outcome to the admin API, if it asked.
fn respond<T>(reply: Option<oneshot::Sender<T>>, result: T) {
    if let Some(r) = reply {
        let _ = r.send(result);
    }
}
