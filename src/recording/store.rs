//! Recordings on disk: one directory per recording under the configured
//! root, named by a generated id. Ids from requests are checked against the
//! id format before any path is built, and the resolved path must stay
//! under the root, so `..`, absolute paths and symlinks lead nowhere.

use std::path::{Path, PathBuf};

use super::manifest::Manifest;

/// File name of the timeline inside a recording's directory.
pub const MANIFEST: &str = "manifest.json";
/// File name of the WebVTT chapters.
pub const CHAPTERS: &str = "chapters.vtt";

/// Why a recording cannot be served or changed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Not a recording id.
    #[error("`{0}` is not a recording id")]
    BadId(String),
    /// No such recording.
    #[error("no recording {0}")]
    NotFound(String),
    /// Disk trouble.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::Io { what, source }
}

/// The recordings directory.
#[derive(Debug, Clone)]
pub struct RecordingStore {
    root: PathBuf,
}

/// True for ids this server generates: `<room>-<yyyymmddThhmmss>-<hex>`,
/// letters, digits, `-`, `_` and `.`, not starting with `.`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && !id.contains("..")
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl RecordingStore {
    /// A store rooted at `root` (created when the first recording starts).
    pub fn new(root: impl Into<PathBuf>) -> RecordingStore {
        RecordingStore { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh id for a recording of `room` starting now.
    pub fn new_id(room: &str) -> String {
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let stamp: String = now.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        format!(
            "{room}-{}-{:06x}",
            stamp.trim_end_matches('Z'),
            glib::random_int() & 0xff_ffff
        )
    }

    /// Creates the directory of a new recording.
    pub fn create(&self, id: &str) -> Result<PathBuf, StoreError> {
        if !valid_id(id) {
            return Err(StoreError::BadId(id.into()));
        }
        let dir = self.root.join(id);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        Ok(dir)
    }

    /// The directory of an existing recording, refusing anything outside the root.
    pub fn dir(&self, id: &str) -> Result<PathBuf, StoreError> {
        if !valid_id(id) {
            return Err(StoreError::BadId(id.into()));
        }
        let dir = self.root.join(id);
        let (Ok(real), Ok(root)) = (dir.canonicalize(), self.root.canonicalize()) else {
            return Err(StoreError::NotFound(id.into()));
        };
        if !real.starts_with(&root) || !real.is_dir() {
            return Err(StoreError::NotFound(id.into()));
        }
        Ok(real)
    }

    /// A file of a recording, which must be a regular file inside its directory.
    pub fn file(&self, id: &str, name: &str) -> Result<PathBuf, StoreError> {
        let dir = self.dir(id)?;
        let real = dir
            .join(name)
            .canonicalize()
            .map_err(|_| StoreError::NotFound(format!("{id}/{name}")))?;
        if !real.starts_with(&dir) || !real.is_file() {
            return Err(StoreError::NotFound(format!("{id}/{name}")));
        }
        Ok(real)
    }

    /// Reads a recording's manifest.
    pub fn manifest(&self, id: &str) -> Result<Manifest, StoreError> {
        let path = self.file(id, MANIFEST)?;
        let text =
            std::fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))?;
        serde_json::from_str(&text).map_err(|e| StoreError::Io {
            what: format!("parsing {}", path.display()),
            source: std::io::Error::other(e),
        })
    }

    /// Writes a manifest (and the chapters derived from it) atomically.
    pub fn save(&self, m: &Manifest) -> Result<(), StoreError> {
        let dir = self.dir(&m.id)?;
        let json = serde_json::to_vec_pretty(m).map_err(|e| StoreError::Io {
            what: "encoding the manifest".into(),
            source: std::io::Error::other(e),
        })?;
        for (name, bytes) in [(MANIFEST, json), (CHAPTERS, m.chapters().into_bytes())] {
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, bytes).map_err(io(format!("writing {}", tmp.display())))?;
            std::fs::rename(&tmp, dir.join(name)).map_err(io(format!("replacing {name}")))?;
        }
        Ok(())
    }

    /// Every recording's manifest, newest first. Unreadable ones are skipped.
    pub fn list(&self) -> Vec<Manifest> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out: Vec<Manifest> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter_map(|id| self.manifest(&id).ok())
            .collect();
        out.sort_by(|a, b| b.started_at.cmp(&a.started_at));
        out
    }

    /// Deletes a recording and all its files.
    pub fn delete(&self, id: &str) -> Result<(), StoreError> {
        let dir = self.dir(id)?;
        std::fs::remove_dir_all(&dir).map_err(io(format!("removing {}", dir.display())))
    }

    /// Free space where recordings go, in MiB (the root, or its nearest
    /// existing parent).
    pub fn free_mb(&self) -> Option<u64> {
        let mut at = self.root.as_path();
        while !at.exists() {
            at = at.parent()?;
        }
        let at = if at.as_os_str().is_empty() {
            Path::new(".")
        } else {
            at
        };
        let st = nix::sys::statvfs::statvfs(at).ok()?;
        Some(st.blocks_available() as u64 * st.fragment_size() as u64 / (1024 * 1024))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> RecordingStore {
        let root = std::env::temp_dir().join(format!(
            "tessera-store-{}-{}",
            std::process::id(),
            glib::random_int()
        ));
        std::fs::create_dir_all(&root).unwrap();
        RecordingStore::new(root)
    }

    #[test]
    fn generated_ids_are_valid_and_unique() {
        let a = RecordingStore::new_id("math-1");
        let b = RecordingStore::new_id("math-1");
        assert!(valid_id(&a), "{a}");
        assert!(a.starts_with("math-1-20"), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn paths_outside_the_root_are_refused() {
        let s = store();
        for bad in ["..", "../etc", "/etc", "a/b", ".hidden", "a..b", ""] {
            assert!(matches!(s.dir(bad), Err(StoreError::BadId(_))), "{bad}");
        }
        // A symlink inside the root that points out of it.
        let outside = std::env::temp_dir();
        std::os::unix::fs::symlink(&outside, s.root().join("escape")).unwrap();
        assert!(matches!(s.dir("escape"), Err(StoreError::NotFound(_))));
        // A file name that climbs out of a recording.
        let dir = s.create("room-1").unwrap();
        std::fs::write(dir.join("a.webm"), b"x").unwrap();
        assert!(s.file("room-1", "a.webm").is_ok());
        assert!(s.file("room-1", "../../etc/passwd").is_err());
        assert!(s.free_mb().is_some_and(|mb| mb > 0));
        s.delete("room-1").unwrap();
        assert!(matches!(s.dir("room-1"), Err(StoreError::NotFound(_))));
    }
}
