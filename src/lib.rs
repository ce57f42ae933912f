//! Tessera: a WebRTC MCU. Every participant sends one stream up and receives
//! one stream down: the room's composited canvas and its mix-minus audio.
//!
//! # Layout
//! The layers read straight down: a module uses only those below it
//! (`tests/layers.rs` checks it). `docs/architecture.md` tells how the
//! pieces work together; each module's `//!` header says what it owns.
//!
//! - [`server`]: `run(listener, config, shutdown)`: wires everything below.
//! - [`http`]: warp routes: the web client, `/ws`, the admin API,
//!   recordings, `/metrics`, `/healthz`, `/readyz`, TLS, and the accept
//!   loop that limits connections and their deadlines.
//! - [`signaling`]: one session per WebSocket: its decisions (sans-IO,
//!   unit-tested) apart from the socket loop that only moves frames.
//! - [`sip`]: phone callers: SIP ingress translating calls into joins
//!   of rooms, whose actors build the callers' plain-RTP legs.
//! - [`cluster`]: several nodes sharing Redis as their directory: node
//!   entries, room leases, placement, routing joins, draining.
//! - [`room`]: one actor task per room owning its pipeline, split by
//!   concern; relayout, tier placement and the peer-to-peer/MCU decision
//!   as pure functions; the registry.
//! - [`protocol`]: the JSON wire messages, used by sessions and rooms.
//! - [`metrics`]: the `/metrics` registry, rooms' shares of it, process figures.
//! - [`media`]: GStreamer: canvas, mixes, family encoders, the recorder's
//!   bin, and each participant's wing (ingest, egress, tile, talk switch,
//!   transport).
//! - [`auth`]: join tokens, start-up rules for secrets, removed tokens,
//!   TURN credentials, the candidates clients learn.
//! - [`recording`]: recordings on disk: store, manifests, recovery, export.
//!   (The recorder's GStreamer bin is `media::recorder`; a room's recording
//!   decisions are in `room`'s actor.)
//! - [`config`]: typed configuration with file/variable and field errors.
//! - [`layout`]: layout files, tile geometry as pure functions, hot reload.
//! - [`logging`]: GStreamer's log bridged into `tracing`; colour rules.
//! - [`ids`]: the shared words: `RoomId`, `ParticipantId`, `Role`,
//!   `CodecFamily`. Imports nothing of ours.

pub mod auth;
pub mod cluster;
pub mod config;
pub mod http;
pub mod ids;
pub mod layout;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod protocol;
pub mod recording;
pub mod room;
pub mod server;
pub mod signaling;
pub mod sip;
