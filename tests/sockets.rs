//! The sockets the server process opens for media: with `ice.addresses` and
//! a port range set, every ICE socket is on those addresses and in that
//! range, and nothing else is opened (no UPnP discovery, no sockets on the
//! machine's other interfaces), while media still flows.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use common::child::ChildServer;
use common::peer::{PeerOptions, TestPeer};
use common::{init, wait_until, SERIAL};

/// Ports kept apart from the in-process test servers' range.
const PORTS: (u16, u16) = (43100, 43199);

/// One socket of the process.
#[derive(Debug, Clone, PartialEq)]
struct Socket {
    proto: &'static str,
    ip: IpAddr,
    port: u16,
    /// A TCP socket in the LISTEN state.
    listening: bool,
}

/// Parses a `local_address` of `/proc/net/{udp,tcp}[6]`: hex `ADDR:PORT`,
/// the address as 32-bit words printed in host order.
fn parse_local(field: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::new();
    for i in (0..addr.len()).step_by(8) {
        let word = u32::from_str_radix(addr.get(i..i + 8)?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => return None,
    };
    Some((ip, port))
}

/// The inodes of the sockets `pid` has open.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// The UDP and TCP sockets `pid` has open, IPv4 and IPv6.
fn sockets(pid: u32) -> Vec<Socket> {
    let inodes = socket_inodes(pid);
    let mut found = Vec::new();
    for (file, proto) in [
        ("udp", "udp"),
        ("udp6", "udp"),
        ("tcp", "tcp"),
        ("tcp6", "tcp"),
    ] {
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")).unwrap();
        for line in table.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let Some(inode) = cols.get(9).and_then(|i| i.parse::<u64>().ok()) else {
                continue;
            };
            if !inodes.contains(&inode) {
                continue;
            }
            let (ip, port) = parse_local(cols[1]).expect("a local address");
            found.push(Socket {
                proto,
                ip,
                port,
                listening: proto == "tcp" && cols[3] == "0A",
            });
        }
    }
    found
}

#[test]
fn proc_net_addresses_parse() {
    assert_eq!(
        parse_local("0100007F:A87C"),
        Some((IpAddr::V4(Ipv4Addr::LOCALHOST), 43132))
    );
    assert_eq!(
        parse_local("00000000000000000000000001000000:0050"),
        Some((IpAddr::V6(Ipv6Addr::LOCALHOST), 80))
    );
}

/// Starts the server on 127.0.0.1 and the test's port range with `extra`
/// settings, joins two peers and waits for media; returns the server's
/// sockets then.
async fn sockets_with_media(extra: &[(&str, String)]) -> (ChildServer, Vec<Socket>) {
    let mut env = vec![
        ("TESSERA_ICE__ADDRESSES", "[\"127.0.0.1\"]".to_string()),
        ("TESSERA_MEDIA__RTP_PORT_MIN", PORTS.0.to_string()),
        ("TESSERA_MEDIA__RTP_PORT_MAX", PORTS.1.to_string()),
    ];
    env.extend(extra.iter().cloned());
    let server = ChildServer::start(&env).await;
    // The peers gather on loopback too: a socket bound to 127.0.0.1
    // exchanges UDP only with other loopback addresses.
    let a = TestPeer::join(&server.ws, PeerOptions::new("net", "a", 0xff0000)).await;
    let b = TestPeer::join(&server.ws, PeerOptions::new("net", "b", 0x0000ff)).await;
    assert!(
        wait_until(Duration::from_secs(20), || a.frames() > 10
            && b.frames() > 10)
        .await,
        "media flows with ICE on 127.0.0.1 only"
    );
    let open = sockets(server.pid());
    drop((a, b));
    (server, open)
}

/// 127.0.0.1 in the test's port range.
fn in_range(s: &Socket) -> bool {
    s.ip == IpAddr::V4(Ipv4Addr::LOCALHOST) && (PORTS.0..=PORTS.1).contains(&s.port)
}

/// The server's HTTP listener.
fn is_http(s: &Socket, server: &ChildServer) -> bool {
    s.ip == IpAddr::V4(Ipv4Addr::LOCALHOST) && s.port == server.port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_sockets_stay_on_the_configured_addresses_and_ports() {
    let _serial = SERIAL.lock().await;
    init();
    let (server, open) = sockets_with_media(&[]).await;
    let udp: Vec<&Socket> = open.iter().filter(|s| s.proto == "udp").collect();
    assert!(
        udp.len() >= 2,
        "one ICE socket per participant at least: {open:?}"
    );
    for s in &udp {
        assert!(
            in_range(s),
            "UDP socket outside 127.0.0.1:{PORTS:?}: {s:?}, all: {open:?}"
        );
    }
    let listening: Vec<&Socket> = open.iter().filter(|s| s.listening).collect();
    for s in &listening {
        assert!(
            in_range(s) || is_http(s, &server),
            "listening outside the HTTP port and 127.0.0.1:{PORTS:?}: {s:?}, all: {open:?}"
        );
    }
    assert!(
        listening.iter().any(|s| in_range(s)),
        "ICE-TCP listens in the range by default: {open:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ice_tcp_only_the_http_port_listens() {
    let _serial = SERIAL.lock().await;
    init();
    let (server, open) = sockets_with_media(&[("TESSERA_ICE__TCP", "false".into())]).await;
    let listening: Vec<&Socket> = open.iter().filter(|s| s.listening).collect();
    assert!(
        listening.iter().all(|s| is_http(s, &server)),
        "only the HTTP port listens: {open:?}"
    );
    assert!(
        open.iter().any(|s| s.proto == "udp" && in_range(s)),
        "media over UDP in the range: {open:?}"
    );
}
