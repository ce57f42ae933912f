//! One signaling session per WebSocket: decodes client frames, turns them
//! into room commands, and writes the room's messages back. It holds no
//! room state beyond which room and participant id it is. It also enforces
//! the per-socket limits: message size and rate, the time allowed to join,
//! and the idle timeout (the server pings; any frame, pongs too, counts).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::{debug, info, info_span, Instrument};
use warp::ws::{Message, WebSocket};

use super::limits::{IpSlot, TokenBucket};
use crate::protocol::{
    decode_client_message, encode_server_message, ClientMessage, ErrorCode, ServerMessage,
};
use crate::room::{new_participant_id, LeaveReason, Moderation, Registry, RoomCommand, RoomHandle};

/// Messages a room may queue for one client before it counts as stuck.
const OUTBOX: usize = 128;
/// A socket whose messages are dropped this many times in a row for
/// exceeding the rate is closed.
const RATE_STRIKES: u32 = 100;
/// How long a closing socket waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// WebSocket close code for a policy violation.
const POLICY_VIOLATION: u16 = 1008;

struct Joined {
    handle: RoomHandle,
    participant: String,
}

/// What ends a session early, with the words sent in the close frame.
enum Close {
    Policy(String),
}

/// Serves one WebSocket until it closes. `_slot` holds the client
/// address's place in `limits.sockets_per_ip` while the socket lives.
pub async fn serve_socket(ws: WebSocket, registry: Registry, _slot: Option<IpSlot>) {
    let span = info_span!("ws");
    async move {
        let limits = registry.policy().limits.clone();
        let (mut sink, mut stream) = ws.split();
        let (outbox, mut inbox) = mpsc::channel::<ServerMessage>(OUTBOX);
        let mut joined: Option<Joined> = None;
        let mut ever_joined = false;
        let mut bucket = TokenBucket::new(limits.messages_per_second, limits.message_burst, Instant::now());
        let mut strikes = 0u32;
        let join_deadline = tokio::time::sleep(Duration::from_secs(limits.join_timeout_seconds));
        tokio::pin!(join_deadline);
        let idle = Duration::from_secs(limits.idle_timeout_seconds);
        let mut ping = tokio::time::interval(idle / 3);
        ping.tick().await;
        let mut last_heard = Instant::now();
        let close: Option<Close> = loop {
            tokio::select! {
                frame = stream.next() => {
                    let Some(Ok(frame)) = frame else { break None };
                    last_heard = Instant::now();
                    if frame.is_close() {
                        break None;
                    }
                    if frame.is_ping() || frame.is_pong() {
                        continue;
                    }
                    let reply = if frame.as_bytes().len() > limits.max_message_bytes {
                        Some(error(ErrorCode::TooLarge, format!(
                            "a message of {} bytes is larger than the limit of {} (limits.max_message_bytes); it was dropped",
                            frame.as_bytes().len(), limits.max_message_bytes)))
                    } else if !bucket.allow(Instant::now()) {
                        strikes += 1;
                        if strikes >= RATE_STRIKES {
                            break Some(Close::Policy(format!(
                                "more than {} messages per second (limits.messages_per_second)",
                                limits.messages_per_second)));
                        }
                        // One error per dropped run, not one per message.
                        (strikes == 1).then(|| error(ErrorCode::RateLimited, format!(
                            "more than {} messages per second (limits.messages_per_second, burst {}); messages are dropped until the rate falls",
                            limits.messages_per_second, limits.message_burst)))
                    } else {
                        strikes = 0;
                        match frame.to_str() {
                            Ok(text) => handle_text(text, &registry, &mut joined, &outbox),
                            Err(_) => Some(error(ErrorCode::BadMessage, "binary frames are not accepted; send JSON text".into())),
                        }
                    };
                    ever_joined |= joined.is_some();
                    if let Some(reply) = reply {
                        count_error(&registry, &reply);
                        if sink.send(Message::text(encode_server_message(&reply))).await.is_err() { break None; }
                    }
                }
                Some(msg) = inbox.recv() => {
                    if let ServerMessage::Left { .. } = &msg {
                        joined = None;
                    }
                    count_error(&registry, &msg);
                    if sink.send(Message::text(encode_server_message(&msg))).await.is_err() { break None; }
                }
                () = &mut join_deadline, if !ever_joined && joined.is_none() => {
                    break Some(Close::Policy(format!(
                        "no join within {} s (limits.join_timeout_seconds)",
                        limits.join_timeout_seconds)));
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > idle {
                        break Some(Close::Policy(format!(
                            "nothing received for {} s (limits.idle_timeout_seconds)",
                            limits.idle_timeout_seconds)));
                    }
                    if sink.send(Message::ping(Vec::new())).await.is_err() { break None; }
                }
            }
        };
        if let Some(Close::Policy(why)) = close {
            info!("closing the socket: {why}");
            let reply = error(ErrorCode::BadMessage, format!("closing: {why}"));
            count_error(&registry, &reply);
            let _ = sink
                .send(Message::text(encode_server_message(&reply)))
                .await;
            let _ = sink.send(Message::close_with(POLICY_VIOLATION, why)).await;
            // Read until the client's close (briefly), so that what it still
            // sends does not meet a closed socket and reset the connection
            // before it has read our reason.
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                while let Some(Ok(frame)) = stream.next().await {
                    if frame.is_close() {
                        break;
                    }
                }
            })
            .await;
        }
        if let Some(j) = joined {
            let _ = j.handle.send(RoomCommand::Leave {
                participant: j.participant,
                reason: LeaveReason::SocketClosed,
            });
        }
        debug!("socket closed");
    }
    .instrument(span)
    .await
}

fn error(code: ErrorCode, message: String) -> ServerMessage {
    ServerMessage::Error { code, message }
}

/// Counts an error message on its way to the client, by its code. Every
/// error a client gets passes here: the session's own replies and the
/// room's, which arrive through the outbox.
fn count_error(registry: &Registry, msg: &ServerMessage) {
    if let ServerMessage::Error { code, .. } = msg {
        registry.metrics().signaling_error(code.as_str());
    }
}

/// Handles one text frame; returns an immediate reply, if any.
fn handle_text(
    text: &str,
    registry: &Registry,
    joined: &mut Option<Joined>,
    outbox: &mpsc::Sender<ServerMessage>,
) -> Option<ServerMessage> {
    let msg = match decode_client_message(text) {
        Ok(m) => m,
        Err(e) => return Some(e.to_reply()),
    };
    let not_joined = || {
        Some(error(
            ErrorCode::OutOfOrder,
            "not in a room: send join first".into(),
        ))
    };
    let forward = |j: &Joined, cmd: RoomCommand| {
        j.handle
            .send(cmd)
            .err()
            .map(|e| error(ErrorCode::RoomUnavailable, e.to_string()))
    };
    let moderate = |action: Moderation| match joined.as_ref() {
        Some(j) => forward(
            j,
            RoomCommand::Moderate {
                by: Some(j.participant.clone()),
                action,
                reply: None,
            },
        ),
        None => not_joined(),
    };
    match msg {
        ClientMessage::Join {
            room,
            name,
            codec,
            role,
            token,
        } => {
            if let Some(j) = joined {
                return Some(error(
                    ErrorCode::OutOfOrder,
                    format!("already in room {}; send leave first", j.handle.room()),
                ));
            }
            let who =
                match registry
                    .policy()
                    .auth
                    .check_join(&room, token.as_deref(), Some(&name), role)
                {
                    Ok(who) => who,
                    Err(e) => {
                        info!(room = %room, "join refused: {e}");
                        let code = match e {
                            crate::auth::TokenError::NameRequired => ErrorCode::BadMessage,
                            _ => ErrorCode::Unauthorized,
                        };
                        return Some(error(code, e.to_string()));
                    }
                };
            let participant = new_participant_id();
            let cmd = RoomCommand::Join {
                participant: participant.clone(),
                who,
                codec,
                outbox: outbox.clone(),
            };
            match registry.join(&room, cmd) {
                Ok(handle) => {
                    *joined = Some(Joined {
                        handle,
                        participant,
                    });
                    None
                }
                Err(e) => Some(error(ErrorCode::RoomUnavailable, e.to_string())),
            }
        }
        ClientMessage::Offer { sdp, screen } => match joined {
            Some(j) => forward(
                j,
                RoomCommand::Offer {
                    participant: j.participant.clone(),
                    sdp,
                    screen,
                },
            ),
            None => not_joined(),
        },
        ClientMessage::Mute { muted } => match joined {
            Some(j) => forward(
                j,
                RoomCommand::Mute {
                    participant: j.participant.clone(),
                    muted,
                },
            ),
            None => not_joined(),
        },
        ClientMessage::Screen { sharing } => match joined {
            Some(j) => forward(
                j,
                RoomCommand::Screen {
                    participant: j.participant.clone(),
                    sharing,
                },
            ),
            None => not_joined(),
        },
        ClientMessage::Ice {
            candidate,
            sdp_m_line_index,
            ..
        } => match joined {
            // An empty candidate means end-of-candidates; webrtcbin needs nothing.
            Some(_) if candidate.is_empty() => None,
            Some(j) => forward(
                j,
                RoomCommand::Ice {
                    participant: j.participant.clone(),
                    mline: sdp_m_line_index,
                    candidate,
                },
            ),
            None => not_joined(),
        },
        ClientMessage::SetLayout { layout } => match joined {
            Some(j) => match registry.layouts().get(&layout) {
                Some(l) => forward(
                    j,
                    RoomCommand::SetLayout {
                        name: layout,
                        layout: l,
                        by: Some(j.participant.clone()),
                        reply: None,
                    },
                ),
                None => Some(error(
                    ErrorCode::NotFound,
                    format!(
                        "no layout named {layout}; available: {}",
                        registry.layouts().library().names().join(", ")
                    ),
                )),
            },
            None => not_joined(),
        },
        ClientMessage::Pin { participant } => match joined {
            Some(j) => forward(
                j,
                RoomCommand::Pin {
                    participant,
                    by: Some(j.participant.clone()),
                    reply: None,
                },
            ),
            None => not_joined(),
        },
        ClientMessage::Record { on } => match joined {
            Some(j) => forward(
                j,
                RoomCommand::Record {
                    on,
                    by: Some(j.participant.clone()),
                    reply: None,
                },
            ),
            None => not_joined(),
        },
        ClientMessage::MuteParticipant { participant, muted } => {
            moderate(Moderation::Silence { participant, muted })
        }
        ClientMessage::Remove { participant } => moderate(Moderation::Remove { participant }),
        ClientMessage::Lock { locked } => moderate(Moderation::Lock { locked }),
        ClientMessage::Leave {} => match joined.take() {
            Some(j) => forward(
                &j,
                RoomCommand::Leave {
                    participant: j.participant.clone(),
                    reason: LeaveReason::Requested,
                },
            ),
            None => not_joined(),
        },
    }
}
