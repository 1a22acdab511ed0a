//! Connection slots: how many connections a listener holds, and which of them may be closed to
//! make room.
//!
//! Every connection holds one of `connections_max` slots from its accept until its stream is
//! dropped (a WebSocket keeps it after the upgrade). A connection starts *unauthenticated*; it
//! becomes *authenticated* when its TLS client certificate was accepted by the verifier, or
//! when the application says so ([`ConnectionAuth::authenticated`], e.g. after a request's
//! token was checked). At most `unauthenticated_connections_max` connections are
//! unauthenticated: one more closes the oldest unauthenticated connection, and a new connection
//! that finds every slot taken closes the oldest unauthenticated one to take its slot. So
//! connections that send nothing (or nothing valid) can hold at most that many slots, and only
//! until newer ones replace them or their timeout ends them; the rest of the limit stays free
//! for clients and peers that authenticate, and a new client always gets a connection while
//! any slot is held by an unauthenticated one. Only when authenticated connections hold every
//! slot does the listener stop accepting until one closes.
//!
//! Closing ("evicting") is done by the connection's stream: its next read or write fails with
//! `ConnectionAborted`, and a read it waits in is woken, so the task serving it ends and drops
//! the slot.

use std::collections::BTreeMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::warn;

/// Least time between two warnings about closed unauthenticated connections.
const EVICTION_WARNING_INTERVAL: Duration = Duration::from_secs(10);

const UNAUTHENTICATED: u8 = 0;
const AUTHENTICATED: u8 = 1;
const EVICTED: u8 = 2;
const CLOSED: u8 = 3;

/// The slots of one listener.
pub(super) struct Slots {
    all: Arc<Semaphore>,
    connections_max: usize,
    unauthenticated_max: usize,
    waiting: Mutex<Waiting>,
    /// Evictions since the last warning, and when that was.
    evictions: AtomicU64,
    warned_at: Mutex<Option<Instant>>,
}

/// The unauthenticated connections, oldest first.
#[derive(Default)]
struct Waiting {
    next_id: u64,
    conns: BTreeMap<u64, Arc<Conn>>,
}

/// One connection's state, shared by its stream, its requests and the slots.
pub(super) struct Conn {
    id: u64,
    slots: Arc<Slots>,
    state: AtomicU8,
    read_waker: AtomicWaker,
    write_waker: AtomicWaker,
    /// Whether a request head arrived on this connection.
    requested: AtomicBool,
}

impl Slots {
    pub(super) fn new(connections_max: usize, unauthenticated_max: usize) -> Arc<Slots> {
        debug_assert!(0 < unauthenticated_max && unauthenticated_max <= connections_max);
        Arc::new(Slots {
            all: Arc::new(Semaphore::new(connections_max)),
            connections_max,
            unauthenticated_max,
            waiting: Mutex::new(Waiting::default()),
            evictions: AtomicU64::new(0),
            warned_at: Mutex::new(None),
        })
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // The lock guards plain bookkeeping that no panic leaves half-done.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A free slot, if there is one.
    pub(super) fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.all.clone().try_acquire_owned().ok()
    }

    /// Waits for a free slot.
    pub(super) async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.all.clone().acquire_owned().await.ok()
    }

    /// Open connections now.
    pub(super) fn open(&self) -> usize {
        self.connections_max - self.all.available_permits()
    }

    /// Waits (at most `within`) until every connection has closed; false if some are still open.
    pub(super) async fn drained(&self, within: Duration) -> bool {
        let Ok(all) = u32::try_from(self.connections_max) else {
            return false;
        };
        tokio::time::timeout(within, self.all.acquire_many(all))
            .await
            .is_ok()
    }

    /// Unauthenticated connections open now.
    pub(super) fn unauthenticated(&self) -> usize {
        self.waiting().conns.len()
    }

    /// Registers a new, unauthenticated connection; closes the oldest unauthenticated one when
    /// there are more than the limit.
    pub(super) fn register(self: &Arc<Self>) -> Arc<Conn> {
        let mut waiting = self.waiting();
        let id = waiting.next_id;
        waiting.next_id += 1;
        let conn = Arc::new(Conn {
            id,
            slots: self.clone(),
            state: AtomicU8::new(UNAUTHENTICATED),
            read_waker: AtomicWaker::new(),
            write_waker: AtomicWaker::new(),
            requested: AtomicBool::new(false),
        });
        waiting.conns.insert(id, conn.clone());
        let mut evicted = 0;
        while waiting.conns.len() > self.unauthenticated_max {
            if !evict_oldest(&mut waiting) {
                break;
            }
            evicted += 1;
        }
        drop(waiting);
        self.evicted(evicted);
        conn
    }

    /// Closes the oldest unauthenticated connection, if there is one.
    pub(super) fn evict_oldest(&self) -> bool {
        let evicted = evict_oldest(&mut self.waiting());
        self.evicted(u64::from(evicted));
        evicted
    }

    fn evicted(&self, n: u64) {
        if n == 0 {
            return;
        }
        let total = self.evictions.fetch_add(n, Ordering::Relaxed) + n;
        let mut warned_at = self.warned_at.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if warned_at.is_none_or(|at| now.duration_since(at) >= EVICTION_WARNING_INTERVAL) {
            *warned_at = Some(now);
            self.evictions.fetch_sub(total, Ordering::Relaxed);
            warn!(
                closed = total,
                unauthenticated_connections_max = self.unauthenticated_max,
                connections_max = self.connections_max,
                "unauthenticated connections closed to make room for new ones"
            );
        }
    }
}

/// Removes the oldest unauthenticated connection and marks it evicted.
fn evict_oldest(waiting: &mut Waiting) -> bool {
    while let Some((_, conn)) = waiting.conns.pop_first() {
        // A connection that authenticated or closed meanwhile is only skipped: it removes
        // itself (or already did).
        if conn
            .state
            .compare_exchange(
                UNAUTHENTICATED,
                EVICTED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            conn.read_waker.wake();
            conn.write_waker.wake();
            return true;
        }
    }
    false
}

impl Conn {
    /// Marks the connection authenticated: it no longer counts against the unauthenticated
    /// limit and is never evicted. Idempotent; an evicted connection stays evicted.
    pub(super) fn authenticate(&self) {
        if self
            .state
            .compare_exchange(
                UNAUTHENTICATED,
                AUTHENTICATED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            self.slots.waiting().conns.remove(&self.id);
        }
    }

    pub(super) fn is_authenticated(&self) -> bool {
        self.state.load(Ordering::Acquire) == AUTHENTICATED
    }

    /// Notes that a request head arrived.
    pub(super) fn requested(&self) {
        self.requested.store(true, Ordering::Release);
    }

    pub(super) fn has_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// Registers `waker` and tells whether the connection was evicted.
    fn evicted(&self, waker: &AtomicWaker, cx: &Context<'_>) -> bool {
        match self.state.load(Ordering::Acquire) {
            AUTHENTICATED => false,
            _ => {
                // Register first, so that an eviction after the check still wakes this task.
                waker.register(cx.waker());
                self.state.load(Ordering::Acquire) == EVICTED
            }
        }
    }

    fn close(&self) {
        if self.state.swap(CLOSED, Ordering::AcqRel) == UNAUTHENTICATED {
            self.slots.waiting().conns.remove(&self.id);
        }
    }
}

/// A handle for the application: marks the connection a request arrived on as authenticated
/// (the request passed a token check), so that it keeps its slot under pressure from
/// unauthenticated connections. Every request carries one as an extension.
#[derive(Clone)]
pub struct ConnectionAuth(pub(super) Arc<Conn>);

impl ConnectionAuth {
    pub fn authenticated(&self) {
        self.0.authenticate();
    }

    /// Whether the connection is authenticated (by a client certificate or a request).
    pub fn is_authenticated(&self) -> bool {
        self.0.is_authenticated()
    }
}

impl std::fmt::Debug for ConnectionAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionAuth")
            .field("id", &self.0.id)
            .field("authenticated", &self.0.is_authenticated())
            .finish()
    }
}

/// A connection's stream: holds its slot until dropped (also after a WebSocket upgrade), and
/// fails once the connection is evicted.
pub(super) struct Slot<IO> {
    io: IO,
    conn: Arc<Conn>,
    _permit: OwnedSemaphorePermit,
}

impl<IO> Slot<IO> {
    pub(super) fn new(io: IO, conn: Arc<Conn>, permit: OwnedSemaphorePermit) -> Slot<IO> {
        Slot {
            io,
            conn,
            _permit: permit,
        }
    }
}

impl<IO> Drop for Slot<IO> {
    fn drop(&mut self) {
        self.conn.close();
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "unauthenticated connection closed to make room for a new one",
    )
}

impl<IO: AsyncRead + Unpin> AsyncRead for Slot<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.conn.evicted(&this.conn.read_waker, cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Slot<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.conn.evicted(&this.conn.write_waker, cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.conn.evicted(&this.conn.write_waker, cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
