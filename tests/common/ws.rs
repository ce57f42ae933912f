//! A bare signaling client: raw JSON over the WebSocket, for tests of what
//! the server says to bad or hostile input, and of signaling without media.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// A client WebSocket.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to `url`.
pub async fn connect(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// Sends `text` and returns the next JSON message.
pub async fn send_and_read(ws: &mut Ws, text: &str) -> Value {
    ws.send(Message::text(text.to_string())).await.unwrap();
    read(ws).await
}

/// The next JSON message (pings and other frames are skipped).
pub async fn read(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a reply in time")
            .expect("socket open")
            .expect("a frame");
        if let Message::Text(t) = frame {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// Sends `msg` as JSON.
pub async fn send(ws: &mut Ws, msg: Value) {
    ws.send(Message::text(msg.to_string())).await.unwrap();
}

/// Reads until a message of type `kind`, within `timeout`; None if none came.
pub async fn next_of(ws: &mut Ws, kind: &str, timeout: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next()).await.ok()?;
        if let Message::Text(t) = frame.expect("socket open").expect("a frame") {
            let msg: Value = serde_json::from_str(&t).unwrap();
            if msg["type"] == kind {
                return Some(msg);
            }
        }
    }
}

/// Joins `room` as `name` (with the join message's `extra` fields);
/// returns the socket and the participant id.
pub async fn join(
    server: &super::TestServer,
    room: &str,
    name: &str,
    extra: Value,
) -> (Ws, String) {
    let mut ws = connect(&server.ws_url()).await;
    let mut msg = json!({"type": "join", "room": room, "name": name});
    for (k, v) in extra.as_object().unwrap() {
        msg[k] = v.clone();
    }
    send(&mut ws, msg).await;
    let joined = next_of(&mut ws, "joined", Duration::from_secs(5))
        .await
        .expect("joined");
    let id = joined["participantId"].as_str().unwrap().to_string();
    (ws, id)
}
