//! Media checks for tests: colours sampled from decoded frames, and tone
//! power measured with a Goertzel filter.

/// A decoded RGB frame.
#[derive(Clone)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    /// Packed RGB, `stride` bytes per row.
    pub data: Vec<u8>,
    pub stride: usize,
}

impl Frame {
    /// The frame as a binary PPM image (any image viewer opens it).
    pub fn to_ppm(&self) -> Vec<u8> {
        let mut out = format!("P6\n{} {}\n255\n", self.width, self.height).into_bytes();
        for y in 0..self.height as usize {
            out.extend_from_slice(&self.data[y * self.stride..][..self.width as usize * 3]);
        }
        out
    }

    /// Mean colour of a 9x9 block around (x, y).
    pub fn rgb_at(&self, x: u32, y: u32) -> (u8, u8, u8) {
        let (mut r, mut g, mut b, mut n) = (0u32, 0u32, 0u32, 0u32);
        for dy in -4i32..=4 {
            for dx in -4i32..=4 {
                let px = (x as i32 + dx).clamp(0, self.width as i32 - 1) as usize;
                let py = (y as i32 + dy).clamp(0, self.height as i32 - 1) as usize;
                let i = py * self.stride + px * 3;
                r += u32::from(self.data[i]);
                g += u32::from(self.data[i + 1]);
                b += u32::from(self.data[i + 2]);
                n += 1;
            }
        }
        ((r / n) as u8, (g / n) as u8, (b / n) as u8)
    }
}

impl Frame {
    /// Mean colour of every pixel in a rectangle.
    pub fn mean_in(&self, x: u32, y: u32, width: u32, height: u32) -> (u8, u8, u8) {
        let mut sum = [0u64; 3];
        for py in y..(y + height).min(self.height) {
            for px in x..(x + width).min(self.width) {
                let i = py as usize * self.stride + px as usize * 3;
                for (c, s) in sum.iter_mut().enumerate() {
                    *s += u64::from(self.data[i + c]);
                }
            }
        }
        let n = u64::from(width * height).max(1);
        ((sum[0] / n) as u8, (sum[1] / n) as u8, (sum[2] / n) as u8)
    }
}

/// True when `got` is within a codec's tolerance of `want` (0xRRGGBB).
pub fn color_matches(got: (u8, u8, u8), want: u32) -> bool {
    let w = (
        ((want >> 16) & 0xff) as i32,
        ((want >> 8) & 0xff) as i32,
        (want & 0xff) as i32,
    );
    (got.0 as i32 - w.0).abs() < 60
        && (got.1 as i32 - w.1).abs() < 60
        && (got.2 as i32 - w.2).abs() < 60
}

/// Power of `freq` in `samples` (Goertzel), normalised by the sample count
/// so that a full-scale sine gives about 0.25.
pub fn tone_power(samples: &[f32], freq: f64, rate: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    power / (samples.len() as f64).powi(2)
}

/// Where steady audio in 48 kHz `samples` falls away: the start (ms) of
/// each 10 ms window whose mean power is under a tenth of the median
/// window's. Power over all frequencies, so that a jump in a tone's phase
/// (two encoders spliced) does not count, only audio that is missing.
pub fn dropouts(samples: &[f32]) -> Vec<usize> {
    let windows: Vec<f64> = samples
        .chunks_exact(480)
        .map(|w| w.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / w.len() as f64)
        .collect();
    let mut sorted = windows.clone();
    sorted.sort_by(f64::total_cmp);
    let Some(median) = sorted.get(sorted.len() / 2).copied() else {
        return Vec::new();
    };
    windows
        .iter()
        .enumerate()
        .filter(|(_, p)| **p < median * 0.1)
        .map(|(i, _)| i * 10)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropouts_find_missing_audio_and_not_a_phase_jump() {
        let tone = |n: usize, phase: f64| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 48000.0 + phase).sin() as f32
                })
                .collect()
        };
        let mut audio = tone(48000, 0.0);
        audio.extend(tone(48000, std::f64::consts::PI));
        assert!(dropouts(&audio).is_empty());
        audio[24000..25440].fill(0.0);
        assert_eq!(dropouts(&audio), vec![500, 510, 520]);
    }

    #[test]
    fn goertzel_finds_the_tone_and_not_others() {
        let rate = 48000.0;
        let s: Vec<f32> = (0..48000)
            .map(|i| (0.5 * (2.0 * std::f64::consts::PI * 700.0 * i as f64 / rate).sin()) as f32)
            .collect();
        let on = tone_power(&s, 700.0, rate);
        let off = tone_power(&s, 1100.0, rate);
        assert!(on > 0.05, "{on}");
        assert!(off < on / 1000.0, "{off} vs {on}");
    }
}
