//! The journal on a real full file system: a small tmpfs (needs the right to mount; the test
//! says so and passes without it). Appends, segment creation and snapshots fail with
//! `NoSpace`, leave no partial record and no temp file, and work again once space is freed;
//! nothing acknowledged is lost.

mod common;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use common::temp_dir;
use ordo_journal::{Config, Journal, JournalError};

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, bytes: u64) -> Option<Tmpfs> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs on {} (needs root or CAP_SYS_ADMIN): {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn no_space(e: &JournalError, dir: &Path) -> bool {
    matches!(e, JournalError::NoSpace { dir: d, .. } if d == dir)
}

#[test]
fn a_full_file_system_refuses_appends_and_recovers_when_space_returns() {
    let base = temp_dir();
    let mount = base.path().join("fs");
    fs::create_dir(&mount).unwrap();
    let Some(_tmpfs) = Tmpfs::mount(&mount, 1 << 20) else {
        return;
    };
    let filler = mount.join("filler");
    fs::write(&filler, vec![0u8; 600 << 10]).unwrap();
    let dir = mount.join("journal");
    let mut config = Config::new(&dir);
    config.segment_bytes_max = 64 << 10;
    config.record_bytes_max = 16 << 10;
    let journal = Journal::open(config.clone()).unwrap().journal;

    // Fill the rest: appends are acknowledged until one fails for lack of space.
    let mut acked: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut refused = None;
    for i in 0..2_000u64 {
        let data = vec![(i % 251) as u8; 1000 + (i as usize % 7) * 300];
        match journal.append(data.clone()).wait() {
            Ok(id) => acked.push((id, data)),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let err = refused.expect("the tmpfs filled up");
    assert!(no_space(&err, &dir), "{err:?}");
    assert!(
        err.to_string().contains(&dir.display().to_string()),
        "{err}"
    );
    let last = acked.last().unwrap().0;
    assert_eq!(journal.last_id(), last);
    assert!(journal.failure().is_none());
    // Still full: more appends and a snapshot are refused the same way, and leave nothing.
    for _ in 0..3 {
        let e = journal.append(vec![1; 4000]).wait().unwrap_err();
        assert!(no_space(&e, &dir), "{e:?}");
    }
    let big_state = vec![7u8; 64 << 10];
    let e = journal.write_snapshot(last, &big_state).unwrap_err();
    assert!(no_space(&e, &dir), "{e:?}");
    assert!(
        names(&dir).iter().all(|n| !n.ends_with(".tmp")),
        "{:?}",
        names(&dir)
    );
    let e = journal.probe_space(64 << 10).unwrap_err();
    assert!(no_space(&e, &dir), "{e:?}");
    // Reads go on.
    let read: Vec<u64> = journal
        .read_after(0)
        .unwrap()
        .map(|r| r.unwrap().id)
        .collect();
    assert_eq!(read.len(), acked.len());

    // Space returns: the next append is written, with the next id.
    fs::remove_file(&filler).unwrap();
    journal.probe_space(64 << 10).unwrap();
    assert!(
        names(&dir).iter().all(|n| !n.ends_with(".tmp")),
        "{:?}",
        names(&dir)
    );
    let id = journal.append(b"after".to_vec()).wait().unwrap();
    assert_eq!(id, last + 1);
    acked.push((id, b"after".to_vec()));
    journal.write_snapshot(id, &big_state).unwrap();
    drop(journal);

    let opened = Journal::open(config).unwrap();
    assert_eq!(opened.recovery.truncated, None);
    assert_eq!(opened.snapshot.map(|s| s.id), Some(id));
    let got: Vec<(u64, Vec<u8>)> = opened
        .journal
        .read_after(0)
        .unwrap()
        .map(|r| r.map(|r| (r.id, r.data)))
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(got == acked, "acknowledged records differ after reopening");
}
