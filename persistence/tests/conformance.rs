//! The file backend passes the conformance suite every txn log backend must pass.

use zk_persistence::{FileTxnLog, LogOptions, conformance};

#[test]
fn file_backend_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        pre_alloc_size: 64 * 1024,
        ..LogOptions::default()
    };
    conformance::run(dir.path(), |d| FileTxnLog::open(d, options).unwrap());
}

#[test]
fn file_backend_without_fsync_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        force_sync: false,
        ..LogOptions::default()
    };
    conformance::run(dir.path(), |d| FileTxnLog::open(d, options).unwrap());
}
