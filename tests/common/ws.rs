//! A bare signaling client: raw JSON over the WebSocket, for tests of what
//! the server says to bad or hostile input.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
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
