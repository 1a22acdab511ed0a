//! Reading durable records: a blocking iterator and an async follower.

use std::{
    fs::File,
    io,
    sync::{Arc, atomic::Ordering},
};

use tokio_sync::sync::watch;

use crate::{
    Record, Shared,
    error::{JournalError, Result},
    format::SEGMENT_HEADER_BYTES,
    lock,
    segment::{Cursor, Next, SegInfo},
};

/// Where the durable data ended when the reader last looked: a segment and a byte offset.
#[derive(Debug, Clone, Copy)]
struct Limit {
    segment: u64,
    offset: u64,
}

struct OpenSegment {
    first_id: u64,
    cursor: Cursor,
}

/// Iterator over durable records with ids greater than a given id, oldest first. It reads
/// up to the durable end as of its creation. Each item is a record or the error that ended
/// the iteration (corruption, released segments, a truncation of returned records).
pub struct Reader {
    shared: Arc<Shared>,
    epoch: u64,
    /// Records with ids `<= after` are skipped (they were returned or not asked for).
    after: u64,
    limit: Option<Limit>,
    segment: Option<OpenSegment>,
    /// First id of a segment read to its end; the next one must come after it.
    finished_segment: Option<u64>,
    done: bool,
}

enum OpenOutcome {
    Yes,
    /// Nothing more within the limit.
    Nothing,
    /// The segment went away (release or truncation); look again.
    Retry,
}

fn capture_limit(segments: &[SegInfo]) -> Option<Limit> {
    segments.last().map(|s| Limit {
        segment: s.first_id,
        offset: s.durable_len,
    })
}

impl Reader {
    pub(crate) fn new(shared: Arc<Shared>, after: u64) -> Result<Reader> {
        shared.check()?;
        let epoch = shared.epoch.load(Ordering::SeqCst);
        let limit = {
            let segments = shared.segments();
            if let Some(oldest) = segments.first()
                && after < oldest.prev_last_id
            {
                return Err(JournalError::Released {
                    after,
                    released: oldest.prev_last_id,
                });
            }
            capture_limit(&segments)
        };
        Ok(Reader {
            shared,
            epoch,
            after,
            limit,
            segment: None,
            finished_segment: None,
            done: false,
        })
    }

    /// Moves the limit to the current durable end (used by [`Follower`]).
    fn refresh(&mut self) {
        let segments = self.shared.segments();
        self.limit = capture_limit(&segments);
        if let (Some(open), Some(limit)) = (&mut self.segment, self.limit) {
            let end = if open.first_id == limit.segment {
                Some(limit.offset)
            } else {
                segments
                    .binary_search_by_key(&open.first_id, |s| s.first_id)
                    .ok()
                    .map(|k| segments[k].durable_len)
            };
            if let Some(end) = end {
                open.cursor.set_end(end);
            }
        }
    }

    /// Notices a `truncate_after` since the last look. Fine if it removed nothing this reader
    /// returned (the reader then looks up its position again); an error otherwise.
    fn check_epoch(&mut self) -> Result<()> {
        let now = self.shared.epoch.load(Ordering::SeqCst);
        if now == self.epoch {
            return Ok(());
        }
        let lowest = lock(&self.shared.truncations)
            .iter()
            .filter(|&&(epoch, _)| epoch > self.epoch && epoch <= now)
            .map(|&(_, after)| after)
            .min();
        if let Some(truncated_after) = lowest
            && truncated_after < self.after
        {
            return Err(JournalError::Truncated {
                after: self.after,
                truncated_after,
            });
        }
        self.epoch = now;
        self.segment = None;
        self.finished_segment = None;
        self.limit = capture_limit(&self.shared.segments());
        Ok(())
    }

    fn open_segment(&mut self) -> Result<OpenOutcome> {
        let Some(limit) = self.limit else {
            return Ok(OpenOutcome::Nothing);
        };
        let (first_id, path, start, end) = {
            let segments = self.shared.segments();
            let Some(oldest) = segments.first() else {
                return Ok(OpenOutcome::Nothing);
            };
            if self.after < oldest.prev_last_id {
                return Err(JournalError::Released {
                    after: self.after,
                    released: oldest.prev_last_id,
                });
            }
            let k = segments.partition_point(|s| s.prev_last_id <= self.after) - 1;
            let s = &segments[k];
            if let Some(finished) = self.finished_segment
                && s.first_id <= finished
            {
                let next = segments.get(k + 1).unwrap_or(s);
                return Err(JournalError::Corrupt {
                    file: next.path.to_path_buf(),
                    offset: 24,
                    reason: format!(
                        "the segment before ends at or below id {} but this one says it \
                         follows id {}",
                        self.after, next.prev_last_id
                    ),
                });
            }
            if s.first_id > limit.segment {
                return Ok(OpenOutcome::Nothing);
            }
            let end = if s.first_id == limit.segment {
                limit.offset
            } else {
                s.durable_len
            };
            (
                s.first_id,
                s.path.clone(),
                s.seek_offset(self.after, SEGMENT_HEADER_BYTES),
                end,
            )
        };
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let still_listed = self
                    .shared
                    .segments()
                    .iter()
                    .any(|s| s.first_id == first_id);
                if still_listed {
                    return Err(JournalError::io(format!("opening {}", path.display()), e));
                }
                return Ok(OpenOutcome::Retry);
            }
            Err(e) => return Err(JournalError::io(format!("opening {}", path.display()), e)),
        };
        self.segment = Some(OpenSegment {
            first_id,
            cursor: Cursor::new(file, path.to_path_buf(), start, end),
        });
        Ok(OpenOutcome::Yes)
    }

    fn next_record(&mut self) -> Option<Result<Record>> {
        let mut retries = 0u32;
        loop {
            if self.done {
                return None;
            }
            if let Err(e) = self.check_epoch() {
                self.done = true;
                return Some(Err(e));
            }
            let Some(open) = self.segment.as_mut() else {
                match self.open_segment() {
                    Ok(OpenOutcome::Yes) => {}
                    Ok(OpenOutcome::Nothing) => return None,
                    Ok(OpenOutcome::Retry) if retries < 8 => retries += 1,
                    Ok(OpenOutcome::Retry) => {
                        self.done = true;
                        return Some(Err(JournalError::Invalid(
                            "segments kept disappearing while opening them".to_string(),
                        )));
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                continue;
            };
            let next = match open.cursor.next_record() {
                Ok(next) => next,
                Err(e) => {
                    self.done = true;
                    let context = format!("reading {}", open.cursor.path().display());
                    return Some(Err(JournalError::io(context, e)));
                }
            };
            match next {
                Next::Record { id, data, .. } => {
                    if id <= self.after {
                        continue;
                    }
                    let data = open.cursor.data(data).to_vec();
                    // The bytes were read before this check, so an unchanged epoch means they
                    // were not touched by a truncation.
                    if self.shared.epoch.load(Ordering::SeqCst) != self.epoch {
                        continue;
                    }
                    self.after = id;
                    return Some(Ok(Record { id, data }));
                }
                Next::End => {
                    if self.limit.is_some_and(|l| l.segment == open.first_id) {
                        return None;
                    }
                    self.finished_segment = Some(open.first_id);
                    self.segment = None;
                }
                Next::Invalid { offset, reason } | Next::Undecodable { offset, reason } => {
                    if self.shared.epoch.load(Ordering::SeqCst) != self.epoch {
                        continue;
                    }
                    self.done = true;
                    return Some(Err(JournalError::Corrupt {
                        file: open.cursor.path().to_path_buf(),
                        offset,
                        reason,
                    }));
                }
            }
        }
    }
}

impl Iterator for Reader {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

/// Follows the journal: yields every durable record after an id, then waits for new ones.
/// Ends (`None`) when the journal closes; an error is yielded once and ends it too.
pub struct Follower {
    shared: Arc<Shared>,
    durable: watch::Receiver<u64>,
    after: u64,
    reader: Option<Reader>,
    finished: bool,
}

impl Follower {
    pub(crate) fn new(shared: Arc<Shared>, durable: watch::Receiver<u64>, after: u64) -> Follower {
        Follower {
            shared,
            durable,
            after,
            reader: None,
            finished: false,
        }
    }

    /// The next durable record, waiting for it if needed.
    pub async fn next(&mut self) -> Option<Result<Record>> {
        loop {
            if self.finished {
                return None;
            }
            if let Err(e) = self.shared.check() {
                return self.finish(e);
            }
            if let Some(item) = self.try_next() {
                return self.deliver(item);
            }
            // Mark the current durable id as seen before looking at the durable end again,
            // so that anything published after the look wakes the wait below.
            self.durable.borrow_and_update();
            if let Some(reader) = &mut self.reader {
                reader.refresh();
            }
            if let Some(item) = self.try_next() {
                return self.deliver(item);
            }
            if self.durable.changed().await.is_err() {
                // The writer stopped: the journal closed, or failed.
                return match self.shared.check() {
                    Err(e) => self.finish(e),
                    Ok(()) => {
                        self.finished = true;
                        None
                    }
                };
            }
        }
    }

    fn try_next(&mut self) -> Option<Result<Record>> {
        let reader = match &mut self.reader {
            Some(reader) => reader,
            None => match Reader::new(self.shared.clone(), self.after) {
                Ok(reader) => self.reader.insert(reader),
                Err(e) => return Some(Err(e)),
            },
        };
        reader.next()
    }

    fn deliver(&mut self, item: Result<Record>) -> Option<Result<Record>> {
        match item {
            Ok(record) => {
                self.after = record.id;
                Some(Ok(record))
            }
            Err(e) => self.finish(e),
        }
    }

    fn finish(&mut self, e: JournalError) -> Option<Result<Record>> {
        self.finished = true;
        Some(Err(e))
    }

    /// Id of the last record this follower returned (or the id it started after).
    pub fn position(&self) -> u64 {
        self.after
    }
}
