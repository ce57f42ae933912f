//! The server: GStreamer set-up, template validation, the room registry and
//! the HTTP listener. `run(listener, config, shutdown)` serves until
//! `shutdown` resolves, then closes every room.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use gstreamer as gst;
use tokio::net::TcpListener;

use crate::cluster::Cluster;
use crate::config::{Config, P2pPolicy};
use crate::ids::Tier;
use crate::layout::Size;
use crate::media::ice_agent::IcePolicy;
use crate::media::{LowTier, MediaSettings, Templates};
use crate::room::downlink::DownlinkPolicy;
use crate::room::mode::ModePolicy;
use crate::room::Registry;

/// Initialises GStreamer and checks the elements the server needs.
pub fn init_gstreamer() -> anyhow::Result<()> {
    gst::init().context("initialising GStreamer")?;
    let missing: Vec<String> = crate::media::elements::missing_here()
        .into_iter()
        .map(|(name, pkg)| format!("{name} (Debian package {pkg})"))
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "missing GStreamer elements: {}; run scripts/setup.sh",
            missing.join(", ")
        );
    }
    crate::media::elements::warm_up_text()
        .context("drawing text once at start-up (fonts: Debian package fonts-dejavu-core)")?;
    Ok(())
}

/// A running server, for in-process use (tests, embedding).
pub struct Server {
    registry: Registry,
    addr: SocketAddr,
    cluster: Option<Cluster>,
    sip_addr: Option<SocketAddr>,
}

impl Server {
    /// Where SIP is received, when `sip.listen` is set.
    pub fn sip_addr(&self) -> Option<SocketAddr> {
        self.sip_addr
    }

    /// Address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The rooms.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The cluster this node is part of, if any.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }
}

/// Builds the media settings from config, validating the encoder templates.
pub fn media_settings(config: &Config) -> anyhow::Result<MediaSettings> {
    let m = &config.media;
    crate::media::ice_agent::check_addresses(&config.ice.addresses)?;
    let templates = Templates::load(&m.pipelines_dir)?;
    tracing::info!(templates = %templates.origin(), "encoder templates validated");
    Ok(MediaSettings {
        canvas: Size {
            width: m.canvas_width,
            height: m.canvas_height,
        },
        framerate: m.framerate,
        jitter_buffer: Duration::from_millis(u64::from(m.jitter_buffer_ms)),
        keyframe_min_interval: Duration::from_millis(m.keyframe_min_interval_ms),
        ice: IcePolicy {
            ports: (m.rtp_port_max != 0).then_some((m.rtp_port_min, m.rtp_port_max)),
            addresses: config.ice.addresses.clone(),
            tcp: config.ice.tcp,
        },
        templates: Arc::new(templates),
        max_input: Size {
            width: config.limits.max_video_width,
            height: config.limits.max_video_height,
        },
        low_tier: {
            let (width, height) = config.downlink.low_size((m.canvas_width, m.canvas_height));
            LowTier {
                size: Size { width, height },
                framerate: config.downlink.low_framerate,
                keyframe_min_interval: Duration::from_millis(
                    config.downlink.low_keyframe_min_interval_ms,
                ),
            }
        },
    })
}

/// Loads the layouts, checking the default one, or says which setting to fix.
pub fn layout_store(config: &Config) -> anyhow::Result<crate::layout::library::LayoutStore> {
    default_layout(config)?;
    let library = crate::layout::library::Library::load(&config.layouts.dir)?;
    Ok(crate::layout::library::LayoutStore::new(
        library,
        config.layouts.dir.clone(),
        config.layouts.default.clone(),
    )
    .with_speaker_hold(Duration::from_millis(config.layouts.speaker_hold_ms)))
}

/// Loads the layouts and picks the default one, or says which setting to fix.
pub fn default_layout(
    config: &Config,
) -> anyhow::Result<std::sync::Arc<crate::layout::file::LayoutFile>> {
    let dir = &config.layouts.dir;
    let library = crate::layout::library::Library::load(dir)
        .with_context(|| format!("reading layouts from {} (layouts.dir)", dir.display()))?;
    for (name, error) in library.errors() {
        tracing::warn!(layout = %name, "layout file not loaded: {error}");
    }
    let name = &config.layouts.default;
    library.get(name).ok_or_else(|| {
        let why = library
            .errors()
            .get(name)
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        anyhow::anyhow!(
            "layouts.default = \"{name}\": no usable layout of that name{why}; available: {}",
            library.names().join(", ")
        )
    })
}

/// Starts serving on `listener` in the background; returns a handle and a
/// future that completes when the server has stopped after `shutdown`.
pub async fn start(
    listener: TcpListener,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(Server, impl Future<Output = ()>)> {
    init_gstreamer()?;
    let settings = media_settings(config)?;
    let layouts = layout_store(config)?;
    let addr = listener
        .local_addr()
        .context("reading the listen address")?;
    let auth = crate::auth::startup::check(config, addr.ip())?;
    tracing::info!(mode = ?auth.mode(), "joins checked");
    let policy = crate::auth::Policy {
        auth,
        bans: Default::default(),
        limits: config.limits.clone(),
        ice: config.ice.clone(),
    };
    let recordings = crate::recording::RecordingSettings::from_config(&config.recording);
    let to_export = crate::recording::recover::recover(&recordings);
    if !to_export.is_empty() {
        let store = recordings.store.clone();
        tokio::task::spawn_blocking(move || {
            for (dir, mut manifest) in to_export {
                crate::recording::export_and_save(&store, &dir, &mut manifest);
            }
        });
    }
    let registry = Registry::new(settings, config.media.preferred_codec, layouts)
        .with_recordings(recordings)
        .with_policy(policy)
        .with_allowed_origins(config.server.allowed_origins.clone())
        .with_downlink(config.downlink.adapt.then(|| DownlinkPolicy {
            floor: if config.downlink.audio_only {
                Tier::AudioOnly
            } else {
                Tier::Low
            },
            ..Default::default()
        }))
        .with_mode_policy(ModePolicy {
            p2p: config.rooms.p2p == P2pPolicy::Auto,
            hold: config.rooms.p2p_hold(),
        });
    let cluster = join_cluster(config, addr, &registry)?;
    let sip = match config.sip.listen {
        Some(_) => Some(
            crate::sip::SipServer::start(
                &config.sip,
                config.ice.public_ip,
                (config.media.rtp_port_max != 0)
                    .then_some((config.media.rtp_port_min, config.media.rtp_port_max)),
                registry.clone(),
                registry.metrics().clone(),
            )
            .await
            .context("starting SIP (sip.listen)")?,
        ),
        None => None,
    };
    let sip_addr = sip.as_ref().map(|s| s.local_addr());
    let admin = crate::http::api::AdminAuth::new(&config.admin.key, addr.ip().is_loopback());
    let routes = crate::http::routes(registry.clone(), admin, cluster.clone());
    let watch = {
        let registry = registry.clone();
        crate::layout::watch::watch(registry.layouts().clone(), move |name, layout| {
            registry.layout_reloaded(name, layout)
        })
    };
    let closing = registry.clone();
    let leaving = cluster.clone();
    let stopping = async move {
        shutdown.await;
        if let Some(cluster) = leaving {
            let within = cluster.drain_within();
            if !within.is_zero() {
                tokio::select! {
                    () = cluster.drain(within) => {}
                    () = second_signal() => {
                        tracing::warn!("a second signal: stopping without finishing the drain");
                    }
                }
            }
            cluster.leave().await;
        }
        if let Some(sip) = sip {
            // Callers hear BYE and leave before their rooms close.
            tracing::info!("shutting down: ending phone calls");
            sip.shutdown().await;
        }
        tracing::info!("shutting down: closing rooms");
        closing.close_all();
    };
    let tls = if config.server.tls() {
        Some(crate::http::tls::load(
            &config.server.tls_cert,
            &config.server.tls_key,
        )?)
    } else {
        None
    };
    let served = crate::http::accept::serve(
        listener,
        tls,
        crate::http::accept::AcceptSettings::from_limits(&config.limits),
        registry.metrics().clone(),
        warp::service(routes),
        stopping,
    );
    let waiting = registry.clone();
    let done = async move {
        served.await;
        drop(watch);
        // Give room actors a moment to close recordings and tear their
        // pipelines down.
        for _ in 0..150 {
            if waiting.room_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    Ok((
        Server {
            registry,
            addr,
            cluster,
            sip_addr,
        },
        done,
    ))
}

/// Joins the cluster when `cluster.redis_url` is set.
fn join_cluster(
    config: &Config,
    addr: SocketAddr,
    registry: &Registry,
) -> anyhow::Result<Option<Cluster>> {
    let c = &config.cluster;
    if !c.enabled() {
        return Ok(None);
    }
    let url = if !config.server.public_url.is_empty() {
        config.server.public_url.clone()
    } else if addr.ip().is_unspecified() {
        anyhow::bail!(
            "cluster.redis_url is set and the server listens on {addr}: set server.public_url (TESSERA_SERVER__PUBLIC_URL) to the address clients reach this node at, so other nodes can send them here"
        );
    } else {
        let scheme = if config.server.tls() { "https" } else { "http" };
        format!("{scheme}://{addr}")
    };
    let id = if c.node_id.is_empty() {
        crate::cluster::default_node_id(addr.port())
    } else {
        c.node_id.clone()
    };
    let cluster = Cluster::start(c, id, url, registry.clone())
        .context("joining the cluster (cluster.redis_url)")?;
    tracing::info!(node = %cluster.id(), url = %cluster.url(), "in a cluster");
    Ok(Some(cluster))
}

/// A second SIGINT or SIGTERM, to stop without finishing a drain.
async fn second_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

/// Serves until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (server, done) = start(listener, &config, shutdown).await?;
    let scheme = if config.server.tls() { "wss" } else { "ws" };
    tracing::info!(addr = %server.addr(), "listening: signaling at {scheme}://{}/ws", server.addr());
    done.await;
    Ok(())
}
