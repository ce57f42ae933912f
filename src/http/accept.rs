//! The accept loop for HTTP, WebSocket and their TLS forms: who may open a
//! connection, and how long it may take to say what it wants.
//!
//! - At accept time, a [`ConnectionGate`] counts open TCP connections per
//!   client address and in all (`limits.connections_per_ip`,
//!   `limits.max_connections`). A connection beyond either is refused at
//!   once: a `503` with `Retry-After` over plain HTTP, a plain close over
//!   TLS (no answer is possible before the handshake). Established
//!   connections, WebSockets included, carry on: a connection holds its
//!   place until its socket closes, after an upgrade too.
//! - A TLS handshake must finish within `limits.tls_handshake_seconds`,
//!   and each request head arrive whole within
//!   `limits.request_head_seconds`; a connection that misses either is
//!   closed. Without these, a client that opens sockets and sends half a
//!   request would hold them, and the server's open files, for ever.
//!
//! Each refusal and each deadline missed is counted in
//! `tessera_connections_refused_total{reason}`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use super::tls::ClientAddr;
use crate::config::LimitsConfig;
use crate::metrics::Metrics;

/// How long a refused client is asked to wait (`Retry-After`), seconds.
const RETRY_AFTER_SECONDS: u32 = 5;

/// Why a connection was refused or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address has `connections_per_ip` open already.
    PerAddress,
    /// The server has `max_connections` open already.
    Total,
    /// Its request head did not arrive in time.
    HeadTimeout,
    /// Its TLS handshake did not finish in time.
    HandshakeTimeout,
}

impl Refusal {
    /// The metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::PerAddress => "per-address",
            Refusal::Total => "total",
            Refusal::HeadTimeout => "request-head-timeout",
            Refusal::HandshakeTimeout => "tls-handshake-timeout",
        }
    }
}

/// Counts open connections per client address and in all.
#[derive(Debug)]
pub struct ConnectionGate {
    per_ip: usize,
    total: usize,
    open: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    by_ip: HashMap<IpAddr, usize>,
    all: usize,
}

/// A connection's place at the gate, given back when dropped.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<ConnectionGate>,
    ip: IpAddr,
}

impl ConnectionGate {
    pub fn new(per_ip: usize, total: usize) -> Arc<ConnectionGate> {
        Arc::new(ConnectionGate {
            per_ip,
            total,
            open: Mutex::default(),
        })
    }

    /// Lets a connection from `ip` in, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Refusal> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.all >= self.total {
            return Err(Refusal::Total);
        }
        let n = open.by_ip.entry(ip).or_default();
        if *n >= self.per_ip {
            return Err(Refusal::PerAddress);
        }
        *n += 1;
        open.all += 1;
        Ok(Permit {
            gate: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).all
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.gate.open.lock().unwrap_or_else(|e| e.into_inner());
        open.all = open.all.saturating_sub(1);
        if let Some(n) = open.by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.by_ip.remove(&self.ip);
            }
        }
    }
}

/// A connection's stream with its [`Permit`]: the place is held as long
/// as the stream lives, inside an upgraded WebSocket too.
struct Admitted<S> {
    stream: S,
    _permit: Permit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Admitted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Admitted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The routes as a service (what `warp::service` makes).
pub trait Routes:
    tower_service::Service<
        hyper::Request<Incoming>,
        Response = warp::reply::Response,
        Error = Infallible,
    > + Clone
    + Send
    + 'static
{
}

impl<S> Routes for S where
    S: tower_service::Service<
            hyper::Request<Incoming>,
            Response = warp::reply::Response,
            Error = Infallible,
        > + Clone
        + Send
        + 'static
{
}

/// The deadlines and limits of the loop, from `[limits]`.
#[derive(Debug, Clone)]
pub struct AcceptSettings {
    gate: Arc<ConnectionGate>,
    head: Duration,
    handshake: Duration,
}

impl AcceptSettings {
    pub fn from_limits(limits: &LimitsConfig) -> AcceptSettings {
        AcceptSettings {
            gate: ConnectionGate::new(limits.connections_per_ip, limits.max_connections),
            head: Duration::from_secs(limits.request_head_seconds),
            handshake: Duration::from_secs(limits.tls_handshake_seconds),
        }
    }
}

/// Serves `service` on `listener`, over TLS when `tls` is given, until
/// `shutdown` resolves.
pub async fn serve<S>(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    settings: AcceptSettings,
    metrics: Metrics,
    service: S,
    shutdown: impl Future<Output = ()>,
) where
    S: Routes,
    S::Future: Send + 'static,
{
    let acceptor = tls.map(TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let (tcp, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: let some close.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let permit = match settings.gate.admit(addr.ip()) {
            Ok(p) => p,
            Err(why) => {
                metrics.connection_refused(why.reason());
                tracing::debug!(peer = %addr, reason = why.reason(), "connection refused");
                if acceptor.is_none() {
                    tokio::spawn(refuse(tcp, why));
                }
                continue;
            }
        };
        let (acceptor, service, settings, metrics) = (
            acceptor.clone(),
            service.clone(),
            settings.clone(),
            metrics.clone(),
        );
        tokio::spawn(async move {
            let served =
                match acceptor {
                    None => {
                        let stream = Admitted {
                            stream: tcp,
                            _permit: permit,
                        };
                        serve_connection(stream, addr, service, settings.head).await
                    }
                    Some(acceptor) => {
                        let stream =
                            match tokio::time::timeout(settings.handshake, acceptor.accept(tcp))
                                .await
                            {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(peer = %addr, "TLS handshake failed: {e}");
                                    return;
                                }
                                Err(_) => {
                                    metrics.connection_refused(Refusal::HandshakeTimeout.reason());
                                    tracing::debug!(peer = %addr, "TLS handshake too slow: closed");
                                    return;
                                }
                            };
                        let stream = Admitted {
                            stream,
                            _permit: permit,
                        };
                        serve_connection(stream, addr, service, settings.head).await
                    }
                };
            if let Err(e) = served {
                if e.is_timeout() {
                    metrics.connection_refused(Refusal::HeadTimeout.reason());
                    tracing::debug!(peer = %addr, "request head too slow: closed");
                } else {
                    tracing::debug!(peer = %addr, "connection ended: {e}");
                }
            }
        });
    }
}

/// One HTTP/1.1 connection, with upgrades for the WebSocket.
async fn serve_connection<S, IO>(
    stream: IO,
    addr: SocketAddr,
    service: S,
    head: Duration,
) -> Result<(), hyper::Error>
where
    S: Routes,
    S::Future: Send + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ClientAddr(addr));
        let mut service = service.clone();
        service.call(req)
    });
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head)
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades()
        .await
}

/// Answers a connection beyond the limits with a `503` and closes it.
async fn refuse(mut tcp: TcpStream, why: Refusal) {
    let body = match why {
        Refusal::PerAddress => {
            "too many connections from this address (limits.connections_per_ip)\n"
        }
        _ => "the server has too many connections open (limits.max_connections)\n",
    };
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {RETRY_AFTER_SECONDS}\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = tcp.write_all(answer.as_bytes()).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_counts_per_address_and_in_all_and_frees_places() {
        let gate = ConnectionGate::new(2, 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).unwrap_err(), Refusal::PerAddress);
        let _b1 = gate.admit(b).unwrap();
        assert_eq!(gate.admit(b).unwrap_err(), Refusal::Total);
        assert_eq!(gate.open(), 3);
        drop(a1);
        assert_eq!(gate.open(), 2);
        let _a3 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).unwrap_err(), Refusal::Total);
    }

    #[test]
    fn every_refusal_has_a_distinct_reason() {
        let all = [
            Refusal::PerAddress,
            Refusal::Total,
            Refusal::HeadTimeout,
            Refusal::HandshakeTimeout,
        ];
        let reasons: std::collections::HashSet<_> = all.iter().map(|r| r.reason()).collect();
        assert_eq!(reasons.len(), all.len());
    }
}
