//! Opaque rectangles written straight into an I420 frame's planes.
//!
//! Borders and the speaker's highlight are solid strips. Blended as
//! overlay rectangles they cost `gst_video_blend`'s per-line unpack, blend
//! and pack, about 3 % of a two-person room's server: a 4-pixel-wide
//! vertical strip is 360 lines of it. Written in place, a strip is a few
//! hundred short `fill`s.

use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use crate::layout::Rect;

/// A colour as I420 samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Yuv {
    pub y: u8,
    pub u: u8,
    pub v: u8,
}

/// 0xRRGGBB in the frame's colour matrix and range.
pub(crate) fn yuv(rgb: u32, colorimetry: &gst_video::VideoColorimetry) -> Yuv {
    // BT.601's weights where the matrix has none of its own.
    let (kr, kb) = colorimetry.matrix().kr_kb().unwrap_or((0.299, 0.114));
    let [_, r, g, b] = rgb.to_be_bytes();
    let (r, g, b) = (
        f64::from(r) / 255.0,
        f64::from(g) / 255.0,
        f64::from(b) / 255.0,
    );
    let luma = kr * r + (1.0 - kr - kb) * g + kb * b;
    let pb = (b - luma) / (2.0 * (1.0 - kb));
    let pr = (r - luma) / (2.0 * (1.0 - kr));
    let full = colorimetry.range() == gst_video::VideoColorRange::Range0_255;
    let (y_off, y_span, c_span) = if full {
        (0.0, 255.0, 255.0)
    } else {
        (16.0, 219.0, 224.0)
    };
    let sample = |v: f64| v.round().clamp(0.0, 255.0) as u8;
    Yuv {
        y: sample(y_off + y_span * luma),
        u: sample(128.0 + c_span * pb),
        v: sample(128.0 + c_span * pr),
    }
}

/// Fills `rect` (clipped to the frame) with `colour`. Chroma samples the
/// rectangle touches at all take the colour, as a blend would paint them.
pub(crate) fn fill(
    frame: &mut gst_video::VideoFrameRef<&mut gstreamer::BufferRef>,
    rect: Rect,
    colour: Yuv,
) {
    let (width, height) = (frame.width(), frame.height());
    let x0 = rect.x.min(width) as usize;
    let y0 = rect.y.min(height) as usize;
    let x1 = rect.x.saturating_add(rect.width).min(width) as usize;
    let y1 = rect.y.saturating_add(rect.height).min(height) as usize;
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    let planes = [
        (0, colour.y, (x0, x1, y0, y1)),
        (
            1,
            colour.u,
            (x0 / 2, x1.div_ceil(2), y0 / 2, y1.div_ceil(2)),
        ),
        (
            2,
            colour.v,
            (x0 / 2, x1.div_ceil(2), y0 / 2, y1.div_ceil(2)),
        ),
    ];
    for (plane, value, (left, right, top, bottom)) in planes {
        let stride = frame.plane_stride()[plane] as usize;
        let Ok(data) = frame.plane_data_mut(plane as u32) else {
            continue;
        };
        for row in top..bottom {
            if let Some(line) = data.get_mut(row * stride + left..row * stride + right) {
                line.fill(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer as gst;

    fn frame_info(width: u32, height: u32) -> gst_video::VideoInfo {
        gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, width, height)
            .build()
            .unwrap()
    }

    #[test]
    fn white_and_black_are_the_ends_of_the_limited_range() {
        gst::init().unwrap();
        let c = frame_info(1280, 720).colorimetry();
        assert_eq!(
            yuv(0xffffff, &c),
            Yuv {
                y: 235,
                u: 128,
                v: 128
            }
        );
        assert_eq!(
            yuv(0x000000, &c),
            Yuv {
                y: 16,
                u: 128,
                v: 128
            }
        );
        let red = yuv(0xff0000, &c);
        assert!(red.v > 200 && red.u < 128, "{red:?}");
    }

    #[test]
    fn a_fill_covers_its_rectangle_and_nothing_else() {
        gst::init().unwrap();
        let info = frame_info(16, 8);
        let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
        buffer.get_mut().unwrap().map_writable().unwrap().fill(0);
        let colour = Yuv {
            y: 200,
            u: 50,
            v: 90,
        };
        let rect = Rect {
            x: 3,
            y: 1,
            width: 4,
            height: 2,
        };
        {
            let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(
                buffer.get_mut().unwrap(),
                &info,
            )
            .unwrap();
            fill(&mut frame, rect, colour);
            // Off the frame: clipped, never a panic.
            fill(
                &mut frame,
                Rect {
                    x: 14,
                    y: 6,
                    width: 10,
                    height: 10,
                },
                colour,
            );
        }
        let frame = gst_video::VideoFrame::from_buffer_readable(buffer, &info).unwrap();
        let y_stride = frame.plane_stride()[0] as usize;
        let luma = frame.plane_data(0).unwrap();
        for row in 0..8 {
            for col in 0..16 {
                let inside = (3..7).contains(&col) && (1..3).contains(&row)
                    || (14..16).contains(&col) && (6..8).contains(&row);
                let want = if inside { 200 } else { 0 };
                assert_eq!(luma[row * y_stride + col], want, "luma at {col},{row}");
            }
        }
        // Chroma: columns 1..4 (x 3..7 touches samples 1, 2, 3), rows 0..2.
        let c_stride = frame.plane_stride()[1] as usize;
        let u = frame.plane_data(1).unwrap();
        let v = frame.plane_data(2).unwrap();
        for row in 0..2 {
            for col in 0..4 {
                let inside = (1..4).contains(&col);
                assert_eq!(u[row * c_stride + col], if inside { 50 } else { 0 });
                assert_eq!(v[row * c_stride + col], if inside { 90 } else { 0 });
            }
        }
    }
}
