//! Signaling: the per-socket session that turns WebSocket frames (the wire
//! protocol, [`crate::protocol`]) into room commands and room events back
//! into frames, within the per-socket limits.

pub mod limits;
pub mod session;
