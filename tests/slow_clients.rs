//! Slow and half-open connections cannot pin the server's sockets: a
//! thousand connections from one address that send half a request (or half
//! a TLS handshake) and then nothing are refused beyond the per-address
//! limit and closed at the deadline, while a lesson goes on and a newcomer
//! joins; a slow admin API body gets `408`, an oversized one `413`.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::child::ChildServer;
use common::peer::{PeerOptions, TestPeer};
use common::{init, test_config, TestServer, SERIAL};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

/// The attacker's address: one loopback address, not the lesson's.
const ATTACKER: [u8; 4] = [127, 0, 0, 2];

/// Connections the attacker opens.
const ATTACK: usize = 1000;

/// The request-head and handshake deadline of these tests, seconds.
const DEADLINE: u64 = 3;

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Lets this test process hold the attack's sockets.
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
}

/// Opens `n` connections to `to` from the attacker's address, each sending
/// `first` and then nothing; returns them (kept open) and how many were
/// answered `503` at once.
async fn half_open(to: SocketAddr, n: usize, first: &'static [u8]) -> (Vec<TcpStream>, usize) {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind((ATTACKER, 0).into()).unwrap();
        let mut s = socket.connect(to).await.expect("connect");
        let _ = s.write_all(first).await;
        held.push(s);
    }
    // Those refused get an answer (plain HTTP) or a close at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut refused = 0;
    for s in &mut held {
        let mut buf = [0u8; 64];
        // An answer, a close, or a reset (the server closed with our
        // request unread): refused. Nothing yet: held.
        match tokio::time::timeout(Duration::from_millis(2), s.read(&mut buf)).await {
            Ok(Ok(k)) if k == 0 || buf[..k].starts_with(b"HTTP/1.1 503") => refused += 1,
            Ok(Err(_)) => refused += 1,
            _ => {}
        }
    }
    (held, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_half_requests_are_refused_or_closed_and_the_lesson_goes_on() {
    let _serial = SERIAL.lock().await;
    init();
    raise_open_file_limit();
    let server =
        ChildServer::start(&[("TESSERA_LIMITS__REQUEST_HEAD_SECONDS", DEADLINE.to_string())]).await;
    let pid = server.pid();
    let teacher = TestPeer::join(&server.ws, PeerOptions::new("held", "teacher", 0x2040c0)).await;
    assert!(
        common::wait_until(Duration::from_secs(20), || teacher.frames() > 30).await,
        "the teacher sees the canvas"
    );
    let fds_before = open_fds(pid);

    let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    let attack_start = Instant::now();
    let frames_at_start = teacher.frames();
    // The teacher's frames, every half second, through the attack.
    let samples = {
        let state = teacher.state.clone();
        tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..((DEADLINE + 6) * 2) {
                out.push(state.lock().unwrap().frames);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            out
        })
    };
    let (held, refused) = half_open(addr, ATTACK, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    let opened = Instant::now();
    eprintln!(
        "{ATTACK} half requests opened in {:.1} s, {refused} refused at once",
        attack_start.elapsed().as_secs_f64()
    );
    assert!(
        refused >= ATTACK - 64 - 10,
        "beyond limits.connections_per_ip (64) they are refused: {refused}"
    );

    // During the attack a newcomer joins from another address and sees
    // the canvas, and the teacher's picture never stops.
    let student = TestPeer::join(&server.ws, PeerOptions::new("held", "student", 0xc08020)).await;
    assert!(
        common::wait_until(Duration::from_secs(20), || student.frames() > 15).await,
        "a newcomer joins during the attack"
    );
    assert!(
        teacher.frames() > frames_at_start + 15,
        "the lesson went on"
    );

    // At the deadline plus 2 s, the server holds almost none of them.
    let at = opened + Duration::from_secs(DEADLINE + 2);
    tokio::time::sleep_until(at.into()).await;
    let fds_after = open_fds(pid);
    let head_timeouts = common::metric(
        &server.base,
        "tessera_connections_refused_total",
        "request-head-timeout",
    )
    .await;
    let per_address = common::metric(
        &server.base,
        "tessera_connections_refused_total",
        "per-address",
    )
    .await;
    eprintln!(
        "server fds: {fds_before} before, {fds_after} after; refused per address {per_address}, \
         closed at the deadline {head_timeouts}"
    );
    assert!(
        fds_after < fds_before + 20,
        "the server still holds the half-open connections: {fds_before} -> {fds_after}"
    );
    assert!(per_address >= (ATTACK - 64 - 10) as f64, "{per_address}");
    assert!(head_timeouts >= 50.0, "{head_timeouts}");
    let samples = samples.await.unwrap();
    assert!(
        samples.windows(2).all(|w| w[1] > w[0]),
        "the teacher's frames stopped during the attack: {samples:?}"
    );
    drop(held);
    let frames = teacher.frames();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        teacher.frames() > frames,
        "the teacher's canvas still moves"
    );
    student.leave().await;
    teacher.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_finished_tls_handshakes_are_closed_at_their_deadline() {
    let _serial = SERIAL.lock().await;
    init();
    raise_open_file_limit();
    let dir = std::env::temp_dir().join(format!("tessera-slow-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), issued.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), issued.signing_key.serialize_pem()).unwrap();
    let server = ChildServer::start_tls(
        &[
            (
                "TESSERA_LIMITS__TLS_HANDSHAKE_SECONDS",
                DEADLINE.to_string(),
            ),
            (
                "TESSERA_SERVER__TLS_CERT",
                dir.join("cert.pem").display().to_string(),
            ),
            (
                "TESSERA_SERVER__TLS_KEY",
                dir.join("key.pem").display().to_string(),
            ),
        ],
        issued.cert.der().clone(),
    )
    .await;
    let pid = server.pid();
    let fds_before = open_fds(pid);

    // A TLS record header announcing a ClientHello that never comes.
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    let (held, refused) = half_open(addr, ATTACK, &[0x16, 0x03, 0x01, 0x02, 0x00]).await;
    let opened = Instant::now();
    assert!(refused >= ATTACK - 64 - 10, "refused at once: {refused}");

    // A newcomer gets through meanwhile, over WSS.
    let client = common::tls_client_trusting(issued.cert.der().clone());
    let url = format!("wss://localhost:{}/ws", server.port);
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        &url,
        None,
        false,
        Some(tokio_tungstenite::Connector::Rustls(client)),
    )
    .await
    .expect("a WSS connection during the attack");
    let reply =
        common::ws::send_and_read(&mut ws, r#"{"type":"join","room":"tls-held","name":"Ada"}"#)
            .await;
    assert_eq!(reply["type"], "joined", "{reply}");

    tokio::time::sleep_until((opened + Duration::from_secs(DEADLINE + 2)).into()).await;
    let fds_after = open_fds(pid);
    eprintln!("server fds over TLS: {fds_before} before, {fds_after} after");
    assert!(
        fds_after < fds_before + 20,
        "the server still holds the half-finished handshakes: {fds_before} -> {fds_after}"
    );
    drop(held);
    drop(ws);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_api_body_gets_408_and_an_oversized_one_413() {
    let _serial = SERIAL.lock().await;
    init();
    let mut config = test_config();
    config.limits.request_body_seconds = 2;
    let server = TestServer::start(config).await;

    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(
        b"PUT /api/rooms/any/layout HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 40\r\n\r\n{\"layout\":",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        read.is_ok(),
        "the connection is closed after the answer: {answer}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("limits.request_body_seconds"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );

    let mut big = TcpStream::connect(server.addr).await.unwrap();
    big.write_all(
        b"PUT /api/rooms/any/layout HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100000\r\n\r\n{",
    )
    .await
    .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), big.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}
