//! Networking shared by Ordo's agent, controller, cockpit and CLI.
//!
//! - [`certs`]: the cluster CA and leaf certificates (`ordo certs init|issue`), and an
//!   in-memory [`certs::TestPki`] for tests;
//! - [`tls`]: rustls server and client configurations from PEM files (ring provider);
//! - [`identity`]: the [`PeerIdentity`] of a TLS peer and the `ordo:<role>:<id>` URI SANs;
//! - [`serve`]: HTTPS (and dev HTTP) serving of axum routers, WebSocket upgrades included;
//! - [`body`]: large answers streamed in chunks from a blocking writer;
//! - [`frame`]: postcard frames over WebSocket binary messages, size-limited;
//! - [`client`]: WebSocket-over-TLS connect and an HTTPS JSON client;
//! - [`notify`]: readiness for systemd (`NOTIFY_SOCKET`, `READY=1`);
//! - [`api`]: what the controller's and the cockpit's HTTP APIs share (bearer tokens, JSON
//!   error answers).

pub mod api;
pub mod body;
pub mod certs;
pub mod client;
pub mod clock;
pub mod config;
pub mod frame;
pub mod identity;
pub mod notify;
pub mod process;
pub mod serve;
pub mod tls;
mod x509;

pub use identity::PeerIdentity;
pub use x509::CertParseError;

use std::io::{self, Read};
use std::path::Path;

/// Reads a whole file that must not exceed `bytes_max` bytes.
pub(crate) fn read_file_limited(path: &Path, bytes_max: u64) -> io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(bytes_max.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > bytes_max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the file is larger than {bytes_max} bytes"),
        ));
    }
    Ok(bytes)
}
