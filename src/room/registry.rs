//! The room registry: room id → handle of its actor.
//!
//! A join goes through the registry lock so that it cannot race with the
//! room's teardown: the actor removes its entry only while holding the same
//! lock and after checking that no command is waiting in its queue.

use crate::ids::RoomId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::actor::{InitialLayout, RoomActor};
use super::command::RoomCommand;
use super::downlink::DownlinkPolicy;
use super::mode::ModePolicy;
use crate::auth::Policy;
use crate::layout::file::LayoutFile;
use crate::layout::library::LayoutStore;
use crate::media::{CodecFamily, MediaSettings, RoomMedia};
use crate::metrics::Metrics;
use crate::recording::RecordingSettings;

/// Commands a room queues before a sender is told the room is busy.
const ROOM_QUEUE: usize = 256;

/// A room could not take a command.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// Its pipeline could not be built.
    #[error("room {room}: cannot start its media pipeline: {reason}")]
    Start {
        /// Room id.
        room: RoomId,
        /// Why.
        reason: String,
    },
    /// Its command queue is full.
    #[error("room {room} is overloaded; try again")]
    Busy {
        /// Room id.
        room: RoomId,
    },
    /// It has closed.
    #[error("room {room} has closed")]
    Closed {
        /// Room id.
        room: RoomId,
    },
    /// Opening it would pass `limits.max_rooms`.
    #[error("the server has its maximum of {max} rooms open (limits.max_rooms); try again later")]
    TooManyRooms {
        /// The cap.
        max: usize,
    },
}

/// Sends commands to one room's actor.
#[derive(Debug, Clone)]
pub struct RoomHandle {
    room: RoomId,
    tx: mpsc::Sender<RoomCommand>,
}

impl RoomHandle {
    /// Room id.
    pub fn room(&self) -> &RoomId {
        &self.room
    }

    /// Queues a command without waiting.
    pub fn send(&self, cmd: RoomCommand) -> Result<(), RoomError> {
        self.tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => RoomError::Busy {
                room: self.room.clone(),
            },
            mpsc::error::TrySendError::Closed(_) => RoomError::Closed {
                room: self.room.clone(),
            },
        })
    }
}

#[derive(Debug, Default)]
struct Rooms {
    by_id: HashMap<RoomId, RoomHandle>,
}

/// All rooms of the server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Registry {
    rooms: Arc<Mutex<Rooms>>,
    settings: MediaSettings,
    preferred: CodecFamily,
    layouts: LayoutStore,
    recordings: RecordingSettings,
    policy: Arc<Policy>,
    allowed_origins: Arc<Vec<String>>,
    metrics: Metrics,
    /// How receivers are placed in tiers; None: everyone gets the high tier.
    downlink: Option<DownlinkPolicy>,
    /// Whether rooms of two may go peer-to-peer, and the hold.
    mode: ModePolicy,
}

impl Registry {
    /// An empty registry; rooms get `settings` and start with the store's
    /// default layout.
    pub fn new(settings: MediaSettings, preferred: CodecFamily, layouts: LayoutStore) -> Registry {
        Registry {
            rooms: Arc::new(Mutex::new(Rooms::default())),
            settings,
            preferred,
            layouts,
            recordings: RecordingSettings::default(),
            policy: Arc::new(Policy::default()),
            allowed_origins: Arc::default(),
            metrics: Metrics::new(),
            downlink: Some(DownlinkPolicy::default()),
            mode: ModePolicy::default(),
        }
    }

    /// Rooms of two go peer-to-peer, or not, per `policy`.
    pub fn with_mode_policy(mut self, policy: ModePolicy) -> Registry {
        self.mode = policy;
        self
    }

    /// Whether rooms of two may go peer-to-peer, and the hold.
    pub fn mode_policy(&self) -> ModePolicy {
        self.mode
    }

    /// Receivers are placed in tiers by `policy`, or all get the high tier
    /// with None.
    pub fn with_downlink(mut self, policy: Option<DownlinkPolicy>) -> Registry {
        self.downlink = policy;
        self
    }

    /// How receivers are placed in tiers, if they are.
    pub fn downlink_policy(&self) -> Option<DownlinkPolicy> {
        self.downlink
    }

    /// The server's metrics, which rooms and sessions write to.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Other sites' pages that may open the signaling socket.
    pub fn with_allowed_origins(mut self, origins: Vec<String>) -> Registry {
        self.allowed_origins = Arc::new(origins);
        self
    }

    /// `server.allowed_origins`.
    pub fn allowed_origins(&self) -> &[String] {
        &self.allowed_origins
    }

    /// Joins, limits and ICE servers follow `policy`.
    pub fn with_policy(mut self, policy: Policy) -> Registry {
        self.policy = Arc::new(policy);
        self
    }

    /// Who may join, and the limits.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Rooms record per `recordings`.
    pub fn with_recordings(mut self, recordings: RecordingSettings) -> Registry {
        self.recordings = recordings;
        self
    }

    /// The server's layouts.
    pub fn layouts(&self) -> &LayoutStore {
        &self.layouts
    }

    /// How rooms record, and where.
    pub fn recordings(&self) -> &RecordingSettings {
        &self.recordings
    }

    /// Tells every room that a layout file changed.
    pub fn layout_reloaded(&self, name: &str, layout: &Arc<LayoutFile>) {
        let handles: Vec<_> = self.lock().by_id.values().cloned().collect();
        for h in handles {
            let _ = h.send(RoomCommand::LayoutReloaded {
                name: name.to_string(),
                layout: layout.clone(),
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rooms> {
        // A panic elsewhere must not take every room down with it.
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of live rooms.
    pub fn room_count(&self) -> usize {
        self.lock().by_id.len()
    }

    /// Ids of live rooms, sorted.
    pub fn room_ids(&self) -> Vec<RoomId> {
        let mut ids: Vec<_> = self.lock().by_id.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The handle of a live room.
    pub fn get(&self, room: &str) -> Option<RoomHandle> {
        self.lock().by_id.get(room).cloned()
    }

    /// Delivers a join to `room`, creating the room if needed.
    pub fn join(&self, room: &RoomId, join: RoomCommand) -> Result<RoomHandle, RoomError> {
        let join = match self.send_to_existing(room, join)? {
            Ok(handle) => return Ok(handle),
            Err(join) => join,
        };
        let max = self.policy.limits.max_rooms;
        if self.room_count() >= max {
            return Err(RoomError::TooManyRooms { max });
        }
        let default = self.layouts.default_name().to_string();
        let layout = self.layouts.get(&default).ok_or_else(|| RoomError::Start {
            room: room.clone(),
            reason: format!("the default layout {default} is not available"),
        })?;
        // Build the pipeline outside the lock: it changes element state.
        let media = RoomMedia::new(room, self.settings.clone()).map_err(|e| RoomError::Start {
            room: room.clone(),
            reason: format!("{e:#}"),
        })?;
        let (tx, rx) = mpsc::channel(ROOM_QUEUE);
        let handle = RoomHandle {
            room: room.clone(),
            tx,
        };
        let mut unused_media = None;
        let result = {
            let mut rooms = self.lock();
            if let Some(existing) = rooms.by_id.get(room.as_str()).cloned() {
                // Someone else created it meanwhile; ours is not needed.
                unused_media = Some(media);
                existing.send(join).map(|_| existing)
            } else if rooms.by_id.len() >= max {
                unused_media = Some(media);
                Err(RoomError::TooManyRooms { max })
            } else {
                handle.send(join)?;
                rooms.by_id.insert(room.clone(), handle.clone());
                let actor = RoomActor::new(
                    room,
                    media,
                    rx,
                    self.clone(),
                    self.preferred,
                    InitialLayout {
                        name: default,
                        layout,
                        speaker_hold: self.layouts.speaker_hold(),
                    },
                );
                tokio::spawn(actor.run());
                Ok(handle)
            }
        };
        drop(unused_media);
        result
    }

    /// Sends to a live room; gives the command back when there is none.
    fn send_to_existing(
        &self,
        room: &str,
        cmd: RoomCommand,
    ) -> Result<Result<RoomHandle, RoomCommand>, RoomError> {
        let rooms = self.lock();
        let Some(handle) = rooms.by_id.get(room) else {
            return Ok(Err(cmd));
        };
        handle.send(cmd)?;
        Ok(Ok(handle.clone()))
    }

    /// Called by an empty room's actor: forgets the room unless a command
    /// arrived meanwhile, which is then returned for the actor to handle.
    pub(super) fn retire(
        &self,
        room: &str,
        rx: &mut mpsc::Receiver<RoomCommand>,
    ) -> Option<RoomCommand> {
        let mut rooms = self.lock();
        match rx.try_recv() {
            Ok(cmd) => Some(cmd),
            Err(_) => {
                rooms.by_id.remove(room);
                rx.close();
                None
            }
        }
    }

    /// Asks every room to close, for shutdown.
    pub fn close_all(&self) {
        let handles: Vec<_> = self.lock().by_id.values().cloned().collect();
        for h in handles {
            let _ = h.send(RoomCommand::Close);
        }
    }
}
