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

/// One thread of a process: its id, name and CPU seconds so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub tid: u32,
    pub name: String,
    pub cpu: f64,
}

/// Every thread of process `pid` now, from `/proc/<pid>/task/*/stat`.
pub fn threads(pid: u32) -> Vec<Task> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            Some(Task {
                tid,
                name: thread_name(&stat)?.to_string(),
                cpu: cpu_seconds(&stat)?,
            })
        })
        .collect()
}

/// The name in a `stat` line: between the first `(` and the last `)`.
fn thread_name(stat: &str) -> Option<&str> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    stat.get(open + 1..close)
}

/// A group of the server's threads that do one kind of work.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ThreadGroup {
    /// What they do.
    pub role: String,
    /// Threads at the end of the window (those that lived through it or
    /// were started in it).
    pub threads: usize,
    /// CPU over the window, cores, all of them together.
    pub cores: f64,
    /// The busiest one's CPU, cores.
    pub busiest: f64,
}

/// What a thread named `name` does. Tokio, GLib and GStreamer name their
/// threads; a GStreamer streaming thread is named after the element whose
/// pad it runs, cut to 15 bytes, and a participant's elements are named
/// `p<8 hex>-<what>` (`ParticipantId`), so that only 5 bytes of the what
/// are left.
pub fn role(name: &str) -> &'static str {
    if let Some(what) = participant_element(name) {
        const OWN: &[(&str, &str)] = &[
            (
                "video",
                "canvas out, one per receiver (queue to its webrtcbin)",
            ),
            ("share", "shared mix out, one per listener"),
            ("own-", "own mix-minus, one per talker (mixer and queue)"),
            (
                "voice",
                "voice in, one per sender (Opus decode into the mixers)",
            ),
            (
                "tile-",
                "picture in, one per sender (decode and scale into the tile)",
            ),
            ("place", "tile placeholders (still frames)"),
        ];
        return OWN
            .iter()
            .find(|(prefix, _)| what.starts_with(prefix))
            .map_or("other per-participant elements", |(_, role)| role);
    }
    const ROOM: &[(&str, &str)] = &[
        ("tokio-r", "async runtime (signaling, HTTP, room actors)"),
        ("nicesrc", "webrtcbin: UDP receive, one per connection"),
        ("dtlsenc", "webrtcbin: DTLS/SRTP send, one per connection"),
        (
            "rtprtxsend",
            "webrtcbin: retransmission send, one per connection",
        ),
        ("rtpsession", "webrtcbin: RTCP, one per connection"),
        (
            "rtpjitterbuffer",
            "webrtcbin: jitter buffers, one per received stream",
        ),
        (
            "timer",
            "webrtcbin: jitter buffer timers, one per received stream",
        ),
        ("queue", "webrtcbin: send queues, one per connection"),
        ("canvas", "canvas compositor and background"),
        ("vp8-enc", "VP8 canvas encode"),
        ("h264-enc", "H.264 canvas encode"),
        ("full-mix", "full audio mix"),
        ("mix-silence", "full audio mix"),
        ("shared-mix", "shared mix Opus encode"),
        ("rec-", "recorder"),
        ("pool", "GLib thread pools"),
        ("GstSystemClock", "GStreamer system clock"),
        ("notify", "layout file watcher"),
    ];
    ROOM.iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map_or("other", |(_, role)| role)
}

/// The element part of a participant's thread name `p<8 hex>-<what>`.
fn participant_element(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('p')?;
    let (id, what) = rest.split_at_checked(8)?;
    let what = what.strip_prefix('-')?;
    id.bytes().all(|b| b.is_ascii_hexdigit()).then_some(what)
}

/// Groups the threads of two readings `elapsed` apart by role, busiest
/// role first. A thread started in between counts from zero.
pub fn by_role(before: &[Task], after: &[Task], elapsed: std::time::Duration) -> Vec<ThreadGroup> {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return Vec::new();
    }
    let mut groups: Vec<ThreadGroup> = Vec::new();
    for t in after {
        let earlier = before
            .iter()
            .find(|b| b.tid == t.tid && b.name == t.name)
            .map_or(0.0, |b| b.cpu);
        let cores = (t.cpu - earlier).max(0.0) / secs;
        let name = role(&t.name);
        let g = match groups.iter_mut().find(|g| g.role == name) {
            Some(g) => g,
            None => {
                groups.push(ThreadGroup {
                    role: name.to_string(),
                    ..ThreadGroup::default()
                });
                groups.last_mut().expect("just pushed")
            }
        };
        g.threads += 1;
        g.cores += cores;
        g.busiest = g.busiest.max(cores);
    }
    groups.sort_by(|a, b| b.cores.total_cmp(&a.cores));
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(tid: u32, name: &str, cpu: f64) -> Task {
        Task {
            tid,
            name: name.into(),
            cpu,
        }
    }

    #[test]
    fn a_threads_name_is_read_even_with_spaces_and_brackets() {
        let stat = "4242 (queue3:src) S 1 2 3 0 -1 0 0 0 0 0 150 50 0 0 20 0 1 0";
        assert_eq!(thread_name(stat), Some("queue3:src"));
        assert_eq!(thread_name("7 (a (b) c) R 1"), Some("a (b) c"));
    }

    #[test]
    fn a_participants_threads_are_told_from_the_rooms() {
        assert_eq!(participant_element("pb1de2d3f-tile-"), Some("tile-"));
        assert_eq!(role("pb1de2d3f-tile-"), role("p00000000-tile-queue"));
        assert!(role("p1234abcd-video").starts_with("canvas out"));
        assert!(role("p1234abcd-own-m").starts_with("own mix-minus"));
        assert_eq!(participant_element("pool-tessera-be"), None);
        assert_eq!(role("pool-tessera-be"), "GLib thread pools");
        assert!(role("queue12:src").starts_with("webrtcbin"));
        assert_eq!(role("vp8-enc-queue:s"), "VP8 canvas encode");
        assert_eq!(role("something-else"), "other");
    }

    #[test]
    fn threads_are_grouped_by_role_busiest_first() {
        let before = [
            task(1, "tessera-bench", 1.0),
            task(2, "tokio-runtime-w", 2.0),
            task(3, "tokio-runtime-w", 2.0),
            task(4, "queue3:src", 5.0),
        ];
        let after = [
            task(1, "tessera-bench", 1.0),
            task(2, "tokio-runtime-w", 2.5),
            task(3, "tokio-runtime-w", 2.1),
            task(4, "queue3:src", 7.0),
            // Started in the window: all its time is the window's.
            task(5, "queue9:src", 0.5),
        ];
        let g = by_role(&before, &after, std::time::Duration::from_secs(2));
        assert_eq!(g[0].role, role("queue0:src"));
        assert_eq!(g[0].threads, 2);
        assert!((g[0].cores - 1.25).abs() < 1e-9);
        assert!((g[0].busiest - 1.0).abs() < 1e-9);
        assert_eq!(g[1].role, role("tokio-runtime-w"));
        assert!((g[1].cores - 0.3).abs() < 1e-9);
        assert_eq!(g.last().unwrap().cores, 0.0, "the idle thread is last");
    }
}
