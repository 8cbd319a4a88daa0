//! Crash safety: a process appending through group commit is killed (SIGKILL) at random
//! moments, 100 times over one data folder. After each kill the log must open, hold every
//! entry whose completion had resolved, and hold nothing but whole entries, in zxid order
//! with no gap.

mod common;

use zk_persistence::{FileTxnLog, LogOptions};

const CHILD_ENV: &str = "ZK_PERSISTENCE_CRASH_DIR";

fn open(dir: &std::path::Path) -> FileTxnLog {
    let options = LogOptions {
        pre_alloc_size: 64 * 1024,
        ..LogOptions::default()
    };
    FileTxnLog::open(dir, options).unwrap_or_else(|e| panic!("the log does not open: {e}"))
}

/// The child: appends forever, printing each zxid once it is durable.
#[test]
fn crash_child() {
    common::crash::child(CHILD_ENV, open);
}

#[test]
fn killed_writers_lose_nothing_acknowledged() {
    common::crash::kill_repeatedly(CHILD_ENV, "crash_child", 100, false, open);
}
