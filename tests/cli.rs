//! The `tessera` command line: what an admin runs.

use std::process::Command;

fn tessera(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TESSERA_LOG", "error")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Runs a fixture-making command to success, in at most three tries of 30 s.
/// gst-launch-1.0 with splitmuxsink (GStreamer 1.22) can wait forever for an
/// end of stream its streams have all reached: every streaming thread idle,
/// the main loop still waiting.
fn run_to_end(cmd: &mut Command) -> bool {
    for _ in 0..3 {
        let mut child = cmd.spawn().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    false
}

#[test]
fn layouts_check_accepts_the_shipped_layouts() {
    let (ok, text) = tessera(&["layouts", "check"]);
    assert!(ok, "{text}");
    for name in ["grid", "pip", "presenter", "screen", "speaker"] {
        assert!(
            text.contains(&format!("ok     layouts/{name}.toml")),
            "{text}"
        );
    }
}

#[test]
fn layouts_check_names_file_line_and_field_of_a_broken_layout() {
    let dir = std::env::temp_dir().join(format!("tessera-cli-layouts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("ok.toml"),
        "[[group]]\n[[group.region]]\nx = 0.0\ny = 0.0\nw = 1.0\nh = 1.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("bad.toml"),
        "[[group]]\n[[group.region]]\nx = 0.0\ny = 0.0\nwidth = 1.0\nh = 1.0\n",
    )
    .unwrap();
    let (ok, text) = tessera(&["layouts", "check", dir.to_str().unwrap()]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("bad.toml:5:1: width: unknown field `width`"),
        "{text}"
    );
    assert!(text.contains("ok.toml"), "{text}");
    assert!(text.contains("1 of 2 layout files have errors"), "{text}");
}

#[test]
fn check_reports_a_bad_config_value_with_file_and_field() {
    let dir = std::env::temp_dir().join(format!("tessera-cli-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "[media]\nframerate = 120\n").unwrap();
    let (ok, text) = tessera(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        text.contains("c.toml: `media.framerate` is 120; use 1 to 60"),
        "{text}"
    );
    let (ok, text) = tessera(&["check"]);
    assert!(ok, "{text}");
}

#[test]
fn layouts_render_writes_a_png() {
    let out = std::env::temp_dir().join(format!("tessera-render-{}.png", std::process::id()));
    let (ok, text) = tessera(&[
        "layouts",
        "render",
        "presenter",
        "--participants",
        "5",
        "--teacher",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let png = std::fs::read(&out).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (ok, text) = tessera(&["layouts", "render", "nope", "--out", out.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        text.contains("no layout named nope; available: grid, pip, presenter, screen, speaker"),
        "{text}"
    );
}

#[test]
fn recordings_export_joins_segments_into_one_file() {
    let root = std::env::temp_dir().join(format!("tessera-cli-rec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let id = "lab-20261121T100000-abcdef";
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    // Three 2-second segments, as the recorder writes them.
    let mut launch = Command::new("gst-launch-1.0");
    launch
        .args(["-q", "splitmuxsink", "name=mux", "muxer-factory=webmmux"])
        .arg(format!("location={}/segment-%05d.webm", dir.display()))
        .args(["max-size-time=2000000000"])
        .args([
            "videotestsrc",
            "num-buffers=90",
            "!",
            "video/x-raw,width=320,height=180,framerate=15/1",
            "!",
            "vp8enc",
            "keyframe-max-dist=15",
            "deadline=1",
            "!",
            "queue",
            "!",
            "mux.video",
            "audiotestsrc",
            "num-buffers=282",
            "samplesperbuffer=1024",
            "!",
            "opusenc",
            "!",
            "queue",
            "!",
            "mux.audio_0",
        ]);
    assert!(
        run_to_end(&mut launch),
        "gst-launch-1.0 failed to write the segments"
    );
    let manifest = serde_json::json!({
        "id": id, "room": "lab", "codec": "vp8",
        "started_at": "2026-11-21T10:00:00.000Z", "ended_at": "2026-11-21T10:00:06.000Z",
        "duration_ms": 6000, "segments": ["segment-00000.webm", "segment-00001.webm", "segment-00002.webm"],
        "export": null, "error": null, "events": []
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    let env = format!("{}", root.display());
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("TESSERA_LOG", "error")
            .env("TESSERA_RECORDINGS_DIR", &env)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = run(&["recordings", "list"]);
    assert!(
        ok && text.contains(id) && text.contains("not exported"),
        "{text}"
    );
    let (ok, text) = run(&["recordings", "export", id]);
    assert!(ok, "{text}");
    let out = dir.join("export.webm");
    assert!(out.exists(), "{text}");
    // One file, six seconds long.
    gstreamer::init().unwrap();
    let info = gstreamer_pbutils::Discoverer::new(gstreamer::ClockTime::from_seconds(10))
        .unwrap()
        .discover_uri(&format!("file://{}", out.display()))
        .unwrap();
    let secs = info.duration().unwrap().seconds_f64();
    assert!((secs - 6.0).abs() < 0.2, "{secs} s");
    let (ok, text) = run(&["recordings", "export", "../../etc"]);
    assert!(!ok && text.contains("is not a recording id"), "{text}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn an_unknown_key_in_the_environment_names_the_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("check")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TESSERA_LOG", "error")
        .env("TESSERA_CLUSTRE__REDIS_URL", "redis://127.0.0.1:6379")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "environment variable TESSERA_CLUSTRE__REDIS_URL: there is no section `[clustre]`"
        ),
        "{text}"
    );
    assert!(
        text.contains("media") && text.contains("recording"),
        "{text}"
    );
    assert!(!text.contains("TOML source string"), "{text}");
}

/// A log read through a pipe (a file, journald, `| grep`) is plain text.
#[test]
fn the_log_through_a_pipe_has_no_colour_codes() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TESSERA_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.contains("listening");
            let _ = tx.send(line);
            if done {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(30)) {
        let done = line.contains("listening");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = lines.join("\n");
    assert!(text.contains("listening"), "the server logged: {text}");
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a piped log: {text}"
    );
}
