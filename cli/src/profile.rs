//! Where the API is and how to reach it: flags, environment, profile file.
//!
//! Each setting comes from the first of: its flag (`--api`, `--token`, `--ca`), its
//! environment variable (`ORDO_API`, `ORDO_TOKEN`, `ORDO_CA`), the profile file.
//!
//! The profile file is TOML with three optional keys, all strings:
//!
//! ```toml
//! api = "https://127.0.0.1:4443"   # the cockpit API (a trailing /api/v1 is accepted)
//! token = "9f2c…"                  # an API token (the token itself, not its SHA-256)
//! ca = "certs/ca.pem"              # CA certificate (PEM) of a private CA; relative to the file
//! ```
//!
//! It is read from `$ORDO_CONFIG` if set, else `$XDG_CONFIG_HOME/ordo/profile.toml`, else
//! `$HOME/.config/ordo/profile.toml`; a missing file is no error, a bad one is. `ordo up`
//! writes it with [`Profile::save`].

use crate::exit::Failure;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Largest profile file read.
pub const PROFILE_BYTES_MAX: u64 = 64 * 1024;

/// Connection flags shared by every command that talks to the API.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Global {
    /// Cockpit API URL, e.g. https://ordo.example:4443 (http:// only for 127.0.0.1/localhost).
    #[arg(long, global = true, env = "ORDO_API", value_name = "URL", hide = true)]
    pub api: Option<String>,
    /// API token.
    #[arg(
        long,
        global = true,
        env = "ORDO_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        hide = true
    )]
    pub token: Option<String>,
    /// CA certificate (PEM) the API's certificate is checked against (default: the system's).
    #[arg(long, global = true, env = "ORDO_CA", value_name = "PATH", hide = true)]
    pub ca: Option<PathBuf>,
}

/// The profile file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
}

/// The settings in force for one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub api: String,
    pub token: Option<String>,
    pub ca: Option<PathBuf>,
}

/// The profile file's path: `$ORDO_CONFIG`, else under the user's configuration folder.
pub fn default_path() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(p) = env("ORDO_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let base = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("ordo").join("profile.toml"))
}

impl Profile {
    /// Reads a profile; `Ok(None)` when the file does not exist. A relative `ca` is made
    /// relative to the file's folder.
    pub fn load(path: &Path) -> Result<Option<Profile>, Failure> {
        use std::io::Read;
        let bad = |why: String| Failure::usage(format!("profile {}: {why}", path.display()));
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(format!("cannot read: {e}"))),
        };
        let mut text = String::new();
        file.take(PROFILE_BYTES_MAX + 1)
            .read_to_string(&mut text)
            .map_err(|e| bad(format!("cannot read: {e}")))?;
        if text.len() as u64 > PROFILE_BYTES_MAX {
            return Err(bad(format!(
                "larger than {PROFILE_BYTES_MAX} bytes; not a profile"
            )));
        }
        let mut profile: Profile = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if let Some(ca) = &profile.ca
            && ca.is_relative()
        {
            profile.ca = Some(path.parent().unwrap_or(Path::new(".")).join(ca));
        }
        Ok(Some(profile))
    }

    /// Writes the profile (mode 0600: it holds a token), creating its folder; `ordo up`
    /// writes its profile this way.
    #[cfg_attr(not(feature = "servers"), allow(dead_code))]
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = toml::to_string(self).map_err(std::io::Error::other)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(text.as_bytes())
    }
}

impl Global {
    /// The settings: flags and environment (clap has merged those), then the profile.
    pub fn settings(&self) -> Result<Settings, Failure> {
        let profile = match default_path() {
            Some(p) => Profile::load(&p)?.unwrap_or_default(),
            None => Profile::default(),
        };
        let api = self.api.clone().or(profile.api).ok_or_else(|| {
            Failure::usage(
                "no API URL: give --api URL, set ORDO_API, or write a profile (ordo up writes one)",
            )
        })?;
        Ok(Settings {
            api,
            token: self.token.clone().or(profile.token),
            ca: self.ca.clone().or(profile.ca),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_round_trip_and_resolve_a_relative_ca() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/profile.toml");
        let p = Profile {
            api: Some("https://127.0.0.1:1".into()),
            token: Some("t".into()),
            ca: Some("ca.pem".into()),
        };
        p.save(&path).unwrap();
        let back = Profile::load(&path).unwrap().unwrap();
        assert_eq!(back.api, p.api);
        assert_eq!(back.ca, Some(dir.path().join("sub/ca.pem")));
        assert!(
            Profile::load(&dir.path().join("none.toml"))
                .unwrap()
                .is_none()
        );
        std::fs::write(&path, "api = 3\n").unwrap();
        let e = Profile::load(&path).unwrap_err();
        assert_eq!(e.exit, crate::exit::Exit::Usage);
        assert!(e.message.contains("profile.toml"), "{}", e.message);
    }
}
