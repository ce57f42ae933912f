//! Element makers: every dynamic element is created through
//! [`make_element`], named after its owner, and the small chains built from
//! them (capsfilters, leaky queues, tees, firewalled branches) are added,
//! started and removed here.

use std::time::Duration;

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;

/// Creates an element, naming it after its owner (`p1a2b-vp8dec`) so that a
/// bus error can be traced back to a participant.
pub fn make_element(factory: &str, name: &str) -> anyhow::Result<gst::Element> {
    gst::ElementFactory::make(factory)
        .name(name)
        .build()
        .with_context(|| format!("creating element {factory} ({name}); is its plugin installed?"))
}

/// A capsfilter with the given caps.
pub(crate) fn make_capsfilter(name: &str, caps: &gst::Caps) -> anyhow::Result<gst::Element> {
    let e = make_element("capsfilter", name)?;
    e.set_property("caps", caps);
    Ok(e)
}

/// A queue that drops the oldest data instead of blocking when it holds
/// `max_buffers`: late frames are dropped, never piled up as latency.
pub(crate) fn make_leaky_queue(name: &str, max_buffers: u32) -> anyhow::Result<gst::Element> {
    let q = make_element("queue", name)?;
    q.set_property_from_str("leaky", "downstream");
    q.set_property("max-size-buffers", max_buffers);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", 0u64);
    Ok(q)
}

/// A tee whose consumers come and go: pushing on with none linked is fine.
pub(crate) fn make_tee(name: &str) -> anyhow::Result<gst::Element> {
    let tee = make_element("tee", name)?;
    tee.set_property("allow-not-linked", true);
    Ok(tee)
}

/// Requests a pad from `aggregator` (compositor or mixer) and links the
/// source pad of `from` into it.
pub(crate) fn link_into_new_pad(
    from: &gst::Element,
    aggregator: &gst::Element,
) -> anyhow::Result<gst::Pad> {
    let pad = aggregator
        .request_pad_simple("sink_%u")
        .with_context(|| format!("requesting a pad from {}", aggregator.name()))?;
    from.static_pad("src")
        .with_context(|| format!("{} has no src pad", from.name()))?
        .link(&pad)
        .with_context(|| format!("linking {} to {}", from.name(), aggregator.name()))?;
    Ok(pad)
}

/// A leaky queue that keeps one consumer's failure from stopping a shared
/// producer.
///
/// A tee stops at the first fatal flow return of any branch, so a
/// participant whose send branch fails (not-negotiated, error) would stop
/// the family encoder or the mix for the whole room. This queue sits in a bin
/// whose sink pad answers OK whatever the branch returns: the tee never sees
/// the failure. The first fatal result runs `on_failure` (so the room can
/// remove the participant); from then on the branch's buffers are dropped.
pub(crate) fn firewalled_queue(
    name: &str,
    max_buffers: u32,
    on_failure: impl Fn(gst::FlowError) + Send + Sync + 'static,
) -> anyhow::Result<gst::Element> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let queue = make_leaky_queue(&format!("{name}-q"), max_buffers)?;
    let bin = gst::Bin::with_name(name);
    bin.add(&queue).context("adding the branch queue")?;
    let failed = Arc::new(AtomicBool::new(false));
    let on_failure = Arc::new(on_failure);
    // Maps a branch's result to what the tee sees.
    let shield = move |result: Result<gst::FlowSuccess, gst::FlowError>| match result {
        Err(e) => {
            // Flushing and not-linked are states of a branch being set up or
            // torn down, not failures worth a removal.
            let fatal = !matches!(e, gst::FlowError::Flushing | gst::FlowError::NotLinked);
            if fatal && !failed.swap(true, Ordering::SeqCst) {
                on_failure(e);
            }
            Ok(gst::FlowSuccess::Ok)
        }
        ok => ok,
    };
    let shield = Arc::new(shield);
    let shield_list = shield.clone();
    let sink =
        gst::GhostPad::builder_with_target(&queue.static_pad("sink").context("queue sink pad")?)
            .context("ghosting the queue's sink pad")?
            .name("sink")
            .chain_function(move |pad, parent, buffer| {
                shield(gst::ProxyPad::chain_default(pad, parent, buffer))
            })
            .chain_list_function(move |pad, parent, list| {
                shield_list(gst::ProxyPad::chain_list_default(pad, parent, list))
            })
            .build();
    let src =
        gst::GhostPad::builder_with_target(&queue.static_pad("src").context("queue src pad")?)
            .context("ghosting the queue's src pad")?
            .name("src")
            .build();
    bin.add_pad(&sink).context("adding the bin's sink pad")?;
    bin.add_pad(&src).context("adding the bin's src pad")?;
    Ok(bin.upcast())
}

/// Adds elements to a bin and links them in order.
pub(crate) fn add_chain(bin: &gst::Bin, chain: &[&gst::Element]) -> anyhow::Result<()> {
    bin.add_many(chain.iter().copied())
        .context("adding elements to the pipeline")?;
    gst::Element::link_many(chain.iter().copied()).with_context(|| {
        let names: Vec<_> = chain.iter().map(|e| e.name().to_string()).collect();
        format!("linking {}", names.join(" ! "))
    })
}

/// Brings elements to the bin's state, downstream first so that no element
/// pushes into one that is not ready yet.
pub(crate) fn sync_downstream_first(chain: &[&gst::Element]) -> anyhow::Result<()> {
    for e in chain.iter().rev() {
        e.sync_state_with_parent()
            .with_context(|| format!("starting {}", e.name()))?;
    }
    Ok(())
}

/// Stops elements and removes them from the bin. Errors are logged, not
/// returned: teardown goes on whatever one element says.
pub(crate) fn remove_elements(bin: &gst::Bin, elements: &[gst::Element]) {
    for e in elements {
        if let Err(err) = e.set_state(gst::State::Null) {
            tracing::warn!(element = %e.name(), "stopping element: {err}");
        }
    }
    for e in elements {
        if e.parent().as_ref() == Some(bin.upcast_ref()) {
            if let Err(err) = bin.remove(e) {
                tracing::warn!(element = %e.name(), "removing element: {err}");
            }
        }
    }
}

/// Configures a live aggregator (compositor or audiomixer) for a room, with
/// `slack` ([`MIX_SLACK`](super::formats::MIX_SLACK),
/// [`CANVAS_SLACK`](super::formats::CANVAS_SLACK)) on top of its own output
/// buffer's duration.
pub(crate) fn configure_aggregator(agg: &gst::Element, slack: Duration) {
    agg.set_property("latency", slack.as_nanos() as u64);
    // Start from the first buffer's time: an aggregator added mid-lesson
    // must not produce the whole lesson's worth of output from time zero.
    agg.set_property_from_str("start-time-selection", "first");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    /// One tee, a healthy branch and a branch that fails mid-stream: with the
    /// failing branch behind a firewalled queue, the healthy one gets every
    /// buffer.
    #[test]
    fn a_firewalled_failing_branch_does_not_stop_the_tee() {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(
            "audiotestsrc num-buffers=300 ! tee name=t \
             t. ! queue ! fakesink name=goodsink \
             identity name=bad error-after=5 ! fakesink",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let failures = Arc::new(Mutex::new(Vec::new()));
        let firewall = {
            let failures = failures.clone();
            firewalled_queue("branch", 5, move |e| failures.lock().unwrap().push(e)).unwrap()
        };
        pipeline.add(&firewall).unwrap();
        let tee = pipeline.by_name("t").unwrap();
        tee.link(&firewall).unwrap();
        firewall.link(&pipeline.by_name("bad").unwrap()).unwrap();
        let received = Arc::new(AtomicU64::new(0));
        {
            let received = received.clone();
            let sink = pipeline.by_name("goodsink").unwrap();
            sink.static_pad("sink")
                .unwrap()
                .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    received.fetch_add(1, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                });
        }
        pipeline.set_state(gst::State::Playing).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while received.load(Ordering::Relaxed) < 300 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        pipeline.set_state(gst::State::Null).unwrap();
        // Without the firewall the tee stops after a handful of buffers.
        assert_eq!(
            received.load(Ordering::Relaxed),
            300,
            "the healthy branch was starved"
        );
        assert_eq!(*failures.lock().unwrap(), vec![gst::FlowError::Error]);
    }
}
