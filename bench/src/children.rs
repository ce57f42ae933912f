//! The benchmark's child processes: the server, synthetic participants and
//! the baseline, each this same executable under a hidden subcommand, each
//! measured or steered by the parent through its PID and standard I/O.

use std::path::Path;
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
    /// Starts this executable with `args` and extra environment `env`, its
    /// errors appended to `log`.
    pub fn spawn(args: &[String], env: &[(String, String)], log: &Path) -> anyhow::Result<Steered> {
        Self::spawn_via(&[], args, env, log)
    }

    /// As [`spawn`](Self::spawn), started through `launcher` (a command
    /// that runs the rest of its line, as `ip netns exec NAME` does), or
    /// directly where it is empty.
    pub fn spawn_via(
        launcher: &[String],
        args: &[String],
        env: &[(String, String)],
        log: &Path,
    ) -> anyhow::Result<Steered> {
        let exe = std::env::current_exe()?;
        let mut command = match launcher.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let mut child = command
            .args(args)
            .envs(env.iter().cloned())
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

    /// Moves every thread of the child to the lowest CPU priority the
    /// scheduler has, `SCHED_IDLE` (`chrt --all-tasks --idle`; threads it
    /// starts later inherit it), so that it runs only on what the other
    /// processes leave. Nice 19 still takes a weighted share from a busy
    /// server.
    pub async fn to_idle_priority(&self) -> anyhow::Result<()> {
        let pid = self.pid().context("the child has exited")?;
        let status = Command::new("chrt")
            .args(["--all-tasks", "--idle", "--pid", "0", &pid.to_string()])
            .status()
            .await
            .context("running chrt (util-linux)")?;
        anyhow::ensure!(status.success(), "chrt --idle failed for {pid}: {status}");
        Ok(())
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
            tracing::warn!(pid = ?self.child.id(), "a child did not stop in time; killing it");
            let _ = self.child.start_kill();
            let _ = tokio::time::timeout(grace, self.child.wait()).await;
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
    /// Starts the server with the `config` file (else the default one) and
    /// the overrides `env`, and waits until it answers on `port`.
    pub async fn start(
        config: Option<&Path>,
        env: &[(String, String)],
        port: u16,
        log: &Path,
    ) -> anyhow::Result<Server> {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg("serve");
        if let Some(c) = config {
            command.arg("--config").arg(c);
        }
        let child = command
            .envs(env.iter().cloned())
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

    /// Kills the server with SIGKILL, as a crash would, and reaps it.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
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

/// Settings the benchmark gives the server (and the baseline) on top of
/// the config file, as `TESSERA_*` environment overrides: loopback on
/// `port` and for media, open joins, the admin API open on loopback, room
/// for every synthetic participant, recordings under `dir`.
pub fn server_env(dir: &Path, port: u16, participants: usize) -> Vec<(String, String)> {
    let room = (participants + 20).to_string();
    [
        ("TESSERA_SERVER__LISTEN", format!("127.0.0.1:{port}")),
        ("TESSERA_SERVER__TLS_CERT", String::new()),
        ("TESSERA_SERVER__TLS_KEY", String::new()),
        ("TESSERA_ICE__ADDRESSES", "[\"127.0.0.1\"]".into()),
        ("TESSERA_AUTH__MODE", "open".into()),
        ("TESSERA_ADMIN__KEY", String::new()),
        ("TESSERA_LIMITS__SOCKETS_PER_IP", room.clone()),
        ("TESSERA_LIMITS__PARTICIPANTS_PER_ROOM", room.clone()),
        ("TESSERA_LIMITS__MAX_ROOMS", room),
        (
            "TESSERA_RECORDING__DIR",
            dir.join("recordings").display().to_string(),
        ),
        ("TESSERA_RECORDING__AUTO_RECORD", "[]".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
