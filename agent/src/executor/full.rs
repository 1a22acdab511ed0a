//! The agent while its journal's file system is full: one episode, from the first append that
//! failed with `NoSpace` until the records held since are durable.
//!
//! During an episode the executor writes nothing: running jobs go on, and every record they
//! (and the orders they move) make is held in memory, in id order ([`super::unwritten`]); its
//! effects (an answer, a spawn, a release) wait for it as always. No start is journaled, since
//! a start must be durable before its spawn: orders stay ready and start when the episode
//! ends (a job whose start was durable before the failure is still spawned).
//! Controller commands and resets are refused with [`Full::refusal`] (the controller logs the
//! reason; nothing of the command happened), a `Couple` is answered at once from what is
//! durable (or refused when it would need a record), and when the episode ends with commands
//! refused, the sessions are ended so that the controller couples again and sends what its
//! state still waits for. Reads (`/meta`, `/health`, `GetMeta`, the event stream of what is
//! durable) go on.
//!
//! Every retry interval (doubling from [`RETRY_MS_MIN`] to [`RETRY_MS_MAX`]) the executor asks
//! the journal whether the held bytes (plus [`PROBE_BYTES_MIN`], at most [`PROBE_BYTES_MAX`])
//! would fit (`Journal::probe_space`); once they do, it appends the held records again, in
//! batches of at most [`REWRITE_BATCH_BYTES_MAX`], and the episode ends when the last of them
//! is durable. An episode is logged once when its cause is known, once more if the held
//! records reach `pending_events_bytes_max`, and once when it ends.

use std::time::{Duration, Instant};

/// First wait before the executor looks for space again.
pub const RETRY_MS_MIN: u64 = 250;
/// Longest wait before the executor looks for space again.
pub const RETRY_MS_MAX: u64 = 5_000;
/// Free bytes the probe asks for beyond the held records.
pub const PROBE_BYTES_MIN: u64 = 1 << 20;
/// Most bytes one probe writes.
pub const PROBE_BYTES_MAX: u64 = 16 << 20;
/// Largest batch of held records appended at once when space is back.
pub const REWRITE_BATCH_BYTES_MAX: u64 = 4 << 20;

/// What the episode is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trying {
    /// Waiting until `retry_at`.
    Wait,
    /// `probe_space` runs.
    Probing,
    /// The held records up to `until` are being appended again.
    Writing { until: u64 },
}

/// One episode of a full journal file system.
#[derive(Debug)]
pub struct Full {
    /// `no space in <dir>: <reason>`, once an append said so.
    cause: Option<String>,
    since: Instant,
    pub retry_at: tokio::time::Instant,
    retry_ms: u64,
    pub trying: Trying,
    /// Controller commands (and resets, couples) refused so far.
    pub refused: u64,
    /// The held records reached `pending_events_bytes_max` (logged once).
    pub over_bound: bool,
    /// Records and bytes appended again by the last rewrite.
    pub rewritten: (u64, u64),
}

impl Full {
    /// Starts an episode; `cause` is `None` when the first failure seen was an append
    /// queued behind the one that ran out of space.
    pub fn start(cause: Option<String>, held_bytes: u64, bound: u64) -> Full {
        let mut full = Full {
            cause: None,
            since: Instant::now(),
            retry_at: tokio::time::Instant::now() + Duration::from_millis(RETRY_MS_MIN),
            retry_ms: RETRY_MS_MIN,
            trying: Trying::Wait,
            refused: 0,
            over_bound: false,
            rewritten: (0, 0),
        };
        if let Some(cause) = cause {
            full.learn(cause, held_bytes, bound);
        }
        full
    }

    /// Takes the cause of the episode from a failure; the first one known is logged.
    pub fn learn(&mut self, cause: String, held_bytes: u64, bound: u64) {
        if self.cause.is_none() {
            tracing::error!(
                held_bytes,
                pending_events_bytes_max = bound,
                "journal: {cause}; running jobs go on and the events not written are held in \
                 memory, in order, until space returns; no new job starts and controller \
                 commands are refused until then"
            );
        } else {
            tracing::debug!("journal still full: {cause}");
        }
        self.cause = Some(cause);
    }

    /// What the agent says about its journal: `no space in <dir>: <reason>`.
    pub fn cause(&self) -> &str {
        self.cause
            .as_deref()
            .unwrap_or("no space: an append failed for lack of space")
    }

    /// The answer to a command refused during the episode.
    pub fn refusal(&self, what: &str) -> String {
        format!(
            "journal: {}; the agent refuses {what} until space returns, and then asks to be \
             coupled again",
            self.cause()
        )
    }

    /// Still no space (or a rewrite failed): looks again later.
    pub fn still_full(&mut self) {
        self.retry_ms = (self.retry_ms * 2).min(RETRY_MS_MAX);
        self.retry_at = tokio::time::Instant::now() + Duration::from_millis(self.retry_ms);
        self.trying = Trying::Wait;
    }

    /// When to probe, if the episode waits for that.
    pub fn probe_at(&self) -> Option<tokio::time::Instant> {
        (self.trying == Trying::Wait).then_some(self.retry_at)
    }

    /// Bytes to ask the journal's file system for, to write `held_bytes` again.
    pub fn probe_bytes(held_bytes: u64) -> u64 {
        held_bytes
            .saturating_add(PROBE_BYTES_MIN)
            .min(PROBE_BYTES_MAX)
    }

    /// Logs the end of the episode.
    pub fn ended(&self) {
        tracing::info!(
            held_records = self.rewritten.0,
            held_bytes = self.rewritten.1,
            refused = self.refused,
            "journal writes work again after {:.1} s: the held events are written, jobs start again",
            self.since.elapsed().as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn backoff_doubles_up_to_its_bound_and_probes_are_bounded() {
        let mut full = Full::start(Some("no space in /j: full".into()), 0, 1);
        assert_eq!(full.cause(), "no space in /j: full");
        assert!(
            full.refusal("commands")
                .starts_with("journal: no space in /j: full;")
        );
        for _ in 0..10 {
            full.still_full();
        }
        assert_eq!(full.retry_ms, RETRY_MS_MAX);
        assert!(full.probe_at().is_some());
        full.trying = Trying::Probing;
        assert!(full.probe_at().is_none());
        assert_eq!(Full::probe_bytes(10), PROBE_BYTES_MIN + 10);
        assert_eq!(Full::probe_bytes(u64::MAX), PROBE_BYTES_MAX);
    }
}
