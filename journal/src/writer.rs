//! The writer thread: group commit, segment rolling, release and truncation.

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
    error::{JournalError, Result},
    format::{SEGMENT_HEADER_BYTES, encode_record},
    lock,
    segment::{Cursor, INDEX_STRIDE_BYTES, Next, SegInfo, create_segment_file, segment_file_name},
    snapshot::sync_dir,
};

/// A commit is started once this many bytes are buffered, even if more appends are queued.
const COMMIT_BYTES_MAX: usize = 4 * 1024 * 1024;
/// The buffer is shrunk back after a commit that needed more than this.
const BUFFER_KEEP_BYTES: usize = 8 * 1024 * 1024;

pub(crate) enum Records {
    One(Option<u64>, Vec<u8>),
    Many(Vec<(Option<u64>, Vec<u8>)>),
}

pub(crate) enum Cmd {
    Append {
        records: Records,
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
    waiters: Vec<(Completer<Result<u64>>, u64)>,
    pending_records: u64,
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
            pending_records: 0,
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
    /// leaves every reply not yet completed in `waiters`.
    fn round(&mut self, first: Cmd) -> Result<()> {
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            if let Err(e) = self.shared.check() {
                match cmd {
                    Cmd::Append { reply, .. }
                    | Cmd::Release { reply, .. }
                    | Cmd::TruncateAfter { reply, .. } => self.waiters.push((reply, 0)),
                }
                return Err(e);
            }
            match cmd {
                Cmd::Append { records, reply } => match self.append(records) {
                    Ok(Ok(())) => self.waiters.push((reply, self.last_id)),
                    Ok(Err(refusal)) => reply.complete(Err(refusal)),
                    Err(fatal) => {
                        self.waiters.push((reply, 0));
                        return Err(fatal);
                    }
                },
                Cmd::Release { until, reply } => {
                    match self.commit().and_then(|()| self.release(until)) {
                        Ok(result) => reply.complete(result),
                        Err(fatal) => {
                            self.waiters.push((reply, 0));
                            return Err(fatal);
                        }
                    }
                }
                Cmd::TruncateAfter { after, reply } => {
                    match self.commit().and_then(|()| self.truncate_after(after)) {
                        Ok(result) => reply.complete(result),
                        Err(fatal) => {
                            self.waiters.push((reply, 0));
                            return Err(fatal);
                        }
                    }
                }
            }
            if self.buf.len() >= COMMIT_BYTES_MAX {
                break;
            }
            next = self.rx.try_recv().ok();
        }
        self.commit()
    }

    /// Checks and encodes the records of one append; `Ok(Err(_))` refuses the whole append.
    fn append(&mut self, records: Records) -> Outcome<()> {
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
                self.encode(id, &data)?;
                self.pending_records += 1;
            }
            Records::Many(list) => {
                let mut ids = Vec::with_capacity(list.len());
                let mut last = self.last_id;
                for (id, data) in &list {
                    match check(*id, data, last) {
                        Ok(id) => {
                            ids.push(id);
                            last = id;
                        }
                        Err(refusal) => return Ok(Err(refusal)),
                    }
                }
                for (id, (_, data)) in ids.into_iter().zip(&list) {
                    self.encode(id, data)?;
                }
                self.pending_records += list.len() as u64;
            }
        }
        Ok(Ok(()))
    }

    /// Encodes one record into the buffer, sealing the active segment and starting the next
    /// one first when the record would not fit.
    fn encode(&mut self, id: u64, data: &[u8]) -> Result<()> {
        if self.active.is_none() {
            self.active = Some(self.create_segment(id, self.last_id)?);
        }
        let start = self.buf.len();
        encode_record(&mut self.buf, id, data);
        let (written, has_records) = match &self.active {
            Some(a) => (a.written, a.first_record.is_some()),
            None => unreachable!("an active segment was created above"),
        };
        let mut offset = written + start as u64;
        if has_records && written + self.buf.len() as u64 > self.shared.config.segment_bytes_max {
            let tail = self.buf.split_off(start);
            self.write_buffer()?;
            self.sync_active()?;
            self.publish_active();
            self.active = Some(self.create_segment(id, self.last_id)?);
            self.buf = tail;
            offset = SEGMENT_HEADER_BYTES;
        }
        let Some(active) = self.active.as_mut() else {
            unreachable!("an active segment exists here")
        };
        if offset >= active.next_index_at {
            active.new_index.push((id, offset));
            active.next_index_at = offset + INDEX_STRIDE_BYTES;
        }
        active.first_record.get_or_insert(id);
        active.last_record = Some(id);
        self.last_id = id;
        Ok(())
    }

    /// Creates a segment file (temp file with the header, fsync, rename, fsync of the
    /// directory), adds it to the segment list and returns it as the active segment.
    fn create_segment(&mut self, first_id: u64, prev_last_id: u64) -> Result<Active> {
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
        active
            .file
            .write_all_at(&self.buf, active.written)
            .map_err(|e| {
                JournalError::io(
                    format!("writing to {}", segment_path(&self.shared, active.first_id)),
                    e,
                )
            })?;
        active.written += self.buf.len() as u64;
        let stats = &self.shared.stats;
        stats
            .bytes
            .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        self.buf.clear();
        if self.buf.capacity() > BUFFER_KEEP_BYTES {
            self.buf.shrink_to(BUFFER_KEEP_BYTES / 8);
        }
        Ok(())
    }

    fn sync_active(&mut self) -> Result<()> {
        if !self.fsync {
            return Ok(());
        }
        if let Some(active) = &self.active {
            let started = std::time::Instant::now();
            active.file.sync_data().map_err(|e| {
                JournalError::io(
                    format!(
                        "fdatasync of {}",
                        segment_path(&self.shared, active.first_id)
                    ),
                    e,
                )
            })?;
            let stats = &self.shared.stats;
            stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            stats
                .fsync_us
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
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
        self.shared
            .stats
            .appends
            .fetch_add(self.pending_records, Ordering::Relaxed);
        self.pending_records = 0;
        for (reply, id) in self.waiters.drain(..) {
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
            let fresh = create_segment_file(
                &self.shared.dir,
                self.fsync,
                target.prev_last_id + 1,
                target.prev_last_id,
            )?;
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
