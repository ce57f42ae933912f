//! Tessera: a WebRTC MCU. Every participant sends one stream up and receives
//! one stream down: the room's composited canvas and its mix-minus audio.
//!
//! # Layout
//! - [`config`]: typed configuration with file/field errors.
//! - [`signaling`]: the JSON wire protocol and the per-socket session.
//! - [`room`]: one actor task per room owning its pipeline; the registry.
//! - [`media`]: GStreamer: canvas, mixes, family encoders, per-participant webrtcbin.
//! - [`layout`]: tile geometry as pure functions.
//! - [`http`]: warp routes.
//! - [`metrics`]: the `/metrics` registry, rooms' shares of it, process figures.
//! - [`server`]: `run(listener, config, shutdown)`.

pub mod auth;
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
