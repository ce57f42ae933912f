//! The lobby: a caller of `sip.lobby` hears a short spoken prompt, types
//! a room's PIN on its keypad (RFC 4733 telephone-events) and `#`; three
//! wrong PINs, or none at all, end the call politely.

use std::net::UdpSocket;
use std::time::Duration;

use rsipstack::dialog::dialog::DialogState;
use tracing::{info, warn};

use super::answered::{bye, Answered};
use super::Shared;
use crate::ids::RoomId;
use crate::media::phone::PhoneLeg;
use crate::media::phone_prompt::PromptLeg;

/// PINs a caller may try.
pub const ATTEMPTS: usize = 3;
/// Digits of a PIN at most.
pub const MAX_DIGITS: usize = 12;
/// How long the caller may take over one key.
const KEY_WAIT: Duration = Duration::from_secs(10);

/// How the lobby ended.
pub(super) enum Outcome {
    /// A right PIN: the room to join.
    Room(RoomId),
    /// No right PIN in [`ATTEMPTS`] tries (told goodbye).
    Wrong,
    /// The caller hung up, or the server is stopping (BYE sent).
    HungUp,
}

/// Keys typed so far: digits until `#` (or [`MAX_DIGITS`]); `*` starts
/// again.
#[derive(Debug, Default)]
pub struct PinEntry {
    digits: String,
}

impl PinEntry {
    /// Takes a key; gives the PIN when it is complete.
    pub fn key(&mut self, key: char) -> Option<String> {
        match key {
            '#' => Some(std::mem::take(&mut self.digits)),
            '*' => {
                self.digits.clear();
                None
            }
            d if d.is_ascii_digit() => {
                self.digits.push(d);
                (self.digits.len() >= MAX_DIGITS).then(|| std::mem::take(&mut self.digits))
            }
            _ => None,
        }
    }
}

/// The room whose PIN is `pin`, if any.
pub fn room_of(pins: &std::collections::BTreeMap<String, String>, pin: &str) -> Option<RoomId> {
    if pin.is_empty() {
        return None;
    }
    pins.iter()
        .find(|(_, p)| p.as_str() == pin)
        .and_then(|(room, _)| RoomId::parse(room.clone()).ok())
}

/// Asks the caller for a PIN until it gives a right one, gives up, hangs
/// up, or the server stops.
pub(super) async fn ask(
    shared: &Shared,
    leg: &PhoneLeg,
    socket: &UdpSocket,
    answered: &mut Answered,
) -> Outcome {
    let mut prompts = match PromptLeg::start(socket, leg) {
        Ok(p) => p,
        Err(e) => {
            warn!("the lobby's prompts: {e:#}");
            bye(answered).await;
            return Outcome::HungUp;
        }
    };
    let dir = &shared.config.prompts_dir;
    let mut prompt = "enter-pin.wav";
    for attempt in 1..=ATTEMPTS {
        let path = dir.join(prompt);
        let entered = tokio::select! {
            entered = attempt_pin(&mut prompts, &path) => entered,
            () = ended(answered) => return Outcome::HungUp,
            () = shared.stop.cancelled() => {
                bye(answered).await;
                return Outcome::HungUp;
            }
        };
        match entered
            .as_deref()
            .map(|pin| room_of(&shared.config.pins, pin))
        {
            Some(Some(room)) => {
                info!(%room, "right PIN");
                let _ = prompts.play(&dir.join("welcome.wav")).await;
                prompts.stop();
                return Outcome::Room(room);
            }
            _ => info!(attempt, "wrong or no PIN"),
        }
        prompt = "wrong-pin.wav";
    }
    let _ = prompts.play(&dir.join("goodbye.wav")).await;
    Outcome::Wrong
}

/// Plays `prompt` and reads one PIN (keys typed during the prompt count);
/// None when the caller stopped typing.
async fn attempt_pin(prompts: &mut PromptLeg, prompt: &std::path::Path) -> Option<String> {
    if let Err(e) = prompts.play(prompt).await {
        warn!("{e:#}");
    }
    let mut entry = PinEntry::default();
    loop {
        let key = prompts.key(KEY_WAIT).await?;
        if let Some(pin) = entry.key(key) {
            return Some(pin);
        }
    }
}

/// Resolves when the caller hangs up; notes its ACK meanwhile.
async fn ended(answered: &mut Answered) {
    loop {
        match answered.states.recv().await {
            Some(DialogState::Confirmed(..)) => answered.confirmed = true,
            Some(DialogState::Terminated(..)) | None => return,
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_ends_with_hash_or_its_twelfth_digit_and_star_starts_again() {
        let mut e = PinEntry::default();
        assert_eq!(e.key('1'), None);
        assert_eq!(e.key('2'), None);
        assert_eq!(e.key('#'), Some("12".into()));
        assert_eq!(e.key('9'), None);
        assert_eq!(e.key('*'), None);
        assert_eq!(e.key('4'), None);
        assert_eq!(e.key('A'), None);
        assert_eq!(e.key('#'), Some("4".into()));
        let long: Vec<_> = "123456789012".chars().map(|k| e.key(k)).collect();
        assert_eq!(long.last().unwrap().as_deref(), Some("123456789012"));
    }

    #[test]
    fn a_pin_finds_its_room_and_nothing_else_does() {
        let pins = [("math-7".to_string(), "4321".to_string())]
            .into_iter()
            .collect();
        assert_eq!(room_of(&pins, "4321").unwrap().as_str(), "math-7");
        assert!(room_of(&pins, "1234").is_none());
        assert!(room_of(&pins, "").is_none());
    }
}
