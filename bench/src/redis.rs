//! A real `redis-server` (Debian's package) for the cluster scenarios: on
//! a free loopback port, saving nothing to disk, killed with the run.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::process::{Child, Command};

use crate::children::free_port;

/// A running `redis-server`.
pub struct RedisServer {
    _child: Child,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    /// What `redis-server --version` says.
    pub version: String,
}

impl RedisServer {
    /// Starts one, its output appended to `log`, and waits until it answers.
    pub async fn start(log: &Path) -> anyhow::Result<RedisServer> {
        let version = Command::new("redis-server")
            .arg("--version")
            .output()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot run redis-server ({e}): the cluster scenarios need a real Redis; install Debian's redis-server package (scripts/packages.txt lists it)"
                )
            })?;
        let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
        let port = free_port()?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server")?;
        let url = format!("redis://127.0.0.1:{port}");
        // Any answer from the directory's own client says Redis is up.
        let probe = tessera::cluster::Directory::new(&url, "bench-probe")?;
        for _ in 0..100 {
            if probe.nodes().await.is_ok() {
                return Ok(RedisServer {
                    _child: child,
                    url,
                    version,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "redis-server did not answer on port {port} within 5 s; see {}",
            log.display()
        )
    }
}
