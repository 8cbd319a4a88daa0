//! One conformance suite for every [`Storage`]: the in-memory store and the one on
//! ZooKeeper's files run the same checks, restarts included.

use bytes::{BufMut, Bytes, BytesMut};
use zk_jute::{Record, Zxid, txn::TxnHeader};
use zk_persistence::LogOptions;
use zk_replication::storage::{FileStorage, MemStorage, Storage, StorageError};
use zk_replication::{Entry, History};

fn z(epoch: u32, counter: u32) -> Zxid {
    Zxid::new(epoch, counter)
}

/// A log record as a quorum packet carries it: header, then the txn's bytes.
fn record(zxid: Zxid) -> Entry {
    let header = TxnHeader {
        client_id: 0x100,
        cxid: 7,
        zxid: zxid.0,
        time: 1_700_000_000_000,
        r#type: 5,
    };
    let mut data = BytesMut::new();
    header.encode(&mut data);
    data.put_slice(b"\0\0\0\x02/a\0\0\0\x01x\0\0\0\x01");
    Entry {
        zxid,
        data: data.freeze(),
    }
}

fn zxids(entries: &[Entry]) -> Vec<Zxid> {
    entries.iter().map(|e| e.zxid).collect()
}

/// The checks, on a store made by `open` and reopened (as after a restart) by `reopen`.
fn conformance<S: Storage>(mut store: S, reopen: impl Fn(S, Zxid) -> S) {
    let p = store.persisted().unwrap();
    assert_eq!((p.accepted_epoch, p.current_epoch), (0, 0));
    assert_eq!(p.history, History::new(Zxid(0)));

    store.set_accepted_epoch(2).unwrap();
    store.set_current_epoch(1).unwrap();
    for c in 1..=5 {
        store.append(&record(z(1, c))).unwrap();
    }
    assert_eq!(store.sync().unwrap(), z(1, 5));
    assert!(matches!(
        store.append(&record(z(1, 5))),
        Err(StorageError::OutOfOrder { .. })
    ));
    // Read in batches while appending.
    assert_eq!(
        zxids(&store.read(Zxid(0), z(1, 5), 2).unwrap()),
        [z(1, 1), z(1, 2)]
    );
    store.append(&record(z(1, 6))).unwrap();
    assert_eq!(
        zxids(&store.read(z(1, 2), z(1, 6), 10).unwrap()),
        [z(1, 3), z(1, 4), z(1, 5), z(1, 6)]
    );
    assert_eq!(store.read(z(1, 1), z(1, 1), 10).unwrap(), []);
    // What is read is what was written.
    assert_eq!(store.read(z(1, 3), z(1, 4), 1).unwrap(), [record(z(1, 4))]);
    store.sync().unwrap();

    let mut store = reopen(store, Zxid(0));
    let p = store.persisted().unwrap();
    assert_eq!((p.accepted_epoch, p.current_epoch), (2, 1));
    assert_eq!(p.history.last(), z(1, 6));

    // Appends not yet synced, at or below the truncation point, are kept.
    store.append(&record(z(1, 7))).unwrap();
    store.append(&record(z(1, 8))).unwrap();
    store.truncate(z(1, 7)).unwrap();
    assert_eq!(store.persisted().unwrap().history.last(), z(1, 7));
    store.truncate(z(1, 3)).unwrap();
    assert_eq!(store.persisted().unwrap().history.last(), z(1, 3));
    store.append(&record(z(2, 1))).unwrap();
    store.sync().unwrap();
    let mut store = reopen(store, Zxid(0));
    let h = store.persisted().unwrap().history;
    assert_eq!(h.last(), z(2, 1));
    assert!(h.contains(z(1, 3)) && !h.contains(z(1, 4)));

    // A snapshot at 2:9 replaces the log.
    store.reset(z(2, 9)).unwrap();
    assert_eq!(store.persisted().unwrap().history, History::new(z(2, 9)));
    store.append(&record(z(2, 10))).unwrap();
    store.sync().unwrap();
    let mut store = reopen(store, z(2, 9));
    let h = store.persisted().unwrap().history;
    assert_eq!((h.base(), h.last()), (z(2, 9), z(2, 10)));
    assert_eq!(
        zxids(&store.read(z(2, 9), z(2, 10), 10).unwrap()),
        [z(2, 10)]
    );
}

#[test]
fn memory_storage_conforms() {
    conformance(MemStorage::new(), |store, _| store);
}

#[test]
fn file_storage_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let open = |base| FileStorage::open(dir.path(), base, LogOptions::default()).unwrap();
    conformance(open(Zxid(0)), |store, base| {
        drop(store);
        open(base)
    });
    // ZooKeeper's file names.
    let names: Vec<String> = std::fs::read_dir(dir.path().join("version-2"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"acceptedEpoch".to_string()), "{names:?}");
    assert!(names.contains(&"currentEpoch".to_string()), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("log.")), "{names:?}");
}

#[test]
fn memory_storage_loses_what_was_not_synced() {
    let mut store = MemStorage::new();
    for c in 1..=3 {
        store.append(&record(z(1, c))).unwrap();
    }
    store.sync().unwrap();
    for c in 4..=6 {
        store.append(&record(z(1, c))).unwrap();
    }
    store.crash(1);
    assert_eq!(store.persisted().unwrap().history.last(), z(1, 4));
}

#[test]
fn file_storage_refuses_an_entry_that_is_not_a_log_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStorage::open(dir.path(), Zxid(0), LogOptions::default()).unwrap();
    let garbage = Entry::new(z(1, 1), Bytes::from_static(b"\x01\x02"));
    assert!(matches!(
        store.append(&garbage),
        Err(StorageError::NotARecord { .. })
    ));
    // A header naming another zxid.
    let mut wrong = record(z(1, 2));
    wrong.zxid = z(1, 1);
    assert!(matches!(
        store.append(&wrong),
        Err(StorageError::NotARecord { .. })
    ));
}
