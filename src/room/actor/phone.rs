//! A phone caller's media: once the SIP side has admitted the caller with
//! an ordinary join, its RTP leg is built here and the caller takes part
//! like anyone else (tile, mix, talk, recording), audio only.

use std::net::{IpAddr, SocketAddr};

use tracing::{error, info};

use super::RoomActor;
use crate::ids::ParticipantId;
use crate::media::phone::PhoneLeg;

impl RoomActor {
    /// Builds the caller's leg; gives where its RTP is received.
    pub(super) fn on_phone(
        &mut self,
        id: &ParticipantId,
        tile: &str,
        leg: &PhoneLeg,
        local: IpAddr,
    ) -> Result<SocketAddr, String> {
        match self.participants.get(id) {
            None => return Err(format!("{id} is not in room {}", self.room)),
            Some(p) if p.media.is_some() => {
                return Err(format!("{id} already has its media"));
            }
            Some(_) => {}
        }
        let (pm, at) = self
            .media
            .add_phone(id, tile, leg, local, &self.events_tx)
            .map_err(|e| {
                error!(participant = %id, "building a phone leg: {e:#}");
                format!("the server could not set up the call's media: {e}")
            })?;
        info!(participant = %id, codec = %leg.codec, %at, "phone leg up");
        if let Some(p) = self.participants.get_mut(id) {
            p.media = Some(pm);
            p.phone = true;
        }
        self.media_added(id);
        Ok(at)
    }
}
