//! Counts the GStreamer elements alive in the test process, to check that a
//! closed room leaves nothing behind.
//!
//! A tracer of our own notes each element when it is made and forgets it when
//! it is destroyed, by address, and never touches the element again. The
//! leaks tracer's `get-live-objects` was used before: it takes a reference to
//! every object it lists, and an element being finalized on another thread at
//! that instant was brought back and freed twice (a crash whenever a room
//! was still closing).
//!
//! Aggregators (compositor, audiomixer) built from Rust are not seen: see
//! the hooks below.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer::subclass::prelude::*;

/// Live elements: address → name at creation.
static LIVE: Mutex<Option<HashMap<usize, String>>> = Mutex::new(None);

/// Notes `object` as alive.
fn note(object: &gst::Object) {
    let key = object.as_ptr() as usize;
    let name = object.name().to_string();
    if let Some(live) = LIVE.lock().unwrap().as_mut() {
        live.insert(key, name);
    }
}

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct LiveElements;

    #[glib::object_subclass]
    impl ObjectSubclass for LiveElements {
        const NAME: &'static str = "TesseraTestLiveElements";
        type Type = super::LiveElementsTracer;
        type ParentType = gst::Tracer;
    }

    impl ObjectImpl for LiveElements {
        fn constructed(&self) {
            self.parent_constructed();
            // `object-created` fires in GstObject's `constructed`, which
            // some classes (the aggregators) do not chain up to; elements
            // made through `gst_element_factory_make` (parsed pipelines)
            // also come through `element-new`. Aggregators built from Rust
            // are not seen.
            self.register_hook(TracerHook::ObjectCreated);
            self.register_hook(TracerHook::ElementNew);
            self.register_hook(TracerHook::ObjectDestroyed);
        }
    }

    impl GstObjectImpl for LiveElements {}

    impl TracerImpl for LiveElements {
        fn object_created(&self, _ts: u64, object: &gst::Object) {
            if object.is::<gst::Element>() {
                note(object);
            }
        }

        fn element_new(&self, _ts: u64, element: &gst::Element) {
            note(element.upcast_ref());
        }

        fn object_destroyed(&self, _ts: u64, object: std::ptr::NonNull<gst::ffi::GstObject>) {
            let key = object.as_ptr() as usize;
            if let Some(live) = LIVE.lock().unwrap().as_mut() {
                live.remove(&key);
            }
        }
    }
}

glib::wrapper! {
    /// The tracer; one lives for the whole test process.
    pub struct LiveElementsTracer(ObjectSubclass<imp::LiveElements>)
        @extends gst::Tracer, gst::Object;
}

// Made once and never dropped: GStreamer keeps calling its hooks.
static TRACER: OnceLock<glib::SendWeakRef<LiveElementsTracer>> = OnceLock::new();

/// Starts counting. Call once, after `gst::init`.
pub fn start() {
    TRACER.get_or_init(|| {
        *LIVE.lock().unwrap() = Some(HashMap::new());
        let tracer = glib::Object::new::<LiveElementsTracer>();
        let weak = glib::SendWeakRef::from(tracer.downgrade());
        // Keep it for the life of the process.
        std::mem::forget(tracer);
        weak
    });
}

/// Names of the elements alive now.
pub fn names() -> Vec<String> {
    LIVE.lock()
        .unwrap()
        .as_ref()
        .expect("counting has not started; init() starts it")
        .values()
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_element_counts_while_it_lives() {
        super::super::init();
        let name = "live-count-check";
        let alive = || names().iter().filter(|n| *n == name).count();
        assert_eq!(alive(), 0);
        let element = gst::ElementFactory::make("identity")
            .name(name)
            .build()
            .unwrap();
        assert_eq!(alive(), 1);
        drop(element);
        assert_eq!(alive(), 0);
    }
}
