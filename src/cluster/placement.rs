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

/// What one room placed in the last window counts for until the node's
/// figures show it.
pub const RECENT_PLACEMENT_COST: f64 = 3.0;

/// The serving node, other than `except`, that costs least with `recent`
/// placements (per node id) added; ties go to the fewer recent
/// placements, then to the smaller id, so every node chooses alike.
pub fn choose<'a>(
    nodes: &'a [NodeEntry],
    recent: &HashMap<String, u32>,
    except: Option<&str>,
) -> Option<&'a NodeEntry> {
    let total = |n: &NodeEntry| {
        let r = recent.get(&n.id).copied().unwrap_or(0);
        (cost(&n.load) + RECENT_PLACEMENT_COST * f64::from(r), r)
    };
    nodes
        .iter()
        .filter(|n| n.state == NodeState::Serving && Some(n.id.as_str()) != except)
        .min_by(|a, b| {
            let (ca, ra) = total(a);
            let (cb, rb) = total(b);
            ca.total_cmp(&cb)
                .then(ra.cmp(&rb))
                .then_with(|| a.id.cmp(&b.id))
        })
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
        assert_eq!(choose(&nodes, &none, None).unwrap().id, "b");
        assert_eq!(choose(&nodes, &none, Some("b")).unwrap().id, "a");
        assert!(
            choose(&nodes[2..], &none, None).is_none(),
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
        for _ in 0..30 {
            let id = choose(&nodes, &recent, None).unwrap().id.clone();
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
        // b: 6 from two recent rooms; a: 2 + 1 + 1 + 2 = 6; a tie goes to
        // the fewer recent placements.
        assert_eq!(choose(&nodes, &recent, None).unwrap().id, "a");
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
