//! Restore: the newest valid snapshot, then every later txn from the log; and the small
//! files and chores around them (epochs, purge, when to snapshot).

use std::fs::File;
use std::path::{Path, PathBuf};

use zk_jute::Reader;

use crate::error::{PersistenceError, Result};
use crate::format::LogEntry;
use crate::log::{TxnLog, log_files};
use crate::snapshot::{Snapshot, ZxidDigest, is_valid_snapshot, read_newest, snapshot_files};

/// What a restore loaded.
#[derive(Debug)]
pub struct Restored<T> {
    /// The snapshot it started from, if any (its `tree` is the state after replay).
    pub snapshot: Option<Snapshot<()>>,
    /// The state: the snapshot's tree with the log replayed over it.
    pub tree: T,
    /// The last zxid applied.
    pub last_zxid: i64,
    /// Txns replayed from the log.
    pub replayed: u64,
}

/// Rebuilds state from `snap_dir` and `log`: `parse_tree` loads the newest valid snapshot's
/// body and session table (`empty` is used when there is none), then `apply` gets every
/// logged txn after it; a txn `apply` refuses stops the restore with
/// [`PersistenceError::Replay`].
///
/// A snapshot taken while writes went on (a fuzzy one, as ZooKeeper's) may hold some
/// txns after the zxid in its name, up to the zxid of the digest it recorded. While the
/// replay is within that window, `apply` also gets the snapshot's digest: the tree is
/// not yet the state of any one zxid, so a digest logged with a txn cannot be compared
/// (ZooKeeper's `DataTree.compareDigest` skips it too), but the tree at the digest's
/// zxid must have the recorded one.
/// Progress is logged every 100,000 txns.
pub fn restore<T, E: std::fmt::Display>(
    snap_dir: &Path,
    log: &impl TxnLog,
    parse_tree: impl FnMut(
        &mut Reader,
        &std::collections::BTreeMap<i64, i32>,
    ) -> std::result::Result<T, E>,
    empty: impl FnOnce() -> T,
    mut apply: impl FnMut(&mut T, &LogEntry, Option<&ZxidDigest>) -> std::result::Result<(), String>,
) -> Result<Restored<T>> {
    let (snapshot, mut tree, mut last_zxid) = match read_newest(snap_dir, 100, parse_tree)? {
        Some(s) => {
            tracing::info!(file = %s.path.display(), zxid = format!("{:#x}", s.zxid), "loaded snapshot");
            let zxid = s.zxid;
            let Snapshot {
                zxid: z,
                path,
                sessions,
                tree,
                digest,
            } = s;
            (
                Some(Snapshot {
                    zxid: z,
                    path,
                    sessions,
                    tree: (),
                    digest,
                }),
                tree,
                zxid,
            )
        }
        None => (None, empty(), 0),
    };
    let fuzzy = snapshot.as_ref().and_then(|s| s.digest);
    let entries = log.read_from(last_zxid + 1)?;
    let total = entries.len();
    let mut replayed = 0_u64;
    for entry in &entries {
        if entry.zxid() <= last_zxid {
            continue;
        }
        let window = fuzzy.as_ref().filter(|d| entry.zxid() <= d.zxid);
        apply(&mut tree, entry, window).map_err(|reason| PersistenceError::Replay {
            zxid: entry.zxid(),
            reason,
        })?;
        last_zxid = entry.zxid();
        replayed += 1;
        if replayed % 100_000 == 0 {
            tracing::info!(replayed, total, "replaying the txn log");
        }
    }
    tracing::info!(
        replayed,
        last_zxid = format!("{last_zxid:#x}"),
        "restore done"
    );
    Ok(Restored {
        snapshot,
        tree,
        last_zxid,
        replayed,
    })
}

/// Reads `acceptedEpoch` or `currentEpoch` (decimal text); `None` if the file is absent.
pub fn read_epoch(dir: &Path, name: &str) -> Result<Option<i64>> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            PersistenceError::corrupt(&path, 0, format!("not a number: {:?}", text.trim()))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PersistenceError::io(path, e)),
    }
}

/// Writes an epoch file atomically: a temporary file, fsync, rename, fsync of the folder.
pub fn write_epoch(dir: &Path, name: &str, epoch: i64) -> Result<()> {
    use std::io::Write;
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let io = |e| PersistenceError::io(&tmp, e);
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(epoch.to_string().as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(|e| PersistenceError::io(&path, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| PersistenceError::io(dir, e))
}

/// ZooKeeper's `PurgeTxnLog`: keeps the `retain` newest snapshots (at least 3, as
/// `autopurge.snapRetainCount` is clamped) and the log files needed to replay from the
/// oldest kept one; deletes the rest. Returns the deleted files.
pub fn purge(snap_dir: &Path, log_dir: &Path, retain: usize) -> Result<Vec<PathBuf>> {
    match oldest_kept_snapshot(snap_dir, retain)? {
        Some(oldest_kept) => purge_before(snap_dir, log_dir, oldest_kept),
        None => Ok(Vec::new()),
    }
}

/// The zxid of the oldest snapshot [`purge`] keeps with `retain`: the `retain`-th newest
/// (`retain` at least 3), or the oldest there is; `None` when there is none. Only whole
/// snapshots count ([`is_valid_snapshot`], as ZooKeeper's `findNValidSnapshots`): torn
/// ones left by a crash never stand in for the ones a restore can use.
pub fn oldest_kept_snapshot(snap_dir: &Path, retain: usize) -> Result<Option<i64>> {
    let zxids: Vec<i64> = snapshot_files(snap_dir)?
        .into_iter()
        .filter(|(_, path)| is_valid_snapshot(path))
        .map(|(zxid, _)| zxid)
        .collect();
    Ok(oldest_kept(&zxids, retain))
}

/// The rule of [`oldest_kept_snapshot`] on snapshot zxids given newest first: the
/// `retain`-th (`retain` at least 3), or the oldest there is.
pub fn oldest_kept(newest_first: &[i64], retain: usize) -> Option<i64> {
    newest_first
        .get(retain.max(3) - 1)
        .or(newest_first.last())
        .copied()
}

/// Deletes the snapshots before `zxid` and the log files wholly before it (every one
/// but the newest that starts at or before `zxid`, which may hold the txns after it).
/// Returns the deleted files. An ensemble's member cuts its replicated history at
/// `zxid` first (it must not offer a learner a diff from files about to go).
///
/// The snapshots kept are synced first: periodic snapshots are written without fsyncs
/// ([`write_snapshot_unsynced`](crate::write_snapshot_unsynced)), and once the older
/// ones are gone a crash of the machine must not leave only torn ones.
pub fn purge_before(snap_dir: &Path, log_dir: &Path, zxid: i64) -> Result<Vec<PathBuf>> {
    let (kept, doomed): (Vec<_>, Vec<_>) = snapshot_files(snap_dir)?
        .into_iter()
        .partition(|(z, _)| *z >= zxid);
    let mut doomed: Vec<PathBuf> = doomed.into_iter().map(|(_, p)| p).collect();
    let logs = log_files(log_dir)?;
    if let Some(needed) = logs.iter().rposition(|(first, _)| *first <= zxid) {
        doomed.extend(logs.iter().take(needed).map(|(_, p)| p.clone()));
    }
    if !doomed.is_empty() {
        for (_, path) in &kept {
            File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(|e| PersistenceError::io(path, e))?;
        }
        File::open(snap_dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| PersistenceError::io(snap_dir, e))?;
    }
    for path in &doomed {
        match std::fs::remove_file(path) {
            // Gone already: removed by whoever else cleans the directory.
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(PersistenceError::io(path, e));
            }
            _ => {}
        }
    }
    Ok(doomed)
}

/// When to take a snapshot: ZooKeeper's `snapCount` (and `snapSizeLimitInKb`), randomised
/// per server so that an ensemble's members do not all snapshot at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Snapshot after about this many txns (default 100,000).
    pub snap_count: u64,
    /// Or after about this many logged bytes (default 4 GiB); 0 disables.
    pub snap_size_bytes: u64,
    /// A random offset in `0..snap_count / 2`, so that the servers of an ensemble do not
    /// all snapshot at once; ZooKeeper draws it again after every snapshot.
    pub random_roll: u64,
}

impl SnapshotPolicy {
    /// Whether a snapshot is due after `txns` txns and `bytes` logged bytes since the last.
    pub fn due(&self, txns: u64, bytes: u64) -> bool {
        let half = (self.snap_count / 2).max(1);
        txns > half + self.random_roll % half
            || (self.snap_size_bytes > 0
                && bytes
                    > self.snap_size_bytes / 2
                        + self.random_roll % (self.snap_size_bytes / 2).max(1))
    }
}
