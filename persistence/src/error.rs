//! What can go wrong with ZooKeeper's files.

use std::path::PathBuf;

/// A persistence failure, naming the file (and offset) involved.
#[derive(Debug, thiserror::Error)]
pub enum PersistenceError {
    /// An I/O operation on a file or folder failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file's contents are not what the format allows, somewhere other than a torn tail.
    #[error("{path} at byte {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the bad bytes start.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An append's zxid does not follow the last one.
    #[error("zxid {zxid:#x} does not follow the last logged zxid {last:#x}")]
    OutOfOrder {
        /// The zxid appended.
        zxid: i64,
        /// The last zxid in the log.
        last: i64,
    },
    /// A logged txn that cannot be replayed (its body does not decode): restoring stops
    /// there, as ZooKeeper's does, instead of skipping it and serving a different state.
    #[error("txn {zxid:#x} in the log cannot be replayed: {reason}")]
    Replay {
        /// The txn's zxid.
        zxid: i64,
        /// Why.
        reason: String,
    },
    /// The log writer has stopped (it failed earlier, or was shut down).
    #[error("the txn log writer has stopped")]
    Stopped,
    /// A folder holds snapshots and none of those tried is valid: starting from the logs
    /// alone would lose what the snapshots held, so ZooKeeper refuses too.
    #[error("{dir}: none of the newest {tried} snapshots is valid")]
    NoValidSnapshot {
        /// The folder.
        dir: PathBuf,
        /// How many snapshots were tried.
        tried: usize,
    },
}

impl PersistenceError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A corruption of `path` at `offset`.
    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}

/// Results of this crate.
pub type Result<T, E = PersistenceError> = std::result::Result<T, E>;
