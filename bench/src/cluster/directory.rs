//! The directory's part of a join, timed from outside the nodes: the same
//! calls a node makes, with the nodes' own library, against the same Redis.

use std::time::{Duration, Instant};

use anyhow::bail;
use tessera::cluster::route::{place, Placer, Route};
use tessera::cluster::{Directory, NodeState};

use super::joins::Open;
use super::{ms_since, DirectoryTime, Settings, WARMUP_JOINS};
use crate::report::Spread;

/// Who asks the directory, with the cluster's timings.
fn placer<'a>(id: &'a str, s: &Settings) -> Placer<'a> {
    Placer {
        id,
        state: NodeState::Serving,
        lease: Duration::from_millis(s.lease_ms),
        window: Duration::from_millis(s.placement_window_ms),
    }
}

/// Times the directory calls of a join, made from here with the nodes'
/// own library, as the entry node `entry` (its socket `entry_ws`) makes
/// them: for the `open` rooms on other nodes, and for `joins` new rooms
/// under a copy of the nodes' entries.
pub(super) async fn directory_time(
    url: &str,
    prefix: &str,
    s: &Settings,
    (entry, entry_ws): (&str, &str),
    open: &Open,
    joins: usize,
) -> anyhow::Result<DirectoryTime> {
    let live = Directory::new(url, prefix)?;
    let nodes = live.nodes().await?;
    let elsewhere: Vec<&String> = open
        .iter()
        .filter(|(_, ws, _)| ws != entry_ws)
        .map(|(room, _, _)| room)
        .collect();
    let mut open_ms = Vec::new();
    for i in 0..if elsewhere.is_empty() { 0 } else { joins } {
        let room = elsewhere[i % elsewhere.len()];
        let t = Instant::now();
        let nodes = live.nodes().await?;
        let route = place(&live, &placer(entry, s), &nodes, room).await?;
        if matches!(route, Route::There { .. }) {
            open_ms.push(ms_since(t));
        }
    }
    // New rooms: a copy of the entries under a prefix of its own.
    let copy = Directory::new(url, &format!("{prefix}-copy"))?;
    for n in &nodes {
        copy.publish(n, Duration::from_secs(600)).await?;
    }
    let (mut new_ms, mut second_ms) = (Vec::new(), Vec::new());
    for i in 0..WARMUP_JOINS + joins {
        let room = format!("copy-{i}");
        let t = Instant::now();
        let listed = copy.nodes().await?;
        let route = place(&copy, &placer(entry, s), &listed, &room).await?;
        let first = ms_since(t);
        let owner = match &route {
            Route::Here => entry,
            Route::There { node, .. } => {
                let owner = nodes
                    .iter()
                    .find(|n| n.id == *node)
                    .map_or(entry, |n| n.id.as_str());
                let t = Instant::now();
                let listed = copy.nodes().await?;
                let again = place(&copy, &placer(owner, s), &listed, &room).await?;
                if i >= WARMUP_JOINS && again == Route::Here {
                    second_ms.push(ms_since(t));
                }
                owner
            }
            Route::Unavailable(why) => bail!("a new room was not placed: {why}"),
        };
        if i >= WARMUP_JOINS {
            new_ms.push(first);
        }
        copy.release(&room, owner).await?;
    }
    for n in &nodes {
        copy.withdraw(&n.id).await?;
    }
    Ok(DirectoryTime {
        open_elsewhere_ms: Spread::of(&open_ms),
        new_room_ms: Spread::of(&new_ms),
        new_second_hop_ms: Spread::of(&second_ms),
        ..DirectoryTime::default()
    })
}
