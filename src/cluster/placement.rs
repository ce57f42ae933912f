//! Where a new room goes, as plain functions: the nodes' entries as the
//! directory holds them, what a node costs, and the choice of the
//! least-loaded serving node with a penalty for rooms placed on it in the
//! last few seconds (which its own figures do not show yet).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Whether a node takes new rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Takes new rooms.
    Serving,
    /// Takes no new rooms; its rooms go on until they end or move.
    Draining,
}

impl NodeState {
    /// The word used in the directory, the API and `/readyz`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Serving => "serving",
            NodeState::Draining => "draining",
        }
    }
}

/// What a node is running.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// Rooms open.
    pub rooms: u32,
    /// Participants in them.
    pub participants: u32,
    /// Participants whose media the node decodes.
    pub decoders: u32,
    /// Canvas encoders running (per family and tier).
    pub encoders: u32,
    /// Process CPU over the last heartbeat, in cores.
    pub cpu: f64,
}

/// One room in a node's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomEntry {
    /// Room id.
    pub room: String,
    /// Participants in it.
    pub participants: u32,
}

/// A node as the directory holds it (refreshed every heartbeat).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// The node's name.
    pub id: String,
    /// The address clients reach it at (`http://node-b:8080`).
    pub url: String,
    /// Serving or draining.
    pub state: NodeState,
    /// What it runs.
    pub load: Load,
    /// Its rooms.
    pub rooms: Vec<RoomEntry>,
    /// When it wrote this, milliseconds since the Unix epoch.
    pub updated_ms: u64,
}

/// What running `load` costs, in room-equivalents: a room is a
/// compositor and a mix; each participant one decode and one send; each
/// encoder a whole canvas encode; a busy core weighs most.
pub fn cost(load: &Load) -> f64 {
    2.0 * f64::from(load.rooms)
        + f64::from(load.participants)
        + f64::from(load.decoders)
        + 2.0 * f64::from(load.encoders)
        + 10.0 * load.cpu
}

/// The least one room placed in the last window counts for until the
/// node's figures show it.
pub const RECENT_PLACEMENT_COST: f64 = 3.0;

/// What one room placed in the last window counts for until the node's
/// figures show it: what a room costs on average across the serving nodes
/// (so a placement weighs about what the room will), at least
/// [`RECENT_PLACEMENT_COST`].
pub fn placement_cost(nodes: &[NodeEntry]) -> f64 {
    let serving = nodes.iter().filter(|n| n.state == NodeState::Serving);
    let (total, rooms) = serving.fold((0.0, 0u32), |(c, r), n| {
        (c + cost(&n.load), r + n.load.rooms)
    });
    if rooms == 0 {
        RECENT_PLACEMENT_COST
    } else {
        (total / f64::from(rooms)).max(RECENT_PLACEMENT_COST)
    }
}

/// The serving node, other than `except`, for new room `room`: among the
/// nodes within one placement's cost ([`placement_cost`]) of the least
/// (with `recent` placements per node id added at that cost), the one
/// with the fewest recent placements, then the one `room` hashes highest
/// with ([`affinity`]). Every node asked about one room chooses alike;
/// rooms placed at the same moment on the same figures spread over the
/// nodes that are nearly as cheap instead of piling onto the cheapest.
pub fn choose<'a>(
    nodes: &'a [NodeEntry],
    recent: &HashMap<String, u32>,
    except: Option<&str>,
    room: &str,
) -> Option<&'a NodeEntry> {
    let per_room = placement_cost(nodes);
    let recent_of = |n: &NodeEntry| recent.get(&n.id).copied().unwrap_or(0);
    let total = |n: &NodeEntry| cost(&n.load) + per_room * f64::from(recent_of(n));
    let serving = || {
        nodes
            .iter()
            .filter(|n| n.state == NodeState::Serving && Some(n.id.as_str()) != except)
    };
    let least = serving().map(total).min_by(f64::total_cmp)?;
    serving()
        .filter(|n| total(n) < least + per_room)
        .min_by(|a, b| {
            recent_of(a)
                .cmp(&recent_of(b))
                .then_with(|| affinity(room, &b.id).cmp(&affinity(room, &a.id)))
                .then_with(|| a.id.cmp(&b.id))
        })
}

/// How strongly `room` prefers node `node` (rendezvous hashing): the same
/// on every node and in every release, and unrelated between rooms.
pub fn affinity(room: &str, node: &str) -> u64 {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(room.as_bytes());
    h.update([0]);
    h.update(node.as_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("a SHA-1 digest has 20 bytes"))
}

/// The signaling socket of the node whose public address is `url`:
/// `http://h:8080` gives `ws://h:8080/ws`, `https://h/` gives `wss://h/ws`.
pub fn signaling_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}/ws")
    } else if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}/ws")
    } else {
        format!("ws://{url}/ws")
    }
}

/// The web origin of the node whose public address is `url`
/// (`http://h:8080/x` gives `http://h:8080`), for the signaling socket's
/// origin check.
pub fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, rooms: u32, participants: u32, state: NodeState) -> NodeEntry {
        NodeEntry {
            id: id.into(),
            url: format!("http://{id}:8080"),
            state,
            load: Load {
                rooms,
                participants,
                decoders: participants,
                encoders: rooms,
                cpu: 0.0,
            },
            rooms: Vec::new(),
            updated_ms: 0,
        }
    }

    #[test]
    fn the_least_loaded_serving_node_is_chosen() {
        let nodes = vec![
            node("a", 3, 12, NodeState::Serving),
            node("b", 1, 2, NodeState::Serving),
            node("c", 0, 0, NodeState::Draining),
        ];
        let none = HashMap::new();
        assert_eq!(choose(&nodes, &none, None, "r").unwrap().id, "b");
        assert_eq!(choose(&nodes, &none, Some("b"), "r").unwrap().id, "a");
        assert!(
            choose(&nodes[2..], &none, None, "r").is_none(),
            "draining takes nothing"
        );
    }

    #[test]
    fn a_burst_of_new_rooms_spreads_over_equal_nodes() {
        let nodes: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|id| node(id, 0, 0, NodeState::Serving))
            .collect();
        let mut recent = HashMap::new();
        for i in 0..30 {
            let id = choose(&nodes, &recent, None, &format!("class-{i}"))
                .unwrap()
                .id
                .clone();
            *recent.entry(id).or_insert(0) += 1;
        }
        for id in ["a", "b", "c"] {
            assert_eq!(recent[id], 10, "{recent:?}");
        }
    }

    #[test]
    fn recent_placements_count_until_the_figures_show_them() {
        let nodes = vec![
            node("a", 1, 1, NodeState::Serving),
            node("b", 0, 0, NodeState::Serving),
        ];
        let recent = HashMap::from([("b".to_string(), 2)]);
        // a: 2 + 1 + 1 + 2 = 6, its one room's cost; b: two recent rooms
        // at that cost each, 12.
        assert_eq!(choose(&nodes, &recent, None, "r").unwrap().id, "a");
    }

    #[test]
    fn rooms_placed_on_the_same_figures_spread_over_the_nearly_cheapest() {
        // What nodes placing rooms at the same moment see: the same loads
        // and no placement of each other's yet.
        let mut nodes: Vec<_> = (0..10)
            .map(|i| node(&format!("n{i}"), 4, 8, NodeState::Serving))
            .collect();
        nodes[9] = node("n9", 9, 30, NodeState::Serving);
        let none = HashMap::new();
        let mut per_node: HashMap<String, u32> = HashMap::new();
        for i in 0..90 {
            let id = &choose(&nodes, &none, None, &format!("class-{i}"))
                .unwrap()
                .id;
            *per_node.entry(id.clone()).or_insert(0) += 1;
        }
        assert!(!per_node.contains_key("n9"), "the busy node: {per_node:?}");
        assert_eq!(per_node.len(), 9, "{per_node:?}");
        // 10 each on average, as hashing spreads them; none takes a quarter.
        assert!(
            per_node.values().all(|&n| (1..=22).contains(&n)),
            "{per_node:?}"
        );
        // One room is placed alike whichever node is asked.
        assert_eq!(
            choose(&nodes, &none, None, "maths").unwrap().id,
            choose(&nodes, &none, None, "maths").unwrap().id
        );
    }

    #[test]
    fn a_recent_placement_weighs_what_a_room_costs_on_average() {
        // Rooms of six: 2 + 6 + 6 + 2 = 16 each.
        let nodes = vec![
            node("a", 2, 12, NodeState::Serving),
            node("b", 3, 18, NodeState::Serving),
            node("c", 0, 0, NodeState::Draining),
        ];
        assert_eq!(placement_cost(&nodes), 16.0);
        assert_eq!(placement_cost(&nodes[2..]), RECENT_PLACEMENT_COST);
        // a (32) with two rooms just placed counts 64: b (48) is cheaper.
        let recent = HashMap::from([("a".to_string(), 2)]);
        assert_eq!(choose(&nodes, &recent, None, "r").unwrap().id, "b");
    }

    #[test]
    fn a_node_well_above_the_least_is_not_chosen() {
        let nodes = vec![
            node("a", 0, 0, NodeState::Serving),
            node("b", 1, 0, NodeState::Serving),
        ];
        let none = HashMap::new();
        // b costs 2 + 2 (its encoder) = 4 more than a, a whole room's
        // cost: never a candidate.
        for i in 0..20 {
            assert_eq!(
                choose(&nodes, &none, None, &format!("r{i}")).unwrap().id,
                "a"
            );
        }
    }

    #[test]
    fn urls_for_the_socket_and_the_origin() {
        assert_eq!(signaling_url("http://h:8080"), "ws://h:8080/ws");
        assert_eq!(
            signaling_url("https://school.example/"),
            "wss://school.example/ws"
        );
        assert_eq!(origin_of("http://h:8080/x/y"), "http://h:8080");
        assert_eq!(origin_of("https://h"), "https://h");
    }
}
