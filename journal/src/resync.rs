//! Looking past a bad record: are there valid records after it?
//!
//! Recovery calls this when a record of a segment is bad (incomplete, or its checksum does not
//! match). It scans every byte offset after the bad record, up to the end of the file, for the
//! start of a valid record, and from each valid record walks on record by record, scanning
//! again past any further damage. A candidate offset is checked cheaply first, from its first
//! 24 bytes: the length fits the file, the payload starts with the `V1` tag, its id varint is
//! greater than the last id seen, and its data-length varint accounts for exactly the payload
//! length. Only a candidate that passes is read whole and its crc32c checked. Random bytes
//! pass the cheap check about once in many millions of offsets, so the scan reads the rest of
//! the file once; the bytes checksummed for candidates are bounded by [`CHECK_BUDGET_FACTOR`]
//! times the scanned length, past which the scan stops and says it could not finish (recovery
//! then treats the damage as corruption, never as a torn write).

use std::{fs::File, io, os::unix::fs::FileExt};

use crate::format::{Parsed, RECORD_FRAME_BYTES, parse_record, u32_at};

/// Bytes read from the file at a time.
const WINDOW_BYTES: usize = 1024 * 1024;
/// Bytes a candidate's cheap check looks at: frame (8), tag (1), id (10), data length (5).
const PROBE_BYTES: usize = RECORD_FRAME_BYTES + 16;
/// Smallest payload: tag, one-byte id, one-byte data length, no data.
const PAYLOAD_BYTES_MIN: usize = 3;
/// Candidates may checksum at most this many times the scanned bytes (plus one record).
const CHECK_BUDGET_FACTOR: u64 = 4;

/// Valid records found after a bad one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Following {
    pub records: u64,
    pub first_id: u64,
    pub last_id: u64,
    /// Offset of the first valid record after the bad one.
    pub first_offset: u64,
}

/// What the scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scan {
    /// No valid record starts anywhere in the scanned bytes.
    Nothing,
    /// Valid records follow.
    Found(Following),
    /// The checksum budget ran out before the end (adversarial contents); `Following` holds
    /// what was found until then, if anything.
    Unfinished(Option<Following>),
}

/// Scans `[from, end)` of `file` for valid records with ids greater than `after_id`.
pub(crate) fn scan(file: &File, from: u64, end: u64, after_id: u64) -> io::Result<Scan> {
    let mut window = Window::new(file, end);
    let mut budget = end
        .saturating_sub(from)
        .saturating_mul(CHECK_BUDGET_FACTOR)
        .saturating_add(WINDOW_BYTES as u64);
    let mut found: Option<Following> = None;
    let mut last = after_id;
    let mut pos = from;
    while pos + (RECORD_FRAME_BYTES + PAYLOAD_BYTES_MIN) as u64 <= end {
        let probe_len = PROBE_BYTES.min((end - pos) as usize);
        let total = match candidate(window.bytes(pos, probe_len)?, pos, end, last) {
            Some(total) => total,
            None => {
                pos += 1;
                continue;
            }
        };
        if total as u64 > budget {
            return Ok(Scan::Unfinished(found));
        }
        budget -= total as u64;
        match parse_record(window.bytes(pos, total)?) {
            Parsed::Record { id, bytes, .. } => {
                let f = found.get_or_insert(Following {
                    records: 0,
                    first_id: id,
                    last_id: id,
                    first_offset: pos,
                });
                f.records += 1;
                f.last_id = id;
                last = id;
                pos += bytes as u64;
            }
            _ => pos += 1,
        }
    }
    Ok(match found {
        Some(f) => Scan::Found(f),
        None => Scan::Nothing,
    })
}

/// The cheap check of the bytes at `pos`: `Some(total record bytes)` when they may start a
/// valid `V1` record with an id above `last` that ends within `end`.
fn candidate(probe: &[u8], pos: u64, end: u64, last: u64) -> Option<usize> {
    if probe.len() < RECORD_FRAME_BYTES + PAYLOAD_BYTES_MIN {
        return None;
    }
    let len = u32_at(probe, 0) as usize;
    if len < PAYLOAD_BYTES_MIN || pos + (RECORD_FRAME_BYTES + len) as u64 > end {
        return None;
    }
    let payload = &probe[RECORD_FRAME_BYTES..];
    // The only entry variant this version writes: `V1` = tag 0.
    if payload[0] != 0 {
        return None;
    }
    let (id, id_bytes) = varint(&payload[1..])?;
    if id <= last {
        return None;
    }
    let (data_len, len_bytes) = varint(&payload[1 + id_bytes..])?;
    let expected = 1u64 + id_bytes as u64 + len_bytes as u64;
    if expected.checked_add(data_len)? != len as u64 {
        return None;
    }
    Some(RECORD_FRAME_BYTES + len)
}

/// A postcard (LEB128) varint of at most 10 bytes: its value and length.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(10).enumerate() {
        let part = u64::from(b & 0x7f);
        if i == 9 && b > 1 {
            return None;
        }
        value |= part << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// A forward-moving buffered view of a file's bytes below `end`.
struct Window<'a> {
    file: &'a File,
    end: u64,
    buf: Vec<u8>,
    start: u64,
}

impl<'a> Window<'a> {
    fn new(file: &'a File, end: u64) -> Window<'a> {
        Window {
            file,
            end,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// `len` bytes at `at`; the caller keeps `at + len <= end`.
    fn bytes(&mut self, at: u64, len: usize) -> io::Result<&[u8]> {
        let have = at >= self.start && at + len as u64 <= self.start + self.buf.len() as u64;
        if !have {
            let want = (len.max(WINDOW_BYTES) as u64).min(self.end - at) as usize;
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, at)?;
            self.start = at;
        }
        let from = (at - self.start) as usize;
        Ok(&self.buf[from..from + len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::encode_record;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        let file = File::open(f.path()).unwrap();
        (f, file)
    }

    #[test]
    fn varints_decode_like_postcard() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let bytes = postcard::to_allocvec(&v).unwrap();
            assert_eq!(varint(&bytes), Some((v, bytes.len())));
        }
        assert_eq!(varint(&[0x80, 0x80]), None);
        assert_eq!(varint(&[0xff; 10]), None);
    }

    #[test]
    fn finds_every_record_after_damage_and_nothing_in_junk() {
        let mut bytes = vec![0xAAu8; 37];
        for id in 10..20u64 {
            encode_record(&mut bytes, id, &vec![id as u8; id as usize * 3]);
        }
        let (_tmp, file) = file_with(&bytes);
        let end = bytes.len() as u64;
        assert_eq!(
            scan(&file, 0, end, 0).unwrap(),
            Scan::Found(Following {
                records: 10,
                first_id: 10,
                last_id: 19,
                first_offset: 37,
            })
        );
        // Ids must increase past the last good one.
        assert!(matches!(
            scan(&file, 0, end, 15).unwrap(),
            Scan::Found(Following {
                records: 4,
                first_id: 16,
                ..
            })
        ));
        let junk: Vec<u8> = (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let (_tmp, file) = file_with(&junk);
        assert_eq!(scan(&file, 0, junk.len() as u64, 0).unwrap(), Scan::Nothing);
        let zeros = vec![0u8; 5000];
        let (_tmp, file) = file_with(&zeros);
        assert_eq!(scan(&file, 0, 5000, 0).unwrap(), Scan::Nothing);
    }

    #[test]
    fn a_record_cut_by_the_end_is_not_found() {
        let mut bytes = Vec::new();
        encode_record(&mut bytes, 5, &[1u8; 100]);
        let (_tmp, file) = file_with(&bytes[..bytes.len() - 1]);
        assert_eq!(
            scan(&file, 0, bytes.len() as u64 - 1, 0).unwrap(),
            Scan::Nothing
        );
    }
}
