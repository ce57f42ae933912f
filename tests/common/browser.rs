//! Real browsers for tests: headless Chromium (chromedriver) and Firefox ESR
//! (geckodriver) with fake camera and microphone, driven over WebDriver.
//! Each browser gets its own driver process and a fresh profile.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Chromium,
    Firefox,
}

pub struct Browser {
    pub kind: Kind,
    pub label: String,
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How a browser is set up beyond the defaults.
#[derive(Debug, Default, Clone, Copy)]
struct Options {
    /// Its fake camera's frame rate (Chromium's is 20 otherwise).
    camera_fps: Option<u32>,
    /// A phone's screen, CSS pixels (Chromium's mobile emulation: touch,
    /// a phone's pixel ratio and user agent).
    phone: Option<(u32, u32)>,
}

fn capabilities(
    kind: Kind,
    profile: &std::path::Path,
    secure_origin: Option<&str>,
    options: Options,
) -> serde_json::Map<String, Value> {
    let mut caps = match kind {
        Kind::Chromium => json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
                    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                    "--autoplay-policy=no-user-gesture-required",
                    "--allow-loopback-in-peer-connection",
                    "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }),
        Kind::Firefox => json!({
            "browserName": "firefox",
            "moz:firefoxOptions": {
                "binary": "/usr/bin/firefox-esr",
                "args": ["-headless", "--width=1280", "--height=800", "-profile", profile.display().to_string()],
                "prefs": {
                    "media.navigator.streams.fake": true,
                    "media.navigator.permission.disabled": true,
                    "media.autoplay.default": 0,
                    "media.autoplay.blocking_policy": 0,
                    "media.peerconnection.ice.loopback": true,
                    "media.peerconnection.ice.obfuscate_host_addresses": false,
                    "app.update.enabled": false,
                    "app.normandy.enabled": false,
                    "browser.shell.checkDefaultBrowser": false,
                    "browser.safebrowsing.malware.enabled": false,
                    "browser.safebrowsing.phishing.enabled": false,
                    "datareporting.policy.dataSubmissionEnabled": false,
                    "extensions.update.enabled": false,
                    "network.captive-portal-service.enabled": false,
                    "toolkit.telemetry.enabled": false
                }
            }
        }),
    };
    // A page on a private address is not a secure context, and gets no
    // camera or microphone, unless the browser is told to treat it as one.
    if let (Some(origin), Kind::Chromium) = (secure_origin, kind) {
        caps["goog:chromeOptions"]["args"]
            .as_array_mut()
            .unwrap()
            .push(json!(format!(
                "--unsafely-treat-insecure-origin-as-secure={origin}"
            )));
    }
    // Chromium's fake camera runs at 20 fps unless told otherwise.
    if let (Some(fps), Kind::Chromium) = (options.camera_fps, kind) {
        let args = caps["goog:chromeOptions"]["args"].as_array_mut().unwrap();
        for a in args.iter_mut() {
            if a == "--use-fake-device-for-media-stream" {
                *a = json!(format!("--use-fake-device-for-media-stream=fps={fps}"));
            }
        }
    }
    if let Some((width, height)) = options.phone {
        assert_eq!(kind, Kind::Chromium, "phones are emulated in Chromium");
        caps["goog:chromeOptions"]["mobileEmulation"] = json!({
            "deviceMetrics": {"width": width, "height": height, "pixelRatio": 3.0, "touch": true},
            "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36"
        });
    }
    caps.as_object().unwrap().clone()
}

impl Browser {
    /// Starts a driver and a browser session.
    pub async fn launch(kind: Kind, label: &str) -> Browser {
        Self::launch_in(kind, label, None, None).await
    }

    /// Starts a browser inside `ns` (Chromium only: its driver runs there
    /// and accepts WebDriver from the host end), treating `secure_origin`
    /// (the server as the namespace reaches it) as a secure context.
    pub async fn launch_in(
        kind: Kind,
        label: &str,
        ns: Option<&super::netns::Namespace>,
        secure_origin: Option<&str>,
    ) -> Browser {
        Self::start(kind, label, ns, secure_origin, Options::default()).await
    }

    /// Starts a browser whose fake camera runs at `fps` (Chromium's runs
    /// at 20 otherwise; Firefox's at 30).
    pub async fn launch_at_fps(kind: Kind, label: &str, fps: u32) -> Browser {
        let options = Options {
            camera_fps: Some(fps),
            ..Options::default()
        };
        Self::start(kind, label, None, None, options).await
    }

    /// Starts Chromium emulating a phone whose screen is `width`×`height`
    /// CSS pixels (portrait when taller than wide).
    pub async fn launch_phone(label: &str, width: u32, height: u32) -> Browser {
        let options = Options {
            phone: Some((width, height)),
            ..Options::default()
        };
        Self::start(Kind::Chromium, label, None, None, options).await
    }

    async fn start(
        kind: Kind,
        label: &str,
        ns: Option<&super::netns::Namespace>,
        secure_origin: Option<&str>,
        options: Options,
    ) -> Browser {
        let port = free_port();
        let profile =
            std::env::temp_dir().join(format!("tessera-{label}-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let mut cmd = match (kind, ns) {
            (Kind::Chromium, Some(ns)) => {
                let mut c = ns.command("chromedriver");
                c.arg(format!("--port={port}"));
                c.arg(format!("--allowed-ips={}", ns.host_ip));
                c.arg("--allowed-origins=*");
                c
            }
            (Kind::Firefox, Some(_)) => panic!("only Chromium runs in a namespace"),
            (Kind::Chromium, None) => {
                let mut c = Command::new("chromedriver");
                c.arg(format!("--port={port}"));
                c
            }
            (Kind::Firefox, None) => {
                let mut c = Command::new(geckodriver());
                c.args(["--port", &port.to_string(), "--host", "127.0.0.1"]);
                c
            }
        };
        let driver = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting the {kind:?} driver: {e}; run scripts/setup.sh"));
        let host = ns.map_or("127.0.0.1".to_string(), |ns| ns.ns_ip.to_string());
        let url = format!("http://{host}:{port}");
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::native()
                .capabilities(capabilities(kind, &profile, secure_origin, options))
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        kind,
                        label: label.to_string(),
                        client,
                        driver,
                        profile,
                    }
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("no {kind:?} session: {last:?}");
    }

    /// Runs `body` as an async script: it gets `done` to call with a result.
    pub async fn run(&self, body: &str) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             (async () => {{ {body} }})().then(done, (e) => done({{ error: String(e) }}));"
        );
        self.client
            .execute_async(&script, vec![])
            .await
            .unwrap_or_else(|e| panic!("{}: script failed: {e}", self.label))
    }

    /// `window.tessera.stats()`, or Null before the page has set it up.
    pub async fn stats(&self) -> Value {
        self.run("return window.tessera ? await window.tessera.stats() : null;")
            .await
    }

    /// The colour of the received canvas at (x, y) in canvas pixels, read
    /// back by drawing the video element into a 2D canvas: the mean of the
    /// 9×9 pixels around it.
    pub async fn canvas_rgb(&self, x: u32, y: u32) -> Option<(u8, u8, u8)> {
        self.canvas_rgb_within(x, y, 4).await
    }

    /// The mean colour of the received canvas within `reach` pixels of
    /// (x, y), as [`Browser::canvas_rgb`].
    pub async fn canvas_rgb_within(&self, x: u32, y: u32, reach: u32) -> Option<(u8, u8, u8)> {
        let side = 2 * reach + 1;
        let v = self
            .run(&format!(
                "const v = document.getElementById('canvas');
                 if (!v.videoWidth) return null;
                 const c = document.createElement('canvas');
                 c.width = v.videoWidth; c.height = v.videoHeight;
                 const g = c.getContext('2d');
                 g.drawImage(v, 0, 0);
                 const d = g.getImageData({x} - {reach}, {y} - {reach}, {side}, {side}).data;
                 let r = 0, gr = 0, b = 0;
                 for (let i = 0; i < d.length; i += 4) {{ r += d[i]; gr += d[i + 1]; b += d[i + 2]; }}
                 const n = d.length / 4;
                 return [Math.round(r / n), Math.round(gr / n), Math.round(b / n)];"
            ))
            .await;
        let a = v.as_array()?;
        Some((
            a[0].as_u64()? as u8,
            a[1].as_u64()? as u8,
            a[2].as_u64()? as u8,
        ))
    }

    /// Saves a screenshot of the page under target/tmp for a person to look at.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Kills the browser processes without any goodbye, as a crash would.
    pub fn kill_abruptly(&self) {
        let marker = self.profile.display().to_string();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            if String::from_utf8_lossy(&cmdline).contains(&marker) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Also after a failed test: no browser may outlive it and slow the next.
        self.kill_abruptly();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// geckodriver from PATH, or where `cargo install` puts it.
fn geckodriver() -> PathBuf {
    let in_cargo = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|c| c.join("bin/geckodriver"));
    match in_cargo {
        Some(p) if p.exists() => p,
        _ => PathBuf::from("geckodriver"),
    }
}

/// Waits until `pred` holds for the page's stats; returns whether it did
/// and the last stats.
pub async fn wait_stats(
    b: &Browser,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> (bool, Value) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let s = b.stats().await;
        if pred(&s) {
            return (true, s);
        }
        if std::time::Instant::now() > deadline {
            return (false, s);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
