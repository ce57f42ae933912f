//! A phone caller's media: its plain-RTP leg, the audio it hears, and a
//! placeholder tile with a telephone sign, its name and the last digits
//! of its number. It sends no video and receives none: it stays in the
//! audio-only tier, and no encoder of the canvas runs for it.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::Context as _;
use gstreamer::prelude::*;
use tokio::sync::mpsc::UnboundedSender;

use super::talk::TalkSwitch;
use super::tile::INITIAL_TILE;
use super::transport::Transport;
use super::{egress, resync, tile, ParticipantMedia, Room};
use crate::ids::{ParticipantId, Tier};
use crate::layout::file::Fit;
use crate::layout::Rect;
use crate::media::build::Added;
use crate::media::codec::CodecFamily;
use crate::media::make::make_element;
use crate::media::phone::{PhoneCodec, PhoneLeg};
use crate::media::MediaEvent;

impl ParticipantMedia {
    /// Builds a phone caller's leg on `socket`, its audio chains and
    /// its tile. Gives where its RTP arrives, for the SDP answer.
    pub(in crate::media) fn build_phone(
        room: &Room<'_>,
        id: &ParticipantId,
        name: &str,
        leg: &PhoneLeg,
        socket: UdpSocket,
        events: &UnboundedSender<MediaEvent>,
        added: &mut Added,
    ) -> anyhow::Result<(ParticipantMedia, SocketAddr)> {
        let bin = room.bin();
        let transport = Transport::rtp(room, added, id, leg, socket, events)?;
        let at = transport
            .rtp_local()
            .context("an RTP leg has a local address")?;
        // The room's Opus packets, in the caller's Opus payload type when
        // it speaks Opus (passed through); re-encoded otherwise, so any
        // dynamic type does.
        let opus_payload = match leg.codec {
            PhoneCodec::Opus => leg.payload,
            _ => 111,
        };
        let audio = egress::build_audio(&bin, added, id, opus_payload, &transport, events)?;
        // The video send queue exists for the tier switch's sake; nothing
        // ever feeds it.
        let video_queue = make_element("queue", &format!("{id}-video-queue"))?;
        added.chain(&bin, &[&video_queue])?;
        video_queue
            .static_pad("src")
            .context("video queue src")?
            .link(&transport.video_send)
            .context("linking the unused video queue")?;
        let placeholder = tile::build_placeholder(room, added, id, name)?;

        let mut elements = transport.elements();
        elements.extend([
            video_queue.clone(),
            audio.opuspay.clone(),
            audio.selector.clone(),
            audio.shared_queue.clone(),
        ]);
        elements.extend(placeholder.elements.iter().cloned());
        for e in &elements {
            e.sync_state_with_parent()
                .with_context(|| format!("starting {}", e.name()))?;
        }
        let switch_gate = resync::SwitchGate::install(
            &video_queue.static_pad("sink").context("video queue sink")?,
        );
        let shared_tee_pad = added.request(room.shared_opus_tee, "src_%u")?;
        shared_tee_pad
            .link(
                &audio
                    .shared_queue
                    .static_pad("sink")
                    .context("shared queue sink")?,
            )
            .context("linking the shared encode to the caller")?;
        room.latency_changed();

        let media = ParticipantMedia {
            id: id.clone(),
            name: name.to_string(),
            // Unused: it receives no video.
            family: CodecFamily::Vp8,
            transport,
            elements,
            tier: Tier::AudioOnly,
            video_tee_pad: None,
            video_queue,
            switch_gate,
            shared_tee_pad,
            talk: TalkSwitch::new(audio.selector, audio.shared_select_pad),
            placeholder_pad: placeholder.pad,
            video: None,
            screen: None,
            mix_tee: None,
            events: events.clone(),
            voice_gate: None,
            silenced: false,
            tile: Rect {
                x: 0,
                y: 0,
                width: INITIAL_TILE.width,
                height: INITIAL_TILE.height,
            },
            placed: false,
            visible: true,
            video_started: false,
            label: Default::default(),
            fit: Fit::Letterbox,
            canvas_sent: Arc::new(AtomicU64::new(0)),
        };
        Ok((media, at))
    }

    /// How long a phone caller has sent nothing; None for WebRTC.
    pub fn phone_quiet_for(&self) -> Option<std::time::Duration> {
        let heard = self.transport.heard.as_ref()?;
        let since = glib::monotonic_time() - heard.load(std::sync::atomic::Ordering::Relaxed);
        Some(std::time::Duration::from_micros(since.max(0) as u64))
    }

    /// Whether this is a phone caller (plain RTP, audio only).
    pub fn is_phone(&self) -> bool {
        self.transport.rtp_local().is_some()
    }
}
