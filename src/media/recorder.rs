//! Recording a room: the encoded canvas (one family's tee, so no second
//! video encode) and the full mix's shared Opus encode, muxed into
//! keyframe-aligned segment files by `splitmuxsink`.
//!
//! ```text
//! family tee ─► firewalled queue ─► [h264parse] ─► (drop until a keyframe) ─► splitmuxsink video ─► segment-00000.webm, ...
//! shared Opus tee (full mix) ─► firewalled queue ──────────► splitmuxsink audio_0
//! ```
//!
//! Stopping sends EOS into the recorder's bin only: `splitmuxsink` closes
//! the open segment and its EOS comes back forwarded by the bin
//! (`message-forward`), when the actor removes the bin. A failing recorder
//! is cut off by its firewalled queues and never stalls the room.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::mpsc::UnboundedSender;

use super::{firewalled_queue, make_element, CodecFamily, MediaEvent, RoomMedia};
use crate::recording::export::names;

/// Name prefix of a recorder's bin; messages from inside it belong to the recording.
pub const RECORDER_PREFIX: &str = "recorder-";
/// Encoded video frames queued towards the disk (a few seconds).
const VIDEO_QUEUE: u32 = 150;
/// Encoded 20 ms audio packets queued towards the disk.
const AUDIO_QUEUE: u32 = 250;

/// A running recorder.
pub(super) struct Recorder {
    pub(super) id: String,
    pub(super) family: CodecFamily,
    bin: gst::Bin,
    /// The tee pads feeding it, until they are released.
    inputs: Option<(gst::Pad, gst::Pad)>,
}

impl RoomMedia {
    /// Starts recording into `dir` in segments of `segment`; returns the
    /// family whose encode is recorded. Uses a running family's encoder, or
    /// starts `fallback`'s.
    pub fn start_recording(
        &mut self,
        id: &str,
        dir: &Path,
        segment: Duration,
        fallback: CodecFamily,
        events: &UnboundedSender<MediaEvent>,
    ) -> anyhow::Result<CodecFamily> {
        anyhow::ensure!(self.recorder.is_none(), "a recording is already running");
        let family = [CodecFamily::Vp8, CodecFamily::H264]
            .into_iter()
            .find(|f| self.families.contains_key(f))
            .unwrap_or(fallback);
        let started_family = !self.families.contains_key(&family);
        let result = self.build_recorder(id, dir, segment, family, events);
        if result.is_err() && started_family {
            self.stop_family(family);
        }
        result.map(|r| {
            self.recorder = Some(r);
            family
        })
    }

    fn build_recorder(
        &mut self,
        id: &str,
        dir: &Path,
        segment: Duration,
        family: CodecFamily,
        events: &UnboundedSender<MediaEvent>,
    ) -> anyhow::Result<Recorder> {
        let video_tee = self.ensure_family(family)?.tee.clone();
        let bin = gst::Bin::with_name(&format!("{RECORDER_PREFIX}{id}"));
        bin.set_property("message-forward", true);
        // The files' sink prerolls on its first buffer. Without this, that
        // reached the room's pipeline as a lost state: it reported PAUSED
        // and set every element to PLAYING again (sorting the graph, which
        // has a loop through each webrtcbin) at every recording start.
        bin.set_property("async-handling", true);
        let failed = |what: &'static str| {
            let (events, id) = (events.clone(), id.to_string());
            move |error| {
                let _ = events.send(MediaEvent::RecordingFailed {
                    recording: id.clone(),
                    reason: format!("writing {what} failed: {error:?}"),
                });
            }
        };
        let vqueue = firewalled_queue("rec-video", VIDEO_QUEUE, failed("video"))?;
        let aqueue = firewalled_queue("rec-audio", AUDIO_QUEUE, failed("audio"))?;
        let (ext, _) = names(family.as_str());
        let sink = make_element("splitmuxsink", "rec-split")?;
        sink.set_property(
            "location",
            dir.join(format!("segment-%05d.{ext}"))
                .to_string_lossy()
                .to_string(),
        );
        sink.set_property("max-size-time", segment.as_nanos() as u64);
        sink.set_property("send-keyframe-requests", true);
        let muxer = match family {
            CodecFamily::Vp8 => "webmmux",
            CodecFamily::H264 => "matroskamux",
        };
        sink.set_property("muxer-factory", muxer);
        bin.add_many([&vqueue, &aqueue, &sink])
            .context("assembling the recorder")?;
        // Matroska wants H.264 as `avc` with its headers in the caps; the
        // encoder sends byte-stream for RTP. A parser converts (no re-encode).
        let video_out = match family {
            CodecFamily::Vp8 => vqueue.clone(),
            CodecFamily::H264 => {
                let parse = make_element("h264parse", "rec-h264parse")?;
                bin.add(&parse).context("assembling the recorder")?;
                vqueue.link(&parse).context("linking the H.264 parser")?;
                parse
            }
        };
        let video_in = sink
            .request_pad_simple("video")
            .context("splitmuxsink video pad")?;
        let audio_in = sink
            .request_pad_simple("audio_%u")
            .context("splitmuxsink audio pad")?;
        let vsrc = video_out.static_pad("src").context("video queue src")?;
        vsrc.link(&video_in).context("linking video to the muxer")?;
        aqueue
            .static_pad("src")
            .context("audio queue src")?
            .link(&audio_in)
            .context("linking audio to the muxer")?;
        // A file must start with a keyframe: drop what comes before the first.
        let seen_key = Arc::new(AtomicBool::new(false));
        vsrc.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let delta = info
                .buffer()
                .is_some_and(|b| b.flags().contains(gst::BufferFlags::DELTA_UNIT));
            if seen_key.load(Ordering::Relaxed) || !delta {
                seen_key.store(true, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            } else {
                super::swallow(info)
            }
        });
        for (name, e) in [("video", &vqueue), ("audio", &aqueue)] {
            let pad = e.static_pad("sink").context("queue sink")?;
            bin.add_pad(
                &gst::GhostPad::builder_with_target(&pad)
                    .context("ghosting a recorder input")?
                    .name(name)
                    .build(),
            )
            .context("adding a recorder input")?;
        }
        self.pipeline
            .add(&bin)
            .context("adding the recorder to the room")?;
        if let Err(e) = bin.sync_state_with_parent() {
            let _ = bin.set_state(gst::State::Null);
            let _ = self.pipeline.remove(&bin);
            return Err(e).context("starting the recorder");
        }
        let video_tee_pad = video_tee
            .request_pad_simple("src_%u")
            .context("requesting the encoded canvas")?;
        let audio_tee_pad = self
            .shared_opus_tee
            .request_pad_simple("src_%u")
            .context("requesting the encoded mix")?;
        let link = video_tee_pad
            .link(&bin.static_pad("video").context("recorder video input")?)
            .and_then(|_| audio_tee_pad.link(&bin.static_pad("audio").expect("added above")));
        let recorder = Recorder {
            id: id.to_string(),
            family,
            bin,
            inputs: Some((video_tee_pad, audio_tee_pad)),
        };
        if let Err(e) = link {
            self.remove_recorder(recorder);
            return Err(e).context("linking the recorder");
        }
        if let Some(enc) = self.families.get(&family) {
            enc.request_keyframe();
        }
        Ok(recorder)
    }

    /// The running recording's id.
    pub fn recording(&self) -> Option<&str> {
        self.recorder.as_ref().map(|r| r.id.as_str())
    }

    /// Begins stopping the recording: its inputs are cut and EOS sent, so
    /// the open segment is finalised. The bin's EOS, forwarded on the bus,
    /// says when it is done; then call [`RoomMedia::finish_recording`].
    pub fn stop_recording(&mut self) -> bool {
        let Some(mut r) = self.recorder.take() else {
            return false;
        };
        self.release_inputs(&mut r);
        for name in ["video", "audio"] {
            if let Some(pad) = r.bin.static_pad(name) {
                pad.send_event(gst::event::Eos::new());
            }
        }
        self.recorder = Some(r);
        true
    }

    /// Stops the shared streams feeding the recorder.
    fn release_inputs(&self, r: &mut Recorder) {
        if let Some((video, audio)) = r.inputs.take() {
            if let Some(enc) = self.families.get(&r.family) {
                enc.tee.release_request_pad(&video);
            }
            self.shared_opus_tee.release_request_pad(&audio);
        }
    }

    /// Removes a stopped recorder (its files are closed); returns the
    /// family it kept running, which the caller stops if nobody uses it.
    pub fn finish_recording(&mut self) -> Option<CodecFamily> {
        let r = self.recorder.take()?;
        let family = r.family;
        self.remove_recorder(r);
        Some(family)
    }

    fn remove_recorder(&mut self, mut r: Recorder) {
        self.release_inputs(&mut r);
        let _ = r.bin.set_state(gst::State::Null);
        let _ = self.pipeline.remove(&r.bin);
    }

    /// Whether `family`'s encoder feeds the recording.
    pub(super) fn records(&self, family: CodecFamily) -> bool {
        self.recorder.as_ref().is_some_and(|r| r.family == family)
    }
}

/// Whether a bus message comes from inside a recorder's bin.
pub fn from_recorder(msg: &gst::Message) -> bool {
    super::posted_within(msg, |name| name.starts_with(RECORDER_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Size;
    use crate::media::{MediaSettings, Templates};

    fn settings() -> MediaSettings {
        let pipelines = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
        MediaSettings {
            canvas: Size {
                width: 320,
                height: 180,
            },
            framerate: 15,
            jitter_buffer: Duration::from_millis(60),
            keyframe_min_interval: Duration::from_secs(1),
            ice: Default::default(),
            templates: Arc::new(Templates::load(&pipelines).unwrap()),
            max_input: Size {
                width: 1920,
                height: 1088,
            },
        }
    }

    /// Whether the pipeline went to PAUSED within `wait`.
    fn left_playing(pipeline: &gst::Pipeline, wait: Duration) -> bool {
        let bus = pipeline.bus().unwrap();
        let until = std::time::Instant::now() + wait;
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64))
            else {
                break;
            };
            if let gst::MessageView::StateChanged(s) = msg.view() {
                // A bin that loses its state posts PAUSED to PAUSED.
                if msg.src() == Some(pipeline.upcast_ref()) && s.current() == gst::State::Paused {
                    return true;
                }
            }
        }
        false
    }

    #[test]
    fn starting_a_recording_leaves_the_room_playing() {
        gst::init().unwrap();
        let dir = std::env::temp_dir().join(format!("tessera-rec-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut media = RoomMedia::new("rec-state", settings()).unwrap();
        let pipeline = media.pipeline().clone();
        let (_, state, _) = pipeline.state(gst::ClockTime::from_seconds(5));
        assert_eq!(state, gst::State::Playing);
        // What starting the room posted.
        let bus = pipeline.bus().unwrap();
        while bus.pop().is_some() {}
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        media
            .start_recording("r", &dir, Duration::from_secs(2), CodecFamily::Vp8, &tx)
            .unwrap();
        // The files' sink prerolls on the first encoded frame, well within this.
        assert!(
            !left_playing(&pipeline, Duration::from_secs(2)),
            "the room went to PAUSED when the recording started"
        );
        let written = std::fs::read_dir(&dir).unwrap().count();
        assert!(written > 0, "nothing written in {}", dir.display());
        let _ = pipeline.set_state(gst::State::Null);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
