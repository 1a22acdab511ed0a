//! The raft state file, `raft-state`: what raft needs besides the log entries.
//!
//! A sealed file (see [`crate::codec`]) with magic `ORDORST\n`, format version 1, whose body
//! is the postcard encoding of
//!
//! ```text
//! struct StateV1 {
//!     term: u64, vote: u64, commit: u64,          raft's HardState
//!     compacted_index: u64, compacted_term: u64,  the log holds entries after compacted_index
//!     snapshot_index: u64, snapshot_term: u64,    the snapshot file in use (0: none yet, a
//!                                                 node waiting for its first snapshot)
//!     membership: Membership,                     the membership at snapshot_index
//! }
//! Membership = struct { voters: [u64], learners: [u64], voters_outgoing: [u64],
//!                       learners_next: [u64], auto_leave: bool }
//! ```
//!
//! It is replaced atomically (temp file, fsync, rename, fsync of the directory) whenever the
//! term or the vote changes (before any message that depends on them leaves), when a snapshot
//! is taken or installed, and when the log is compacted. `commit` is the commit index at the
//! last write: raft treats the commit index as volatile and learns the rest from the leader
//! again, so a commit-only change is not worth a write. Invariants, checked on load:
//! `compacted_index <= snapshot_index <= commit`, and `commit <= ` the last log index (a
//! commit is written only after the entries it covers are durable).
//! A file of a newer format version is refused, naming both versions.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{
    codec::{Membership, SealError, read_bounded, seal, unseal, write_atomic},
    error::{ReplicaError, Result},
};

/// Name of the raft state file in the replica directory.
pub const STATE_FILE_NAME: &str = "raft-state";
/// Format version of the raft state file this build writes.
pub const STATE_FORMAT_VERSION: u32 = 1;
const MAGIC: [u8; 8] = *b"ORDORST\n";
/// Largest raft state file this build reads, in bytes (a membership of a few thousand nodes).
pub(crate) const STATE_FILE_BYTES_MAX: u64 = 1 << 20;

/// The raft state as persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PersistedState {
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
    pub compacted_index: u64,
    pub compacted_term: u64,
    pub snapshot_index: u64,
    pub snapshot_term: u64,
    pub membership: Membership,
}

impl PersistedState {
    fn check(&self) -> std::result::Result<(), String> {
        if self.compacted_index > self.snapshot_index {
            return Err(format!(
                "the log is compacted up to index {} but the snapshot is only at index {}",
                self.compacted_index, self.snapshot_index
            ));
        }
        if self.snapshot_index > self.commit {
            return Err(format!(
                "the snapshot is at index {} but the commit index is only {}",
                self.snapshot_index, self.commit
            ));
        }
        if self.compacted_term > self.term || self.snapshot_term > self.term {
            return Err(format!(
                "the term {} is below the compacted term {} or the snapshot term {}",
                self.term, self.compacted_term, self.snapshot_term
            ));
        }
        Ok(())
    }

    pub fn encode(&self) -> Vec<u8> {
        let body = postcard::to_stdvec(self).expect("encoding to a Vec cannot fail");
        seal(MAGIC, STATE_FORMAT_VERSION, &body)
    }

    pub fn decode(bytes: &[u8], path: &Path) -> Result<PersistedState> {
        let body = unseal(bytes, MAGIC, STATE_FORMAT_VERSION).map_err(|e| match e {
            SealError::Newer { found, supported } => ReplicaError::UnsupportedVersion {
                what: format!("raft state file {}", path.display()),
                found,
                supported,
            },
            SealError::Damaged(reason) => ReplicaError::corrupt(path, reason),
        })?;
        let state: PersistedState = postcard::from_bytes(body)
            .map_err(|e| ReplicaError::corrupt(path, format!("the body does not decode: {e}")))?;
        state
            .check()
            .map_err(|reason| ReplicaError::corrupt(path, reason))?;
        Ok(state)
    }

    /// Replaces the state file in `dir` atomically.
    pub fn store(&self, dir: &Path, fsync: bool) -> Result<()> {
        debug_assert_eq!(self.check(), Ok(()));
        write_atomic(dir, STATE_FILE_NAME, &self.encode(), fsync)
    }

    /// Loads the state file in `dir`; `None` when there is none.
    pub fn load(dir: &Path) -> Result<Option<PersistedState>> {
        let path = dir.join(STATE_FILE_NAME);
        if !path
            .try_exists()
            .map_err(|e| ReplicaError::io(format!("looking for {}", path.display()), e))?
        {
            return Ok(None);
        }
        let bytes = read_bounded(&path, STATE_FILE_BYTES_MAX)?;
        PersistedState::decode(&bytes, &path).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PersistedState {
        PersistedState {
            term: 5,
            vote: 2,
            commit: 40,
            compacted_index: 10,
            compacted_term: 3,
            snapshot_index: 20,
            snapshot_term: 4,
            membership: Membership::voters([1, 2, 3]),
        }
    }

    #[test]
    fn golden_bytes_of_the_state_file() {
        let bytes = sample().encode();
        assert_eq!(&bytes[0..12], b"ORDORST\n\x01\x00\x00\x00");
        assert_eq!(
            &bytes[16..],
            [5, 2, 40, 10, 3, 20, 4, 3, 1, 2, 3, 0, 0, 0, 0]
        );
        let path = Path::new("raft-state");
        assert_eq!(PersistedState::decode(&bytes, path).unwrap(), sample());
    }

    #[test]
    fn stores_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(PersistedState::load(dir.path()).unwrap(), None);
        sample().store(dir.path(), true).unwrap();
        assert_eq!(PersistedState::load(dir.path()).unwrap(), Some(sample()));
        assert!(!dir.path().join("raft-state.tmp").exists());
    }

    #[test]
    fn a_newer_state_file_is_refused_naming_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = sample().encode();
        bytes[8] = 2;
        std::fs::write(dir.path().join(STATE_FILE_NAME), bytes).unwrap();
        let e = PersistedState::load(dir.path()).unwrap_err();
        let message = e.to_string();
        assert!(
            message.contains("version 2") && message.contains("version 1"),
            "{message}"
        );
    }

    #[test]
    fn a_damaged_or_inconsistent_state_file_is_corrupt() {
        let path = Path::new("raft-state");
        let mut bytes = sample().encode();
        *bytes.last_mut().unwrap() ^= 1;
        assert!(matches!(
            PersistedState::decode(&bytes, path),
            Err(ReplicaError::Corrupt { .. })
        ));
        let mut bad = sample();
        bad.compacted_index = 30;
        let e = PersistedState::decode(&bad.encode(), path).unwrap_err();
        assert!(e.to_string().contains("compacted up to index 30"), "{e}");
    }
}
