//! The sled backend (`SledTxnLog`, cargo feature `sled`), measured as `log` measures the file
//! backend: raw fsync latency of this disk, appends/s and completion latency through
//! `GroupCommit` with 1, 16 and 256 appenders (forceSync on and off), and the restore of 1M
//! txns. `cargo bench -p zk-persistence --features sled --bench sled_log`.

mod common;

use criterion::Criterion;
use zk_persistence::{SledLogOptions, SledTxnLog};

fn options(force_sync: bool) -> SledLogOptions {
    SledLogOptions {
        force_sync,
        ..SledLogOptions::default()
    }
}

fn main() {
    let scratch = tempfile::tempdir().expect("temp dir");
    common::raw_fsync(scratch.path(), 2_000);
    common::loads("sled", |dir, force_sync| {
        SledTxnLog::open(dir, options(force_sync)).expect("log opens")
    });

    let dir = scratch.path().join("restore");
    common::fill(
        "sled",
        &dir,
        SledTxnLog::open(&dir, options(false)).expect("log opens"),
    );
    let mut c = Criterion::default().configure_from_args();
    common::restore_bench(&mut c, "sled", &dir, |dir| {
        SledTxnLog::open(dir, options(true)).expect("log opens")
    });
    c.final_summary();
}
