//! Ordo's append-only, crash-safe event journal.
//!
//! # Byte layout
//!
//! A journal is a directory:
//!
//! ```text
//! LOCK                               exclusive flock while a Journal is open; holds the pid
//! 00000000000000000001.seg           segments, named by the id of their first record (20 digits)
//! 00000000000000052113.seg
//! snapshot-00000000000000050000.snap newest snapshot
//! *.tmp                              unfinished segment or snapshot files, or the space probe;
//!                                    deleted on open
//! ```
//!
//! Segment file = 32-byte header, then records back to back (all integers little endian):
//!
//! ```text
//! header:  magic "ORDOJNL\n" (8) | format version u32 = 1 | crc32c u32 | first_id u64 | prev_last_id u64
//!          crc32c covers bytes 0..12 and 16..32; first_id equals the file name;
//!          prev_last_id is the id of the last record before this segment (0 for none)
//! record:  len u32 | crc32c u32 | payload (len bytes)
//!          crc32c covers the 4 len bytes followed by the payload
//! payload: postcard of `enum Entry { V1 { id: u64, data: bytes } }`
//!          = varint(0) varint(id) varint(data.len()) data
//! ```
//!
//! New record shapes are added as new `Entry` variants (never by changing `V1`), and a new
//! header layout gets a new format version, so journals written by older versions keep loading.
//! Ids strictly increase across the whole journal; a segment holds ids in
//! `(prev_last_id, next segment's prev_last_id]`, all `>= first_id`.
//!
//! Snapshot file = magic "ORDOSNP\n" (8) | version u32 | crc32c u32 (of bytes 0..12 and 16..) |
//! id u64 | len u64 | `len` opaque bytes.
//!
//! # Writing
//!
//! One writer thread owns the last ("active") segment. It takes every pending append from its
//! queue, encodes them into one buffer, writes it with one `write`, calls `fdatasync` once and
//! then completes every waiter (group commit). An append's records always land in one segment:
//! a segment that would grow past `segment_bytes_max` with the next append is sealed first
//! (written and fsynced), then the next segment is created as a `.tmp` file holding just its
//! header, fsynced, renamed and the directory fsynced (an append larger than a segment gets
//! one of its own). So the only bytes a crash can damage are those of the last group write, at
//! the end of the last segment, and none of them was acknowledged.
//!
//! A failed fsync stops the journal for good: every later call returns
//! [`JournalError::Failed`], nothing retries it (after a failed fsync the kernel may have
//! dropped the dirty pages, so a retry could report success for data that is gone), and
//! reopening runs recovery. That includes an fsync failing with `ENOSPC` (a file system that
//! allocates late found no room for data already written): the message says so. Any other
//! failed `write` stops the journal too.
//!
//! A full file system is not fatal. When a segment `write`, the creation of a segment or of a
//! snapshot fails with `ENOSPC` or `EDQUOT` before any fsync of it: the active segment is cut
//! back to its durable length (and the cut fsynced), temp files are deleted, everything not
//! yet durable is forgotten (the next assigned id is the last durable one + 1), the appends of
//! that group whose records were already durable complete, the others fail with
//! [`JournalError::NoSpace`] (naming the directory and the cause), and the journal stays
//! open: the next append tries again. A caller that sends appends built on earlier ones
//! without waiting chains them with [`Journal::append_batch_after`], so that one queued behind
//! a failed append fails too ([`JournalError::Discontinuous`]) instead of being written
//! without it. [`Journal::probe_space`] tells a caller whether space is back without writing
//! to the journal.
//!
//! # Recovery rules (on [`Journal::open`])
//!
//! 1. `*.tmp` files are deleted.
//! 2. Every segment is read from start to end. Its header must be intact, name its own file,
//!    and its `prev_last_id` must equal the last id of the segment before it (else a file is
//!    missing or was altered). Record ids must strictly increase.
//! 3. A record is *bad* when the file ends inside it (a short frame, or a length that runs
//!    past the end) or its checksum does not match. Recovery then looks past it: it scans
//!    every later byte offset of the same file for a valid record (a length that fits the
//!    file, the `V1` tag, an id above the last good one, a data length that fills the payload
//!    exactly, and a matching crc32c), and walks on from each one it finds. The scan reads the
//!    rest of the file once; the bytes it checksums for candidates are bounded by a few times
//!    that length, and a scan that hits the bound counts as "valid records follow".
//! 4. **Torn tail**: a bad record in the last segment with no valid record after it. Only
//!    the last group write can end like that after a crash, and it was not acknowledged
//!    (appends are acknowledged after the fsync that covers them), so it is cut off: the file
//!    is truncated at the bad record and fsynced, and [`RecoveryReport::truncated`] says
//!    where, how many bytes, what was wrong and that nothing valid followed.
//! 5. **Corruption**: a bad record followed by any valid record, or a bad record anywhere in a
//!    sealed segment (sealed segments were fsynced whole before the next one was created), is
//!    a hard error, [`JournalError::Corrupt`], naming the file, the offset of the bad record,
//!    how many valid records follow it in that file and their id range. Nothing is cut. The
//!    message says the way out ([`RESTORE_ADVICE`]): stop, move the directory aside, restore
//!    it from a backup (once controllers run as a pair, a controller fetches the journal from
//!    its peer instead).
//! 6. A record whose checksum is right but whose payload does not decode (written by a newer
//!    version) is a hard error anywhere.
//! 7. The newest `snapshot-*.snap` is loaded and checked (a bad one is a hard error); its id
//!    must not be beyond the last record. Older snapshot files are deleted.
//!
//! What recovery cannot tell apart, and what it does then:
//! - Damage confined to the very last record of the last segment (a flipped bit in it, say)
//!   looks exactly like a torn write: that record is cut and reported in
//!   [`RecoveryReport::truncated`], even if it had been acknowledged. It is the only damage
//!   that costs an acknowledged record without a hard error; the report names it.
//! - A power loss while the last group was being written can leave a hole in it (the disk
//!   persisted a later part of the write but not an earlier one) followed by valid records of
//!   that same unacknowledged group. That cannot be told from corruption, so open refuses it
//!   as corruption rather than guess towards losing data; the records after the hole were
//!   never acknowledged.
//!
//! The caller then replays with [`Journal::read_after`]`(snapshot id)`.
//!
//! # Example
//!
//! ```
//! use ordo_journal::{Config, Journal};
//!
//! let dir = tempfile::tempdir()?;
//! let opened = Journal::open(Config::new(dir.path()))?;
//! let journal = opened.journal;
//! assert_eq!(journal.append(b"order added".to_vec()).wait()?, 1);
//! assert_eq!(journal.append_with_id(1 << 16, b"order started".to_vec()).wait()?, 1 << 16);
//! journal.write_snapshot(1, b"state after event 1")?;
//! let replay: Vec<_> = journal.read_after(1)?.collect::<Result<_, _>>()?;
//! assert_eq!(replay[0].data, b"order started");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod completion;
mod error;
#[cfg(test)]
mod faults;
mod format;
#[cfg(test)]
mod no_space_tests;
mod reader;
mod recovery;
mod resync;
mod segment;
mod snapshot;
mod writer;

use std::{
    fs::{self, File, OpenOptions, TryLockError},
    future::Future,
    io::Write,
    path::PathBuf,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    task::{Context, Poll},
    thread::JoinHandle,
};

use tokio_sync::sync::watch;

use crate::{
    completion::{Completion, completion},
    segment::SegInfo,
    writer::{Cmd, Records},
};

pub use crate::{
    error::{JournalError, RESTORE_ADVICE, Result},
    format::FORMAT_VERSION,
    reader::{Follower, Reader},
    snapshot::Snapshot,
};

/// Name of the lock file inside the journal directory.
pub const LOCK_FILE_NAME: &str = "LOCK";
/// Name of the temp file [`Journal::probe_space`] writes.
pub const PROBE_FILE_NAME: &str = "space-probe.tmp";

/// Where and how a journal keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub dir: PathBuf,
    /// A segment is sealed before an append would grow it past this many bytes (a single
    /// larger append gets a segment of its own). Default 64 MiB.
    pub segment_bytes_max: u64,
    /// Largest `data` of one record, in bytes. Default 16 MiB.
    pub record_bytes_max: u32,
    /// `fdatasync` every commit (default). `false` is only for tests and benchmark comparisons:
    /// acknowledged records may then be lost in a machine crash.
    pub fsync: bool,
}

impl Config {
    pub fn new(dir: impl Into<PathBuf>) -> Config {
        Config {
            dir: dir.into(),
            segment_bytes_max: 64 * 1024 * 1024,
            record_bytes_max: 16 * 1024 * 1024,
            fsync: true,
        }
    }

    fn validate(&self) -> Result<()> {
        let min = format::SEGMENT_HEADER_BYTES + 64;
        if self.segment_bytes_max < min {
            return Err(JournalError::Invalid(format!(
                "segment_bytes_max = {} is too small; it must be at least {min} bytes",
                self.segment_bytes_max
            )));
        }
        let max = u32::MAX - format::PAYLOAD_OVERHEAD_BYTES_MAX as u32;
        if self.record_bytes_max == 0 || self.record_bytes_max > max {
            return Err(JournalError::Invalid(format!(
                "record_bytes_max = {} must be between 1 and {max} bytes",
                self.record_bytes_max
            )));
        }
        Ok(())
    }
}

/// A journal just opened, with what recovery found.
pub struct Opened {
    pub journal: Journal,
    /// The newest snapshot; replay from `read_after(snapshot.id)`.
    pub snapshot: Option<Snapshot>,
    pub recovery: RecoveryReport,
}

/// What recovery found on [`Journal::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records in the journal (all retained segments).
    pub records: u64,
    /// Id of the last record (0 when the journal never held one).
    pub last_id: u64,
    /// The torn or corrupt tail cut off the last segment, if there was one.
    pub truncated: Option<TruncatedTail>,
    /// Segment files in the journal.
    pub segments: u64,
}

/// A torn tail of the last segment that recovery cut off: bytes at its end that hold no valid
/// record (recovery checked every offset), left by an append that was never acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncatedTail {
    pub file: PathBuf,
    /// Byte offset the file was truncated to: where the first bad record started.
    pub offset: u64,
    /// Bytes cut off: from `offset` to the old end of the file.
    pub bytes_dropped: u64,
    /// What was wrong with the record at `offset`, and why cutting it loses nothing that was
    /// acknowledged.
    pub reason: String,
}

impl std::fmt::Display for TruncatedTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cut {} bytes off the end of {} at byte offset {}: {}",
            self.bytes_dropped,
            self.file.display(),
            self.offset,
            self.reason
        )
    }
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: u64,
    pub data: Vec<u8>,
}

/// Counters since the journal was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records made durable.
    pub appends: u64,
    /// Commits that wrote bytes (one write each).
    pub batches: u64,
    /// `fdatasync`/`fsync` calls on segment files.
    pub fsyncs: u64,
    /// Bytes written to segment files (headers included).
    pub bytes: u64,
    /// Microseconds spent in `fdatasync` of segment files (the writer waits for the disk).
    pub fsync_us: u64,
}

#[derive(Default)]
pub(crate) struct StatCounters {
    pub appends: AtomicU64,
    pub batches: AtomicU64,
    pub fsyncs: AtomicU64,
    pub bytes: AtomicU64,
    pub fsync_us: AtomicU64,
}

/// State shared by the handles, the writer thread and the readers.
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub config: Config,
    /// Every retained segment, oldest first. The last one is the writer's active segment.
    pub segments: Mutex<Vec<SegInfo>>,
    pub last_durable: AtomicU64,
    /// Bumped by every `truncate_after`, before any file changes.
    pub epoch: AtomicU64,
    /// `(epoch, after)` of every `truncate_after` since open.
    pub truncations: Mutex<Vec<(u64, u64)>>,
    pub failure: OnceLock<Arc<str>>,
    pub stats: StatCounters,
    /// Id of the newest snapshot; the lock also orders snapshot writes against truncation.
    pub snapshot_id: Mutex<Option<u64>>,
    #[cfg(test)]
    pub faults: faults::Faults,
}

impl Shared {
    pub fn check(&self) -> Result<()> {
        match self.failure.get() {
            Some(message) => Err(JournalError::Failed(message.clone())),
            None => Ok(()),
        }
    }

    /// Stops the journal for good; the first failure's message is kept.
    pub fn fail(&self, message: String) -> JournalError {
        let _ = self.failure.set(message.into());
        self.failed_error()
    }

    pub fn failed_error(&self) -> JournalError {
        JournalError::Failed(
            self.failure
                .get()
                .cloned()
                .unwrap_or_else(|| "the journal writer thread stopped".into()),
        )
    }

    pub fn segments(&self) -> MutexGuard<'_, Vec<SegInfo>> {
        lock(&self.segments)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A handle to an open journal. Cheap to clone, `Send + Sync`. The journal closes (its writer
/// thread finishes pending work and stops, the lock is released) when the last clone drops;
/// that drop waits for the writer's current commit.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Handle>,
}

struct Handle {
    tx: Option<mpsc::Sender<Cmd>>,
    shared: Arc<Shared>,
    durable_rx: watch::Receiver<u64>,
    thread: Option<JoinHandle<()>>,
    _lock: File,
}

impl Drop for Handle {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Journal {
    /// Opens (or creates) the journal in `config.dir`: takes the directory lock, recovers, and
    /// starts the writer thread.
    pub fn open(config: Config) -> Result<Opened> {
        config.validate()?;
        let dir = config.dir.clone();
        fs::create_dir_all(&dir)
            .map_err(|e| JournalError::io(format!("creating directory {}", dir.display()), e))?;
        let lock_path = dir.join(LOCK_FILE_NAME);
        let mut lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| JournalError::io(format!("opening {}", lock_path.display()), e))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(JournalError::Locked {
                    dir,
                    lock: lock_path,
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(JournalError::io(
                    format!("locking {}", lock_path.display()),
                    e,
                ));
            }
        }
        match lock_file
            .set_len(0)
            .and_then(|()| writeln!(lock_file, "{}", std::process::id()))
        {
            Ok(()) => {}
            // The flock is the lock; the pid in the file only informs, and a full disk must
            // not keep a journal that needs no new space from opening.
            Err(e) if error::is_no_space(&e) => {}
            Err(e) => {
                return Err(JournalError::io(
                    format!("writing {}", lock_path.display()),
                    e,
                ));
            }
        }

        let recovered = recovery::recover(&config)?;
        let last_id = recovered.report.last_id;
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            config: config.clone(),
            segments: Mutex::new(recovered.segments),
            last_durable: AtomicU64::new(last_id),
            epoch: AtomicU64::new(0),
            truncations: Mutex::new(Vec::new()),
            failure: OnceLock::new(),
            stats: StatCounters::default(),
            snapshot_id: Mutex::new(recovered.snapshot.as_ref().map(|s| s.id)),
            #[cfg(test)]
            faults: faults::Faults::default(),
        });
        let (durable_tx, durable_rx) = watch::channel(last_id);
        let (tx, rx) = mpsc::channel();
        let writer = writer::Writer::new(shared.clone(), rx, durable_tx, recovered.active, last_id);
        let thread = std::thread::Builder::new()
            .name("ordo-journal-writer".to_string())
            .spawn(move || writer.run())
            .map_err(|e| JournalError::io("starting the journal writer thread", e))?;
        Ok(Opened {
            journal: Journal {
                inner: Arc::new(Handle {
                    tx: Some(tx),
                    shared,
                    durable_rx,
                    thread: Some(thread),
                    _lock: lock_file,
                }),
            },
            snapshot: recovered.snapshot,
            recovery: recovered.report,
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    fn send(&self, make: impl FnOnce(completion::Completer<Result<u64>>) -> Cmd) -> Appending {
        if let Err(e) = self.shared().check() {
            return Appending::ready(Err(e));
        }
        let (completer, completion) = completion();
        let sent = match &self.inner.tx {
            Some(tx) => tx.send(make(completer)).is_ok(),
            None => false,
        };
        if !sent {
            return Appending::ready(Err(self.shared().failed_error()));
        }
        Appending {
            state: AppendingState::Waiting {
                completion,
                shared: self.shared().clone(),
            },
        }
    }

    fn check_size(&self, data: &[u8]) -> Result<()> {
        let max = self.shared().config.record_bytes_max;
        if data.len() as u64 > u64::from(max) {
            return Err(JournalError::RecordTooLarge {
                bytes: data.len() as u64,
                max,
            });
        }
        Ok(())
    }

    /// Appends one record with the next id (last + 1). Resolves to its id once it is durable.
    /// The append happens even if the returned value is dropped.
    pub fn append(&self, data: Vec<u8>) -> Appending {
        if let Err(e) = self.check_size(&data) {
            return Appending::ready(Err(e));
        }
        self.send(|reply| Cmd::Append {
            records: Records::One(None, data),
            after: None,
            reply,
        })
    }

    /// Appends one record with a caller-chosen id, which must be greater than every id before
    /// it (else [`JournalError::IdNotIncreasing`]).
    pub fn append_with_id(&self, id: u64, data: Vec<u8>) -> Appending {
        if let Err(e) = self.check_size(&data) {
            return Appending::ready(Err(e));
        }
        self.send(|reply| Cmd::Append {
            records: Records::One(Some(id), data),
            after: None,
            reply,
        })
    }

    /// Appends records all-or-nothing with one durable point; `None` ids mean "previous + 1".
    /// Resolves to the last id (for an empty batch: the last id once everything queued before
    /// it is durable).
    pub fn append_batch(&self, records: Vec<(Option<u64>, Vec<u8>)>) -> Appending {
        self.batch(None, records)
    }

    /// Like [`Journal::append_batch`], but only if the last id the journal accepted (written
    /// or queued before this append) is `after`; else nothing is written and the append fails
    /// with [`JournalError::Discontinuous`]. A caller that sends batch after batch without
    /// waiting, each built on the ones before, chains them this way: when one fails (with
    /// [`JournalError::NoSpace`], say) the ones queued behind it fail too instead of being
    /// written without it.
    pub fn append_batch_after(
        &self,
        after: u64,
        records: Vec<(Option<u64>, Vec<u8>)>,
    ) -> Appending {
        self.batch(Some(after), records)
    }

    fn batch(&self, after: Option<u64>, records: Vec<(Option<u64>, Vec<u8>)>) -> Appending {
        for (_, data) in &records {
            if let Err(e) = self.check_size(data) {
                return Appending::ready(Err(e));
            }
        }
        self.send(|reply| Cmd::Append {
            records: Records::Many(records),
            after,
            reply,
        })
    }

    /// Id of the last durable record (0 when the journal is empty).
    pub fn last_id(&self) -> u64 {
        self.shared().last_durable.load(Ordering::Acquire)
    }

    /// Id of the oldest retained record, `None` when the journal holds no record.
    pub fn first_id(&self) -> Option<u64> {
        self.shared().segments().iter().find_map(|s| s.first_record)
    }

    /// Reads the durable records with an id greater than `after`, oldest first. Fails with
    /// [`JournalError::Released`] when some of them were released.
    pub fn read_after(&self, after: u64) -> Result<Reader> {
        Reader::new(self.shared().clone(), after)
    }

    /// Follows the journal: yields every durable record after `after`, then waits for new ones.
    pub fn follow(&self, after: u64) -> Follower {
        Follower::new(self.shared().clone(), self.inner.durable_rx.clone(), after)
    }

    /// Writes `bytes` as the state at event `id` (atomically: temp file, fsync, rename, fsync
    /// of the directory), then deletes older snapshots. `id` must be durable and not older than
    /// the newest snapshot.
    pub fn write_snapshot(&self, id: u64, bytes: &[u8]) -> Result<()> {
        let shared = self.shared();
        shared.check()?;
        let mut newest = lock(&shared.snapshot_id);
        let last = self.last_id();
        if id > last {
            return Err(JournalError::Invalid(format!(
                "cannot write a snapshot at id {id}: the last durable id is {last}"
            )));
        }
        if let Some(current) = *newest
            && id < current
        {
            return Err(JournalError::Invalid(format!(
                "cannot write a snapshot at id {id}: a newer snapshot at id {current} exists"
            )));
        }
        match snapshot::write(&shared.dir, id, bytes, shared.config.fsync) {
            Ok(_) => {}
            Err(snapshot::WriteFailure::NotWritten(e)) => return Err(e),
            Err(snapshot::WriteFailure::SyncFailed(e)) => return Err(shared.fail(e.to_string())),
        }
        let previous = newest.replace(id);
        if let Some(old) = previous
            && old != id
        {
            let path = shared.dir.join(snapshot::snapshot_file_name(old));
            fs::remove_file(&path)
                .map_err(|e| JournalError::io(format!("deleting {}", path.display()), e))?;
        }
        Ok(())
    }

    /// Deletes whole sealed segments whose records all have ids `<= until`; returns how many.
    /// The active (last) segment is never deleted. Blocks until the files are gone.
    pub fn release(&self, until: u64) -> Result<u64> {
        self.send(|reply| Cmd::Release { until, reply }).wait()
    }

    /// Drops every record with an id greater than `id`; durable when it returns, and the next
    /// assigned id is the last remaining id + 1. Refused when it would drop released records
    /// or records a snapshot covers. Readers that already returned a dropped record fail with
    /// [`JournalError::Truncated`]; the durable-id watch goes down to the new last id.
    pub fn truncate_after(&self, id: u64) -> Result<()> {
        let shared = self.shared();
        let newest = lock(&shared.snapshot_id);
        if let Some(snapshot) = *newest
            && id < snapshot
        {
            return Err(JournalError::Invalid(format!(
                "cannot truncate after id {id}: the snapshot at id {snapshot} covers later records"
            )));
        }
        let result = self
            .send(|reply| Cmd::TruncateAfter { after: id, reply })
            .wait();
        drop(newest);
        result.map(|_| ())
    }

    /// The newest snapshot, read from its file (what [`Opened::snapshot`] held at open, or a
    /// newer one written since).
    pub fn newest_snapshot(&self) -> Result<Option<Snapshot>> {
        let shared = self.shared();
        shared.check()?;
        let newest = lock(&shared.snapshot_id);
        match *newest {
            None => Ok(None),
            Some(id) => {
                let path = shared.dir.join(snapshot::snapshot_file_name(id));
                snapshot::load(&path, id).map(Some)
            }
        }
    }

    /// Whether `bytes` more would fit on the journal's file system now: writes them to the
    /// temp file [`PROBE_FILE_NAME`] in the journal directory and deletes it again (recovery
    /// deletes it too, should a crash leave it). Segments are not touched. Fails with
    /// [`JournalError::NoSpace`] when they do not fit. The answer is a moment's: the next
    /// append may still find the file system full.
    pub fn probe_space(&self, bytes: u64) -> Result<()> {
        let shared = self.shared();
        shared.check()?;
        snapshot::probe_space(&shared.dir, bytes)
    }

    /// Why the journal stopped for good, if it did (see [`JournalError::Failed`]).
    pub fn failure(&self) -> Option<String> {
        self.shared().failure.get().map(|m| m.to_string())
    }

    /// A watch on the last durable id.
    pub fn durable_id_watch(&self) -> watch::Receiver<u64> {
        self.inner.durable_rx.clone()
    }

    pub fn stats(&self) -> Stats {
        let s = &self.shared().stats;
        Stats {
            appends: s.appends.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            fsync_us: s.fsync_us.load(Ordering::Relaxed),
        }
    }

    /// The journal directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.shared().dir
    }
}

/// An append in flight: `.await` it, or [`Appending::wait`] from a blocking thread. Resolves
/// to the record's id (a batch: the last id) once durable.
#[must_use = "the append happens anyway, but only the result says whether it is durable"]
pub struct Appending {
    state: AppendingState,
}

enum AppendingState {
    Ready(Option<Result<u64>>),
    Waiting {
        completion: Completion<Result<u64>>,
        shared: Arc<Shared>,
    },
}

impl Appending {
    fn ready(result: Result<u64>) -> Appending {
        Appending {
            state: AppendingState::Ready(Some(result)),
        }
    }

    /// Blocks the calling thread until the append is durable or failed.
    pub fn wait(self) -> Result<u64> {
        match self.state {
            AppendingState::Ready(result) => result.unwrap_or_else(polled_twice),
            AppendingState::Waiting { completion, shared } => completion
                .wait()
                .unwrap_or_else(|| Err(shared.failed_error())),
        }
    }
}

fn polled_twice() -> Result<u64> {
    Err(JournalError::Invalid(
        "an Appending was polled after it completed".to_string(),
    ))
}

impl Future for Appending {
    type Output = Result<u64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            AppendingState::Ready(result) => {
                Poll::Ready(result.take().unwrap_or_else(polled_twice))
            }
            AppendingState::Waiting { completion, shared } => completion
                .poll(cx)
                .map(|r| r.unwrap_or_else(|| Err(shared.failed_error()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}

    #[test]
    fn handles_are_send_and_sync() {
        assert_send_sync::<Journal>();
        assert_send::<Appending>();
        assert_send::<Reader>();
        assert_send::<Follower>();
    }

    #[test]
    fn config_defaults() {
        let c = Config::new("/x");
        assert_eq!(c.segment_bytes_max, 64 << 20);
        assert_eq!(c.record_bytes_max, 16 << 20);
        assert!(c.fsync);
        assert!(c.validate().is_ok());
        let mut bad = c.clone();
        bad.segment_bytes_max = 10;
        assert!(bad.validate().is_err());
        let mut bad = c;
        bad.record_bytes_max = 0;
        assert!(bad.validate().is_err());
    }
}
