//! The lesson timeline kept beside a recording's media: who was there when,
//! what the layout was, who spoke, and which segment files hold the media.
//! Written as `manifest.json` whenever it changes; `chapters.vtt` is
//! derived from it.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Something that happened during a recording, `at_ms` after it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Event {
    /// Recording started (or was resumed).
    RecordingStarted {
        /// Offset from the start, milliseconds.
        at_ms: u64,
    },
    /// Recording stopped.
    RecordingStopped {
        /// Offset from the start, milliseconds.
        at_ms: u64,
        /// Why, in plain words.
        reason: String,
    },
    /// A participant was in the room (at the start) or joined.
    Joined {
        /// Offset from the start, milliseconds.
        at_ms: u64,
        /// Participant id.
        participant: String,
        /// Display name.
        name: String,
        /// Role.
        role: String,
    },
    /// A participant left.
    Left {
        /// Offset from the start, milliseconds.
        at_ms: u64,
        /// Participant id.
        participant: String,
    },
    /// The room switched layout.
    Layout {
        /// Offset from the start, milliseconds.
        at_ms: u64,
        /// Layout name.
        name: String,
    },
    /// The active speaker changed.
    Speaker {
        /// Offset from the start, milliseconds.
        at_ms: u64,
        /// Participant id, or None when nobody holds the floor.
        participant: Option<String>,
    },
    /// A chat message.
    Chat {
        /// Offset from the start, milliseconds.
        at_ms: u64,
        /// Sender's participant id.
        participant: String,
        /// Sender's display name.
        name: String,
        /// The message, as written.
        text: String,
    },
    /// A participant raised or lowered a hand (or a teacher lowered it).
    Hand {
        /// Offset from the start, milliseconds.
        at_ms: u64,
        /// Participant id.
        participant: String,
        /// Raised (true) or lowered.
        raised: bool,
        /// The teacher who lowered it, if not the participant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
}

impl Event {
    /// When it happened, milliseconds after the recording started.
    pub fn at_ms(&self) -> u64 {
        match self {
            Event::RecordingStarted { at_ms }
            | Event::RecordingStopped { at_ms, .. }
            | Event::Joined { at_ms, .. }
            | Event::Left { at_ms, .. }
            | Event::Layout { at_ms, .. }
            | Event::Speaker { at_ms, .. }
            | Event::Hand { at_ms, .. }
            | Event::Chat { at_ms, .. } => *at_ms,
        }
    }
}

/// Everything known about one recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Recording id (also its directory name).
    pub id: String,
    /// Room recorded.
    pub room: String,
    /// Video codec family of the canvas.
    pub codec: String,
    /// Wall-clock start, RFC 3339.
    pub started_at: String,
    /// Wall-clock end, RFC 3339; None while recording (or after a crash).
    pub ended_at: Option<String>,
    /// Length in milliseconds, once stopped.
    pub duration_ms: Option<u64>,
    /// Segment files, in order, relative to the recording's directory.
    pub segments: Vec<String>,
    /// The joined file, relative to the recording's directory, once exported.
    pub export: Option<String>,
    /// Why the recording stopped early or its export failed, if it did.
    pub error: Option<String>,
    /// Segment files the server never closed (it was killed): media after
    /// the last closed segment. Kept on disk, left out of the export.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<String>,
    /// The timeline.
    pub events: Vec<Event>,
}

/// An RFC 3339 timestamp with milliseconds, UTC.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// `mm:ss.mmm` or `hh:mm:ss.mmm`, as WebVTT writes times.
fn vtt_time(ms: u64) -> String {
    let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}.{milli:03}")
}

impl Manifest {
    /// The timeline of a recording that has just started, with `events`
    /// (who is there, the layout) as its first entries.
    pub fn begin(
        id: &str,
        room: &str,
        codec: &str,
        started_at: String,
        events: Vec<Event>,
    ) -> Manifest {
        Manifest {
            id: id.to_string(),
            room: room.to_string(),
            codec: codec.to_string(),
            started_at,
            ended_at: None,
            duration_ms: None,
            segments: Vec::new(),
            export: None,
            error: None,
            lost: Vec::new(),
            events,
        }
    }

    fn name_of(&self, id: &str) -> String {
        self.events
            .iter()
            .find_map(|e| match e {
                Event::Joined {
                    participant, name, ..
                } if participant == id => Some(name.clone()),
                _ => None,
            })
            .unwrap_or_else(|| id.to_string())
    }

    /// WebVTT chapters: one per layout change and per new active speaker,
    /// each lasting until the next (the first from time zero).
    pub fn chapters(&self) -> String {
        let end = self
            .duration_ms
            .or_else(|| self.events.iter().map(Event::at_ms).max())
            .unwrap_or(0);
        let mut marks: Vec<(u64, String)> = vec![(0, "Start".to_string())];
        for e in &self.events {
            let title = match e {
                Event::Layout { name, .. } => format!("Layout: {name}"),
                Event::Speaker {
                    participant: Some(p),
                    ..
                } => format!("{} speaking", self.name_of(p)),
                _ => continue,
            };
            let at = e.at_ms().min(end);
            // A chapter that starts where the last one did replaces it.
            if marks.last().is_some_and(|(t, _)| *t == at) {
                marks.pop();
            }
            marks.push((at, title));
        }
        let mut out = String::from("WEBVTT\n");
        for (i, (start, title)) in marks.iter().enumerate() {
            let stop = marks.get(i + 1).map_or(end, |(t, _)| *t);
            if stop <= *start {
                continue;
            }
            out.push_str(&format!(
                "\n{}\n{} --> {}\n{}\n",
                i + 1,
                vtt_time(*start),
                vtt_time(stop),
                title
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(events: Vec<Event>, duration_ms: u64) -> Manifest {
        Manifest {
            duration_ms: Some(duration_ms),
            ..Manifest::begin(
                "r",
                "math",
                "vp8",
                "2026-11-21T10:00:00.000Z".into(),
                events,
            )
        }
    }

    #[test]
    fn chapters_follow_speakers_and_layouts_by_name() {
        let m = manifest(
            vec![
                Event::RecordingStarted { at_ms: 0 },
                Event::Joined {
                    at_ms: 0,
                    participant: "p1".into(),
                    name: "Ada".into(),
                    role: "teacher".into(),
                },
                Event::Layout {
                    at_ms: 0,
                    name: "presenter".into(),
                },
                Event::Speaker {
                    at_ms: 5_000,
                    participant: Some("p1".into()),
                },
                Event::Speaker {
                    at_ms: 9_000,
                    participant: None,
                },
                Event::Layout {
                    at_ms: 61_500,
                    name: "grid".into(),
                },
            ],
            3_725_250,
        );
        let vtt = m.chapters();
        assert!(vtt.starts_with("WEBVTT\n"), "{vtt}");
        assert!(
            vtt.contains("00:00:00.000 --> 00:00:05.000\nLayout: presenter"),
            "{vtt}"
        );
        assert!(
            vtt.contains("00:00:05.000 --> 00:01:01.500\nAda speaking"),
            "{vtt}"
        );
        assert!(
            vtt.contains("00:01:01.500 --> 01:02:05.250\nLayout: grid"),
            "{vtt}"
        );
        assert!(!vtt.contains("Start"), "replaced by the layout at 0: {vtt}");
    }

    #[test]
    fn the_manifest_round_trips_as_json() {
        let m = manifest(
            vec![Event::RecordingStopped {
                at_ms: 20_000,
                reason: "stopped by a teacher".into(),
            }],
            20_000,
        );
        let text = serde_json::to_string_pretty(&m).unwrap();
        assert!(text.contains("\"kind\": \"recording-stopped\""), "{text}");
        assert_eq!(serde_json::from_str::<Manifest>(&text).unwrap(), m);
    }
}
