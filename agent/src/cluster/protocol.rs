//! The director ↔ subagent protocol.
//!
//! Transport: one WebSocket over mTLS per subagent, opened by the director to
//! `wss://<subagent>/subagent` ([`SUBAGENT_WS_PATH`]) with the director's own agent
//! certificate (URI SAN `ordo:agent:<director id>`); the subagent accepts only the director its
//! configuration names. Every message is one binary frame holding one postcard-encoded
//! [`ToSubagent`] or [`FromSubagent`], at most the subagent's `frame_bytes_max` bytes (the
//! director sends with its own, which is checked to be the same kind of bound: a start carries
//! a job's script and environment, far below it).
//!
//! Session:
//! 1. The director sends [`ToSubagent::Dedicate`]: the protocol version, its agent id, the
//!    subagent id it means, and the cluster's `lease_timeout_ms`
//!    (≥ [`LEASE_TIMEOUT_MS_MIN`]). The subagent answers [`FromSubagent::Dedicated`] or
//!    [`FromSubagent::Refused`] and closes. A new session ends the previous one: the jobs of the
//!    previous session are killed first (their director took them for lost).
//!    A director of a director pair sends [`ToSubagent::DedicateInTerm`] instead: the same
//!    dedication with its raft term. The subagent refuses a term lower than the highest it has
//!    seen since it started (a deposed director), so the new director's session is never
//!    ended by the old one; a plain `Dedicate` counts as term 0.
//! 2. The director sends [`ToSubagent::Heartbeat`] every `lease_timeout_ms /`
//!    [`HEARTBEATS_PER_LEASE`]; the subagent answers each with [`FromSubagent::Heartbeat`].
//!    Any frame renews the lease of every job of the session.
//! 3. [`ToSubagent::Start`] runs a job (its id `key` is the director's, unique in the session)
//!    with the director's environment for it; the subagent answers [`FromSubagent::Started`]
//!    once the process exists (or [`FromSubagent::Ended`] with an error), then streams
//!    [`FromSubagent::Output`] / [`FromSubagent::OutputTruncated`] and ends with one
//!    [`FromSubagent::Ended`]. [`ToSubagent::Kill`] asks it to stop the job.
//! 4. The subagent measures its host ([`Report`]: cores, load, memory) and sends
//!    [`FromSubagent::Report`] right after `Dedicated` and then after a heartbeat answer at
//!    most every [`REPORT_INTERVAL_MS`]; the director keeps the last one for its metadata.
//!    (A director older than its subagents refuses it: directors are upgraded first.)
//!
//! 4. [`ToSubagent::Lease`] changes the session's `lease_timeout_ms` (the agent's `leaseTimeout`
//!    was deployed anew) without ending it: the subagent takes the new lease at once and answers
//!    [`FromSubagent::LeaseSet`]; until that answer the director judges by the longer of the
//!    two, so no job is taken for lost while the subagent still holds it by the old one.
//!
//! Leases: the director takes every job of a subagent it has not heard from for
//! `lease_timeout_ms` for lost (`Disrupted(ProcessLost)`). The subagent kills (SIGKILL) every
//! job of a session whose director it has not heard from for `lease_timeout_ms ×`
//! [`SUBAGENT_LEASE_SHARE_PERCENT`] `/ 100` — earlier than the director gives up, so that a job
//! the director runs again elsewhere is dead here by then — and when the session ends. A job
//! killed that way ends with [`End::LeaseLost`], which the director also takes as lost.
//!
//! Every enum here is append-only: new variants at the end, never reordered or removed.

use ordo_model::ids::{AgentId, OrderId};
use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The WebSocket path of the subagent session.
pub const SUBAGENT_WS_PATH: &str = "/subagent";

/// The shortest lease a subagent accepts, in milliseconds.
pub const LEASE_TIMEOUT_MS_MIN: u64 = 500;

/// Heartbeats the director sends per lease.
pub const HEARTBEATS_PER_LEASE: u64 = 5;

/// The share of the lease after which a subagent that heard nothing kills its jobs, percent.
pub const SUBAGENT_LEASE_SHARE_PERCENT: u64 = 70;

/// The shortest time between two [`FromSubagent::Report`]s of a session, in milliseconds.
pub const REPORT_INTERVAL_MS: u64 = 5_000;

/// The most environment variables one start carries.
pub const ENV_VARS_MAX: usize = 4_096;

/// A message from the director to a subagent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToSubagent {
    Dedicate(Dedicate),
    Heartbeat,
    Start(Box<Start>),
    Kill {
        key: u64,
        immediately: bool,
    },
    /// The session's lease from now on (≥ [`LEASE_TIMEOUT_MS_MIN`]).
    Lease {
        lease_timeout_ms: u64,
    },
    /// `Dedicate` from a director of a director pair, with its raft term (fencing).
    DedicateInTerm {
        dedicate: Dedicate,
        term: u64,
    },
}

/// The first message of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dedicate {
    pub protocol_version: u32,
    /// The director (its agent id).
    pub director: AgentId,
    /// The subagent the director means to talk to.
    pub subagent: AgentId,
    pub lease_timeout_ms: u64,
}

/// A job to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Start {
    pub key: u64,
    pub order_id: OrderId,
    pub attempt: u32,
    pub executable: Executable,
    /// Added to the subagent's own environment; `ORDO_WORK_DIR` is replaced by the subagent's
    /// own work directory of the order, and `ORDO_SUBAGENT` names the subagent.
    pub env: Vec<(String, String)>,
    pub timeout_ms: Option<u64>,
    pub grace_timeout_ms: u64,
    pub log_chunk_bytes_max: u64,
    pub log_bytes_max: u64,
    pub return_values_bytes_max: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Executable {
    Script(String),
    Argv(Vec<String>),
}

/// A message from a subagent to its director.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromSubagent {
    Dedicated {
        subagent: AgentId,
    },
    Refused {
        reason: String,
    },
    Heartbeat,
    Started {
        key: u64,
        pid: u32,
    },
    Output {
        key: u64,
        stderr: bool,
        chunk: Vec<u8>,
    },
    OutputTruncated {
        key: u64,
        log_bytes_max: u64,
    },
    Ended {
        key: u64,
        end: End,
    },
    /// What the subagent measured of its host.
    Report(Report),
    /// The answer to [`ToSubagent::Lease`]: the subagent holds its jobs by this lease now.
    LeaseSet {
        lease_timeout_ms: u64,
    },
}

/// A subagent's host as it measured it ([`crate::meta::host`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub cores: u32,
    /// Load averages over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
}

impl From<crate::meta::Host> for Report {
    fn from(h: crate::meta::Host) -> Self {
        Report {
            cores: h.cores,
            load: h.load,
            memory_total_bytes: h.memory_total_bytes,
            memory_available_bytes: h.memory_available_bytes,
        }
    }
}

/// How a job on a subagent ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum End {
    Terminated(Terminated),
    /// It could not start or be followed.
    Error(String),
    /// The subagent killed it because its lease was not renewed in time.
    LeaseLost,
}

/// [`crate::runner::Terminated`] as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Terminated {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub killed: bool,
    pub kill_escalated: bool,
    pub return_values: Vec<(String, String)>,
    pub notes: Vec<String>,
    pub duration_ms: u64,
    pub log_bytes: u64,
    pub log_bytes_forwarded: u64,
    pub log_truncated: bool,
}

impl From<crate::runner::Terminated> for Terminated {
    fn from(t: crate::runner::Terminated) -> Self {
        Terminated {
            exit_code: t.exit_code,
            signal: t.signal,
            timed_out: t.timed_out,
            killed: t.killed,
            kill_escalated: t.kill_escalated,
            return_values: t.return_values,
            notes: t.notes,
            duration_ms: t.duration_ms,
            log_bytes: t.log_bytes,
            log_bytes_forwarded: t.log_bytes_forwarded,
            log_truncated: t.log_truncated,
        }
    }
}

impl From<Terminated> for crate::runner::Terminated {
    fn from(t: Terminated) -> Self {
        crate::runner::Terminated {
            exit_code: t.exit_code,
            signal: t.signal,
            timed_out: t.timed_out,
            killed: t.killed,
            kill_escalated: t.kill_escalated,
            return_values: t.return_values,
            notes: t.notes,
            duration_ms: t.duration_ms,
            log_bytes: t.log_bytes,
            log_bytes_forwarded: t.log_bytes_forwarded,
            log_truncated: t.log_truncated,
        }
    }
}

/// The heartbeat interval of a lease, in milliseconds.
pub fn heartbeat_interval_ms(lease_timeout_ms: u64) -> u64 {
    (lease_timeout_ms / HEARTBEATS_PER_LEASE).max(1)
}

/// How long a subagent keeps its jobs without hearing from its director, in milliseconds.
pub fn subagent_hold_ms(lease_timeout_ms: u64) -> u64 {
    lease_timeout_ms.saturating_mul(SUBAGENT_LEASE_SHARE_PERCENT) / 100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subagent_gives_up_before_its_director_and_after_two_heartbeats() {
        for lease in [LEASE_TIMEOUT_MS_MIN, 10_000, 600_000] {
            let hold = subagent_hold_ms(lease);
            assert!(hold < lease);
            assert!(hold > 2 * heartbeat_interval_ms(lease));
        }
    }

    #[test]
    fn messages_round_trip() {
        let start = ToSubagent::Start(Box::new(Start {
            key: 7,
            order_id: OrderId::new("o-1").unwrap(),
            attempt: 2,
            executable: Executable::Script("echo hi".into()),
            env: vec![("A".into(), "b".into())],
            timeout_ms: Some(1000),
            grace_timeout_ms: 10,
            log_chunk_bytes_max: 8192,
            log_bytes_max: 1 << 20,
            return_values_bytes_max: 1 << 16,
        }));
        let bytes = postcard::to_allocvec(&start).unwrap();
        assert_eq!(postcard::from_bytes::<ToSubagent>(&bytes).unwrap(), start);
        let end = FromSubagent::Ended {
            key: 7,
            end: End::LeaseLost,
        };
        let bytes = postcard::to_allocvec(&end).unwrap();
        assert_eq!(postcard::from_bytes::<FromSubagent>(&bytes).unwrap(), end);
        let report = FromSubagent::Report(Report::from(crate::meta::host()));
        let bytes = postcard::to_allocvec(&report).unwrap();
        assert_eq!(
            postcard::from_bytes::<FromSubagent>(&bytes).unwrap(),
            report
        );
    }

    /// The protocol is append-only: a report is the variant after `Ended`, so a director
    /// that knows it reads every message of an older subagent as before.
    #[test]
    fn report_is_appended_at_the_end() {
        let report = FromSubagent::Report(Report {
            cores: 2,
            load: [0.5, 0.25, 0.0],
            memory_total_bytes: 1024,
            memory_available_bytes: 512,
        });
        let bytes = postcard::to_allocvec(&report).unwrap();
        assert_eq!(bytes[0], 7, "the eighth variant of FromSubagent");
    }

    #[test]
    fn lease_changes_are_appended_at_the_end() {
        let lease = postcard::to_allocvec(&ToSubagent::Lease {
            lease_timeout_ms: 2_000,
        })
        .unwrap();
        assert_eq!(lease[0], 4, "the fifth variant of ToSubagent");
        let set = postcard::to_allocvec(&FromSubagent::LeaseSet {
            lease_timeout_ms: 2_000,
        })
        .unwrap();
        assert_eq!(set[0], 8, "the ninth variant of FromSubagent");
    }
}
