//! One phone call: the INVITE checked (who calls, which number, the
//! offer); for a room's own number the caller joins the room like any
//! participant and is answered, for the lobby number it is answered, asked
//! for a PIN and then joins; BYE from either side, a teacher's removal,
//! the room closing or shutdown end it, and the caller leaves.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::dialog::{DialogState, TerminatedReason};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::prelude::{HeadersExt as _, ToTypedHeader as _};
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, info_span, Instrument as _};

use super::answered::{answer, bye, Answered};
use super::{pin, sdp, Shared};
use crate::auth::Identity;
use crate::ids::{ParticipantId, Role, RoomId};
use crate::media::phone::{tile_name, PhoneLeg};
use crate::protocol::{ErrorCode, ServerMessage};
use crate::room::{LeaveReason, RoomCommand, RoomHandle};

/// How long the room may take to admit a caller and build its leg.
const ROOM_WAIT: Duration = Duration::from_secs(10);

/// Why a call was not answered: its SIP code, the reason given, the
/// outcome counted, and headers for the response (a challenge).
pub(super) struct Refused(StatusCode, String, &'static str, Vec<Header>);

impl Refused {
    fn new(code: StatusCode, reason: impl Into<String>, outcome: &'static str) -> Refused {
        Refused(code, reason.into(), outcome, Vec::new())
    }
}

/// Where a caller is going.
enum Target {
    /// Straight into a room (its number is in `sip.rooms`).
    Room(RoomId),
    /// The lobby: asked for a room's PIN first.
    Lobby,
}

/// A call that may go ahead.
struct Setup {
    target: Target,
    leg: PhoneLeg,
    /// The name on its tile.
    name: String,
    /// The caller's number.
    number: String,
}

/// A caller in its room with its leg built.
struct Joined {
    room: RoomHandle,
    participant: ParticipantId,
    outbox: mpsc::Receiver<ServerMessage>,
}

/// Takes an INVITE from its arrival to the end of the call.
pub(super) async fn run(
    mut tx: Transaction,
    dialogs: Arc<DialogLayer>,
    contact: rsipstack::sip::Uri,
    shared: Arc<Shared>,
) {
    let source = tx
        .connection
        .as_ref()
        .and_then(|c| c.get_remote_addr())
        .and_then(|a| a.get_socketaddr().ok());
    let span = info_span!("call", source = ?source);
    async move {
        let Ok(_permit) = shared.calls.clone().try_acquire_owned() else {
            let busy = Refused::new(
                StatusCode::BusyHere,
                format!("{} calls are in progress (sip.max_calls)", shared.config.max_calls),
                "busy",
            );
            return refuse(&mut tx, &shared, busy).await;
        };
        let setup = match check(&tx, &shared, source.map(|s| s.ip())) {
            Ok(s) => s,
            Err(r) => return refuse(&mut tx, &shared, r).await,
        };
        let socket = match crate::media::phone::bind_rtp_socket(shared.media_ip, shared.ports) {
            Ok(s) => s,
            Err(e) => {
                let r = Refused::new(StatusCode::ServiceUnavailable, format!("{e:#}"), "failed");
                return refuse(&mut tx, &shared, r).await;
            }
        };
        let Ok(local) = socket.local_addr() else {
            return;
        };
        let joined = match &setup.target {
            Target::Room(room) => match enter(&shared, room, &setup, socket).await {
                Ok(joined) => {
                    let Some(answered) = answer(tx, &dialogs, contact, &setup.leg, local) else {
                        leave(&joined.room, &joined.participant, LeaveReason::MediaFailed("answering".into()));
                        shared.metrics.sip_call("failed");
                        return;
                    };
                    Some((joined, answered))
                }
                Err(r) => return refuse(&mut tx, &shared, r).await,
            },
            Target::Lobby => {
                let Some(mut answered) = answer(tx, &dialogs, contact, &setup.leg, local) else {
                    shared.metrics.sip_call("failed");
                    return;
                };
                let id = answered.dialog.id();
                let joined = match pin::ask(&shared, &setup.leg, &socket, &mut answered).await {
                    pin::Outcome::Room(room) => match enter(&shared, &room, &setup, socket).await {
                        Ok(joined) => Some((joined, answered)),
                        Err(Refused(_, reason, outcome, _)) => {
                            info!("{reason}: BYE");
                            shared.metrics.sip_call(outcome);
                            bye(&mut answered).await;
                            None
                        }
                    },
                    pin::Outcome::Wrong => {
                        shared.metrics.sip_call("pin_failed");
                        bye(&mut answered).await;
                        None
                    }
                    pin::Outcome::HungUp => {
                        shared.metrics.sip_call("cancelled");
                        None
                    }
                };
                if joined.is_none() {
                    dialogs.remove_dialog(&id);
                }
                joined
            }
        };
        let Some((joined, answered)) = joined else {
            return;
        };
        let id = answered.dialog.id();
        shared.metrics.sip_call("answered");
        shared.metrics.sip_active(1);
        info!(room = %joined.room.room(), participant = %joined.participant, %local, "caller in the room");
        in_room(&shared, joined, answered).await;
        shared.metrics.sip_active(-1);
        dialogs.remove_dialog(&id);
    }
    .instrument(span)
    .await
}

/// How a call in a room ended.
enum End {
    /// We end it: BYE, then leave.
    Bye(LeaveReason),
    /// The room let the caller go: BYE.
    Removed(String),
    /// The caller ended it.
    Hungup(TerminatedReason),
}

/// The caller is in its room until one side ends the call.
async fn in_room(shared: &Shared, joined: Joined, mut answered: Answered) {
    let Joined {
        room,
        participant,
        mut outbox,
    } = joined;
    let ended = loop {
        tokio::select! {
            _ = shared.stop.cancelled() => break End::Bye(LeaveReason::Shutdown),
            msg = outbox.recv() => match msg {
                // Removed by a teacher, the room closed or moved.
                Some(ServerMessage::Left { reason }) => break End::Removed(reason),
                Some(_) => {}
                None => break End::Removed("the room is gone".into()),
            },
            state = answered.states.recv() => match state {
                Some(DialogState::Terminated(_, why)) => break End::Hungup(why),
                Some(DialogState::Confirmed(..)) => answered.confirmed = true,
                Some(_) => {}
                None => break End::Hungup(TerminatedReason::Timeout),
            },
        }
    };
    match ended {
        End::Bye(reason) => {
            leave(&room, &participant, reason);
            bye(&mut answered).await;
        }
        End::Removed(reason) => {
            info!(%participant, "removed from the room ({reason}): BYE");
            bye(&mut answered).await;
        }
        End::Hungup(why) => {
            info!(%participant, "caller hung up ({why:?})");
            leave(&room, &participant, LeaveReason::Requested);
        }
    }
}

/// Tells the room the caller left.
fn leave(room: &RoomHandle, participant: &ParticipantId, reason: LeaveReason) {
    let _ = room.send(RoomCommand::Leave {
        participant: participant.clone(),
        reason,
    });
}

/// Answers the INVITE with a refusal, and counts it.
async fn refuse(tx: &mut Transaction, shared: &Shared, refused: Refused) {
    let Refused(code, reason, outcome, mut headers) = refused;
    info!(?code, "call refused: {reason}");
    shared.metrics.sip_call(outcome);
    if !reason.is_empty() {
        let text = reason.replace(['"', '\r', '\n'], "'");
        headers.push(Header::Other(
            "Reason".into(),
            format!("SIP;cause={};text=\"{text}\"", u16::from(code.clone())),
        ));
    }
    let _ = tx.reply_with(code, headers, None).await;
}

/// Who may call, which number, whether the offer can be answered.
fn check(
    tx: &Transaction,
    shared: &Shared,
    source: Option<std::net::IpAddr>,
) -> Result<Setup, Refused> {
    let req = &tx.original;
    let listed = source.is_some_and(|s| shared.may_call(s));
    if !listed {
        let Some(digest) = &shared.digest else {
            return Err(Refused::new(
                StatusCode::Forbidden,
                "this source may not call (sip.allowed_sources)",
                "forbidden",
            ));
        };
        let now = crate::auth::bans::unix_now();
        let answered = req
            .authorization_header()
            .and_then(|h| rsipstack::sip::typed::Authorization::parse(h.value()).ok())
            .is_some_and(|a| digest.check(&a, &req.method, now));
        if !answered {
            let challenge: Header = digest.challenge(now).into();
            return Err(Refused(
                StatusCode::Unauthorized,
                String::new(),
                "unauthorized",
                vec![challenge],
            ));
        }
    }
    let dialled = req.uri.user().unwrap_or_default().to_string();
    let target = if shared.config.lobby.as_deref() == Some(dialled.as_str()) {
        Target::Lobby
    } else {
        shared
            .config
            .rooms
            .get(&dialled)
            .and_then(|r| RoomId::parse(r).ok())
            .map(Target::Room)
            .ok_or_else(|| {
                Refused::new(
                    StatusCode::NotFound,
                    format!("no room has the number {dialled} (sip.rooms)"),
                    "not_found",
                )
            })?
    };
    let leg = sdp::read_offer(&req.body)
        .map_err(|e| Refused::new(StatusCode::NotAcceptableHere, e.to_string(), "bad_offer"))?;
    let from = req.from_header().ok().and_then(|f| f.typed().ok());
    let number = from
        .as_ref()
        .and_then(|f| f.uri.user().map(str::to_string))
        .unwrap_or_default();
    let name = shared
        .config
        .names
        .get(&number)
        .cloned()
        .or_else(|| from.as_ref().and_then(|f| f.display_name.clone()))
        .map(|n| {
            n.trim()
                .trim_matches('"')
                .chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect::<String>()
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "Phone".into());
    Ok(Setup {
        target,
        leg,
        name,
        number,
    })
}

/// Joins the caller to `room` like any participant, then has the room
/// build its leg on `socket`.
async fn enter(
    shared: &Shared,
    room: &RoomId,
    setup: &Setup,
    socket: UdpSocket,
) -> Result<Joined, Refused> {
    let participant = crate::room::new_participant_id();
    let (outbox_tx, mut outbox) = mpsc::channel(64);
    let join = RoomCommand::Join {
        participant: participant.clone(),
        who: Identity {
            name: setup.name.clone(),
            role: Role::Student,
            token: None,
            p2p: false,
        },
        codec: None,
        relay: false,
        p2p: false,
        outbox: outbox_tx,
    };
    let handle = shared
        .registry
        .join(room, join)
        .map_err(|e| Refused::new(StatusCode::ServiceUnavailable, e.to_string(), "busy"))?;
    // The room greets the caller with `joined`, or refuses it.
    let greeted = tokio::time::timeout(ROOM_WAIT, async {
        while let Some(msg) = outbox.recv().await {
            match msg {
                ServerMessage::Joined { .. } => return Ok(()),
                ServerMessage::Error { code, message } => return Err((code, message)),
                _ => {}
            }
        }
        Err((ErrorCode::RoomUnavailable, "the room closed".into()))
    })
    .await
    .unwrap_or_else(|_| Err((ErrorCode::Internal, "the room did not answer".into())));
    if let Err((code, message)) = greeted {
        let status = match code {
            ErrorCode::RoomUnavailable | ErrorCode::Forbidden => StatusCode::BusyHere,
            _ => StatusCode::ServerInternalError,
        };
        leave(&handle, &participant, LeaveReason::Requested);
        return Err(Refused::new(status, message, "busy"));
    }
    let (reply, built) = oneshot::channel();
    let _ = handle.send(RoomCommand::Phone {
        participant: participant.clone(),
        tile: tile_name(&setup.name, &setup.number),
        leg: setup.leg.clone(),
        timeout: Duration::from_secs(shared.config.media_timeout_seconds),
        socket,
        reply,
    });
    let failed = match tokio::time::timeout(ROOM_WAIT, built).await {
        Ok(Ok(Ok(_))) => None,
        Ok(Ok(Err(why))) => Some(why),
        _ => Some("the room did not build the call's media".to_string()),
    };
    if let Some(why) = failed {
        leave(&handle, &participant, LeaveReason::MediaFailed(why.clone()));
        return Err(Refused::new(StatusCode::ServerInternalError, why, "failed"));
    }
    Ok(Joined {
        room: handle,
        participant,
        outbox,
    })
}
