//! The file backend (`FileTxnLog`): raw fsync latency of this disk; appends/s and completion
//! latency through `GroupCommit` with 1, 16 and 256 appenders (forceSync on and off); the
//! cost of one append and commit called directly; and the restore of 1M txns.
//! `cargo bench -p zk-persistence --bench log`. The comparison with sled (both backends
//! taking turns, three rounds) is `cargo bench -p zk-persistence --features sled --bench
//! sled_log`.

mod common;

use criterion::Criterion;
use zk_persistence::{FileTxnLog, LogOptions};

fn options(force_sync: bool) -> LogOptions {
    LogOptions {
        force_sync,
        ..LogOptions::default()
    }
}

fn main() {
    let scratch = tempfile::tempdir().expect("temp dir");
    common::raw_fsync(scratch.path(), 2_000);
    let file = common::backend("file", |dir, force_sync| {
        FileTxnLog::open(dir, options(force_sync)).expect("log opens")
    });
    common::loads(&[file], 1);
    common::direct(
        "file",
        FileTxnLog::open(scratch.path().join("direct"), options(false)).expect("log opens"),
    );

    let dir = scratch.path().join("restore");
    common::fill(
        "file",
        &dir,
        FileTxnLog::open(&dir, options(false)).expect("log opens"),
    );
    let mut c = Criterion::default().configure_from_args();
    common::restore_bench(&mut c, "file", &dir, |dir| {
        FileTxnLog::open(dir, options(true)).expect("log opens")
    });
    c.final_summary();
}
