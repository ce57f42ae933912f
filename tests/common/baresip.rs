//! A real SIP phone for tests: baresip (Debian's `baresip`), dialling
//! from loopback with a sine tone as its microphone (`aufile`) and
//! recording what it hears (`sndfile`, the decoded audio).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a test phone calls.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The `From` display name.
    pub name: String,
    /// The `From` user part (the caller's number).
    pub number: String,
    /// The tone it sends, Hz (8 kHz audio: below 4000).
    pub tone_hz: f64,
    /// Digest credentials for the server, if any.
    pub auth: Option<(String, String)>,
    /// baresip's audio codec modules, in preference order (`g711`,
    /// `g722`, `opus`).
    pub codecs: Vec<&'static str>,
}

impl Caller {
    /// A G.711 caller sending `tone_hz`.
    pub fn new(name: &str, number: &str, tone_hz: f64) -> Caller {
        Caller {
            name: name.into(),
            number: number.into(),
            tone_hz,
            auth: None,
            codecs: vec!["g711"],
        }
    }
}

/// A running baresip that dialled a number; killed when dropped.
pub struct Baresip {
    child: Child,
    dir: PathBuf,
    /// Its control socket (`ctrl_tcp`), for keys pressed.
    control: u16,
}

impl Baresip {
    /// Starts baresip and dials `uri` (e.g. `sip:100@127.0.0.1:5080`).
    pub fn dial(caller: &Caller, uri: &str) -> Baresip {
        let port = free_port();
        let control = free_port();
        let dir =
            std::env::temp_dir().join(format!("tessera-baresip-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("rec")).unwrap();
        let tone = dir.join("tone.wav");
        // baresip's aufile wants the file at the codec's own rate.
        let (rate, channels) = match caller.codecs.first() {
            Some(&"g722") => (16000, 1),
            Some(&"opus") => (48000, 2),
            _ => (8000, 1),
        };
        write_tone(&tone, caller.tone_hz, rate, channels, 60);
        let codecs: String = caller
            .codecs
            .iter()
            .map(|c| format!("module\t\t\t{c}.so\n"))
            .collect();
        let config = format!(
            "sip_listen\t\t127.0.0.1:{port}\n\
             net_interface\t\t127.0.0.1\n\
             audio_player\t\taubridge,nil\n\
             audio_alert\t\taubridge,nil\n\
             audio_source\t\taufile,{tone}\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             {codecs}\
             module\t\t\taufile.so\n\
             module\t\t\taubridge.so\n\
             module\t\t\tsndfile.so\n\
             module_app\t\taccount.so\n\
             module_app\t\tmenu.so\n\
             module_app\t\tctrl_tcp.so\n\
             ctrl_tcp_listen\t\t127.0.0.1:{control}\n\
             snd_path\t\t{rec}\n",
            tone = tone.display(),
            rec = dir.join("rec").display(),
        );
        std::fs::write(dir.join("config"), config).unwrap();
        let auth = caller
            .auth
            .as_ref()
            .map(|(u, p)| format!(";auth_user={u};auth_pass={p}"))
            .unwrap_or_default();
        std::fs::write(
            dir.join("accounts"),
            format!(
                "\"{}\" <sip:{}@127.0.0.1>{auth};regint=0\n",
                caller.name, caller.number
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("log")).unwrap();
        let child = Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .arg("-e")
            .arg(format!("/dial {uri}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("baresip runs (Debian package baresip; scripts/setup.sh installs it)");
        Baresip {
            child,
            dir,
            control,
        }
    }

    /// What baresip printed so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.join("log")).unwrap_or_default())
            .into_owned()
    }

    /// Waits until baresip's output contains `text`.
    pub async fn wait_log(&self, text: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(text) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Fails the test, with `why` and what baresip printed, unless its
    /// output contains `text` within `secs` seconds.
    pub async fn expect_log(&self, text: &str, secs: u64, why: &str) {
        assert!(
            self.wait_log(text, Duration::from_secs(secs)).await,
            "{why} (no `{text}` from baresip in {secs} s):\n{}",
            self.log()
        );
    }

    /// The audio it heard (decoded, as baresip's `sndfile` wrote it),
    /// samples in -1..1 at 8 kHz for G.711.
    pub fn heard(&self) -> (Vec<f32>, u32) {
        let Some(path) = std::fs::read_dir(self.dir.join("rec"))
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        else {
            return (Vec::new(), 8000);
        };
        read_wav(&std::fs::read(path).unwrap_or_default())
    }

    /// Presses `keys` on the keypad (sent as RFC 4733 telephone-events),
    /// one after the other.
    pub async fn press(&self, keys: &str) {
        for key in keys.chars() {
            self.command("sndcode", &key.to_string()).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Hangs up (BYE).
    pub async fn hang_up(&self) {
        self.command("hangup", "").await;
    }

    /// Runs one command of baresip's menu over its control socket.
    async fn command(&self, command: &str, params: &str) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut control = tokio::net::TcpStream::connect(("127.0.0.1", self.control))
            .await
            .expect("baresip's control socket");
        let json = format!(r#"{{"command":"{command}","params":"{params}","token":"t"}}"#);
        let framed = format!("{}:{json},", json.len());
        control.write_all(framed.as_bytes()).await.unwrap();
        let mut reply = [0u8; 256];
        let _ = tokio::time::timeout(Duration::from_secs(2), control.read(&mut reply)).await;
    }

    /// Whether the process has ended.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port free for UDP and TCP now, with the next one free for
/// TCP (baresip listens for SIP over TLS there).
fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if port < u16::MAX
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok()
        {
            return port;
        }
    }
}

/// Writes `seconds` of a sine at `hz` (half scale; silence for 0) as a
/// 16-bit WAV file at `rate` with `channels` alike.
pub fn write_tone(path: &Path, hz: f64, rate: u32, channels: u16, seconds: u32) {
    let n = rate * seconds;
    let mut data = Vec::with_capacity(n as usize * 2);
    for i in 0..n {
        let v = if hz > 0.0 {
            (0.5 * (2.0 * std::f64::consts::PI * hz * f64::from(i) / f64::from(rate)).sin()
                * 32767.0) as i16
        } else {
            0
        };
        for _ in 0..channels {
            data.extend_from_slice(&v.to_le_bytes());
        }
    }
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(b"RIFF").unwrap();
    f.write_all(&(36 + data.len() as u32).to_le_bytes())
        .unwrap();
    f.write_all(b"WAVEfmt ").unwrap();
    f.write_all(&16u32.to_le_bytes()).unwrap();
    f.write_all(&1u16.to_le_bytes()).unwrap();
    f.write_all(&channels.to_le_bytes()).unwrap();
    f.write_all(&rate.to_le_bytes()).unwrap();
    f.write_all(&(rate * 2 * u32::from(channels)).to_le_bytes())
        .unwrap();
    f.write_all(&(2 * channels).to_le_bytes()).unwrap();
    f.write_all(&16u16.to_le_bytes()).unwrap();
    f.write_all(b"data").unwrap();
    f.write_all(&(data.len() as u32).to_le_bytes()).unwrap();
    f.write_all(&data).unwrap();
}

/// The samples (of the first channel) and rate of a 16-bit PCM WAV file
/// (its `fmt ` and `data` chunks; a `data` chunk still being written is
/// read to the end).
pub fn read_wav(bytes: &[u8]) -> (Vec<f32>, u32) {
    let mut rate = 8000;
    let mut channels = 1usize;
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &bytes[at + 8..];
        if id == b"fmt " && body.len() >= 8 {
            channels = usize::from(u16::from_le_bytes([body[2], body[3]])).max(1);
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
        }
        if id == b"data" {
            let samples = body
                .chunks_exact(2 * channels)
                .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
                .collect();
            return (samples, rate);
        }
        at += 8 + len + (len & 1);
    }
    (Vec::new(), rate)
}
