//! Behaviour and error paths of the journal's public API.

mod common;

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use common::{block_on, ids, open, poll_once, read_all, small_config, temp_dir};
use ordo_journal::{Config, Journal, JournalError};

/// Segment files of a journal directory, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// `(offset, total bytes)` of every record frame in a segment file, parsed from the documented
/// layout: a 32-byte header, then `u32 len | u32 crc | payload` frames.
fn frames(path: &Path) -> Vec<(u64, u64)> {
    let bytes = fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 32usize;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if at + 8 + len > bytes.len() {
            break;
        }
        out.push((at as u64, (8 + len) as u64));
        at += 8 + len;
    }
    out
}

fn append_n(journal: &Journal, n: usize, size: usize) -> Vec<u64> {
    (0..n)
        .map(|i| {
            journal
                .append(vec![(i % 251) as u8; size])
                .wait()
                .expect("append")
        })
        .collect()
}

#[test]
fn append_assigns_increasing_ids_and_reads_back() {
    let dir = temp_dir();
    let opened = open(&small_config(dir.path()));
    let j = opened.journal;
    assert_eq!(j.last_id(), 0);
    assert_eq!(j.first_id(), None);
    assert!(read_all(&j, 0).is_empty());
    assert_eq!(j.append(b"a".to_vec()).wait().unwrap(), 1);
    assert_eq!(j.append(b"b".to_vec()).wait().unwrap(), 2);
    assert_eq!(
        block_on(Duration::from_secs(5), j.append(b"c".to_vec())).unwrap(),
        3
    );
    assert_eq!(j.last_id(), 3);
    assert_eq!(j.first_id(), Some(1));
    let records = read_all(&j, 0);
    assert_eq!(ids(&records), vec![1, 2, 3]);
    assert_eq!(records[1].data, b"b");
    assert_eq!(ids(&read_all(&j, 2)), vec![3]);
    assert!(read_all(&j, 3).is_empty());
    assert!(read_all(&j, 1000).is_empty());
    let stats = j.stats();
    assert_eq!(stats.appends, 3);
    assert!(stats.fsyncs >= 3, "{stats:?}");
    assert!(stats.bytes > 32, "{stats:?}");
}

#[test]
fn append_with_id_accepts_gaps_and_rejects_ids_that_do_not_increase() {
    let dir = temp_dir();
    let j = open(&small_config(dir.path())).journal;
    assert_eq!(
        j.append_with_id(1 << 16, b"x".to_vec()).wait().unwrap(),
        1 << 16
    );
    assert_eq!(j.append(b"y".to_vec()).wait().unwrap(), (1 << 16) + 1);
    for bad in [(1 << 16) + 1, 5] {
        let err = j.append_with_id(bad, b"z".to_vec()).wait().unwrap_err();
        assert!(
            matches!(err, JournalError::IdNotIncreasing { id, last } if id == bad && last == (1 << 16) + 1),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("must be greater than the last id"),
            "{err}"
        );
    }
    assert_eq!(
        j.append_with_id(3 << 16, b"w".to_vec()).wait().unwrap(),
        3 << 16
    );
    assert_eq!(ids(&read_all(&j, 0)), vec![1 << 16, (1 << 16) + 1, 3 << 16]);
    drop(j);
    let reopened = open(&small_config(dir.path()));
    assert_eq!(reopened.recovery.last_id, 3 << 16);
    assert_eq!(reopened.recovery.records, 3);
    assert_eq!(
        reopened.journal.append(b"v".to_vec()).wait().unwrap(),
        (3 << 16) + 1
    );
}

#[test]
fn batch_is_all_or_nothing_with_one_durable_point() {
    let dir = temp_dir();
    let j = open(&small_config(dir.path())).journal;
    j.append(b"first".to_vec()).wait().unwrap();
    let fsyncs_before = j.stats().fsyncs;
    let last = j
        .append_batch(vec![
            (None, b"a".to_vec()),
            (Some(10), b"b".to_vec()),
            (None, b"c".to_vec()),
        ])
        .wait()
        .unwrap();
    assert_eq!(last, 11);
    assert_eq!(j.stats().fsyncs, fsyncs_before + 1);
    let err = j
        .append_batch(vec![
            (None, b"d".to_vec()),
            (Some(12), b"e".to_vec()),
            (None, b"f".to_vec()),
        ])
        .wait()
        .unwrap_err();
    assert!(
        matches!(err, JournalError::IdNotIncreasing { id: 12, last: 12 }),
        "{err:?}"
    );
    assert_eq!(ids(&read_all(&j, 0)), vec![1, 2, 10, 11]);
    assert_eq!(j.append(b"g".to_vec()).wait().unwrap(), 12);
    // An empty batch resolves to the last id once everything before it is durable.
    assert_eq!(j.append_batch(Vec::new()).wait().unwrap(), 12);
    // A batch larger than a segment goes whole into a segment of its own (an append never
    // spans segments) and reads back in order.
    let segments_before = segment_files(dir.path()).len();
    let big: Vec<_> = (0..40).map(|i| (None, vec![i as u8; 100])).collect();
    assert_eq!(j.append_batch(big).wait().unwrap(), 52);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), segments_before + 1);
    let last = files.last().unwrap();
    assert!(last.ends_with("00000000000000000013.seg"), "{last:?}");
    assert_eq!(frames(last).len(), 40);
    let all = read_all(&j, 12);
    assert_eq!(ids(&all), (13..=52).collect::<Vec<_>>());
    assert_eq!(all[5].data, vec![5u8; 100]);
}

#[test]
fn record_too_large_is_refused_with_its_size() {
    let dir = temp_dir();
    let j = open(&small_config(dir.path())).journal;
    let err = j.append(vec![0; 4097]).wait().unwrap_err();
    assert!(
        matches!(
            err,
            JournalError::RecordTooLarge {
                bytes: 4097,
                max: 4096
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("record_bytes_max = 4096"), "{err}");
    let err = j
        .append_batch(vec![(None, vec![0; 10]), (None, vec![0; 5000])])
        .wait()
        .unwrap_err();
    assert!(
        matches!(err, JournalError::RecordTooLarge { bytes: 5000, .. }),
        "{err:?}"
    );
    // A record at the limit is fine, even though it is larger than a segment.
    assert_eq!(j.append(vec![7; 4096]).wait().unwrap(), 1);
    assert_eq!(j.append(vec![8; 4096]).wait().unwrap(), 2);
    assert_eq!(read_all(&j, 0)[1].data, vec![8; 4096]);
    assert_eq!(j.last_id(), 2);
}

#[test]
fn invalid_config_is_refused() {
    let dir = temp_dir();
    let mut c = Config::new(dir.path());
    c.segment_bytes_max = 8;
    let err = Journal::open(c).err().expect("refused");
    assert!(err.to_string().contains("segment_bytes_max"), "{err}");
}

#[test]
fn reopen_recovers_every_record_across_segments() {
    let dir = temp_dir();
    let config = small_config(dir.path());
    let written = append_n(&open(&config).journal, 100, 50);
    assert_eq!(written, (1..=100).collect::<Vec<_>>());
    let opened = open(&config);
    assert_eq!(opened.recovery.records, 100);
    assert_eq!(opened.recovery.last_id, 100);
    assert_eq!(opened.recovery.truncated, None);
    assert!(opened.recovery.segments > 5, "{:?}", opened.recovery);
    assert!(opened.snapshot.is_none());
    let records = read_all(&opened.journal, 0);
    assert_eq!(ids(&records), written);
    assert_eq!(records[99].data, vec![99u8; 50]);
    assert_eq!(opened.journal.append(vec![1]).wait().unwrap(), 101);
}

#[test]
fn read_after_an_id_deep_inside_a_large_segment() {
    let dir = temp_dir();
    let mut config = Config::new(dir.path());
    config.fsync = false;
    let j = open(&config).journal;
    let batch: Vec<_> = (0..5000u32)
        .map(|i| (None, i.to_le_bytes().repeat(25)))
        .collect();
    assert_eq!(j.append_batch(batch).wait().unwrap(), 5000);
    assert_eq!(segment_files(dir.path()).len(), 1);
    for after in [0, 1, 1234, 2500, 4999] {
        let mut reader = j.read_after(after).unwrap();
        let first = reader.next().unwrap().unwrap();
        assert_eq!(first.id, after + 1);
        assert_eq!(first.data, (after as u32).to_le_bytes().repeat(25));
        assert_eq!(reader.count() as u64, 5000 - after - 1);
    }
}

#[test]
fn second_opener_gets_a_clear_lock_error() {
    let dir = temp_dir();
    let config = small_config(dir.path());
    let first = open(&config);
    let err = Journal::open(config.clone())
        .err()
        .expect("second open refused");
    assert!(matches!(err, JournalError::Locked { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("in use") && message.contains("LOCK"),
        "{message}"
    );
    let pid = fs::read_to_string(dir.path().join("LOCK")).unwrap();
    assert_eq!(pid.trim(), std::process::id().to_string());
    drop(first);
    // Dropping the last handle stops the writer and releases the lock.
    open(&config);
}

#[test]
fn torn_tail_of_the_last_segment_is_cut_and_reported() {
    let dir = temp_dir();
    let config = small_config(dir.path());
    append_n(&open(&config).journal, 30, 40);
    let last = segment_files(dir.path()).pop().unwrap();
    let good_len = fs::metadata(&last).unwrap().len();
    // Half of a record frame, as a crash in the middle of a write leaves it.
    let mut bytes = fs::read(&last).unwrap();
    bytes.extend_from_slice(&[60, 0, 0, 0, 1, 2, 3, 4, 5, 6]);
    fs::write(&last, &bytes).unwrap();

    let opened = open(&config);
    let tail = opened
        .recovery
        .truncated
        .clone()
        .expect("truncation reported");
    assert_eq!(tail.file, last);
    assert_eq!(tail.offset, good_len);
    assert_eq!(tail.bytes_dropped, 10);
    assert!(tail.reason.contains("runs past the end"), "{}", tail.reason);
    assert_eq!(fs::metadata(&last).unwrap().len(), good_len);
    assert_eq!(opened.recovery.last_id, 30);
    assert_eq!(opened.journal.append(b"next".to_vec()).wait().unwrap(), 31);
    drop(opened);
    let again = open(&config);
    assert_eq!(again.recovery.truncated, None);
    assert_eq!(again.recovery.last_id, 31);
}

#[test]
fn a_bad_record_followed_by_valid_ones_in_the_last_segment_is_a_hard_error() {
    let dir = temp_dir();
    let config = small_config(dir.path());
    append_n(&open(&config).journal, 30, 40);
    let last = segment_files(dir.path()).pop().unwrap();
    let last_frames = frames(&last);
    assert!(last_frames.len() >= 3);
    let (offset, _) = last_frames[1];
    let mut bytes = fs::read(&last).unwrap();
    bytes[offset as usize + 12] ^= 0x40;
    fs::write(&last, &bytes).unwrap();
    let first_after = 30 - last_frames.len() as u64 + 3;
    let err = Journal::open(config.clone()).err().expect("hard error");
    match &err {
        JournalError::Corrupt {
            file,
            offset: at,
            reason,
        } => {
            assert_eq!(file, &last);
            assert_eq!(*at, offset);
            assert!(reason.contains("checksum"), "{reason}");
            let follow = format!(
                "{} valid record(s) follow it in this file (ids {first_after}..=30, the first at offset {})",
                last_frames.len() - 2,
                last_frames[2].0
            );
            assert!(reason.contains(&follow), "{reason}");
            assert!(reason.contains("not a torn write"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(ordo_journal::RESTORE_ADVICE), "{message}");
    assert!(
        message.contains("restore the directory from a backup"),
        "{message}"
    );
    // Nothing was cut: the same error again, the same bytes on disk.
    assert_eq!(fs::read(&last).unwrap(), bytes);
    assert!(matches!(
        Journal::open(config.clone()),
        Err(JournalError::Corrupt { offset: at, .. }) if at == offset
    ));
    // Damage to the last record alone cannot be told from a torn write: it is cut.
    bytes[offset as usize + 12] ^= 0x40;
    let (end_offset, _) = *last_frames.last().unwrap();
    bytes[end_offset as usize + 9] ^= 0x01;
    fs::write(&last, &bytes).unwrap();
    let opened = open(&config);
    let tail = opened.recovery.truncated.clone().expect("reported");
    assert_eq!(tail.offset, end_offset);
    assert_eq!(tail.bytes_dropped, bytes.len() as u64 - end_offset);
    assert!(tail.reason.contains("no valid record follows"), "{tail}");
    assert_eq!(opened.recovery.last_id, 29);
}

#[test]
fn sealed_segment_corruption_is_a_hard_error_naming_file_and_offset() {
    let dir = temp_dir();
    let config = small_config(dir.path());
    append_n(&open(&config).journal, 60, 40);
    let files = segment_files(dir.path());
    assert!(files.len() >= 3);
    let sealed = &files[1];
    let (offset, _) = frames(sealed)[2];
    let mut bytes = fs::read(sealed).unwrap();
    bytes[offset as usize + 9] ^= 0x01;
    fs::write(sealed, &bytes).unwrap();
    let err = Journal::open(config.clone()).err().expect("hard error");
    match &err {
        JournalError::Corrupt {
            file,
            offset: at,
            reason,
        } => {
            assert_eq!(file, sealed);
            assert_eq!(*at, offset);
            assert!(reason.contains("sealed segment"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&sealed.display().to_string()), "{message}");
    assert!(message.contains(&format!("offset {offset}")), "{message}");
    // Cutting a sealed segment short is an error too, never a silent truncation.
    let mut bytes = fs::read(sealed).unwrap();
    bytes[offset as usize + 9] ^= 0x01;
    bytes.truncate(bytes.len() - 3);
    fs::write(sealed, &bytes).unwrap();
    let err = Journal::open(config).err().expect("hard error");
    assert!(
        matches!(err, JournalError::Corrupt { ref file, .. } if file == sealed),
        "{err:?}"
    );
}

#[test]
fn missing_segment_and_bad_headers_are_hard_errors() {
    let dir = temp_dir();
    let config = small_config(dir.path());
    append_n(&open(&config).journal, 60, 40);
    let files = segment_files(dir.path());
    let saved = fs::read(&files[1]).unwrap();
    fs::remove_file(&files[1]).unwrap();
    let err = Journal::open(config.clone()).err().expect("hard error");
    match &err {
        JournalError::Corrupt {
            file,
            offset: 24,
            reason,
        } => {
            assert_eq!(file, &files[2]);
            assert!(reason.contains("missing"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // A flipped header byte.
    let mut bad = saved.clone();
    bad[20] ^= 0xff;
    fs::write(&files[1], &bad).unwrap();
    let err = Journal::open(config.clone()).err().expect("hard error");
    assert!(
        matches!(&err, JournalError::Corrupt { file, offset: 12, .. } if file == &files[1]),
        "{err:?}"
    );
    // A newer format version.
    let mut newer = saved.clone();
    newer[8] = 2;
    fs::write(&files[1], &newer).unwrap();
    let err = Journal::open(config.clone()).err().expect("hard error");
    assert!(
        matches!(
            &err,
            JournalError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err:?}"
    );
    // Restored, the journal opens again.
    fs::write(&files[1], &saved).unwrap();
    assert_eq!(open(&config).recovery.last_id, 60);
}

#[test]
fn snapshot_and_replay() {
    let dir = temp_dir();
    let config = small_config(dir.path());
    {
        let j = open(&config).journal;
        append_n(&j, 40, 30);
        let err = j.write_snapshot(41, b"ahead").unwrap_err();
        assert!(err.to_string().contains("last durable id is 40"), "{err}");
        j.write_snapshot(20, b"state at 20").unwrap();
        j.write_snapshot(25, b"state at 25").unwrap();
        let err = j.write_snapshot(24, b"older").unwrap_err();
        assert!(err.to_string().contains("newer snapshot at id 25"), "{err}");
        append_n(&j, 10, 30);
    }
    let snapshots: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("snapshot-"))
        .collect();
    assert_eq!(
        snapshots,
        vec!["snapshot-00000000000000000025.snap".to_string()]
    );
    // A stale temp file from a crash is ignored and deleted.
    fs::write(
        dir.path().join("snapshot-00000000000000000030.snap.tmp"),
        b"junk",
    )
    .unwrap();

    let opened = open(&config);
    let snapshot = opened.snapshot.clone().expect("snapshot");
    assert_eq!(snapshot.id, 25);
    assert_eq!(snapshot.bytes, b"state at 25");
    assert!(
        !dir.path()
            .join("snapshot-00000000000000000030.snap.tmp")
            .exists()
    );
    let replay = read_all(&opened.journal, snapshot.id);
    assert_eq!(ids(&replay), (26..=50).collect::<Vec<_>>());
    drop(opened);

    // A corrupt snapshot is a hard error naming the file.
    let path = dir.path().join("snapshot-00000000000000000025.snap");
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let err = Journal::open(config).err().expect("hard error");
    assert!(
        matches!(&err, JournalError::Corrupt { file, .. } if file == &path),
        "{err:?}"
    );
}

#[test]
fn release_deletes_whole_sealed_segments_only() {
    let dir = temp_dir();
    let config = small_config(dir.path());
    let j = open(&config).journal;
    append_n(&j, 100, 40);
    let before = segment_files(dir.path()).len();
    assert_eq!(j.release(0).unwrap(), 0);
    let deleted = j.release(50).unwrap();
    assert!(deleted > 0);
    assert_eq!(segment_files(dir.path()).len(), before - deleted as usize);
    let first = j.first_id().unwrap();
    assert!(first > 1 && first <= 51, "first retained id {first}");
    let err = j.read_after(0).err().expect("released");
    assert!(
        matches!(err, JournalError::Released { after: 0, released } if released == first - 1),
        "{err:?}"
    );
    assert_eq!(
        ids(&read_all(&j, first - 1)),
        (first..=100).collect::<Vec<_>>()
    );
    // Everything released: the active segment stays, so the ids go on.
    j.release(u64::MAX).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_eq!(j.last_id(), 100);
    assert_eq!(j.append(vec![1]).wait().unwrap(), 101);
    let first = j.first_id().unwrap();
    drop(j);
    let opened = open(&config);
    assert_eq!(opened.journal.first_id(), Some(first));
    assert_eq!(opened.recovery.last_id, 101);
    assert!(opened.journal.read_after(first - 2).is_err());
}

#[test]
fn truncate_after_then_append() {
    let dir = temp_dir();
    let config = small_config(dir.path());
    let j = open(&config).journal;
    append_n(&j, 60, 40);
    let segments_before = segment_files(dir.path()).len();
    j.truncate_after(60).unwrap();
    j.truncate_after(1000).unwrap();
    assert_eq!(j.last_id(), 60);
    j.truncate_after(20).unwrap();
    assert_eq!(j.last_id(), 20);
    assert_eq!(*j.durable_id_watch().borrow(), 20);
    assert!(segment_files(dir.path()).len() < segments_before);
    assert_eq!(ids(&read_all(&j, 0)), (1..=20).collect::<Vec<_>>());
    assert_eq!(j.append(b"new 21".to_vec()).wait().unwrap(), 21);
    assert_eq!(read_all(&j, 20)[0].data, b"new 21");
    drop(j);
    let opened = open(&config);
    assert_eq!(opened.recovery.truncated, None);
    assert_eq!(opened.recovery.last_id, 21);
    let j = opened.journal;
    // Down to nothing.
    j.truncate_after(0).unwrap();
    assert_eq!(j.last_id(), 0);
    assert_eq!(j.first_id(), None);
    assert!(read_all(&j, 0).is_empty());
    assert_eq!(j.append(b"again".to_vec()).wait().unwrap(), 1);
    drop(j);
    assert_eq!(open(&config).recovery.last_id, 1);
}

#[test]
fn truncate_after_with_caller_ids_keeps_segment_names_right() {
    let dir = temp_dir();
    let config = small_config(dir.path());
    let j = open(&config).journal;
    j.append_with_id(100, vec![1; 600]).wait().unwrap();
    j.append_with_id(200, vec![2; 600]).wait().unwrap(); // starts segment 200
    j.append_with_id(300, vec![3; 600]).wait().unwrap(); // starts segment 300
    assert_eq!(segment_files(dir.path()).len(), 3);
    // Between records: 300 goes, segment 200 keeps its record.
    j.truncate_after(250).unwrap();
    assert_eq!(j.last_id(), 200);
    // Everything of segment 200 goes; ids from 101 on are free again.
    j.truncate_after(150).unwrap();
    assert_eq!(j.last_id(), 100);
    assert_eq!(j.append_with_id(120, b"x".to_vec()).wait().unwrap(), 120);
    drop(j);
    let opened = open(&config);
    assert_eq!(opened.recovery.last_id, 120);
    assert_eq!(ids(&read_all(&opened.journal, 0)), vec![100, 120]);
    let names: Vec<_> = segment_files(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec![
            "00000000000000000100.seg".to_string(),
            "00000000000000000101.seg".to_string()
        ]
    );
}

#[test]
fn truncate_below_released_or_snapshot_is_refused() {
    let dir = temp_dir();
    let j = open(&small_config(dir.path())).journal;
    append_n(&j, 80, 40);
    j.write_snapshot(40, b"s").unwrap();
    let err = j.truncate_after(39).unwrap_err();
    assert!(err.to_string().contains("snapshot at id 40"), "{err}");
    j.truncate_after(40).unwrap();
    assert_eq!(j.last_id(), 40);
    drop(j);

    let dir = temp_dir();
    let config = small_config(dir.path());
    let j = open(&config).journal;
    append_n(&j, 80, 40);
    j.release(40).unwrap();
    let floor = j.first_id().unwrap() - 1;
    assert!(floor > 0);
    let err = j.truncate_after(floor - 1).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("records up to id {floor} are released")),
        "{err}"
    );
    j.truncate_after(floor).unwrap();
    assert_eq!(j.last_id(), floor);
    assert_eq!(j.first_id(), None);
    assert_eq!(j.append(b"x".to_vec()).wait().unwrap(), floor + 1);
    drop(j);
    let opened = open(&config);
    assert_eq!(opened.recovery.last_id, floor + 1);
    assert_eq!(opened.journal.first_id(), Some(floor + 1));
}

#[test]
fn reader_fails_when_records_it_returned_are_truncated() {
    let dir = temp_dir();
    let config = small_config(dir.path());
    let j = open(&config).journal;
    append_n(&j, 30, 40);
    let mut ahead = j.read_after(0).unwrap();
    for _ in 0..10 {
        ahead.next().unwrap().unwrap();
    }
    let mut behind = j.read_after(0).unwrap();
    behind.next().unwrap().unwrap();
    j.truncate_after(5).unwrap();
    let err = ahead.next().unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            JournalError::Truncated {
                after: 10,
                truncated_after: 5
            }
        ),
        "{err:?}"
    );
    assert!(ahead.next().is_none());
    // A reader behind the cut just goes on with what is left.
    let rest: Vec<_> = behind.map(|r| r.unwrap().id).collect();
    assert_eq!(rest, vec![2, 3, 4, 5]);
}

#[test]
fn follow_wakes_on_new_records() {
    let dir = temp_dir();
    let config = small_config(dir.path());
    let j = open(&config).journal;
    append_n(&j, 3, 10);
    let mut follower = j.follow(1);
    let limit = Duration::from_secs(10);
    assert_eq!(block_on(limit, follower.next()).unwrap().unwrap().id, 2);
    assert_eq!(block_on(limit, follower.next()).unwrap().unwrap().id, 3);
    {
        let mut waiting = Box::pin(follower.next());
        assert!(poll_once(&mut waiting).is_none(), "nothing new yet");
    }
    let writer = {
        let j = j.clone();
        std::thread::spawn(move || {
            for i in 0..30u8 {
                std::thread::sleep(Duration::from_millis(2));
                j.append(vec![i; 100]).wait().unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 30 {
        seen.push(block_on(limit, follower.next()).unwrap().unwrap().id);
    }
    writer.join().unwrap();
    assert_eq!(seen, (4..=33).collect::<Vec<_>>());
    assert_eq!(follower.position(), 33);
    let mut watch = j.durable_id_watch();
    assert_eq!(*watch.borrow_and_update(), 33);
    // Closing the journal ends the follower.
    drop(j);
    assert!(block_on(limit, follower.next()).is_none());
    assert!(watch.has_changed().is_err());
}

#[test]
fn follower_sees_truncation_and_new_records() {
    let dir = temp_dir();
    let j = open(&small_config(dir.path())).journal;
    append_n(&j, 5, 10);
    let mut follower = j.follow(0);
    let limit = Duration::from_secs(10);
    for id in 1..=3 {
        assert_eq!(block_on(limit, follower.next()).unwrap().unwrap().id, id);
    }
    // Records not yet delivered are dropped and rewritten: the follower sees the new ones.
    j.truncate_after(3).unwrap();
    j.append(b"new 4".to_vec()).wait().unwrap();
    let r = block_on(limit, follower.next()).unwrap().unwrap();
    assert_eq!((r.id, r.data.as_slice()), (4, &b"new 4"[..]));
    // Dropping a delivered record ends the follower with an error.
    j.truncate_after(2).unwrap();
    j.append(b"new 3".to_vec()).wait().unwrap();
    let err = block_on(limit, follower.next()).unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            JournalError::Truncated {
                after: 4,
                truncated_after: 2
            }
        ),
        "{err:?}"
    );
    assert!(block_on(limit, follower.next()).is_none());
}

#[test]
fn failed_journal_stays_failed() {
    let dir = temp_dir();
    let journal_dir = dir.path().join("j");
    let config = small_config(&journal_dir);
    let j = open(&config).journal;
    append_n(&j, 3, 10);
    // With the directory gone, starting the next segment fails: a real I/O error.
    fs::remove_dir_all(&journal_dir).unwrap();
    let err = j.append(vec![0; 2000]).wait().unwrap_err();
    let JournalError::Failed(message) = &err else {
        panic!("unexpected {err:?}")
    };
    assert!(message.contains("creating"), "{message}");
    assert!(err.to_string().contains("stopped for good"), "{err}");
    for _ in 0..3 {
        let again = j.append(b"x".to_vec()).wait().unwrap_err();
        assert!(
            matches!(&again, JournalError::Failed(m) if m == message),
            "{again:?}"
        );
    }
    assert!(matches!(j.read_after(0), Err(JournalError::Failed(_))));
    assert!(matches!(j.release(1), Err(JournalError::Failed(_))));
    assert!(matches!(j.truncate_after(1), Err(JournalError::Failed(_))));
    assert!(matches!(
        j.write_snapshot(1, b"s"),
        Err(JournalError::Failed(_))
    ));
    let mut follower = j.follow(0);
    let got = block_on(Duration::from_secs(5), follower.next());
    assert!(matches!(got, Some(Err(JournalError::Failed(_)))), "{got:?}");
    assert_eq!(j.last_id(), 3);
}

#[test]
fn concurrent_appends_share_fsyncs() {
    let dir = temp_dir();
    let config = Config::new(dir.path());
    let j = open(&config).journal;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let j = j.clone();
            std::thread::spawn(move || {
                // Half of the threads keep all their appends in flight at once, the others
                // wait for each one.
                let in_flight: Vec<_> = (0..50u32)
                    .map(|i| {
                        let data = format!("{t}:{i}").into_bytes();
                        let appending = j.append(data.clone());
                        if t % 2 == 0 {
                            (Err(appending), data)
                        } else {
                            (Ok(appending.wait().unwrap()), data)
                        }
                    })
                    .collect();
                in_flight
                    .into_iter()
                    .map(|(a, data)| (a.unwrap_or_else(|a| a.wait().unwrap()), data))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acked: Vec<(u64, Vec<u8>)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    acked.sort();
    assert_eq!(
        acked.iter().map(|a| a.0).collect::<Vec<_>>(),
        (1..=400).collect::<Vec<_>>()
    );
    let stats = j.stats();
    assert_eq!(stats.appends, 400);
    assert!(stats.fsyncs < 400, "no group commit: {stats:?}");
    let records = read_all(&j, 0);
    for ((id, data), r) in acked.iter().zip(&records) {
        assert_eq!((*id, data), (r.id, &r.data));
    }
}
