//! Failures the crate's unit tests inject into the writer (`ENOSPC` on chosen calls).

use std::{io, sync::Mutex};

use crate::lock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A `write` to the active segment.
    Write,
    /// The creation of a segment file.
    CreateSegment,
}

#[derive(Default)]
pub(crate) struct Faults {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    writes: u32,
    creates: u32,
    partial_bytes: usize,
}

impl Faults {
    /// The next `n` segment writes fail with `ENOSPC` after writing `partial_bytes` of their
    /// buffer.
    pub fn fail_writes(&self, n: u32, partial_bytes: usize) {
        let mut inner = lock(&self.inner);
        inner.writes = n;
        inner.partial_bytes = partial_bytes;
    }

    /// The next `n` segment creations fail with `ENOSPC`.
    pub fn fail_creates(&self, n: u32) {
        lock(&self.inner).creates = n;
    }

    /// The error to fail this call with, if one is due.
    pub fn take(&self, fault: Fault) -> Option<io::Error> {
        let mut inner = lock(&self.inner);
        let left = match fault {
            Fault::Write => &mut inner.writes,
            Fault::CreateSegment => &mut inner.creates,
        };
        if *left == 0 {
            return None;
        }
        *left -= 1;
        Some(io::Error::from(io::ErrorKind::StorageFull))
    }

    /// Bytes of a `len`-byte write that reach the file before it fails.
    pub fn partial_bytes(&self, len: usize) -> usize {
        lock(&self.inner).partial_bytes.min(len)
    }
}
