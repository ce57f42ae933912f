//! Where a join goes. A room open here is joined here. Otherwise the
//! directory says: a room owned by a live node is joined there; a room
//! that is free, or whose owner is gone, is claimed (atomically, so two
//! nodes asked at once end with one room) for the least-loaded serving
//! node, which may be this one.

use std::collections::HashMap;
use std::time::Duration;

use super::placement::{self, NodeEntry, NodeState};
use super::{Cluster, Directory, DirectoryError};
use crate::ids::RoomId;
use crate::room::RoomCommand;

/// The answer to "where does this join go?".
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Join here.
    Here,
    /// Join at another node.
    There {
        /// Its name.
        node: String,
        /// Its signaling socket.
        url: String,
    },
    /// The join cannot be placed now; the words say why.
    Unavailable(String),
}

impl Cluster {
    /// Where a join to `room` goes.
    pub async fn route(&self, room: &RoomId) -> Route {
        if self.inner.registry.get(room).is_some() {
            return Route::Here;
        }
        let routed = self.place(room).await;
        let route = match self.observe(routed) {
            Ok(route) => {
                if route == Route::Here {
                    self.resume_handoff(room);
                }
                route
            }
            Err(e) => Route::Unavailable(format!(
                "room {room} is not on this node and the cluster directory cannot be asked where it is ({e}); try again in a moment"
            )),
        };
        self.inner.registry.metrics().cluster_route(match route {
            Route::Here => "here",
            Route::There { .. } => "elsewhere",
            Route::Unavailable(_) => "unavailable",
        });
        route
    }

    async fn place(&self, room: &RoomId) -> Result<Route, DirectoryError> {
        let inner = &self.inner;
        let nodes = self.nodes().await?;
        let me = Placer {
            id: &inner.id,
            state: self.state(),
            lease: inner.lease,
            window: inner.window,
        };
        place(&inner.directory, &me, &nodes, room.as_str()).await
    }

    /// A room moved here from a draining node goes on recording if it was:
    /// once the join has opened it, the recording starts again (a new part).
    fn resume_handoff(&self, room: &RoomId) {
        let cluster = self.clone();
        let room = room.clone();
        tokio::spawn(async move {
            let Ok(Some(what)) = cluster.inner.directory.take_handoff(room.as_str()).await else {
                return;
            };
            if !what.contains("\"recording\":true") {
                return;
            }
            for _ in 0..100 {
                if let Some(handle) = cluster.inner.registry.get(&room) {
                    tracing::info!(room = %room, "the room was recording on its old node: recording again");
                    let _ = handle.send(RoomCommand::Record {
                        on: true,
                        by: None,
                        reply: None,
                    });
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
}

fn there(n: &NodeEntry) -> Route {
    Route::There {
        node: n.id.clone(),
        url: placement::signaling_url(&n.url),
    }
}

/// Who is placing a room, and the cluster's timings.
pub struct Placer<'a> {
    /// The node asked.
    pub id: &'a str,
    /// Its state.
    pub state: NodeState,
    /// How long a claim lasts before the owner renews it.
    pub lease: Duration,
    /// How long a placement counts against a node at most.
    pub window: Duration,
}

/// Where a join to `room` goes, asked of node `me` given the live `nodes`:
/// the room's live owner, or else the least-loaded serving node, for which
/// the room is claimed at once. (The node's own rooms are looked up before
/// this; the benchmark's simulation calls it directly.)
pub async fn place(
    dir: &Directory,
    me: &Placer<'_>,
    nodes: &[NodeEntry],
    room: &str,
) -> Result<Route, DirectoryError> {
    let owner = dir.owner(room).await?;
    let dead = match owner {
        Some(o) if o == me.id => return Ok(Route::Here),
        Some(o) => match nodes.iter().find(|n| n.id == o) {
            Some(n) => return Ok(there(n)),
            None => Some(o),
        },
        None => None,
    };
    // A placement counts until the node's own figures (written at
    // `updated_ms`) include it, and at most for the placement window.
    let forget = super::now_ms().saturating_sub(me.window.as_millis() as u64);
    let since: Vec<(String, u64)> = nodes
        .iter()
        .map(|n| (n.id.clone(), n.updated_ms.max(forget)))
        .collect();
    let recent: HashMap<String, u32> = dir.recent(&since, forget).await?;
    let chosen = match placement::choose(nodes, &recent, None, room) {
        Some(n) => n.id.clone(),
        // This node's entry is not there yet (Redis came back a moment
        // ago): it can still take the room if it serves.
        None if me.state == NodeState::Serving && !nodes.iter().any(|n| n.id == me.id) => {
            me.id.to_string()
        }
        None => {
            return Ok(Route::Unavailable(format!(
                "no node takes new rooms now (all {} are draining); room {room} cannot start",
                nodes.len()
            )))
        }
    };
    let owner = dir.claim(room, &chosen, me.lease, dead.as_deref()).await?;
    if owner == chosen {
        dir.placed(&chosen, room, super::now_ms()).await?;
        tracing::info!(room = %room, node = %chosen, "room placed");
    }
    if owner == me.id {
        return Ok(Route::Here);
    }
    Ok(match nodes.iter().find(|n| n.id == owner) {
        Some(n) => there(n),
        None => Route::Unavailable(format!(
            "room {room} is held by node {owner}, which is not in the directory; try again in a few seconds"
        )),
    })
}
