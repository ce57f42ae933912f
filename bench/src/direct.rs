//! A synthetic participant that can run peer-to-peer, as the room page
//! does: told `mode p2p`, it makes a second peer and connects it to its pair
//! through the server's relay (`peerOffer`, `peerAnswer`, `peerIce`), says
//! `direct` once it is up and pauses what it sends the server; told `mode
//! mcu`, it sends the server again, notes how long the canvas takes to come
//! back, and closes the direct peer 3 s later, as the page does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_webrtc as gst_webrtc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::clip;
use crate::peer::{Measured, Peer};
use crate::session::{candidates_to, description, offer_on_demand};

/// How long the direct peer outlives the move to the MCU.
const KEEP_DIRECT: Duration = Duration::from_secs(3);

/// What the participant's direct side measured, for `report-direct`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct DirectReport {
    /// The direct peer's figures (its window is the participant's); none
    /// when it never ran.
    pub measured: Option<Measured>,
    /// From the join to the direct connection up (ms).
    pub join_to_direct_ms: Option<f64>,
    /// From `mode mcu` to the first canvas frame from the server (ms).
    pub canvas_after_switch_ms: Option<f64>,
}

/// The direct side of a participant: shared between its signaling task and
/// the commands that start a window and report.
pub struct DirectSide {
    make: Box<dyn Fn() -> anyhow::Result<Peer> + Send + Sync>,
    peer: Mutex<Option<Peer>>,
    report: Mutex<DirectReport>,
    joined_ms: Mutex<f64>,
    /// The server peer's send switch and canvas clock.
    pause: Arc<AtomicBool>,
    last_frame: Box<dyn Fn() -> Option<f64> + Send + Sync>,
}

/// What the signaling task is to send the server for the direct side.
pub enum Outgoing {
    Offer(String),
    Answer(String),
    Ice(u32, String),
    Up(bool),
}

impl Outgoing {
    /// The protocol message.
    pub fn message(&self) -> Value {
        match self {
            Outgoing::Offer(sdp) => json!({"type": "peerOffer", "sdp": sdp}),
            Outgoing::Answer(sdp) => json!({"type": "peerAnswer", "sdp": sdp}),
            Outgoing::Ice(mline, c) => {
                json!({"type": "peerIce", "candidate": c, "sdpMLineIndex": mline})
            }
            Outgoing::Up(up) => json!({"type": "direct", "connected": up}),
        }
    }
}

impl DirectSide {
    /// A direct side for `server` (the participant's peer to the server),
    /// making its direct peer with `make`.
    pub fn new(
        server: &Peer,
        make: impl Fn() -> anyhow::Result<Peer> + Send + Sync + 'static,
    ) -> Arc<DirectSide> {
        Arc::new(DirectSide {
            make: Box::new(make),
            peer: Mutex::new(None),
            report: Mutex::default(),
            joined_ms: Mutex::new(0.0),
            pause: server.pause_switch(),
            last_frame: Box::new(server.last_frame_clock()),
        })
    }

    /// Notes when `join` went out.
    pub fn mark_join(&self) {
        *self.joined_ms.lock().unwrap() = clip::now_ms();
    }

    /// Starts the direct peer's window with the participant's.
    pub fn start_window(&self) {
        if let Some(p) = self.peer.lock().unwrap().as_mut() {
            p.start_window();
        }
    }

    /// What it measured so far.
    pub fn report(&self) -> DirectReport {
        let mut r = self.report.lock().unwrap().clone();
        if let Some(p) = self.peer.lock().unwrap().as_ref() {
            r.measured = Some(p.measured());
        }
        r
    }

    /// Handles a server message meant for the direct side; false if it is
    /// not one.
    pub fn on_message(
        self: &Arc<Self>,
        v: &Value,
        out: &mpsc::UnboundedSender<Outgoing>,
    ) -> anyhow::Result<bool> {
        match v["type"].as_str() {
            Some("mode") if v["mode"] == "p2p" => self.go_direct(v["offerer"] == true, out)?,
            Some("mode") => self.back_to_server(),
            Some("peerOffer") => self.answer(v["sdp"].as_str().unwrap_or_default(), out)?,
            Some("peerAnswer") => {
                let answer = description(
                    gst_webrtc::WebRTCSDPType::Answer,
                    v["sdp"].as_str().unwrap_or_default(),
                )?;
                if let Some(p) = self.peer.lock().unwrap().as_ref() {
                    p.webrtc.emit_by_name::<()>(
                        "set-remote-description",
                        &[&answer, &None::<gst::Promise>],
                    );
                }
            }
            Some("peerIce") => {
                let mline = v["sdpMLineIndex"].as_u64().unwrap_or(0) as u32;
                let cand = v["candidate"].as_str().unwrap_or_default().to_string();
                if let Some(p) = self.peer.lock().unwrap().as_ref() {
                    p.webrtc
                        .emit_by_name::<()>("add-ice-candidate", &[&mline, &cand]);
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Makes the direct peer and starts it; the offerer offers.
    fn go_direct(
        self: &Arc<Self>,
        offerer: bool,
        out: &mpsc::UnboundedSender<Outgoing>,
    ) -> anyhow::Result<()> {
        let peer = (self.make)()?;
        peer.mark_join_at(*self.joined_ms.lock().unwrap());
        let (cands_tx, mut cands) = mpsc::unbounded_channel();
        candidates_to(&peer.webrtc, cands_tx);
        let o = out.clone();
        tokio::spawn(async move {
            while let Some((mline, c)) = cands.recv().await {
                let _ = o.send(Outgoing::Ice(mline, c));
            }
        });
        if offerer {
            let (offers_tx, mut offers) = mpsc::unbounded_channel();
            offer_on_demand(&peer.webrtc, offers_tx);
            let o = out.clone();
            tokio::spawn(async move {
                while let Some(sdp) = offers.recv().await {
                    let _ = o.send(Outgoing::Offer(sdp));
                }
            });
        }
        // Up: say so, and pause what goes to the server.
        let side = Arc::downgrade(self);
        let o = out.clone();
        peer.webrtc
            .connect_notify(Some("connection-state"), move |w, _| {
                let state = w.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state");
                let up = match state {
                    gst_webrtc::WebRTCPeerConnectionState::Connected => true,
                    gst_webrtc::WebRTCPeerConnectionState::Failed => false,
                    _ => return,
                };
                if let Some(side) = side.upgrade() {
                    if up {
                        side.pause.store(true, Ordering::Relaxed);
                        let joined = *side.joined_ms.lock().unwrap();
                        side.report.lock().unwrap().join_to_direct_ms =
                            Some(clip::now_ms() - joined);
                    }
                }
                let _ = o.send(Outgoing::Up(up));
            });
        peer.pipeline.set_state(gst::State::Playing)?;
        if let Some(old) = self.peer.lock().unwrap().replace(peer) {
            std::thread::spawn(move || old.finish());
        }
        Ok(())
    }

    /// Answers the pair's offer.
    fn answer(&self, sdp: &str, out: &mpsc::UnboundedSender<Outgoing>) -> anyhow::Result<()> {
        let offer = description(gst_webrtc::WebRTCSDPType::Offer, sdp)?;
        let guard = self.peer.lock().unwrap();
        let Some(peer) = guard.as_ref() else {
            anyhow::bail!("an offer before mode p2p");
        };
        let webrtc = peer.webrtc.clone();
        drop(guard);
        webrtc.emit_by_name::<()>("set-remote-description", &[&offer, &None::<gst::Promise>]);
        let w = webrtc.clone();
        let o = out.clone();
        let promise = gst::Promise::with_change_func(move |reply| {
            let Ok(Some(reply)) = reply else { return };
            let Ok(answer) = reply.get::<gst_webrtc::WebRTCSessionDescription>("answer") else {
                return;
            };
            w.emit_by_name::<()>("set-local-description", &[&answer, &None::<gst::Promise>]);
            if let Ok(text) = answer.sdp().as_text() {
                let _ = o.send(Outgoing::Answer(text));
            }
        });
        webrtc.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
        Ok(())
    }

    /// Sends the server media again, times the canvas's return, and closes
    /// the direct peer a moment later.
    fn back_to_server(self: &Arc<Self>) {
        self.pause.store(false, Ordering::Relaxed);
        let told = clip::now_ms();
        let side = self.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while tokio::time::Instant::now() < deadline {
                if let Some(t) = (side.last_frame)().filter(|&t| t > told) {
                    side.report.lock().unwrap().canvas_after_switch_ms = Some(t - told);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let side = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(KEEP_DIRECT).await;
            let old = side.peer.lock().unwrap().take();
            if let Some(old) = old {
                // Keep its figures for the report.
                side.report.lock().unwrap().measured = Some(old.measured());
                let _ = tokio::task::spawn_blocking(move || old.finish()).await;
            }
        });
    }
}
