//! `LogStore` against raft-rs's storage rules, and what survives a reopen.

use ordo_journal::Journal;
use ordo_replica::{LOG_DIR_NAME, LogStore, Membership, ReplicaError, StoreConfig};
use raft::{GetEntriesContext, Storage, StorageError, eraftpb};

fn entry(index: u64, term: u64) -> eraftpb::Entry {
    eraftpb::Entry {
        index,
        term,
        data: format!("entry {index} of term {term}").into_bytes().into(),
        ..Default::default()
    }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<eraftpb::Entry> {
    range.map(|i| entry(i, term)).collect()
}

fn config() -> StoreConfig {
    StoreConfig {
        segment_bytes_max: 4096,
        fsync: false,
        ..StoreConfig::default()
    }
}

fn small_segments() -> StoreConfig {
    StoreConfig {
        segment_bytes_max: 1024,
        ..config()
    }
}

/// A store whose log starts at index 1: that of a node joining a cluster (no membership).
fn open(dir: &std::path::Path, config: StoreConfig) -> LogStore {
    LogStore::open(dir, config, &Membership::default())
        .unwrap()
        .store
}

fn hard_state(term: u64, vote: u64, commit: u64) -> eraftpb::HardState {
    eraftpb::HardState {
        term,
        vote,
        commit,
        ..Default::default()
    }
}

fn get(
    store: &LogStore,
    low: u64,
    high: u64,
    max: Option<u64>,
) -> raft::Result<Vec<eraftpb::Entry>> {
    store.entries(low, high, max, GetEntriesContext::empty(false))
}

fn is_err(r: raft::Result<impl std::fmt::Debug>, expected: StorageError) -> bool {
    matches!(r, Err(raft::Error::Store(e)) if e == expected)
}

#[test]
fn a_founding_node_starts_from_the_bootstrap_snapshot_of_its_membership() {
    let dir = tempfile::tempdir().unwrap();
    let opened = LogStore::open(dir.path(), config(), &Membership::voters([1, 2, 3])).unwrap();
    let snapshot = opened.snapshot.unwrap();
    assert_eq!((snapshot.index, snapshot.term), (1, 1));
    assert_eq!(snapshot.membership, Membership::voters([1, 2, 3]));
    assert!(snapshot.data.is_empty(), "the initial state");
    let store = opened.store;
    let state = store.initial_state().unwrap();
    assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
    assert_eq!(state.hard_state, hard_state(1, 0, 1));
    assert_eq!(
        (store.first_index().unwrap(), store.last_index().unwrap()),
        (2, 1)
    );
    assert_eq!(store.term(1).unwrap(), 1);
    assert!(is_err(store.term(0), StorageError::Compacted));
    // A member gets the bootstrap snapshot; a node that joined later needs a newer one.
    assert_eq!(store.snapshot(0, 2).unwrap().get_metadata().index, 1);
    assert!(!store.snapshot_wanted());
    assert!(is_err(
        store.snapshot(0, 4),
        StorageError::SnapshotTemporarilyUnavailable
    ));
    assert!(store.snapshot_wanted());
}

#[test]
fn a_joining_node_starts_with_an_empty_log_and_no_membership() {
    let dir = tempfile::tempdir().unwrap();
    let opened = LogStore::open(dir.path(), config(), &Membership::default()).unwrap();
    assert!(opened.snapshot.is_none());
    let store = opened.store;
    let state = store.initial_state().unwrap();
    assert!(state.conf_state.voters.is_empty());
    assert_eq!(state.hard_state, eraftpb::HardState::default());
    assert_eq!(
        (store.first_index().unwrap(), store.last_index().unwrap()),
        (1, 0)
    );
    assert_eq!(store.term(0).unwrap(), 0);
    assert!(is_err(store.term(1), StorageError::Unavailable));
    assert!(is_err(
        store.snapshot(0, 2),
        StorageError::SnapshotTemporarilyUnavailable
    ));
}

#[test]
fn entries_and_terms_follow_the_storage_rules_from_cache_and_from_disk() {
    for cache_bytes_max in [1, 1 << 20] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(
            dir.path(),
            StoreConfig {
                cache_bytes_max,
                ..config()
            },
        );
        store.append(&entries(1..=5, 1)).unwrap();
        store.append(&entries(6..=10, 2)).unwrap();
        assert_eq!(
            (store.first_index().unwrap(), store.last_index().unwrap()),
            (1, 10)
        );
        assert_eq!(store.term(5).unwrap(), 1);
        assert_eq!(store.term(6).unwrap(), 2);
        assert!(is_err(store.term(11), StorageError::Unavailable));
        assert_eq!(
            get(&store, 3, 8, None).unwrap(),
            [entries(3..=5, 1), entries(6..=7, 2)].concat()
        );
        assert_eq!(get(&store, 4, 4, None).unwrap(), vec![]);
        // max_size: at least one entry, then as many as fit.
        assert_eq!(get(&store, 2, 10, Some(0)).unwrap(), entries(2..=2, 1));
        let one = u64::from(protobuf::Message::compute_size(&entry(2, 1)));
        assert_eq!(
            get(&store, 2, 10, Some(2 * one)).unwrap(),
            entries(2..=3, 1)
        );
    }
}

#[test]
fn conflicting_entries_are_cut_before_the_new_ones_are_written() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path(), config());
        store.append(&entries(1..=10, 1)).unwrap();
        store.append(&entries(6..=8, 2)).unwrap();
        assert_eq!(store.durable_last_index(), 8);
        assert_eq!(
            get(&store, 5, 9, None).unwrap(),
            [entries(5..=5, 1), entries(6..=8, 2)].concat()
        );
        store.set_hard_state(&hard_state(2, 1, 0)).unwrap();
    }
    let store = open(dir.path(), config());
    assert_eq!(store.durable_last_index(), 8);
    assert_eq!(
        get(&store, 1, 9, None).unwrap(),
        [entries(1..=5, 1), entries(6..=8, 2)].concat()
    );
    drop(store);
    // The journal holds one record per entry, its id the raft index.
    let journal = Journal::open(ordo_journal::Config::new(dir.path().join(LOG_DIR_NAME)))
        .unwrap()
        .journal;
    let ids: Vec<u64> = journal
        .read_after(0)
        .unwrap()
        .map(|r| r.unwrap().id)
        .collect();
    assert_eq!(ids, (1..=8).collect::<Vec<_>>());
}

#[test]
fn term_and_vote_are_durable_at_once_and_commit_with_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path(), config());
        store.append(&entries(1..=4, 3)).unwrap();
        store.set_hard_state(&hard_state(3, 2, 2)).unwrap();
        // A commit-only change is not written (raft learns the commit again from the leader).
        store.set_hard_state(&hard_state(3, 2, 4)).unwrap();
    }
    let store = open(dir.path(), config());
    assert_eq!(
        store.initial_state().unwrap().hard_state,
        hard_state(3, 2, 2)
    );
    assert_eq!(store.durable_last_index(), 4);
}

#[test]
fn snapshots_and_compaction_survive_a_reopen_and_release_segments() {
    let dir = tempfile::tempdir().unwrap();
    let segments =
        |dir: &std::path::Path| std::fs::read_dir(dir.join(LOG_DIR_NAME)).unwrap().count();
    {
        let mut store = open(dir.path(), small_segments());
        for first in (1..=200).step_by(10) {
            store.append(&entries(first..=first + 9, 1)).unwrap();
        }
        store.set_hard_state(&hard_state(1, 1, 150)).unwrap();
        let before = segments(dir.path());
        assert!(
            before > 4,
            "{before} files: the test needs several segments"
        );
        store
            .create_snapshot(120, &Membership::voters([1, 2, 3]), b"state at 120")
            .unwrap();
        assert!(!is_err(get(&store, 1, 2, None), StorageError::Compacted));
        let released = store.compact(100).unwrap();
        assert!(released > 0);
        assert!(segments(dir.path()) < before);
        assert!(is_err(get(&store, 100, 101, None), StorageError::Compacted));
        assert!(is_err(store.term(99), StorageError::Compacted));
        assert_eq!(store.term(100).unwrap(), 1);
        // Compaction never goes past the snapshot.
        assert!(matches!(store.compact(121), Err(ReplicaError::Invalid(_))));
    }
    let opened = LogStore::open(dir.path(), small_segments(), &Membership::default()).unwrap();
    let store = opened.store;
    let snapshot = opened.snapshot.unwrap();
    assert_eq!(
        (snapshot.index, snapshot.term, &snapshot.data[..]),
        (120, 1, &b"state at 120"[..])
    );
    assert_eq!(snapshot.membership, Membership::voters([1, 2, 3]));
    assert_eq!(
        (store.first_index().unwrap(), store.last_index().unwrap()),
        (101, 200)
    );
    assert_eq!(get(&store, 101, 103, None).unwrap(), entries(101..=102, 1));
    let raft_snapshot = store.snapshot(0, 2).unwrap();
    assert_eq!(raft_snapshot.get_metadata().index, 120);
    assert_eq!(
        raft_snapshot.get_metadata().get_conf_state().voters,
        vec![1, 2, 3]
    );
    // A snapshot older than what a follower asks for is not there yet.
    assert!(is_err(
        store.snapshot(130, 2),
        StorageError::SnapshotTemporarilyUnavailable
    ));
}

#[test]
fn an_empty_snapshot_is_refused_as_it_would_read_as_the_initial_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path(), config());
    store.append(&entries(1..=3, 1)).unwrap();
    store.set_hard_state(&hard_state(1, 1, 3)).unwrap();
    let e = store
        .create_snapshot(3, &Membership::voters([1]), b"")
        .unwrap_err();
    assert!(matches!(e, ReplicaError::Invalid(_)), "{e}");
}

fn leader_snapshot(index: u64, term: u64, data: &[u8]) -> eraftpb::Snapshot {
    // A snapshot as a leader's store sends it.
    let dir = tempfile::tempdir().unwrap();
    let mut leader = open(dir.path(), config());
    leader.append(&entries(1..=index, term)).unwrap();
    leader.set_hard_state(&hard_state(term, 1, index)).unwrap();
    leader
        .create_snapshot(index, &Membership::voters([1, 2, 3]), data)
        .unwrap();
    leader.snapshot(index, 3).unwrap()
}

#[test]
fn installing_a_snapshot_replaces_the_log_and_survives_a_reopen() {
    let snapshot = leader_snapshot(30, 4, b"leader state");
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path(), config());
        // An old, different history up to 40: entries after the snapshot must go too.
        store.append(&entries(1..=40, 1)).unwrap();
        store.set_hard_state(&hard_state(4, 0, 10)).unwrap();
        let installed = store.apply_snapshot(&snapshot).unwrap();
        assert_eq!(
            (installed.index, &installed.data[..]),
            (30, &b"leader state"[..])
        );
        assert_eq!(
            (store.first_index().unwrap(), store.last_index().unwrap()),
            (31, 30)
        );
        assert_eq!(store.term(30).unwrap(), 4);
        store.append(&entries(31..=33, 4)).unwrap();
    }
    let opened = LogStore::open(dir.path(), config(), &Membership::default()).unwrap();
    assert_eq!(opened.snapshot.unwrap().index, 30);
    let store = opened.store;
    assert_eq!(
        (store.first_index().unwrap(), store.last_index().unwrap()),
        (31, 33)
    );
    assert_eq!(get(&store, 31, 34, None).unwrap(), entries(31..=33, 4));
    assert_eq!(store.initial_state().unwrap().hard_state.commit, 30);
}

#[test]
fn installing_a_snapshot_beyond_a_short_log_leaves_a_gap_the_journal_accepts() {
    let snapshot = leader_snapshot(50, 2, b"s");
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path(), config());
        store.append(&entries(1..=5, 1)).unwrap();
        store.apply_snapshot(&snapshot).unwrap();
        store.append(&entries(51..=52, 2)).unwrap();
    }
    let store = open(dir.path(), config());
    assert_eq!(
        (store.first_index().unwrap(), store.last_index().unwrap()),
        (51, 52)
    );
    assert_eq!(get(&store, 51, 53, None).unwrap(), entries(51..=52, 2));
}

#[test]
fn a_snapshot_file_of_a_newer_format_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path(), config());
        store.append(&entries(1..=3, 1)).unwrap();
        store.set_hard_state(&hard_state(1, 1, 3)).unwrap();
        store
            .create_snapshot(3, &Membership::voters([1, 2, 3]), b"s")
            .unwrap();
    }
    let path = dir.path().join("snapshot-00000000000000000003.rsnap");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8] = 9;
    std::fs::write(&path, bytes).unwrap();
    let e = LogStore::open(dir.path(), config(), &Membership::default())
        .err()
        .unwrap();
    let message = e.to_string();
    assert!(
        matches!(
            e,
            ReplicaError::UnsupportedVersion {
                found: 9,
                supported: 1,
                ..
            }
        ),
        "{message}"
    );
    assert!(
        message.contains("version 9")
            && message.contains("version 1")
            && message.contains("snapshot"),
        "{message}"
    );
}

#[test]
fn a_log_without_its_state_file_is_refused_not_started_empty() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path(), config());
        store.append(&entries(1..=3, 1)).unwrap();
    }
    std::fs::remove_file(dir.path().join("raft-state")).unwrap();
    let e = LogStore::open(dir.path(), config(), &Membership::voters([1]))
        .err()
        .unwrap();
    assert!(matches!(e, ReplicaError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("up to index 3"), "{e}");
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open(dir.path(), config());
    let e = LogStore::open(dir.path(), config(), &Membership::voters([1]))
        .err()
        .unwrap();
    assert!(e.to_string().contains("in use"), "{e}");
}
