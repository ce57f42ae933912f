//! Members: a participant joining (once
//! [`join_refusal`](RoomActor::join_refusal) lets it), its offer building
//! its media, its mute, screen-share and ICE messages, its leaving or
//! removal, the room closing on everyone, and the participant list every
//! member is sent.

use crate::ids::ParticipantId;
use tokio::sync::mpsc;
use tracing::{error, info, info_span};

use super::{Participant, RoomActor};
use crate::auth::Identity;
use crate::media::codec::{check_offer_shape, choose_codecs, parse_sdp, CodecError, MediaChoice};
use crate::media::{CodecFamily, ParticipantMedia};
use crate::protocol::{
    ErrorCode, IceTransportPolicy, ParticipantInfo, ServerMessage, TransportKind, PROTOCOL_VERSION,
};
use crate::room::talk::TalkDetector;
use crate::room::LeaveReason;

impl RoomActor {
    /// A client joins: refused with a reason, or admitted and greeted.
    pub(super) fn on_join(
        &mut self,
        id: ParticipantId,
        who: Identity,
        codec: Option<CodecFamily>,
        relay: bool,
        p2p: bool,
        outbox: mpsc::Sender<ServerMessage>,
    ) {
        let relay = relay || self.registry.policy().ice.relay_only;
        let refusal = self.join_refusal(&who).or_else(|| {
            (relay && self.registry.policy().ice.turn.is_empty()).then(|| {
                (
                    ErrorCode::BadMessage,
                    "this join asks for media through a TURN relay only (relay), but the server has no TURN server; join without it, or have the operator set ice.turn".to_string(),
                )
            })
        });
        if let Some((code, message)) = refusal {
            info!(participant = %id, "join refused: {message}");
            let _ = outbox.try_send(ServerMessage::Error { code, message });
            // Tell the session it is not in the room after all.
            let _ = outbox.try_send(ServerMessage::Left {
                reason: "the join was refused".into(),
            });
            return;
        }
        self.admit(&id, who, codec, p2p, outbox);
        self.greet(&id, relay);
        self.note_joined(&id);
    }

    /// Adds the participant, last in join order, without media yet.
    fn admit(
        &mut self,
        id: &ParticipantId,
        who: Identity,
        codec: Option<CodecFamily>,
        p2p: bool,
        outbox: mpsc::Sender<ServerMessage>,
    ) {
        let Identity {
            name,
            role,
            token,
            p2p: token_p2p,
        } = who;
        info!(participant = %id, "joined");
        self.next_seq += 1;
        self.participants.insert(
            id.clone(),
            Participant {
                name,
                role,
                wanted: codec,
                outbox,
                media: None,
                seq: self.next_seq,
                talk: TalkDetector::default(),
                muted: false,
                silenced: false,
                token,
                sharing: false,
                screen_started: false,
                stats: Default::default(),
                downlink: super::super::downlink::Downlink::new(
                    self.registry.downlink_policy().unwrap_or_default(),
                ),
                audio_loss: Default::default(),
                direct: p2p,
                no_p2p: !token_p2p,
                parked: false,
                hand: None,
                chat_rate: Default::default(),
                phone: None,
            },
        );
    }

    /// Tells the newcomer the room (`joined`, the layout, a running
    /// recording) and the others the new participant list.
    fn greet(&mut self, id: &ParticipantId, relay: bool) {
        let joined = ServerMessage::Joined {
            version: PROTOCOL_VERSION,
            room: self.room.clone(),
            participant_id: id.clone(),
            participants: self.participant_list(),
            ice_servers: crate::auth::turn::ice_servers(
                &self.registry.policy().ice,
                id,
                crate::auth::bans::unix_now(),
            ),
            ice_transport_policy: if relay {
                IceTransportPolicy::Relay
            } else {
                IceTransportPolicy::All
            },
            locked: self.locked,
        };
        self.send(id, joined);
        let layout = self.layout_message();
        self.send(id, layout);
        self.greet_chat(id);
        self.broadcast_participants(Some(id));
        if let Some(r) = self.recording_id() {
            self.send(
                id,
                ServerMessage::Recording {
                    active: true,
                    id: Some(r),
                },
            );
        }
    }

    /// Puts the join on the running recording's timeline.
    fn note_joined(&mut self, id: &ParticipantId) {
        // Greeting a newcomer whose outbox is already full removes it.
        let Some((name, role)) = self.participants.get(id).map(|p| (p.name.clone(), p.role)) else {
            return;
        };
        self.note(|at_ms| crate::recording::Event::Joined {
            at_ms,
            participant: id.to_string(),
            name,
            role: super::record::role_name(role),
        });
    }

    /// The client's SDP offer: checked, its codecs chosen, its media built
    /// and negotiated, and the canvas re-flowed. A refused offer is answered
    /// with an error and changes nothing.
    pub(super) fn on_offer(&mut self, id: &ParticipantId, sdp: &str, screen: Option<&str>) {
        let span = info_span!("offer", participant = %id);
        let _enter = span.enter();
        let Some(p) = self.participants.get(id) else {
            return;
        };
        if p.media.is_some() {
            self.reply_error(
                id,
                ErrorCode::OutOfOrder,
                "this participant already negotiated; renegotiation is not supported, leave and join again".into(),
            );
            return;
        }
        let (wanted, name) = (p.wanted, p.name.clone());
        let accepted = read_offer(sdp).and_then(|offer| {
            let choice = pick_codecs(&offer, wanted, self.preferred, screen)?;
            Ok((offer, choice))
        });
        let (offer, choice) = match accepted {
            Ok(v) => v,
            Err((code, message)) => return self.reply_error(id, code, message),
        };
        let Some(pm) = self.build_media(id, &name, &choice) else {
            return;
        };
        info!(family = %choice.video.family, video_pt = choice.video.payload, audio_pt = choice.audio_payload, "offer accepted");
        pm.negotiate(offer, &self.events_tx);
        if let Some(p) = self.participants.get_mut(id) {
            p.media = Some(pm);
        }
        self.media_added(id);
    }

    /// New media was added: it starts in the high tier, the canvas
    /// re-flows, everyone learns the list, and an auto-recorded room
    /// starts recording.
    pub(super) fn media_added(&mut self, id: &ParticipantId) {
        if let Some(p) = self.participants.get_mut(id) {
            // New media starts in the high tier, and so does its placement.
            p.downlink = super::super::downlink::Downlink::new(
                self.registry.downlink_policy().unwrap_or_default(),
            );
            p.audio_loss = Default::default();
        }
        self.count_participants();
        self.count_tiers();
        self.relayout();
        self.broadcast_participants(None);
        self.auto_record();
    }

    /// Builds the participant's branch of the room's pipeline; tells it
    /// when the server could not.
    fn build_media(
        &mut self,
        id: &ParticipantId,
        name: &str,
        choice: &MediaChoice,
    ) -> Option<ParticipantMedia> {
        match self
            .media
            .add_participant(id, name, choice, &self.events_tx)
        {
            Ok(pm) => Some(pm),
            Err(e) => {
                error!("building participant media: {e:#}");
                self.reply_error(
                    id,
                    ErrorCode::Internal,
                    format!("the server could not set up your media: {e}"),
                );
                None
            }
        }
    }

    /// The first media in a room listed in `recording.auto_record` starts
    /// its recording.
    fn auto_record(&mut self) {
        if !self.auto_recorded && self.registry.recordings().auto_records(&self.room) {
            // Once per room: a teacher who stops it is not overruled.
            self.auto_recorded = true;
            let _ = self.start_recording(None);
        }
    }

    /// The client's microphone went off or on.
    pub(super) fn on_mute(&mut self, id: &ParticipantId, muted: bool) {
        if let Some(p) = self.participants.get_mut(id) {
            if p.muted != muted {
                p.muted = muted;
                self.relayout();
                self.broadcast_participants(None);
            }
        }
    }

    /// The client started or stopped sharing its screen.
    pub(super) fn on_screen(&mut self, id: &ParticipantId, sharing: bool) {
        let Some(p) = self.participants.get_mut(id) else {
            return;
        };
        let refusal = match &p.media {
            None => Some("send the offer before sharing a screen"),
            Some(m) if sharing && !m.can_share() => Some(
                "no screen m-line was negotiated: offer a second video m-line and name its mid in the offer's `screen` field",
            ),
            Some(_) => None,
        };
        if let Some(why) = refusal {
            return self.reply_error(id, ErrorCode::OutOfOrder, why.into());
        }
        if p.sharing == sharing {
            return;
        }
        p.sharing = sharing;
        info!(participant = %id, sharing, "screen share");
        if let Some(pm) = p.media.as_ref().filter(|_| sharing) {
            self.media.request_screen_keyframe(pm);
        }
        self.relayout();
        self.broadcast_participants(None);
    }

    /// A remote ICE candidate, which needs the offer first.
    pub(super) fn on_ice(&mut self, id: &ParticipantId, mline: u32, candidate: &str) {
        if let Some(m) = self.participants.get(id).and_then(|p| p.media.as_ref()) {
            m.add_ice_candidate(mline, candidate);
        } else {
            self.reply_error(
                id,
                ErrorCode::OutOfOrder,
                "ice candidate before offer: send the offer first".into(),
            );
        }
    }

    /// Removes a participant and re-flows the canvas.
    pub(super) fn remove(&mut self, id: &ParticipantId, reason: LeaveReason) {
        let Some(p) = self.participants.remove(id) else {
            return;
        };
        info!(participant = %id, reason = %reason.describe(), "left");
        self.note(|at_ms| crate::recording::Event::Left {
            at_ms,
            participant: id.to_string(),
        });
        if self.pinned.as_deref() == Some(id) {
            self.pinned = None;
            self.broadcast_layout();
        }
        self.loudness.remove(id);
        if self.floor.remove(id) {
            self.broadcast_speaker();
        }
        if let Some(pm) = p.media {
            self.remove_media(pm);
        }
        if p.audio_loss.percent() > 0 {
            // The shared mix's FEC followed the worst listener: maybe this one.
            self.expect_shared_audio_loss();
        }
        self.metrics.participant_left(id);
        self.count_participants();
        if reason != LeaveReason::SocketClosed {
            let _ = p.outbox.try_send(ServerMessage::Left {
                reason: reason.describe(),
            });
        }
        self.relayout();
        self.broadcast_participants(None);
    }

    /// Takes a leaver's branch out of the pipeline, and the encoder it
    /// received with it when nobody else receives that one.
    fn remove_media(&mut self, pm: ParticipantMedia) {
        self.media.remove_participant(pm);
        self.count_tiers();
    }

    /// Server shutdown: stop the recording and remove everyone.
    pub(super) fn close(&mut self, why: LeaveReason) {
        self.closing = true;
        if self.recording.is_some() {
            let _ = self.stop_recording(None, &why.describe());
        }
        let ids: Vec<_> = self.participants.keys().cloned().collect();
        for id in ids {
            self.remove(&id, why.clone());
        }
    }

    /// Everyone in join order, as clients see them.
    pub(super) fn participant_list(&self) -> Vec<ParticipantInfo> {
        let places = self.hand_places();
        let mut list: Vec<_> = self.participants.iter().collect();
        list.sort_by_key(|(_, p)| p.seq);
        list.into_iter()
            .map(|(id, p)| ParticipantInfo {
                id: id.clone(),
                name: p.name.clone(),
                role: p.role,
                codec: p
                    .media
                    .as_ref()
                    .filter(|_| p.phone.is_none())
                    .map(|m| m.family()),
                muted: p.muted,
                sharing: p.sharing,
                silenced: p.silenced,
                hand: places.get(id).copied(),
                transport: if p.phone.is_some() {
                    TransportKind::Sip
                } else {
                    TransportKind::Webrtc
                },
            })
            .collect()
    }

    /// Sends the participant list to everyone but `except`.
    pub(super) fn broadcast_participants(&mut self, except: Option<&ParticipantId>) {
        let list = self.participant_list();
        let ids: Vec<_> = self
            .participants
            .keys()
            .filter(|id| Some(*id) != except)
            .cloned()
            .collect();
        for id in ids {
            self.send(
                &id,
                ServerMessage::Participants {
                    participants: list.clone(),
                },
            );
        }
    }
}

/// Parses the offer and checks its shape.
fn read_offer(sdp: &str) -> Result<gstreamer_sdp::SDPMessage, (ErrorCode, String)> {
    parse_sdp(sdp)
        .and_then(|o| check_offer_shape(&o).map(|()| o))
        .map_err(|e| {
            info!("offer refused: {e}");
            (ErrorCode::BadOffer, e.to_string())
        })
}

/// Chooses the codecs to answer `offer` with.
fn pick_codecs(
    offer: &gstreamer_sdp::SDPMessage,
    wanted: Option<CodecFamily>,
    preferred: CodecFamily,
    screen: Option<&str>,
) -> Result<MediaChoice, (ErrorCode, String)> {
    choose_codecs(offer, wanted, preferred, screen).map_err(|e| {
        let code = match e {
            CodecError::Unparsable | CodecError::MissingMedia(_) | CodecError::NoScreenMline(_) => {
                ErrorCode::BadOffer
            }
            _ => ErrorCode::UnsupportedCodec,
        };
        info!("offer refused: {e}");
        (code, e.to_string())
    })
}
