//! Recordings a killed server left open. At start-up, every manifest with
//! no end is closed: the segment files it does not list (the one being
//! written when the process died) are named as lost, the end is taken from
//! the last write on disk, and the closed segments are exported as usual.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{Event, Manifest, RecordingSettings};

/// Why a recovered recording ended, in its manifest.
pub const INTERRUPTED: &str =
    "interrupted: the server stopped without closing the recording (killed or crashed)";

/// Segment files in a recording's directory, sorted.
pub fn segment_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.starts_with("segment-"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Closes an interrupted manifest: `on_disk` are the segment files found,
/// `last_write` the newest modification time among them.
pub fn mark_interrupted(m: &mut Manifest, on_disk: &[String], last_write: SystemTime) {
    let started = humantime::parse_rfc3339_weak(&m.started_at).unwrap_or(last_write);
    let at_ms = last_write
        .duration_since(started)
        .map_or(0, |d| d.as_millis() as u64);
    m.lost = on_disk
        .iter()
        .filter(|f| !m.segments.contains(f))
        .cloned()
        .collect();
    m.events.push(Event::RecordingStopped {
        at_ms,
        reason: INTERRUPTED.into(),
    });
    m.ended_at = Some(super::manifest::rfc3339(last_write));
    m.duration_ms = Some(at_ms);
    let lost = if m.lost.is_empty() {
        "nothing was lost".to_string()
    } else {
        format!(
            "the media in {} (after the last closed segment) was lost",
            m.lost.join(", ")
        )
    };
    m.error.get_or_insert(format!("{INTERRUPTED}; {lost}"));
}

/// Closes every recording left open under the store and saves its
/// manifest. Quick: run it before any room can start recording. Returns the
/// closed recordings that have segments to export (when exports are on),
/// for [`super::export_and_save`] off the async runtime.
pub fn recover(settings: &RecordingSettings) -> Vec<(PathBuf, Manifest)> {
    let store = &settings.store;
    let mut to_export = Vec::new();
    for mut m in store.list().into_iter().filter(|m| m.ended_at.is_none()) {
        let Ok(dir) = store.dir(&m.id) else { continue };
        let files = segment_files(&dir);
        let last_write = files
            .iter()
            .filter_map(|f| dir.join(f).metadata().and_then(|md| md.modified()).ok())
            .max()
            .unwrap_or_else(SystemTime::now);
        mark_interrupted(&mut m, &files, last_write);
        tracing::warn!(recording = %m.id, lost = ?m.lost, "closed a recording the server did not finish");
        if let Err(e) = store.save(&m) {
            tracing::warn!(recording = %m.id, "writing the manifest: {e}");
        }
        if settings.export && !m.segments.is_empty() {
            to_export.push((dir, m));
        }
    }
    to_export
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_manifest(segments: &[&str]) -> Manifest {
        Manifest {
            segments: segments.iter().map(|s| s.to_string()).collect(),
            ..Manifest::begin(
                "r",
                "math",
                "vp8",
                "2026-11-21T10:00:00.000Z".into(),
                vec![Event::RecordingStarted { at_ms: 0 }],
            )
        }
    }

    #[test]
    fn an_interrupted_recording_names_what_was_lost_and_when_it_ended() {
        let mut m = open_manifest(&["segment-00000.webm", "segment-00001.webm"]);
        let on_disk: Vec<String> = (0..3).map(|i| format!("segment-{i:05}.webm")).collect();
        let last = humantime::parse_rfc3339("2026-11-21T10:00:25Z").unwrap();
        mark_interrupted(&mut m, &on_disk, last);
        assert_eq!(m.lost, vec!["segment-00002.webm".to_string()]);
        assert_eq!(m.duration_ms, Some(25_000));
        assert_eq!(m.ended_at.as_deref(), Some("2026-11-21T10:00:25.000Z"));
        let error = m.error.clone().unwrap();
        assert!(error.contains("segment-00002.webm"), "{error}");
        assert!(matches!(
            m.events.last(),
            Some(Event::RecordingStopped { at_ms: 25_000, reason }) if reason == INTERRUPTED
        ));
        assert!(m.chapters().contains("00:00:25.000"), "{}", m.chapters());
    }

    #[test]
    fn nothing_lost_when_every_file_was_closed() {
        let mut m = open_manifest(&["segment-00000.webm"]);
        let last = humantime::parse_rfc3339("2026-11-21T10:00:09Z").unwrap();
        mark_interrupted(&mut m, &["segment-00000.webm".into()], last);
        assert!(m.lost.is_empty());
        assert!(m.error.unwrap().ends_with("nothing was lost"));
    }
}
