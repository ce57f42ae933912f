//! Phone callers end to end: a real SIP phone (baresip) dials into a room
//! of GStreamer WebRTC peers over SIP and plain RTP on loopback. It hears
//! the room but not itself, is heard by everyone, has a tile with its
//! name, becomes the active speaker when it alone talks, is removed by a
//! teacher (BYE, its RTP leg gone) and hears BYE at shutdown. Refusals get
//! their SIP codes and leave rooms untouched; a flood of malformed SIP
//! and INVITEs stops neither the lesson nor the next good call.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::baresip::{Baresip, Caller};
use common::media::{color_matches, tone_power};
use common::peer::{PeerOptions, TestPeer};
use common::{init, live_elements, metric, test_config, wait_until, TestServer, SERIAL};
use tessera::config::Config;
use tessera::protocol::TransportKind;

const RED: u32 = 0xff0000;
const GREEN: u32 = 0x00ff00;
const NUMBER: &str = "100";
const ROOM: &str = "phone-lesson";

fn sip_config() -> Config {
    let mut c = test_config();
    c.sip.listen = Some("127.0.0.1:0".parse().unwrap());
    c.sip.rooms.insert(NUMBER.into(), ROOM.into());
    c
}

fn dial_uri(server: &TestServer, number: &str) -> String {
    let sip = server.sip_addr.expect("SIP is on");
    format!("sip:{number}@{sip}")
}

/// The phone caller of `room`, once it is in with its leg built.
async fn caller_in(server: &TestServer, room: &str) -> Option<tessera::ids::ParticipantId> {
    let snap = server.room(room).await?;
    snap.participants
        .iter()
        .find(|p| p.transport == TransportKind::Sip)
        .filter(|_| !snap.tiles.is_empty())
        .map(|p| p.id.clone())
}

async fn wait_caller(
    server: &TestServer,
    room: &str,
    phone: &Baresip,
) -> tessera::ids::ParticipantId {
    for _ in 0..150 {
        if let Some(id) = caller_in(server, room).await {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no phone caller joined {room}; the phone says:\n{}",
        phone.log()
    );
}

/// Waits up to ten seconds for the room to have no phone caller.
async fn wait_gone(server: &TestServer) -> bool {
    for _ in 0..100 {
        if caller_in(server, ROOM).await.is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Writes `peer`'s last frame to a PPM file in the temp directory.
fn dump_frame(peer: &TestPeer, name: &str) -> String {
    let path = std::env::temp_dir().join(format!("{name}.ppm"));
    if let Some(frame) = peer.last_frame() {
        let _ = std::fs::write(&path, frame.to_ppm());
    }
    path.display().to_string()
}

/// Tone powers of the last `secs` of `samples` at `rate`, per frequency.
fn powers(samples: &[f32], rate: u32, secs: f64, tones: &[f64]) -> Vec<f64> {
    let n = (secs * f64::from(rate)) as usize;
    let tail = &samples[samples.len().saturating_sub(n)..];
    tones
        .iter()
        .map(|f| tone_power(tail, *f, f64::from(rate)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_hears_the_room_is_heard_has_a_tile_and_is_removed_with_bye() {
    let _serial = SERIAL.lock().await;
    init();
    let (mut config, rec_dir) = common::recordings::recording_config("phone");
    config.sip = sip_config().sip;
    let server = TestServer::start(config).await;
    let baseline = live_elements().len();
    let http = reqwest::Client::new();
    let api = format!("http://{}/api", server.addr);
    let url = server.ws_url();
    let teacher = TestPeer::join(
        &url,
        PeerOptions {
            tone_hz: 500.0,
            role: Some("teacher"),
            ..PeerOptions::new(ROOM, "tia", RED)
        },
    )
    .await;
    let student = TestPeer::join(
        &url,
        PeerOptions {
            tone_hz: 1300.0,
            ..PeerOptions::new(ROOM, "sam", GREEN)
        },
    )
    .await;
    let phone = Baresip::dial(
        &Caller::new("Ann Lee", "5551234", 900.0),
        &dial_uri(&server, NUMBER),
    );
    let caller = wait_caller(&server, ROOM, &phone).await;
    phone
        .expect_log("Call established", 10, "baresip did not get through")
        .await;
    let snap = server.room(ROOM).await.unwrap();
    let info = snap.participants.iter().find(|p| p.id == caller).unwrap();
    assert_eq!(info.name, "Ann Lee");
    assert_eq!(info.codec, None, "a phone receives no video");

    // The admin API shows the caller as a SIP participant.
    let room_json = common::recordings::get(&http, &format!("{api}/rooms/{ROOM}")).await;
    let listed = room_json["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == caller.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(listed["transport"], "sip", "{room_json}");
    assert_eq!(listed["name"], "Ann Lee");

    // Four seconds of lesson, recorded.
    let recording = common::recordings::start_recording(&http, &api, ROOM).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let tones = [500.0, 1300.0, 900.0];
    let (heard, rate) = phone.heard();
    assert!(
        heard.len() > rate as usize * 3,
        "the phone recorded {} samples",
        heard.len()
    );
    let p = powers(&heard, rate, 2.0, &tones);
    assert!(
        p[0] > 100.0 * p[2] && p[1] > 100.0 * p[2],
        "the phone should hear 500 and 1300 Hz and not its own 900 Hz: {p:?}"
    );
    for peer in [&teacher, &student] {
        let audio = peer.recent_audio(2.0);
        let p = powers(&audio, 48000, 2.0, &tones);
        let own = if peer.opts.tone_hz == 500.0 {
            p[0]
        } else {
            p[1]
        };
        assert!(
            p[2] > 100.0 * own.max(1e-9),
            "{} should hear the caller's 900 Hz over its own tone: {p:?}",
            peer.opts.name
        );
    }

    // The caller's tile: the placeholder's grey with its name drawn in white.
    let snap = server.room(ROOM).await.unwrap();
    let rect = snap
        .tiles
        .iter()
        .find(|(id, _)| *id == caller)
        .map(|(_, r)| *r)
        .or_else(|| common::grid_tiles(&server.config, 3).get(2).copied())
        .expect("the caller has a tile");
    assert!(
        wait_until(Duration::from_secs(5), || {
            let Some(frame) = teacher.last_frame() else {
                return false;
            };
            let (_, cy) = rect.center();
            let grey = frame.rgb_at(rect.x + 20, rect.y + 20);
            let white = (cy - 10..cy + 10)
                .flat_map(|y| {
                    (rect.x..rect.x + rect.width)
                        .step_by(2)
                        .map(move |x| (x, y))
                })
                .filter(|&(x, y)| {
                    let i = y as usize * frame.stride + x as usize * 3;
                    frame.data[i..i + 3].iter().all(|c| *c > 200)
                })
                .count();
            color_matches(grey, 0x404040) && white >= 20
        })
        .await,
        "the canvas should show the caller's tile ({rect:?}) with its name; canvas in {}",
        dump_frame(&teacher, "phone-tile")
    );

    // The recording holds the caller's voice, and its join on the timeline.
    let manifest = common::recordings::stop_and_export(&http, &api, ROOM, &recording).await;
    assert!(manifest["export"].is_string(), "no export: {manifest}");
    let events = manifest["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["kind"] == "joined"
            && e["participant"] == caller.as_str()
            && e["name"] == "Ann Lee"),
        "the caller's join is on the timeline: {manifest}"
    );
    let file = rec_dir
        .join(&recording)
        .join(manifest["export"].as_str().unwrap());
    let decoded = common::recordings::decode_webm(&file, &[]);
    let p = powers(&decoded.audio, 48000, 2.0, &tones);
    assert!(
        p[2] > 1e-4 && p[0] > 1e-4 && p[1] > 1e-4,
        "the recording should hold all three voices: {p:?}"
    );

    // A teacher silences the caller: nobody hears it any more.
    teacher.send_text(&format!(
        r#"{{"type":"muteParticipant","participant":"{caller}","muted":true}}"#
    ));
    let mut silenced = false;
    for _ in 0..50 {
        let snap = server.room(ROOM).await.unwrap();
        let flagged = snap
            .participants
            .iter()
            .any(|p| p.id == caller && p.silenced);
        let p = powers(&student.recent_audio(1.0), 48000, 1.0, &tones);
        if flagged && p[2] < 1e-6 {
            silenced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        silenced,
        "sam should no longer hear the silenced caller: {:?}",
        powers(&student.recent_audio(1.0), 48000, 1.0, &tones)
    );

    // A teacher removes the caller: it hears BYE, and its RTP leg is gone.
    teacher.send_text(&format!(r#"{{"type":"remove","participant":"{caller}"}}"#));
    phone
        .expect_log("session closed", 10, "the phone should hear BYE")
        .await;
    let leg = format!("{caller}-rtp-out");
    assert!(
        wait_until(Duration::from_secs(5), || !live_elements()
            .iter()
            .any(|e| e.starts_with(&leg)))
        .await,
        "the caller's RTP leg should be gone"
    );
    let base = format!("http://{}", server.addr);
    assert_eq!(
        metric(&base, "tessera_sip_calls_total", "answered").await,
        1.0
    );
    assert_eq!(metric(&base, "tessera_sip_calls_active", "").await, 0.0);

    drop(phone);
    teacher.leave().await;
    student.leave().await;
    assert!(
        wait_until(Duration::from_secs(10), || live_elements().len()
            <= baseline)
        .await,
        "elements left behind: {:?}",
        live_elements()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_talking_alone_takes_the_speaker_slot_and_hears_bye_at_shutdown() {
    let _serial = SERIAL.lock().await;
    init();
    let mut server = TestServer::start(sip_config()).await;
    let url = server.ws_url();
    let quiet = TestPeer::join(&url, PeerOptions::new(ROOM, "quiet", RED)).await;
    let phone = Baresip::dial(
        &Caller::new("Bo", "5550007", 700.0),
        &dial_uri(&server, NUMBER),
    );
    let caller = wait_caller(&server, ROOM, &phone).await;
    let mut speaker = None;
    for _ in 0..100 {
        speaker = server.room(ROOM).await.and_then(|s| s.speaker);
        if speaker.as_ref() == Some(&caller) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(speaker, Some(caller), "the caller alone talks");

    server.shutdown();
    phone
        .expect_log(
            "session closed",
            10,
            "the phone should hear BYE at shutdown",
        )
        .await;
    drop(quiet);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_calls_get_their_sip_codes_and_leave_rooms_untouched() {
    let _serial = SERIAL.lock().await;
    init();
    let mut config = sip_config();
    config.sip.username = Some("trunk".into());
    config.sip.password = Some("s3cret-trunk".into());
    config.sip.rooms.insert("200".into(), "small".into());
    config.sip.rooms.insert("300".into(), "locked".into());
    config.limits.participants_per_room = 1;
    let server = TestServer::start(config).await;
    let base = format!("http://{}", server.addr);
    let url = server.ws_url();

    // Without credentials: 401 and no room.
    let anon = Baresip::dial(
        &Caller::new("Eve", "666", 900.0),
        &dial_uri(&server, NUMBER),
    );
    assert!(
        wait_until_async(|| async {
            metric(&base, "tessera_sip_calls_total", "unauthorized").await >= 1.0
        })
        .await,
        "an unauthenticated INVITE is challenged:\n{}",
        anon.log()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        server.room(ROOM).await.is_none(),
        "no room for a refused call"
    );
    drop(anon);

    // Wrong password: challenged again, never answered.
    let wrong = Baresip::dial(
        &Caller {
            auth: Some(("trunk".into(), "guess".into())),
            ..Caller::new("Eve", "666", 900.0)
        },
        &dial_uri(&server, NUMBER),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        server.room(ROOM).await.is_none(),
        "a wrong password gets no room"
    );
    assert!(!wrong.log().contains("Call established"), "{}", wrong.log());
    drop(wrong);

    // An unknown number: 404.
    let lost = trunk_call(&server, "999");
    lost.expect_log("404", 10, "an unknown number gets 404")
        .await;
    drop(lost);

    // A full room: 486, and its one member stays.
    let member = TestPeer::join(&url, PeerOptions::new("small", "only", RED)).await;
    let full = trunk_call(&server, "200");
    full.expect_log("486", 10, "a full room gets 486").await;
    drop(full);
    let snap = server.room("small").await.unwrap();
    assert_eq!(snap.participants.len(), 1);
    assert!(wait_until(Duration::from_secs(10), || member.frames() > 0).await);
    member.leave().await;

    // A locked room: 486.
    let teacher = TestPeer::join(
        &url,
        PeerOptions {
            role: Some("teacher"),
            ..PeerOptions::new("locked", "tia", GREEN)
        },
    )
    .await;
    teacher.send_text(r#"{"type":"lock","locked":true}"#);
    assert!(
        teacher
            .wait_message(Duration::from_secs(5), |m| m["type"] == "locked"
                && m["locked"] == true)
            .await
            .is_some(),
        "the room should say it is locked"
    );
    let locked = trunk_call(&server, "300");
    locked.expect_log("486", 10, "a locked room gets 486").await;
    drop(locked);
    assert_eq!(server.room("locked").await.unwrap().participants.len(), 1);
    teacher.leave().await;

    // The right credentials get through.
    let good = trunk_call(&server, NUMBER);
    wait_caller(&server, ROOM, &good).await;
    good.expect_log("Call established", 10, "the call should be answered")
        .await;
    assert!(metric(&base, "tessera_sip_calls_total", "not_found").await >= 1.0);
    assert!(metric(&base, "tessera_sip_calls_total", "busy").await >= 2.0);
    drop(good);
}

/// The trunk's credentials in the tests that turn digest on.
const TRUNK: (&str, &str) = ("trunk", "s3cret-trunk");

/// A G.711 call from the trunk (with its credentials) to `number`.
fn trunk_call(server: &TestServer, number: &str) -> Baresip {
    Baresip::dial(
        &Caller {
            auth: Some((TRUNK.0.into(), TRUNK.1.into())),
            ..Caller::new("Al", "1", 900.0)
        },
        &dial_uri(server, number),
    )
}

/// Polls an async condition for ten seconds.
async fn wait_until_async<F, Fut>(mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A SIP request from `from_port` (Via, Call-ID and tags made unique by `n`).
fn invite(to: SocketAddr, from_port: u16, n: usize, body: &str) -> String {
    format!(
        "INVITE sip:{NUMBER}@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:{from_port};branch=z9hG4bK-flood-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:flood@127.0.0.1>;tag=f{n}\r\n\
         To: <sip:{NUMBER}@{to}>\r\n\
         Call-ID: flood-{n}@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:flood@127.0.0.1:{from_port}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sip_and_an_invite_flood_stop_neither_the_lesson_nor_the_next_call() {
    let _serial = SERIAL.lock().await;
    init();
    let mut config = sip_config();
    config.sip.username = Some("trunk".into());
    config.sip.password = Some("s3cret-trunk".into());
    let server = TestServer::start(config).await;
    let base = format!("http://{}", server.addr);
    let url = server.ws_url();
    let sip = server.sip_addr.unwrap();
    let a = TestPeer::join(
        &url,
        PeerOptions {
            tone_hz: 500.0,
            ..PeerOptions::new(ROOM, "ada", RED)
        },
    )
    .await;
    let b = TestPeer::join(
        &url,
        PeerOptions {
            tone_hz: 1300.0,
            ..PeerOptions::new(ROOM, "bea", GREEN)
        },
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(10), || a.frames() > 10
            && b.frames() > 10)
        .await
    );
    let (frames_before, audio_before) = (a.frames(), a.audio_samples());

    // 1,000 malformed messages over UDP, and some over TCP.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = udp.local_addr().unwrap().port();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n";
    for n in 0..1000usize {
        let junk = match n % 5 {
            0 => format!("INVITE garbage {n}\r\n\r\n"),
            1 => "\u{0}\u{1}\u{2}\u{ff}".repeat(50),
            2 => format!("SIP/2.0 999 ???\r\nVia: nowhere\r\n\r\n{n}"),
            3 => invite(sip, port, n, sdp).replace("CSeq: 1 INVITE", "CSeq: x"),
            _ => invite(sip, port, n, &"a".repeat(7000)),
        };
        let _ = udp.send_to(junk.as_bytes(), sip).await;
    }
    for n in 0..20usize {
        use tokio::io::AsyncWriteExt as _;
        if let Ok(mut tcp) = tokio::net::TcpStream::connect(sip).await {
            let big = invite(sip, port, 5000 + n, &"b".repeat(60_000))
                .replace("Content-Length: 60000", "Content-Length: 99999999999");
            let _ = tcp.write_all(big.as_bytes()).await;
        }
    }
    // An INVITE flood from one source.
    for n in 0..2000usize {
        let _ = udp
            .send_to(invite(sip, port, 10_000 + n, sdp).as_bytes(), sip)
            .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        a.frames() > frames_before + 15 && a.audio_samples() > audio_before + 48000,
        "the lesson stalled: frames {frames_before} -> {}, audio {audio_before} -> {}",
        a.frames(),
        a.audio_samples()
    );
    let p = powers(&a.recent_audio(1.0), 48000, 1.0, &[1300.0]);
    assert!(p[0] > 1e-4, "ada still hears bea: {p:?}");
    assert!(metric(&base, "tessera_sip_messages_dropped_total", "").await > 100.0);
    let snap = server.room(ROOM).await.unwrap();
    assert_eq!(snap.participants.len(), 2, "no flooded INVITE joined");

    // The next good call is answered.
    let good = trunk_call(&server, NUMBER);
    wait_caller(&server, ROOM, &good).await;
    good.expect_log("Call established", 10, "the call should be answered")
        .await;
    drop(good);
    a.leave().await;
    b.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lobby_asks_for_a_pin_a_right_one_joins_and_three_wrong_ones_end_the_call() {
    let _serial = SERIAL.lock().await;
    init();
    let mut config = sip_config();
    config.sip.lobby = Some("1000".into());
    config.sip.pins.insert(ROOM.into(), "4321".into());
    config.sip.prompts_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/prompts").into();
    let server = TestServer::start(config).await;
    let base = format!("http://{}", server.addr);
    let url = server.ws_url();
    let member = TestPeer::join(&url, PeerOptions::new(ROOM, "tia", RED)).await;

    // The right PIN, typed while the prompt plays.
    let right = Baresip::dial(
        &Caller::new("Cy", "5550100", 900.0),
        &dial_uri(&server, "1000"),
    );
    right
        .expect_log("Call established", 10, "the call should be answered")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The prompt is speech: the phone heard something before it typed.
    let (heard, rate) = right.heard();
    let spoken = heard
        .chunks(rate as usize / 10)
        .filter(|c| c.iter().map(|s| s * s).sum::<f32>() / c.len() as f32 > 1e-4)
        .count();
    assert!(
        spoken >= 5,
        "the phone should hear the spoken prompt: {spoken} loud tenths of a second"
    );
    assert!(
        server.room(ROOM).await.unwrap().participants.len() == 1,
        "not in before its PIN"
    );
    right.press("4321#").await;
    let caller = wait_caller(&server, ROOM, &right).await;
    let snap = server.room(ROOM).await.unwrap();
    assert_eq!(
        snap.participants
            .iter()
            .find(|p| p.id == caller)
            .unwrap()
            .name,
        "Cy"
    );

    // Three wrong PINs: told goodbye, then BYE; the room never sees it.
    let wrong = Baresip::dial(
        &Caller::new("Dee", "5550101", 700.0),
        &dial_uri(&server, "1000"),
    );
    wrong
        .expect_log("Call established", 10, "the call should be answered")
        .await;
    wrong.press("1111#2222#").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    wrong.press("3333#").await;
    wrong
        .expect_log(
            "session closed",
            20,
            "three wrong PINs end the call with BYE",
        )
        .await;
    assert_eq!(
        metric(&base, "tessera_sip_calls_total", "pin_failed").await,
        1.0
    );
    let snap = server.room(ROOM).await.unwrap();
    assert_eq!(
        snap.participants.len(),
        2,
        "the member and the right caller only"
    );
    drop(wrong);
    drop(right);
    member.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g722_and_opus_callers_over_udp_and_tcp_hear_the_room_and_are_heard() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(sip_config()).await;
    let url = server.ws_url();
    let peer = TestPeer::join(
        &url,
        PeerOptions {
            tone_hz: 500.0,
            ..PeerOptions::new(ROOM, "ada", RED)
        },
    )
    .await;
    // The G.722 call over UDP, the Opus one over TCP.
    for (codec, tone, transport) in [("g722", 900.0, ""), ("opus", 1500.0, ";transport=tcp")] {
        let phone = Baresip::dial(
            &Caller {
                codecs: vec![codec],
                ..Caller::new(codec, "5550200", tone)
            },
            &format!("{}{transport}", dial_uri(&server, NUMBER)),
        );
        wait_caller(&server, ROOM, &phone).await;
        phone
            .expect_log("Call established", 10, "the call should be answered")
            .await;
        assert!(
            phone
                .log()
                .to_lowercase()
                .contains(&format!("set audio decoder: {codec}")),
            "{codec} should be negotiated:\n{}",
            phone.log()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (heard, rate) = phone.heard();
        let p = powers(&heard, rate, 1.5, &[500.0, tone]);
        assert!(
            p[0] > 100.0 * p[1].max(1e-9),
            "the {codec} caller should hear 500 Hz and not its own {tone} Hz (rate {rate}): {p:?}"
        );
        let p = powers(&peer.recent_audio(1.5), 48000, 1.5, &[500.0, tone]);
        assert!(
            p[1] > 100.0 * p[0].max(1e-9),
            "ada should hear the {codec} caller's {tone} Hz: {p:?}"
        );
        // It hangs up: its BYE takes it out of the room.
        phone.hang_up().await;
        assert!(
            wait_gone(&server).await,
            "the {codec} caller should leave on its BYE"
        );
        drop(phone);
    }
    peer.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_gone_without_bye_leaves_after_the_media_timeout() {
    let _serial = SERIAL.lock().await;
    init();
    let mut config = sip_config();
    config.sip.media_timeout_seconds = 3;
    let server = TestServer::start(config).await;
    let member = TestPeer::join(&server.ws_url(), PeerOptions::new(ROOM, "tia", RED)).await;
    let phone = Baresip::dial(
        &Caller::new("Gone", "5550300", 900.0),
        &dial_uri(&server, NUMBER),
    );
    let caller = wait_caller(&server, ROOM, &phone).await;
    phone
        .expect_log("Call established", 10, "the call should be answered")
        .await;
    // Still there after more than the timeout while it sends.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(caller_in(&server, ROOM).await, Some(caller));
    // Killed: no BYE, no more RTP.
    drop(phone);
    assert!(
        wait_gone(&server).await,
        "the silent phone should be let go"
    );
    let snap = server.room(ROOM).await.unwrap();
    assert_eq!(snap.participants.len(), 1);
    member.leave().await;
}

/// Sends `request` from a fresh UDP socket; gives the status line of the
/// first answer within two seconds, if any.
async fn status_of(sip: SocketAddr, request: &str) -> Option<String> {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(request.as_bytes(), sip).await.unwrap();
    let mut buf = vec![0u8; 8192];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), udp.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines().next().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_may_not_call_gets_403_or_no_answer_at_all() {
    let _serial = SERIAL.lock().await;
    init();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n";
    // (answer strangers, digest on): what a stranger's INVITE gets.
    for (answer_unknown, digest, want) in [
        (true, false, Some("403")),
        (false, false, None),
        (false, true, Some("401")),
    ] {
        let mut config = sip_config();
        // Only the trunk (not loopback) may call without a password.
        config.sip.allowed_sources = vec!["192.0.2.10".parse().unwrap()];
        config.sip.answer_unknown = answer_unknown;
        if digest {
            config.sip.username = Some(TRUNK.0.into());
            config.sip.password = Some(TRUNK.1.into());
        }
        let server = TestServer::start(config).await;
        let sip = server.sip_addr.unwrap();
        let status = status_of(sip, &invite(sip, 5999, 1, sdp)).await;
        match want {
            Some(code) => assert!(
                status.as_deref().is_some_and(|s| s.contains(code)),
                "answer_unknown {answer_unknown}, digest {digest}: want {code}, got {status:?}"
            ),
            None => {
                assert_eq!(status, None, "a stranger gets no answer at all");
                let base = format!("http://{}", server.addr);
                assert!(metric(&base, "tessera_sip_messages_dropped_total", "").await >= 1.0);
            }
        }
        assert!(server.room(ROOM).await.is_none());
    }
}
