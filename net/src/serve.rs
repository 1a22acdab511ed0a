//! Serving an axum `Router` over TLS (or plain HTTP for development).
//!
//! Time limits of a connection:
//!
//! - `handshake_timeout_ms`, from the TCP accept until the head of the first request has
//!   arrived, the TLS handshake included. A client that speaks plaintext to TLS, presents a
//!   certificate the verifier refuses, or stalls is logged (`warn` for TLS failures, `debug`
//!   for silence) and dropped, and nothing else is affected.
//! - `idle_timeout_ms`, on a kept-alive connection, from the end of one answer until the head
//!   of the next request has arrived (and for the first head, if it is shorter). An upgraded
//!   WebSocket is the application's (its pings and timeouts).
//!
//! An established connection is served by hyper's HTTP/1.1 server with upgrades, so axum's
//! `WebSocketUpgrade` works. Every request carries these extensions:
//!
//! - [`ConnectionInfo`]: remote address and the client's [`PeerIdentity`], if it sent a
//!   certificate;
//! - [`PeerIdentity`] itself, when present (extract `Option<Extension<PeerIdentity>>`);
//! - [`ConnectionAuth`]: lets the application mark the connection authenticated once a request
//!   on it passed its token check;
//! - `axum::extract::ConnectInfo<SocketAddr>`.
//!
//! At most `connections_max` connections are open at once, counting handshakes in progress and
//! upgraded WebSockets (which hold their slot until they close); of those at most
//! `unauthenticated_connections_max` are not authenticated (by a client certificate the
//! verifier accepted, or by the application). More unauthenticated connections close the
//! oldest ones, so silent or unauthenticated clients cannot lock out the others; see
//! [`slots`] for the rules. When `shutdown` completes, accepting stops, idle HTTP connections
//! are closed, requests in flight get up to [`SHUTDOWN_DRAIN_MS`] to finish, and the function
//! returns. Upgraded WebSockets are left to the application to close.
//!
//! When serving starts, a service manager that asked for it (`NOTIFY_SOCKET`) is told the
//! process is ready ([`crate::notify`]); systemd units of type `notify` start on that.

mod slots;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use axum::routing::future::RouteFuture;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::identity::PeerIdentity;
pub use slots::ConnectionAuth;
use slots::{Conn, Slot, Slots};

/// How long requests in flight may take to finish after shutdown was asked for.
pub const SHUTDOWN_DRAIN_MS: u64 = 5_000;

/// Limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Time from the TCP accept until the first request head has arrived (TLS handshake
    /// included).
    pub handshake_timeout_ms: u64,
    /// Time a kept-alive connection may wait for the head of its next request.
    pub idle_timeout_ms: u64,
    /// Connections open at once (handshakes, HTTP connections, upgraded WebSockets).
    pub connections_max: usize,
    /// Of those, connections not authenticated (yet); more close the oldest of them. The
    /// difference to `connections_max` is kept for authenticated clients and peers.
    pub unauthenticated_connections_max: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            connections_max: 1024,
            unauthenticated_connections_max: 512,
        }
    }
}

impl ServeLimits {
    /// Checks that the limits can be served.
    pub fn check(&self) -> Result<(), String> {
        if self.connections_max == 0
            || self.handshake_timeout_ms == 0
            || self.idle_timeout_ms == 0
            || self.unauthenticated_connections_max == 0
        {
            return Err(format!(
                "connections_max, unauthenticated_connections_max, handshake_timeout_ms and idle_timeout_ms must be at least 1: {self:?}"
            ));
        }
        if self.unauthenticated_connections_max > self.connections_max {
            return Err(format!(
                "unauthenticated_connections_max must be at most connections_max: {self:?}"
            ));
        }
        if u32::try_from(self.connections_max).is_err() {
            return Err(format!(
                "connections_max must be at most {}: {self:?}",
                u32::MAX
            ));
        }
        Ok(())
    }
}

/// The connection a request arrived on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub remote_addr: SocketAddr,
    /// The verified client certificate's identity; `None` without a client certificate.
    pub peer: Option<PeerIdentity>,
}

/// Serves `app` over TLS on `listener` until `shutdown` completes.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
    limits: ServeLimits,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    serve_loop(listener, app, shutdown, limits, move |tcp, remote_addr, ctx| {
        let acceptor = acceptor.clone();
        async move {
            let stream = match tokio::time::timeout_at(ctx.deadline, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    warn!(%remote_addr, %error, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    warn!(%remote_addr, timeout_ms = limits.handshake_timeout_ms, "TLS handshake timed out");
                    return;
                }
            };
            let peer = match PeerIdentity::from_server_stream(&stream) {
                Ok(peer) => peer,
                Err(error) => {
                    warn!(%remote_addr, %error, "client certificate unreadable; connection closed");
                    return;
                }
            };
            if peer.is_some() {
                // The verifier accepted the certificate: a peer of the cluster.
                ctx.conn.authenticate();
            }
            debug!(%remote_addr, ?peer, "TLS connection established");
            ctx.serve(stream, ConnectionInfo { remote_addr, peer }).await;
        }
    })
    .await
}

/// Serves `app` over plain HTTP on `listener` until `shutdown` completes (development only:
/// there is no peer identity).
pub async fn serve_plain(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
    limits: ServeLimits,
) -> io::Result<()> {
    serve_loop(listener, app, shutdown, limits, |tcp, remote_addr, ctx| {
        ctx.serve(
            tcp,
            ConnectionInfo {
                remote_addr,
                peer: None,
            },
        )
    })
    .await
}

/// What a connection task needs to serve HTTP once its stream is ready.
struct ConnContext {
    app: Router,
    conn: Arc<Conn>,
    shutdown: watch::Receiver<bool>,
    /// When the first request head must have arrived.
    deadline: Instant,
    idle_timeout: Duration,
}

impl ConnContext {
    async fn serve<IO>(self, io: IO, info: ConnectionInfo)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let remote_addr = info.remote_addr;
        let service = TowerToHyperService::new(WithConnection {
            app: self.app,
            info,
            conn: self.conn.clone(),
        });
        // hyper's header read timeout runs from the moment the connection waits for a request
        // head (at its start, and after each answer) until the head is complete.
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.idle_timeout)
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(connection);
        let mut shutdown = self.shutdown;
        let stop = async move {
            // An error means the listener is gone, which also means stop.
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stop);
        let first_request = tokio::time::sleep_until(self.deadline);
        tokio::pin!(first_request);
        let mut waiting_for_first = true;
        let result = loop {
            tokio::select! {
                result = connection.as_mut() => break result,
                () = &mut stop => {
                    connection.as_mut().graceful_shutdown();
                    break connection.await;
                }
                () = &mut first_request, if waiting_for_first => {
                    waiting_for_first = false;
                    if !self.conn.has_requested() {
                        debug!(%remote_addr, "no request within the handshake timeout; connection closed");
                        return;
                    }
                }
            }
        };
        if let Err(error) = result {
            debug!(%remote_addr, %error, "HTTP connection ended with an error");
        }
    }
}

async fn serve_loop<F, Fut>(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
    limits: ServeLimits,
    handle: F,
) -> io::Result<()>
where
    F: Fn(Slot<TcpStream>, SocketAddr, ConnContext) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    limits
        .check()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // The listener is bound and accepting starts now: a service manager may count the
    // server as started.
    crate::notify::ready();
    let slots = Slots::new(
        limits.connections_max,
        limits.unauthenticated_connections_max,
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let handshake_timeout = Duration::from_millis(limits.handshake_timeout_ms);
    let idle_timeout = Duration::from_millis(limits.idle_timeout_ms);
    tokio::pin!(shutdown);
    let mut saturated = false;
    loop {
        // A free slot; or, when unauthenticated connections hold some, the promise of one
        // of theirs once a connection arrives; or else wait until an authenticated one closes.
        let permit = match slots.try_acquire() {
            Some(permit) => Some(permit),
            None if slots.unauthenticated() > 0 => None,
            None => {
                if !saturated {
                    saturated = true;
                    warn!(
                        connections_max = limits.connections_max,
                        "connection limit reached by authenticated connections; accepting more only as connections close"
                    );
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    permit = slots.acquire() => match permit {
                        Some(permit) => Some(permit),
                        None => break,
                    },
                }
            }
        };
        let (tcp, remote_addr) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Per-connection errors (e.g. the peer reset before accept) and resource
                    // exhaustion (EMFILE) are reported and retried after a short pause.
                    warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let accepted_at = Instant::now();
        let permit = match permit.or_else(|| slots.try_acquire()) {
            Some(permit) => permit,
            None => {
                slots.evict_oldest();
                tokio::select! {
                    () = &mut shutdown => break,
                    permit = slots.acquire() => match permit {
                        Some(permit) => permit,
                        None => break,
                    },
                }
            }
        };
        if slots.open() < limits.connections_max {
            saturated = false;
        }
        if let Err(error) = tcp.set_nodelay(true) {
            debug!(%remote_addr, %error, "setting TCP_NODELAY failed");
        }
        let conn = slots.register();
        let ctx = ConnContext {
            app: app.clone(),
            conn: conn.clone(),
            shutdown: stop_rx.clone(),
            deadline: accepted_at + handshake_timeout,
            idle_timeout,
        };
        tokio::spawn(handle(Slot::new(tcp, conn, permit), remote_addr, ctx));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    if slots
        .drained(Duration::from_millis(SHUTDOWN_DRAIN_MS))
        .await
    {
        info!("listener stopped; all connections closed");
    } else {
        info!(
            still_open = slots.open(),
            "listener stopped; connections still open after the drain time"
        );
    }
    Ok(())
}

/// The router with this connection's extensions added to every request.
#[derive(Clone)]
struct WithConnection {
    app: Router,
    info: ConnectionInfo,
    conn: Arc<Conn>,
}

impl<B> tower_service::Service<Request<B>> for WithConnection
where
    Router: tower_service::Service<
            Request<B>,
            Response = Response,
            Error = Infallible,
            Future = RouteFuture<Infallible>,
        >,
{
    type Response = Response;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // A Router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        self.conn.requested();
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(self.info.remote_addr));
        extensions.insert(ConnectionAuth(self.conn.clone()));
        if let Some(peer) = &self.info.peer {
            extensions.insert(peer.clone());
        }
        extensions.insert(self.info.clone());
        tower_service::Service::call(&mut self.app, request)
    }
}
