//! HTTP routes: the `/ws` signaling socket, the embedded browser client
//! ([`web`]), health and readiness checks ([`ready`]), `/metrics`, and a
//! read-only status endpoint. Routes only translate; rooms do the work.
//!
//! `/healthz` and `/readyz` are open (orchestrators probe them without
//! credentials; they reveal no room data). `/metrics` carries room and
//! participant ids, so it is guarded like the admin API: `admin.key` as a
//! bearer token, or open on loopback when no key is set.
//!
//! The routes are served by [`accept`]'s loop, plain or over TLS ([`tls`]):
//! it limits connections per address and in all, and closes those that
//! miss the request-head or handshake deadline.

pub mod accept;
pub mod api;
mod cluster_api;
pub mod media_link;
mod origin;
pub mod ready;
mod recordings;
pub mod tls;
mod web;

use std::net::SocketAddr;

use serde::Serialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Reply as _};

use crate::cluster::{Cluster, NodeState};
use crate::room::Registry;
use crate::signaling::limits::IpSlots;
use crate::signaling::session::serve_socket;

/// Largest WebSocket frame the transport reads at all. Messages above
/// `limits.max_message_bytes` but below this get a precise error; above it
/// the connection is dropped before the message is buffered.
const HARD_WS_MESSAGE: usize = 4 * 1024 * 1024;

#[derive(Serialize)]
struct Status {
    rooms: Vec<crate::ids::RoomId>,
    version: &'static str,
}

fn with_registry(
    registry: Registry,
) -> impl Filter<Extract = (Registry,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || registry.clone())
}

fn with_cluster(
    cluster: Option<Cluster>,
) -> impl Filter<Extract = (Option<Cluster>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || cluster.clone())
}

/// All routes of the server.
pub fn routes(
    registry: Registry,
    admin: api::AdminAuth,
    cluster: Option<Cluster>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    let api = cluster_api::routes(registry.clone(), admin.clone(), cluster.clone())
        .or(api::routes(registry.clone(), admin.clone()));
    let metrics = warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .and(api::admin_ctx(registry.clone(), admin.clone()))
        .map(
            |auth: Result<(), api::Reply>, registry: Registry| match auth {
                Ok(()) => warp::reply::with_header(
                    registry.metrics().encode(),
                    "content-type",
                    crate::metrics::CONTENT_TYPE,
                )
                .into_response(),
                Err(e) => e.into_response(),
            },
        );
    let recordings = recordings::routes(registry.clone(), admin);
    let slots = IpSlots::default();
    let ws = warp::path("ws")
        .and(warp::path::end())
        .and(warp::ws())
        .and(warp::addr::remote())
        .and(warp::ext::optional::<tls::ClientAddr>())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("host"))
        .and(with_registry(registry.clone()))
        .and(with_cluster(cluster.clone()))
        .map(
            move |ws: warp::ws::Ws,
                  remote: Option<SocketAddr>,
                  tls_client: Option<tls::ClientAddr>,
                  origin: Option<String>,
                  host: Option<String>,
                  registry: Registry,
                  cluster: Option<Cluster>| {
                let refuse = |status, message: &str| {
                    warp::reply::with_status(warp::reply::json(&json!({ "error": message })), status)
                        .into_response()
                };
                // The cluster's own nodes serve the page a client joins
                // from, then send it to the room's node.
                let from_node = |o: &str| cluster.as_ref().is_some_and(|c| c.knows_origin(o));
                if !origin::origin_allowed(
                    origin.as_deref(),
                    host.as_deref(),
                    registry.allowed_origins(),
                ) && !origin.as_deref().is_some_and(from_node)
                {
                    tracing::info!("WebSocket from a page of another site refused");
                    return refuse(
                        StatusCode::FORBIDDEN,
                        &format!(
                            "pages from {} may not open this server's signaling socket; add the origin to server.allowed_origins",
                            origin.unwrap_or_default()
                        ),
                    );
                }
                let remote = remote.or(tls_client.map(|c| c.0));
                let max = registry.policy().limits.sockets_per_ip;
                let slot = match remote {
                    Some(addr) => match slots.take(addr.ip(), max) {
                        Some(slot) => Some(slot),
                        None => {
                            tracing::debug!(ip = %addr.ip(), "too many sockets from one address");
                            return refuse(
                                StatusCode::TOO_MANY_REQUESTS,
                                &format!("this address already has {max} signaling sockets open (limits.sockets_per_ip)"),
                            );
                        }
                    },
                    None => None,
                };
                ws.max_message_size(HARD_WS_MESSAGE)
                    .max_frame_size(HARD_WS_MESSAGE)
                    .on_upgrade(move |socket| serve_socket(socket, registry, cluster, slot))
                    .into_response()
            },
        );
    let health = warp::path("healthz")
        .and(warp::path::end())
        .and(warp::get())
        .map(|| "ok");
    let ready = warp::path("readyz")
        .and(warp::path::end())
        .and(warp::get())
        .and(with_registry(registry.clone()))
        .and(with_cluster(cluster))
        .then(|registry: Registry, cluster: Option<Cluster>| async move {
            let dir = registry.recordings().store.root().to_path_buf();
            let mut problems = tokio::task::spawn_blocking(move || ready::check(&dir))
                .await
                .unwrap_or_else(|e| {
                    vec![ready::Problem {
                        what: format!("the readiness check failed: {e}"),
                        fix: "see the server log".into(),
                    }]
                });
            if cluster.is_some_and(|c| c.state() == NodeState::Draining) {
                problems.push(ready::draining());
            }
            let (status, body) = ready::report(problems);
            warp::reply::with_status(warp::reply::json(&body), status)
        });
    let status = warp::path!("api" / "status")
        .and(warp::get())
        .and(with_registry(registry))
        .map(|registry: Registry| {
            warp::reply::json(&Status {
                rooms: registry.room_ids(),
                version: env!("CARGO_PKG_VERSION"),
            })
        });
    ws.or(health)
        .or(ready)
        .or(metrics)
        .or(status)
        .or(api)
        .or(recordings)
        .or(web::routes())
}
