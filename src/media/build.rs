//! The undo log of something half-built in the room pipeline ([`Added`]): a
//! participant, its incoming streams or a talker's own mix record every
//! element and request pad they add, so that a failure takes them all out.

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;

use super::make::remove_elements;

/// What a half-built participant has added to the room, so a failure can
/// take it all back out.
#[derive(Default)]
pub(super) struct Added {
    elements: Vec<gst::Element>,
    pads: Vec<(gst::Element, gst::Pad)>,
}

impl Added {
    /// Adds elements to the bin, remembers them, then links them in order.
    pub(super) fn chain(&mut self, bin: &gst::Bin, chain: &[&gst::Element]) -> anyhow::Result<()> {
        for e in chain {
            bin.add(*e)
                .with_context(|| format!("adding {}", e.name()))?;
            self.elements.push((*e).clone());
        }
        if chain.len() > 1 {
            gst::Element::link_many(chain.iter().copied()).with_context(|| {
                let names: Vec<_> = chain.iter().map(|e| e.name().to_string()).collect();
                format!("linking {}", names.join(" ! "))
            })?;
        }
        Ok(())
    }

    /// Requests a pad from a shared element and remembers it.
    pub(super) fn request(
        &mut self,
        owner: &gst::Element,
        template: &str,
    ) -> anyhow::Result<gst::Pad> {
        let pad = owner
            .request_pad_simple(template)
            .with_context(|| format!("requesting {template} from {}", owner.name()))?;
        self.pads.push((owner.clone(), pad.clone()));
        Ok(pad)
    }

    /// The elements, once everything succeeded and the participant owns them.
    pub(super) fn into_elements(self) -> Vec<gst::Element> {
        self.elements
    }

    /// Releases the pads, then stops and removes the elements.
    pub(super) fn undo(self, bin: &gst::Bin) {
        for (owner, pad) in &self.pads {
            owner.release_request_pad(pad);
        }
        remove_elements(bin, &self.elements);
    }
}
