//! How a synthetic participant negotiates: with Tessera over the real
//! WebSocket protocol, or directly with another participant in the same
//! process (the peer-to-peer latency baseline).

use std::time::Duration;

use anyhow::{bail, Context as _};
use futures_util::{SinkExt as _, StreamExt as _};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use gstreamer_webrtc as gst_webrtc;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use std::sync::Arc;

use crate::code::Area;
use crate::direct::{DirectSide, Outgoing};
use crate::peer::Peer;

pub(crate) fn description(
    kind: gst_webrtc::WebRTCSDPType,
    sdp: &str,
) -> anyhow::Result<gst_webrtc::WebRTCSessionDescription> {
    let msg = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes()).context("unparsable SDP")?;
    Ok(gst_webrtc::WebRTCSessionDescription::new(kind, msg))
}

/// Offers when webrtcbin wants to negotiate; each offer text goes to `out`.
pub(crate) fn offer_on_demand(webrtc: &gst::Element, out: mpsc::UnboundedSender<String>) {
    webrtc.connect("on-negotiation-needed", false, move |values| {
        let webrtc = values[0].get::<gst::Element>().ok()?;
        let w = webrtc.clone();
        let out = out.clone();
        let promise = gst::Promise::with_change_func(move |reply| {
            let Ok(Some(reply)) = reply else { return };
            let Ok(offer) = reply.get::<gst_webrtc::WebRTCSessionDescription>("offer") else {
                return;
            };
            w.emit_by_name::<()>("set-local-description", &[&offer, &None::<gst::Promise>]);
            if let Ok(text) = offer.sdp().as_text() {
                let _ = out.send(text);
            }
        });
        webrtc.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
        None
    });
}

/// Sends each local ICE candidate as (m-line, candidate) to `out`.
pub(crate) fn candidates_to(webrtc: &gst::Element, out: mpsc::UnboundedSender<(u32, String)>) {
    webrtc.connect("on-ice-candidate", false, move |values| {
        let mline = values[1].get::<u32>().ok()?;
        let cand = values[2].get::<String>().ok()?;
        let _ = out.send((mline, cand));
        None
    });
}

/// A participant in a Tessera room.
pub struct Joined {
    /// The participant id the server gave.
    pub id: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Joined {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Joins `room` on the server at `ws`, negotiates, and (for a probe) keeps
/// `peer.tiles` up to date from the admin API at `api`: the tiles of the
/// participants named in `read`, or of everyone where it is `None`. With
/// `direct`, it joins able to connect directly, and runs peer-to-peer when
/// the server says so (`direct.rs`).
#[allow(clippy::too_many_arguments)]
pub async fn join_server(
    peer: &Peer,
    ws: &str,
    api: &str,
    room: &str,
    name: &str,
    probe: bool,
    read: Option<Vec<String>>,
    direct: Option<Arc<DirectSide>>,
) -> anyhow::Result<Joined> {
    let (offers_tx, mut offers) = mpsc::unbounded_channel::<String>();
    let (cands_tx, mut cands) = mpsc::unbounded_channel::<(u32, String)>();
    offer_on_demand(&peer.webrtc, offers_tx);
    candidates_to(&peer.webrtc, cands_tx);

    // A browser has its camera and peer connection ready when the user
    // presses join, and makes an offer in milliseconds. A GStreamer peer on
    // a loaded machine takes up to seconds (its DTLS certificate, its
    // transports): that is made before `join`, and the offer goes out as
    // soon as the server says `joined`. The socket opens only once the
    // offer is ready: the server closes a socket that does not join in time.
    peer.pipeline.set_state(gst::State::Playing)?;
    let first_offer = tokio::time::timeout(Duration::from_secs(20), offers.recv())
        .await
        .context("no offer within 20 s")?
        .context("the offer callback is gone")?;
    let (socket, _) = tokio_tungstenite::connect_async(ws)
        .await
        .with_context(|| format!("connecting to {ws}"))?;
    let (mut sink, mut stream) = socket.split();
    peer.mark_join();
    if let Some(d) = &direct {
        d.mark_join();
    }
    // Where a join's time goes, in the participant's log.
    let t0 = std::time::Instant::now();
    let step = {
        let label = name.to_string();
        move |what: &str| eprintln!("{label}: {what} at {} ms", t0.elapsed().as_millis())
    };
    {
        let step = step.clone();
        peer.webrtc
            .connect_notify(Some("connection-state"), move |w, _| {
                let state = w.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state");
                step(&format!("connection {state:?}"));
            });
    }
    sink.send(Message::text(
        json!({"type": "join", "room": room, "name": name, "p2p": direct.is_some()}).to_string(),
    ))
    .await?;
    let id = loop {
        let frame = tokio::time::timeout(Duration::from_secs(15), stream.next())
            .await
            .context("no answer to join within 15 s")?;
        let Some(Ok(Message::Text(text))) = frame else {
            bail!("the server closed the socket before joined");
        };
        let v: Value = serde_json::from_str(&text)?;
        match v["type"].as_str() {
            Some("joined") => {
                step("joined");
                break v["participantId"].as_str().unwrap_or_default().to_string();
            }
            Some("error") => bail!("join refused: {v}"),
            _ => {}
        }
    };

    step("offer sent");
    let m = json!({"type": "offer", "sdp": first_offer});
    sink.send(Message::text(m.to_string())).await?;

    let webrtc = peer.webrtc.downgrade();
    let (direct_tx, mut direct_out) = mpsc::unbounded_channel::<Outgoing>();
    let signaling = tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(m) = direct_out.recv() => {
                    if sink.send(Message::text(m.message().to_string())).await.is_err() { break; }
                }
                Some(sdp) = offers.recv() => {
                    step("offer sent");
                    let m = json!({"type": "offer", "sdp": sdp});
                    if sink.send(Message::text(m.to_string())).await.is_err() { break; }
                }
                Some((mline, candidate)) = cands.recv() => {
                    let m = json!({"type": "ice", "candidate": candidate, "sdpMLineIndex": mline});
                    if sink.send(Message::text(m.to_string())).await.is_err() { break; }
                }
                frame = stream.next() => {
                    let Some(Ok(frame)) = frame else { break };
                    let Message::Text(text) = frame else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                    let Some(webrtc) = webrtc.upgrade() else { break };
                    if let Some(d) = &direct {
                        match d.on_message(&v, &direct_tx) {
                            Ok(true) => continue,
                            Ok(false) => {}
                            Err(e) => {
                                eprintln!("direct: {e:#}");
                                continue;
                            }
                        }
                    }
                    match v["type"].as_str() {
                        Some("answer") => {
                            step("answer");
                            match description(gst_webrtc::WebRTCSDPType::Answer, v["sdp"].as_str().unwrap_or_default()) {
                                Ok(answer) => webrtc.emit_by_name::<()>("set-remote-description", &[&answer, &None::<gst::Promise>]),
                                Err(e) => eprintln!("bad answer: {e:#}"),
                            }
                        }
                        Some("ice") => {
                            let mline = v["sdpMLineIndex"].as_u64().unwrap_or(0) as u32;
                            let cand = v["candidate"].as_str().unwrap_or_default().to_string();
                            webrtc.emit_by_name::<()>("add-ice-candidate", &[&mline, &cand]);
                        }
                        Some("error") => eprintln!("server error: {v}"),
                        _ => {}
                    }
                }
            }
        }
    });
    let mut tasks = vec![signaling];
    if probe {
        let tiles = peer.tiles.clone();
        let url = format!("{api}/api/rooms/{room}");
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                if let Ok(reply) = client.get(&url).send().await {
                    if let Ok(v) = reply.json::<Value>().await {
                        *tiles.lock().unwrap() = tiles_of(&v, read.as_deref());
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
    }
    Ok(Joined { id, tasks })
}

/// The camera tiles in a `GET /api/rooms/{room}` reply, of the
/// participants named in `only` (everyone's where it is `None`).
pub fn tiles_of(room: &Value, only: Option<&[String]>) -> Vec<Area> {
    let Some(list) = room["participants"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter(|p| {
            only.is_none_or(|names| {
                p["name"]
                    .as_str()
                    .is_some_and(|n| names.iter().any(|m| m == n))
            })
        })
        .filter_map(|p| {
            let t = &p["tile"];
            let get = |k: &str| t[k].as_u64().map(|v| v as u32);
            Some(Area {
                x: get("x")?,
                y: get("y")?,
                width: get("width")?,
                height: get("height")?,
            })
        })
        .collect()
}

/// Connects `sender` (offering) straight to `receiver` (answering), in
/// process: the peer-to-peer path the server's latency is compared with.
pub fn link_direct(sender: &Peer, receiver: &Peer) -> anyhow::Result<()> {
    let (offers_tx, mut offers) = mpsc::unbounded_channel::<String>();
    offer_on_demand(&sender.webrtc, offers_tx);
    for (from, to) in [
        (&sender.webrtc, &receiver.webrtc),
        (&receiver.webrtc, &sender.webrtc),
    ] {
        let to = to.downgrade();
        from.connect("on-ice-candidate", false, move |values| {
            let mline = values[1].get::<u32>().ok()?;
            let cand = values[2].get::<String>().ok()?;
            if let Some(to) = to.upgrade() {
                to.emit_by_name::<()>("add-ice-candidate", &[&mline, &cand]);
            }
            None
        });
    }
    receiver.pipeline.set_state(gst::State::Playing)?;
    sender.pipeline.set_state(gst::State::Playing)?;
    let (a, b) = (sender.webrtc.downgrade(), receiver.webrtc.downgrade());
    tokio::spawn(async move {
        while let Some(sdp) = offers.recv().await {
            let (Some(a), Some(b)) = (a.upgrade(), b.upgrade()) else {
                break;
            };
            let Ok(offer) = description(gst_webrtc::WebRTCSDPType::Offer, &sdp) else {
                break;
            };
            b.emit_by_name::<()>("set-remote-description", &[&offer, &None::<gst::Promise>]);
            let b2 = b.clone();
            let promise = gst::Promise::with_change_func(move |reply| {
                let Ok(Some(reply)) = reply else { return };
                let Ok(answer) = reply.get::<gst_webrtc::WebRTCSessionDescription>("answer") else {
                    return;
                };
                b2.emit_by_name::<()>("set-local-description", &[&answer, &None::<gst::Promise>]);
                a.emit_by_name::<()>("set-remote-description", &[&answer, &None::<gst::Promise>]);
            });
            b.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tiles_are_read_for_the_named_participants_only() {
        let room = json!({"participants": [
            {"name": "p0-0", "tile": {"x": 0, "y": 0, "width": 320, "height": 180}},
            {"name": "p0-1", "tile": {"x": 320, "y": 0, "width": 320, "height": 180}},
            {"name": "p0-2", "tile": {"x": 640, "y": 0, "width": 320, "height": 180}},
            {"name": "p0-3", "tile": null},
        ]});
        assert_eq!(tiles_of(&room, None).len(), 3, "tile-less ones are skipped");
        let named = ["p0-1".to_string(), "p0-3".to_string()];
        let only = tiles_of(&room, Some(&named));
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].x, 320);
    }
}
