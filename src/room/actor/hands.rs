//! Raised hands: a participant raises or lowers its own; a teacher lowers
//! one or all. The room keeps them in the order they went up, shows each
//! on its tile (`layout::decor`), in everyone's participant list (its
//! place in the queue), and in the recording's timeline.

use std::collections::HashMap;

use tracing::info;

use super::RoomActor;
use crate::ids::ParticipantId;
use crate::recording::Event;

impl RoomActor {
    /// The participant raised (or lowered) its own hand.
    pub(super) fn on_hand(&mut self, id: &ParticipantId, raised: bool) {
        let Some(p) = self.participants.get_mut(id) else {
            return;
        };
        if p.hand.is_some() == raised {
            return;
        }
        if raised {
            self.hands_raised += 1;
            p.hand = Some(self.hands_raised);
        } else {
            p.hand = None;
        }
        info!(participant = %id, raised, "hand");
        self.note(|at_ms| Event::Hand {
            at_ms,
            participant: id.to_string(),
            raised,
            by: None,
        });
        self.hands_changed();
    }

    /// A teacher (`by`; None: the admin API) lowers `target`'s hand, or
    /// every hand.
    pub(super) fn lower_hands(
        &mut self,
        target: Option<&ParticipantId>,
        by: Option<&ParticipantId>,
    ) {
        let lowered: Vec<ParticipantId> = self
            .participants
            .iter_mut()
            .filter(|(id, p)| p.hand.is_some() && target.is_none_or(|t| t == *id))
            .map(|(id, p)| {
                p.hand = None;
                id.clone()
            })
            .collect();
        if lowered.is_empty() {
            return;
        }
        for id in &lowered {
            self.note(|at_ms| Event::Hand {
                at_ms,
                participant: id.to_string(),
                raised: false,
                by: Some(by.map_or_else(|| "admin".to_string(), |b| b.to_string())),
            });
        }
        self.hands_changed();
    }

    /// Each raised hand's place in the queue, 1 for the first raised.
    pub(super) fn hand_places(&self) -> HashMap<ParticipantId, u32> {
        let mut up: Vec<(u64, &ParticipantId)> = self
            .participants
            .iter()
            .filter_map(|(id, p)| p.hand.map(|at| (at, id)))
            .collect();
        up.sort();
        up.into_iter()
            .enumerate()
            .map(|(i, (_, id))| (id.clone(), i as u32 + 1))
            .collect()
    }

    /// Redraws the tiles' markers and tells everyone.
    fn hands_changed(&mut self) {
        self.relayout();
        self.broadcast_participants(None);
    }
}
