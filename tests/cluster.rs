//! Several Tessera nodes and a real `redis-server`, all on loopback, each
//! node its own process: rooms spread over the nodes, a room is one room
//! whichever node a client reaches, two nodes asked for one new room at
//! once make one room, a lesson goes on while Redis restarts, a drained
//! node's rooms move, and a killed node's rooms come back on a live one.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::child::ChildServer;
use common::media::color_matches;
use common::peer::{PeerOptions, TestPeer};
use common::redis::RedisServer;
use common::{init, test_config, wait_until, ws, SERIAL};
use serde_json::{json, Value};

const RED: u32 = 0xff0000;
const BLUE: u32 = 0x0000ff;

/// Starts `n` nodes named `n0`.. against `redis`, under a key prefix of
/// their own, and waits until every node sees all of them.
async fn start_nodes(redis: &RedisServer, prefix: &str, n: usize) -> Vec<ChildServer> {
    let mut nodes = Vec::new();
    for i in 0..n {
        nodes.push(start_node(redis, prefix, &format!("n{i}")).await);
    }
    for node in &nodes {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let listed = get(&format!("{}/api/nodes", node.base)).await;
            if listed["nodes"].as_array().map(Vec::len) == Some(n) {
                break;
            }
            assert!(Instant::now() < deadline, "nodes not all listed: {listed}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    nodes
}

/// Where node `id` of the cluster under `prefix` records; emptied first.
fn recordings_dir(prefix: &str, id: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tessera-cluster-{}-{prefix}-{id}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Removes the nodes' recordings when the test ends, however it ends.
struct Cleanup(&'static str);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for id in ["n0", "n1", "n2"] {
            let _ = std::fs::remove_dir_all(recordings_dir(self.0, id));
        }
    }
}

async fn start_node(redis: &RedisServer, prefix: &str, id: &str) -> ChildServer {
    ChildServer::start(&[
        (
            "TESSERA_RECORDINGS_DIR",
            recordings_dir(prefix, id).display().to_string(),
        ),
        ("TESSERA_CLUSTER__REDIS_URL", redis.url()),
        ("TESSERA_CLUSTER__NODE_ID", id.to_string()),
        ("TESSERA_CLUSTER__KEY_PREFIX", prefix.to_string()),
        ("TESSERA_CLUSTER__HEARTBEAT_MS", "500".into()),
        ("TESSERA_CLUSTER__LEASE_MS", "2000".into()),
        ("TESSERA_CLUSTER__PLACEMENT_WINDOW_MS", "3000".into()),
        ("TESSERA_CLUSTER__DRAIN_SECONDS", "2".into()),
        ("TESSERA_ROOMS__P2P", "off".into()),
    ])
    .await
}

async fn get(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Joins `room` through `url` with signaling only, following redirects;
/// returns the socket, the URL it joined at, and the redirects taken.
async fn join_signaling(url: &str, room: &str, name: &str) -> (ws::Ws, String, u32) {
    let mut url = url.to_string();
    for redirects in 0..4 {
        let mut socket = ws::connect(&url).await;
        ws::send(
            &mut socket,
            json!({"type": "join", "room": room, "name": name}),
        )
        .await;
        let reply = ws::read(&mut socket).await;
        match reply["type"].as_str() {
            Some("joined") => return (socket, url, redirects),
            Some("redirect") => url = reply["url"].as_str().unwrap().to_string(),
            _ => panic!("join of {room} at {url} refused: {reply}"),
        }
    }
    panic!("join of {room} redirected more than 3 times");
}

/// Which of `nodes` serves the signaling socket `url`.
fn node_of(nodes: &[ChildServer], url: &str) -> usize {
    nodes
        .iter()
        .position(|n| n.ws == url)
        .unwrap_or_else(|| panic!("{url} is none of the nodes"))
}

/// Every room of the cluster and its node, as `GET /api/rooms?scope=cluster` says.
async fn cluster_rooms(node: &ChildServer) -> Vec<(String, String)> {
    get(&format!("{}/api/rooms?scope=cluster", node.base))
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["room"].as_str().unwrap().to_string(),
                r["node"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// True when `peer`'s canvas shows the grid of two with `colors`.
fn shows_both(peer: &TestPeer, colors: [u32; 2]) -> bool {
    let rects = common::grid_tiles(&test_config(), 2);
    let Some(frame) = peer.last_frame() else {
        return false;
    };
    rects
        .iter()
        .zip(colors)
        .all(|(r, c)| color_matches(frame.rgb_at(r.x + r.width / 2, r.y + r.height / 2), c))
}

async fn meet(url_a: &str, url_b: &str, room: &str) -> (TestPeer, TestPeer) {
    let a = TestPeer::join(url_a, PeerOptions::new(room, "ada", RED)).await;
    let b = TestPeer::join(url_b, PeerOptions::new(room, "ben", BLUE)).await;
    let both = wait_until(Duration::from_secs(30), || {
        shows_both(&a, [RED, BLUE]) && shows_both(&b, [RED, BLUE])
    })
    .await;
    assert!(both, "the two peers see each other's tiles");
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_spread_one_room_whatever_node_and_a_lesson_outlives_a_redis_restart() {
    init();
    let _serial = SERIAL.lock().await;
    let _cleanup = Cleanup("spread");
    let mut redis = RedisServer::start().await;
    let mut nodes = start_nodes(&redis, "spread", 3).await;

    // 30 new rooms, all asked of node 0: they spread over the three.
    let mut sockets = Vec::new();
    let mut per_node = [0usize; 3];
    for i in 0..30 {
        let (socket, url, _) = join_signaling(&nodes[0].ws, &format!("class-{i}"), "t").await;
        per_node[node_of(&nodes, &url)] += 1;
        sockets.push(socket);
    }
    eprintln!("30 rooms through node 0: {per_node:?} on nodes 0, 1, 2");
    assert!(
        per_node.iter().all(|&n| (7..=13).contains(&n)),
        "rooms spread over every node: {per_node:?}"
    );
    // Every node lists every room with its node (entries are a heartbeat old).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let listed = cluster_rooms(&nodes[2]).await;
        let classes = listed
            .iter()
            .filter(|(r, _)| r.starts_with("class-"))
            .count();
        if classes == 30 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{classes} of 30 rooms listed: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(sockets);

    // Two nodes asked for one new room at the same moment: one room.
    for i in 0..5 {
        let room = format!("race-{i}");
        let (x, y) = tokio::join!(
            join_signaling(&nodes[1].ws, &room, "x"),
            join_signaling(&nodes[2].ws, &room, "y"),
        );
        assert_eq!(x.1, y.1, "{room}: both joins end on one node");
        // Entries are a heartbeat old: wait until the room is listed, then
        // a heartbeat more, so a second room on another node would show.
        for _ in 0..25 {
            if cluster_rooms(&nodes[0])
                .await
                .iter()
                .any(|(r, _)| *r == room)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        let mut owners = cluster_rooms(&nodes[0]).await;
        owners.retain(|(r, _)| *r == room);
        assert_eq!(owners.len(), 1, "{room} is one room: {owners:?}");
        assert_eq!(format!("n{}", node_of(&nodes, &x.1)), owners[0].1);
    }

    // Two peers that reach different nodes for one room meet in it.
    let (a, b) = meet(&nodes[1].ws, &nodes[2].ws, "lesson").await;
    assert_eq!(a.signaling(), b.signaling(), "both on the room's node");
    // They asked different nodes, so at least one was sent on (both, if
    // the room was placed on the third node).
    assert!((1..=2).contains(&(a.redirects() + b.redirects())));
    let home = node_of(&nodes, &a.signaling());
    let other = (home + 1) % 3;

    // Redis goes away: the lesson's frames keep coming, joins to the room
    // at its node work, joins that need the directory get a clear error.
    redis.down();
    let before = (a.frames(), b.frames());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        a.frames() > before.0 + 20 && b.frames() > before.1 + 20,
        "frames flow while Redis is down: {before:?} -> {} {}",
        a.frames(),
        b.frames()
    );
    let (_local, url, _) = join_signaling(&nodes[home].ws, "lesson", "late").await;
    assert_eq!(url, nodes[home].ws);
    let mut socket = ws::connect(&nodes[other].ws).await;
    ws::send(
        &mut socket,
        json!({"type": "join", "room": "new-while-down", "name": "z"}),
    )
    .await;
    let refused = ws::read(&mut socket).await;
    assert_eq!(refused["code"], "room-unavailable", "{refused}");
    assert_eq!(
        common::metric(&nodes[other].base, "tessera_cluster_directory_up", "").await,
        0.0
    );
    assert!(
        refused["message"].as_str().unwrap().contains("Redis"),
        "{refused}"
    );

    // Redis is back (empty): the nodes register again with their rooms,
    // and a join to the lesson through another node finds it.
    redis.up().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rooms = cluster_rooms(&nodes[other]).await;
        if rooms
            .iter()
            .any(|(r, n)| r == "lesson" && *n == format!("n{home}"))
            && get(&format!("{}/api/nodes", nodes[0].base)).await["nodes"]
                .as_array()
                .map(Vec::len)
                == Some(3)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes registered again: {rooms:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_late, url, redirects) = join_signaling(&nodes[other].ws, "lesson", "later").await;
    assert_eq!((url, redirects), (nodes[home].ws.clone(), 1));
    let base = &nodes[other].base;
    assert_eq!(
        common::metric(base, "tessera_cluster_directory_up", "").await,
        1.0
    );
    assert!(
        common::metric(base, "tessera_cluster_routes_total", "route=\"elsewhere\"").await >= 1.0
    );
    assert!(
        common::metric(
            base,
            "tessera_cluster_routes_total",
            "route=\"unavailable\""
        )
        .await
            >= 1.0
    );
    assert!(a.frames() > before.0 + 40, "the lesson went on");

    // SIGTERM drains (cluster.drain_seconds, 2 here): the lesson is sent
    // to another node, and the process exits cleanly.
    let stopping = nodes.remove(home);
    let exited =
        tokio::task::spawn_blocking(move || stopping.end(nix::sys::signal::Signal::SIGTERM));
    let moved = a
        .wait_message(Duration::from_secs(15), |m| {
            m["type"] == "redirect" && m["reason"] == "draining"
        })
        .await
        .expect("SIGTERM sends the lesson on");
    assert_eq!(moved["reason"], "draining");
    assert!(exited.await.unwrap(), "the drained node exits 0");
    let (a2, b2) = meet(
        moved["url"].as_str().unwrap(),
        moved["url"].as_str().unwrap(),
        "lesson",
    )
    .await;
    a2.leave().await;
    b2.leave().await;
    drop((a, b));
}

/// The live rooms' recordings on `node`, by room.
async fn recordings(node: &ChildServer) -> HashMap<String, Vec<Value>> {
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    for r in get(&format!("{}/api/recordings", node.base))
        .await
        .as_array()
        .unwrap()
    {
        out.entry(r["room"].as_str().unwrap_or("").to_string())
            .or_default()
            .push(r.clone());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_nodes_rooms_move_and_a_killed_nodes_rooms_come_back() {
    init();
    let _serial = SERIAL.lock().await;
    let _cleanup = Cleanup("drain");
    let redis = RedisServer::start().await;
    let mut nodes: Vec<Option<ChildServer>> = start_nodes(&redis, "drain", 3)
        .await
        .into_iter()
        .map(Some)
        .collect();
    let node = |nodes: &[Option<ChildServer>], i: usize| -> (String, String) {
        let n = nodes[i].as_ref().unwrap();
        (n.base.clone(), n.ws.clone())
    };
    let all: Vec<_> = (0..3).map(|i| node(&nodes, i)).collect();
    let index_of = |url: &str| all.iter().position(|(_, w)| w == url).unwrap();

    // A recorded lesson, wherever it lands.
    let (a, b) = meet(&all[0].1, &all[0].1, "moving").await;
    let home = index_of(&a.signaling());
    let client = reqwest::Client::new();
    let started = client
        .post(format!("{}/api/rooms/moving/recording", all[home].0))
        .send()
        .await
        .unwrap();
    assert!(started.status().is_success(), "{:?}", started.text().await);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Drain its node: not ready, no new room lands there.
    let drained = client
        .post(format!("{}/api/node/drain?seconds=3", all[home].0))
        .send()
        .await
        .unwrap();
    assert_eq!(drained.status(), 202);
    let ready = reqwest::get(format!("{}/readyz", all[home].0))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("draining"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    for i in 0..4 {
        let (_s, url, _) = join_signaling(&all[home].1, &format!("after-drain-{i}"), "n").await;
        assert_ne!(
            index_of(&url),
            home,
            "a new room landed on the draining node"
        );
    }

    // At the deadline the lesson moves: each client is told where, and on
    // the new node they see each other again.
    let moved_to = {
        let m = a
            .wait_message(Duration::from_secs(10), |m| {
                m["type"] == "redirect" && m["reason"] == "draining"
            })
            .await
            .expect("the lesson's clients are sent on");
        assert_eq!(m["reason"], "draining");
        m["url"].as_str().unwrap().to_string()
    };
    assert_ne!(index_of(&moved_to), home);
    let cut = Instant::now();
    drop((a, b));
    let (a, b) = meet(&moved_to, &moved_to, "moving").await;
    eprintln!(
        "moved lesson seen again {:.1} s after the redirect",
        cut.elapsed().as_secs_f64()
    );
    let new_home = index_of(&a.signaling());
    assert_eq!(new_home, index_of(&moved_to));
    // The recording closed on the old node and a new part runs on the new one.
    let old = recordings(nodes[home].as_ref().unwrap()).await;
    assert_eq!(old.get("moving").map(Vec::len), Some(1), "{old:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let new = recordings(nodes[new_home].as_ref().unwrap()).await;
        if new.get("moving").map(Vec::len) == Some(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a new part records on the new node: {new:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // SIGKILL the lesson's node: the clients, reconnecting through a live
    // node as the web client does, are back in the room there.
    let entry = (0..3).find(|i| *i != new_home && *i != home).unwrap();
    let killed_at = Instant::now();
    nodes[new_home]
        .take()
        .unwrap()
        .end(nix::sys::signal::Signal::SIGKILL);
    drop((a, b));
    // Attempts that still meet the dead node panic in their task (the test
    // peer expects its socket to connect) and are tried again.
    let rejoin = |name: &'static str, color: u32| {
        let url = all[entry].1.clone();
        async move {
            loop {
                let url = url.clone();
                let attempt = tokio::time::timeout(
                    Duration::from_secs(5),
                    tokio::spawn(async move {
                        TestPeer::join(&url, PeerOptions::new("moving", name, color)).await
                    }),
                )
                .await;
                if let Ok(Ok(peer)) = attempt {
                    return peer;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let a = rejoin("ada", RED).await;
    let b = rejoin("ben", BLUE).await;
    let both = wait_until(Duration::from_secs(30), || {
        shows_both(&a, [RED, BLUE]) && shows_both(&b, [RED, BLUE])
    })
    .await;
    assert!(both, "the lesson is back on a live node");
    let cut = killed_at.elapsed();
    eprintln!(
        "lesson cut by SIGKILL of its node: {:.1} s until both see each other again on node {}",
        cut.as_secs_f64(),
        index_of(&a.signaling())
    );
    assert_ne!(index_of(&a.signaling()), new_home);
    assert!(cut < Duration::from_secs(30));
    a.leave().await;
    b.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_client_follows_its_room_to_another_node_and_when_the_room_moves() {
    init();
    let _serial = SERIAL.lock().await;
    let _cleanup = Cleanup("web");
    let redis = RedisServer::start().await;
    let nodes = start_nodes(&redis, "web", 2).await;
    // A room that lives on node 1, with a peer in it.
    let mut room = String::new();
    for i in 0..10 {
        let name = format!("web-{i}");
        let (_socket, url, _) = join_signaling(&nodes[1].ws, &name, "probe").await;
        if url == nodes[1].ws {
            room = name;
            break;
        }
    }
    assert!(!room.is_empty(), "no room landed on node 1");
    let peer = TestPeer::join(&nodes[1].ws, PeerOptions::new(&room, "ada", RED)).await;

    // Chromium opens the room's page on node 0 and is sent to node 1.
    let b = common::browser::Browser::launch(common::browser::Kind::Chromium, "cluster").await;
    b.client
        .goto(&format!("{}/r/{room}?name=bob&autojoin=1", nodes[0].base))
        .await
        .unwrap();
    let on_node = |s: &Value, i: usize| {
        s["signaling"] == nodes[i].ws.as_str()
            && s["participants"] == 2
            && s["framesDecoded"].as_u64().unwrap_or(0) >= 30
    };
    let (ok, s) = common::browser::wait_stats(&b, Duration::from_secs(30), |s| on_node(s, 1)).await;
    assert!(ok, "the page on node 0 joins the room on node 1: {s:#}");
    assert_eq!(s["redirects"], 1, "{s:#}");

    // Node 1 drains: the page follows the room to node 0 by itself.
    let drained = reqwest::Client::new()
        .post(format!("{}/api/node/drain?seconds=1", nodes[1].base))
        .send()
        .await
        .unwrap();
    assert_eq!(drained.status(), 202);
    let moved = peer
        .wait_message(Duration::from_secs(10), |m| {
            m["type"] == "redirect" && m["reason"] == "draining"
        })
        .await
        .expect("the peer is sent on");
    let peer = TestPeer::join(
        moved["url"].as_str().unwrap(),
        PeerOptions::new(&room, "ada", RED),
    )
    .await;
    let (ok, s) = common::browser::wait_stats(&b, Duration::from_secs(30), |s| on_node(s, 0)).await;
    assert!(ok, "the page follows the room to node 0: {s:#}");
    b.close().await;
    peer.leave().await;
}
