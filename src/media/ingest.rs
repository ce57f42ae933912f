//! Ingest: what a participant sends, depayloaded and decoded with explicit
//! elements for the codecs the answer allowed (no `decodebin`), then placed
//! into the canvas and the audio mix.
//!
//! ```text
//! webrtcbin src (VP8)  ─► rtpvp8depay ─► vp8dec(threads=1) ─┐
//! webrtcbin src (H264) ─► rtph264depay ─► avdec_h264 ───────┴► videoconvert ─► videoscale(bilinear, borders)
//!                         ─► caps(I420, tile size) ─► queue(leaky) ─► compositor (tile)
//! webrtcbin src (OPUS) ─► rtpopusdepay ─► opusdec ─► audioconvert ─► audioresample ─► caps(F32 48k mono) ─► audiorate ─► tee
//!                         tee ─► queue ─► full mixer
//!                         tee ─► queue ─► audioamplify(−1) ─► own mix-minus mixer
//! ```

use anyhow::{bail, Context as _};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;
use tokio::sync::mpsc::UnboundedSender;

use super::participant::{set_pad_geometry, Added, VideoTile};
use super::{
    i420_caps, make_capsfilter, make_element, make_leaky_queue, mix_audio_caps,
    sync_downstream_first, CodecFamily, MediaEvent, ParticipantMedia, RoomMedia,
};
use crate::layout::Size;

/// Decoded frames a tile's queue may hold before dropping the oldest.
const TILE_QUEUE: u32 = 3;
/// Decoded 20 ms audio buffers queued in front of each mixer.
const VOICE_QUEUE: u32 = 25;

impl RoomMedia {
    /// Links a new incoming stream of `pm` and releases its blocking probe.
    pub fn link_incoming(
        &mut self,
        pm: &mut ParticipantMedia,
        pad: &gst::Pad,
        probe: gst::PadProbeId,
        events: &UnboundedSender<MediaEvent>,
    ) -> anyhow::Result<()> {
        let caps = pad
            .current_caps()
            .or_else(|| Some(pad.query_caps(None)))
            .context("incoming pad has no caps")?;
        let s = caps.structure(0).context("incoming caps are empty")?;
        let media = s.get::<&str>("media").unwrap_or_default().to_string();
        let encoding = s
            .get::<&str>("encoding-name")
            .unwrap_or_default()
            .to_ascii_uppercase();
        let mut added = Added::default();
        let result = match (media.as_str(), encoding.as_str()) {
            ("video", "VP8") if pm.family == CodecFamily::Vp8 => {
                self.link_video(pm, pad, CodecFamily::Vp8, events, &mut added)
            }
            ("video", "H264") if pm.family == CodecFamily::H264 => {
                self.link_video(pm, pad, CodecFamily::H264, events, &mut added)
            }
            ("audio", "OPUS") => self.link_audio(pm, pad, &mut added),
            _ => Err(anyhow::anyhow!(
                "incoming {media} stream in {encoding} was not negotiated"
            )),
        };
        match &result {
            Ok(()) => pm.elements.extend(added.into_elements()),
            Err(_) => {
                // Unlinked, the pad drops what arrives; the rest of the participant goes on.
                if let Some(peer) = pad.peer() {
                    let _ = pad.unlink(&peer);
                }
                added.undo(self.pipeline.upcast_ref());
                if media == "video" {
                    pm.video = None;
                } else {
                    pm.own_mix_pad = None;
                }
            }
        }
        pad.remove_probe(probe);
        result
    }

    fn link_video(
        &mut self,
        pm: &mut ParticipantMedia,
        pad: &gst::Pad,
        family: CodecFamily,
        events: &UnboundedSender<MediaEvent>,
        added: &mut Added,
    ) -> anyhow::Result<()> {
        if pm.video.is_some() {
            bail!("a second incoming video stream is not supported");
        }
        let id = pm.id.clone();
        let n = |what: &str| format!("{id}-{what}");
        let (depay, dec) = match family {
            CodecFamily::Vp8 => {
                let dec = make_element("vp8dec", &n("vp8dec"))?;
                // libvpx threads spin-wait on an oversubscribed two-core machine.
                dec.set_property("threads", 1u32);
                (make_element("rtpvp8depay", &n("vp8depay"))?, dec)
            }
            CodecFamily::H264 => {
                let dec = make_element("avdec_h264", &n("h264dec"))?;
                dec.set_property("max-threads", 1i32);
                (make_element("rtph264depay", &n("h264depay"))?, dec)
            }
        };
        // Ask the sender for a keyframe (PLI) on loss, and decode nothing until one came.
        depay.set_property("request-keyframe", true);
        depay.set_property("wait-for-keyframe", true);
        let convert = make_element("videoconvert", &n("videoconvert"))?;
        let scale = make_element("videoscale", &n("videoscale"))?;
        scale.set_property_from_str("method", "bilinear");
        scale.set_property("add-borders", true);
        let tile_size = Size {
            width: pm.tile.width,
            height: pm.tile.height,
        };
        let tile_caps = make_capsfilter(&n("tile-caps"), &i420_caps(tile_size, None))?;
        let queue = make_leaky_queue(&n("tile-queue"), TILE_QUEUE)?;
        let chain = [&depay, &dec, &convert, &scale, &tile_caps, &queue];
        let bin = self.pipeline.clone().upcast::<gst::Bin>();
        added.chain(&bin, &chain)?;
        let comp_pad = added.request(&self.compositor, "sink_%u")?;
        comp_pad.set_property("zorder", 2u32);
        set_pad_geometry(&comp_pad, pm.tile);
        queue
            .static_pad("src")
            .context("tile queue src")?
            .link(&comp_pad)
            .context("linking tile to compositor")?;
        pm.video = Some(VideoTile {
            caps: tile_caps.clone(),
            pad: comp_pad.clone(),
        });

        // Tell the actor when the first decoded frame reaches the canvas.
        {
            let events = events.clone();
            let id = id.clone();
            comp_pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                let _ = events.send(MediaEvent::VideoStarted {
                    participant: id.clone(),
                });
                gst::PadProbeReturn::Remove
            });
        }

        sync_downstream_first(&chain)?;
        let depay_sink = depay.static_pad("sink").context("depayloader sink")?;
        pad.link(&depay_sink).context("linking webrtcbin to depayloader")?;
        self.pipeline.recalculate_latency().ok();
        // Ask the sender for a keyframe now rather than at its next periodic one.
        depay_sink.push_event(
            gst_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build(),
        );
        Ok(())
    }

    fn link_audio(
        &mut self,
        pm: &mut ParticipantMedia,
        pad: &gst::Pad,
        added: &mut Added,
    ) -> anyhow::Result<()> {
        if pm.own_mix_pad.is_some() {
            bail!("a second incoming audio stream is not supported");
        }
        let id = pm.id.clone();
        let n = |what: &str| format!("{id}-{what}");
        let depay = make_element("rtpopusdepay", &n("opusdepay"))?;
        let dec = make_element("opusdec", &n("opusdec"))?;
        dec.set_property("plc", true);
        let convert = make_element("audioconvert", &n("audioconvert"))?;
        let resample = make_element("audioresample", &n("audioresample"))?;
        let caps = make_capsfilter(&n("voice-caps"), &mix_audio_caps())?;
        // Sample-exact timestamps: the full mix and the mix-minus must place
        // every sample of this voice at the same offset for the subtraction
        // to cancel it, and RTP arrival jitter would otherwise shift them.
        let rate = make_element("audiorate", &n("voice-rate"))?;
        let tee = make_element("tee", &n("voice-tee"))?;
        let to_full = make_leaky_queue(&n("voice-full-queue"), VOICE_QUEUE)?;
        let to_minus = make_leaky_queue(&n("voice-minus-queue"), VOICE_QUEUE)?;
        let invert = make_element("audioamplify", &n("voice-invert"))?;
        invert.set_property("amplification", -1.0f32);

        let bin = self.pipeline.clone().upcast::<gst::Bin>();
        let main = [&depay, &dec, &convert, &resample, &caps, &rate, &tee];
        added.chain(&bin, &main)?;
        added.chain(&bin, &[&to_full])?;
        added.chain(&bin, &[&to_minus, &invert])?;
        tee.link(&to_full).context("linking voice tee")?;
        tee.link(&to_minus).context("linking voice tee")?;

        let full_pad = added.request(&self.full_mixer, "sink_%u")?;
        to_full
            .static_pad("src")
            .context("voice queue src")?
            .link(&full_pad)
            .context("linking voice to the full mix")?;
        pm.own_mix_pad = Some(full_pad);
        let minus_pad = added.request(&pm.minus_mixer, "sink_%u")?;
        invert
            .static_pad("src")
            .context("inverter src")?
            .link(&minus_pad)
            .context("linking inverted voice to mix-minus")?;

        sync_downstream_first(&[
            &depay, &dec, &convert, &resample, &caps, &rate, &tee, &to_full, &to_minus, &invert,
        ])?;
        pad.link(&depay.static_pad("sink").context("opus depayloader sink")?)
            .context("linking webrtcbin to opus depayloader")?;
        self.pipeline.recalculate_latency().ok();
        Ok(())
    }
}
