//! The [sled](https://docs.rs/sled/0.34) backend of [`TxnLog`] (cargo feature `sled`): the
//! same semantics as [`FileTxnLog`](crate::FileTxnLog), in a sled database folder instead
//! of ZooKeeper's `log.<zxid>` files. ZooKeeper's own tools cannot read it.
//!
//! Layout (one sled tree, so that a commit is one atomic sled batch):
//!
//! - `e` + zxid → the marshalled entry (header then body, as [`LogEntry::marshal`]). The
//!   zxid is 8 big-endian bytes with the sign bit flipped, so key order is zxid order.
//! - `s` + zxid → nothing: a segment starts at that zxid. [`TxnLog::roll`] ends the current
//!   segment and the next append starts a new one, as the file backend starts a new file;
//!   segments exist only so that [`TxnLog::purge_before`] drops exactly what the file
//!   backend would (whole segments before the one holding the zxid).
//! - `format` → a version string, checked on opening.
//!
//! Durability: [`TxnLog::commit`] applies the batch of appends, then calls sled's
//! `Db::flush` and, because sled 0.34 on Linux ends a flush with `sync_file_range` (which
//! neither flushes the disk's write cache nor the file's size), fdatasyncs sled's `db` file
//! and any new file in its `blobs` folder (sled writes values too large for its pages there,
//! without syncing them). With `force_sync` off a commit only reaches sled's memory; sled
//! writes and syncs it within `flush_every` (500 ms by default), so unlike the file backend,
//! whose unsynced writes are in the OS's cache, a crash of the *process* can lose
//! acknowledged entries too.
//!
//! Crash safety has a limit of sled's own: a process killed while sled 0.34 recovers a
//! database on opening can leave one that sled then refuses to open ("sled found
//! corruption"); our SIGKILL tests saw it twice in about 650 kills that could land while
//! the log was opening (once in CI), and never in 3,000 kills after it had opened. The file backend has no such window, one more reason
//! it is the default. (A kill while a *new* log is being made is safe: see [`SledTxnLog::open`].)

use std::collections::HashSet;
use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::{PersistenceError, Result};
use crate::format::LogEntry;
use crate::log::{LogOptions, TxnLog};

const ENTRY: u8 = b'e';
const SEGMENT: u8 = b's';
const FORMAT_KEY: &[u8] = b"format";
const FORMAT: &[u8] = b"zk-persistence sled txn log 1";

/// Settings of the sled log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SledLogOptions {
    /// Whether commits flush and fsync (ZooKeeper's `forceSync`).
    pub force_sync: bool,
    /// A commit whose flush takes longer than this logs a warning
    /// (ZooKeeper's `fsync.warningthresholdms`).
    pub fsync_warning: Duration,
    /// sled's page cache, in bytes (sled's default: 1 GiB).
    pub cache_capacity: u64,
    /// How often sled writes and syncs on its own (sled's default: 500 ms); `None` never.
    /// This bounds what a crash loses when `force_sync` is off.
    pub flush_every: Option<Duration>,
}

impl Default for SledLogOptions {
    fn default() -> Self {
        Self {
            force_sync: true,
            fsync_warning: Duration::from_millis(1000),
            cache_capacity: 1024 * 1024 * 1024,
            flush_every: Some(Duration::from_millis(500)),
        }
    }
}

impl From<LogOptions> for SledLogOptions {
    /// `forceSync` and the fsync warning carry over; `preAllocSize` has no meaning here.
    fn from(options: LogOptions) -> Self {
        Self {
            force_sync: options.force_sync,
            fsync_warning: options.fsync_warning,
            ..Self::default()
        }
    }
}

/// The sled backend of [`TxnLog`], in a folder of its own.
pub struct SledTxnLog {
    dir: PathBuf,
    options: SledLogOptions,
    db: sled::Db,
    /// sled's data file, opened again to fdatasync it.
    data_file: File,
    /// Blob files already synced.
    synced_blobs: HashSet<PathBuf>,
    pending: sled::Batch,
    pending_len: usize,
    /// Whether the current segment has its marker (false after `roll`, `truncate`, opening).
    segment_open: bool,
    last_zxid: i64,
    fsync_count: u64,
}

impl std::fmt::Debug for SledTxnLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledTxnLog")
            .field("dir", &self.dir)
            .field("last_zxid", &self.last_zxid)
            .finish()
    }
}

/// The key of `zxid` under `prefix`: sign bit flipped, big-endian, so keys sort as zxids.
fn key(prefix: u8, zxid: i64) -> [u8; 9] {
    let mut out = [prefix; 9];
    let ordered = (zxid as u64 ^ (1 << 63)).to_be_bytes();
    out[1..].copy_from_slice(&ordered);
    out
}

/// The zxid of a key made by [`key`].
fn zxid_of_key(key: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    Some((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

/// Every key under `prefix` from `from` (inclusive or not) on.
fn range_from(prefix: u8, from: Bound<i64>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let start = match from {
        Bound::Included(z) => Bound::Included(key(prefix, z).to_vec()),
        Bound::Excluded(z) => Bound::Excluded(key(prefix, z).to_vec()),
        Bound::Unbounded => Bound::Included(vec![prefix]),
    };
    (start, Bound::Excluded(vec![prefix + 1]))
}

impl SledTxnLog {
    /// Opens (creating if needed) the log in `dir`, a folder sled owns. A folder holding
    /// some other sled database is refused.
    ///
    /// A new log is made in a staging folder beside `dir` and renamed into place once
    /// whole: sled 0.34 writes its `conf` file in two unsynced writes on first open, and a
    /// process killed between them leaves a database that never opens again.
    pub fn open(dir: impl Into<PathBuf>, options: SledLogOptions) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| PersistenceError::io(&dir, e))?;
        if !has_sled_config(&dir)? {
            create(&dir, options)?;
        }
        let db = open_db(&dir, options)?;
        match db.get(FORMAT_KEY).map_err(|e| sled_error(&dir, e))? {
            Some(format) if format == FORMAT => {}
            _ => {
                return Err(PersistenceError::corrupt(
                    &dir,
                    0,
                    "not a zk-persistence sled txn log",
                ));
            }
        }
        let data_path = dir.join("db");
        let data_file = File::open(&data_path).map_err(|e| PersistenceError::io(&data_path, e))?;
        let mut log = Self {
            dir,
            options,
            db,
            data_file,
            synced_blobs: HashSet::new(),
            pending: sled::Batch::default(),
            pending_len: 0,
            segment_open: false,
            last_zxid: 0,
            fsync_count: 0,
        };
        log.sync()?;
        File::open(&log.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| PersistenceError::io(&log.dir, e))?;
        log.last_zxid = log.last_entry_at_most(i64::MAX)?;
        Ok(log)
    }

    /// The folder the log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many flushes (each ending in an fdatasync) commits have made.
    pub fn fsync_count(&self) -> u64 {
        self.fsync_count
    }

    /// The highest zxid stored that is at most `zxid` (0 if none).
    fn last_entry_at_most(&self, zxid: i64) -> Result<i64> {
        let (start, _) = range_from(ENTRY, Bound::Unbounded);
        let end = Bound::Included(key(ENTRY, zxid).to_vec());
        match self.db.range::<Vec<u8>, _>((start, end)).next_back() {
            Some(item) => {
                let (k, _) = item.map_err(|e| sled_error(&self.dir, e))?;
                zxid_of_key(&k).ok_or_else(|| self.bad_key(&k))
            }
            None => Ok(0),
        }
    }

    /// The first zxid of each segment, in order.
    fn segments(&self) -> Result<Vec<i64>> {
        self.db
            .range(range_from(SEGMENT, Bound::Unbounded))
            .keys()
            .map(|k| {
                let k = k.map_err(|e| sled_error(&self.dir, e))?;
                zxid_of_key(&k).ok_or_else(|| self.bad_key(&k))
            })
            .collect()
    }

    fn bad_key(&self, key: &[u8]) -> PersistenceError {
        PersistenceError::corrupt(&self.dir, 0, format!("malformed key {key:02x?}"))
    }

    /// Makes what sled holds durable: its flush, then an fdatasync of its files.
    fn sync(&mut self) -> Result<()> {
        let started = Instant::now();
        self.db.flush().map_err(|e| sled_error(&self.dir, e))?;
        let data_path = self.dir.join("db");
        self.data_file
            .sync_data()
            .map_err(|e| PersistenceError::io(&data_path, e))?;
        self.sync_new_blobs()?;
        self.fsync_count += 1;
        let took = started.elapsed();
        if took > self.options.fsync_warning {
            tracing::warn!(dir = %self.dir.display(), ?took, "flush of the sled txn log was slow");
        }
        Ok(())
    }

    /// fsyncs blob files not synced yet, and their folder if there were any.
    fn sync_new_blobs(&mut self) -> Result<()> {
        let blobs = self.dir.join("blobs");
        let listing = match std::fs::read_dir(&blobs) {
            Ok(listing) => listing,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(PersistenceError::io(&blobs, e)),
        };
        let mut present = HashSet::new();
        let mut synced_any = false;
        for item in listing {
            let path = item.map_err(|e| PersistenceError::io(&blobs, e))?.path();
            if !self.synced_blobs.contains(&path) {
                match File::open(&path).and_then(|f| f.sync_all()) {
                    Ok(()) => synced_any = true,
                    // Collected by sled since it was listed.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(PersistenceError::io(&path, e)),
                }
            }
            present.insert(path);
        }
        if synced_any {
            File::open(&blobs)
                .and_then(|d| d.sync_all())
                .map_err(|e| PersistenceError::io(&blobs, e))?;
        }
        self.synced_blobs = present;
        Ok(())
    }

    fn decode(&self, key: &[u8], value: &[u8]) -> Result<LogEntry> {
        let zxid = zxid_of_key(key).ok_or_else(|| self.bad_key(key))?;
        let entry = LogEntry::unmarshal(Bytes::copy_from_slice(value)).map_err(|e| {
            PersistenceError::corrupt(
                &self.dir,
                0,
                format!("entry {zxid:#x} does not decode: {e}"),
            )
        })?;
        if entry.zxid() != zxid {
            return Err(PersistenceError::corrupt(
                &self.dir,
                0,
                format!("entry {zxid:#x} holds zxid {:#x}", entry.zxid()),
            ));
        }
        Ok(entry)
    }
}

/// sled's configuration file; sled treats one of 8 bytes or fewer as absent.
const SLED_CONFIG: &str = "conf";

/// Whether `dir` holds a sled database (its configuration file, as sled would read it).
fn has_sled_config(dir: &Path) -> Result<bool> {
    let path = dir.join(SLED_CONFIG);
    match std::fs::metadata(&path) {
        Ok(meta) => Ok(meta.len() > 8),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(PersistenceError::io(&path, e)),
    }
}

/// Opens sled's database in `dir`. sled's background threads can hold the database's file
/// lock for a moment after the last handle is dropped, so a lock held elsewhere is retried
/// for up to two seconds before it is an error.
fn open_db(dir: &Path, options: SledLogOptions) -> Result<sled::Db> {
    let started = Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(dir)
            .cache_capacity(options.cache_capacity)
            .flush_every_ms(options.flush_every.map(|d| d.as_millis().max(1) as u64))
            .open();
        match opened {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < Duration::from_secs(2) =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other.map_err(|e| sled_error(dir, e)),
        }
    }
}

/// Makes a new, empty log in `dir` (an empty folder, or one holding only the debris of a
/// creation that was interrupted): built in `<dir>.new`, synced, then renamed over `dir`.
fn create(dir: &Path, options: SledLogOptions) -> Result<()> {
    // Anything in `dir` is debris of sled starting there without finishing its `conf`
    // (sled writes nothing else first); a folder with other files is not ours to replace.
    let listing = std::fs::read_dir(dir).map_err(|e| PersistenceError::io(dir, e))?;
    let mut debris = Vec::new();
    for item in listing {
        let path = item.map_err(|e| PersistenceError::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !matches!(name, "conf" | "db" | "blobs" | "snap") && !name.starts_with("snap.") {
            return Err(PersistenceError::corrupt(
                dir,
                0,
                format!("not a zk-persistence sled txn log: it holds {name:?}"),
            ));
        }
        debris.push(path);
    }
    let mut staging = dir.as_os_str().to_owned();
    staging.push(".new");
    let staging = PathBuf::from(staging);
    match std::fs::remove_dir_all(&staging) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(PersistenceError::io(&staging, e));
        }
        _ => {}
    }
    let db = open_db(&staging, options)?;
    db.insert(FORMAT_KEY, FORMAT)
        .map_err(|e| sled_error(&staging, e))?;
    db.flush().map_err(|e| sled_error(&staging, e))?;
    drop(db);
    for name in [SLED_CONFIG, "db"] {
        let path = staging.join(name);
        File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| PersistenceError::io(&path, e))?;
    }
    sync_dir(&staging)?;
    for path in debris {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| PersistenceError::io(&path, e))?;
    }
    // rename(2) replaces an empty folder in one step.
    std::fs::rename(&staging, dir).map_err(|e| PersistenceError::io(dir, e))?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => sync_dir(Path::new(".")),
    }
}

/// fsyncs a folder, so that the names in it are durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| PersistenceError::io(dir, e))
}

fn sled_error(dir: &Path, error: sled::Error) -> PersistenceError {
    match error {
        sled::Error::Io(e) => PersistenceError::io(dir, e),
        sled::Error::Corruption { at, .. } => {
            PersistenceError::corrupt(dir, 0, format!("sled found corruption at {at:?}"))
        }
        other => PersistenceError::io(dir, std::io::Error::other(other.to_string())),
    }
}

impl TxnLog for SledTxnLog {
    fn append(&mut self, entry: &LogEntry) -> Result<()> {
        if entry.zxid() <= self.last_zxid {
            return Err(PersistenceError::OutOfOrder {
                zxid: entry.zxid(),
                last: self.last_zxid,
            });
        }
        if !self.segment_open {
            self.pending.insert(&key(SEGMENT, entry.zxid()), &[]);
            self.segment_open = true;
        }
        self.pending
            .insert(&key(ENTRY, entry.zxid()), entry.marshal().as_ref());
        self.pending_len += 1;
        self.last_zxid = entry.zxid();
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        if self.pending_len == 0 {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        self.db
            .apply_batch(batch)
            .map_err(|e| sled_error(&self.dir, e))?;
        if self.options.force_sync {
            self.sync()?;
        }
        Ok(())
    }

    fn read_from(&self, from: i64) -> Result<Vec<LogEntry>> {
        self.db
            .range(range_from(ENTRY, Bound::Included(from)))
            .map(|item| {
                let (k, v) = item.map_err(|e| sled_error(&self.dir, e))?;
                self.decode(&k, &v)
            })
            .collect()
    }

    fn truncate(&mut self, zxid: i64) -> Result<()> {
        self.pending = sled::Batch::default();
        self.pending_len = 0;
        self.segment_open = false;
        let mut batch = sled::Batch::default();
        for prefix in [ENTRY, SEGMENT] {
            for k in self
                .db
                .range(range_from(prefix, Bound::Excluded(zxid)))
                .keys()
            {
                batch.remove(k.map_err(|e| sled_error(&self.dir, e))?);
            }
        }
        self.db
            .apply_batch(batch)
            .map_err(|e| sled_error(&self.dir, e))?;
        self.sync()?;
        self.last_zxid = self.last_entry_at_most(zxid)?;
        Ok(())
    }

    fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Commits, and makes the next append start a new segment (a marker key, no file).
    fn roll(&mut self) -> Result<()> {
        self.commit()?;
        self.segment_open = false;
        Ok(())
    }

    /// Removes the segments wholly before the one holding `zxid` (the last segment starting
    /// at or before it), as the file backend removes files. Not synced here: entries that
    /// come back after a crash are harmless; the next synced commit makes it durable.
    fn purge_before(&mut self, zxid: i64) -> Result<()> {
        let segments = self.segments()?;
        let keep_from = segments.iter().rposition(|first| *first <= zxid);
        let Some(&keep) = keep_from.and_then(|i| segments.get(i)) else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        for prefix in [ENTRY, SEGMENT] {
            let (start, _) = range_from(prefix, Bound::Unbounded);
            let end = Bound::Excluded(key(prefix, keep).to_vec());
            for k in self.db.range::<Vec<u8>, _>((start, end)).keys() {
                batch.remove(k.map_err(|e| sled_error(&self.dir, e))?);
            }
        }
        self.db
            .apply_batch(batch)
            .map_err(|e| sled_error(&self.dir, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_as_zxids() {
        let zxids = [i64::MIN, -1, 0, 1, 0xff, 0x1_0000_0000, i64::MAX];
        let keys: Vec<_> = zxids.iter().map(|z| key(ENTRY, *z)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (z, k) in zxids.iter().zip(&keys) {
            assert_eq!(zxid_of_key(k), Some(*z));
        }
        assert_eq!(zxid_of_key(b"e"), None);
    }
}
