//! Whether a room runs peer-to-peer or on the MCU: pure decisions over
//! what the room holds now.
//!
//! A room of exactly two, both able to connect directly, with nothing that
//! needs the server's media (a recording, a layout that needs the canvas)
//! and a policy that allows it, may run peer-to-peer: the two browsers send
//! their media to each other and the server only signals. Anything else
//! runs on the MCU. A move to the MCU happens at once (a third person must
//! see the canvas within a second); a move back to peer-to-peer waits until
//! the room has wanted it for a whole hold, so that someone who reconnects
//! does not make the room flap. A pair whose direct connection did not come
//! up stays on the MCU until the pair changes.

use std::time::{Duration, Instant};

use crate::ids::ParticipantId;

/// The server's mode settings (`[rooms]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModePolicy {
    /// Rooms of two may go peer-to-peer (`rooms.p2p = "auto"`).
    pub p2p: bool,
    /// How long a room that may go peer-to-peer again waits on the MCU.
    pub hold: Duration,
}

impl Default for ModePolicy {
    fn default() -> Self {
        ModePolicy {
            p2p: true,
            hold: Duration::from_secs(10),
        }
    }
}

/// A room's mode as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeFigures {
    /// The mode now.
    pub mode: Mode,
    /// When it last changed.
    pub since: std::time::SystemTime,
    /// Why the room is on the MCU, while it is.
    pub mcu_cause: Option<String>,
}

pub use crate::ids::Mode;

/// Why a room is on the MCU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McuCause {
    /// The server's or the room's policy keeps it there (`rooms.p2p`, a
    /// token claim).
    Policy,
    /// The room has not exactly two participants.
    Members(usize),
    /// A recording runs: it needs both on the server.
    Recording,
    /// The layout needs the canvas (a shared screen in its slot).
    Canvas,
    /// This participant's client cannot connect directly.
    Client(ParticipantId),
    /// The pair's direct connection did not come up in time.
    DirectFailed,
}

impl McuCause {
    /// Words for the log and `GET /api/rooms/{room}`.
    pub fn describe(&self) -> String {
        match self {
            McuCause::Policy => "peer-to-peer is off for this room".into(),
            McuCause::Members(n) => format!("{n} participants (peer-to-peer takes exactly two)"),
            McuCause::Recording => "a recording runs".into(),
            McuCause::Canvas => "the layout needs the canvas".into(),
            McuCause::Client(id) => format!("{id}'s client cannot connect directly"),
            McuCause::DirectFailed => "the direct connection did not come up".into(),
        }
    }

    /// The label metrics count switches by.
    pub fn label(&self) -> &'static str {
        match self {
            McuCause::Policy => "policy",
            McuCause::Members(_) => "members",
            McuCause::Recording => "recording",
            McuCause::Canvas => "canvas",
            McuCause::Client(_) => "client",
            McuCause::DirectFailed => "direct_failed",
        }
    }
}

/// What the room holds now, as far as its mode is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomState {
    /// Peer-to-peer is allowed by the server's config and the room's tokens.
    pub allowed: bool,
    /// The participants with media, each with whether its client can
    /// connect directly, in join order.
    pub members: Vec<(ParticipantId, bool)>,
    /// A recording runs.
    pub recording: bool,
    /// The layout needs the canvas.
    pub canvas: bool,
}

/// Why `state` needs the MCU; None when it may run peer-to-peer.
pub fn needs_mcu(state: &RoomState) -> Option<McuCause> {
    if !state.allowed {
        return Some(McuCause::Policy);
    }
    if state.members.len() != 2 {
        return Some(McuCause::Members(state.members.len()));
    }
    if let Some((id, _)) = state.members.iter().find(|(_, capable)| !capable) {
        return Some(McuCause::Client(id.clone()));
    }
    if state.recording {
        return Some(McuCause::Recording);
    }
    state.canvas.then_some(McuCause::Canvas)
}

/// The pair a peer-to-peer room connects: the first to join offers.
pub fn offerer(state: &RoomState) -> Option<&ParticipantId> {
    state.members.first().map(|(id, _)| id)
}

/// A room's mode over time: moves to the MCU at once, back only after a
/// hold, and not again for a pair whose direct connection failed.
#[derive(Debug, Clone)]
pub struct ModeSwitch {
    hold: Duration,
    mode: Mode,
    /// When the mode last changed.
    since: Instant,
    /// Why the room is on the MCU, while it is.
    cause: Option<McuCause>,
    /// Since when the room has wanted peer-to-peer, while on the MCU.
    wanted_since: Option<Instant>,
    /// The pair whose direct connection failed.
    failed_pair: Option<[ParticipantId; 2]>,
}

impl ModeSwitch {
    /// A new room: on the MCU (it has nobody yet), moving back to
    /// peer-to-peer after `hold`.
    pub fn new(now: Instant, hold: Duration) -> ModeSwitch {
        ModeSwitch {
            hold,
            mode: Mode::Mcu,
            since: now,
            cause: Some(McuCause::Members(0)),
            wanted_since: None,
            failed_pair: None,
        }
    }

    /// The mode now.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// When the mode last changed.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// Why the room is on the MCU, while it is.
    pub fn cause(&self) -> Option<&McuCause> {
        self.cause.as_ref()
    }

    /// The pair's direct connection did not come up: back to the MCU, and
    /// there until the pair changes. Returns the new mode if it changed.
    pub fn direct_failed(&mut self, now: Instant, state: &RoomState) -> Option<Mode> {
        if let [(a, _), (b, _)] = state.members.as_slice() {
            self.failed_pair = Some([a.clone(), b.clone()]);
        }
        self.wanted_since = None;
        self.set(now, Mode::Mcu, Some(McuCause::DirectFailed))
    }

    /// Decides the mode for what the room holds now (call at every change
    /// and now and then, for the hold to end). Returns the new mode if it
    /// changed.
    pub fn decide(&mut self, now: Instant, state: &RoomState) -> Option<Mode> {
        let cause = needs_mcu(state).or_else(|| self.failed_again(state));
        match (cause, self.mode) {
            (Some(cause), _) => {
                self.wanted_since = None;
                self.set(now, Mode::Mcu, Some(cause))
            }
            (None, Mode::PeerToPeer) => None,
            (None, Mode::Mcu) => {
                let wanted_since = *self.wanted_since.get_or_insert(now);
                // A room that just had its second member joined has nothing
                // to flap from: it goes peer-to-peer at once. A room that
                // was on the MCU for another reason waits out the hold.
                let fresh_pair = matches!(self.cause, Some(McuCause::Members(n)) if n < 2);
                if fresh_pair || now.saturating_duration_since(wanted_since) >= self.hold {
                    self.wanted_since = None;
                    self.set(now, Mode::PeerToPeer, None)
                } else {
                    None
                }
            }
        }
    }

    /// [`McuCause::DirectFailed`] while the pair that failed is the pair.
    fn failed_again(&mut self, state: &RoomState) -> Option<McuCause> {
        let pair = self.failed_pair.as_ref()?;
        let same = state.members.len() == 2
            && state
                .members
                .iter()
                .all(|(id, _)| pair.iter().any(|p| p == id));
        if same {
            Some(McuCause::DirectFailed)
        } else {
            self.failed_pair = None;
            None
        }
    }

    fn set(&mut self, now: Instant, mode: Mode, cause: Option<McuCause>) -> Option<Mode> {
        self.cause = cause;
        if mode == self.mode {
            return None;
        }
        self.mode = mode;
        self.since = now;
        Some(mode)
    }
}

/// How long a pair has to bring its direct connection up.
pub const DIRECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a report on the pair's direct connection changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectChange {
    /// Nothing to do.
    None,
    /// Both sides said it is up: the server's media for the pair can rest.
    Up,
    /// It failed, dropped or never came up: back to the MCU.
    Failed,
}

/// The pair's direct connection while the room runs peer-to-peer: who
/// must connect, by when, and who said it is up.
#[derive(Debug, Clone, Default)]
pub struct DirectLink {
    /// The pair, offerer first; None while the room is on the MCU.
    pair: Option<[ParticipantId; 2]>,
    /// When the connection must be up by, until it is.
    deadline: Option<Instant>,
    /// Who said its side is up.
    up: [bool; 2],
}

impl DirectLink {
    /// The room went peer-to-peer: `pair` (offerer first) connects now.
    pub fn start(&mut self, pair: [ParticipantId; 2], now: Instant) {
        self.pair = Some(pair);
        self.deadline = Some(now + DIRECT_TIMEOUT);
        self.up = [false; 2];
    }

    /// The room left peer-to-peer; returns the pair it had.
    pub fn stop(&mut self) -> Option<[ParticipantId; 2]> {
        self.deadline = None;
        self.up = [false; 2];
        self.pair.take()
    }

    /// The pair, offerer first, while the room runs peer-to-peer.
    pub fn pair(&self) -> Option<&[ParticipantId; 2]> {
        self.pair.as_ref()
    }

    /// The other participant of the pair, if `id` is in it.
    pub fn other(&self, id: &ParticipantId) -> Option<&ParticipantId> {
        let [a, b] = self.pair.as_ref()?;
        if a == id {
            Some(b)
        } else if b == id {
            Some(a)
        } else {
            None
        }
    }

    /// Whether `id` makes the offer.
    pub fn is_offerer(&self, id: &ParticipantId) -> bool {
        self.pair.as_ref().is_some_and(|[a, _]| a == id)
    }

    /// Both sides said the connection is up.
    pub fn is_up(&self) -> bool {
        self.pair.is_some() && self.up == [true; 2]
    }

    /// `id` says its side is up (`connected`) or failed.
    pub fn report(&mut self, id: &ParticipantId, connected: bool) -> DirectChange {
        let Some(i) = self
            .pair
            .as_ref()
            .and_then(|pair| pair.iter().position(|p| p == id))
        else {
            return DirectChange::None;
        };
        if !connected {
            return DirectChange::Failed;
        }
        let was_up = self.is_up();
        self.up[i] = true;
        if self.is_up() && !was_up {
            self.deadline = None;
            DirectChange::Up
        } else {
            DirectChange::None
        }
    }

    /// Whether the connection missed its deadline at `now`.
    pub fn overdue(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_secs(10);

    fn id(s: &str) -> ParticipantId {
        ParticipantId::parse(s).expect("a participant id")
    }

    fn room(members: &[&str]) -> RoomState {
        RoomState {
            allowed: true,
            members: members.iter().map(|m| (id(m), true)).collect(),
            recording: false,
            canvas: false,
        }
    }

    fn at(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn exactly_two_capable_members_with_nothing_on_the_server_go_direct() {
        assert_eq!(needs_mcu(&room(&["a", "b"])), None);
        assert_eq!(needs_mcu(&room(&["a"])), Some(McuCause::Members(1)));
        assert_eq!(
            needs_mcu(&room(&["a", "b", "c"])),
            Some(McuCause::Members(3))
        );
        let mut r = room(&["a", "b"]);
        r.members[1].1 = false;
        assert_eq!(needs_mcu(&r), Some(McuCause::Client(id("b"))));
        let mut r = room(&["a", "b"]);
        r.recording = true;
        assert_eq!(needs_mcu(&r), Some(McuCause::Recording));
        let mut r = room(&["a", "b"]);
        r.canvas = true;
        assert_eq!(needs_mcu(&r), Some(McuCause::Canvas));
        let mut r = room(&["a", "b"]);
        r.allowed = false;
        assert_eq!(needs_mcu(&r), Some(McuCause::Policy));
        assert_eq!(offerer(&room(&["a", "b"])), Some(&id("a")));
    }

    #[test]
    fn a_second_member_goes_direct_at_once_a_third_moves_to_the_mcu_at_once() {
        let t0 = Instant::now();
        let mut m = ModeSwitch::new(t0, HOLD);
        assert_eq!(m.decide(at(t0, 0), &room(&["a"])), None);
        assert_eq!(
            m.decide(at(t0, 5), &room(&["a", "b"])),
            Some(Mode::PeerToPeer)
        );
        assert_eq!(m.cause(), None);
        assert_eq!(
            m.decide(at(t0, 6), &room(&["a", "b", "c"])),
            Some(Mode::Mcu)
        );
        assert_eq!(m.cause(), Some(&McuCause::Members(3)));
        assert_eq!(m.since(), at(t0, 6));
    }

    #[test]
    fn back_to_two_waits_out_the_hold_and_a_rejoin_restarts_it() {
        let t0 = Instant::now();
        let mut m = ModeSwitch::new(t0, HOLD);
        m.decide(at(t0, 0), &room(&["a", "b"]));
        m.decide(at(t0, 1), &room(&["a", "b", "c"]));
        // c leaves; the pair waits 10 s.
        assert_eq!(m.decide(at(t0, 2), &room(&["a", "b"])), None);
        assert_eq!(m.decide(at(t0, 8), &room(&["a", "b"])), None);
        // c reconnects for a moment: the hold starts again.
        assert_eq!(m.decide(at(t0, 9), &room(&["a", "b", "c"])), None);
        assert_eq!(m.decide(at(t0, 10), &room(&["a", "b"])), None);
        assert_eq!(m.decide(at(t0, 19), &room(&["a", "b"])), None);
        assert_eq!(
            m.decide(at(t0, 20), &room(&["a", "b"])),
            Some(Mode::PeerToPeer)
        );
    }

    #[test]
    fn a_recording_holds_the_room_on_the_mcu_until_it_stops_and_the_hold_passes() {
        let t0 = Instant::now();
        let mut m = ModeSwitch::new(t0, HOLD);
        m.decide(at(t0, 0), &room(&["a", "b"]));
        let mut recording = room(&["a", "b"]);
        recording.recording = true;
        assert_eq!(m.decide(at(t0, 1), &recording), Some(Mode::Mcu));
        assert_eq!(m.cause(), Some(&McuCause::Recording));
        assert_eq!(m.decide(at(t0, 100), &recording), None);
        assert_eq!(m.decide(at(t0, 101), &room(&["a", "b"])), None);
        assert_eq!(
            m.decide(at(t0, 111), &room(&["a", "b"])),
            Some(Mode::PeerToPeer)
        );
    }

    #[test]
    fn a_pair_that_failed_to_connect_stays_on_the_mcu_until_the_pair_changes() {
        let t0 = Instant::now();
        let mut m = ModeSwitch::new(t0, HOLD);
        m.decide(at(t0, 0), &room(&["a", "b"]));
        assert_eq!(
            m.direct_failed(at(t0, 5), &room(&["a", "b"])),
            Some(Mode::Mcu)
        );
        assert_eq!(m.cause(), Some(&McuCause::DirectFailed));
        assert_eq!(m.decide(at(t0, 60), &room(&["b", "a"])), None);
        // b leaves and d joins: a new pair is tried at once.
        assert_eq!(m.decide(at(t0, 61), &room(&["a"])), None);
        assert_eq!(
            m.decide(at(t0, 62), &room(&["a", "d"])),
            Some(Mode::PeerToPeer)
        );
    }

    #[test]
    fn the_direct_link_is_up_when_both_say_so_and_fails_on_either_or_the_deadline() {
        let t0 = Instant::now();
        let mut d = DirectLink::default();
        assert_eq!(d.report(&id("a"), true), DirectChange::None);
        d.start([id("a"), id("b")], t0);
        assert!(d.is_offerer(&id("a")) && !d.is_offerer(&id("b")));
        assert_eq!(d.other(&id("b")), Some(&id("a")));
        assert_eq!(d.other(&id("c")), None);
        assert_eq!(d.report(&id("a"), true), DirectChange::None);
        assert_eq!(d.report(&id("c"), true), DirectChange::None);
        assert!(!d.is_up());
        assert!(!d.overdue(t0 + Duration::from_secs(4)));
        assert_eq!(d.report(&id("b"), true), DirectChange::Up);
        assert!(d.is_up());
        // Up in time: no deadline any more; a repeat changes nothing.
        assert!(!d.overdue(t0 + Duration::from_secs(60)));
        assert_eq!(d.report(&id("b"), true), DirectChange::None);
        // A dropped connection, later.
        assert_eq!(d.report(&id("a"), false), DirectChange::Failed);
        // A pair that never connects misses its deadline.
        d.start([id("a"), id("b")], t0);
        assert!(d.overdue(t0 + DIRECT_TIMEOUT));
        assert_eq!(d.stop(), Some([id("a"), id("b")]));
        assert!(!d.overdue(t0 + DIRECT_TIMEOUT));
        assert_eq!(d.pair(), None);
    }
}
