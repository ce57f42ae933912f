//! `tessera-bench`: a load benchmark of the Tessera server against a
//! bare-GStreamer baseline doing the same media work, with latency measured
//! glass to glass against direct peer-to-peer, and capacity search.
//!
//! The parent process starts the server, the synthetic participants and the
//! baseline as child processes of this same executable (hidden
//! subcommands), measures the server and the baseline by PID from /proc,
//! and writes `results.json`, `results.md` and `results.png`.

mod audio_gaps;
mod baseline;
mod chart;
mod children;
mod clip;
mod cluster;
mod code;
mod crowd;
mod direct;
// The weak-links scenario's network: the same namespaces, impairment
// relay and TURN server the tests of weak links use.
#[allow(dead_code)]
#[path = "../../tests/common/coturn.rs"]
mod coturn;
#[allow(dead_code)]
#[path = "../../tests/common/impair.rs"]
mod impair;
mod light;
#[allow(dead_code)]
#[path = "../../tests/common/netns.rs"]
mod netns;
mod pair;
mod peer;
mod procstat;
mod redis;
mod report;
mod run;
mod scenario;
mod school;
mod session;
mod signal;
mod weak;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_webrtc as gst_webrtc;
use tokio::io::AsyncBufReadExt as _;

use crate::clip::ClipKind;
use crate::peer::{Peer, PeerMedia};
use crate::report::Report;
use crate::run::{PeerSpec, Plan};
use crate::scenario::Scenario;

#[derive(Parser, Debug)]
#[command(
    name = "tessera-bench",
    version,
    about = "Load benchmark of the Tessera server against a bare-GStreamer baseline"
)]
struct Cli {
    /// Scenario preset to run (repeatable): lesson-1on1, group-8,
    /// speaking-club-30, school-morning, weak-links, school-day, cluster,
    /// cluster-sim. Default: the first four (weak-links needs root and
    /// coturn; school-day is run for hours; the cluster ones need
    /// redis-server: docs/performance.md).
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// Raise participants (rooms, for school-morning) from the smallest
    /// level until a target breaks; report the last level that held.
    #[arg(long)]
    find_capacity: bool,
    /// What `--find-capacity` holds each level to: `all` (every receiver at
    /// 29 fps or more, and video latency added p95 within 100 ms) or `fps`.
    #[arg(long, default_value = "all", value_parser = ["all", "fps"])]
    capacity_target: String,
    /// Measuring window per level; for school-day, the length of the day.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Settling time after the last join, before measuring.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Participants per room instead of the preset's.
    #[arg(long)]
    participants: Option<usize>,
    /// Rooms instead of the preset's; for `cluster`, the joins of each
    /// kind (200); for `cluster-sim`, the rooms placed (2000).
    #[arg(long)]
    rooms: Option<usize>,
    /// Nodes of the cluster scenarios: `cluster`'s server processes (3),
    /// `cluster-sim`'s simulated nodes (50).
    #[arg(long)]
    nodes: Option<usize>,
    /// The cluster scenarios' heartbeat; default: the server's (2 s) for
    /// `cluster`, 500 ms for `cluster-sim`.
    #[arg(long, value_parser = humantime::parse_duration)]
    heartbeat: Option<Duration>,
    /// The cluster scenarios' lease of a node's entry and of its rooms;
    /// default: three heartbeats, as the server's defaults have it.
    #[arg(long, value_parser = humantime::parse_duration)]
    lease: Option<Duration>,
    /// `cluster-sim`: placements in flight at once in the burst of new
    /// rooms (32).
    #[arg(long)]
    burst_in_flight: Option<usize>,
    /// Send size instead of the preset's, WIDTHxHEIGHT.
    #[arg(long, value_parser = parse_size)]
    send: Option<(u32, u32)>,
    /// Skip the recording phase.
    #[arg(long)]
    no_record: bool,
    /// Skip the baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Once joined and connected, run the synthetic participants at the lowest CPU
    /// priority (SCHED_IDLE), so that the server gets the CPU it needs
    /// first, as with the load on another machine. Each room's clicker and
    /// probe stay at normal priority: the receivers' figures (fps,
    /// latency, join) come from them, the probe reading only their tiles,
    /// and the server's own count says what it sent the starved others.
    /// Starved senders' tiles change less often, so the CPU ratio
    /// flatters the server in this mode.
    #[arg(long)]
    peers_low_priority: bool,
    /// Run every synthetic participant as its own webrtcbin process, as
    /// the timed ones (each room's clicker and probe) always run, instead
    /// of the light participants that share one thread: to compare what
    /// the load generator costs.
    #[arg(long)]
    webrtcbin_participants: bool,
    /// A few seconds of lesson-1on1 at a small size, with a third
    /// participant (a light one): checks that the benchmark works and
    /// writes a report; its figures mean little.
    #[arg(long)]
    smoke: bool,
    /// Where the report and the logs go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Where the pre-encoded clips are cached.
    #[arg(long, default_value = "target/bench-media")]
    media: PathBuf,
    /// The server's config file (canvas, encoder templates, layouts); the
    /// benchmark overrides only the address, joins, limits and recording dir.
    /// Default: config/default.toml if present, else built-in defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    child: Option<Child>,
}

#[derive(Subcommand, Debug)]
enum Child {
    /// (internal) Run the server.
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// (internal) One synthetic participant.
    #[command(hide = true)]
    Peer {
        #[arg(long)]
        spec: String,
    },
    /// (internal) The light participants, all on one thread.
    #[command(hide = true)]
    Crowd,
    /// (internal) Two participants connected directly.
    #[command(hide = true)]
    Direct {
        #[arg(long)]
        spec: String,
    },
    /// (internal) The bare-GStreamer baseline.
    #[command(hide = true)]
    Baseline {
        #[arg(long)]
        spec: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or("expected WIDTHxHEIGHT, e.g. 640x360")?;
    let w: u32 = w.parse().map_err(|_| format!("bad width {w}"))?;
    let h: u32 = h.parse().map_err(|_| format!("bad height {h}"))?;
    if w < 64 || h < 64 || w % 2 == 1 || h % 2 == 1 {
        return Err("sizes must be even and at least 64x64".into());
    }
    Ok((w, h))
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(tessera::logging::use_colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        ))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // Not a line per room the cluster scenarios place.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("info,tessera::cluster::route=warn")
                }),
        )
        .init();
    let cli = Cli::parse();
    if matches!(cli.child, Some(Child::Serve { .. })) {
        // As the server's own binary does, before any thread exists.
        tessera::media::memory::cap_arenas();
    }
    // The light participants share one thread; everything else may use both.
    let runtime = match cli.child {
        Some(Child::Crowd) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.child {
            Some(Child::Serve { config }) => serve(config).await,
            Some(Child::Crowd) => crowd::run().await,
            Some(Child::Peer { spec }) => peer_main(serde_json::from_str(&spec)?).await,
            Some(Child::Direct { spec }) => direct_main(serde_json::from_str(&spec)?).await,
            Some(Child::Baseline { spec, config }) => {
                let work = serde_json::from_str(&spec)?;
                let stop = Arc::new(AtomicBool::new(false));
                let s = stop.clone();
                tokio::spawn(async move {
                    wait_commands(|_| false).await;
                    s.store(true, Ordering::Relaxed);
                });
                tokio::task::spawn_blocking(move || baseline::run(&work, config.as_deref(), stop))
                    .await?
            }
            None => bench(cli_rest(cli)).await,
        }
    });
    // Exit now: a reader of standard input may still be blocked in the
    // runtime's blocking pool, which would hold the process open.
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code)
}

/// The options of the parent run (everything but the subcommand).
struct Options {
    scenarios: Vec<String>,
    find_capacity: bool,
    capacity_latency: bool,
    plan: Plan,
    participants: Option<usize>,
    rooms: Option<usize>,
    send: Option<(u32, u32)>,
    smoke: bool,
    cluster: cluster::Sizes,
}

fn cli_rest(cli: Cli) -> Options {
    let smoke = cli.smoke;
    Options {
        scenarios: cli.scenarios,
        find_capacity: cli.find_capacity,
        capacity_latency: cli.capacity_target == "all",
        plan: Plan {
            warmup: if smoke {
                Duration::from_secs(2)
            } else {
                cli.warmup
            },
            window: if smoke {
                Duration::from_secs(3)
            } else {
                cli.duration
            },
            record: !cli.no_record,
            baseline: !cli.no_baseline,
            peers_low_priority: cli.peers_low_priority,
            light: !cli.webrtcbin_participants,
            out: cli.out,
            media_dir: cli.media,
            config: cli.config,
        },
        // Three in the smoke run, so that one of them is light.
        participants: cli.participants.or(smoke.then_some(3)),
        rooms: cli.rooms,
        send: cli.send.or(smoke.then_some((320, 180))),
        smoke,
        cluster: cluster::Sizes {
            nodes: cli.nodes,
            rooms: cli.rooms,
            heartbeat: cli.heartbeat,
            lease: cli.lease,
            burst_in_flight: cli.burst_in_flight,
        },
    }
}

/// Reads command lines from standard input until `stop` says so or it closes.
async fn wait_commands(mut on: impl FnMut(&str) -> bool) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim();
        if line == "stop" || on(line) {
            return;
        }
    }
}

async fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    let config = tessera::config::Config::load(config.as_deref())?;
    tessera::logging::bridge_gstreamer_log();
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    };
    tessera::server::run(listener, config, shutdown).await
}

fn peer_media(spec: &PeerSpec, send: bool) -> anyhow::Result<PeerMedia> {
    let video = clip::load(
        &spec.media_dir,
        ClipKind::Video(spec.codec, spec.send.0, spec.send.1),
    )?;
    let audio = clip::load(
        &spec.media_dir,
        if spec.clicks {
            ClipKind::Clicks
        } else if spec.voice {
            ClipKind::Voice
        } else {
            ClipKind::Quiet
        },
    )?;
    Ok(PeerMedia {
        codec: spec.codec,
        video: send.then_some(video),
        send_size: spec.send,
        audio: send.then_some(audio),
        probe: spec.probe,
        epoch_ms: spec.epoch_ms,
        jitter_ms: spec.jitter_ms,
        ice_address: spec
            .ice_address
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
        turn: spec.turn.clone(),
        repair: spec.repair,
    })
}

/// Serves "window" (start measuring) and "report" (print what was
/// measured) until "stop".
async fn steer(peer: &mut Peer, name: &str, direct: Option<&direct::DirectSide>) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match line.trim() {
            "window" => {
                peer.start_window();
                if let Some(d) = direct {
                    d.start_window();
                }
            }
            "report-direct" => println!(
                "{}",
                serde_json::to_string(&direct.map(|d| d.report())).unwrap_or_default()
            ),
            "report" => {
                if peer.probe {
                    eprintln!("{name}: {}", peer.reads());
                }
                println!(
                    "{}",
                    serde_json::to_string(&peer.measured()).unwrap_or_default()
                )
            }
            "stop" => break,
            _ => {}
        }
    }
}

/// Waits until `webrtc`'s connection is up, for at most `limit`.
async fn connected(webrtc: &gst::Element, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        let state = webrtc.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state");
        if state == gst_webrtc::WebRTCPeerConnectionState::Connected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn peer_main(spec: PeerSpec) -> anyhow::Result<()> {
    gst::init()?;
    let mut peer = Peer::new(&peer_media(&spec, true)?, &spec.name)?;
    let direct = spec.p2p.then(|| {
        let media = peer_media(&spec, true);
        let name = format!("{}-direct", spec.name);
        direct::DirectSide::new(&peer, move || {
            let media = media.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
            Peer::new(media, &name)
        })
    });
    let joined = session::join_server(
        &peer,
        &spec.ws,
        &spec.api,
        &spec.room,
        &spec.name,
        spec.probe,
        spec.read_tiles_of.clone(),
        direct.clone(),
    )
    .await?;
    // Reported once the connection is up (or given up on): the runner may
    // then move this participant to idle priority, and one starved in the
    // middle of its DTLS handshake could stay unconnected for the whole run.
    connected(&peer.webrtc, Duration::from_secs(15)).await;
    println!("joined {}", joined.id);
    steer(&mut peer, &spec.name, direct.as_deref()).await;
    drop(joined);
    peer.finish();
    Ok(())
}

async fn direct_main(spec: PeerSpec) -> anyhow::Result<()> {
    gst::init()?;
    let sender = Peer::new(
        &PeerMedia {
            probe: false,
            ..peer_media(&spec, true)?
        },
        "direct-sender",
    )?;
    let mut receiver = Peer::new(&peer_media(&spec, false)?, "direct-receiver")?;
    *receiver.tiles.lock().unwrap() = vec![code::Area {
        x: 0,
        y: 0,
        width: spec.send.0,
        height: spec.send.1,
    }];
    receiver.mark_join();
    session::link_direct(&sender, &receiver)?;
    println!("joined direct");
    steer(&mut receiver, "direct-receiver", None).await;
    receiver.finish();
    sender.finish();
    Ok(())
}

fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cores} cores")
}

async fn bench(o: Options) -> anyhow::Result<()> {
    gst::init()?;
    let names = if o.smoke {
        vec!["lesson-1on1".to_string()]
    } else if o.scenarios.is_empty() {
        scenario::DEFAULT.iter().map(|s| s.to_string()).collect()
    } else {
        o.scenarios.clone()
    };
    // The cluster scenarios place rooms and route joins: no media, no preset.
    let (clusters, names): (Vec<String>, Vec<String>) = names
        .into_iter()
        .partition(|n| cluster::NAMES.contains(&n.as_str()));
    let mut scenarios = Vec::new();
    for name in &names {
        let mut s = Scenario::preset(name).with_context(|| {
            format!(
                "--scenario {name}: no such preset; choose one of {}, {}",
                scenario::NAMES.join(", "),
                cluster::NAMES.join(", ")
            )
        })?;
        if let Some(p) = o.participants {
            s.per_room = p.max(1);
        }
        if let Some(r) = o.rooms {
            s.rooms = r.max(1);
        }
        if let Some(size) = o.send {
            s.send = size;
        }
        scenarios.push(s);
    }
    std::fs::create_dir_all(&o.plan.out)
        .with_context(|| format!("creating {}", o.plan.out.display()))?;
    // Make every clip up front, so no participant spends its join encoding.
    for s in &scenarios {
        for kind in [
            ClipKind::Video(clip::Codec::Vp8, s.send.0, s.send.1),
            ClipKind::Video(clip::Codec::H264, s.send.0, s.send.1),
            ClipKind::Clicks,
            ClipKind::Quiet,
            ClipKind::Voice,
        ] {
            clip::load(&o.plan.media_dir, kind)?;
        }
    }
    let mut report = Report {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: machine(),
        date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        ..Report::default()
    };
    for name in &clusters {
        if name == "cluster" {
            tracing::info!("running the cluster scenario");
            report.cluster = Some(cluster::run(&o.plan, &o.cluster).await?);
        } else {
            tracing::info!("running the cluster simulation");
            report.cluster_sim = Some(cluster::sim::run(&o.plan, &o.cluster).await?);
        }
        report::write(&report, &o.plan.out)?;
    }
    let mut directs = std::collections::HashMap::new();
    for s in scenarios {
        if s.name == "school-day" {
            tracing::info!(duration = ?o.plan.window, "running the school-day scenario");
            report.school_day = Some(school::run(&o.plan, &s).await?);
            report::write(&report, &o.plan.out)?;
            continue;
        }
        if s.name == "weak-links" {
            tracing::info!(per_room = s.per_room, "running the weak-links scenario");
            report.weak_links = Some(weak::run(&o.plan, &s).await?);
            report::write(&report, &o.plan.out)?;
            continue;
        }
        let mut level = s.clone();
        if o.find_capacity {
            if level.name == "school-morning" {
                level.rooms = 1;
            } else {
                level.per_room = 2;
            }
        }
        let mut held: Option<usize> = None;
        loop {
            if let std::collections::hash_map::Entry::Vacant(slot) = directs.entry(level.send) {
                tracing::info!(size = ?level.send, "measuring direct peer-to-peer latency");
                slot.insert(run::direct(&o.plan, level.send).await?);
            }
            let direct = directs[&level.send].clone();
            report.direct = direct.clone();
            tracing::info!(scenario = %level.name, rooms = level.rooms, per_room = level.per_room, "running a level");
            let result = run::level(&o.plan, &level, &direct).await?;
            let broke = result.breaks(o.capacity_latency);
            tracing::info!(cores = result.server_cores_mean, ratio = ?result.cpu_ratio, fps = ?result.fps_worst, "level done");
            if level.name == "lesson-1on1" && !o.find_capacity {
                tracing::info!("running lesson-1on1 peer-to-peer");
                report.pair = Some(pair::run(&o.plan, &level, result.server_cores_mean).await?);
            }
            report.levels.push(result);
            report::write(&report, &o.plan.out)?;
            if !o.find_capacity {
                break;
            }
            match broke {
                Some(why) => {
                    report.capacity = Some((held.unwrap_or(0), why));
                    break;
                }
                None if level.participants() >= 60 => {
                    report.capacity =
                        Some((level.participants(), "stopped at 60 participants".into()));
                    break;
                }
                None => {
                    held = Some(level.participants());
                    level = level.heavier();
                }
            }
        }
    }
    report::write(&report, &o.plan.out)?;
    println!("{}", report::markdown(&report));
    println!(
        "written: {}/results.json, results.md, results.png",
        o.plan.out.display()
    );
    Ok(())
}
