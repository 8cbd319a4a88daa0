//! A leader's snapshot as a learner receives it: parsed on one thread and written to its
//! file on another while the pieces arrive, so the tree is loaded and the file synced
//! soon after the last piece, not a whole snapshot's parse later. The file is named as a
//! snapshot only once the whole of it parsed: a bad one never becomes the newest. A
//! receive dropped before its end (the sync stopped, or another began) stops its threads
//! at their next piece and removes its file.
//!
//! Each thread is handed about [`QUEUED_PIECES`] pieces at most ahead of what it has done
//! (that many queued, one in its hands, one being handed): past that, handing it the next
//! one waits, and with it the serving thread, which then reads
//! no more of the leader's stream, whose flow control holds the leader's next pieces back
//! (as ZooKeeper's learner reads its snapshot from the socket only as fast as it loads
//! it). A slow disk or a slow parse costs the learner that much memory, not the
//! snapshot's size.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use bytes::Bytes;
use zk_datatree::{TreeLoader, TreeOptions};
use zk_jute::Reader;
use zk_persistence::SnapshotStream;

use crate::member::Received;

/// How often the parse reports its progress, in MiB read.
const PROGRESS_MIB: usize = 256;

/// Pieces handed to a thread and not yet taken by it (a leader's are 1 MiB each).
const QUEUED_PIECES: usize = 16;

/// What the parsing and writing threads get.
enum Piece {
    Data(Bytes),
    /// The last piece has come.
    End,
}

/// What became of a piece handed to a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    /// Queued at once.
    Taken,
    /// Queued once the thread had room.
    Waited,
    /// The thread has stopped.
    Gone,
}

/// A thread fed pieces.
struct Worker<T> {
    tx: SyncSender<Piece>,
    thread: JoinHandle<T>,
}

impl<T: Send + 'static> Worker<T> {
    fn spawn(
        name: &str,
        work: impl FnOnce(Receiver<Piece>) -> T + Send + 'static,
    ) -> Result<Self, String> {
        let (tx, rx) = sync_channel(QUEUED_PIECES);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || work(rx))
            .map_err(|e| format!("starting the snapshot's {name} thread: {e}"))?;
        Ok(Worker { tx, thread })
    }

    /// Hands the thread `piece`, once it has room. A thread that stopped takes nothing
    /// (its error is its answer), even when it stops while this waits.
    fn send(&self, piece: Piece) -> Sent {
        match self.tx.try_send(piece) {
            Ok(()) => Sent::Taken,
            Err(TrySendError::Disconnected(_)) => Sent::Gone,
            Err(TrySendError::Full(piece)) => match self.tx.send(piece) {
                Ok(()) => Sent::Waited,
                Err(_) => Sent::Gone,
            },
        }
    }

    /// Sends the end and waits for the thread's answer.
    fn end(self) -> Result<T, String> {
        let _ = self.tx.send(Piece::End);
        self.thread
            .join()
            .map_err(|_| "a thread receiving the snapshot panicked".to_owned())
    }
}

/// Why a thread of a receive ended without doing its part.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// It was told to stop: the receive was dropped, or the other thread failed.
    Stopped,
    /// It failed, for this reason.
    Failed(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Stopped => f.write_str("the snapshot stopped before its end"),
            Failure::Failed(why) => f.write_str(why),
        }
    }
}

/// What a thread of a receive answers.
type Done<T> = Result<T, Failure>;

/// Why a receive failed, from its threads' failures (the parse's first): the first that
/// is not a stop, since the first thread to fail stopped the other.
fn reason(failures: impl IntoIterator<Item = Failure>) -> Failure {
    failures
        .into_iter()
        .reduce(|first, other| match first {
            Failure::Stopped => other,
            failed => failed,
        })
        .unwrap_or(Failure::Stopped)
}

/// The parse and write threads of a receive: the tree the snapshot holds and the digest
/// recorded at its end; the file written and synced.
type Workers = (Worker<Done<Received>>, Worker<Done<()>>);

/// Numbers each receive's file, so a receive started while an abandoned one's writer is
/// still winding down (at the same zxid, say) never shares its file.
static RECEIVES: AtomicU64 = AtomicU64::new(0);

/// A snapshot being received.
pub(crate) struct Incoming {
    path: PathBuf,
    tmp: PathBuf,
    dir: PathBuf,
    /// `None` once ended.
    workers: Option<Result<Workers, String>>,
    /// Set when dropped before its end: the threads stop at their next piece.
    abandoned: Arc<AtomicBool>,
    /// Pieces that waited for a thread to have room.
    waited: usize,
}

impl Incoming {
    /// Starts receiving the snapshot at `zxid`, which becomes `snapshot.<zxid>` in `dir`.
    pub(crate) fn start(dir: &Path, zxid: i64, options: TreeOptions) -> Incoming {
        let name = zk_persistence::file_name("snapshot", zxid);
        let path = dir.join(&name);
        let receive = RECEIVES.fetch_add(1, Ordering::Relaxed);
        // Named `snapshot.*.tmp`, as the files a start clears away when a crash left them.
        let tmp = dir.join(format!("{name}.{receive}.tmp"));
        let abandoned = Arc::new(AtomicBool::new(false));
        let parse_path = path.clone();
        let write_path = tmp.clone();
        let (parse_stop, write_stop) = (abandoned.clone(), abandoned.clone());
        let workers = Worker::spawn("snapshot-parse", move |rx| {
            parse(rx, &parse_stop, parse_path, zxid, options)
        })
        .and_then(|parser| {
            let writer = Worker::spawn("snapshot-write", move |rx| {
                write(rx, &write_stop, &write_path)
            })?;
            Ok((parser, writer))
        });
        Incoming {
            path,
            tmp,
            dir: dir.to_owned(),
            workers: Some(workers),
            abandoned,
            waited: 0,
        }
    }

    /// The next piece; waits while the parse or the write is [`QUEUED_PIECES`] behind.
    pub(crate) fn piece(&mut self, data: Bytes) {
        // A thread that stopped has its error; `end` reports it.
        if let Some(Ok((parser, writer))) = &self.workers {
            if self.abandoned.load(Ordering::Acquire) {
                return;
            }
            let parsed = parser.send(Piece::Data(data.clone()));
            let written = match parsed {
                Sent::Gone => Sent::Gone,
                _ => writer.send(Piece::Data(data)),
            };
            if parsed == Sent::Gone || written == Sent::Gone {
                // One failed: the other stops too (`end` reports the first's error), so
                // that nothing waits on work thrown away.
                self.abandoned.store(true, Ordering::Release);
                return;
            }
            let (parse_waited, write_waited) = (parsed == Sent::Waited, written == Sent::Waited);
            if parse_waited || write_waited {
                if self.waited == 0 {
                    tracing::info!(
                        parse = parse_waited,
                        write = write_waited,
                        "the snapshot's parse or write is behind its stream: reading waits for it"
                    );
                }
                self.waited += 1;
            }
        }
    }

    /// The last piece has come: once the whole snapshot parsed and its file is synced,
    /// the file becomes the newest snapshot, durably. Returns what it holds.
    pub(crate) fn end(mut self) -> Result<Received, String> {
        let (parser, writer) = self
            .workers
            .take()
            .unwrap_or_else(|| Err("the snapshot was received already".into()))?;
        if self.waited > 0 {
            tracing::info!(
                pieces = self.waited,
                "snapshot pieces waited for the parse or the write"
            );
        }
        let parsed = parser
            .end()
            .map_err(Failure::Failed)
            .and_then(|parsed| parsed);
        if parsed.is_err() {
            // The file is thrown away: its write stops rather than syncs.
            self.abandoned.store(true, Ordering::Release);
        }
        let written = writer.end().map_err(Failure::Failed).and_then(|w| w);
        let received = match (parsed, written) {
            (Ok(parsed), Ok(())) => parsed,
            (parsed, written) => {
                let _ = std::fs::remove_file(&self.tmp);
                let failures = [parsed.err(), written.err()].into_iter().flatten();
                return Err(reason(failures).to_string());
            }
        };
        std::fs::rename(&self.tmp, &self.path)
            .and_then(|()| std::fs::File::open(&self.dir)?.sync_all())
            .map_err(|e| format!("installing {}: {e}", self.path.display()))?;
        Ok(received)
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if self.workers.is_some() {
            self.abandoned.store(true, Ordering::Release);
        }
    }
}

/// Parses the pieces as they come.
fn parse(
    rx: Receiver<Piece>,
    abandoned: &AtomicBool,
    path: PathBuf,
    zxid: i64,
    options: TreeOptions,
) -> Done<Received> {
    let failed = |e: zk_persistence::PersistenceError| Failure::Failed(e.to_string());
    let mut stream = SnapshotStream::new(path, zxid);
    let mut loader = TreeLoader::new(options);
    let mut body = |r: &mut Reader, more: bool| loader.read_some(r, more);
    let mut reported = 0;
    let snapshot = loop {
        let piece = rx.recv();
        if abandoned.load(Ordering::Acquire) {
            return Err(Failure::Stopped);
        }
        match piece {
            Ok(Piece::Data(bytes)) => {
                stream.push(bytes, &mut body).map_err(failed)?;
                // A big snapshot takes seconds: the operator sees it come.
                let read = stream.offset() >> 20;
                if read >= reported + PROGRESS_MIB {
                    reported = read;
                    tracing::info!(mib = read, "receiving the leader's snapshot");
                }
            }
            Ok(Piece::End) => break stream.finish(&mut body).map_err(failed)?,
            Err(_) => return Err(Failure::Stopped),
        }
    };
    let mut tree = loader
        .finish()
        .map_err(|e| Failure::Failed(e.to_string()))?;
    tree.set_sessions(snapshot.sessions);
    tree.set_last_zxid(zxid);
    Ok(Received {
        tree,
        digest: snapshot.digest,
    })
}

/// Writes the pieces as they come to `tmp` (past the page cache where the file system
/// allows, as periodic snapshots are), and syncs it at the end; a snapshot that stops
/// before its end leaves no file.
fn write(rx: Receiver<Piece>, abandoned: &AtomicBool, tmp: &Path) -> Done<()> {
    let failed = |e: std::io::Error| Failure::Failed(format!("writing {}: {e}", tmp.display()));
    let mut file = zk_persistence::SequentialFile::create(tmp).map_err(failed)?;
    // The file is closed when this returns, before an unfinished one is removed.
    let written = (move || {
        loop {
            let piece = rx.recv();
            if abandoned.load(Ordering::Acquire) {
                return Err(Failure::Stopped);
            }
            match piece {
                Ok(Piece::Data(bytes)) => file.write_all(&bytes).map_err(failed)?,
                Ok(Piece::End) => {
                    return file.finish().and_then(|f| f.sync_all()).map_err(failed);
                }
                Err(_) => return Err(Failure::Stopped),
            }
        }
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use zk_datatree::DataTree;

    use super::*;

    /// A snapshot file's bytes for a tree of a few hundred znodes, and the tree.
    fn snapshot() -> (DataTree, Vec<u8>) {
        let mut tree = DataTree::new(TreeOptions::default());
        for i in 0..300_i64 {
            let header = zk_jute::txn::TxnHeader {
                client_id: 7,
                cxid: 1,
                zxid: i + 1,
                time: 1_000,
                r#type: 1,
            };
            let txn = zk_datatree::Transaction::Create(zk_jute::txn::CreateTxn {
                path: format!("/n{i:03}"),
                data: Some(Bytes::from(vec![b'x'; 100])),
                acl: Some(zk_datatree::acl::open_acl_unsafe()),
                ephemeral: false,
                parent_c_version: -1,
            });
            assert_eq!(tree.apply(&header, &txn).err, 0);
        }
        let sessions = BTreeMap::from([(7_i64, 30_000_i32)]);
        tree.set_sessions(sessions.clone());
        let digest = crate::snapshot::tree_digest(&tree);
        let bytes = zk_persistence::snapshot_bytes(&sessions, Some(digest), |w| tree.write_body(w))
            .unwrap();
        (tree, bytes)
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_snapshot_in_pieces_is_loaded_and_becomes_the_newest_file() {
        let dir = tempfile::tempdir().unwrap();
        let (tree, bytes) = snapshot();
        let mut incoming = Incoming::start(dir.path(), 300, TreeOptions::default());
        for piece in bytes.chunks(1_000) {
            incoming.piece(Bytes::copy_from_slice(piece));
        }
        let Received {
            tree: loaded,
            digest,
        } = incoming.end().unwrap();
        assert_eq!(loaded.digest(), tree.digest());
        assert_eq!(loaded.last_zxid(), 300);
        assert_eq!(loaded.sessions(), tree.sessions());
        assert_eq!(digest.map(|d| d.zxid), Some(300));
        assert_eq!(files(dir.path()), ["snapshot.12c"]);
        assert_eq!(
            std::fs::read(dir.path().join("snapshot.12c")).unwrap(),
            bytes
        );
    }

    /// A thread is handed at most `QUEUED_PIECES` pieces it has not taken: the next one
    /// waits until it takes one (what holds a learner's memory to that much while its disk
    /// or its parse is behind).
    #[test]
    fn a_thread_behind_makes_the_next_piece_wait() {
        let (start, started) = std::sync::mpsc::channel::<()>();
        let worker = Worker::spawn("test", move |rx| {
            started.recv().unwrap();
            rx.iter()
                .take_while(|p| matches!(p, Piece::Data(_)))
                .count()
        })
        .unwrap();
        for _ in 0..QUEUED_PIECES {
            assert_eq!(worker.send(Piece::Data(Bytes::new())), Sent::Taken);
        }
        // Full until the thread starts taking them.
        let full = worker.tx.try_send(Piece::Data(Bytes::new()));
        assert!(matches!(full, Err(TrySendError::Full(_))), "{full:?}");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            start.send(()).unwrap();
        });
        // Waited, unless this thread stalled past the release (the check above showed the
        // bound either way).
        let sent = worker.send(Piece::Data(Bytes::new()));
        assert!(matches!(sent, Sent::Waited | Sent::Taken), "{sent:?}");
        release.join().unwrap();
        assert_eq!(worker.end().unwrap(), QUEUED_PIECES + 1);
    }

    /// A thread that stops while a piece waits for it to have room frees the waiter:
    /// nothing hangs on a parse or a write that failed.
    #[test]
    fn a_thread_that_stops_frees_a_piece_waiting_for_it() {
        let (start, started) = std::sync::mpsc::channel::<()>();
        let worker = Worker::spawn("test", move |rx: Receiver<Piece>| {
            started.recv().unwrap();
            drop(rx);
            "failed"
        })
        .unwrap();
        for _ in 0..QUEUED_PIECES {
            assert_eq!(worker.send(Piece::Data(Bytes::new())), Sent::Taken);
        }
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            start.send(()).unwrap();
        });
        // Gone, whether it waited for the stop or (this thread stalled) found it done.
        assert_eq!(worker.send(Piece::Data(Bytes::new())), Sent::Gone);
        release.join().unwrap();
        assert_eq!(worker.end().unwrap(), "failed");
    }

    /// The reason a receive gives is the first failure that is not a stop.
    #[test]
    fn the_reason_is_the_first_failure_that_is_not_a_stop() {
        let failed = |why: &str| Failure::Failed(why.into());
        let cases = [
            (vec![Failure::Stopped, failed("write")], failed("write")),
            (vec![failed("parse"), Failure::Stopped], failed("parse")),
            (vec![failed("parse"), failed("write")], failed("parse")),
            (vec![Failure::Stopped, Failure::Stopped], Failure::Stopped),
            (vec![], Failure::Stopped),
        ];
        for (failures, expected) in cases {
            assert_eq!(reason(failures.clone()), expected, "{failures:?}");
        }
    }

    /// A receive whose parse fails stops its write too, and reports the parse's error.
    #[test]
    fn a_failed_parse_stops_the_write_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut bytes) = snapshot();
        bytes[0] ^= 0xff; // Not a snapshot's magic.
        let mut incoming = Incoming::start(dir.path(), 300, TreeOptions::default());
        for piece in bytes.chunks(1_000) {
            incoming.piece(Bytes::copy_from_slice(piece));
        }
        // Far more pieces than the queue holds: the parse took one, failed on it, and a
        // later piece found it gone.
        assert!(bytes.len() / 1_000 > QUEUED_PIECES + 2);
        assert!(
            incoming.abandoned.load(Ordering::Acquire),
            "the write was stopped"
        );
        let Err(error) = incoming.end() else {
            panic!("a snapshot with a broken magic loaded");
        };
        assert!(!error.contains(&Failure::Stopped.to_string()), "{error}");
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }

    /// A receive whose write fails (no such directory) stops its parse too, and reports
    /// the write's error, not the parse's stop.
    #[test]
    fn a_failed_write_stops_the_parse_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let (_, bytes) = snapshot();
        let gone = dir.path().join("gone");
        let mut incoming = Incoming::start(&gone, 300, TreeOptions::default());
        for piece in bytes.chunks(1_000) {
            incoming.piece(Bytes::copy_from_slice(piece));
        }
        let Err(error) = incoming.end() else {
            panic!("a snapshot was installed where it could not be written");
        };
        assert!(error.starts_with("writing "), "{error}");
        assert!(!error.contains(&Failure::Stopped.to_string()), "{error}");
    }

    #[test]
    fn a_broken_snapshot_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut bytes) = snapshot();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        let mut incoming = Incoming::start(dir.path(), 300, TreeOptions::default());
        for piece in bytes.chunks(1_000) {
            incoming.piece(Bytes::copy_from_slice(piece));
        }
        assert!(incoming.end().is_err());
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    }

    #[test]
    fn a_receive_dropped_before_its_end_stops_and_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let (_, bytes) = snapshot();
        let mut incoming = Incoming::start(dir.path(), 300, TreeOptions::default());
        incoming.piece(Bytes::copy_from_slice(&bytes[..bytes.len() / 2]));
        // Its writer has its file open.
        let deadline = Instant::now() + Duration::from_secs(10);
        while files(dir.path()).is_empty() {
            assert!(Instant::now() < deadline, "no file written");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(files(dir.path())[0].ends_with(".tmp"));
        drop(incoming);
        while !files(dir.path()).is_empty() {
            assert!(Instant::now() < deadline, "{:?}", files(dir.path()));
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
