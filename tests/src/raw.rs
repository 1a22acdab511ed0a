//! A bare HTTP/1.1 client over one TLS connection of its own: for tests that must know which
//! connection a request travels on (kept-alive or closed), or that read an answer slowly.

use anyhow::{Context, Result, anyhow, bail};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

/// Largest answer head read.
const HEAD_BYTES_MAX: usize = 64 * 1024;

/// One kept-alive TLS connection.
pub struct RawConnection {
    stream: TlsStream<TcpStream>,
    /// Bytes read after the last head.
    pending: Vec<u8>,
}

/// The status line and headers of an answer.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl RawConnection {
    /// Connects to `addr` (server name `localhost`); `receive_buffer_bytes` sets `SO_RCVBUF`
    /// (which also stops the kernel from growing it), for a client that reads slowly.
    pub async fn connect(
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
        receive_buffer_bytes: Option<u32>,
    ) -> Result<RawConnection> {
        let socket = TcpSocket::new_v4()?;
        if let Some(bytes) = receive_buffer_bytes {
            socket.set_recv_buffer_size(bytes)?;
        }
        let tcp = socket.connect(addr).await.context("connecting")?;
        let name = rustls::pki_types::ServerName::try_from("localhost")?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        Ok(RawConnection {
            stream,
            pending: Vec::new(),
        })
    }

    /// Sends `GET path` with an optional bearer token.
    pub async fn send_get(&mut self, path: &str, token: Option<&str>) -> Result<()> {
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n");
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        request.push_str("\r\n");
        self.stream.write_all(request.as_bytes()).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Reads the next answer's head.
    pub async fn read_head(&mut self) -> Result<Head> {
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(i) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if self.pending.len() > HEAD_BYTES_MAX {
                bail!("an answer head longer than {HEAD_BYTES_MAX} bytes");
            }
            let n = self.stream.read(&mut buf).await?;
            if n == 0 {
                bail!("the connection closed before an answer head");
            }
            self.pending.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&self.pending[..end]).into_owned();
        self.pending.drain(..end + 4);
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("not an HTTP answer: {head}"))?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Ok(Head { status, headers })
    }

    /// Reads a body of `Content-Length` bytes.
    pub async fn read_body(&mut self, head: &Head) -> Result<Vec<u8>> {
        let length: usize = head
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("no Content-Length: {head:?}"))?;
        let mut buf = [0u8; 4096];
        while self.pending.len() < length {
            let n = self.stream.read(&mut buf).await?;
            if n == 0 {
                bail!("the connection closed within a body");
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
        Ok(self.pending.drain(..length).collect())
    }

    /// `GET path` and its whole answer (bodies with `Content-Length` only).
    pub async fn get(&mut self, path: &str, token: Option<&str>) -> Result<(Head, Vec<u8>)> {
        self.send_get(path, token).await?;
        let head = self.read_head().await?;
        let body = self.read_body(&head).await?;
        Ok((head, body))
    }
}
