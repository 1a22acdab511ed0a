//! Serving an axum `Router` over TLS (or plain HTTP for development).
//!
//! Each accepted TCP connection gets `handshake_timeout_ms` to finish its TLS handshake; a
//! client that speaks plaintext, presents a certificate the verifier refuses, or stalls is
//! logged (`warn`) and dropped, and nothing else is affected. An established connection is
//! served by hyper's HTTP/1.1 server with upgrades, so axum's `WebSocketUpgrade` works; the same
//! timeout also bounds the wait for each request head. Every request carries these extensions:
//!
//! - [`ConnectionInfo`]: remote address and the client's [`PeerIdentity`], if it sent a
//!   certificate;
//! - [`PeerIdentity`] itself, when present (extract `Option<Extension<PeerIdentity>>`);
//! - `axum::extract::ConnectInfo<SocketAddr>`.
//!
//! At most `connections_max` connections are open at once, counting handshakes in progress and
//! upgraded WebSockets (which hold their slot until they close); at the limit the listener
//! stops accepting until a slot frees. When `shutdown` completes, accepting stops, idle HTTP
//! connections are closed, requests in flight get up to [`SHUTDOWN_DRAIN_MS`] to finish, and
//! the function returns. Upgraded WebSockets are left to the application to close.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use axum::routing::future::RouteFuture;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::identity::PeerIdentity;

/// How long requests in flight may take to finish after shutdown was asked for.
pub const SHUTDOWN_DRAIN_MS: u64 = 5_000;

/// Limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Time for the TLS handshake, and for each request head.
    pub handshake_timeout_ms: u64,
    /// Connections open at once (handshakes, HTTP connections, upgraded WebSockets).
    pub connections_max: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            handshake_timeout_ms: 10_000,
            connections_max: 1024,
        }
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
            let handshake = Duration::from_millis(limits.handshake_timeout_ms);
            let stream = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
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
    permit: OwnedSemaphorePermit,
    shutdown: watch::Receiver<bool>,
    head_timeout: Duration,
}

impl ConnContext {
    async fn serve<IO>(self, io: IO, info: ConnectionInfo)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let remote_addr = info.remote_addr;
        let io = Counted {
            io,
            _permit: self.permit,
        };
        let service = TowerToHyperService::new(WithConnection {
            app: self.app,
            info,
        });
        let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.head_timeout);
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(connection);
        let mut shutdown = self.shutdown;
        let stop = async move {
            // An error means the listener is gone, which also means stop.
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = stop => {
                connection.as_mut().graceful_shutdown();
                connection.await
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
    F: Fn(TcpStream, SocketAddr, ConnContext) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(all) = u32::try_from(limits.connections_max) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("connections_max must be at most {}: {limits:?}", u32::MAX),
        ));
    };
    if all == 0 || limits.handshake_timeout_ms == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("connections_max and handshake_timeout_ms must be at least 1: {limits:?}"),
        ));
    }
    let slots = Arc::new(Semaphore::new(limits.connections_max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let head_timeout = Duration::from_millis(limits.handshake_timeout_ms);
    tokio::pin!(shutdown);
    let mut saturated = false;
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => permit,
        };
        let Ok(permit) = permit else { break };
        if slots.available_permits() == 0 && !saturated {
            saturated = true;
            warn!(
                connections_max = limits.connections_max,
                "connection limit reached; accepting more only as connections close"
            );
        } else if slots.available_permits() > 0 {
            saturated = false;
        }
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
        if let Err(error) = tcp.set_nodelay(true) {
            debug!(%remote_addr, %error, "setting TCP_NODELAY failed");
        }
        let ctx = ConnContext {
            app: app.clone(),
            permit,
            shutdown: stop_rx.clone(),
            head_timeout,
        };
        tokio::spawn(handle(tcp, remote_addr, ctx));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = Duration::from_millis(SHUTDOWN_DRAIN_MS);
    match tokio::time::timeout(drain, slots.acquire_many(all)).await {
        Ok(_) => info!("listener stopped; all connections closed"),
        Err(_) => info!(
            still_open = limits.connections_max - slots.available_permits(),
            "listener stopped; connections still open after the drain time"
        ),
    }
    Ok(())
}

/// The router with this connection's extensions added to every request.
#[derive(Clone)]
struct WithConnection {
    app: Router,
    info: ConnectionInfo,
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
        let extensions = request.extensions_mut();
        extensions.insert(ConnectInfo(self.info.remote_addr));
        if let Some(peer) = &self.info.peer {
            extensions.insert(peer.clone());
        }
        extensions.insert(self.info.clone());
        tower_service::Service::call(&mut self.app, request)
    }
}

/// A stream that holds a connection slot until it is dropped (also after a WebSocket upgrade).
struct Counted<IO> {
    io: IO,
    _permit: OwnedSemaphorePermit,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
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
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
