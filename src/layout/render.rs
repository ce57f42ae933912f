//! Draws a layout to a picture, for admins and the docs: each participant's
//! tile in its own colour over the layout's background, stacked by `z`.
//! Drawing is pure (an RGB buffer); PNG encoding is GStreamer's `pngenc`.

use anyhow::Context as _;
use gstreamer as gst;
use gstreamer::prelude::*;

use super::decor::{decorate, DecorStyle, Paint, TileDecor};
use super::engine::{place, Member};
use super::file::{parse_colour, LayoutFile};
use super::Size;

/// Tile colours, in join order (teachers are drawn in the first).
const PALETTE: [u32; 8] = [
    0x4e79a7, 0xf28e2b, 0x59a14f, 0xe15759, 0x76b7b2, 0xedc948, 0xb07aa1, 0xff9da7,
];

/// An RGB picture, 3 bytes per pixel, rows packed.
pub fn render_rgb(layout: &LayoutFile, canvas: Size, members: &[Member]) -> Vec<u8> {
    let (w, h) = (canvas.width as usize, canvas.height as usize);
    let bg = parse_colour(&layout.background).unwrap_or(0);
    let mut px = Vec::with_capacity(w * h * 3);
    for _ in 0..w * h {
        px.extend_from_slice(&[(bg >> 16) as u8, (bg >> 8) as u8, bg as u8]);
    }
    let mut placed = place(layout, canvas, members);
    placed.sort_by_key(|p| p.z);
    for p in &placed {
        let colour = PALETTE[p.member % PALETTE.len()];
        let edge = 2;
        for y in p.rect.y..p.rect.y + p.rect.height {
            for x in p.rect.x..p.rect.x + p.rect.width {
                let border = x < p.rect.x + edge
                    || y < p.rect.y + edge
                    || x + edge >= p.rect.x + p.rect.width
                    || y + edge >= p.rect.y + p.rect.height;
                let c = if border { 0xffffff } else { colour };
                let i = (y as usize * w + x as usize) * 3;
                px[i..i + 3].copy_from_slice(&[(c >> 16) as u8, (c >> 8) as u8, c as u8]);
            }
        }
    }
    // The layout's borders and highlight, as rooms draw them.
    let tiles: Vec<TileDecor> = placed
        .iter()
        .map(|p| TileDecor {
            rect: p.rect,
            z: p.z,
            speaker: members[p.member].speaker,
            muted: false,
            hand: false,
        })
        .collect();
    for paint in decorate(&tiles, &DecorStyle::of(layout)) {
        if let Paint::Fill { rect, rgb } = paint {
            for y in rect.y..rect.y + rect.height {
                for x in rect.x..rect.x + rect.width {
                    let i = (y as usize * w + x as usize) * 3;
                    px[i..i + 3].copy_from_slice(&[(rgb >> 16) as u8, (rgb >> 8) as u8, rgb as u8]);
                }
            }
        }
    }
    px
}

/// Encodes an RGB picture as PNG with GStreamer. Needs `gst::init()`.
pub fn png(rgb: &[u8], canvas: Size) -> anyhow::Result<Vec<u8>> {
    let pipeline = gst::parse::launch(
        "appsrc name=src num-buffers=1 ! videoconvert ! pngenc snapshot=true ! appsink name=sink sync=false",
    )
    .context("building the PNG encoder (gstreamer1.0-plugins-good)")?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let src = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gstreamer_app::AppSrc>().ok())
        .context("appsrc")?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gstreamer_app::AppSink>().ok())
        .context("appsink")?;
    src.set_caps(Some(
        &gst::Caps::builder("video/x-raw")
            .field("format", "RGB")
            .field("width", canvas.width as i32)
            .field("height", canvas.height as i32)
            .field("framerate", gst::Fraction::new(1, 1))
            .build(),
    ));
    pipeline.set_state(gst::State::Playing)?;
    let mut buffer = gst::Buffer::from_mut_slice(rgb.to_vec());
    buffer
        .get_mut()
        .context("fresh buffer")?
        .set_pts(gst::ClockTime::ZERO);
    src.push_buffer(buffer).context("pushing the picture")?;
    let _ = src.end_of_stream();
    let sample = sink
        .try_pull_sample(gst::ClockTime::from_seconds(10))
        .context("the PNG encoder produced nothing")?;
    pipeline.set_state(gst::State::Null)?;
    let buffer = sample.buffer().context("empty sample")?;
    let map = buffer.map_readable().context("reading the PNG")?;
    Ok(map.as_slice().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::file::parse;
    use crate::layout::BUILTIN;
    use std::path::Path;

    #[test]
    fn tiles_are_drawn_in_their_colours_over_the_background() {
        let layout = parse(Path::new("presenter"), BUILTIN[2].1).unwrap();
        let canvas = Size {
            width: 320,
            height: 180,
        };
        let mut members = vec![Member::default(); 3];
        members[2].teacher = true;
        let rgb = render_rgb(&layout, canvas, &members);
        let at = |x: u32, y: u32| {
            let i = (y as usize * 320 + x as usize) * 3;
            u32::from(rgb[i]) << 16 | u32::from(rgb[i + 1]) << 8 | u32::from(rgb[i + 2])
        };
        // The teacher (third to join) fills the top; the background shows at the very edge.
        assert_eq!(at(160, 60), PALETTE[2]);
        assert_eq!(at(0, 179), 0x000000);
    }

    #[test]
    fn png_encoding_produces_a_png() {
        gst::init().unwrap();
        let canvas = Size {
            width: 64,
            height: 36,
        };
        let layout = parse(Path::new("grid"), BUILTIN[0].1).unwrap();
        let bytes = png(
            &render_rgb(&layout, canvas, &[Member::default(); 2]),
            canvas,
        )
        .unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }
}
