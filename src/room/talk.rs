//! Who is talking, from voice levels, with hysteresis.
//!
//! A listener who is not talking hears the full mix: their own voice in it
//! is below [`TALK_START_DBFS`], inaudible. So only talkers need their own
//! mix-minus encode; everyone else shares one encode of the full mix. A
//! talker stays a talker for [`TALK_HOLD`] after their last loud moment, so
//! the pauses between words do not flip them back and forth.

use std::time::{Duration, Instant};

/// Loudness (RMS, dBFS) above which a voice counts as talking. Room noise
/// through a browser's noise suppression sits well below it; speech and
/// the test tones sit well above.
pub const TALK_START_DBFS: f64 = -45.0;
/// How long a talker stays one after their last loud level.
pub const TALK_HOLD: Duration = Duration::from_millis(1500);

/// Talking state of one voice.
#[derive(Debug, Clone, Default)]
pub struct TalkDetector {
    talking: bool,
    last_loud: Option<Instant>,
}

impl TalkDetector {
    /// Whether the voice counts as talking now.
    pub fn is_talking(&self) -> bool {
        self.talking
    }

    /// Feeds one level reading; returns the new state when it changed.
    pub fn update(&mut self, rms_dbfs: f64, now: Instant) -> Option<bool> {
        if rms_dbfs > TALK_START_DBFS {
            self.last_loud = Some(now);
        }
        let talking = self
            .last_loud
            .is_some_and(|t| now.duration_since(t) < TALK_HOLD);
        (talking != self.talking).then(|| {
            self.talking = talking;
            talking
        })
    }
}

impl TalkDetector {
    /// Ends the talking of a voice that stopped arriving (paused, or cut
    /// off): with no levels, [`TalkDetector::update`] would never see it
    /// fall quiet. Returns whether it stopped talking.
    pub fn expire(&mut self, now: Instant) -> bool {
        let stale = self
            .last_loud
            .is_none_or(|t| now.duration_since(t) >= TALK_HOLD);
        if self.talking && stale {
            self.talking = false;
            return true;
        }
        false
    }
}

/// Who holds the floor: the loudest talker, who keeps it for at least a
/// hold time against a louder rival, and keeps it when everyone falls quiet
/// (the last speaker stays large until someone else speaks).
#[derive(Debug, Clone)]
pub struct Floor<Id> {
    hold: Duration,
    current: Option<Id>,
    since: Option<Instant>,
}

impl<Id: Clone + PartialEq> Floor<Id> {
    /// A floor that changes hands at most once per `hold`.
    pub fn new(hold: Duration) -> Floor<Id> {
        Floor {
            hold,
            current: None,
            since: None,
        }
    }

    /// The participant holding the floor.
    pub fn speaker(&self) -> Option<&Id> {
        self.current.as_ref()
    }

    /// Feeds the loudest participant talking now (None: nobody talks);
    /// returns the new speaker when the floor changed hands.
    pub fn update(&mut self, loudest: Option<&Id>, now: Instant) -> Option<Id> {
        let candidate = loudest?;
        if self.current.as_ref() == Some(candidate) {
            return None;
        }
        let held_long_enough = self
            .since
            .is_none_or(|t| now.duration_since(t) >= self.hold);
        if !held_long_enough {
            return None;
        }
        self.current = Some(candidate.clone());
        self.since = Some(now);
        self.current.clone()
    }

    /// Forgets a participant who left; the floor is free again.
    pub fn remove(&mut self, id: &Id) -> bool {
        if self.current.as_ref() == Some(id) {
            self.current = None;
            self.since = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_changes_hands_at_most_once_per_hold() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut f = Floor::new(Duration::from_secs(2));
        assert_eq!(f.update(None, ms(0)), None);
        assert_eq!(f.update(Some(&"a"), ms(100)), Some("a"));
        // b is louder a moment later: a keeps the floor until the hold ends.
        assert_eq!(f.update(Some(&"b"), ms(600)), None);
        assert_eq!(f.update(Some(&"b"), ms(2000)), None);
        assert_eq!(f.update(Some(&"b"), ms(2100)), Some("b"));
        // Silence keeps the last speaker.
        assert_eq!(f.update(None, ms(9000)), None);
        assert_eq!(f.speaker(), Some(&"b"));
        assert!(f.remove(&"b"));
        assert_eq!(f.update(Some(&"a"), ms(9100)), Some("a"));
    }

    #[test]
    fn starts_at_once_and_holds_through_pauses() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut d = TalkDetector::default();
        assert_eq!(d.update(-70.0, ms(0)), None);
        assert!(!d.is_talking());
        assert_eq!(d.update(-20.0, ms(50)), Some(true));
        // A pause shorter than the hold keeps the floor.
        assert_eq!(d.update(-80.0, ms(900)), None);
        assert_eq!(d.update(-25.0, ms(1000)), None);
        assert_eq!(d.update(-80.0, ms(2400)), None);
        // Silence longer than the hold ends it.
        assert_eq!(d.update(-80.0, ms(2600)), Some(false));
        assert_eq!(d.update(-80.0, ms(5000)), None);
    }

    #[test]
    fn threshold_is_exclusive() {
        let mut d = TalkDetector::default();
        assert_eq!(d.update(TALK_START_DBFS, Instant::now()), None);
        assert_eq!(d.update(TALK_START_DBFS + 0.1, Instant::now()), Some(true));
    }

    #[test]
    fn a_voice_that_stops_arriving_stops_talking_after_the_hold() {
        let t0 = Instant::now();
        let mut d = TalkDetector::default();
        assert_eq!(d.update(-20.0, t0), Some(true));
        assert!(!d.expire(t0 + Duration::from_millis(500)));
        assert!(d.is_talking());
        assert!(d.expire(t0 + TALK_HOLD));
        assert!(!d.is_talking());
        assert!(!d.expire(t0 + TALK_HOLD * 2));
    }
}
