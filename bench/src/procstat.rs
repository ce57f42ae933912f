//! CPU time and resident memory of one process, read from `/proc` (parsed
//! as the server's own metrics parse them).

use tessera::metrics::process::{cpu_seconds, rss_bytes};

use std::time::Instant;

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    /// When it was taken.
    pub at: Instant,
    /// CPU seconds used so far.
    pub cpu: f64,
    /// Resident memory now.
    pub rss: u64,
}

/// Reads process `pid` now.
pub fn read(pid: u32) -> Option<Reading> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Reading {
        at: Instant::now(),
        cpu: cpu_seconds(&stat)?,
        rss: rss_bytes(&status)?,
    })
}

/// Cores used between two readings.
pub fn cores(from: &Reading, to: &Reading) -> f64 {
    let wall = to.at.duration_since(from.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    (to.cpu - from.cpu) / wall
}
