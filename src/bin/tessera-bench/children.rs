//! The benchmark's child processes: the server, synthetic participants and
//! the baseline, each this same executable under a hidden subcommand, each
//! measured or steered by the parent through its PID and standard I/O.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A child that reads commands ("window", "stop") on its standard input
/// and writes lines ("joined", then a JSON report) on its standard output.
pub struct Steered {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

fn log_file(log: &Path) -> anyhow::Result<Stdio> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    Ok(Stdio::from(f))
}

impl Steered {
    /// Starts this executable with `args`, its errors appended to `log`.
    pub fn spawn(args: &[String], log: &Path) -> anyhow::Result<Steered> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file(log)?)
            .kill_on_drop(true)
            .spawn()
            .context("starting a benchmark child process")?;
        let stdin = child.stdin.take().context("child stdin")?;
        let stdout = child.stdout.take().context("child stdout")?;
        Ok(Steered {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The process id, for /proc.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends one command line.
    pub async fn say(&mut self, line: &str) -> anyhow::Result<()> {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// The next line the child writes, within `timeout`.
    pub async fn next_line(&mut self, timeout: Duration) -> anyhow::Result<String> {
        match tokio::time::timeout(timeout, self.lines.next_line()).await {
            Ok(Ok(Some(line))) => Ok(line),
            Ok(Ok(None)) => bail!("the child exited (see the log)"),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => bail!("no word from the child within {timeout:?}"),
        }
    }

    /// Waits for the child to exit, killing it after `grace`.
    pub async fn reap(mut self, grace: Duration) {
        drop(self.stdin);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The server, run from this executable's `serve` subcommand.
pub struct Server {
    child: Child,
    /// Base HTTP address.
    pub http: String,
}

impl Server {
    /// Starts the server with `config` and waits until it answers.
    pub async fn start(config: &Path, port: u16, log: &Path) -> anyhow::Result<Server> {
        let child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log_file(log)?)
            .stderr(log_file(log)?)
            .kill_on_drop(true)
            .spawn()
            .context("starting the server")?;
        let http = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client
                .get(format!("{http}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(Server { child, http });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "the server did not answer /healthz within 20 s; see {}",
            log.display()
        )
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the server with SIGTERM, as an operator would.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Writes the server's config for a run into `dir`: loopback, open, room for
/// every synthetic participant, recordings in `dir`.
pub fn server_config(dir: &Path, port: u16, participants: usize) -> anyhow::Result<PathBuf> {
    let path = dir.join("tessera.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n\
         [limits]\nsockets_per_ip = {sockets}\nparticipants_per_room = {sockets}\nmax_rooms = {sockets}\n\n\
         [recording]\ndir = \"{rec}\"\n",
        sockets = participants + 20,
        rec = dir.join("recordings").display(),
    );
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
