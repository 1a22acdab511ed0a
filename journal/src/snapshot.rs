//! Snapshot files: opaque state bytes at an event id, written atomically.
//!
//! Writing: `snapshot-<id>.snap.tmp` is written and fsynced, renamed to `snapshot-<id>.snap`,
//! and the directory is fsynced; only then are older snapshot files deleted. A crash at any
//! point leaves either the old or the new snapshot complete (temp files are deleted on open).
//! A full file system leaves the old snapshot and no temp file.

use std::{
    fs::{self, File},
    io::Write,
    path::{Path, PathBuf},
};

use crate::{
    error::{JournalError, Result, is_no_space},
    format::{FORMAT_VERSION, decode_snapshot, encode_snapshot},
};

const PREFIX: &str = "snapshot-";
const SUFFIX: &str = ".snap";
const ID_DIGITS: usize = 20;

/// State bytes at an event id, as the journal's user wrote them with `write_snapshot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub id: u64,
    pub bytes: Vec<u8>,
}

pub(crate) fn snapshot_file_name(id: u64) -> String {
    format!("{PREFIX}{id:0ID_DIGITS$}{SUFFIX}")
}

pub(crate) fn parse_snapshot_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != ID_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What a failed snapshot write did to the files.
pub(crate) enum WriteFailure {
    /// Nothing durable changed: the temp file could not be written (and is deleted). The
    /// journal can go on; a full file system gives [`JournalError::NoSpace`].
    NotWritten(JournalError),
    /// An fsync failed; what is on disk is unknown, so the journal must stop.
    SyncFailed(JournalError),
}

/// Writes the snapshot atomically; returns the path of the new file.
///
/// `ENOSPC`/`EDQUOT` from the create, the write, the temp file's fsync or the rename leave
/// nothing behind (the temp file is deleted, never trusted) and are [`WriteFailure::NotWritten`];
/// any other failed fsync, and a failed fsync of the directory, is [`WriteFailure::SyncFailed`].
pub(crate) fn write(
    dir: &Path,
    id: u64,
    bytes: &[u8],
    fsync: bool,
) -> Result<PathBuf, WriteFailure> {
    let path = dir.join(snapshot_file_name(id));
    let tmp = dir.join(format!("{}.tmp", snapshot_file_name(id)));
    let not_written = |what: String, e: std::io::Error| {
        let _ = fs::remove_file(&tmp);
        WriteFailure::NotWritten(if is_no_space(&e) {
            JournalError::NoSpace {
                dir: dir.to_path_buf(),
                reason: format!("{what}: {e}"),
            }
        } else {
            JournalError::io(what, e)
        })
    };
    let encoded = encode_snapshot(id, bytes);
    let mut file =
        File::create(&tmp).map_err(|e| not_written(format!("creating {}", tmp.display()), e))?;
    file.write_all(&encoded)
        .map_err(|e| not_written(format!("writing {}", tmp.display()), e))?;
    if fsync && let Err(e) = file.sync_all() {
        let what = format!("fsync of {}", tmp.display());
        if is_no_space(&e) {
            return Err(not_written(what, e));
        }
        return Err(WriteFailure::SyncFailed(JournalError::io(what, e)));
    }
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| {
        not_written(
            format!("renaming {} to {}", tmp.display(), path.display()),
            e,
        )
    })?;
    if fsync {
        sync_dir(dir).map_err(WriteFailure::SyncFailed)?;
    }
    Ok(path)
}

/// Writes `bytes` zeros to the space probe file and deletes it; `NoSpace` when they do not fit.
pub(crate) fn probe_space(dir: &Path, bytes: u64) -> Result<()> {
    let path = dir.join(crate::PROBE_FILE_NAME);
    let fail = |what: &str, e: std::io::Error| {
        let _ = fs::remove_file(&path);
        if is_no_space(&e) {
            JournalError::NoSpace {
                dir: dir.to_path_buf(),
                reason: format!("{what} {} bytes to {}: {e}", bytes, path.display()),
            }
        } else {
            JournalError::io(format!("{what} {}", path.display()), e)
        }
    };
    let mut file = File::create(&path).map_err(|e| fail("creating a file for", e))?;
    let chunk = vec![0u8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])
            .map_err(|e| fail("writing", e))?;
        left -= n as u64;
    }
    drop(file);
    fs::remove_file(&path).map_err(|e| JournalError::io(format!("deleting {}", path.display()), e))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| JournalError::io(format!("fsync of directory {}", dir.display()), e))
}

/// Reads and checks one snapshot file whose name says `id`.
pub(crate) fn load(path: &Path, id: u64) -> Result<Snapshot> {
    let file =
        fs::read(path).map_err(|e| JournalError::io(format!("reading {}", path.display()), e))?;
    if file.len() >= 12 && file[0..8] == crate::format::SNAPSHOT_MAGIC {
        let version = crate::format::u32_at(&file, 8);
        if version != FORMAT_VERSION {
            return Err(JournalError::UnsupportedVersion {
                file: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
    }
    let (found, bytes) = decode_snapshot(&file).map_err(|reason| JournalError::Corrupt {
        file: path.to_path_buf(),
        offset: 0,
        reason: format!("snapshot file is unusable: {reason}"),
    })?;
    if found != id {
        return Err(JournalError::Corrupt {
            file: path.to_path_buf(),
            offset: 16,
            reason: format!("snapshot header says id {found} but the file name says {id}"),
        });
    }
    Ok(Snapshot {
        id,
        bytes: bytes.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_round_trip() {
        assert_eq!(snapshot_file_name(5), "snapshot-00000000000000000005.snap");
        assert_eq!(parse_snapshot_file_name(&snapshot_file_name(5)), Some(5));
        assert_eq!(parse_snapshot_file_name("snapshot-5.snap"), None);
        assert_eq!(
            parse_snapshot_file_name("snapshot-00000000000000000005.snap.tmp"),
            None
        );
    }
}
