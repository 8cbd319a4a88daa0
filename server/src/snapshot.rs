//! Fuzzy snapshots, as ZooKeeper takes them: a thread of the snapshot's own serializes the
//! tree a chunk at a time and writes the file, while the serving task goes on applying
//! writes between chunks. The two share the tree behind a lock ([`SharedTree`]) that the
//! serving task holds while it works and lends while it waits for messages, so the
//! snapshot's walk of the tree takes the serving task's idle time on another core instead
//! of the serving task's own time. Restoring replays the log after the snapshot's zxid
//! over it, which gives the tree exactly (see `BodyWriter::fuzzy`).

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::BytesMut;
use tokio::sync::{Mutex, OwnedMutexGuard};
use zk_datatree::DataTree;
use zk_persistence::ZxidDigest;

/// Nodes a chunk: what the snapshot's thread serializes each time it has the tree, and so
/// about the longest the serving task waits to take it back (0.25-0.5 µs a znode, most of
/// it cache misses).
const CHUNK_NODES: usize = 64;

/// Bytes past which a chunk ends early, whatever its node count (big znodes).
const CHUNK_BYTES: usize = 64 << 10;

/// Serialized bytes gathered before they go to the file (outside the lock).
const PIECE_BYTES: usize = 256 << 10;

/// What the serving task and a snapshot's thread share: the tree, and what the digest
/// a snapshot of it records depends on.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The tree as applied.
    pub(crate) tree: DataTree,
    /// A leader's fuzzy snapshot's window (the tree was restored from one as a learner):
    /// txns up to its zxid are applied without comparing digests, and a snapshot taken
    /// meanwhile records that snapshot's digest.
    pub(crate) fuzzy: Option<ZxidDigest>,
}

impl Shared {
    /// The digest a snapshot of the tree records now: the tree's at its last zxid, or,
    /// while a leader's fuzzy snapshot's window is open (the tree holds changes past its
    /// last zxid), the one that snapshot recorded, which its txns up to that zxid reach
    /// (ZooKeeper records no digest of a tree that is still fuzzy).
    pub(crate) fn snapshot_digest(&self) -> ZxidDigest {
        self.fuzzy.unwrap_or_else(|| tree_digest(&self.tree))
    }
}

/// The engine's tree, which a snapshot's thread reads a chunk at a time while the serving
/// task lends it ([`lend`](Self::lend)). Held, it derefs to the tree; the serving task
/// takes it back ([`hold`](Self::hold)) before it handles anything.
#[derive(Debug)]
pub(crate) struct SharedTree {
    cell: Arc<Mutex<Shared>>,
    /// Some while the serving task holds the tree: always, but while it waits with a
    /// snapshot being taken.
    held: Option<OwnedMutexGuard<Shared>>,
}

impl SharedTree {
    /// `tree`, held.
    pub(crate) fn new(tree: DataTree) -> Self {
        let mut shared = Self {
            cell: Arc::new(Mutex::new(Shared { tree, fuzzy: None })),
            held: None,
        };
        shared.held = shared.cell.clone().try_lock_owned().ok();
        debug_assert!(shared.held.is_some(), "a new lock is free");
        shared
    }

    /// What is shared, held.
    pub(crate) fn shared(&self) -> &Shared {
        self.held
            .as_deref()
            .expect("the tree is used only while held: it is lent only while the loop waits")
    }

    /// What is shared, held, to change.
    pub(crate) fn shared_mut(&mut self) -> &mut Shared {
        self.held
            .as_deref_mut()
            .expect("the tree is used only while held: it is lent only while the loop waits")
    }

    /// The lock, for a snapshot's thread.
    pub(crate) fn cell(&self) -> Arc<Mutex<Shared>> {
        self.cell.clone()
    }

    /// Lets a snapshot's thread read the tree until [`hold`](Self::hold).
    pub(crate) fn lend(&mut self) {
        self.held = None;
    }

    /// Takes the tree back, once the snapshot's thread is done with its chunk.
    pub(crate) async fn hold(&mut self) {
        if self.held.is_none() {
            let cell = self.cell.clone();
            self.held = Some(match cell.clone().try_lock_owned() {
                Ok(held) => held,
                Err(_) => cell.lock_owned().await,
            });
        }
    }

    /// Replaces the tree (closing any fuzzy window). The new one has a lock of its own:
    /// a snapshot still reading the old one goes on reading the old one alone (its fence
    /// has advanced, for its file would mix the two trees: it stops at its next chunk).
    pub(crate) fn replace(&mut self, tree: DataTree) {
        *self = Self::new(tree);
    }
}

impl Deref for SharedTree {
    type Target = DataTree;

    fn deref(&self) -> &DataTree {
        &self.shared().tree
    }
}

impl DerefMut for SharedTree {
    fn deref_mut(&mut self) -> &mut DataTree {
        &mut self.shared_mut().tree
    }
}

/// Orders the publication of a snapshot being taken against whatever makes it stale: a
/// TRUNC removing the snapshots past its zxid, a leader's snapshot coming in, the tree
/// replaced. Those [advance](Self::advance) it, and remove files while they hold it; a
/// snapshot started before is then never published (its thread stops at its next chunk,
/// and checks once more, holding the fence, as it renames its file into place).
#[derive(Debug, Clone, Default)]
pub(crate) struct Fence(Arc<FenceState>);

#[derive(Debug, Default)]
struct FenceState {
    /// Advanced only while `lock` is held; read without it between chunks.
    generation: std::sync::atomic::AtomicU64,
    lock: std::sync::Mutex<()>,
}

impl Fence {
    /// Makes every snapshot being taken stale; files are removed while the guard is held.
    pub(crate) fn advance(&self) -> std::sync::MutexGuard<'_, ()> {
        let held = self.lock();
        self.0.generation.fetch_add(1, Ordering::AcqRel);
        held
    }

    /// Orders what is done while the guard is held (files removed that no snapshot being
    /// taken can be, say) against a snapshot being published, without making it stale.
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // Nothing is left half-done under it by a panic elsewhere.
        self.0
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::Acquire)
    }
}

/// What the snapshot's thread tells the serving task.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    /// The file is written (or failed, or the snapshot went stale).
    Done { zxid: i64, ok: bool },
}

/// How the snapshot's thread tells the serving task.
pub(crate) type Notify = Arc<dyn Fn(Event) + Send + Sync>;

/// What a snapshot records of `tree`: its digest at its last zxid.
pub(crate) fn tree_digest(tree: &DataTree) -> ZxidDigest {
    ZxidDigest {
        zxid: tree.last_zxid(),
        version: zk_datatree::DIGEST_VERSION,
        digest: tree.digest() as i64,
    }
}

/// A snapshot being taken (one at a time), by a thread of its own.
pub(crate) struct Job {
    /// Set when the job is dropped unjoined (a runtime dropped without stopping): its
    /// thread stops at its next chunk rather than publish a file nobody fences any more.
    dropped: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Job {
    /// Starts a snapshot of `held` (the serving task's, held) into `dir`; its thread
    /// reads the tree through `cell` while the serving task lends it, and publishes the
    /// file unless `fence` advanced meanwhile. `None` if the thread cannot start (logged).
    /// Its zxid is the tree's last zxid now.
    pub(crate) fn start(
        held: &Shared,
        cell: Arc<Mutex<Shared>>,
        fence: Fence,
        dir: &Path,
        notify: Notify,
    ) -> Option<Job> {
        let mut writer = zk_datatree::BodyWriter::fuzzy();
        let mut acl_map = BytesMut::new();
        // The ACL map; this fixes the zxid the snapshot starts from.
        writer.write_some(&held.tree, &mut acl_map, 0);
        let zxid = writer.start_zxid();
        let sessions = held.tree.sessions().clone();
        let dir = dir.to_owned();
        let generation = fence.generation();
        let dropped = Arc::new(AtomicBool::new(false));
        let stop = Stop {
            fence,
            generation,
            dropped: dropped.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                let started = Instant::now();
                // Reports even a panic, or no snapshot would ever be taken again.
                let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let file =
                        zk_persistence::write_snapshot_unsynced(&dir, zxid, &sessions, |w| {
                            w.write_all(&acl_map)?;
                            serialize(&mut writer, &cell, &stop, w).map(Some)
                        })?;
                    // Published only if nothing made it stale meanwhile (if so, its
                    // temporary file goes).
                    let _fence = stop.fence.lock();
                    if stop.stopped() {
                        return Err(zk_persistence::PersistenceError::io(
                            file.path(),
                            std::io::Error::other("the snapshot went stale"),
                        ));
                    }
                    file.publish()
                }));
                let ok = match written {
                    Ok(Ok(_)) => {
                        tracing::debug!(zxid, took = ?started.elapsed(), "snapshot written");
                        true
                    }
                    Ok(Err(_)) if stop.stopped() => {
                        tracing::info!(zxid, "snapshot dropped: the tree or the files moved on");
                        false
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "snapshot failed");
                        false
                    }
                    Err(_) => {
                        tracing::error!("snapshot failed: its thread panicked");
                        false
                    }
                };
                // A tree replaced meanwhile lives on in `cell` alone: it is freed here, not
                // on the serving thread that joins this one once told it is done.
                drop(cell);
                drop(writer);
                notify(Event::Done { zxid, ok });
            });
        match spawned {
            Ok(thread) => Some(Job {
                dropped,
                thread: Some(thread),
            }),
            Err(e) => {
                tracing::error!(error = %e, "snapshot failed: cannot start its thread");
                None
            }
        }
    }

    /// Waits for the snapshot's thread: it has reported [`Event::Done`], or, with the
    /// serving task stopped and the tree lent, finishes the file first, so a clean stop
    /// never throws a snapshot away.
    pub(crate) fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::Release);
    }
}

/// What stops a snapshot's thread: its fence advanced (a TRUNC, a leader's snapshot coming
/// in, the tree replaced), which makes it stale, or its job dropped unjoined.
struct Stop {
    fence: Fence,
    generation: u64,
    dropped: Arc<AtomicBool>,
}

impl Stop {
    fn stopped(&self) -> bool {
        self.fence.generation() != self.generation || self.dropped.load(Ordering::Acquire)
    }
}

/// The body after the ACL map, a chunk at a time while the tree is lent, into `w` between
/// chunks; returns the digest to record after it, the tree's as the body ends.
fn serialize(
    writer: &mut zk_datatree::BodyWriter,
    cell: &Mutex<Shared>,
    stop: &Stop,
    w: &mut dyn std::io::Write,
) -> std::io::Result<ZxidDigest> {
    let mut piece = BytesMut::with_capacity(PIECE_BYTES + CHUNK_BYTES);
    loop {
        let end = {
            let shared = cell.blocking_lock();
            if stop.stopped() {
                return Err(std::io::Error::other("the snapshot went stale"));
            }
            let done = writer.write_some_within(&shared.tree, &mut piece, CHUNK_NODES, CHUNK_BYTES);
            done.then(|| shared.snapshot_digest())
        };
        if end.is_some() || piece.len() >= PIECE_BYTES {
            w.write_all(&piece)?;
            piece.clear();
        }
        if let Some(digest) = end {
            return Ok(digest);
        }
        // The lock is free: a thread waiting for this core (the serving task, another
        // process's) runs now, not once this one's time slice is used up. A snapshot is
        // background work: it takes longer where cores are short, and one that falls due
        // while this is still being taken is skipped (as ZooKeeper's
        // `SyncRequestProcessor` skips it; the log is complete either way).
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use zk_datatree::{Session, Transaction, TreeOptions, WriteRequest};
    use zk_jute::proto::{CreateRequest, DeleteRequest, SetDataRequest};
    use zk_jute::txn::TxnHeader;

    use super::*;

    /// Prepares `request` as txn `zxid` and applies it; returns it, to replay.
    fn write(tree: &mut DataTree, zxid: i64, request: WriteRequest) -> (TxnHeader, Transaction) {
        let session = Session { id: 0, auth: &[] };
        let prepared = zk_datatree::prepare(&*tree, &session, zxid, 0, &request);
        assert_eq!(prepared.error(), None, "{request:?}");
        let header = TxnHeader {
            client_id: 0,
            cxid: 0,
            zxid,
            time: zxid,
            r#type: prepared.txn.op_code().code(),
        };
        tree.apply(&header, &prepared.txn);
        (header, prepared.txn)
    }

    fn create(path: String, data: &[u8]) -> WriteRequest {
        WriteRequest::Create {
            request: CreateRequest {
                path,
                data: Some(bytes::Bytes::copy_from_slice(data)),
                acl: Some(zk_datatree::acl::open_acl_unsafe()),
                flags: 0,
            },
            with_stat: false,
            container: false,
        }
    }

    fn notifier() -> (Notify, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let notify: Notify = Arc::new(move |event| {
            let _ = tx.lock().map(|tx| tx.send(event));
        });
        (notify, rx)
    }

    /// A tree of `nodes` znodes under `/a`, and the zxid of its last txn.
    fn tree_of(nodes: usize) -> (SharedTree, i64) {
        let mut tree = SharedTree::new(DataTree::new(TreeOptions::default()));
        let mut zxid = 1;
        write(&mut tree, zxid, create("/a".into(), b"a"));
        for i in 0..nodes {
            zxid += 1;
            write(&mut tree, zxid, create(format!("/a/n{i:06}"), &[7; 100]));
        }
        (tree, zxid)
    }

    /// A snapshot taken by its thread while writes go on between chunks (creates,
    /// deletes, setData: the tree lent and taken back between every few) is a fuzzy one
    /// that restores exactly: loaded, with the txns after its zxid replayed, it is the
    /// tree; replayed up to the digest it records, it has that digest.
    #[tokio::test]
    async fn a_snapshot_taken_while_writes_go_on_restores_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let (mut tree, mut zxid) = tree_of(20_000);
        let (notify, done) = notifier();
        let fence = Fence::default();
        let mut job = Job::start(tree.shared(), tree.cell(), fence, dir.path(), notify).unwrap();
        let mut log = Vec::new();
        let mut lends = 0;
        let (snapshot_zxid, ok) = loop {
            tree.lend();
            lends += 1;
            tree.hold().await;
            // Ahead of the walk and behind it: creates at both ends, deletes, setData.
            let i = lends % 20_000;
            for request in [
                create(format!("/a/m{lends:06}"), b"new"),
                create(format!("/a/b{lends:06}"), b"new"),
                WriteRequest::Delete(DeleteRequest {
                    path: format!("/a/n{i:06}"),
                    version: -1,
                }),
                WriteRequest::SetData(SetDataRequest {
                    path: format!("/a/n{:06}", 19_999 - i),
                    data: Some(bytes::Bytes::from(format!("set {lends}"))),
                    version: -1,
                }),
            ] {
                zxid += 1;
                log.push(write(&mut tree, zxid, request));
            }
            if let Ok(Event::Done { zxid, ok }) = done.try_recv() {
                break (zxid, ok);
            }
        };
        job.join();
        assert!(ok, "the snapshot was written");
        assert!(
            lends > 100,
            "the snapshot went a chunk at a time: {lends} lends"
        );

        let files = zk_persistence::snapshot_files(dir.path()).unwrap();
        let [(file_zxid, path)] = files.as_slice() else {
            panic!("one snapshot file: {files:?}");
        };
        assert_eq!(*file_zxid, snapshot_zxid);
        let snapshot = zk_persistence::read_snapshot(path, |r, _| {
            DataTree::deserialize(r, TreeOptions::default(), |_| {})
        })
        .unwrap();
        let recorded = snapshot.digest.expect("a digest recorded");
        assert!(
            recorded.zxid > snapshot_zxid,
            "the body ended after it started"
        );
        let mut restored = snapshot.tree;
        let mut checked_digest = false;
        for (header, txn) in log.iter().filter(|(h, _)| h.zxid > snapshot_zxid) {
            restored.apply(header, txn);
            if header.zxid == recorded.zxid {
                assert_eq!(restored.digest() as i64, recorded.digest);
                checked_digest = true;
            }
        }
        assert!(
            checked_digest,
            "the recorded digest's zxid is a logged txn's"
        );
        assert_eq!(restored.digest(), tree.digest());
        assert_eq!(restored.paths_preorder(), tree.paths_preorder());
        for path in tree.paths_preorder() {
            assert_eq!(restored.node(&path), tree.node(&path), "{path}");
        }
    }

    /// The files in `dir`.
    fn files(dir: &Path) -> Vec<std::ffi::OsString> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    }

    /// A snapshot whose fence advances while its thread is at work (the tree replaced, say)
    /// stops, says so, and leaves no file behind.
    #[tokio::test]
    async fn a_snapshot_stopped_by_its_fence_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let (tree, _) = tree_of(20_000);
        let (notify, done) = notifier();
        let fence = Fence::default();
        let mut job = Job::start(
            tree.shared(),
            tree.cell(),
            fence.clone(),
            dir.path(),
            notify,
        )
        .unwrap();
        drop(fence.advance());
        // The tree is never lent before: the thread meets the fence at its first chunk.
        drop(tree);
        let event = done.recv_timeout(Duration::from_secs(60)).unwrap();
        assert!(matches!(event, Event::Done { ok: false, .. }), "{event:?}");
        job.join();
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }

    /// A job dropped unjoined (its runtime dropped without stopping) stops its thread too,
    /// which leaves no file behind.
    #[tokio::test]
    async fn a_snapshot_whose_job_is_dropped_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let (tree, _) = tree_of(20_000);
        let (notify, done) = notifier();
        let job = Job::start(
            tree.shared(),
            tree.cell(),
            Fence::default(),
            dir.path(),
            notify,
        );
        drop(job);
        // The tree is never lent before: the thread meets the drop at its first chunk.
        drop(tree);
        let event = done.recv_timeout(Duration::from_secs(60)).unwrap();
        assert!(matches!(event, Event::Done { ok: false, .. }), "{event:?}");
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }

    /// A snapshot whose fence advances (a TRUNC, a leader's snapshot coming in) is never
    /// published, even when its body was complete by then: its thread checks the fence
    /// as it would rename the file into place.
    #[tokio::test]
    async fn a_snapshot_gone_stale_is_never_published() {
        let dir = tempfile::tempdir().unwrap();
        let (mut tree, _) = tree_of(10);
        let (notify, done) = notifier();
        let fence = Fence::default();
        let job = Job::start(
            tree.shared(),
            tree.cell(),
            fence.clone(),
            dir.path(),
            notify,
        );
        {
            let _held = fence.lock();
            // The whole body goes in one chunk; the thread then waits for the fence, its
            // file complete under its temporary name.
            tree.lend();
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !std::fs::read_dir(dir.path()).unwrap().any(|e| {
                let path = e.unwrap().path();
                path.extension().is_some_and(|x| x == "tmp")
                    && zk_persistence::is_valid_snapshot(&path)
            }) {
                assert!(std::time::Instant::now() < deadline, "no complete file");
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(
                done.try_recv().is_err(),
                "not published while the fence is held"
            );
            fence.0.generation.fetch_add(1, Ordering::AcqRel);
        }
        let event = done.recv_timeout(Duration::from_secs(60)).unwrap();
        assert!(matches!(event, Event::Done { ok: false, .. }), "{event:?}");
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
        drop(job);

        // Without the fence moving, the same snapshot is published.
        let (tell, told) = notifier();
        tree.hold().await;
        let _job = Job::start(
            tree.shared(),
            tree.cell(),
            Fence::default(),
            dir.path(),
            tell,
        );
        tree.lend();
        let event = told.recv_timeout(Duration::from_secs(60)).unwrap();
        assert!(matches!(event, Event::Done { ok: true, .. }), "{event:?}");
        assert_eq!(files(dir.path()).len(), 1, "{:?}", files(dir.path()));
    }
}
