//! The cluster's directory in Redis: node entries under a TTL, room leases,
//! recent placements and hand-overs. Every call is bounded in time, and the
//! connection manager reconnects by itself after Redis went away.
//!
//! Keys, under the configured prefix `p`:
//! - `p:nodes`: the set of node ids that have registered;
//! - `p:node:<id>`: the node's entry (JSON), expiring after the lease;
//! - `p:room:<room>`: the id of the node that owns the room, expiring after
//!   the lease unless renewed;
//! - `p:placed:<id>`: rooms placed on a node recently (sorted by time);
//! - `p:handoff:<room>`: what a moved room was doing (JSON), for its new node.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands as _;

use super::placement::NodeEntry;

/// The longest one directory call may take.
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);

/// A directory call that failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// Redis answered with an error, or could not be reached.
    #[error("Redis (cluster.redis_url) failed: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer in time.
    #[error("Redis (cluster.redis_url) did not answer within {} ms", CALL_TIMEOUT.as_millis())]
    Timeout,
    /// A node entry that is not ours to read.
    #[error("node entry {key} is not valid JSON: {error}")]
    BadEntry {
        /// The key.
        key: String,
        /// The parse error.
        error: String,
    },
}

/// Claims a room for a node unless another live owner holds it: sets the
/// key when it is free or held by `dead` (ARGV[3], may be empty), and
/// answers the owner.
const CLAIM: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner == false or (ARGV[3] ~= '' and owner == ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return owner
";

/// Renews a lease held by ARGV[1], or takes it again when it lapsed (after
/// Redis restarted, say); answers the owner.
const RENEW: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return owner
";

/// Deletes a lease only if ARGV[1] holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The directory of one cluster.
#[derive(Clone)]
pub struct Directory {
    redis: ConnectionManager,
    prefix: String,
    claim: redis::Script,
    renew: redis::Script,
    release: redis::Script,
}

impl Directory {
    /// A directory at `url` with keys under `prefix`. Connects lazily: a
    /// node starts while Redis is down, and its calls fail until it is up.
    pub fn new(url: &str, prefix: &str) -> Result<Directory, DirectoryError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(1000)))
            .set_response_timeout(Some(Duration::from_millis(1000)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let redis = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Directory {
            redis,
            prefix: prefix.to_string(),
            claim: redis::Script::new(CLAIM),
            renew: redis::Script::new(RENEW),
            release: redis::Script::new(RELEASE),
        })
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}:{name}", self.prefix)
    }

    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// Writes this node's entry for `lease`.
    pub async fn publish(&self, entry: &NodeEntry, lease: Duration) -> Result<(), DirectoryError> {
        let json = serde_json::to_string(entry).unwrap_or_default();
        let key = self.key("node", &entry.id);
        let nodes = self.nodes_key();
        let mut con = self.redis.clone();
        bounded(async move {
            redis::pipe()
                .set_options(
                    &key,
                    json,
                    redis::SetOptions::default()
                        .with_expiration(redis::SetExpiry::PX(lease.as_millis() as u64)),
                )
                .ignore()
                .sadd(&nodes, &entry.id)
                .ignore()
                .query_async::<()>(&mut con)
                .await
        })
        .await
    }

    /// Removes this node's entry (on a clean stop).
    pub async fn withdraw(&self, id: &str) -> Result<(), DirectoryError> {
        let key = self.key("node", id);
        let nodes = self.nodes_key();
        let mut con = self.redis.clone();
        bounded(async move {
            redis::pipe()
                .del(&key)
                .ignore()
                .srem(&nodes, id)
                .ignore()
                .query_async::<()>(&mut con)
                .await
        })
        .await
    }

    /// The live nodes, sorted by id; ids whose entry expired are forgotten.
    pub async fn nodes(&self) -> Result<Vec<NodeEntry>, DirectoryError> {
        let mut con = self.redis.clone();
        let ids: Vec<String> = bounded(con.smembers(self.nodes_key())).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.key("node", id)).collect();
        let values: Vec<Option<String>> =
            bounded(redis::cmd("MGET").arg(&keys).query_async(&mut con)).await?;
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for ((id, key), value) in ids.iter().zip(&keys).zip(values) {
            match value {
                Some(json) => out.push(serde_json::from_str::<NodeEntry>(&json).map_err(|e| {
                    DirectoryError::BadEntry {
                        key: key.clone(),
                        error: e.to_string(),
                    }
                })?),
                None => gone.push(id.clone()),
            }
        }
        if !gone.is_empty() {
            let _: Result<(), _> = bounded(con.srem(self.nodes_key(), gone)).await;
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The node that owns `room`, if any.
    pub async fn owner(&self, room: &str) -> Result<Option<String>, DirectoryError> {
        let mut con = self.redis.clone();
        bounded(con.get(self.key("room", room))).await
    }

    /// Claims `room` for `node` for `lease` unless a live owner holds it
    /// (`dead` is an owner known to be gone, whose lease may be taken);
    /// answers the owner after the call.
    pub async fn claim(
        &self,
        room: &str,
        node: &str,
        lease: Duration,
        dead: Option<&str>,
    ) -> Result<String, DirectoryError> {
        let mut con = self.redis.clone();
        let mut call = self.claim.key(self.key("room", room));
        call.arg(node)
            .arg(lease.as_millis() as u64)
            .arg(dead.unwrap_or(""));
        bounded(call.invoke_async(&mut con)).await
    }

    /// Renews (or takes again) `node`'s leases on `rooms`; answers, for
    /// each room held by another node meanwhile, that node.
    pub async fn renew(
        &self,
        node: &str,
        rooms: &[String],
        lease: Duration,
    ) -> Result<Vec<(String, String)>, DirectoryError> {
        let mut con = self.redis.clone();
        let mut conflicts = Vec::new();
        for room in rooms {
            let mut call = self.renew.key(self.key("room", room));
            call.arg(node).arg(lease.as_millis() as u64);
            let owner: String = bounded(call.invoke_async(&mut con)).await?;
            if owner != node {
                conflicts.push((room.clone(), owner));
            }
        }
        Ok(conflicts)
    }

    /// Gives up `node`'s lease on `room`, if it still holds it.
    pub async fn release(&self, room: &str, node: &str) -> Result<(), DirectoryError> {
        let mut con = self.redis.clone();
        let mut call = self.release.key(self.key("room", room));
        call.arg(node);
        bounded(call.invoke_async::<i64>(&mut con))
            .await
            .map(|_| ())
    }

    /// Notes that `room` was placed on `node` at `now_ms`.
    pub async fn placed(&self, node: &str, room: &str, now_ms: u64) -> Result<(), DirectoryError> {
        let mut con = self.redis.clone();
        let key = self.key("placed", node);
        bounded(async move {
            redis::pipe()
                .zadd(&key, room, now_ms)
                .ignore()
                .pexpire(&key, 600_000)
                .ignore()
                .query_async::<()>(&mut con)
                .await
        })
        .await
    }

    /// Rooms placed on each node since the given time (node id, ms), and
    /// forgets placements before `forget_ms`.
    pub async fn recent(
        &self,
        nodes: &[(String, u64)],
        forget_ms: u64,
    ) -> Result<HashMap<String, u32>, DirectoryError> {
        if nodes.is_empty() {
            return Ok(HashMap::new());
        }
        let mut pipe = redis::pipe();
        for (id, since) in nodes {
            let key = self.key("placed", id);
            pipe.zrembyscore(&key, "-inf", format!("({forget_ms}"))
                .ignore()
                .zcount(&key, format!("({since}"), "+inf");
        }
        let mut con = self.redis.clone();
        let counts: Vec<u32> = bounded(pipe.query_async(&mut con)).await?;
        Ok(nodes.iter().map(|(id, _)| id.clone()).zip(counts).collect())
    }

    /// Leaves what a moved room was doing for the node that takes it.
    pub async fn hand_over(&self, room: &str, what: &str) -> Result<(), DirectoryError> {
        let mut con = self.redis.clone();
        bounded(con.set_ex(self.key("handoff", room), what, 120)).await
    }

    /// Takes what a moved room was doing, once.
    pub async fn take_handoff(&self, room: &str) -> Result<Option<String>, DirectoryError> {
        let mut con = self.redis.clone();
        bounded(con.get_del(self.key("handoff", room))).await
    }
}

/// Runs one call within [`CALL_TIMEOUT`].
async fn bounded<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, DirectoryError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(DirectoryError::Timeout),
    }
}
