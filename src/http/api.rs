//! The admin HTTP API (JSON): layouts; rooms (a list with a summary each,
//! and one room's state with each participant's tile, video size and
//! connection figures); a room's layout and pin.
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

use crate::ids::ParticipantId;
use crate::room::{MediaFigures, Refusal, Registry, RoomCommand, RoomSnapshot};

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

    /// The admin key, if one is set.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref().map(String::as_str)
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
    participant: Option<ParticipantId>,
}

async fn room_snapshot(registry: &Registry, room: &str) -> Result<RoomSnapshot, Reply> {
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
    make: impl FnOnce(oneshot::Sender<Result<(), Refusal>>) -> RoomCommand,
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
        Ok(Err(refusal)) => reply_error(StatusCode::NOT_FOUND, &refusal.to_string()),
        Err(_) => reply_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("room {room} closed"),
        ),
    }
}

/// The largest admin API request body, bytes.
const MAX_BODY: u64 = 4096;

/// A small JSON request body of type `T`, or the reply that says what is
/// wrong with it: `408` when it does not arrive whole `within` (the
/// connection is closed with the unread rest), `400` when it is not the
/// JSON expected. Over [`MAX_BODY`] it is refused with `413` before it is
/// read, and one of unknown length with `411`.
fn json_body<T: serde::de::DeserializeOwned + Send>(
    within: std::time::Duration,
) -> impl Filter<Extract = (Result<T, Reply>,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(MAX_BODY)
        .and(warp::body::stream())
        .then(move |body| read_json::<T, _, _>(body, within))
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes within `within`.
async fn read_json<T, S, B>(body: S, within: std::time::Duration) -> Result<T, Reply>
where
    T: serde::de::DeserializeOwned,
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    use futures_util::StreamExt as _;
    let read = async {
        let mut body = std::pin::pin!(body);
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            let mut chunk = chunk.map_err(|e| {
                reply_error(StatusCode::BAD_REQUEST, &format!("reading the body: {e}"))
            })?;
            while chunk.has_remaining() {
                let part = chunk.chunk();
                let n = part.len();
                bytes.extend_from_slice(part);
                chunk.advance(n);
            }
            if bytes.len() as u64 > MAX_BODY {
                return Err(reply_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("the body is over {MAX_BODY} bytes"),
                ));
            }
        }
        Ok(bytes)
    };
    let bytes = tokio::time::timeout(within, read).await.map_err(|_| {
        reply_error(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "the body did not arrive within {} s (limits.request_body_seconds)",
                within.as_secs()
            ),
        )
    })??;
    serde_json::from_slice::<T>(&bytes).map_err(|e| {
        reply_error(
            StatusCode::BAD_REQUEST,
            &format!("the body is not the JSON expected: {e}"),
        )
    })
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
    let body_within = std::time::Duration::from_secs(registry.policy().limits.request_body_seconds);
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
                    Ok(s) => ok(room_json(&s)),
                    Err(e) => e,
                }
            },
        );
    let rooms = warp::path!("api" / "rooms")
        .and(warp::get())
        .and(ctx.clone())
        .then(|auth: Result<(), Reply>, registry: Registry| async move {
            if let Err(e) = auth {
                return e;
            }
            let mut out = Vec::new();
            for id in registry.room_ids() {
                // A room that closed meanwhile is simply not listed.
                if let Ok(s) = room_snapshot(&registry, &id).await {
                    out.push(room_summary(&s));
                }
            }
            ok(json!(out))
        });
    let set_layout = warp::path!("api" / "rooms" / String / "layout")
        .and(warp::put())
        .and(ctx.clone())
        .and(json_body::<SetLayout>(body_within))
        .then(
            |room: String,
             auth: Result<(), Reply>,
             registry: Registry,
             req: Result<SetLayout, Reply>| async move {
                if let Err(e) = auth {
                    return e;
                }
                let req = match req {
                    Ok(r) => r,
                    Err(e) => return e,
                };
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
    let pin =
        warp::path!("api" / "rooms" / String / "pin")
            .and(warp::put())
            .and(ctx)
            .and(json_body::<Pin>(body_within))
            .then(
                |room: String,
                 auth: Result<(), Reply>,
                 registry: Registry,
                 req: Result<Pin, Reply>| async move {
                    if let Err(e) = auth {
                        return e;
                    }
                    let req = match req {
                        Ok(r) => r,
                        Err(e) => return e,
                    };
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
        .or(rooms)
        .unify()
        .or(room)
        .unify()
        .or(set_layout)
        .unify()
        .or(pin)
        .unify()
}

/// A room in `GET /api/rooms`.
fn room_summary(s: &RoomSnapshot) -> serde_json::Value {
    json!({
        "id": s.room,
        "participants": s.participants.len(),
        "layout": s.layout,
        "recording": s.recording,
        "encoders": s.encoders,
        "mode": s.mode.mode.as_str(),
        "modeSince": rfc3339(s.mode.since),
    })
}

fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// One room in `GET /api/rooms/{room}`. `canvas` and each participant's
/// `tile` keep their shapes: tools measure the canvas with them.
fn room_json(s: &RoomSnapshot) -> serde_json::Value {
    let participants: Vec<_> = s
        .participants
        .iter()
        .map(|p| {
            let tile = s.tiles.iter().find(|(id, _)| *id == p.id).map(|(_, r)| *r);
            let figures = s
                .media
                .iter()
                .find(|(id, _)| *id == p.id)
                .map(|(_, f)| *f)
                .unwrap_or_default();
            let mut v = json!(p);
            v["tile"] = json!(tile);
            add_figures(&mut v, &figures);
            v
        })
        .collect();
    json!({
        "room": s.room,
        "layout": s.layout,
        "pinned": s.pinned,
        "speaker": s.speaker,
        "canvas": { "width": s.canvas.width, "height": s.canvas.height, "framerate": s.framerate },
        "participants": participants,
        "encoders": s.encoders,
        "videoEncoders": s.video_encoders.iter().map(|(family, tier)| json!({
            "family": family,
            "tier": tier,
        })).collect::<Vec<_>>(),
        "talking": s.talking,
        "mode": s.mode.mode.as_str(),
        "modeSince": rfc3339(s.mode.since),
        "mcuCause": s.mode.mcu_cause,
        "recording": s.recording.as_ref().map(|id| json!({
            "id": id,
            "bytes": s.recording_bytes.unwrap_or(0),
        })),
    })
}

/// Adds a participant's video size and connection figures to its JSON;
/// null until the first frame was decoded or the first stats arrived.
fn add_figures(v: &mut serde_json::Value, f: &MediaFigures) {
    v["resolution"] = json!(f
        .resolution
        .map(|r| json!({ "width": r.width, "height": r.height })));
    let link = f.link;
    v["inboundBitrate"] = json!(link.map(|l| l.inbound_bps.round() as u64));
    v["outboundBitrate"] = json!(link.map(|l| l.outbound_bps.round() as u64));
    v["packetLoss"] = json!(link.map(|l| json!({
        "fraction": l.loss_fraction,
        "packets": l.packets_lost,
    })));
    v["jitterMs"] = json!(link.and_then(|l| l.jitter_ms));
    v["rttMs"] = json!(link.and_then(|l| l.rtt_ms));
    v["canvasFrames"] = json!(f.canvas_frames);
    v["downlink"] = json!(f.downlink.map(|d| json!({
        "estimate": d.estimate,
        "tier": d.tier,
        "probing": d.probing,
        "redundantAudio": d.redundant_audio,
    })));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_null_until_measured() {
        let mut v = json!({"id": "p1"});
        add_figures(&mut v, &MediaFigures::default());
        for key in [
            "resolution",
            "inboundBitrate",
            "outboundBitrate",
            "packetLoss",
            "jitterMs",
            "rttMs",
            "canvasFrames",
            "downlink",
        ] {
            assert_eq!(v[key], serde_json::Value::Null, "{key}");
        }
        let figures = MediaFigures {
            resolution: Some(crate::layout::Size {
                width: 640,
                height: 360,
            }),
            link: Some(crate::media::webrtc_stats::LinkFigures {
                inbound_bps: 812_345.6,
                outbound_bps: 1_000.0,
                loss_fraction: 0.02,
                packets_lost: 7,
                jitter_ms: Some(3.5),
                rtt_ms: None,
            }),
            canvas_frames: Some(42),
            downlink: Some(crate::room::DownlinkFigures {
                estimate: Some(280_000),
                tier: crate::ids::Tier::Low,
                probing: false,
                redundant_audio: Some(120),
            }),
        };
        add_figures(&mut v, &figures);
        assert_eq!(v["resolution"], json!({"width": 640, "height": 360}));
        assert_eq!(v["inboundBitrate"], 812_346);
        assert_eq!(v["packetLoss"], json!({"fraction": 0.02, "packets": 7}));
        assert_eq!(v["jitterMs"], 3.5);
        assert_eq!(v["rttMs"], serde_json::Value::Null);
        assert_eq!(
            v["downlink"],
            json!({"estimate": 280_000, "tier": "low", "probing": false, "redundantAudio": 120})
        );
        assert_eq!(v["canvasFrames"], 42);
        assert_eq!(v["id"], "p1");
    }

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
