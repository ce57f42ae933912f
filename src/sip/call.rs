//! One phone call: the INVITE checked (who calls, which room, the offer),
//! the caller joined to the room like any participant and its RTP leg
//! built, the answer sent; then BYE from either side, a teacher's
//! removal, the room closing or shutdown end it, and the caller leaves.

use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::dialog::{DialogState, TerminatedReason};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::prelude::{HeadersExt as _, ToTypedHeader as _};
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::transaction::Transaction;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, info_span, warn, Instrument as _};

use super::{sdp, Shared};
use crate::auth::Identity;
use crate::ids::{ParticipantId, Role, RoomId};
use crate::media::phone::tile_name;
use crate::protocol::{ErrorCode, ServerMessage};
use crate::room::{LeaveReason, RoomCommand, RoomHandle};

/// How long the room may take to admit a caller and build its leg.
const ROOM_WAIT: Duration = Duration::from_secs(10);

/// Why a call was not answered: its SIP code, the reason given, the
/// outcome counted, and headers for the response (a challenge).
struct Refused(StatusCode, String, &'static str, Vec<Header>);

impl Refused {
    fn new(code: StatusCode, reason: impl Into<String>, outcome: &'static str) -> Refused {
        Refused(code, reason.into(), outcome, Vec::new())
    }
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
            return refuse(
                &mut tx,
                &shared,
                Refused::new(
                    StatusCode::BusyHere,
                    format!(
                        "{} calls are in progress (sip.max_calls)",
                        shared.config.max_calls
                    ),
                    "busy",
                ),
            )
            .await;
        };
        let admitted = match admit(&mut tx, &shared, source.map(|s| s.ip())).await {
            Ok(a) => a,
            Err(r) => return refuse(&mut tx, &shared, r).await,
        };
        let Admitted {
            room,
            participant,
            mut outbox,
            local,
            leg,
        } = admitted;
        let (state_tx, mut states) = dialogs.new_dialog_state_channel();
        let dialog = match dialogs.get_or_create_server_invite(&tx, state_tx, None, Some(contact)) {
            Ok(d) => d,
            Err(e) => {
                leave(&room, &participant, LeaveReason::MediaFailed(e.to_string()));
                return refuse(
                    &mut tx,
                    &shared,
                    Refused::new(StatusCode::ServerInternalError, e.to_string(), "failed"),
                )
                .await;
            }
        };
        let id = dialog.id();
        let mut handling = dialog.clone();
        tokio::spawn(async move {
            let _ = handling.handle(&mut tx).await;
        });
        let body = sdp::answer(&leg, local, u64::from(glib::random_int()));
        let headers = vec![Header::ContentType("application/sdp".into())];
        if let Err(e) = dialog.accept(Some(headers), Some(body.into_bytes())) {
            warn!("answering: {e}");
            leave(&room, &participant, LeaveReason::MediaFailed(e.to_string()));
            shared.metrics.sip_call("failed");
            dialogs.remove_dialog(&id);
            return;
        }
        shared.metrics.sip_call("answered");
        shared.metrics.sip_active(1);
        info!(room = %room.room(), %participant, %local, "call answered");
        let mut confirmed = false;
        let ended = loop {
            tokio::select! {
                _ = shared.stop.cancelled() => break End::Bye(LeaveReason::Shutdown),
                msg = outbox.recv() => match msg {
                    // Removed by a teacher, the room closed or moved.
                    Some(ServerMessage::Left { reason }) => break End::Removed(reason),
                    Some(_) => {}
                    None => break End::Removed("the room is gone".into()),
                },
                state = states.recv() => match state {
                    Some(DialogState::Terminated(_, why)) => break End::Hungup(why),
                    Some(DialogState::Confirmed(..)) => confirmed = true,
                    Some(_) => {}
                    None => break End::Hungup(TerminatedReason::Timeout),
                },
            }
        };
        match ended {
            End::Bye(reason) => {
                leave(&room, &participant, reason);
                bye(&dialog, confirmed, &mut states).await;
            }
            End::Removed(reason) => {
                info!(%participant, "removed from the room ({reason}): BYE");
                bye(&dialog, confirmed, &mut states).await;
            }
            End::Hungup(why) => {
                info!(%participant, "caller hung up ({why:?})");
                leave(&room, &participant, LeaveReason::Requested);
            }
        }
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

/// Sends BYE once the caller has acknowledged our answer (RFC 3261
/// §15: not before its ACK), waiting no longer than shutdown allows.
async fn bye(
    dialog: &rsipstack::dialog::invite_dialog::InviteDialog,
    confirmed: bool,
    states: &mut rsipstack::dialog::dialog::DialogStateReceiver,
) {
    let acked = confirmed
        || tokio::time::timeout(super::BYE_WAIT, async {
            while let Some(state) = states.recv().await {
                match state {
                    DialogState::Confirmed(..) => return true,
                    DialogState::Terminated(..) => return false,
                    _ => {}
                }
            }
            false
        })
        .await
        .unwrap_or(false);
    if !acked {
        warn!("the caller never acknowledged the answer: no BYE");
        return;
    }
    match tokio::time::timeout(super::BYE_WAIT, dialog.bye()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!("BYE: {e}"),
        Err(_) => warn!("the caller did not answer BYE in time"),
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

/// A caller in its room with its leg built.
struct Admitted {
    room: RoomHandle,
    participant: ParticipantId,
    outbox: mpsc::Receiver<ServerMessage>,
    local: std::net::SocketAddr,
    leg: crate::media::phone::PhoneLeg,
}

/// Who may call, which room, whether the offer can be answered, whether
/// the room takes the caller; then its leg is built.
async fn admit(
    tx: &mut Transaction,
    shared: &Shared,
    source: Option<std::net::IpAddr>,
) -> Result<Admitted, Refused> {
    let req = &tx.original;
    let listed = source.is_some_and(|s| shared.may_call(s));
    if !listed {
        match &shared.digest {
            None => {
                return Err(Refused::new(
                    StatusCode::Forbidden,
                    "this source may not call (sip.allowed_sources)",
                    "forbidden",
                ))
            }
            Some(digest) => {
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
        }
    }
    let dialled = req.uri.user().unwrap_or_default().to_string();
    let room = shared
        .config
        .rooms
        .get(&dialled)
        .and_then(|r| RoomId::parse(r).ok())
        .ok_or_else(|| {
            Refused::new(
                StatusCode::NotFound,
                format!("no room has the number {dialled} (sip.rooms)"),
                "not_found",
            )
        })?;
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
                .take(64)
                .collect::<String>()
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "Phone".into());
    let participant = crate::room::new_participant_id();
    let (outbox_tx, mut outbox) = mpsc::channel(64);
    let join = RoomCommand::Join {
        participant: participant.clone(),
        who: Identity {
            name: name.clone(),
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
        .join(&room, join)
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
        tile: tile_name(&name, &number),
        leg: leg.clone(),
        local: shared.media_ip,
        reply,
    });
    let local = match tokio::time::timeout(ROOM_WAIT, built).await {
        Ok(Ok(Ok(local))) => local,
        Ok(Ok(Err(why))) => {
            leave(&handle, &participant, LeaveReason::MediaFailed(why.clone()));
            return Err(Refused::new(StatusCode::ServerInternalError, why, "failed"));
        }
        _ => {
            leave(
                &handle,
                &participant,
                LeaveReason::MediaFailed("no answer".into()),
            );
            return Err(Refused::new(
                StatusCode::ServerInternalError,
                "the room did not build the call's media",
                "failed",
            ));
        }
    };
    Ok(Admitted {
        room: handle,
        participant,
        outbox,
        local,
        leg,
    })
}
