//! Segment files: names, the in-memory directory of segments, and a cursor that reads records.

use std::{
    fs::{self, File},
    io::{self, Write},
    ops::Range,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::{
    error::{JournalError, Result, is_no_space},
    format::{Parsed, SEGMENT_HEADER_BYTES, SegmentHeader, parse_record},
    snapshot::sync_dir,
};

const SEGMENT_SUFFIX: &str = ".seg";
const ID_DIGITS: usize = 20;
/// Bytes read from a segment at a time.
const READ_CHUNK_BYTES: usize = 256 * 1024;
/// One sparse-index entry per this many bytes of a segment.
pub(crate) const INDEX_STRIDE_BYTES: u64 = 64 * 1024;

pub(crate) fn segment_file_name(first_id: u64) -> String {
    format!("{first_id:0ID_DIGITS$}{SEGMENT_SUFFIX}")
}

pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != ID_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What the journal knows about one segment file.
#[derive(Debug, Clone)]
pub(crate) struct SegInfo {
    /// The id in the file name; every record in the segment has an id `>= first_id`.
    pub first_id: u64,
    /// Id of the last record before this segment (from its header).
    pub prev_last_id: u64,
    pub path: Arc<Path>,
    /// Bytes of the file that are durable and valid (header included).
    pub durable_len: u64,
    pub first_record: Option<u64>,
    pub last_record: Option<u64>,
    /// Sparse index: (id, offset) of a record about every `INDEX_STRIDE_BYTES`.
    pub index: Vec<(u64, u64)>,
}

impl SegInfo {
    /// Id of the last record in this segment, or of the last one before it when it is empty.
    pub fn last_id(&self) -> u64 {
        self.last_record.unwrap_or(self.prev_last_id)
    }

    /// Offset to start reading at to find the first record with an id greater than `after`.
    pub fn seek_offset(&self, after: u64, header_bytes: u64) -> u64 {
        let n = self.index.partition_point(|&(id, _)| id <= after);
        if n == 0 {
            header_bytes
        } else {
            self.index[n - 1].1
        }
    }
}

/// The next thing a [`Cursor`] found.
#[derive(Debug)]
pub(crate) enum Next {
    Record {
        offset: u64,
        id: u64,
        data: Range<usize>,
    },
    /// The cursor reached its end offset exactly.
    End,
    /// The bytes at `offset` are not a complete, valid record.
    Invalid { offset: u64, reason: String },
    /// A record with a valid checksum whose payload this version cannot decode.
    Undecodable { offset: u64, reason: String },
}

/// Reads records from a segment file between a start offset and an end offset, never reading
/// a byte at or past the end (bytes there may still be in the middle of being written).
pub(crate) struct Cursor {
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_offset: u64,
    /// Index in `buf` of the next unread byte.
    pos: usize,
    end: u64,
}

impl Cursor {
    pub fn new(file: File, path: PathBuf, start: u64, end: u64) -> Cursor {
        Cursor {
            file,
            path,
            buf: Vec::new(),
            buf_offset: start,
            pos: 0,
            end,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// File offset of the next record.
    pub fn offset(&self) -> u64 {
        self.buf_offset + self.pos as u64
    }

    pub fn set_end(&mut self, end: u64) {
        self.end = end;
    }

    pub fn data(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    pub fn next_record(&mut self) -> io::Result<Next> {
        loop {
            let offset = self.offset();
            match parse_record(&self.buf[self.pos..]) {
                Parsed::Record { id, data, bytes } => {
                    let start = self.pos
                        + (data.as_ptr() as usize - self.buf[self.pos..].as_ptr() as usize);
                    let range = start..start + data.len();
                    self.pos += bytes;
                    return Ok(Next::Record {
                        offset,
                        id,
                        data: range,
                    });
                }
                Parsed::NeedMore { bytes } => {
                    let have = (self.buf.len() - self.pos) as u64;
                    if have == 0 && offset >= self.end {
                        return Ok(Next::End);
                    }
                    if offset + bytes as u64 > self.end {
                        let reason = if have < crate::format::RECORD_FRAME_BYTES as u64 {
                            format!("incomplete record frame: {have} of 8 bytes")
                        } else {
                            format!(
                                "record of {} bytes runs past the end of the data at offset {}",
                                bytes, self.end
                            )
                        };
                        return Ok(Next::Invalid { offset, reason });
                    }
                    self.fill(bytes)?;
                }
                Parsed::Invalid(reason) => return Ok(Next::Invalid { offset, reason }),
                Parsed::Undecodable(reason) => return Ok(Next::Undecodable { offset, reason }),
            }
        }
    }

    /// Makes `buf[pos..]` hold at least `need` bytes (the caller checked they exist before
    /// `end`), reading up to a chunk ahead but never past `end`.
    fn fill(&mut self, need: usize) -> io::Result<()> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.buf_offset += self.pos as u64;
            self.pos = 0;
        }
        let file_pos = self.buf_offset + self.buf.len() as u64;
        let room_to_end = self.end.saturating_sub(file_pos) as usize;
        let want = need
            .max(READ_CHUNK_BYTES)
            .saturating_sub(self.buf.len())
            .min(room_to_end);
        let old_len = self.buf.len();
        self.buf.resize(old_len + want, 0);
        let mut filled = 0;
        while filled < want {
            let n = self
                .file
                .read_at(&mut self.buf[old_len + filled..], file_pos + filled as u64)?;
            if n == 0 {
                self.buf.truncate(old_len + filled);
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "file ends at byte {} but {} bytes were expected",
                        file_pos + filled as u64,
                        self.end
                    ),
                ));
            }
            filled += n;
        }
        Ok(())
    }
}

/// Writes a new segment holding only its header, atomically; returns its description.
///
/// The header goes into `<name>.tmp`, which is fsynced, renamed and the directory fsynced.
/// When the file system is full (`ENOSPC`/`EDQUOT` from the create, the write, the temp file's
/// fsync or the rename) the temp file is deleted and the error is [`JournalError::NoSpace`]:
/// nothing durable changed, so the caller may try again later. That includes the temp file's
/// fsync: the file is thrown away, never trusted. Any other error, and a failed fsync of the
/// directory after the rename, is returned as it is (fatal for the writer).
pub(crate) fn create_segment_file(
    dir: &Path,
    fsync: bool,
    first_id: u64,
    prev_last_id: u64,
) -> Result<SegInfo> {
    let path = dir.join(segment_file_name(first_id));
    let tmp = dir.join(format!("{}.tmp", segment_file_name(first_id)));
    let header = SegmentHeader {
        first_id,
        prev_last_id,
    }
    .encode();
    let fail = |what: String, e: io::Error| {
        let _ = fs::remove_file(&tmp);
        if is_no_space(&e) {
            JournalError::NoSpace {
                dir: dir.to_path_buf(),
                reason: format!("{what}: {e}"),
            }
        } else {
            JournalError::io(what, e)
        }
    };
    let mut file =
        File::create(&tmp).map_err(|e| fail(format!("creating {}", tmp.display()), e))?;
    file.write_all(&header)
        .map_err(|e| fail(format!("writing {}", tmp.display()), e))?;
    if fsync {
        file.sync_all()
            .map_err(|e| fail(format!("fsync of {}", tmp.display()), e))?;
    }
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| {
        fail(
            format!("renaming {} to {}", tmp.display(), path.display()),
            e,
        )
    })?;
    if fsync {
        sync_dir(dir)?;
    }
    Ok(SegInfo {
        first_id,
        prev_last_id,
        path: path.into(),
        durable_len: SEGMENT_HEADER_BYTES,
        first_record: None,
        last_record: None,
        index: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.seg"),
            Some(42)
        );
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name("42.seg"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.seg"), None);
        assert_eq!(
            parse_segment_file_name("00000000000000000042.seg.tmp"),
            None
        );
        assert_eq!(parse_segment_file_name("99999999999999999999.seg"), None);
    }
}
