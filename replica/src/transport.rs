//! The raft transport: raft messages between the nodes of a replicated log over mutual TLS —
//! the controller pair (controller A, controller B, the watch) and an agent's director pair
//! (director, backup director, their third voter). What differs between them is only the URI
//! SAN every node's certificate carries ([`TransportConfig::peer_uri`]).
//!
//! # Protocol (handshake version 1)
//!
//! Every node listens on its `raft_listen` address and dials every peer at the peer's
//! `raft_address`. A connection carries messages one way only, from the dialer to the
//! listener: two nodes talk over two connections, each dialled by its sender.
//!
//! 1. TCP with `TCP_NODELAY`, then TLS with ALPN [`ALPN_RAFT`] (`ordo-raft/1`). The listener
//!    presents the controller's server certificate and requires a client certificate that
//!    leads to the cluster CA; the dialer presents the controller's client certificate and
//!    checks the listener's against the CA and the host of the peer's `raft_address`.
//! 2. Frames: a `u32` big-endian length, then that many bytes. A handshake frame is at most
//!    [`HELLO_BYTES_MAX`] bytes, a message frame at most `message_bytes_max`; a longer length
//!    closes the connection.
//! 3. The dialer's first frame is a [`Hello`] (postcard):
//!
//!    ```text
//!    enum Hello { V1(HelloV1) }
//!    struct HelloV1 { message_format_version: u32, cluster_id: String, from: u64, to: u64,
//!                     shared_settings: [(String, String)] }
//!    ```
//!
//!    `message_format_version` is the raft message format the dialer sends
//!    (`ordo_replica::MESSAGE_FORMAT_VERSION`), `from` the dialer's node id, `to` the node it
//!    meant to reach, `shared_settings` what `ClusterConfig::shared_settings` gives on it.
//!    The listener answers with one [`Answer`] frame (postcard):
//!
//!    ```text
//!    enum Answer { Accept, Refuse { reason: String } }
//!    ```
//!
//!    and refuses, in this order, when: the client certificate lacks the URI SAN
//!    [`TransportConfig::peer_uri`] (`ordo:controller:<cluster_id>` for controllers,
//!    `ordo:agent:<agent_id>` for a director pair); the hello is of a newer version than this build reads
//!    (an unknown `Hello` variant), or its message format is newer; the cluster id differs;
//!    `to` is not this node; `from` is not one of this node's peers; a shared setting differs
//!    (every differing one is named, with both nodes' values; a node entry listed on one side
//!    only is not compared: that node is being added or removed). A refusal is reported on both
//!    sides as [`Inbound::Refused`] (by the listener only when the hello could be read), and
//!    the listener closes the connection.
//! 4. After `Accept` the dialer sends raft messages, one per frame (`Message::encode`); the
//!    listener never writes again. A message whose `from` is not the hello's `from`, or whose
//!    `to` is not the listener, is dropped, and so is one that does not decode; the
//!    connection stays.
//!
//! Enums are append-only: a new handshake version is a new `Hello` variant, a new answer a
//! new `Answer` variant.
//!
//! The certificate proves that the dialer is a node of the cluster (any controller or the
//! watch, any director of the agent: they share the URI SAN); its node id is what its hello
//! says.
//!
//! # Behaviour
//!
//! - [`Transport::send`] never blocks: it queues the message for its peer. A peer's queue
//!   holds at most `queue_messages_max` messages; beyond that the oldest message that is not
//!   a snapshot is dropped (raft sends again), or the oldest snapshot when all are.
//! - One dialer task per peer connects, hands over the hello, and then writes queued
//!   messages, flushing after each batch. An attempt (TCP, TLS, hello and answer) must end
//!   within `connect_timeout_ms`; a frame write within `connect_timeout_ms` plus 1 ms per
//!   [`WRITE_BYTES_PER_MS_MIN`] bytes. After a failed attempt the dialer waits
//!   [`RECONNECT_MIN_MS`], doubling up to [`RECONNECT_MAX_MS`]; after a connection that was
//!   accepted is lost, it starts again from [`RECONNECT_MIN_MS`].
//! - When an attempt fails or a connection is lost, the queued messages are dropped. When a
//!   connection that was accepted is lost, a write failed, or messages were dropped,
//!   `Inbound::Unreachable(peer)` is reported, once for that attempt (a peer that stays down
//!   with nothing to send is not reported again and again).
//!   Every snapshot message dropped or not written is reported as
//!   `SnapshotSent { delivered: false }`, every one written and flushed as `delivered: true`.
//!   A message larger than `message_bytes_max` is never sent (logged, and reported like a
//!   failed snapshot when it is one).
//! - A dialer whose TLS handshake fails because the peer's certificate is not accepted, the
//!   peer does not accept this node's client certificate (a TLS alert about it), or the peer
//!   does not speak `ordo-raft/1`, reports `Inbound::Refused`: these are configuration
//!   errors, not outages. The listener cannot tell who a client that failed TLS is; it logs.
//! - A refusal is reported once per peer and side until its reason changes or a connection
//!   with that peer is accepted; the dialer keeps trying every [`RECONNECT_MAX_MS`].
//! - The listener takes at most [`HANDSHAKES_PENDING_MAX`] connections in TLS handshake or
//!   hello at a time (more are closed at once), each given `connect_timeout_ms`, and keeps one
//!   inbound connection per peer: a newly accepted one from a node closes the older one.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ordo_net::PeerIdentity;
use ordo_net::tls::{CaBundle, ClientAuth, TlsError, TlsMaterial};
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::{MESSAGE_FORMAT_VERSION, Message};

/// ALPN protocol of the raft transport (an API port does not speak it, and is refused).
pub const ALPN_RAFT: &[u8] = b"ordo-raft/1";
/// Version of the handshake this build sends (the `Hello` variant, counted from 1).
pub const HELLO_VERSION: u32 = 1;
/// Largest handshake frame (hello or answer), in bytes.
pub const HELLO_BYTES_MAX: usize = 64 << 10;
/// Longest refusal reason sent to a peer, in bytes (the local report keeps it whole).
pub const REASON_BYTES_MAX: usize = 16 << 10;
/// First wait before dialling a peer again, in milliseconds.
pub const RECONNECT_MIN_MS: u64 = 50;
/// Longest wait before dialling a peer again, in milliseconds.
pub const RECONNECT_MAX_MS: u64 = 1000;
/// Inbound connections in TLS handshake or hello at a time; more are closed at once.
pub const HANDSHAKES_PENDING_MAX: usize = 16;
/// Slowest write a connection is allowed, in bytes per millisecond (about 1 MB/s).
pub const WRITE_BYTES_PER_MS_MIN: u64 = 1024;
/// Messages written before the connection is flushed.
const BATCH_MESSAGES_MAX: usize = 64;
/// Buffer that coalesces small frames into few TLS records, in bytes.
const WRITE_BUFFER_BYTES: usize = 64 << 10;
/// Refusals remembered to report each only once; beyond that the memory starts over.
const REFUSALS_REMEMBERED_MAX: usize = 64;

/// How the transport runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    pub node_id: u64,
    pub cluster_id: String,
    /// The URI SAN every node's client certificate must carry: `ordo:controller:<cluster_id>`
    /// between controllers, `ordo:agent:<agent_id>` between the directors of an agent.
    pub peer_uri: String,
    pub listen: SocketAddr,
    /// Every other node: id -> "host:port".
    pub peers: BTreeMap<u64, String>,
    /// From ClusterConfig::shared_settings: compared with each peer's in the handshake.
    pub shared_settings: Vec<(String, String)>,
    pub message_bytes_max: usize,
    pub connect_timeout_ms: u64,
    /// Messages queued towards one peer before the oldest non-snapshot ones are dropped
    /// (raft resends); unit in the name.
    pub queue_messages_max: usize,
}

/// The TLS material of the transport (a controller's `[tls]` files, or an agent's).
#[derive(Clone)]
pub struct TransportTls {
    /// The cluster CA: peers' certificates must lead to it.
    pub ca: CaBundle,
    /// Presented by the listener (DNS/IP SANs for the hosts in `raft_address`).
    pub server: TlsMaterial,
    /// Presented by the dialer (carrying [`TransportConfig::peer_uri`]).
    pub client: TlsMaterial,
}

impl std::fmt::Debug for TransportTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportTls")
            .field("ca_certificates", &self.ca.certs.len())
            .field("server_chain", &self.server.cert_chain.len())
            .field("client_chain", &self.client.cert_chain.len())
            .finish_non_exhaustive()
    }
}

/// What the transport hands to the raft driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Message(Message),
    /// Sending to this peer failed (connection refused/lost): raft's report_unreachable.
    Unreachable(u64),
    /// A snapshot message was written to the peer's connection (true) or failed (false):
    /// raft's report_snapshot.
    SnapshotSent {
        to: u64,
        delivered: bool,
    },
    /// A peer's shared settings disagree with ours (or its cluster id / CA): the controller
    /// must stop with this message, which names the setting and both values.
    Refused {
        peer: u64,
        why: String,
    },
}

/// Why the transport cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("bad raft transport configuration: {0}")]
    Config(String),
    #[error("raft transport TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot listen for raft peers on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
}

/// The dialer's first frame (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hello {
    V1(HelloV1),
}

/// Version 1 of the hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloV1 {
    pub message_format_version: u32,
    pub cluster_id: String,
    pub from: u64,
    pub to: u64,
    pub shared_settings: Vec<(String, String)>,
}

/// The listener's answer to a hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    Accept,
    Refuse { reason: String },
}

impl Hello {
    /// A hello from its frame; the error says why it is refused.
    pub fn decode(bytes: &[u8]) -> Result<HelloV1, String> {
        match postcard::from_bytes::<Hello>(bytes) {
            Ok(Hello::V1(h)) => Ok(h),
            Err(e) => match varint_u32(bytes) {
                Some(tag) if tag >= HELLO_VERSION => Err(format!(
                    "its handshake is of version {}, which this build does not read (it speaks version {HELLO_VERSION})",
                    u64::from(tag) + 1
                )),
                _ => Err(format!(
                    "its first {} bytes are not a raft transport handshake: {e}",
                    bytes.len()
                )),
            },
        }
    }
}

/// The leading postcard varint of `bytes` (an enum's variant index).
fn varint_u32(bytes: &[u8]) -> Option<u32> {
    let mut value = 0u32;
    for (i, b) in bytes.iter().take(5).enumerate() {
        value |= u32::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("a frame of {bytes} bytes is larger than the limit of {bytes_max} bytes")]
    TooLarge { bytes: u64, bytes_max: usize },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads one frame of at most `bytes_max` bytes; `None` when the stream ends between frames.
/// Memory grows with the bytes that arrive, not with the announced length.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    bytes_max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut header = [0u8; 4];
    if r.read(&mut header[..1]).await? == 0 {
        return Ok(None);
    }
    r.read_exact(&mut header[1..]).await?;
    let bytes = u32::from_be_bytes(header);
    if bytes as usize > bytes_max {
        return Err(FrameError::TooLarge {
            bytes: u64::from(bytes),
            bytes_max,
        });
    }
    let mut frame = Vec::with_capacity((bytes as usize).min(WRITE_BUFFER_BYTES));
    let read = (&mut *r)
        .take(u64::from(bytes))
        .read_to_end(&mut frame)
        .await?;
    if read != bytes as usize {
        return Err(FrameError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the connection ended {read} bytes into a frame of {bytes} bytes"),
        )));
    }
    Ok(Some(frame))
}

/// Writes one frame (not flushed).
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a frame of {} bytes does not fit a u32 length", bytes.len()),
        )
    })?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(bytes).await
}

/// `host:port` split into host (IPv6 brackets removed) and port.
fn split_host_port(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// Every shared setting that differs, named with both nodes' values.
/// Shared settings that describe one node (`ClusterConfig::shared_settings`).
const NODE_SETTING_PREFIX: &str = "cluster.nodes[";

fn settings_differences(
    me: u64,
    ours: &[(String, String)],
    peer: u64,
    theirs: &[(String, String)],
) -> Vec<String> {
    let ours: BTreeMap<&str, &str> = ours.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let theirs: BTreeMap<&str, &str> = theirs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let shown = |v: Option<&&str>| v.map_or_else(|| "nothing".to_owned(), |v| format!("{v:?}"));
    let mut names: Vec<&str> = ours.keys().chain(theirs.keys()).copied().collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .filter(|name| match (ours.get(name), theirs.get(name)) {
            // A node listed on one side only is being added or removed: its entry is
            // compared once both list it.
            (Some(_), None) | (None, Some(_)) => !name.starts_with(NODE_SETTING_PREFIX),
            (a, b) => a != b,
        })
        .map(|name| {
            format!(
                "setting {name} differs: node {me} has {}, node {peer} has {}",
                shown(ours.get(name)),
                shown(theirs.get(name))
            )
        })
        .collect()
}

/// `text` cut to at most `bytes_max` bytes, on a character boundary.
fn truncated(text: &str, bytes_max: usize) -> String {
    if text.len() <= bytes_max {
        return text.to_owned();
    }
    let mut end = bytes_max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Dialer,
    Listener,
}

/// What every task of one transport shares.
struct Shared {
    node_id: u64,
    cluster_id: String,
    peer_uri: String,
    peers: BTreeMap<u64, String>,
    shared_settings: Vec<(String, String)>,
    message_bytes_max: usize,
    connect_timeout_ms: u64,
    queue_messages_max: usize,
    inbound: mpsc::UnboundedSender<Inbound>,
    /// The last refusal reported per peer and side.
    refusals: Mutex<BTreeMap<(u64, Side), String>>,
    /// The inbound connection of each peer: its number, and what closes it when dropped.
    readers: Mutex<BTreeMap<u64, (u64, oneshot::Sender<()>)>>,
    connections: AtomicU64,
}

impl Shared {
    fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    fn write_timeout(&self, bytes: usize) -> Duration {
        Duration::from_millis(
            self.connect_timeout_ms
                .saturating_add(bytes as u64 / WRITE_BYTES_PER_MS_MIN),
        )
    }

    fn report(&self, inbound: Inbound) {
        // The driver has gone away when this fails; the tasks end on their own then.
        let _ = self.inbound.send(inbound);
    }

    fn refused(&self, peer: u64, side: Side, why: String) {
        {
            let mut refusals = lock(&self.refusals);
            if refusals.get(&(peer, side)) == Some(&why) {
                return;
            }
            if refusals.len() >= REFUSALS_REMEMBERED_MAX {
                refusals.clear();
            }
            refusals.insert((peer, side), why.clone());
        }
        tracing::error!(peer, "raft transport: {why}");
        self.report(Inbound::Refused { peer, why });
    }

    fn accepted(&self, peer: u64, side: Side) {
        lock(&self.refusals).remove(&(peer, side));
    }

    /// Why the listener refuses this hello, if it does.
    fn check_hello(&self, h: &HelloV1, identity: Option<&PeerIdentity>) -> Result<(), String> {
        let me = self.node_id;
        if !identity.is_some_and(|i| i.uri_sans.contains(&self.peer_uri)) {
            let held = identity.map(|i| i.uri_sans.join(", ")).unwrap_or_default();
            return Err(format!(
                "its client certificate does not carry the URI SAN {} (its URI SANs: [{held}])",
                self.peer_uri
            ));
        }
        if h.message_format_version > MESSAGE_FORMAT_VERSION {
            return Err(format!(
                "node {} sends raft messages in format version {}, node {me} reads up to version {MESSAGE_FORMAT_VERSION}",
                h.from, h.message_format_version
            ));
        }
        if h.cluster_id != self.cluster_id {
            return Err(format!(
                "the cluster id differs: node {} has {:?}, node {me} has {:?}",
                h.from, h.cluster_id, self.cluster_id
            ));
        }
        if h.to != me {
            return Err(format!(
                "node {} dialled node {} but reached node {me}: check cluster.nodes[id={}].raft_address",
                h.from, h.to, h.to
            ));
        }
        if h.from == me || !self.peers.contains_key(&h.from) {
            return Err(format!(
                "node {} is not a peer of node {me} (its peers: {:?})",
                h.from,
                self.peers.keys().collect::<Vec<_>>()
            ));
        }
        let differences =
            settings_differences(me, &self.shared_settings, h.from, &h.shared_settings);
        if !differences.is_empty() {
            return Err(differences.join("; "));
        }
        Ok(())
    }

    /// Makes `peer`'s new inbound connection its only one: the older one is closed.
    fn register_reader(&self, peer: u64) -> (u64, oneshot::Receiver<()>) {
        let number = self.connections.fetch_add(1, Ordering::Relaxed);
        let (close, closed) = oneshot::channel();
        lock(&self.readers).insert(peer, (number, close));
        (number, closed)
    }

    fn unregister_reader(&self, peer: u64, number: u64) {
        let mut readers = lock(&self.readers);
        if readers.get(&peer).is_some_and(|(n, _)| *n == number) {
            readers.remove(&peer);
        }
    }
}

/// The messages waiting for one peer.
#[derive(Default)]
struct PeerQueue {
    messages: Mutex<VecDeque<Message>>,
    notify: Notify,
}

impl PeerQueue {
    /// Queues `msg`, keeping at most `max` messages; returns the one dropped to make room.
    fn push(&self, msg: Message, max: usize) -> Option<Message> {
        debug_assert!(max > 0);
        let dropped = {
            let mut q = lock(&self.messages);
            let dropped = if q.len() >= max {
                match q.iter().position(|m| !m.is_snapshot()) {
                    Some(i) => q.remove(i),
                    None => q.pop_front(),
                }
            } else {
                None
            };
            q.push_back(msg);
            dropped
        };
        self.notify.notify_one();
        dropped
    }

    fn take(&self, max: usize) -> Vec<Message> {
        let mut q = lock(&self.messages);
        let n = q.len().min(max);
        q.drain(..n).collect()
    }

    fn clear(&self) -> Vec<Message> {
        lock(&self.messages).drain(..).collect()
    }
}

/// A running transport; dropping it stops every task (see also [`Transport::shutdown`]).
pub struct Transport {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    queues: BTreeMap<u64, Arc<PeerQueue>>,
    stop_listening: Option<oneshot::Sender<()>>,
    listener: Option<JoinHandle<()>>,
    dialers: Vec<JoinHandle<()>>,
}

impl Drop for Transport {
    fn drop(&mut self) {
        if let Some(l) = &self.listener {
            l.abort();
        }
        for d in &self.dialers {
            d.abort();
        }
    }
}

fn check_config(c: &TransportConfig) -> Result<(), String> {
    if c.node_id == 0 {
        return Err("node_id must be 1 or more".into());
    }
    if c.cluster_id.is_empty() {
        return Err("cluster_id must not be empty".into());
    }
    if c.peer_uri.is_empty() {
        return Err("peer_uri must not be empty".into());
    }
    for (id, addr) in &c.peers {
        if *id == 0 || *id == c.node_id {
            return Err(format!(
                "peer id {id} is not allowed (0, or this node's own id)"
            ));
        }
        let Some((host, _)) = split_host_port(addr) else {
            return Err(format!(
                "the address of node {id} must be host:port, not {addr:?}"
            ));
        };
        ServerName::try_from(host.clone()).map_err(|e| {
            format!("the host {host:?} of node {id} is not a valid server name: {e}")
        })?;
    }
    if c.message_bytes_max == 0 || c.message_bytes_max > u32::MAX as usize {
        return Err(format!(
            "message_bytes_max must be in 1..={}, not {}",
            u32::MAX,
            c.message_bytes_max
        ));
    }
    if c.connect_timeout_ms == 0 {
        return Err("connect_timeout_ms must be greater than 0".into());
    }
    if c.queue_messages_max == 0 {
        return Err("queue_messages_max must be greater than 0".into());
    }
    Ok(())
}

impl Transport {
    /// Starts the listener and one sender task per peer; inbound messages and reports go to
    /// `inbound`. TLS: the listener presents `tls.server` and demands a client certificate
    /// from `tls.ca` carrying the URI SAN `config.peer_uri`; the dialer presents
    /// `tls.client` and checks the peer's certificate against `tls.ca` and the host of its
    /// address.
    pub async fn start(
        config: TransportConfig,
        tls: TransportTls,
        inbound: mpsc::UnboundedSender<Inbound>,
    ) -> Result<Transport, TransportError> {
        check_config(&config).map_err(TransportError::Config)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| TransportError::Listen {
                    addr: config.listen,
                    source,
                })?;
        Transport::start_with_listener(config, tls, inbound, listener).await
    }

    /// Like [`Transport::start`], on a listener bound already (`config.listen` is then
    /// only named in errors).
    pub async fn start_with_listener(
        config: TransportConfig,
        tls: TransportTls,
        inbound: mpsc::UnboundedSender<Inbound>,
        listener: TcpListener,
    ) -> Result<Transport, TransportError> {
        check_config(&config).map_err(TransportError::Config)?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| TransportError::Listen {
                addr: config.listen,
                source,
            })?;
        let mut server =
            (*ordo_net::tls::server_config(&tls.server, ClientAuth::Required(tls.ca.clone()))?)
                .clone();
        server.alpn_protocols = vec![ALPN_RAFT.to_vec()];
        let mut client = (*ordo_net::tls::client_config(&tls.ca, Some(&tls.client))?).clone();
        client.alpn_protocols = vec![ALPN_RAFT.to_vec()];
        let connector = TlsConnector::from(Arc::new(client));

        let shared = Arc::new(Shared {
            node_id: config.node_id,
            cluster_id: config.cluster_id.clone(),
            peer_uri: config.peer_uri.clone(),
            peers: config.peers.clone(),
            shared_settings: config.shared_settings.clone(),
            message_bytes_max: config.message_bytes_max,
            connect_timeout_ms: config.connect_timeout_ms,
            queue_messages_max: config.queue_messages_max,
            inbound,
            refusals: Mutex::default(),
            readers: Mutex::default(),
            connections: AtomicU64::new(0),
        });

        // Every dialer is made before any task starts, so that an error leaves nothing running.
        let mut to_dial = Vec::new();
        let mut queues = BTreeMap::new();
        for (&peer, addr) in &config.peers {
            let (host, port) = split_host_port(addr)
                .ok_or_else(|| TransportError::Config(format!("bad address {addr:?}")))?;
            let server_name = ServerName::try_from(host.clone())
                .map_err(|e| TransportError::Config(format!("bad host {host:?}: {e}")))?;
            let hello = postcard::to_stdvec(&Hello::V1(HelloV1 {
                message_format_version: MESSAGE_FORMAT_VERSION,
                cluster_id: config.cluster_id.clone(),
                from: config.node_id,
                to: peer,
                shared_settings: config.shared_settings.clone(),
            }))
            .map_err(|e| TransportError::Config(format!("the hello does not encode: {e}")))?;
            if hello.len() > HELLO_BYTES_MAX {
                return Err(TransportError::Config(format!(
                    "the shared settings make a handshake of {} bytes, more than {HELLO_BYTES_MAX}",
                    hello.len()
                )));
            }
            let queue = Arc::new(PeerQueue::default());
            queues.insert(peer, queue.clone());
            to_dial.push(Dialer {
                peer,
                addr: addr.clone(),
                host,
                port,
                server_name,
                hello,
                connector: connector.clone(),
                queue,
                shared: shared.clone(),
            });
        }
        let dialers = to_dial.into_iter().map(|d| tokio::spawn(d.run())).collect();
        let (stop_listening, stop) = oneshot::channel();
        let listener = tokio::spawn(listen(
            listener,
            TlsAcceptor::from(Arc::new(server)),
            shared.clone(),
            stop,
        ));
        tracing::info!(
            node = config.node_id,
            %local_addr,
            peers = ?config.peers,
            "raft transport listening"
        );
        Ok(Transport {
            shared,
            local_addr,
            queues,
            stop_listening: Some(stop_listening),
            listener: Some(listener),
            dialers,
        })
    }

    /// Non-blocking: queues `msg` for `msg.to()`. Never blocks the caller.
    pub fn send(&self, msg: Message) {
        let to = msg.to();
        let Some(queue) = self.queues.get(&to) else {
            tracing::warn!(
                to,
                kind = msg.kind_name(),
                "a raft message for a node that is not a peer is dropped"
            );
            if msg.is_snapshot() {
                self.shared.report(Inbound::SnapshotSent {
                    to,
                    delivered: false,
                });
            }
            return;
        };
        if let Some(dropped) = queue.push(msg, self.shared.queue_messages_max) {
            tracing::debug!(
                to,
                kind = dropped.kind_name(),
                "raft send queue full: the oldest message is dropped"
            );
            if dropped.is_snapshot() {
                self.shared.report(Inbound::SnapshotSent {
                    to,
                    delivered: false,
                });
            }
        }
    }

    /// The address the listener is bound to (tests bind port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops listening, closes every connection and waits until they are closed (so that
    /// the port can be bound again at once).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop_listening.take() {
            let _ = stop.send(());
        }
        if let Some(listener) = self.listener.take() {
            let _ = listener.await;
        }
        for d in &self.dialers {
            d.abort();
        }
        for d in self.dialers.drain(..) {
            let _ = d.await;
        }
    }
}

/// How a dialer's connection ended.
enum End {
    /// Refused by the peer, or a TLS configuration mismatch: the reason.
    Refused(String),
    Lost {
        /// The peer had accepted the connection.
        accepted: bool,
        /// A message could not be written.
        write_failed: bool,
        reason: String,
    },
}

fn lost(reason: String) -> End {
    End::Lost {
        accepted: false,
        write_failed: false,
        reason,
    }
}

/// Whether a TLS error means the two nodes' certificates or protocols do not fit (a
/// configuration error, not an outage), and how.
fn tls_refusal(e: &io::Error) -> Option<String> {
    use rustls::{AlertDescription as A, Error as E};
    let inner = e.get_ref()?.downcast_ref::<E>()?;
    match inner {
        E::InvalidCertificate(_) => Some(format!(
            "its server certificate is not accepted by this node: {inner}"
        )),
        E::AlertReceived(
            A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied
            | A::CertificateRequired
            // A certificate whose signature does not verify: from another CA of the same name.
            | A::DecryptError,
        ) => Some(format!(
            "it does not accept this node's client certificate: {inner}"
        )),
        E::NoApplicationProtocol | E::AlertReceived(A::NoApplicationProtocol) => Some(format!(
            "it does not speak the raft transport ({}): is its address the raft port? {inner}",
            String::from_utf8_lossy(ALPN_RAFT)
        )),
        _ => None,
    }
}

type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

/// The task that sends one peer its messages.
struct Dialer {
    peer: u64,
    addr: String,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    hello: Vec<u8>,
    connector: TlsConnector,
    queue: Arc<PeerQueue>,
    shared: Arc<Shared>,
}

impl Dialer {
    async fn run(self) {
        let mut delay_ms = 0;
        let mut last_reason: Option<String> = None;
        loop {
            if delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            let (unreachable, reason) = match self.session().await {
                End::Refused(reason) => {
                    self.shared.refused(
                        self.peer,
                        Side::Dialer,
                        format!(
                            "node {} at {} refused node {}: {reason}",
                            self.peer, self.addr, self.shared.node_id
                        ),
                    );
                    delay_ms = RECONNECT_MAX_MS;
                    (false, reason)
                }
                End::Lost {
                    accepted,
                    write_failed,
                    reason,
                } => {
                    delay_ms = if accepted {
                        RECONNECT_MIN_MS
                    } else {
                        (delay_ms * 2).clamp(RECONNECT_MIN_MS, RECONNECT_MAX_MS)
                    };
                    if accepted || last_reason.as_ref() != Some(&reason) {
                        tracing::warn!(peer = self.peer, addr = %self.addr, "raft peer unreachable: {reason}");
                    } else {
                        tracing::debug!(peer = self.peer, addr = %self.addr, "raft peer still unreachable: {reason}");
                    }
                    (accepted || write_failed, reason)
                }
            };
            last_reason = Some(reason);
            let dropped = self.queue.clear();
            for m in dropped.iter().filter(|m| m.is_snapshot()) {
                self.shared.report(Inbound::SnapshotSent {
                    to: m.to(),
                    delivered: false,
                });
            }
            if unreachable || !dropped.is_empty() {
                self.shared.report(Inbound::Unreachable(self.peer));
            }
            if self.shared.inbound.is_closed() {
                return;
            }
        }
    }

    fn tls_failure(&self, e: io::Error) -> End {
        match tls_refusal(&e) {
            Some(why) => End::Refused(why),
            None => lost(format!("the TLS connection failed: {e}")),
        }
    }

    /// TCP, TLS, hello and the answer.
    async fn connect(&self) -> Result<ClientStream, End> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| lost(format!("cannot connect: {e}")))?;
        tcp.set_nodelay(true)
            .map_err(|e| lost(format!("cannot set TCP_NODELAY: {e}")))?;
        let mut tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| self.tls_failure(e))?;
        write_frame(&mut tls, &self.hello)
            .await
            .map_err(|e| self.tls_failure(e))?;
        tls.flush().await.map_err(|e| self.tls_failure(e))?;
        let answer = match read_frame(&mut tls, HELLO_BYTES_MAX).await {
            Ok(Some(answer)) => answer,
            Ok(None) => return Err(lost("it closed the connection before answering".into())),
            Err(FrameError::Io(e)) => return Err(self.tls_failure(e)),
            Err(e @ FrameError::TooLarge { .. }) => {
                return Err(End::Refused(format!("its answer to the handshake: {e}")));
            }
        };
        match postcard::from_bytes::<Answer>(&answer) {
            Ok(Answer::Accept) => Ok(tls),
            Ok(Answer::Refuse { reason }) => Err(End::Refused(reason)),
            Err(e) => Err(End::Refused(format!(
                "its answer to the handshake cannot be read (a newer version?): {e}"
            ))),
        }
    }

    /// One connection: connect, then write queued messages until it fails.
    async fn session(&self) -> End {
        let stream = match timeout(self.shared.connect_timeout(), self.connect()).await {
            Err(_) => {
                return lost(format!(
                    "no connection within connect_timeout_ms = {}",
                    self.shared.connect_timeout_ms
                ));
            }
            Ok(Err(end)) => return end,
            Ok(Ok(stream)) => stream,
        };
        self.shared.accepted(self.peer, Side::Dialer);
        tracing::info!(peer = self.peer, addr = %self.addr, "raft peer connected (outbound)");
        let (mut reader, writer) = tokio::io::split(stream);
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER_BYTES, writer);
        let mut probe = [0u8; 1];
        loop {
            let batch = self.queue.take(BATCH_MESSAGES_MAX);
            if batch.is_empty() {
                tokio::select! {
                    () = self.queue.notify.notified() => continue,
                    read = reader.read(&mut probe) => {
                        let reason = match read {
                            Ok(0) => "it closed the connection".to_owned(),
                            Ok(_) => "it wrote on a connection it only reads".to_owned(),
                            Err(e) => format!("the connection failed: {e}"),
                        };
                        return End::Lost { accepted: true, write_failed: false, reason };
                    }
                }
            }
            if let Err(reason) = self.write_batch(&mut writer, &batch).await {
                return End::Lost {
                    accepted: true,
                    write_failed: true,
                    reason,
                };
            }
        }
    }

    /// Writes and flushes `batch`, reporting the snapshots in it.
    async fn write_batch<W: AsyncWrite + Unpin>(
        &self,
        w: &mut W,
        batch: &[Message],
    ) -> Result<(), String> {
        let snapshot_reports = |messages: &[Message], delivered: bool| {
            for m in messages.iter().filter(|m| m.is_snapshot()) {
                self.shared.report(Inbound::SnapshotSent {
                    to: m.to(),
                    delivered,
                });
            }
        };
        let mut sent = Vec::with_capacity(batch.len());
        for (i, msg) in batch.iter().enumerate() {
            let bytes = msg.encode();
            if bytes.len() > self.shared.message_bytes_max {
                tracing::error!(
                    peer = self.peer,
                    kind = msg.kind_name(),
                    bytes = bytes.len(),
                    message_bytes_max = self.shared.message_bytes_max,
                    "a raft message larger than message_bytes_max is not sent"
                );
                snapshot_reports(std::slice::from_ref(msg), false);
                continue;
            }
            let written = timeout(
                self.shared.write_timeout(bytes.len()),
                write_frame(w, &bytes),
            )
            .await;
            if let Some(reason) = write_error(written) {
                snapshot_reports(&sent, false);
                snapshot_reports(&batch[i..], false);
                return Err(reason);
            }
            sent.push(msg.clone());
        }
        let flushed = timeout(self.shared.write_timeout(WRITE_BUFFER_BYTES), w.flush()).await;
        if let Some(reason) = write_error(flushed) {
            snapshot_reports(&sent, false);
            return Err(reason);
        }
        snapshot_reports(&sent, true);
        Ok(())
    }
}

fn write_error(result: Result<io::Result<()>, tokio::time::error::Elapsed>) -> Option<String> {
    match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("a write failed: {e}")),
        Err(_) => Some("a write did not finish in time".to_owned()),
    }
}

/// Accepts connections until `stop`; then closes them all and returns.
async fn listen(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_PENDING_MAX));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait a little rather than spin.
                tracing::warn!("accepting a raft connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(RECONNECT_MIN_MS)).await;
                continue;
            }
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            tracing::warn!(%remote, "too many raft connections in handshake: this one is closed");
            continue;
        };
        connections.spawn(serve_inbound(
            tcp,
            remote,
            acceptor.clone(),
            shared.clone(),
            permit,
        ));
    }
    drop(listener);
    connections.shutdown().await;
}

type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;

/// One inbound connection: TLS, hello, answer, then the peer's messages.
async fn serve_inbound(
    tcp: TcpStream,
    remote: SocketAddr,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) {
    let _ = tcp.set_nodelay(true);
    let deadline = Instant::now() + shared.connect_timeout();
    let mut tls = match timeout_at(deadline, acceptor.accept(tcp).into_fallible()).await {
        Err(_) => {
            tracing::debug!(%remote, "a raft connection did not finish TLS in time");
            return;
        }
        Ok(Err((e, tcp))) => {
            tracing::warn!(%remote, "a raft connection failed TLS: {e}");
            linger(tcp, shared.connect_timeout()).await;
            return;
        }
        Ok(Ok(tls)) => tls,
    };
    let identity = PeerIdentity::from_server_stream(&tls).ok().flatten();
    let hello = match timeout_at(deadline, read_frame(&mut tls, HELLO_BYTES_MAX)).await {
        Err(_) => {
            tracing::debug!(%remote, "a raft connection sent no handshake in time");
            return;
        }
        Ok(Ok(Some(hello))) => hello,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::warn!(%remote, "a raft connection's handshake cannot be read: {e}");
            return;
        }
    };
    let hello = match Hello::decode(&hello) {
        Ok(hello) => hello,
        Err(reason) => {
            tracing::warn!(%remote, "a raft connection is refused: {reason}");
            refuse(&mut tls, &reason, shared.connect_timeout()).await;
            return;
        }
    };
    let peer = hello.from;
    if let Err(reason) = shared.check_hello(&hello, identity.as_ref()) {
        shared.refused(
            peer,
            Side::Listener,
            format!(
                "node {peer} ({remote}) is refused by node {}: {reason}",
                shared.node_id
            ),
        );
        refuse(&mut tls, &reason, shared.connect_timeout()).await;
        return;
    }
    let accept = postcard::to_stdvec(&Answer::Accept).expect("encoding to a Vec cannot fail");
    let answered = timeout_at(deadline, async {
        write_frame(&mut tls, &accept).await?;
        tls.flush().await
    })
    .await;
    if let Some(reason) = write_error(answered) {
        tracing::debug!(peer, %remote, "a raft connection ended before its answer: {reason}");
        return;
    }
    drop(permit);
    shared.accepted(peer, Side::Listener);
    tracing::info!(peer, %remote, "raft peer connected (inbound)");
    let (number, mut replaced) = shared.register_reader(peer);
    let reason = tokio::select! {
        _ = &mut replaced => "a newer connection from the same node replaced it".to_owned(),
        reason = read_messages(&mut tls, peer, &shared) => reason,
    };
    shared.unregister_reader(peer, number);
    tracing::info!(peer, %remote, "raft peer disconnected (inbound): {reason}");
}

/// Hands the peer's messages to the driver until the connection ends; returns why it did.
async fn read_messages(tls: &mut ServerStream, peer: u64, shared: &Shared) -> String {
    let mut foreign = 0u64;
    loop {
        let bytes = match read_frame(tls, shared.message_bytes_max).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return "it closed the connection".to_owned(),
            Err(e @ FrameError::TooLarge { .. }) => {
                tracing::warn!(peer, "raft connection closed: {e} (message_bytes_max)");
                return e.to_string();
            }
            Err(FrameError::Io(e)) => return format!("the connection failed: {e}"),
        };
        let msg = match Message::decode(&bytes) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(peer, "a raft message that does not decode is dropped: {e}");
                continue;
            }
        };
        if msg.from() != peer || msg.to() != shared.node_id {
            foreign += 1;
            if foreign.is_power_of_two() {
                tracing::warn!(
                    peer,
                    from = msg.from(),
                    to = msg.to(),
                    kind = msg.kind_name(),
                    dropped = foreign,
                    "a raft message on a peer's connection that is not from it to this node is dropped"
                );
            }
            continue;
        }
        if shared.inbound.send(Inbound::Message(msg)).is_err() {
            return "the transport's driver is gone".to_owned();
        }
    }
}

/// Answers a refusal and closes the connection.
async fn refuse(tls: &mut ServerStream, reason: &str, wait: Duration) {
    let answer = Answer::Refuse {
        reason: truncated(reason, REASON_BYTES_MAX),
    };
    let answer = postcard::to_stdvec(&answer).expect("encoding to a Vec cannot fail");
    let _ = timeout(wait, async {
        write_frame(tls, &answer).await?;
        tls.shutdown().await
    })
    .await;
}

/// Closes a connection whose TLS handshake failed so that the TLS alert reaches the peer:
/// the write side is shut, and what the peer still sends is read and dropped until it
/// closes (bounded in time and bytes), so that the close is not a reset.
async fn linger(mut tcp: TcpStream, wait: Duration) {
    let _ = tcp.shutdown().await;
    let mut buf = [0u8; 4096];
    let mut total = 0usize;
    let _ = timeout(wait, async {
        while let Ok(n @ 1..) = tcp.read(&mut buf).await {
            total += n;
            if total > HELLO_BYTES_MAX {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(bytes: &[u8]) -> Message {
        Message::decode(bytes).expect("a raft message")
    }

    /// A heartbeat in the wire format (`ordo_replica::wire`): from 1 to 2 with `term`.
    fn heartbeat(term: u8) -> Message {
        message(&[0, 5, 2, 1, term, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    /// A snapshot message from 1 to 2 carrying one byte, `term` as a tag.
    fn snapshot(term: u8) -> Message {
        message(&[0, 4, 2, 1, term, 0, 0, 0, 0, 0, 1, 1, 9, 0, 0, 0, 0, 0, 0])
    }

    #[test]
    fn a_full_queue_drops_the_oldest_message_that_is_not_a_snapshot() {
        let q = PeerQueue::default();
        assert!(snapshot(1).is_snapshot() && !heartbeat(1).is_snapshot());
        assert_eq!(q.push(snapshot(1), 3), None);
        assert_eq!(q.push(heartbeat(2), 3), None);
        assert_eq!(q.push(heartbeat(3), 3), None);
        assert_eq!(q.push(heartbeat(4), 3), Some(heartbeat(2)));
        assert_eq!(q.push(snapshot(5), 3), Some(heartbeat(3)));
        assert_eq!(q.push(snapshot(6), 3), Some(heartbeat(4)));
        // Only snapshots left: the oldest of them goes.
        assert_eq!(q.push(heartbeat(7), 3), Some(snapshot(1)));
        assert_eq!(q.take(2), vec![snapshot(5), snapshot(6)]);
        assert_eq!(q.clear(), vec![heartbeat(7)]);
    }

    #[test]
    fn differing_settings_are_named_with_both_values() {
        let ours = vec![
            ("cluster_id".to_owned(), "main".to_owned()),
            ("a".to_owned(), "1".to_owned()),
            ("only_ours".to_owned(), "x".to_owned()),
            ("cluster.nodes[id=4]".to_owned(), "added".to_owned()),
        ];
        let theirs = vec![
            ("a".to_owned(), "2".to_owned()),
            ("cluster_id".to_owned(), "main".to_owned()),
        ];
        assert_eq!(
            settings_differences(1, &ours, 2, &theirs),
            vec![
                r#"setting a differs: node 1 has "1", node 2 has "2""#.to_owned(),
                r#"setting only_ours differs: node 1 has "x", node 2 has nothing"#.to_owned(),
            ]
        );
        assert!(settings_differences(1, &ours, 2, &ours).is_empty());
    }

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(
            split_host_port("ctl-a.example:7443"),
            Some(("ctl-a.example".to_owned(), 7443))
        );
        assert_eq!(split_host_port("[::1]:80"), Some(("::1".to_owned(), 80)));
        for bad in ["nohost", ":80", "a:b", "::1:80", "[::1:80", "a:70000"] {
            assert_eq!(split_host_port(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_newer_hello_is_named_as_such() {
        let hello = Hello::V1(HelloV1 {
            message_format_version: 1,
            cluster_id: "main".into(),
            from: 1,
            to: 2,
            shared_settings: vec![("k".into(), "v".into())],
        });
        let mut bytes = postcard::to_stdvec(&hello).unwrap();
        assert!(matches!(Hello::decode(&bytes), Ok(h) if h.to == 2));
        bytes[0] = 1;
        let e = Hello::decode(&bytes).unwrap_err();
        assert!(e.contains("version 2") && e.contains("version 1"), "{e}");
        bytes[0] = 0;
        let e = Hello::decode(&bytes[..3]).unwrap_err();
        assert!(e.contains("not a raft transport handshake"), "{e}");
        let e = Hello::decode(b"GET / HTTP/1.1").unwrap_err();
        assert!(e.contains("does not read"), "{e}");
        assert_eq!(varint_u32(&[0x80, 0x01]), Some(128));
    }

    #[tokio::test]
    async fn frames_are_bounded_and_a_clean_end_is_none() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_frame(&mut a, b"hello").await.unwrap();
        write_frame(&mut a, &[0u8; 11]).await.unwrap();
        a.write_all(&[0, 0]).await.unwrap();
        assert_eq!(
            read_frame(&mut b, 10).await.unwrap(),
            Some(b"hello".to_vec())
        );
        assert!(matches!(
            read_frame(&mut b, 10).await,
            Err(FrameError::TooLarge {
                bytes: 11,
                bytes_max: 10
            })
        ));
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_frame(&mut a, b"x").await.unwrap();
        drop(a);
        assert_eq!(read_frame(&mut b, 10).await.unwrap(), Some(b"x".to_vec()));
        assert_eq!(read_frame(&mut b, 10).await.unwrap(), None);
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&[0, 0, 0, 5, 1]).await.unwrap();
        drop(a);
        let e = read_frame(&mut b, 10).await.unwrap_err();
        assert!(e.to_string().contains("1 bytes into a frame of 5"), "{e}");
    }

    #[test]
    fn bad_configurations_are_named() {
        let good = TransportConfig {
            node_id: 1,
            cluster_id: "main".into(),
            peer_uri: "ordo:controller:main".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            peers: [(2, "ctl-b.example:7443".to_owned())].into(),
            shared_settings: Vec::new(),
            message_bytes_max: 1 << 20,
            connect_timeout_ms: 500,
            queue_messages_max: 1024,
        };
        assert_eq!(check_config(&good), Ok(()));
        let bad = |change: fn(&mut TransportConfig), named: &str| {
            let mut c = good.clone();
            change(&mut c);
            let e = check_config(&c).unwrap_err();
            assert!(e.contains(named), "{e}");
        };
        bad(|c| c.node_id = 0, "node_id");
        bad(|c| c.cluster_id.clear(), "cluster_id");
        bad(|c| c.peer_uri.clear(), "peer_uri");
        bad(|c| _ = c.peers.insert(1, "a:1".into()), "peer id 1");
        bad(
            |c| _ = c.peers.insert(3, "no-port".into()),
            "node 3 must be host:port",
        );
        bad(|c| c.message_bytes_max = 0, "message_bytes_max");
        bad(|c| c.connect_timeout_ms = 0, "connect_timeout_ms");
        bad(|c| c.queue_messages_max = 0, "queue_messages_max");
    }

    #[test]
    fn long_reasons_are_cut_on_a_character_boundary() {
        assert_eq!(truncated("abc", 3), "abc");
        assert_eq!(truncated("aéb", 2), "a…");
    }
}
