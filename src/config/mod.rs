//! Typed configuration: `config/default.toml`, or the file given with
//! `--config`, then `TESSERA_*` environment variables for single keys
//! (`TESSERA_MEDIA__CANVAS_WIDTH=640` sets `media.canvas_width`).
//!
//! Every field has a default, so the server runs with no file at all.
//! Unknown keys are errors, and every error names the file and the field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::ids::CodecFamily;

mod cluster;
mod downlink;
mod rooms;
mod security;
mod sip;
pub use cluster::ClusterConfig;
pub use downlink::DownlinkConfig;
pub use rooms::{P2pPolicy, RoomsConfig};
pub use security::{AuthConfig, AuthMode, IceConfig, LimitsConfig};
pub use sip::SipConfig;

/// The config file read when `--config` is not given, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";
/// Prefix of environment variables that override single keys.
pub const ENV_PREFIX: &str = "TESSERA_";

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP and WebSocket listener.
    pub server: ServerConfig,
    /// Canvas, codecs and encoder templates.
    pub media: MediaConfig,
    /// Layout files.
    pub layouts: LayoutsConfig,
    /// The admin HTTP API.
    pub admin: AdminConfig,
    /// Lesson recordings.
    pub recording: RecordingConfig,
    /// Join tokens.
    pub auth: AuthConfig,
    /// Caps on sockets, messages, rooms and incoming video.
    pub limits: LimitsConfig,
    /// STUN/TURN for clients and the server's own candidates.
    pub ice: IceConfig,
    /// Quality tiers of the canvas, and moving receivers between them.
    pub downlink: DownlinkConfig,
    /// Peer-to-peer for rooms of two.
    pub rooms: RoomsConfig,
    /// Several nodes sharing rooms through Redis.
    pub cluster: ClusterConfig,
    /// Phone callers over SIP.
    pub sip: SipConfig,
}

/// `[recording]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Where recordings go, one directory each (also `TESSERA_RECORDINGS_DIR`).
    pub dir: PathBuf,
    /// Length of one file segment, seconds. A crash loses at most the open one.
    pub segment_seconds: u32,
    /// Join the segments into one playable file when a recording stops.
    pub export: bool,
    /// Recording refuses to start, and stops, below this much free space (MiB).
    pub min_free_mb: u64,
    /// Rooms whose id matches one of these patterns (`*` any run of
    /// characters, `?` one) record from their first participant on.
    pub auto_record: Vec<String>,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("recordings"),
            segment_seconds: 10,
            export: true,
            min_free_mb: 500,
            auto_record: Vec::new(),
        }
    }
}

/// `[admin]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bearer key for `/api/*` admin calls (also `TESSERA_ADMIN_KEY`).
    /// Empty: the admin API is open, and only while the server listens on
    /// loopback; on any other address it answers 403 until a key is set.
    pub key: String,
}

/// `[layouts]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LayoutsConfig {
    /// Directory of layout files (`*.toml`). The built-in layouts are always
    /// available; a file of the same name replaces one.
    pub dir: PathBuf,
    /// Layout a new room starts with.
    pub default: String,
    /// The active speaker keeps the floor at least this long (milliseconds)
    /// before a louder voice takes it, so the `speaker` slot does not flap.
    pub speaker_hold_ms: u64,
}

impl Default for LayoutsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("layouts"),
            default: "grid".into(),
            speaker_hold_ms: 2000,
        }
    }
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address for HTTP and WebSocket signaling. Loopback by default, so a
    /// fresh install is not reachable from the network until an admin says so.
    pub listen: SocketAddr,
    /// The address people reach the server at, for links such as the one
    /// `tessera token` prints. Empty: `http://` plus `listen`.
    pub public_url: String,
    /// Web pages allowed to open the signaling WebSocket, as origins
    /// (`https://school.example.org`). The server's own pages always are;
    /// clients that send no `Origin` (not browsers) are not affected.
    pub allowed_origins: Vec<String>,
    /// PEM certificate chain: with `tls_key`, the server speaks HTTPS and
    /// WSS itself. Empty: plain HTTP (put a TLS proxy in front).
    pub tls_cert: PathBuf,
    /// PEM private key for `tls_cert`.
    pub tls_key: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: String::new(),
            allowed_origins: Vec::new(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
        }
    }
}

impl ServerConfig {
    /// Whether the server serves TLS itself.
    pub fn tls(&self) -> bool {
        !self.tls_cert.as_os_str().is_empty()
    }

    /// `public_url`, or the listen address as an `http://` URL, without a
    /// trailing slash.
    pub fn base_url(&self) -> String {
        if self.public_url.is_empty() {
            let scheme = if self.tls() { "https" } else { "http" };
            format!("{scheme}://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }
}

/// `[media]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Canvas width in pixels (even).
    pub canvas_width: u32,
    /// Canvas height in pixels (even).
    pub canvas_height: u32,
    /// Canvas frames per second.
    pub framerate: u32,
    /// Family chosen when an offer has both VP8 and H.264 and the client asked for neither.
    pub preferred_codec: CodecFamily,
    /// Directory of encoder templates (`vp8.pipeline`, `h264.pipeline`, `opus.pipeline`).
    /// When it does not exist the built-in templates are used.
    pub pipelines_dir: PathBuf,
    /// Receive jitter buffer in milliseconds. GStreamer's default of 200 ms
    /// alone would eat most of a conversational latency budget.
    pub jitter_buffer_ms: u32,
    /// Shortest time between two keyframes forced by receivers' PLI/FIR, per family.
    pub keyframe_min_interval_ms: u64,
    /// Lowest UDP port for media (ICE). 0 with `rtp_port_max` 0: any free port.
    pub rtp_port_min: u16,
    /// Highest UDP port for media (ICE). Open this range in the firewall.
    pub rtp_port_max: u16,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            canvas_width: 1280,
            canvas_height: 720,
            framerate: 30,
            preferred_codec: CodecFamily::Vp8,
            pipelines_dir: PathBuf::from("pipelines"),
            jitter_buffer_ms: 60,
            keyframe_min_interval_ms: 1000,
            rtp_port_min: 0,
            rtp_port_max: 0,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file given with `--config` does not exist.
    #[error("config file {path} not found; pass an existing file to --config, or omit it to use {DEFAULT_CONFIG_PATH}")]
    NotFound {
        /// Path given.
        path: PathBuf,
    },
    /// TOML syntax, an unknown key or a wrong type (figment names file and key).
    #[error(transparent)]
    Parse(#[from] Box<figment::Error>),
    /// A `TESSERA_*` variable's value does not fit its key.
    #[error("environment variable {variable}: `{key}` {problem}")]
    EnvValue {
        /// The variable.
        variable: String,
        /// Dotted key it sets.
        key: String,
        /// What is wrong with the value, and what the key expects.
        problem: String,
    },
    /// A `TESSERA_*` variable names a key the configuration does not have.
    #[error("environment variable {variable}: {problem}; allowed: {allowed}")]
    UnknownEnvKey {
        /// The variable, e.g. `TESSERA_MEDIA__CANVAS_WIDE`.
        variable: String,
        /// What it names and why that is not a key.
        problem: String,
        /// The sections (or the section's keys) that exist.
        allowed: String,
    },
    /// A value of the right type but outside its range.
    #[error("{source_name}: `{field}` {reason}")]
    Invalid {
        /// The file (or "defaults") the bad value came from.
        source_name: String,
        /// Dotted key, e.g. `media.canvas_width`.
        field: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

impl Config {
    /// Loads the configuration: built-in defaults, then the file, then the environment.
    ///
    /// With `path == None`, [`DEFAULT_CONFIG_PATH`] is read if it exists.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// Like [`Config::load`] but with the environment given explicitly (for tests).
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let file = match path {
            Some(p) if !p.exists() => {
                return Err(ConfigError::NotFound {
                    path: p.to_path_buf(),
                })
            }
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_PATH)).filter(|p| p.exists()),
        };
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = &file {
            figment = figment.merge(Toml::file_exact(f));
        }
        // Only TESSERA_<SECTION>__<KEY> variables are config keys; TESSERA_LOG is
        // the log filter and is read elsewhere.
        let mut overridden = Vec::new();
        for (key, value) in env {
            let Some(rest) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            // Short names for secrets that deployments set on their own.
            let rest = match rest {
                "ADMIN_KEY" => "ADMIN__KEY",
                "TOKEN_SECRET" => "AUTH__SECRET",
                "TURN_SECRET" => "ICE__TURN_SECRET",
                "RECORDINGS_DIR" => "RECORDING__DIR",
                other => other,
            };
            if !rest.contains("__") {
                continue;
            }
            let path = rest.to_ascii_lowercase().replace("__", ".");
            check_env_key(&key, &path)?;
            figment = figment.merge(EnvKey {
                variable: key.clone(),
                toml: env_as_toml(&path, &value),
            });
            overridden.push(key);
        }
        let config: Config = figment
            .extract()
            .map_err(|e| env_value_error(&e).unwrap_or_else(|| ConfigError::Parse(Box::new(e))))?;
        let mut source_name = file
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "built-in defaults".into());
        if !overridden.is_empty() {
            source_name = format!("{source_name} with {}", overridden.join(", "));
        }
        config.validate(&source_name)?;
        Ok(config)
    }

    /// Checks ranges that the types cannot express.
    pub fn validate(&self, source_name: &str) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, reason: String| ConfigError::Invalid {
            source_name: source_name.to_string(),
            field,
            reason,
        };
        let m = &self.media;
        for (field, v) in [
            ("media.canvas_width", m.canvas_width),
            ("media.canvas_height", m.canvas_height),
        ] {
            if !(64..=3840).contains(&v) || v % 2 != 0 {
                return Err(invalid(
                    field,
                    format!("is {v}; use an even number from 64 to 3840"),
                ));
            }
        }
        if !(1..=60).contains(&m.framerate) {
            return Err(invalid(
                "media.framerate",
                format!("is {}; use 1 to 60", m.framerate),
            ));
        }
        if m.jitter_buffer_ms > 2000 {
            return Err(invalid(
                "media.jitter_buffer_ms",
                format!("is {}; use 0 to 2000", m.jitter_buffer_ms),
            ));
        }
        if (m.rtp_port_min == 0) != (m.rtp_port_max == 0) || m.rtp_port_min > m.rtp_port_max {
            return Err(invalid(
                "media.rtp_port_min",
                format!(
                    "and media.rtp_port_max are {} and {}; set both to 0 (any port) or to a range with min <= max",
                    m.rtp_port_min, m.rtp_port_max
                ),
            ));
        }
        for (i, p) in self.recording.auto_record.iter().enumerate() {
            if let Err(e) = glob::Pattern::new(p) {
                return Err(ConfigError::Invalid {
                    source_name: source_name.to_string(),
                    field: "recording.auto_record",
                    reason: format!(
                        "pattern {i} `{p}` is invalid ({e}); use letters, digits, `*` and `?`"
                    ),
                });
            }
        }
        self.validate_security(source_name)?;
        self.downlink
            .validate((m.canvas_width, m.canvas_height), m.framerate, source_name)?;
        self.rooms.validate(source_name)?;
        self.cluster.validate(source_name)?;
        self.sip.validate(source_name)?;
        if !(2..=3600).contains(&self.recording.segment_seconds) {
            return Err(invalid(
                "recording.segment_seconds",
                format!("is {}; use 2 to 3600", self.recording.segment_seconds),
            ));
        }
        Ok(())
    }
}

/// Checks that a `TESSERA_<SECTION>__<KEY>` variable names a key of the
/// configuration (`path` is `section.key`), so that a typo or a setting of
/// a newer version is refused with the variable's name and what exists.
fn check_env_key(variable: &str, path: &str) -> Result<(), ConfigError> {
    let known = serde_json::to_value(Config::default()).unwrap_or_default();
    let names = |v: &serde_json::Value| -> String {
        v.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    let refuse = |problem: String, allowed: String| ConfigError::UnknownEnvKey {
        variable: variable.to_string(),
        problem,
        allowed,
    };
    let Some((section, key)) = path.split_once('.') else {
        return Ok(());
    };
    let Some(keys) = known.get(section).filter(|v| v.is_object()) else {
        return Err(refuse(
            format!("there is no section `[{section}]`"),
            format!(
                "TESSERA_<SECTION>__<KEY> with a section of {}",
                names(&known)
            ),
        ));
    };
    if key.contains('.') || keys.get(key).is_none() {
        return Err(refuse(
            format!("`{path}` is not a key of `[{section}]`"),
            names(keys),
        ));
    }
    Ok(())
}

/// A figment error that came from one environment variable's override,
/// told against that variable and its key.
fn env_value_error(e: &figment::Error) -> Option<ConfigError> {
    let variable = e
        .metadata
        .as_ref()?
        .name
        .strip_prefix("environment variable ")?
        .to_string();
    // The path starts with figment's profile (`default`).
    let key = e
        .path
        .iter()
        .skip_while(|p| p.as_str() == figment::Profile::Default.as_str())
        .cloned()
        .collect::<Vec<_>>()
        .join(".");
    Some(ConfigError::EnvValue {
        variable,
        key,
        problem: e.kind.to_string(),
    })
}

/// One environment variable's override, named after the variable so that
/// a wrong type is reported against it rather than an anonymous string.
struct EnvKey {
    variable: String,
    toml: String,
}

impl figment::Provider for EnvKey {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(format!("environment variable {}", self.variable))
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Toml::string(&self.toml).data()
    }
}

/// One `section.key=value` override as a TOML document. Numbers and booleans
/// stay typed; anything else becomes a string.
fn env_as_toml(path: &str, value: &str) -> String {
    let (section, key) = path.rsplit_once('.').unwrap_or(("", path));
    // Keys and secrets are strings even when they look like numbers.
    let secret = key.ends_with("key") || key.ends_with("secret");
    // `[...]` is a TOML list, e.g. `["https://a.example", "https://b.example"]`.
    let typed = !secret
        && (value.starts_with('[')
            || value.parse::<i64>().is_ok()
            || value.parse::<f64>().is_ok()
            || value == "true"
            || value == "false");
    let value = if typed {
        value.to_string()
    } else {
        serde_json::to_string(value).unwrap_or_default()
    };
    if section.is_empty() {
        format!("{key} = {value}\n")
    } else {
        format!("[{section}]\n{key} = {value}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_tmp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tessera-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        path
    }

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn a_broken_auto_record_pattern_is_named() {
        let path = write_tmp(
            "auto.toml",
            "[recording]\nauto_record = [\"class-*\", \"[\"]\n",
        );
        let e = Config::load_with_env(Some(&path), no_env())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("recording.auto_record") && e.contains("pattern 1 `[`"),
            "{e}"
        );
    }

    #[test]
    fn shipped_default_file_matches_built_in_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_PATH);
        let c = Config::load_with_env(Some(&path), no_env()).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn an_unknown_environment_key_names_the_variable_and_what_exists() {
        let e = Config::load_with_env(
            None,
            vec![(
                "TESSERA_CLUSTRE__REDIS_URL".to_string(),
                "redis://x".to_string(),
            )],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(
                "environment variable TESSERA_CLUSTRE__REDIS_URL: there is no section `[clustre]`"
            ),
            "{e}"
        );
        assert!(e.contains("media") && e.contains("recording"), "{e}");
        assert!(!e.contains("TOML source string"), "{e}");
        let e = Config::load_with_env(
            None,
            vec![("TESSERA_MEDIA__CANVAS_WIDE".to_string(), "3".to_string())],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`media.canvas_wide` is not a key of `[media]`"),
            "{e}"
        );
        assert!(e.contains("canvas_width"), "{e}");
        let e = Config::load_with_env(
            None,
            vec![(
                "TESSERA_MEDIA__CANVAS_WIDTH".to_string(),
                "wide".to_string(),
            )],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "environment variable TESSERA_MEDIA__CANVAS_WIDTH: `media.canvas_width` \
             invalid type: found string \"wide\", expected u32"
        );
    }

    #[test]
    fn env_overrides_single_keys() {
        let path = write_tmp("env.toml", "[media]\ncanvas_width = 640\n");
        let env = vec![
            (
                "TESSERA_MEDIA__CANVAS_HEIGHT".to_string(),
                "360".to_string(),
            ),
            (
                "TESSERA_SERVER__LISTEN".to_string(),
                "127.0.0.1:9999".to_string(),
            ),
            ("TESSERA_LOG".to_string(), "debug".to_string()),
        ];
        let c = Config::load_with_env(Some(&path), env).unwrap();
        assert_eq!((c.media.canvas_width, c.media.canvas_height), (640, 360));
        assert_eq!(c.server.listen.port(), 9999);
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let path = write_tmp("unknown.toml", "[media]\ncanvas_widht = 640\n");
        let e = Config::load_with_env(Some(&path), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("canvas_widht"), "{e}");
        assert!(e.contains("unknown.toml"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let path = write_tmp("type.toml", "[media]\nframerate = \"fast\"\n");
        let e = Config::load_with_env(Some(&path), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("framerate"), "{e}");
    }

    #[test]
    fn out_of_range_names_file_field_and_fix() {
        let path = write_tmp("range.toml", "[media]\ncanvas_width = 641\n");
        let e = Config::load_with_env(Some(&path), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("range.toml"), "{e}");
        assert!(e.contains("media.canvas_width"), "{e}");
        assert!(e.contains("even number"), "{e}");
    }

    #[test]
    fn half_a_port_range_is_an_error() {
        let path = write_tmp("ports.toml", "[media]\nrtp_port_min = 40000\n");
        let e = Config::load_with_env(Some(&path), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("media.rtp_port_min"), "{e}");
        let path = write_tmp(
            "ports2.toml",
            "[media]\nrtp_port_min = 40000\nrtp_port_max = 40100\n",
        );
        assert!(Config::load_with_env(Some(&path), no_env()).is_ok());
    }

    #[test]
    fn relay_only_needs_a_turn_server() {
        let path = write_tmp("relay.toml", "[ice]\nrelay_only = true\n");
        let e = Config::load_with_env(Some(&path), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("`ice.relay_only` needs a TURN server"), "{e}");
        let path = write_tmp(
            "relay2.toml",
            "[ice]\nrelay_only = true\nturn = [\"turn:127.0.0.1:3478\"]\nturn_secret = \"0123456789abcdef0123\"\n",
        );
        assert!(
            Config::load_with_env(Some(&path), no_env())
                .unwrap()
                .ice
                .relay_only
        );
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let e =
            Config::load_with_env(Some(Path::new("/nonexistent/x.toml")), no_env()).unwrap_err();
        assert!(matches!(e, ConfigError::NotFound { .. }));
    }
}
