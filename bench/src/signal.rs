//! Signaling-only joins, timed: connect to a node's socket, send `join`,
//! and follow `redirect`s to the room's node until `joined`, as the web
//! client does. No media is negotiated.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// A client's signaling socket.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// More redirects than this for one join is a routing loop.
const MAX_REDIRECTS: usize = 3;

/// One socket of a join: where, and how long it took.
#[derive(Debug, Clone)]
pub struct Hop {
    /// The signaling URL.
    pub url: String,
    /// From sending `join` to the node's answer (`joined` or `redirect`), ms.
    pub reply_ms: f64,
}

/// A join that ended in `joined`.
pub struct Joined {
    /// The socket, in the room.
    pub socket: Ws,
    /// Every socket opened, the last one in the room.
    pub hops: Vec<Hop>,
    /// From the first connect to `joined`, ms.
    pub ms: f64,
}

impl Joined {
    /// The node's socket the join ended at.
    pub fn url(&self) -> &str {
        &self.hops[self.hops.len() - 1].url
    }

    /// Redirects followed.
    pub fn redirects(&self) -> usize {
        self.hops.len() - 1
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Joins `room` as `name` at the socket `url`, following redirects; each
/// connect and each answer within `limit`.
pub async fn join(url: &str, room: &str, name: &str, limit: Duration) -> anyhow::Result<Joined> {
    let start = Instant::now();
    let mut url = url.to_string();
    let mut hops = Vec::new();
    loop {
        let (mut socket, _) = tokio::time::timeout(limit, tokio_tungstenite::connect_async(&url))
            .await
            .with_context(|| format!("connecting to {url}: no answer within {limit:?}"))?
            .with_context(|| format!("connecting to {url}"))?;
        let sent = Instant::now();
        socket
            .send(Message::text(
                json!({"type": "join", "room": room, "name": name}).to_string(),
            ))
            .await?;
        let reply = answer(&mut socket, limit)
            .await
            .with_context(|| format!("joining {room} at {url}"))?;
        hops.push(Hop {
            url: url.clone(),
            reply_ms: ms(sent.elapsed()),
        });
        match reply["type"].as_str() {
            Some("joined") => {
                return Ok(Joined {
                    socket,
                    hops,
                    ms: ms(start.elapsed()),
                })
            }
            Some("redirect") if hops.len() <= MAX_REDIRECTS => {
                url = reply["url"]
                    .as_str()
                    .context("a redirect without a url")?
                    .to_string();
                close(socket).await;
            }
            Some("redirect") => bail!("the join of {room} was redirected {MAX_REDIRECTS} times"),
            _ => bail!("the join of {room} at {url} was refused: {reply}"),
        }
    }
}

/// The first message that answers a join: `joined`, `redirect` or `error`.
async fn answer(socket: &mut Ws, limit: Duration) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let frame = tokio::time::timeout_at(deadline, socket.next())
            .await
            .with_context(|| format!("no answer within {limit:?}"))?
            .context("the node closed the socket")??;
        let Message::Text(text) = frame else {
            continue;
        };
        let msg: Value = serde_json::from_str(&text)?;
        if matches!(msg["type"].as_str(), Some("joined" | "redirect" | "error")) {
            return Ok(msg);
        }
    }
}

/// Leaves by closing the socket.
pub async fn close(mut socket: Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
}

/// A participant that stays in its room (reading, so that the node's
/// pings are answered) until dropped.
pub struct Held {
    task: tokio::task::JoinHandle<()>,
}

impl Held {
    /// Keeps `socket` in its room.
    pub fn new(mut socket: Ws) -> Held {
        Held {
            task: tokio::spawn(async move { while let Some(Ok(_)) = socket.next().await {} }),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.task.abort();
    }
}
