//! The `cluster` scenario: joins routed through real nodes. A real
//! `redis-server` and N server processes (the `serve` mode, as every
//! scenario runs the server) on loopback; signaling-only WebSocket joins
//! through one entry node, following its redirects, timed by kind: new
//! rooms and open rooms, on the entry node or elsewhere. The same joins on
//! one node without a cluster (no Redis) are the baseline, measured first
//! in the same run. Then the time the directory takes, and how long a room
//! is gone after its node is SIGKILLed.
//!
//! ```text
//!   bench ──ws──▶ n0 (entry) ──redirect──▶ bench ──ws──▶ n1 / n2
//!                   │                                     │
//!                   └────────────── redis-server ─────────┘
//! ```
//!
//! - `joins`: the timed joins and the rates;
//! - `directory`: the directory's calls, timed from outside the nodes;
//! - `recovery`: a node SIGKILLed, its room joined again;
//! - [`sim`]: the `cluster-sim` scenario, many simulated nodes, no media.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::children::{free_port, server_env, Server};
use crate::redis::RedisServer;
use crate::report::Spread;
use crate::run::Plan;

mod directory;
mod joins;
mod recovery;
pub mod sim;

/// The cluster scenarios' names.
pub const NAMES: &[&str] = &["cluster", "cluster-sim"];

/// Sizes and timings from the command line, for either cluster scenario;
/// `None`: the scenario's own.
#[derive(Debug, Clone, Default)]
pub struct Sizes {
    /// Nodes.
    pub nodes: Option<usize>,
    /// `cluster`: joins of each kind; `cluster-sim`: rooms.
    pub rooms: Option<usize>,
    /// The nodes' heartbeat.
    pub heartbeat: Option<Duration>,
    /// The lease of a node's entry and of its rooms.
    pub lease: Option<Duration>,
    /// `cluster-sim`: placements in flight at once in the burst.
    pub burst_in_flight: Option<usize>,
}

/// The settings a run used.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Settings {
    /// Heartbeat (ms).
    pub heartbeat_ms: u64,
    /// Lease of an entry and of a room (ms).
    pub lease_ms: u64,
    /// How long a placement counts against a node at most (ms).
    pub placement_window_ms: u64,
}

impl Settings {
    /// The server's defaults unless `sizes` says otherwise; the placement
    /// window keeps the defaults' ratio to the heartbeat (5 s to 2 s).
    pub fn from(sizes: &Sizes) -> anyhow::Result<Settings> {
        let heartbeat = sizes.heartbeat.map_or(2000, |d| d.as_millis() as u64);
        let lease = sizes.lease.map_or(3 * heartbeat, |d| d.as_millis() as u64);
        if heartbeat < 200 || lease < 2 * heartbeat {
            bail!("--heartbeat {heartbeat} ms and --lease {lease} ms: the heartbeat must be at least 200 ms and the lease at least twice the heartbeat, as the server requires");
        }
        Ok(Settings {
            heartbeat_ms: heartbeat,
            lease_ms: lease,
            placement_window_ms: heartbeat * 5 / 2,
        })
    }
}

/// Joins of one kind, timed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Kind {
    /// Joins of this kind.
    pub joins: usize,
    /// From the first connect to `joined`, every socket included (ms).
    pub ms: Option<Spread>,
    /// At the entry node, from sending `join` to its answer (`joined`, or
    /// the `redirect`): no connection set-up, no second node (ms).
    pub entry_reply_ms: Option<Spread>,
}

/// The joins through one entry node: one at a time for their times, then
/// several at once for the rate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Joins {
    /// A new room the entry node placed on itself (asking the directory).
    pub new_on_entry: Kind,
    /// A new room placed on another node: the directory, a redirect, and
    /// the other node's own look-up.
    pub new_elsewhere: Kind,
    /// A room open on the entry node: no directory.
    pub open_on_entry: Kind,
    /// A room open on another node: the directory and a redirect.
    pub open_elsewhere: Kind,
    /// Every new room, wherever it went.
    pub new_all: Kind,
    /// Every open room, wherever it was.
    pub open_all: Kind,
    /// Joins of new rooms per second, `concurrency` at once.
    pub new_per_s: f64,
    /// Joins of open rooms per second, `concurrency` at once.
    pub open_per_s: f64,
    /// Joins in flight at once for the rates.
    pub concurrency: usize,
    /// Rooms kept open (one participant each) for the open-room joins.
    pub open_rooms: usize,
    /// Where the new rooms of the timed joins went, by node.
    pub new_rooms_by_node: BTreeMap<String, usize>,
    /// Joins that ended in an error.
    pub failed: usize,
}

/// The directory's part of a join.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DirectoryTime {
    /// The calls a node makes for a join to a room open elsewhere (read
    /// the nodes, the owner), made from the benchmark against the same
    /// Redis with the library the nodes use (ms).
    pub open_elsewhere_ms: Option<Spread>,
    /// The same for a new room (the nodes, the owner, recent placements,
    /// the claim, the note of the placement), under a copy of the nodes'
    /// entries so that the live cluster is not disturbed (ms).
    pub new_room_ms: Option<Spread>,
    /// The look-up of the node a new room was sent to (the nodes, the
    /// owner: itself) (ms).
    pub new_second_hop_ms: Option<Spread>,
    /// Median entry reply of a new room placed on the entry node, less the
    /// baseline's new room (ms).
    pub new_by_difference_ms: Option<f64>,
    /// Median entry reply of a room open elsewhere (a redirect), less the
    /// baseline's open room (ms).
    pub open_by_difference_ms: Option<f64>,
}

/// One room brought back after its node was killed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Trial {
    /// From SIGKILL to `joined` (ms).
    pub ms: f64,
    /// Joins tried (one every `RETRY`).
    pub attempts: usize,
    /// The node killed.
    pub from: String,
    /// The node the room came back on.
    pub to: String,
}

/// Everything the `cluster` scenario measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterRouting {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// `redis-server --version`.
    pub redis: String,
    /// The cluster's timings.
    pub settings: Settings,
    /// Joins through the cluster's entry node.
    pub cluster: Joins,
    /// The same joins on one node without a cluster.
    pub baseline: Joins,
    /// The directory's part.
    pub directory: DirectoryTime,
    /// A room with one participant whose node was SIGKILLed, joined again
    /// through a live node.
    pub recovery: Vec<Trial>,
    /// Kill to joined over the trials (ms).
    pub recovery_ms: Option<Spread>,
    /// For comparison: one node without a cluster, SIGKILLed and started
    /// again at once on its port; kill to joined.
    pub single_node_restart: Option<Trial>,
    /// How often a failed join was tried again (ms).
    pub retry_ms: u64,
}

/// How long one connect or answer may take.
const LIMIT: Duration = Duration::from_secs(5);

/// How often a join that failed after a kill is tried again.
const RETRY: Duration = Duration::from_millis(100);

/// Joins in flight at once when measuring the rate.
const CONCURRENCY: usize = 8;

/// Joins not counted before each measurement (first connections, the
/// directory's scripts, the first room's pipeline).
const WARMUP_JOINS: usize = 5;

/// Rooms kept open on each node for the joins of open rooms.
const OPEN_PER_NODE: usize = 4;

/// Kill trials.
const TRIALS: usize = 3;

/// A server process and how to reach it.
struct Node {
    id: String,
    server: Option<Server>,
    http: String,
    ws: String,
}

/// What a node is started with.
struct NodeSpec<'a> {
    plan: &'a Plan,
    dir: &'a Path,
    /// `(redis url, key prefix, settings)`; `None`: a single node.
    cluster: Option<(&'a str, &'a str, &'a Settings)>,
}

impl NodeSpec<'_> {
    async fn start(&self, id: &str, port: u16) -> anyhow::Result<Node> {
        let dir = self.dir.join(id);
        std::fs::create_dir_all(&dir)?;
        let mut env = server_env(&dir, port, 900);
        let set = |k: &str, v: String| (k.to_string(), v);
        env.extend([
            set("TESSERA_LIMITS__SOCKETS_PER_IP", "4096".into()),
            set("TESSERA_LIMITS__MAX_ROOMS", "4096".into()),
            set("TESSERA_LIMITS__CONNECTIONS_PER_IP", "4096".into()),
            set("TESSERA_LIMITS__MAX_CONNECTIONS", "8192".into()),
            set("TESSERA_ROOMS__P2P", "off".into()),
            // Routing, not logging: one line per join would weigh on both.
            set("RUST_LOG", "warn".into()),
        ]);
        if let Some((url, prefix, s)) = self.cluster {
            env.extend([
                set("TESSERA_CLUSTER__REDIS_URL", url.into()),
                set("TESSERA_CLUSTER__NODE_ID", id.into()),
                set("TESSERA_CLUSTER__KEY_PREFIX", prefix.into()),
                set("TESSERA_CLUSTER__HEARTBEAT_MS", s.heartbeat_ms.to_string()),
                set("TESSERA_CLUSTER__LEASE_MS", s.lease_ms.to_string()),
                set(
                    "TESSERA_CLUSTER__PLACEMENT_WINDOW_MS",
                    s.placement_window_ms.to_string(),
                ),
                set("TESSERA_CLUSTER__DRAIN_SECONDS", "0".into()),
            ]);
        }
        let server = Server::start(
            self.plan.config.as_deref(),
            &env,
            port,
            &dir.join("server.log"),
        )
        .await
        .with_context(|| format!("starting node {id}"))?;
        Ok(Node {
            id: id.to_string(),
            http: server.http.clone(),
            ws: format!("ws://127.0.0.1:{port}/ws"),
            server: Some(server),
        })
    }
}

/// Waits until `node` lists `n` nodes in the cluster.
async fn wait_listed(node: &Node, n: usize) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed: serde_json::Value = client
            .get(format!("{}/api/nodes", node.http))
            .send()
            .await?
            .json()
            .await?;
        if listed["nodes"].as_array().map(Vec::len) == Some(n) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("node {} lists {listed} rather than {n} nodes", node.id);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the scenario.
pub async fn run(plan: &Plan, sizes: &Sizes) -> anyhow::Result<ClusterRouting> {
    let n = sizes.nodes.unwrap_or(3).max(2);
    let joins = sizes.rooms.unwrap_or(200).max(2);
    let settings = Settings::from(sizes)?;
    let dir = plan.out.join("cluster");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    tracing::info!("cluster: the baseline, one node without a cluster");
    let single = NodeSpec {
        plan,
        dir: &dir,
        cluster: None,
    };
    let port = free_port()?;
    let mut alone = single.start("single", port).await?;
    let (baseline, held) = joins::measure(&[&alone], joins, "b").await?;
    drop(held);
    tracing::info!("cluster: a single node SIGKILLed and started again");
    let restart = recovery::restart_single(&single, alone.server.take(), port).await?;

    let redis = RedisServer::start(&dir.join("redis.log")).await?;
    let prefix = format!(
        "bench-{}-{}",
        std::process::id(),
        crate::clip::now_ms() as u64
    );
    let spec = NodeSpec {
        plan,
        dir: &dir,
        cluster: Some((&redis.url, &prefix, &settings)),
    };
    let mut nodes = Vec::new();
    for i in 0..n {
        nodes.push(spec.start(&format!("n{i}"), free_port()?).await?);
    }
    for node in &nodes {
        wait_listed(node, n).await?;
    }
    tracing::info!(nodes = n, joins, "cluster: joins through node n0");
    let refs: Vec<&Node> = nodes.iter().collect();
    let (cluster, held) = joins::measure(&refs, joins, "c").await?;
    tracing::info!("cluster: the directory's calls, from outside");
    let entry = (nodes[0].id.as_str(), nodes[0].ws.as_str());
    let mut directory =
        directory::directory_time(&redis.url, &prefix, &settings, entry, &held, joins).await?;
    drop(held);
    directory.new_by_difference_ms = difference(
        &cluster.new_on_entry.entry_reply_ms,
        &baseline.new_on_entry.entry_reply_ms,
    );
    directory.open_by_difference_ms = difference(
        &cluster.open_elsewhere.entry_reply_ms,
        &baseline.open_on_entry.entry_reply_ms,
    );

    let mut recovery = Vec::new();
    for t in 0..TRIALS {
        tracing::info!(trial = t + 1, "cluster: a room's node SIGKILLed");
        recovery.push(recovery::kill_and_rejoin(&spec, &mut nodes, t, t + 1 < TRIALS).await?);
    }
    for node in nodes {
        if let Some(s) = node.server {
            s.stop().await;
        }
    }
    let ms: Vec<f64> = recovery.iter().map(|t| t.ms).collect();
    Ok(ClusterRouting {
        nodes: n,
        redis: redis.version.clone(),
        settings,
        cluster,
        baseline,
        directory,
        recovery_ms: Spread::of(&ms),
        recovery,
        single_node_restart: Some(restart),
        retry_ms: RETRY.as_millis() as u64,
    })
}

fn difference(a: &Option<Spread>, b: &Option<Spread>) -> Option<f64> {
    Some(a.as_ref()?.median - b.as_ref()?.median)
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn spread(s: &Option<Spread>) -> String {
    s.map_or_else(|| "–".into(), |s| format!("{:.1} / {:.1}", s.median, s.p95))
}

/// The scenario's figures as Markdown.
pub fn markdown(r: &ClusterRouting) -> String {
    use std::fmt::Write as _;
    let s = &r.settings;
    let mut out = format!(
        "\n### Cluster routing: {} nodes and one node without a cluster\n\n{}; heartbeat {} ms, lease {} ms, placement window {} ms. Signaling-only WebSocket joins through node n0, following redirects, one at a time for the times, {} at once for the rates; open rooms held by one participant each ({} in the cluster, {} on the single node).\n\n",
        r.nodes,
        r.redis,
        s.heartbeat_ms,
        s.lease_ms,
        s.placement_window_ms,
        r.cluster.concurrency,
        r.cluster.open_rooms,
        r.baseline.open_rooms,
    );
    out.push_str("| join | cluster: joins | cluster: whole join ms (p50 / p95) | cluster: entry's answer ms | single node: joins | single node: whole join ms | single node: answer ms |\n|---|---|---|---|---|---|---|\n");
    let (c, b) = (&r.cluster, &r.baseline);
    let rows: [(&str, &Kind, Option<&Kind>); 6] = [
        (
            "new room, placed on the entry",
            &c.new_on_entry,
            Some(&b.new_on_entry),
        ),
        (
            "new room, placed elsewhere (redirect)",
            &c.new_elsewhere,
            None,
        ),
        ("new room, any", &c.new_all, Some(&b.new_all)),
        (
            "open room on the entry",
            &c.open_on_entry,
            Some(&b.open_on_entry),
        ),
        ("open room elsewhere (redirect)", &c.open_elsewhere, None),
        ("open room, any", &c.open_all, Some(&b.open_all)),
    ];
    for (name, k, base) in rows {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} |",
            k.joins,
            spread(&k.ms),
            spread(&k.entry_reply_ms),
            base.map_or("–".into(), |b| b.joins.to_string()),
            base.map_or("–".into(), |b| spread(&b.ms)),
            base.map_or("–".into(), |b| spread(&b.entry_reply_ms)),
        );
    }
    let _ = writeln!(
        out,
        "\nJoins per second, {} in flight: new rooms {:.0} (single node {:.0}), open rooms {:.0} (single node {:.0}). Failed joins: {} (single node {}). New rooms of the timed joins by node: {}.",
        c.concurrency,
        c.new_per_s,
        b.new_per_s,
        c.open_per_s,
        b.open_per_s,
        c.failed,
        b.failed,
        c.new_rooms_by_node
            .iter()
            .map(|(n, k)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let d = &r.directory;
    let opt = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1}"));
    let _ = writeln!(
        out,
        "\nThe directory's part of a join, its calls timed from the benchmark with the nodes' library against the same Redis (p50 / p95): a room open elsewhere {} ms; a new room {} ms, and the look-up at the node it is sent to {} ms. By difference of the entry's answers: a new room placed on the entry {} ms over the single node's, a redirect to an open room {} ms over the single node's open-room join.",
        spread(&d.open_elsewhere_ms),
        spread(&d.new_room_ms),
        spread(&d.new_second_hop_ms),
        opt(d.new_by_difference_ms),
        opt(d.open_by_difference_ms),
    );
    let trials: Vec<String> = r
        .recovery
        .iter()
        .map(|t| {
            format!(
                "{:.0} ms ({} → {}, {} tries)",
                t.ms, t.from, t.to, t.attempts
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "\nA room's node SIGKILLed, its one participant joining again through n0 every {} ms: {} (p50 / p95 {} ms). For comparison, a single node SIGKILLed and started again at once: {}.",
        r.retry_ms,
        trials.join("; "),
        spread(&r.recovery_ms),
        r.single_node_restart
            .as_ref()
            .map_or("–".into(), |t| format!("{:.0} ms ({} tries)", t.ms, t.attempts)),
    );
    out
}
