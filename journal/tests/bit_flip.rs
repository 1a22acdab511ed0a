//! One flipped bit anywhere in a journal: after reopening, either every acknowledged record
//! reads back intact (only damage to the very last record may be cut, as a torn write), or
//! open fails with `Corrupt` naming the damaged file and the offset of the damaged record.
//! Never a silent loss of records before the last one. Seeded; `ORDO_LONG=1` runs more flips.

mod common;

use std::{
    fs,
    path::{Path, PathBuf},
};

use common::temp_dir;
use ordo_journal::{Config, Journal, JournalError};

/// splitmix64: a small seeded generator, so that a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn data_for(id: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (id as usize).wrapping_mul(131).wrapping_add(i) as u8)
        .collect()
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

/// Records of a segment file by the documented layout: `(start, end)` offsets.
fn frames(bytes: &[u8]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = 32usize;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        out.push((at as u64, (at + 8 + len) as u64));
        at += 8 + len;
    }
    assert_eq!(
        at,
        bytes.len(),
        "a written journal ends on a record boundary"
    );
    out
}

/// Writes `n` acknowledged records; returns them.
fn write_journal(config: &Config, n: u64, rng: &mut Rng) -> Vec<(u64, Vec<u8>)> {
    let journal = Journal::open(config.clone()).unwrap().journal;
    let mut written = Vec::new();
    let mut id = 0;
    while id < n {
        let mut batch: Vec<(Option<u64>, Vec<u8>)> = Vec::new();
        for _ in 0..1 + rng.below(20) {
            if id == n {
                break;
            }
            id += 1;
            batch.push((None, data_for(id, 20 + rng.below(600) as usize)));
        }
        let last = journal.append_batch(batch.clone()).wait().unwrap();
        let first = last + 1 - batch.len() as u64;
        for (i, (_, data)) in batch.into_iter().enumerate() {
            written.push((first + i as u64, data));
        }
    }
    assert_eq!(journal.last_id(), n);
    written
}

/// Flips bits one at a time (each on a fresh copy of the journal) and checks each reopen.
fn flip_and_check(config: &Config, written: &[(u64, Vec<u8>)], flips: usize, rng: &mut Rng) {
    let dir = &config.dir;
    let files = segment_files(dir);
    let originals: Vec<Vec<u8>> = files.iter().map(|f| fs::read(f).unwrap()).collect();
    let (mut refused, mut intact, mut cut) = (0, 0, 0);
    for flip in 0..flips {
        let f = rng.below(files.len() as u64) as usize;
        let at = rng.below(originals[f].len() as u64);
        let bit = rng.below(8) as u8;
        let mut bytes = originals[f].clone();
        bytes[at as usize] ^= 1 << bit;
        fs::write(&files[f], &bytes).unwrap();
        let record_start = frames(&originals[f])
            .into_iter()
            .find(|&(start, end)| start <= at && at < end)
            .map(|(start, _)| start);
        let is_last_record = f + 1 == files.len()
            && frames(&originals[f])
                .last()
                .is_some_and(|&(start, _)| Some(start) == record_start);
        let what = format!(
            "flip {flip}: bit {bit} of byte {at} of {}",
            files[f].display()
        );
        let opened = Journal::open(config.clone());
        let recovered = opened.is_ok();
        match opened {
            Ok(opened) => {
                let got: Vec<(u64, Vec<u8>)> = opened
                    .journal
                    .read_after(0)
                    .unwrap()
                    .map(|r| r.map(|r| (r.id, r.data)))
                    .collect::<Result<_, _>>()
                    .unwrap();
                match &opened.recovery.truncated {
                    None => {
                        assert_eq!(got.len(), written.len(), "{what}: records lost");
                        intact += 1;
                    }
                    Some(tail) => {
                        assert!(is_last_record, "{what}: cut {tail} but it was not the last");
                        assert_eq!(Some(tail.offset), record_start, "{what}");
                        assert_eq!(got.len() + 1, written.len(), "{what}");
                        cut += 1;
                    }
                }
                assert!(got == written[..got.len()], "{what}: records differ");
            }
            Err(JournalError::Corrupt { file, offset, .. }) => {
                assert_eq!(file, files[f], "{what}");
                match record_start {
                    Some(start) => assert_eq!(offset, start, "{what}"),
                    None => assert!(offset < 32, "{what}: header damage at {offset}"),
                }
                refused += 1;
            }
            Err(JournalError::UnsupportedVersion { file, .. }) => {
                assert_eq!(file, files[f], "{what}");
                assert!((8..12).contains(&at), "{what}");
                refused += 1;
            }
            Err(other) => panic!("{what}: unexpected {other:?}"),
        }
        // Back to the undamaged journal for the next flip (recovery may have changed files).
        if recovered {
            for (path, bytes) in files.iter().zip(&originals) {
                fs::write(path, bytes).unwrap();
            }
            for extra in segment_files(dir)
                .into_iter()
                .filter(|p| !files.contains(p))
            {
                fs::remove_file(extra).unwrap();
            }
        } else {
            fs::write(&files[f], &originals[f]).unwrap();
        }
    }
    eprintln!("{flips} flips: {refused} refused, {intact} intact, {cut} last records cut");
}

fn flips(short: usize) -> usize {
    if std::env::var_os("ORDO_LONG").is_some() {
        short * 10
    } else {
        short
    }
}

#[test]
fn one_flipped_bit_in_many_segments_never_loses_records_silently() {
    let seed = 0x5eed_0001;
    let mut rng = Rng(seed);
    let dir = temp_dir();
    let mut config = Config::new(dir.path());
    config.segment_bytes_max = 16 * 1024;
    config.fsync = false;
    let written = write_journal(&config, 2_000, &mut rng);
    assert!(segment_files(dir.path()).len() > 10);
    flip_and_check(&config, &written, flips(300), &mut rng);
}

#[test]
fn one_flipped_bit_in_one_large_segment_never_loses_records_silently() {
    let seed = 0x5eed_0002;
    let mut rng = Rng(seed);
    let dir = temp_dir();
    let mut config = Config::new(dir.path());
    config.fsync = false;
    let written = write_journal(&config, 30_005, &mut rng);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    let len = fs::metadata(&files[0]).unwrap().len();
    assert!(len > 9_000_000, "{len}");
    flip_and_check(&config, &written, flips(40), &mut rng);

    // The flip this test is about: one bit in the middle of the only segment, with 9 MB of
    // acknowledged records after it.
    let original = fs::read(&files[0]).unwrap();
    let mut bytes = original.clone();
    bytes[9_000_000] ^= 0x10;
    fs::write(&files[0], &bytes).unwrap();
    let start = frames(&original)
        .into_iter()
        .find(|&(s, e)| s <= 9_000_000 && 9_000_000 < e)
        .unwrap()
        .0;
    let err = Journal::open(config.clone()).err().expect("a hard error");
    let message = err.to_string();
    match err {
        JournalError::Corrupt {
            file,
            offset,
            reason,
        } => {
            assert_eq!(file, files[0]);
            assert_eq!(offset, start);
            assert!(reason.contains("..=30005"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        message.contains(&files[0].display().to_string()),
        "{message}"
    );
    assert!(message.contains(&format!("offset {start}")), "{message}");
    assert!(
        message.contains("restore the directory from a backup"),
        "{message}"
    );
    assert_eq!(fs::read(&files[0]).unwrap(), bytes, "nothing was cut");
}
