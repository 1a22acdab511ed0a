//! Ordo's replicated log: raft (tikv `raft` 0.7) over the ordo journal.
//!
//! - [`LogStore`] implements raft-rs's `Storage` over an [`ordo_journal::Journal`]: one journal
//!   record per raft entry with the raft index as its id ([`record`]), the hard state and the
//!   compaction point in an atomically replaced state file ([`state`]), snapshots with raft's
//!   metadata and a format version ([`snapshot`]). Its module documentation says what is
//!   durable when.
//! - [`Node`] wraps raft-rs's `RawNode` without clock or network: the caller ticks it, steps
//!   peers' messages into it, proposes batches, and takes [`Update`]s (committed entries to
//!   apply, a snapshot to restore) while messages leave through a callback in the order raft
//!   requires.
//! - [`Message`] is the messages' own postcard format ([`wire`]): raft's protobuf never
//!   crosses the network.
//!
//! - [`driver`]: the raft thread that owns a [`Node`], ticks it and runs its updates, and
//!   [`transport`]: raft messages between the nodes over mutual TLS (`ordo-net`'s material).
//!   Both are shared by the controller pair and an agent's director pair.
//!
//! Raft's protobuf types stay inside this crate; its log lines go to `tracing` (target `raft`).
//!
//! # Example: a single-node cluster
//!
//! ```
//! use ordo_replica::{CommittedKind, Node, NodeConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let (mut node, _restored) = Node::open(dir.path(), NodeConfig::new(1, [1]))?;
//! node.campaign()?;
//! let mut sent = Vec::new();
//! while node.has_update() {
//!     node.update(&mut |m| sent.push(m))?;
//! }
//! assert!(node.is_leader() && sent.is_empty());
//! let proposed = node.propose(b"a batch of events".to_vec())?;
//! let mut applied = Vec::new();
//! while node.has_update() {
//!     applied.extend(node.update(&mut |m| sent.push(m))?.committed);
//! }
//! let last = applied.last().unwrap();
//! assert_eq!((last.index, last.term), (proposed.index, proposed.term));
//! assert_eq!(last.kind, CommittedKind::Batch(b"a batch of events".to_vec()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// raft's protobuf types are built field by field, as raft-proto itself does.
#![allow(clippy::field_reassign_with_default)]

mod codec;
pub mod driver;
mod error;
mod logger;
mod node;
pub mod record;
pub mod snapshot;
pub mod state;
mod storage;
pub mod transport;
pub mod wire;

pub use crate::{
    codec::Membership,
    driver::Position,
    error::{ReplicaError, Result},
    node::{
        Committed, CommittedKind, MembershipChange, Node, NodeConfig, PairTiming, Proposed,
        Restored, Role, RoleChange, Status, Update,
    },
    snapshot::{SNAPSHOT_FORMAT_VERSION, Snapshot},
    storage::{
        BOOTSTRAP_INDEX, BOOTSTRAP_TERM, HardState, LOG_DIR_NAME, LogStore, OpenedStore,
        StoreConfig,
    },
    wire::{MESSAGE_FORMAT_VERSION, Message, MessageLimits},
};
