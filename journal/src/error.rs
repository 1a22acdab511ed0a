//! The journal's error type.

use std::{io, path::PathBuf, sync::Arc};

/// Everything that can go wrong in the journal. Every message says what failed and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// Another process (or another `Journal` in this process) holds the directory's lock.
    #[error(
        "journal directory {} is in use: another process holds the lock on {}",
        dir.display(),
        lock.display()
    )]
    Locked { dir: PathBuf, lock: PathBuf },

    /// A file operation failed; `context` names the operation and the file.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// A record's data is larger than `Config::record_bytes_max`.
    #[error("record of {bytes} bytes is larger than record_bytes_max = {max} bytes")]
    RecordTooLarge { bytes: u64, max: u32 },

    /// A caller-supplied id is not greater than the id before it.
    #[error("event id {id} must be greater than the last id {last}")]
    IdNotIncreasing { id: u64, last: u64 },

    /// A journal or snapshot file holds bytes that are not what the journal wrote. The
    /// journal refuses to open rather than cut acknowledged records; the message says the way
    /// out ([`RESTORE_ADVICE`]).
    #[error(
        "journal file {} is corrupt at byte offset {offset}: {reason}. {RESTORE_ADVICE}",
        file.display()
    )]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },

    /// A file was written by a newer version of the format.
    #[error(
        "journal file {} has format version {found}; this build reads version {supported}",
        file.display()
    )]
    UnsupportedVersion {
        file: PathBuf,
        found: u32,
        supported: u32,
    },

    /// The records asked for were released (their segments are deleted).
    #[error("records after id {after} are gone: ids up to {released} have been released")]
    Released { after: u64, released: u64 },

    /// Records this reader had already returned were removed by `truncate_after`.
    #[error(
        "records up to id {after} were read, but truncate_after({truncated_after}) removed some of them"
    )]
    Truncated { after: u64, truncated_after: u64 },

    /// The call's arguments contradict the journal's state; the message says how.
    #[error("{0}")]
    Invalid(String),

    /// A write or fsync failed earlier; the journal does not write again until it is reopened.
    #[error("the journal has stopped for good after an earlier write or fsync error: {0}")]
    Failed(Arc<str>),

    /// The file system holding the journal is full (`ENOSPC`) or the user's quota is used up
    /// (`EDQUOT`). Nothing of the failed append is in the journal (the segment was cut back to
    /// its last durable length); the journal stays usable and the next append tries again.
    #[error(
        "no space left for the journal in {}: {reason}; nothing of this append was written, \
         and appends work again once space is freed",
        dir.display()
    )]
    NoSpace { dir: PathBuf, reason: String },

    /// An `append_batch_after(after, ..)` whose `after` is not the last id the journal
    /// accepted: an append it follows failed, so it was not written either.
    #[error(
        "this append was to follow id {after}, but the journal's last id is {last} \
         (an append before it failed); nothing of it was written"
    )]
    Discontinuous { after: u64, last: u64 },
}

/// What to do about a corrupt journal; part of every [`JournalError::Corrupt`] message.
pub const RESTORE_ADVICE: &str = "A damaged journal is not used, because going on without the \
    damaged bytes could lose acknowledged records. Way out: stop the process, move the journal directory \
    aside (keep it for analysis), restore the directory from a backup and start again (once \
    controllers run as a pair, a controller fetches the journal from its peer instead)";

impl JournalError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> JournalError {
        JournalError::Io {
            context: context.into(),
            source,
        }
    }
}

/// `ENOSPC` or `EDQUOT`.
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

pub type Result<T, E = JournalError> = std::result::Result<T, E>;
