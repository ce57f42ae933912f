//! The container image, run the way docs/deploy.md tells users to: the
//! default config, the two secrets, the published HTTP port and UDP media
//! range, the host's address for ICE, and a named volume for recordings.
//! `/readyz` answers 200, two real peers join the server in the container
//! and decode each other's tiles, and a lesson recorded there is exported
//! into the volume and decodes.
//!
//! The image is built beforehand by `scripts/container-image.sh` (podman,
//! from the repository's Dockerfile) and named in `TESSERA_TEST_IMAGE`; CI
//! does both. Without it the test says so and passes, except under `CI`,
//! where a missing image fails it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::media::color_matches;
use common::peer::{PeerOptions, TestPeer};
use common::recordings::{decode_webm, start_recording, stop_and_export};
use common::{grid_tiles, init, wait_until, SERIAL};
use tessera::auth::TokenKeys;
use tessera::config::Config;
use tessera::ids::Role;

const SECRET: &str = "q8Zt3Nw6Lr1Vx9Ck4Hm7Bp2Fs5Jd0GyRe";
const ADMIN_KEY: &str = "container-test-admin-key-5Jd0Gy2Fs";
/// The image's media range, published as it is (the server's candidates
/// carry these ports).
const MEDIA_PORTS: &str = "40000-40100";

/// Runs podman with a containers.conf that sets no default ulimits (some
/// sandboxes refuse them), unless the caller chose one.
fn podman(args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("podman");
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        let conf = std::env::temp_dir().join("tessera-containers.conf");
        std::fs::write(&conf, "[containers]\ndefault_ulimits = []\n").unwrap();
        cmd.env("CONTAINERS_CONF", conf);
    }
    let out = cmd
        .args(args)
        .output()
        .expect("podman runs (scripts/packages.txt, `test podman`)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text.trim().to_string())
}

/// The container and its volume, removed however the test ends.
struct Container {
    name: String,
    volume: String,
}

impl Container {
    fn logs(&self) -> String {
        podman(&["logs", &self.name]).1
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "--force", "--time", "2", &self.name]);
        let _ = podman(&["volume", "rm", "--force", &self.volume]);
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_serves_a_lesson_and_records_it_into_its_volume() {
    let Ok(image) = std::env::var("TESSERA_TEST_IMAGE") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must build the image (scripts/container-image.sh) and name it in TESSERA_TEST_IMAGE"
        );
        eprintln!(
            "skipped: TESSERA_TEST_IMAGE is not set (bash scripts/container-image.sh builds one)"
        );
        return;
    };
    let _serial = SERIAL.lock().await;
    init();
    let pid = std::process::id();
    let container = Container {
        name: format!("tessera-test-{pid}"),
        volume: format!("tessera-test-recordings-{pid}"),
    };
    let http_port = free_tcp_port();
    let (ok, text) = podman(&[
        "run",
        "--detach",
        "--name",
        &container.name,
        "--publish",
        &format!("127.0.0.1:{http_port}:8080"),
        "--publish",
        &format!("127.0.0.1:{MEDIA_PORTS}:{MEDIA_PORTS}/udp"),
        "--env",
        &format!("TESSERA_TOKEN_SECRET={SECRET}"),
        "--env",
        &format!("TESSERA_ADMIN_KEY={ADMIN_KEY}"),
        "--env",
        "TESSERA_ICE__PUBLIC_IP=127.0.0.1",
        "--volume",
        &format!("{}:/var/lib/tessera/recordings", container.volume),
        &image,
    ]);
    assert!(ok, "podman run {image}: {text}");

    let base = format!("http://127.0.0.1:{http_port}");
    let http = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {ADMIN_KEY}").parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut ready = false;
    for _ in 0..120 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        ready,
        "/readyz never answered 200; log:\n{}",
        container.logs()
    );

    let keys = TokenKeys::new(SECRET, "tessera", 0);
    let now = tessera::auth::bans::unix_now();
    let ws = format!("ws://127.0.0.1:{http_port}/ws");
    let room = "harbour";
    let peer = |name: &str, role: Role, color: u32| PeerOptions {
        token: Some(keys.issue(room, role, name, Duration::from_secs(600), now)),
        ..PeerOptions::new(room, name, color)
    };
    let teacher = TestPeer::join(&ws, peer("tilde", Role::Teacher, 0xff0000)).await;
    let student = TestPeer::join(&ws, peer("omar", Role::Student, 0x0000ff)).await;

    // The image runs the default config: a 1280x720 grid.
    let tiles = grid_tiles(&Config::default(), 2);
    let shows_both = |p: &TestPeer| {
        p.last_frame().is_some_and(|f| {
            let (a, b) = (tiles[0].center(), tiles[1].center());
            color_matches(f.rgb_at(a.0, a.1), 0xff0000)
                && color_matches(f.rgb_at(b.0, b.1), 0x0000ff)
        })
    };
    let seen = wait_until(Duration::from_secs(30), || {
        shows_both(&teacher) && shows_both(&student)
    })
    .await;
    assert!(
        seen,
        "the canvas from the container: teacher {:?} ({} frames), student {:?} ({} frames); log:\n{}",
        teacher.last_frame().map(|f| f.rgb_at(tiles[0].center().0, tiles[0].center().1)),
        teacher.frames(),
        student.last_frame().map(|f| f.rgb_at(tiles[1].center().0, tiles[1].center().1)),
        student.frames(),
        container.logs()
    );

    // A lesson recorded in the container lands in the volume the tessera
    // user owns, and decodes.
    let api = format!("{base}/api");
    let id = start_recording(&http, &api, room).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let manifest = stop_and_export(&http, &api, room, &id).await;
    let export = manifest["export"]
        .as_str()
        .unwrap_or_else(|| panic!("no export: {manifest}; log:\n{}", container.logs()));
    let (ok, mountpoint) = podman(&[
        "volume",
        "inspect",
        "--format",
        "{{.Mountpoint}}",
        &container.volume,
    ]);
    assert!(ok, "{mountpoint}");
    let on_host = std::path::Path::new(&mountpoint).join(&id).join(export);
    let decoded = decode_webm(&on_host, &[gstreamer::ClockTime::from_seconds(2)]);
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    assert!(
        decoded.frames >= 30,
        "{} frames in {}",
        decoded.frames,
        on_host.display()
    );
    let still = &decoded.stills[0];
    let (x, y) = tiles[0].center();
    assert!(
        color_matches(still.rgb_at(x, y), 0xff0000),
        "the teacher's tile in the recording: {:?}",
        still.rgb_at(x, y)
    );

    teacher.leave().await;
    student.leave().await;
    drop(container);
}
