//! `[cluster]`: several Tessera nodes sharing one Redis as their directory
//! (docs/cluster.md). With no `redis_url` the server is a single node and
//! nothing here is used.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[cluster]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Redis holding the nodes and the room leases
    /// (`redis://host:6379/0`, `rediss://` for TLS; also
    /// `TESSERA_CLUSTER__REDIS_URL`). Empty: a single node, no Redis.
    pub redis_url: String,
    /// This node's name in the cluster, unique among the nodes. Empty: the
    /// host name and the listen port (`host-8080`).
    pub node_id: String,
    /// Prefix of every key this cluster writes, so that two clusters (or
    /// test runs) can share one Redis.
    pub key_prefix: String,
    /// On SIGTERM, a node drains this long (no new rooms; running rooms
    /// go on) before it moves the rooms still open to other nodes and
    /// exits. 0: SIGTERM stops the node at once, as on a single node.
    pub drain_seconds: u64,
    /// How often the node refreshes its entry and renews its rooms'
    /// leases, milliseconds.
    pub heartbeat_ms: u64,
    /// How long an entry or a lease outlives its last refresh,
    /// milliseconds: a dead node and its rooms are free again after this.
    pub lease_ms: u64,
    /// A new room placed on a node counts against it this long
    /// (milliseconds), until the node's own figures show it, so that a
    /// burst of new rooms spreads.
    pub placement_window_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: String::new(),
            node_id: String::new(),
            key_prefix: "tessera".into(),
            drain_seconds: 300,
            heartbeat_ms: 2000,
            lease_ms: 6000,
            placement_window_ms: 5000,
        }
    }
}

impl ClusterConfig {
    /// True when the node is part of a cluster.
    pub fn enabled(&self) -> bool {
        !self.redis_url.is_empty()
    }

    /// Checks the URL's scheme, the names and the timings.
    pub(super) fn validate(&self, source_name: &str) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, reason: String| ConfigError::Invalid {
            source_name: source_name.to_string(),
            field,
            reason,
        };
        if self.enabled()
            && !["redis://", "rediss://", "unix://", "redis+unix://"]
                .iter()
                .any(|s| self.redis_url.starts_with(s))
        {
            return Err(invalid(
                "cluster.redis_url",
                format!(
                    "is `{}`; use redis://host:port (rediss:// for TLS), or leave it empty for a single node",
                    self.redis_url
                ),
            ));
        }
        for (field, value) in [
            ("cluster.node_id", &self.node_id),
            ("cluster.key_prefix", &self.key_prefix),
        ] {
            if !value.chars().all(name_char) || value.len() > 64 {
                return Err(invalid(
                    field,
                    format!("is `{value}`; use up to 64 letters, digits, `-`, `_` and `.`"),
                ));
            }
        }
        if self.key_prefix.is_empty() {
            return Err(invalid(
                "cluster.key_prefix",
                "is empty; use a name such as `tessera`".into(),
            ));
        }
        if !(200..=60_000).contains(&self.heartbeat_ms) {
            return Err(invalid(
                "cluster.heartbeat_ms",
                format!(
                    "is {}; use 200 to 60000 (2000 by default)",
                    self.heartbeat_ms
                ),
            ));
        }
        if self.lease_ms < 2 * self.heartbeat_ms || self.lease_ms > 600_000 {
            return Err(invalid(
                "cluster.lease_ms",
                format!(
                    "is {} with cluster.heartbeat_ms {}; use at least twice the heartbeat (and at most 600000), so one late refresh does not lose a room",
                    self.lease_ms, self.heartbeat_ms
                ),
            ));
        }
        if self.drain_seconds > 86_400 {
            return Err(invalid(
                "cluster.drain_seconds",
                format!("is {}; use 0 to 86400", self.drain_seconds),
            ));
        }
        if self.placement_window_ms > 600_000 {
            return Err(invalid(
                "cluster.placement_window_ms",
                format!("is {}; use 0 to 600000", self.placement_window_ms),
            ));
        }
        Ok(())
    }
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_node_needs_nothing_and_bad_values_name_the_field() {
        let c = ClusterConfig::default();
        assert!(!c.enabled());
        c.validate("x").unwrap();
        let bad = |c: ClusterConfig| c.validate("f.toml").unwrap_err().to_string();
        let e = bad(ClusterConfig {
            redis_url: "localhost:6379".into(),
            ..Default::default()
        });
        assert!(
            e.contains("`cluster.redis_url`") && e.contains("redis://"),
            "{e}"
        );
        let e = bad(ClusterConfig {
            node_id: "a b".into(),
            ..Default::default()
        });
        assert!(e.contains("`cluster.node_id`"), "{e}");
        let e = bad(ClusterConfig {
            lease_ms: 3000,
            ..Default::default()
        });
        assert!(
            e.contains("`cluster.lease_ms`") && e.contains("twice"),
            "{e}"
        );
        ClusterConfig {
            redis_url: "redis://127.0.0.1:6379".into(),
            node_id: "node-1".into(),
            ..Default::default()
        }
        .validate("x")
        .unwrap();
    }
}
