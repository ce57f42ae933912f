//! A real TURN server for tests: coturn (Debian's `coturn`) on a free
//! loopback port with `use-auth-secret`, sharing its secret with the
//! server under test's `ice.turn_secret`.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The TURN server's static-auth-secret, shared with the server's `ice.turn_secret`.
pub const TURN_SECRET: &str = "9f3c1e7a5b2d4086af1e3c5b7d9f0a2c4e6b8d0f";

/// A coturn process on a free loopback port, stopped when dropped.
pub struct Coturn {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Coturn {
    /// Starts coturn and waits until it answers a STUN binding request.
    /// A port another process takes between our pick and coturn's bind
    /// leaves coturn retrying that bind for ever, so a start that does not
    /// answer is stopped and tried again on another port.
    pub fn start() -> Coturn {
        let mut logs = String::new();
        for _ in 0..3 {
            let coturn = Coturn::spawn(free_udp_port());
            if coturn.answers_stun(Duration::from_secs(10)) {
                return coturn;
            }
            logs.push_str(&format!("--- port {}:\n{}\n", coturn.port, coturn.log()));
        }
        panic!("coturn did not start in 3 tries:\n{logs}");
    }

    fn spawn(port: u16) -> Coturn {
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
        Coturn { child, port, dir }
    }

    /// Whether a STUN binding request to the TURN port gets a success
    /// response within `timeout`.
    pub fn answers_stun(&self, timeout: Duration) -> bool {
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

    pub fn url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turn.log")).unwrap_or_default()
    }
}

/// A loopback UDP port nobody holds at the moment of asking.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
