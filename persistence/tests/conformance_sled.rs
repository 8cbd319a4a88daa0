//! The sled backend passes the conformance suite every txn log backend must pass, and
//! what the file backend's own tests check: large entries, group commit, foreign databases
//! refused, and no acknowledged entry lost when the writing process is killed.
#![cfg(feature = "sled")]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

const CHILD_ENV: &str = "ZK_PERSISTENCE_SLED_CRASH_DIR";
const KILLS: u64 = 100;

fn crash_body(zxid: i64) -> Vec<u8> {
    vec![(zxid % 251) as u8; 20 + (zxid % 200) as usize]
}

/// The child of the crash test: appends forever, printing each zxid once it is durable.
#[test]
fn sled_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let log = SledTxnLog::open(&dir, SledLogOptions::default()).expect("opens after a crash");
    let mut zxid = log.last_zxid();
    let writer = GroupCommit::start(log, GroupOptions::default());
    let mut stdout = std::io::stdout().lock();
    let mut in_flight = std::collections::VecDeque::new();
    loop {
        while in_flight.len() < 64 {
            zxid += 1;
            in_flight.push_back((zxid, writer.append(entry(zxid, &crash_body(zxid)))));
        }
        let (done, completion) = in_flight.pop_front().unwrap();
        completion.wait().expect("durable");
        writeln!(stdout, "{done}").unwrap();
        stdout.flush().unwrap();
    }
}

/// As the file backend's crash test: SIGKILL at random moments, 100 times over one folder;
/// each time the log opens and holds every acknowledged entry, whole, gapless, in order.
#[test]
fn killed_sled_writers_lose_nothing_acknowledged() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut acknowledged_max = 0_i64;
    for kill in 0..KILLS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Every other kill waits for the first acknowledgement (sled takes a while to open
        // in a debug build); the others may land while the child is still opening.
        let wait_for_ack = kill % 2 == 0;
        let run_for = Duration::from_millis(5 + seed % if wait_for_ack { 40 } else { 200 });
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "sled_crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_tx, first_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut max = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(zxid) = line.parse::<i64>() {
                    if max.is_none() {
                        let _ = first_tx.send(());
                    }
                    max = max.max(Some(zxid));
                }
            }
            max
        });
        if wait_for_ack {
            let _ = first_rx.recv_timeout(Duration::from_secs(10));
        }
        let started = Instant::now();
        while started.elapsed() < run_for {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if let Some(max) = reader.join().unwrap() {
            acknowledged_max = acknowledged_max.max(max);
        }

        let log = SledTxnLog::open(dir.path(), SledLogOptions::default())
            .unwrap_or_else(|e| panic!("kill {kill}: the log does not open: {e}"));
        let entries = log
            .read_from(1)
            .unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        let zxids: Vec<i64> = entries.iter().map(LogEntry::zxid).collect();
        let expected: Vec<i64> = (1..=zxids.len() as i64).collect();
        assert_eq!(zxids, expected, "kill {kill}: ordered and gapless");
        assert_eq!(
            log.last_zxid(),
            zxids.len() as i64,
            "kill {kill}: last zxid"
        );
        assert!(
            zxids.len() as i64 >= acknowledged_max,
            "kill {kill}: acknowledged up to {acknowledged_max}, found {}",
            zxids.len()
        );
        for e in &entries {
            assert_eq!(
                e.body,
                crash_body(e.zxid()),
                "kill {kill}: zxid {}",
                e.zxid()
            );
        }
    }
    assert!(acknowledged_max > 0, "the children acknowledged nothing");
}
