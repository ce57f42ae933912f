//! HTTP routes: the `/ws` signaling socket, the embedded browser client
//! ([`web`]), a health check and a read-only status endpoint. Routes only
//! translate; rooms do the work.

pub mod api;
mod recordings;
mod web;

use serde::Serialize;
use warp::Filter;

use crate::room::Registry;
use crate::signaling::session::serve_socket;

/// Largest WebSocket message accepted: an SDP offer is a few KiB; 64 KiB
/// leaves room for big offers while bounding what one socket can make us buffer.
pub const MAX_WS_MESSAGE: usize = 64 * 1024;

#[derive(Serialize)]
struct Status {
    rooms: Vec<String>,
    version: &'static str,
}

fn with_registry(
    registry: Registry,
) -> impl Filter<Extract = (Registry,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || registry.clone())
}

/// All routes of the server.
pub fn routes(
    registry: Registry,
    admin: api::AdminAuth,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    let api = api::routes(registry.clone(), admin.clone());
    let recordings = recordings::routes(registry.clone(), admin);
    let ws = warp::path("ws")
        .and(warp::path::end())
        .and(warp::ws())
        .and(with_registry(registry.clone()))
        .map(|ws: warp::ws::Ws, registry: Registry| {
            ws.max_message_size(MAX_WS_MESSAGE)
                .max_frame_size(MAX_WS_MESSAGE)
                .on_upgrade(move |socket| serve_socket(socket, registry))
        });
    let health = warp::path("healthz")
        .and(warp::path::end())
        .and(warp::get())
        .map(|| "ok");
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
        .or(status)
        .or(api)
        .or(recordings)
        .or(web::routes())
}
