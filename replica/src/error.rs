//! The replica's error type.

use std::{io, path::PathBuf};

use ordo_journal::JournalError;

/// Everything that can go wrong in the replicated log. Every message says what failed and why.
///
/// [`ReplicaError::is_fatal`] tells a driver whether the node can go on: storage failures are
/// fatal (the process stops and recovery runs on restart), a refused proposal or a bad message
/// from a peer is not.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// The log's journal failed (see [`JournalError`]; an fsync failure stops it for good).
    #[error("raft log journal: {0}")]
    Journal(#[from] JournalError),

    /// A file operation on the raft state or a snapshot file failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// A file holds bytes that are not what this crate wrote, or files contradict each other.
    #[error("{} is corrupt: {reason}", file.display())]
    Corrupt { file: PathBuf, reason: String },

    /// Something was written by a newer version of a format than this build reads.
    #[error(
        "{what} has format version {found}, newer than version {supported} that this build \
         reads; refused (upgrade this node first)"
    )]
    UnsupportedVersion {
        what: String,
        found: u32,
        supported: u32,
    },

    /// A proposal went to a node that is not the leader.
    #[error("this node is not the leader{}", leader_hint(*leader))]
    NotLeader { leader: Option<u64> },

    /// A proposal is larger than `NodeConfig::proposal_bytes_max`.
    #[error("proposal of {bytes} bytes is larger than proposal_bytes_max = {max} bytes")]
    ProposalTooLarge { bytes: u64, max: u64 },

    /// Raft dropped a proposal (a leader transfer is under way, or the uncommitted entries
    /// already reach `uncommitted_bytes_max`); nothing was appended, the caller may retry.
    #[error("the proposal was dropped: {0}")]
    ProposalDropped(String),

    /// A message from a peer was refused; the node goes on without it.
    #[error("message refused: {0}")]
    BadMessage(String),

    /// Raft itself refused a call.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),

    /// The call's arguments contradict the node's state; the message says how.
    #[error("{0}")]
    Invalid(String),
}

fn leader_hint(leader: Option<u64>) -> String {
    match leader {
        Some(id) => format!(" (node {id} is)"),
        None => " (no leader is known)".to_string(),
    }
}

impl ReplicaError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> ReplicaError {
        ReplicaError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn corrupt(file: impl Into<PathBuf>, reason: impl Into<String>) -> ReplicaError {
        ReplicaError::Corrupt {
            file: file.into(),
            reason: reason.into(),
        }
    }

    /// Whether the node must stop: its storage failed or holds something it cannot use. Any
    /// other error (a refused proposal or message, a call that does not fit the state) leaves
    /// the node usable. Errors from opening a node are all final for that open.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ReplicaError::Journal(_)
                | ReplicaError::Io { .. }
                | ReplicaError::Corrupt { .. }
                | ReplicaError::Raft(raft::Error::Store(_) | raft::Error::Io(_))
        )
    }
}

pub type Result<T, E = ReplicaError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_failures_are_fatal_refusals_are_not() {
        let journal = ReplicaError::Journal(JournalError::Failed("fsync failed".into()));
        assert!(journal.is_fatal());
        let store = ReplicaError::Raft(raft::Error::Store(raft::StorageError::Unavailable));
        assert!(store.is_fatal());
        assert!(!ReplicaError::NotLeader { leader: Some(2) }.is_fatal());
        assert!(!ReplicaError::BadMessage("damaged".into()).is_fatal());
        assert!(!ReplicaError::Raft(raft::Error::ProposalDropped).is_fatal());
        assert_eq!(
            ReplicaError::NotLeader { leader: Some(2) }.to_string(),
            "this node is not the leader (node 2 is)"
        );
    }

    #[test]
    fn a_node_can_move_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<crate::Node>();
        assert_send::<crate::Message>();
    }
}
