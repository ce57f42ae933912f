//! Encoder templates: gst-launch fragments in `pipelines/` that an admin can
//! swap (say, for a hardware encoder) without recompiling.
//!
//! Each template is raw media in, encoded media out. All of them are parsed and
//! checked at start-up; an error names the file and what is wrong with it.
//! Lines starting with `#` are comments.
//! The low tier's templates (`vp8-low`, `h264-low`) fall back to the built-in
//! ones when a directory made before them lacks them.

use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::CodecFamily;

/// Built-in copies of the shipped templates, used when the directory is absent.
const BUILTIN_VP8: &str = include_str!("../../pipelines/vp8.pipeline");
const BUILTIN_H264: &str = include_str!("../../pipelines/h264.pipeline");
const BUILTIN_OPUS: &str = include_str!("../../pipelines/opus.pipeline");
const BUILTIN_VP8_LOW: &str = include_str!("../../pipelines/vp8-low.pipeline");
const BUILTIN_H264_LOW: &str = include_str!("../../pipelines/h264-low.pipeline");

/// Tells an Opus encoder built from a template (an element, or a bin with
/// one inside) how much packet loss to expect, percent: libopus adds
/// in-band FEC in proportion.
pub fn expect_loss(encoder: &gst::Element, percent: u8) {
    let set = |e: &gst::Element| {
        let found = e.find_property("packet-loss-percentage").is_some();
        if found {
            e.set_property("packet-loss-percentage", i32::from(percent));
        }
        found
    };
    if set(encoder) {
        return;
    }
    if let Some(bin) = encoder.downcast_ref::<gst::Bin>() {
        for e in bin.iterate_recurse().into_iter().flatten() {
            if set(&e) {
                return;
            }
        }
    }
}

/// Which encoder a template is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateKind {
    /// A video family encoder of the full canvas (the high tier).
    Video(CodecFamily),
    /// A video family encoder of the low tier's smaller canvas.
    LowVideo(CodecFamily),
    /// The Opus audio encoder.
    Opus,
}

impl TemplateKind {
    /// File name inside the pipelines directory.
    pub fn file_name(self) -> &'static str {
        match self {
            TemplateKind::Video(CodecFamily::Vp8) => "vp8.pipeline",
            TemplateKind::Video(CodecFamily::H264) => "h264.pipeline",
            TemplateKind::LowVideo(CodecFamily::Vp8) => "vp8-low.pipeline",
            TemplateKind::LowVideo(CodecFamily::H264) => "h264-low.pipeline",
            TemplateKind::Opus => "opus.pipeline",
        }
    }

    /// The media type the template must output.
    fn output_media_type(self) -> &'static str {
        match self {
            TemplateKind::Video(CodecFamily::Vp8) | TemplateKind::LowVideo(CodecFamily::Vp8) => {
                "video/x-vp8"
            }
            TemplateKind::Video(CodecFamily::H264) | TemplateKind::LowVideo(CodecFamily::H264) => {
                "video/x-h264"
            }
            TemplateKind::Opus => "audio/x-opus",
        }
    }

    fn builtin(self) -> &'static str {
        match self {
            TemplateKind::Video(CodecFamily::Vp8) => BUILTIN_VP8,
            TemplateKind::Video(CodecFamily::H264) => BUILTIN_H264,
            TemplateKind::LowVideo(CodecFamily::Vp8) => BUILTIN_VP8_LOW,
            TemplateKind::LowVideo(CodecFamily::H264) => BUILTIN_H264_LOW,
            TemplateKind::Opus => BUILTIN_OPUS,
        }
    }
}

/// A template that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// Template path.
        file: PathBuf,
        /// I/O error.
        source: std::io::Error,
    },
    /// An element of the template is not installed.
    #[error("{file}: {message}; install the GStreamer plugin that provides it or edit the template (`gst-inspect-1.0` lists installed elements)")]
    MissingElement {
        /// Template path.
        file: PathBuf,
        /// GStreamer's message naming the element.
        message: String,
    },
    /// Bad gst-launch syntax, an unknown property or a bad value.
    #[error("{file}: {message}")]
    Syntax {
        /// Template path.
        file: PathBuf,
        /// GStreamer's message.
        message: String,
    },
    /// The template does not have one raw input and one encoded output.
    #[error("{file}: {reason}")]
    Shape {
        /// Template path.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The validated templates, as launch descriptions.
#[derive(Debug, Clone)]
pub struct Templates {
    vp8: String,
    h264: String,
    vp8_low: String,
    h264_low: String,
    opus: String,
    dir: Option<PathBuf>,
}

/// Removes comment lines and joins the rest into one launch line.
fn launch_text(raw: &str) -> String {
    raw.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Templates {
    /// Loads and validates the templates from `dir`, or the built-in ones if
    /// `dir` does not exist. Needs `gst::init()` first.
    pub fn load(dir: &Path) -> Result<Templates, TemplateError> {
        let from_dir = dir.is_dir();
        let read = |kind: TemplateKind| -> Result<String, TemplateError> {
            let file = dir.join(kind.file_name());
            // A directory made before the low tier existed keeps working:
            // the low tier's templates fall back to the built-in ones.
            let optional = matches!(kind, TemplateKind::LowVideo(_)) && !file.exists();
            let raw = if from_dir && !optional {
                std::fs::read_to_string(&file).map_err(|source| TemplateError::Read {
                    file: file.clone(),
                    source,
                })?
            } else {
                kind.builtin().to_string()
            };
            let text = launch_text(&raw);
            validate(kind, &text, &file)?;
            Ok(text)
        };
        Ok(Templates {
            vp8: read(TemplateKind::Video(CodecFamily::Vp8))?,
            h264: read(TemplateKind::Video(CodecFamily::H264))?,
            vp8_low: read(TemplateKind::LowVideo(CodecFamily::Vp8))?,
            h264_low: read(TemplateKind::LowVideo(CodecFamily::H264))?,
            opus: read(TemplateKind::Opus)?,
            dir: from_dir.then(|| dir.to_path_buf()),
        })
    }

    /// Where the templates came from, for the start-up log.
    pub fn origin(&self) -> String {
        match &self.dir {
            Some(d) => d.display().to_string(),
            None => "built-in templates".into(),
        }
    }

    /// Builds a fresh encoder bin from a template, named `name`.
    pub fn build(&self, kind: TemplateKind, name: &str) -> anyhow::Result<gst::Bin> {
        let text = match kind {
            TemplateKind::Video(CodecFamily::Vp8) => &self.vp8,
            TemplateKind::Video(CodecFamily::H264) => &self.h264,
            TemplateKind::LowVideo(CodecFamily::Vp8) => &self.vp8_low,
            TemplateKind::LowVideo(CodecFamily::H264) => &self.h264_low,
            TemplateKind::Opus => &self.opus,
        };
        let bin = gst::parse::bin_from_description(text, true)
            .map_err(|e| anyhow::anyhow!("building {}: {e}", kind.file_name()))?;
        bin.set_property("name", name);
        Ok(bin)
    }
}

/// Parses a template and checks it has one sink and one source of the right kind.
fn validate(kind: TemplateKind, text: &str, file: &Path) -> Result<(), TemplateError> {
    let bin = gst::parse::bin_from_description(text, true).map_err(|e| {
        let message = e.message().to_string();
        if e.kind::<gst::ParseError>() == Some(gst::ParseError::NoSuchElement) {
            TemplateError::MissingElement {
                file: file.to_path_buf(),
                message,
            }
        } else {
            TemplateError::Syntax {
                file: file.to_path_buf(),
                message,
            }
        }
    })?;
    let shape = |reason: String| TemplateError::Shape {
        file: file.to_path_buf(),
        reason,
    };
    let (Some(sink), Some(src)) = (bin.static_pad("sink"), bin.static_pad("src")) else {
        return Err(shape(
            "a template must be one chain with one free input and one free output".into(),
        ));
    };
    let want = gst::Caps::new_empty_simple(kind.output_media_type());
    let produced = src.query_caps(None);
    if !produced.can_intersect(&want) {
        return Err(shape(format!(
            "must output {} but its last element produces {produced}",
            kind.output_media_type()
        )));
    }
    let raw = match kind {
        TemplateKind::Opus => "audio/x-raw",
        TemplateKind::Video(_) | TemplateKind::LowVideo(_) => "video/x-raw",
    };
    if !sink
        .query_caps(None)
        .can_intersect(&gst::Caps::new_empty_simple(raw))
    {
        return Err(shape(format!("must accept {raw} at its input")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() {
        gst::init().unwrap();
    }

    #[test]
    fn shipped_templates_parse_and_match_builtins() {
        init();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
        let t = Templates::load(&dir).unwrap();
        assert!(t.vp8.starts_with("vp8enc deadline=1"));
        assert!(t.h264.contains("tune=zerolatency"));
        assert!(t.vp8_low.contains("target-bitrate=150000"));
        assert_eq!(t.h264_low, launch_text(BUILTIN_H264_LOW));
        let b = Templates::load(Path::new("/nonexistent")).unwrap();
        assert_eq!(b.opus, t.opus);
        assert_eq!(b.origin(), "built-in templates");
    }

    fn dir_with(vp8: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tessera-tpl-{}-{}", std::process::id(), vp8.len()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("vp8.pipeline"), vp8).unwrap();
        std::fs::write(dir.join("h264.pipeline"), BUILTIN_H264).unwrap();
        std::fs::write(dir.join("opus.pipeline"), BUILTIN_OPUS).unwrap();
        dir
    }

    #[test]
    fn missing_element_names_file_and_element() {
        init();
        let e = Templates::load(&dir_with("# hw\nvaapivp8encx rate-control=cbr\n")).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, TemplateError::MissingElement { .. }), "{text}");
        assert!(text.contains("vp8.pipeline"), "{text}");
        assert!(text.contains("vaapivp8encx"), "{text}");
    }

    #[test]
    fn wrong_output_is_named() {
        init();
        let e = Templates::load(&dir_with("x264enc"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("must output video/x-vp8"), "{e}");
    }

    #[test]
    fn bad_property_is_a_syntax_error() {
        init();
        let e = Templates::load(&dir_with("vp8enc no-such-prop=3")).unwrap_err();
        assert!(matches!(e, TemplateError::Syntax { .. }), "{e}");
    }
}
