//! The talk switch: what a participant hears. A talker hears its own
//! mix-minus: the full mix with their own voice taken out again, encoded
//! for them alone, which exists only while they talk; everyone else hears
//! the room's shared encode of the full mix.
//!
//! ```text
//! full-mix tee ─► queue(leaky, firewalled) ─► audiomixer ─► caps(F32) ─► s16 ─► opusenc ─► input-selector (own)
//! voice tee ─► queue(leaky) ─► audioamplify(−1) ─┘
//! ```
//!
//! Someone who is not talking hears the room's one shared encode of the
//! full mix: their own voice in it is below the talk threshold, inaudible.
//! So the branch is built when the participant starts talking and removed
//! when they stop, and a room of thirty runs as many mix-minus mixers as it
//! has talkers, not thirty idle ones (each a thread waking every 20 ms).
//! The subtraction is sample-aligned by timestamp, in float, so nothing
//! clips: two mixer inputs instead of N−1.

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;

use super::egress::AUDIO_QUEUE;
use super::ingest::VOICE_QUEUE;
use super::{branch_failed, ParticipantMedia, Room};
use crate::media::build::Added;
use crate::media::formats::{mix_audio_caps, MIX_BUFFER, MIX_SLACK};
use crate::media::make::{
    configure_aggregator, firewalled_queue, make_capsfilter, make_element, make_leaky_queue,
    remove_elements, sync_downstream_first,
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
    /// Pads on the shared tees that feed the branch.
    feeds: Vec<(gst::Element, gst::Pad)>,
    /// The branch's input on the participant's selector.
    output: gst::Pad,
    /// Its Opus encoder.
    encoder: gst::Element,
}

/// Chooses what a participant hears: its own mix-minus encode (talking) or
/// the shared encode of the full mix (not talking).
pub(super) struct TalkSwitch {
    selector: gst::Element,
    shared: gst::Pad,
    /// The own mix-minus, while the participant talks.
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

    /// Back to the shared encode, removing the own mix-minus if it runs.
    pub(super) fn stop(&mut self, room: &Room<'_>) {
        if let Some(own) = self.own.take() {
            self.selector.set_property("active-pad", &self.shared);
            stop_own_mix(room, own, &self.selector);
        }
    }
}

impl ParticipantMedia {
    /// Sets the loss the participant's link shows on our audio, percent:
    /// its own mix-minus encoder, now and whenever it starts, puts in FEC
    /// for it.
    pub fn expect_audio_loss(&mut self, percent: u8) {
        self.talk.expected_loss = percent;
        if let Some(own) = &self.talk.own {
            expect_loss(&own.encoder, percent);
        }
    }

    /// Switches what the participant hears when it starts or stops talking:
    /// its own mix-minus is built when it starts and removed when it stops.
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
                .with_context(|| format!("building the mix-minus of {}", self.id))?;
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

/// Builds and starts a participant's own mix-minus and returns the
/// selector input it feeds. Needs the participant's voice.
fn start_own_mix(room: &Room<'_>, pm: &ParticipantMedia) -> anyhow::Result<OwnMix> {
    let voice_tee = pm
        .voice_tee
        .as_ref()
        .context("the participant's voice has not arrived")?;
    let mut added = Added::default();
    match build_own_mix(room, pm, voice_tee, &mut added) {
        Ok((output, encoder)) => {
            let (elements, pads) = added.into_parts();
            Ok(OwnMix {
                elements,
                feeds: pads.into_iter().filter(|(_, p)| *p != output).collect(),
                output,
                encoder,
            })
        }
        Err(e) => {
            added.undo(room.pipeline.upcast_ref());
            Err(e)
        }
    }
}

fn build_own_mix(
    room: &Room<'_>,
    pm: &ParticipantMedia,
    voice_tee: &gst::Element,
    added: &mut Added,
) -> anyhow::Result<(gst::Pad, gst::Element)> {
    let bin = room.bin();
    let n = |what: &str| format!("{}{OWN_MIX_INFIX}{what}", pm.id);
    let full_queue = firewalled_queue(
        &n("full-queue"),
        AUDIO_QUEUE,
        branch_failed(&pm.events, &pm.id, "mix"),
    )?;
    let mixer = make_element("audiomixer", &n("mixer"))?;
    configure_aggregator(&mixer, MIX_SLACK);
    mixer.set_property("output-buffer-duration", MIX_BUFFER.as_nanos() as u64);
    let caps = make_capsfilter(&n("caps"), &mix_audio_caps())?;
    // Mixing is in float; Opus encoders take 16-bit integers.
    let to_s16 = make_element("audioconvert", &n("convert"))?;
    let opusenc = room
        .settings
        .templates
        .build(TemplateKind::Opus, &n("opusenc"))?
        .upcast::<gst::Element>();
    expect_loss(&opusenc, pm.talk.expected_loss);
    let voice_queue = make_leaky_queue(&n("voice-queue"), VOICE_QUEUE)?;
    let invert = make_element("audioamplify", &n("invert"))?;
    invert.set_property("amplification", -1.0f32);

    // Added so that the list, reversed, runs downstream first: the
    // order `stop_own_mix` stops them in.
    added.chain(&bin, &[&voice_queue, &invert])?;
    added.chain(&bin, &[&full_queue])?;
    added.chain(&bin, &[&mixer, &caps, &to_s16, &opusenc])?;
    full_queue
        .link(&mixer)
        .context("linking the full mix to the mix-minus mixer")?;
    invert
        .link(&mixer)
        .context("linking the inverted voice to the mix-minus mixer")?;
    let output = added.request(&pm.talk.selector, "sink_%u")?;
    opusenc
        .static_pad("src")
        .context("opus encoder src")?
        .link(&output)
        .context("linking the own mix-minus to the selector")?;
    sync_downstream_first(&[
        &full_queue,
        &voice_queue,
        &invert,
        &mixer,
        &caps,
        &to_s16,
        &opusenc,
    ])?;

    // Feed it last, once every element is playing.
    let full = added.request(room.full_tee, "src_%u")?;
    full.link(
        &full_queue
            .static_pad("sink")
            .context("full-mix queue sink")?,
    )
    .context("linking the full mix tee to the own mix")?;
    let voice = added.request(voice_tee, "src_%u")?;
    voice
        .link(&voice_queue.static_pad("sink").context("voice queue sink")?)
        .context("linking the voice tee to the own mix")?;
    Ok((output, opusenc))
}

/// Stops and removes a talker's branch, leaving the shared streams that
/// fed it flowing. The selector must already listen elsewhere.
fn stop_own_mix(room: &Room<'_>, own: OwnMix, selector: &gst::Element) {
    // Producers first, so nothing pushes into a stopping element; the
    // selector's input last, so the encoder never finds it gone.
    for (tee, pad) in &own.feeds {
        tee.release_request_pad(pad);
    }
    // Downstream first: stopping the mixer wakes a queue thread waiting
    // in it (a mixer that has not put out its first buffer holds its
    // inputs' queries), which stopping the queue first would wait on
    // for ever.
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
