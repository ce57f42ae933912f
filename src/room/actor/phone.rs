//! A phone caller's media: once the SIP side has admitted the caller with
//! an ordinary join, its RTP leg is built here and the caller takes part
//! like anyone else (tile, mix, talk, recording), audio only.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

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
        socket: UdpSocket,
        timeout: Duration,
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
            .add_phone(id, tile, leg, socket, &self.events_tx)
            .map_err(|e| {
                error!(participant = %id, "building a phone leg: {e:#}");
                format!("the server could not set up the call's media: {e}")
            })?;
        info!(participant = %id, codec = %leg.codec, %at, "phone leg up");
        if let Some(p) = self.participants.get_mut(id) {
            p.media = Some(pm);
            p.phone = Some(timeout);
        }
        self.media_added(id);
        Ok(at)
    }

    /// Lets go of phone callers that sent no RTP for their timeout: a
    /// phone gone without BYE (its session then gets `left` and sends BYE).
    pub(super) fn expire_phones(&mut self) {
        let quiet: Vec<_> = self
            .participants
            .iter()
            .filter_map(|(id, p)| {
                let timeout = p.phone?;
                let quiet = p.media.as_ref()?.phone_quiet_for()?;
                (quiet > timeout).then(|| (id.clone(), timeout))
            })
            .collect();
        for (id, timeout) in quiet {
            info!(participant = %id, "no RTP from the phone for {timeout:?}: letting it go");
            self.remove(
                &id,
                crate::room::LeaveReason::MediaFailed(format!(
                    "no audio from the phone for {} s",
                    timeout.as_secs()
                )),
            );
        }
    }
}
