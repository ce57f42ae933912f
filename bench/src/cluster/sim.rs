//! The `cluster-sim` scenario: many nodes, no media. Each simulated node is
//! a few tasks in this process against one real `redis-server`, with a
//! connection of its own: on a heartbeat it publishes its entry (the load
//! of its simulated rooms) and renews its rooms' leases, as a node does.
//! Rooms arrive, a burst and then a steady rate, each asked of a random
//! node and placed by the server's own `route::place`; a room sent to
//! another node is asked there again, as the redirected client's join is.
//! Then one node drains: its rooms are moved as the server's drain moves
//! them (`placement::choose`, then a claim taken from the draining node).
//! Reported: how even the load is, how long placements and the drain take.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use tessera::cluster::placement::{choose, cost, Load, RoomEntry};
use tessera::cluster::route::{place, Placer, Route};
use tessera::cluster::{Directory, NodeEntry, NodeState};
use tokio::sync::Semaphore;

use super::{Settings, Sizes};
use crate::redis::RedisServer;
use crate::report::Spread;
use crate::run::Plan;

/// Placements in flight at once during the burst, unless
/// `--burst-in-flight` says otherwise: clients arriving together at many
/// nodes.
const BURST_IN_FLIGHT: usize = 32;

/// New rooms per second after the burst.
const STEADY_PER_S: f64 = 100.0;

/// The random generator's seed: every run places the same rooms.
const SEED: u64 = 0x7e55_e7a0;

/// The simulation's heartbeat unless `--heartbeat` says otherwise: short,
/// so that a run takes seconds, yet several times what a beat of 50 nodes
/// costs here.
const SIM_HEARTBEAT: Duration = Duration::from_millis(500);

/// How even the load is over the serving nodes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Evenness {
    /// Nodes counted.
    pub nodes: usize,
    /// Rooms on the emptiest node.
    pub rooms_min: usize,
    /// Rooms on the fullest node.
    pub rooms_max: usize,
    /// Rooms per node, mean.
    pub rooms_mean: f64,
    /// Rooms per node, standard deviation.
    pub rooms_stddev: f64,
    /// `cost()` of the cheapest node.
    pub cost_min: f64,
    /// `cost()` of the costliest node.
    pub cost_max: f64,
    /// `cost()` per node, mean.
    pub cost_mean: f64,
    /// `cost()` per node, standard deviation.
    pub cost_stddev: f64,
}

/// One node drained.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Drain {
    /// The node (the one with most rooms).
    pub node: String,
    /// Rooms moved away.
    pub rooms: usize,
    /// From draining to every room joined on its new node (s).
    pub seconds: f64,
    /// One room's move: the claim, then the join at the new node (ms).
    pub move_ms: Option<Spread>,
    /// Nodes that took its rooms.
    pub targets: usize,
    /// The load over the serving nodes afterwards.
    pub after: Evenness,
}

/// Everything the simulation measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Simulation {
    /// Simulated nodes.
    pub nodes: usize,
    /// Rooms placed.
    pub rooms: usize,
    /// Of them, in the burst.
    pub burst: usize,
    /// Placements in flight at once during the burst.
    pub burst_concurrency: usize,
    /// New rooms per second after the burst.
    pub steady_per_s: f64,
    /// `redis-server --version`.
    pub redis: String,
    /// The timings.
    pub settings: Settings,
    /// A placement asked of a node: its read of the nodes and `place` (ms).
    pub placement_ms: Option<Spread>,
    /// The same at the node a room was sent to (ms).
    pub second_hop_ms: Option<Spread>,
    /// Placements per second during the burst.
    pub burst_per_s: f64,
    /// Rooms sent on to another node than the one asked.
    pub redirects: usize,
    /// Rooms that the node they were sent to did not take (must be 0).
    pub misrouted: usize,
    /// Rooms that could not be placed (must be 0).
    pub failed: usize,
    /// The load once the burst is placed.
    pub after_burst: Evenness,
    /// The load once every room is placed.
    pub after_arrivals: Evenness,
    /// One node drained.
    pub drain: Drain,
    /// Rooms whose lease names another node than the one running them,
    /// at the end (must be 0).
    pub leases_wrong: usize,
    /// The whole simulation (s).
    pub seconds: f64,
}

/// SplitMix64: small, and the same sequence everywhere.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A room's participants, drawn as a school's day has them: mostly
/// lessons of two, some groups, a few speaking clubs.
fn participants(r: &mut Random) -> u32 {
    match r.below(100) {
        0..=49 => 2,
        50..=79 => 6,
        80..=94 => 12,
        _ => 30,
    }
}

/// What a node running `rooms` (id → participants) reports. Every
/// participant is decoded; a room of more than two runs both codec
/// families' encoders; CPU per room as the bare pipeline measured in
/// MEDIA-NOTES (about 0.45 cores and 0.03 per participant).
fn load(rooms: &BTreeMap<String, u32>) -> (Load, Vec<RoomEntry>) {
    let mut l = Load::default();
    let mut cpu = 0.0;
    for &p in rooms.values() {
        l.rooms += 1;
        l.participants += p;
        l.decoders += p;
        l.encoders += if p > 2 { 2 } else { 1 };
        cpu += 0.45 + 0.03 * f64::from(p);
    }
    l.cpu = (cpu * 100.0).round() / 100.0;
    let entries = rooms
        .iter()
        .map(|(room, &participants)| RoomEntry {
            room: room.clone(),
            participants,
        })
        .collect();
    (l, entries)
}

/// A simulated node.
struct SimNode {
    id: String,
    dir: Directory,
    state: Mutex<(NodeState, BTreeMap<String, u32>)>,
}

impl SimNode {
    fn entry(&self) -> NodeEntry {
        let (state, rooms) = &*self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (load, rooms) = load(rooms);
        NodeEntry {
            id: self.id.clone(),
            url: format!("http://{}.sim:8080", self.id),
            state: *state,
            load,
            rooms,
            updated_ms: crate::clip::now_ms() as u64,
        }
    }

    fn rooms(&self) -> BTreeMap<String, u32> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    fn add(&self, room: String, participants: u32) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1.insert(room, participants);
    }

    fn remove(&self, room: &str) -> Option<u32> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1.remove(room)
    }

    /// Publishes the entry and renews the leases, as a heartbeat does.
    async fn beat(&self, lease: Duration) -> anyhow::Result<()> {
        let entry = self.entry();
        self.dir.publish(&entry, lease).await?;
        let ids: Vec<String> = entry.rooms.iter().map(|r| r.room.clone()).collect();
        self.dir.renew(&self.id, &ids, lease).await?;
        Ok(())
    }

    fn placer(&self, s: &Settings) -> Placer<'_> {
        Placer {
            id: &self.id,
            state: self.state.lock().unwrap_or_else(|p| p.into_inner()).0,
            lease: Duration::from_millis(s.lease_ms),
            window: Duration::from_millis(s.placement_window_ms),
        }
    }

    /// A join of `room` asked of this node: its read of the nodes and the
    /// placement, timed.
    async fn route(&self, s: &Settings, room: &str) -> anyhow::Result<(Route, f64)> {
        let t = Instant::now();
        let nodes = self.dir.nodes().await?;
        let route = place(&self.dir, &self.placer(s), &nodes, room).await?;
        Ok((route, t.elapsed().as_secs_f64() * 1000.0))
    }
}

/// The cluster: its nodes, by index and by id.
struct Sim {
    nodes: Vec<Arc<SimNode>>,
    by_id: HashMap<String, usize>,
    settings: Settings,
}

/// What placing rooms gave.
#[derive(Default)]
struct Placed {
    first_ms: Vec<f64>,
    second_ms: Vec<f64>,
    redirects: usize,
    misrouted: usize,
    failed: usize,
}

impl Sim {
    /// Places `room` as a join asked of node `asker` would: the room goes
    /// where the directory says, and is asked again there if elsewhere.
    async fn arrive(&self, asker: usize, room: String, people: u32, out: &Mutex<Placed>) {
        let s = &self.settings;
        let note = |f: &dyn Fn(&mut Placed)| f(&mut out.lock().unwrap_or_else(|p| p.into_inner()));
        let (route, ms) = match self.nodes[asker].route(s, &room).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(room, "placement failed: {e:#}");
                note(&|p| p.failed += 1);
                return;
            }
        };
        note(&|p| p.first_ms.push(ms));
        match route {
            Route::Here => self.nodes[asker].add(room, people),
            Route::There { node, .. } => {
                note(&|p| p.redirects += 1);
                let Some(&target) = self.by_id.get(&node) else {
                    note(&|p| p.misrouted += 1);
                    return;
                };
                match self.nodes[target].route(s, &room).await {
                    Ok((Route::Here, ms)) => {
                        note(&|p| p.second_ms.push(ms));
                        self.nodes[target].add(room, people);
                    }
                    _ => note(&|p| p.misrouted += 1),
                }
            }
            Route::Unavailable(why) => {
                tracing::warn!(room, "not placed: {why}");
                note(&|p| p.failed += 1);
            }
        }
    }

    /// The load over the nodes that serve.
    fn evenness(&self) -> Evenness {
        let mut rooms = Vec::new();
        let mut costs = Vec::new();
        for n in &self.nodes {
            let (state, r) = &*n.state.lock().unwrap_or_else(|p| p.into_inner());
            if *state == NodeState::Serving {
                rooms.push(r.len() as f64);
                costs.push(cost(&load(r).0));
            }
        }
        let (rooms_mean, rooms_stddev) = mean_sd(&rooms);
        let (cost_mean, cost_stddev) = mean_sd(&costs);
        let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        Evenness {
            nodes: rooms.len(),
            rooms_min: min(&rooms) as usize,
            rooms_max: max(&rooms) as usize,
            rooms_mean,
            rooms_stddev,
            cost_min: min(&costs),
            cost_max: max(&costs),
            cost_mean,
            cost_stddev,
        }
    }
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
    (mean, var.sqrt())
}

/// Runs the simulation.
pub async fn run(plan: &Plan, sizes: &Sizes) -> anyhow::Result<Simulation> {
    let began = Instant::now();
    let n = sizes.nodes.unwrap_or(50).max(2);
    let total = sizes.rooms.unwrap_or(2000).max(2);
    let settings = Settings::from(&Sizes {
        heartbeat: sizes.heartbeat.or(Some(SIM_HEARTBEAT)),
        ..sizes.clone()
    })?;
    let heartbeat = Duration::from_millis(settings.heartbeat_ms);
    let lease = Duration::from_millis(settings.lease_ms);
    let dir = plan.out.join("cluster-sim");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let redis = RedisServer::start(&dir.join("redis.log")).await?;
    let prefix = format!(
        "sim-{}-{}",
        std::process::id(),
        crate::clip::now_ms() as u64
    );
    let mut nodes = Vec::new();
    for i in 0..n {
        let node = SimNode {
            id: format!("s{i:02}"),
            dir: Directory::new(&redis.url, &prefix)?,
            state: Mutex::new((NodeState::Serving, BTreeMap::new())),
        };
        node.beat(lease).await?;
        nodes.push(Arc::new(node));
    }
    let by_id = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.clone(), i))
        .collect();
    let sim = Arc::new(Sim {
        nodes,
        by_id,
        settings: settings.clone(),
    });
    // Heartbeats, each node's at its own phase.
    let mut random = Random(SEED);
    let mut beats = Vec::new();
    for node in &sim.nodes {
        let node = node.clone();
        let phase = heartbeat.mul_f64(random.below(1000) as f64 / 1000.0);
        beats.push(tokio::spawn(async move {
            tokio::time::sleep(phase).await;
            loop {
                if let Err(e) = node.beat(lease).await {
                    tracing::warn!(node = %node.id, "heartbeat failed: {e:#}");
                }
                tokio::time::sleep(heartbeat).await;
            }
        }));
    }
    let aborts = AbortOnDrop(beats);

    let burst = total / 2;
    let placed = Arc::new(Mutex::new(Placed::default()));
    tracing::info!(
        nodes = n,
        rooms = burst,
        "cluster-sim: a burst of new rooms"
    );
    let in_flight = sizes.burst_in_flight.unwrap_or(BURST_IN_FLIGHT).max(1);
    let gate = Arc::new(Semaphore::new(in_flight));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..burst {
        let (sim, placed, gate) = (sim.clone(), placed.clone(), gate.clone());
        let (asker, people) = (random.below(n), participants(&mut random));
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            sim.arrive(asker, format!("room-{i}"), people, &placed)
                .await;
        }));
    }
    for t in tasks.drain(..) {
        t.await?;
    }
    let burst_per_s = burst as f64 / start.elapsed().as_secs_f64();
    let after_burst = sim.evenness();

    tracing::info!(
        rooms = total - burst,
        per_s = STEADY_PER_S,
        "cluster-sim: steady arrivals"
    );
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / STEADY_PER_S));
    for i in burst..total {
        tick.tick().await;
        let (sim, placed) = (sim.clone(), placed.clone());
        let (asker, people) = (random.below(n), participants(&mut random));
        tasks.push(tokio::spawn(async move {
            sim.arrive(asker, format!("room-{i}"), people, &placed)
                .await;
        }));
    }
    for t in tasks.drain(..) {
        t.await?;
    }
    // Entries and leases a beat or two old, as a live cluster has them.
    tokio::time::sleep(heartbeat * 2).await;
    let after_arrivals = sim.evenness();

    tracing::info!("cluster-sim: draining the node with most rooms");
    let drain = drain(&sim).await?;
    tokio::time::sleep(heartbeat * 2).await;
    let drain = Drain {
        after: sim.evenness(),
        ..drain
    };

    // Every room's lease names the node running it.
    let mut leases_wrong = 0;
    for node in &sim.nodes {
        for room in node.rooms().keys() {
            if node.dir.owner(room).await?.as_deref() != Some(node.id.as_str()) {
                leases_wrong += 1;
            }
        }
    }
    drop(aborts);
    let placed = std::mem::take(&mut *placed.lock().unwrap());
    Ok(Simulation {
        nodes: n,
        rooms: total,
        burst,
        burst_concurrency: in_flight,
        steady_per_s: STEADY_PER_S,
        redis: redis.version.clone(),
        settings,
        placement_ms: Spread::of(&placed.first_ms),
        second_hop_ms: Spread::of(&placed.second_ms),
        burst_per_s,
        redirects: placed.redirects,
        misrouted: placed.misrouted,
        failed: placed.failed,
        after_burst,
        after_arrivals,
        drain,
        leases_wrong,
        seconds: began.elapsed().as_secs_f64(),
    })
}

/// Stops the heartbeats when dropped.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Drains the node with most rooms as the server does once its drain's
/// deadline has passed: it says it drains, then moves each room to the
/// serving node `choose` gives, taking the lease from itself in one step;
/// each room's participant then joins at the new node (all at once, as
/// redirected clients do).
async fn drain(sim: &Arc<Sim>) -> anyhow::Result<Drain> {
    let s = &sim.settings;
    let lease = Duration::from_millis(s.lease_ms);
    let (index, me) = sim
        .nodes
        .iter()
        .enumerate()
        .max_by_key(|(i, n)| (n.rooms().len(), std::cmp::Reverse(*i)))
        .context("no nodes")?;
    let start = Instant::now();
    me.state.lock().unwrap_or_else(|p| p.into_inner()).0 = NodeState::Draining;
    me.beat(lease).await?;
    let nodes = me.dir.nodes().await?;
    let mut placed: HashMap<String, u32> = HashMap::new();
    let mut joins = Vec::new();
    let rooms = me.rooms();
    for (room, people) in &rooms {
        let t = Instant::now();
        let Some(target) = choose(&nodes, &placed, Some(&me.id), room) else {
            bail!("no serving node to take {room}");
        };
        let owner = me.dir.claim(room, &target.id, lease, Some(&me.id)).await?;
        let Some(&to) = sim.by_id.get(&owner) else {
            bail!("{room} is held by {owner}, no node of the simulation");
        };
        *placed.entry(owner).or_insert(0) += 1;
        me.remove(room);
        let (sim, room, people) = (sim.clone(), room.clone(), *people);
        joins.push(tokio::spawn(async move {
            let node = &sim.nodes[to];
            let routed = node.route(&sim.settings, &room).await;
            node.add(room.clone(), people);
            match routed {
                Ok((Route::Here, _)) => Ok(t.elapsed().as_secs_f64() * 1000.0),
                Ok((other, _)) => bail!("{room} moved to {} but routed {other:?}", node.id),
                Err(e) => Err(e),
            }
        }));
    }
    let mut move_ms = Vec::new();
    for j in joins {
        move_ms.push(j.await??);
    }
    let seconds = start.elapsed().as_secs_f64();
    tracing::info!(node = index, rooms = rooms.len(), seconds, "drained");
    Ok(Drain {
        node: me.id.clone(),
        rooms: rooms.len(),
        seconds,
        move_ms: Spread::of(&move_ms),
        targets: placed.len(),
        after: Evenness::default(),
    })
}

/// The simulation's figures as Markdown.
pub fn markdown(r: &Simulation) -> String {
    use std::fmt::Write as _;
    let s = &r.settings;
    let spread = |s: &Option<Spread>| {
        s.map_or_else(|| "–".into(), |s| format!("{:.1} / {:.1}", s.median, s.p95))
    };
    let mut out = format!(
        "\n### Cluster simulation: {} nodes, {} rooms, no media\n\n{}; heartbeat {} ms, lease {} ms, placement window {} ms. {} rooms in a burst ({} placements in flight), then {} at {:.0} per second, each asked of a random node; {:.1} s in all.\n\n",
        r.nodes,
        r.rooms,
        r.redis,
        s.heartbeat_ms,
        s.lease_ms,
        s.placement_window_ms,
        r.burst,
        r.burst_concurrency,
        r.rooms - r.burst,
        r.steady_per_s,
        r.seconds,
    );
    let _ = writeln!(
        out,
        "Placement asked of a node (its read of the nodes and `route::place`): {} ms p50 / p95; at the node a room is sent to {} ms; {:.0} placements per second in the burst. Sent on to another node: {} of {}; misrouted {}, failed {}; leases naming another node at the end {}.\n",
        spread(&r.placement_ms),
        spread(&r.second_hop_ms),
        r.burst_per_s,
        r.redirects,
        r.rooms,
        r.misrouted,
        r.failed,
        r.leases_wrong,
    );
    out.push_str("| when | serving nodes | rooms per node min / max (mean ± sd) | cost() min / max (mean ± sd) |\n|---|---|---|---|\n");
    let d = &r.drain;
    let drained = format!("after draining {} ({} rooms)", d.node, d.rooms);
    for (when, e) in [
        ("after the burst", &r.after_burst),
        ("after every arrival", &r.after_arrivals),
        (drained.as_str(), &d.after),
    ] {
        let _ = writeln!(
            out,
            "| {when} | {} | {} / {} ({:.1} ± {:.1}) | {:.0} / {:.0} ({:.0} ± {:.1}) |",
            e.nodes,
            e.rooms_min,
            e.rooms_max,
            e.rooms_mean,
            e.rooms_stddev,
            e.cost_min,
            e.cost_max,
            e.cost_mean,
            e.cost_stddev,
        );
    }
    let _ = writeln!(
        out,
        "\nThe drain of {} (from its entry saying `draining` to every room joined on its new node): {:.2} s for {} rooms over {} nodes; one room's move {} ms p50 / p95.",
        d.node,
        d.seconds,
        d.rooms,
        d.targets,
        spread(&d.move_ms),
    );
    out
}
