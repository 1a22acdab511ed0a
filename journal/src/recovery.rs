//! Recovery on open: read every segment, cut a torn tail of the last one (and refuse to open on
//! any other damage), load the snapshot. The rules are in the crate documentation.

use std::{
    fs::{self, File, OpenOptions},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use crate::{
    Config, RecoveryReport, TruncatedTail,
    error::{JournalError, Result},
    format::{FORMAT_VERSION, HeaderError, SEGMENT_HEADER_BYTES, SegmentHeader},
    resync::{self, Scan},
    segment::{
        Cursor, INDEX_STRIDE_BYTES, Next, SegInfo, create_segment_file, parse_segment_file_name,
        segment_file_name,
    },
    snapshot::{self, Snapshot, parse_snapshot_file_name, snapshot_file_name, sync_dir},
    writer::{Active, remove_file},
};

pub(crate) struct Recovered {
    pub segments: Vec<SegInfo>,
    pub active: Option<Active>,
    pub snapshot: Option<Snapshot>,
    pub report: RecoveryReport,
}

pub(crate) fn recover(config: &Config) -> Result<Recovered> {
    let dir = &config.dir;
    let mut segment_ids = Vec::new();
    let mut snapshot_ids = Vec::new();
    let mut removed = false;
    let entries =
        fs::read_dir(dir).map_err(|e| JournalError::io(format!("listing {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| JournalError::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".tmp")
            && (parse_segment_file_name(stem).is_some()
                || parse_snapshot_file_name(stem).is_some()
                || name == crate::PROBE_FILE_NAME)
        {
            let path = entry.path();
            fs::remove_file(&path)
                .map_err(|e| JournalError::io(format!("deleting {}", path.display()), e))?;
            removed = true;
        } else if let Some(id) = parse_segment_file_name(name) {
            segment_ids.push(id);
        } else if let Some(id) = parse_snapshot_file_name(name) {
            snapshot_ids.push(id);
        }
    }
    segment_ids.sort_unstable();
    snapshot_ids.sort_unstable();

    let mut segments = Vec::with_capacity(segment_ids.len());
    let mut truncated = None;
    let mut records = 0u64;
    let mut prev_last: Option<u64> = None;
    for (i, &first_id) in segment_ids.iter().enumerate() {
        let is_last = i + 1 == segment_ids.len();
        let path = dir.join(segment_file_name(first_id));
        let scanned = scan_segment(&path, first_id, prev_last, is_last)?;
        records += scanned.records;
        if let Some(tail) = scanned.truncated {
            cut_tail(&path, tail.offset, config.fsync)?;
            truncated = Some(tail);
        }
        prev_last = Some(scanned.info.last_id());
        segments.push(scanned.info);
    }
    let last_id = prev_last.unwrap_or(0);
    // Empty segments at the end (a crash right after a segment was started) go, and an empty
    // segment left alone must be named after the next id, which may be below its old name.
    while segments.len() >= 2 && segments.last().is_some_and(|s| s.first_record.is_none()) {
        if let Some(empty) = segments.pop() {
            remove_file(&empty.path)?;
            removed = true;
        }
    }
    if let Some(last) = segments.last_mut()
        && last.first_record.is_none()
        && last.first_id != last.prev_last_id + 1
    {
        let fresh =
            create_segment_file(dir, config.fsync, last.prev_last_id + 1, last.prev_last_id)?;
        remove_file(&last.path)?;
        removed = true;
        *last = fresh;
    }

    let snapshot = match snapshot_ids.last() {
        Some(&id) => {
            let path = dir.join(snapshot_file_name(id));
            let snapshot = snapshot::load(&path, id)?;
            if snapshot.id > last_id {
                return Err(JournalError::Corrupt {
                    file: path,
                    offset: 16,
                    reason: format!(
                        "the snapshot is at id {} but the journal ends at id {last_id}: \
                         records the snapshot covers are missing",
                        snapshot.id
                    ),
                });
            }
            Some(snapshot)
        }
        None => None,
    };
    for &old in snapshot_ids.iter().rev().skip(1) {
        let path = dir.join(snapshot_file_name(old));
        fs::remove_file(&path)
            .map_err(|e| JournalError::io(format!("deleting {}", path.display()), e))?;
        removed = true;
    }
    if removed && config.fsync {
        sync_dir(dir)?;
    }

    let active = match segments.last() {
        Some(info) => Some(Active::open(&info.path, info)?),
        None => None,
    };
    Ok(Recovered {
        report: RecoveryReport {
            records,
            last_id,
            truncated,
            segments: segments.len() as u64,
        },
        segments,
        active,
        snapshot,
    })
}

struct Scanned {
    info: SegInfo,
    records: u64,
    truncated: Option<TruncatedTail>,
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> JournalError {
    JournalError::Corrupt {
        file: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

/// Reads one segment from start to end and checks everything the crate docs list.
fn scan_segment(
    path: &Path,
    first_id: u64,
    prev_last: Option<u64>,
    is_last: bool,
) -> Result<Scanned> {
    let io_err = |what: &str, e| JournalError::io(format!("{what} {}", path.display()), e);
    let file = File::open(path).map_err(|e| io_err("opening", e))?;
    let len = file
        .metadata()
        .map_err(|e| io_err("reading the size of", e))?
        .len();
    if len < SEGMENT_HEADER_BYTES {
        return Err(corrupt(
            path,
            0,
            format!(
                "the file holds {len} bytes, less than the {SEGMENT_HEADER_BYTES}-byte segment header"
            ),
        ));
    }
    let mut raw = [0u8; SEGMENT_HEADER_BYTES as usize];
    file.read_exact_at(&mut raw, 0)
        .map_err(|e| io_err("reading the header of", e))?;
    let header = match SegmentHeader::decode(&raw) {
        Ok(h) => h,
        Err(HeaderError::BadMagic) => {
            return Err(corrupt(path, 0, "not a journal segment (bad magic)"));
        }
        Err(HeaderError::UnsupportedVersion(found)) => {
            return Err(JournalError::UnsupportedVersion {
                file: path.to_path_buf(),
                found,
                supported: FORMAT_VERSION,
            });
        }
        Err(HeaderError::BadChecksum) => {
            return Err(corrupt(path, 12, "segment header checksum mismatch"));
        }
    };
    if header.first_id != first_id {
        return Err(corrupt(
            path,
            16,
            format!(
                "the header says first id {} but the file name says {first_id}",
                header.first_id
            ),
        ));
    }
    if header.prev_last_id >= first_id {
        return Err(corrupt(
            path,
            24,
            format!(
                "the header says the previous id is {}, not below the first id {first_id}",
                header.prev_last_id
            ),
        ));
    }
    if let Some(prev) = prev_last
        && header.prev_last_id != prev
    {
        return Err(corrupt(
            path,
            24,
            format!(
                "the header says the record before this segment is id {} but the previous \
                 segment ends at id {prev}: a segment file is missing or was altered",
                header.prev_last_id
            ),
        ));
    }

    let mut cursor = Cursor::new(file, path.to_path_buf(), SEGMENT_HEADER_BYTES, len);
    let mut last = header.prev_last_id;
    let mut first_record = None;
    let mut records = 0u64;
    let mut index = Vec::new();
    let mut next_index_at = SEGMENT_HEADER_BYTES;
    let (valid_len, truncated) = loop {
        match cursor.next_record().map_err(|e| io_err("reading", e))? {
            Next::Record { offset, id, .. } => {
                if id <= last || id < first_id {
                    return Err(corrupt(
                        path,
                        offset,
                        format!(
                            "record id {id} does not follow id {last} (segment first id {first_id})"
                        ),
                    ));
                }
                if offset >= next_index_at {
                    index.push((id, offset));
                    next_index_at = offset + INDEX_STRIDE_BYTES;
                }
                first_record.get_or_insert(id);
                last = id;
                records += 1;
            }
            Next::End => break (len, None),
            Next::Invalid { offset, reason } => {
                let tail = bad_record(path, offset, len, last, reason, is_last)?;
                break (offset, Some(tail));
            }
            Next::Undecodable { offset, reason } => return Err(corrupt(path, offset, reason)),
        }
    };
    Ok(Scanned {
        info: SegInfo {
            first_id,
            prev_last_id: header.prev_last_id,
            path: PathBuf::from(path).into(),
            durable_len: valid_len,
            first_record,
            last_record: first_record.map(|_| last),
            index,
        },
        records,
        truncated,
    })
}

/// Decides about the bad record at `offset` (rules 3 to 5 of the crate docs): the torn tail to
/// cut, or the corruption error. `last` is the id of the last good record before it.
fn bad_record(
    path: &Path,
    offset: u64,
    len: u64,
    last: u64,
    reason: String,
    is_last: bool,
) -> Result<TruncatedTail> {
    let file =
        File::open(path).map_err(|e| JournalError::io(format!("opening {}", path.display()), e))?;
    let scan = resync::scan(&file, offset + 1, len, last).map_err(|e| {
        JournalError::io(
            format!(
                "reading {} past the bad record at offset {offset}",
                path.display()
            ),
            e,
        )
    })?;
    let following = match &scan {
        Scan::Nothing if is_last => {
            return Ok(TruncatedTail {
                file: path.to_path_buf(),
                offset,
                bytes_dropped: len - offset,
                reason: format!(
                    "{reason}; no valid record follows it in the {} bytes to the end of the \
                     file, so this is the torn write of an append that was never acknowledged",
                    len - offset
                ),
            });
        }
        Scan::Nothing => "no valid record follows it in this file".to_string(),
        Scan::Found(f) | Scan::Unfinished(Some(f)) => format!(
            "{}{} valid record(s) follow it in this file (ids {}..={}, the first at offset {})",
            if matches!(scan, Scan::Unfinished(_)) {
                "at least "
            } else {
                ""
            },
            f.records,
            f.first_id,
            f.last_id,
            f.first_offset
        ),
        Scan::Unfinished(None) => {
            "the bytes after it could not all be checked for valid records".to_string()
        }
    };
    let why = if is_last {
        "so this is not a torn write: only the end of the last segment can be torn"
    } else {
        "in a sealed segment, so this is not a torn write: sealed segments were fsynced whole"
    };
    Err(corrupt(
        path,
        offset,
        format!("{reason} after record id {last}; {following}; {why}"),
    ))
}

fn cut_tail(path: &Path, offset: u64, fsync: bool) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| JournalError::io(format!("opening {}", path.display()), e))?;
    file.set_len(offset)
        .map_err(|e| JournalError::io(format!("truncating {}", path.display()), e))?;
    if fsync {
        file.sync_all()
            .map_err(|e| JournalError::io(format!("fsync of {}", path.display()), e))?;
    }
    Ok(())
}
