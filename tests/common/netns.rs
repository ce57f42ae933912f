//! Network namespaces for tests of narrow links: a namespace joined to
//! this one by a veth pair, with private addresses (a /30 of
//! 10.213.0.0/16) that exist only while the test runs, and a token bucket
//! (`tc ... tbf`) on the host end to cap what reaches the namespace (its
//! downlink), or on the namespace's end to cap what leaves it (its
//! uplink). A browser started in the namespace reaches the server only
//! through that link; a [`Forwarder`] brings its signaling to a server
//! listening on loopback.
//!
//! Everything is removed when the [`Namespace`] is dropped, and namespaces
//! left behind by a test process that died are swept at the next start.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Name prefix of every namespace the tests make.
const PREFIX: &str = "tessera-t-";

/// A namespace and the veth pair into it.
pub struct Namespace {
    /// The namespace's name, for `ip netns exec`.
    pub name: String,
    /// The host end of the veth pair.
    pub host_if: String,
    /// The namespace's end.
    pub ns_if: String,
    /// The host end's address: the server is reached here.
    pub host_ip: Ipv4Addr,
    /// The namespace end's address.
    pub ns_ip: Ipv4Addr,
}

/// Runs a command, panicking with its output if it fails.
fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "{}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command, ignoring failure (cleanup of what may be gone).
fn run_quietly(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}

/// Whether process `pid` is alive.
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes namespaces (and with them their veth pairs) of test processes
/// that are gone.
fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !alive(p)) {
            run_quietly(&["ip", "netns", "del", name]);
        }
    }
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Namespace {
    /// Makes a namespace with a link to this one, its loopback up and its
    /// default route through the host end.
    pub fn create() -> Namespace {
        sweep_stale();
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // A /30 per namespace: network, host end, namespace end, broadcast.
        let subnet = ((pid % 4096) * 4 + n % 4) * 4;
        let base = u32::from(Ipv4Addr::new(10, 213, 0, 0)) + subnet;
        let host_ip = Ipv4Addr::from(base + 1);
        let ns_ip = Ipv4Addr::from(base + 2);
        let name = format!("{PREFIX}{pid}-{n}");
        // Interface names are at most 15 characters.
        let host_if = format!("tt{}x{n}h", pid % 1_000_000);
        let ns_if = format!("tt{}x{n}n", pid % 1_000_000);
        let ns = Namespace {
            name: name.clone(),
            host_if: host_if.clone(),
            ns_if: ns_if.clone(),
            host_ip,
            ns_ip,
        };
        run(&["ip", "netns", "add", &name]);
        run(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        run(&["ip", "link", "set", &ns_if, "netns", &name]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{host_ip}/30"),
            "dev",
            &host_if,
        ]);
        run(&["ip", "link", "set", &host_if, "up"]);
        let exec = |args: &[&str]| {
            let mut all = vec!["ip", "netns", "exec", &name];
            all.extend_from_slice(args);
            run(&all);
        };
        exec(&["ip", "addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if]);
        exec(&["ip", "link", "set", &ns_if, "up"]);
        exec(&["ip", "link", "set", "lo", "up"]);
        exec(&["ip", "route", "add", "default", "via", &host_ip.to_string()]);
        ns
    }

    /// Takes the default route away: the namespace reaches its link to
    /// the host and nothing beyond, so that two namespaces cannot reach
    /// each other even where the host forwards.
    pub fn isolate(&self) {
        run(&[
            "ip", "netns", "exec", &self.name, "ip", "route", "del", "default",
        ]);
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Caps what reaches the namespace at `kbit` kbit/s: a token bucket
    /// on the host end, with a queue of at most 200 ms; what does not fit
    /// is dropped, as on a narrow mobile or DSL link.
    pub fn cap_downlink(&self, kbit: u32) {
        run(&[
            "tc",
            "qdisc",
            "replace",
            "dev",
            &self.host_if,
            "root",
            "tbf",
            "rate",
            &format!("{kbit}kbit"),
            "burst",
            "6kb",
            "latency",
            "200ms",
        ]);
    }

    /// Caps what leaves the namespace at `kbit` kbit/s, as
    /// [`cap_downlink`](Self::cap_downlink) does what reaches it: a narrow
    /// uplink.
    pub fn cap_uplink(&self, kbit: u32) {
        run(&[
            "ip",
            "netns",
            "exec",
            &self.name,
            "tc",
            "qdisc",
            "replace",
            "dev",
            &self.ns_if,
            "root",
            "tbf",
            "rate",
            &format!("{kbit}kbit"),
            "burst",
            "6kb",
            "latency",
            "200ms",
        ]);
    }

    /// Lifts the cap.
    pub fn lift_cap(&self) {
        run_quietly(&["tc", "qdisc", "del", "dev", &self.host_if, "root"]);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and the pair
        // with it; the host end is deleted too in case it was not.
        run_quietly(&["ip", "netns", "del", &self.name]);
        run_quietly(&["ip", "link", "del", &self.host_if]);
    }
}

/// Forwards TCP connections from `listen` to `to`: the namespaced
/// browsers' way to the signaling server, which listens on loopback. The
/// media does not come this way: it flows between the browser and the
/// server's ICE candidates on the veth link.
pub struct Forwarder {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    pub async fn start(listen: std::net::Ipv4Addr, to: SocketAddr) -> Forwarder {
        let listener = tokio::net::TcpListener::bind((listen, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Forwarder { addr, task }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
