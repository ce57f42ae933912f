//! Places participants on the canvas according to a [`LayoutFile`]: pure
//! geometry, no I/O.

use super::file::{Arrange, Fit, LayoutFile, Region, Take};
use super::grid::{arrange, grid};
use super::{even, Rect, Size};

/// A participant as a layout sees it: its role and state, in join order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Member {
    /// Joined as a teacher.
    pub teacher: bool,
    /// A shared screen.
    pub screen: bool,
    /// The current active speaker.
    pub speaker: bool,
    /// Pinned by a teacher or admin.
    pub pinned: bool,
}

impl Member {
    fn matches(&self, take: Take) -> bool {
        match take {
            Take::Teacher => self.teacher,
            Take::Screen => self.screen,
            Take::Speaker => self.speaker,
            Take::Pinned => self.pinned,
            Take::Rest => true,
        }
    }
}

/// Where one participant goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Index into the members given to [`place`].
    pub member: usize,
    /// Tile on the canvas.
    pub rect: Rect,
    /// Stacking order, higher above.
    pub z: u32,
    /// How the picture fills the tile.
    pub fit: Fit,
}

fn region_rect(r: &Region, canvas: Size) -> Rect {
    let px = |f: f64, total: u32| (f * f64::from(total)).round() as u32;
    let x = even(px(r.x, canvas.width));
    let y = even(px(r.y, canvas.height));
    let right = px(r.x + r.w, canvas.width).min(canvas.width);
    let bottom = px(r.y + r.h, canvas.height).min(canvas.height);
    Rect {
        x,
        y,
        width: even(right.saturating_sub(x)).max(2),
        height: even(bottom.saturating_sub(y)).max(2),
    }
}

/// Shrinks a rect by `gap` (half on each side), keeping it even and non-empty.
fn inset(r: Rect, gap: u32) -> Rect {
    let half = even(gap / 2);
    if r.width <= gap + 2 || r.height <= gap + 2 {
        return r;
    }
    Rect {
        x: r.x + half,
        y: r.y + half,
        width: even(r.width - gap),
        height: even(r.height - gap),
    }
}

/// Places `members` (in join order) on a canvas of `size`.
///
/// The first group whose count range holds `members.len()` is used; if none
/// does, everyone shares one grid. Regions are filled in file order: a
/// single region takes the first member not yet placed that matches its
/// `take` list (tried in order), a shared region takes every such member
/// (up to its `max`). Members no region takes are not shown.
pub fn place(layout: &LayoutFile, canvas: Size, members: &[Member]) -> Vec<Placement> {
    let n = members.len();
    let group = layout
        .groups
        .iter()
        .map(|g| g.get_ref())
        .find(|g| n >= g.min && g.max.is_none_or(|m| n <= m));
    let Some(group) = group else {
        return grid(canvas, n, layout.gap)
            .into_iter()
            .enumerate()
            .map(|(member, rect)| Placement {
                member,
                rect,
                z: 0,
                fit: Fit::Letterbox,
            })
            .collect();
    };
    let mut placed = vec![false; n];
    let mut out = Vec::new();
    for region in group.regions.iter().map(|r| r.get_ref()) {
        let area = region_rect(region, canvas);
        match region.arrange {
            Arrange::Single => {
                let chosen = region
                    .take
                    .iter()
                    .find_map(|take| (0..n).find(|&i| !placed[i] && members[i].matches(*take)));
                if let Some(i) = chosen {
                    placed[i] = true;
                    out.push(Placement {
                        member: i,
                        rect: inset(area, layout.gap),
                        z: region.z,
                        fit: region.fit,
                    });
                }
            }
            shared => {
                let mut chosen: Vec<usize> = (0..n)
                    .filter(|&i| !placed[i] && region.take.iter().any(|t| members[i].matches(*t)))
                    .collect();
                chosen.truncate(region.max.unwrap_or(usize::MAX));
                let k = chosen.len();
                let cols = match shared {
                    Arrange::Row => k as u32,
                    Arrange::Column => 1,
                    _ => (k as f64).sqrt().ceil() as u32,
                };
                for (i, rect) in chosen
                    .iter()
                    .zip(arrange(area, k, cols, layout.gap, canvas))
                {
                    placed[*i] = true;
                    out.push(Placement {
                        member: *i,
                        rect,
                        z: region.z,
                        fit: region.fit,
                    });
                }
            }
        }
    }
    out
}

/// The layouts shipped in `layouts/`, built into the binary.
pub const BUILTIN: [(&str, &str); 5] = [
    ("grid", include_str!("../../layouts/grid.toml")),
    ("speaker", include_str!("../../layouts/speaker.toml")),
    ("presenter", include_str!("../../layouts/presenter.toml")),
    ("screen", include_str!("../../layouts/screen.toml")),
    ("pip", include_str!("../../layouts/pip.toml")),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::file::parse;
    use std::path::Path;

    fn builtin(name: &str) -> LayoutFile {
        let text = BUILTIN.iter().find(|(n, _)| *n == name).unwrap().1;
        parse(Path::new(name), text).unwrap()
    }

    const HD: Size = Size {
        width: 1280,
        height: 720,
    };

    /// Rooms to try: everyone a student; a teacher who joined third; a
    /// teacher, a shared screen and an active speaker.
    fn rooms(n: usize) -> Vec<Vec<Member>> {
        let plain = vec![Member::default(); n];
        let mut teacher = plain.clone();
        teacher[(n - 1).min(2)].teacher = true;
        let mut busy = teacher.clone();
        busy[0].screen = true;
        busy[n - 1].speaker = true;
        vec![plain, teacher, busy]
    }

    #[test]
    fn every_builtin_parses_and_places_everyone_inside_without_overlap() {
        for (name, _) in BUILTIN {
            let layout = builtin(name);
            for n in 1..=30 {
                for members in rooms(n) {
                    let p = place(&layout, HD, &members);
                    let mut seen: Vec<usize> = p.iter().map(|p| p.member).collect();
                    seen.sort();
                    seen.dedup();
                    assert_eq!(seen.len(), n, "{name} n={n}: not everyone placed: {p:?}");
                    for (i, a) in p.iter().enumerate() {
                        assert!(a.rect.inside(HD), "{name} n={n}: {a:?} outside");
                        assert!(
                            a.rect.width >= 2 && a.rect.height >= 2,
                            "{name} n={n}: {a:?}"
                        );
                        for b in &p[i + 1..] {
                            assert!(
                                a.z != b.z || !a.rect.overlaps(&b.rect),
                                "{name} n={n}: {a:?} overlaps {b:?} at the same z"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn shared_regions_keep_the_canvas_aspect() {
        for (name, _) in BUILTIN {
            let layout = builtin(name);
            for n in 2..=30 {
                let p = place(&layout, HD, &vec![Member::default(); n]);
                let tiles: Vec<_> = p.iter().filter(|p| p.rect.width < 600).collect();
                for t in tiles {
                    let got = f64::from(t.rect.width) / f64::from(t.rect.height);
                    assert!((got - 16.0 / 9.0).abs() < 0.1, "{name} n={n}: {t:?}");
                }
            }
        }
    }

    fn area(p: &Placement) -> u32 {
        p.rect.width * p.rect.height
    }

    fn of(p: &[Placement], member: usize) -> Placement {
        *p.iter().find(|p| p.member == member).unwrap()
    }

    #[test]
    fn presenter_puts_the_teacher_large_whoever_joined_first() {
        let layout = builtin("presenter");
        for n in 2..=30 {
            let mut m = vec![Member::default(); n];
            m[n - 1].teacher = true;
            let p = place(&layout, HD, &m);
            let teacher = of(&p, n - 1);
            assert!(
                p.iter()
                    .all(|o| o.member == n - 1 || area(o) < area(&teacher) / 3),
                "n={n}: {p:?}"
            );
        }
    }

    #[test]
    fn speaker_follows_the_active_speaker() {
        let layout = builtin("speaker");
        let mut m = vec![Member::default(); 6];
        m[4].speaker = true;
        let p = place(&layout, HD, &m);
        let big = p.iter().max_by_key(|p| area(p)).unwrap();
        assert_eq!(big.member, 4);
    }

    #[test]
    fn screen_shows_the_screen_large_and_the_teacher_as_an_overlay() {
        let layout = builtin("screen");
        let mut m = vec![Member::default(); 5];
        m[1].teacher = true;
        m[3].screen = true;
        let p = place(&layout, HD, &m);
        let screen = of(&p, 3);
        let teacher = of(&p, 1);
        assert!(p.iter().all(|o| area(o) <= area(&screen)));
        assert!(
            teacher.z > screen.z && teacher.rect.overlaps(&screen.rect),
            "{p:?}"
        );
    }

    #[test]
    fn a_layout_without_a_group_for_the_count_falls_back_to_a_grid() {
        let layout = parse(
            Path::new("t"),
            "[[group]]\nmax = 1\n[[group.region]]\nx = 0.0\ny = 0.0\nw = 1.0\nh = 1.0\n",
        )
        .unwrap();
        let p = place(&layout, HD, &[Member::default(); 4]);
        assert_eq!(p.len(), 4);
    }
}
