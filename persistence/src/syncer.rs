//! [`Syncer`]: the fsyncs of a log that its owner writes itself, on a thread of their own,
//! each started as soon as the one before ends.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crate::error::{PersistenceError, Result};
use crate::log::PendingSync;

/// Fsyncs what [`FileTxnLog::write`](crate::FileTxnLog::write) wrote, on a thread of its
/// own, one batch after another: whatever was handed over while an fsync ran is synced
/// right after it ends, without waiting for the owner of the log to ask again (as
/// ZooKeeper's `SyncRequestProcessor` flushes what queued behind a flush).
///
/// The owner keeps the log and writes to it as it likes; each write's [`PendingSync`] goes
/// to [`sync`](Self::sync) with a mark of the caller's (say, the last zxid written). Each
/// batch ends with one call of `done` on the syncer's thread, with the mark handed over
/// last before the batch began and the batch's outcome: every write handed over up to that
/// mark is then durable. Batches end in the order they were handed over.
pub struct Syncer<M: Send + 'static> {
    shared: Arc<Shared<M>>,
    thread: Option<JoinHandle<()>>,
}

impl<M: Send + 'static> std::fmt::Debug for Syncer<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queue = self.shared.lock();
        f.debug_struct("Syncer")
            .field("queued", &queue.files.len())
            .field("busy", &queue.busy)
            .finish()
    }
}

struct Shared<M> {
    queue: Mutex<Queue<M>>,
    wake: Condvar,
}

impl<M> Shared<M> {
    /// The queue; a panic elsewhere while it was held leaves nothing half-done in it.
    fn lock(&self) -> MutexGuard<'_, Queue<M>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Queue<M> {
    /// The files of the next batch, each once.
    files: Vec<PendingSync>,
    /// The mark the next batch ends with.
    mark: Option<M>,
    /// A batch is being synced.
    busy: bool,
    /// A batch failed: every later one fails too, and nothing is ever durable again.
    failed: bool,
    stop: bool,
}

/// What [`Syncer::sync`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Nothing was left to sync: every write handed over is durable (or, with no fsync
    /// asked for, as durable as it gets), and `done` will not be called for this mark.
    /// The last batch's `done` may still be running: its news can come after this.
    Idle,
    /// A batch will end with this mark (or a later one).
    Queued,
}

impl<M: Send + 'static> Syncer<M> {
    /// Starts the thread; `done` runs on it at the end of each batch.
    pub fn start(mut done: impl FnMut(M, Result<()>) + Send + 'static) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                files: Vec::new(),
                mark: None,
                busy: false,
                failed: false,
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let on_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("txn-log-sync".into())
            .spawn(move || {
                while let Some((files, mark, failed)) = next_batch(&on_thread) {
                    let result = if failed {
                        Err(PersistenceError::Stopped)
                    } else {
                        files.into_iter().try_for_each(PendingSync::sync)
                    };
                    // Idle before `done`: a write handed over from here on starts a batch
                    // of its own, and one that needs no fsync is durable already (unless
                    // this batch failed).
                    let mut queue = on_thread.lock();
                    queue.busy = false;
                    queue.failed |= result.is_err();
                    drop(queue);
                    done(mark, result);
                }
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Hands over a write's fsync (`None`: the write wrote nothing, or needs no fsync),
    /// to be reported with `mark`. With nothing to sync and no batch queued or running,
    /// nothing is queued ([`Queued::Idle`]); otherwise the next batch covers it and ends
    /// with `mark` or a later one (a batch with no file when `pending` is `None`: it ends
    /// right after the one running). After a failed batch every later one fails, and
    /// nothing is [`Queued::Idle`].
    pub fn sync(&self, pending: Option<PendingSync>, mark: M) -> Queued {
        let mut queue = self.shared.lock();
        match pending {
            None if queue.mark.is_none() && !queue.busy && !queue.failed => {
                return Queued::Idle;
            }
            None => {}
            Some(pending) => {
                if let Some(same) = queue.files.iter_mut().find(|f| f.path() == pending.path()) {
                    *same = pending;
                } else {
                    queue.files.push(pending);
                }
            }
        }
        queue.mark = Some(mark);
        drop(queue);
        self.shared.wake.notify_one();
        Queued::Queued
    }
}

/// Waits for the next batch (its files, its mark, and whether an earlier batch failed);
/// `None` once stopped with nothing left.
fn next_batch<M>(shared: &Shared<M>) -> Option<(Vec<PendingSync>, M, bool)> {
    let mut queue = shared.lock();
    loop {
        if let Some(mark) = queue.mark.take() {
            queue.busy = true;
            return Some((std::mem::take(&mut queue.files), mark, queue.failed));
        }
        if queue.stop {
            return None;
        }
        queue = shared
            .wake
            .wait(queue)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

impl<M: Send + 'static> Drop for Syncer<M> {
    /// Syncs what was handed over, then stops the thread.
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use zk_jute::txn::TxnHeader;

    use super::*;
    use crate::{FileTxnLog, LogEntry, LogOptions, TxnLog};

    fn append(log: &mut FileTxnLog, zxid: i64) -> Option<PendingSync> {
        let header = TxnHeader {
            client_id: 1,
            cxid: zxid as i32,
            zxid,
            time: 0,
            r#type: -10,
        };
        log.append(&LogEntry::new(header, &30_000_i32.to_be_bytes(), None))
            .expect("append");
        log.write().expect("write")
    }

    #[test]
    fn what_is_handed_over_during_an_fsync_is_synced_in_one_batch_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log =
            FileTxnLog::open(dir.path().join("version-2"), LogOptions::default()).expect("open");
        let (ended, ends) = mpsc::channel();
        let (go, gate) = mpsc::channel::<()>();
        let syncer = Syncer::start(move |mark: i64, result| {
            ended
                .send((mark, result.is_ok()))
                .expect("the test listens");
            // Holds the thread after each batch until the test lets it go (or is done; a
            // failed assertion drops the syncer first, and this lets it stop).
            let _ = gate.recv_timeout(std::time::Duration::from_secs(10));
        })
        .expect("start");

        assert_eq!(syncer.sync(append(&mut log, 1), 1), Queued::Queued);
        assert_eq!(ends.recv().expect("first batch"), (1, true));
        // The thread is held: these wait, in one batch with one file.
        assert_eq!(syncer.sync(append(&mut log, 2), 2), Queued::Queued);
        assert_eq!(syncer.sync(append(&mut log, 3), 3), Queued::Queued);
        assert_eq!(syncer.shared.lock().files.len(), 1);
        // Nothing new to write (say, the owner synced in place), but a batch waits: it
        // ends with this mark.
        assert_eq!(syncer.sync(None, 4), Queued::Queued);
        go.send(()).expect("the thread waits");
        assert_eq!(ends.recv().expect("second batch"), (4, true));
        // That batch is synced: nothing new needs no batch.
        assert_eq!(syncer.sync(None, 4), Queued::Idle);
        go.send(()).expect("the thread waits");
        assert!(
            ends.recv_timeout(std::time::Duration::from_millis(50))
                .is_err()
        );

        // Dropping the syncer syncs what was handed over before the thread stops.
        assert_eq!(syncer.sync(append(&mut log, 5), 5), Queued::Queued);
        drop(go);
        drop(syncer);
        assert_eq!(ends.try_recv().expect("last batch"), (5, true));
        assert!(ends.try_recv().is_err());
    }

    #[test]
    fn with_no_fsync_asked_for_nothing_is_queued() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = LogOptions {
            force_sync: false,
            ..LogOptions::default()
        };
        let mut log = FileTxnLog::open(dir.path().join("version-2"), options).expect("open");
        let (ended, ends) = mpsc::channel();
        let syncer = Syncer::start(move |mark: i64, _| {
            let _ = ended.send(mark);
        })
        .expect("start");
        assert_eq!(syncer.sync(append(&mut log, 1), 1), Queued::Idle);
        drop(syncer);
        assert!(ends.try_recv().is_err());
    }

    /// fdatasync of `/dev/null` fails (EINVAL) on Linux.
    #[cfg(target_os = "linux")]
    #[test]
    fn after_a_failed_fsync_every_batch_fails_and_nothing_is_idle() {
        let failing = || {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .expect("open /dev/null");
            PendingSync::of(file, "/dev/null".into())
        };
        let (ended, ends) = mpsc::channel();
        let syncer = Syncer::start(move |mark: i64, result| {
            let _ = ended.send((mark, result.is_ok()));
        })
        .expect("start");
        assert_eq!(syncer.sync(Some(failing()), 1), Queued::Queued);
        assert_eq!(ends.recv().expect("first batch"), (1, false));
        // Nothing new to sync, yet not durable: the log failed.
        assert_eq!(syncer.sync(None, 2), Queued::Queued);
        assert_eq!(ends.recv().expect("second batch"), (2, false));
    }
}
