//! Signaling: the JSON wire protocol and the per-socket session that turns
//! WebSocket frames into room commands and room events back into frames.

pub mod limits;
pub mod protocol;
pub mod session;
