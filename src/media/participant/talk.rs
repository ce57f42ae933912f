//! The talk switch: what a participant hears. A talker hears its own mix
//! of everyone else, encoded for them alone, which exists only while they
//! talk; everyone else hears the room's shared encode of the full mix.
//!
//! ```text
//! silence tee ─────────────────────┐
//! every other voice's mix tee ─────┴► audiomixer ─► caps(F32) ─► queue(leaky, firewalled) ─► s16 ─► opusenc ─► input-selector (own)
//! ```
//!
//! Someone who is not talking hears the room's one shared encode of the
//! full mix: their own voice in it is below the talk threshold, inaudible.
//! So the branch is built when the participant starts talking and removed
//! when they stop, and a room of thirty runs as many own mixers as it has
//! talkers, not thirty idle ones (each a thread waking every 20 ms).
//!
//! The talker's voice never enters its own mix, so nothing has to cancel
//! it: a voice that reaches one mixer in time and another late (a busy
//! machine) costs a moment of that voice, never an echo of one's own.
//! Each voice's mix tee feeds its mixers directly, without a queue (and a
//! thread) per input; the tees are the same ones the full mix takes from,
//! so a voice that arrives or leaves while someone talks joins or leaves
//! their mix too (`room_mixers`, `leave_mixers`).

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;

use super::egress::AUDIO_QUEUE;
use super::{branch_failed, ParticipantMedia, Room};
use crate::media::build::Added;
use crate::media::formats::{mix_audio_caps, MIX_BUFFER, MIX_SLACK};
use crate::media::make::{
    configure_aggregator, firewalled_queue, make_capsfilter, make_element, remove_elements,
    sync_downstream_first,
};
use crate::media::probes::posted_within;
use crate::media::templates::{expect_loss, TemplateKind};

/// Marks the names of a talker's own mix elements: `{participant}-own-{what}`.
const OWN_MIX_INFIX: &str = "-own-";

/// Whether a bus message comes from a talker's own mix.
///
/// Its Opus encoder reports its latency when it starts, at every start of
/// talking. The room need not recompute the pipeline's latency for that (a
/// walk through every element, O(participants²)): the own mixer asks its
/// own upstream, and what it feeds never waits on the clock.
pub fn from_own_mix(msg: &gst::Message) -> bool {
    posted_within(msg, |name| name.contains(OWN_MIX_INFIX))
}

/// The running branch of one talker.
struct OwnMix {
    elements: Vec<gst::Element>,
    /// Its mixer, whose inputs come and go with the room's voices.
    mixer: gst::Element,
    /// The branch's input on the participant's selector.
    output: gst::Pad,
    /// Its Opus encoder.
    encoder: gst::Element,
}

/// Chooses what a participant hears: its own mix's encode (talking) or
/// the shared encode of the full mix (not talking).
pub(super) struct TalkSwitch {
    selector: gst::Element,
    shared: gst::Pad,
    /// The own mix, while the participant talks.
    own: Option<OwnMix>,
    /// The loss the participant's link shows on our audio, percent: what
    /// its own encoder is told to expect.
    expected_loss: u8,
}

impl TalkSwitch {
    /// A switch on `selector` listening to the shared encode on `shared`.
    pub(super) fn new(selector: gst::Element, shared: gst::Pad) -> TalkSwitch {
        TalkSwitch {
            selector,
            shared,
            own: None,
            expected_loss: 0,
        }
    }

    /// Back to the shared encode, removing the own mix if it runs.
    pub(super) fn stop(&mut self, room: &Room<'_>) {
        if let Some(own) = self.own.take() {
            self.selector.set_property("active-pad", &self.shared);
            stop_own_mix(room, own, &self.selector);
        }
    }
}

impl ParticipantMedia {
    /// Sets the loss the participant's link shows on our audio, percent:
    /// its own mix's encoder, now and whenever it starts, puts in FEC
    /// for it.
    pub fn expect_audio_loss(&mut self, percent: u8) {
        self.talk.expected_loss = percent;
        if let Some(own) = &self.talk.own {
            expect_loss(&own.encoder, percent);
        }
    }

    /// Switches what the participant hears when it starts or stops talking:
    /// its own mix is built when it starts and removed when it stops.
    /// If the build fails, the participant goes on hearing the shared mix.
    pub(in crate::media) fn set_talking(
        &mut self,
        room: &Room<'_>,
        talking: bool,
    ) -> anyhow::Result<()> {
        if talking == self.talk.own.is_some() {
            return Ok(());
        }
        if talking {
            let own = start_own_mix(room, self)
                .with_context(|| format!("building the own mix of {}", self.id))?;
            self.talk.selector.set_property("active-pad", &own.output);
            self.talk.own = Some(own);
        } else {
            self.talk.stop(room);
        }
        // No pipeline latency update: the new mixer asks its own upstream
        // for its latency when it starts, and what it feeds never syncs to
        // the clock. A recomputation walks the whole room; talk switches
        // are frequent.
        Ok(())
    }
}

/// Builds and starts a participant's own mix and returns the selector
/// input it feeds.
fn start_own_mix(room: &Room<'_>, pm: &ParticipantMedia) -> anyhow::Result<OwnMix> {
    let mut added = Added::default();
    match build_own_mix(room, pm, &mut added) {
        Ok((mixer, output, encoder)) => Ok(OwnMix {
            elements: added.into_elements(),
            mixer,
            output,
            encoder,
        }),
        Err(e) => {
            added.undo(room.pipeline.upcast_ref());
            Err(e)
        }
    }
}

fn build_own_mix(
    room: &Room<'_>,
    pm: &ParticipantMedia,
    added: &mut Added,
) -> anyhow::Result<(gst::Element, gst::Pad, gst::Element)> {
    let bin = room.bin();
    let n = |what: &str| format!("{}{OWN_MIX_INFIX}{what}", pm.id);
    let mixer = make_element("audiomixer", &n("mixer"))?;
    configure_aggregator(&mixer, MIX_SLACK);
    mixer.set_property("output-buffer-duration", MIX_BUFFER.as_nanos() as u64);
    let caps = make_capsfilter(&n("caps"), &mix_audio_caps())?;
    // The voices push into the mixer on their own threads, which also feed
    // the full mix: a leaky queue after it keeps a stalled or failing
    // encoder from ever holding them up.
    let out_queue = firewalled_queue(
        &n("queue"),
        AUDIO_QUEUE,
        branch_failed(&pm.events, &pm.id, "mix"),
    )?;
    // Mixing is in float; Opus encoders take 16-bit integers.
    let to_s16 = make_element("audioconvert", &n("convert"))?;
    let opusenc = room
        .settings
        .templates
        .build(TemplateKind::Opus, &n("opusenc"))?
        .upcast::<gst::Element>();
    expect_loss(&opusenc, pm.talk.expected_loss);

    // Added so that the list, reversed, runs downstream first: the
    // order `stop_own_mix` stops them in.
    added.chain(&bin, &[&mixer, &caps, &out_queue, &to_s16, &opusenc])?;
    let output = added.request(&pm.talk.selector, "sink_%u")?;
    opusenc
        .static_pad("src")
        .context("opus encoder src")?
        .link(&output)
        .context("linking the own mix to the selector")?;
    sync_downstream_first(&[&mixer, &caps, &out_queue, &to_s16, &opusenc])?;

    // Fed last, once every element is playing: the room's silence (so the
    // mix ticks on when nobody else has a voice yet) and every voice but
    // the talker's own.
    let own_voice = pm.mix_tee.as_ref();
    for tee in mix_feeds(room) {
        if Some(&tee) == own_voice {
            continue;
        }
        let src = added.request(&tee, "src_%u")?;
        let sink = added.request(&mixer, "sink_%u")?;
        src.link(&sink)
            .with_context(|| format!("linking {} to the own mix", tee.name()))?;
    }
    Ok((mixer, output, opusenc))
}

/// The tees the full mix takes from: the room's silence and each voice.
fn mix_feeds(room: &Room<'_>) -> Vec<gst::Element> {
    room.full_mixer
        .sink_pads()
        .iter()
        .filter_map(|pad| pad.peer()?.parent_element())
        .collect()
}

/// Every mixer a newly arrived voice goes into: the full mix and each
/// talker's own mix, which all take the room's silence.
pub(super) fn room_mixers(room: &Room<'_>) -> Vec<gst::Element> {
    room.silence_tee
        .src_pads()
        .iter()
        .filter_map(|pad| pad.peer()?.parent_element())
        .collect()
}

/// Takes a departing voice out of every mixer its tee feeds, releasing the
/// pads on both sides. The tee must no longer be pushing.
pub(super) fn leave_mixers(tee: &gst::Element) {
    for src in tee.src_pads() {
        let sink = src.peer();
        tee.release_request_pad(&src);
        if let Some((mixer, sink)) = sink.and_then(|s| Some((s.parent_element()?, s))) {
            mixer.release_request_pad(&sink);
        }
    }
}

/// Stops and removes a talker's branch, leaving the shared streams that
/// fed it flowing. The selector must already listen elsewhere.
fn stop_own_mix(room: &Room<'_>, own: OwnMix, selector: &gst::Element) {
    // The feeding tees first, so nothing pushes into a stopping mixer;
    // inputs added since the start (voices that arrived) are among them.
    for sink in own.mixer.sink_pads() {
        if let Some(src) = sink.peer() {
            if let Some(tee) = src.parent_element() {
                tee.release_request_pad(&src);
            }
        }
        own.mixer.release_request_pad(&sink);
    }
    // Downstream first; the selector's input last, so the encoder never
    // finds it gone.
    let mut elements = own.elements;
    elements.reverse();
    remove_elements(room.pipeline.upcast_ref(), &elements);
    selector.release_request_pad(&own.output);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency_from(element: &gst::Element) -> gst::Message {
        gst::message::Latency::builder().src(element).build()
    }

    #[test]
    fn latency_reports_from_an_own_mix_are_told_apart() {
        gst::init().unwrap();
        // An encoder template may be a bin: its inner element posts.
        let template = gst::Bin::with_name(&format!("p1{OWN_MIX_INFIX}opusenc"));
        let inner = make_element("identity", "inner").unwrap();
        template.add(&inner).unwrap();
        assert!(from_own_mix(&latency_from(&inner)));
        let mixer = make_element("identity", &format!("p1{OWN_MIX_INFIX}mixer")).unwrap();
        assert!(from_own_mix(&latency_from(&mixer)));
        let voice = make_element("identity", "p1-voice-tee").unwrap();
        assert!(!from_own_mix(&latency_from(&voice)));
    }
}
