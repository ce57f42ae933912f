//! Recomputing a room pipeline's latency when one of its elements reports a
//! change, without holding up the room.
//!
//! A latency query walks every element of the pipeline. With thirty
//! participants one took up to 1.6 s, and every join posts a dozen latency
//! changes (decoders, jitter buffers, network sinks). Recomputed on the room
//! actor once per change, they held up the room's signaling for seconds, so
//! newcomers waited for their answer. Requests are now gathered for a
//! moment and the recomputation runs on its own thread, one at a time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

/// How long requests are gathered before one recomputation serves them all.
const GATHER: Duration = Duration::from_millis(200);

/// Where the recomputation stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    #[default]
    Idle,
    /// Gathering or recomputing; `again` if a request came meanwhile.
    Busy { again: bool },
}

impl Phase {
    /// A change was reported; whether a worker must be started for it.
    fn request(&mut self) -> bool {
        match self {
            Phase::Idle => {
                *self = Phase::Busy { again: false };
                true
            }
            Phase::Busy { again } => {
                *again = true;
                false
            }
        }
    }

    /// A recomputation finished; whether the worker must run another.
    fn finished(&mut self) -> bool {
        match self {
            Phase::Busy { again: true } => {
                *self = Phase::Busy { again: false };
                true
            }
            _ => {
                *self = Phase::Idle;
                false
            }
        }
    }
}

/// Debounced, off-thread latency recomputation for one pipeline.
#[derive(Debug, Default, Clone)]
pub(crate) struct LatencyUpdates {
    phase: Arc<Mutex<Phase>>,
}

impl LatencyUpdates {
    /// Recomputes `pipeline`'s latency soon, on another thread.
    pub(crate) fn request(&self, pipeline: &gst::Pipeline) {
        let start = self.phase.lock().map(|mut p| p.request()).unwrap_or(false);
        if !start {
            return;
        }
        let (phase, weak) = (self.phase.clone(), pipeline.downgrade());
        let worker = move || loop {
            std::thread::sleep(GATHER);
            match weak.upgrade() {
                Some(pipeline) => {
                    if let Err(e) = pipeline.recalculate_latency() {
                        tracing::debug!("recomputing the room's latency: {e}");
                    }
                }
                None => return,
            }
            if !phase.lock().map(|mut p| p.finished()).unwrap_or(false) {
                return;
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name("room-latency".into())
            .spawn(worker)
        {
            tracing::warn!("cannot start the latency thread: {e}");
            if let Ok(mut p) = self.phase.lock() {
                *p = Phase::Idle;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_while_busy_make_one_more_run_and_no_more() {
        let mut p = Phase::default();
        assert!(p.request(), "the first request starts a worker");
        assert!(!p.request(), "a second joins it");
        assert!(!p.request(), "and a third");
        assert!(p.finished(), "the requests made meanwhile get one more run");
        assert!(!p.finished(), "then the worker stops");
        assert_eq!(p, Phase::Idle);
        assert!(p.request(), "and the next request starts a new one");
    }
}
