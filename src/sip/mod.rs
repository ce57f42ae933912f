//! Phone callers: SIP ingress (docs/phone.md). A caller's INVITE becomes
//! an ordinary join of the room its dialled number maps to, and its plain
//! RTP leg a participant transport built by the room's actor; this module
//! only translates SIP to room commands and back, as a signaling session
//! does for a WebSocket.
//!
//! - `mod.rs`: [`SipServer`]: the SIP endpoint (UDP and TCP, by
//!   `rsipstack`), the gate every message passes (per-source rate,
//!   allowed sources), the loop of incoming requests, shutdown.
//! - `call.rs`: one call, from INVITE to BYE; `answered.rs`: our answer,
//!   the dialog's states, our BYE.
//! - `pin.rs`: the lobby: a spoken prompt and a room's PIN typed.
//! - `sdp.rs`: the caller's offer and our answer (pure).
//! - `digest.rs`: digest authentication of the trunk (pure).
//! - `limit.rs`: per-source token buckets (pure).

mod answered;
mod call;
pub mod digest;
pub mod limit;
pub mod pin;
pub mod sdp;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::{Method, StatusCode};
use rsipstack::transaction::endpoint::TransportEventInspector;
use rsipstack::transport::tcp::TcpConnection;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportEvent, TransportLayer};
use rsipstack::EndpointBuilder;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::SipConfig;
use crate::metrics::Metrics;
use crate::room::Registry;

/// TCP connections open at once; more are closed at once.
const MAX_TCP_CONNECTIONS: usize = 256;
/// How long shutdown waits for the BYEs.
const BYE_WAIT: Duration = Duration::from_secs(2);

/// What every call needs: the settings, the rooms, the metrics.
pub(crate) struct Shared {
    config: SipConfig,
    digest: Option<digest::Digest>,
    /// The address put in SDP answers and bound for RTP.
    media_ip: IpAddr,
    /// The media port range RTP sockets come from, if any.
    ports: Option<(u16, u16)>,
    registry: Registry,
    metrics: Metrics,
    /// Calls in progress (setting up or in a room), against `max_calls`.
    calls: Arc<Semaphore>,
    /// Fires on shutdown: every call sends BYE and leaves.
    stop: CancellationToken,
    /// The calls' tasks, for shutdown to wait on.
    tasks: tokio_util::task::TaskTracker,
}

/// The SIP endpoint, running. Dropping it does not stop it: call
/// [`SipServer::shutdown`].
pub struct SipServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl SipServer {
    /// Starts SIP on `config.listen` (UDP and TCP, same port): INVITEs to
    /// numbers of `config.rooms` join those rooms of `registry`.
    /// `public_ip` is `ice.public_ip`, for the media address; `ports` the
    /// media port range.
    pub async fn start(
        config: &SipConfig,
        public_ip: Option<IpAddr>,
        ports: Option<(u16, u16)>,
        registry: Registry,
        metrics: Metrics,
    ) -> anyhow::Result<SipServer> {
        let listen = config.listen.context("sip.listen is not set")?;
        let media_ip = config.media_address(public_ip).with_context(|| {
            format!("sip.listen is {listen}, a wildcard: set sip.media_address (or ice.public_ip) to the address callers send RTP to")
        })?;
        if config.lobby.is_some() {
            for prompt in [
                "enter-pin.wav",
                "wrong-pin.wav",
                "welcome.wav",
                "goodbye.wav",
            ] {
                let path = config.prompts_dir.join(prompt);
                anyhow::ensure!(
                    path.is_file(),
                    "sip.lobby is set but its prompt {} is missing: set sip.prompts_dir to the directory with the prompts (assets/prompts in the source tree)",
                    path.display()
                );
            }
        }
        let cancel = CancellationToken::new();
        let transport = TransportLayer::new(cancel.clone());
        let udp = UdpConnection::create_connection(listen, None, Some(cancel.child_token()))
            .await
            .with_context(|| format!("sip.listen: binding UDP {listen}"))?;
        let addr = udp
            .get_addr()
            .get_socketaddr()
            .context("the SIP UDP address")?;
        transport.add_transport(udp.into());
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("sip.listen: binding TCP {addr}"))?;

        let shared = Arc::new(Shared {
            config: config.clone(),
            digest: match (&config.username, &config.password) {
                (Some(u), Some(p)) => Some(digest::Digest::new(&config.realm, u, p)),
                _ => None,
            },
            media_ip,
            ports,
            registry,
            metrics: metrics.clone(),
            calls: Arc::new(Semaphore::new(config.max_calls)),
            stop: CancellationToken::new(),
            tasks: tokio_util::task::TaskTracker::new(),
        });
        let gate = Gate {
            limits: Mutex::new(limit::SourceLimits::new(config.messages_per_second)),
            shared: shared.clone(),
        };
        let endpoint = EndpointBuilder::new()
            .with_user_agent(concat!("Tessera/", env!("CARGO_PKG_VERSION")))
            .with_cancel_token(cancel.clone())
            .with_transport_layer(transport)
            .with_transport_inspector(Box::new(gate))
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .context("the SIP endpoint's incoming requests")?;
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let contact: rsipstack::sip::Uri = format!("sip:tessera@{addr}")
            .as_str()
            .try_into()
            .context("our SIP contact")?;

        let serving = endpoint.inner.clone();
        tokio::spawn(async move { serving.serve().await });
        tokio::spawn(accept_tcp(
            tcp,
            endpoint.inner.clone(),
            addr,
            cancel.clone(),
        ));
        tokio::spawn(requests(
            incoming,
            dialogs,
            contact,
            shared.clone(),
            cancel.clone(),
        ));
        info!(%addr, media = %media_ip, "SIP listening (UDP and TCP)");
        Ok(SipServer {
            addr,
            shared,
            cancel,
        })
    }

    /// Where SIP is received (the port chosen when `listen` had 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every call says BYE and leaves its room, then the endpoint stops.
    pub async fn shutdown(self) {
        self.shared.stop.cancel();
        self.shared.tasks.close();
        let _ = tokio::time::timeout(BYE_WAIT * 2, self.shared.tasks.wait()).await;
        self.cancel.cancel();
    }
}

/// Lets a message through only within its source's rate, and, when only
/// listed sources may call and strangers get no answer, only from those.
struct Gate {
    limits: Mutex<limit::SourceLimits>,
    shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl TransportEventInspector for Gate {
    async fn handle(&self, event: TransportEvent) -> Option<TransportEvent> {
        let TransportEvent::Incoming(_, _, from) = &event else {
            return Some(event);
        };
        let Ok(source) = from.get_socketaddr().map(|a| a.ip()) else {
            return Some(event);
        };
        // With digest on, anyone may answer a challenge; otherwise a
        // source that may not call is dropped when strangers get silence.
        let allowed = self.shared.may_call(source)
            || self.shared.digest.is_some()
            || self.shared.config.answer_unknown;
        let within = allowed
            && self
                .limits
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .allow(source, Instant::now());
        if within {
            Some(event)
        } else {
            self.shared.metrics.sip_dropped();
            None
        }
    }
}

impl Shared {
    /// Whether `source` may call without digest authentication: it is
    /// listed, or nothing restricts callers at all.
    fn may_call(&self, source: IpAddr) -> bool {
        self.config.allowed_sources.contains(&source)
            || (self.config.allowed_sources.is_empty() && self.digest.is_none())
    }
}

/// Accepts SIP over TCP, at most [`MAX_TCP_CONNECTIONS`] at once.
async fn accept_tcp(
    listener: tokio::net::TcpListener,
    endpoint: rsipstack::transaction::endpoint::EndpointInnerRef,
    local: SocketAddr,
    cancel: CancellationToken,
) {
    let open = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    let local = SipAddr {
        r#type: Some(rsipstack::sip::Transport::Tcp),
        addr: local.into(),
    };
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, remote)) = accepted else {
            continue;
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            warn!(%remote, "SIP over TCP: {MAX_TCP_CONNECTIONS} connections open; closing this one");
            continue;
        };
        let token = cancel.child_token();
        match TcpConnection::from_stream(stream, local.clone(), Some(token.clone())) {
            Ok(conn) => {
                endpoint
                    .transport_layer
                    .add_connection(SipConnection::Tcp(conn.clone()));
                tokio::spawn(async move {
                    let _permit = permit;
                    token.cancelled().await;
                });
            }
            Err(e) => warn!(%remote, "SIP over TCP: {e}"),
        }
    }
}

/// Takes each incoming request: an INVITE starts a call, a request within
/// a call's dialog goes to it, anything else is answered here.
async fn requests(
    mut incoming: rsipstack::transaction::TransactionReceiver,
    dialogs: Arc<DialogLayer>,
    contact: rsipstack::sip::Uri,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    loop {
        let mut tx = tokio::select! {
            _ = cancel.cancelled() => return,
            tx = incoming.recv() => match tx {
                Some(tx) => tx,
                None => return,
            },
        };
        if let Some(mut dialog) = dialogs.match_dialog(&tx) {
            tokio::spawn(async move {
                let _ = dialog.handle(&mut tx).await;
            });
            continue;
        }
        match tx.original.method {
            Method::Invite if shared.stop.is_cancelled() => {
                tokio::spawn(async move {
                    let _ = tx.reply(StatusCode::ServiceUnavailable).await;
                });
            }
            Method::Invite => {
                let (dialogs, contact, shared2) =
                    (dialogs.clone(), contact.clone(), shared.clone());
                shared
                    .tasks
                    .spawn(async move { call::run(tx, dialogs, contact, shared2).await });
            }
            Method::Options => {
                tokio::spawn(async move {
                    let _ = tx.reply(StatusCode::OK).await;
                });
            }
            Method::Ack => {}
            _ => {
                tokio::spawn(async move {
                    let _ = tx.reply(StatusCode::CallTransactionDoesNotExist).await;
                });
            }
        }
    }
}
