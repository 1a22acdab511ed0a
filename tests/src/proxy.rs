//! A TCP fault proxy run inside the test process: it listens on a 127.0.0.x address and
//! forwards every connection to a target, and a test changes what it does while it runs.
//!
//! Modes ([`Mode`]), for every connection through the proxy:
//! - `Pass`: bytes go through as they come.
//! - `Drop`: every open connection is closed (both sides) and every new one is closed as soon
//!   as it is accepted, before the target is dialled.
//! - `Delay { per_chunk_ms }`: each chunk read (at most [`CHUNK_BYTES_MAX`] bytes) waits this
//!   long before it is written on, in both directions.
//! - `Cut(direction)`: what is read in that direction is discarded; the connection stays open
//!   and the other direction passes.
//!
//! Besides the mode, connections can be refused by where they come from: a [`Classifier`]
//! names the source of an accepted connection (for example the node whose process owns the
//! connecting socket, [`socket_owner`]), and [`Proxy::block_source`] closes that source's
//! connections and refuses its new ones while the others pass. A controller pair's raft
//! transport has each node dial its peers, so one proxy per node can cut one node off in both
//! directions: its own proxy drops everything, the others block it as a source.
//!
//! Bounds: one buffer of [`CHUNK_BYTES_MAX`] per direction of a connection, at most
//! [`CONNECTIONS_MAX`] connections at once (more are closed on accept), a delay of at most
//! [`DELAY_MS_MAX`], dialling the target within [`CONNECT_TIMEOUT_MS`]. Every loop ends with
//! its connection or waits on the socket or a change of the settings. Dropping the [`Proxy`]
//! stops its listener and closes every connection.

use std::collections::BTreeSet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Largest chunk read (and forwarded) at once, per direction of a connection.
pub const CHUNK_BYTES_MAX: usize = 16 * 1024;
/// Connections open at once; more are closed as soon as they are accepted.
pub const CONNECTIONS_MAX: usize = 256;
/// Largest delay per chunk.
pub const DELAY_MS_MAX: u64 = 60_000;
/// Time to dial the target.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Pause after a failed accept (out of file descriptors, say) before the next one.
const ACCEPT_RETRY_MS: u64 = 20;
/// Largest `/proc/net/tcp` read by [`socket_owner`].
const PROC_NET_TCP_BYTES_MAX: u64 = 64 << 20;
/// File descriptors looked at per process by [`socket_owner`].
const FDS_PER_PROCESS_MAX: usize = 100_000;

/// A direction of the bytes of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the side that connected to the proxy towards the target.
    ClientToServer,
    /// From the target back to the side that connected.
    ServerToClient,
}

/// What the proxy does with the connections through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Pass,
    Drop,
    Delay {
        per_chunk_ms: u64,
    },
    Cut(Direction),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Settings {
    mode: Mode,
    /// Sources whose connections are closed and refused.
    blocked: BTreeSet<u64>,
}

impl Settings {
    /// Whether a connection from `source` must be closed now.
    fn refuses(&self, source: Option<u64>) -> bool {
        self.mode == Mode::Drop || source.is_some_and(|s| self.blocked.contains(&s))
    }
}

/// Names the source of a connection from its peer address and the proxy's own address (the
/// two ends of the accepted socket); `None` when it cannot tell. Called off the runtime's
/// threads (it may read files).
pub type Classifier = Arc<dyn Fn(SocketAddr, SocketAddr) -> Option<u64> + Send + Sync>;

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    closed_by_fault: AtomicU64,
    forwarded_bytes: AtomicU64,
    discarded_bytes: AtomicU64,
    delayed_chunks: AtomicU64,
    open: AtomicU64,
}

/// What the proxy has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed on accept (by the mode, a blocked source or the connection limit).
    pub refused: u64,
    /// Open connections closed because the mode or a blocked source asked for it.
    pub closed_by_fault: u64,
    /// Bytes written on, both directions.
    pub forwarded_bytes: u64,
    /// Bytes discarded by a cut direction.
    pub discarded_bytes: u64,
    /// Chunks held back by a delay.
    pub delayed_chunks: u64,
    /// Connections open now.
    pub open: u64,
}

/// A running proxy; stopped (listener and connections closed) when dropped.
pub struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    settings: watch::Sender<Settings>,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("target", &self.target)
            .field("settings", &*self.settings.borrow())
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// Listens on `listen` (port 0: any free port) and forwards to `target`, in `Pass` mode.
    /// `classify` names the sources for [`Proxy::block_source`]. Must be called inside a
    /// tokio runtime, which runs the proxy.
    pub async fn start(
        listen: SocketAddr,
        target: SocketAddr,
        classify: Option<Classifier>,
    ) -> io::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (settings, rx) = watch::channel(Settings::default());
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(accept_loop(
            listener,
            target,
            rx,
            counters.clone(),
            classify,
        ));
        Ok(Proxy {
            addr,
            target,
            settings,
            counters,
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Sets the mode; open connections follow at once.
    pub fn set_mode(&self, mode: Mode) {
        if let Mode::Delay { per_chunk_ms } = mode {
            assert!(
                per_chunk_ms <= DELAY_MS_MAX,
                "a delay of {per_chunk_ms} ms per chunk is beyond {DELAY_MS_MAX} ms"
            );
        }
        self.settings.send_modify(|s| s.mode = mode);
    }

    pub fn mode(&self) -> Mode {
        self.settings.borrow().mode
    }

    pub fn pass(&self) {
        self.set_mode(Mode::Pass);
    }

    /// Closes every connection and refuses new ones until the mode changes.
    pub fn drop_all(&self) {
        self.set_mode(Mode::Drop);
    }

    pub fn delay(&self, per_chunk_ms: u64) {
        self.set_mode(Mode::Delay { per_chunk_ms });
    }

    /// Discards the bytes of one direction; connections stay open.
    pub fn cut(&self, direction: Direction) {
        self.set_mode(Mode::Cut(direction));
    }

    /// Closes the connections from `source` and refuses its new ones.
    pub fn block_source(&self, source: u64) {
        self.settings.send_modify(|s| {
            s.blocked.insert(source);
        });
    }

    pub fn unblock_source(&self, source: u64) {
        self.settings.send_modify(|s| {
            s.blocked.remove(&source);
        });
    }

    /// Back to `Pass` with no blocked source.
    pub fn heal(&self) {
        self.settings.send_modify(|s| *s = Settings::default());
    }

    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            accepted: c.accepted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            closed_by_fault: c.closed_by_fault.load(Ordering::Relaxed),
            forwarded_bytes: c.forwarded_bytes.load(Ordering::Relaxed),
            discarded_bytes: c.discarded_bytes.load(Ordering::Relaxed),
            delayed_chunks: c.delayed_chunks.load(Ordering::Relaxed),
            open: c.open.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The accept task owns the connections' tasks: aborting it drops them all.
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    settings: watch::Receiver<Settings>,
    counters: Arc<Counters>,
    classify: Option<Classifier>,
) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (client, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // The proxy has no logger; a failed accept is rare enough for stderr.
                eprintln!("proxy on {:?}: accept failed: {e}", listener.local_addr());
                tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_MS)).await;
                continue;
            }
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        if connections.len() >= CONNECTIONS_MAX || settings.borrow().mode == Mode::Drop {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            drop(client);
            continue;
        }
        connections.spawn(connection(
            client,
            peer,
            target,
            settings.clone(),
            counters.clone(),
            classify.clone(),
        ));
    }
}

/// How one direction of a connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The reading side closed; the writing side was shut down.
    Eof,
    /// A read or write failed.
    Failed,
    /// The settings asked for the connection to close.
    Fault,
}

async fn connection(
    client: TcpStream,
    peer: SocketAddr,
    target: SocketAddr,
    settings: watch::Receiver<Settings>,
    counters: Arc<Counters>,
    classify: Option<Classifier>,
) {
    let source = match (classify, client.local_addr()) {
        (Some(classify), Ok(local)) => tokio::task::spawn_blocking(move || classify(peer, local))
            .await
            .ok()
            .flatten(),
        _ => None,
    };
    if settings.borrow().refuses(source) {
        counters.refused.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let server = match tokio::time::timeout(
        Duration::from_millis(CONNECT_TIMEOUT_MS),
        TcpStream::connect(target),
    )
    .await
    {
        Ok(Ok(server)) => server,
        // The client sees its connection closed, as if the target had refused it.
        _ => return,
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    counters.open.fetch_add(1, Ordering::Relaxed);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(
        client_read,
        server_write,
        Direction::ClientToServer,
        settings.clone(),
        source,
        counters.clone(),
    );
    let down = pump(
        server_read,
        client_write,
        Direction::ServerToClient,
        settings,
        source,
        counters.clone(),
    );
    tokio::pin!(up, down);
    // One side closing (EOF) leaves the other direction open until it closes too; a failure
    // or a fault closes both.
    let rest = tokio::select! {
        end = &mut up => (end, true),
        end = &mut down => (end, false),
    };
    match rest {
        (End::Eof, true) => {
            down.await;
        }
        (End::Eof, false) => {
            up.await;
        }
        (End::Fault, _) => {
            counters.closed_by_fault.fetch_add(1, Ordering::Relaxed);
        }
        (End::Failed, _) => {}
    }
    counters.open.fetch_sub(1, Ordering::Relaxed);
}

/// Copies one direction until its end, following the settings chunk by chunk.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    direction: Direction,
    mut settings: watch::Receiver<Settings>,
    source: Option<u64>,
    counters: Arc<Counters>,
) -> End {
    let mut buf = vec![0u8; CHUNK_BYTES_MAX];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) => {
                    let _ = to.shutdown().await;
                    return End::Eof;
                }
                Ok(n) => n,
                Err(_) => return End::Failed,
            },
            changed = settings.changed() => {
                if changed.is_err() || settings.borrow().refuses(source) {
                    return End::Fault;
                }
                continue;
            }
        };
        let now = settings.borrow_and_update().clone();
        if now.refuses(source) {
            return End::Fault;
        }
        match now.mode {
            Mode::Cut(cut) if cut == direction => {
                counters
                    .discarded_bytes
                    .fetch_add(n as u64, Ordering::Relaxed);
                continue;
            }
            Mode::Delay { per_chunk_ms } => {
                counters.delayed_chunks.fetch_add(1, Ordering::Relaxed);
                let pause = tokio::time::sleep(Duration::from_millis(per_chunk_ms));
                tokio::pin!(pause);
                loop {
                    tokio::select! {
                        () = &mut pause => break,
                        changed = settings.changed() => {
                            if changed.is_err() || settings.borrow().refuses(source) {
                                return End::Fault;
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        let mut written = 0;
        while written < n {
            tokio::select! {
                wrote = to.write(&buf[written..n]) => match wrote {
                    Ok(0) | Err(_) => return End::Failed,
                    Ok(k) => written += k,
                },
                changed = settings.changed() => {
                    if changed.is_err() || settings.borrow().refuses(source) {
                        return End::Fault;
                    }
                }
            }
        }
        counters
            .forwarded_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The process among `pids` that owns the IPv4 TCP socket connected from `peer` to `local`
/// (the client end of a connection the proxy accepted on `local`), found through
/// `/proc/net/tcp` and the processes' `/proc/<pid>/fd`. `None` when it is none of them, the
/// connection is gone, or this is not Linux.
pub fn socket_owner(peer: SocketAddr, local: SocketAddr, pids: &[u32]) -> Option<u32> {
    let inode = socket_inode(Path::new("/proc/net/tcp"), peer, local)?;
    let link = format!("socket:[{inode}]");
    pids.iter().copied().find(|pid| {
        let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        entries.take(FDS_PER_PROCESS_MAX).flatten().any(|e| {
            std::fs::read_link(e.path()).is_ok_and(|target| target.as_os_str() == link.as_str())
        })
    })
}

/// The inode of the socket whose local end is `local_end` and remote end `remote_end`, from a
/// `/proc/net/tcp` table.
fn socket_inode(table: &Path, local_end: SocketAddr, remote_end: SocketAddr) -> Option<u64> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(table)
        .ok()?
        .take(PROC_NET_TCP_BYTES_MAX)
        .read_to_string(&mut text)
        .ok()?;
    parse_tcp_table(&text, local_end, remote_end)
}

/// Finds the inode in the text of a `/proc/net/tcp` table: one line per socket after a
/// header, `sl local_address rem_address st ... uid timeout inode ...`, addresses as
/// `AABBCCDD:PPPP` (the IPv4 address as the host's `u32` of its network-order bytes, the port
/// as a number, both hexadecimal).
fn parse_tcp_table(text: &str, local_end: SocketAddr, remote_end: SocketAddr) -> Option<u64> {
    text.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 10 {
            return None;
        }
        if parse_hex_addr(fields[1])? != local_end || parse_hex_addr(fields[2])? != remote_end {
            return None;
        }
        fields[9].parse::<u64>().ok().filter(|inode| *inode != 0)
    })
}

fn parse_hex_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    if ip.len() != 8 {
        return None;
    }
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from(ip.to_ne_bytes())),
        port,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Bound of every wait in these tests.
    const WAIT_MS: u64 = 10_000;

    /// An echo server on 127.0.0.1 that counts its connections and the bytes it received.
    struct Echo {
        addr: SocketAddr,
        connections: Arc<AtomicU64>,
        received: Arc<AtomicU64>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Echo {
        async fn start() -> Echo {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let connections = Arc::new(AtomicU64::new(0));
            let received = Arc::new(AtomicU64::new(0));
            let (c, r) = (connections.clone(), received.clone());
            let task = tokio::spawn(async move {
                let mut tasks = JoinSet::new();
                while let Ok((mut stream, _)) = listener.accept().await {
                    c.fetch_add(1, Ordering::Relaxed);
                    let r = r.clone();
                    tasks.spawn(async move {
                        let mut buf = [0u8; 1024];
                        while let Ok(n @ 1..) = stream.read(&mut buf).await {
                            r.fetch_add(n as u64, Ordering::Relaxed);
                            if stream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            });
            Echo {
                addr,
                connections,
                received,
                task,
            }
        }
    }

    impl Drop for Echo {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn proxy_to(echo: &Echo, classify: Option<Classifier>) -> Proxy {
        Proxy::start("127.0.0.1:0".parse().unwrap(), echo.addr, classify)
            .await
            .unwrap()
    }

    async fn connect(proxy: &Proxy) -> TcpStream {
        TcpStream::connect(proxy.addr()).await.unwrap()
    }

    /// Writes `text` and reads as many bytes back.
    async fn round_trip(stream: &mut TcpStream, text: &[u8]) -> Vec<u8> {
        stream.write_all(text).await.unwrap();
        let mut back = vec![0u8; text.len()];
        tokio::time::timeout(Duration::from_millis(WAIT_MS), stream.read_exact(&mut back))
            .await
            .expect("the echo came back in time")
            .expect("the echo came back");
        back
    }

    /// Whether the proxy closed the stream (end of file or a reset) within the bound.
    async fn closed(stream: &mut TcpStream) -> bool {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_millis(WAIT_MS), stream.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    /// Polls `done` until it holds (bounded).
    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
        while !done() {
            assert!(Instant::now() < deadline, "{what} did not happen in time");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn passes_bytes_both_ways() {
        let echo = Echo::start().await;
        let proxy = proxy_to(&echo, None).await;
        let mut s = connect(&proxy).await;
        assert_eq!(round_trip(&mut s, b"hello").await, b"hello");
        let big = vec![7u8; 3 * CHUNK_BYTES_MAX + 5];
        assert_eq!(round_trip(&mut s, &big).await, big);
        let stats = proxy.stats();
        assert_eq!(stats.forwarded_bytes, 2 * (5 + big.len() as u64));
        assert_eq!(stats.open, 1);
        drop(s);
        until("the connection closing", || proxy.stats().open == 0).await;
    }

    #[tokio::test]
    async fn drop_closes_open_connections_and_refuses_new_ones() {
        let echo = Echo::start().await;
        let proxy = proxy_to(&echo, None).await;
        let mut open = connect(&proxy).await;
        assert_eq!(round_trip(&mut open, b"before").await, b"before");
        proxy.drop_all();
        assert!(closed(&mut open).await, "an open connection was closed");
        let mut new = connect(&proxy).await;
        assert!(closed(&mut new).await, "a new connection was closed");
        assert_eq!(
            echo.connections.load(Ordering::Relaxed),
            1,
            "the target was not dialled for a refused connection"
        );
        assert!(proxy.stats().refused >= 1 && proxy.stats().closed_by_fault == 1);
        proxy.pass();
        let mut again = connect(&proxy).await;
        assert_eq!(round_trip(&mut again, b"after").await, b"after");
    }

    #[tokio::test]
    async fn delay_holds_chunks_back_and_delivers_them_in_order() {
        let echo = Echo::start().await;
        let proxy = proxy_to(&echo, None).await;
        let mut s = connect(&proxy).await;
        proxy.delay(20);
        assert_eq!(round_trip(&mut s, b"one").await, b"one");
        assert_eq!(round_trip(&mut s, b"two").await, b"two");
        assert_eq!(proxy.stats().delayed_chunks, 4, "two chunks each way");
        // A connection held in a long delay is still closed by a drop.
        proxy.delay(DELAY_MS_MAX);
        s.write_all(b"held").await.unwrap();
        until("the chunk being held", || proxy.stats().delayed_chunks == 5).await;
        proxy.drop_all();
        assert!(closed(&mut s).await);
        assert_eq!(
            echo.received.load(Ordering::Relaxed),
            6,
            "the held chunk never arrived"
        );
    }

    #[tokio::test]
    async fn a_cut_from_client_to_server_discards_requests_and_keeps_the_connection() {
        let echo = Echo::start().await;
        let proxy = proxy_to(&echo, None).await;
        let mut s = connect(&proxy).await;
        proxy.cut(Direction::ClientToServer);
        s.write_all(b"lost").await.unwrap();
        until("the bytes being discarded", || {
            proxy.stats().discarded_bytes == 4
        })
        .await;
        assert_eq!(echo.received.load(Ordering::Relaxed), 0);
        proxy.pass();
        assert_eq!(round_trip(&mut s, b"kept").await, b"kept");
        assert_eq!(
            echo.connections.load(Ordering::Relaxed),
            1,
            "the same connection"
        );
    }

    #[tokio::test]
    async fn a_cut_from_server_to_client_discards_answers_and_keeps_the_connection() {
        let echo = Echo::start().await;
        let proxy = proxy_to(&echo, None).await;
        let mut s = connect(&proxy).await;
        proxy.cut(Direction::ServerToClient);
        s.write_all(b"lost").await.unwrap();
        until("the answer being discarded", || {
            proxy.stats().discarded_bytes == 4
        })
        .await;
        assert_eq!(
            echo.received.load(Ordering::Relaxed),
            4,
            "the request went through"
        );
        proxy.pass();
        // Only what was echoed after the cut ended arrives.
        assert_eq!(round_trip(&mut s, b"kept").await, b"kept");
        assert_eq!(
            echo.connections.load(Ordering::Relaxed),
            1,
            "the same connection"
        );
    }

    #[tokio::test]
    async fn a_blocked_source_is_closed_and_refused_while_others_pass() {
        let echo = Echo::start().await;
        let me = std::process::id();
        // This process is source 7 (the connections come from here).
        let classify: Classifier =
            Arc::new(move |peer, local| socket_owner(peer, local, &[me]).map(|_| 7));
        let proxy = proxy_to(&echo, Some(classify)).await;
        let mut s = connect(&proxy).await;
        assert_eq!(round_trip(&mut s, b"one").await, b"one");
        proxy.block_source(8);
        assert_eq!(
            round_trip(&mut s, b"two").await,
            b"two",
            "another source is blocked"
        );
        proxy.block_source(7);
        assert!(
            closed(&mut s).await,
            "the blocked source's connection was closed"
        );
        let mut new = connect(&proxy).await;
        assert!(
            closed(&mut new).await,
            "the blocked source's new connection was refused"
        );
        proxy.unblock_source(7);
        let mut again = connect(&proxy).await;
        assert_eq!(round_trip(&mut again, b"three").await, b"three");
        proxy.block_source(7);
        proxy.heal();
        let mut healed = connect(&proxy).await;
        assert_eq!(round_trip(&mut healed, b"four").await, b"four");
    }

    #[test]
    fn finds_the_process_that_owns_a_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_accepted, peer) = listener.accept().unwrap();
        let local = listener.local_addr().unwrap();
        let me = std::process::id();
        assert_eq!(socket_owner(peer, local, &[1, me]), Some(me));
        assert_eq!(socket_owner(peer, local, &[1]), None);
        drop(client);
    }

    #[test]
    fn reads_a_proc_net_tcp_table() {
        let addr = |ip: [u8; 4], port: u16| SocketAddr::from((ip, port));
        let hex = |ip: [u8; 4], port: u16| format!("{:08X}:{port:04X}", u32::from_ne_bytes(ip));
        let client = addr([127, 0, 0, 1], 40001);
        let proxy = addr([127, 0, 0, 2], 5000);
        let text = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
             0: {} 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0 100 0 0 10 0\n\
             1: {} {} 01 00000000:00000000 00:00000000 00000000  1000        0 222 1 0 20 4 30 10 -1\n\
             2: {} {} 01 00000000:00000000 00:00000000 00000000  1000        0 333 1 0 20 4 30 10 -1\n",
            hex([127, 0, 0, 2], 5000),
            hex([127, 0, 0, 2], 5000),
            hex([127, 0, 0, 1], 40001),
            hex([127, 0, 0, 1], 40001),
            hex([127, 0, 0, 2], 5000),
        );
        assert_eq!(parse_tcp_table(&text, client, proxy), Some(333));
        assert_eq!(parse_tcp_table(&text, proxy, client), Some(222));
        assert_eq!(
            parse_tcp_table(&text, client, addr([127, 0, 0, 3], 5000)),
            None
        );
    }
}
