//! The data of one raft entry of a director pair: one batch of agent journal records.
//!
//! Format: postcard of [`Entry`], a versioned enum (append-only: add variants at the end).
//!
//! ```text
//! enum Entry { V1 { after: u64, records: [(id: u64, data: bytes)] } }
//! ```
//!
//! `records` are the journal records of one batch the active director's executor made, with
//! their ids (consecutive from `after + 1`, never empty); `data` is the record as the agent
//! journal stores it (`crate::record`). The record ids are the agent's own (its agent event
//! ids among them), so every node of the pair writes the same records under the same ids and
//! a new active director streams the controller the same events under the same ids.
//!
//! Applying a committed entry ([`apply`]) appends its records to the node's agent journal
//! after the journal's last id: records the journal holds already (a restart hands committed
//! entries out again) are skipped; an entry that does not continue the journal is an error.
//! Each record written is shown to the caller first (a passive node folds it into its state).

use ordo_journal::Journal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Entry {
    V1 {
        after: u64,
        records: Vec<(u64, Vec<u8>)>,
    },
}

/// Journal records with their ids.
pub type Records = Vec<(u64, Vec<u8>)>;

/// The entry data of a batch continuing the journal after `after`.
pub fn encode(after: u64, records: Records) -> Vec<u8> {
    assert!(!records.is_empty(), "an entry holds at least one record");
    for (k, (id, _)) in records.iter().enumerate() {
        assert_eq!(
            *id,
            after + 1 + k as u64,
            "the records of an entry have consecutive ids after {after}"
        );
    }
    postcard::to_allocvec(&Entry::V1 { after, records }).expect("records always encode")
}

/// The batch of the committed entry at `index`: (after, records).
pub fn decode(index: u64, data: &[u8]) -> Result<(u64, Records), String> {
    let Entry::V1 { after, records } = postcard::from_bytes(data)
        .map_err(|e| format!("the committed entry at index {index} does not decode: {e}"))?;
    if records.is_empty() {
        return Err(format!(
            "the committed entry at index {index} holds no record"
        ));
    }
    for (k, (id, _)) in records.iter().enumerate() {
        if *id != after + 1 + k as u64 {
            return Err(format!(
                "the committed entry at index {index} holds record {id} at place {k} after {after}"
            ));
        }
    }
    Ok((after, records))
}

/// Appends the records of the committed entry at `index` that the journal does not hold yet,
/// each shown to `seen` first; completes once they are durable. Returns the journal's last id.
pub async fn apply(
    journal: &Journal,
    index: u64,
    data: &[u8],
    mut seen: impl FnMut(u64, &[u8]) -> Result<(), String>,
) -> Result<u64, String> {
    let (after, records) = decode(index, data)?;
    let last = journal.last_id();
    if after > last {
        return Err(format!(
            "the committed entry at index {index} continues the agent journal after record \
             {after}, but the journal in {} ends at record {last}",
            journal.dir().display()
        ));
    }
    let fresh: Vec<(Option<u64>, Vec<u8>)> = records
        .into_iter()
        .filter(|(id, _)| *id > last)
        .map(|(id, data)| (Some(id), data))
        .collect();
    if fresh.is_empty() {
        return Ok(last);
    }
    for (id, data) in &fresh {
        seen(id.unwrap_or_default(), data)?;
    }
    journal
        .append_batch_after(last, fresh)
        .await
        .map_err(|e| format!("writing the committed entry at index {index}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(dir: &std::path::Path) -> Journal {
        Journal::open(ordo_journal::Config::new(dir))
            .expect("a journal")
            .journal
    }

    fn records(ids: std::ops::RangeInclusive<u64>) -> Records {
        ids.map(|id| (id, format!("record {id}").into_bytes()))
            .collect()
    }

    #[test]
    fn an_entry_reads_back_and_a_damaged_one_is_refused() {
        let data = encode(4, records(5..=7));
        assert_eq!(decode(9, &data).unwrap(), (4, records(5..=7)));
        assert!(decode(9, &data[..data.len() - 1]).is_err());
        let gap = postcard::to_allocvec(&Entry::V1 {
            after: 4,
            records: vec![(5, vec![1]), (7, vec![2])],
        })
        .unwrap();
        assert!(decode(9, &gap).unwrap_err().contains("record 7"));
        let empty = postcard::to_allocvec(&Entry::V1 {
            after: 4,
            records: Vec::new(),
        })
        .unwrap();
        assert!(decode(9, &empty).unwrap_err().contains("no record"));
    }

    /// Committed entries land in the journal under their ids; handed out again after a
    /// restart they change nothing; one that leaves a gap is refused.
    #[tokio::test]
    async fn committed_entries_are_written_once_under_their_ids() {
        let dir = tempfile::tempdir().unwrap();
        let j = journal(dir.path());
        let mut seen = Vec::new();
        let mut see = |id: u64, _: &[u8]| {
            seen.push(id);
            Ok(())
        };
        assert_eq!(
            apply(&j, 2, &encode(0, records(1..=3)), &mut see).await,
            Ok(3)
        );
        assert_eq!(
            apply(&j, 3, &encode(3, records(4..=4)), &mut see).await,
            Ok(4)
        );
        // Again, as after a restart: nothing is written twice.
        assert_eq!(
            apply(&j, 2, &encode(0, records(1..=3)), &mut see).await,
            Ok(4)
        );
        // Partly held (a torn tail cut the journal inside an entry): the rest is written.
        assert_eq!(
            apply(&j, 4, &encode(3, records(4..=6)), &mut see).await,
            Ok(6)
        );
        let gap = apply(&j, 5, &encode(8, records(9..=9)), &mut see)
            .await
            .unwrap_err();
        assert!(gap.contains("ends at record 6"), "{gap}");
        assert_eq!(seen, (1..=6).collect::<Vec<u64>>(), "each record seen once");
        drop(j);
        let j = journal(dir.path());
        let read: Records = j
            .read_after(0)
            .unwrap()
            .map(|r| r.map(|r| (r.id, r.data)).unwrap())
            .collect();
        assert_eq!(read, records(1..=6));
    }
}
