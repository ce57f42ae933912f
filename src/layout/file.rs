//! The layout file format: one TOML file per layout in `layouts/`.
//!
//! A layout is a list of groups, each for a range of participant counts; a
//! group is a list of regions in normalised canvas coordinates (0..1). A
//! region either holds one participant (`arrange = "single"`, taken by role
//! or state) or shares its area among many (`grid`, `row`, `column`).
//! `docs/layouts.md` describes every field; errors name the file, the line,
//! the column and the field.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Who a region takes, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Take {
    /// A participant who joined as a teacher.
    Teacher,
    /// A shared screen.
    Screen,
    /// The current active speaker.
    Speaker,
    /// The participant pinned by a teacher or admin.
    Pinned,
    /// Anyone not placed yet, in join order.
    Rest,
}

/// How a region shares its area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Arrange {
    /// One participant fills the region.
    #[default]
    Single,
    /// Equal tiles, `ceil(sqrt(n))` columns.
    Grid,
    /// Equal tiles side by side.
    Row,
    /// Equal tiles one above the other.
    Column,
}

/// How a participant's picture fills its tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// The whole picture, with bars where the aspect ratios differ.
    #[default]
    Letterbox,
    /// The tile filled, the picture's edges cut.
    Crop,
}

/// Where name labels are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LabelPosition {
    /// Along the bottom edge of the tile.
    #[default]
    Bottom,
    /// Along the top edge.
    Top,
    /// No labels.
    None,
}

/// One region of a group.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Left edge, 0..1 of the canvas width.
    pub x: f64,
    /// Top edge, 0..1 of the canvas height.
    pub y: f64,
    /// Width, 0..1 of the canvas width.
    pub w: f64,
    /// Height, 0..1 of the canvas height.
    pub h: f64,
    /// Who the region takes, first match wins (default `["rest"]`).
    #[serde(default = "rest")]
    pub take: Vec<Take>,
    /// How the region is shared.
    #[serde(default)]
    pub arrange: Arrange,
    /// Most participants a shared region takes (default: all that match).
    #[serde(default)]
    pub max: Option<usize>,
    /// Stacking order: higher is drawn above. Regions that overlap must differ.
    #[serde(default)]
    pub z: u32,
    /// How pictures fill their tiles.
    #[serde(default)]
    pub fit: Fit,
}

fn rest() -> Vec<Take> {
    vec![Take::Rest]
}

/// The regions used for a range of participant counts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Fewest participants this group is for (default 1).
    #[serde(default = "one")]
    pub min: usize,
    /// Most participants this group is for (default: no limit).
    #[serde(default)]
    pub max: Option<usize>,
    /// The regions, placed in this order.
    #[serde(rename = "region")]
    pub regions: Vec<toml::Spanned<Region>>,
}

fn one() -> usize {
    1
}

/// Name labels.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    /// Where labels go.
    #[serde(default)]
    pub position: LabelPosition,
}

/// A whole layout file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutFile {
    /// One line for admins and the layout picker.
    #[serde(default)]
    pub description: String,
    /// Canvas background, `#rrggbb`.
    #[serde(default = "black")]
    pub background: String,
    /// Pixels of background around each tile.
    #[serde(default = "four")]
    pub gap: u32,
    /// Border drawn around each tile, pixels (0: none).
    #[serde(default)]
    pub border: u32,
    /// Colour of tile borders, `#rrggbb`.
    #[serde(default = "grey")]
    pub border_colour: String,
    /// Colour of the active speaker's border, `#rrggbb` (absent: no highlight).
    #[serde(default)]
    pub highlight: Option<String>,
    /// Name labels.
    #[serde(default)]
    pub labels: Labels,
    /// Groups, tried in order; the first whose range holds the count is used.
    #[serde(rename = "group")]
    pub groups: Vec<toml::Spanned<Group>>,
}

fn black() -> String {
    "#000000".into()
}

fn grey() -> String {
    "#3c3c3c".into()
}

fn four() -> u32 {
    4
}

/// A layout file that cannot be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{}:{line}:{column}: {field}: {message}", file.display())]
pub struct LayoutError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line of the offending table or value.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted path of the field, e.g. `group[2].region[1].w`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Parses and validates one layout file's text.
pub fn parse(file: &Path, text: &str) -> Result<LayoutFile, LayoutError> {
    let err = |offset: usize, field: String, message: String| {
        let (line, column) = line_column(text, offset);
        LayoutError {
            file: file.to_path_buf(),
            line,
            column,
            field,
            message,
        }
    };
    let layout: LayoutFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let message = e.message().to_string();
        // serde names the field in its message ("unknown field `wdth`").
        let field = message
            .split('`')
            .nth(1)
            .map(str::to_string)
            .unwrap_or_else(|| "(syntax)".into());
        err(offset, field, message)
    })?;
    for (name, colour) in [
        ("background", Some(&layout.background)),
        ("border_colour", Some(&layout.border_colour)),
        ("highlight", layout.highlight.as_ref()),
    ] {
        if let Some(c) = colour {
            if parse_colour(c).is_none() {
                let at = text.find(name).unwrap_or(0);
                return Err(err(
                    at,
                    name.into(),
                    format!("`{c}` is not a colour; use #rrggbb"),
                ));
            }
        }
    }
    if layout.groups.is_empty() {
        return Err(err(
            0,
            "group".into(),
            "a layout needs at least one [[group]]".into(),
        ));
    }
    for (gi, group) in layout.groups.iter().enumerate() {
        let at = group.span().start;
        let g = group.get_ref();
        if g.min == 0 || g.max.is_some_and(|m| m < g.min) {
            return Err(err(
                at,
                format!("group[{gi}].min"),
                format!(
                    "the range {}..{} is empty; use min >= 1 and max >= min",
                    g.min,
                    g.max.map_or("".into(), |m| m.to_string())
                ),
            ));
        }
        if g.regions.is_empty() {
            return Err(err(
                at,
                format!("group[{gi}].region"),
                "a group needs at least one [[group.region]]".into(),
            ));
        }
        for (ri, region) in g.regions.iter().enumerate() {
            let at = region.span().start;
            let r = region.get_ref();
            let field = |f: &str| format!("group[{gi}].region[{ri}].{f}");
            for (name, v) in [("x", r.x), ("y", r.y), ("w", r.w), ("h", r.h)] {
                if !(0.0..=1.0).contains(&v) || !v.is_finite() {
                    return Err(err(
                        at,
                        field(name),
                        format!("is {v}; use a fraction of the canvas from 0 to 1"),
                    ));
                }
            }
            if r.w <= 0.0 || r.h <= 0.0 {
                return Err(err(
                    at,
                    field("w"),
                    "width and height must be above 0".into(),
                ));
            }
            if r.x + r.w > 1.0 + 1e-9 || r.y + r.h > 1.0 + 1e-9 {
                return Err(err(at, field(if r.x + r.w > 1.0 + 1e-9 { "w" } else { "h" }), format!(
                    "the region ends at x {:.3}, y {:.3}, outside the canvas; keep x + w and y + h at most 1",
                    r.x + r.w,
                    r.y + r.h
                )));
            }
            if r.take.is_empty() {
                return Err(err(
                    at,
                    field("take"),
                    "take at least one of teacher, screen, speaker, pinned, rest".into(),
                ));
            }
            if r.max == Some(0) {
                return Err(err(
                    at,
                    field("max"),
                    "a region taking no one is useless; remove it or use max >= 1".into(),
                ));
            }
            for (oi, other) in g.regions.iter().enumerate().take(ri) {
                let o = other.get_ref();
                let overlap = r.x < o.x + o.w - 1e-9
                    && o.x < r.x + r.w - 1e-9
                    && r.y < o.y + o.h - 1e-9
                    && o.y < r.y + r.h - 1e-9;
                if overlap && o.z == r.z {
                    return Err(err(at, field("z"), format!(
                        "overlaps group[{gi}].region[{oi}] at the same z ({}); give the overlay a higher z",
                        r.z
                    )));
                }
            }
        }
    }
    Ok(layout)
}

/// `#rrggbb` as 0xRRGGBB.
pub fn parse_colour(text: &str) -> Option<u32> {
    let hex = text.strip_prefix('#')?;
    (hex.len() == 6)
        .then(|| u32::from_str_radix(hex, 16).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> LayoutError {
        parse(Path::new("layouts/t.toml"), text).unwrap_err()
    }

    const OK: &str = r#"
description = "two"
[[group]]
[[group.region]]
x = 0.0
y = 0.0
w = 0.5
h = 1.0
"#;

    #[test]
    fn a_minimal_layout_parses_with_defaults() {
        let l = parse(Path::new("t.toml"), OK).unwrap();
        assert_eq!(l.gap, 4);
        assert_eq!(l.background, "#000000");
        let r = l.groups[0].get_ref().regions[0].get_ref();
        assert_eq!(
            (r.arrange, r.fit, r.z),
            (Arrange::Single, Fit::Letterbox, 0)
        );
        assert_eq!(r.take, vec![Take::Rest]);
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let e = parse_err("[[group]]\n[[group.region]]\nx = 0.0\ny = = 1\n");
        assert_eq!((e.line, e.file.to_str().unwrap()), (4, "layouts/t.toml"));
        assert!(e.to_string().starts_with("layouts/t.toml:4:"), "{e}");
    }

    #[test]
    fn unknown_and_mistyped_fields_are_named() {
        let e = parse_err(&OK.replace("w = 0.5", "wdth = 0.5"));
        assert_eq!(e.field, "wdth");
        assert_eq!(e.line, 7, "{e}");
        let e = parse_err(&OK.replace("h = 1.0", "h = \"tall\""));
        assert!(e.message.contains("invalid type"), "{e}");
        assert_eq!(e.line, 8, "{e}");
        let e = parse_err(&format!("{OK}take = [\"boss\"]\n"));
        assert!(e.message.contains("unknown variant `boss`"), "{e}");
    }

    #[test]
    fn out_of_canvas_regions_name_the_region_field() {
        let e = parse_err(&OK.replace("x = 0.0", "x = 0.7"));
        assert_eq!(e.field, "group[0].region[0].w");
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("x + w"), "{e}");
        let e = parse_err(&OK.replace("y = 0.0", "y = -0.1"));
        assert_eq!(e.field, "group[0].region[0].y");
    }

    #[test]
    fn overlaps_need_distinct_z() {
        let two = format!("{OK}[[group.region]]\nx = 0.25\ny = 0.0\nw = 0.5\nh = 0.5\n");
        let e = parse_err(&two);
        assert_eq!(e.field, "group[0].region[1].z");
        assert_eq!(e.line, 9, "{e}");
        assert!(parse(Path::new("t.toml"), &format!("{two}z = 1\n")).is_ok());
    }

    #[test]
    fn bad_colours_and_empty_ranges_are_errors() {
        let e = parse_err(&format!("background = \"red\"\n{OK}"));
        assert_eq!(e.field, "background");
        assert_eq!(e.line, 1);
        let e = parse_err(&OK.replace("[[group]]", "[[group]]\nmin = 3\nmax = 2"));
        assert_eq!(e.field, "group[0].min");
        let e = parse_err("description = \"x\"\n");
        assert!(
            e.message.contains("missing field `group`") || e.field == "group",
            "{e}"
        );
    }
}
