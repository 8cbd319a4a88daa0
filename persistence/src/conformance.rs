//! The behaviour every [`TxnLog`] backend must show, as one suite: call [`run`] with a
//! function that opens the backend at a folder (reopening must see what was committed).
//! The file backend runs it in its tests; so must any other.
#![allow(clippy::panic, clippy::unwrap_used)]

use std::path::Path;

use zk_jute::txn::TxnHeader;

use crate::error::PersistenceError;
use crate::format::LogEntry;
use crate::log::TxnLog;

fn entry(zxid: i64) -> LogEntry {
    let header = TxnHeader {
        client_id: 7,
        cxid: zxid as i32,
        zxid,
        time: 1_000 + zxid,
        r#type: 5,
    };
    LogEntry::new(header, format!("txn {zxid}").as_bytes(), None)
}

fn zxids(entries: &[LogEntry]) -> Vec<i64> {
    entries.iter().map(LogEntry::zxid).collect()
}

/// Runs every check, each in a fresh sub-folder of `dir`. Panics, naming the check, on the
/// first behaviour that differs.
pub fn run<L: TxnLog>(dir: &Path, open: impl Fn(&Path) -> L) {
    let fresh = |name: &str| {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        sub
    };

    // Appends are read back in order, from any zxid, once committed and after reopening.
    let d = fresh("append");
    let mut log = open(&d);
    assert_eq!(log.last_zxid(), 0, "append: an empty log's last zxid");
    for zxid in 1..=10 {
        log.append(&entry(zxid)).unwrap();
    }
    log.commit().unwrap();
    assert_eq!(log.last_zxid(), 10, "append: last zxid");
    assert_eq!(
        zxids(&log.read_from(4).unwrap()),
        (4..=10).collect::<Vec<_>>(),
        "append: read_from"
    );
    drop(log);
    let log = open(&d);
    assert_eq!(log.last_zxid(), 10, "append: last zxid after reopening");
    assert_eq!(
        log.read_from(1).unwrap(),
        (1..=10).map(entry).collect::<Vec<_>>(),
        "append: entries"
    );

    // Zxids only go up.
    let d = fresh("order");
    let mut log = open(&d);
    log.append(&entry(5)).unwrap();
    assert!(
        matches!(
            log.append(&entry(5)),
            Err(PersistenceError::OutOfOrder { .. })
        ),
        "order: a repeated zxid is refused"
    );

    // Rolling starts a new segment; reads cross segments.
    let d = fresh("roll");
    let mut log = open(&d);
    for zxid in 1..=3 {
        log.append(&entry(zxid)).unwrap();
    }
    log.roll().unwrap();
    for zxid in 4..=6 {
        log.append(&entry(zxid)).unwrap();
    }
    log.commit().unwrap();
    assert_eq!(
        zxids(&log.read_from(2).unwrap()),
        [2, 3, 4, 5, 6],
        "roll: read across segments"
    );

    // Truncation removes everything after the zxid, durably; appends continue from there.
    let d = fresh("truncate");
    let mut log = open(&d);
    for zxid in 1..=4 {
        log.append(&entry(zxid)).unwrap();
    }
    log.roll().unwrap();
    for zxid in 5..=8 {
        log.append(&entry(zxid)).unwrap();
    }
    log.commit().unwrap();
    log.truncate(3).unwrap();
    assert_eq!(log.last_zxid(), 3, "truncate: last zxid");
    assert_eq!(
        zxids(&log.read_from(1).unwrap()),
        [1, 2, 3],
        "truncate: what remains"
    );
    log.append(&entry(4)).unwrap();
    log.commit().unwrap();
    drop(log);
    let log = open(&d);
    assert_eq!(
        zxids(&log.read_from(1).unwrap()),
        [1, 2, 3, 4],
        "truncate: after reopening"
    );

    // Purging drops whole segments before a zxid, never the one holding it.
    let d = fresh("purge");
    let mut log = open(&d);
    for (first, last) in [(1, 3), (4, 6), (7, 9)] {
        for zxid in first..=last {
            log.append(&entry(zxid)).unwrap();
        }
        log.roll().unwrap();
    }
    log.purge_before(5).unwrap();
    assert_eq!(
        zxids(&log.read_from(0).unwrap()),
        [4, 5, 6, 7, 8, 9],
        "purge: kept segments"
    );
}
