//! The benchmark's smoke run: `tessera-bench --smoke` brings up the server,
//! three synthetic participants (the clicker and the probe, webrtcbin, and
//! a light one, str0m), the direct pair and the baseline for a few
//! seconds, then the same lesson peer-to-peer (the pair connecting through
//! the server's relay, a third joining), and writes a report whose figures
//! are really measured. Speed is
//! never asserted here; the benchmark reports it.

use std::process::Command;

use serde_json::Value;

#[test]
fn smoke_run_writes_a_measured_report() {
    let out = std::env::temp_dir().join(format!("tessera-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(env!("CARGO_BIN_EXE_tessera-bench"))
        .current_dir(workspace())
        .args(["--smoke", "--media", "target/bench-media", "--out"])
        .arg(&out)
        .status()
        .expect("tessera-bench runs");
    assert!(
        status.success(),
        "tessera-bench --smoke failed; logs in {}",
        out.display()
    );

    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("results.json")).expect("results.json written"),
    )
    .expect("results.json is JSON");
    let levels = json["levels"].as_array().expect("levels");
    assert_eq!(levels.len(), 1, "{json:#}");
    let l = &levels[0];
    let logs = format!("{l:#}\n{}", log_tails(&out));
    assert_eq!(l["scenario"], "lesson-1on1");
    assert_eq!(l["participants"], 3);
    assert_eq!(l["failed_participants"], 0, "{logs}");
    // The third is light: it joined, and its process's CPU was measured.
    assert_eq!(l["light_participants"], 1, "{logs}");
    assert!(l["light_cores"].as_f64().is_some_and(|c| c > 0.0), "{logs}");
    assert!(
        l["peers_cores"].as_f64().unwrap() > l["light_cores"].as_f64().unwrap(),
        "the webrtcbin participants' CPU is counted too: {logs}"
    );
    // The server's threads, by role: every connection's, and together
    // about what the whole process took.
    let groups = l["server_threads"].as_array().expect("server threads");
    let role = |prefix: &str| {
        groups
            .iter()
            .find(|g| g["role"].as_str().is_some_and(|r| r.starts_with(prefix)))
            .unwrap_or_else(|| panic!("no {prefix} threads: {logs}"))
    };
    assert!(
        role("webrtcbin: UDP receive")["threads"].as_u64() == Some(3),
        "one receive thread per connection: {logs}"
    );
    assert!(
        role("canvas out")["cores"].as_f64().unwrap() > 0.0,
        "{logs}"
    );
    let threads_cores: f64 = groups.iter().filter_map(|g| g["cores"].as_f64()).sum();
    let server = l["server_cores_mean"].as_f64().unwrap();
    assert!(
        threads_cores > server * 0.5 && threads_cores < server * 1.5,
        "the threads' CPU ({threads_cores:.3}) adds up to about the process's ({server:.3}): {logs}"
    );
    // Measured, not made up: each figure comes from the processes and media.
    assert!(l["server_cores_mean"].as_f64().unwrap() > 0.0, "{logs}");
    assert!(l["baseline_cores_mean"].as_f64().unwrap() > 0.0, "{logs}");
    // The baseline ran before the server and after it (after only if the
    // server heard other talkers than planned); the ratio uses their mean.
    let runs: Vec<f64> = l["baseline_cores_runs"]
        .as_array()
        .expect("baseline runs")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert!(
        (1..=2).contains(&runs.len()) && runs.iter().all(|c| *c > 0.0),
        "{logs}"
    );
    let mean = runs.iter().sum::<f64>() / runs.len() as f64;
    assert!(
        (l["baseline_cores_mean"].as_f64().unwrap() - mean).abs() < 1e-9,
        "{logs}"
    );
    assert!(l["cpu_ratio"].as_f64().is_some(), "{logs}");
    assert!(l["recording_cpu_ratio"].as_f64().is_some(), "{logs}");
    assert!(l["rss_mb"].as_f64().unwrap() > 10.0, "{logs}");
    assert!(
        l["fps_worst"].as_f64().unwrap() > 0.0,
        "every receiver got canvas frames: {logs}"
    );
    assert!(
        l["sent_fps_worst"].as_f64().unwrap() > 0.0,
        "the server counted canvas frames sent to everyone: {logs}"
    );
    for figure in [
        "video_latency_ms",
        "audio_latency_ms",
        "join_ms",
        "up_kbps",
        "down_kbps",
    ] {
        let median = l[figure]["median"].as_f64();
        assert!(median.is_some_and(|m| m > 0.0), "{figure} measured: {logs}");
    }
    // One participant counts what it receives at the socket, the probe
    // after decryption and depayloading, the light one the frames it
    // reassembled; all receive the same canvas. The
    // socket also sees headers and retransmissions, and a starved probe
    // drops what comes late (12 % and 30 % apart here with a long
    // benchmark running beside the tests): they must agree within half,
    // which still catches a count that is doubled or halved.
    let peers_log = std::fs::read_to_string(out.join("lesson-1on1-1x3/peers.log"))
        .expect("the participants' log");
    assert!(
        peers_log.contains("counting received RTP at the socket"),
        "{logs}"
    );
    let down = &l["down_kbps"];
    let (low, high) = (
        down["median"].as_f64().unwrap(),
        down["p95"].as_f64().unwrap(),
    );
    assert!(
        high <= low * 1.5,
        "the two ways of counting the downlink agree: {logs}"
    );
    assert!(
        json["direct"]["video_ms"]["median"].as_f64().is_some(),
        "{json:#}"
    );
    assert!(
        json["direct"]["audio_ms"]["median"].as_f64().is_some(),
        "{json:#}"
    );

    // The same lesson peer-to-peer: the pair connected directly through
    // the server's relay and rested, and every figure was measured.
    let pair = &json["pair"];
    assert_eq!(pair["mode"], "p2p", "{pair:#} {logs}");
    for figure in [
        "server_cores",
        "mcu_cores",
        "ratio",
        "direct_fps",
        "join_to_direct_ms",
        "join_to_first_frame_ms",
        "canvas_after_switch_ms",
        "third_join_to_first_frame_ms",
    ] {
        assert!(
            pair[figure].as_f64().is_some_and(|v| v > 0.0),
            "{figure} measured: {pair:#} {logs}"
        );
    }

    let md = std::fs::read_to_string(out.join("results.md")).expect("results.md written");
    assert!(md.contains("| lesson-1on1 |"), "{md}");
    assert!(md.contains("lesson-1on1 peer-to-peer"), "{md}");
    let png = std::fs::read(out.join("results.png")).expect("results.png written");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 5_000,
        "a drawn PNG"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// The ends of the participants' and the server's logs of a run in `out`,
/// so that a failure on a CI machine says what happened there.
fn log_tails(out: &std::path::Path) -> String {
    let mut text = format!("logs in {}", out.display());
    let levels = std::fs::read_dir(out).into_iter().flatten().flatten();
    for level in levels.filter(|e| e.path().is_dir()) {
        for log in ["peers.log", "crowd.log", "server.log"] {
            let path = level.path().join(log);
            let Ok(content) = std::fs::read_to_string(&path) else {
                continue;
            };
            let lines: Vec<&str> = content.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            text += &format!("\n--- the end of {}:\n{tail}", path.display());
        }
    }
    text
}

/// A school day in little (one period of three short lessons, rooms of 2,
/// 2 and 4, one recorded): the figures of `--scenario school-day` are
/// measured, every recording is written and no room is left open. The
/// slopes over so short a day mean nothing and are not judged.
#[test]
fn a_short_school_day_is_measured() {
    let out = std::env::temp_dir().join(format!("tessera-bench-day-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(env!("CARGO_BIN_EXE_tessera-bench"))
        .current_dir(workspace())
        .args([
            "--scenario",
            "school-day",
            "--duration",
            "20s",
            "--participants",
            "4",
            "--no-baseline",
            "--media",
            "target/bench-media",
            "--out",
        ])
        .arg(&out)
        .status()
        .expect("tessera-bench runs");
    assert!(status.success(), "logs in {}", out.display());
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("results.json")).expect("results.json written"),
    )
    .expect("results.json is JSON");
    let d = &json["school_day"];
    let logs = format!("{d:#}\n{}", log_tails(&out));
    assert_eq!(d["lessons"], 3, "{logs}");
    assert_eq!(d["recorded"], 1, "{logs}");
    assert_eq!(d["failed_joins"], 0, "{logs}");
    assert_eq!(d["rooms_left"], 0, "{logs}");
    assert_eq!(
        d["recordings_unfinished"].as_array().map(Vec::len),
        Some(0),
        "{logs}"
    );
    let samples = d["samples"].as_array().expect("samples");
    assert!(samples.len() >= 5, "{logs}");
    assert!(
        samples.iter().any(|s| s["rooms"].as_u64() >= Some(2)),
        "lessons overlapped: {logs}"
    );
    assert!(
        samples.iter().all(|s| s["rss_mb"].as_f64() > Some(5.0)
            && s["threads"].as_u64() > Some(0)
            && s["fds"].as_u64() > Some(0)),
        "{logs}"
    );
    let breaks = d["breaks"].as_array().expect("breaks");
    assert_eq!(breaks.len(), 1, "{logs}");
    assert_eq!(breaks[0]["rooms"], 0, "{logs}");
    assert!(out.join("school-day.png").is_file(), "the chart is drawn");
    let _ = std::fs::remove_dir_all(&out);
}

/// Runs `tessera-bench` with `args`, its report written to a fresh
/// directory named after `name`; returns the report and the directory.
fn bench_run(name: &str, args: &[&str]) -> (Value, std::path::PathBuf) {
    let out = std::env::temp_dir().join(format!("tessera-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(env!("CARGO_BIN_EXE_tessera-bench"))
        .current_dir(workspace())
        .args(args)
        .arg("--out")
        .arg(&out)
        .status()
        .expect("tessera-bench runs");
    assert!(
        status.success(),
        "tessera-bench {args:?} failed (it needs redis-server: Debian's package, in scripts/packages.txt); logs in {}",
        out.display()
    );
    let json = serde_json::from_str(
        &std::fs::read_to_string(out.join("results.json")).expect("results.json written"),
    )
    .expect("results.json is JSON");
    (json, out)
}

/// A figure the report must hold, a number (or a spread's median) above 0.
fn measured(v: &Value, path: &str) -> f64 {
    let mut at = v;
    for key in path.split('.') {
        at = &at[key];
    }
    let x = at["median"].as_f64().or_else(|| at.as_f64());
    assert!(x.is_some_and(|x| x > 0.0), "{path} measured: {v:#}");
    x.unwrap()
}

/// The cluster scenarios in little: two nodes and a real redis-server
/// (joins of each kind through the entry node, with and without a
/// redirect, beside one node without a cluster; the directory's time; a
/// killed node's room joined again), and five simulated nodes placing 50
/// rooms and draining one. Every figure is measured; speed is not judged.
#[test]
fn the_cluster_scenarios_measure_every_figure() {
    let (json, out) = bench_run(
        "cluster",
        &[
            "--scenario",
            "cluster",
            "--nodes",
            "2",
            "--rooms",
            "10",
            "--heartbeat",
            "500ms",
            "--lease",
            "1s",
        ],
    );
    let c = &json["cluster"];
    assert_eq!(c["nodes"], 2, "{c:#}");
    assert_eq!(c["settings"]["heartbeat_ms"], 500, "{c:#}");
    assert_eq!(c["settings"]["lease_ms"], 1000, "{c:#}");
    for side in ["cluster", "baseline"] {
        let j = &c[side];
        assert_eq!(j["failed"], 0, "{side}: {c:#}");
        for kind in ["new_all", "open_all"] {
            assert_eq!(j[kind]["joins"], 10, "{side} {kind}: {c:#}");
            measured(j, &format!("{kind}.ms"));
            measured(j, &format!("{kind}.entry_reply_ms"));
        }
        measured(j, "new_per_s");
        measured(j, "open_per_s");
    }
    // Each kind of join happened in the cluster, none redirected on the
    // single node.
    for kind in [
        "new_on_entry",
        "new_elsewhere",
        "open_on_entry",
        "open_elsewhere",
    ] {
        measured(&c["cluster"], &format!("{kind}.ms"));
        measured(&c["cluster"], &format!("{kind}.entry_reply_ms"));
    }
    assert_eq!(c["baseline"]["new_elsewhere"]["joins"], 0, "{c:#}");
    assert_eq!(c["baseline"]["open_elsewhere"]["joins"], 0, "{c:#}");
    for figure in ["open_elsewhere_ms", "new_room_ms", "new_second_hop_ms"] {
        measured(&c["directory"], figure);
    }
    for figure in ["new_by_difference_ms", "open_by_difference_ms"] {
        assert!(c["directory"][figure].is_f64(), "{figure}: {c:#}");
    }
    let trials = c["recovery"].as_array().expect("recovery trials");
    assert!(!trials.is_empty(), "{c:#}");
    for t in trials {
        measured(t, "ms");
        assert!(t["attempts"].as_u64() >= Some(1), "{c:#}");
        assert_ne!(
            t["from"], t["to"],
            "the room came back on a live node: {c:#}"
        );
    }
    measured(c, "recovery_ms");
    measured(c, "single_node_restart.ms");
    let md = std::fs::read_to_string(out.join("results.md")).expect("results.md written");
    assert!(md.contains("Cluster routing"), "{md}");
    let _ = std::fs::remove_dir_all(&out);

    let (json, out) = bench_run(
        "cluster-sim",
        &["--scenario", "cluster-sim", "--nodes", "5", "--rooms", "50"],
    );
    let s = &json["cluster_sim"];
    assert_eq!(
        (s["nodes"].as_u64(), s["rooms"].as_u64()),
        (Some(5), Some(50)),
        "{s:#}"
    );
    for must_be_zero in ["failed", "misrouted", "leases_wrong"] {
        assert_eq!(s[must_be_zero], 0, "{must_be_zero}: {s:#}");
    }
    for figure in ["placement_ms", "second_hop_ms", "burst_per_s", "seconds"] {
        measured(s, figure);
    }
    assert!(s["redirects"].as_u64() > Some(0), "{s:#}");
    // Every room is somewhere: the mean over the serving nodes says so.
    let e = &s["after_arrivals"];
    assert_eq!(e["nodes"], 5, "{s:#}");
    assert!(
        (e["rooms_mean"].as_f64().unwrap() - 10.0).abs() < 1e-9,
        "{s:#}"
    );
    assert!(e["rooms_max"].as_u64() >= e["rooms_min"].as_u64(), "{s:#}");
    measured(e, "cost_mean");
    assert!(
        e["cost_stddev"].is_f64() && e["rooms_stddev"].is_f64(),
        "{s:#}"
    );
    assert_eq!(s["after_burst"]["nodes"], 5, "{s:#}");
    let d = &s["drain"];
    for figure in ["rooms", "seconds", "move_ms", "targets"] {
        measured(d, figure);
    }
    assert_eq!(
        d["after"]["nodes"], 4,
        "the drained node serves no more: {s:#}"
    );
    assert!(
        (d["after"]["rooms_mean"].as_f64().unwrap() - 12.5).abs() < 1e-9,
        "its rooms moved to the others: {s:#}"
    );
    let md = std::fs::read_to_string(out.join("results.md")).expect("results.md written");
    assert!(md.contains("Cluster simulation"), "{md}");
    let _ = std::fs::remove_dir_all(&out);
}

/// The workspace's root: the benchmark runs from there, as a user runs it,
/// so its clip cache is the one under the workspace's `target/`.
fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ sits in the workspace")
        .to_path_buf()
}
