//! The sled backend (`SledTxnLog`, cargo feature `sled`) against the file backend, in the
//! same run: raw fsync latency of this disk; appends/s and completion latency through
//! `GroupCommit` with 1, 16 and 256 appenders (forceSync on and off), the two backends taking
//! turns on each load, three rounds, medians reported; the cost of one append and commit
//! called directly; and the restore of 1M txns from each.
//! `cargo bench -p zk-persistence --features sled --bench sled_log`.

mod common;

use criterion::Criterion;
use zk_persistence::{FileTxnLog, LogOptions, SledLogOptions, SledTxnLog};

fn file_options(force_sync: bool) -> LogOptions {
    LogOptions {
        force_sync,
        ..LogOptions::default()
    }
}

fn sled_options(force_sync: bool) -> SledLogOptions {
    SledLogOptions {
        force_sync,
        ..SledLogOptions::default()
    }
}

fn main() {
    let scratch = tempfile::tempdir().expect("temp dir");
    common::raw_fsync(scratch.path(), 2_000);
    let file = common::backend("file", |dir, force_sync| {
        FileTxnLog::open(dir, file_options(force_sync)).expect("log opens")
    });
    let sled = common::backend("sled", |dir, force_sync| {
        SledTxnLog::open(dir, sled_options(force_sync)).expect("log opens")
    });
    common::loads(&[file, sled], 3);
    common::direct(
        "file",
        FileTxnLog::open(scratch.path().join("direct-file"), file_options(false))
            .expect("log opens"),
    );
    common::direct(
        "sled",
        SledTxnLog::open(scratch.path().join("direct-sled"), sled_options(false))
            .expect("log opens"),
    );

    let file_dir = scratch.path().join("restore-file");
    let sled_dir = scratch.path().join("restore-sled");
    common::fill(
        "file",
        &file_dir,
        FileTxnLog::open(&file_dir, file_options(false)).expect("log opens"),
    );
    common::fill(
        "sled",
        &sled_dir,
        SledTxnLog::open(&sled_dir, sled_options(false)).expect("log opens"),
    );
    let mut c = Criterion::default().configure_from_args();
    common::restore_bench(&mut c, "file", &file_dir, |dir| {
        FileTxnLog::open(dir, file_options(true)).expect("log opens")
    });
    common::restore_bench(&mut c, "sled", &sled_dir, |dir| {
        SledTxnLog::open(dir, sled_options(true)).expect("log opens")
    });
    c.final_summary();
}
