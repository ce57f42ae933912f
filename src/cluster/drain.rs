//! Draining a node: it takes no new rooms (its entry says `draining`, so
//! no other node places rooms here, and `/readyz` answers 503), its rooms
//! go on until they end, and at the deadline the rooms still open move:
//! each is handed to the least-loaded serving node, its clients are told
//! to reconnect there, and its recording is closed (the new node records
//! a new part). Rooms that no other node can take stay; on SIGTERM they
//! are then closed as at any shutdown.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::oneshot;

use super::placement::{self, NodeState};
use super::Cluster;
use crate::room::RoomCommand;

impl Cluster {
    /// Drains this node for `within`, then moves what is left; returns
    /// once the moved rooms have closed here (at most a few seconds more).
    /// Rooms no other node could take are still open then: on SIGTERM the
    /// shutdown closes them (recordings finish cleanly).
    pub async fn drain(&self, within: Duration) {
        self.set_state(NodeState::Draining);
        let registry = &self.inner.registry;
        tracing::info!(
            node = %self.id(), rooms = registry.room_count(), seconds = within.as_secs(),
            "draining: no new rooms; rooms here move to other nodes at the deadline"
        );
        let deadline = tokio::time::Instant::now() + within;
        while registry.room_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if registry.room_count() == 0 {
            tracing::info!(node = %self.id(), "drained: every room ended");
            return;
        }
        self.move_rooms().await;
        let closing = tokio::time::Instant::now() + Duration::from_secs(10);
        while registry.room_count() > 0 && tokio::time::Instant::now() < closing {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::info!(node = %self.id(), left = registry.room_count(), "drained");
    }

    /// Starts a drain in the background (the admin API's), unless one
    /// runs. Rooms that could not move are offered to other nodes again
    /// every few seconds until they move or end; the node stays up.
    pub fn start_drain(&self, within: Duration) -> bool {
        if self.state() == NodeState::Draining {
            return false;
        }
        self.set_state(NodeState::Draining);
        let cluster = self.clone();
        tokio::spawn(async move {
            cluster.drain(within).await;
            while cluster.inner.registry.room_count() > 0 {
                tokio::time::sleep(Duration::from_secs(5)).await;
                cluster.move_rooms().await;
            }
        });
        true
    }

    /// Hands every room still here to another serving node.
    async fn move_rooms(&self) {
        let inner = &self.inner;
        let nodes = match self.nodes().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(node = %inner.id, "cannot move rooms without the directory: {e}");
                return;
            }
        };
        let mut placed: HashMap<String, u32> = HashMap::new();
        for room in inner.registry.room_ids() {
            let Some(target) = placement::choose(&nodes, &placed, Some(&inner.id), room.as_str())
            else {
                tracing::warn!(
                    node = %inner.id, room = %room,
                    "no other node serves: the room stays here until it ends"
                );
                return;
            };
            let target = target.clone();
            let Some(handle) = inner.registry.get(&room) else {
                continue;
            };
            let (tx, rx) = oneshot::channel();
            let recording = handle.send(RoomCommand::Inspect { reply: tx }).is_ok()
                && matches!(rx.await, Ok(s) if s.recording.is_some());
            if recording {
                let _ = inner
                    .directory
                    .hand_over(room.as_str(), "{\"recording\":true}")
                    .await;
            }
            // The lease passes from this node to the target in one step, so
            // a join meanwhile finds the new owner.
            let target = match inner
                .directory
                .claim(room.as_str(), &target.id, inner.lease, Some(&inner.id))
                .await
            {
                Ok(owner) if owner == target.id => target,
                Ok(owner) => match nodes.iter().find(|n| n.id == owner) {
                    Some(n) => {
                        tracing::warn!(room = %room, owner = %owner, "the room's lease is held elsewhere; its clients go there");
                        n.clone()
                    }
                    None => continue,
                },
                Err(e) => {
                    tracing::warn!(room = %room, "cannot hand the room over: {e}");
                    continue;
                }
            };
            *placed.entry(target.id.clone()).or_insert(0) += 1;
            tracing::info!(room = %room, to = %target.id, recording, "moving the room");
            let _ = handle.send(RoomCommand::Move {
                url: placement::signaling_url(&target.url),
                node: target.id.clone(),
            });
        }
    }
}
