//! What we write, read back: snapshots of real trees (with sessions and digest), restore
//! from snapshot plus later log, epochs, purge, and group commit batching.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use zk_datatree::acl::open_acl_unsafe;
use zk_datatree::{DataTree, Session, TreeOptions, WriteRequest, prepare};
use zk_jute::proto::CreateRequest;
use zk_jute::txn::{TxnDigest, TxnHeader};
use zk_persistence::{
    FileTxnLog, GroupCommit, GroupOptions, LogEntry, LogOptions, TxnLog, ZxidDigest, file_name,
    is_valid_snapshot, oldest_kept_snapshot, purge, purge_before, read_epoch, read_snapshot,
    write_epoch, write_snapshot, write_snapshot_unsynced,
};

/// Prepares and applies a create, returning the log entry a server would write for it.
fn create(tree: &mut DataTree, zxid: i64, path: &str) -> LogEntry {
    let session = Session {
        id: 0x100,
        auth: &[],
    };
    let request = WriteRequest::Create {
        request: CreateRequest {
            path: path.into(),
            data: Some(Bytes::from(path.as_bytes().to_vec())),
            acl: Some(open_acl_unsafe()),
            flags: 0,
        },
        with_stat: false,
        container: false,
    };
    let prepared = prepare(tree, &session, zxid, 1_000 + zxid, &request);
    let r#type = prepared.txn.op_code().code();
    let header = TxnHeader {
        client_id: session.id,
        cxid: 1,
        zxid,
        time: 1_000 + zxid,
        r#type,
    };
    let digest = tree.digest().wrapping_add(prepared.digest_delta) as i64;
    tree.apply(&header, &prepared.txn);
    let digest = TxnDigest {
        version: zk_datatree::DIGEST_VERSION,
        tree_digest: digest,
    };
    LogEntry::new(header, &prepared.txn.encode(), Some(&digest))
}

#[test]
fn snapshot_then_log_restores_the_same_tree() {
    let dir = tempfile::tempdir().unwrap();
    let version2 = dir.path().join("version-2");
    let mut tree = DataTree::default();
    let mut log = FileTxnLog::open(&version2, LogOptions::default()).unwrap();
    for zxid in 1..=50 {
        log.append(&create(&mut tree, zxid, &format!("/n{zxid}")))
            .unwrap();
    }
    log.commit().unwrap();
    let sessions = BTreeMap::from([(0x100, 30_000)]);
    let digest = ZxidDigest {
        zxid: 50,
        version: 2,
        digest: tree.digest() as i64,
    };
    let path = write_snapshot(&version2, 50, &sessions, Some(digest), |w| {
        tree.write_body(w)
    })
    .unwrap();
    log.roll().unwrap();
    for zxid in 51..=80 {
        log.append(&create(&mut tree, zxid, &format!("/m{zxid}")))
            .unwrap();
    }
    log.commit().unwrap();

    let snap = read_snapshot(&path, |r, _| {
        DataTree::deserialize(r, TreeOptions::default(), |_| {})
    })
    .unwrap();
    assert_eq!((snap.sessions, snap.digest), (sessions, Some(digest)));

    let restored = common::restore_tree(dir.path());
    assert_eq!(restored.replayed, 30);
    assert_eq!(restored.last_zxid, 80);
    assert_eq!(restored.tree.dump(), tree.dump());
}

/// A periodic snapshot, written without fsyncs, is the same file as a synced one.
#[test]
fn an_unsynced_snapshot_is_the_same_file_as_a_synced_one() {
    let mut tree = DataTree::default();
    for zxid in 1..=50 {
        create(&mut tree, zxid, &format!("/n{zxid}"));
    }
    let sessions = BTreeMap::from([(0x100, 30_000)]);
    let digest = ZxidDigest {
        zxid: 50,
        version: 2,
        digest: tree.digest() as i64,
    };
    let (synced, unsynced) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = write_snapshot(synced.path(), 50, &sessions, Some(digest), |w| {
        tree.write_body(w)
    })
    .unwrap();
    let write = || {
        write_snapshot_unsynced(unsynced.path(), 50, &sessions, |w| {
            tree.write_body(w).map(|()| Some(digest))
        })
        .unwrap()
    };
    // Unpublished, it is not a snapshot yet, and dropped it leaves nothing.
    drop(write());
    assert_eq!(std::fs::read_dir(unsynced.path()).unwrap().count(), 0);
    let b = write().publish().unwrap();
    assert_eq!(a.file_name(), b.file_name());
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let snap = read_snapshot(&b, |r, _| {
        DataTree::deserialize(r, TreeOptions::default(), |_| {})
    })
    .unwrap();
    assert_eq!((snap.sessions, snap.digest), (sessions, Some(digest)));
    assert_eq!(snap.tree.dump(), tree.dump());
}

#[test]
fn group_commit_batches_many_appends_into_few_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileTxnLog::open(dir.path(), LogOptions::default()).unwrap();
    let writer = GroupCommit::start(log, GroupOptions::default());
    let mut tree = DataTree::default();
    let pending: Vec<_> = (1..=2_000)
        .map(|z| writer.append(create(&mut tree, z, &format!("/g{z}"))))
        .collect();
    for completion in pending {
        completion.wait().unwrap();
    }
    let stats = writer.stats();
    let (commits, entries) = (
        stats.commits.load(std::sync::atomic::Ordering::Relaxed),
        stats.entries.load(std::sync::atomic::Ordering::Relaxed),
    );
    assert_eq!(entries, 2_000);
    assert!(commits < entries, "{commits} commits for {entries} entries");
    writer.shutdown();
    let log = FileTxnLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.read_from(1).unwrap().len(), 2_000);
}

#[test]
fn the_watermark_follows_marked_appends_commit_by_commit() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileTxnLog::open(dir.path(), LogOptions::default()).unwrap();
    let writer = GroupCommit::start(log, GroupOptions::default());
    let mut durable = writer.durable();
    assert_eq!(durable.borrow_and_update().clone().unwrap(), 0);
    let mut tree = DataTree::default();
    for z in 1..=1_000 {
        writer.append_marked(create(&mut tree, z, &format!("/w{z}")));
    }
    // Marked and awaited appends mix; the watermark only moves forward, to 1,001.
    let last = writer.append(create(&mut tree, 1_001, "/w-last"));
    last.wait().unwrap();
    let mut seen = Vec::new();
    while durable.has_changed().unwrap() {
        seen.push(durable.borrow_and_update().clone().unwrap());
    }
    assert_eq!(seen.last(), Some(&1_001));
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    let commits = writer
        .stats()
        .commits
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        writer
            .stats()
            .entries
            .load(std::sync::atomic::Ordering::Relaxed),
        1_001
    );
    assert!(commits < 1_001, "{commits} commits");
    writer.shutdown();
    let log = FileTxnLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.read_from(1).unwrap().len(), 1_001);

    // A writer on an existing log starts at its last zxid.
    let writer = GroupCommit::start(log, GroupOptions::default());
    assert_eq!(writer.durable().borrow().clone().unwrap(), 1_001);
}

#[test]
fn epochs_are_decimal_text() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read_epoch(dir.path(), "currentEpoch").unwrap(), None);
    write_epoch(dir.path(), "currentEpoch", 7).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("currentEpoch")).unwrap(),
        "7"
    );
    assert_eq!(read_epoch(dir.path(), "currentEpoch").unwrap(), Some(7));
    std::fs::write(dir.path().join("acceptedEpoch"), "x").unwrap();
    assert!(read_epoch(dir.path(), "acceptedEpoch").is_err());
}

/// A data directory of `rounds` rounds of three creates, each round followed by a log
/// roll and a snapshot: snapshots at 3, 6, 9, ..., log files from 1, 4, 7, ....
fn rounds_of_three(rounds: i64) -> (tempfile::TempDir, FileTxnLog) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut tree = DataTree::default();
    let mut log = FileTxnLog::open(d, LogOptions::default()).unwrap();
    for zxid in 1..=rounds * 3 {
        log.append(&create(&mut tree, zxid, &format!("/p{zxid}")))
            .unwrap();
        if zxid % 3 == 0 {
            log.roll().unwrap();
            write_snapshot(d, zxid, &BTreeMap::new(), None, |w| tree.write_body(w)).unwrap();
        }
    }
    (dir, log)
}

/// The zxids the log holds, in order.
fn zxids(log: &FileTxnLog) -> Vec<i64> {
    log.read_from(0)
        .unwrap()
        .iter()
        .map(LogEntry::zxid)
        .collect()
}

/// The deleted files' names, sorted.
fn names(deleted: &[std::path::PathBuf]) -> Vec<String> {
    let mut names: Vec<String> = deleted
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn purge_keeps_the_newest_snapshots_and_the_logs_they_need() {
    let (dir, _log) = rounds_of_three(5);
    let d = dir.path();
    // Snapshots at 3, 6, 9, 12, 15; logs start at 1, 4, 7, 10, 13.
    let names = names(&purge(d, d, 3).unwrap());
    assert_eq!(names.len(), 4, "{names:?}");
    for gone in ["snapshot.3", "snapshot.6", "log.1", "log.4"] {
        assert!(names.contains(&gone.to_owned()), "{gone} in {names:?}");
    }
    // The oldest kept snapshot (9) still replays: log.7 holds zxid 10's predecessor range.
    assert!(d.join("log.7").exists() && d.join("snapshot.9").exists());
}

/// Snapshots a crash left torn (cut short, or empty: written without fsyncs) do not count
/// among those a purge keeps, as in ZooKeeper's `findNValidSnapshots`: the whole ones
/// before them stay, with the logs they need.
#[test]
fn purge_counts_only_whole_snapshots_as_kept() {
    let (dir, _log) = rounds_of_three(5);
    let d = dir.path();
    // Snapshots at 3, 6, 9, 12, 15; logs start at 1, 4, 7, 10, 13 (names in hex).
    let snapshot = |zxid| d.join(file_name("snapshot", zxid));
    assert!(is_valid_snapshot(&snapshot(15)));
    let whole = std::fs::read(snapshot(15)).unwrap();
    std::fs::write(snapshot(15), &whole[..whole.len() - 3]).unwrap();
    std::fs::write(snapshot(12), b"").unwrap();
    assert!(!is_valid_snapshot(&snapshot(15)));
    assert!(!is_valid_snapshot(&snapshot(12)));
    assert_eq!(oldest_kept_snapshot(d, 3).unwrap(), Some(3));
    assert!(purge(d, d, 3).unwrap().is_empty());
    // A whole one at 18 (15's bytes): 18, 9 and 6 are kept; 3 and log.1 go.
    std::fs::write(snapshot(18), &whole).unwrap();
    assert_eq!(names(&purge(d, d, 3).unwrap()), ["log.1", "snapshot.3"]);
}

#[test]
fn purge_before_a_zxid_keeps_the_log_file_that_holds_it() {
    let (dir, log) = rounds_of_three(3);
    let d = dir.path();
    // Snapshots at 3, 6, 9; logs start at 1, 4, 7.
    assert_eq!(oldest_kept_snapshot(d, 3).unwrap(), Some(3));
    assert_eq!(
        oldest_kept_snapshot(d, 1).unwrap(),
        Some(3),
        "at least 3 are kept"
    );
    // A member cut its history at 5 (not a snapshot): log.4 holds 5 and stays.
    assert_eq!(
        names(&purge_before(d, d, 5).unwrap()),
        ["log.1", "snapshot.3"]
    );
    assert_eq!(oldest_kept_snapshot(d, 3).unwrap(), Some(6));
    let left = zxids(&log);
    assert_eq!(left, (4..=9).collect::<Vec<_>>());
}

#[test]
fn a_write_is_readable_at_once_and_durable_once_its_sync_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut tree = DataTree::default();
    let mut log = FileTxnLog::open(dir.path(), LogOptions::default()).unwrap();
    assert!(
        log.write().unwrap().is_none(),
        "nothing appended, nothing to sync"
    );
    log.append(&create(&mut tree, 1, "/a")).unwrap();
    let pending = log.write().unwrap().expect("forceSync is on");
    // Appends and writes go on while the fsync is elsewhere.
    log.append(&create(&mut tree, 2, "/b")).unwrap();
    let second = log.write().unwrap().expect("a second write");
    std::thread::spawn(move || pending.sync())
        .join()
        .unwrap()
        .unwrap();
    second.sync().unwrap();
    assert_eq!(log.fsync_count(), 2);
    let read = zxids(&log);
    assert_eq!(read, [1, 2]);

    let off = LogOptions {
        force_sync: false,
        ..LogOptions::default()
    };
    let other = tempfile::tempdir().unwrap();
    let mut log = FileTxnLog::open(other.path(), off).unwrap();
    log.append(&create(&mut tree, 3, "/c")).unwrap();
    assert!(log.write().unwrap().is_none(), "forceSync off: no fsync");
    let read = zxids(&log);
    assert_eq!(read, [3]);
}

#[test]
fn the_preallocated_tail_is_written_with_zeros_ahead_of_the_entries() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        pre_alloc_size: 4 << 20,
        ..LogOptions::default()
    };
    let mut tree = DataTree::default();
    let mut log = FileTxnLog::open(dir.path(), options).unwrap();
    let long = "x".repeat(2_000);
    let mut expected = Vec::new();
    // About 4 KiB an entry, 10 a batch: 1,500 entries cross one preallocation step and
    // many zeroed stretches.
    for zxid in 1..=1_500 {
        let entry = create(&mut tree, zxid, &format!("/n{zxid}{long}"));
        expected.push(entry.clone());
        log.append(&entry).unwrap();
        if zxid % 10 == 0 {
            log.commit().unwrap();
        }
        if zxid == 1 {
            log.commit().unwrap();
            let file = &zk_persistence::log_files(dir.path()).unwrap()[0].1;
            let meta = std::fs::metadata(file).unwrap();
            assert_eq!(meta.len(), 4 << 20, "preallocated as ZooKeeper does");
            // ext4, xfs, btrfs and tmpfs count written zeros; a compressing filesystem
            // (ZFS) may store them as holes.
            #[cfg(target_os = "linux")]
            {
                use std::os::unix::fs::MetadataExt;
                let written = meta.blocks() * 512;
                assert!(
                    written >= 1 << 20,
                    "{written} bytes on disk: the first MiB ahead is not a hole"
                );
            }
        }
    }
    log.commit().unwrap();
    let file = &zk_persistence::log_files(dir.path()).unwrap()[0].1;
    assert_eq!(
        std::fs::metadata(file).unwrap().len(),
        8 << 20,
        "grown a step"
    );
    let reopened = FileTxnLog::open(dir.path(), options).unwrap();
    assert_eq!(
        reopened.read_from(0).unwrap(),
        expected,
        "zeros never land on entries"
    );
}
