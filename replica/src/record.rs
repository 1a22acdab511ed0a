//! Raft log entries as journal records.
//!
//! One journal record per raft entry, and the record's id **is** the entry's raft index (the
//! journal checks that ids increase; after a snapshot is installed the next index may jump,
//! which the journal allows). The record's data is the postcard encoding of
//!
//! ```text
//! enum LogRecord { V1 { term: u64, kind: EntryKind, data: bytes, context: bytes } }
//!   = varint(0) varint(term) varint(kind) varint(data.len()) data varint(context.len()) context
//! enum EntryKind { Normal = 0, ConfChange = 1, ConfChangeV2 = 2 }   (raft's EntryType numbers)
//! ```
//!
//! `data` is what was proposed (for `Normal`: the application's batch; for the conf-change
//! kinds: raft's protobuf `ConfChange`/`ConfChangeV2`, which raft itself reads), `context` the
//! proposal's context (empty unless set). New shapes are new `LogRecord` variants at the end;
//! a record whose variant is beyond the last known one was written by a newer version and is
//! refused as such (format version = variant index + 1).

use raft::eraftpb;
use serde::{Deserialize, Serialize};

use crate::codec::{Bytes, variant_tag};

/// Format version of the log records this build writes.
pub const LOG_RECORD_VERSION: u32 = 1;

/// What kind of entry a record holds; raft's `EntryType`, append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum EntryKind {
    Normal,
    ConfChange,
    ConfChangeV2,
}

impl From<eraftpb::EntryType> for EntryKind {
    fn from(t: eraftpb::EntryType) -> EntryKind {
        match t {
            eraftpb::EntryType::EntryNormal => EntryKind::Normal,
            eraftpb::EntryType::EntryConfChange => EntryKind::ConfChange,
            eraftpb::EntryType::EntryConfChangeV2 => EntryKind::ConfChangeV2,
        }
    }
}

impl From<EntryKind> for eraftpb::EntryType {
    fn from(k: EntryKind) -> eraftpb::EntryType {
        match k {
            EntryKind::Normal => eraftpb::EntryType::EntryNormal,
            EntryKind::ConfChange => eraftpb::EntryType::EntryConfChange,
            EntryKind::ConfChangeV2 => eraftpb::EntryType::EntryConfChangeV2,
        }
    }
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
enum LogRecord<'a> {
    V1 {
        term: u64,
        kind: EntryKind,
        #[serde(borrow)]
        data: Bytes<'a>,
        #[serde(borrow)]
        context: Bytes<'a>,
    },
}

/// Why a record's bytes are not an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordError {
    Newer { found: u32 },
    Damaged(String),
}

/// The record data for one entry (its index is the record id).
pub(crate) fn encode(entry: &eraftpb::Entry) -> Vec<u8> {
    let record = LogRecord::V1 {
        term: entry.term,
        kind: entry.get_entry_type().into(),
        data: Bytes(&entry.data),
        context: Bytes(&entry.context),
    };
    postcard::to_stdvec(&record).expect("encoding to a Vec cannot fail")
}

/// The entry at `index` from its record data.
pub(crate) fn decode(index: u64, bytes: &[u8]) -> Result<eraftpb::Entry, RecordError> {
    match postcard::from_bytes::<LogRecord>(bytes) {
        Ok(LogRecord::V1 {
            term,
            kind,
            data,
            context,
        }) => {
            let mut entry = eraftpb::Entry::default();
            entry.index = index;
            entry.term = term;
            entry.set_entry_type(kind.into());
            entry.data = data.0.to_vec().into();
            entry.context = context.0.to_vec().into();
            Ok(entry)
        }
        Err(e) => match variant_tag(bytes) {
            Some(tag) if tag >= LOG_RECORD_VERSION => Err(RecordError::Newer { found: tag + 1 }),
            _ => Err(RecordError::Damaged(format!(
                "the record does not decode as a log entry: {e}"
            ))),
        },
    }
}

/// Bytes an entry takes in the journal beyond its data and context (variant, term, kind and
/// two lengths), at most.
pub(crate) const RECORD_OVERHEAD_BYTES_MAX: usize = 1 + 10 + 1 + 5 + 5;

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        index: u64,
        term: u64,
        kind: eraftpb::EntryType,
        data: &[u8],
        ctx: &[u8],
    ) -> eraftpb::Entry {
        let mut e = eraftpb::Entry::default();
        e.index = index;
        e.term = term;
        e.set_entry_type(kind);
        e.data = data.to_vec().into();
        e.context = ctx.to_vec().into();
        e
    }

    #[test]
    fn golden_bytes_of_a_record() {
        // The format is frozen: these bytes must keep decoding in every later version.
        let e = entry(7, 300, eraftpb::EntryType::EntryNormal, b"ab", b"");
        let bytes = encode(&e);
        assert_eq!(bytes, [0, 0xac, 0x02, 0, 2, b'a', b'b', 0]);
        assert_eq!(decode(7, &bytes), Ok(e));
        let cc = entry(9, 1, eraftpb::EntryType::EntryConfChangeV2, b"x", b"c");
        assert_eq!(encode(&cc), [0, 1, 2, 1, b'x', 1, b'c']);
        assert_eq!(decode(9, &encode(&cc)), Ok(cc));
    }

    #[test]
    fn a_record_of_a_newer_version_is_refused_as_such() {
        assert_eq!(
            decode(1, &[1, 5, 0, 0, 0]),
            Err(RecordError::Newer { found: 2 })
        );
        assert!(matches!(decode(1, &[0, 5]), Err(RecordError::Damaged(_))));
        assert!(matches!(
            decode(1, &[0, 5, 7, 0, 0]),
            Err(RecordError::Damaged(_))
        ));
    }

    #[test]
    fn the_overhead_bound_holds_for_the_largest_values() {
        let big = vec![0u8; 1 << 20];
        let e = entry(
            u64::MAX,
            u64::MAX,
            eraftpb::EntryType::EntryConfChangeV2,
            &big,
            &big,
        );
        assert!(encode(&e).len() <= (2 << 20) + RECORD_OVERHEAD_BYTES_MAX);
    }
}
