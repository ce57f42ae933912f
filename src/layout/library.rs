//! Reading layout files from a directory (I/O at the edge; parsing and
//! geometry are pure and live in [`super::file`] and [`super::engine`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::engine::BUILTIN;
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

/// The layouts a server offers: the built-ins, replaced or joined by the
/// files of a directory. Broken files are kept aside with their errors; a
/// built-in of the same name stays in force.
#[derive(Debug, Clone, Default)]
pub struct Library {
    layouts: BTreeMap<String, Arc<LayoutFile>>,
    errors: BTreeMap<String, LayoutError>,
}

impl Library {
    /// Only the built-in layouts.
    pub fn builtin() -> Library {
        let mut lib = Library::default();
        for (name, text) in BUILTIN {
            let path = PathBuf::from(format!("(built-in) {name}.toml"));
            // The built-ins are tested to parse.
            if let Ok(l) = parse(&path, text) {
                lib.layouts.insert(name.to_string(), Arc::new(l));
            }
        }
        lib
    }

    /// The built-ins plus the files of `dir` (absent directory: built-ins only).
    pub fn load(dir: &Path) -> std::io::Result<Library> {
        let mut lib = Library::builtin();
        if !dir.is_dir() {
            return Ok(lib);
        }
        for entry in load_dir(dir)? {
            match entry.layout {
                Ok(l) => {
                    lib.layouts.insert(entry.name, Arc::new(l));
                }
                Err(e) => {
                    lib.errors.insert(entry.name, e);
                }
            }
        }
        Ok(lib)
    }

    /// A layout by name.
    pub fn get(&self, name: &str) -> Option<Arc<LayoutFile>> {
        self.layouts.get(name).cloned()
    }

    /// Names of the usable layouts, sorted.
    pub fn names(&self) -> Vec<String> {
        self.layouts.keys().cloned().collect()
    }

    /// Files that failed to load, by layout name.
    pub fn errors(&self) -> &BTreeMap<String, LayoutError> {
        &self.errors
    }
}

/// The server's layouts, shared by the HTTP API, signaling and rooms, and
/// replaced whole when the directory changes.
#[derive(Debug, Clone)]
pub struct LayoutStore {
    library: Arc<std::sync::RwLock<Library>>,
    dir: PathBuf,
    default: String,
    speaker_hold: std::time::Duration,
}

impl LayoutStore {
    /// How long the active speaker keeps the floor at least.
    pub fn speaker_hold(&self) -> std::time::Duration {
        self.speaker_hold
    }

    /// Sets the speaker hold time (from config).
    pub fn with_speaker_hold(mut self, hold: std::time::Duration) -> LayoutStore {
        self.speaker_hold = hold;
        self
    }

    /// A store over `library`, loaded from `dir`, whose rooms start with `default`.
    pub fn new(library: Library, dir: PathBuf, default: String) -> LayoutStore {
        LayoutStore {
            library: Arc::new(std::sync::RwLock::new(library)),
            dir,
            default,
            speaker_hold: std::time::Duration::from_secs(2),
        }
    }

    /// The current library (a cheap snapshot).
    pub fn library(&self) -> Library {
        self.library
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A layout by name.
    pub fn get(&self, name: &str) -> Option<Arc<LayoutFile>> {
        self.library
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
    }

    /// Name of the layout new rooms start with.
    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// The directory the files come from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Re-reads the directory. A file that no longer parses keeps its last
    /// good version in force (or the built-in of that name) and is reported.
    pub fn reload(&self) -> std::io::Result<Library> {
        let fresh = Library::load(&self.dir)?;
        let mut lib = self.library.write().unwrap_or_else(|p| p.into_inner());
        let mut merged = fresh.clone();
        for name in fresh.errors.keys() {
            if let Some(previous) = lib.layouts.get(name) {
                merged.layouts.insert(name.clone(), previous.clone());
            }
        }
        *lib = merged.clone();
        Ok(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_file_is_reported_and_the_builtin_stays() {
        let dir = std::env::temp_dir().join(format!("tessera-lib-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("grid.toml"),
            "[[group]]\n[[group.region]]\nx = 2.0\ny = 0.0\nw = 1.0\nh = 1.0\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("duo.toml"),
            "[[group]]\n[[group.region]]\nx = 0.0\ny = 0.0\nw = 0.5\nh = 1.0\narrange = \"grid\"\n",
        )
        .unwrap();
        let lib = Library::load(&dir).unwrap();
        assert!(lib.get("grid").is_some());
        assert!(lib.get("duo").is_some());
        assert_eq!(lib.errors()["grid"].field, "group[0].region[0].x");
        assert_eq!(
            lib.names(),
            ["duo", "grid", "pip", "presenter", "screen", "speaker"]
        );
    }

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
