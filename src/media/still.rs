//! Still pictures as live streams: one frame, made once, repeated by
//! `imagefreeze` on the pipeline clock.
//!
//! The canvas background and the name placeholders never move, yet as
//! live `videotestsrc`s they painted every frame afresh: the background a
//! whole 1280×720 frame 30 times a second (about 1.5 % of a two-person
//! room's server), each placeholder its grey frame and name 5 times a
//! second even while hidden behind the participant's video. `imagefreeze`
//! pushes the same memory again instead.

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::i420_fill;
use super::make::make_element;
use crate::layout::Size;

/// An `imagefreeze` that repeats the latest frame it was given, live.
pub(crate) fn freeze(name: &str) -> anyhow::Result<gst::Element> {
    let f = make_element("imagefreeze", name)?;
    f.set_property("is-live", true);
    f.set_property("allow-replace", true);
    Ok(f)
}

/// A source of still I420 frames of one size and colour, for a [`freeze`].
#[derive(Debug, Clone)]
pub(crate) struct SolidSource {
    src: gst_app::AppSrc,
    info: gst_video::VideoInfo,
}

impl SolidSource {
    /// An `appsrc` of still I420 frames of `size`, in BT.601.
    pub(crate) fn new(name: &str, size: Size) -> anyhow::Result<SolidSource> {
        let info =
            gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, size.width, size.height)
                .fps(gst::Fraction::new(0, 1))
                .par(gst::Fraction::new(1, 1))
                // The canvas's colour description (`formats::canvas_caps`),
                // whatever the size.
                .colorimetry(&"bt601".parse().context("BT.601 colorimetry")?)
                .chroma_site(gst_video::VideoChromaSite::JPEG)
                .build()
                .context("still frame format")?;
        let caps = &info.to_caps().context("still frame caps")?;
        let src = make_element("appsrc", name)?
            .downcast::<gst_app::AppSrc>()
            .map_err(|_| anyhow::anyhow!("appsrc is not an AppSrc"))?;
        src.set_caps(Some(caps));
        src.set_format(gst::Format::Time);
        Ok(SolidSource { src, info })
    }

    /// The source element.
    pub(crate) fn element(&self) -> &gst::Element {
        self.src.upcast_ref()
    }

    /// Sends a frame of colour 0xRRGGBB; the freeze repeats it from its
    /// next frame on.
    pub(crate) fn show(&self, rgb: u32) -> anyhow::Result<()> {
        let frame = solid_frame(&self.info, rgb)?;
        self.src
            .push_buffer(frame)
            .map(|_| ())
            .context("sending a still frame")
    }
}

/// One I420 frame of `info`'s size, all of colour 0xRRGGBB.
pub(crate) fn solid_frame(info: &gst_video::VideoInfo, rgb: u32) -> anyhow::Result<gst::Buffer> {
    let mut buffer = gst::Buffer::with_size(info.size()).context("allocating a still frame")?;
    // Any time will do (imagefreeze stamps its own), but elements on the
    // way, such as textoverlay, drop a frame that has none.
    buffer
        .get_mut()
        .context("fresh buffer is writable")?
        .set_pts(gst::ClockTime::ZERO);
    {
        let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(
            buffer.get_mut().context("fresh buffer is writable")?,
            info,
        )
        .map_err(|_| anyhow::anyhow!("mapping a still frame"))?;
        let whole = crate::layout::Rect {
            x: 0,
            y: 0,
            width: info.width(),
            height: info.height(),
        };
        i420_fill::fill(&mut frame, whole, i420_fill::yuv(rgb, &info.colorimetry()));
    }
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer_video::prelude::*;

    #[test]
    fn a_solid_frame_is_one_colour_throughout() {
        gst::init().unwrap();
        let source = SolidSource::new(
            "still",
            Size {
                width: 64,
                height: 36,
            },
        )
        .unwrap();
        let info = source.info.clone();
        let frame = solid_frame(&info, 0x404040).unwrap();
        let frame = gst_video::VideoFrame::from_buffer_readable(frame, &info).unwrap();
        let want = i420_fill::yuv(0x404040, &info.colorimetry());
        for (plane, value) in [(0, want.y), (1, want.u), (2, want.v)] {
            let stride = frame.plane_stride()[plane] as usize;
            let rows = if plane == 0 { 36 } else { 18 };
            let cols = if plane == 0 { 64 } else { 32 };
            let data = frame.plane_data(plane as u32).unwrap();
            for row in 0..rows {
                assert!(data[row * stride..row * stride + cols]
                    .iter()
                    .all(|&v| v == value));
            }
        }
    }
}
