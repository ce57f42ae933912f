//! The cluster's admin routes: `GET /api/nodes` (every node with its state
//! and load), `GET /api/rooms?scope=cluster` (every room with its node),
//! and `POST /api/node/drain` (this node takes no new rooms and moves the
//! rest away at the deadline; `?seconds=N` overrides
//! `cluster.drain_seconds`). Guarded like the rest of the admin API.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::Filter;

use super::api::{admin_ctx, ok, reply_error, AdminAuth, Reply};
use crate::cluster::{Cluster, NodeEntry};
use crate::room::Registry;

#[derive(Deserialize)]
struct Scope {
    scope: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Drain {
    seconds: Option<u64>,
}

fn not_clustered() -> Reply {
    reply_error(
        StatusCode::CONFLICT,
        "this node is not in a cluster (cluster.redis_url is empty): GET /api/rooms lists its rooms, and SIGTERM stops it",
    )
}

/// The cluster routes; answer 409 on a single node.
pub fn routes(
    registry: Registry,
    auth: AdminAuth,
    cluster: Option<Cluster>,
) -> impl Filter<Extract = (Reply,), Error = warp::Rejection> + Clone {
    let ctx = admin_ctx(registry, auth)
        .map(|auth, _registry: Registry| auth)
        .and(warp::any().map(move || cluster.clone()));
    let nodes = warp::path!("api" / "nodes")
        .and(warp::get())
        .and(ctx.clone())
        .then(
            |auth: Result<(), Reply>, cluster: Option<Cluster>| async move {
                auth?;
                let cluster = cluster.ok_or_else(not_clustered)?;
                let nodes = cluster.nodes().await.map_err(unreachable)?;
                Ok(ok(json!({ "node": cluster.id(), "nodes": nodes })))
            },
        )
        .map(flatten);
    let rooms = warp::path!("api" / "rooms")
        .and(warp::get())
        .and(warp::query::<Scope>())
        .and(ctx.clone())
        .then(
            |scope: Scope, auth: Result<(), Reply>, cluster: Option<Cluster>| async move {
                auth?;
                if scope.scope != "cluster" {
                    return Err(reply_error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "scope={} is not known: use scope=cluster for every node's rooms, or no scope for this node's",
                            scope.scope
                        ),
                    ));
                }
                let cluster = cluster.ok_or_else(not_clustered)?;
                let nodes = cluster.nodes().await.map_err(unreachable)?;
                Ok(ok(json!(all_rooms(&nodes))))
            },
        )
        .map(flatten);
    let drain = warp::path!("api" / "node" / "drain")
        .and(warp::post())
        .and(warp::query::<Drain>())
        .and(ctx)
        .map(
            |drain: Drain, auth: Result<(), Reply>, cluster: Option<Cluster>| {
                auth?;
                let cluster = cluster.ok_or_else(not_clustered)?;
                let within = drain
                    .seconds
                    .map(Duration::from_secs)
                    .unwrap_or(cluster.drain_within());
                let started = cluster.start_drain(within);
                Ok(warp::reply::with_status(
                    warp::reply::json(&json!({
                        "node": cluster.id(),
                        "state": "draining",
                        "started": started,
                        "seconds": within.as_secs(),
                    })),
                    StatusCode::ACCEPTED,
                ))
            },
        )
        .map(flatten);
    nodes.or(rooms).unify().or(drain).unify()
}

fn flatten(r: Result<Reply, Reply>) -> Reply {
    r.unwrap_or_else(|e| e)
}

fn unreachable(e: crate::cluster::DirectoryError) -> Reply {
    reply_error(
        StatusCode::SERVICE_UNAVAILABLE,
        &format!("the cluster directory cannot be read: {e}"),
    )
}

/// Every room of every node, sorted by room.
fn all_rooms(nodes: &[NodeEntry]) -> Vec<serde_json::Value> {
    let mut rooms: Vec<_> = nodes
        .iter()
        .flat_map(|n| {
            n.rooms.iter().map(move |r| {
                json!({ "room": r.room, "node": n.id, "url": n.url, "participants": r.participants })
            })
        })
        .collect();
    rooms.sort_by(|a, b| a["room"].as_str().cmp(&b["room"].as_str()));
    rooms
}
