//! What Zab keeps on disk, behind one narrow trait: the two epochs, and a log that can be
//! appended to, synced, truncated, reset to a snapshot's zxid, and read from a zxid in
//! batches while it grows. The core never calls it (it has no I/O); a runtime carries
//! the core's outputs out on it.
//!
//! - [`MemStorage`]: in memory, for tests and simulations; [`MemStorage::crash`] loses
//!   what was not synced, or part of it, as a disk does.
//! - [`FileStorage`]: ZooKeeper's files through `zk-persistence`: `acceptedEpoch` and
//!   `currentEpoch` (written to a temporary file, synced, renamed) and the `log.<zxid>`
//!   segments of `version-2/`. An entry's data is a log record as ZooKeeper's quorum
//!   packets carry it: the jute `TxnHeader` followed by the txn (and its digest).
//!
//! The same conformance checks run on both (`tests/storage.rs`).

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use zk_jute::{Reader, Record, Zxid, txn::TxnHeader};
use zk_persistence::{FileTxnLog, LogEntry, LogOptions, PendingSync, TxnLog};

use crate::history::History;
use crate::message::Entry;
use crate::zab::Persisted;

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The file backend failed.
    #[error(transparent)]
    Persistence(#[from] zk_persistence::PersistenceError),
    /// An entry whose data is not a log record (a `TxnHeader` and its txn).
    #[error("entry {zxid} is not a log record: {why}")]
    NotARecord {
        /// The entry's zxid.
        zxid: Zxid,
        /// What was wrong.
        why: String,
    },
    /// The log on disk is not one history (a hole, or zxids going back).
    #[error(transparent)]
    History(#[from] crate::error::HistoryError),
    /// An append out of order.
    #[error("append of {zxid} after {last}")]
    OutOfOrder {
        /// The last zxid.
        last: Zxid,
        /// The zxid refused.
        zxid: Zxid,
    },
}

/// Durable state of one member.
pub trait Storage {
    /// What is on disk, to start the core with ([`Zab::new`](crate::Zab::new)).
    fn persisted(&self) -> Result<Persisted, StorageError>;
    /// Writes and syncs `acceptedEpoch`.
    fn set_accepted_epoch(&mut self, epoch: u32) -> Result<(), StorageError>;
    /// Writes and syncs `currentEpoch`.
    fn set_current_epoch(&mut self, epoch: u32) -> Result<(), StorageError>;
    /// Appends an entry; it is durable after [`sync`](Storage::sync).
    fn append(&mut self, entry: &Entry) -> Result<(), StorageError>;
    /// Makes every append durable; returns the last durable zxid.
    fn sync(&mut self) -> Result<Zxid, StorageError>;
    /// Drops every entry after `zxid` (durably).
    fn truncate(&mut self, zxid: Zxid) -> Result<(), StorageError>;
    /// Empties the log: a snapshot at `zxid` holds everything (durably).
    fn reset(&mut self, zxid: Zxid) -> Result<(), StorageError>;
    /// Up to `max` entries in `(after, through]`, in order: call again from the last
    /// one returned to go on. Every append is seen, synced or not (a store may sync
    /// first).
    fn read(&mut self, after: Zxid, through: Zxid, max: usize) -> Result<Vec<Entry>, StorageError>;
}

/// What answers an [`Output::ReadLog`](crate::Output::ReadLog): the entries in
/// `(after, through]` read from `storage` in batches of `batch`, as
/// [`Input::LogRead`](crate::Input::LogRead)s in order, the last marked `last`.
pub fn read_log<S: Storage + ?Sized>(
    storage: &mut S,
    learner: crate::Sid,
    stream: u64,
    (after, through): (Zxid, Zxid),
    batch: usize,
) -> Result<Vec<crate::Input>, StorageError> {
    let mut reads = Vec::new();
    let mut from = after;
    loop {
        let entries = storage.read(from, through, batch)?;
        let last = entries.last().is_none_or(|e| e.zxid >= through);
        if let Some(e) = entries.last() {
            from = e.zxid;
        }
        reads.push(crate::Input::LogRead {
            learner,
            stream,
            entries,
            last,
        });
        if last {
            return Ok(reads);
        }
    }
}

/// [`Storage`] in memory. What was appended and not synced is lost by
/// [`crash`](MemStorage::crash).
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    accepted_epoch: u32,
    current_epoch: u32,
    base: Zxid,
    log: Vec<Entry>,
    synced: usize,
}

impl MemStorage {
    /// An empty store.
    pub fn new() -> Self {
        MemStorage::default()
    }

    /// A crash: of the unsynced appends, only the first `keep` survive (a torn tail).
    pub fn crash(&mut self, keep: usize) {
        let len = (self.synced + keep).min(self.log.len());
        self.log.truncate(len);
        self.synced = len;
    }

    /// Every entry, synced or not.
    pub fn entries(&self) -> &[Entry] {
        &self.log
    }

    /// The last zxid appended (the base when the log is empty).
    pub fn last(&self) -> Zxid {
        self.log.last().map_or(self.base, |e| e.zxid)
    }

    /// `(acceptedEpoch, currentEpoch)`.
    pub fn epochs(&self) -> (u32, u32) {
        (self.accepted_epoch, self.current_epoch)
    }

    /// How many appends are not synced.
    pub fn unsynced(&self) -> usize {
        self.log.len() - self.synced
    }

    /// Marks the entries at or below `zxid` synced, as an fsync started once they were
    /// appended does when it ends (a [`sync`](Storage::sync) split in two).
    pub fn sync_through(&mut self, zxid: Zxid) {
        let n = self.log.iter().take_while(|e| e.zxid <= zxid).count();
        self.synced = self.synced.max(n);
    }

    /// Autopurge: forgets the entries at or below `zxid`, which a snapshot the caller
    /// keeps holds (see [`Zab::compact`](crate::Zab::compact)); `zxid` becomes the base.
    /// Returns how many entries went.
    pub fn purge(&mut self, zxid: Zxid) -> usize {
        let gone = self.log.iter().take_while(|e| e.zxid <= zxid).count();
        self.log.drain(..gone);
        self.synced = self.synced.saturating_sub(gone);
        self.base = self.base.max(zxid);
        gone
    }
}

impl Storage for MemStorage {
    fn persisted(&self) -> Result<Persisted, StorageError> {
        Ok(Persisted {
            accepted_epoch: self.accepted_epoch,
            current_epoch: self.current_epoch,
            history: History::from_zxids(self.base, self.log.iter().map(|e| e.zxid))?,
        })
    }

    fn set_accepted_epoch(&mut self, epoch: u32) -> Result<(), StorageError> {
        self.accepted_epoch = epoch;
        Ok(())
    }

    fn set_current_epoch(&mut self, epoch: u32) -> Result<(), StorageError> {
        self.current_epoch = epoch;
        Ok(())
    }

    fn append(&mut self, entry: &Entry) -> Result<(), StorageError> {
        let last = self.last();
        if entry.zxid <= last {
            return Err(StorageError::OutOfOrder {
                last,
                zxid: entry.zxid,
            });
        }
        self.log.push(entry.clone());
        Ok(())
    }

    fn sync(&mut self) -> Result<Zxid, StorageError> {
        self.synced = self.log.len();
        Ok(self.last())
    }

    fn truncate(&mut self, zxid: Zxid) -> Result<(), StorageError> {
        self.log.retain(|e| e.zxid <= zxid);
        self.synced = self.synced.min(self.log.len());
        Ok(())
    }

    fn reset(&mut self, zxid: Zxid) -> Result<(), StorageError> {
        self.log.clear();
        self.synced = 0;
        self.base = zxid;
        Ok(())
    }

    fn read(&mut self, after: Zxid, through: Zxid, max: usize) -> Result<Vec<Entry>, StorageError> {
        Ok(self
            .log
            .iter()
            .filter(|e| e.zxid > after && e.zxid <= through)
            .take(max)
            .cloned()
            .collect())
    }
}

/// [`Storage`] on ZooKeeper's files.
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
    log: FileTxnLog,
    base: Zxid,
    accepted_epoch: u32,
    current_epoch: u32,
}

const ACCEPTED_EPOCH: &str = "acceptedEpoch";
const CURRENT_EPOCH: &str = "currentEpoch";

impl FileStorage {
    /// Opens the store of the data directory `dir` (its `version-2` folder holds the
    /// log), whose newest snapshot is at `snapshot_zxid` (0 for none). Missing epoch
    /// files read as 0.
    pub fn open(
        dir: &Path,
        snapshot_zxid: Zxid,
        options: LogOptions,
    ) -> Result<Self, StorageError> {
        let version_dir = dir.join("version-2");
        std::fs::create_dir_all(&version_dir)
            .map_err(|e| zk_persistence::PersistenceError::io(&version_dir, e))?;
        let log = FileTxnLog::open(&version_dir, options)?;
        let epoch = |name| -> Result<u32, StorageError> {
            let value = zk_persistence::read_epoch(&version_dir, name)?.unwrap_or(0);
            Ok(u32::try_from(value).unwrap_or(0))
        };
        Ok(FileStorage {
            accepted_epoch: epoch(ACCEPTED_EPOCH)?,
            current_epoch: epoch(CURRENT_EPOCH)?,
            dir: version_dir,
            log,
            base: snapshot_zxid,
        })
    }
}

/// A log record's bytes: the header, then the body.
fn to_data(entry: &LogEntry) -> Bytes {
    let mut out = BytesMut::with_capacity(entry.header.encoded_len() + entry.body.len());
    entry.header.encode(&mut out);
    out.extend_from_slice(&entry.body);
    out.freeze()
}

fn to_log_entry(entry: &Entry) -> Result<LogEntry, StorageError> {
    let mut reader = Reader::new(entry.data.clone());
    let header = TxnHeader::decode(&mut reader).map_err(|e| StorageError::NotARecord {
        zxid: entry.zxid,
        why: e.to_string(),
    })?;
    if header.zxid != entry.zxid.0 {
        return Err(StorageError::NotARecord {
            zxid: entry.zxid,
            why: format!("its header says zxid {:#x}", header.zxid),
        });
    }
    Ok(LogEntry {
        header,
        body: reader.rest().clone(),
    })
}

impl FileStorage {
    /// The first half of [`Storage::sync`], for a caller that fsyncs on another thread
    /// while it goes on appending: writes what was appended, and returns the last zxid
    /// written with the fsync that makes it durable (`None` when none is needed:
    /// `forceSync` is off, or nothing was appended since the last write, or what was
    /// appended was synced in place). A write's zxids are durable once its fsync and the
    /// fsyncs of every earlier write have returned (`zk_persistence::Syncer` runs them in
    /// order).
    pub fn write(&mut self) -> Result<(Zxid, Option<PendingSync>), StorageError> {
        let pending = self.log.write()?;
        Ok((Zxid(self.log.last_zxid()).max(self.base), pending))
    }

    /// Starts a new log file at the next append (ZooKeeper rolls its log at each
    /// snapshot, so that old files can be purged). What is buffered is committed first.
    pub fn roll(&mut self) -> Result<(), StorageError> {
        self.log.commit()?;
        self.log.roll()?;
        Ok(())
    }
}

impl Storage for FileStorage {
    fn persisted(&self) -> Result<Persisted, StorageError> {
        let zxids = self.log.read_from(0)?.into_iter().map(|e| Zxid(e.zxid()));
        Ok(Persisted {
            accepted_epoch: self.accepted_epoch,
            current_epoch: self.current_epoch,
            history: History::from_zxids(self.base, zxids)?,
        })
    }

    fn set_accepted_epoch(&mut self, epoch: u32) -> Result<(), StorageError> {
        zk_persistence::write_epoch(&self.dir, ACCEPTED_EPOCH, i64::from(epoch))?;
        self.accepted_epoch = epoch;
        Ok(())
    }

    fn set_current_epoch(&mut self, epoch: u32) -> Result<(), StorageError> {
        zk_persistence::write_epoch(&self.dir, CURRENT_EPOCH, i64::from(epoch))?;
        self.current_epoch = epoch;
        Ok(())
    }

    fn append(&mut self, entry: &Entry) -> Result<(), StorageError> {
        let last = Zxid(self.log.last_zxid()).max(self.base);
        if entry.zxid <= last {
            return Err(StorageError::OutOfOrder {
                last,
                zxid: entry.zxid,
            });
        }
        self.log.append(&to_log_entry(entry)?)?;
        Ok(())
    }

    fn sync(&mut self) -> Result<Zxid, StorageError> {
        self.log.commit()?;
        Ok(Zxid(self.log.last_zxid()).max(self.base))
    }

    fn truncate(&mut self, zxid: Zxid) -> Result<(), StorageError> {
        // The file log drops what it still buffers when it truncates: entries at or
        // below `zxid` among them go to disk first.
        self.log.commit()?;
        self.log.truncate(zxid.0)?;
        Ok(())
    }

    fn reset(&mut self, zxid: Zxid) -> Result<(), StorageError> {
        self.log.truncate(0)?;
        self.log.roll()?;
        self.base = zxid;
        Ok(())
    }

    fn read(&mut self, after: Zxid, through: Zxid, max: usize) -> Result<Vec<Entry>, StorageError> {
        // The file log reads from its files: what is still buffered goes to disk first.
        self.log.commit()?;
        Ok(self
            .log
            .read_from(after.0.saturating_add(1))?
            .iter()
            .filter(|e| e.zxid() <= through.0)
            .take(max)
            .map(|e| Entry {
                zxid: Zxid(e.zxid()),
                data: to_data(e),
            })
            .collect())
    }
}
