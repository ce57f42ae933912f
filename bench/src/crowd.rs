//! The light participants' process: every light participant of a run
//! (`light.rs`) as a task on one thread, steered over standard input the
//! way a webrtcbin participant's process is.
//!
//! Commands, one per line: `join <PeerSpec as JSON>` (answered with
//! `joined <name> <id>` once connected, or `failed <name> <why>`),
//! `window`, `report` (answered with one JSON array of every joined
//! participant's figures, in join order) and `stop`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::{oneshot, watch};

use crate::clip::{self, ClipKind};
use crate::light::{self, Frames, Shared, Tally};
use crate::peer::Measured;
use crate::run::PeerSpec;

/// Runs the crowd until `stop` or the end of standard input. Call on a
/// current-thread runtime: the whole crowd is meant to share one thread.
pub async fn run() -> anyhow::Result<()> {
    gstreamer::init()?;
    light::install_crypto();
    let (stop_tx, stop) = watch::channel(false);
    let mut frames: HashMap<ClipKind, Arc<Frames>> = HashMap::new();
    let mut joined: Vec<Arc<Mutex<Tally>>> = Vec::new();
    let mut tasks = Vec::new();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = line.trim();
        match line.split_once(' ').unwrap_or((line, "")) {
            ("join", spec) => {
                let spec: PeerSpec = serde_json::from_str(spec).context("a join's spec")?;
                let name = spec.name.clone();
                let shared = Arc::new(Shared {
                    video: frames_of(
                        &mut frames,
                        &spec,
                        ClipKind::Video(spec.codec, spec.send.0, spec.send.1),
                    )?,
                    audio: frames_of(&mut frames, &spec, ClipKind::Quiet)?,
                    epoch: light::epoch_instant(spec.epoch_ms),
                });
                let tally = Arc::new(Mutex::new(Tally::default()));
                let (tx, rx) = oneshot::channel();
                tasks.push(tokio::spawn(light::run(
                    spec,
                    shared,
                    tally.clone(),
                    tx,
                    stop.clone(),
                )));
                match tokio::time::timeout(Duration::from_secs(30), rx).await {
                    Ok(Ok(Ok(id))) => {
                        joined.push(tally);
                        println!("joined {name} {id}");
                    }
                    Ok(Ok(Err(e))) => println!("failed {name} {e:#}"),
                    Ok(Err(_)) => println!("failed {name} it stopped before connecting"),
                    Err(_) => println!("failed {name} not connected within 30 s"),
                }
            }
            ("window", _) => {
                let now = Instant::now();
                for t in &joined {
                    t.lock().unwrap().start_window(now);
                }
            }
            ("report", _) => {
                let now = Instant::now();
                let all: Vec<Measured> = joined
                    .iter()
                    .map(|t| t.lock().unwrap().measured(now))
                    .collect();
                println!("{}", serde_json::to_string(&all)?);
            }
            ("stop", _) => break,
            _ => {}
        }
    }
    let _ = stop_tx.send(true);
    // Each says `leave` on its way out; the server tidies up the rest.
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
    Ok(())
}

fn frames_of(
    cache: &mut HashMap<ClipKind, Arc<Frames>>,
    spec: &PeerSpec,
    kind: ClipKind,
) -> anyhow::Result<Arc<Frames>> {
    if let Some(f) = cache.get(&kind) {
        return Ok(f.clone());
    }
    let f = Arc::new(Frames::of(&*clip::load(&spec.media_dir, kind)?)?);
    cache.insert(kind, f.clone());
    Ok(f)
}
