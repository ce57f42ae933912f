//! The `weak-links` scenario: a room of eight where three receivers sit
//! behind weak links, next to five on loopback. Two are in network
//! namespaces whose downlink is capped with `tc tbf` (300 and 80 kbit/s)
//! once the room is warm, and lifted again at the end; one reaches the
//! server only through a real TURN server (coturn), relay only, across a
//! relay that loses 5 % of the packets each way. Each weak receiver
//! decodes what it gets; the scenario reports, per kind of link, the
//! canvas frame rate, freezes, concealed audio, the tier the server gave
//! it and how long the moves between tiers took, and the server's CPU
//! against the baseline doing the same encodes (the low tier included).
//!
//! One clean participant talks all the time (a voice-like sound), as a
//! teacher does: Opus codes its in-band FEC only for frames with speech.
//! The weak receivers keep a 200 ms jitter buffer, as a browser's grows
//! to on such links, and ask for retransmissions; the clean ones keep the
//! 40 ms of a clean network.
//!
//! It needs root (namespaces, `tc`) and coturn (`turnserver`), as the
//! tests of weak links do.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha1::Sha1;

use crate::children::{free_port, server_env, Server, Steered};
use crate::clip::Codec;
use crate::netns::{Forwarder, Namespace};
use crate::peer::{Measured, Repair};
use crate::report::quantile;
use crate::run::{self, Extra, PeerSpec, Plan};
use crate::scenario::Scenario;
use crate::{coturn, impair, procstat};

/// The kinds of link in the room.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    /// Loopback, no limit.
    Clean,
    /// A downlink capped at this many kbit/s.
    Capped(u32),
    /// Relay-only through TURN, losing this share each way.
    Lossy(f64),
}

impl Link {
    fn label(self) -> String {
        match self {
            Link::Clean => "clean (loopback)".into(),
            Link::Capped(k) => format!("downlink capped at {k} kbit/s"),
            Link::Lossy(l) => format!("{:.0} % loss each way, through TURN", l * 100.0),
        }
    }
}

/// Participant `p`'s link, and whether it decodes what it gets: the
/// clicker (0) and the plain senders are clean and do not; one clean
/// receiver (1) decodes, as the reference; the last three are the weak.
fn link_of(p: usize, per_room: usize) -> (Link, bool) {
    match per_room.saturating_sub(p) {
        3 => (Link::Lossy(0.05), true),
        2 => (Link::Capped(300), true),
        1 => (Link::Capped(80), true),
        _ => (Link::Clean, p == 1),
    }
}

/// What one receiver got.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LinkFigures {
    /// The kind of link.
    pub link: String,
    /// The participant.
    pub name: String,
    /// Its canvas codec.
    pub codec: String,
    /// Tiers the server gave it during the window (from the room API).
    pub tiers: Vec<String>,
    /// Canvas frames per second: median and lowest over the window's
    /// seconds.
    pub fps_median: Option<f64>,
    pub fps_min: Option<f64>,
    /// Pauses of more than 500 ms between decoded frames: how many, and
    /// their total and longest (ms).
    pub freezes: usize,
    pub freeze_total_ms: f64,
    pub freeze_longest_ms: f64,
    /// Audio packets lost on the way, and the share concealed (lost and
    /// not repaired by the next packet's FEC).
    pub audio_lost: Option<f64>,
    pub audio_concealed: Option<f64>,
    /// From the cap to the tier it settled in (s), and that tier.
    pub moved_down_s: Option<f64>,
    pub settled_in: Option<String>,
    /// From lifting the cap to the high tier again (s); `None`: not within
    /// [`BACK_UP_LIMIT`].
    pub back_up_s: Option<f64>,
    /// The receiver's jitter buffers (video and audio) since it joined.
    #[serde(default)]
    pub repair: Repair,
}

/// The whole scenario's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WeakLinks {
    /// Participants in the room.
    pub participants: usize,
    /// Measuring window (s).
    pub window_s: f64,
    /// Per receiver that decodes: the clean reference and the weak ones.
    pub links: Vec<LinkFigures>,
    /// Canvas frames per second the server sent each clean participant,
    /// by name, from its own count.
    pub clean_sent_fps: BTreeMap<String, f64>,
    /// Participants on clean links that were ever out of the high tier
    /// during the window.
    pub clean_out_of_high: Vec<String>,
    /// Video encoders running in the window (family/tier), and the most at
    /// any one time.
    pub encoders: Vec<String>,
    pub encoders_most: usize,
    /// Server CPU over the window (cores).
    pub server_cores_mean: f64,
    /// The synthetic participants' CPU over the window, together (cores).
    #[serde(default)]
    pub peers_cores: f64,
    /// The baseline doing the same encodes (cores), each run.
    pub baseline_cores_runs: Vec<f64>,
    /// Server ÷ the baseline's mean.
    pub cpu_ratio: Option<f64>,
}

/// How long the capped receivers are watched after the cap, before the
/// window: long enough to see where they settle.
const SETTLE_WATCH: Duration = Duration::from_secs(15);

/// How long a receiver may take to be back in the high tier once its cap
/// is lifted before the run gives up on it.
const BACK_UP_LIMIT: Duration = Duration::from_secs(60);

/// The weak receivers' jitter buffer (ms).
const WEAK_JITTER_MS: u32 = 200;

/// The participant that talks.
const TALKER: usize = 2;

/// The room's id.
const ROOM: &str = "bench-0";

/// Checks what the scenario needs before anything starts.
fn preflight() -> anyhow::Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("the weak-links scenario makes network namespaces and caps links with tc: run tessera-bench as root");
    }
    for (tool, package) in [
        ("turnserver", "coturn"),
        ("tc", "iproute2"),
        ("ip", "iproute2"),
    ] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        if !found {
            bail!("the weak-links scenario needs `{tool}`: apt-get install {package} (scripts/setup.sh installs it)");
        }
    }
    Ok(())
}

/// A TURN URL with a REST credential (RFC 7635's scheme, as coturn's
/// `use-auth-secret` checks it) for webrtcbin's `turn-server`. The
/// username is the expiry alone, so that no `:` needs escaping in it.
fn turn_url(relay: SocketAddr, secret: &str) -> String {
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    let user = expiry.to_string();
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(user.as_bytes());
    use base64::Engine as _;
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let escaped: String = password
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("turn://{user}:{escaped}@{relay}")
}

/// Each participant's tier by name, and the video encoders running.
async fn tiers(
    client: &reqwest::Client,
    http: &str,
) -> Option<(BTreeMap<String, String>, Vec<String>)> {
    let v: Value = client
        .get(format!("{http}/api/rooms/{ROOM}"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let by_name = v["participants"]
        .as_array()?
        .iter()
        .filter_map(|p| {
            Some((
                p["name"].as_str()?.to_string(),
                p["downlink"]["tier"].as_str().unwrap_or("high").to_string(),
            ))
        })
        .collect();
    let encoders = v["videoEncoders"]
        .as_array()
        .map(|es| {
            es.iter()
                .map(|e| {
                    format!(
                        "{}/{}",
                        e["family"].as_str().unwrap_or("?"),
                        e["tier"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Some((by_name, encoders))
}

/// Watches `names` for `watch`: when each last changed tier (s after
/// `since`) and the tier it was in at the end.
async fn watch_moves(
    client: &reqwest::Client,
    http: &str,
    names: &[String],
    since: Instant,
    watch: Duration,
) -> BTreeMap<String, (Option<f64>, String)> {
    let mut out: BTreeMap<String, (Option<f64>, String)> = names
        .iter()
        .map(|n| (n.clone(), (None, "high".to_string())))
        .collect();
    while since.elapsed() < watch {
        if let Some((now, _)) = tiers(client, http).await {
            for (name, (moved, tier)) in out.iter_mut() {
                if let Some(t) = now.get(name) {
                    if t != tier {
                        *tier = t.clone();
                        *moved = Some(since.elapsed().as_secs_f64());
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    out
}

/// Waits until each of `names` is in the high tier again; the time it
/// took each (s), `None` past `limit`.
async fn wait_high(
    client: &reqwest::Client,
    http: &str,
    names: &[String],
    limit: Duration,
) -> BTreeMap<String, Option<f64>> {
    let since = Instant::now();
    let mut out: BTreeMap<String, Option<f64>> = names.iter().map(|n| (n.clone(), None)).collect();
    while since.elapsed() < limit && out.values().any(Option::is_none) {
        if let Some((now, _)) = tiers(client, http).await {
            for (name, back) in out.iter_mut() {
                if back.is_none() && now.get(name).is_some_and(|t| t == "high") {
                    *back = Some(since.elapsed().as_secs_f64());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    out
}

/// Tiers seen per participant and encoders seen during `window`, polled
/// every second.
async fn watch_window(
    client: &reqwest::Client,
    http: &str,
    window: Duration,
) -> (BTreeMap<String, BTreeSet<String>>, BTreeSet<String>, usize) {
    let end = Instant::now() + window;
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut encoders = BTreeSet::new();
    let mut most = 0;
    while Instant::now() < end {
        if let Some((now, running)) = tiers(client, http).await {
            for (name, tier) in now {
                seen.entry(name).or_default().insert(tier);
            }
            most = most.max(running.len());
            encoders.extend(running);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    (seen, encoders, most)
}

/// A weak receiver's figures from what it measured.
fn figures(link: Link, name: &str, codec: Codec, m: &Measured) -> LinkFigures {
    let fps: Vec<f64> = m.frames_per_second.iter().map(|f| f64::from(*f)).collect();
    let audio = m.audio.unwrap_or_default();
    let all = (audio.received + audio.lost) as f64;
    LinkFigures {
        link: link.label(),
        name: name.into(),
        codec: codec.name().into(),
        fps_median: quantile(&fps, 0.5),
        fps_min: fps.iter().copied().reduce(f64::min),
        freezes: m.freezes_ms.len(),
        freeze_total_ms: m.freezes_ms.iter().fold(0.0, |all, f| all + f),
        freeze_longest_ms: m.freezes_ms.iter().copied().fold(0.0, f64::max),
        audio_lost: (all > 0.0).then(|| audio.lost as f64 / all),
        audio_concealed: m.audio.and_then(|a| a.concealed_share()),
        repair: m.repair,
        ..LinkFigures::default()
    }
}

/// The encodes the server ran, as the baseline's extra work: the low tier
/// in the families seen running it.
fn low_families(encoders: &BTreeSet<String>) -> Vec<Codec> {
    [Codec::Vp8, Codec::H264]
        .into_iter()
        .filter(|c| encoders.contains(&format!("{}/low", c.name())))
        .collect()
}

/// Runs the scenario.
pub async fn run(plan: &Plan, s: &Scenario) -> anyhow::Result<WeakLinks> {
    preflight()?;
    anyhow::ensure!(
        s.rooms == 1 && s.per_room >= 5,
        "the weak-links scenario is one room of five or more"
    );
    let dir = plan.out.join(format!("{}-{}", s.name, s.per_room));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    let coturn = coturn::Coturn::start();
    let lossy = impair::ImpairRelay::start(
        (Ipv4Addr::LOCALHOST, 0).into(),
        (Ipv4Addr::LOCALHOST, coturn.port).into(),
        impair::Impairment {
            loss: 0.05,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            seed: 0x7e55_e7a5,
        },
    )
    .await;
    let namespaces: BTreeMap<usize, Namespace> = (0..s.per_room)
        .filter(|p| matches!(link_of(*p, s.per_room).0, Link::Capped(_)))
        .map(|p| (p, Namespace::create()))
        .collect();

    let port = free_port()?;
    let mut env = server_env(&dir, port, s.participants());
    let mut addresses = vec![IpAddr::from(Ipv4Addr::LOCALHOST)];
    addresses.extend(namespaces.values().map(|ns| IpAddr::from(ns.host_ip)));
    env.retain(|(k, _)| k != "TESSERA_ICE__ADDRESSES");
    env.extend([
        (
            "TESSERA_ICE__ADDRESSES".to_string(),
            serde_json::to_string(&addresses)?,
        ),
        (
            "TESSERA_ICE__TURN".to_string(),
            format!("[\"turn:{}?transport=udp\"]", lossy.addr),
        ),
        (
            "TESSERA_ICE__TURN_SECRET".to_string(),
            coturn::TURN_SECRET.to_string(),
        ),
    ]);
    // The planned encodes: each family's canvas, the low tier in the
    // 300 kbit/s receiver's family, a mix-minus for the clicker and the
    // talker.
    let planned: BTreeMap<usize, Extra> = [(
        0,
        Extra {
            talkers: 2,
            low: (0..s.per_room)
                .filter(|p| link_of(*p, s.per_room).0 == Link::Capped(300))
                .map(|p| s.codec(p))
                .collect(),
        },
    )]
    .into();
    let before = run::baseline(plan, s, &planned, &env, &dir.join("baseline-before.log")).await?;

    let server = Server::start(plan.config.as_deref(), &env, port, &dir.join("server.log")).await?;
    let pid = server.pid();
    let http = server.http.clone();
    let server_addr: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
    let mut forwarders = BTreeMap::new();
    for (p, ns) in &namespaces {
        forwarders.insert(*p, Forwarder::start(ns.host_ip, server_addr).await);
    }
    let epoch_ms = run::epoch();
    let peer_log = dir.join("peers.log");
    let mut peers = Vec::new();
    for p in 0..s.per_room {
        let (link, probe) = link_of(p, s.per_room);
        let name = format!("p0-{p}");
        let reach = forwarders
            .get(&p)
            .map_or(format!("127.0.0.1:{port}"), |f| f.addr.to_string());
        let spec = PeerSpec {
            ws: format!("ws://{reach}/ws"),
            api: format!("http://{reach}"),
            room: ROOM.into(),
            name: name.clone(),
            codec: s.codec(p),
            send: s.send,
            clicks: p == 0,
            voice: p == TALKER,
            probe,
            read_tiles_of: None,
            epoch_ms,
            media_dir: plan.media_dir.clone(),
            jitter_ms: if link == Link::Clean {
                run::PEER_JITTER_MS
            } else {
                WEAK_JITTER_MS
            },
            ice_address: namespaces.get(&p).map(|ns| IpAddr::from(ns.ns_ip)),
            turn: matches!(link, Link::Lossy(_)).then(|| turn_url(lossy.addr, coturn::TURN_SECRET)),
            repair: link != Link::Clean,
            p2p: false,
        };
        let launcher: Vec<String> = namespaces
            .get(&p)
            .map(|ns| vec!["ip".into(), "netns".into(), "exec".into(), ns.name.clone()])
            .unwrap_or_default();
        let args = [
            "peer".into(),
            "--spec".into(),
            serde_json::to_string(&spec)?,
        ];
        let mut child = Steered::spawn_via(&launcher, &args, &[], &peer_log)?;
        child
            .next_line(Duration::from_secs(30))
            .await
            .with_context(|| {
                format!(
                    "{name} ({}) did not join; see {}",
                    link.label(),
                    peer_log.display()
                )
            })?;
        peers.push((p, name, link, child));
        tokio::time::sleep(run::JOIN_GAP).await;
    }
    tracing::info!("weak links: everyone joined; warming up");
    tokio::time::sleep(plan.warmup).await;

    let client = reqwest::Client::new();
    let capped: Vec<String> = peers
        .iter()
        .filter(|(_, _, l, _)| matches!(l, Link::Capped(_)))
        .map(|(_, n, _, _)| n.clone())
        .collect();
    let capped_at = Instant::now();
    for (p, ns) in &namespaces {
        if let Link::Capped(kbit) = link_of(*p, s.per_room).0 {
            ns.cap_downlink(kbit);
        }
    }
    tracing::info!("weak links: links capped; watching the moves");
    let moves = watch_moves(&client, &http, &capped, capped_at, SETTLE_WATCH).await;

    for (_, _, _, c) in &mut peers {
        c.say("window").await?;
    }
    let states_before = run::room_states(&client, &http, 1).await?;
    let window_start = Instant::now();
    let peers_before: Vec<_> = peers
        .iter()
        .map(|(_, _, _, c)| c.pid().and_then(procstat::read))
        .collect();
    tracing::info!("weak links: measuring the window");
    let ((_, mean, _), (seen, encoders, most)) = tokio::join!(
        run::sample(pid, plan.window),
        watch_window(&client, &http, plan.window)
    );
    let states_after = run::room_states(&client, &http, 1).await?;
    let peers_cores: f64 = peers
        .iter()
        .zip(&peers_before)
        .map(|((_, _, _, c), before)| run::cores_between(before, &c.pid().and_then(procstat::read)))
        .sum();
    let sent = run::sent_fps_by_name(&states_before, &states_after, window_start.elapsed());
    let mut reports = BTreeMap::new();
    for (p, _, _, c) in &mut peers {
        c.say("report").await?;
        if let Some(m) = c
            .next_line(Duration::from_secs(20))
            .await
            .ok()
            .as_deref()
            .and_then(run::report_of)
        {
            reports.insert(*p, m);
        }
    }

    tracing::info!("weak links: caps lifted; waiting for the high tier");
    for ns in namespaces.values() {
        ns.lift_cap();
    }
    let back = wait_high(&client, &http, &capped, BACK_UP_LIMIT).await;

    for (_, _, _, c) in &mut peers {
        let _ = c.say("stop").await;
    }
    for (_, _, _, c) in peers {
        c.reap(Duration::from_secs(5)).await;
    }
    server.stop().await;
    drop(forwarders);
    drop(namespaces);

    // The baseline after the server does what the server did.
    let done: BTreeMap<usize, Extra> = [(
        0,
        Extra {
            talkers: states_after
                .first()
                .and_then(|v| v["talking"].as_array().map(Vec::len))
                .unwrap_or(1),
            low: low_families(&encoders),
        },
    )]
    .into();
    let after = run::baseline(plan, s, &done, &env, &dir.join("baseline.log")).await?;
    let baseline_runs: Vec<f64> = match (before, after) {
        (Some(b), Some(a)) if done == planned => vec![b, a],
        (_, Some(a)) => {
            tracing::warn!(?done, ?planned, "the server ran other encodes than planned: the ratio uses the baseline after it only");
            vec![a]
        }
        _ => Vec::new(),
    };
    let baseline_mean = (!baseline_runs.is_empty())
        .then(|| baseline_runs.iter().sum::<f64>() / baseline_runs.len() as f64);

    let mut links = Vec::new();
    let mut clean_out_of_high = Vec::new();
    let mut clean_sent_fps = BTreeMap::new();
    for p in 0..s.per_room {
        let (link, probe) = link_of(p, s.per_room);
        let name = format!("p0-{p}");
        let tiers_seen = seen.get(&name).cloned().unwrap_or_default();
        if link == Link::Clean {
            if tiers_seen.iter().any(|t| t != "high") {
                clean_out_of_high.push(name.clone());
            }
            if let Some(f) = sent.get(&name) {
                clean_sent_fps.insert(name.clone(), *f);
            }
        }
        if !probe {
            continue;
        }
        let mut f = reports
            .get(&p)
            .map(|m| figures(link, &name, s.codec(p), m))
            .unwrap_or_else(|| LinkFigures {
                link: link.label(),
                name: name.clone(),
                ..LinkFigures::default()
            });
        f.tiers = tiers_seen.into_iter().collect();
        if let Some((moved, tier)) = moves.get(&name) {
            f.moved_down_s = *moved;
            f.settled_in = Some(tier.clone());
        }
        f.back_up_s = back.get(&name).copied().flatten();
        links.push(f);
    }
    drop(lossy);
    drop(coturn);
    Ok(WeakLinks {
        participants: s.per_room,
        window_s: plan.window.as_secs_f64(),
        links,
        clean_sent_fps,
        clean_out_of_high,
        encoders: encoders.into_iter().collect(),
        encoders_most: most,
        server_cores_mean: mean,
        peers_cores,
        baseline_cores_runs: baseline_runs,
        cpu_ratio: baseline_mean.filter(|b| *b > 0.0).map(|b| mean / b),
    })
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.2} %", v * 100.0))
}

/// The scenario's section of `results.md`.
pub fn markdown(w: &WeakLinks) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### weak-links: a room of {}, three receivers on weak links ({:.0} s window)\n",
        w.participants, w.window_s
    );
    out.push_str("| link | receiver | canvas | tier in the window | fps (median; lowest second) | freezes > 500 ms (count; total; longest) | audio lost | audio concealed | moved (s after the cap → tier) | back to high (s after lifting) | packets lost after repair (retransmissions asked; in time) |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for l in &w.links {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} ; {} | {} ; {:.1} s ; {:.1} s | {} | {} | {} | {} | {} of {} ({} ; {}) |",
            l.link,
            l.name,
            l.codec,
            l.tiers.join(", "),
            opt(l.fps_median, 1),
            opt(l.fps_min, 0),
            l.freezes,
            l.freeze_total_ms / 1000.0,
            l.freeze_longest_ms / 1000.0,
            pct(l.audio_lost),
            pct(l.audio_concealed),
            match (&l.moved_down_s, &l.settled_in) {
                (Some(t), Some(tier)) => format!("{t:.1} → {tier}"),
                (None, Some(tier)) if l.link.starts_with("downlink") => format!("stayed {tier}"),
                _ => "–".into(),
            },
            if l.link.starts_with("downlink") {
                opt(l.back_up_s, 1)
            } else {
                "–".into()
            },
            l.repair.lost,
            l.repair.pushed + l.repair.lost,
            l.repair.rtx_asked,
            l.repair.rtx_repaired,
        );
    }
    let sent: Vec<f64> = w.clean_sent_fps.values().copied().collect();
    let _ = writeln!(
        out,
        "\nClean receivers: the server sent them {} canvas fps (lowest {}); out of the high tier during the window: {}.  \nVideo encoders running: {} (at most {} at once).  \nServer CPU {:.2} cores (the synthetic participants took {:.2}); the baseline doing the same encodes {} cores; **ratio {}**.",
        opt(quantile(&sent, 0.5), 1),
        opt(sent.iter().copied().reduce(f64::min), 1),
        if w.clean_out_of_high.is_empty() {
            "nobody".to_string()
        } else {
            w.clean_out_of_high.join(", ")
        },
        w.encoders.join(", "),
        w.encoders_most,
        w.server_cores_mean,
        w.peers_cores,
        if w.baseline_cores_runs.is_empty() {
            "–".to_string()
        } else {
            w.baseline_cores_runs
                .iter()
                .map(|c| format!("{c:.2}"))
                .collect::<Vec<_>>()
                .join(" / ")
        },
        opt(w.cpu_ratio, 2),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_three_are_the_weak_receivers() {
        let links: Vec<_> = (0..8).map(|p| link_of(p, 8)).collect();
        assert_eq!(links[0], (Link::Clean, false));
        assert_eq!(links[1], (Link::Clean, true));
        assert_eq!(links[4], (Link::Clean, false));
        assert_eq!(links[5], (Link::Lossy(0.05), true));
        assert_eq!(links[6], (Link::Capped(300), true));
        assert_eq!(links[7], (Link::Capped(80), true));
    }

    #[test]
    fn turn_urls_escape_the_password_and_keep_the_expiry_as_username() {
        let url = turn_url(([127, 0, 0, 1], 3478).into(), "secret-of-sixteen-chars");
        let rest = url.strip_prefix("turn://").unwrap();
        let (user, rest) = rest.split_once(':').unwrap();
        assert!(user.parse::<u64>().is_ok(), "{url}");
        let (password, host) = rest.rsplit_once('@').unwrap();
        assert_eq!(host, "127.0.0.1:3478");
        assert!(
            password
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '%'),
            "{url}"
        );
    }

    #[test]
    fn the_baseline_encodes_the_low_tier_in_the_families_seen() {
        let seen: BTreeSet<String> = ["vp8/high", "h264/high", "vp8/low"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(low_families(&seen), vec![Codec::Vp8]);
    }
}
