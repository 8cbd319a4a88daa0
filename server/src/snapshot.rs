//! Fuzzy snapshots, as ZooKeeper takes them: the body is serialized a piece at a time on
//! the serving task, between bursts of requests, while writes go on being applied; a
//! thread writes and fsyncs the file as the pieces come. Restoring replays the log after
//! the snapshot's zxid over it, which gives the tree exactly (see `BodyWriter::fuzzy`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::BytesMut;
use zk_datatree::DataTree;
use zk_persistence::ZxidDigest;

/// Nodes a snapshot piece: about 0.3 ms of work (0.27 µs a znode), which a request that
/// arrives meanwhile waits for.
const PIECE_NODES: usize = 1_000;

/// What the snapshot's writer tells the serving task.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    /// The writer caught up: serializing may go on.
    Resume,
    /// The file is written (or failed).
    Done { zxid: i64, ok: bool },
}

/// How the writer tells the serving task.
pub(crate) type Notify = Arc<dyn Fn(Event) + Send + Sync>;

/// What a snapshot records of `tree`: its digest at its last zxid.
pub(crate) fn tree_digest(tree: &DataTree) -> ZxidDigest {
    ZxidDigest {
        zxid: tree.last_zxid(),
        version: zk_datatree::DIGEST_VERSION,
        digest: tree.digest() as i64,
    }
}

/// Serialized bytes the file writer has not written yet: serializing waits while there
/// are more than [`Pace::AHEAD_MAX`], so a snapshot costs a bounded amount of memory
/// however slow the disk.
#[derive(Default)]
struct Pace {
    queued: AtomicUsize,
    /// The serving task stopped serializing until the writer catches up.
    waiting: AtomicBool,
}

impl Pace {
    const AHEAD_MAX: usize = 16 << 20;

    /// Whoever finds the writer caught up with the serving task waiting resumes it, once.
    fn resume_if_caught_up(&self, notify: &Notify) {
        if self.queued.load(Ordering::Acquire) <= Self::AHEAD_MAX / 2
            && self.waiting.swap(false, Ordering::AcqRel)
        {
            notify(Event::Resume);
        }
    }
}

/// What the file writer gets.
enum Piece {
    /// The next bytes of the body (the buffer goes back to the serving task once written,
    /// to hold a later piece: a fresh megabyte for every piece costs the allocator more
    /// than serializing it).
    Body(BytesMut),
    /// The body is complete; the digest to record after it.
    End(ZxidDigest),
}

/// A snapshot being taken (one at a time).
pub(crate) struct Job {
    writer: zk_datatree::BodyWriter,
    /// To the thread writing the file; `None` once the body is complete.
    pieces: Option<std::sync::mpsc::Sender<Piece>>,
    /// Piece buffers the writer is done with.
    spare: std::sync::mpsc::Receiver<BytesMut>,
    pace: Arc<Pace>,
    notify: Notify,
    started: Instant,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Job {
    /// Starts a snapshot of `tree` into `dir`; `None` if its writer cannot start (logged).
    /// Its zxid is the tree's last zxid now.
    pub(crate) fn start(tree: &DataTree, dir: &Path, notify: Notify) -> Option<Job> {
        let mut writer = zk_datatree::BodyWriter::fuzzy();
        let mut acl_map = BytesMut::new();
        // The ACL map; this fixes the zxid the snapshot starts from.
        writer.write_some(tree, &mut acl_map, 0);
        let zxid = writer.start_zxid();
        let sessions = tree.sessions().clone();
        let (pieces, body) = std::sync::mpsc::channel();
        let (give_back, spare) = std::sync::mpsc::channel();
        // Counted as every piece is, or the writer's count would go below zero.
        let pace = Arc::new(Pace::default());
        pace.queued.store(acl_map.len(), Ordering::Release);
        let _ = pieces.send(Piece::Body(acl_map));
        let dir = dir.to_owned();
        let (writer_pace, writer_notify) = (pace.clone(), notify.clone());
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                // Reports even a panic, or no snapshot would ever be taken again.
                let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    zk_persistence::write_snapshot_with(&dir, zxid, &sessions, |w| {
                        for piece in body {
                            match piece {
                                Piece::Body(bytes) => {
                                    w.write_all(&bytes)?;
                                    writer_pace.queued.fetch_sub(bytes.len(), Ordering::AcqRel);
                                    writer_pace.resume_if_caught_up(&writer_notify);
                                    // The serving task may be gone; the buffer then is too.
                                    let _ = give_back.send(bytes);
                                }
                                Piece::End(digest) => return Ok(Some(digest)),
                            }
                        }
                        Err(std::io::Error::other(
                            "the server stopped before the body was complete",
                        ))
                    })
                }));
                let ok = match written {
                    Ok(Ok(_)) => true,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "snapshot failed");
                        false
                    }
                    Err(_) => {
                        tracing::error!("snapshot failed: its writer panicked");
                        false
                    }
                };
                writer_notify(Event::Done { zxid, ok });
            });
        match spawned {
            Ok(thread) => Some(Job {
                writer,
                pieces: Some(pieces),
                spare,
                pace,
                notify,
                started: Instant::now(),
                thread: Some(thread),
            }),
            Err(e) => {
                tracing::error!(error = %e, "snapshot failed: cannot start its writer");
                None
            }
        }
    }

    /// Whether the body is still being serialized and its writer is not too far behind:
    /// the serving task then takes a piece after each burst of messages.
    pub(crate) fn wants_step(&self) -> bool {
        self.pieces.is_some() && !self.pace.waiting.load(Ordering::Acquire)
    }

    /// Serializes the next piece and hands it to the writer; after the last one, the
    /// digest to record (the engine's [`snapshot_digest`]: the tree's as it is then).
    ///
    /// [`snapshot_digest`]: crate::engine::Engine::snapshot_digest
    pub(crate) fn step(&mut self, tree: &DataTree, digest: ZxidDigest) {
        if self.pieces.is_none() {
            return;
        }
        if !self.next_piece(tree) {
            if self.pace.queued.load(Ordering::Acquire) > Pace::AHEAD_MAX {
                // The writer resumes us once it has caught up (or we do, if it already has).
                self.pace.waiting.store(true, Ordering::Release);
                self.pace.resume_if_caught_up(&self.notify);
            }
            return;
        }
        self.end(digest);
    }

    /// Serializes the next piece; true once the body is complete (or the writer is gone,
    /// which leaves nothing to serialize for).
    fn next_piece(&mut self, tree: &DataTree) -> bool {
        let Some(pieces) = &self.pieces else {
            return true;
        };
        let mut piece = match self.spare.try_recv() {
            Ok(mut piece) => {
                piece.clear();
                piece
            }
            Err(_) => BytesMut::with_capacity(PIECE_NODES * 256),
        };
        let done = self.writer.write_some(tree, &mut piece, PIECE_NODES);
        self.pace.queued.fetch_add(piece.len(), Ordering::AcqRel);
        pieces.send(Piece::Body(piece)).is_err() || done
    }

    /// The body is complete: sends the digest to record.
    fn end(&mut self, digest: ZxidDigest) {
        tracing::debug!(
            from = self.writer.start_zxid(),
            to = digest.zxid,
            took = ?self.started.elapsed(),
            "snapshot serialized"
        );
        if let Some(pieces) = self.pieces.take() {
            let _ = pieces.send(Piece::End(digest));
        }
    }

    /// On shutdown: serializes what is left (still paced by the writer) and waits for the
    /// file, so a clean stop never throws a snapshot away.
    pub(crate) fn finish(mut self, tree: &DataTree, digest: ZxidDigest) {
        if self.pieces.is_some() {
            tracing::info!("finishing the snapshot in progress before stopping");
            loop {
                while self.pace.queued.load(Ordering::Acquire) > Pace::AHEAD_MAX
                    && !self.thread.as_ref().is_none_or(|t| t.is_finished())
                {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                if self.next_piece(tree) {
                    break;
                }
            }
            self.end(digest);
        }
        self.join();
    }

    /// Waits for the writer thread (which has reported [`Event::Done`], or will at once).
    pub(crate) fn join(&mut self) {
        self.pieces = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
