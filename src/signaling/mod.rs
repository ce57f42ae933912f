//! Signaling: the per-socket session that turns WebSocket frames (the wire
//! protocol, [`crate::protocol`]) into room commands and room events back
//! into frames, within the per-socket limits.
//!
//! # Layout
//! - [`handler`]: the session's decisions, without a socket: inputs in,
//!   messages, pings and closes out; rooms behind a small seam.
//! - [`session`]: the WebSocket loop that only moves frames and runs the timers.
//! - [`limits`]: the rate bucket and the per-address socket cap.

pub(crate) mod handler;
pub mod limits;
pub mod session;
