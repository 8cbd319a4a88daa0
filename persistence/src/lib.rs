//! Apache ZooKeeper's transaction log and snapshot files, byte for byte.
//!
//! - [`FileTxnLog`]: `version-2/log.<zxid>` files (checksummed entries, preallocated in
//!   `preAllocSize` steps, rolled after snapshots); reads tolerate a torn tail and refuse
//!   any other damage with the file and offset. [`TxnLog`] is the trait a second backend
//!   implements; [`conformance`] is the suite every backend must pass.
//! - [`GroupCommit`]: a writer thread that commits many appends with one fsync; each append
//!   returns a [`Completion`] that resolves once its entry is durable.
//! - [`Syncer`]: for an owner that writes the log itself ([`FileTxnLog::write`]), its
//!   fsyncs on a thread of their own, each batch started as soon as the one before ends.
//! - Snapshots ([`write_snapshot`], [`read_snapshot`], [`read_newest`]): header, session
//!   table, the tree body (written and parsed by callbacks, so this crate needs no tree),
//!   seals and digest, as ZooKeeper 3.8 writes them; written past the page cache where
//!   the file system allows ([`SequentialFile`]).
//! - [`restore`] (newest valid snapshot, then the log after it), [`purge`], epoch files
//!   ([`read_epoch`], [`write_epoch`]), and [`SnapshotPolicy`] (`snapCount`).
//!
//! It knows nothing of trees or sessions beyond the bytes: txn bodies are opaque
//! ([`LogEntry::body`]) and tree bodies are the caller's.
//!
//! # Example
//!
//! ```
//! use zk_jute::txn::TxnHeader;
//! use zk_persistence::{FileTxnLog, GroupCommit, GroupOptions, LogEntry, LogOptions, TxnLog};
//!
//! let dir = tempfile::tempdir()?;
//! let log = FileTxnLog::open(dir.path().join("version-2"), LogOptions::default())?;
//! let writer = GroupCommit::start(log, GroupOptions::default());
//! let pending: Vec<_> = (1..=3)
//!     .map(|zxid| {
//!         let header = TxnHeader { client_id: 1, cxid: zxid as i32, zxid, time: 0, r#type: -10 };
//!         writer.append(LogEntry::new(header, &30_000_i32.to_be_bytes(), None))
//!     })
//!     .collect();
//! for completion in pending {
//!     completion.wait().expect("durable");
//! }
//! writer.shutdown();
//!
//! let log = FileTxnLog::open(dir.path().join("version-2"), LogOptions::default())?;
//! assert_eq!(log.read_from(2)?.iter().map(LogEntry::zxid).collect::<Vec<_>>(), [2, 3]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::panic))]

pub mod conformance;
mod direct;
mod error;
#[cfg(feature = "failpoints")]
mod failpoint;
mod format;
mod group;
mod log;
mod restore;
#[cfg(feature = "sled")]
mod sled_log;
mod snapshot;
mod syncer;

pub use direct::SequentialFile;
pub use error::{PersistenceError, Result};
pub use format::{
    FORMAT_VERSION, LOG_MAGIC, LogEntry, SNAP_MAGIC, VERSION_DIR, adler32, file_name, zxid_of,
};
pub use group::{Completion, Durable, GroupCommit, GroupOptions, GroupStats, Watermark};
pub use log::{
    FileTxnLog, LogOptions, ParsedLog, PendingSync, TxnLog, log_files, parse_file, parse_log,
};
pub use restore::{
    Restored, SnapshotPolicy, oldest_kept, oldest_kept_snapshot, purge, purge_before, read_epoch,
    restore, write_epoch,
};
#[cfg(feature = "sled")]
pub use sled_log::{SledLogOptions, SledTxnLog};
pub use snapshot::{
    BodyRecords, Snapshot, SnapshotEncoder, SnapshotStream, UnpublishedSnapshot, ZxidDigest,
    is_valid_snapshot, read_newest, read_snapshot, read_snapshot_bytes,
    remove_unfinished_snapshots, snapshot_bytes, snapshot_files, write_snapshot,
    write_snapshot_unsynced, write_snapshot_with,
};
pub use syncer::{Queued, Syncer};

// The README's examples, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
