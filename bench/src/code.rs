//! The marks the benchmark measures latency with, as pure functions: a frame
//! number drawn into a picture as a row of black and white blocks (read back
//! out of a canvas tile, scaled or not), and the onset of a click in audio.

/// Data bits of the frame code: frame numbers run modulo `1 << CODE_BITS`.
pub const CODE_BITS: u32 = 10;
/// Check bits after the data (the data's popcount modulo 4).
const CHECK_BITS: u32 = 2;
const BLOCKS: u32 = CODE_BITS + CHECK_BITS;
/// Where the row of blocks sits, as fractions of the picture: clear of name
/// labels (bottom) and tile borders (edges).
const BAND_TOP: f64 = 0.30;
const BAND_BOTTOM: f64 = 0.48;
const BAND_LEFT: f64 = 0.12;
const BAND_RIGHT: f64 = 0.88;
const BLACK: u8 = 16;
const WHITE: u8 = 235;

fn check(value: u32) -> u32 {
    value.count_ones() % (1 << CHECK_BITS)
}

fn bits(value: u32) -> impl Iterator<Item = bool> {
    let word = (value & ((1 << CODE_BITS) - 1)) | (check(value) << CODE_BITS);
    (0..BLOCKS).map(move |i| word >> i & 1 == 1)
}

/// The block `i` of a picture of `width`×`height`: (x, y, w, h).
fn block(i: u32, width: u32, height: u32) -> (u32, u32, u32, u32) {
    let left = BAND_LEFT * f64::from(width);
    let step = (BAND_RIGHT - BAND_LEFT) * f64::from(width) / f64::from(BLOCKS);
    let x0 = (left + step * f64::from(i)).round() as u32;
    let x1 = (left + step * f64::from(i + 1)).round() as u32;
    let y0 = (BAND_TOP * f64::from(height)).round() as u32;
    let y1 = (BAND_BOTTOM * f64::from(height)).round() as u32;
    (
        x0,
        y0,
        x1.saturating_sub(x0).max(1),
        y1.saturating_sub(y0).max(1),
    )
}

/// Draws `value` (modulo `1 << CODE_BITS`) into an 8-bit luma plane.
pub fn draw(luma: &mut [u8], stride: usize, width: u32, height: u32, value: u32) {
    for (i, on) in bits(value).enumerate() {
        let (x, y, w, h) = block(i as u32, width, height);
        let shade = if on { WHITE } else { BLACK };
        for row in y..y + h {
            let start = row as usize * stride + x as usize;
            luma[start..start + w as usize].fill(shade);
        }
    }
}

/// A picture inside a bigger frame: where to read a code from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Area {
    /// Left edge in the frame.
    pub x: u32,
    /// Top edge in the frame.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// The part of a tile a picture of aspect `source` fills when scaled to
/// fit inside it, centred (the compositor's letterboxing).
pub fn fitted(tile: Area, source: (u32, u32)) -> Area {
    let (sw, sh) = (f64::from(source.0), f64::from(source.1));
    let scale = (f64::from(tile.width) / sw).min(f64::from(tile.height) / sh);
    let w = (sw * scale).round() as u32;
    let h = (sh * scale).round() as u32;
    Area {
        x: tile.x + (tile.width - w.min(tile.width)) / 2,
        y: tile.y + (tile.height - h.min(tile.height)) / 2,
        width: w.min(tile.width),
        height: h.min(tile.height),
    }
}

/// Reads a code from the picture at `area` of a luma plane; `None` when the
/// blocks are not clearly black or white or the check bits disagree.
pub fn read(luma: &[u8], stride: usize, area: Area) -> Option<u32> {
    let mut word = 0u32;
    for i in 0..BLOCKS {
        let (bx, by, bw, bh) = block(i, area.width, area.height);
        // The middle half of the block, clear of scaling blur at its edges.
        let (x0, y0) = (area.x + bx + bw / 4, area.y + by + bh / 4);
        let (w, h) = ((bw / 2).max(1), (bh / 2).max(1));
        let mut sum = 0u64;
        for row in y0..y0 + h {
            let start = row as usize * stride + x0 as usize;
            sum += luma
                .get(start..start + w as usize)?
                .iter()
                .map(|&v| u64::from(v))
                .sum::<u64>();
        }
        let mean = sum / u64::from(w * h);
        if (60..=190).contains(&mean) {
            return None;
        }
        if mean > 190 {
            word |= 1 << i;
        }
    }
    let value = word & ((1 << CODE_BITS) - 1);
    (word >> CODE_BITS == check(value)).then_some(value)
}

/// The send time (ms) of the latest frame showing `code` sent at or before
/// `now_ms`, when a clip of `period` frames loops and its frame `n % period`
/// (which shows code `n % period`) is sent at `epoch_ms + n * frame_ms`.
pub fn send_time(code: u32, period: u32, epoch_ms: f64, frame_ms: f64, now_ms: f64) -> f64 {
    let period = f64::from(period);
    let n_now = ((now_ms - epoch_ms) / frame_ms).floor();
    let laps = ((n_now - f64::from(code)) / period).floor();
    epoch_ms + (laps * period + f64::from(code)) * frame_ms
}

/// Level above which a sample is part of a click.
pub const CLICK_LEVEL: f32 = 0.25;

/// Finds click onsets in a stream of samples, across buffers: a sample
/// above [`CLICK_LEVEL`] when no other was for at least `gap` samples.
/// (Codec pre-echo before a click stays below the level.)
#[derive(Debug)]
pub struct ClickDetector {
    gap: usize,
    since_loud: usize,
}

impl ClickDetector {
    /// A detector for clicks at least `gap` samples apart.
    pub fn new(gap: usize) -> ClickDetector {
        ClickDetector {
            gap,
            since_loud: gap,
        }
    }

    /// The index in `samples` of the first click onset, if any.
    pub fn feed(&mut self, samples: &[f32]) -> Option<usize> {
        let mut found = None;
        for (i, s) in samples.iter().enumerate() {
            if s.abs() >= CLICK_LEVEL {
                if self.since_loud >= self.gap && found.is_none() {
                    found = Some(i);
                }
                self.since_loud = 0;
            } else {
                self.since_loud = self.since_loud.saturating_add(1);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(w: u32, h: u32, value: u32) -> Vec<u8> {
        let mut luma = vec![128u8; (w * h) as usize];
        draw(&mut luma, w as usize, w, h, value);
        luma
    }

    #[test]
    fn codes_read_back_at_source_size() {
        for value in [0, 1, 300, 511, 1023] {
            let luma = picture(320, 180, value);
            let area = Area {
                x: 0,
                y: 0,
                width: 320,
                height: 180,
            };
            assert_eq!(read(&luma, 320, area), Some(value));
        }
    }

    #[test]
    fn codes_read_back_from_a_scaled_tile() {
        // Nearest-neighbour scale a 640x360 picture into a 212x120 tile at (100, 50).
        let (sw, sh) = (640u32, 360u32);
        let src = picture(sw, sh, 777);
        let (cw, ch) = (1280u32, 720u32);
        let mut canvas = vec![0u8; (cw * ch) as usize];
        let tile = Area {
            x: 100,
            y: 50,
            width: 212,
            height: 120,
        };
        for y in 0..tile.height {
            for x in 0..tile.width {
                let sx = x * sw / tile.width;
                let sy = y * sh / tile.height;
                canvas[((tile.y + y) * cw + tile.x + x) as usize] = src[(sy * sw + sx) as usize];
            }
        }
        assert_eq!(
            read(&canvas, cw as usize, fitted(tile, (sw, sh))),
            Some(777)
        );
    }

    #[test]
    fn grey_or_corrupt_pictures_give_no_code() {
        let luma = vec![128u8; 320 * 180];
        let area = Area {
            x: 0,
            y: 0,
            width: 320,
            height: 180,
        };
        assert_eq!(read(&luma, 320, area), None);
        let mut luma = picture(320, 180, 5);
        // Flip one data block: the check bits no longer agree.
        let (x, y, w, h) = block(1, 320, 180);
        for row in y..y + h {
            let s = (row * 320 + x) as usize;
            luma[s..s + w as usize].fill(WHITE);
        }
        assert_eq!(read(&luma, 320, area), None);
    }

    #[test]
    fn fitting_letterboxes_a_wide_picture() {
        let tile = Area {
            x: 0,
            y: 0,
            width: 400,
            height: 400,
        };
        assert_eq!(
            fitted(tile, (16, 9)),
            Area {
                x: 0,
                y: 87,
                width: 400,
                height: 225
            }
        );
    }

    #[test]
    fn send_time_picks_the_latest_lap() {
        // A 300-frame clip at 30 fps from epoch 0: frame 906 (code 6) went
        // at 30200 ms.
        let t = send_time(6, 300, 0.0, 1000.0 / 30.0, 30_250.0);
        assert!((t - 906.0 * 1000.0 / 30.0).abs() < 1e-6, "{t}");
        // Just before it was sent, code 6 means the lap before.
        let t = send_time(6, 300, 0.0, 1000.0 / 30.0, 30_150.0);
        assert!((t - 606.0 * 1000.0 / 30.0).abs() < 1e-6, "{t}");
    }

    #[test]
    fn clicks_are_found_once_after_quiet() {
        let mut d = ClickDetector::new(100);
        let mut s = vec![0.0f32; 200];
        // Pre-echo just before the click does not hide it.
        s[149] = 0.1;
        s[150] = 0.9;
        s[151] = -0.8;
        assert_eq!(d.feed(&s), Some(150));
        // Ringing right after is not a second click.
        assert_eq!(d.feed(&[0.5, 0.0, 0.6]), None);
        let mut later = vec![0.0f32; 150];
        later[120] = 0.7;
        assert_eq!(d.feed(&later), Some(120));
    }
}
