//! A light synthetic participant: a `str0m` peer (sans-IO, no threads of
//! its own) joined over the real signaling. It sends the pre-encoded clips
//! on the shared schedule and counts the canvas frames and audio that
//! arrive, reassembled but never decoded. Many of them run as tasks on one
//! thread of one process (`crowd.rs`), so that a room of thirty costs the
//! machine little besides the server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, KeyframeRequestKind, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::clip::{Clip, Codec};
use crate::peer::Measured;
use crate::run::PeerSpec;

/// A clip's frames as the WebRTC stack takes them: shared bytes, keyframes
/// marked. Made once per process and shared by every light participant.
#[derive(Debug)]
pub struct Frames {
    /// Frame duration (ms).
    pub frame_ms: f64,
    /// Each frame, and whether it is a keyframe.
    pub frames: Vec<(Arc<[u8]>, bool)>,
}

impl Frames {
    /// The frames of `clip`.
    pub fn of(clip: &Clip) -> anyhow::Result<Self> {
        let frames = clip
            .frames
            .iter()
            .map(|b| {
                let map = b.map_readable().context("reading a clip frame")?;
                let key = !b.flags().contains(gstreamer::BufferFlags::DELTA_UNIT);
                Ok((Arc::<[u8]>::from(map.as_slice()), key))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Frames {
            frame_ms: clip.frame_ms,
            frames,
        })
    }
}

/// What one light participant counted, shared with the process's steering.
#[derive(Debug, Default)]
pub struct Tally {
    join_sent: Option<Instant>,
    first_frame: Option<Instant>,
    window: Option<Instant>,
    frames: Vec<u32>,
    bytes_down: u64,
    bytes_up: u64,
    codec: Option<String>,
}

impl Tally {
    /// Starts the measuring window: counts so far are dropped.
    pub fn start_window(&mut self, now: Instant) {
        self.window = Some(now);
        self.frames.clear();
        self.bytes_down = 0;
        self.bytes_up = 0;
    }

    fn frame(&mut self, now: Instant, bytes: usize) {
        self.bytes_down += bytes as u64;
        if let Some(start) = self.window {
            let second = now.saturating_duration_since(start).as_secs() as usize;
            if self.frames.len() <= second {
                self.frames.resize(second + 1, 0);
            }
            self.frames[second] += 1;
        }
    }

    /// The figures of the window so far, in the form every participant
    /// reports: whole seconds only.
    pub fn measured(&self, now: Instant) -> Measured {
        let window_s = self
            .window
            .map_or(0.0, |w| now.saturating_duration_since(w).as_secs_f64());
        let whole = window_s.floor() as usize;
        let mut frames_per_second = self.frames.clone();
        frames_per_second.resize(whole, 0);
        Measured {
            frames_per_second,
            join_to_first_frame_ms: self
                .join_sent
                .zip(self.first_frame)
                .map(|(j, f)| f.saturating_duration_since(j).as_secs_f64() * 1000.0),
            bytes_down: self.bytes_down,
            bytes_up: self.bytes_up,
            window_s,
            canvas_codec: self.codec.clone(),
            ..Measured::default()
        }
    }
}

/// The next frame of a clip on the shared schedule: frame `n` is due at
/// `epoch + n * frame_ms`, and carries RTP time `n` frames on.
struct Schedule {
    frames: Arc<Frames>,
    epoch: Instant,
    next: u64,
    /// Nothing is sent before the first keyframe.
    started: bool,
    /// RTP ticks per frame.
    ticks: u64,
    clock: Frequency,
}

impl Schedule {
    fn new(frames: Arc<Frames>, epoch: Instant, now: Instant, clock: Frequency) -> Self {
        let ms = frames.frame_ms;
        let next = (now.saturating_duration_since(epoch).as_secs_f64() * 1000.0 / ms).ceil() as u64;
        let ticks = (f64::from(clock.get()) * ms / 1000.0).round() as u64;
        Schedule {
            frames,
            epoch,
            next,
            started: false,
            ticks,
            clock,
        }
    }

    fn due(&self) -> Instant {
        self.epoch + Duration::from_secs_f64(self.next as f64 * self.frames.frame_ms / 1000.0)
    }

    /// The frame due now, if it is to be sent: (data, RTP time).
    fn take(&mut self) -> Option<(Arc<[u8]>, MediaTime)> {
        let n = self.next;
        self.next += 1;
        let (data, key) = &self.frames.frames[(n % self.frames.frames.len() as u64) as usize];
        self.started |= *key;
        self.started
            .then(|| (data.clone(), MediaTime::new(n * self.ticks, self.clock)))
    }
}

/// What the process gives every light participant.
pub struct Shared {
    pub video: Arc<Frames>,
    pub audio: Arc<Frames>,
    /// `Instant` of the shared schedule's epoch.
    pub epoch: Instant,
}

/// Turns the schedule's Unix epoch (ms) into this process's clock.
pub fn epoch_instant(epoch_ms: f64) -> Instant {
    let ago = crate::clip::now_ms() - epoch_ms;
    let now = Instant::now();
    if ago >= 0.0 {
        now - Duration::from_secs_f64(ago / 1000.0)
    } else {
        now + Duration::from_secs_f64(-ago / 1000.0)
    }
}

/// Joins as `spec` says and runs until `stop` turns true or the server
/// goes. `joined` gets the participant id once the connection is up.
pub async fn run(
    spec: PeerSpec,
    shared: Arc<Shared>,
    tally: Arc<Mutex<Tally>>,
    joined: oneshot::Sender<anyhow::Result<String>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut joined = Some(joined);
    let result = session(&spec, &shared, &tally, &mut joined, &mut stop).await;
    if let Err(e) = result {
        match joined.take() {
            Some(tx) => {
                let _ = tx.send(Err(e));
            }
            None => eprintln!("{}: {e:#}", spec.name),
        }
    }
}

/// The crypto every light participant of the process uses: OpenSSL's
/// DTLS, which GStreamer's DTLS (OpenSSL too) shakes hands with, and pure
/// Rust SRTP and HMAC-SHA1. OpenSSL 3 sets up an HMAC key for each packet,
/// looking its algorithm up by name: with it the 28 light participants of
/// speaking-club-30 took 0.151 cores, with these 0.083.
pub fn install_crypto() {
    let openssl = str0m_openssl::default_provider();
    let rust = str0m_rust_crypto::default_provider();
    str0m::crypto::CryptoProvider {
        srtp_provider: rust.srtp_provider,
        sha1_hmac_provider: rust.sha1_hmac_provider,
        sha256_provider: rust.sha256_provider,
        dtls_provider: openssl.dtls_provider,
    }
    .install_process_default();
}

fn config(codec: Codec) -> RtcConfig {
    let config = RtcConfig::new().clear_codecs().enable_opus(true, false);
    match codec {
        Codec::Vp8 => config.enable_vp8(true),
        Codec::H264 => config.enable_h264(true),
    }
}

/// The media of one connection, once negotiated.
struct Mids {
    audio: Mid,
    video: Mid,
}

async fn session(
    spec: &PeerSpec,
    shared: &Shared,
    tally: &Mutex<Tally>,
    joined: &mut Option<oneshot::Sender<anyhow::Result<String>>>,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let ip = spec
        .ice_address
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
        .await
        .with_context(|| format!("binding a UDP socket on {ip}"))?;
    let local = socket.local_addr()?;
    let mut rtc = config(spec.codec).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp")?);
    let mut change = rtc.sdp_api();
    let mids = Mids {
        audio: change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None),
        video: change.add_media(MediaKind::Video, Direction::SendRecv, None, None, None),
    };
    let (offer, pending) = change.apply().context("str0m made no offer")?;

    let (socket_ws, _) = tokio_tungstenite::connect_async(&spec.ws)
        .await
        .with_context(|| format!("connecting to {}", spec.ws))?;
    let (mut sink, mut stream) = socket_ws.split();
    tally.lock().unwrap().join_sent = Some(Instant::now());
    sink.send(Message::text(
        json!({"type": "join", "room": spec.room, "name": spec.name}).to_string(),
    ))
    .await?;
    let id = loop {
        let frame = tokio::time::timeout(Duration::from_secs(15), stream.next())
            .await
            .context("no answer to join within 15 s")?;
        let Some(Ok(Message::Text(text))) = frame else {
            bail!("the server closed the socket before joined");
        };
        let v: Value = serde_json::from_str(&text)?;
        match v["type"].as_str() {
            Some("joined") => break v["participantId"].as_str().unwrap_or_default().to_string(),
            Some("error") => bail!("join refused: {v}"),
            _ => {}
        }
    };
    sink.send(Message::text(
        json!({"type": "offer", "sdp": offer.to_sdp_string()}).to_string(),
    ))
    .await?;

    let mut pending: Option<SdpPendingOffer> = Some(pending);
    let mut video = None;
    let mut audio = None;
    let mut connected_at: Option<Instant> = None;
    let mut next_key_ask = None;
    let mut buf = vec![0u8; 2000];
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        let timeout = drain(&mut rtc, &socket, &mids, tally, &mut connected_at)?;
        if connected_at.is_some() && video.is_none() {
            // Media flows once the connection is up, as a browser's would.
            let now = Instant::now();
            video = Some(Schedule::new(
                shared.video.clone(),
                shared.epoch,
                now,
                Frequency::NINETY_KHZ,
            ));
            audio = Some(Schedule::new(
                shared.audio.clone(),
                shared.epoch,
                now,
                Frequency::FORTY_EIGHT_KHZ,
            ));
            next_key_ask = Some(now + Duration::from_secs(1));
            if let Some(tx) = joined.take() {
                let _ = tx.send(Ok(id.clone()));
            }
        }
        if connected_at.is_none() && Instant::now() > give_up {
            bail!("no connection within 20 s of joining");
        }
        if !rtc.is_alive() {
            return Ok(());
        }
        let mut wake = timeout;
        for s in [&video, &audio].into_iter().flatten() {
            wake = wake.min(s.due());
        }
        if let Some(k) = next_key_ask {
            wake = wake.min(k);
        }
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, source) = r.context("receiving on the UDP socket")?;
                receive(&mut rtc, &buf[..n], source, local)?;
                // Whatever else is waiting, before the next wait.
                while let Ok((n, source)) = socket.try_recv_from(&mut buf) {
                    drain(&mut rtc, &socket, &mids, tally, &mut connected_at)?;
                    receive(&mut rtc, &buf[..n], source, local)?;
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                for (schedule, mid) in [(&mut video, mids.video), (&mut audio, mids.audio)] {
                    let Some(s) = schedule else { continue };
                    while s.due() <= now {
                        let Some((data, time)) = s.take() else { continue };
                        let len = data.len();
                        write(&mut rtc, mid, now, time, data)?;
                        tally.lock().unwrap().bytes_up += len as u64;
                        drain(&mut rtc, &socket, &mids, tally, &mut connected_at)?;
                    }
                }
                if next_key_ask.is_some_and(|k| k <= now) {
                    let has_frame = tally.lock().unwrap().first_frame.is_some();
                    next_key_ask = (!has_frame).then(|| now + Duration::from_secs(1));
                    if !has_frame {
                        if let Some(mut w) = rtc.writer(mids.video) {
                            let _ = w.request_keyframe(None, KeyframeRequestKind::Pli);
                        }
                        drain(&mut rtc, &socket, &mids, tally, &mut connected_at)?;
                    }
                }
                rtc.handle_input(Input::Timeout(Instant::now()))?;
            }
            frame = stream.next() => {
                let Some(Ok(frame)) = frame else {
                    bail!("the server closed the signaling socket");
                };
                let Message::Text(text) = frame else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                match v["type"].as_str() {
                    Some("answer") => {
                        let sdp = v["sdp"].as_str().unwrap_or_default();
                        let answer = SdpAnswer::from_sdp_string(sdp).context("the server's answer")?;
                        let Some(p) = pending.take() else { continue };
                        rtc.sdp_api().accept_answer(p, answer).context("accepting the answer")?;
                    }
                    Some("ice") => {
                        let text = v["candidate"].as_str().unwrap_or_default();
                        if text.is_empty() {
                            continue;
                        }
                        match Candidate::from_sdp_string(text) {
                            Ok(c) => rtc.add_remote_candidate(c),
                            Err(e) => eprintln!("{}: candidate {text}: {e}", spec.name),
                        }
                    }
                    Some("error") => eprintln!("{}: server error: {v}", spec.name),
                    _ => {}
                }
            }
            _ = stop.changed() => {
                rtc.disconnect();
                let _ = sink.send(Message::text(json!({"type": "leave"}).to_string())).await;
                return Ok(());
            }
        }
    }
}

fn receive(
    rtc: &mut Rtc,
    data: &[u8],
    source: SocketAddr,
    local: SocketAddr,
) -> anyhow::Result<()> {
    let input = Input::Receive(
        Instant::now(),
        Receive {
            proto: Protocol::Udp,
            source,
            destination: local,
            contents: data.try_into()?,
        },
    );
    if rtc.accepts(&input) {
        rtc.handle_input(input)?;
    }
    Ok(())
}

fn write(
    rtc: &mut Rtc,
    mid: Mid,
    now: Instant,
    time: MediaTime,
    data: Arc<[u8]>,
) -> anyhow::Result<()> {
    let Some(writer) = rtc.writer(mid) else {
        return Ok(());
    };
    let Some(pt) = writer.payload_params().next().map(|p| p.pt()) else {
        return Ok(());
    };
    writer.write(pt, now, time, data)?;
    Ok(())
}

/// Polls `rtc` until it only has a timeout to give: sends what it
/// transmits, counts what arrives. Returns when to call it again.
fn drain(
    rtc: &mut Rtc,
    socket: &UdpSocket,
    mids: &Mids,
    tally: &Mutex<Tally>,
    connected_at: &mut Option<Instant>,
) -> anyhow::Result<Instant> {
    loop {
        match rtc.poll_output()? {
            Output::Timeout(t) => return Ok(t),
            Output::Transmit(t) => {
                // A full socket buffer loses the packet, as a network would.
                let _ = socket.try_send_to(&t.contents, t.destination);
            }
            Output::Event(Event::Connected) => *connected_at = Some(Instant::now()),
            Output::Event(Event::IceConnectionStateChange(IceConnectionState::Disconnected)) => {
                rtc.disconnect();
            }
            Output::Event(Event::MediaData(m)) => {
                let now = Instant::now();
                let mut t = tally.lock().unwrap();
                if m.mid == mids.video {
                    if t.first_frame.is_none() {
                        if !m.is_keyframe() {
                            continue;
                        }
                        t.first_frame = Some(now);
                        t.codec = Some(format!("{:?}", m.params.spec().codec).to_lowercase());
                    }
                    t.frame(now, m.data.len());
                } else if m.mid == mids.audio {
                    t.bytes_down += m.data.len() as u64;
                }
            }
            Output::Event(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(keys: &[bool]) -> Arc<Frames> {
        Arc::new(Frames {
            frame_ms: 20.0,
            frames: keys
                .iter()
                .enumerate()
                .map(|(i, k)| (Arc::<[u8]>::from(vec![i as u8]), *k))
                .collect(),
        })
    }

    #[test]
    fn the_schedule_starts_at_a_keyframe_and_keeps_the_shared_times() {
        let epoch = Instant::now();
        // 50 ms after the epoch: frame 3 (60 ms) is the next due.
        let mut s = Schedule::new(
            frames(&[true, false, false, false, true, false]),
            epoch,
            epoch + Duration::from_millis(50),
            Frequency::FORTY_EIGHT_KHZ,
        );
        assert_eq!(s.due(), epoch + Duration::from_millis(60));
        assert!(s.take().is_none(), "frame 3 is a delta: not sent first");
        let (data, time) = s.take().expect("frame 4 is a keyframe");
        assert_eq!(&*data, &[4]);
        assert_eq!(time, MediaTime::new(4 * 960, Frequency::FORTY_EIGHT_KHZ));
        let (data, _) = s.take().expect("deltas follow");
        assert_eq!(&*data, &[5]);
        // The clip loops; RTP time goes on.
        let (data, time) = s.take().unwrap();
        assert_eq!(&*data, &[0]);
        assert_eq!(time, MediaTime::new(6 * 960, Frequency::FORTY_EIGHT_KHZ));
    }

    #[test]
    fn a_tally_counts_whole_seconds_of_its_window() {
        let start = Instant::now();
        let mut t = Tally {
            join_sent: Some(start),
            ..Tally::default()
        };
        t.frame(start, 100);
        t.first_frame = Some(start + Duration::from_millis(250));
        t.start_window(start + Duration::from_secs(1));
        for ms in [1000, 1500, 2100, 2200, 2900] {
            t.frame(start + Duration::from_millis(ms), 10);
        }
        let m = t.measured(start + Duration::from_millis(3500));
        assert_eq!(m.frames_per_second, vec![2, 3]);
        assert_eq!(m.bytes_down, 50, "bytes before the window are not counted");
        assert_eq!(m.join_to_first_frame_ms, Some(250.0));
        assert!((m.window_s - 2.5).abs() < 1e-9);
    }
}
