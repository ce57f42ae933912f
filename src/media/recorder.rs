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
//!
//! Recording has two other homes: the room's decisions (when to start and
//! stop, the timeline) in `src/room/actor/record.rs`, and the recordings
//! themselves (manifests, store, recovery, export) in `src/recording/`.
//! `RoomMedia`'s recording calls (`room_media.rs`) drive this recorder.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::mpsc::UnboundedSender;

use super::make::{firewalled_queue, make_element};
use super::{CodecFamily, MediaEvent};
use crate::recording::export::names;

/// Name prefix of a recorder's bin; messages from inside it belong to the recording.
pub const RECORDER_PREFIX: &str = "recorder-";
/// Encoded video frames queued towards the disk (a few seconds).
const VIDEO_QUEUE: u32 = 150;
/// Encoded 20 ms audio packets queued towards the disk.
const AUDIO_QUEUE: u32 = 250;

/// A running recorder.
pub(super) struct Recorder {
    id: String,
    family: CodecFamily,
    bin: gst::Bin,
    /// The tee pads feeding it, until they are released.
    inputs: Option<(gst::Pad, gst::Pad)>,
}

impl Recorder {
    /// Builds a recorder into `pipeline` writing `family`'s encode from
    /// `video_tee` and the shared Opus encode from `audio_tee` into `dir`,
    /// in segments of `segment`, and links it to both tees.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        pipeline: &gst::Pipeline,
        video_tee: &gst::Element,
        audio_tee: &gst::Element,
        id: &str,
        dir: &Path,
        segment: Duration,
        family: CodecFamily,
        events: &UnboundedSender<MediaEvent>,
    ) -> anyhow::Result<Recorder> {
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
                super::probes::swallow(info)
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
        pipeline
            .add(&bin)
            .context("adding the recorder to the room")?;
        if let Err(e) = bin.sync_state_with_parent() {
            let _ = bin.set_state(gst::State::Null);
            let _ = pipeline.remove(&bin);
            return Err(e).context("starting the recorder");
        }
        let video_tee_pad = video_tee
            .request_pad_simple("src_%u")
            .context("requesting the encoded canvas")?;
        let audio_tee_pad = audio_tee
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
            recorder.remove(pipeline, Some(video_tee), audio_tee);
            return Err(e).context("linking the recorder");
        }
        Ok(recorder)
    }

    /// The recording's id.
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// The family whose encode is recorded.
    pub(super) fn family(&self) -> CodecFamily {
        self.family
    }

    /// Begins stopping: its inputs are cut and EOS sent, so the open
    /// segment is finalised. `video_tee` is its family encoder's tee, if
    /// that still runs.
    pub(super) fn stop(&mut self, video_tee: Option<&gst::Element>, audio_tee: &gst::Element) {
        self.release_inputs(video_tee, audio_tee);
        for name in ["video", "audio"] {
            if let Some(pad) = self.bin.static_pad(name) {
                pad.send_event(gst::event::Eos::new());
            }
        }
    }

    /// Stops the shared streams feeding the recorder.
    fn release_inputs(&mut self, video_tee: Option<&gst::Element>, audio_tee: &gst::Element) {
        if let Some((video, audio)) = self.inputs.take() {
            if let Some(tee) = video_tee {
                tee.release_request_pad(&video);
            }
            audio_tee.release_request_pad(&audio);
        }
    }

    /// Removes the recorder from `pipeline` (its files are closed).
    pub(super) fn remove(
        mut self,
        pipeline: &gst::Pipeline,
        video_tee: Option<&gst::Element>,
        audio_tee: &gst::Element,
    ) {
        self.release_inputs(video_tee, audio_tee);
        let _ = self.bin.set_state(gst::State::Null);
        let _ = pipeline.remove(&self.bin);
    }
}

/// Whether a bus message comes from inside a recorder's bin.
pub fn from_recorder(msg: &gst::Message) -> bool {
    super::probes::posted_within(msg, |name| name.starts_with(RECORDER_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Size;
    use crate::media::{MediaSettings, RoomMedia, Templates};

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
            low_tier: crate::media::LowTier {
                size: Size {
                    width: 160,
                    height: 90,
                },
                framerate: 15,
                keyframe_min_interval: Duration::from_secs(3),
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
        // Stopped as a room stops it: the files' sink may be waiting for
        // its other stream, and a pipeline set to NULL under it then
        // deadlocks in GStreamer 1.22's splitmuxsink.
        assert!(media.stop_recording());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut finished = false;
        while !finished && std::time::Instant::now() < deadline {
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
                continue;
            };
            finished = crate::media::from_recorder(&msg)
                && matches!(msg.view(), gst::MessageView::Element(e)
                    if e.structure().is_some_and(|s| s.name() == "GstBinForwarded"
                        && s.get::<gst::Message>("message")
                            .is_ok_and(|m| m.type_() == gst::MessageType::Eos)));
        }
        assert!(finished, "the recording's EOS never came");
        media.finish_recording();
        let _ = pipeline.set_state(gst::State::Null);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
