//! The recordings admin API as tests drive it: start, stop and wait for the
//! export, read a manifest.

use std::time::Duration;

use serde_json::Value;

/// GET `url` as JSON.
pub async fn get(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// Starts recording `room` over the API; returns the recording's id.
pub async fn start_recording(http: &reqwest::Client, api: &str, room: &str) -> String {
    let r = http
        .post(format!("{api}/rooms/{room}/recording"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_string()
}

/// Stops recording `room` and waits for the export (or its error); returns
/// the final manifest.
pub async fn stop_and_export(http: &reqwest::Client, api: &str, room: &str, id: &str) -> Value {
    let r = http
        .delete(format!("{api}/rooms/{room}/recording"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut manifest = Value::Null;
    for _ in 0..100 {
        manifest = get(http, &format!("{api}/recordings/{id}")).await;
        if manifest["export"].is_string() || manifest["error"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    manifest
}

/// A test config recording into a fresh directory named for `name`
/// (emptied first) and content with 1 MiB of free disk; returns it and the
/// directory.
pub fn recording_config(name: &str) -> (tessera::config::Config, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("tessera-rec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = super::test_config();
    config.recording.dir = dir.clone();
    config.recording.min_free_mb = 1;
    (config, dir)
}
