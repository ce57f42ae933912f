//! The canvas: the layout in force (switching, reloading, pinning) and the
//! relayout that applies it. What goes where is decided by the pure
//! [`plan_layout`]; [`RoomActor::relayout`] hands that plan to [`RoomMedia`]
//! and tells each participant whose tile changed what to send.
//!
//! [`RoomMedia`]: crate::media::RoomMedia

use crate::ids::ParticipantId;
use std::sync::Arc;

use tracing::info;

use super::refusal::Refusal;
use super::{Participant, RoomActor};
use crate::layout::file::LayoutFile;
use crate::protocol::{Role, ServerMessage};
use crate::room::layout_plan::{plan_layout, LayoutPlan, ScreenPlan, Seat, Stage};

impl RoomActor {
    /// Switches the room to another layout, if `by` may.
    pub(super) fn set_layout(
        &mut self,
        name: String,
        layout: Arc<LayoutFile>,
        by: Option<&ParticipantId>,
    ) -> Result<(), Refusal> {
        self.authorize(by, "switch the layout").map(|()| {
            info!(layout = %name, "layout switched");
            self.note(|at_ms| crate::recording::Event::Layout {
                at_ms,
                name: name.clone(),
            });
            self.layout = layout;
            self.layout_name = name;
            self.relayout();
            self.broadcast_layout();
        })
    }

    /// Pins a participant (or unpins with None), if `by` may.
    pub(super) fn pin(
        &mut self,
        participant: Option<ParticipantId>,
        by: Option<&ParticipantId>,
    ) -> Result<(), Refusal> {
        self.authorize(by, "pin a participant")
            .and_then(|()| match &participant {
                Some(p) if !self.participants.contains_key(p) => {
                    let refusal = Refusal::NoParticipant {
                        room: self.room.clone(),
                        participant: p.clone(),
                    };
                    Err(self.tell(by, refusal))
                }
                _ => Ok(()),
            })
            .map(|()| {
                self.pinned = participant;
                self.relayout();
                self.broadcast_layout();
            })
    }

    /// A layout file changed: the room takes the new version if it uses it.
    pub(super) fn layout_reloaded(&mut self, name: String, layout: Arc<LayoutFile>) {
        if name == self.layout_name {
            info!(layout = %name, "layout file reloaded");
            self.layout = layout;
            self.relayout();
        }
    }

    /// Applies the layout to every participant with media, in join order
    /// (a shared screen right after its owner's camera), draws the tile
    /// decorations, and tells each participant whose tile changed what to send.
    pub(super) fn relayout(&mut self) {
        let plan = self.layout_plan();
        self.apply_layout(&plan);
    }

    /// What the layout makes of the room as it is now.
    fn layout_plan(&self) -> LayoutPlan {
        let seats: Vec<Seat<'_>> = self
            .participants
            .iter()
            .map(|(id, p)| seat(id, p))
            .collect();
        let stage = Stage {
            layout: &self.layout,
            canvas: self.media.canvas(),
            framerate: self.media.framerate(),
            pinned: self.pinned.as_deref(),
            speaker: self.floor.speaker().map(ParticipantId::as_str),
        };
        plan_layout(&seats, &stage)
    }

    /// Hands `plan` to the room's media, participant by participant in
    /// join order: its screen hidden if it has none on the canvas, then its
    /// camera placed (and told its new tile's size) or hidden, then its
    /// screen placed or hidden. Sending may remove a participant that
    /// cannot keep up, so each step looks it up again and skips it if gone,
    /// decorations included.
    fn apply_layout(&mut self, plan: &LayoutPlan) {
        if let Some(rgb) = plan.background {
            self.media.set_background(rgb);
        }
        let mut decor = Vec::new();
        for seat in &plan.seats {
            let Some(id) = self
                .participants
                .get_key_value(seat.participant.as_str())
                .map(|(id, _)| id.clone())
            else {
                continue;
            };
            let Some(pm) = self
                .participants
                .get_mut(&id)
                .and_then(|p| p.media.as_mut())
            else {
                continue;
            };
            if seat.screen == ScreenPlan::Off {
                self.media.hide_screen(pm);
            }
            match &seat.camera {
                None => self.media.hide_tile(pm),
                Some(camera) => {
                    let spot = camera.spot;
                    let changed = pm.tile() != Some(spot.rect);
                    self.media.place_tile(pm, spot.rect, spot.z, spot.fit);
                    self.media.set_label(pm, plan.label);
                    decor.push(camera.decor);
                    if changed {
                        let hint = camera.hint;
                        self.send(
                            &id,
                            ServerMessage::Tile {
                                width: hint.width,
                                height: hint.height,
                                framerate: hint.framerate,
                                max_bitrate: hint.max_bitrate,
                            },
                        );
                    }
                }
            }
            if seat.screen == ScreenPlan::Off {
                continue;
            }
            let Some(pm) = self
                .participants
                .get_mut(&id)
                .and_then(|p| p.media.as_mut())
            else {
                continue;
            };
            match seat.screen {
                ScreenPlan::Shown { spot, decor: d } => {
                    self.media.place_screen(pm, spot.rect, spot.z, spot.fit);
                    decor.push(d);
                }
                ScreenPlan::Hidden | ScreenPlan::Off => self.media.hide_screen(pm),
            }
        }
        self.media
            .set_decorations(&crate::layout::decor::decorate(&decor, &plan.decor_style));
    }

    /// Sends the layout message to everyone.
    pub(super) fn broadcast_layout(&mut self) {
        let ids: Vec<_> = self.participants.keys().cloned().collect();
        for id in ids {
            let layout = self.layout_message();
            self.send(&id, layout);
        }
    }

    /// The layout in force, the pin and the layouts to choose from.
    pub(super) fn layout_message(&self) -> ServerMessage {
        ServerMessage::Layout {
            name: self.layout_name.clone(),
            pinned: self.pinned.clone(),
            available: self.registry.layouts().library().names(),
        }
    }
}

/// A participant as the layout plan sees it.
fn seat<'a>(id: &'a str, p: &Participant) -> Seat<'a> {
    Seat {
        id,
        seq: p.seq,
        media: p.media.is_some(),
        teacher: p.role == Role::Teacher,
        muted: p.muted || p.silenced,
        hand: p.hand.is_some(),
        screen: p.sharing && p.screen_started,
    }
}
