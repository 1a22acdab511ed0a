//! postcard frames over WebSocket binary messages.
//!
//! Format: one WebSocket binary message carries exactly one postcard-encoded value, with no
//! header and no trailing bytes. Versioning belongs to the value's type (a versioned enum).
//! A message larger than `frame_bytes_max` is refused on both sides: the sender gets
//! [`FrameError::TooLarge`] before anything is written, and the receiver's WebSocket layer stops
//! reading it (configure it with [`ws_config`] / [`limit_upgrade`]) and reports the same error.
//! Text messages are a protocol error.
//!
//! Pings and pongs are the caller's business: the WebSocket layer answers a ping by itself when
//! the socket is next read or written, but never sends pings, so a caller that must notice a
//! half-open connection sends [`send_ping`] on a timer and watches for pongs with [`recv_any`].
//! [`recv`] skips pings and pongs. Both receive functions are cancel-safe (the only await is
//! the read of the next message), so they can sit in a `tokio::select!` next to a timer.
//!
//! [`send`] and [`recv`] work with any [`WsTransport`]: axum's server-side `WebSocket` and
//! tokio-tungstenite's `WebSocketStream` implement it.

use std::future::Future;

use axum::extract::ws::{self as axum_ws, WebSocket, WebSocketUpgrade};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message, protocol::WebSocketConfig};

/// Why a frame could not be sent or received.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {bytes} bytes exceeds the limit of {frame_bytes_max} bytes")]
    TooLarge {
        bytes: usize,
        frame_bytes_max: usize,
    },
    #[error("encoding a frame failed: {0}")]
    Encode(postcard::Error),
    #[error("decoding a frame of {bytes} bytes failed: {source}")]
    Decode {
        bytes: usize,
        source: postcard::Error,
    },
    #[error("frame of {bytes} bytes has {trailing} bytes after its value")]
    TrailingBytes { bytes: usize, trailing: usize },
    #[error("expected a binary WebSocket message, got a text message")]
    UnexpectedText,
    #[error("WebSocket failed: {0}")]
    Transport(String),
}

/// A WebSocket message as [`WsTransport`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Binary(Bytes),
    Text,
    Ping(Bytes),
    Pong(Bytes),
    /// A close frame or the end of the stream.
    Closed,
}

/// What [`recv_any`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received<T> {
    Frame(T),
    Ping(Bytes),
    Pong(Bytes),
    /// The peer closed the WebSocket (or the stream ended).
    Closed,
}

/// A WebSocket that can carry binary frames.
pub trait WsTransport: Send {
    /// Sends one binary message (flushed).
    fn send_binary(
        &mut self,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), FrameError>> + Send;
    /// Sends a ping with `payload` (at most 125 bytes).
    fn send_ping(&mut self, payload: Bytes) -> impl Future<Output = Result<(), FrameError>> + Send;
    /// Reads the next message.
    fn next_inbound(&mut self) -> impl Future<Output = Result<Inbound, FrameError>> + Send;
}

/// Encodes `msg` with postcard; [`FrameError::TooLarge`] beyond `frame_bytes_max`.
pub fn encode<T: Serialize + ?Sized>(
    msg: &T,
    frame_bytes_max: usize,
) -> Result<Vec<u8>, FrameError> {
    let bytes = postcard::to_allocvec(msg).map_err(FrameError::Encode)?;
    if bytes.len() > frame_bytes_max {
        return Err(FrameError::TooLarge {
            bytes: bytes.len(),
            frame_bytes_max,
        });
    }
    Ok(bytes)
}

/// Decodes one postcard value that must fill `bytes` exactly.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], frame_bytes_max: usize) -> Result<T, FrameError> {
    if bytes.len() > frame_bytes_max {
        return Err(FrameError::TooLarge {
            bytes: bytes.len(),
            frame_bytes_max,
        });
    }
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|source| FrameError::Decode {
        bytes: bytes.len(),
        source,
    })?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes {
            bytes: bytes.len(),
            trailing: rest.len(),
        });
    }
    Ok(value)
}

/// Encodes `msg` and sends it as one binary message.
pub async fn send<S: WsTransport, T: Serialize + ?Sized>(
    ws: &mut S,
    msg: &T,
    frame_bytes_max: usize,
) -> Result<(), FrameError> {
    let bytes = encode(msg, frame_bytes_max)?;
    ws.send_binary(Bytes::from(bytes)).await
}

/// Sends a ping (for heartbeats).
pub async fn send_ping<S: WsTransport>(ws: &mut S, payload: Bytes) -> Result<(), FrameError> {
    ws.send_ping(payload).await
}

/// Receives the next frame, skipping pings and pongs; `None` when the peer closed.
pub async fn recv<S: WsTransport, T: DeserializeOwned>(
    ws: &mut S,
    frame_bytes_max: usize,
) -> Result<Option<T>, FrameError> {
    loop {
        match recv_any(ws, frame_bytes_max).await? {
            Received::Frame(value) => return Ok(Some(value)),
            Received::Closed => return Ok(None),
            Received::Ping(_) | Received::Pong(_) => {}
        }
    }
}

/// Receives the next frame, ping, pong or close.
pub async fn recv_any<S: WsTransport, T: DeserializeOwned>(
    ws: &mut S,
    frame_bytes_max: usize,
) -> Result<Received<T>, FrameError> {
    match ws.next_inbound().await? {
        Inbound::Binary(bytes) => decode(&bytes, frame_bytes_max).map(Received::Frame),
        Inbound::Text => Err(FrameError::UnexpectedText),
        Inbound::Ping(payload) => Ok(Received::Ping(payload)),
        Inbound::Pong(payload) => Ok(Received::Pong(payload)),
        Inbound::Closed => Ok(Received::Closed),
    }
}

/// A tungstenite configuration whose message and frame limits are `frame_bytes_max`.
pub fn ws_config(frame_bytes_max: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(frame_bytes_max))
        .max_frame_size(Some(frame_bytes_max))
}

/// Applies `frame_bytes_max` to an axum upgrade before `on_upgrade`.
pub fn limit_upgrade(upgrade: WebSocketUpgrade, frame_bytes_max: usize) -> WebSocketUpgrade {
    upgrade
        .max_message_size(frame_bytes_max)
        .max_frame_size(frame_bytes_max)
}

fn tungstenite_error(error: tungstenite::Error) -> FrameError {
    match error {
        tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
            size,
            max_size,
        }) => FrameError::TooLarge {
            bytes: size,
            frame_bytes_max: max_size,
        },
        other => FrameError::Transport(other.to_string()),
    }
}

fn axum_error(error: axum::Error) -> FrameError {
    let inner = error.into_inner();
    match inner.downcast::<tungstenite::Error>() {
        Ok(error) => tungstenite_error(*error),
        Err(other) => FrameError::Transport(other.to_string()),
    }
}

/// Writes the close reply the WebSocket layer queued when it read the peer's close frame, if
/// the socket takes it at once. Never waits, so that receiving stays cancel-safe; a reply that
/// does not fit is dropped along with the connection.
fn flush_close_reply<W, M>(ws: &mut W)
where
    W: futures_util::Sink<M> + Unpin,
{
    let _ = futures_util::FutureExt::now_or_never(SinkExt::<M>::flush(ws));
}

impl<S> WsTransport for WebSocketStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn send_binary(&mut self, payload: Bytes) -> Result<(), FrameError> {
        self.send(Message::Binary(payload))
            .await
            .map_err(tungstenite_error)
    }

    async fn send_ping(&mut self, payload: Bytes) -> Result<(), FrameError> {
        self.send(Message::Ping(payload))
            .await
            .map_err(tungstenite_error)
    }

    async fn next_inbound(&mut self) -> Result<Inbound, FrameError> {
        loop {
            let message = match self.next().await {
                None => return Ok(Inbound::Closed),
                Some(Err(tungstenite::Error::ConnectionClosed)) => return Ok(Inbound::Closed),
                Some(Err(error)) => return Err(tungstenite_error(error)),
                Some(Ok(message)) => message,
            };
            return Ok(match message {
                Message::Binary(bytes) => Inbound::Binary(bytes),
                Message::Text(_) => Inbound::Text,
                Message::Ping(payload) => Inbound::Ping(payload),
                Message::Pong(payload) => Inbound::Pong(payload),
                Message::Close(_) => {
                    flush_close_reply::<_, Message>(self);
                    Inbound::Closed
                }
                // Raw frames are never produced when reading.
                Message::Frame(_) => continue,
            });
        }
    }
}

impl WsTransport for WebSocket {
    async fn send_binary(&mut self, payload: Bytes) -> Result<(), FrameError> {
        self.send(axum_ws::Message::Binary(payload))
            .await
            .map_err(axum_error)
    }

    async fn send_ping(&mut self, payload: Bytes) -> Result<(), FrameError> {
        self.send(axum_ws::Message::Ping(payload))
            .await
            .map_err(axum_error)
    }

    async fn next_inbound(&mut self) -> Result<Inbound, FrameError> {
        Ok(match self.recv().await {
            None => Inbound::Closed,
            Some(Err(error)) => return Err(axum_error(error)),
            Some(Ok(axum_ws::Message::Binary(bytes))) => Inbound::Binary(bytes),
            Some(Ok(axum_ws::Message::Text(_))) => Inbound::Text,
            Some(Ok(axum_ws::Message::Ping(payload))) => Inbound::Ping(payload),
            Some(Ok(axum_ws::Message::Pong(payload))) => Inbound::Pong(payload),
            Some(Ok(axum_ws::Message::Close(_))) => {
                flush_close_reply::<_, axum_ws::Message>(self);
                Inbound::Closed
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Wire {
        V1 { id: u64, name: String },
    }

    #[test]
    fn round_trip() {
        let msg = Wire::V1 {
            id: 7,
            name: "x".into(),
        };
        let bytes = encode(&msg, 64).unwrap();
        assert_eq!(decode::<Wire>(&bytes, 64).unwrap(), msg);
    }

    #[test]
    fn limits_and_trailing_bytes() {
        let msg = Wire::V1 {
            id: 7,
            name: "x".repeat(100),
        };
        assert!(matches!(
            encode(&msg, 50),
            Err(FrameError::TooLarge {
                frame_bytes_max: 50,
                ..
            })
        ));
        let mut bytes = encode(&msg, 1000).unwrap();
        assert!(matches!(
            decode::<Wire>(&bytes, 50),
            Err(FrameError::TooLarge { .. })
        ));
        bytes.push(0);
        assert!(matches!(
            decode::<Wire>(&bytes, 1000),
            Err(FrameError::TrailingBytes { trailing: 1, .. })
        ));
        assert!(matches!(
            decode::<Wire>(&[9, 9], 1000),
            Err(FrameError::Decode { .. })
        ));
    }
}
