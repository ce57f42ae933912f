//! The room's chat: a message from a participant goes to everyone in the
//! room, checked against the chat rules (`room::chat`), kept for those who
//! join later and in the recording's timeline. A teacher turns chat off
//! for students (teachers may always write).

use std::time::{Instant, SystemTime};

use tracing::debug;

use super::RoomActor;
use crate::ids::ParticipantId;
use crate::protocol::{ErrorCode, Role, ServerMessage};
use crate::recording::Event;
use crate::room::chat::{check_text, ChatRefusal, HISTORY};

impl RoomActor {
    /// A participant's chat message: refused with the reason, or passed to
    /// everyone.
    pub(super) fn on_chat(&mut self, from: &ParticipantId, text: String) {
        let enabled = self.chat_enabled;
        let Some(p) = self.participants.get_mut(from) else {
            return;
        };
        if !enabled && p.role != Role::Teacher {
            return self.reply_error(
                from,
                ErrorCode::Forbidden,
                "the teacher turned chat off for students".into(),
            );
        }
        if let Err(refusal) = check_text(&text).and_then(|()| p.chat_rate.take(Instant::now())) {
            let code = match refusal {
                ChatRefusal::Blank => ErrorCode::BadMessage,
                ChatRefusal::TooLong(_) => ErrorCode::TooLarge,
                ChatRefusal::TooFast(_) => ErrorCode::RateLimited,
            };
            return self.reply_error(from, code, refusal.to_string());
        }
        let name = p.name.clone();
        debug!(participant = %from, chars = text.chars().count(), "chat");
        self.note(|at_ms| Event::Chat {
            at_ms,
            participant: from.to_string(),
            name: name.clone(),
            text: text.clone(),
        });
        let msg = ServerMessage::Chat {
            from: from.clone(),
            name,
            text,
            at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            history: false,
        };
        if self.chat_history.len() == HISTORY {
            self.chat_history.pop_front();
        }
        self.chat_history.push_back(msg.clone());
        let ids: Vec<_> = self.participants.keys().cloned().collect();
        for id in ids {
            self.send(&id, msg.clone());
        }
    }

    /// A teacher turned chat on or off for students; everyone is told.
    pub(super) fn set_chat(&mut self, enabled: bool) {
        if self.chat_enabled == enabled {
            return;
        }
        self.chat_enabled = enabled;
        let ids: Vec<_> = self.participants.keys().cloned().collect();
        for id in ids {
            self.send(&id, ServerMessage::ChatState { enabled });
        }
    }

    /// A newcomer learns that students may not chat, if so (a client
    /// joins with chat on), and gets the recent messages.
    pub(super) fn greet_chat(&mut self, id: &ParticipantId) {
        if !self.chat_enabled {
            self.send(id, ServerMessage::ChatState { enabled: false });
        }
        let history: Vec<ServerMessage> = self
            .chat_history
            .iter()
            .cloned()
            .map(|mut m| {
                if let ServerMessage::Chat { history, .. } = &mut m {
                    *history = true;
                }
                m
            })
            .collect();
        for m in history {
            self.send(id, m);
        }
    }
}
