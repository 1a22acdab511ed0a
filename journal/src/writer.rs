//! The writer thread: group commit, segment rolling, release and truncation, and going on
//! after the file system ran out of space.
//!
//! Each round takes the queued commands, encodes every append into one buffer and commits it
//! with one `write` and one `fdatasync`; an append's records always land in one segment (a
//! segment is sealed before an append that would not fit, not in the middle of one). When a
//! `write`, or the creation of the next segment, fails with `ENOSPC` or `EDQUOT`, the round is
//! undone: the active segment is cut back to its durable length (the cut is fsynced),
//! everything not yet durable is forgotten (the last id goes back to the last durable one),
//! the appends that are durable are completed and the others fail with
//! [`JournalError::NoSpace`]. Nothing stops: the next append tries again. Any other write
//! error, and every failed fsync (`ENOSPC` included), stops the journal for good.

use std::{
    fs::{self, File, OpenOptions},
    os::unix::fs::FileExt,
    path::Path,
    sync::{Arc, atomic::Ordering, mpsc::Receiver},
};

use tokio_sync::sync::watch;

use crate::{
    Shared,
    completion::Completer,
    error::{JournalError, Result, is_no_space},
    format::{RECORD_FRAME_BYTES, SEGMENT_HEADER_BYTES, encode_record, u32_at},
    lock,
    segment::{Cursor, INDEX_STRIDE_BYTES, Next, SegInfo, create_segment_file, segment_file_name},
    snapshot::sync_dir,
};

/// A commit is started once this many bytes are buffered, even if more appends are queued.
const COMMIT_BYTES_MAX: usize = 4 * 1024 * 1024;
/// The buffer is shrunk back after a commit that needed more than this.
const BUFFER_KEEP_BYTES: usize = 8 * 1024 * 1024;
/// The id a waiter gets when its command was not carried out: never durable.
const UNWRITTEN: u64 = u64::MAX;

pub(crate) enum Records {
    One(Option<u64>, Vec<u8>),
    Many(Vec<(Option<u64>, Vec<u8>)>),
}

pub(crate) enum Cmd {
    Append {
        records: Records,
        /// Refuse the append unless the last accepted id is this one.
        after: Option<u64>,
        reply: Completer<Result<u64>>,
    },
    Release {
        until: u64,
        reply: Completer<Result<u64>>,
    },
    TruncateAfter {
        after: u64,
        reply: Completer<Result<u64>>,
    },
}

/// The segment being appended to: always the last one in `Shared::segments`.
pub(crate) struct Active {
    pub file: File,
    pub first_id: u64,
    /// Bytes written to the file (durable once the next commit's fsync returns).
    pub written: u64,
    pub first_record: Option<u64>,
    pub last_record: Option<u64>,
    /// Offset at or after which the next record gets a sparse-index entry.
    pub next_index_at: u64,
    /// Index entries not yet published.
    pub new_index: Vec<(u64, u64)>,
}

impl Active {
    pub fn open(path: &Path, info: &SegInfo) -> Result<Active> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| JournalError::io(format!("opening {}", path.display()), e))?;
        Ok(Active {
            file,
            first_id: info.first_id,
            written: info.durable_len,
            first_record: info.first_record,
            last_record: info.last_record,
            next_index_at: info
                .index
                .last()
                .map_or(SEGMENT_HEADER_BYTES, |&(_, off)| off + INDEX_STRIDE_BYTES),
            new_index: Vec::new(),
        })
    }

    /// Forgets what was written or buffered after the durable state `info` describes.
    fn reset(&mut self, info: &SegInfo) {
        debug_assert_eq!(info.first_id, self.first_id);
        self.written = info.durable_len;
        self.first_record = info.first_record;
        self.last_record = info.last_record;
        self.next_index_at = info
            .index
            .last()
            .map_or(SEGMENT_HEADER_BYTES, |&(_, off)| off + INDEX_STRIDE_BYTES);
        self.new_index.clear();
    }
}

/// Fatal errors stop the writer; `Ok(Err(_))` is a refusal that leaves the journal as it was.
type Outcome<T> = Result<Result<T>>;

pub(crate) struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Cmd>,
    durable_tx: watch::Sender<u64>,
    active: Option<Active>,
    /// Last id accepted (buffered, written or durable).
    last_id: u64,
    buf: Vec<u8>,
    /// Replies to complete once the id with them is durable.
    waiters: Vec<(Completer<Result<u64>>, u64)>,
    /// Records in `buf`.
    buf_records: u64,
    /// Records written but not yet fsynced.
    written_records: u64,
    fsync: bool,
}

impl Writer {
    pub fn new(
        shared: Arc<Shared>,
        rx: Receiver<Cmd>,
        durable_tx: watch::Sender<u64>,
        active: Option<Active>,
        last_id: u64,
    ) -> Writer {
        let fsync = shared.config.fsync;
        Writer {
            shared,
            rx,
            durable_tx,
            active,
            last_id,
            buf: Vec::new(),
            waiters: Vec::new(),
            buf_records: 0,
            written_records: 0,
            fsync,
        }
    }

    pub fn run(mut self) {
        let _guard = PanicGuard(self.shared.clone());
        while let Ok(cmd) = self.rx.recv() {
            if let Err(e) = self.round(cmd) {
                self.shared.fail(e.to_string());
                for (reply, _) in self.waiters.drain(..) {
                    reply.complete(Err(self.shared.failed_error()));
                }
                return;
            }
        }
    }

    /// Handles `first` and everything queued behind it, then commits once. A fatal error
    /// leaves every reply not yet completed in `waiters`; running out of space undoes the
    /// round (see the module docs) and is not an error.
    fn round(&mut self, first: Cmd) -> Result<()> {
        let mut next = Some(first);
        let mut stopped = None;
        while let Some(cmd) = next.take() {
            if let Err(e) = self.shared.check() {
                match cmd {
                    Cmd::Append { reply, .. }
                    | Cmd::Release { reply, .. }
                    | Cmd::TruncateAfter { reply, .. } => self.waiters.push((reply, UNWRITTEN)),
                }
                return Err(e);
            }
            let failed = match cmd {
                Cmd::Append {
                    records,
                    after,
                    reply,
                } => match self.append(records, after) {
                    Ok(Ok(())) => {
                        self.waiters.push((reply, self.last_id));
                        None
                    }
                    Ok(Err(refusal)) => {
                        reply.complete(Err(refusal));
                        None
                    }
                    Err(e) => Some((reply, e)),
                },
                Cmd::Release { until, reply } => {
                    match self.commit().and_then(|()| self.release(until)) {
                        Ok(result) => {
                            reply.complete(result);
                            None
                        }
                        Err(e) => Some((reply, e)),
                    }
                }
                Cmd::TruncateAfter { after, reply } => {
                    match self.commit().and_then(|()| self.truncate_after(after)) {
                        Ok(result) => {
                            reply.complete(result);
                            None
                        }
                        Err(e) => Some((reply, e)),
                    }
                }
            };
            if let Some((reply, e)) = failed {
                self.waiters.push((reply, UNWRITTEN));
                stopped = Some(e);
                break;
            }
            if self.buf.len() >= COMMIT_BYTES_MAX {
                break;
            }
            next = self.rx.try_recv().ok();
        }
        let result = match stopped {
            Some(e) => Err(e),
            None => self.commit(),
        };
        match result {
            Err(JournalError::NoSpace { dir, reason }) => self.undo_round(dir, reason),
            other => other,
        }
    }

    /// After a write ran out of space: cuts the active segment back to its durable length,
    /// forgets everything not durable, completes the waiters whose records are durable and
    /// fails the others with [`JournalError::NoSpace`].
    fn undo_round(&mut self, dir: std::path::PathBuf, reason: String) -> Result<()> {
        self.buf.clear();
        self.buf_records = 0;
        self.written_records = 0;
        if let Some(active) = self.active.as_mut() {
            let info = self.shared.segments().last().cloned();
            let Some(info) = info else {
                unreachable!("the active segment is always in the segment list")
            };
            // Every write that succeeded was fsynced and published before anything else ran,
            // so the published length is where the durable bytes end.
            assert_eq!(
                (info.first_id, info.durable_len),
                (active.first_id, active.written),
                "the active segment's durable length is its published length"
            );
            let path = &info.path;
            active.file.set_len(info.durable_len).map_err(|e| {
                JournalError::io(
                    format!(
                        "cutting {} back to its durable length {} after running out of space",
                        path.display(),
                        info.durable_len
                    ),
                    e,
                )
            })?;
            if self.fsync {
                active.file.sync_all().map_err(|e| {
                    JournalError::io(
                        format!(
                            "fsync of {} after cutting it back to {} bytes",
                            path.display(),
                            info.durable_len
                        ),
                        e,
                    )
                })?;
                self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            }
            active.reset(&info);
        }
        self.last_id = {
            let segments = self.shared.segments();
            match segments.last() {
                Some(s) => s.last_id(),
                None => self.shared.last_durable.load(Ordering::Acquire),
            }
        };
        self.publish_last_id();
        let durable = self.last_id;
        for (reply, id) in self.waiters.drain(..) {
            if id <= durable {
                reply.complete(Ok(id));
            } else {
                reply.complete(Err(JournalError::NoSpace {
                    dir: dir.clone(),
                    reason: reason.clone(),
                }));
            }
        }
        Ok(())
    }

    /// Checks and encodes the records of one append; `Ok(Err(_))` refuses the whole append.
    fn append(&mut self, records: Records, after: Option<u64>) -> Outcome<()> {
        if let Some(after) = after
            && after != self.last_id
        {
            return Ok(Err(JournalError::Discontinuous {
                after,
                last: self.last_id,
            }));
        }
        let max = self.shared.config.record_bytes_max;
        let check = |id: Option<u64>, data: &[u8], last: u64| -> Result<u64> {
            if data.len() as u64 > u64::from(max) {
                return Err(JournalError::RecordTooLarge {
                    bytes: data.len() as u64,
                    max,
                });
            }
            match id {
                Some(id) if id <= last => Err(JournalError::IdNotIncreasing { id, last }),
                Some(id) => Ok(id),
                None => last.checked_add(1).ok_or_else(|| {
                    JournalError::Invalid("the event id space (u64) is exhausted".to_string())
                }),
            }
        };
        // All records are checked before any is encoded: a batch is all-or-nothing.
        match records {
            Records::One(id, data) => {
                let id = match check(id, &data, self.last_id) {
                    Ok(id) => id,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                self.encode(&[(id, &data)])?;
            }
            Records::Many(list) => {
                let mut checked = Vec::with_capacity(list.len());
                let mut last = self.last_id;
                for (id, data) in &list {
                    match check(*id, data, last) {
                        Ok(id) => {
                            checked.push((id, data.as_slice()));
                            last = id;
                        }
                        Err(refusal) => return Ok(Err(refusal)),
                    }
                }
                self.encode(&checked)?;
            }
        }
        Ok(Ok(()))
    }

    /// Encodes the records of one append into the buffer. When they would not fit in the
    /// active segment, it is sealed first (what is buffered is written and fsynced) and the
    /// next segment is started, so that an append never spans two segments.
    fn encode(&mut self, records: &[(u64, &[u8])]) -> Result<()> {
        let Some(&(first, _)) = records.first() else {
            return Ok(());
        };
        let needs_new = match &self.active {
            None => true,
            // An empty segment named above this id (left by an undone round) is replaced.
            Some(a) => a.first_record.is_none() && a.first_id > first,
        };
        if needs_new {
            self.replace_active(first)?;
        }
        let mut start = self.buf.len();
        for &(id, data) in records {
            encode_record(&mut self.buf, id, data);
        }
        let (written, has_records) = match &self.active {
            Some(a) => (a.written, a.first_record.is_some()),
            None => unreachable!("an active segment was created above"),
        };
        let mut base = written + start as u64;
        if has_records && written + self.buf.len() as u64 > self.shared.config.segment_bytes_max {
            let tail = self.buf.split_off(start);
            self.write_buffer()?;
            self.sync_active()?;
            self.publish_active();
            self.active = Some(self.create_segment(first, self.last_id)?);
            self.buf = tail;
            base = SEGMENT_HEADER_BYTES;
            start = 0;
        }
        let Some(active) = self.active.as_mut() else {
            unreachable!("an active segment exists here")
        };
        // The records' places, from the frames just encoded at `buf[start..]`.
        let mut at = start;
        for &(id, _) in records {
            let offset = base + (at - start) as u64;
            at += RECORD_FRAME_BYTES + u32_at(&self.buf, at) as usize;
            if offset >= active.next_index_at {
                active.new_index.push((id, offset));
                active.next_index_at = offset + INDEX_STRIDE_BYTES;
            }
            active.first_record.get_or_insert(id);
            active.last_record = Some(id);
            self.last_id = id;
        }
        self.buf_records += records.len() as u64;
        Ok(())
    }

    /// Starts a segment named `first_id` as the active one: the first segment, or in place of
    /// an empty active segment whose name is above `first_id`.
    fn replace_active(&mut self, first_id: u64) -> Result<()> {
        let old = self.active.as_ref().map(|a| a.first_id);
        let prev_last_id = match old {
            Some(_) => match self.shared.segments().last() {
                Some(info) => info.prev_last_id,
                None => unreachable!("the active segment is always in the segment list"),
            },
            None => self.last_id,
        };
        debug_assert!(
            self.buf.is_empty(),
            "nothing is buffered for an empty segment"
        );
        let fresh = self.create_segment(first_id, prev_last_id)?;
        if let Some(old_first) = old {
            let mut segments = self.shared.segments();
            let Some(new_info) = segments.pop() else {
                unreachable!("create_segment pushed the new segment")
            };
            if let Some(old_info) = segments.pop() {
                debug_assert_eq!(old_info.first_id, old_first);
                remove_file(&old_info.path)?;
            }
            segments.push(new_info);
            drop(segments);
            if self.fsync {
                sync_dir(&self.shared.dir)?;
            }
        }
        self.active = Some(fresh);
        Ok(())
    }

    /// Creates a segment file (temp file with the header, fsync, rename, fsync of the
    /// directory), adds it to the segment list and returns it as the active segment.
    fn create_segment(&mut self, first_id: u64, prev_last_id: u64) -> Result<Active> {
        #[cfg(test)]
        if let Some(e) = self.shared.faults.take(crate::faults::Fault::CreateSegment) {
            return Err(JournalError::NoSpace {
                dir: self.shared.dir.clone(),
                reason: format!("creating the segment for id {first_id}: {e}"),
            });
        }
        let info = create_segment_file(&self.shared.dir, self.fsync, first_id, prev_last_id)?;
        self.shared
            .stats
            .bytes
            .fetch_add(SEGMENT_HEADER_BYTES, Ordering::Relaxed);
        if self.fsync {
            self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        let active = Active::open(&info.path, &info)?;
        self.shared.segments().push(info);
        Ok(active)
    }

    fn write_buffer(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let Some(active) = self.active.as_mut() else {
            unreachable!("bytes are only buffered for an active segment")
        };
        let written = write_at(&self.shared, &active.file, &self.buf, active.written);
        written.map_err(|e| {
            let path = segment_path(&self.shared, active.first_id);
            if is_no_space(&e) {
                JournalError::NoSpace {
                    dir: self.shared.dir.clone(),
                    reason: format!(
                        "writing {} bytes to {path} at offset {}: {e}",
                        self.buf.len(),
                        active.written
                    ),
                }
            } else {
                JournalError::io(format!("writing to {path}"), e)
            }
        })?;
        active.written += self.buf.len() as u64;
        let stats = &self.shared.stats;
        stats
            .bytes
            .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        self.written_records += std::mem::take(&mut self.buf_records);
        self.buf.clear();
        if self.buf.capacity() > BUFFER_KEEP_BYTES {
            self.buf.shrink_to(BUFFER_KEEP_BYTES / 8);
        }
        Ok(())
    }

    /// Makes what was written durable (`fdatasync`). A failure is fatal whatever its cause:
    /// after a failed fsync the kernel may have dropped the dirty pages, so neither a retry
    /// nor the page cache says what is on the disk. `ENOSPC` here (delayed allocation found no
    /// room for data already written) is no different, and the message says so.
    fn sync_active(&mut self) -> Result<()> {
        if self.fsync
            && let Some(active) = &self.active
        {
            let started = std::time::Instant::now();
            active.file.sync_data().map_err(|e| {
                let path = segment_path(&self.shared, active.first_id);
                let context = if is_no_space(&e) {
                    format!(
                        "fdatasync of {path} found no space for data already written (the file \
                         system allocates it late); that data may be lost, so the journal stops \
                         rather than retry the fsync"
                    )
                } else {
                    format!("fdatasync of {path}")
                };
                JournalError::io(context, e)
            })?;
            let stats = &self.shared.stats;
            stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            stats
                .fsync_us
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        self.shared
            .stats
            .appends
            .fetch_add(std::mem::take(&mut self.written_records), Ordering::Relaxed);
        Ok(())
    }

    /// Makes the active segment's durable state visible to readers.
    fn publish_active(&mut self) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let mut segments = self.shared.segments();
        if let Some(info) = segments.last_mut() {
            debug_assert_eq!(info.first_id, active.first_id);
            info.durable_len = active.written;
            info.first_record = active.first_record;
            info.last_record = active.last_record;
            info.index.append(&mut active.new_index);
        }
    }

    /// Writes and fsyncs everything buffered, publishes it and completes the waiters.
    fn commit(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            self.write_buffer()?;
            self.sync_active()?;
            self.publish_active();
        }
        self.publish_last_id();
        for (reply, id) in self.waiters.drain(..) {
            debug_assert!(id != UNWRITTEN, "a command that failed is never committed");
            reply.complete(Ok(id));
        }
        Ok(())
    }

    fn publish_last_id(&mut self) {
        let last = self.last_id;
        self.shared.last_durable.store(last, Ordering::Release);
        self.durable_tx.send_if_modified(|v| {
            let changed = *v != last;
            *v = last;
            changed
        });
    }

    fn release(&mut self, until: u64) -> Outcome<u64> {
        let doomed: Vec<SegInfo> = {
            let mut segments = self.shared.segments();
            let mut n = 0;
            while n + 1 < segments.len() && segments[n + 1].prev_last_id <= until {
                n += 1;
            }
            segments.drain(..n).collect()
        };
        for s in &doomed {
            remove_file(&s.path)?;
        }
        if !doomed.is_empty() && self.fsync {
            sync_dir(&self.shared.dir)?;
        }
        Ok(Ok(doomed.len() as u64))
    }

    fn truncate_after(&mut self, after: u64) -> Outcome<u64> {
        if after >= self.last_id {
            return Ok(Ok(self.last_id));
        }
        let (k, doomed) = {
            let segments = self.shared.segments();
            let Some(oldest) = segments.first() else {
                return Ok(Ok(self.last_id));
            };
            if after < oldest.prev_last_id {
                return Ok(Err(JournalError::Invalid(format!(
                    "cannot truncate after id {after}: records up to id {} are released",
                    oldest.prev_last_id
                ))));
            }
            let k = segments.partition_point(|s| s.prev_last_id <= after) - 1;
            (k, segments[k + 1..].to_vec())
        };
        // Readers learn about the truncation before any file changes.
        {
            let mut truncations = lock(&self.shared.truncations);
            let epoch = self.shared.epoch.load(Ordering::SeqCst) + 1;
            truncations.push((epoch, after));
            self.shared.epoch.store(epoch, Ordering::SeqCst);
        }
        self.active = None;
        // Newest first, so that a crash leaves a journal that is a prefix of the old one.
        for s in doomed.iter().rev() {
            self.shared.segments().pop();
            remove_file(&s.path)?;
        }
        if !doomed.is_empty() && self.fsync {
            sync_dir(&self.shared.dir)?;
        }
        let target = self.shared.segments()[k].clone();
        let (cut, first_kept, last_kept) = find_cut(&target, after)?;
        let info = if first_kept.is_none() && target.first_id != target.prev_last_id + 1 {
            // Nothing stays, and the name would no longer be the segment's first id: replace it
            // by an empty segment named after the next id.
            // Segments are already gone; a failure here (lack of space included) is fatal.
            let fresh = create_segment_file(
                &self.shared.dir,
                self.fsync,
                target.prev_last_id + 1,
                target.prev_last_id,
            )
            .map_err(|e| match e {
                JournalError::NoSpace { dir, reason } => JournalError::Invalid(format!(
                    "truncation could not start a segment in {}: {reason}",
                    dir.display()
                )),
                other => other,
            })?;
            remove_file(&target.path)?;
            if self.fsync {
                sync_dir(&self.shared.dir)?;
            }
            fresh
        } else {
            let file = OpenOptions::new()
                .write(true)
                .open(&target.path)
                .map_err(|e| JournalError::io(format!("opening {}", target.path.display()), e))?;
            file.set_len(cut).map_err(|e| {
                JournalError::io(format!("truncating {}", target.path.display()), e)
            })?;
            if self.fsync {
                file.sync_all().map_err(|e| {
                    JournalError::io(format!("fsync of {}", target.path.display()), e)
                })?;
            }
            let mut info = target;
            info.durable_len = cut;
            info.first_record = first_kept;
            info.last_record = last_kept;
            info.index.retain(|&(_, off)| off < cut);
            info
        };
        self.active = Some(Active::open(&info.path, &info)?);
        self.shared.segments()[k] = info;
        self.last_id = last_kept.unwrap_or(self.shared.segments()[k].prev_last_id);
        self.publish_last_id();
        Ok(Ok(self.last_id))
    }
}

/// Marks the journal failed if the writer thread panics, before the replies it holds are
/// dropped (locals drop before the `Writer` argument).
struct PanicGuard(Arc<Shared>);

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .fail("the journal writer thread panicked".to_string());
        }
    }
}

/// `write_all_at`, or (in unit tests) the failure a test asked for.
fn write_at(shared: &Shared, file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    #[cfg(test)]
    if let Some(e) = shared.faults.take(crate::faults::Fault::Write) {
        // A full disk often takes part of a write before it refuses the rest.
        let part = shared.faults.partial_bytes(buf.len());
        file.write_all_at(&buf[..part], offset)?;
        return Err(e);
    }
    #[cfg(not(test))]
    let _ = shared;
    file.write_all_at(buf, offset)
}

fn segment_path(shared: &Shared, first_id: u64) -> String {
    shared
        .dir
        .join(segment_file_name(first_id))
        .display()
        .to_string()
}

pub(crate) fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(JournalError::io(format!("deleting {}", path.display()), e)),
    }
}

/// Finds where to cut `seg` so that only records with ids `<= after` stay: returns the offset
/// and the first and last ids that stay.
fn find_cut(seg: &SegInfo, after: u64) -> Result<(u64, Option<u64>, Option<u64>)> {
    let file = File::open(&seg.path)
        .map_err(|e| JournalError::io(format!("opening {}", seg.path.display()), e))?;
    let start = seg.seek_offset(after, SEGMENT_HEADER_BYTES);
    let mut cursor = Cursor::new(file, seg.path.to_path_buf(), start, seg.durable_len);
    let first_kept = seg.first_record.filter(|&id| id <= after);
    let mut last_kept = None;
    loop {
        match cursor
            .next_record()
            .map_err(|e| JournalError::io(format!("reading {}", seg.path.display()), e))?
        {
            Next::Record { offset, id, .. } => {
                if id > after {
                    return Ok((offset, first_kept, last_kept));
                }
                last_kept = Some(id);
            }
            Next::End => return Ok((seg.durable_len, first_kept, last_kept)),
            Next::Invalid { offset, reason } | Next::Undecodable { offset, reason } => {
                return Err(JournalError::Corrupt {
                    file: seg.path.to_path_buf(),
                    offset,
                    reason,
                });
            }
        }
    }
}
