//! Pieces shared by the replica's byte formats: sealed files, byte strings, the membership.
//!
//! A *sealed* file (the raft state file and snapshots, see [`crate::state`] and
//! [`crate::snapshot`]) is, all integers little endian:
//!
//! ```text
//! magic (8) | format version u32 | crc32c u32 | body
//! crc32c covers bytes 0..12 followed by the body
//! ```
//!
//! The version is read before the checksum: a file of a newer version is refused as such
//! (its layout after the version may differ), naming both versions.

use std::{
    fs::{self, File},
    io::Write,
    path::Path,
};

use raft::eraftpb;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Visitor};

use crate::error::{ReplicaError, Result};

/// Bytes in front of a sealed file's body.
pub(crate) const SEAL_HEADER_BYTES: usize = 16;

/// Wraps `body` in a sealed-file header.
pub(crate) fn seal(magic: [u8; 8], version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEAL_HEADER_BYTES + body.len());
    out.extend_from_slice(&magic);
    out.extend_from_slice(&version.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out), body);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Why sealed bytes could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SealError {
    /// Written by a newer version of the format.
    Newer { found: u32, supported: u32 },
    /// Not what this crate wrote: the reason says how.
    Damaged(String),
}

/// Checks the header and checksum of sealed bytes and returns the body.
pub(crate) fn unseal(
    bytes: &[u8],
    magic: [u8; 8],
    supported: u32,
) -> std::result::Result<&[u8], SealError> {
    if bytes.len() < SEAL_HEADER_BYTES {
        return Err(SealError::Damaged(format!(
            "{} bytes are too few for the {SEAL_HEADER_BYTES}-byte header",
            bytes.len()
        )));
    }
    if bytes[0..8] != magic {
        return Err(SealError::Damaged(format!(
            "the magic is {:?}, expected {:?}",
            String::from_utf8_lossy(&bytes[0..8]),
            String::from_utf8_lossy(&magic)
        )));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version > supported {
        return Err(SealError::Newer {
            found: version,
            supported,
        });
    }
    if version != supported {
        return Err(SealError::Damaged(format!(
            "format version {version} was never written (this build writes {supported})"
        )));
    }
    let stored = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    let body = &bytes[SEAL_HEADER_BYTES..];
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[0..12]), body);
    if crc != stored {
        return Err(SealError::Damaged(format!(
            "checksum mismatch: stored {stored:#010x}, computed {crc:#010x}"
        )));
    }
    Ok(body)
}

/// Writes `bytes` to `dir/name` atomically: a temp file `name.tmp` is written and fsynced,
/// renamed over `name`, and the directory fsynced. A crash leaves the old file or the new one
/// (and maybe the temp file, which the next open deletes). `fsync = false` skips both
/// fsyncs (tests only).
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8], fsync: bool) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&tmp)
        .map_err(|e| ReplicaError::io(format!("creating {}", tmp.display()), e))?;
    file.write_all(bytes)
        .map_err(|e| ReplicaError::io(format!("writing {}", tmp.display()), e))?;
    if fsync {
        file.sync_all()
            .map_err(|e| ReplicaError::io(format!("fsync of {}", tmp.display()), e))?;
    }
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| {
        ReplicaError::io(
            format!("renaming {} to {}", tmp.display(), path.display()),
            e,
        )
    })?;
    if fsync {
        sync_dir(dir)?;
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ReplicaError::io(format!("fsync of directory {}", dir.display()), e))
}

/// Reads a whole file, refusing one larger than `bytes_max`.
pub(crate) fn read_bounded(path: &Path, bytes_max: u64) -> Result<Vec<u8>> {
    let len = fs::metadata(path)
        .map_err(|e| ReplicaError::io(format!("reading {}", path.display()), e))?
        .len();
    if len > bytes_max {
        return Err(ReplicaError::corrupt(
            path,
            format!("the file has {len} bytes, more than the {bytes_max} bytes it may have"),
        ));
    }
    fs::read(path).map_err(|e| ReplicaError::io(format!("reading {}", path.display()), e))
}

/// The variant index of a postcard-encoded enum (its leading varint), if it has one.
pub(crate) fn variant_tag(bytes: &[u8]) -> Option<u32> {
    postcard::take_from_bytes::<u32>(bytes).ok().map(|(v, _)| v)
}

/// A byte slice that postcard writes as `varint(len) bytes` in one copy (the same bytes as a
/// sequence of `u8`, without one serializer call per byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bytes<'a>(pub &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Bytes<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Bytes<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                v: &'de [u8],
            ) -> std::result::Result<Self::Value, E> {
                Ok(Bytes(v))
            }
        }
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

/// An owned byte string that postcard writes as `varint(len) bytes` (like [`Bytes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ByteBuf(pub Vec<u8>);

impl Serialize for ByteBuf {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct BufVisitor;
        impl<'de> Visitor<'de> for BufVisitor {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(
                self,
                v: Vec<u8>,
            ) -> std::result::Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
        }
        deserializer.deserialize_byte_buf(BufVisitor)
    }
}

/// The membership (raft's `ConfState`) as persisted and sent: node ids of the voters, the
/// learners, and during a joint change the outgoing voters and the learners to be.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub voters_outgoing: Vec<u64>,
    pub learners_next: Vec<u64>,
    pub auto_leave: bool,
}

impl Membership {
    /// A membership of voters only.
    pub fn voters(ids: impl IntoIterator<Item = u64>) -> Membership {
        let mut voters: Vec<u64> = ids.into_iter().collect();
        voters.sort_unstable();
        voters.dedup();
        Membership {
            voters,
            ..Membership::default()
        }
    }

    /// Every node id named, once each.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .voters
            .iter()
            .chain(&self.learners)
            .chain(&self.voters_outgoing)
            .chain(&self.learners_next)
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

fn sorted(ids: &[u64]) -> Vec<u64> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids
}

/// Raft keeps the ids in hash sets; the membership lists them in ascending order.
impl From<&eraftpb::ConfState> for Membership {
    fn from(cs: &eraftpb::ConfState) -> Membership {
        Membership {
            voters: sorted(&cs.voters),
            learners: sorted(&cs.learners),
            voters_outgoing: sorted(&cs.voters_outgoing),
            learners_next: sorted(&cs.learners_next),
            auto_leave: cs.auto_leave,
        }
    }
}

impl From<&Membership> for eraftpb::ConfState {
    fn from(m: &Membership) -> eraftpb::ConfState {
        let mut cs = eraftpb::ConfState::default();
        cs.voters = m.voters.clone();
        cs.learners = m.learners.clone();
        cs.voters_outgoing = m.voters_outgoing.clone();
        cs.learners_next = m.learners_next.clone();
        cs.auto_leave = m.auto_leave;
        cs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 8] = *b"ORDOTST\n";

    #[test]
    fn sealed_bytes_round_trip_and_refuse_damage() {
        let sealed = seal(MAGIC, 1, b"body");
        assert_eq!(unseal(&sealed, MAGIC, 1), Ok(&b"body"[..]));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(
            matches!(unseal(&flipped, MAGIC, 1), Err(SealError::Damaged(r)) if r.contains("checksum"))
        );
        assert!(matches!(
            unseal(&sealed[..10], MAGIC, 1),
            Err(SealError::Damaged(_))
        ));
        assert!(
            matches!(unseal(&sealed, *b"ORDOXXX\n", 1), Err(SealError::Damaged(r)) if r.contains("magic"))
        );
    }

    #[test]
    fn a_newer_version_is_refused_before_the_checksum() {
        let mut newer = seal(MAGIC, 2, b"a layout this build does not know");
        newer[12] ^= 0xff;
        assert_eq!(
            unseal(&newer, MAGIC, 1),
            Err(SealError::Newer {
                found: 2,
                supported: 1
            })
        );
    }

    #[test]
    fn membership_converts_both_ways() {
        let m = Membership {
            voters: vec![1, 2, 3],
            learners: vec![4],
            voters_outgoing: vec![1, 2, 5],
            learners_next: vec![5],
            auto_leave: true,
        };
        let cs = eraftpb::ConfState::from(&m);
        assert_eq!(Membership::from(&cs), m);
        assert_eq!(m.ids(), vec![1, 2, 3, 4, 5]);
    }
}
