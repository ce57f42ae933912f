//! Teachers' say over others: who may change the room (teachers, and the
//! admin API), who may join (capacity, the lock, removed tokens), silencing a voice, removing a participant (banning its token
//! from the room until it expires) and locking the room.

use crate::ids::ParticipantId;
use tracing::info;

use super::refusal::Refusal;
use super::RoomActor;
use crate::auth::{Identity, TokenError};
use crate::protocol::{ErrorCode, Role, ServerMessage};
use crate::room::LeaveReason;

/// Something a teacher (or the admin API) does to others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moderation {
    /// Silence a participant's voice for everyone, or restore it.
    Silence {
        /// Participant id.
        participant: ParticipantId,
        /// Silence or restore.
        muted: bool,
    },
    /// Remove a participant; its token cannot rejoin until it expires.
    Remove {
        /// Participant id.
        participant: ParticipantId,
    },
    /// Only teachers may join while locked.
    Lock {
        /// Lock or unlock.
        locked: bool,
    },
    /// Let students chat, or not.
    Chat {
        /// Chat on for students.
        enabled: bool,
    },
    /// Lower a participant's raised hand, or every hand (None).
    LowerHand {
        /// Participant id; None: all.
        participant: Option<ParticipantId>,
    },
}

impl Moderation {
    fn describe(&self) -> &'static str {
        match self {
            Moderation::Silence { .. } => "mute another participant",
            Moderation::Remove { .. } => "remove a participant",
            Moderation::Lock { .. } => "lock or unlock the room",
            Moderation::LowerHand { .. } => "lower a raised hand",
            Moderation::Chat { .. } => "turn chat on or off",
        }
    }
}

impl RoomActor {
    /// Checks that `by` (a participant, or None for the admin API) may
    /// change the room; tells a refused participant why.
    pub(super) fn authorize(
        &mut self,
        by: Option<&ParticipantId>,
        what: &'static str,
    ) -> Result<(), Refusal> {
        let Some(id) = by else {
            return Ok(());
        };
        match self.participants.get(id) {
            Some(p) if p.role == Role::Teacher => Ok(()),
            Some(_) => Err(self.tell(by, Refusal::NotTeacher { what })),
            None => Err(Refusal::AskerGone {
                room: self.room.clone(),
                participant: id.clone(),
            }),
        }
    }

    /// Tells the asker (a participant; nobody for the admin API) why it
    /// was refused, and hands the refusal back.
    pub(super) fn tell(&mut self, asker: Option<&ParticipantId>, refusal: Refusal) -> Refusal {
        if let Some(asker) = asker {
            self.reply_error(asker, refusal.code(), refusal.to_string());
        }
        refusal
    }

    /// Why `who` may not join now, if it may not.
    pub(super) fn join_refusal(&self, who: &Identity) -> Option<(ErrorCode, String)> {
        if self.closing {
            return Some((
                ErrorCode::RoomUnavailable,
                format!("room {} is closing; join again in a moment", self.room),
            ));
        }
        if let Some((jti, _)) = &who.token {
            if self.registry.policy().bans.is_banned(&self.room, jti) {
                return Some((
                    ErrorCode::Unauthorized,
                    TokenError::Removed(self.room.to_string()).to_string(),
                ));
            }
        }
        let max = self.registry.policy().limits.participants_per_room;
        if self.participants.len() >= max {
            return Some((
                ErrorCode::RoomUnavailable,
                format!(
                    "room {} is full: it has its maximum of {max} participants (limits.participants_per_room)",
                    self.room
                ),
            ));
        }
        if self.locked && who.role != Role::Teacher {
            return Some((
                ErrorCode::Forbidden,
                format!(
                    "room {} is locked by its teacher; only teachers may join now",
                    self.room
                ),
            ));
        }
        None
    }

    /// Carries out `action` if `by` may; a refused participant is told why.
    pub(super) fn moderate(
        &mut self,
        by: Option<&ParticipantId>,
        action: Moderation,
    ) -> Result<(), Refusal> {
        self.authorize(by, action.describe())?;
        let target = match &action {
            Moderation::Silence { participant, .. } | Moderation::Remove { participant } => {
                Some(participant.clone())
            }
            Moderation::LowerHand { participant } => participant.clone(),
            Moderation::Lock { .. } | Moderation::Chat { .. } => None,
        };
        // A teacher may lower another teacher's hand.
        let spares_teachers = !matches!(action, Moderation::LowerHand { .. });
        if let Some(target) = &target {
            let refusal = match self.participants.get(target) {
                None => Some(Refusal::NoParticipant {
                    room: self.room.clone(),
                    participant: target.clone(),
                }),
                Some(p) if spares_teachers && by.is_some() && p.role == Role::Teacher => {
                    Some(Refusal::TargetIsTeacher {
                        what: action.describe(),
                    })
                }
                Some(_) => None,
            };
            if let Some(refusal) = refusal {
                return Err(self.tell(by, refusal));
            }
        }
        info!(by = ?by, ?action, "moderation");
        match action {
            Moderation::Silence { participant, muted } => {
                let Some(p) = self.participants.get_mut(&participant) else {
                    return Ok(());
                };
                if p.silenced == muted {
                    return Ok(());
                }
                p.silenced = muted;
                if let Some(m) = p.media.as_mut() {
                    m.set_silenced(muted);
                }
                self.relayout();
                self.broadcast_participants(None);
            }
            Moderation::Remove { participant } => {
                if let Some((jti, exp)) = self
                    .participants
                    .get(&participant)
                    .and_then(|p| p.token.clone())
                {
                    self.registry.policy().bans.ban(&self.room, &jti, exp);
                }
                self.remove(&participant, LeaveReason::Removed);
            }
            Moderation::LowerHand { participant } => self.lower_hands(participant.as_ref(), by),
            Moderation::Chat { enabled } => self.set_chat(enabled),
            Moderation::Lock { locked } => {
                if self.locked != locked {
                    self.locked = locked;
                    let ids: Vec<_> = self.participants.keys().cloned().collect();
                    for id in ids {
                        self.send(&id, ServerMessage::Locked { locked });
                    }
                }
            }
        }
        Ok(())
    }
}
