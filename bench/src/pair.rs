//! `lesson-1on1` peer-to-peer: two synthetic participants that can connect
//! directly join a room of their own, connect to each other through the
//! server's relay and pause what they send it, as the room page does. The
//! server's CPU for the resting pair is measured over the window, beside the
//! same scenario on the MCU in the same run; then a third participant joins,
//! and the time until the pair gets the canvas again is measured.

use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::children::{free_port, server_env, Server, Steered};
use crate::clip::Codec;
use crate::direct::DirectReport;
use crate::run::{epoch, report_of, sample, PeerSpec, Plan, PEER_JITTER_MS};
use crate::scenario::Scenario;

const ROOM: &str = "pair";

/// How long the pair may take to connect directly and rest.
const REST_WITHIN: Duration = Duration::from_secs(30);

/// The pair's figures.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Pair {
    /// The room's mode through the window (`p2p` when it held).
    pub mode: String,
    /// The server's CPU while the pair talks directly (cores, window mean).
    pub server_cores: f64,
    /// The same scenario on the MCU, this run (cores, window mean).
    pub mcu_cores: f64,
    /// `server_cores` over `mcu_cores`.
    pub ratio: Option<f64>,
    /// Frames a second each decoded directly over the window: the lower of
    /// the two.
    pub direct_fps: Option<f64>,
    /// From the join to the direct connection up: the later of the two (ms).
    pub join_to_direct_ms: Option<f64>,
    /// From the join to the first frame over the direct connection: the
    /// later of the two (ms).
    pub join_to_first_frame_ms: Option<f64>,
    /// A third joins: from `mode mcu` to the pair's first canvas frame, the
    /// later of the two (ms). Each keeps the direct picture for 3 s, so a
    /// figure under that is no gap at all.
    pub canvas_after_switch_ms: Option<f64>,
    /// The third's join to its first canvas frame (ms).
    pub third_join_to_first_frame_ms: Option<f64>,
}

fn spec(plan: &Plan, http: &str, port: u16, s: &Scenario, name: &str, p2p: bool) -> PeerSpec {
    PeerSpec {
        ws: format!("ws://127.0.0.1:{port}/ws"),
        api: http.to_string(),
        room: ROOM.into(),
        name: name.into(),
        codec: Codec::Vp8,
        send: s.send,
        clicks: false,
        voice: false,
        probe: false,
        read_tiles_of: None,
        epoch_ms: epoch(),
        media_dir: plan.media_dir.clone(),
        jitter_ms: PEER_JITTER_MS,
        ice_address: None,
        turn: None,
        repair: false,
        p2p,
    }
}

async fn join(spec: &PeerSpec, log: &std::path::Path) -> anyhow::Result<Steered> {
    let args = ["peer".into(), "--spec".into(), serde_json::to_string(spec)?];
    let mut child = Steered::spawn(&args, &[], log)?;
    child
        .next_line(Duration::from_secs(30))
        .await
        .with_context(|| format!("{} did not join", spec.name))?;
    Ok(child)
}

async fn direct_report(p: &mut Steered) -> anyhow::Result<DirectReport> {
    p.say("report-direct").await?;
    let line = p.next_line(Duration::from_secs(20)).await?;
    let r: Option<DirectReport> =
        serde_json::from_str(&line).with_context(|| format!("a direct report, not {line:?}"))?;
    r.context("the participant has no direct side")
}

/// The room's state from the API.
async fn room(client: &reqwest::Client, http: &str) -> anyhow::Result<Value> {
    Ok(client
        .get(format!("{http}/api/rooms/{ROOM}"))
        .send()
        .await?
        .json()
        .await?)
}

/// Whether the room is peer-to-peer and its media rests: no video encoder
/// left (the last lingers 5 s after the pair went audio-only).
fn resting(v: &Value) -> bool {
    v["mode"] == "p2p" && v["videoEncoders"].as_array().is_some_and(Vec::is_empty)
}

/// Runs the pair; `mcu_cores` is the scenario's server CPU on the MCU.
pub async fn run(plan: &Plan, s: &Scenario, mcu_cores: f64) -> anyhow::Result<Pair> {
    let dir = plan.out.join("lesson-1on1-p2p");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let port = free_port()?;
    let env = server_env(&dir, port, 3);
    let server = Server::start(plan.config.as_deref(), &env, port, &dir.join("server.log")).await?;
    let result = measure(plan, s, &server, port, &dir, mcu_cores).await;
    server.stop().await;
    result
}

async fn measure(
    plan: &Plan,
    s: &Scenario,
    server: &Server,
    port: u16,
    dir: &std::path::Path,
    mcu_cores: f64,
) -> anyhow::Result<Pair> {
    let http = server.http.clone();
    let log = dir.join("peers.log");
    let client = reqwest::Client::new();
    let mut pair = Vec::new();
    for name in ["ada", "bo"] {
        pair.push(join(&spec(plan, &http, port, s, name, true), &log).await?);
        tokio::time::sleep(crate::run::JOIN_GAP).await;
    }
    let deadline = tokio::time::Instant::now() + REST_WITHIN;
    let mut state = Value::Null;
    while tokio::time::Instant::now() < deadline {
        state = room(&client, &http).await.unwrap_or(Value::Null);
        if resting(&state) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    anyhow::ensure!(
        resting(&state),
        "the pair did not go peer-to-peer and rest within {REST_WITHIN:?} (logs in {}): {state}",
        dir.display()
    );
    tokio::time::sleep(plan.warmup).await;
    for p in &mut pair {
        p.say("window").await?;
    }
    tracing::info!("measuring the pair peer-to-peer");
    let (_, server_cores, _) = sample(server.pid(), plan.window).await;
    let mode = room(&client, &http).await?["mode"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut reports = Vec::new();
    for p in &mut pair {
        reports.push(direct_report(p).await?);
    }
    let worst = |f: &dyn Fn(&DirectReport) -> Option<f64>| {
        reports
            .iter()
            .map(f)
            .collect::<Option<Vec<f64>>>()
            .and_then(|v| v.into_iter().reduce(f64::max))
    };
    let join_to_direct_ms = worst(&|r| r.join_to_direct_ms);
    let join_to_first_frame_ms = worst(&|r| r.measured.as_ref()?.join_to_first_frame_ms);
    let direct_fps = reports
        .iter()
        .map(|r| {
            let m = r.measured.as_ref()?;
            let frames: u32 = m.frames_per_second.iter().sum();
            (!m.frames_per_second.is_empty())
                .then(|| frames as f64 / m.frames_per_second.len() as f64)
        })
        .collect::<Option<Vec<f64>>>()
        .and_then(|v| v.into_iter().reduce(f64::min));

    tracing::info!("a third joins");
    let mut third = join(&spec(plan, &http, port, s, "cy", false), &log).await?;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut after = Vec::new();
    for p in &mut pair {
        after.push(direct_report(p).await?);
    }
    let canvas_after_switch_ms = after
        .iter()
        .map(|r| r.canvas_after_switch_ms)
        .collect::<Option<Vec<f64>>>()
        .and_then(|v| v.into_iter().reduce(f64::max));
    third.say("report").await?;
    let third_join_to_first_frame_ms = report_of(&third.next_line(Duration::from_secs(20)).await?)
        .and_then(|m| m.join_to_first_frame_ms);
    for p in pair.iter_mut().chain(std::iter::once(&mut third)) {
        let _ = p.say("stop").await;
    }
    for p in pair.into_iter().chain(std::iter::once(third)) {
        p.reap(Duration::from_secs(5)).await;
    }
    Ok(Pair {
        mode,
        server_cores,
        mcu_cores,
        ratio: (mcu_cores > 0.0).then(|| server_cores / mcu_cores),
        direct_fps,
        join_to_direct_ms,
        join_to_first_frame_ms,
        canvas_after_switch_ms,
        third_join_to_first_frame_ms,
    })
}

/// The pair's section of the report.
pub fn markdown(p: &Pair, direct: &crate::report::Direct) -> String {
    let ms = |v: Option<f64>| v.map_or_else(|| "–".into(), |v| format!("{v:.0}"));
    let mut out = String::from(
        "\nlesson-1on1 peer-to-peer (two participants that connect directly through the server's relay and pause what they send it):\n\n",
    );
    out.push_str("| mode | Tessera CPU (cores) | on the MCU, this run | **ratio** | direct fps (worse of two) | latency added | join → direct up ms | join → first direct frame ms | a third joins: canvas back at the pair ms | the third's join → first frame ms |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    out.push_str(&format!(
        "| {} | {:.3} | {:.2} | **{}** | {} | 0 (direct: video {} ms, audio {} ms median) | {} | {} | {} | {} |\n",
        p.mode,
        p.server_cores,
        p.mcu_cores,
        p.ratio.map_or_else(|| "–".into(), |r| format!("{:.0} %", r * 100.0)),
        p.direct_fps.map_or_else(|| "–".into(), |f| format!("{f:.1}")),
        ms(direct.video_ms.map(|s| s.median)),
        ms(direct.audio_ms.map(|s| s.median)),
        ms(p.join_to_direct_ms),
        ms(p.join_to_first_frame_ms),
        ms(p.canvas_after_switch_ms),
        ms(p.third_join_to_first_frame_ms),
    ));
    out
}
