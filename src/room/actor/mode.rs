//! The room's mode: whether it may run peer-to-peer or stays on the MCU,
//! decided after every change of what the room holds (`room::mode`, pure),
//! logged with its cause, counted in the metrics and shown by the API.
//!
//! No client can yet say that it connects directly, so every room stays on
//! the MCU and says why; the decision is in place for when one can.

use std::time::{Instant, SystemTime};

use tracing::info;

use super::RoomActor;
use crate::room::mode::{Mode, ModeFigures, RoomState};

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
            allowed: self.registry.mode_policy().p2p,
            members: members
                .into_iter()
                .map(|(_, id, direct)| (id, direct))
                .collect(),
            recording: self.recording.is_some(),
            canvas: self.participants.values().any(|p| p.sharing),
        }
    }

    /// Decides the mode for what the room holds now; a switch is logged
    /// and counted.
    pub(super) fn decide_mode(&mut self) {
        let state = self.mode_state();
        let Some(mode) = self.mode.decide(Instant::now(), &state) else {
            return;
        };
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
