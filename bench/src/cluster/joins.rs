//! The joins through an entry node: one at a time, timed by kind, then
//! several at once for the rate.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::{Joins, Kind, Node, CONCURRENCY, LIMIT, OPEN_PER_NODE, WARMUP_JOINS};
use crate::report::Spread;
use crate::signal::{self, Held, Joined};

/// One timed join.
struct Sample {
    ms: f64,
    entry_reply_ms: f64,
    redirects: usize,
}

impl Sample {
    fn of(j: &Joined) -> Sample {
        Sample {
            ms: j.ms,
            entry_reply_ms: j.hops[0].reply_ms,
            redirects: j.redirects(),
        }
    }
}

impl Kind {
    fn of(joins: &[&Sample]) -> Kind {
        let ms: Vec<f64> = joins.iter().map(|j| j.ms).collect();
        let entry: Vec<f64> = joins.iter().map(|j| j.entry_reply_ms).collect();
        Kind {
            joins: joins.len(),
            ms: Spread::of(&ms),
            entry_reply_ms: Spread::of(&entry),
        }
    }
}

/// The joins of `v` that ended on the entry node (`here`), or elsewhere.
fn pick(v: &[Sample], here: bool) -> Vec<&Sample> {
    v.iter().filter(|s| (s.redirects == 0) == here).collect()
}

fn all(v: &[Sample]) -> Vec<&Sample> {
    v.iter().collect()
}

/// Rooms kept open for the open-room joins: (room, node socket, participant).
pub(super) type Open = Vec<(String, String, Held)>;

/// The joins through `nodes[0]`: new rooms and open rooms, `joins` of each
/// one at a time, then as many `CONCURRENCY` at once; room names start
/// with `tag`. Returns the open rooms, still held.
pub(super) async fn measure(
    nodes: &[&Node],
    joins: usize,
    tag: &str,
) -> anyhow::Result<(Joins, Open)> {
    let entry = nodes[0].ws.clone();
    let id_of = |url: &str| {
        nodes
            .iter()
            .find(|n| n.ws == url)
            .map_or_else(|| url.to_string(), |n| n.id.clone())
    };
    for i in 0..WARMUP_JOINS {
        let j = signal::join(&entry, &format!("{tag}-warm-{i}"), "w", LIMIT).await?;
        signal::close(j.socket).await;
    }
    let open = hold_rooms(nodes, tag).await?;
    let mut failed = 0;
    let mut new = Vec::new();
    let mut by_node = BTreeMap::new();
    for i in 0..joins {
        match signal::join(&entry, &format!("{tag}-new-{i}"), "p", LIMIT).await {
            Ok(j) => {
                *by_node.entry(id_of(j.url())).or_insert(0) += 1;
                new.push(Sample::of(&j));
                signal::close(j.socket).await;
            }
            Err(e) => {
                tracing::warn!("a join failed: {e:#}");
                failed += 1;
            }
        }
    }
    let mut opened = Vec::new();
    for i in 0..joins {
        let room = &open[i % open.len()].0;
        match signal::join(&entry, room, "guest", LIMIT).await {
            Ok(j) => {
                opened.push(Sample::of(&j));
                signal::close(j.socket).await;
            }
            Err(e) => {
                tracing::warn!("a join failed: {e:#}");
                failed += 1;
            }
        }
    }
    let rate_tag = tag.to_string();
    let (new_per_s, f) = rate(&entry, joins, move |i| format!("{rate_tag}-rate-{i}")).await;
    failed += f;
    let rooms: Vec<String> = open.iter().map(|(r, _, _)| r.clone()).collect();
    let (open_per_s, f) = rate(&entry, joins, move |i| rooms[i % rooms.len()].clone()).await;
    failed += f;
    let joins = Joins {
        new_on_entry: Kind::of(&pick(&new, true)),
        new_elsewhere: Kind::of(&pick(&new, false)),
        open_on_entry: Kind::of(&pick(&opened, true)),
        open_elsewhere: Kind::of(&pick(&opened, false)),
        new_all: Kind::of(&all(&new)),
        open_all: Kind::of(&all(&opened)),
        new_per_s,
        open_per_s,
        concurrency: CONCURRENCY,
        open_rooms: open.len(),
        new_rooms_by_node: by_node,
        failed,
    };
    Ok((joins, open))
}

/// Rooms open elsewhere and rooms open on the entry node, kept open by one
/// participant each: `OPEN_PER_NODE` on every node, new rooms joined
/// through `nodes[0]` until each node has them (or a try limit is reached:
/// the placement, not the benchmark, decides where a room goes).
async fn hold_rooms(nodes: &[&Node], tag: &str) -> anyhow::Result<Open> {
    let mut open: Open = Vec::new();
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..50 * nodes.len() {
        if nodes
            .iter()
            .all(|n| per_node.get(&n.ws).copied().unwrap_or(0) >= OPEN_PER_NODE)
        {
            break;
        }
        let room = format!("{tag}-open-{i}");
        let j = signal::join(&nodes[0].ws, &room, "host", LIMIT).await?;
        let held = per_node.entry(j.url().to_string()).or_insert(0);
        if *held < OPEN_PER_NODE {
            *held += 1;
            open.push((room, j.url().to_string(), Held::new(j.socket)));
        } else {
            signal::close(j.socket).await;
        }
    }
    Ok(open)
}

/// `total` joins through `entry`, `CONCURRENCY` at once, to the rooms
/// `room(i)`: joins per second, and how many failed.
async fn rate(
    entry: &str,
    total: usize,
    room: impl Fn(usize) -> String + Send + Sync + 'static,
) -> (f64, usize) {
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let room = Arc::new(room);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (next, failed, room, entry) = (
            next.clone(),
            failed.clone(),
            room.clone(),
            entry.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                match signal::join(&entry, &room(i), "r", LIMIT).await {
                    Ok(j) => signal::close(j.socket).await,
                    Err(e) => {
                        tracing::warn!("a join failed: {e:#}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let failed = failed.load(Ordering::Relaxed);
    let done = total - failed.min(total);
    (done as f64 / start.elapsed().as_secs_f64(), failed)
}
