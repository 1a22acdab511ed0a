//! Readiness for a service manager: systemd's `sd_notify` protocol, the part a server needs.
//!
//! Spec (systemd's `sd_notify(3)`): when the environment holds `NOTIFY_SOCKET`, the process
//! sends one datagram `READY=1` to that `AF_UNIX` socket once it serves. A value starting
//! with `/` is a path; one starting with `@` names a socket in the abstract namespace (the
//! `@` stands for the leading NUL byte). Any other value, or no variable, means nobody
//! listens: nothing is sent. A unit with `Type=notify` counts as started only then, so the
//! units that order themselves after it (and a test that starts the server) wait for a real
//! signal instead of polling its port.

use std::io;
use std::os::unix::net::UnixDatagram;

/// The variable that names the socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Tells the service manager that this process serves (`READY=1`), when one asked for it.
/// A failure is logged, never fatal: the server serves either way.
pub fn ready() {
    let Some(socket) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    let socket = socket.to_string_lossy().into_owned();
    match send(&socket, b"READY=1") {
        Ok(()) => tracing::debug!("told the service manager at {socket} that this server is ready"),
        Err(e) => tracing::warn!(
            "cannot tell the service manager at {socket} that this server is ready: {e}"
        ),
    }
}

/// Sends `message` to the notify socket `socket` (a path or `@abstract`).
fn send(socket: &str, message: &[u8]) -> io::Result<()> {
    let datagram = UnixDatagram::unbound()?;
    if let Some(name) = socket.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        datagram.send_to_addr(message, &address)?;
    } else if socket.starts_with('/') {
        datagram.send_to(message, socket)?;
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is neither a path nor an abstract name (@…)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reaches_a_path_and_an_abstract_socket() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).expect("bind the path");
        send(path.to_str().expect("a UTF-8 path"), b"READY=1").expect("sent");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).expect("received");
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("ordo-notify-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("an abstract name");
        let abstract_listener = UnixDatagram::bind_addr(&address).expect("bind the name");
        send(&format!("@{name}"), b"READY=1").expect("sent");
        let n = abstract_listener.recv(&mut buf).expect("received");
        assert_eq!(&buf[..n], b"READY=1");

        assert!(send("relative/path", b"READY=1").is_err());
    }
}
