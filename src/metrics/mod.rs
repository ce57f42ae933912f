//! Live metrics, exposed at `/metrics` in the OpenMetrics text format that
//! Prometheus scrapes (encoded by `prometheus-client`).
//!
//! # Layout
//! - [`Metrics`]: the registry and every metric family; one per server,
//!   cheap to clone, held by the room registry.
//! - [`room::RoomMetrics`]: a room actor's share of them. It publishes what
//!   the actor measured and, when the room closes, takes the room's series
//!   back out (RAII).
//! - [`process`]: CPU time and resident memory, read from `/proc` at each
//!   scrape.
//!
//! Writers are the room actors (on their 2 s stats tick and on joins and
//! leaves) and the signaling sessions (errors sent); GStreamer callbacks
//! never write here.

pub mod process;
pub mod room;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use room::RoomMetrics;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A gauge holding a float.
type FloatGauge = Gauge<f64, AtomicU64>;

/// Labels of a per-codec-family series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FamilyLabels {
    /// `vp8` or `h264`.
    pub(crate) family: String,
}

/// Labels of a per-encoder series: codec family and quality tier.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EncoderLabels {
    /// `vp8` or `h264`.
    pub(crate) family: String,
    /// `high` or `low`.
    pub(crate) tier: String,
}

/// Labels of a per-room, per-encoder series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RoomEncoderLabels {
    pub(crate) room: String,
    pub(crate) family: String,
    pub(crate) tier: String,
}

/// Labels of a per-tier series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TierLabels {
    /// `high`, `low` or `audio-only`.
    pub(crate) tier: String,
}

/// Labels of the tier change counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DirectionLabels {
    /// `down` or `up`.
    pub(crate) direction: String,
}

/// Labels of the rooms-by-mode gauge.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ModeLabels {
    /// `p2p` or `mcu`.
    pub(crate) mode: String,
}

/// Labels of the mode switch counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SwitchLabels {
    /// The mode switched to: `p2p` or `mcu`.
    pub(crate) to: String,
    /// Why: `pair` for a move to peer-to-peer, else what needs the MCU
    /// (`members`, `recording`, `canvas`, `client`, `direct_failed`,
    /// `policy`).
    pub(crate) cause: String,
}

/// Labels of a per-room series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RoomLabels {
    pub(crate) room: String,
}

/// Labels of a per-participant series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ParticipantLabels {
    pub(crate) room: String,
    pub(crate) participant: String,
}

/// Labels of the refused connections counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    /// Why: `per-address`, `total`, `request-head-timeout`,
    /// `tls-handshake-timeout`.
    reason: String,
}

/// Labels of the signaling error counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    /// The `code` of the error message sent.
    code: String,
}

/// Labels of the cluster's routed joins.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    /// `here`, `elsewhere` (redirected) or `unavailable`.
    route: String,
}

/// Labels of phone calls' outcomes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    /// `answered`, or why not (`unauthorized`, `forbidden`, `not_found`,
    /// `busy`, `bad_offer`, `failed`, `cancelled`).
    outcome: String,
}

/// Every metric the server exports. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    registry: Registry,
    pub(crate) rooms_open: Gauge,
    pub(crate) participants: Family<FamilyLabels, Gauge>,
    pub(crate) encoder_frames: Family<EncoderLabels, Counter>,
    pub(crate) encoder_keyframes: Family<EncoderLabels, Counter>,
    pub(crate) encoder_bytes: Family<EncoderLabels, Counter>,
    pub(crate) encoder_fps: Family<RoomEncoderLabels, FloatGauge>,
    pub(crate) encoder_bitrate: Family<RoomEncoderLabels, FloatGauge>,
    pub(crate) receivers: Family<TierLabels, Gauge>,
    pub(crate) tier_changes: Family<DirectionLabels, Counter>,
    pub(crate) rooms_by_mode: Family<ModeLabels, Gauge>,
    pub(crate) mode_switches: Family<SwitchLabels, Counter>,
    pub(crate) downlink_estimate: Family<ParticipantLabels, Gauge>,
    pub(crate) loss_ratio: Family<ParticipantLabels, FloatGauge>,
    pub(crate) packets_lost: Family<ParticipantLabels, Gauge>,
    pub(crate) jitter: Family<ParticipantLabels, FloatGauge>,
    pub(crate) rtt: Family<ParticipantLabels, FloatGauge>,
    pub(crate) inbound_bitrate: Family<ParticipantLabels, FloatGauge>,
    pub(crate) outbound_bitrate: Family<ParticipantLabels, FloatGauge>,
    pub(crate) recording: Family<RoomLabels, Gauge>,
    pub(crate) recording_bytes: Family<RoomLabels, Gauge>,
    pub(crate) recording_written: Counter,
    pub(crate) canvas_frames_skipped: Counter,
    signaling_errors: Family<ErrorLabels, Counter>,
    connections_refused: Family<ReasonLabels, Counter>,
    cluster_routes: Family<RouteLabels, Counter>,
    cluster_directory_up: Gauge,
    sip_calls: Family<OutcomeLabels, Counter>,
    sip_dropped: Counter,
    sip_active: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        // Standard process metrics keep their conventional unprefixed names.
        registry.register_collector(Box::new(process::ProcessCollector));
        let r = registry.sub_registry_with_prefix("tessera");
        let rooms_open = Gauge::default();
        r.register("rooms_open", "Rooms in progress", rooms_open.clone());
        let participants = Family::default();
        r.register(
            "participants",
            "Participants with negotiated media, by the codec family they receive",
            participants.clone(),
        );
        let encoder_frames = Family::default();
        r.register(
            "encoder_frames",
            "Canvas frames encoded, by codec family and quality tier, all rooms",
            encoder_frames.clone(),
        );
        let encoder_keyframes = Family::default();
        r.register(
            "encoder_keyframes",
            "Canvas keyframes encoded, by codec family and quality tier, all rooms: newcomers', tier changes', recording segments' and those receivers ask for after loss",
            encoder_keyframes.clone(),
        );
        let encoder_bytes = Family::default();
        r.register(
            "encoder_bytes",
            "Canvas bytes encoded, by codec family and quality tier, all rooms",
            encoder_bytes.clone(),
        );
        let encoder_fps = Family::default();
        r.register(
            "encoder_frames_per_second",
            "Frames a room's encoder (a family in a tier) put out per second over the last stats interval",
            encoder_fps.clone(),
        );
        let encoder_bitrate = Family::default();
        r.register(
            "encoder_bits_per_second",
            "Bits a room's encoder (a family in a tier) put out per second over the last stats interval",
            encoder_bitrate.clone(),
        );
        let receivers = Family::default();
        r.register(
            "receivers",
            "Participants with negotiated media, by the quality tier their downlink places them in",
            receivers.clone(),
        );
        let tier_changes = Family::default();
        r.register(
            "tier_changes",
            "Receivers moved to another quality tier by their downlink, down or up",
            tier_changes.clone(),
        );
        let rooms_by_mode = Family::default();
        r.register(
            "rooms_by_mode",
            "Rooms in progress by how they carry media: p2p (the pair sends to each other) or mcu",
            rooms_by_mode.clone(),
        );
        let mode_switches = Family::default();
        r.register(
            "mode_switches",
            "Rooms switched between peer-to-peer and the MCU, by the mode switched to and why",
            mode_switches.clone(),
        );
        let downlink_estimate = Family::default();
        r.register(
            "participant_downlink_estimate_bits_per_second",
            "What the participant's downlink is estimated to carry, from its REMB or reception reports",
            downlink_estimate.clone(),
        );
        let loss_ratio = Family::default();
        r.register(
            "participant_inbound_loss_ratio",
            "Share of the participant's packets lost on the way in over the last stats interval (0 to 1)",
            loss_ratio.clone(),
        );
        let packets_lost = Family::default();
        r.register(
            "participant_inbound_packets_lost",
            "Packets from the participant lost since it joined",
            packets_lost.clone(),
        );
        let jitter = Family::default();
        r.register(
            "participant_inbound_jitter_seconds",
            "Interarrival jitter of the participant's incoming streams (worst stream)",
            jitter.clone(),
        );
        let rtt = Family::default();
        r.register(
            "participant_rtt_seconds",
            "Round-trip time to the participant from its receiver reports (worst stream)",
            rtt.clone(),
        );
        let inbound_bitrate = Family::default();
        r.register(
            "participant_inbound_bits_per_second",
            "RTP bits per second received from the participant",
            inbound_bitrate.clone(),
        );
        let outbound_bitrate = Family::default();
        r.register(
            "participant_outbound_bits_per_second",
            "RTP bits per second sent to the participant",
            outbound_bitrate.clone(),
        );
        let recording = Family::default();
        r.register(
            "room_recording",
            "1 while the room records (or finishes its files)",
            recording.clone(),
        );
        let recording_bytes = Family::default();
        r.register(
            "room_recording_bytes",
            "Bytes the room's running recording has written so far",
            recording_bytes.clone(),
        );
        let recording_written = Counter::default();
        r.register(
            "recording_written_bytes",
            "Bytes written by all recordings since the server started",
            recording_written.clone(),
        );
        let canvas_frames_skipped = Counter::default();
        r.register(
            "canvas_frames_skipped",
            "Canvas frames skipped in all rooms because they were late: the machine was short of CPU",
            canvas_frames_skipped.clone(),
        );
        let signaling_errors = Family::default();
        r.register(
            "signaling_errors",
            "Error messages sent to signaling clients, by error code",
            signaling_errors.clone(),
        );
        let connections_refused = Family::default();
        r.register(
            "connections_refused",
            "TCP connections refused at accept time or closed for a missed deadline, by reason",
            connections_refused.clone(),
        );
        let cluster_routes = Family::default();
        r.register(
            "cluster_routes",
            "Joins of rooms not open on this node, by where the cluster sent them: here, elsewhere (redirect) or unavailable",
            cluster_routes.clone(),
        );
        let cluster_directory_up = Gauge::default();
        r.register(
            "cluster_directory_up",
            "1 while the cluster's Redis answered the last call, 0 when it did not (always 0 on a single node)",
            cluster_directory_up.clone(),
        );
        let sip_calls = Family::default();
        r.register(
            "sip_calls",
            "Phone calls (SIP INVITEs) by outcome: answered, unauthorized, forbidden, not_found, busy, bad_offer, failed or cancelled",
            sip_calls.clone(),
        );
        let sip_dropped = Counter::default();
        r.register(
            "sip_messages_dropped",
            "SIP messages dropped unanswered: over a source's rate, or from a source that may not call",
            sip_dropped.clone(),
        );
        let sip_active = Gauge::default();
        r.register(
            "sip_calls_active",
            "Phone callers in rooms on this node now",
            sip_active.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                rooms_open,
                participants,
                encoder_frames,
                encoder_keyframes,
                encoder_bytes,
                encoder_fps,
                encoder_bitrate,
                receivers,
                tier_changes,
                rooms_by_mode,
                mode_switches,
                downlink_estimate,
                loss_ratio,
                packets_lost,
                jitter,
                rtt,
                inbound_bitrate,
                outbound_bitrate,
                recording,
                recording_bytes,
                recording_written,
                canvas_frames_skipped,
                signaling_errors,
                connections_refused,
                cluster_routes,
                cluster_directory_up,
                sip_calls,
                sip_dropped,
                sip_active,
            }),
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Counts an error message sent to a signaling client.
    pub fn signaling_error(&self, code: &str) {
        self.inner
            .signaling_errors
            .get_or_create(&ErrorLabels {
                code: code.to_string(),
            })
            .inc();
    }

    /// Counts a connection refused or closed by the accept loop's limits.
    pub fn connection_refused(&self, reason: &str) {
        self.inner
            .connections_refused
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts a join routed by the cluster (`here`, `elsewhere`, `unavailable`).
    pub fn cluster_route(&self, route: &str) {
        self.inner
            .cluster_routes
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .inc();
    }

    /// A phone call ended its setup with `outcome`.
    pub fn sip_call(&self, outcome: &str) {
        self.inner
            .sip_calls
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// A SIP message was dropped unanswered.
    pub fn sip_dropped(&self) {
        self.inner.sip_dropped.inc();
    }

    /// A phone caller joined (+1) or left (-1) a room.
    pub fn sip_active(&self, delta: i64) {
        self.inner.sip_active.inc_by(delta);
    }

    /// Whether the cluster's directory answered the last call.
    pub fn cluster_directory_up(&self, up: bool) {
        self.inner.cluster_directory_up.set(i64::from(up));
    }

    /// The whole exposition, ending in `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_with_the_prefix() {
        let m = Metrics::new();
        m.signaling_error("bad-message");
        m.signaling_error("bad-message");
        let text = m.encode();
        assert!(text.contains("# TYPE tessera_rooms_open gauge"), "{text}");
        assert!(
            text.contains("tessera_signaling_errors_total{code=\"bad-message\"} 2"),
            "{text}"
        );
        assert!(text.contains("process_cpu_seconds_total"), "{text}");
        assert!(text.contains("process_resident_memory_bytes"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
