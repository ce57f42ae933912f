//! The decisions of one signaling session, without a socket: a state
//! machine fed with what happened on the socket, in the room and on the
//! clock ([`Input`]), answering with what to do ([`Output`]). It owns the
//! per-socket state: the room and participant id once joined, whether it
//! ever joined, the rate-limit bucket and strikes, and when the client was
//! last heard. Rooms are reached through the [`Rooms`] and [`RoomLink`]
//! seam, which [`Registry`] and [`RoomHandle`] implement.
//!
//! [`super::session`] drives it from a WebSocket.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::info;

use super::limits::TokenBucket;
use crate::auth::{Auth, TokenError};
use crate::cluster::Route;
use crate::config::LimitsConfig;
use crate::ids::{ParticipantId, RoomId};
use crate::layout::library::LayoutStore;
use crate::protocol::{
    decode_client_message, ClientMessage, DecodeError, ErrorCode, ServerMessage,
};
use crate::room::{
    new_participant_id, LeaveReason, Moderation, PeerSignal, Registry, RoomCommand, RoomError,
    RoomHandle,
};

/// A socket whose messages are dropped this many times in a row for
/// exceeding the rate is closed.
const RATE_STRIKES: u32 = 100;

/// The rooms a session can join.
pub(crate) trait Rooms {
    /// How the session reaches the room it joined.
    type Link: RoomLink;

    /// Delivers `join` (a [`RoomCommand::Join`]) to `room`, creating the
    /// room if needed.
    fn join(&self, room: &RoomId, join: RoomCommand) -> Result<Self::Link, RoomError>;

    /// True if `room` is open here (a join to it needs no routing).
    fn is_open(&self, room: &RoomId) -> bool;
}

/// The session's way to the one room it is in.
pub(crate) trait RoomLink {
    /// Room id.
    fn room(&self) -> &str;

    /// Queues a command without waiting.
    fn send(&self, cmd: RoomCommand) -> Result<(), RoomError>;
}

impl Rooms for Registry {
    type Link = RoomHandle;

    fn join(&self, room: &RoomId, join: RoomCommand) -> Result<RoomHandle, RoomError> {
        Registry::join(self, room, join)
    }

    fn is_open(&self, room: &RoomId) -> bool {
        self.get(room).is_some()
    }
}

impl RoomLink for RoomHandle {
    fn room(&self) -> &str {
        RoomHandle::room(self)
    }

    fn send(&self, cmd: RoomCommand) -> Result<(), RoomError> {
        RoomHandle::send(self, cmd)
    }
}

/// What happened to the session.
#[derive(Debug)]
pub(crate) enum Input<'a> {
    /// A text frame arrived at `at`.
    Text {
        /// Its text.
        text: &'a str,
        /// When it arrived.
        at: Instant,
    },
    /// A binary frame of `len` bytes arrived at `at`.
    Binary {
        /// Its size in bytes.
        len: usize,
        /// When it arrived.
        at: Instant,
    },
    /// A ping or pong frame arrived at `at`: the client is alive.
    Heard {
        /// When it arrived.
        at: Instant,
    },
    /// The room sent a message for the client.
    FromRoom(ServerMessage),
    /// The ping interval came round at `at`.
    Tick {
        /// When.
        at: Instant,
    },
    /// The time allowed to join ran out (see [`Handler::awaits_join`]).
    JoinDeadline,
    /// The cluster said where the join waiting for it ([`Output::Route`]) goes.
    Routed(Route),
    /// The socket has closed; nothing more will be written.
    Closed,
}

/// What the session should do.
#[derive(Debug, PartialEq)]
pub(crate) enum Output {
    /// Nothing.
    Nothing,
    /// Write this message to the client.
    Send(ServerMessage),
    /// Ping the client.
    Ping,
    /// Ask the cluster where a join to this room goes, then hand the
    /// answer back as [`Input::Routed`].
    Route(RoomId),
    /// Write `notice` to the client, then close the socket for a policy
    /// violation, giving `reason` in the close frame.
    Close {
        /// The last message, an error saying why.
        notice: ServerMessage,
        /// The close frame's words.
        reason: String,
    },
}

struct Joined<L> {
    link: L,
    participant: ParticipantId,
}

/// A join waiting for the cluster to say where the room is.
struct Pending {
    room: RoomId,
    participant: ParticipantId,
    join: RoomCommand,
}

/// One socket's session state and decisions.
pub(crate) struct Handler<R: Rooms> {
    rooms: R,
    auth: Auth,
    layouts: LayoutStore,
    limits: LimitsConfig,
    /// Where the room sends this client's messages (handed over on join).
    outbox: mpsc::Sender<ServerMessage>,
    joined: Option<Joined<R::Link>>,
    ever_joined: bool,
    /// Joins of rooms not open here are routed through the cluster.
    routed: bool,
    pending: Option<Pending>,
    bucket: TokenBucket,
    /// Messages dropped in a row for exceeding the rate.
    strikes: u32,
    last_heard: Instant,
}

impl<R: Rooms> Handler<R> {
    /// A session that has not joined, started at `now`: joins are checked
    /// with `auth`, layouts named from `layouts`, the caps are `limits`, and
    /// the room it joins writes to `outbox`.
    pub(crate) fn new(
        rooms: R,
        auth: Auth,
        layouts: LayoutStore,
        limits: LimitsConfig,
        outbox: mpsc::Sender<ServerMessage>,
        now: Instant,
    ) -> Handler<R> {
        Handler {
            bucket: TokenBucket::new(limits.messages_per_second, limits.message_burst, now),
            rooms,
            auth,
            layouts,
            limits,
            outbox,
            joined: None,
            ever_joined: false,
            routed: false,
            pending: None,
            strikes: 0,
            last_heard: now,
        }
    }

    /// Joins to rooms not open here are routed through the cluster
    /// ([`Output::Route`]).
    pub(crate) fn routed(mut self) -> Handler<R> {
        self.routed = true;
        self
    }

    /// True while the join deadline still applies: the session has never
    /// joined a room.
    pub(crate) fn awaits_join(&self) -> bool {
        !self.ever_joined && self.joined.is_none()
    }

    /// Decides what to do about `input`.
    pub(crate) fn handle(&mut self, input: Input<'_>) -> Output {
        match input {
            Input::Text { text, at } => self.frame(text.len(), Some(text), at),
            Input::Binary { len, at } => self.frame(len, None, at),
            Input::Heard { at } => {
                self.last_heard = at;
                Output::Nothing
            }
            Input::FromRoom(msg) => {
                if let ServerMessage::Left { .. } = &msg {
                    self.joined = None;
                }
                Output::Send(msg)
            }
            Input::Tick { at } => {
                let idle = Duration::from_secs(self.limits.idle_timeout_seconds);
                if at.saturating_duration_since(self.last_heard) > idle {
                    return close(format!(
                        "nothing received for {} s (limits.idle_timeout_seconds)",
                        self.limits.idle_timeout_seconds
                    ));
                }
                Output::Ping
            }
            Input::JoinDeadline if self.awaits_join() => close(format!(
                "no join within {} s (limits.join_timeout_seconds)",
                self.limits.join_timeout_seconds
            )),
            Input::JoinDeadline => Output::Nothing,
            Input::Routed(route) => self.routed_join(route),
            Input::Closed => {
                if let Some(j) = self.joined.take() {
                    let _ = j.link.send(RoomCommand::Leave {
                        participant: j.participant,
                        reason: LeaveReason::SocketClosed,
                    });
                }
                Output::Nothing
            }
        }
    }

    /// A data frame of `len` bytes (`text`, unless binary) at `at`: the
    /// size and rate limits first, then the message.
    fn frame(&mut self, len: usize, text: Option<&str>, at: Instant) -> Output {
        self.last_heard = at;
        let limits = &self.limits;
        let reply = if len > limits.max_message_bytes {
            Err(error(ErrorCode::TooLarge, format!(
                "a message of {len} bytes is larger than the limit of {} (limits.max_message_bytes); it was dropped",
                limits.max_message_bytes)))
        } else if !self.bucket.allow(at) {
            self.strikes += 1;
            if self.strikes >= RATE_STRIKES {
                return close(format!(
                    "more than {} messages per second (limits.messages_per_second)",
                    limits.messages_per_second
                ));
            }
            // One error per dropped run, not one per message.
            match self.strikes {
                1 => Err(error(ErrorCode::RateLimited, format!(
                    "more than {} messages per second (limits.messages_per_second, burst {}); messages are dropped until the rate falls",
                    limits.messages_per_second, limits.message_burst))),
                _ => Ok(()),
            }
        } else {
            self.strikes = 0;
            match text {
                Some(text) => self.text(text),
                None => Err(error(
                    ErrorCode::BadMessage,
                    "binary frames are not accepted; send JSON text".into(),
                )),
            }
        };
        self.ever_joined |= self.joined.is_some();
        match reply {
            Ok(()) => match &self.pending {
                Some(p) => Output::Route(p.room.clone()),
                None => Output::Nothing,
            },
            Err(reply) => Output::Send(reply),
        }
    }

    /// Handles one text frame within the limits; `Err` is the reply.
    fn text(&mut self, text: &str) -> Result<(), ServerMessage> {
        let msg = decode_client_message(text).map_err(|e| e.to_reply())?;
        match msg {
            ClientMessage::Join {
                room,
                name,
                codec,
                role,
                token,
                relay,
                p2p,
            } => {
                if let Some(j) = &self.joined {
                    return Err(error(
                        ErrorCode::OutOfOrder,
                        format!("already in room {}; send leave first", j.link.room()),
                    ));
                }
                if let Some(p) = &self.pending {
                    return Err(error(
                        ErrorCode::OutOfOrder,
                        format!(
                            "the join to room {} is still being placed; wait for `joined`",
                            p.room
                        ),
                    ));
                }
                let who = self
                    .auth
                    .check_join(&room, token.as_deref(), Some(&name), role)
                    .map_err(|e| {
                        info!(room = %room, "join refused: {e}");
                        let code = match e {
                            TokenError::NameRequired => ErrorCode::BadMessage,
                            _ => ErrorCode::Unauthorized,
                        };
                        error(code, e.to_string())
                    })?;
                // Checked by the decoder already; a second look costs nothing.
                let room = RoomId::parse(room).map_err(|e| DecodeError::from(e).to_reply())?;
                let participant = new_participant_id();
                let cmd = RoomCommand::Join {
                    participant: participant.clone(),
                    who,
                    codec,
                    relay,
                    p2p,
                    outbox: self.outbox.clone(),
                };
                if self.routed && !self.rooms.is_open(&room) {
                    self.pending = Some(Pending {
                        room,
                        participant,
                        join: cmd,
                    });
                    return Ok(());
                }
                self.enter(&room, participant, cmd)
            }
            ClientMessage::Offer { sdp, screen } => {
                self.forward(|participant| RoomCommand::Offer {
                    participant,
                    sdp,
                    screen,
                })
            }
            ClientMessage::Mute { muted } => {
                self.forward(|participant| RoomCommand::Mute { participant, muted })
            }
            ClientMessage::Screen { sharing } => self.forward(|participant| RoomCommand::Screen {
                participant,
                sharing,
            }),
            ClientMessage::Ice {
                candidate,
                sdp_m_line_index,
                ..
            } => {
                // An empty candidate means end-of-candidates; webrtcbin needs nothing.
                if candidate.is_empty() {
                    return self.member().map(|_| ());
                }
                self.forward(|participant| RoomCommand::Ice {
                    participant,
                    mline: sdp_m_line_index,
                    candidate,
                })
            }
            ClientMessage::PeerOffer { sdp } => self.forward(|participant| RoomCommand::Peer {
                participant,
                signal: PeerSignal::Offer(sdp),
            }),
            ClientMessage::PeerAnswer { sdp } => self.forward(|participant| RoomCommand::Peer {
                participant,
                signal: PeerSignal::Answer(sdp),
            }),
            ClientMessage::PeerIce {
                candidate,
                sdp_m_line_index,
                sdp_mid,
            } => self.forward(|participant| RoomCommand::Peer {
                participant,
                signal: PeerSignal::Ice {
                    candidate,
                    mline: sdp_m_line_index,
                    mid: sdp_mid,
                },
            }),
            ClientMessage::Direct { connected } => {
                self.forward(|participant| RoomCommand::Direct {
                    participant,
                    connected,
                })
            }
            ClientMessage::SetLayout { layout } => {
                self.member()?;
                let Some(l) = self.layouts.get(&layout) else {
                    return Err(error(
                        ErrorCode::NotFound,
                        format!(
                            "no layout named {layout}; available: {}",
                            self.layouts.library().names().join(", ")
                        ),
                    ));
                };
                self.forward(|by| RoomCommand::SetLayout {
                    name: layout,
                    layout: l,
                    by: Some(by),
                    reply: None,
                })
            }
            ClientMessage::Pin { participant } => self.forward(|by| RoomCommand::Pin {
                participant,
                by: Some(by),
                reply: None,
            }),
            ClientMessage::Record { on } => self.forward(|by| RoomCommand::Record {
                on,
                by: Some(by),
                reply: None,
            }),
            ClientMessage::MuteParticipant { participant, muted } => {
                self.moderate(Moderation::Silence { participant, muted })
            }
            ClientMessage::Remove { participant } => {
                self.moderate(Moderation::Remove { participant })
            }
            ClientMessage::Lock { locked } => self.moderate(Moderation::Lock { locked }),
            ClientMessage::Chat { text } => {
                self.forward(|participant| RoomCommand::Chat { participant, text })
            }
            ClientMessage::SetChat { enabled } => self.moderate(Moderation::Chat { enabled }),
            ClientMessage::Hand { raised } => self.forward(|participant| RoomCommand::Hand {
                participant,
                raised,
            }),
            ClientMessage::LowerHand { participant } => {
                self.moderate(Moderation::LowerHand { participant })
            }
            ClientMessage::Leave {} => {
                let j = self.joined.take().ok_or_else(not_joined)?;
                send(
                    &j,
                    RoomCommand::Leave {
                        participant: j.participant.clone(),
                        reason: LeaveReason::Requested,
                    },
                )
            }
        }
    }

    /// Joins `room` here.
    fn enter(
        &mut self,
        room: &RoomId,
        participant: ParticipantId,
        join: RoomCommand,
    ) -> Result<(), ServerMessage> {
        let link = self
            .rooms
            .join(room, join)
            .map_err(|e| error(ErrorCode::RoomUnavailable, e.to_string()))?;
        self.joined = Some(Joined { link, participant });
        self.ever_joined = true;
        Ok(())
    }

    /// The cluster's answer for the pending join.
    fn routed_join(&mut self, route: Route) -> Output {
        let Some(p) = self.pending.take() else {
            return Output::Nothing;
        };
        let reply = match route {
            Route::Here => self.enter(&p.room, p.participant, p.join),
            Route::There { node, url } => {
                info!(room = %p.room, node = %node, "join sent to the room's node");
                return Output::Send(ServerMessage::Redirect {
                    url,
                    node,
                    reason: "elsewhere".into(),
                });
            }
            Route::Unavailable(why) => Err(error(ErrorCode::RoomUnavailable, why)),
        };
        match reply {
            Ok(()) => Output::Nothing,
            Err(reply) => Output::Send(reply),
        }
    }

    /// The room this session is in, or the not-joined reply.
    fn member(&self) -> Result<&Joined<R::Link>, ServerMessage> {
        self.joined.as_ref().ok_or_else(not_joined)
    }

    /// Sends the command `make` builds for this participant to its room,
    /// or replies that it has not joined.
    fn forward(
        &self,
        make: impl FnOnce(ParticipantId) -> RoomCommand,
    ) -> Result<(), ServerMessage> {
        let j = self.member()?;
        send(j, make(j.participant.clone()))
    }

    /// Asks the room to apply a moderation `action` on this participant's behalf.
    fn moderate(&self, action: Moderation) -> Result<(), ServerMessage> {
        self.forward(|by| RoomCommand::Moderate {
            by: Some(by),
            action,
            reply: None,
        })
    }
}

/// Queues `cmd` for the joined room; a full or closed room is the reply.
fn send<L: RoomLink>(j: &Joined<L>, cmd: RoomCommand) -> Result<(), ServerMessage> {
    j.link
        .send(cmd)
        .map_err(|e| error(ErrorCode::RoomUnavailable, e.to_string()))
}

fn not_joined() -> ServerMessage {
    error(
        ErrorCode::OutOfOrder,
        "not in a room: send join first".into(),
    )
}

fn error(code: ErrorCode, message: String) -> ServerMessage {
    ServerMessage::Error { code, message }
}

/// A policy close for `why`: the client is told before the socket closes.
fn close(why: String) -> Output {
    Output::Close {
        notice: error(ErrorCode::BadMessage, format!("closing: {why}")),
        reason: why,
    }
}

#[cfg(test)]
mod tests;
