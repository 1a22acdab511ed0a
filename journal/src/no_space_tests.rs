//! The writer on a full file system, with `ENOSPC` injected into chosen calls: a failed group
//! leaves nothing behind, the journal goes on, and the next append is written.

use std::{fs, path::PathBuf};

use crate::{Config, Journal, JournalError, Opened, Record};

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("journal-no-space-")
        .tempdir()
        .expect("temp dir")
}

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::new(dir);
    c.segment_bytes_max = 1024;
    c.record_bytes_max = 4096;
    c
}

fn open(config: &Config) -> Opened {
    Journal::open(config.clone()).expect("journal opens")
}

fn read_all(j: &Journal) -> Vec<Record> {
    j.read_after(0)
        .expect("reader")
        .collect::<Result<Vec<_>, _>>()
        .expect("records")
}

fn segments(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg" || e == "tmp"))
        .collect();
    files.sort();
    files
}

fn assert_no_space(e: &JournalError, dir: &std::path::Path) {
    match e {
        JournalError::NoSpace { dir: d, reason } => {
            assert_eq!(d, dir);
            assert!(reason.contains("space"), "{reason}");
        }
        other => panic!("expected NoSpace, got {other:?}"),
    }
}

#[test]
fn a_failed_write_leaves_nothing_and_the_next_append_is_written() {
    let dir = temp_dir();
    let config = config(dir.path());
    let j = open(&config).journal;
    for i in 0..5u8 {
        j.append(vec![i; 20]).wait().unwrap();
    }
    let seg = segments(dir.path()).pop().unwrap();
    let durable_len = fs::metadata(&seg).unwrap().len();
    // The disk takes 13 bytes of the write, then is full.
    j.shared().faults.fail_writes(1, 13);
    let err = j.append(vec![9; 20]).wait().unwrap_err();
    assert_no_space(&err, dir.path());
    assert!(
        err.to_string()
            .contains("nothing of this append was written")
    );
    assert_eq!(fs::metadata(&seg).unwrap().len(), durable_len);
    assert_eq!(j.last_id(), 5);
    assert!(j.failure().is_none());
    // The id of the failed record is given again: nothing of it exists.
    assert_eq!(j.append(vec![6; 20]).wait().unwrap(), 6);
    let again = j.append_batch(vec![(None, vec![7; 20]), (None, vec![8; 20])]);
    assert_eq!(again.wait().unwrap(), 8);
    drop(j);
    let opened = open(&config);
    assert_eq!(opened.recovery.truncated, None);
    let records = read_all(&opened.journal);
    assert_eq!(
        records.iter().map(|r| r.id).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    assert_eq!(records[5].data, vec![6; 20]);
}

#[test]
fn a_failed_segment_creation_is_retried_by_the_next_append() {
    let dir = temp_dir();
    let config = config(dir.path());
    let j = open(&config).journal;
    // Fill the first segment.
    let mut n = 0;
    while segments(dir.path()).len() < 2 {
        j.append(vec![1; 100]).wait().unwrap();
        n += 1;
    }
    let before = segments(dir.path());
    j.shared().faults.fail_creates(1);
    let mut failed = None;
    for _ in 0..20 {
        match j.append(vec![2; 100]).wait() {
            Ok(_) => n += 1,
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    assert_no_space(&failed.expect("the roll failed"), dir.path());
    assert_eq!(j.last_id(), n);
    assert_eq!(segments(dir.path()).len(), before.len());
    assert_eq!(j.append(vec![3; 100]).wait().unwrap(), n + 1);
    assert!(segments(dir.path()).len() > before.len());
    drop(j);
    let opened = open(&config);
    assert_eq!(opened.recovery.truncated, None);
    assert_eq!(opened.recovery.last_id, n + 1);
    assert_eq!(read_all(&opened.journal).len() as u64, n + 1);
}

#[test]
fn an_empty_segment_left_by_a_failed_write_is_renamed_for_a_lower_id() {
    let dir = temp_dir();
    let config = config(dir.path());
    let j = open(&config).journal;
    j.append_with_id(10, vec![1; 900]).wait().unwrap();
    // Id 1000 does not fit: a segment named after it is started, then its write fails.
    j.shared().faults.fail_writes(1, 5);
    let err = j.append_with_id(1000, vec![2; 900]).wait().unwrap_err();
    assert_no_space(&err, dir.path());
    let names: Vec<String> = segments(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["00000000000000000010.seg", "00000000000000001000.seg"]
    );
    // A lower id after the failure: the empty segment must not keep a name above it.
    assert_eq!(j.append_with_id(500, vec![3; 900]).wait().unwrap(), 500);
    let names: Vec<String> = segments(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["00000000000000000010.seg", "00000000000000000500.seg"]
    );
    drop(j);
    let opened = open(&config);
    assert_eq!(
        read_all(&opened.journal)
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        [10, 500]
    );
}

#[test]
fn batches_chained_behind_a_failed_one_are_not_written() {
    let dir = temp_dir();
    let config = config(dir.path());
    let j = open(&config).journal;
    j.append(b"first".to_vec()).wait().unwrap();
    j.shared().faults.fail_writes(1, 0);
    // Two batches sent without waiting, the second built on the first.
    let a = j.append_batch_after(1, vec![(Some(2), b"a".to_vec()), (Some(3), b"b".to_vec())]);
    let b = j.append_batch_after(3, vec![(Some(4), b"c".to_vec())]);
    assert_no_space(&a.wait().unwrap_err(), dir.path());
    match b.wait().unwrap_err() {
        JournalError::Discontinuous { after: 3, last: 1 } => {}
        e @ JournalError::NoSpace { .. } => assert_no_space(&e, dir.path()),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(j.last_id(), 1);
    // A wrong `after` is refused without a failure.
    let wrong = j.append_batch_after(7, vec![(None, b"x".to_vec())]).wait();
    assert!(matches!(
        wrong,
        Err(JournalError::Discontinuous { after: 7, last: 1 })
    ));
    assert_eq!(
        j.append_batch_after(1, vec![(Some(2), b"again".to_vec())])
            .wait()
            .unwrap(),
        2
    );
    let records = read_all(&j);
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].data, b"again");
}

#[test]
fn a_snapshot_after_a_failed_append_still_works() {
    let dir = temp_dir();
    let config = config(dir.path());
    let j = open(&config).journal;
    j.append(b"one".to_vec()).wait().unwrap();
    j.shared().faults.fail_writes(1, 3);
    assert!(j.append(b"two".to_vec()).wait().is_err());
    j.write_snapshot(1, b"state at 1").unwrap();
    assert_eq!(
        j.newest_snapshot().unwrap().map(|s| (s.id, s.bytes)),
        Some((1, b"state at 1".to_vec()))
    );
    assert_eq!(j.stats().appends, 1);
}
