//! Figures the executor publishes for metadata requests, and the JSON view of the metadata.

use crate::meta::{JobCounters, MetaInputs, gather};
use ordo_model::wire::{AgentMeta, JobStats};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Written by the executor and the sessions, read by `/meta` and `GetMeta`.
pub struct Status {
    pub agent_id: String,
    pub data_dir: PathBuf,
    run_id: Mutex<u128>,
    pub running: AtomicU64,
    pub waiting: AtomicU64,
    pub outbox_bytes: AtomicU64,
    connected_since_ms: Mutex<Option<i64>>,
    /// While the journal's file system is full: its cause, and the records and bytes held.
    journal_full: Mutex<Option<(String, u64, u64)>>,
    pub jobs: JobCounters,
}

impl Status {
    pub fn new(agent_id: String, data_dir: PathBuf, run_id: u128) -> Status {
        Status {
            agent_id,
            data_dir,
            run_id: Mutex::new(run_id),
            running: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            outbox_bytes: AtomicU64::new(0),
            connected_since_ms: Mutex::new(None),
            journal_full: Mutex::new(None),
            jobs: JobCounters::default(),
        }
    }

    pub fn run_id(&self) -> u128 {
        *self.run_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_run_id(&self, run_id: u128) {
        *self.run_id.lock().unwrap_or_else(|e| e.into_inner()) = run_id;
    }

    pub fn set_connected_since(&self, since_ms: Option<i64>) {
        *self
            .connected_since_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = since_ms;
    }

    /// `Some((cause, records held, bytes held))` while the journal's file system is full.
    pub fn set_journal_full(&self, full: Option<(String, u64, u64)>) {
        *self.journal_full.lock().unwrap_or_else(|e| e.into_inner()) = full;
    }

    /// The agent's health now (no `/proc` reads).
    pub fn health(&self, pending_events_bytes_max: u64) -> Health {
        let full = self
            .journal_full
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (status, journal, held_records, held_bytes) = match full {
            None => ("ok", "ok".to_owned(), 0, 0),
            Some((cause, records, bytes)) => ("degraded", cause, records, bytes),
        };
        Health {
            status: status.to_owned(),
            agent_id: self.agent_id.clone(),
            agent_run_id: run_id_hex(self.run_id()),
            journal,
            held_records,
            held_bytes,
            pending_events_bytes_max,
            running_processes: self.running.load(Ordering::Relaxed),
            waiting_jobs: self.waiting.load(Ordering::Relaxed),
            outbox_bytes: self.outbox_bytes.load(Ordering::Relaxed),
            connected_since_ms: self.connected_since(),
        }
    }

    fn connected_since(&self) -> Option<i64> {
        *self
            .connected_since_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The metadata now (reads `/proc`; call from a blocking-tolerant place).
    pub fn meta(&self) -> AgentMeta {
        gather(&MetaInputs {
            agent_id: &self.agent_id,
            agent_run_id: self.run_id(),
            data_dir: &self.data_dir,
            running_processes: self.running.load(Ordering::Relaxed) as usize,
            waiting_jobs: self.waiting.load(Ordering::Relaxed) as usize,
            outbox_bytes: self.outbox_bytes.load(Ordering::Relaxed),
            connected_since_ms: self.connected_since(),
            jobs: &self.jobs,
        })
    }
}

/// What `GET /health` answers (always with 200: an agent that cannot write its journal still
/// runs its jobs and holds their outcome in memory, and must not be restarted for it).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok`, or `degraded` while the journal's file system is full (`journal` says why).
    pub status: String,
    pub agent_id: String,
    pub agent_run_id: String,
    /// `ok`, or `no space in <journal dir>: <cause>`: running jobs go on, their events are
    /// held in memory until space returns, no new job starts, controller commands are
    /// refused.
    pub journal: String,
    /// Records (and their bytes) held in memory because the journal cannot write them.
    pub held_records: u64,
    pub held_bytes: u64,
    /// Beyond this many held bytes, orders are not moved on until space returns.
    pub pending_events_bytes_max: u64,
    pub running_processes: u64,
    pub waiting_jobs: u64,
    pub outbox_bytes: u64,
    pub connected_since_ms: Option<i64>,
}

/// The JSON form of [`AgentMeta`] served by `GET /meta`: camelCase keys, the run id as 32
/// hexadecimal digits (a JSON number cannot hold a `u128` exactly).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaJson {
    pub agent_id: String,
    pub agent_run_id: String,
    pub version: String,
    pub hostname: String,
    pub os: String,
    pub cores: u32,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    pub load: [f64; 3],
    pub disk_free_bytes: u64,
    pub running_processes: u64,
    pub waiting_jobs: u64,
    pub outbox_bytes: u64,
    pub connected_since_ms: Option<i64>,
    pub jobs: Vec<JobStatsJson>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatsJson {
    pub job: String,
    pub processed: u64,
    pub average_duration_ms: u64,
}

/// The run id as it appears in JSON and in the `ORDO_RUN` job marker.
pub fn run_id_hex(run_id: u128) -> String {
    format!("{run_id:032x}")
}

impl From<AgentMeta> for MetaJson {
    fn from(m: AgentMeta) -> MetaJson {
        MetaJson {
            agent_id: m.agent_id,
            agent_run_id: run_id_hex(m.agent_run_id),
            version: m.version,
            hostname: m.hostname,
            os: m.os,
            cores: m.cores,
            memory_total_bytes: m.memory_total_bytes,
            memory_available_bytes: m.memory_available_bytes,
            load: m.load,
            disk_free_bytes: m.disk_free_bytes,
            running_processes: m.running_processes,
            waiting_jobs: m.waiting_jobs,
            outbox_bytes: m.outbox_bytes,
            connected_since_ms: m.connected_since_ms,
            jobs: m
                .jobs
                .into_iter()
                .map(
                    |JobStats {
                         job,
                         processed,
                         average_duration_ms,
                     }| JobStatsJson {
                        job,
                        processed,
                        average_duration_ms,
                    },
                )
                .collect(),
        }
    }
}
