//! More than one node: rooms spread over Tessera nodes that share Redis as
//! their directory (docs/cluster.md). Each room lives on one node, which
//! holds a lease on it; a join that reaches another node is sent to the
//! owner, and a new room goes to the least-loaded serving node.
//!
//! - [`placement`]: node entries, their cost and the choice of a node, as
//!   plain functions;
//! - [`directory`]: the Redis keys and scripts;
//! - [`heartbeat`]: this node's entry and leases, refreshed on a timer;
//! - [`route`]: where a join goes;
//! - [`drain`]: taking no new rooms, then moving the rest away.
//!
//! Without `cluster.redis_url` none of this runs.

pub mod directory;
pub mod drain;
pub mod heartbeat;
pub mod placement;
pub mod route;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::config::ClusterConfig;
use crate::room::Registry;
pub use directory::{Directory, DirectoryError};
pub use placement::{NodeEntry, NodeState};
pub use route::Route;

/// This node's membership of a cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    id: String,
    url: String,
    lease: Duration,
    heartbeat: Duration,
    window: Duration,
    drain: Duration,
    directory: Directory,
    registry: Registry,
    state: Mutex<NodeState>,
    /// The nodes as last read, for origins and the admin view.
    peers: Mutex<Vec<NodeEntry>>,
    /// Whether the last directory call succeeded (for logs on changes).
    reachable: AtomicBool,
    /// Wakes the heartbeat early (a drain began).
    wake: Notify,
    /// Set when the node leaves: the heartbeat stops writing its entry.
    left: AtomicBool,
}

impl Cluster {
    /// Joins the cluster described by `config` as the node reached at
    /// `url`, serving `registry`'s rooms, and starts the heartbeat. `id`
    /// is the node's name (the config's, or one derived by the caller).
    pub fn start(
        config: &ClusterConfig,
        id: String,
        url: String,
        registry: Registry,
    ) -> Result<Cluster, DirectoryError> {
        let directory = Directory::new(&config.redis_url, &config.key_prefix)?;
        let cluster = Cluster {
            inner: Arc::new(Inner {
                id,
                url,
                lease: Duration::from_millis(config.lease_ms),
                heartbeat: Duration::from_millis(config.heartbeat_ms),
                window: Duration::from_millis(config.placement_window_ms),
                drain: Duration::from_secs(config.drain_seconds),
                directory,
                registry,
                state: Mutex::new(NodeState::Serving),
                peers: Mutex::new(Vec::new()),
                reachable: AtomicBool::new(true),
                wake: Notify::new(),
                left: AtomicBool::new(false),
            }),
        };
        tokio::spawn(heartbeat::run(cluster.clone()));
        Ok(cluster)
    }

    /// This node's name.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The address clients reach this node at.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// How long a drain lasts by default (`cluster.drain_seconds`).
    pub fn drain_within(&self) -> Duration {
        self.inner.drain
    }

    /// Serving or draining.
    pub fn state(&self) -> NodeState {
        *self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_state(&self, state: NodeState) {
        *self.inner.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
        self.inner.wake.notify_one();
    }

    /// The directory.
    pub fn directory(&self) -> &Directory {
        &self.inner.directory
    }

    /// The nodes, read from the directory now.
    pub async fn nodes(&self) -> Result<Vec<NodeEntry>, DirectoryError> {
        let nodes = self.observe(self.inner.directory.nodes().await)?;
        *self.inner.peers.lock().unwrap_or_else(|p| p.into_inner()) = nodes.clone();
        Ok(nodes)
    }

    /// True if `origin` is the web origin of a node of the cluster, whose
    /// pages may open this node's signaling socket.
    pub fn knows_origin(&self, origin: &str) -> bool {
        origin == placement::origin_of(&self.inner.url)
            || self
                .inner
                .peers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|n| placement::origin_of(&n.url) == origin)
    }

    /// Leaves the cluster on a clean stop: gives up every lease and the
    /// node's entry, so other nodes take its rooms at once.
    pub async fn leave(&self) {
        self.inner.left.store(true, Ordering::Relaxed);
        self.set_state(NodeState::Draining);
        let dir = &self.inner.directory;
        for room in self.inner.registry.room_ids() {
            let _ = dir.release(room.as_str(), &self.inner.id).await;
        }
        if let Err(e) = dir.withdraw(&self.inner.id).await {
            tracing::warn!(node = %self.inner.id, "could not withdraw from the cluster: {e}");
        }
    }

    /// Logs when the directory becomes unreachable or reachable again.
    fn observe<T>(&self, result: Result<T, DirectoryError>) -> Result<T, DirectoryError> {
        let ok = result.is_ok();
        self.inner.registry.metrics().cluster_directory_up(ok);
        let was = self.inner.reachable.swap(ok, Ordering::Relaxed);
        match (&result, was) {
            (Err(e), true) => tracing::warn!(
                node = %self.inner.id,
                "the cluster directory is unreachable; rooms here go on, joins that need it are refused until it is back: {e}"
            ),
            (Ok(_), false) => {
                tracing::info!(node = %self.inner.id, "the cluster directory is reachable again")
            }
            _ => {}
        }
        result
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The node name used when `cluster.node_id` is empty: the host name and
/// the listen port.
pub fn default_node_id(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    if host.is_empty() {
        format!("node-{port}")
    } else {
        format!("{host}-{port}")
    }
}
