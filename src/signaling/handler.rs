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
use crate::config::LimitsConfig;
use crate::layout::library::LayoutStore;
use crate::protocol::{decode_client_message, ClientMessage, ErrorCode, ServerMessage};
use crate::room::{
    new_participant_id, LeaveReason, Moderation, Registry, RoomCommand, RoomError, RoomHandle,
};

/// A socket whose messages are dropped this many times in a row for
/// exceeding the rate is closed.
pub(crate) const RATE_STRIKES: u32 = 100;

/// The rooms a session can join.
pub(crate) trait Rooms {
    /// How the session reaches the room it joined.
    type Link: RoomLink;

    /// Delivers `join` (a [`RoomCommand::Join`]) to `room`, creating the
    /// room if needed.
    fn join(&self, room: &str, join: RoomCommand) -> Result<Self::Link, RoomError>;
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

    fn join(&self, room: &str, join: RoomCommand) -> Result<RoomHandle, RoomError> {
        Registry::join(self, room, join)
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
    participant: String,
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
            strikes: 0,
            last_heard: now,
        }
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
            Ok(()) => Output::Nothing,
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
            } => {
                if let Some(j) = &self.joined {
                    return Err(error(
                        ErrorCode::OutOfOrder,
                        format!("already in room {}; send leave first", j.link.room()),
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
                let participant = new_participant_id();
                let cmd = RoomCommand::Join {
                    participant: participant.clone(),
                    who,
                    codec,
                    outbox: self.outbox.clone(),
                };
                let link = self
                    .rooms
                    .join(&room, cmd)
                    .map_err(|e| error(ErrorCode::RoomUnavailable, e.to_string()))?;
                self.joined = Some(Joined { link, participant });
                Ok(())
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

    /// The room this session is in, or the not-joined reply.
    fn member(&self) -> Result<&Joined<R::Link>, ServerMessage> {
        self.joined.as_ref().ok_or_else(not_joined)
    }

    /// Sends the command `make` builds for this participant to its room,
    /// or replies that it has not joined.
    fn forward(&self, make: impl FnOnce(String) -> RoomCommand) -> Result<(), ServerMessage> {
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
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::auth::{Identity, TokenKeys};
    use crate::ids::Role;
    use crate::layout::library::Library;
    use crate::protocol::decode_client_message;

    /// Rooms over a plain channel: every room a session joins queues its
    /// commands on `tx`; with `refuse` set, joins fail with that error.
    struct TestRooms {
        tx: mpsc::Sender<RoomCommand>,
        refuse: Option<fn() -> RoomError>,
    }

    struct TestLink {
        room: String,
        tx: mpsc::Sender<RoomCommand>,
    }

    impl Rooms for TestRooms {
        type Link = TestLink;

        fn join(&self, room: &str, join: RoomCommand) -> Result<TestLink, RoomError> {
            if let Some(refuse) = self.refuse {
                return Err(refuse());
            }
            let link = TestLink {
                room: room.to_string(),
                tx: self.tx.clone(),
            };
            link.send(join)?;
            Ok(link)
        }
    }

    impl RoomLink for TestLink {
        fn room(&self) -> &str {
            &self.room
        }

        // As `RoomHandle::send`.
        fn send(&self, cmd: RoomCommand) -> Result<(), RoomError> {
            self.tx.try_send(cmd).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => RoomError::Busy {
                    room: self.room.clone(),
                },
                mpsc::error::TrySendError::Closed(_) => RoomError::Closed {
                    room: self.room.clone(),
                },
            })
        }
    }

    /// A session under test and the far ends of its channels.
    struct Bench {
        handler: Handler<TestRooms>,
        /// What reached the room.
        room: mpsc::Receiver<RoomCommand>,
        /// The outbox the session hands to the room.
        outbox: mpsc::Sender<ServerMessage>,
        t0: Instant,
    }

    fn limits() -> LimitsConfig {
        LimitsConfig {
            max_message_bytes: 512,
            messages_per_second: 10,
            message_burst: 1000,
            join_timeout_seconds: 10,
            idle_timeout_seconds: 60,
            ..LimitsConfig::default()
        }
    }

    fn layouts() -> LayoutStore {
        LayoutStore::new(Library::builtin(), PathBuf::new(), "grid".into())
    }

    fn bench_with(
        auth: Auth,
        limits: LimitsConfig,
        refuse: Option<fn() -> RoomError>,
        queue: usize,
    ) -> Bench {
        let (tx, room) = mpsc::channel(queue);
        let (outbox, _) = mpsc::channel(1);
        let t0 = Instant::now();
        let rooms = TestRooms { tx, refuse };
        let handler = Handler::new(rooms, auth, layouts(), limits, outbox.clone(), t0);
        Bench {
            handler,
            room,
            outbox,
            t0,
        }
    }

    fn bench() -> Bench {
        bench_with(Auth::open(), limits(), None, 64)
    }

    impl Bench {
        /// A text frame at `t0`.
        fn text(&mut self, text: &str) -> Output {
            let at = self.t0;
            self.handler.handle(Input::Text { text, at })
        }

        /// A text frame `ms` after `t0`.
        fn text_at(&mut self, text: &str, ms: u64) -> Output {
            let at = self.t0 + Duration::from_millis(ms);
            self.handler.handle(Input::Text { text, at })
        }

        /// The next command that reached the room, in `Debug` form.
        fn command(&mut self) -> String {
            format!("{:?}", self.room.try_recv().expect("a command"))
        }

        fn no_command(&mut self) {
            if let Ok(cmd) = self.room.try_recv() {
                panic!("unexpected command {cmd:?}");
            }
        }

        /// Joins room `r` as the teacher Ada; returns the participant id.
        fn join(&mut self) -> String {
            let out = self.text(r#"{"type":"join","room":"r","name":"Ada","role":"teacher"}"#);
            assert_eq!(out, Output::Nothing);
            match self.room.try_recv().expect("a join") {
                RoomCommand::Join {
                    participant,
                    who,
                    codec,
                    outbox,
                } => {
                    assert_eq!(
                        who,
                        Identity {
                            name: "Ada".into(),
                            role: Role::Teacher,
                            token: None
                        }
                    );
                    assert_eq!(codec, None);
                    assert!(
                        outbox.same_channel(&self.outbox),
                        "the room got another outbox"
                    );
                    participant
                }
                other => panic!("not a join: {other:?}"),
            }
        }
    }

    fn reply(code: ErrorCode, message: &str) -> Output {
        Output::Send(error(code, message.into()))
    }

    fn not_in_a_room() -> Output {
        reply(ErrorCode::OutOfOrder, "not in a room: send join first")
    }

    fn closing(why: &str) -> Output {
        Output::Close {
            notice: error(ErrorCode::BadMessage, format!("closing: {why}")),
            reason: why.into(),
        }
    }

    /// One of each message that needs a room.
    const ROOM_MESSAGES: [&str; 12] = [
        r#"{"type":"offer","sdp":"v=0"}"#,
        r#"{"type":"mute","muted":true}"#,
        r#"{"type":"screen","sharing":true}"#,
        r#"{"type":"ice","candidate":"candidate:1 1 udp 1 10.0.0.1 9 typ host","sdpMLineIndex":0}"#,
        r#"{"type":"ice","candidate":"","sdpMLineIndex":0}"#,
        r#"{"type":"setLayout","layout":"pip"}"#,
        r#"{"type":"setLayout","layout":"nope"}"#,
        r#"{"type":"pin","participant":null}"#,
        r#"{"type":"record","on":true}"#,
        r#"{"type":"muteParticipant","participant":"p00000001","muted":true}"#,
        r#"{"type":"remove","participant":"p00000001"}"#,
        r#"{"type":"leave"}"#,
    ];

    #[test]
    fn before_a_join_every_room_message_is_refused_as_not_joined() {
        let mut b = bench();
        for msg in ROOM_MESSAGES
            .into_iter()
            .chain([r#"{"type":"lock","locked":true}"#])
        {
            assert_eq!(b.text(msg), not_in_a_room(), "{msg}");
        }
        b.no_command();
        assert!(b.handler.awaits_join());
    }

    #[test]
    fn a_join_reaches_the_room_with_the_checked_identity_and_the_outbox() {
        let mut b = bench();
        let id = b.join();
        assert!(id.starts_with('p') && id.len() == 9, "{id}");
        assert!(!b.handler.awaits_join());
        assert_eq!(
            b.text(r#"{"type":"join","room":"s","name":"Bo"}"#),
            reply(ErrorCode::OutOfOrder, "already in room r; send leave first")
        );
        b.no_command();
    }

    #[test]
    fn a_joined_session_forwards_each_message_as_its_participant() {
        let mut b = bench();
        let p = b.join();
        let pip = layouts().get("pip").unwrap();
        let by = Some(p.clone());
        let expected: [(&str, Option<RoomCommand>); 11] = [
            (
                ROOM_MESSAGES[0],
                Some(RoomCommand::Offer {
                    participant: p.clone(),
                    sdp: "v=0".into(),
                    screen: None,
                }),
            ),
            (
                ROOM_MESSAGES[1],
                Some(RoomCommand::Mute {
                    participant: p.clone(),
                    muted: true,
                }),
            ),
            (
                ROOM_MESSAGES[2],
                Some(RoomCommand::Screen {
                    participant: p.clone(),
                    sharing: true,
                }),
            ),
            (
                ROOM_MESSAGES[3],
                Some(RoomCommand::Ice {
                    participant: p.clone(),
                    mline: 0,
                    candidate: "candidate:1 1 udp 1 10.0.0.1 9 typ host".into(),
                }),
            ),
            // End-of-candidates goes nowhere.
            (ROOM_MESSAGES[4], None),
            (
                ROOM_MESSAGES[5],
                Some(RoomCommand::SetLayout {
                    name: "pip".into(),
                    layout: pip,
                    by: by.clone(),
                    reply: None,
                }),
            ),
            (
                ROOM_MESSAGES[7],
                Some(RoomCommand::Pin {
                    participant: None,
                    by: by.clone(),
                    reply: None,
                }),
            ),
            (
                ROOM_MESSAGES[8],
                Some(RoomCommand::Record {
                    on: true,
                    by: by.clone(),
                    reply: None,
                }),
            ),
            (
                ROOM_MESSAGES[9],
                Some(RoomCommand::Moderate {
                    by: by.clone(),
                    action: Moderation::Silence {
                        participant: "p00000001".into(),
                        muted: true,
                    },
                    reply: None,
                }),
            ),
            (
                ROOM_MESSAGES[10],
                Some(RoomCommand::Moderate {
                    by: by.clone(),
                    action: Moderation::Remove {
                        participant: "p00000001".into(),
                    },
                    reply: None,
                }),
            ),
            (
                r#"{"type":"lock","locked":true}"#,
                Some(RoomCommand::Moderate {
                    by,
                    action: Moderation::Lock { locked: true },
                    reply: None,
                }),
            ),
        ];
        for (msg, cmd) in expected {
            assert_eq!(b.text(msg), Output::Nothing, "{msg}");
            match cmd {
                Some(cmd) => assert_eq!(b.command(), format!("{cmd:?}"), "{msg}"),
                None => b.no_command(),
            }
        }
    }

    #[test]
    fn an_unknown_layout_is_not_found_and_names_the_available_ones() {
        let mut b = bench();
        b.join();
        assert_eq!(
            b.text(ROOM_MESSAGES[6]),
            reply(
                ErrorCode::NotFound,
                "no layout named nope; available: grid, pip, presenter, screen, speaker"
            )
        );
        b.no_command();
    }

    #[test]
    fn a_busy_or_closed_room_is_reported_as_unavailable() {
        // Room for the join only.
        let mut b = bench_with(Auth::open(), limits(), None, 1);
        b.join();
        assert_eq!(b.text(ROOM_MESSAGES[1]), Output::Nothing);
        assert_eq!(
            b.text(ROOM_MESSAGES[1]),
            reply(
                ErrorCode::RoomUnavailable,
                "room r is overloaded; try again"
            )
        );
        b.room.close();
        assert_eq!(
            b.text(ROOM_MESSAGES[1]),
            reply(ErrorCode::RoomUnavailable, "room r has closed")
        );
    }

    #[test]
    fn a_join_with_a_bad_token_is_refused_as_unauthorized() {
        let keys = TokenKeys::new("a secret long enough for the test", "tessera", 0);
        let token = keys.issue(
            "a",
            Role::Student,
            "Ada",
            Duration::from_secs(600),
            crate::auth::bans::unix_now(),
        );
        let mut b = bench_with(Auth::token(keys), limits(), None, 8);
        let join = format!(r#"{{"type":"join","room":"b","token":"{token}"}}"#);
        assert_eq!(
            b.text(&join),
            reply(
                ErrorCode::Unauthorized,
                "the join token is for room `a`, not `b`"
            )
        );
        assert_eq!(
            b.text(r#"{"type":"join","room":"b","name":"Ada"}"#),
            reply(ErrorCode::Unauthorized, &TokenError::Missing.to_string())
        );
        b.no_command();
        assert!(b.handler.awaits_join());
        assert_eq!(b.text(ROOM_MESSAGES[1]), not_in_a_room());
    }

    #[test]
    fn an_open_join_without_a_name_is_a_bad_message() {
        let mut b = bench();
        assert_eq!(
            b.text(r#"{"type":"join","room":"r","token":"t"}"#),
            reply(
                ErrorCode::BadMessage,
                "this server does not use join tokens: give a display name in `name`"
            )
        );
        b.no_command();
    }

    #[test]
    fn a_join_the_rooms_refuse_is_reported_and_leaves_the_session_outside() {
        let mut b = bench_with(
            Auth::open(),
            limits(),
            Some(|| RoomError::TooManyRooms { max: 3 }),
            8,
        );
        assert_eq!(
            b.text(r#"{"type":"join","room":"r","name":"Ada"}"#),
            reply(
                ErrorCode::RoomUnavailable,
                "the server has its maximum of 3 rooms open (limits.max_rooms); try again later"
            )
        );
        assert!(b.handler.awaits_join());
        assert_eq!(b.text(ROOM_MESSAGES[1]), not_in_a_room());
    }

    #[test]
    fn malformed_text_gets_the_decode_error() {
        let mut b = bench();
        for text in [
            "not json",
            r#"{"type":"nope"}"#,
            r#"{"type":"mute"}"#,
            r#"{"type":"mute","muted":true,"extra":1}"#,
            r#"{"type":"join","room":"no spaces","name":"Ada"}"#,
        ] {
            let expected = decode_client_message(text).unwrap_err().to_string();
            assert_eq!(
                b.text(text),
                reply(ErrorCode::BadMessage, &expected),
                "{text}"
            );
        }
        assert_eq!(
            b.text(r#"{"type":"mute"}"#),
            reply(ErrorCode::BadMessage, "missing field `muted`")
        );
        b.no_command();
        assert!(b.handler.awaits_join());
    }

    #[test]
    fn binary_frames_are_refused() {
        let mut b = bench();
        let at = b.t0;
        assert_eq!(
            b.handler.handle(Input::Binary { len: 4, at }),
            reply(
                ErrorCode::BadMessage,
                "binary frames are not accepted; send JSON text"
            )
        );
    }

    #[test]
    fn too_large_frames_are_dropped_before_the_rate_is_counted() {
        let mut b = bench_with(
            Auth::open(),
            LimitsConfig {
                max_message_bytes: 64,
                message_burst: 1,
                ..limits()
            },
            None,
            8,
        );
        let big = format!(r#"{{"type":"offer","sdp":"{}"}}"#, "x".repeat(60));
        let too_large = |n: usize| {
            reply(
                ErrorCode::TooLarge,
                &format!("a message of {n} bytes is larger than the limit of 64 (limits.max_message_bytes); it was dropped"),
            )
        };
        assert_eq!(b.text(&big), too_large(big.len()));
        let at = b.t0;
        assert_eq!(
            b.handler.handle(Input::Binary { len: 65, at }),
            too_large(65)
        );
        // 64 bytes pass, and the one token of the burst is still there.
        let fits = format!(r#"{{"type":"offer","sdp":"{}"}}"#, "x".repeat(64 - 25));
        assert_eq!(fits.len(), 64);
        assert_eq!(b.text(&fits), not_in_a_room());
    }

    #[test]
    fn the_rate_limit_sends_one_error_per_dropped_run_and_closes_after_the_strikes() {
        let mut b = bench_with(
            Auth::open(),
            LimitsConfig {
                message_burst: 2,
                ..limits()
            },
            None,
            8,
        );
        let rate_limited = reply(
            ErrorCode::RateLimited,
            "more than 10 messages per second (limits.messages_per_second, burst 2); messages are dropped until the rate falls",
        );
        let join = r#"{"type":"join","room":"r","name":"Ada"}"#;
        let mute = ROOM_MESSAGES[1];
        // The burst passes.
        assert_eq!(b.text(mute), not_in_a_room());
        assert_eq!(b.text(mute), not_in_a_room());
        // Then one error, and silence while the run lasts; a dropped join
        // does not reach the rooms.
        assert_eq!(b.text(mute), rate_limited);
        assert_eq!(b.text(join), Output::Nothing);
        assert_eq!(b.text_at(mute, 50), Output::Nothing);
        b.no_command();
        assert!(b.handler.awaits_join());
        // 10 per second: a token after 100 ms ends the run.
        assert_eq!(b.text_at(mute, 110), not_in_a_room());
        // A new run gets a new error, and its hundredth drop closes.
        assert_eq!(b.text_at(mute, 110), rate_limited);
        for n in 2..RATE_STRIKES {
            assert_eq!(b.text_at(mute, 110), Output::Nothing, "strike {n}");
        }
        assert_eq!(
            b.text_at(mute, 110),
            closing("more than 10 messages per second (limits.messages_per_second)")
        );
    }

    #[test]
    fn leave_tells_the_room_and_ends_membership_but_not_the_session() {
        let mut b = bench();
        let p = b.join();
        assert_eq!(b.text(r#"{"type":"leave"}"#), Output::Nothing);
        let leave = RoomCommand::Leave {
            participant: p,
            reason: LeaveReason::Requested,
        };
        assert_eq!(b.command(), format!("{leave:?}"));
        assert_eq!(b.text(ROOM_MESSAGES[1]), not_in_a_room());
        // It joined once: the join deadline no longer applies.
        assert!(!b.handler.awaits_join());
        assert_eq!(b.handler.handle(Input::JoinDeadline), Output::Nothing);
        // Closing the socket now sends no second leave.
        assert_eq!(b.handler.handle(Input::Closed), Output::Nothing);
        b.no_command();
        // It may join again.
        b.join();
    }

    #[test]
    fn a_closed_socket_leaves_the_room() {
        let mut b = bench();
        let p = b.join();
        assert_eq!(b.handler.handle(Input::Closed), Output::Nothing);
        let leave = RoomCommand::Leave {
            participant: p,
            reason: LeaveReason::SocketClosed,
        };
        assert_eq!(b.command(), format!("{leave:?}"));
    }

    #[test]
    fn the_rooms_messages_are_passed_on_and_left_ends_membership() {
        let mut b = bench();
        b.join();
        let joined_room = error(ErrorCode::BadOffer, "no audio m-line".into());
        assert_eq!(
            b.handler.handle(Input::FromRoom(joined_room.clone())),
            Output::Send(joined_room)
        );
        assert_eq!(b.text(ROOM_MESSAGES[1]), Output::Nothing);
        b.command();
        let left = ServerMessage::Left {
            reason: LeaveReason::Removed.describe(),
        };
        assert_eq!(
            b.handler.handle(Input::FromRoom(left.clone())),
            Output::Send(left)
        );
        assert_eq!(b.text(ROOM_MESSAGES[1]), not_in_a_room());
        assert_eq!(b.handler.handle(Input::Closed), Output::Nothing);
        b.no_command();
    }

    #[test]
    fn a_session_that_never_joins_is_closed_at_the_join_deadline() {
        let mut b = bench();
        // Messages and a refused join do not stop the clock.
        assert_eq!(b.text(ROOM_MESSAGES[1]), not_in_a_room());
        assert!(matches!(
            b.text(r#"{"type":"join","room":"r","token":"t"}"#),
            Output::Send(_)
        ));
        assert!(b.handler.awaits_join());
        assert_eq!(
            b.handler.handle(Input::JoinDeadline),
            closing("no join within 10 s (limits.join_timeout_seconds)")
        );
        let mut joined = bench();
        joined.join();
        assert!(!joined.handler.awaits_join());
        assert_eq!(joined.handler.handle(Input::JoinDeadline), Output::Nothing);
    }

    #[test]
    fn a_silent_client_is_pinged_then_closed_after_the_idle_timeout() {
        let mut b = bench();
        let tick = |b: &mut Bench, s: u64| {
            let at = b.t0 + Duration::from_secs(s);
            b.handler.handle(Input::Tick { at })
        };
        assert_eq!(tick(&mut b, 20), Output::Ping);
        assert_eq!(tick(&mut b, 60), Output::Ping);
        // A pong at 30 s, a (dropped, too large) frame at 70 s.
        let at = b.t0 + Duration::from_secs(30);
        assert_eq!(b.handler.handle(Input::Heard { at }), Output::Nothing);
        assert_eq!(tick(&mut b, 90), Output::Ping);
        let at = b.t0 + Duration::from_secs(70);
        assert!(matches!(
            b.handler.handle(Input::Binary { len: 1000, at }),
            Output::Send(_)
        ));
        assert_eq!(tick(&mut b, 130), Output::Ping);
        assert_eq!(
            tick(&mut b, 131),
            closing("nothing received for 60 s (limits.idle_timeout_seconds)")
        );
    }
}
