//! A phone caller before it is in a room: spoken prompts played to it and
//! the keys it presses (RFC 4733 telephone-events), on the RTP socket its
//! room leg takes over afterwards. Owned by the call's task; no room is
//! involved.
//!
//! ```text
//! udpsrc ─► (telephone-event packets only: the end of each key) ─► keys
//! filesrc (WAV) ─► wavparse ─► convert ─► resample ─► encoder ─► payloader ─► udpsink   (one per prompt)
//! ```

use std::net::UdpSocket;
use std::path::Path;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::mpsc;

use super::make::{make_capsfilter, make_element};
use super::phone::{dtmf_end, dtmf_key, PhoneCodec, PhoneLeg};

/// The caller's prompts and keys, until [`PromptLeg::stop`].
pub struct PromptLeg {
    socket: UdpSocket,
    leg: PhoneLeg,
    listener: gst::Pipeline,
    keys: mpsc::UnboundedReceiver<char>,
}

impl PromptLeg {
    /// Listens for the caller's keys on `socket` (its RTP socket).
    pub fn start(socket: &UdpSocket, leg: &PhoneLeg) -> anyhow::Result<PromptLeg> {
        let socket = socket.try_clone().context("sharing the RTP socket")?;
        let listener = gst::Pipeline::with_name("phone-keys");
        let src = make_element("udpsrc", "keys-in")?;
        src.set_property("socket", gsocket(&socket)?);
        src.set_property("close-socket", false);
        let sink = make_element("fakesink", "keys-out")?;
        sink.set_property("sync", false);
        sink.set_property("async", false);
        listener.add_many([&src, &sink])?;
        src.link(&sink)?;
        let (tx, keys) = mpsc::unbounded_channel();
        let dtmf = leg.dtmf_payload;
        let last = std::sync::Mutex::new(None::<u32>);
        src.static_pad("src").context("udpsrc src")?.add_probe(
            gst::PadProbeType::BUFFER,
            move |_, info| {
                let Some(gst::PadProbeData::Buffer(buf)) = &info.data else {
                    return gst::PadProbeReturn::Ok;
                };
                let Ok(map) = buf.map_readable() else {
                    return gst::PadProbeReturn::Ok;
                };
                if let Some((timestamp, key)) = key_in_packet(&map, dtmf) {
                    // The end of a key is sent three times: act once.
                    let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                    if *last != Some(timestamp) {
                        *last = Some(timestamp);
                        let _ = tx.send(key);
                    }
                }
                gst::PadProbeReturn::Ok
            },
        );
        listener
            .set_state(gst::State::Playing)
            .context("starting the key listener")?;
        Ok(PromptLeg {
            socket,
            leg: leg.clone(),
            listener,
            keys,
        })
    }

    /// Plays the WAV file `prompt` to the caller, returning when it has
    /// been sent.
    pub async fn play(&self, prompt: &Path) -> anyhow::Result<()> {
        let player = gst::Pipeline::with_name("phone-prompt");
        let src = make_element("filesrc", "prompt-file")?;
        src.set_property("location", prompt);
        let parse = make_element("wavparse", "prompt-parse")?;
        let mut chain = vec![src, parse];
        chain.extend(encoder_chain(self.leg.codec, self.leg.payload, "prompt")?);
        let sink = make_element("udpsink", "prompt-out")?;
        sink.set_property("socket", gsocket(&self.socket)?);
        sink.set_property("close-socket", false);
        sink.set_property("host", self.leg.remote.ip().to_string());
        sink.set_property("port", i32::from(self.leg.remote.port()));
        // Paced by the clock: the prompt goes out in real time.
        sink.set_property("sync", true);
        chain.push(sink);
        player.add_many(&chain)?;
        gst::Element::link_many(&chain).context("linking the prompt player")?;
        let bus = player.bus().context("the prompt player's bus")?;
        player
            .set_state(gst::State::Playing)
            .with_context(|| format!("playing {}", prompt.display()))?;
        let mut messages = bus.stream();
        let result = loop {
            match messages.next().await {
                Some(m) => match m.view() {
                    gst::MessageView::Eos(_) => break Ok(()),
                    gst::MessageView::Error(e) => {
                        break Err(anyhow::anyhow!(
                            "playing {}: {}",
                            prompt.display(),
                            e.error()
                        ))
                    }
                    _ => {}
                },
                None => break Ok(()),
            }
        };
        let _ = player.set_state(gst::State::Null);
        result
    }

    /// The next key the caller pressed, or None when none came within
    /// `wait`.
    pub async fn key(&mut self, wait: std::time::Duration) -> Option<char> {
        tokio::time::timeout(wait, self.keys.recv())
            .await
            .ok()
            .flatten()
    }

    /// Forgets keys pressed so far (before a prompt ends, say).
    pub fn clear_keys(&mut self) {
        while self.keys.try_recv().is_ok() {}
    }

    /// Stops listening; the socket is the room leg's from now on.
    pub fn stop(self) {
        let _ = self.listener.set_state(gst::State::Null);
    }
}

impl Drop for PromptLeg {
    fn drop(&mut self) {
        let _ = self.listener.set_state(gst::State::Null);
    }
}

/// `socket` (a duplicate of it) for a GStreamer UDP element.
fn gsocket(socket: &UdpSocket) -> anyhow::Result<gio::Socket> {
    let fd = socket.try_clone().context("sharing the RTP socket")?;
    gio::Socket::from_fd(std::os::fd::OwnedFd::from(fd))
        .context("handing the RTP socket to GStreamer")
}

/// The RTP timestamp and key of an RTP packet that ends a key press, when
/// it carries the `dtmf` payload type.
fn key_in_packet(packet: &[u8], dtmf: Option<u8>) -> Option<(u32, char)> {
    let dtmf = dtmf?;
    if packet.len() < 12 || packet[0] >> 6 != 2 || packet[1] & 0x7f != dtmf {
        return None;
    }
    let csrcs = usize::from(packet[0] & 0x0f) * 4;
    let mut at = 12 + csrcs;
    if packet[0] & 0x10 != 0 {
        let words = u16::from_be_bytes([*packet.get(at + 2)?, *packet.get(at + 3)?]);
        at += 4 + usize::from(words) * 4;
    }
    let timestamp = u32::from_be_bytes(packet[4..8].try_into().ok()?);
    let key = dtmf_key(dtmf_end(packet.get(at..)?)?)?;
    Some((timestamp, key))
}

/// Raw audio in, RTP of `codec` with payload type `payload` out: what a
/// phone leg sends (named `{prefix}-...`).
pub(crate) fn encoder_chain(
    codec: PhoneCodec,
    payload: u8,
    prefix: &str,
) -> anyhow::Result<Vec<gst::Element>> {
    let n = |what: &str| format!("{prefix}-{what}");
    let convert = make_element("audioconvert", &n("phone-convert"))?;
    let resample = make_element("audioresample", &n("phone-resample"))?;
    let caps = make_capsfilter(
        &n("phone-caps"),
        &gst::Caps::builder("audio/x-raw")
            .field("rate", codec.sample_rate() as i32)
            .field("channels", 1i32)
            .build(),
    )?;
    let (enc, pay) = match codec {
        PhoneCodec::Pcmu => ("mulawenc", "rtppcmupay"),
        PhoneCodec::Pcma => ("alawenc", "rtppcmapay"),
        PhoneCodec::G722 => ("avenc_g722", "rtpg722pay"),
        PhoneCodec::Opus => ("opusenc", "rtpopuspay"),
    };
    let enc = make_element(enc, &n("phone-enc"))?;
    let pay = make_element(pay, &n("phone-pay"))?;
    pay.set_property("pt", u32::from(payload));
    if codec != PhoneCodec::Opus {
        // 20 ms a packet, as telephones expect.
        pay.set_property("min-ptime", 20_000_000i64);
        pay.set_property("max-ptime", 20_000_000i64);
    }
    Ok(vec![convert, resample, caps, enc, pay])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pt: u8, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt, 0, 1];
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 7]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn a_key_is_read_at_its_end_from_the_telephone_event_payload_type() {
        let end = packet(101, 800, &[3, 0x8a, 0x03, 0x20]);
        assert_eq!(key_in_packet(&end, Some(101)), Some((800, '3')));
        let start = packet(101, 800, &[3, 0x0a, 0x00, 0xa0]);
        assert_eq!(key_in_packet(&start, Some(101)), None);
        let audio = packet(0, 800, &[3, 0x8a, 0x03, 0x20]);
        assert_eq!(key_in_packet(&audio, Some(101)), None);
        assert_eq!(key_in_packet(&end, None), None);
        let hash = packet(101 | 0x80, 960, &[11, 0x80, 0x03, 0x20]);
        assert_eq!(key_in_packet(&hash, Some(101)), Some((960, '#')));
        assert_eq!(key_in_packet(&end[..12], Some(101)), None);
    }
}
