//! Media through a real TURN relay: coturn (Debian's `coturn`) on loopback
//! with `use-auth-secret`, and a server that hands every client a
//! credential minted from the same secret. A Chromium client that must use
//! the relay (`ice.relay_only`) reaches the room only through it, and media
//! flows both ways.

mod common;

use std::time::{Duration, Instant};

use common::browser::{wait_stats, Browser, Kind};
use common::coturn::{Coturn, TURN_SECRET};
use common::peer::{PeerOptions, TestPeer};
use common::{init, test_config, TestServer, SERIAL};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_only_chromium_client_reaches_the_room_through_coturn() {
    let _serial = SERIAL.lock().await;
    init();
    let coturn = Coturn::start();
    let mut config = test_config();
    config.ice.turn = vec![coturn.url()];
    config.ice.turn_secret = TURN_SECRET.into();
    config.ice.relay_only = true;
    let server = TestServer::start(config).await;

    // Someone to see and hear: a GStreamer peer with a colour and a tone.
    let mut opts = PeerOptions::new("relayed", "tone", 0x0000ff);
    opts.tone_hz = 700.0;
    let peer = TestPeer::join(&server.ws_url(), opts).await;

    let b = Browser::launch(Kind::Chromium, "chromium-relay").await;
    b.client
        .goto(&format!(
            "http://{}/r/relayed?name=relayed&codec=vp8&autojoin=1",
            server.addr
        ))
        .await
        .unwrap();
    // Down: the browser decodes the canvas and hears the peer, over a
    // candidate pair whose local side is the relay.
    let (ok, s) = wait_stats(&b, Duration::from_secs(60), |s| {
        s["framesDecoded"].as_u64().unwrap_or(0) >= 60
            && s["audioEnergy"].as_f64().unwrap_or(0.0) > 1e-4
            && s["localCandidateType"] == "relay"
    })
    .await;
    b.screenshot("browser-relay").await;
    assert!(ok, "through the relay: {s}\ncoturn: {}", coturn.log());

    // Up: the server decodes the browser's camera.
    let id = s["participantId"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut figures = None;
    while Instant::now() < deadline {
        let snapshot = server.room("relayed").await.unwrap();
        figures = snapshot
            .media
            .iter()
            .find(|(p, _)| *p == id)
            .map(|(_, f)| *f);
        if figures.is_some_and(|f| f.resolution.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        figures.is_some_and(|f| f.resolution.is_some()),
        "the server never decoded the relayed camera: {figures:?}"
    );
    // coturn carried it, for the credential the server minted for this
    // participant (`expiry:participant`): an allocation, and a permission
    // for the server's address.
    let log = coturn.log();
    let ours = |packet: &str| {
        log.lines().any(|l| {
            l.contains(&format!(
                ":{id}>: incoming packet {packet} processed, success"
            ))
        })
    };
    assert!(ours("ALLOCATE") && ours("CREATE_PERMISSION"), "{log}");
    b.close().await;
    peer.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_media_without_a_turn_server_is_refused_with_the_reason() {
    let _serial = SERIAL.lock().await;
    init();
    let server = TestServer::start(test_config()).await;
    let mut ws = common::ws::connect(&server.ws_url()).await;
    let reply = common::ws::send_and_read(
        &mut ws,
        r#"{"type":"join","room":"norelay","name":"Ada","relay":true}"#,
    )
    .await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["code"], "bad-message", "{reply}");
    let message = reply["message"].as_str().unwrap();
    assert!(
        message.contains("no TURN server") && message.contains("ice.turn"),
        "{message}"
    );
    // Without the relay the same join is accepted, with the policy `all`.
    let mut ws = common::ws::connect(&server.ws_url()).await;
    let joined =
        common::ws::send_and_read(&mut ws, r#"{"type":"join","room":"norelay","name":"Bo"}"#).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(joined["iceTransportPolicy"], "all", "{joined}");
}
