//! One signaling session per WebSocket: the loop that moves frames. It reads
//! client frames and the room's messages, runs the join deadline and the
//! pings, feeds all of it to the session's [`Handler`] and writes what the
//! handler answers; every decision (limits, joins, commands to the room) is
//! the handler's. The server pings; any frame, pongs too, counts as heard.
//! In a cluster, the loop asks the directory where a join goes when the
//! handler says so ([`Output::Route`]).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::{debug, info, info_span, Instrument};
use warp::ws::{Message, WebSocket};

use super::handler::{Handler, Input, Output};
use super::limits::IpSlot;
use crate::cluster::{Cluster, Route};
use crate::protocol::{encode_server_message, ServerMessage};
use crate::room::Registry;

/// Messages a room may queue for one client before it counts as stuck.
const OUTBOX: usize = 128;
/// How long a closing socket waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// WebSocket close code for a policy violation.
const POLICY_VIOLATION: u16 = 1008;

/// Serves one WebSocket until it closes. `_slot` holds the client
/// address's place in `limits.sockets_per_ip` while the socket lives.
/// With a `cluster`, joins to rooms not open here are routed through it.
pub async fn serve_socket(
    ws: WebSocket,
    registry: Registry,
    cluster: Option<Cluster>,
    _slot: Option<IpSlot>,
) {
    let span = info_span!("ws");
    async move {
        let limits = registry.policy().limits.clone();
        let (mut sink, mut stream) = ws.split();
        let (outbox, mut inbox) = mpsc::channel::<ServerMessage>(OUTBOX);
        let mut handler = Handler::new(
            registry.clone(),
            registry.policy().auth.clone(),
            registry.layouts().clone(),
            limits.clone(),
            outbox,
            Instant::now(),
        );
        if cluster.is_some() {
            handler = handler.routed();
        }
        let join_deadline = tokio::time::sleep(Duration::from_secs(limits.join_timeout_seconds));
        tokio::pin!(join_deadline);
        let idle = Duration::from_secs(limits.idle_timeout_seconds);
        let mut ping = tokio::time::interval(idle / 3);
        ping.tick().await;
        let close: Option<(ServerMessage, String)> = loop {
            let mut output = tokio::select! {
                frame = stream.next() => {
                    let Some(Ok(frame)) = frame else { break None };
                    let at = Instant::now();
                    if frame.is_close() {
                        break None;
                    }
                    handler.handle(if frame.is_ping() || frame.is_pong() {
                        Input::Heard { at }
                    } else {
                        match frame.to_str() {
                            Ok(text) => Input::Text { text, at },
                            Err(_) => Input::Binary { len: frame.as_bytes().len(), at },
                        }
                    })
                }
                Some(msg) = inbox.recv() => handler.handle(Input::FromRoom(msg)),
                () = &mut join_deadline, if handler.awaits_join() => {
                    handler.handle(Input::JoinDeadline)
                }
                _ = ping.tick() => handler.handle(Input::Tick { at: Instant::now() }),
            };
            // The directory is asked outside the handler, which hands the
            // join back once it knows where the room is.
            while let Output::Route(room) = &output {
                let route = match &cluster {
                    Some(c) => c.route(room).await,
                    None => Route::Here,
                };
                output = handler.handle(Input::Routed(route));
            }
            let sent = match output {
                Output::Nothing => Ok(()),
                Output::Send(msg) => sink.send(text(&registry, &msg)).await,
                Output::Ping => sink.send(Message::ping(Vec::new())).await,
                Output::Close { notice, reason } => break Some((notice, reason)),
                Output::Route(_) => Ok(()),
            };
            if sent.is_err() {
                break None;
            }
        };
        if let Some((notice, why)) = close {
            info!("closing the socket: {why}");
            let _ = sink.send(text(&registry, &notice)).await;
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
        handler.handle(Input::Closed);
        debug!("socket closed");
    }
    .instrument(span)
    .await
}

/// A text frame for `msg`. Every message a client gets passes here, the
/// session's own replies and the room's alike, so errors are counted here
/// by their code.
fn text(registry: &Registry, msg: &ServerMessage) -> Message {
    if let ServerMessage::Error { code, .. } = msg {
        registry.metrics().signaling_error(code.as_str());
    }
    Message::text(encode_server_message(msg))
}
