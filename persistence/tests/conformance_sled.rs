//! The sled backend passes the conformance suite every txn log backend must pass, and
//! what the file backend's own tests check: large entries, group commit, foreign databases
//! refused, and no acknowledged entry lost when the writing process is killed.
#![cfg(feature = "sled")]

mod common;

use zk_jute::txn::TxnHeader;
use zk_persistence::{
    GroupCommit, GroupOptions, LogEntry, PersistenceError, SledLogOptions, SledTxnLog, TxnLog,
    conformance,
};

fn entry(zxid: i64, body: &[u8]) -> LogEntry {
    let header = TxnHeader {
        client_id: 1,
        cxid: zxid as i32,
        zxid,
        time: 0,
        r#type: 5,
    };
    LogEntry::new(header, body, None)
}

#[test]
fn sled_backend_conforms() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run(dir.path(), |d| {
        SledTxnLog::open(d, SledLogOptions::default()).unwrap()
    });
}

#[test]
fn sled_backend_without_fsync_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let options = SledLogOptions {
        force_sync: false,
        ..SledLogOptions::default()
    };
    conformance::run(dir.path(), |d| SledTxnLog::open(d, options).unwrap());
}

#[test]
fn large_entries_survive_reopening() {
    // Values this large go to sled's blob files, which the log syncs itself.
    let dir = tempfile::tempdir().unwrap();
    let big = vec![7_u8; 600 * 1024];
    let mut log = SledTxnLog::open(dir.path(), SledLogOptions::default()).unwrap();
    log.append(&entry(1, &big)).unwrap();
    log.append(&entry(2, b"small")).unwrap();
    log.commit().unwrap();
    drop(log);
    let log = SledTxnLog::open(dir.path(), SledLogOptions::default()).unwrap();
    assert_eq!(log.last_zxid(), 2);
    assert_eq!(
        log.read_from(1).unwrap(),
        [entry(1, &big), entry(2, b"small")]
    );
}

#[test]
fn group_commit_over_sled() {
    let dir = tempfile::tempdir().unwrap();
    let log = SledTxnLog::open(dir.path(), SledLogOptions::default()).unwrap();
    let writer = GroupCommit::start(log, GroupOptions::default());
    let pending: Vec<_> = (1..=100)
        .map(|zxid| writer.append(entry(zxid, b"x")))
        .collect();
    for completion in pending {
        completion.wait().unwrap();
    }
    writer.truncate(50).wait().unwrap();
    writer.shutdown();
    let log = SledTxnLog::open(dir.path(), SledLogOptions::default()).unwrap();
    assert_eq!(log.last_zxid(), 50);
    assert_eq!(log.read_from(0).unwrap().len(), 50);
}

#[test]
fn another_sled_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::open(dir.path()).unwrap();
    db.insert(b"key", b"value").unwrap();
    db.flush().unwrap();
    drop(db);
    let opened = SledTxnLog::open(dir.path(), SledLogOptions::default());
    assert!(matches!(opened, Err(PersistenceError::Corrupt { .. })));
}

#[test]
fn an_interrupted_creation_is_started_again() {
    // What sled leaves when killed as it starts a database: an empty `conf` and `db`, and
    // our own half-built staging folder beside.
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("conf"), b"").unwrap();
    std::fs::write(dir.join("db"), b"").unwrap();
    std::fs::create_dir(parent.path().join("log.new")).unwrap();
    std::fs::write(parent.path().join("log.new").join("conf"), b"segm").unwrap();
    let mut log = SledTxnLog::open(&dir, SledLogOptions::default()).unwrap();
    assert_eq!(log.last_zxid(), 0);
    log.append(&entry(1, b"first")).unwrap();
    log.commit().unwrap();
    drop(log);
    assert!(!parent.path().join("log.new").exists());
    let log = SledTxnLog::open(&dir, SledLogOptions::default()).unwrap();
    assert_eq!(log.read_from(1).unwrap(), [entry(1, b"first")]);
}

#[test]
fn a_folder_holding_other_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let opened = SledTxnLog::open(dir.path(), SledLogOptions::default());
    assert!(matches!(opened, Err(PersistenceError::Corrupt { .. })));
    assert_eq!(
        std::fs::read(dir.path().join("notes.txt")).unwrap(),
        b"mine",
        "nothing of the folder is touched"
    );
}

const CHILD_ENV: &str = "ZK_PERSISTENCE_SLED_CRASH_DIR";

fn open_after_crash(dir: &std::path::Path) -> SledTxnLog {
    SledTxnLog::open(dir, SledLogOptions::default())
        .unwrap_or_else(|e| panic!("the log does not open: {e}"))
}

/// The child of the crash test: appends forever, printing each zxid once it is durable.
#[test]
fn sled_crash_child() {
    common::crash::child(CHILD_ENV, open_after_crash);
}

/// As the file backend's crash test: SIGKILL at random moments, 100 times over one folder;
/// each time the log opens and holds every acknowledged entry, whole, gapless, in order.
/// Every kill lands after the child's first acknowledgement: sled 0.34 killed while it
/// recovers a database on opening has been seen to leave one it refuses to open (twice in
/// about 650 such kills), a limitation of sled that the module's documentation states.
#[test]
fn killed_sled_writers_lose_nothing_acknowledged() {
    common::crash::kill_repeatedly(CHILD_ENV, "sled_crash_child", 100, true, open_after_crash);
}
