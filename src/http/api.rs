//! The admin HTTP API (JSON): layouts, and a room's layout and pin.
//!
//! Auth: `Authorization: Bearer <admin.key>`, compared in constant time.
//! With no key configured the API is open, but only while the server
//! listens on loopback.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;
use warp::http::StatusCode;
use warp::reply::{Json, WithStatus};
use warp::Filter;

use crate::room::{Registry, RoomCommand};

/// Who may call the admin API.
#[derive(Debug, Clone)]
pub struct AdminAuth {
    key: Option<Arc<String>>,
    loopback: bool,
}

impl AdminAuth {
    /// `key` empty: open on loopback only.
    pub fn new(key: &str, loopback: bool) -> AdminAuth {
        AdminAuth {
            key: (!key.is_empty()).then(|| Arc::new(key.to_string())),
            loopback,
        }
    }

    /// Checks an `Authorization` header value.
    pub fn check(&self, header: Option<&str>) -> Result<(), Reply> {
        match &self.key {
            None if self.loopback => Ok(()),
            None => Err(reply_error(
                StatusCode::FORBIDDEN,
                "the admin API is off: this server listens beyond loopback and admin.key (or TESSERA_ADMIN_KEY) is not set",
            )),
            Some(key) => {
                let given = header.and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("");
                if bool::from(given.as_bytes().ct_eq(key.as_bytes())) {
                    Ok(())
                } else {
                    Err(reply_error(
                        StatusCode::UNAUTHORIZED,
                        "missing or wrong admin key: send Authorization: Bearer <admin.key>",
                    ))
                }
            }
        }
    }
}

pub(super) type Reply = WithStatus<Json>;

pub(super) fn reply_error(status: StatusCode, message: &str) -> Reply {
    warp::reply::with_status(warp::reply::json(&json!({ "error": message })), status)
}

pub(super) fn ok(value: serde_json::Value) -> Reply {
    warp::reply::with_status(warp::reply::json(&value), StatusCode::OK)
}

#[derive(Serialize)]
struct LayoutInfo {
    name: String,
    description: Option<String>,
    error: Option<String>,
}

fn layout_infos(registry: &Registry) -> Vec<LayoutInfo> {
    let lib = registry.layouts().library();
    let mut out: Vec<LayoutInfo> = lib
        .names()
        .into_iter()
        .map(|name| LayoutInfo {
            description: lib.get(&name).map(|l| l.description.clone()),
            error: lib.errors().get(&name).map(|e| e.to_string()),
            name,
        })
        .collect();
    for (name, e) in lib.errors() {
        if !out.iter().any(|i| &i.name == name) {
            out.push(LayoutInfo {
                name: name.clone(),
                description: None,
                error: Some(e.to_string()),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetLayout {
    layout: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pin {
    participant: Option<String>,
}

async fn room_snapshot(
    registry: &Registry,
    room: &str,
) -> Result<crate::room::RoomSnapshot, Reply> {
    let not_found = || {
        reply_error(
            StatusCode::NOT_FOUND,
            &format!("no room {room} in progress"),
        )
    };
    let handle = registry.get(room).ok_or_else(not_found)?;
    let (tx, rx) = oneshot::channel();
    handle
        .send(RoomCommand::Inspect { reply: tx })
        .map_err(|_| not_found())?;
    rx.await.map_err(|_| not_found())
}

async fn room_command(
    registry: &Registry,
    room: &str,
    make: impl FnOnce(oneshot::Sender<Result<(), String>>) -> RoomCommand,
) -> Reply {
    let Some(handle) = registry.get(room) else {
        return reply_error(
            StatusCode::NOT_FOUND,
            &format!("no room {room} in progress"),
        );
    };
    let (tx, rx) = oneshot::channel();
    if handle.send(make(tx)).is_err() {
        return reply_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("room {room} is busy or closing"),
        );
    }
    match rx.await {
        Ok(Ok(())) => match room_snapshot(registry, room).await {
            Ok(s) => ok(json!({ "room": s.room, "layout": s.layout, "pinned": s.pinned })),
            Err(e) => e,
        },
        Ok(Err(message)) => reply_error(StatusCode::NOT_FOUND, &message),
        Err(_) => reply_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("room {room} closed"),
        ),
    }
}

/// A small JSON request body of type `T`.
fn json_body<T: serde::de::DeserializeOwned + Send>(
) -> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(4096).and(warp::body::json())
}

/// The outcome of the admin check, and the registry, for every admin route.
pub(super) fn admin_ctx(
    registry: Registry,
    auth: AdminAuth,
) -> impl Filter<Extract = (Result<(), Reply>, Registry), Error = warp::Rejection> + Clone {
    warp::any()
        .and(warp::header::optional::<String>("authorization"))
        .and_then(move |h: Option<String>| {
            let auth = auth.clone();
            async move { Ok::<_, warp::Rejection>(auth.check(h.as_deref())) }
        })
        .and(warp::any().map(move || registry.clone()))
}

/// The admin routes under `/api`.
pub fn routes(
    registry: Registry,
    auth: AdminAuth,
) -> impl Filter<Extract = (Reply,), Error = warp::Rejection> + Clone {
    let ctx = admin_ctx(registry, auth);

    let list = warp::path!("api" / "layouts")
        .and(warp::get())
        .and(ctx.clone())
        .map(|auth: Result<(), Reply>, registry: Registry| match auth {
            Ok(()) => ok(json!(layout_infos(&registry))),
            Err(e) => e,
        });
    let one = warp::path!("api" / "layouts" / String)
        .and(warp::get())
        .and(ctx.clone())
        .map(
            |name: String, auth: Result<(), Reply>, registry: Registry| {
                if let Err(e) = auth {
                    return e;
                }
                match layout_infos(&registry).into_iter().find(|i| i.name == name) {
                    Some(info) => ok(json!(info)),
                    None => reply_error(StatusCode::NOT_FOUND, &format!("no layout named {name}")),
                }
            },
        );
    let room = warp::path!("api" / "rooms" / String)
        .and(warp::get())
        .and(ctx.clone())
        .then(
            |room: String, auth: Result<(), Reply>, registry: Registry| async move {
                if let Err(e) = auth {
                    return e;
                }
                match room_snapshot(&registry, &room).await {
                    Ok(s) => ok(json!({
                        "room": s.room,
                        "layout": s.layout,
                        "pinned": s.pinned,
                        "speaker": s.speaker,
                        "canvas": { "width": s.canvas.width, "height": s.canvas.height, "framerate": s.framerate },
                        "participants": s.participants.iter().map(|p| {
                            let tile = s.tiles.iter().find(|(id, _)| *id == p.id).map(|(_, r)| *r);
                            let mut v = json!(p);
                            v["tile"] = json!(tile);
                            v
                        }).collect::<Vec<_>>(),
                        "encoders": s.encoders,
                        "talking": s.talking,
                    })),
                    Err(e) => e,
                }
            },
        );
    let set_layout = warp::path!("api" / "rooms" / String / "layout")
        .and(warp::put())
        .and(ctx.clone())
        .and(json_body::<SetLayout>())
        .then(
            |room: String, auth: Result<(), Reply>, registry: Registry, req: SetLayout| async move {
                if let Err(e) = auth {
                    return e;
                }
                let Some(layout) = registry.layouts().get(&req.layout) else {
                    return reply_error(
                        StatusCode::NOT_FOUND,
                        &format!("no layout named {}", req.layout),
                    );
                };
                room_command(&registry, &room, |reply| RoomCommand::SetLayout {
                    name: req.layout,
                    layout,
                    by: None,
                    reply: Some(reply),
                })
                .await
            },
        );
    let pin = warp::path!("api" / "rooms" / String / "pin")
        .and(warp::put())
        .and(ctx)
        .and(json_body::<Pin>())
        .then(
            |room: String, auth: Result<(), Reply>, registry: Registry, req: Pin| async move {
                if let Err(e) = auth {
                    return e;
                }
                room_command(&registry, &room, |reply| RoomCommand::Pin {
                    participant: req.participant,
                    by: None,
                    reply: Some(reply),
                })
                .await
            },
        );
    list.or(one)
        .unify()
        .or(room)
        .unify()
        .or(set_layout)
        .unify()
        .or(pin)
        .unify()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_rules() {
        assert!(AdminAuth::new("", true).check(None).is_ok());
        assert!(AdminAuth::new("", false).check(Some("Bearer x")).is_err());
        let keyed = AdminAuth::new("s3cret-admin-key", false);
        assert!(keyed.check(Some("Bearer s3cret-admin-key")).is_ok());
        assert!(keyed.check(Some("Bearer s3cret-admin-kez")).is_err());
        assert!(keyed.check(Some("s3cret-admin-key")).is_err());
        assert!(keyed.check(None).is_err());
    }
}
