//! [`LogStore`]: raft-rs's [`raft::Storage`] over an ordo journal.
//!
//! A replica directory holds:
//!
//! ```text
//! log/                                 the ordo journal: one record per raft entry, id = index
//!                                      (see crate::record); its LOCK guards the whole directory
//! raft-state                           term, vote, commit, compaction point, snapshot in use,
//!                                      membership (see crate::state)
//! snapshot-<index, 20 digits>.rsnap    the snapshot in use (see crate::snapshot)
//! *.tmp                                unfinished atomic writes; deleted on open
//! ```
//!
//! What is durable when:
//! - [`LogStore::append`] returns once its entries are durable (one journal commit, one
//!   `fdatasync`). Entries that conflict with it (same index or later) are cut first with the
//!   journal's `truncate_after`, itself durable when it returns; a crash in between leaves a
//!   prefix of the log, which loses nothing this node acknowledged.
//! - [`LogStore::set_hard_state`] rewrites the state file when the term or the vote changed,
//!   before it returns. A commit-only change stays in memory (raft learns it again).
//! - A snapshot (taken here or installed from the leader) is written to its file first, then
//!   the state file naming it; only then are the older snapshot file and the journal
//!   segments it covers deleted. Installing one first cuts the log after its index (the
//!   entries after it belong to a history that lost: raft installs a snapshot only when this
//!   log does not hold the snapshot's last entry), so a crash at any point leaves either the
//!   old state with a prefix of the old log, or the new state.
//! - [`LogStore::compact`] writes the state file with the new compaction point, then releases
//!   the journal segments wholly below it.
//!
//! A new directory with a membership (a founding node) starts from a bootstrap snapshot at
//! index 1, term 1, with empty data (the initial state), the same on every founding node; the
//! first entry has index 2. A new directory without one (a node added later, or a wiped one)
//! has an empty log and no membership: the leader finds the entry it needs compacted and
//! sends a snapshot, which brings the membership. The membership (raft's `ConfState`) is
//! durable as the one at the snapshot in use (state file and snapshot) plus the committed
//! membership changes after it in the log, which take effect again when raft hands them out
//! after a restart (raft's rule: a change takes effect when applied).
//!
//! In memory: the term of every entry after the compaction point (8 bytes an entry, so
//! snapshots and compaction bound it) and the newest entries up to `cache_bytes_max`; older
//! entries are read back from the journal.

use std::{
    collections::VecDeque,
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
};

use ordo_journal::{Journal, JournalError, RecoveryReport};
use raft::{GetEntriesContext, RaftState, StorageError, eraftpb};

use crate::{
    codec::{Membership, SealError, read_bounded},
    error::{ReplicaError, Result},
    record::{self, RECORD_OVERHEAD_BYTES_MAX, RecordError},
    snapshot::{self, Snapshot},
    state::{PersistedState, STATE_FILE_NAME},
};

/// Name of the journal directory inside the replica directory.
pub const LOG_DIR_NAME: &str = "log";

/// Limits and durability of a [`LogStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Journal segments are sealed at this size, in bytes. Default 64 MiB.
    pub segment_bytes_max: u64,
    /// Largest entry (proposal data plus context) the log takes, in bytes. Default 4 MiB.
    pub entry_bytes_max: u32,
    /// Newest entries kept in memory (for followers and for applying), in bytes. Default 32 MiB.
    pub cache_bytes_max: u64,
    /// Largest snapshot this node reads or takes from a peer, in bytes. Default 1 GiB.
    pub snapshot_bytes_max: u64,
    /// `fsync` every write (default). `false` is only for tests and benchmark comparisons.
    pub fsync: bool,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            segment_bytes_max: 64 << 20,
            entry_bytes_max: 4 << 20,
            cache_bytes_max: 32 << 20,
            snapshot_bytes_max: 1 << 30,
            fsync: true,
        }
    }
}

/// A store just opened, with what recovery found.
pub struct OpenedStore {
    pub store: LogStore,
    /// The snapshot in use: restore the application's state from it, then apply the
    /// committed entries raft hands out after it.
    pub snapshot: Option<Snapshot>,
    /// What the journal's recovery found (a torn tail cut, say).
    pub recovery: RecoveryReport,
}

/// raft-rs's storage over an ordo journal. See the module documentation for the layout and
/// what is durable when.
pub struct LogStore {
    dir: PathBuf,
    config: StoreConfig,
    journal: Journal,
    /// What the state file holds.
    persisted: PersistedState,
    /// The current hard state (its commit may be ahead of the persisted one).
    hard: eraftpb::HardState,
    /// Terms of the entries `persisted.compacted_index + 1 ..= last`.
    terms: VecDeque<u64>,
    /// The newest entries, up to `config.cache_bytes_max`.
    cache: VecDeque<eraftpb::Entry>,
    cache_bytes: u64,
    /// Raft asked for a snapshot that the one in use cannot be (see [`LogStore::snapshot_wanted`]).
    snapshot_wanted: AtomicBool,
}

fn entry_bytes(e: &eraftpb::Entry) -> u64 {
    (e.data.len() + e.context.len() + 32) as u64
}

fn storage_error(e: impl std::error::Error + Send + Sync + 'static) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(e)))
}

impl LogStore {
    /// Opens the replica directory `dir` (creating it when needed). A directory without a
    /// state file starts a new log with `bootstrap` as its membership (empty: a node that
    /// joins an existing cluster and waits for the leader's snapshot); otherwise the
    /// persisted membership is used and `bootstrap` is ignored.
    pub fn open(dir: &Path, config: StoreConfig, bootstrap: &Membership) -> Result<OpenedStore> {
        if config.entry_bytes_max == 0 || config.cache_bytes_max == 0 {
            return Err(ReplicaError::Invalid(
                "entry_bytes_max and cache_bytes_max must be at least 1 byte".to_string(),
            ));
        }
        fs::create_dir_all(dir)
            .map_err(|e| ReplicaError::io(format!("creating directory {}", dir.display()), e))?;
        let mut journal_config = ordo_journal::Config::new(dir.join(LOG_DIR_NAME));
        journal_config.segment_bytes_max = config.segment_bytes_max;
        journal_config.record_bytes_max = config
            .entry_bytes_max
            .checked_add(RECORD_OVERHEAD_BYTES_MAX as u32)
            .ok_or_else(|| {
                ReplicaError::Invalid(format!(
                    "entry_bytes_max = {} is too large",
                    config.entry_bytes_max
                ))
            })?;
        journal_config.fsync = config.fsync;
        // The journal's lock keeps a second process out of the whole directory.
        let opened = Journal::open(journal_config)?;
        let journal = opened.journal;
        let recovery = opened.recovery;

        remove_temp_files(dir)?;
        let persisted = match PersistedState::load(dir)? {
            Some(state) => state,
            None => {
                if recovery.last_id > 0 {
                    return Err(ReplicaError::corrupt(
                        dir.join(STATE_FILE_NAME),
                        format!(
                            "the file is missing but the log holds entries up to index {}; \
                             refusing to start as a new node (restore the directory, or wipe \
                             it to rejoin by snapshot)",
                            recovery.last_id
                        ),
                    ));
                }
                let state = bootstrap_state(bootstrap);
                if state.snapshot_index > 0 {
                    let bytes =
                        snapshot::encode(state.snapshot_index, state.snapshot_term, bootstrap, &[]);
                    crate::codec::write_atomic(
                        dir,
                        &snapshot::file_name(state.snapshot_index),
                        &bytes,
                        config.fsync,
                    )?;
                }
                state.store(dir, config.fsync)?;
                state
            }
        };
        let snapshot = load_snapshot(dir, &persisted, config.snapshot_bytes_max)?;
        remove_other_snapshots(dir, persisted.snapshot_index)?;

        let mut hard = eraftpb::HardState::default();
        hard.term = persisted.term;
        hard.vote = persisted.vote;
        hard.commit = persisted.commit;
        let mut store = LogStore {
            dir: dir.to_path_buf(),
            config,
            journal,
            persisted,
            hard,
            terms: VecDeque::new(),
            cache: VecDeque::new(),
            cache_bytes: 0,
            snapshot_wanted: AtomicBool::new(false),
        };
        store.load_log()?;
        let last = store.last();
        if store.persisted.commit > last {
            return Err(ReplicaError::corrupt(
                dir.join(LOG_DIR_NAME),
                format!(
                    "the raft state says entries up to index {} are committed but the log ends \
                     at index {last}: committed entries are missing (journal recovery: {:?})",
                    store.persisted.commit, recovery.truncated
                ),
            ));
        }
        Ok(OpenedStore {
            store,
            snapshot,
            recovery,
        })
    }

    /// Reads the log after the compaction point: terms, and the newest entries into the cache.
    fn load_log(&mut self) -> Result<()> {
        let compacted = self.persisted.compacted_index;
        let reader = self.journal.read_after(compacted).map_err(|e| match e {
            JournalError::Released { released, .. } => ReplicaError::corrupt(
                self.dir.join(LOG_DIR_NAME),
                format!(
                    "the raft state says the log holds the entries after index {compacted}, \
                     but the journal released them up to index {released}"
                ),
            ),
            e => e.into(),
        })?;
        let mut previous_term = self.persisted.compacted_term;
        for item in reader {
            let rec = item?;
            let expected = self.last() + 1;
            if rec.id != expected {
                return Err(ReplicaError::corrupt(
                    self.dir.join(LOG_DIR_NAME),
                    format!(
                        "expected the entry at index {expected}, found index {}",
                        rec.id
                    ),
                ));
            }
            let entry = self.decode_record(rec.id, &rec.data)?;
            if entry.term < previous_term {
                return Err(ReplicaError::corrupt(
                    self.dir.join(LOG_DIR_NAME),
                    format!(
                        "the entry at index {} has term {}, below the term {previous_term} \
                         before it",
                        rec.id, entry.term
                    ),
                ));
            }
            previous_term = entry.term;
            self.terms.push_back(entry.term);
            self.push_cache(entry);
        }
        Ok(())
    }

    fn decode_record(&self, index: u64, data: &[u8]) -> Result<eraftpb::Entry> {
        record::decode(index, data).map_err(|e| match e {
            RecordError::Newer { found } => ReplicaError::UnsupportedVersion {
                what: format!(
                    "the log entry at index {index} in {}",
                    self.dir.join(LOG_DIR_NAME).display()
                ),
                found,
                supported: record::LOG_RECORD_VERSION,
            },
            RecordError::Damaged(reason) => ReplicaError::corrupt(
                self.dir.join(LOG_DIR_NAME),
                format!("the entry at index {index}: {reason}"),
            ),
        })
    }

    fn last(&self) -> u64 {
        self.persisted.compacted_index + self.terms.len() as u64
    }

    fn cache_first(&self) -> u64 {
        self.last() + 1 - self.cache.len() as u64
    }

    fn push_cache(&mut self, entry: eraftpb::Entry) {
        debug_assert!(self.cache.back().is_none_or(|e| e.index + 1 == entry.index));
        self.cache_bytes += entry_bytes(&entry);
        self.cache.push_back(entry);
        while self.cache_bytes > self.config.cache_bytes_max && self.cache.len() > 1 {
            if let Some(old) = self.cache.pop_front() {
                self.cache_bytes -= entry_bytes(&old);
            }
        }
    }

    /// Drops cached entries with an index above `index`.
    fn cut_cache_after(&mut self, index: u64) {
        while self.cache.back().is_some_and(|e| e.index > index) {
            if let Some(old) = self.cache.pop_back() {
                self.cache_bytes -= entry_bytes(&old);
            }
        }
    }

    /// Drops cached entries with an index at or below `index`.
    fn cut_cache_until(&mut self, index: u64) {
        while self.cache.front().is_some_and(|e| e.index <= index) {
            if let Some(old) = self.cache.pop_front() {
                self.cache_bytes -= entry_bytes(&old);
            }
        }
    }

    /// Makes `entries` durable, cutting any entries at or after the first one's index.
    pub fn append(&mut self, entries: &[eraftpb::Entry]) -> Result<()> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let first = first.index;
        let compacted = self.persisted.compacted_index;
        let last = self.last();
        assert!(
            first > compacted,
            "raft appends entry {first} into the compacted log (compacted up to {compacted})"
        );
        assert!(
            first <= last + 1,
            "raft appends entry {first} after a gap (the log ends at {last})"
        );
        debug_assert!(entries.windows(2).all(|w| w[0].index + 1 == w[1].index));
        if first <= last {
            self.journal.truncate_after(first - 1)?;
            self.terms.truncate((first - 1 - compacted) as usize);
            self.cut_cache_after(first - 1);
        }
        let records = entries
            .iter()
            .map(|e| (Some(e.index), record::encode(e)))
            .collect();
        self.journal.append_batch(records).wait()?;
        for e in entries {
            self.terms.push_back(e.term);
            self.push_cache(e.clone());
        }
        debug_assert_eq!(self.last(), entries[entries.len() - 1].index);
        Ok(())
    }

    /// Takes raft's hard state; durable before it returns when the term or the vote changed.
    pub fn set_hard_state(&mut self, hs: &eraftpb::HardState) -> Result<()> {
        self.hard = hs.clone();
        if hs.term != self.persisted.term || hs.vote != self.persisted.vote {
            let mut next = self.persisted.clone();
            next.term = hs.term;
            next.vote = hs.vote;
            next.commit = self.durable_commit();
            self.write_state(next)?;
        }
        Ok(())
    }

    /// Takes a new commit index (kept in memory, written with the next state write).
    pub fn set_commit(&mut self, commit: u64) {
        debug_assert!(commit >= self.hard.commit);
        self.hard.commit = commit;
    }

    /// The commit index that may be written: never beyond the durable log.
    fn durable_commit(&self) -> u64 {
        self.hard.commit.min(self.last()).max(self.persisted.commit)
    }

    fn write_state(&mut self, next: PersistedState) -> Result<()> {
        next.store(&self.dir, self.config.fsync)?;
        self.persisted = next;
        Ok(())
    }

    /// Installs a snapshot from the leader (raft accepted it): see the module documentation
    /// for the order of the writes. Returns it for the application to restore.
    pub fn apply_snapshot(&mut self, snap: &eraftpb::Snapshot) -> Result<Snapshot> {
        let view =
            snapshot::check_raft(snap).map_err(|e| seal_error(e, "installed snapshot", None))?;
        let (index, term) = (view.index, view.term);
        if index <= self.persisted.snapshot_index {
            return Err(ReplicaError::Invalid(format!(
                "cannot install a snapshot at index {index}: the snapshot in use is at index {}",
                self.persisted.snapshot_index
            )));
        }
        if (snap.data.len() as u64) > self.config.snapshot_bytes_max {
            return Err(ReplicaError::Invalid(format!(
                "snapshot of {} bytes is larger than snapshot_bytes_max = {} bytes",
                snap.data.len(),
                self.config.snapshot_bytes_max
            )));
        }
        let restored = view.to_snapshot();
        if self.last() > index {
            self.journal.truncate_after(index)?;
        }
        crate::codec::write_atomic(
            &self.dir,
            &snapshot::file_name(index),
            &snap.data,
            self.config.fsync,
        )?;
        let old_snapshot = self.persisted.snapshot_index;
        let next = PersistedState {
            term: self.hard.term.max(term),
            vote: self.hard.vote,
            commit: self.hard.commit.max(index),
            compacted_index: index,
            compacted_term: term,
            snapshot_index: index,
            snapshot_term: term,
            membership: restored.membership.clone(),
        };
        self.write_state(next)?;
        self.hard.term = self.persisted.term;
        self.hard.commit = self.persisted.commit;
        self.terms.clear();
        self.cache.clear();
        self.cache_bytes = 0;
        self.remove_snapshot_file(old_snapshot)?;
        self.journal.release(index)?;
        Ok(restored)
    }

    /// Writes a snapshot of the application's state `data` at `index` (applied, so
    /// committed), with the membership after that entry. The log is not compacted here.
    pub fn create_snapshot(
        &mut self,
        index: u64,
        membership: &Membership,
        data: &[u8],
    ) -> Result<()> {
        if data.is_empty() {
            return Err(ReplicaError::Invalid(
                "a snapshot's data must not be empty (empty data is the initial state of the \
                 bootstrap snapshot)"
                    .to_string(),
            ));
        }
        if index <= self.persisted.snapshot_index {
            return Err(ReplicaError::Invalid(format!(
                "cannot take a snapshot at index {index}: the snapshot in use is at index {}",
                self.persisted.snapshot_index
            )));
        }
        if index > self.hard.commit || index > self.last() {
            return Err(ReplicaError::Invalid(format!(
                "cannot take a snapshot at index {index}: only entries up to index {} are \
                 committed and durable here",
                self.hard.commit.min(self.last())
            )));
        }
        let term = self.term_of(index)?;
        let bytes = snapshot::encode(index, term, membership, data);
        if (bytes.len() as u64) > self.config.snapshot_bytes_max {
            return Err(ReplicaError::Invalid(format!(
                "snapshot of {} bytes is larger than snapshot_bytes_max = {} bytes",
                bytes.len(),
                self.config.snapshot_bytes_max
            )));
        }
        crate::codec::write_atomic(
            &self.dir,
            &snapshot::file_name(index),
            &bytes,
            self.config.fsync,
        )?;
        let old_snapshot = self.persisted.snapshot_index;
        let mut next = self.persisted.clone();
        next.snapshot_index = index;
        next.snapshot_term = term;
        next.membership = membership.clone();
        next.commit = self.durable_commit();
        self.write_state(next)?;
        self.snapshot_wanted.store(false, Ordering::Relaxed);
        self.remove_snapshot_file(old_snapshot)
    }

    /// Whether raft wanted to send a snapshot that the one in use cannot be: none yet, older
    /// than a follower asked for, or taken before the follower joined (raft refuses a
    /// snapshot whose membership lacks its recipient). The application should then take a
    /// new one; raft asks again on its own.
    pub fn snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.load(Ordering::Relaxed)
    }

    /// Discards the entries up to `index` (at most the snapshot's index): the state file
    /// records the new compaction point, then the journal deletes the segments wholly below
    /// it. Returns how many segments went.
    pub fn compact(&mut self, index: u64) -> Result<u64> {
        let compacted = self.persisted.compacted_index;
        if index <= compacted {
            return Ok(0);
        }
        if index > self.persisted.snapshot_index {
            return Err(ReplicaError::Invalid(format!(
                "cannot compact the log up to index {index}: the snapshot covers only up to \
                 index {}",
                self.persisted.snapshot_index
            )));
        }
        let term = self.term_of(index)?;
        let mut next = self.persisted.clone();
        next.compacted_index = index;
        next.compacted_term = term;
        next.commit = self.durable_commit();
        self.write_state(next)?;
        self.terms.drain(..(index - compacted) as usize);
        self.cut_cache_until(index);
        Ok(self.journal.release(index)?)
    }

    fn term_of(&self, index: u64) -> Result<u64> {
        let compacted = self.persisted.compacted_index;
        if index == compacted {
            return Ok(self.persisted.compacted_term);
        }
        if index < compacted || index > self.last() {
            return Err(ReplicaError::Invalid(format!(
                "no entry at index {index}: the log holds indexes {} to {}",
                compacted + 1,
                self.last()
            )));
        }
        Ok(self.terms[(index - compacted - 1) as usize])
    }

    fn remove_snapshot_file(&self, index: u64) -> Result<()> {
        if index == 0 || index == self.persisted.snapshot_index {
            return Ok(());
        }
        let path = self.dir.join(snapshot::file_name(index));
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ReplicaError::io(format!("deleting {}", path.display()), e)),
        }
    }

    /// The snapshot in use, read from its file (`None` before the first one).
    pub fn snapshot_in_use(&self) -> Result<Option<Snapshot>> {
        load_snapshot(&self.dir, &self.persisted, self.config.snapshot_bytes_max)
    }

    /// The current hard state (its commit may be ahead of the one on disk).
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.hard.term,
            vote: self.hard.vote,
            commit: self.hard.commit,
        }
    }

    /// The membership at the snapshot in use (the bootstrap membership before the first).
    pub fn snapshot_membership(&self) -> &Membership {
        &self.persisted.membership
    }

    /// Index and term of the snapshot in use (`(0, 0)` before the first).
    pub fn snapshot_point(&self) -> (u64, u64) {
        (self.persisted.snapshot_index, self.persisted.snapshot_term)
    }

    /// The log holds the entries after this index.
    pub fn compacted_index(&self) -> u64 {
        self.persisted.compacted_index
    }

    /// Index of the last durable entry (what raft's `Storage::last_index` answers).
    pub fn durable_last_index(&self) -> u64 {
        self.last()
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The journal holding the entries (for its statistics and recovery report).
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads entries `[low, high)` from the journal, stopping early (after at least one)
    /// once about `max_size` bytes are read.
    fn read_entries(
        &self,
        low: u64,
        high: u64,
        max_size: Option<u64>,
    ) -> Result<Vec<eraftpb::Entry>> {
        let mut out = Vec::new();
        let mut bytes = 0u64;
        for item in self.journal.read_after(low - 1)? {
            let rec = item?;
            if rec.id >= high {
                break;
            }
            let expected = low + out.len() as u64;
            if rec.id != expected {
                return Err(ReplicaError::corrupt(
                    self.dir.join(LOG_DIR_NAME),
                    format!(
                        "expected the entry at index {expected}, found index {}",
                        rec.id
                    ),
                ));
            }
            let entry = self.decode_record(rec.id, &rec.data)?;
            // The measure raft's `limit_size` applies after this.
            bytes += u64::from(protobuf::Message::compute_size(&entry));
            out.push(entry);
            if max_size.is_some_and(|max| bytes > max) {
                break;
            }
        }
        Ok(out)
    }
}

/// The hard state as this crate shows it: the term, the vote in it, the commit index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

pub(crate) fn seal_error(e: SealError, what: &str, path: Option<&Path>) -> ReplicaError {
    let what = snapshot::describe(what, path);
    match e {
        SealError::Newer { found, supported } => ReplicaError::UnsupportedVersion {
            what,
            found,
            supported,
        },
        SealError::Damaged(reason) => match path {
            Some(path) => ReplicaError::corrupt(path, reason),
            None => ReplicaError::BadMessage(format!("{what}: {reason}")),
        },
    }
}

/// The state of a new replica directory. With a membership: a log that starts after index 1
/// of term 1, covered by a snapshot of the initial (empty) state with that membership, the
/// same on every founding node. A node added later has no membership and an empty log, so
/// the leader finds the entry it needs compacted and sends it a snapshot, which brings the
/// membership (raft's own bootstrap rule: new nodes catch up by snapshot first).
fn bootstrap_state(membership: &Membership) -> PersistedState {
    if membership.ids().is_empty() {
        return PersistedState::default();
    }
    PersistedState {
        term: BOOTSTRAP_TERM,
        vote: 0,
        commit: BOOTSTRAP_INDEX,
        compacted_index: BOOTSTRAP_INDEX,
        compacted_term: BOOTSTRAP_TERM,
        snapshot_index: BOOTSTRAP_INDEX,
        snapshot_term: BOOTSTRAP_TERM,
        membership: membership.clone(),
    }
}

/// Index and term of the snapshot a new cluster starts from (its data is empty: the initial
/// state). The first entry of a new cluster has index 2.
pub const BOOTSTRAP_INDEX: u64 = 1;
pub const BOOTSTRAP_TERM: u64 = 1;

fn load_snapshot(dir: &Path, state: &PersistedState, bytes_max: u64) -> Result<Option<Snapshot>> {
    if state.snapshot_index == 0 {
        return Ok(None);
    }
    let path = dir.join(snapshot::file_name(state.snapshot_index));
    let bytes = read_bounded(&path, bytes_max)?;
    let view = snapshot::decode(&bytes).map_err(|e| seal_error(e, "snapshot file", Some(&path)))?;
    if view.index != state.snapshot_index
        || view.term != state.snapshot_term
        || view.membership != state.membership
    {
        return Err(ReplicaError::corrupt(
            &path,
            format!(
                "the snapshot is at index {} term {} with {:?}, but the raft state names index \
                 {} term {} with {:?}",
                view.index,
                view.term,
                view.membership,
                state.snapshot_index,
                state.snapshot_term,
                state.membership
            ),
        ));
    }
    Ok(Some(view.to_snapshot()))
}

fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let entries =
        fs::read_dir(dir).map_err(|e| ReplicaError::io(format!("listing {}", dir.display()), e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ReplicaError::io(format!("listing {}", dir.display()), e))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

fn remove(dir: &Path, name: &str) -> Result<()> {
    let path = dir.join(name);
    fs::remove_file(&path).map_err(|e| ReplicaError::io(format!("deleting {}", path.display()), e))
}

/// Deletes the temp files of unfinished atomic writes.
fn remove_temp_files(dir: &Path) -> Result<()> {
    for name in list_dir(dir)? {
        if let Some(base) = name.strip_suffix(".tmp")
            && (base == STATE_FILE_NAME || snapshot::parse_file_name(base).is_some())
        {
            remove(dir, &name)?;
        }
    }
    Ok(())
}

/// Deletes snapshot files other than the one in use (left by a crash mid-install or
/// mid-replacement).
fn remove_other_snapshots(dir: &Path, in_use: u64) -> Result<()> {
    for name in list_dir(dir)? {
        if let Some(index) = snapshot::parse_file_name(&name)
            && index != in_use
        {
            remove(dir, &name)?;
        }
    }
    Ok(())
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState {
            hard_state: self.hard.clone(),
            conf_state: (&self.persisted.membership).into(),
        })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<eraftpb::Entry>> {
        let max_size = max_size.into();
        if low <= self.persisted.compacted_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            debug_assert!(
                false,
                "entries({low}, {high}) beyond the last index {}",
                self.last()
            );
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if low >= high {
            return Ok(Vec::new());
        }
        let mut entries = if low >= self.cache_first() {
            let start = (low - self.cache_first()) as usize;
            let end = (high - self.cache_first()) as usize;
            self.cache.range(start..end).cloned().collect()
        } else {
            self.read_entries(low, high, max_size)
                .map_err(storage_error)?
        };
        raft::util::limit_size(&mut entries, max_size);
        Ok(entries)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let compacted = self.persisted.compacted_index;
        if idx == compacted {
            return Ok(self.persisted.compacted_term);
        }
        if idx < compacted {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.terms[(idx - compacted - 1) as usize])
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.persisted.compacted_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<eraftpb::Snapshot> {
        let index = self.persisted.snapshot_index;
        if index == 0 || index < request_index || !self.persisted.membership.ids().contains(&to) {
            self.snapshot_wanted.store(true, Ordering::Relaxed);
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        let path = self.dir.join(snapshot::file_name(index));
        let bytes = read_bounded(&path, self.config.snapshot_bytes_max).map_err(storage_error)?;
        snapshot::to_raft(bytes)
            .map_err(|e| storage_error(seal_error(e, "snapshot file", Some(&path))))
    }
}
