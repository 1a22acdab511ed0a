//! Helpers shared by the journal's integration tests.
#![allow(dead_code)]

use std::{
    future::Future,
    path::Path,
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Wake, Waker},
    thread::Thread,
    time::{Duration, Instant},
};

use ordo_journal::{Config, Journal, Opened, Record};

/// A temporary directory on the target's disk (not a tmpfs /tmp).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("journal-test-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir under CARGO_TARGET_TMPDIR")
}

/// A config with small segments so that tests cross segment boundaries.
pub fn small_config(dir: &Path) -> Config {
    let mut c = Config::new(dir);
    c.segment_bytes_max = 1024;
    c.record_bytes_max = 4096;
    c
}

pub fn open(config: &Config) -> Opened {
    Journal::open(config.clone()).expect("journal opens")
}

pub fn read_all(journal: &Journal, after: u64) -> Vec<Record> {
    journal
        .read_after(after)
        .expect("reader")
        .collect::<Result<Vec<_>, _>>()
        .expect("records read")
}

pub fn ids(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.id).collect()
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future on the current thread; panics if it takes longer than `limit`.
pub fn block_on<F: Future>(limit: Duration, future: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let deadline = Instant::now() + limit;
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        let now = Instant::now();
        assert!(now < deadline, "future did not complete within {limit:?}");
        std::thread::park_timeout(deadline - now);
    }
}

/// Polls a future once; `None` if it is not ready.
pub fn poll_once<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    match std::pin::Pin::new(future).poll(&mut cx) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}
