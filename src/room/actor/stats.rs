//! The room actor's live figures: every [`STATS_INTERVAL`] it asks each
//! participant's webrtcbin for its stats (the answer comes back as a
//! [`MediaEvent::Stats`](crate::media::MediaEvent::Stats) and lands in
//! [`RoomActor::on_stats`]), reads what the family encoders and the recorder
//! have put out, and publishes it all to the room's [`RoomMetrics`]. The
//! latest figures also go into the room's snapshot for the admin API.
//!
//! [`RoomMetrics`]: crate::metrics::RoomMetrics

use crate::ids::ParticipantId;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::RoomActor;
use crate::ids::CodecFamily;
use crate::layout::Size;
use crate::media::webrtc_stats::{LinkFigures, StatsSample};

/// How often the room measures its participants and encoders.
pub(super) const STATS_INTERVAL: Duration = Duration::from_secs(2);

/// What the room last measured of one participant.
#[derive(Debug, Default)]
pub(super) struct ParticipantStats {
    /// The previous stats sample and when it arrived.
    last: Option<(Instant, StatsSample)>,
    /// Figures over the last interval, once a sample arrived.
    pub(super) link: Option<LinkFigures>,
}

/// A participant's media figures, for the admin API.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MediaFigures {
    /// Size of the camera video it sends, as decoded.
    pub resolution: Option<Size>,
    /// Its connection over the last interval.
    pub link: Option<LinkFigures>,
    /// Canvas frames sent to it since it joined.
    pub canvas_frames: Option<u64>,
    /// Its downlink and tier, once its media is set up.
    pub downlink: Option<super::DownlinkFigures>,
}

impl RoomActor {
    /// The stats tick: ask for stats, count encoder output and recording bytes.
    pub(super) fn on_stats_tick(&mut self) {
        for p in self.participants.values() {
            if let Some(pm) = &p.media {
                // No lock is held here; the answer comes back as an event.
                pm.request_stats(&self.events_tx);
            }
        }
        let now = Instant::now();
        let elapsed = now.duration_since(self.last_stats_tick);
        self.last_stats_tick = now;
        let outputs = self.media.encoded();
        self.metrics.encoders(&outputs, elapsed);
        self.rates.update(&outputs, elapsed);
        self.place_all();
        self.expire_talkers(now);
        self.expire_phones();
        self.note_canvas_skips();
        let recording = self.recording_progress();
        self.metrics
            .recording(recording.as_ref().map(|(id, bytes)| (id.as_str(), *bytes)));
    }

    /// Ends the talking of voices that stopped arriving (a paused or cut
    /// off sender), so that their own mix-minus encode stops.
    fn expire_talkers(&mut self, now: Instant) {
        for (id, p) in self.participants.iter_mut() {
            if !p.talk.expire(now) {
                continue;
            }
            if let Some(pm) = p.media.as_mut() {
                tracing::debug!(participant = %id, "talk state: its voice stopped arriving");
                if let Err(e) = self.media.set_talking(pm, false) {
                    tracing::error!(participant = %id, "{e:#}");
                }
            }
        }
    }

    /// Counts the canvas frames skipped for lateness since the last tick,
    /// and warns when a spell of them starts.
    fn note_canvas_skips(&mut self) {
        let skipped = self
            .metrics
            .canvas_skipped(self.media.canvas_frames_skipped());
        if skipped > 0 && !self.canvas_behind {
            warn!(
                frames = skipped,
                "the canvas fell behind the clock and skips late frames: the machine is short of CPU"
            );
        } else if skipped > 0 {
            debug!(frames = skipped, "the canvas still skips late frames");
        }
        self.canvas_behind = skipped > 0;
    }

    /// A participant's stats arrived: turn them into figures over the
    /// interval since its previous sample.
    pub(super) fn on_stats(&mut self, id: &ParticipantId, sample: StatsSample) {
        let Some(p) = self.participants.get_mut(id) else {
            // It left while its stats were on the way.
            return;
        };
        let now = Instant::now();
        let figures = match p.stats.last {
            Some((at, prev)) => LinkFigures::between(Some(&prev), &sample, now - at),
            None => LinkFigures::between(None, &sample, Duration::ZERO),
        };
        debug!(participant = %id, ?figures, "link stats");
        p.stats.last = Some((now, sample));
        p.stats.link = Some(figures);
        self.metrics.link(id, &figures);
    }

    /// Publishes how many participants receive each family.
    pub(super) fn count_participants(&mut self) {
        let mut counts: Vec<(CodecFamily, i64)> = Vec::new();
        for family in self.participants.values().filter_map(|p| p.media.as_ref()) {
            match counts.iter_mut().find(|(f, _)| *f == family.family()) {
                Some((_, n)) => *n += 1,
                None => counts.push((family.family(), 1)),
            }
        }
        self.metrics.set_participants(&counts);
    }

    /// Each participant's media figures, for the snapshot.
    pub(super) fn media_figures(&self) -> Vec<(ParticipantId, MediaFigures)> {
        self.participants
            .iter()
            .map(|(id, p)| {
                let figures = MediaFigures {
                    resolution: p.media.as_ref().and_then(|m| m.sent_resolution()),
                    link: p.stats.link,
                    canvas_frames: p.media.as_ref().map(|m| m.canvas_frames_sent()),
                    downlink: p.media.as_ref().map(|m| super::DownlinkFigures {
                        estimate: p.downlink.estimate(),
                        tier: p.downlink.tier(),
                        probing: p.downlink.probing(),
                        redundant_audio: m.redundant_audio_sent(),
                    }),
                };
                (id.clone(), figures)
            })
            .collect()
    }
}
