//! Opening the agent's journal: recovery of the state from the newest snapshot and the
//! records after it, or a new run for an empty journal.

use crate::AgentError;
use crate::config::Config;
use crate::record::{RECORD_FORMAT, Record};
use crate::state::AgentState;
use ordo_journal::Journal;
use std::io::Read;
use std::path::PathBuf;

/// Journal record size limit: twice the frame limit (an attached order and its workflow
/// arrive in one frame) plus room for the record around them.
pub fn record_bytes_max(frame_bytes_max: usize) -> u32 {
    let bytes = (frame_bytes_max as u64)
        .saturating_mul(2)
        .saturating_add(1 << 20);
    u32::try_from(bytes)
        .unwrap_or(u32::MAX / 2)
        .min(u32::MAX / 2)
}

/// The journal directory of an agent.
pub fn journal_dir(config: &Config) -> PathBuf {
    config.data_dir.join("journal")
}

/// An opened journal and the state it holds.
pub struct Recovered {
    pub journal: Journal,
    pub state: AgentState,
    /// Id of the newest snapshot (0: none).
    pub snapshot_id: u64,
    /// Records applied after the snapshot.
    pub replayed: u64,
}

/// Opens (or creates) the journal and folds it into the state; an empty journal begins a
/// new run with its `Created` record.
pub fn open(config: &Config) -> Result<Recovered, AgentError> {
    let journal = open_journal(config)?;
    if let Some(recovered) = fold(config, journal.clone())? {
        return Ok(recovered);
    }
    let run_id = random_run_id()?;
    let id = journal.append(created(config, run_id)?).wait()?;
    tracing::info!(run = %crate::status::run_id_hex(run_id), "new agent journal in {}", journal.dir().display());
    Ok(Recovered {
        journal,
        state: AgentState::new(config.agent_id.clone(), run_id, id),
        snapshot_id: 0,
        replayed: 0,
    })
}

/// The first record of a new run.
pub fn created(config: &Config, run_id: u128) -> Result<Vec<u8>, AgentError> {
    Record::Created {
        format: RECORD_FORMAT,
        agent_id: config.agent_id.clone(),
        run_id,
    }
    .encode()
    .map_err(|e| AgentError::Corrupt(format!("encoding the first record: {e}")))
}

/// Opens (or creates) the journal, without reading it.
pub fn open_journal(config: &Config) -> Result<Journal, AgentError> {
    let journal_config = ordo_journal::Config {
        dir: journal_dir(config),
        segment_bytes_max: config.limits.segment_bytes_max,
        record_bytes_max: record_bytes_max(config.limits.frame_bytes_max),
        fsync: config.limits.journal_fsync,
    };
    let opened = Journal::open(journal_config)?;
    if let Some(cut) = &opened.recovery.truncated {
        tracing::warn!(
            file = %cut.file.display(),
            offset = cut.offset,
            bytes = cut.bytes_dropped,
            "journal recovery cut a torn tail: {}",
            cut.reason
        );
    }
    Ok(opened.journal)
}

/// Folds an open journal into the state: its newest snapshot and the records after it.
/// `None` for an empty journal.
pub fn fold(config: &Config, journal: Journal) -> Result<Option<Recovered>, AgentError> {
    let dir = journal.dir().to_owned();
    let (mut state, snapshot_id) = match journal.newest_snapshot()? {
        Some(snapshot) => {
            let state = AgentState::from_snapshot(&snapshot.bytes).map_err(|reason| {
                AgentError::Corrupt(format!(
                    "the snapshot at id {} in {} does not load: {reason}",
                    snapshot.id,
                    dir.display()
                ))
            })?;
            (Some(state), snapshot.id)
        }
        None => (None, 0),
    };
    let mut replayed = 0;
    for record in journal.read_after(snapshot_id)? {
        let record = record?;
        let decoded = Record::decode(&record.data).map_err(|reason| {
            AgentError::Corrupt(format!(
                "record {} in {} does not decode: {reason}",
                record.id,
                dir.display()
            ))
        })?;
        let corrupt = |e: crate::state::StateError| {
            AgentError::Corrupt(format!("replaying {}: {e}", dir.display()))
        };
        match &mut state {
            None => state = Some(AgentState::from_first(record.id, &decoded).map_err(corrupt)?),
            Some(s) => s
                .apply(record.id, &decoded, record.data.len())
                .map_err(corrupt)?,
        }
        replayed += 1;
    }
    let Some(state) = state else {
        return Ok(None);
    };
    if state.agent_id != config.agent_id {
        return Err(AgentError::Config(format!(
            "the journal in {} belongs to agent {}, and this configuration is for agent {}",
            dir.display(),
            state.agent_id,
            config.agent_id
        )));
    }
    Ok(Some(Recovered {
        journal,
        state,
        snapshot_id,
        replayed,
    }))
}

/// A random run id from the operating system.
pub fn random_run_id() -> Result<u128, AgentError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| AgentError::Io {
            context: "reading a random run id from /dev/urandom".into(),
            source,
        })?;
    Ok(u128::from_le_bytes(bytes))
}
