//! The recordings API (admin key as for the rest of `/api`): start and stop
//! a room's recording, list, read, download (with HTTP Range) and delete
//! recordings. Files are found through [`RecordingStore`], which never
//! builds a path from anything but a checked id.

use http_range_header::parse_range_header;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio::sync::oneshot;
use warp::http::{header, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply as _};

use super::api::{admin_ctx, ok, reply_error, AdminAuth, Reply};
use super::media_link;
use crate::recording::export::content_type;
use crate::recording::store::{StoreError, CHAPTERS};
use crate::recording::RecordingStore;
use crate::room::{Registry, RoomCommand};

fn store_error(e: StoreError) -> Reply {
    let status = match e {
        StoreError::BadId(_) => StatusCode::BAD_REQUEST,
        StoreError::NotFound(_) => StatusCode::NOT_FOUND,
        StoreError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    reply_error(status, &e.to_string())
}

async fn record(registry: &Registry, room: &str, on: bool) -> Reply {
    let Some(handle) = registry.get(room) else {
        return reply_error(
            StatusCode::NOT_FOUND,
            &format!("no room {room} in progress"),
        );
    };
    let (tx, rx) = oneshot::channel();
    let cmd = RoomCommand::Record {
        on,
        by: None,
        reply: Some(tx),
    };
    if handle.send(cmd).is_err() {
        return reply_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("room {room} is busy or closing"),
        );
    }
    match rx.await {
        Ok(Ok(id)) if on => warp::reply::with_status(
            warp::reply::json(&json!({ "room": room, "id": id, "recording": true })),
            StatusCode::CREATED,
        ),
        Ok(Ok(id)) => ok(json!({ "room": room, "id": id, "recording": false })),
        Ok(Err(refusal)) if on => {
            reply_error(StatusCode::INSUFFICIENT_STORAGE, &refusal.to_string())
        }
        Ok(Err(refusal)) => reply_error(StatusCode::CONFLICT, &refusal.to_string()),
        Err(_) => reply_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("room {room} closed"),
        ),
    }
}

/// Serves a file, or the byte range the request asks for.
async fn serve_file(path: std::path::PathBuf, range: Option<String>, mime: &str) -> Response {
    let fail = |status, msg: &str| reply_error(status, msg).into_response();
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return fail(StatusCode::NOT_FOUND, "the file is gone");
    };
    let Ok(len) = file.metadata().await.map(|m| m.len()) else {
        return fail(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file");
    };
    let (start, end, status) = match range {
        None => (0, len.saturating_sub(1), StatusCode::OK),
        Some(r) => match parse_range_header(&r).and_then(|p| p.validate(len)) {
            Ok(ranges) if ranges.len() == 1 => {
                let r = &ranges[0];
                (*r.start(), *r.end(), StatusCode::PARTIAL_CONTENT)
            }
            _ => {
                let mut resp = fail(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "send one byte range within the file",
                );
                if let Ok(v) = format!("bytes */{len}").parse() {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return resp;
            }
        },
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    if file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return fail(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file");
    }
    let body = tokio_util::io::ReaderStream::new(file.take(count));
    let mut resp = warp::reply::stream(body).into_response();
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, mime.to_string()),
        (header::CONTENT_LENGTH, count.to_string()),
        (header::ACCEPT_RANGES, "bytes".to_string()),
    ] {
        if let Ok(v) = value.parse() {
            headers.insert(name, v);
        }
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = format!("bytes {start}-{end}/{len}").parse() {
            headers.insert(header::CONTENT_RANGE, v);
        }
    }
    resp
}

fn store_of(registry: &Registry) -> RecordingStore {
    registry.recordings().store.clone()
}

/// `GET /api/recordings/{id}` and `GET /api/recordings/{id}/manifest`: the
/// recording's manifest.
fn read_manifest(id: String, auth: Result<(), Reply>, registry: Registry) -> Response {
    auth.and_then(|()| store_of(&registry).manifest(&id).map_err(store_error))
        .map_or_else(|e| e, |m| ok(json!(m)))
        .into_response()
}

/// The recording routes.
pub fn routes(
    registry: Registry,
    auth: AdminAuth,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let link_auth = auth.clone();
    let ctx = admin_ctx(registry, auth);
    // POST starts, DELETE stops.
    let on = warp::post()
        .map(|| true)
        .or(warp::delete().map(|| false))
        .unify();
    let start_stop = warp::path!("api" / "rooms" / String / "recording")
        .and(on)
        .and(ctx.clone())
        .then(
            |room: String, on: bool, auth: Result<(), Reply>, registry: Registry| async move {
                match auth {
                    Ok(()) => record(&registry, &room, on).await,
                    Err(e) => e,
                }
                .into_response()
            },
        );
    let list = warp::path!("api" / "recordings")
        .and(warp::get())
        .and(ctx.clone())
        .map(|auth: Result<(), Reply>, registry: Registry| {
            match auth {
                Ok(()) => ok(json!(store_of(&registry).list())),
                Err(e) => e,
            }
            .into_response()
        });
    // A recording is its manifest, under either path.
    let one = warp::path!("api" / "recordings" / String)
        .and(warp::get())
        .and(ctx.clone())
        .map(read_manifest);
    let manifest = warp::path!("api" / "recordings" / String / "manifest")
        .and(warp::get())
        .and(ctx.clone())
        .map(read_manifest);
    let chapters = warp::path!("api" / "recordings" / String / "chapters")
        .and(warp::get())
        .and(ctx.clone())
        .then(
            |id: String, auth: Result<(), Reply>, registry: Registry| async move {
                match auth
                    .and_then(|()| store_of(&registry).file(&id, CHAPTERS).map_err(store_error))
                {
                    Ok(path) => serve_file(path, None, "text/vtt; charset=utf-8").await,
                    Err(e) => e.into_response(),
                }
            },
        );
    let keys = link_auth.clone();
    let link = warp::path!("api" / "recordings" / String / "link")
        .and(warp::post())
        .and(ctx.clone())
        .map(
            move |id: String, auth: Result<(), Reply>, registry: Registry| {
                auth.and_then(|()| {
                    let m = store_of(&registry).manifest(&id).map_err(store_error)?;
                    if m.export.is_none() {
                        return Err(reply_error(
                            StatusCode::NOT_FOUND,
                            &format!("recording {id} has no exported file yet"),
                        ));
                    }
                    let url = format!("/api/recordings/{id}/media");
                    Ok(match keys.key() {
                        Some(key) => {
                            let (token, exp) =
                                media_link::issue(key, &id, crate::auth::bans::unix_now());
                            ok(json!({ "url": format!("{url}?access={token}"), "expires_at": exp }))
                        }
                        None => ok(json!({ "url": url, "expires_at": null })),
                    })
                })
                .unwrap_or_else(|e| e)
                .into_response()
            },
        );
    let media = warp::path!("api" / "recordings" / String / "media")
        .and(warp::get())
        .and(ctx.clone())
        .and(warp::header::optional::<String>("range"))
        .and(warp::query::<std::collections::HashMap<String, String>>())
        .then(
            move |id: String, auth: Result<(), Reply>, registry: Registry, range: Option<String>, query: std::collections::HashMap<String, String>| {
                // A playback link stands in for the admin key, for its one recording.
                let auth = match (query.get("access"), link_auth.key()) {
                    (Some(token), Some(key)) => media_link::verify(key, token, &id)
                        .map_err(|e| reply_error(StatusCode::UNAUTHORIZED, &e.to_string())),
                    _ => auth,
                };
                async move {
                let store = store_of(&registry);
                let found = auth.and_then(|()| {
                    let m = store.manifest(&id).map_err(store_error)?;
                    let file = m.export.ok_or_else(|| {
                        reply_error(
                            StatusCode::NOT_FOUND,
                            &format!("recording {id} has no exported file yet (it is still recording or exporting, or the export failed: see its manifest)"),
                        )
                    })?;
                    let path = store.file(&id, &file).map_err(store_error)?;
                    Ok((path, content_type(&file)))
                });
                match found {
                    Ok((path, mime)) => serve_file(path, range, mime).await,
                    Err(e) => e.into_response(),
                }
                }
            },
        );
    let delete = warp::path!("api" / "recordings" / String)
        .and(warp::delete())
        .and(ctx)
        .map(|id: String, auth: Result<(), Reply>, registry: Registry| {
            let store = store_of(&registry);
            auth.and_then(|()| {
                let m = store.manifest(&id).map_err(store_error)?;
                if m.ended_at.is_none() && registry.get(&m.room).is_some() {
                    return Err(reply_error(
                        StatusCode::CONFLICT,
                        &format!("recording {id} is still running; stop it first"),
                    ));
                }
                store.delete(&id).map_err(store_error)?;
                Ok(ok(json!({ "deleted": id })))
            })
            .unwrap_or_else(|e| e)
            .into_response()
        });
    start_stop
        .or(list)
        .unify()
        .or(manifest)
        .unify()
        .or(chapters)
        .unify()
        .or(media)
        .unify()
        .or(link)
        .unify()
        .or(one)
        .unify()
        .or(delete)
        .unify()
}
