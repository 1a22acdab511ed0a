//! Large response bodies written piece by piece instead of built whole in memory.
//!
//! [`streamed`] runs a writer function on a blocking thread; what it writes is cut into chunks
//! of [`CHUNK_BYTES`] and handed to the HTTP body through a channel of [`CHUNKS_BUFFERED`]
//! chunks. A client that reads slowly therefore slows the writer down instead of making the
//! server buffer the answer, and a client that goes away stops it (its next write fails).
//! The memory an answer costs is what the writer function holds (a copy of the data it
//! writes, say) plus at most `CHUNKS_BUFFERED + 1` chunks. `keep` (a semaphore permit, say)
//! lives until the body ends or is dropped. When the writer is done its data is dropped and
//! the allocator is asked to give free memory back to the system
//! ([`crate::process::release_free_memory`]), so that a burst of large answers does not leave
//! the process at its peak size.

use std::io::{self, Write};

use axum::body::Body;
use bytes::Bytes;
use tokio::sync::mpsc;

/// Size of the chunks a streamed body is sent in.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks waiting in the channel between the writer and the connection, at most.
pub const CHUNKS_BUFFERED: usize = 4;

/// A body written by `write` on a blocking thread.
pub fn streamed<W, K>(keep: K, write: W) -> Body
where
    W: FnOnce(&mut ChunkWriter) -> io::Result<()> + Send + 'static,
    K: Send + 'static,
{
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_BUFFERED);
    tokio::task::spawn_blocking(move || {
        let mut writer = ChunkWriter {
            buf: Vec::with_capacity(CHUNK_BYTES),
            tx,
        };
        // `write` and what it holds are dropped when it returns.
        let result = write(&mut writer).and_then(|()| writer.flush());
        if let Err(error) = result {
            if error.kind() == io::ErrorKind::BrokenPipe {
                tracing::debug!("streamed answer ended: the client went away");
            } else {
                tracing::warn!(%error, "streamed answer failed");
                // The client sees a body that ends with an error, not a short success.
                let _ = writer.tx.blocking_send(Err(error));
            }
        }
        drop(writer);
        crate::process::release_free_memory();
    });
    let chunks = futures_util::stream::unfold((rx, keep), |(mut rx, keep)| async move {
        rx.recv().await.map(|chunk| (chunk, (rx, keep)))
    });
    Body::from_stream(chunks)
}

/// Cuts what is written into chunks and sends them to the body; a write fails with
/// `BrokenPipe` once the body is gone.
pub struct ChunkWriter {
    buf: Vec<u8>,
    tx: mpsc::Sender<io::Result<Bytes>>,
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK_BYTES - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_streamed_body_has_every_byte_in_order() {
        let body = streamed((), |w| {
            for i in 0..100_000u32 {
                write!(w, "{i},")?;
            }
            Ok(())
        });
        let bytes = body.collect().await.unwrap().to_bytes();
        let expected: String = (0..100_000u32).map(|i| format!("{i},")).collect();
        assert_eq!(bytes, expected.as_bytes());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_body_stops_the_writer_and_releases_what_it_keeps() {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let (kept_tx, mut kept_rx) = tokio::sync::mpsc::channel::<()>(1);
        let body = streamed(kept_tx, move |w| {
            let mut result = Ok(());
            // Bounded: the body is dropped long before.
            for _ in 0..1_000_000 {
                result = w.write_all(&[b'x'; 1024]);
                if result.is_err() {
                    break;
                }
            }
            let _ = done_tx.send(result.map_err(|e| e.kind()));
            Ok(())
        });
        drop(body);
        assert_eq!(done_rx.await.unwrap(), Err(io::ErrorKind::BrokenPipe));
        // The sender kept by the body is gone with it.
        assert!(kept_rx.recv().await.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_writer_ends_the_body_with_an_error() {
        let body = streamed((), |w| {
            w.write_all(b"{\"partial\":")?;
            Err(io::Error::other("cannot encode"))
        });
        assert!(body.collect().await.is_err());
    }
}
