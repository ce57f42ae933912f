//! This node's entry and leases, refreshed every `cluster.heartbeat_ms`:
//! its state, its load (read from the rooms and `/proc/self/stat`), and
//! the leases of its rooms, taken again when they lapsed (after Redis
//! restarted). A failure is logged once and retried on the next beat.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::placement::{Load, NodeEntry, RoomEntry};
use super::Cluster;
use crate::room::RoomCommand;

/// Beats until the node leaves the cluster.
pub(super) async fn run(cluster: Cluster) {
    let mut cpu = CpuMeter::new();
    let mut held: Vec<String> = Vec::new();
    while !cluster.inner.left.load(Ordering::Relaxed) {
        held = beat(&cluster, cpu.cores(), held).await;
        tokio::select! {
            () = tokio::time::sleep(cluster.inner.heartbeat) => {}
            () = cluster.inner.wake.notified() => {}
        }
    }
}

/// One refresh: the entry, then the leases (given up for rooms that closed
/// since the last beat, of those `held`), then the view of the others.
/// Answers the rooms whose leases are held now.
async fn beat(cluster: &Cluster, cpu: f64, held: Vec<String>) -> Vec<String> {
    let inner = &cluster.inner;
    let (load, rooms) = load(cluster, cpu).await;
    let entry = NodeEntry {
        id: inner.id.clone(),
        url: inner.url.clone(),
        state: cluster.state(),
        load,
        rooms,
        updated_ms: super::now_ms(),
    };
    let published = inner.directory.publish(&entry, inner.lease).await;
    if cluster.observe(published).is_err() {
        return held;
    }
    let ids: Vec<String> = entry.rooms.iter().map(|r| r.room.clone()).collect();
    for closed in held.iter().filter(|r| !ids.contains(r)) {
        // Closed here: free at once for whichever node the next join picks.
        let _ = inner.directory.release(closed, &inner.id).await;
    }
    match inner.directory.renew(&inner.id, &ids, inner.lease).await {
        Ok(conflicts) => {
            for (room, owner) in conflicts {
                tracing::warn!(
                    node = %inner.id, room = %room, owner = %owner,
                    "another node holds this room's lease; new joins go there while this room goes on here"
                );
            }
        }
        Err(e) => {
            let _ = cluster.observe::<()>(Err(e));
            return ids;
        }
    }
    let _ = cluster.nodes().await;
    ids
}

/// The node's load and rooms, asked of each room (a room that does not
/// answer within a moment counts with no participants).
async fn load(cluster: &Cluster, cpu: f64) -> (Load, Vec<RoomEntry>) {
    let registry = &cluster.inner.registry;
    let mut load = Load {
        cpu,
        ..Load::default()
    };
    let mut rooms = Vec::new();
    for id in registry.room_ids() {
        let Some(handle) = registry.get(&id) else {
            continue;
        };
        let (tx, rx) = oneshot::channel();
        let participants = if handle.send(RoomCommand::Inspect { reply: tx }).is_ok() {
            match tokio::time::timeout(Duration::from_millis(500), rx).await {
                Ok(Ok(s)) => {
                    load.decoders +=
                        s.participants.iter().filter(|p| p.codec.is_some()).count() as u32;
                    load.encoders += s.video_encoders.len() as u32;
                    s.participants.len() as u32
                }
                _ => 0,
            }
        } else {
            0
        };
        load.rooms += 1;
        load.participants += participants;
        rooms.push(RoomEntry {
            room: id.to_string(),
            participants,
        });
    }
    (load, rooms)
}

/// The process's CPU use between two readings, in cores.
struct CpuMeter {
    last: Option<(Instant, f64)>,
}

impl CpuMeter {
    fn new() -> CpuMeter {
        CpuMeter { last: None }
    }

    fn cores(&mut self) -> f64 {
        let now = Instant::now();
        let Some(seconds) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| crate::metrics::process::cpu_seconds(&s))
        else {
            return 0.0;
        };
        let cores = match self.last {
            Some((at, before)) => {
                let wall = now.duration_since(at).as_secs_f64();
                if wall > 0.0 {
                    (seconds - before) / wall
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, seconds));
        (cores * 100.0).round() / 100.0
    }
}
