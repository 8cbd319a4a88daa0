//! Damaged files: each gives a clear error naming file and offset, or a documented
//! recovery (a torn tail is trimmed; an empty log file is an empty log; a bad snapshot is
//! skipped for an older one). Nothing panics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zk_jute::txn::TxnHeader;
use zk_persistence::{
    FileTxnLog, LogEntry, LogOptions, PersistenceError, TxnLog, log_files, parse_file, read_newest,
    read_snapshot, remove_unfinished_snapshots, write_snapshot,
};

fn entry(zxid: i64) -> LogEntry {
    let header = TxnHeader {
        client_id: 1,
        cxid: 1,
        zxid,
        time: 5,
        r#type: 5,
    };
    LogEntry::new(header, &[zxid as u8; 40], None)
}

/// A log folder with one file of `n` entries; returns the file.
fn log_with(dir: &Path, n: i64) -> PathBuf {
    let options = LogOptions {
        pre_alloc_size: 16 * 1024,
        ..LogOptions::default()
    };
    let mut log = FileTxnLog::open(dir, options).unwrap();
    for zxid in 1..=n {
        log.append(&entry(zxid)).unwrap();
    }
    log.commit().unwrap();
    log_files(dir).unwrap().pop().unwrap().1
}

const ENTRY_LEN: u64 = 8 + 4 + 32 + 40 + 1;

fn corrupt_at(path: &Path) -> Option<u64> {
    match parse_file(path) {
        Err(PersistenceError::Corrupt {
            path: p, offset, ..
        }) if p == path => Some(offset),
        _ => None,
    }
}

#[test]
fn garbage_in_the_middle_of_a_log_is_an_error_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 5);
    let mut bytes = std::fs::read(&path).unwrap();
    let second = 16 + ENTRY_LEN;
    bytes[(second + 30) as usize] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(corrupt_at(&path), Some(second));
    let err = FileTxnLog::open(dir.path(), LogOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("at byte {second}: checksum mismatch")),
        "{err}"
    );
}

#[test]
fn a_torn_tail_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_with(dir.path(), 5);
    let mut bytes = std::fs::read(&path).unwrap();
    // The last entry was half written when the machine stopped; the rest is preallocation.
    let last = 16 + 4 * ENTRY_LEN;
    for b in &mut bytes[(last + 20) as usize..(last + ENTRY_LEN) as usize] {
        *b = 0;
    }
    std::fs::write(&path, &bytes).unwrap();
    let parsed = parse_file(&path).unwrap();
    assert_eq!(parsed.entries.len(), 4);
    assert!(parsed.torn_tail > 0);
    // Cut short in the middle of an entry, without preallocation after it.
    std::fs::write(&path, &bytes[..(last + 20) as usize]).unwrap();
    assert_eq!(parse_file(&path).unwrap().entries.len(), 4);
    let log = FileTxnLog::open(dir.path(), LogOptions::default()).unwrap();
    assert_eq!(log.last_zxid(), 4);
}

#[test]
fn bad_headers_and_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.1");
    std::fs::write(&path, b"ZKXG\0\0").unwrap();
    assert_eq!(corrupt_at(&path), Some(0));
    // Part of a valid header: the process stopped while creating the file.
    std::fs::write(&path, b"ZKLG\0\0").unwrap();
    assert!(parse_file(&path).unwrap().entries.is_empty());
    std::fs::write(&path, b"ZKSN\0\0\0\x02\0\0\0\0\0\0\0\0").unwrap();
    let err = parse_file(&path).unwrap_err();
    assert!(err.to_string().contains("not a ZooKeeper txn log"), "{err}");
    // Created but never written (a crash right after creating it): an empty log.
    std::fs::write(&path, b"").unwrap();
    assert!(parse_file(&path).unwrap().entries.is_empty());
    assert_eq!(
        FileTxnLog::open(dir.path(), LogOptions::default())
            .unwrap()
            .last_zxid(),
        0
    );
}

fn snapshot(dir: &Path, zxid: i64, body: &[u8]) -> PathBuf {
    let sessions = BTreeMap::from([(0x100, 30_000)]);
    write_snapshot(dir, zxid, &sessions, None, |w| w.write_all(body)).unwrap()
}

fn parse_body(r: &mut zk_jute::Reader, _: &BTreeMap<i64, i32>) -> Result<Vec<u8>, String> {
    let len = 8;
    let body = r.rest().get(..len).ok_or("short")?.to_vec();
    for _ in 0..len {
        let _ = <bool as zk_jute::Record>::decode(r);
    }
    Ok(body)
}

#[test]
fn a_snapshot_with_a_bad_seal_is_refused_and_an_older_one_used() {
    let dir = tempfile::tempdir().unwrap();
    snapshot(dir.path(), 5, b"older!!!");
    let newer = snapshot(dir.path(), 9, b"newer!!!");
    assert_eq!(read_snapshot(&newer, parse_body).unwrap().tree, b"newer!!!");
    let mut bytes = std::fs::read(&newer).unwrap();
    bytes[30] ^= 1; // inside the body
    std::fs::write(&newer, &bytes).unwrap();
    let err = read_snapshot(&newer, parse_body).unwrap_err();
    assert!(err.to_string().contains("seal checksum"), "{err}");
    let used = read_newest(dir.path(), 100, parse_body).unwrap().unwrap();
    assert_eq!((used.zxid, used.tree.as_slice()), (5, &b"older!!!"[..]));
    // Truncated: cut before the seal.
    std::fs::write(&newer, &bytes[..bytes.len() - 6]).unwrap();
    assert!(read_snapshot(&newer, parse_body).is_err());
    // Not a snapshot at all.
    std::fs::write(&newer, b"garbage").unwrap();
    let err = read_snapshot(&newer, parse_body).unwrap_err();
    assert!(
        matches!(err, PersistenceError::Corrupt { offset: 0, .. }),
        "{err}"
    );
}

#[test]
fn unfinished_snapshots_are_removed_and_finished_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let kept = snapshot(dir.path(), 5, b"kept!!!!");
    let unfinished = dir.path().join("snapshot.9.tmp");
    std::fs::write(&unfinished, b"half").unwrap();
    let removed = remove_unfinished_snapshots(dir.path()).unwrap();
    assert_eq!(removed, std::slice::from_ref(&unfinished));
    assert!(!unfinished.exists() && kept.exists());
    assert!(remove_unfinished_snapshots(dir.path()).unwrap().is_empty());
}

#[test]
fn snapshots_none_of_which_is_valid_are_refused_rather_than_ignored() {
    // Starting from the logs alone would silently lose what the snapshots held.
    let dir = tempfile::tempdir().unwrap();
    assert!(read_newest(dir.path(), 100, parse_body).unwrap().is_none());
    let only = snapshot(dir.path(), 5, b"only!!!!");
    std::fs::write(&only, b"garbage").unwrap();
    let err = read_newest(dir.path(), 100, parse_body).unwrap_err();
    assert!(
        matches!(err, PersistenceError::NoValidSnapshot { tried: 1, .. }),
        "{err}"
    );
}

/// A logged txn the caller cannot replay (its body does not decode) stops the restore
/// with an error naming its zxid; nothing after it is applied.
#[test]
fn a_txn_that_cannot_be_replayed_stops_the_restore() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 4);
    let log = FileTxnLog::open(dir.path(), LogOptions::default()).unwrap();
    let mut applied = Vec::new();
    let result = zk_persistence::restore(
        dir.path(),
        &log,
        |_, _| Ok::<Vec<i64>, String>(Vec::new()),
        Vec::new,
        |tree: &mut Vec<i64>, e, _| {
            if e.zxid() == 3 {
                return Err("body does not decode".to_string());
            }
            tree.push(e.zxid());
            applied.push(e.zxid());
            Ok(())
        },
    );
    match result {
        Err(PersistenceError::Replay { zxid: 3, reason }) => {
            assert_eq!(reason, "body does not decode")
        }
        other => panic!("{:?}", other.map(|r| r.last_zxid)),
    }
    assert_eq!(applied, [1, 2]);
}
