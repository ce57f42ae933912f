//! Shared test support: a `Once`-guarded [`init`], the server started
//! in-process on 127.0.0.1:0 ([`TestServer`]), a headless GStreamer WebRTC
//! client speaking the real protocol ([`peer::TestPeer`]), and media checks
//! ([`media`]: pixel sampling, Goertzel tone detection).

#![allow(dead_code)]

pub mod baresip;
pub mod browser;
pub mod child;
pub mod coturn;
pub mod impair;
pub mod live;
pub mod media;
pub mod netns;
pub mod peer;
pub mod recordings;
pub mod redis;
pub mod ws;

use std::sync::Once;
use std::time::{Duration, Instant};

use gstreamer as gst;
use tessera::config::Config;
use tessera::room::{Registry, RoomCommand, RoomSnapshot};
use tokio::sync::{oneshot, Mutex};

static INIT: Once = Once::new();

/// Tests that start servers and peers run one at a time: two at once would
/// share two cores and make each other's media late.
pub static SERIAL: Mutex<()> = Mutex::const_new(());

/// Initialises logging and GStreamer once per test binary, and starts
/// counting live elements ([`live`]).
pub fn init() {
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
        gst::init().expect("gst init");
        live::start();
    });
}

/// UDP range the test server's ICE candidates must stay in.
pub const TEST_RTP_PORTS: (u16, u16) = (42000, 42999);

/// The config used by end-to-end tests: a small canvas keeps two cores
/// from falling behind while three peers and the server share them.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.media.canvas_width = 640;
    c.media.canvas_height = 360;
    c.media.framerate = 15;
    c.media.pipelines_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines").into();
    c.media.rtp_port_min = TEST_RTP_PORTS.0;
    c.media.rtp_port_max = TEST_RTP_PORTS.1;
    // Media on loopback only, as the test peers and browsers gather there
    // too (libnice and browsers leave loopback out unless told).
    c.ice.addresses = vec![std::net::Ipv4Addr::LOCALHOST.into()];
    // The tests of the MCU keep a room of two browsers on it; the
    // peer-to-peer tests turn it back on.
    c.rooms.p2p = tessera::config::P2pPolicy::Off;
    c
}

/// A server running in this process on an ephemeral loopback port.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    /// Where SIP is received, when the config sets `sip.listen`.
    #[allow(dead_code)]
    pub sip_addr: Option<std::net::SocketAddr>,
    pub registry: Registry,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    pub async fn start(config: Config) -> TestServer {
        Self::start_at(config, "127.0.0.1:0".parse().unwrap()).await
    }

    /// Starts on a given address (retrying while a previous server on it
    /// is still letting go of the port).
    pub async fn start_at(config: Config, addr: std::net::SocketAddr) -> TestServer {
        init();
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("binding {addr}: {e}"),
            }
        };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (server, done) = tessera::server::start(listener, &config, async move {
            let _ = stop_rx.await;
        })
        .await
        .expect("server starts");
        tokio::spawn(done);
        TestServer {
            addr: server.addr(),
            sip_addr: server.sip_addr(),
            registry: server.registry().clone(),
            config,
            stop: Some(stop_tx),
        }
    }

    /// Stops the server as SIGTERM would: rooms close, clients are told.
    pub fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// A snapshot of a live room, or None if there is no such room.
    pub async fn room(&self, room: &str) -> Option<RoomSnapshot> {
        let handle = self.registry.get(room)?;
        let (tx, rx) = oneshot::channel();
        handle.send(RoomCommand::Inspect { reply: tx }).ok()?;
        rx.await.ok()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The tiles the built-in `layout` gives `members` (in join order) on the
/// configured canvas, by member.
pub fn layout_tiles(
    config: &Config,
    layout: &str,
    members: &[tessera::layout::Member],
) -> Vec<tessera::layout::Rect> {
    let text = tessera::layout::BUILTIN
        .iter()
        .find(|(n, _)| *n == layout)
        .expect("a built-in layout")
        .1;
    layout_text_tiles(config, text, members)
}

/// Tiles of each member under the layout file `text`, as [`layout_tiles`].
pub fn layout_text_tiles(
    config: &Config,
    text: &str,
    members: &[tessera::layout::Member],
) -> Vec<tessera::layout::Rect> {
    let layout = tessera::layout::file::parse(std::path::Path::new("test.toml"), text).unwrap();
    let canvas = tessera::layout::Size {
        width: config.media.canvas_width,
        height: config.media.canvas_height,
    };
    let placed = tessera::layout::place(&layout, canvas, members);
    (0..members.len())
        .map(|i| {
            placed
                .iter()
                .find(|p| p.member == i)
                .expect("everyone placed")
                .rect
        })
        .collect()
}

/// The grid tiles of `n` participants on the configured canvas.
pub fn grid_tiles(config: &Config, n: usize) -> Vec<tessera::layout::Rect> {
    layout_tiles(config, "grid", &vec![tessera::layout::Member::default(); n])
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub async fn wait_until<F: FnMut() -> bool>(timeout: Duration, mut cond: F) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Names of every GStreamer element alive in this process.
pub fn live_elements() -> Vec<String> {
    live::names()
}

/// A TLS client configuration that trusts only `cert` (a test certificate).
pub fn tls_client_trusting(
    cert: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
) -> std::sync::Arc<tokio_rustls::rustls::ClientConfig> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// The sum of the server's metric series named `name` whose labels
/// contain `label` ("" for all), from `/metrics` at `base`.
pub async fn metric(base: &str, name: &str, label: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
                && l.contains(label)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
