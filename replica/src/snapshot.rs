//! Snapshots: the application's state at a raft index, with raft's metadata.
//!
//! One format on disk and on the wire: a sealed blob (see [`crate::codec`]) with magic
//! `ORDORSN\n`, format version 1, whose body is the postcard encoding of
//!
//! ```text
//! struct SnapshotV1 { index: u64, term: u64, membership: Membership, data: bytes }
//! ```
//!
//! `index` and `term` are those of the last entry the state covers, `membership` the
//! membership after it, `data` the application's state bytes (opaque here).
//!
//! - On disk: `snapshot-<index, 20 digits>.rsnap` in the replica directory, written
//!   atomically; the raft state file names the one in use, others are deleted on open.
//! - On the wire: the very same bytes travel as raft's `Snapshot.data`. A receiver checks
//!   them (version, checksum, and that the metadata is raft's) before raft sees the message;
//!   a snapshot of a newer format version is refused, naming both versions.

use std::path::Path;

use raft::eraftpb;
use serde::{Deserialize, Serialize};

use crate::codec::{Bytes, Membership, SealError, seal, unseal};

/// Format version of the snapshots this build writes.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;
const MAGIC: [u8; 8] = *b"ORDORSN\n";
const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".rsnap";
const INDEX_DIGITS: usize = 20;

/// The application's state at a raft index, as the application gets it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Index of the last entry the state covers.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// The membership after that entry.
    pub membership: Membership,
    /// The application's state bytes; empty only in the snapshot a new cluster starts from
    /// (index 1): the initial state, before any entry.
    pub data: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotV1<'a> {
    index: u64,
    term: u64,
    membership: Membership,
    #[serde(borrow)]
    data: Bytes<'a>,
}

/// A snapshot's parts, borrowed from its bytes.
pub(crate) struct View<'a> {
    pub index: u64,
    pub term: u64,
    pub membership: Membership,
    pub data: &'a [u8],
}

impl View<'_> {
    pub fn to_snapshot(&self) -> Snapshot {
        Snapshot {
            index: self.index,
            term: self.term,
            membership: self.membership.clone(),
            data: self.data.to_vec(),
        }
    }
}

pub(crate) fn encode(index: u64, term: u64, membership: &Membership, data: &[u8]) -> Vec<u8> {
    let body = postcard::to_stdvec(&SnapshotV1 {
        index,
        term,
        membership: membership.clone(),
        data: Bytes(data),
    })
    .expect("encoding to a Vec cannot fail");
    seal(MAGIC, SNAPSHOT_FORMAT_VERSION, &body)
}

pub(crate) fn decode(bytes: &[u8]) -> Result<View<'_>, SealError> {
    let body = unseal(bytes, MAGIC, SNAPSHOT_FORMAT_VERSION)?;
    let s: SnapshotV1 = postcard::from_bytes(body)
        .map_err(|e| SealError::Damaged(format!("the body does not decode: {e}")))?;
    Ok(View {
        index: s.index,
        term: s.term,
        membership: s.membership,
        data: s.data.0,
    })
}

/// Raft's snapshot for encoded snapshot bytes: the bytes as its data, the metadata from them.
pub(crate) fn to_raft(bytes: Vec<u8>) -> Result<eraftpb::Snapshot, SealError> {
    let mut snapshot = eraftpb::Snapshot::default();
    {
        let view = decode(&bytes)?;
        let meta = snapshot.mut_metadata();
        meta.index = view.index;
        meta.term = view.term;
        meta.set_conf_state((&view.membership).into());
    }
    snapshot.data = bytes.into();
    Ok(snapshot)
}

/// Checks that raft's snapshot carries snapshot bytes whose metadata is raft's.
pub(crate) fn check_raft(snapshot: &eraftpb::Snapshot) -> Result<View<'_>, SealError> {
    let view = decode(&snapshot.data)?;
    let meta = snapshot.get_metadata();
    let membership = Membership::from(meta.get_conf_state());
    if view.index != meta.index || view.term != meta.term || view.membership != membership {
        return Err(SealError::Damaged(format!(
            "the snapshot bytes are at index {} term {} with {:?}, but raft's metadata says \
             index {} term {} with {:?}",
            view.index, view.term, view.membership, meta.index, meta.term, membership
        )));
    }
    Ok(view)
}

pub(crate) fn file_name(index: u64) -> String {
    format!("{PREFIX}{index:0INDEX_DIGITS$}{SUFFIX}")
}

pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != INDEX_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Describes a snapshot refusal for a file or a message.
pub(crate) fn describe(what: &str, path: Option<&Path>) -> String {
    match path {
        Some(path) => format!("{what} {}", path.display()),
        None => what.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes_of_a_snapshot() {
        let bytes = encode(9, 2, &Membership::voters([1, 2, 3]), b"st");
        assert_eq!(&bytes[0..12], b"ORDORSN\n\x01\x00\x00\x00");
        assert_eq!(&bytes[16..], [9, 2, 3, 1, 2, 3, 0, 0, 0, 0, 2, b's', b't']);
        let view = decode(&bytes).unwrap();
        assert_eq!(
            view.to_snapshot(),
            Snapshot {
                index: 9,
                term: 2,
                membership: Membership::voters([1, 2, 3]),
                data: b"st".to_vec()
            }
        );
    }

    #[test]
    fn raft_snapshots_carry_the_bytes_and_their_metadata() {
        let bytes = encode(9, 2, &Membership::voters([1, 2]), b"st");
        let raft = to_raft(bytes.clone()).unwrap();
        assert_eq!(raft.get_metadata().index, 9);
        assert_eq!(raft.get_metadata().term, 2);
        assert_eq!(raft.get_metadata().get_conf_state().voters, vec![1, 2]);
        assert_eq!(&raft.data[..], &bytes[..]);
        assert!(check_raft(&raft).is_ok());
        let mut lying = raft.clone();
        lying.mut_metadata().index = 10;
        assert!(matches!(check_raft(&lying), Err(SealError::Damaged(r)) if r.contains("index 10")));
    }

    #[test]
    fn a_newer_snapshot_is_refused_with_both_versions() {
        let mut bytes = encode(9, 2, &Membership::voters([1]), b"st");
        bytes[8] = 7;
        assert!(matches!(
            decode(&bytes),
            Err(SealError::Newer {
                found: 7,
                supported: 1
            })
        ));
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(file_name(42), "snapshot-00000000000000000042.rsnap");
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name("snapshot-42.rsnap"), None);
        assert_eq!(parse_file_name(&format!("{}.tmp", file_name(42))), None);
    }
}
