//! Lesson recordings: the directory layout and safety rules ([`store`]),
//! the timeline ([`manifest`]) and joining segments into one file
//! ([`export`]): what is on disk, and nothing of GStreamer or rooms.
//!
//! Recording has three homes: this module; `src/media/recorder.rs`, the
//! recorder's GStreamer bin on a room's canvas and mix; and
//! `src/room/actor/record.rs`, the room's decisions (start, stop, the
//! timeline's events, running out of space).

pub mod export;
pub mod manifest;
pub mod recover;
pub mod store;

pub use manifest::{Event, Manifest};
pub use store::{RecordingStore, StoreError};

use std::path::Path;
use std::time::Duration;

use crate::config::RecordingConfig;

/// How rooms record, from `[recording]`.
#[derive(Debug, Clone)]
pub struct RecordingSettings {
    /// Where recordings go.
    pub store: RecordingStore,
    /// Segment length.
    pub segment: Duration,
    /// Join segments into one file when a recording stops.
    pub export: bool,
    /// Least free space to start or go on recording, MiB.
    pub min_free_mb: u64,
    /// Room id patterns that record automatically.
    pub auto_record: Vec<glob::Pattern>,
}

impl RecordingSettings {
    /// The settings of a `[recording]` section.
    pub fn from_config(c: &RecordingConfig) -> RecordingSettings {
        RecordingSettings {
            store: RecordingStore::new(&c.dir),
            segment: Duration::from_secs(u64::from(c.segment_seconds)),
            export: c.export,
            min_free_mb: c.min_free_mb,
            // Validated with the config; an invalid one matches nothing.
            auto_record: c
                .auto_record
                .iter()
                .filter_map(|p| glob::Pattern::new(p).ok())
                .collect(),
        }
    }

    /// Whether `room` records from its first participant on.
    pub fn auto_records(&self, room: &str) -> bool {
        self.auto_record.iter().any(|p| p.matches(room))
    }
}

impl Default for RecordingSettings {
    fn default() -> Self {
        RecordingSettings::from_config(&RecordingConfig::default())
    }
}

/// Joins a stopped recording's segments ([`export::export`]) and saves its
/// manifest with the export's name, or with why it failed. Blocking.
pub fn export_and_save(store: &RecordingStore, dir: &Path, manifest: &mut Manifest) {
    match export::export(dir, manifest) {
        Ok(file) => manifest.export = Some(file),
        Err(e) => {
            tracing::warn!(recording = %manifest.id, "export failed: {e:#}");
            manifest
                .error
                .get_or_insert(format!("export failed: {e:#}"));
        }
    }
    if let Err(e) = store.save(manifest) {
        tracing::warn!(recording = %manifest.id, "writing the manifest: {e}");
    }
}
