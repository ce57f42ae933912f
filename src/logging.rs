//! Logging: GStreamer's own warnings and errors, forwarded into `tracing`
//! (target `gst`) so they land in the same log as everything else.

use gstreamer as gst;

/// Routes GStreamer log output at warning level and above into `tracing`.
/// Call once, after `gst::init`. `GST_DEBUG` still works as usual for more.
pub fn bridge_gstreamer_log() {
    if gst::init().is_err() {
        return;
    }
    if std::env::var_os("GST_DEBUG").is_none() {
        gst::log::set_default_threshold(gst::DebugLevel::Warning);
        gst::log::remove_default_log_function();
    }
    gst::log::add_log_function(|category, level, file, _function, line, object, message| {
        let Some(text) = message.get() else { return };
        let obj = object.map(|o| o.to_string()).unwrap_or_default();
        match level {
            gst::DebugLevel::Error => {
                tracing::error!(target: "gst", category = category.name(), %obj, "{file}:{line}: {text}")
            }
            gst::DebugLevel::Warning => {
                tracing::warn!(target: "gst", category = category.name(), %obj, "{file}:{line}: {text}")
            }
            _ => tracing::debug!(target: "gst", category = category.name(), %obj, "{text}"),
        }
    });
}
