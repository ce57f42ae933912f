//! Reading layout files from a directory (I/O at the edge; parsing and
//! geometry are pure and live in [`super::file`] and [`super::engine`]).

use std::path::{Path, PathBuf};

use super::file::{parse, LayoutError, LayoutFile};

/// One file of a layouts directory: its name (file stem) and what parsing
/// it gave.
#[derive(Debug)]
pub struct Entry {
    /// Layout name: the file name without `.toml`.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// The layout, or why it cannot be used.
    pub layout: Result<LayoutFile, LayoutError>,
}

/// Reads every `*.toml` in `dir`, sorted by name.
pub fn load_dir(dir: &Path) -> std::io::Result<Vec<Entry>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let layout = std::fs::read_to_string(&path)
                .map_err(|e| LayoutError {
                    file: path.clone(),
                    line: 1,
                    column: 1,
                    field: "(file)".into(),
                    message: format!("cannot read: {e}"),
                })
                .and_then(|text| parse(&path, &text));
            Entry { name, path, layout }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_directory_holds_the_builtins_and_all_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("layouts");
        let entries = load_dir(&dir).unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["grid", "pip", "presenter", "screen", "speaker"]);
        for e in &entries {
            assert!(e.layout.is_ok(), "{:?}", e.layout);
        }
        // The built-in copies are the shipped files.
        for (name, text) in super::super::BUILTIN {
            let on_disk = std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap();
            assert_eq!(on_disk, text, "{name}");
        }
    }
}
