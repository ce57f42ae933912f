//! The `tessera` binary run as its own process on a free loopback port, for
//! tests about the process itself: signals, and the sockets it opens.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A running `tessera serve`, killed when dropped.
pub struct ChildServer {
    child: Child,
    /// The HTTP port.
    pub port: u16,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// The signaling socket's URL.
    pub ws: String,
}

impl ChildServer {
    /// Starts the server with a small canvas and the given `TESSERA_*`
    /// overrides, and waits until `/healthz` answers.
    pub async fn start(env: &[(&str, String)]) -> ChildServer {
        let server = ChildServer::spawn(env, "http", "ws");
        let http = reqwest::Client::new();
        // GStreamer's start-up takes a few seconds on a busy machine.
        for _ in 0..300 {
            if http
                .get(format!("{}/healthz", server.base))
                .send()
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server did not come up");
    }

    /// Starts the server as [`start`](Self::start) does, with `env` naming
    /// its TLS certificate and key, and waits until a TLS handshake that
    /// trusts `cert` succeeds.
    pub async fn start_tls(
        env: &[(&str, String)],
        cert: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
    ) -> ChildServer {
        use tokio_rustls::rustls;
        let server = ChildServer::spawn(env, "https", "wss");
        let connector = tokio_rustls::TlsConnector::from(super::tls_client_trusting(cert));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        for _ in 0..100 {
            if let Ok(tcp) = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await {
                if connector.connect(name.clone(), tcp).await.is_ok() {
                    return server;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the TLS server did not come up");
    }

    fn spawn(env: &[(&str, String)], http: &str, ws: &str) -> ChildServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("TESSERA_LOG", "warn")
            .env("TESSERA_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("TESSERA_MEDIA__CANVAS_WIDTH", "640")
            .env("TESSERA_MEDIA__CANVAS_HEIGHT", "360")
            .env("TESSERA_MEDIA__FRAMERATE", "15")
            // Media on loopback, where the test peers gather.
            .env("TESSERA_ICE__ADDRESSES", "[\"127.0.0.1\"]")
            .stdout(Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("tessera starts");
        ChildServer {
            child,
            port,
            base: format!("{http}://127.0.0.1:{port}"),
            ws: format!("{ws}://127.0.0.1:{port}/ws"),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` and waits for the process to end; true if it exited 0.
    pub fn end(mut self, signal: Signal) -> bool {
        kill(Pid::from_raw(self.child.id() as i32), signal).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "tessera did not exit after {signal}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
