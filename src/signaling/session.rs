//! One signaling session per WebSocket: decodes client frames, turns them
//! into room commands, and writes the room's messages back. It holds no
//! room state beyond which room and participant id it is.

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::{debug, info_span, Instrument};
use warp::ws::{Message, WebSocket};

use super::protocol::{
    decode_client_message, encode_server_message, ClientMessage, ErrorCode, ServerMessage,
};
use crate::room::{new_participant_id, LeaveReason, Registry, RoomCommand, RoomHandle};

/// Messages a room may queue for one client before it counts as stuck.
const OUTBOX: usize = 128;

struct Joined {
    handle: RoomHandle,
    participant: String,
}

/// Serves one WebSocket until it closes.
pub async fn serve_socket(ws: WebSocket, registry: Registry) {
    let span = info_span!("ws");
    async move {
        let (mut sink, mut stream) = ws.split();
        let (outbox, mut inbox) = mpsc::channel::<ServerMessage>(OUTBOX);
        let mut joined: Option<Joined> = None;
        loop {
            tokio::select! {
                frame = stream.next() => {
                    let Some(Ok(frame)) = frame else { break };
                    if frame.is_close() {
                        break;
                    }
                    let Ok(text) = frame.to_str() else {
                        if frame.is_binary() {
                            let reply = error(ErrorCode::BadMessage, "binary frames are not accepted; send JSON text".into());
                            if sink.send(Message::text(encode_server_message(&reply))).await.is_err() { break; }
                        }
                        continue;
                    };
                    if let Some(reply) = handle_text(text, &registry, &mut joined, &outbox) {
                        if sink.send(Message::text(encode_server_message(&reply))).await.is_err() { break; }
                    }
                }
                Some(msg) = inbox.recv() => {
                    if let ServerMessage::Left { .. } = &msg {
                        joined = None;
                    }
                    if sink.send(Message::text(encode_server_message(&msg))).await.is_err() { break; }
                }
            }
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
    match msg {
        ClientMessage::Join {
            room,
            name,
            codec,
            role,
        } => {
            if let Some(j) = joined {
                return Some(error(
                    ErrorCode::OutOfOrder,
                    format!("already in room {}; send leave first", j.handle.room()),
                ));
            }
            let participant = new_participant_id();
            let cmd = RoomCommand::Join {
                participant: participant.clone(),
                name,
                codec,
                role,
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
