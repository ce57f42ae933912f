//! Unit tests of the session's decisions: a [`Handler`] over plain
//! channels, no socket, with instants made up from a start `t0`.

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
    room: RoomId,
    tx: mpsc::Sender<RoomCommand>,
}

impl Rooms for TestRooms {
    type Link = TestLink;

    fn join(&self, room: &RoomId, join: RoomCommand) -> Result<TestLink, RoomError> {
        if let Some(refuse) = self.refuse {
            return Err(refuse());
        }
        let link = TestLink {
            room: room.clone(),
            tx: self.tx.clone(),
        };
        link.send(join)?;
        Ok(link)
    }

    fn is_open(&self, room: &RoomId) -> bool {
        room.as_str() == "open-here"
    }
}

impl RoomLink for TestLink {
    fn room(&self) -> &str {
        self.room.as_str()
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
    fn join(&mut self) -> ParticipantId {
        let out = self.text(r#"{"type":"join","room":"r","name":"Ada","role":"teacher"}"#);
        assert_eq!(out, Output::Nothing);
        match self.room.try_recv().expect("a join") {
            RoomCommand::Join {
                participant,
                who,
                codec,
                relay,
                p2p,
                outbox,
            } => {
                assert!(!relay);
                assert!(!p2p);
                assert_eq!(
                    who,
                    Identity {
                        name: "Ada".into(),
                        role: Role::Teacher,
                        token: None,
                        p2p: true,
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
                    participant: ParticipantId::parse("p00000001").unwrap(),
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
                    participant: ParticipantId::parse("p00000001").unwrap(),
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

#[test]
fn a_routed_join_waits_for_the_cluster_then_joins_here_or_is_redirected() {
    let Bench {
        handler,
        room,
        outbox,
        t0,
    } = bench();
    let mut b = Bench {
        handler: handler.routed(),
        room,
        outbox,
        t0,
    };
    // A room open here needs no routing.
    let out = b.text(r#"{"type":"join","room":"open-here","name":"Ada"}"#);
    assert_eq!(out, Output::Nothing);
    assert!(b.command().starts_with("Join"));
    let _ = b.text(r#"{"type":"leave"}"#);
    let _ = b.command();

    // Another room: the cluster is asked first; nothing reaches a room yet.
    let out = b.text(r#"{"type":"join","room":"r","name":"Ada"}"#);
    assert_eq!(out, Output::Route(RoomId::parse("r").unwrap()));
    b.no_command();
    // A second join meanwhile is out of order.
    match b.text(r#"{"type":"join","room":"r","name":"Ada"}"#) {
        Output::Send(ServerMessage::Error { code, message }) => {
            assert_eq!(code, ErrorCode::OutOfOrder);
            assert!(message.contains("being placed"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Elsewhere: the client is told where, and no room hears of it.
    let out = b.handler.handle(Input::Routed(Route::There {
        node: "b".into(),
        url: "ws://b:8080/ws".into(),
    }));
    assert_eq!(
        out,
        Output::Send(ServerMessage::Redirect {
            url: "ws://b:8080/ws".into(),
            node: "b".into(),
            reason: "elsewhere".into(),
        })
    );
    b.no_command();

    // Unreachable directory: a clear error, and the session may try again.
    let _ = b.text(r#"{"type":"join","room":"r","name":"Ada"}"#);
    match b
        .handler
        .handle(Input::Routed(Route::Unavailable("Redis is down".into())))
    {
        Output::Send(ServerMessage::Error { code, message }) => {
            assert_eq!(code, ErrorCode::RoomUnavailable);
            assert_eq!(message, "Redis is down");
        }
        other => panic!("{other:?}"),
    }
    // Here: the pending join reaches the room.
    let _ = b.text(r#"{"type":"join","room":"r","name":"Ada"}"#);
    assert_eq!(
        b.handler.handle(Input::Routed(Route::Here)),
        Output::Nothing
    );
    assert!(b.command().starts_with("Join"));
    assert!(!b.handler.awaits_join());
}
