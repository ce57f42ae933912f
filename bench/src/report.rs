//! Figures: percentiles, one level's results, and the three outputs (JSON,
//! a Markdown table, a PNG chart of CPU and latency against participants).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::scenario::targets;

/// The `q` quantile (0..=1) of `values`, by nearest rank; `None` if empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

/// Median and 95th percentile of a varying figure.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// 95th percentile.
    pub p95: f64,
}

impl Spread {
    /// Of `values`; `None` if there are none.
    pub fn of(values: &[f64]) -> Option<Spread> {
        Some(Spread {
            median: quantile(values, 0.5)?,
            p95: quantile(values, 0.95)?,
        })
    }

    /// This minus `other`, figure by figure.
    pub fn minus(self, other: Spread) -> Spread {
        Spread {
            median: self.median - other.median,
            p95: self.p95 - other.p95,
        }
    }
}

/// Direct peer-to-peer latency, measured once per run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Direct {
    /// Video glass-to-glass (ms).
    pub video_ms: Option<Spread>,
    /// Audio click-to-ear (ms).
    pub audio_ms: Option<Spread>,
}

/// Everything measured at one load.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Level {
    /// Scenario preset.
    pub scenario: String,
    /// Rooms.
    pub rooms: usize,
    /// Participants in all rooms.
    pub participants: usize,
    /// Send size.
    pub send: (u32, u32),
    /// Measuring window (s).
    pub window_s: f64,
    /// Server CPU, cores, sampled each second.
    pub server_cores: Option<Spread>,
    /// Server CPU over the whole window, cores.
    pub server_cores_mean: f64,
    /// CPU of all synthetic participants together over the window, cores:
    /// what the load generator took of the same machine.
    pub peers_cores: f64,
    /// Baseline CPU, cores: the mean of its runs.
    pub baseline_cores_mean: Option<f64>,
    /// Each baseline run's CPU over its window, cores: before the server
    /// and after it, or after it only when the server heard other talkers
    /// than planned.
    #[serde(default)]
    pub baseline_cores_runs: Vec<f64>,
    /// Tessera CPU ÷ baseline CPU.
    pub cpu_ratio: Option<f64>,
    /// Server RSS at the end of the window (MB).
    pub rss_mb: f64,
    /// Server RSS added per participant over the idle server (MB).
    pub rss_per_participant_mb: f64,
    /// Per receiver, its median canvas fps; spread over receivers.
    pub fps: Option<Spread>,
    /// The worst receiver's median fps.
    pub fps_worst: Option<f64>,
    /// Target canvas fps.
    pub fps_target: f64,
    /// Canvas frames per second the server sent each participant, from its
    /// own counters (`canvasFrames` in the room API); spread over them.
    pub sent_fps: Option<Spread>,
    /// The participant the server sent fewest frames per second.
    pub sent_fps_worst: Option<f64>,
    /// Glass-to-glass video latency through Tessera (ms).
    pub video_latency_ms: Option<Spread>,
    /// Click-to-ear audio latency through Tessera (ms).
    pub audio_latency_ms: Option<Spread>,
    /// Video latency added by the server: through Tessera − direct (ms).
    pub video_added_ms: Option<Spread>,
    /// Audio latency added by the server (ms).
    pub audio_added_ms: Option<Spread>,
    /// Join to first canvas keyframe (ms).
    pub join_ms: Option<Spread>,
    /// Upstream bitrate per participant (kbit/s).
    pub up_kbps: Option<Spread>,
    /// Downstream bitrate per participant (kbit/s).
    pub down_kbps: Option<Spread>,
    /// Server CPU while recording every room ÷ the same rooms not recording.
    pub recording_cpu_ratio: Option<f64>,
    /// Participants that never got a frame or gave no report.
    pub failed_participants: usize,
    /// Participants run at idle CPU priority (`--peers-low-priority`):
    /// the receivers' figures (frame rate, latency, join, downstream) leave
    /// them out, and only the server's own count says what they were sent.
    #[serde(default)]
    pub idle_participants: usize,
    /// Participants run light (`light.rs`), all in one process.
    #[serde(default)]
    pub light_participants: usize,
    /// That process's CPU over the window, cores (part of `peers_cores`).
    #[serde(default)]
    pub light_cores: Option<f64>,
    /// The server's threads over the window, grouped by role.
    #[serde(default)]
    pub server_threads: Vec<crate::procstat::ThreadGroup>,
}

impl Level {
    /// Whether the server sent every participant the canvas at full rate:
    /// only then did it do the baseline's work, and its CPU ratio mean
    /// something. True where the count was not taken.
    pub fn full_rate_sent(&self) -> bool {
        self.sent_fps_worst.is_none_or(|f| f >= targets::MIN_FPS)
    }

    /// The frame rate the worst receiver got. Where some participants ran
    /// at idle priority, what they read tells only how starved they were:
    /// for them the server's own count stands in (the worst of both).
    pub fn worst_receiver_fps(&self) -> Option<f64> {
        if self.idle_participants == 0 {
            return self.fps_worst;
        }
        match (self.fps_worst, self.sent_fps_worst) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What target this level misses, if any (for `--find-capacity`): the
    /// frame rate, and with `latency` the video latency added too.
    pub fn breaks(&self, latency: bool) -> Option<String> {
        match self.worst_receiver_fps() {
            None => return Some("no receiver reported frames".into()),
            Some(f) if f < targets::MIN_FPS => {
                return Some(format!(
                    "a receiver got {f:.1} fps (target {})",
                    targets::MIN_FPS
                ))
            }
            _ => {}
        }
        if let Some(v) = self.video_added_ms.filter(|_| latency) {
            if v.p95 > targets::VIDEO_ADDED_P95_MS {
                return Some(format!("video latency added p95 {:.0} ms", v.p95));
            }
        }
        if self.failed_participants > 0 {
            return Some(format!("{} participants failed", self.failed_participants));
        }
        None
    }
}

/// The server's threads in a level's window, grouped by role.
fn threads_table(l: &Level) -> String {
    let total: usize = l.server_threads.iter().map(|g| g.threads).sum();
    let mut out = format!(
        "\n{} ({} × {}): the server's {total} threads over the window, by role\n\n| role | threads | cores | busiest thread |\n|---|---|---|---|\n",
        l.scenario,
        l.rooms,
        l.participants / l.rooms.max(1),
    );
    for g in &l.server_threads {
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} | {:.3} |",
            g.role, g.threads, g.cores, g.busiest
        );
    }
    out
}

/// Each target of the issue this level can be held to, and whether it held
/// (`None`: not measured).
pub fn verdicts(l: &Level) -> Vec<(&'static str, Option<bool>)> {
    vec![
        (
            "CPU ratio ≤ 1.25",
            l.cpu_ratio
                .filter(|_| l.full_rate_sent())
                .map(|r| r <= targets::CPU_RATIO),
        ),
        (
            "video added p95 ≤ 100 ms",
            l.video_added_ms
                .map(|v| v.p95 <= targets::VIDEO_ADDED_P95_MS),
        ),
        (
            "audio added p95 ≤ 60 ms",
            l.audio_added_ms
                .map(|v| v.p95 <= targets::AUDIO_ADDED_P95_MS),
        ),
        (
            "join p95 ≤ 1 s",
            l.join_ms.map(|v| v.p95 <= targets::JOIN_P95_MS),
        ),
        (
            "every receiver ≥ 29 fps",
            l.worst_receiver_fps().map(|f| f >= targets::MIN_FPS),
        ),
    ]
}

/// A whole run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// The command line.
    pub command: String,
    /// Machine: CPU model and cores.
    pub machine: String,
    /// When (UTC, RFC 3339).
    pub date: String,
    /// Peer-to-peer latency.
    pub direct: Direct,
    /// Each level run.
    pub levels: Vec<Level>,
    /// With --find-capacity: the heaviest level that held, and why the next did not.
    pub capacity: Option<(usize, String)>,
    /// The weak-links scenario, when it ran.
    #[serde(default)]
    pub weak_links: Option<crate::weak::WeakLinks>,
    /// The school-day scenario, when it ran.
    #[serde(default)]
    pub school_day: Option<crate::school::SchoolDay>,
    /// `lesson-1on1` peer-to-peer, when it ran.
    #[serde(default)]
    pub pair: Option<crate::pair::Pair>,
    /// The cluster scenario, when it ran.
    #[serde(default)]
    pub cluster: Option<crate::cluster::ClusterRouting>,
    /// The cluster simulation, when it ran.
    #[serde(default)]
    pub cluster_sim: Option<crate::cluster::sim::Simulation>,
}

fn spread(s: Option<Spread>, digits: usize) -> String {
    match s {
        Some(s) => format!("{:.d$} / {:.d$}", s.median, s.p95, d = digits),
        None => "–".into(),
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

/// The baseline's mean CPU, with its runs before and after the server.
fn baseline_cell(l: &Level) -> String {
    match l.baseline_cores_runs.as_slice() {
        [before, after] => format!(
            "{} ({before:.2} before, {after:.2} after)",
            opt(l.baseline_cores_mean, 2)
        ),
        _ => opt(l.baseline_cores_mean, 2),
    }
}

/// The report as Markdown.
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Command: `{}`  \nMachine: {}  \nDate: {}\n",
        r.command, r.machine, r.date
    );
    // Levels of load: none in a run of only the day or the cluster.
    if !r.levels.is_empty() {
        let _ = writeln!(
            out,
            "Direct peer-to-peer latency (median / p95): video {} ms, audio {} ms.\n",
            spread(r.direct.video_ms, 0),
            spread(r.direct.audio_ms, 0)
        );
        out.push_str("| scenario | rooms × people | send | Tessera CPU (cores, median / p95) | baseline CPU | **ratio** | recording CPU ratio | RSS MB (per person) | synthetic peers' CPU |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for l in &r.levels {
            let _ = writeln!(
            out,
            "| {} | {} × {} | {}×{} | {} (mean {:.2}) | {} | **{}** | {} | {:.0} ({:.1}) | {:.2} |",
            l.scenario,
            l.rooms,
            l.participants / l.rooms.max(1),
            l.send.0,
            l.send.1,
            spread(l.server_cores, 2),
            l.server_cores_mean,
            baseline_cell(l),
            opt(l.cpu_ratio, 2),
            opt(l.recording_cpu_ratio, 2),
            l.rss_mb,
            l.rss_per_participant_mb,
            l.peers_cores,
        );
        }
        out.push('\n');
        out.push_str("| scenario | people | canvas fps per receiver (median / p95; worst) | canvas fps sent by the server (median; worst) | video latency added ms (median / p95) | audio latency added ms | through Tessera: video / audio ms | join → first frame ms | up / down kbit/s per person |\n");
        out.push_str("|---|---|---|---|---|---|---|---|---|\n");
        for l in &r.levels {
            let _ = writeln!(
                out,
                "| {} | {} | {} ; {} of {} | {} ; {} | {} | {} | {} / {} | {} | {} / {} |",
                l.scenario,
                l.participants,
                spread(l.fps, 1),
                opt(l.fps_worst, 1),
                l.fps_target,
                opt(l.sent_fps.map(|s| s.median), 1),
                opt(l.sent_fps_worst, 1),
                spread(l.video_added_ms, 0),
                spread(l.audio_added_ms, 0),
                spread(l.video_latency_ms, 0),
                spread(l.audio_latency_ms, 0),
                spread(l.join_ms, 0),
                spread(l.up_kbps, 0),
                spread(l.down_kbps, 0),
            );
        }
    }
    if let Some(first) = r.levels.first() {
        out.push_str("\nTargets (✔ held, ✘ missed, – not measured; the CPU ratio is not judged where the server could not send the canvas at 29 fps or more, as it then did less work than the baseline):\n\n| scenario | people |");
        for (name, _) in verdicts(first) {
            let _ = write!(out, " {name} |");
        }
        out.push_str("\n|---|---|");
        out.push_str(&"---|".repeat(verdicts(first).len()));
        out.push('\n');
        for l in &r.levels {
            let _ = write!(out, "| {} | {} |", l.scenario, l.participants);
            for (_, held) in verdicts(l) {
                out.push_str(match held {
                    Some(true) => " ✔ |",
                    Some(false) => " ✘ |",
                    None => " – |",
                });
            }
            out.push('\n');
        }
    }
    for l in r.levels.iter().filter(|l| l.idle_participants > 0) {
        let _ = writeln!(
            out,
            "\n{}: {} of {} participants ran at idle CPU priority once joined (`--peers-low-priority`). The receivers' figures come from those at normal priority (each room's clicker and probe, the probe reading only their tiles); whether every receiver got 29 fps is judged from them and from the server's own count of what it sent each participant. A starved sender's frames come late and in bursts, so its tile changes less often than the canvas: the server then does less work than the baseline, and the CPU ratio flatters it.",
            l.scenario,
            l.idle_participants,
            l.participants,
        );
    }
    for l in r.levels.iter().filter(|l| l.light_participants > 0) {
        let _ = writeln!(
            out,
            "\n{}: {} of {} participants were light (str0m, all on one thread of one process, sending pre-encoded media and counting frames without decoding); they took {} cores together. The other {} (each room's clicker and probe, webrtcbin, decoding to measure) took {:.2}.",
            l.scenario,
            l.light_participants,
            l.participants,
            opt(l.light_cores, 3),
            l.participants.saturating_sub(l.light_participants),
            l.peers_cores - l.light_cores.unwrap_or(0.0),
        );
    }
    for l in r.levels.iter().filter(|l| !l.server_threads.is_empty()) {
        out.push_str(&threads_table(l));
    }
    if let Some((n, why)) = &r.capacity {
        let _ = writeln!(
            out,
            "\nCapacity: {n} participants held the targets checked (--capacity-target); the next level did not ({why})."
        );
    }
    if let Some(p) = &r.pair {
        out.push_str(&crate::pair::markdown(p, &r.direct));
    }
    if let Some(w) = &r.weak_links {
        out.push_str(&crate::weak::markdown(w));
    }
    if let Some(d) = &r.school_day {
        out.push_str(&crate::school::markdown(d));
    }
    if let Some(c) = &r.cluster {
        out.push_str(&crate::cluster::markdown(c));
    }
    if let Some(s) = &r.cluster_sim {
        out.push_str(&crate::cluster::sim::markdown(s));
    }
    out
}

/// Writes `results.json`, `results.md` and `results.png` into `dir`.
pub fn write(r: &Report, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(r)?)?;
    std::fs::write(dir.join("results.md"), markdown(r))?;
    crate::chart::draw(r, &dir.join("results.png"))?;
    if let Some(d) = &r.school_day {
        crate::chart::draw_school_day(d, &dir.join("school-day.png"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.95), Some(95.0));
        assert_eq!(quantile(&[3.0], 0.95), Some(3.0));
        assert_eq!(quantile(&[], 0.5), None);
        let s = Spread::of(&[10.0, 30.0, 20.0]).unwrap();
        assert_eq!(
            s,
            Spread {
                median: 20.0,
                p95: 30.0
            }
        );
        assert_eq!(
            s.minus(Spread {
                median: 5.0,
                p95: 5.0
            }),
            Spread {
                median: 15.0,
                p95: 25.0
            }
        );
    }

    #[test]
    fn a_level_breaks_on_fps_or_latency() {
        let mut l = Level {
            fps_worst: Some(29.5),
            video_added_ms: Some(Spread {
                median: 40.0,
                p95: 70.0,
            }),
            ..Level::default()
        };
        assert_eq!(l.breaks(true), None);
        l.fps_worst = Some(27.0);
        assert!(l.breaks(false).unwrap().contains("27.0 fps"));
        l.fps_worst = Some(30.0);
        l.video_added_ms = Some(Spread {
            median: 90.0,
            p95: 130.0,
        });
        assert!(l.breaks(true).unwrap().contains("130"));
        assert_eq!(l.breaks(false), None);
    }

    #[test]
    fn the_cpu_ratio_is_judged_only_at_full_rate() {
        let cpu = |l: &Level| verdicts(l)[0].1;
        let mut l = Level {
            cpu_ratio: Some(1.1),
            ..Level::default()
        };
        assert_eq!(cpu(&l), Some(true), "no count taken: judged");
        l.sent_fps_worst = Some(29.9);
        assert_eq!(cpu(&l), Some(true));
        l.sent_fps_worst = Some(18.0);
        assert_eq!(cpu(&l), None, "less work than the baseline: not judged");
        l.sent_fps_worst = Some(30.0);
        l.cpu_ratio = Some(1.4);
        assert_eq!(cpu(&l), Some(false));
    }

    #[test]
    fn with_idle_participants_the_servers_count_stands_in_for_theirs() {
        let fps = |l: &Level| verdicts(l)[4].1;
        let mut l = Level {
            fps_worst: Some(30.0),
            sent_fps_worst: Some(18.0),
            ..Level::default()
        };
        assert_eq!(fps(&l), Some(true), "everyone measured: receivers judge");
        l.idle_participants = 28;
        assert_eq!(fps(&l), Some(false), "the server sent the idle ones 18 fps");
        assert!(l.breaks(false).unwrap().contains("18.0 fps"));
        l.sent_fps_worst = Some(29.9);
        assert_eq!(fps(&l), Some(true));
        l.fps_worst = Some(25.0);
        assert_eq!(fps(&l), Some(false), "a timed receiver fell short");
        let md = markdown(&Report {
            levels: vec![Level {
                scenario: "speaking-club-30".into(),
                rooms: 1,
                participants: 30,
                ..l
            }],
            ..Report::default()
        });
        assert!(md.contains("28 of 30 participants ran at idle"), "{md}");
    }

    #[test]
    fn markdown_has_a_row_per_level() {
        let r = Report {
            levels: vec![Level {
                scenario: "group-8".into(),
                rooms: 1,
                participants: 8,
                ..Level::default()
            }],
            ..Report::default()
        };
        let md = markdown(&r);
        assert_eq!(md.matches("| group-8 |").count(), 3);
        assert!(md.contains("| group-8 | 8 | – | – | – | – | – |"), "{md}");
    }

    #[test]
    fn the_baseline_cell_shows_its_runs_on_both_sides() {
        let mut l = Level {
            baseline_cores_mean: Some(0.63),
            baseline_cores_runs: vec![0.61, 0.65],
            ..Level::default()
        };
        assert_eq!(baseline_cell(&l), "0.63 (0.61 before, 0.65 after)");
        l.baseline_cores_mean = Some(0.65);
        l.baseline_cores_runs = vec![0.65];
        assert_eq!(baseline_cell(&l), "0.65");
    }
}
