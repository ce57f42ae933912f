//! Media through a real TURN relay: coturn (Debian's `coturn`) on loopback
//! with `use-auth-secret`, and a server that hands every client a
//! credential minted from the same secret. A Chromium client that must use
//! the relay (`ice.relay_only`) reaches the room only through it, and media
//! flows both ways.

mod common;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::browser::{wait_stats, Browser, Kind};
use common::peer::{PeerOptions, TestPeer};
use common::{init, test_config, TestServer, SERIAL};

/// The TURN server's static-auth-secret, shared with the server's `ice.turn_secret`.
const TURN_SECRET: &str = "9f3c1e7a5b2d4086af1e3c5b7d9f0a2c4e6b8d0f";

/// A coturn process on a free loopback port, stopped when dropped.
struct Coturn {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Coturn {
    /// Starts coturn and waits until it answers a STUN binding request.
    fn start() -> Coturn {
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("tessera-coturn-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("turnserver")
            .args([
                "-n", // no config file
                "--listening-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                "--relay-ip=127.0.0.1",
                "--use-auth-secret",
                &format!("--static-auth-secret={TURN_SECRET}"),
                "--realm=tessera.test",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                // The server under test listens on loopback only.
                "--allow-loopback-peers",
                "--simple-log",
                "--verbose",
                &format!("--log-file={}", dir.join("turn.log").display()),
                &format!("--pidfile={}", dir.join("turn.pid").display()),
                &format!("--userdb={}", dir.join("turndb").display()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver runs (Debian package coturn; scripts/setup.sh installs it)");
        let coturn = Coturn { child, port, dir };
        assert!(
            coturn.answers_stun(Duration::from_secs(20)),
            "coturn did not start: {}",
            coturn.log()
        );
        coturn
    }

    /// Whether a STUN binding request to the TURN port gets a success
    /// response within `timeout`.
    fn answers_stun(&self, timeout: Duration) -> bool {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        // Binding request: type 0x0001, no attributes, the magic cookie,
        // a 12-byte transaction id.
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(b"tessera-test");
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 512];
        while Instant::now() < deadline {
            let _ = socket.send_to(&request, ("127.0.0.1", self.port));
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                if n >= 20 && buf[0..2] == [0x01, 0x01] && buf[8..20] == request[8..20] {
                    return true;
                }
            }
        }
        false
    }

    fn url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turn.log")).unwrap_or_default()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_chromium_client_reaches_the_room_through_coturn() {
    let _serial = SERIAL.lock().await;
    init();
    let coturn = Coturn::start();
    let mut config = test_config();
    config.ice.turn = vec![coturn.url()];
    config.ice.turn_secret = TURN_SECRET.into();
    config.ice.relay_only = true;
    let server = TestServer::start(config).await;

    // Someone to see and hear: a GStreamer peer with a colour and a tone.
    let mut opts = PeerOptions::new("relayed", "tone", 0x0000ff);
    opts.tone_hz = 700.0;
    let peer = TestPeer::join(&server.ws_url(), opts).await;

    let b = Browser::launch(Kind::Chromium, "chromium-relay").await;
    b.client
        .goto(&format!(
            "http://{}/r/relayed?name=relayed&codec=vp8&autojoin=1",
            server.addr
        ))
        .await
        .unwrap();
    // Down: the browser decodes the canvas and hears the peer, over a
    // candidate pair whose local side is the relay.
    let (ok, s) = wait_stats(&b, Duration::from_secs(60), |s| {
        s["framesDecoded"].as_u64().unwrap_or(0) >= 60
            && s["audioEnergy"].as_f64().unwrap_or(0.0) > 1e-4
            && s["localCandidateType"] == "relay"
    })
    .await;
    b.screenshot("browser-relay").await;
    assert!(ok, "through the relay: {s}\ncoturn: {}", coturn.log());

    // Up: the server decodes the browser's camera.
    let id = s["participantId"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut figures = None;
    while Instant::now() < deadline {
        let snapshot = server.room("relayed").await.unwrap();
        figures = snapshot
            .media
            .iter()
            .find(|(p, _)| *p == id)
            .map(|(_, f)| *f);
        if figures.is_some_and(|f| f.resolution.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        figures.is_some_and(|f| f.resolution.is_some()),
        "the server never decoded the relayed camera: {figures:?}"
    );
    // coturn carried it, for the credential the server minted for this
    // participant (`expiry:participant`): an allocation, and a permission
    // for the server's address.
    let log = coturn.log();
    let ours = |packet: &str| {
        log.lines().any(|l| {
            l.contains(&format!(
                ":{id}>: incoming packet {packet} processed, success"
            ))
        })
    };
    assert!(ours("ALLOCATE") && ours("CREATE_PERMISSION"), "{log}");
    b.close().await;
    peer.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_media_without_a_turn_server_is_refused_with_the_reason() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(test_config()).await;
    let mut ws = common::ws::connect(&server.ws_url()).await;
    let reply = common::ws::send_and_read(
        &mut ws,
        r#"{"type":"join","room":"norelay","name":"Ada","relay":true}"#,
    )
    .await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "bad-message", "{reply}");
    let message = reply["message"].as_str().unwrap();
    assert!(
        message.contains("no TURN server") && message.contains("ice.turn"),
        "{message}"
    );
    // Without the relay the same join is accepted, with the policy `all`.
    let mut ws = common::ws::connect(&server.ws_url()).await;
    let joined =
        common::ws::send_and_read(&mut ws, r#"{"type":"join","room":"norelay","name":"Bo"}"#).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(joined["iceTransportPolicy"], "all", "{joined}");
}
