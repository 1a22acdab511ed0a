//! Property test: the journal against an in-memory model, with crashes and corruption at
//! random points. After recovery the journal must hold a prefix of what was written that
//! includes every acknowledged record; corruption anywhere but in the very last record must be
//! a hard error naming the file and the offset.

mod common;

use std::{
    fs,
    path::{Path, PathBuf},
};

use common::{open, read_all, temp_dir};
use ordo_journal::{Config, Journal, JournalError};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    AppendWithGap(u64, usize),
    Batch(Vec<usize>),
    Reopen,
    /// Truncate after the record at this position (modulo the count) of the model.
    TruncateAfter(usize),
    /// Release up to the record at this position (modulo the count) of the model.
    Release(usize),
}

#[derive(Debug, Clone)]
enum Fault {
    /// A crash: the last `unacked` records were not acknowledged yet, so the last segment may
    /// end anywhere after the last acknowledged record, followed by junk from a torn write.
    Crash {
        unacked: usize,
        cut: u64,
        junk: Vec<u8>,
    },
    /// A flipped byte anywhere in any segment.
    Flip { file: usize, byte: u64, mask: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..300).prop_map(Op::Append),
        2 => (1u64..5, 0usize..300).prop_map(|(g, n)| Op::AppendWithGap(g, n)),
        3 => prop::collection::vec(0usize..200, 0..6).prop_map(Op::Batch),
        1 => Just(Op::Reopen),
        1 => any::<usize>().prop_map(Op::TruncateAfter),
        1 => any::<usize>().prop_map(Op::Release),
    ]
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        (
            any::<usize>(),
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 0..24)
        )
            .prop_map(|(unacked, cut, junk)| Fault::Crash { unacked, cut, junk }),
        (any::<usize>(), any::<u64>(), 1u8..=255).prop_map(|(file, byte, mask)| Fault::Flip {
            file,
            byte,
            mask
        }),
    ]
}

fn data_for(id: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (id as usize * 31 + i) as u8).collect()
}

/// Frames of a segment file, parsed from the documented layout: `(offset, end)`.
fn frames(path: &Path) -> Vec<(u64, u64)> {
    let bytes = fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 32usize;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        assert!(at + 8 + len <= bytes.len(), "journal left a partial frame");
        out.push((at as u64, (at + 8 + len) as u64));
        at += 8 + len;
    }
    assert_eq!(at, bytes.len(), "trailing bytes in a segment");
    out
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

fn run(segment_bytes_max: u64, ops: Vec<Op>, fault: Fault) -> Result<(), TestCaseError> {
    let dir = temp_dir();
    let mut config = Config::new(dir.path());
    config.segment_bytes_max = segment_bytes_max;
    config.record_bytes_max = 1024;
    config.fsync = false;

    // The model: records the journal holds, in order.
    let mut model: Vec<(u64, Vec<u8>)> = Vec::new();
    // Id of the last released record (0 if none): the journal's floor.
    let mut floor = 0;
    let mut journal = open(&config).journal;
    for op in ops {
        let last = journal.last_id();
        match op {
            Op::Append(len) => {
                let data = data_for(last + 1, len);
                let id = journal.append(data.clone()).wait().unwrap();
                prop_assert_eq!(id, last + 1);
                model.push((id, data));
            }
            Op::AppendWithGap(gap, len) => {
                let data = data_for(last + gap, len);
                let id = journal
                    .append_with_id(last + gap, data.clone())
                    .wait()
                    .unwrap();
                model.push((id, data));
            }
            Op::Batch(lens) => {
                let records: Vec<_> = lens
                    .iter()
                    .enumerate()
                    .map(|(i, &len)| (None, data_for(last + 1 + i as u64, len)))
                    .collect();
                let id = journal.append_batch(records.clone()).wait().unwrap();
                prop_assert_eq!(id, last + lens.len() as u64);
                for (i, (_, data)) in records.into_iter().enumerate() {
                    model.push((last + 1 + i as u64, data));
                }
            }
            Op::Reopen => {
                drop(journal);
                let opened = open(&config);
                prop_assert_eq!(opened.recovery.truncated, None);
                prop_assert_eq!(opened.recovery.last_id, last);
                journal = opened.journal;
            }
            Op::TruncateAfter(pick) if !model.is_empty() => {
                let after = model[pick % model.len()].0;
                journal.truncate_after(after).unwrap();
                model.retain(|(id, _)| *id <= after);
                prop_assert_eq!(journal.last_id(), after);
            }
            Op::Release(pick) if !model.is_empty() => {
                let until = model[pick % model.len()].0;
                journal.release(until).unwrap();
                let first = journal.first_id();
                let dropped: Vec<u64> = model
                    .iter()
                    .map(|r| r.0)
                    .take_while(|&id| Some(id) != first)
                    .collect();
                prop_assert!(
                    dropped.iter().all(|&id| id <= until),
                    "released {:?} > {}",
                    dropped,
                    until
                );
                if let Some(&last) = dropped.last() {
                    floor = last;
                }
                model.drain(..dropped.len());
            }
            Op::TruncateAfter(_) | Op::Release(_) => {}
        }
    }
    let got = read_all(&journal, floor);
    prop_assert_eq!(
        &got.iter()
            .map(|r| (r.id, r.data.clone()))
            .collect::<Vec<_>>(),
        &model
    );
    let last_before = journal.last_id();
    drop(journal);

    // Map every model record to its place on disk.
    let files = segment_files(dir.path());
    let mut places = Vec::new();
    for (f, path) in files.iter().enumerate() {
        for (offset, end) in frames(path) {
            places.push((f, offset, end));
        }
    }
    prop_assert_eq!(places.len(), model.len());
    let Some(last_file) = files.last() else {
        return Ok(());
    };
    let last_f = files.len() - 1;
    let in_last: Vec<usize> = (0..model.len())
        .filter(|&i| places[i].0 == last_f)
        .collect();

    // Apply the fault; work out what recovery must give (`Ok((n, cut))`: the first n records,
    // and whether a tail is cut off) or the hard error's file and offset.
    let expected: Result<(usize, bool), (PathBuf, u64)> = match fault {
        Fault::Crash { unacked, cut, junk } => {
            let unacked = unacked % (in_last.len() + 1);
            let acked = model.len() - unacked;
            let len = fs::metadata(last_file).unwrap().len();
            let lowest = if acked > 0 && places[acked - 1].0 == last_f {
                places[acked - 1].2
            } else {
                32
            };
            let cut = lowest + cut % (len - lowest + 1);
            let mut bytes = fs::read(last_file).unwrap();
            bytes.truncate(cut as usize);
            bytes.extend_from_slice(&junk);
            fs::write(last_file, &bytes).unwrap();
            let kept = (0..model.len())
                .take_while(|&i| places[i].0 != last_f || places[i].2 <= cut)
                .count();
            prop_assert!(kept >= acked);
            let clean_end = if kept > 0 && places[kept - 1].0 == last_f {
                places[kept - 1].2
            } else {
                32
            };
            Ok((kept, cut != clean_end || !junk.is_empty()))
        }
        Fault::Flip { file, byte, mask } => {
            let f = file % files.len();
            let path = &files[f];
            let mut bytes = fs::read(path).unwrap();
            let at = byte % bytes.len() as u64;
            bytes[at as usize] ^= mask;
            fs::write(path, &bytes).unwrap();
            if at < 32 {
                // A damaged header: the offset depends on which field broke.
                Err((path.clone(), u64::MAX))
            } else {
                let hit = (0..model.len())
                    .find(|&i| places[i].0 == f && places[i].1 <= at && at < places[i].2)
                    .expect("every byte after the header belongs to a record");
                if f == last_f && hit + 1 == model.len() {
                    // Only damage to the very last record looks like a torn write.
                    Ok((hit, true))
                } else {
                    // Valid records follow, or the segment is sealed: never a silent cut.
                    Err((path.clone(), places[hit].1))
                }
            }
        }
    };

    match (Journal::open(config.clone()), expected) {
        (Ok(opened), Ok((kept, cut))) => {
            let journal = opened.journal;
            let got = read_all(&journal, floor);
            let want = &model[..kept];
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                prop_assert_eq!((g.id, &g.data), (w.0, &w.1));
            }
            let last = want.last().map_or(floor, |r| r.0);
            prop_assert_eq!(opened.recovery.last_id, last);
            prop_assert_eq!(
                opened.recovery.truncated.is_some(),
                cut,
                "{:?}",
                opened.recovery
            );
            if kept == model.len() {
                prop_assert_eq!(last, last_before);
            }
            // The journal goes on from the recovered end.
            prop_assert_eq!(journal.append(b"after".to_vec()).wait().unwrap(), last + 1);
            drop(journal);
            let again = open(&config);
            prop_assert_eq!(again.recovery.truncated, None);
            prop_assert_eq!(again.recovery.last_id, last + 1);
        }
        (Err(err), Err((file, offset))) => match err {
            JournalError::Corrupt {
                file: f, offset: o, ..
            } => {
                prop_assert_eq!(f, file);
                if offset != u64::MAX {
                    prop_assert_eq!(o, offset);
                }
            }
            JournalError::UnsupportedVersion { file: f, .. } => {
                prop_assert_eq!(offset, u64::MAX);
                prop_assert_eq!(f, file);
            }
            other => prop_assert!(false, "unexpected error {other:?}"),
        },
        (Ok(opened), Err(want)) => {
            prop_assert!(
                false,
                "expected a hard error at {want:?}, recovered {:?}",
                opened.recovery
            )
        }
        (Err(err), Ok((kept, _))) => prop_assert!(false, "expected {kept} records, got {err:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn recovery_keeps_a_prefix_with_every_acknowledged_record(
        segment_bytes_max in 256u64..3000,
        ops in prop::collection::vec(op(), 1..40),
        fault in fault(),
    ) {
        run(segment_bytes_max, ops, fault)?;
    }
}
