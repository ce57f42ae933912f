//! The grid layout: `ceil(sqrt(n))` columns, rows filled left to right, the
//! last row centred; every tile has the canvas's aspect ratio.

use super::{even, Rect, Size};

/// The grid of `count` tiles on the whole canvas: `ceil(sqrt(n))` columns.
pub fn grid(canvas: Size, count: usize, gap: u32) -> Vec<Rect> {
    let area = Rect {
        x: 0,
        y: 0,
        width: canvas.width,
        height: canvas.height,
    };
    let cols = (count as f64).sqrt().ceil() as u32;
    arrange(area, count, cols, gap, canvas)
}

/// Places `count` equal tiles in `area`, `cols` to a row (rows as needed),
/// each the largest box of `aspect`'s ratio that fits its cell less `gap`,
/// centred in its cell; the block of rows is centred vertically and the
/// last row horizontally.
pub(crate) fn arrange(area: Rect, count: usize, cols: u32, gap: u32, aspect: Size) -> Vec<Rect> {
    if count == 0 || area.width == 0 || area.height == 0 || aspect.width == 0 || aspect.height == 0
    {
        return Vec::new();
    }
    let cols = cols.clamp(1, count as u32);
    let rows = (count as u32).div_ceil(cols);
    let cell_w = area.width / cols;
    let cell_h = area.height / rows;
    let avail_w = cell_w.saturating_sub(gap).max(2);
    let avail_h = cell_h.saturating_sub(gap).max(2);
    let (tile_w, tile_h) = if u64::from(avail_w) * u64::from(aspect.height)
        <= u64::from(avail_h) * u64::from(aspect.width)
    {
        let h = u64::from(avail_w) * u64::from(aspect.height) / u64::from(aspect.width);
        (avail_w, h as u32)
    } else {
        let w = u64::from(avail_h) * u64::from(aspect.width) / u64::from(aspect.height);
        (w as u32, avail_h)
    };
    let (tile_w, tile_h) = (even(tile_w).max(2), even(tile_h).max(2));
    let top = area.y + (area.height - rows * cell_h) / 2;
    (0..count as u32)
        .map(|i| {
            let row = i / cols;
            let col = i % cols;
            let in_row = if row == rows - 1 {
                count as u32 - row * cols
            } else {
                cols
            };
            let left = area.x + (area.width - in_row * cell_w) / 2;
            Rect {
                x: even(left + col * cell_w + (cell_w - tile_w) / 2),
                y: even(top + row * cell_h + (cell_h - tile_h) / 2),
                width: tile_w,
                height: tile_h,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HD: Size = Size {
        width: 1280,
        height: 720,
    };

    #[test]
    fn one_tile_fills_the_canvas() {
        assert_eq!(
            grid(HD, 1, 0),
            vec![Rect {
                x: 0,
                y: 0,
                width: 1280,
                height: 720
            }]
        );
    }

    #[test]
    fn zero_tiles_is_empty() {
        assert!(grid(HD, 0, 0).is_empty());
    }

    #[test]
    fn four_tiles_are_quadrants() {
        let t = grid(HD, 4, 0);
        assert_eq!(
            t[0],
            Rect {
                x: 0,
                y: 0,
                width: 640,
                height: 360
            }
        );
        assert_eq!(
            t[3],
            Rect {
                x: 640,
                y: 360,
                width: 640,
                height: 360
            }
        );
    }

    #[test]
    fn last_row_is_centred() {
        // 3 tiles: 2 columns, 2 rows; the lone third tile sits in the middle.
        let t = grid(HD, 3, 0);
        assert_eq!(t.len(), 3);
        assert_eq!(t[2].y, 360);
        assert_eq!(t[2].x + t[2].width / 2, 640);
        // 5 tiles: 3 columns, 2 rows, last row of 2 centred.
        let t = grid(HD, 5, 0);
        let mid = (t[3].x + t[4].x + t[4].width) / 2;
        assert!((mid as i64 - 640).abs() <= 2, "{t:?}");
    }

    #[test]
    fn one_to_thirty_tiles_fit_without_overlap_and_keep_aspect() {
        for canvas in [
            HD,
            Size {
                width: 640,
                height: 360,
            },
            Size {
                width: 720,
                height: 720,
            },
        ] {
            for gap in [0, 8] {
                let tiles_of = |n| grid(canvas, n, gap);
                for n in 1..=30 {
                    let tiles = tiles_of(n);
                    assert_eq!(tiles.len(), n);
                    let cols = (n as f64).sqrt().ceil() as usize;
                    for (i, a) in tiles.iter().enumerate() {
                        assert!(a.inside(canvas), "n={n} tile {i} {a:?} outside {canvas:?}");
                        assert!(a.width >= 2 && a.height >= 2);
                        assert_eq!(a.x % 2 + a.y % 2 + a.width % 2 + a.height % 2, 0);
                        let want = canvas.width as f64 / canvas.height as f64;
                        let got = a.width as f64 / a.height as f64;
                        assert!(
                            (got - want).abs() / want < 0.03,
                            "n={n} aspect {got} vs {want}"
                        );
                        for b in &tiles[i + 1..] {
                            assert!(!a.overlaps(b), "n={n}: {a:?} overlaps {b:?}");
                        }
                    }
                    // Column count follows ceil(sqrt(n)).
                    let first_row = tiles.iter().filter(|t| t.y == tiles[0].y).count();
                    assert_eq!(first_row, cols.min(n), "n={n}");
                }
            }
        }
    }
}
