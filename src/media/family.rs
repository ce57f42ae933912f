//! One encoder per codec family and quality tier in use: the canvas is
//! encoded once for VP8 and once for H.264, in each tier that someone
//! receives, and each encoded stream fans out to every participant of the
//! family in that tier through a tee.
//!
//! ```text
//! high: canvas tee ─► queue(leaky, 2) ─► [template: vp8enc ...] ─► encoder tee ─► per-participant payloader
//! low:  canvas tee ─► queue(leaky, 2) ─► videorate ─► videoscale ─► capsfilter(I420 low size @ low fps) ─► [template: vp8-low] ─► encoder tee
//! ```
//!
//! The audio-only tier has no encoder: its receivers are linked to none.
//!
//! Receivers' PLI/FIR arrive as upstream force-key-unit events through the
//! family tee. A probe on the tee's sink pad lets at most one through per
//! `keyframe_min_interval` (the low tier's own, longer, in its encoders); a
//! request held back is re-issued once the interval has passed, so a late
//! joiner still gets its keyframe.
//!
//! A probe on the encoder's source pad counts the frames and bytes it puts
//! out ([`EncodedCount`]), for the room's metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;

use super::formats::i420_caps;
use super::make::{
    add_chain, make_capsfilter, make_element, make_leaky_queue, make_tee, remove_elements,
    sync_downstream_first,
};
use super::templates::TemplateKind;
use super::{CodecFamily, MediaSettings};
use crate::ids::Tier;

/// Rate-limit state for forced keyframes, shared with the pad probe.
#[derive(Debug)]
struct KeyframeGate {
    interval: Duration,
    last: Option<Instant>,
    pending: bool,
}

impl KeyframeGate {
    /// Decides whether a keyframe request may go to the encoder now.
    /// A refused one is remembered as pending.
    fn admit(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
                self.pending = true;
                false
            }
            _ => {
                self.last = Some(now);
                self.pending = false;
                true
            }
        }
    }

    /// A keyframe for a participant whose connection just came up: sent
    /// whatever the interval (joins are rare next to receivers' PLIs, and
    /// a newcomer must not wait a second for its first picture); it counts
    /// as the interval's keyframe for everyone else.
    fn welcome(&mut self, now: Instant) -> bool {
        self.last = Some(now);
        self.pending = false;
        true
    }

    /// True when a held-back request is due now (and marks it sent).
    fn take_due(&mut self, now: Instant) -> bool {
        if self.pending && self.admit(now) {
            return true;
        }
        false
    }
}

/// Frames, keyframes and bytes a family's encoder has put out in one room,
/// over all its runs (it stops with the family's last participant and may
/// start again). Written by a pad probe, read by the room actor.
#[derive(Debug, Default)]
pub struct EncodedCount {
    frames: AtomicU64,
    keyframes: AtomicU64,
    bytes: AtomicU64,
}

impl EncodedCount {
    /// Frames so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Keyframes so far.
    pub fn keyframes(&self) -> u64 {
        self.keyframes.load(Ordering::Relaxed)
    }

    /// Bytes so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn add(&self, buffer: &gst::BufferRef) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        if !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
            self.keyframes.fetch_add(1, Ordering::Relaxed);
        }
        self.bytes
            .fetch_add(buffer.size() as u64, Ordering::Relaxed);
    }
}

/// Counts what leaves `pad` into `count`: one frame per buffer (encoders
/// push whole frames), a keyframe where it is not a delta unit.
fn count_output(pad: &gst::Pad, count: Arc<EncodedCount>) {
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |_, info| {
            match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => count.add(b),
                Some(gst::PadProbeData::BufferList(l)) => l.iter().for_each(|b| count.add(b)),
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// A running encoder branch of one family and tier.
pub(super) struct FamilyEncoder {
    family: CodecFamily,
    tier: Tier,
    /// The branch's elements, upstream first: the queue, for the low
    /// tier its scaling, then the encoder.
    chain: Vec<gst::Element>,
    encoder: gst::Element,
    /// The encoded stream's tee; participants request pads from it.
    tee: gst::Element,
    canvas_pad: gst::Pad,
    gate: Arc<Mutex<KeyframeGate>>,
    forced: Arc<AtomicU64>,
}

fn force_key_unit_event() -> gst::Event {
    gst_video::UpstreamForceKeyUnitEvent::builder()
        .all_headers(true)
        .build()
}

impl FamilyEncoder {
    /// Builds the branch of `family` in `tier` (high or low) and links it
    /// to the running canvas tee.
    pub(super) fn start(
        bin: &gst::Bin,
        canvas_tee: &gst::Element,
        family: CodecFamily,
        tier: Tier,
        settings: &MediaSettings,
        output: Arc<EncodedCount>,
    ) -> anyhow::Result<FamilyEncoder> {
        // The high tier keeps the names it always had.
        let name = match tier {
            Tier::Low => format!("{family}-low"),
            _ => family.to_string(),
        };
        let mut chain = vec![make_leaky_queue(&format!("{name}-enc-queue"), 2)?];
        let kind = match tier {
            Tier::Low => {
                let low = settings.low_tier;
                let rate = make_element("videorate", &format!("{name}-rate"))?;
                // Only ever drops frames: the canvas is live, and a
                // duplicated frame would be a frame the receiver cannot use.
                rate.set_property("drop-only", true);
                let scale = make_element("videoscale", &format!("{name}-scale"))?;
                let caps = make_capsfilter(
                    &format!("{name}-caps"),
                    &i420_caps(low.size, Some(low.framerate)),
                )?;
                chain.extend([rate, scale, caps]);
                TemplateKind::LowVideo(family)
            }
            _ => TemplateKind::Video(family),
        };
        let encoder = settings
            .templates
            .build(kind, &format!("{name}-encoder"))?
            .upcast::<gst::Element>();
        chain.push(encoder.clone());
        let tee = make_tee(&format!("{name}-tee"))?;
        {
            let mut all: Vec<&gst::Element> = chain.iter().collect();
            all.push(&tee);
            add_chain(bin, &all)?;
        }
        count_output(
            &encoder
                .static_pad("src")
                .context("family encoder src pad")?,
            output,
        );

        let gate = Arc::new(Mutex::new(KeyframeGate {
            interval: match tier {
                Tier::Low => settings.low_tier.keyframe_min_interval,
                _ => settings.keyframe_min_interval,
            },
            last: None,
            pending: false,
        }));
        let forced = Arc::new(AtomicU64::new(0));
        let tee_sink = tee.static_pad("sink").context("family tee sink pad")?;
        {
            let gate = gate.clone();
            let forced = forced.clone();
            tee_sink.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
                let Some(ev) = info.event() else {
                    return gst::PadProbeReturn::Ok;
                };
                if !gst_video::ForceKeyUnitEvent::is(ev) {
                    return gst::PadProbeReturn::Ok;
                }
                // A request for a keyframe at a given running time is the
                // recorder scheduling its next segment: planned, not a
                // receiver's burst, and it must not be turned into an
                // immediate one.
                let scheduled = gst_video::UpstreamForceKeyUnitEvent::parse(ev)
                    .is_ok_and(|k| k.running_time.is_some());
                if scheduled {
                    return gst::PadProbeReturn::Ok;
                }
                let admitted = gate
                    .lock()
                    .map(|mut g| g.admit(Instant::now()))
                    .unwrap_or(true);
                if admitted {
                    forced.fetch_add(1, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                } else {
                    super::probes::swallow(info)
                }
            });
        }

        {
            let mut all: Vec<&gst::Element> = chain.iter().collect();
            all.push(&tee);
            sync_downstream_first(&all)?;
        }
        let canvas_pad = canvas_tee
            .request_pad_simple("src_%u")
            .context("requesting a canvas tee pad")?;
        canvas_pad
            .link(&chain[0].static_pad("sink").context("queue sink")?)
            .context("linking canvas tee to the encoder queue")?;
        Ok(FamilyEncoder {
            family,
            tier,
            chain,
            encoder,
            tee,
            canvas_pad,
            gate,
            forced,
        })
    }

    /// The encoded stream's tee, for participants and the recorder.
    pub(super) fn tee(&self) -> &gst::Element {
        &self.tee
    }

    /// Asks the encoder for a keyframe, subject to the rate limit.
    pub(super) fn request_keyframe(&self) {
        self.send_if(|g, now| g.admit(now));
    }

    /// Asks the encoder for a keyframe for a newcomer, past the rate limit.
    pub(super) fn welcome_keyframe(&self) {
        self.send_if(|g, now| g.welcome(now));
    }

    /// Sends a held-back keyframe request once its interval has passed.
    pub(super) fn flush_pending_keyframe(&self) {
        self.send_if(|g, now| g.take_due(now));
    }

    /// Sends a keyframe request if the gate says so. A poisoned gate (a
    /// panic elsewhere) lets requests through rather than starve receivers.
    fn send_if(&self, decide: impl FnOnce(&mut KeyframeGate, Instant) -> bool) {
        let send = self
            .gate
            .lock()
            .map(|mut g| decide(&mut g, Instant::now()))
            .unwrap_or(true);
        if send {
            self.send_keyframe_request();
        }
    }

    fn send_keyframe_request(&self) {
        self.forced.fetch_add(1, Ordering::Relaxed);
        // Straight into the encoder's source pad: this bypasses the gate's
        // probe, which sits downstream on the tee.
        if let Some(src) = self.encoder.static_pad("src") {
            if !src.send_event(force_key_unit_event()) {
                tracing::debug!(family = %self.family, tier = %self.tier, "encoder ignored a keyframe request");
            }
        }
    }

    /// Keyframes forced so far (admitted receiver requests and re-issues).
    pub(super) fn forced_keyframes(&self) -> u64 {
        self.forced.load(Ordering::Relaxed)
    }

    /// Unlinks the branch from the canvas and frees it.
    pub(super) fn stop(self, bin: &gst::Bin, canvas_tee: &gst::Element) {
        // Release the tee pad first: after this the tee never pushes here,
        // so stopping the branch cannot return FLUSHING into the canvas.
        canvas_tee.release_request_pad(&self.canvas_pad);
        let mut all = self.chain;
        all.push(self.tee);
        remove_elements(bin, &all);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gate of one keyframe a second that has sent none yet.
    fn gate() -> KeyframeGate {
        KeyframeGate {
            interval: Duration::from_secs(1),
            last: None,
            pending: false,
        }
    }

    #[test]
    fn gate_admits_one_per_interval_and_remembers_the_rest() {
        let t0 = Instant::now();
        let mut g = gate();
        assert!(g.admit(t0));
        assert!(!g.admit(t0 + Duration::from_millis(100)));
        assert!(!g.admit(t0 + Duration::from_millis(900)));
        assert!(!g.take_due(t0 + Duration::from_millis(950)));
        assert!(g.take_due(t0 + Duration::from_millis(1000)));
        // Nothing pending any more.
        assert!(!g.take_due(t0 + Duration::from_millis(3000)));
        assert!(g.admit(t0 + Duration::from_millis(2100)));
    }

    #[test]
    fn a_newcomer_gets_its_keyframe_at_once_and_it_counts_for_the_interval() {
        let t0 = Instant::now();
        let mut g = gate();
        assert!(g.admit(t0));
        assert!(!g.admit(t0 + Duration::from_millis(100)));
        assert!(g.welcome(t0 + Duration::from_millis(200)));
        // The pending receiver request was answered by that keyframe.
        assert!(!g.take_due(t0 + Duration::from_millis(1100)));
        assert!(!g.admit(t0 + Duration::from_millis(1100)));
        assert!(g.admit(t0 + Duration::from_millis(1200)));
    }
}
