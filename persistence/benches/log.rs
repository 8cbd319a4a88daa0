//! The file backend (`FileTxnLog`): raw fsync latency of this disk, appends/s and completion
//! latency through `GroupCommit` with 1, 16 and 256 appenders (forceSync on and off), and
//! the restore of 1M txns. `cargo bench -p zk-persistence --bench log`; the sled backend's
//! counterpart is `--features sled --bench sled_log`.

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
    common::loads("file", |dir, force_sync| {
        FileTxnLog::open(dir, options(force_sync)).expect("log opens")
    });

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
