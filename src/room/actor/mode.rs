//! The room's mode: whether it runs peer-to-peer or on the MCU, decided
//! after every change of what the room holds (`room::mode`, pure), logged
//! with its cause, counted in the metrics and shown by the API; and the
//! pair's direct connection while it runs peer-to-peer.
//!
//! Peer-to-peer, the server tells the pair who offers (`mode`), passes
//! their offer, answer and candidates to each other, and waits up to
//! [`DIRECT_TIMEOUT`] for both to say the direct connection is up. Then it
//! parks the pair's media: their clients pause what they send it, it
//! encodes no canvas for them (both sit in the audio-only tier), and the
//! room's media rests (no canvas composed, no mix encoded: `media::rest`),
//! while their connections to it stay up for the way back. A direct connection
//! that fails, drops or never comes up moves the room to the MCU, and
//! keeps it there until the pair changes.

use std::time::{Instant, SystemTime};

use tracing::{debug, info, warn};

use super::RoomActor;
use crate::ids::{ParticipantId, Tier};
use crate::protocol::{ErrorCode, ServerMessage};
use crate::room::mode::{DirectChange, Mode, ModeFigures, RoomState, DIRECT_TIMEOUT};
use crate::room::PeerSignal;

impl RoomActor {
    /// What the room holds, as far as its mode is concerned.
    fn mode_state(&self) -> RoomState {
        let mut members: Vec<_> = self
            .participants
            .iter()
            .map(|(id, p)| (p.seq, id.clone(), p.direct))
            .collect();
        members.sort_by_key(|(seq, _, _)| *seq);
        RoomState {
            allowed: self.registry.mode_policy().p2p && !self.p2p_refused(),
            members: members
                .into_iter()
                .map(|(_, id, direct)| (id, direct))
                .collect(),
            recording: self.recording.is_some(),
            canvas: self.participants.values().any(|p| p.sharing),
        }
    }

    /// A member joined with a token that keeps the room on the MCU.
    fn p2p_refused(&self) -> bool {
        self.participants.values().any(|p| p.no_p2p)
    }

    /// Decides the mode for what the room holds now; a switch is logged,
    /// counted and told to the pair.
    pub(super) fn decide_mode(&mut self) {
        let state = self.mode_state();
        if let Some(mode) = self.mode.decide(Instant::now(), &state) {
            self.switched(mode, &state);
        }
    }

    /// The pair's direct connection missed its deadline: back to the MCU.
    pub(super) fn check_direct(&mut self) {
        if self.direct.overdue(Instant::now()) {
            warn!(
                "the direct connection was not up within {} s",
                DIRECT_TIMEOUT.as_secs()
            );
            self.direct_failed();
        }
    }

    fn direct_failed(&mut self) {
        let state = self.mode_state();
        if let Some(mode) = self.mode.direct_failed(Instant::now(), &state) {
            self.switched(mode, &state);
        }
    }

    /// Logs and counts a switch, and carries it out.
    fn switched(&mut self, mode: Mode, state: &RoomState) {
        self.mode_since = SystemTime::now();
        let cause = match mode {
            Mode::PeerToPeer => {
                info!(
                    mode = mode.as_str(),
                    "the pair may connect directly: peer-to-peer"
                );
                "pair"
            }
            Mode::Mcu => {
                // A move to the MCU always has its cause.
                let cause = self.mode.cause();
                let why = cause.map(|c| c.describe()).unwrap_or_default();
                info!(mode = mode.as_str(), "on the MCU: {why}");
                cause.map_or("members", |c| c.label())
            }
        };
        self.metrics.mode_switched(mode.as_str(), cause);
        match mode {
            Mode::PeerToPeer => self.go_direct(state),
            Mode::Mcu => self.back_to_mcu(),
        }
    }

    /// Tells the pair to connect directly, the first to join offering.
    fn go_direct(&mut self, state: &RoomState) {
        let [(a, _), (b, _)] = state.members.as_slice() else {
            return;
        };
        let pair = [a.clone(), b.clone()];
        self.direct.start(pair.clone(), Instant::now());
        for (me, other, offerer) in [(&pair[0], &pair[1], true), (&pair[1], &pair[0], false)] {
            self.send(
                me,
                ServerMessage::Mode {
                    mode: Mode::PeerToPeer,
                    peer: Some(other.clone()),
                    offerer,
                    reason: None,
                },
            );
        }
    }

    /// Takes the pair back on the MCU: their media is unparked before they
    /// are told, so the canvas is on its way when they resume sending.
    fn back_to_mcu(&mut self) {
        let Some(pair) = self.direct.stop() else {
            return;
        };
        let reason = self.mode.cause().map(|c| c.describe());
        self.media.wake();
        for id in &pair {
            self.unpark(id);
            self.send(
                id,
                ServerMessage::Mode {
                    mode: Mode::Mcu,
                    peer: None,
                    offerer: false,
                    reason: reason.clone(),
                },
            );
        }
    }

    /// Passes a pair member's offer, answer or candidate to the other.
    pub(super) fn on_peer(&mut self, from: &ParticipantId, signal: PeerSignal) {
        let Some(to) = self.direct.other(from).cloned() else {
            self.reply_error(
                from,
                ErrorCode::OutOfOrder,
                format!(
                    "the room is not peer-to-peer for you now (mode {}): send media to the server",
                    self.mode.mode().as_str()
                ),
            );
            return;
        };
        let offerer = self.direct.is_offerer(from);
        let msg = match signal {
            PeerSignal::Offer(sdp) if offerer => ServerMessage::PeerOffer {
                from: from.clone(),
                sdp,
            },
            PeerSignal::Answer(sdp) if !offerer => ServerMessage::PeerAnswer {
                from: from.clone(),
                sdp,
            },
            PeerSignal::Ice {
                candidate,
                mline,
                mid,
            } => ServerMessage::PeerIce {
                from: from.clone(),
                candidate,
                sdp_m_line_index: mline,
                sdp_mid: mid,
            },
            PeerSignal::Offer(_) | PeerSignal::Answer(_) => {
                let (wanted, other) = if offerer {
                    ("peerOffer", "peerAnswer")
                } else {
                    ("peerAnswer", "peerOffer")
                };
                self.reply_error(
                    from,
                    ErrorCode::OutOfOrder,
                    format!("{other} is the other side's: this client sends {wanted} (`offerer` in `mode`)"),
                );
                return;
            }
        };
        self.send(&to, msg);
    }

    /// A pair member's direct connection came up, or failed.
    pub(super) fn on_direct(&mut self, from: &ParticipantId, connected: bool) {
        match self.direct.report(from, connected) {
            DirectChange::None => {
                debug!(participant = %from, connected, "direct connection report");
            }
            DirectChange::Up => {
                info!("the direct connection is up: the pair's media on the server rests");
                if let Some(pair) = self.direct.pair().cloned() {
                    for id in &pair {
                        self.park(id);
                    }
                    self.media.rest();
                }
            }
            DirectChange::Failed => {
                warn!(participant = %from, "the direct connection failed or dropped");
                self.direct_failed();
            }
        }
    }

    /// Stops encoding the canvas for a member of a connected pair.
    fn park(&mut self, id: &ParticipantId) {
        let Some(p) = self.participants.get_mut(id) else {
            return;
        };
        p.parked = true;
        if let Some(pm) = p.media.as_mut() {
            if let Err(e) = self.media.set_tier(pm, Tier::AudioOnly) {
                warn!(participant = %id, "canvas not parked: {e:#}");
            }
        }
        self.count_tiers();
    }

    /// Sends a member the canvas again, and asks it for a keyframe of its
    /// camera, which it paused.
    fn unpark(&mut self, id: &ParticipantId) {
        let Some(p) = self.participants.get_mut(id) else {
            return;
        };
        if !std::mem::take(&mut p.parked) {
            return;
        }
        let tier = p.downlink.tier();
        if let Some(pm) = p.media.as_mut() {
            if let Err(e) = self.media.set_tier(pm, tier) {
                warn!(participant = %id, %tier, "canvas not resumed: {e:#}");
            }
            self.media.request_camera_keyframe(pm);
        }
    }

    /// The mode, when it last changed, and why the room is on the MCU.
    pub(super) fn mode_figures(&self) -> ModeFigures {
        ModeFigures {
            mode: self.mode.mode(),
            since: self.mode_since,
            mcu_cause: self.mode.cause().map(|c| c.describe()),
        }
    }
}
