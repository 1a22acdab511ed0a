//! The controller while its journal's file system is full.
//!
//! A batch whose append fails with `NoSpace` was never written, so the core rolls back to what
//! is durable (see [`crate::core`]) and an episode starts. During it the core writes nothing:
//! commands and deployments are answered with [`NoSpace`] (HTTP 507) at once, agent events are
//! not taken (the agents keep them until they are released), timers and pending steps wait,
//! reads go on, and commands the durable state already asked for still go to the agents. Every
//! retry interval (doubling from [`RETRY_MS_MIN`] to [`RETRY_MS_MAX`]) the core asks the journal
//! whether [`PROBE_BYTES`] would fit (`Journal::probe_space`, a temp file, not an event); once
//! they do, the episode ends, the agent links reconnect and everything goes on. The episode is
//! logged once when it starts and once when it ends.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// First wait before the core looks for space again.
pub const RETRY_MS_MIN: u64 = 250;
/// Longest wait before the core looks for space again.
pub const RETRY_MS_MAX: u64 = 5_000;
/// Free bytes the journal's file system must have before writes start again.
pub const PROBE_BYTES: u64 = 1 << 20;

/// Why a valid command or deployment was not carried out: its events could not be written.
/// Nothing of it happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no space left for the journal in {}: {cause}; nothing of this was done, and commands \
     work again once space is freed",
    dir.display()
)]
pub struct NoSpace {
    /// The journal directory.
    pub dir: PathBuf,
    /// What failed, as the journal reported it.
    pub cause: String,
}

/// One episode of a full journal file system.
#[derive(Debug)]
pub struct Full {
    pub cause: NoSpace,
    pub since: Instant,
    /// When the core looks for space again.
    pub retry_at: tokio::time::Instant,
    pub retry_ms: u64,
    /// Commands and deployments refused so far.
    pub refused: u64,
}

impl Full {
    /// Starts an episode; logs it.
    pub fn start(cause: NoSpace) -> Full {
        tracing::error!(
            journal_dir = %cause.dir.display(),
            "the journal's file system is full: commands and deployments get 507 until \
             space is freed, reads go on, agents keep their events; {}",
            cause.cause
        );
        Full {
            cause,
            since: Instant::now(),
            retry_at: tokio::time::Instant::now() + Duration::from_millis(RETRY_MS_MIN),
            retry_ms: RETRY_MS_MIN,
            refused: 0,
        }
    }

    /// Still no space: looks again later.
    pub fn still_full(&mut self, cause: NoSpace) {
        self.retry_ms = (self.retry_ms * 2).min(RETRY_MS_MAX);
        self.retry_at = tokio::time::Instant::now() + Duration::from_millis(self.retry_ms);
        tracing::debug!("journal still full: {}", cause.cause);
        self.cause = cause;
    }

    /// Whether it is time to look for space again.
    pub fn probe_due(&self) -> bool {
        tokio::time::Instant::now() >= self.retry_at
    }

    /// Logs the end of the episode.
    pub fn ended(&self) {
        tracing::info!(
            journal_dir = %self.cause.dir.display(),
            refused = self.refused,
            "journal writes work again after {:.1} s",
            self.since.elapsed().as_secs_f64()
        );
    }
}
