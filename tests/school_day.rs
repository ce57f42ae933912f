//! A school day in little: lesson after lesson, each a new room that two
//! real peers join, see and hear, and leave, on the `tessera` process run
//! as its own. Its memory comes back after every lesson (the RSS after
//! the last is within 20 % of the RSS after the third), and its threads
//! and open files come back to their idle count whenever no room is open
//! (the count after the first lesson, which starts the few threads that
//! live as long as the process).

mod common;

use std::time::{Duration, Instant};

use common::child::ChildServer;
use common::peer::{PeerOptions, TestPeer};
use common::{init, SERIAL};

/// Lessons held.
const LESSONS: usize = 20;

/// A figure of `/proc/<pid>/status`, in its own unit (kB for memory).
fn status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim_start_matches(':')
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// The names of a process's threads.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|n| n.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Threads and open files, once they stop changing (or after 10 s).
async fn settled(pid: u32) -> (u64, usize) {
    let mut last = (status(pid, "Threads"), open_fds(pid));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = (status(pid, "Threads"), open_fds(pid));
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_threads_and_files_come_back_after_every_lesson() {
    let _serial = SERIAL.lock().await;
    init();
    let server = ChildServer::start(&[]).await;
    let pid = server.pid();
    let idle = settled(pid).await;
    let mut rss = Vec::new();
    let mut after = Vec::new();
    for lesson in 0..LESSONS {
        let room = format!("lesson-{lesson}");
        let mut teacher = PeerOptions::new(&room, "teacher", 0x2040c0);
        teacher.tone_hz = 440.0;
        let teacher = TestPeer::join(&server.ws, teacher).await;
        let mut student = PeerOptions::new(&room, "student", 0xc08020);
        student.tone_hz = 660.0;
        let student = TestPeer::join(&server.ws, student).await;
        assert!(
            common::wait_until(Duration::from_secs(20), || {
                teacher.frames() > 10 && student.frames() > 10 && student.audio_samples() > 48_000
            })
            .await,
            "lesson {lesson}: both see and hear the room"
        );
        student.leave().await;
        teacher.leave().await;
        let closed = Instant::now();
        while common::metric(&server.base, "tessera_rooms_open", "").await != 0.0 {
            assert!(
                closed.elapsed() < Duration::from_secs(15),
                "lesson {lesson}: the room did not close"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let counts = settled(pid).await;
        rss.push(status(pid, "VmRSS"));
        after.push(counts);
    }
    eprintln!("idle threads and files {idle:?}; after each lesson {after:?}; RSS (kB) {rss:?}");
    // The first lesson starts a few threads that live as long as the
    // process (GStreamer's system clock, a GLib thread pool) and nothing
    // more; from then on, every closed room leaves exactly that.
    let first = after[0];
    eprintln!("threads now: {:?}", thread_names(pid));
    assert!(
        first.0 <= idle.0 + 4 && first.1 <= idle.1 + 2,
        "the first lesson left more than the process's lasting threads and files: \
         {idle:?} -> {first:?}; threads now: {:?}",
        thread_names(pid)
    );
    for (lesson, counts) in after.iter().enumerate() {
        assert_eq!(
            *counts,
            first,
            "threads and files after lesson {lesson} are not back to idle: {after:?}; threads now: {:?}",
            thread_names(pid)
        );
    }
    let (third, last) = (rss[2] as f64, rss[LESSONS - 1] as f64);
    assert!(
        last <= third * 1.2,
        "RSS grew from {third} kB after the third lesson to {last} kB after the last: {rss:?}"
    );
}
