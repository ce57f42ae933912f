//! `/readyz`: whether this server can take rooms now. Ready means every
//! GStreamer element the media code creates is installed
//! ([`crate::media::elements`]) and the recordings directory is writable
//! (a probe file is created and removed; the directory is created if
//! missing, as the first recording would). Not ready answers 503 and names
//! each problem with what to do about it.
//!
//! The checks are plain functions; [`report`] turns their findings into the
//! status and body, and is what the unit tests cover.

use std::io;
use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};
use warp::http::StatusCode;

/// One thing that keeps the server from being ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What is wrong.
    pub what: String,
    /// How to fix it.
    pub fix: String,
}

/// Problems for GStreamer elements that are not installed.
pub fn element_problems(missing: &[(&str, &str)]) -> Vec<Problem> {
    missing
        .iter()
        .map(|(element, package)| Problem {
            what: format!("GStreamer element {element} is not installed"),
            fix: format!("install the Debian package {package} (apt-get install {package}), or run scripts/setup.sh"),
        })
        .collect()
}

/// The problem a failure to write into the recordings directory `dir` means.
pub fn dir_problem(dir: &Path, error: &io::Error) -> Problem {
    let shown = dir.display();
    let fix = match error.kind() {
        io::ErrorKind::PermissionDenied => format!(
            "give the server's user write permission on {shown} (chown or chmod), or point recording.dir (TESSERA_RECORDINGS_DIR) at a directory it may write"
        ),
        io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists => format!(
            "{shown} or one of its parents is a regular file, not a directory: point recording.dir (TESSERA_RECORDINGS_DIR) at a directory"
        ),
        io::ErrorKind::ReadOnlyFilesystem => format!(
            "{shown} is on a read-only file system: mount it read-write or point recording.dir (TESSERA_RECORDINGS_DIR) elsewhere"
        ),
        io::ErrorKind::StorageFull => format!("the disk holding {shown} is full: free some space"),
        _ => format!(
            "make {shown} a writable directory, or point recording.dir (TESSERA_RECORDINGS_DIR) at one"
        ),
    };
    Problem {
        what: format!("the recordings directory {shown} is not writable: {error}"),
        fix,
    }
}

/// A draining node (cluster) takes no new rooms: not ready, so that a
/// load balancer stops sending it new clients.
pub fn draining() -> Problem {
    Problem {
        what: "draining: this node takes no new rooms; its rooms go on until they end or move"
            .into(),
        fix:
            "none needed: the node is being taken out of service (POST /api/node/drain or SIGTERM)"
                .into(),
    }
}

/// Creates `dir` if needed, then writes and removes a probe file in it.
pub fn check_writable(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let probe = dir.join(format!(
        ".tessera-ready-{}-{:08x}",
        std::process::id(),
        glib::random_int()
    ));
    std::fs::write(&probe, b"ready?\n")?;
    std::fs::remove_file(&probe)
}

/// Runs every check: GStreamer's registry and the recordings directory.
/// Blocking (file system).
pub fn check(recordings: &Path) -> Vec<Problem> {
    let mut problems = element_problems(&crate::media::elements::missing_here());
    if let Err(e) = check_writable(recordings) {
        problems.push(dir_problem(recordings, &e));
    }
    problems
}

/// The answer for a list of problems: 200 when there are none.
pub fn report(problems: Vec<Problem>) -> (StatusCode, Value) {
    if problems.is_empty() {
        (
            StatusCode::OK,
            json!({
                "ready": true,
                "elements": crate::media::elements::REQUIRED.len(),
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "ready": false, "problems": problems }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_wrong_is_ready() {
        let (status, body) = report(vec![]);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["ready"], true);
    }

    #[test]
    fn each_problem_is_named_with_its_fix() {
        let mut problems = element_problems(&[("avdec_h264", "gstreamer1.0-libav")]);
        let dir = Path::new("/srv/lessons");
        problems.push(dir_problem(
            dir,
            &io::Error::from(io::ErrorKind::PermissionDenied),
        ));
        let (status, body) = report(problems);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["ready"], false);
        let p = body["problems"].as_array().unwrap();
        assert_eq!(p.len(), 2);
        assert!(p[0]["what"].as_str().unwrap().contains("avdec_h264"));
        assert!(p[0]["fix"]
            .as_str()
            .unwrap()
            .contains("apt-get install gstreamer1.0-libav"));
        assert!(p[1]["what"].as_str().unwrap().contains("/srv/lessons"));
        assert!(p[1]["fix"].as_str().unwrap().contains("write permission"));
    }

    #[test]
    fn a_directory_under_a_file_is_named_as_such() {
        let base = std::env::temp_dir().join(format!("tessera-ready-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let file = base.join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let dir = file.join("recordings");
        let err = check_writable(&dir).unwrap_err();
        let p = dir_problem(&dir, &err);
        assert!(p.what.contains(&dir.display().to_string()), "{p:?}");
        assert!(p.fix.contains("regular file"), "{p:?}");
        // A writable one passes and keeps no probe file.
        let good = base.join("good");
        check_writable(&good).unwrap();
        assert_eq!(std::fs::read_dir(&good).unwrap().count(), 0);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
