//! The parent side of a benchmark run: the same media work in the bare
//! baseline; then start the server, bring up the synthetic participants,
//! measure a window, record a while, stop; then the baseline again; then
//! put the figures together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::baseline::{RoomWork, Work};
use crate::children::{free_port, server_env, Server, Steered};
use crate::clip::{self, Codec};
use crate::peer::Measured;
use crate::procstat;
use crate::report::{Direct, Level, Spread};
use crate::scenario::Scenario;

/// Timing and output of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Seconds after the last join before measuring.
    pub warmup: Duration,
    /// Measuring window.
    pub window: Duration,
    /// Also measure recording every room.
    pub record: bool,
    /// Also run the baseline.
    pub baseline: bool,
    /// Output and work directory.
    pub out: PathBuf,
    /// Where the clips are cached.
    pub media_dir: PathBuf,
    /// The server's config file; `None`: the default.
    pub config: Option<PathBuf>,
    /// Run the synthetic participants at the lowest CPU priority.
    pub peers_low_priority: bool,
    /// Run the participants that are not timed as light ones, all in one
    /// process on one thread (`crowd.rs`); else each is a webrtcbin
    /// process as the timed ones are.
    pub light: bool,
}

/// What a synthetic participant process is told to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerSpec {
    /// Signaling URL.
    pub ws: String,
    /// Server base URL, for the room's tiles.
    pub api: String,
    /// Room id.
    pub room: String,
    /// Display name.
    pub name: String,
    /// Video codec.
    pub codec: Codec,
    /// Send size.
    pub send: (u32, u32),
    /// Send the click track (else a quiet tone, or a voice).
    pub clicks: bool,
    /// Send a voice (`clicks` wins).
    #[serde(default)]
    pub voice: bool,
    /// Decode and read latency marks.
    pub probe: bool,
    /// A probe reads the marks in these participants' tiles only (by
    /// name); `None`: in everyone's.
    #[serde(default)]
    pub read_tiles_of: Option<Vec<String>>,
    /// Shared schedule start.
    pub epoch_ms: f64,
    /// Clip cache.
    pub media_dir: PathBuf,
    /// Receive jitter buffer.
    pub jitter_ms: u32,
    /// The address to gather ICE candidates on; `None`: loopback.
    #[serde(default)]
    pub ice_address: Option<std::net::IpAddr>,
    /// A TURN server to reach the server through, relay only.
    #[serde(default)]
    pub turn: Option<String>,
    /// Ask for retransmissions (NACK) of what is missing.
    #[serde(default)]
    pub repair: bool,
    /// Join able to connect directly, and run peer-to-peer when told.
    #[serde(default)]
    pub p2p: bool,
}

/// Time between two participants' joins.
pub const JOIN_GAP: Duration = Duration::from_millis(300);

/// Receive jitter buffer of the synthetic participants, as a browser keeps
/// on a clean network.
pub const PEER_JITTER_MS: u32 = 40;

pub fn epoch() -> f64 {
    (clip::now_ms() / 1000.0).floor() * 1000.0
}

pub fn report_of(line: &str) -> Option<Measured> {
    serde_json::from_str(line).ok()
}

/// Whether participant `p` of a room is timed: the clicker (0) and the
/// probe (1), whose figures the latency and frame-rate figures come from.
fn is_timed(p: usize) -> bool {
    p <= 1
}

/// What one participant reported, and whether it ran at idle priority.
struct Report {
    measured: Measured,
    idle: bool,
}

/// Measures direct peer-to-peer latency at `send` size.
pub async fn direct(plan: &Plan, send: (u32, u32)) -> anyhow::Result<Direct> {
    let spec = PeerSpec {
        ws: String::new(),
        api: String::new(),
        room: "direct".into(),
        name: "direct".into(),
        codec: Codec::Vp8,
        send,
        clicks: true,
        voice: false,
        probe: true,
        read_tiles_of: None,
        epoch_ms: epoch(),
        media_dir: plan.media_dir.clone(),
        jitter_ms: PEER_JITTER_MS,
        ice_address: None,
        turn: None,
        repair: false,
        p2p: false,
    };
    let log = plan.out.join("direct.log");
    let mut child = Steered::spawn(
        &[
            "direct".into(),
            "--spec".into(),
            serde_json::to_string(&spec)?,
        ],
        &[],
        &log,
    )?;
    child
        .next_line(Duration::from_secs(60))
        .await
        .context("direct peers")?;
    tokio::time::sleep(plan.warmup).await;
    child.say("window").await?;
    tokio::time::sleep(plan.window).await;
    child.say("report").await?;
    let m = report_of(&child.next_line(Duration::from_secs(20)).await?).context("direct report")?;
    child.reap(Duration::from_secs(5)).await;
    Ok(Direct {
        video_ms: Spread::of(&m.video_latency_ms),
        audio_ms: Spread::of(&m.audio_latency_ms),
    })
}

pub fn cores_between(a: &Option<procstat::Reading>, b: &Option<procstat::Reading>) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) => procstat::cores(a, b),
        _ => 0.0,
    }
}

/// Samples `pid` every second for `window`; returns per-second cores, the
/// whole window's cores and the last reading.
pub async fn sample(
    pid: Option<u32>,
    window: Duration,
) -> (Vec<f64>, f64, Option<procstat::Reading>) {
    let read = || pid.and_then(procstat::read);
    let first = read();
    let mut prev = first;
    let mut per_second = Vec::new();
    let end = tokio::time::Instant::now() + window;
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(1).min(end - tokio::time::Instant::now())).await;
        let now = read();
        per_second.push(cores_between(&prev, &now));
        prev = now;
    }
    (per_second, cores_between(&first, &prev), prev)
}

/// Runs the baseline, one level of load against the server, then the
/// baseline again.
pub async fn level(plan: &Plan, s: &Scenario, direct: &Direct) -> anyhow::Result<Level> {
    let dir = plan
        .out
        .join(format!("{}-{}x{}", s.name, s.rooms, s.per_room));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let port = free_port()?;
    let env = server_env(&dir, port, s.participants());
    // The baseline runs on both sides of the server, so that the machine's
    // drift over these minutes cancels out of the ratio. Before, it plans
    // a mix-minus for each room's clicker, the one participant that talks.
    let clickers: BTreeMap<usize, Extra> = (0..s.rooms)
        .map(|r| {
            let e = Extra {
                talkers: 1,
                low: Vec::new(),
            };
            (r, e)
        })
        .collect();
    let before = baseline(plan, s, &clickers, &env, &dir.join("baseline-before.log")).await?;
    let server = Server::start(plan.config.as_deref(), &env, port, &dir.join("server.log")).await?;
    let pid = server.pid();
    let idle_rss = pid.and_then(procstat::read).map(|r| r.rss).unwrap_or(0);
    let epoch_ms = epoch();
    let http = server.http.clone();
    let ws = format!("ws://127.0.0.1:{port}/ws");
    let peer_log = dir.join("peers.log");
    let mut peers = Vec::new();
    let mut failed = 0;
    // The light participants' one process, if any is light.
    let mut crowd = if plan.light && (0..s.per_room).any(|p| !is_timed(p)) {
        Some(Steered::spawn(
            &["crowd".into()],
            &[],
            &dir.join("crowd.log"),
        )?)
    } else {
        None
    };
    let mut light_joined = 0;
    for r in 0..s.rooms {
        let name = |p: usize| format!("p{r}-{p}");
        for p in 0..s.per_room {
            // With the load generator at idle priority once joined, the
            // room's timed participants (the clicker and the probe) still
            // run at normal priority, and the probe reads only their
            // tiles: a starved sender's frames leave late, and a starved
            // receiver reads them late.
            let idle = plan.peers_low_priority && !is_timed(p);
            let spec = PeerSpec {
                ws: ws.clone(),
                api: http.clone(),
                room: format!("bench-{r}"),
                name: name(p),
                codec: s.codec(p),
                send: s.send,
                clicks: p == 0,
                voice: false,
                probe: p == 1 || s.per_room == 1,
                read_tiles_of: plan
                    .peers_low_priority
                    .then(|| (0..s.per_room).filter(|&q| is_timed(q)).map(name).collect()),
                epoch_ms,
                media_dir: plan.media_dir.clone(),
                jitter_ms: PEER_JITTER_MS,
                ice_address: None,
                turn: None,
                repair: false,
                p2p: false,
            };
            if let (Some(c), false) = (crowd.as_mut(), is_timed(p)) {
                c.say(&format!("join {}", serde_json::to_string(&spec)?))
                    .await?;
                let line = c.next_line(Duration::from_secs(40)).await?;
                if line.starts_with("joined ") {
                    light_joined += 1;
                    tokio::time::sleep(JOIN_GAP).await;
                } else {
                    tracing::warn!(
                        room = r,
                        participant = p,
                        "a light participant did not join: {line}"
                    );
                    failed += 1;
                }
                continue;
            }
            let args = [
                "peer".into(),
                "--spec".into(),
                serde_json::to_string(&spec)?,
            ];
            let mut child = Steered::spawn(&args, &[], &peer_log)?;
            match child.next_line(Duration::from_secs(30)).await {
                Ok(_) => {
                    // Joined and connected at normal priority: at idle
                    // priority on a full machine it could not even make
                    // its offer, or stalled in its DTLS handshake.
                    if idle {
                        child.to_idle_priority().await?;
                    }
                    peers.push((child, idle));
                    // People come in one after another, not all in one instant.
                    tokio::time::sleep(JOIN_GAP).await;
                }
                Err(e) => {
                    tracing::warn!(
                        room = r,
                        participant = p,
                        "a participant did not join: {e:#}"
                    );
                    failed += 1;
                }
            }
        }
    }
    if let Some(c) = crowd.as_ref().filter(|_| plan.peers_low_priority) {
        c.to_idle_priority().await?;
    }
    tracing::info!(
        joined = peers.len() + light_joined,
        light = light_joined,
        "participants joined; warming up"
    );
    tokio::time::sleep(plan.warmup).await;
    for (p, _) in &mut peers {
        p.say("window").await?;
    }
    if let Some(c) = crowd.as_mut() {
        c.say("window").await?;
    }
    tracing::info!("measuring the window");
    let client = reqwest::Client::new();
    let sent_before = canvas_frames_sent(
        &room_states(&client, &http, s.rooms)
            .await
            .unwrap_or_default(),
    );
    let window_start = std::time::Instant::now();
    let peers_before: Vec<_> = peers
        .iter()
        .map(|(p, _)| p.pid().and_then(procstat::read))
        .collect();
    let crowd_before = crowd
        .as_ref()
        .and_then(|c| c.pid())
        .and_then(procstat::read);
    let threads_before = pid.map(procstat::threads).unwrap_or_default();
    let (per_second, mean, last) = sample(pid, plan.window).await;
    let server_threads = procstat::by_role(
        &threads_before,
        &pid.map(procstat::threads).unwrap_or_default(),
        window_start.elapsed(),
    );
    // What the synthetic participants took of the same machine meanwhile.
    let webrtcbin_cores: f64 = peers
        .iter()
        .zip(&peers_before)
        .map(|((p, _), before)| cores_between(before, &p.pid().and_then(procstat::read)))
        .sum();
    let light_cores = crowd
        .as_ref()
        .map(|c| cores_between(&crowd_before, &c.pid().and_then(procstat::read)));
    let states = room_states(&client, &http, s.rooms).await?;
    let sent_after = canvas_frames_sent(&states);
    let sent_fps = sent_rates(&sent_before, &sent_after, window_start.elapsed());
    let talkers: BTreeMap<usize, Extra> = states
        .iter()
        .enumerate()
        .map(|(r, v)| {
            let e = Extra {
                talkers: v["talking"].as_array().map_or(0, Vec::len),
                low: Vec::new(),
            };
            (r, e)
        })
        .collect();
    let mut reports = Vec::new();
    for (p, idle) in &mut peers {
        p.say("report").await?;
        match p
            .next_line(Duration::from_secs(20))
            .await
            .ok()
            .as_deref()
            .and_then(report_of)
        {
            Some(m) => reports.push(Report {
                measured: m,
                idle: *idle,
            }),
            None => failed += 1,
        }
    }
    if let Some(c) = crowd.as_mut() {
        c.say("report").await?;
        let all: Vec<Measured> = c
            .next_line(Duration::from_secs(20))
            .await
            .ok()
            .and_then(|line| serde_json::from_str(&line).ok())
            .unwrap_or_default();
        failed += light_joined - all.len().min(light_joined);
        reports.extend(all.into_iter().map(|measured| Report {
            measured,
            idle: plan.peers_low_priority,
        }));
    }
    tracing::info!("window done");
    let recording_cpu_ratio = if plan.record {
        tracing::info!("recording every room");
        let ratio = record_ratio(&client, &http, s.rooms, pid, plan.window, mean).await;
        if let Err(e) = &ratio {
            tracing::warn!("recording phase: {e:#}");
        }
        ratio.ok()
    } else {
        None
    };
    tracing::info!("stopping the participants and the server");
    for (p, _) in &mut peers {
        let _ = p.say("stop").await;
    }
    if let Some(c) = crowd.as_mut() {
        let _ = c.say("stop").await;
    }
    for (p, _) in peers {
        p.reap(Duration::from_secs(5)).await;
    }
    if let Some(c) = crowd {
        c.reap(Duration::from_secs(5)).await;
    }
    server.stop().await;

    let after = baseline(plan, s, &talkers, &env, &dir.join("baseline.log")).await?;
    let baseline_runs: Vec<f64> = match (before, after) {
        // Both did the same work only if the server heard the talkers planned.
        (Some(b), Some(a)) if talkers == clickers => vec![b, a],
        (Some(_), Some(a)) => {
            tracing::warn!(?talkers, "talkers other than the clickers: the ratio uses the baseline after the server only");
            vec![a]
        }
        _ => Vec::new(),
    };
    let baseline = (!baseline_runs.is_empty())
        .then(|| baseline_runs.iter().sum::<f64>() / baseline_runs.len() as f64);
    let mut level = assemble(
        s,
        plan,
        &reports,
        failed,
        per_second,
        mean,
        last,
        idle_rss,
        baseline,
        recording_cpu_ratio,
        direct,
    );
    level.peers_cores = webrtcbin_cores + light_cores.unwrap_or(0.0);
    level.light_cores = light_cores;
    level.light_participants = light_joined;
    level.server_threads = server_threads;
    level.baseline_cores_runs = baseline_runs;
    level.sent_fps = Spread::of(&sent_fps);
    level.sent_fps_worst = sent_fps.iter().copied().reduce(f64::min);
    Ok(level)
}

/// The encodes a room runs besides the scenario's: a mix-minus for each
/// of its talkers, and the low tier in these families.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extra {
    /// Talkers, each with a mix-minus encode.
    pub talkers: usize,
    /// Families of the low tier's canvas.
    pub low: Vec<Codec>,
}

/// The baseline's share of the media work of scenario `s`, with the
/// `extra[room]` encodes in each room.
fn work(s: &Scenario, extra: &BTreeMap<usize, Extra>, plan: &Plan) -> Work {
    Work {
        rooms: (0..s.rooms)
            .map(|r| {
                let participants: Vec<Codec> = (0..s.per_room).map(|p| s.codec(p)).collect();
                let mut families = participants.clone();
                families.sort_by_key(|c| c.name());
                families.dedup();
                let extra = extra.get(&r).cloned().unwrap_or_default();
                RoomWork {
                    participants,
                    families,
                    low_families: extra.low,
                    talkers: extra.talkers,
                }
            })
            .collect(),
        send: s.send,
        epoch_ms: epoch(),
        media_dir: plan.media_dir.clone(),
    }
}

/// `GET /api/rooms/{room}` for every benchmark room, in room order.
pub async fn room_states(
    client: &reqwest::Client,
    http: &str,
    rooms: usize,
) -> anyhow::Result<Vec<Value>> {
    let mut states = Vec::new();
    for r in 0..rooms {
        let url = format!("{http}/api/rooms/bench-{r}");
        states.push(client.get(&url).send().await?.json().await?);
    }
    Ok(states)
}

/// Each participant's `canvasFrames` (canvas frames the server has sent
/// it) in the rooms' states, by participant id.
fn canvas_frames_sent(states: &[Value]) -> BTreeMap<String, u64> {
    states
        .iter()
        .flat_map(|v| v["participants"].as_array().into_iter().flatten())
        .filter_map(|p| Some((p["id"].as_str()?.to_string(), p["canvasFrames"].as_u64()?)))
        .collect()
}

/// Canvas frames per second the server sent each participant between two
/// of the rooms' states, by participant name.
pub fn sent_fps_by_name(
    before: &[Value],
    after: &[Value],
    elapsed: Duration,
) -> BTreeMap<String, f64> {
    let names: BTreeMap<String, String> = after
        .iter()
        .flat_map(|v| v["participants"].as_array().into_iter().flatten())
        .filter_map(|p| {
            Some((
                p["id"].as_str()?.to_string(),
                p["name"].as_str()?.to_string(),
            ))
        })
        .collect();
    let (b, a) = (canvas_frames_sent(before), canvas_frames_sent(after));
    let secs = elapsed.as_secs_f64().max(f64::EPSILON);
    b.iter()
        .filter_map(|(id, b)| {
            let fps = a.get(id)?.saturating_sub(*b) as f64 / secs;
            Some((names.get(id)?.clone(), fps))
        })
        .collect()
}

/// Frames per second sent to each participant counted at both ends.
fn sent_rates(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    elapsed: Duration,
) -> Vec<f64> {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return Vec::new();
    }
    before
        .iter()
        .filter_map(|(id, b)| after.get(id).map(|a| a.saturating_sub(*b) as f64 / secs))
        .collect()
}

/// Starts recording every room, measures the server for `window`, stops.
async fn record_ratio(
    client: &reqwest::Client,
    http: &str,
    rooms: usize,
    pid: Option<u32>,
    window: Duration,
    not_recording: f64,
) -> anyhow::Result<f64> {
    for r in 0..rooms {
        let url = format!("{http}/api/rooms/bench-{r}/recording");
        let reply = client.post(&url).send().await?;
        anyhow::ensure!(
            reply.status().is_success(),
            "POST {url}: {}",
            reply.text().await.unwrap_or_default()
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, recording, _) = sample(pid, window).await;
    for r in 0..rooms {
        let _ = client
            .delete(format!("{http}/api/rooms/bench-{r}/recording"))
            .send()
            .await;
    }
    anyhow::ensure!(not_recording > 0.0, "no CPU figure without recording");
    Ok(recording / not_recording)
}

/// Runs the baseline doing scenario `s`'s media work with the `extra`
/// encodes, measures it over a window like the server's, and returns its
/// mean CPU in cores; None if the plan has no baseline.
pub async fn baseline(
    plan: &Plan,
    s: &Scenario,
    extra: &BTreeMap<usize, Extra>,
    env: &[(String, String)],
    log: &Path,
) -> anyhow::Result<Option<f64>> {
    if !plan.baseline {
        return Ok(None);
    }
    let mut args = vec![
        "baseline".to_string(),
        "--spec".into(),
        serde_json::to_string(&work(s, extra, plan))?,
    ];
    if let Some(c) = &plan.config {
        args.extend(["--config".into(), c.display().to_string()]);
    }
    let mut child = Steered::spawn(&args, env, log)?;
    child
        .next_line(Duration::from_secs(60))
        .await
        .context("the baseline did not start")?;
    tracing::info!("baseline running; warming up");
    tokio::time::sleep(plan.warmup).await;
    let (_, mean, _) = sample(child.pid(), plan.window).await;
    tracing::info!(cores = mean, "baseline measured");
    let _ = child.say("stop").await;
    child.reap(Duration::from_secs(10)).await;
    Ok(Some(mean))
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    s: &Scenario,
    plan: &Plan,
    all_reports: &[Report],
    failed: usize,
    per_second: Vec<f64>,
    mean: f64,
    last: Option<procstat::Reading>,
    idle_rss: u64,
    baseline: Option<f64>,
    recording_cpu_ratio: Option<f64>,
    direct: &Direct,
) -> Level {
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    let rss = last.map(|r| r.rss).unwrap_or(0);
    // What a participant starved of CPU received says how starved it was,
    // not what the server sent: receivers' figures come from the others.
    let reports: Vec<&Measured> = all_reports
        .iter()
        .filter(|r| !r.idle)
        .map(|r| &r.measured)
        .collect();
    let idle_participants = all_reports.iter().filter(|r| r.idle).count();
    let receiver_fps: Vec<f64> = reports
        .iter()
        .filter_map(|m| {
            let f: Vec<f64> = m.frames_per_second.iter().map(|f| f64::from(*f)).collect();
            crate::report::quantile(&f, 0.5)
        })
        .collect();
    let no_frames = all_reports
        .iter()
        .filter(|r| r.measured.frames_per_second.iter().all(|f| *f == 0))
        .count();
    let all = |f: fn(&Measured) -> &Vec<f64>| -> Vec<f64> {
        reports.iter().flat_map(|m| f(m).iter().copied()).collect()
    };
    let video = Spread::of(&all(|m| &m.video_latency_ms));
    let audio = Spread::of(&all(|m| &m.audio_latency_ms));
    let kbps = |bytes: fn(&Measured) -> u64, who: &[&Measured]| -> Vec<f64> {
        who.iter()
            .filter(|m| m.window_s > 0.0)
            .map(|m| bytes(m) as f64 * 8.0 / m.window_s / 1000.0)
            .collect()
    };
    let joins: Vec<f64> = reports
        .iter()
        .filter_map(|m| m.join_to_first_frame_ms)
        .collect();
    let participants = s.participants();
    Level {
        scenario: s.name.clone(),
        rooms: s.rooms,
        participants,
        send: s.send,
        window_s: plan.window.as_secs_f64(),
        server_cores: Spread::of(&per_second),
        server_cores_mean: mean,
        peers_cores: 0.0,
        baseline_cores_mean: baseline,
        baseline_cores_runs: Vec::new(),
        cpu_ratio: baseline.filter(|b| *b > 0.0).map(|b| mean / b),
        rss_mb: mb(rss),
        rss_per_participant_mb: mb(rss.saturating_sub(idle_rss)) / participants.max(1) as f64,
        fps: Spread::of(&receiver_fps),
        fps_worst: receiver_fps.iter().copied().reduce(f64::min),
        fps_target: f64::from(clip::FPS),
        sent_fps: None,
        sent_fps_worst: None,
        video_latency_ms: video,
        audio_latency_ms: audio,
        video_added_ms: video.zip(direct.video_ms).map(|(t, d)| t.minus(d)),
        audio_added_ms: audio.zip(direct.audio_ms).map(|(t, d)| t.minus(d)),
        join_ms: Spread::of(&joins),
        up_kbps: Spread::of(&kbps(
            |m| m.bytes_up,
            &all_reports.iter().map(|r| &r.measured).collect::<Vec<_>>(),
        )),
        down_kbps: Spread::of(&kbps(|m| m.bytes_down, &reports)),
        recording_cpu_ratio,
        failed_participants: failed + no_frames,
        idle_participants,
        light_participants: 0,
        light_cores: None,
        server_threads: Vec::new(),
    }
}
