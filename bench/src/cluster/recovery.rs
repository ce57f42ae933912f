//! A room whose node dies: SIGKILL the node, join the room again through
//! a live one; and, for comparison, a single node killed and started again.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use super::{ms_since, wait_listed, Node, NodeSpec, Trial, LIMIT, RETRY};
use crate::children::{free_port, Server};
use crate::signal::{self, Held, Joined};

/// Tries to join `room` through `entry` every `RETRY` until it is joined;
/// returns the join and the attempts.
async fn rejoin(entry: &str, room: &str, give_up: Duration) -> anyhow::Result<(Joined, usize)> {
    let deadline = Instant::now() + give_up;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match signal::join(entry, room, "back", Duration::from_secs(1)).await {
            Ok(j) => return Ok((j, attempts)),
            Err(e) if Instant::now() > deadline => {
                bail!("{room} not joined again within {give_up:?}: {e:#}")
            }
            Err(_) => tokio::time::sleep(RETRY).await,
        }
    }
}

/// Opens a room with one participant on a node other than the entry,
/// SIGKILLs that node, and joins the room again through the entry; then
/// starts the node again if `again`.
pub(super) async fn kill_and_rejoin(
    spec: &NodeSpec<'_>,
    nodes: &mut [Node],
    trial: usize,
    again: bool,
) -> anyhow::Result<Trial> {
    let entry = nodes[0].ws.clone();
    let mut found = None;
    for i in 0..100 {
        let room = format!("k{trial}-{i}");
        let j = signal::join(&entry, &room, "host", LIMIT).await?;
        if let Some(v) = nodes.iter().position(|n| n.ws == j.url() && n.ws != entry) {
            found = Some((room, v, Held::new(j.socket)));
            break;
        }
        signal::close(j.socket).await;
    }
    let (room, victim, held) = found.context("no new room was placed off the entry node")?;
    // The room has been listed and its lease renewed at least once.
    let heartbeat = Duration::from_millis(spec.cluster.map_or(0, |c| c.2.heartbeat_ms));
    tokio::time::sleep(heartbeat + heartbeat / 2).await;
    let killed = Instant::now();
    if let Some(s) = nodes[victim].server.take() {
        s.kill().await;
    }
    drop(held);
    let (j, attempts) = rejoin(&entry, &room, Duration::from_secs(120)).await?;
    let ms = ms_since(killed);
    let to = nodes
        .iter()
        .find(|n| n.ws == j.url())
        .map_or_else(|| j.url().to_string(), |n| n.id.clone());
    signal::close(j.socket).await;
    let from = nodes[victim].id.clone();
    if again {
        nodes[victim] = spec.start(&from, free_port()?).await?;
        for node in nodes.iter() {
            wait_listed(node, nodes.len()).await?;
        }
    }
    Ok(Trial {
        ms,
        attempts,
        from,
        to,
    })
}

/// One node without a cluster, its room held by one participant,
/// SIGKILLed and started again at once on the same `port`: kill to joined.
pub(super) async fn restart_single(
    spec: &NodeSpec<'_>,
    server: Option<Server>,
    port: u16,
) -> anyhow::Result<Trial> {
    let ws = format!("ws://127.0.0.1:{port}/ws");
    let j = signal::join(&ws, "restart", "host", LIMIT).await?;
    let held = Held::new(j.socket);
    let killed = Instant::now();
    if let Some(s) = server {
        s.kill().await;
    }
    drop(held);
    let (started, rejoined) = tokio::join!(
        spec.start("single-again", port),
        rejoin(&ws, "restart", Duration::from_secs(60))
    );
    let (j, attempts) = rejoined?;
    let ms = ms_since(killed);
    signal::close(j.socket).await;
    if let Some(s) = started?.server {
        s.stop().await;
    }
    Ok(Trial {
        ms,
        attempts,
        from: "single".into(),
        to: "single".into(),
    })
}
