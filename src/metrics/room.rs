//! One room's share of the server's metrics. The room actor owns a
//! [`RoomMetrics`] and tells it what it measured; dropping it (the room
//! closed) takes the room's contributions back out: its participants leave
//! the per-family gauges and its per-room and per-participant series go.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{
    DirectionLabels, EncoderLabels, FamilyLabels, Metrics, ModeLabels, ParticipantLabels,
    RoomEncoderLabels, RoomLabels, SwitchLabels, TierLabels,
};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::ids::Tier;
use crate::media::webrtc_stats::LinkFigures;
use crate::media::{CodecFamily, EncoderOutput};

/// An encoder: its family and tier.
type Encoding = (CodecFamily, Tier);

/// A room's published figures. Not `Clone`: one per room actor.
#[derive(Debug)]
pub struct RoomMetrics {
    metrics: Metrics,
    room: String,
    /// What this room adds to `participants`, per family.
    participants: BTreeMap<CodecFamily, i64>,
    /// What this room adds to `receivers`, per tier.
    receivers: BTreeMap<Tier, i64>,
    /// Encoder totals already added to the global counters.
    encoded: BTreeMap<Encoding, EncoderOutput>,
    /// Encoders with a rate series for this room.
    encoder_series: BTreeSet<Encoding>,
    /// Participants with link series.
    linked: BTreeSet<String>,
    /// The recording being counted, and its bytes already counted.
    recording: Option<(String, u64)>,
    /// Canvas frames skipped already counted.
    canvas_skipped: u64,
    /// The mode the room is counted in.
    mode: &'static str,
}

impl RoomMetrics {
    /// Counts the room as open.
    pub fn new(metrics: Metrics, room: &str) -> RoomMetrics {
        metrics.inner().rooms_open.inc();
        let m = RoomMetrics {
            metrics,
            room: room.to_string(),
            participants: BTreeMap::new(),
            receivers: BTreeMap::new(),
            encoded: BTreeMap::new(),
            encoder_series: BTreeSet::new(),
            linked: BTreeSet::new(),
            recording: None,
            canvas_skipped: 0,
            mode: "mcu",
        };
        m.metrics
            .inner()
            .rooms_by_mode
            .get_or_create(&mode_labels(m.mode))
            .inc();
        m.metrics
            .inner()
            .recording
            .get_or_create(&m.room_labels())
            .set(0);
        m
    }

    fn room_labels(&self) -> RoomLabels {
        RoomLabels {
            room: self.room.clone(),
        }
    }

    fn participant_labels(&self, participant: &str) -> ParticipantLabels {
        ParticipantLabels {
            room: self.room.clone(),
            participant: participant.to_string(),
        }
    }

    fn room_encoder_labels(&self, (family, tier): Encoding) -> RoomEncoderLabels {
        RoomEncoderLabels {
            room: self.room.clone(),
            family: family.as_str().to_string(),
            tier: tier.as_str().to_string(),
        }
    }

    /// The room now has `count` receivers in each tier listed (tiers not
    /// listed: none).
    pub fn set_tiers(&mut self, counts: &[(Tier, i64)]) {
        add_share(
            &self.metrics.inner().receivers,
            &mut self.receivers,
            Tier::ALL,
            counts,
            |t| TierLabels {
                tier: t.as_str().to_string(),
            },
        );
    }

    /// The room switched to `mode` (`p2p` or `mcu`) because of `cause`.
    pub fn mode_switched(&mut self, mode: &'static str, cause: &str) {
        let inner = self.metrics.inner();
        inner
            .rooms_by_mode
            .get_or_create(&mode_labels(self.mode))
            .dec();
        inner.rooms_by_mode.get_or_create(&mode_labels(mode)).inc();
        self.mode = mode;
        inner
            .mode_switches
            .get_or_create(&SwitchLabels {
                to: mode.to_string(),
                cause: cause.to_string(),
            })
            .inc();
    }

    /// A receiver moved from one tier to another.
    pub fn tier_changed(&mut self, from: Tier, to: Tier) {
        let direction = if to < from { "down" } else { "up" };
        self.metrics
            .inner()
            .tier_changes
            .get_or_create(&DirectionLabels {
                direction: direction.to_string(),
            })
            .inc();
    }

    /// Publishes what a participant's downlink is estimated to carry.
    pub fn downlink_estimate(&mut self, participant: &str, estimate: u64) {
        let labels = self.participant_labels(participant);
        self.metrics
            .inner()
            .downlink_estimate
            .get_or_create(&labels)
            .set(i64::try_from(estimate).unwrap_or(i64::MAX));
        self.linked.insert(participant.to_string());
    }

    /// The room now has `count` participants receiving each family listed
    /// (families not listed: none).
    pub fn set_participants(&mut self, counts: &[(CodecFamily, i64)]) {
        let mut families: BTreeSet<CodecFamily> = self.participants.keys().copied().collect();
        families.extend(counts.iter().map(|(f, _)| *f));
        add_share(
            &self.metrics.inner().participants,
            &mut self.participants,
            families,
            counts,
            |f| FamilyLabels {
                family: f.as_str().to_string(),
            },
        );
    }

    /// The room's canvas has skipped `total` late frames so far; returns
    /// how many of them are new since the last call.
    pub fn canvas_skipped(&mut self, total: u64) -> u64 {
        let new = total.saturating_sub(self.canvas_skipped);
        self.canvas_skipped = self.canvas_skipped.max(total);
        self.metrics.inner().canvas_frames_skipped.inc_by(new);
        new
    }

    /// Adds what the encoders put out since the last call to the global
    /// counters and, for running encoders, sets the rates over `elapsed`.
    pub fn encoders(&mut self, outputs: &[EncoderOutput], elapsed: Duration) {
        let inner = self.metrics.inner();
        for o in outputs {
            let key = (o.family, o.tier);
            let before = self.encoded.get(&key);
            let new = |now: u64, then: fn(&EncoderOutput) -> u64| {
                now.saturating_sub(before.map(then).unwrap_or(0))
            };
            let frames = new(o.frames, |b| b.frames);
            let bytes = new(o.bytes, |b| b.bytes);
            let labels = EncoderLabels {
                family: o.family.as_str().to_string(),
                tier: o.tier.as_str().to_string(),
            };
            inner.encoder_frames.get_or_create(&labels).inc_by(frames);
            inner
                .encoder_keyframes
                .get_or_create(&labels)
                .inc_by(new(o.keyframes, |b| b.keyframes));
            inner.encoder_bytes.get_or_create(&labels).inc_by(bytes);
            self.encoded.insert(key, *o);
            let labels = self.room_encoder_labels(key);
            if o.running && !elapsed.is_zero() {
                let secs = elapsed.as_secs_f64();
                inner
                    .encoder_fps
                    .get_or_create(&labels)
                    .set(frames as f64 / secs);
                inner
                    .encoder_bitrate
                    .get_or_create(&labels)
                    .set(bytes as f64 * 8.0 / secs);
                self.encoder_series.insert(key);
            } else if self.encoder_series.remove(&key) {
                inner.encoder_fps.remove(&labels);
                inner.encoder_bitrate.remove(&labels);
            }
        }
    }

    /// Publishes a participant's latest connection figures.
    pub fn link(&mut self, participant: &str, f: &LinkFigures) {
        let inner = self.metrics.inner();
        let labels = self.participant_labels(participant);
        inner.loss_ratio.get_or_create(&labels).set(f.loss_fraction);
        inner
            .packets_lost
            .get_or_create(&labels)
            .set(i64::try_from(f.packets_lost).unwrap_or(i64::MAX));
        inner
            .jitter
            .get_or_create(&labels)
            .set(f.jitter_ms.unwrap_or(0.0) / 1000.0);
        inner
            .rtt
            .get_or_create(&labels)
            .set(f.rtt_ms.unwrap_or(0.0) / 1000.0);
        inner
            .inbound_bitrate
            .get_or_create(&labels)
            .set(f.inbound_bps);
        inner
            .outbound_bitrate
            .get_or_create(&labels)
            .set(f.outbound_bps);
        self.linked.insert(participant.to_string());
    }

    /// Takes a participant's series out.
    pub fn participant_left(&mut self, participant: &str) {
        if !self.linked.remove(participant) {
            return;
        }
        let inner = self.metrics.inner();
        let labels = self.participant_labels(participant);
        inner.loss_ratio.remove(&labels);
        inner.packets_lost.remove(&labels);
        inner.jitter.remove(&labels);
        inner.rtt.remove(&labels);
        inner.inbound_bitrate.remove(&labels);
        inner.outbound_bitrate.remove(&labels);
        inner.downlink_estimate.remove(&labels);
    }

    /// The recording in progress (its id and the bytes it has written), or
    /// None.
    pub fn recording(&mut self, current: Option<(&str, u64)>) {
        let inner = self.metrics.inner();
        let labels = self.room_labels();
        inner
            .recording
            .get_or_create(&labels)
            .set(i64::from(current.is_some()));
        let Some((id, bytes)) = current else {
            if self.recording.take().is_some() {
                inner.recording_bytes.remove(&labels);
            }
            return;
        };
        let counted = match &self.recording {
            Some((running, counted)) if running == id => *counted,
            _ => 0,
        };
        inner
            .recording_written
            .inc_by(bytes.saturating_sub(counted));
        inner
            .recording_bytes
            .get_or_create(&labels)
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.recording = Some((id.to_string(), bytes.max(counted)));
    }
}

impl Drop for RoomMetrics {
    fn drop(&mut self) {
        self.set_participants(&[]);
        self.set_tiers(&[]);
        let linked: Vec<_> = self.linked.iter().cloned().collect();
        for p in linked {
            self.participant_left(&p);
        }
        let inner = self.metrics.inner();
        for key in std::mem::take(&mut self.encoder_series) {
            let labels = self.room_encoder_labels(key);
            inner.encoder_fps.remove(&labels);
            inner.encoder_bitrate.remove(&labels);
        }
        let labels = self.room_labels();
        inner.recording.remove(&labels);
        inner.recording_bytes.remove(&labels);
        inner.rooms_open.dec();
        inner
            .rooms_by_mode
            .get_or_create(&mode_labels(self.mode))
            .dec();
    }
}

fn mode_labels(mode: &str) -> ModeLabels {
    ModeLabels {
        mode: mode.to_string(),
    }
}

/// Moves a room's share of the server-wide gauges `gauges` to `counts`
/// for each of `keys`: each gauge changes by what the room's count changed
/// since `shares`, which then holds the new counts.
fn add_share<K: Ord + Copy, L: Clone + std::hash::Hash + Eq>(
    gauges: &Family<L, Gauge>,
    shares: &mut BTreeMap<K, i64>,
    keys: impl IntoIterator<Item = K>,
    counts: &[(K, i64)],
    labels: impl Fn(K) -> L,
) {
    for key in keys {
        let now: i64 = counts
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, n)| n)
            .sum();
        let before = shares.get(&key).copied().unwrap_or(0);
        if now != before {
            gauges.get_or_create(&labels(key)).inc_by(now - before);
        }
        shares.insert(key, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn rooms_add_only_their_new_canvas_skips_to_the_total() {
        let metrics = Metrics::new();
        let mut a = RoomMetrics::new(metrics.clone(), "a");
        let mut b = RoomMetrics::new(metrics.clone(), "b");
        assert_eq!(a.canvas_skipped(0), 0);
        assert_eq!(a.canvas_skipped(7), 7);
        assert_eq!(a.canvas_skipped(7), 0);
        assert_eq!(b.canvas_skipped(3), 3);
        assert_eq!(a.canvas_skipped(10), 3);
        let text = metrics.encode();
        assert_eq!(
            line(&text, "tessera_canvas_frames_skipped_total "),
            Some("tessera_canvas_frames_skipped_total 13"),
            "{text}"
        );
        drop(a);
        let text = metrics.encode();
        assert_eq!(
            line(&text, "tessera_canvas_frames_skipped_total "),
            Some("tessera_canvas_frames_skipped_total 13"),
            "a counter keeps what closed rooms added"
        );
    }

    #[test]
    fn a_room_adds_its_share_and_takes_it_back_when_it_closes() {
        let metrics = Metrics::new();
        let mut a = RoomMetrics::new(metrics.clone(), "a");
        let mut b = RoomMetrics::new(metrics.clone(), "b");
        a.set_participants(&[(CodecFamily::Vp8, 2), (CodecFamily::H264, 1)]);
        b.set_participants(&[(CodecFamily::Vp8, 1)]);
        a.link(
            "p1",
            &LinkFigures {
                loss_fraction: 0.25,
                jitter_ms: Some(4.0),
                rtt_ms: Some(30.0),
                ..LinkFigures::default()
            },
        );
        let text = metrics.encode();
        assert_eq!(
            line(&text, "tessera_rooms_open "),
            Some("tessera_rooms_open 2")
        );
        assert!(
            text.contains("tessera_participants{family=\"vp8\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("tessera_participants{family=\"h264\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "tessera_participant_inbound_loss_ratio{room=\"a\",participant=\"p1\"} 0.25"
            ),
            "{text}"
        );
        assert!(
            text.contains("tessera_participant_rtt_seconds{room=\"a\",participant=\"p1\"} 0.03"),
            "{text}"
        );

        a.set_participants(&[(CodecFamily::Vp8, 1)]);
        let text = metrics.encode();
        assert!(
            text.contains("tessera_participants{family=\"vp8\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("tessera_participants{family=\"h264\"} 0"),
            "{text}"
        );

        drop(a);
        let text = metrics.encode();
        assert_eq!(
            line(&text, "tessera_rooms_open "),
            Some("tessera_rooms_open 1")
        );
        assert!(
            text.contains("tessera_participants{family=\"vp8\"} 1"),
            "{text}"
        );
        assert!(!text.contains("participant=\"p1\""), "{text}");
        assert!(!text.contains("room=\"a\""), "{text}");
        drop(b);
    }

    #[test]
    fn encoder_counters_grow_by_what_is_new_and_rates_follow_the_interval() {
        let metrics = Metrics::new();
        let mut room = RoomMetrics::new(metrics.clone(), "r");
        let out = |frames, bytes, running| EncoderOutput {
            family: CodecFamily::Vp8,
            tier: Tier::High,
            frames,
            keyframes: frames / 30,
            bytes,
            running,
        };
        room.encoders(&[out(30, 30_000, true)], Duration::from_secs(2));
        room.encoders(&[out(90, 80_000, true)], Duration::from_secs(2));
        let text = metrics.encode();
        assert!(
            text.contains("tessera_encoder_frames_total{family=\"vp8\",tier=\"high\"} 90"),
            "{text}"
        );
        assert!(
            text.contains("tessera_encoder_bytes_total{family=\"vp8\",tier=\"high\"} 80000"),
            "{text}"
        );
        assert!(
            text.contains("tessera_encoder_keyframes_total{family=\"vp8\",tier=\"high\"} 3"),
            "{text}"
        );
        assert!(
            text.contains(
                "tessera_encoder_frames_per_second{room=\"r\",family=\"vp8\",tier=\"high\"} 30.0"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "tessera_encoder_bits_per_second{room=\"r\",family=\"vp8\",tier=\"high\"} 200000.0"
            ),
            "{text}"
        );
        // Stopped: the counters stay, the room's rates go.
        room.encoders(&[out(95, 81_000, false)], Duration::from_secs(2));
        let text = metrics.encode();
        assert!(text.contains("tessera_encoder_frames_total{family=\"vp8\",tier=\"high\"} 95"));
        assert!(
            !text.contains("tessera_encoder_frames_per_second{"),
            "{text}"
        );
    }

    #[test]
    fn receivers_per_tier_and_tier_changes_are_counted_and_leave_with_the_room() {
        let metrics = Metrics::new();
        let mut room = RoomMetrics::new(metrics.clone(), "r");
        room.set_tiers(&[(Tier::High, 2), (Tier::Low, 1)]);
        room.tier_changed(Tier::High, Tier::Low);
        room.downlink_estimate("p1", 280_000);
        let text = metrics.encode();
        assert!(
            text.contains("tessera_receivers{tier=\"high\"} 2"),
            "{text}"
        );
        assert!(text.contains("tessera_receivers{tier=\"low\"} 1"), "{text}");
        assert!(
            text.contains("tessera_tier_changes_total{direction=\"down\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "tessera_participant_downlink_estimate_bits_per_second{room=\"r\",participant=\"p1\"} 280000"
            ),
            "{text}"
        );
        drop(room);
        let text = metrics.encode();
        assert!(
            text.contains("tessera_receivers{tier=\"high\"} 0"),
            "{text}"
        );
        assert!(!text.contains("participant=\"p1\""), "{text}");
    }

    #[test]
    fn recording_bytes_are_counted_once() {
        let metrics = Metrics::new();
        let mut room = RoomMetrics::new(metrics.clone(), "r");
        room.recording(Some(("rec-1", 1000)));
        room.recording(Some(("rec-1", 1500)));
        room.recording(None);
        room.recording(Some(("rec-2", 200)));
        let text = metrics.encode();
        assert!(
            text.contains("tessera_recording_written_bytes_total 1700"),
            "{text}"
        );
        assert!(
            text.contains("tessera_room_recording{room=\"r\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tessera_room_recording_bytes{room=\"r\"} 200"),
            "{text}"
        );
        room.recording(None);
        let text = metrics.encode();
        assert!(
            text.contains("tessera_room_recording{room=\"r\"} 0"),
            "{text}"
        );
        assert!(!text.contains("tessera_room_recording_bytes{"), "{text}");
    }

    #[test]
    fn rooms_are_counted_by_mode_and_switches_by_cause() {
        let metrics = Metrics::new();
        let mut a = RoomMetrics::new(metrics.clone(), "a");
        let b = RoomMetrics::new(metrics.clone(), "b");
        let text = metrics.encode();
        assert_eq!(
            line(&text, "tessera_rooms_by_mode{mode=\"mcu\"} "),
            Some("tessera_rooms_by_mode{mode=\"mcu\"} 2")
        );
        a.mode_switched("p2p", "pair");
        a.mode_switched("mcu", "members");
        a.mode_switched("p2p", "pair");
        let text = metrics.encode();
        assert!(
            text.contains("tessera_rooms_by_mode{mode=\"p2p\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tessera_rooms_by_mode{mode=\"mcu\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tessera_mode_switches_total{to=\"p2p\",cause=\"pair\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("tessera_mode_switches_total{to=\"mcu\",cause=\"members\"} 1"),
            "{text}"
        );
        drop(a);
        drop(b);
        let text = metrics.encode();
        assert!(
            text.contains("tessera_rooms_by_mode{mode=\"p2p\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("tessera_rooms_by_mode{mode=\"mcu\"} 0"),
            "{text}"
        );
    }
}
