//! The room actor's side of recording: starting and stopping the media
//! recorder, keeping the lesson timeline, and finishing the files (manifest,
//! chapters, export) once the recorder has closed its last segment.
//!
//! Recording has two other homes: the recorder's GStreamer bin is in
//! `src/media/recorder.rs` ([`crate::media`]), and manifests, the store,
//! recovery after a crash and export are in [`crate::recording`].

use crate::ids::ParticipantId;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use gstreamer as gst;
use tracing::{error, info, warn};

use super::refusal::Refusal;
use super::RoomActor;
use crate::protocol::{ErrorCode, ServerMessage};
use crate::recording::manifest::rfc3339;
use crate::recording::{Event, Manifest, RecordingStore};

/// A stop that has not completed by then is forced.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often free space is checked while recording.
pub(super) const DISK_CHECK: Duration = Duration::from_secs(2);

/// The recording a room is making.
pub(super) struct ActiveRecording {
    manifest: Manifest,
    dir: PathBuf,
    started: Instant,
    /// Set once a stop was asked for: why, and when to give up waiting.
    stopping: Option<(String, Instant)>,
    last_disk_check: Instant,
}

impl ActiveRecording {
    fn at_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

impl RoomActor {
    /// A `record` command: start (`on`) or stop, if `by` may; returns the
    /// recording's id.
    pub(super) fn record(
        &mut self,
        on: bool,
        by: Option<&ParticipantId>,
    ) -> Result<String, Refusal> {
        if on {
            self.start_recording(by)
        } else {
            self.stop_recording(by, "stopped by a teacher or admin")
        }
    }

    /// Starts recording (a teacher's `by`, or the admin API with None);
    /// returns the recording's id. Starting twice returns the running one.
    pub(super) fn start_recording(
        &mut self,
        by: Option<&ParticipantId>,
    ) -> Result<String, Refusal> {
        self.authorize(by, "start recording")?;
        if let Some(r) = &self.recording {
            return Ok(r.manifest.id.clone());
        }
        let settings = self.registry.recordings().clone();
        let store = &settings.store;
        let result = check_space(store, settings.min_free_mb).and_then(|()| {
            let id = RecordingStore::new_id(&self.room);
            let dir = store.create(&id).map_err(|e| e.to_string())?;
            let family = self
                .media
                .start_recording(&id, &dir, settings.segment, self.preferred, &self.events_tx)
                .map_err(|e| format!("the recorder could not start: {e:#}"))?;
            Ok((id, dir, family))
        });
        let (id, dir, family) = match result {
            Ok(v) => v,
            Err(why) => {
                warn!("recording refused: {why}");
                return Err(self.tell(by, Refusal::RecordingFailed { reason: why }));
            }
        };
        info!(recording = %id, %family, "recording started");
        let mut events = vec![Event::RecordingStarted { at_ms: 0 }];
        let mut present: Vec<_> = self.participants.iter().collect();
        present.sort_by_key(|(_, p)| p.seq);
        for (pid, p) in present {
            events.push(Event::Joined {
                at_ms: 0,
                participant: pid.to_string(),
                name: p.name.clone(),
                role: role_name(p.role),
            });
        }
        events.push(Event::Layout {
            at_ms: 0,
            name: self.layout_name.clone(),
        });
        if let Some(s) = self.floor.speaker() {
            events.push(Event::Speaker {
                at_ms: 0,
                participant: Some(s.to_string()),
            });
        }
        let manifest = Manifest::begin(
            &id,
            &self.room,
            family.as_str(),
            rfc3339(SystemTime::now()),
            events,
        );
        if let Err(e) = store.save(&manifest) {
            warn!(recording = %id, "writing the manifest: {e}");
        }
        self.recording = Some(ActiveRecording {
            manifest,
            dir,
            started: Instant::now(),
            stopping: None,
            last_disk_check: Instant::now(),
        });
        self.broadcast_recording();
        Ok(id)
    }

    /// Asks the recorder to close its files; `finish_recording` completes
    /// the stop when it has.
    pub(super) fn stop_recording(
        &mut self,
        by: Option<&ParticipantId>,
        reason: &str,
    ) -> Result<String, Refusal> {
        self.authorize(by, "stop recording")?;
        let Some(r) = self.recording.as_mut() else {
            return Err(self.tell(by, Refusal::NotRecording));
        };
        let id = r.manifest.id.clone();
        if r.stopping.is_none() {
            info!(recording = %id, reason, "recording stopping");
            r.stopping = Some((reason.to_string(), Instant::now() + STOP_TIMEOUT));
            if !self.media.stop_recording() {
                self.finish_recording();
            }
        }
        Ok(id)
    }

    /// Adds an event to the timeline of the running recording.
    pub(super) fn note(&mut self, event: impl FnOnce(u64) -> Event) {
        let Some(r) = self.recording.as_mut() else {
            return;
        };
        let e = event(r.at_ms());
        r.manifest.events.push(e);
        let _ = self.registry.recordings().store.save(&r.manifest);
    }

    /// Handles the recorder's bus messages: closed segments and its EOS.
    /// Returns false for messages that are not the recorder's.
    pub(super) fn on_recorder_message(&mut self, msg: &gst::Message) -> bool {
        if !crate::media::from_recorder(msg) {
            return false;
        }
        match msg.view() {
            gst::MessageView::Element(e) => {
                let Some(s) = e.structure() else {
                    return true;
                };
                if s.name() == "splitmuxsink-fragment-closed" {
                    let file = s
                        .get::<&str>("location")
                        .ok()
                        .and_then(|l| l.rsplit('/').next())
                        .map(str::to_string);
                    if let (Some(r), Some(file)) = (self.recording.as_mut(), file) {
                        r.manifest.segments.push(file);
                        let _ = self.registry.recordings().store.save(&r.manifest);
                    }
                } else if s.name() == "GstBinForwarded" {
                    let eos = s
                        .get::<gst::Message>("message")
                        .is_ok_and(|m| m.type_() == gst::MessageType::Eos);
                    if eos
                        && self
                            .recording
                            .as_ref()
                            .is_some_and(|r| r.stopping.is_some())
                    {
                        self.finish_recording();
                    }
                }
            }
            gst::MessageView::Error(err) => {
                let why = format!("the recorder failed: {}", err.error());
                error!("{why} ({:?})", err.debug());
                self.recording_failed(why);
            }
            _ => {}
        }
        true
    }

    /// The recorder cannot go on: stop, keeping what was written.
    pub(super) fn recording_failed(&mut self, why: String) {
        if let Some(r) = self.recording.as_mut() {
            r.manifest.error.get_or_insert(why.clone());
        }
        self.tell_teachers(&why);
        let _ = self.stop_recording(None, &why);
    }

    /// Periodic checks: free space, and stops that take too long.
    pub(super) fn check_recording(&mut self) {
        let Some(r) = self.recording.as_mut() else {
            return;
        };
        if let Some((_, deadline)) = &r.stopping {
            if Instant::now() > *deadline {
                warn!(recording = %r.manifest.id, "the recorder did not close in time; finishing anyway");
                self.finish_recording();
            }
            return;
        }
        if r.last_disk_check.elapsed() < DISK_CHECK {
            return;
        }
        r.last_disk_check = Instant::now();
        let settings = self.registry.recordings();
        if let Err(why) = check_space(&settings.store, settings.min_free_mb) {
            warn!("{why}");
            self.recording_failed(why);
        }
    }

    /// Completes a stop: removes the recorder, writes the timeline, and
    /// joins the segments in the background.
    pub(super) fn finish_recording(&mut self) {
        let Some(mut r) = self.recording.take() else {
            return;
        };
        self.media.finish_recording();
        let duration = r.at_ms();
        let reason = r
            .stopping
            .take()
            .map_or_else(|| "stopped".to_string(), |(why, _)| why);
        r.manifest.events.push(Event::RecordingStopped {
            at_ms: duration,
            reason,
        });
        r.manifest.ended_at = Some(rfc3339(SystemTime::now()));
        r.manifest.duration_ms = Some(duration);
        // Segments the muxer closed but did not report (a forced stop).
        r.manifest.segments = crate::recording::recover::segment_files(&r.dir);
        let settings = self.registry.recordings().clone();
        if let Err(e) = settings.store.save(&r.manifest) {
            warn!(recording = %r.manifest.id, "writing the manifest: {e}");
        }
        info!(recording = %r.manifest.id, duration_ms = duration, segments = r.manifest.segments.len(), "recording stopped");
        let id = r.manifest.id.clone();
        self.broadcast_recording();
        if settings.export {
            let (dir, mut manifest) = (r.dir, r.manifest);
            tokio::task::spawn_blocking(move || {
                crate::recording::export_and_save(&settings.store, &dir, &mut manifest);
                info!(recording = %id, "recording exported");
            });
        }
    }

    fn broadcast_recording(&mut self) {
        let msg = ServerMessage::Recording {
            active: self
                .recording
                .as_ref()
                .is_some_and(|r| r.stopping.is_none()),
            id: self.recording.as_ref().map(|r| r.manifest.id.clone()),
        };
        let ids: Vec<_> = self.participants.keys().cloned().collect();
        for id in ids {
            self.send(&id, msg.clone());
        }
    }

    fn tell_teachers(&mut self, message: &str) {
        let teachers: Vec<_> = self
            .participants
            .iter()
            .filter(|(_, p)| p.role == crate::ids::Role::Teacher)
            .map(|(id, _)| id.clone())
            .collect();
        for id in teachers {
            self.reply_error(&id, ErrorCode::Internal, message.to_string());
        }
    }

    /// The running recording's id and the bytes its files hold so far.
    pub(super) fn recording_progress(&self) -> Option<(String, u64)> {
        let r = self.recording.as_ref()?;
        Some((r.manifest.id.clone(), dir_bytes(&r.dir)))
    }

    /// The recording's id, if one is running or stopping.
    pub(super) fn recording_id(&self) -> Option<String> {
        self.recording.as_ref().map(|r| r.manifest.id.clone())
    }
}

/// A role as the timeline spells it (`teacher`, `student`, `guest`).
pub(super) fn role_name(role: crate::ids::Role) -> String {
    serde_json::to_value(role)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Bytes in the regular files directly inside `dir` (a recording's
/// segments, manifest and chapters).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Refuses when the recordings directory has less than `min_mb` free.
fn check_space(store: &RecordingStore, min_mb: u64) -> Result<(), String> {
    match store.free_mb() {
        Some(free) if free < min_mb => Err(format!(
            "only {free} MiB free in {}; recording needs at least {min_mb} MiB (recording.min_free_mb): free some space or point recording.dir elsewhere",
            store.root().display()
        )),
        _ => Ok(()),
    }
}
