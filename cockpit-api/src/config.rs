//! The cockpit's TOML configuration; every key is documented in `deploy/config/cockpit.toml`.
//!
//! ```toml
//! controllers = ["https://127.0.0.1:4443"]   # one or two controller API base URLs
//! controller_ca = "certs/ca.pem"             # the CA that signed their server certificates
//! controller_token = "..."                   # the service token (or controller_token_file)
//! listen = "127.0.0.1:8080"
//! [tls]                                      # optional; without it the cockpit serves plain HTTP
//! certificate = "certs/cockpit.pem"
//! key = "certs/cockpit.key"
//! [[users]]
//! name = "alice"
//! sha256 = "<64 hex digits: the SHA-256 of alice's token>"
//! role = "operator"                          # viewer | operator | admin
//! [follow]                                   # reconnect and keep-alive timing
//! [limits]                                   # sizes and counts
//! ```

use ordo_api::auth::Role;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Largest accepted `limits.state_reads_max`.
pub const STATE_READS_MAX: usize = 1024;

/// Largest token file read, in bytes.
pub const TOKEN_FILE_BYTES_MAX: u64 = 4096;

/// The cockpit's configuration, with relative paths resolved and the service token read.
#[derive(Clone)]
pub struct Config {
    /// Controller API base URLs (`https://host:port`), tried in turn.
    pub controllers: Vec<String>,
    /// The CA certificate (PEM) the controllers' server certificates lead to.
    pub controller_ca: PathBuf,
    /// The service token the cockpit sends to the controllers.
    pub controller_token: String,
    pub listen: SocketAddr,
    /// Server certificate and key; `None` serves plain HTTP (for 127.0.0.1 only).
    pub tls: Option<TlsConfig>,
    pub users: Vec<UserConfig>,
    pub follow: Follow,
    pub limits: Limits,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("controllers", &self.controllers)
            .field("controller_ca", &self.controller_ca)
            .field("controller_token", &"[elided]")
            .field("listen", &self.listen)
            .field("tls", &self.tls)
            .field("users", &self.users)
            .field("follow", &self.follow)
            .field("limits", &self.limits)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// A person or program allowed to use the API: the SHA-256 (hex) of its token and its role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub sha256: String,
    pub role: Role,
}

/// How the cockpit follows the controllers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Follow {
    /// First wait before reconnecting; doubles per failure up to `reconnect_max_ms`.
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// TCP + TLS + WebSocket handshake towards a controller.
    pub connect_timeout_ms: u64,
    /// One whole HTTP request to a controller (the `/state` download included).
    pub request_timeout_ms: u64,
    /// A ping is sent on the event stream after this much silence...
    pub ping_interval_ms: u64,
    /// ...and the stream is given up when nothing at all arrived for this long.
    pub silence_timeout_ms: u64,
    /// How often the agents' link status is read from the controller.
    pub agents_poll_ms: u64,
    /// How often every controller's `/health` is read, to know which one is active.
    pub cluster_poll_ms: u64,
}

impl Default for Follow {
    fn default() -> Self {
        Follow {
            reconnect_min_ms: 200,
            reconnect_max_ms: 10_000,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 90_000,
            ping_interval_ms: 5_000,
            silence_timeout_ms: 20_000,
            agents_poll_ms: 2_000,
            cluster_poll_ms: 1_000,
        }
    }
}

/// Sizes and counts; every external input is bounded by one of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest HTTP request body; larger bodies get 413.
    pub request_bytes_max: usize,
    /// Largest WebSocket message read from a controller (one event); at least the
    /// controller's `limits.event_bytes_max` (both default to
    /// [`ordo_api::limits::EVENT_BYTES_MAX_DEFAULT`]), else an event can stop the
    /// view (`/health` then says `stuck` and why).
    pub frame_bytes_max: usize,
    /// Largest answer read from a controller (`/state` is the big one).
    pub state_bytes_max: usize,
    /// Largest `limit` of `GET /api/v1/orders`; also its default.
    pub orders_per_page_max: usize,
    /// Orders looked at for one `GET /api/v1/orders` page before answering with a `next`
    /// cursor (bounds the work of a request with selective filters).
    pub orders_scanned_per_page_max: usize,
    /// Events kept per order for its history (older ones are dropped).
    pub history_events_per_order_max: usize,
    /// Events read from the controller at start to fill the orders' histories.
    pub history_backfill_events_max: u64,
    /// Events buffered for one live log stream before it is closed as too slow.
    pub stream_events_buffered_max: usize,
    /// Longest wait of a long-poll (or streamed) `GET /api/v1/events`.
    pub long_poll_ms_max: u64,
    /// Whole-state answers (`GET /api/v1/state`, `/snapshot`) written at once; more get 503.
    pub state_reads_max: usize,
    /// Time from a client's connect until its first request head arrived (TLS included).
    pub handshake_timeout_ms: u64,
    /// Time a kept-alive client connection may wait for its next request head.
    pub idle_timeout_ms: u64,
    /// Client connections open at once.
    pub connections_max: usize,
    /// Of those, connections on which no request passed the token check yet; more close the
    /// oldest of them.
    pub unauthenticated_connections_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_bytes_max: 16 << 20,
            frame_bytes_max: ordo_api::limits::EVENT_BYTES_MAX_DEFAULT,
            state_bytes_max: 1 << 30,
            orders_per_page_max: 1000,
            orders_scanned_per_page_max: 100_000,
            history_events_per_order_max: 50,
            history_backfill_events_max: 1_000_000,
            stream_events_buffered_max: 4096,
            long_poll_ms_max: 60_000,
            state_reads_max: 2,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            connections_max: 1024,
            unauthenticated_connections_max: 512,
        }
    }
}

/// The configuration file as written: what [`Config::parse`] reads (then checks and resolves)
/// and what tools that set up a cockpit (`ordo up`) serialise.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub controllers: Vec<String>,
    pub controller_ca: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_token_file: Option<PathBuf>,
    pub listen: SocketAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub users: Vec<UserConfig>,
    #[serde(default)]
    pub follow: Follow,
    #[serde(default)]
    pub limits: Limits,
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile")
            .field("controllers", &self.controllers)
            .field("controller_token_file", &self.controller_token_file)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl ConfigFile {
    /// Reads configuration text (unchecked: [`Config::from_file`] checks it).
    pub fn parse(text: &str) -> Result<ConfigFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Read(#[from] ordo_net::config::ReadError),
    #[error("bad cockpit configuration {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

fn read_limited(path: &Path, bytes_max: u64) -> Result<String, String> {
    let bytes = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if bytes > bytes_max {
        return Err(format!(
            "{} is {bytes} bytes; at most {bytes_max} are read",
            path.display()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Checks a controller base URL: `https://host[:port]`, no path, query or fragment.
pub fn check_controller_url(url: &str) -> Result<String, String> {
    let trimmed = url.trim_end_matches('/');
    let uri: axum::http::Uri = trimmed
        .parse()
        .map_err(|e| format!("controller URL {url:?} does not parse: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "controller URL {url:?} must start with https:// (the controller API is HTTPS only)"
        ));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("controller URL {url:?} has no host"));
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(format!(
            "controller URL {url:?} must be a base URL without a path (https://host:port)"
        ));
    }
    Ok(trimmed.to_owned())
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let (text, base) = ordo_net::config::read(path)?;
        Config::parse(&text, &base).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses configuration text; relative paths are taken relative to `base` (and a
    /// `controller_token_file` is read).
    pub fn parse(text: &str, base: &Path) -> Result<Config, String> {
        Config::from_file(ConfigFile::parse(text)?, base)
    }

    /// Checks a configuration; relative paths are taken relative to `base` (and a
    /// `controller_token_file` is read).
    pub fn from_file(f: ConfigFile, base: &Path) -> Result<Config, String> {
        if f.controllers.is_empty() || f.controllers.len() > 2 {
            return Err(format!(
                "controllers must list one or two controller URLs, not {}",
                f.controllers.len()
            ));
        }
        let controllers = f
            .controllers
            .iter()
            .map(|u| check_controller_url(u))
            .collect::<Result<Vec<_>, _>>()?;
        let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let token = match (f.controller_token, f.controller_token_file) {
            (Some(t), None) => t,
            (None, Some(path)) => read_limited(&abs(path), TOKEN_FILE_BYTES_MAX)?
                .trim()
                .to_owned(),
            (Some(_), Some(_)) => {
                return Err(
                    "set either controller_token or controller_token_file, not both".into(),
                );
            }
            (None, None) => {
                return Err(
                    "controller_token (or controller_token_file) is missing: the cockpit needs a service token for the controller API".into(),
                );
            }
        };
        if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
            return Err(
                "the controller token must be non-empty, without spaces or control characters"
                    .into(),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for u in &f.users {
            if !ordo_api::auth::is_token_hash(&u.sha256) {
                return Err(format!(
                    "user {:?}: sha256 must be 64 hex digits (the SHA-256 of the user's token)",
                    u.name
                ));
            }
            if !names.insert(u.name.clone()) {
                return Err(format!("user {:?} is listed twice", u.name));
            }
        }
        let fo = &f.follow;
        if fo.reconnect_min_ms == 0 || fo.reconnect_max_ms < fo.reconnect_min_ms {
            return Err(
                "follow.reconnect_min_ms must be > 0 and at most follow.reconnect_max_ms".into(),
            );
        }
        if fo.ping_interval_ms == 0 || fo.silence_timeout_ms <= fo.ping_interval_ms {
            return Err(
                "follow.silence_timeout_ms must be greater than follow.ping_interval_ms > 0".into(),
            );
        }
        let l = &f.limits;
        if fo.request_timeout_ms <= l.long_poll_ms_max {
            return Err(
                "follow.request_timeout_ms must be greater than limits.long_poll_ms_max (a long poll is one request)".into(),
            );
        }
        let positive = [
            ("follow.connect_timeout_ms", fo.connect_timeout_ms),
            ("follow.request_timeout_ms", fo.request_timeout_ms),
            ("follow.agents_poll_ms", fo.agents_poll_ms),
            ("follow.cluster_poll_ms", fo.cluster_poll_ms),
            ("limits.request_bytes_max", l.request_bytes_max as u64),
            ("limits.frame_bytes_max", l.frame_bytes_max as u64),
            ("limits.state_bytes_max", l.state_bytes_max as u64),
            ("limits.orders_per_page_max", l.orders_per_page_max as u64),
            (
                "limits.orders_scanned_per_page_max",
                l.orders_scanned_per_page_max as u64,
            ),
            (
                "limits.history_events_per_order_max",
                l.history_events_per_order_max as u64,
            ),
            (
                "limits.stream_events_buffered_max",
                l.stream_events_buffered_max as u64,
            ),
            ("limits.long_poll_ms_max", l.long_poll_ms_max),
            ("limits.state_reads_max", l.state_reads_max as u64),
            ("limits.handshake_timeout_ms", l.handshake_timeout_ms),
            ("limits.idle_timeout_ms", l.idle_timeout_ms),
            ("limits.connections_max", l.connections_max as u64),
            (
                "limits.unauthenticated_connections_max",
                l.unauthenticated_connections_max as u64,
            ),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{key} must be greater than 0"));
        }
        if l.state_reads_max > STATE_READS_MAX {
            return Err(format!(
                "limits.state_reads_max must be at most {STATE_READS_MAX}"
            ));
        }
        if l.unauthenticated_connections_max > l.connections_max {
            return Err(
                "limits.unauthenticated_connections_max must be at most limits.connections_max"
                    .into(),
            );
        }
        Ok(Config {
            controllers,
            controller_ca: abs(f.controller_ca),
            controller_token: token,
            listen: f.listen,
            tls: f.tls.map(|t| TlsConfig {
                certificate: abs(t.certificate),
                key: abs(t.key),
            }),
            users: f.users,
            follow: f.follow,
            limits: f.limits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../deploy/config/cockpit.toml");

    #[test]
    fn the_shipped_example_parses() {
        let c = Config::parse(SHIPPED, Path::new("/etc/ordo")).unwrap();
        assert_eq!(c.controllers, vec!["https://127.0.0.1:4443".to_owned()]);
        assert!(c.controller_ca.starts_with("/etc/ordo"));
        assert!(c.tls.is_none());
        assert_eq!(c.users.len(), 3);
        assert_eq!(c.users[0].role, Role::Admin);
        assert_eq!(c.limits.request_bytes_max, 16 << 20);
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (
                SHIPPED.replace("https://127.0.0.1:4443", "http://127.0.0.1:4443"),
                "https://",
            ),
            (
                SHIPPED.replace("https://127.0.0.1:4443", "https://127.0.0.1:4443/api"),
                "without a path",
            ),
            (
                SHIPPED.replace("sha256 = \"0000", "sha256 = \"zz00"),
                "64 hex digits",
            ),
            (
                SHIPPED.replace("role = \"admin\"", "role = \"root\""),
                "root",
            ),
            (
                SHIPPED.replace("orders_per_page_max = 1000", "orders_per_page_max = 0"),
                "orders_per_page_max",
            ),
            (format!("{SHIPPED}\n[extra]\n"), "extra"),
            (
                SHIPPED.replace("controller_token = ", "# controller_token = "),
                "controller_token",
            ),
            (
                SHIPPED.replace(
                    "controllers = [\"https://127.0.0.1:4443\"]",
                    "controllers = []",
                ),
                "one or two",
            ),
        ];
        for (text, needle) in cases {
            let e = Config::parse(&text, Path::new(".")).unwrap_err();
            assert!(e.contains(needle), "{needle:?} not in {e}");
        }
    }

    #[test]
    fn the_token_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
        let text = SHIPPED.replace(
            "controller_token = \"change-me-service-token\"",
            "controller_token_file = \"token\"",
        );
        let c = Config::parse(&text, dir.path()).unwrap();
        assert_eq!(c.controller_token, "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
