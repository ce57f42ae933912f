//! The `school-day` scenario: one server through many short lessons, back
//! to back and overlapping, for `--duration`. Lessons come in periods of
//! three (rooms of 2, 6 and 12, or 2, half and all of `--participants`),
//! each starting half a lesson after the one
//! before; in each lesson one participant leaves halfway and another
//! joins, and every other lesson is recorded for its middle half. Between
//! periods comes a break with no room open.
//!
//! The server's resident memory, threads and open files are sampled every
//! few seconds; their slope per hour is fitted after the first period. At
//! every break the threads and files must be back to their count at the
//! first break (the first lesson starts a few threads that live as long
//! as the process), no room may be open, and every recording must have
//! ended with its file written.
//!
//! Unless `--no-baseline`, the same lesson is then held three times on
//! fresh servers, with malloc arenas capped (the server's default) and not
//! (`MALLOC_ARENA_MAX` at glibc's own default for this machine), to show
//! what the cap costs in CPU and saves in memory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::children::{free_port, server_env, Server, Steered};
use crate::clip::Codec;
use crate::procstat;
use crate::run::{self, PeerSpec, Plan};
use crate::scenario::Scenario;

/// Room sizes of one period, in order: 2, half the largest and the
/// largest (the preset's 12, or `--participants`).
fn period(largest: usize) -> [usize; 3] {
    let largest = largest.max(2);
    [2, (largest / 2).max(2), largest]
}

/// Seconds between samples.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// One sample of the server.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the day began.
    pub t_s: f64,
    pub rss_mb: f64,
    pub threads: u64,
    pub fds: u64,
    /// Rooms open (from the admin API).
    pub rooms: u64,
}

/// The server at a break.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct AtBreak {
    pub t_s: f64,
    pub rss_mb: f64,
    pub threads: u64,
    pub fds: u64,
    pub rooms: u64,
}

/// What capping malloc arenas costs and saves, the same lesson on fresh
/// servers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ArenaCost {
    /// The lesson's room size.
    pub participants: usize,
    /// Server CPU (cores) with arenas capped, each run.
    pub capped_cores: Vec<f64>,
    /// Server CPU (cores) with glibc's default arenas.
    pub uncapped_cores: f64,
    /// Capped ÷ uncapped, with the capped runs' mean.
    pub cpu_ratio: Option<f64>,
    /// RSS at the end of the lesson (MB), capped runs' mean and uncapped.
    pub capped_rss_mb: f64,
    pub uncapped_rss_mb: f64,
}

/// The whole day.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SchoolDay {
    /// How long the day ran (s).
    pub duration_s: f64,
    /// Lessons held, and of them recorded.
    pub lessons: usize,
    pub recorded: usize,
    /// Room sizes of each period.
    #[serde(default)]
    pub sizes: Vec<usize>,
    /// Lesson length and the time between starts (s).
    pub lesson_s: f64,
    pub stagger_s: f64,
    /// Every sample.
    pub samples: Vec<Sample>,
    /// The server at each break.
    pub breaks: Vec<AtBreak>,
    /// Fitted over the breaks (no room open), per hour: what lessons
    /// leave behind. The samples taken during lessons are not fitted:
    /// they rise and fall with the rooms open at each, and a fit over them
    /// says where in the timetable they fall.
    pub rss_mb_per_hour: Option<f64>,
    pub threads_per_hour: Option<f64>,
    pub fds_per_hour: Option<f64>,
    /// Whether threads and files were at most the first break's count at
    /// every break, with no room open.
    pub back_to_idle: bool,
    /// Rooms open at the end.
    pub rooms_left: u64,
    /// Recordings that did not end with their file written.
    pub recordings_unfinished: Vec<String>,
    /// Participants that did not join.
    pub failed_joins: usize,
    /// The arena cap's cost, unless `--no-baseline`.
    pub arena: Option<ArenaCost>,
}

/// Threads of process `pid`.
fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Open file descriptors of process `pid`.
fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// Rooms open on the server, from the admin API.
async fn rooms_open(client: &reqwest::Client, http: &str) -> u64 {
    let reply = client.get(format!("{http}/api/rooms")).send().await;
    match reply {
        Ok(r) => r
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| {
                v.as_array()
                    .or_else(|| v["rooms"].as_array())
                    .map(|a| a.len() as u64)
            })
            .unwrap_or(0),
        Err(_) => 0,
    }
}

async fn sample(client: &reqwest::Client, http: &str, pid: u32, day: Instant) -> Sample {
    Sample {
        t_s: day.elapsed().as_secs_f64(),
        rss_mb: procstat::read(pid).map_or(0.0, |r| r.rss as f64 / 1_048_576.0),
        threads: threads(pid),
        fds: fds(pid),
        rooms: rooms_open(client, http).await,
    }
}

/// The least-squares slope of `y` against `x`; `None` for fewer than two
/// distinct x.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Lesson length for a day of `duration`: eight lessons' worth at least,
/// between 30 s and 2 minutes.
pub fn lesson_length(duration: Duration) -> Duration {
    (duration / 8).clamp(Duration::from_secs(30), Duration::from_secs(120))
}

/// What the lesson runner needs to start participants.
struct Ctx {
    ws: String,
    http: String,
    send: (u32, u32),
    epoch_ms: f64,
    media_dir: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Ctx {
    async fn join(&self, room: &str, name: String, codec: Codec) -> anyhow::Result<Steered> {
        let spec = PeerSpec {
            ws: self.ws.clone(),
            api: self.http.clone(),
            room: room.into(),
            name,
            codec,
            send: self.send,
            clicks: false,
            voice: false,
            probe: false,
            read_tiles_of: None,
            epoch_ms: self.epoch_ms,
            media_dir: self.media_dir.clone(),
            jitter_ms: run::PEER_JITTER_MS,
            ice_address: None,
            turn: None,
            repair: false,
            p2p: false,
        };
        let args = [
            "peer".into(),
            "--spec".into(),
            serde_json::to_string(&spec)?,
        ];
        let mut child = Steered::spawn(&args, &[], &self.log)?;
        child.next_line(Duration::from_secs(30)).await?;
        Ok(child)
    }
}

/// One lesson: `size` join one after another, one leaves halfway and
/// another joins, a recording of the middle half if `record`, then all
/// leave. Returns participants that failed to join.
async fn lesson(
    ctx: &Ctx,
    client: &reqwest::Client,
    room: String,
    size: usize,
    length: Duration,
    record: bool,
) -> usize {
    let start = Instant::now();
    let mut failed = 0;
    let mut people = Vec::new();
    for p in 0..size {
        let codec = if p % 3 == 2 { Codec::H264 } else { Codec::Vp8 };
        match ctx.join(&room, format!("{room}-{p}"), codec).await {
            Ok(c) => people.push(c),
            Err(e) => {
                tracing::warn!(%room, participant = p, "did not join: {e:#}");
                failed += 1;
            }
        }
    }
    let at = |share: f64| length.mul_f64(share).saturating_sub(start.elapsed());
    tokio::time::sleep(at(0.25)).await;
    let rec_url = format!("{}/api/rooms/{room}/recording", ctx.http);
    if record {
        if let Err(e) = client.post(&rec_url).send().await {
            tracing::warn!(%room, "starting the recording: {e}");
        }
    }
    tokio::time::sleep(at(0.5)).await;
    if let Some(mut leaver) = people.pop() {
        let _ = leaver.say("stop").await;
        leaver.reap(Duration::from_secs(5)).await;
    }
    match ctx.join(&room, format!("{room}-late"), Codec::Vp8).await {
        Ok(c) => people.push(c),
        Err(e) => {
            tracing::warn!(%room, "the latecomer did not join: {e:#}");
            failed += 1;
        }
    }
    tokio::time::sleep(at(0.75)).await;
    if record {
        let _ = client.delete(&rec_url).send().await;
    }
    tokio::time::sleep(at(1.0)).await;
    for p in &mut people {
        let _ = p.say("stop").await;
    }
    for p in people {
        p.reap(Duration::from_secs(5)).await;
    }
    failed
}

/// Waits until no room is open (rooms close a moment after the last
/// participant leaves), for at most 30 s.
async fn until_no_room(client: &reqwest::Client, http: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open = rooms_open(client, http).await;
        if open == 0 || Instant::now() > deadline {
            return open;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until every recording has ended with its file written (a
/// stopped recording's segments are joined into one file after the
/// lesson), for at most a minute; returns those that did not.
async fn until_recordings_written(client: &reqwest::Client, http: &str, dir: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let unfinished = unfinished_recordings(client, http, dir).await;
        if unfinished.is_empty() || Instant::now() > deadline {
            return unfinished;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Threads and files once they have not changed for two seconds (threads
/// end a moment after their room), for at most 15 s.
async fn settled(pid: u32) -> (u64, u64) {
    let mut last = (threads(pid), fds(pid));
    let mut same = 0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = (threads(pid), fds(pid));
        same = if now == last { same + 1 } else { 0 };
        if same >= 4 {
            break;
        }
        last = now;
    }
    last
}

/// Recordings the server lists that did not end with their file written.
async fn unfinished_recordings(client: &reqwest::Client, http: &str, dir: &Path) -> Vec<String> {
    let Ok(reply) = client.get(format!("{http}/api/recordings")).send().await else {
        return vec!["the recordings could not be listed".into()];
    };
    let list: Vec<Value> = reply.json().await.unwrap_or_default();
    list.iter()
        .filter(|m| {
            let ended = !m["ended_at"].is_null() && m["error"].is_null();
            let written = m["export"].as_str().is_some_and(|f| {
                let id = m["id"].as_str().unwrap_or_default();
                std::fs::metadata(dir.join(id).join(f)).is_ok_and(|md| md.len() > 0)
            });
            !(ended && written)
        })
        .map(|m| m["id"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// Runs the day.
pub async fn run(plan: &Plan, s: &Scenario) -> anyhow::Result<SchoolDay> {
    let dir = plan.out.join("school-day");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let port = free_port()?;
    let env = server_env(&dir, port, 40);
    let server = Server::start(plan.config.as_deref(), &env, port, &dir.join("server.log")).await?;
    let pid = server.pid().context("the server has no pid")?;
    let http = server.http.clone();
    // One idle connection at most: when the sampler and a break's checks
    // overlap, a second one is opened, and kept idle it would count among
    // the server's open files at the break.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .context("the benchmark's HTTP client")?;
    let ctx = std::sync::Arc::new(Ctx {
        ws: format!("ws://127.0.0.1:{port}/ws"),
        http: http.clone(),
        send: s.send,
        epoch_ms: run::epoch(),
        media_dir: plan.media_dir.clone(),
        log: dir.join("peers.log"),
    });
    let recordings = dir.join("recordings");
    let length = lesson_length(plan.window);
    let stagger = length / 2;
    let day = Instant::now();
    let mut out = SchoolDay {
        sizes: period(s.per_room).to_vec(),
        lesson_s: length.as_secs_f64(),
        stagger_s: stagger.as_secs_f64(),
        back_to_idle: true,
        ..SchoolDay::default()
    };

    // The sampler runs until the day is over.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sampler = {
        let (client, http) = (client.clone(), http.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                samples.push(sample(&client, &http, pid, day).await);
                tokio::select! {
                    _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                    _ = &mut stop_rx => break,
                }
            }
            samples
        })
    };

    let mut n = 0;
    while day.elapsed() < plan.window || n == 0 {
        let mut lessons = Vec::new();
        for (i, size) in period(s.per_room).iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(stagger).await;
            }
            let room = format!("day-{n}");
            let record = n % 2 == 1;
            n += 1;
            out.recorded += usize::from(record);
            let (ctx, client, size) = (ctx.clone(), client.clone(), *size);
            lessons.push(tokio::spawn(async move {
                lesson(&ctx, &client, room, size, length, record).await
            }));
        }
        for l in lessons {
            out.failed_joins += l.await.unwrap_or(1);
        }
        // The break: no room open, the recordings written, threads and
        // files settled.
        let rooms = until_no_room(&client, &http).await;
        let unwritten = until_recordings_written(&client, &http, &recordings).await;
        if !unwritten.is_empty() {
            tracing::warn!(
                ?unwritten,
                "recordings not written a minute after their lesson"
            );
        }
        let (t, f) = settled(pid).await;
        let at = AtBreak {
            t_s: day.elapsed().as_secs_f64(),
            rss_mb: procstat::read(pid).map_or(0.0, |r| r.rss as f64 / 1_048_576.0),
            threads: t,
            fds: f,
            rooms,
        };
        if let Some(first) = out.breaks.first() {
            // Fewer is fine: a thread of the first lesson's may end later.
            if at.threads > first.threads || at.fds > first.fds || at.rooms != 0 {
                out.back_to_idle = false;
                tracing::warn!(
                    ?at,
                    ?first,
                    "a break with threads or files not back to idle"
                );
            }
        } else if rooms != 0 {
            out.back_to_idle = false;
        }
        tracing::info!(
            lessons = n,
            rss_mb = at.rss_mb,
            threads = t,
            fds = f,
            "a break"
        );
        out.breaks.push(at);
    }
    out.lessons = n;
    out.rooms_left = until_no_room(&client, &http).await;
    out.recordings_unfinished = unfinished_recordings(&client, &http, &recordings).await;
    let _ = stop_tx.send(());
    out.samples = sampler.await.unwrap_or_default();
    out.duration_s = day.elapsed().as_secs_f64();
    server.stop().await;

    let fit = |f: fn(&AtBreak) -> f64| {
        let points: Vec<(f64, f64)> = out.breaks.iter().map(|b| (b.t_s / 3600.0, f(b))).collect();
        slope(&points)
    };
    out.rss_mb_per_hour = fit(|b| b.rss_mb);
    out.threads_per_hour = fit(|b| b.threads as f64);
    out.fds_per_hour = fit(|b| b.fds as f64);
    if plan.baseline {
        out.arena = Some(arena_cost(plan, s, &dir).await?);
    }
    Ok(out)
}

/// One lesson of six on a fresh server with `extra` environment: its CPU
/// over the window and its RSS at the end.
async fn one_lesson(
    plan: &Plan,
    s: &Scenario,
    dir: &Path,
    label: &str,
    extra: &[(String, String)],
) -> anyhow::Result<(f64, f64)> {
    let port = free_port()?;
    let mut env = server_env(dir, port, 10);
    env.extend(extra.iter().cloned());
    let server = Server::start(
        plan.config.as_deref(),
        &env,
        port,
        &dir.join(format!("{label}.log")),
    )
    .await?;
    let pid = server.pid();
    let ctx = Ctx {
        ws: format!("ws://127.0.0.1:{port}/ws"),
        http: server.http.clone(),
        send: s.send,
        epoch_ms: run::epoch(),
        media_dir: plan.media_dir.clone(),
        log: dir.join(format!("{label}-peers.log")),
    };
    let mut people = Vec::new();
    for p in 0..6 {
        let codec = if p % 3 == 2 { Codec::H264 } else { Codec::Vp8 };
        people.push(ctx.join("arena", format!("a{p}"), codec).await?);
    }
    tokio::time::sleep(plan.warmup).await;
    let window = plan.window.min(Duration::from_secs(30));
    let (_, cores, last) = run::sample(pid, window).await;
    for p in &mut people {
        let _ = p.say("stop").await;
    }
    for p in people {
        p.reap(Duration::from_secs(5)).await;
    }
    server.stop().await;
    Ok((cores, last.map_or(0.0, |r| r.rss as f64 / 1_048_576.0)))
}

/// The same lesson with arenas capped, not, and capped again.
async fn arena_cost(plan: &Plan, s: &Scenario, dir: &Path) -> anyhow::Result<ArenaCost> {
    // glibc's own default: eight arenas per core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let uncapped = [("MALLOC_ARENA_MAX".to_string(), (8 * cores).to_string())];
    let a = one_lesson(plan, s, dir, "arena-capped-1", &[]).await?;
    let u = one_lesson(plan, s, dir, "arena-uncapped", &uncapped).await?;
    let b = one_lesson(plan, s, dir, "arena-capped-2", &[]).await?;
    let capped_mean = (a.0 + b.0) / 2.0;
    Ok(ArenaCost {
        participants: 6,
        capped_cores: vec![a.0, b.0],
        uncapped_cores: u.0,
        cpu_ratio: (u.0 > 0.0).then(|| capped_mean / u.0),
        capped_rss_mb: (a.1 + b.1) / 2.0,
        uncapped_rss_mb: u.1,
    })
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// The scenario's section of `results.md`.
pub fn markdown(d: &SchoolDay) -> String {
    let mut out = String::new();
    let first = d.breaks.first();
    let last = d.breaks.last();
    let _ = writeln!(
        out,
        "\n### school-day: {} lessons in {:.1} h ({} recorded; {:.0} s each, a new one every {:.0} s; rooms of {:?})\n",
        d.lessons,
        d.duration_s / 3600.0,
        d.recorded,
        d.lesson_s,
        d.stagger_s,
        d.sizes,
    );
    out.push_str("| figure | at the first break | at the last break | slope per hour across the breaks | target |\n|---|---|---|---|---|\n");
    let _ = writeln!(
        out,
        "| RSS (MB) | {} | {} | {} | within 5 MB per hour |",
        opt(first.map(|b| b.rss_mb), 1),
        opt(last.map(|b| b.rss_mb), 1),
        opt(d.rss_mb_per_hour, 2)
    );
    let _ = writeln!(
        out,
        "| threads | {} | {} | {} | the first break's count at every break |",
        opt(first.map(|b| b.threads as f64), 0),
        opt(last.map(|b| b.threads as f64), 0),
        opt(d.threads_per_hour, 2)
    );
    let _ = writeln!(
        out,
        "| open files | {} | {} | {} | the first break's count at every break |",
        opt(first.map(|b| b.fds as f64), 0),
        opt(last.map(|b| b.fds as f64), 0),
        opt(d.fds_per_hour, 2)
    );
    let peak = d.samples.iter().map(|s| s.rss_mb).fold(0.0, f64::max);
    let _ = writeln!(
        out,
        "\nPeak RSS {peak:.0} MB. Threads and files back to idle at all {} breaks: {}. Rooms left open: {}. Recordings not finished: {}. Participants that did not join: {}.",
        d.breaks.len(),
        if d.back_to_idle { "yes" } else { "**no**" },
        d.rooms_left,
        if d.recordings_unfinished.is_empty() {
            "none".to_string()
        } else {
            d.recordings_unfinished.join(", ")
        },
        d.failed_joins,
    );
    if let Some(a) = &d.arena {
        let _ = writeln!(
            out,
            "\nMalloc arenas, a lesson of {} on fresh servers: capped (the default) {} cores and {:.0} MB; glibc's default {:.2} cores and {:.0} MB; **CPU ratio {}**.",
            a.participants,
            a.capped_cores
                .iter()
                .map(|c| format!("{c:.2}"))
                .collect::<Vec<_>>()
                .join(" / "),
            a.capped_rss_mb,
            a.uncapped_cores,
            a.uncapped_rss_mb,
            opt(a.cpu_ratio, 2)
        );
    }
    out
}

/// Samples by series, for the chart.
pub fn series(d: &SchoolDay) -> BTreeMap<&'static str, Vec<(f64, f64)>> {
    let pick = |f: fn(&Sample) -> f64| d.samples.iter().map(|s| (s.t_s / 60.0, f(s))).collect();
    BTreeMap::from([
        ("RSS (MB)", pick(|s| s.rss_mb)),
        ("threads", pick(|s| s.threads as f64)),
        ("open files", pick(|s| s.fds as f64)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slopes_are_least_squares() {
        assert_eq!(slope(&[(0.0, 1.0)]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
        let s = slope(&[(0.0, 10.0), (1.0, 12.0), (2.0, 14.0), (3.0, 16.0)]).unwrap();
        assert!((s - 2.0).abs() < 1e-9);
        let flat = slope(&[(0.0, 5.0), (1.0, 6.0), (2.0, 5.0), (3.0, 6.0)]).unwrap();
        assert!(flat.abs() < 0.5);
    }

    #[test]
    fn a_period_is_two_half_the_largest_and_the_largest() {
        assert_eq!(period(12), [2, 6, 12]);
        assert_eq!(period(4), [2, 2, 4]);
        assert_eq!(period(1), [2, 2, 2]);
    }

    #[test]
    fn lessons_are_an_eighth_of_the_day_within_bounds() {
        assert_eq!(
            lesson_length(Duration::from_secs(120)),
            Duration::from_secs(30)
        );
        assert_eq!(
            lesson_length(Duration::from_secs(600)),
            Duration::from_secs(75)
        );
        assert_eq!(
            lesson_length(Duration::from_secs(7200)),
            Duration::from_secs(120)
        );
    }
}
