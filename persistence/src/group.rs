//! Group commit: many appends, one fsync. A writer thread owns the log; each append returns
//! a [`Completion`] that resolves only once its entry is durable, or, for a caller that
//! appends in zxid order and wants one wake-up per commit rather than per entry, the
//! [`GroupCommit::durable`] watermark says how far the log is durable.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use tokio::sync::{oneshot, watch};

use crate::error::PersistenceError;
use crate::format::LogEntry;
use crate::log::TxnLog;

/// The outcome of a durable operation, shareable between the appends of one batch.
pub type Durable = Result<(), Arc<PersistenceError>>;

/// Resolves when the operation it stands for is durable (or has failed). Await it, or call
/// [`Completion::wait`] from a thread that is not running an async runtime.
#[derive(Debug)]
pub struct Completion(oneshot::Receiver<Durable>);

impl Completion {
    /// Blocks until durable.
    pub fn wait(self) -> Durable {
        self.0
            .blocking_recv()
            .unwrap_or_else(|_| Err(Arc::new(PersistenceError::Stopped)))
    }
}

impl Future for Completion {
    type Output = Durable;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Durable> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(Arc::new(PersistenceError::Stopped))))
    }
}

/// How far the log is durable: the zxid of the last entry committed (0 before any), or the
/// error that stopped the log.
pub type Watermark = Result<i64, Arc<PersistenceError>>;

enum Command {
    Append(LogEntry, oneshot::Sender<Durable>),
    /// An append reported through the watermark only.
    AppendMarked(LogEntry),
    Roll(oneshot::Sender<Durable>),
    Truncate(i64, oneshot::Sender<Durable>),
    PurgeBefore(i64, oneshot::Sender<Durable>),
}

/// Limits of the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupOptions {
    /// Appends waiting for the writer before `append` blocks (backpressure).
    pub queue_len_max: usize,
    /// Appends written with one fsync at most.
    pub batch_len_max: usize,
}

impl Default for GroupOptions {
    fn default() -> Self {
        Self {
            queue_len_max: 65_536,
            batch_len_max: 4_096,
        }
    }
}

/// Counters of the writer: how well batching works.
#[derive(Debug, Default)]
pub struct GroupStats {
    /// Commits (fsyncs when `forceSync` is on).
    pub commits: AtomicU64,
    /// Entries written.
    pub entries: AtomicU64,
    /// Time spent in commits (writes and fsyncs), in microseconds.
    pub commit_micros: AtomicU64,
    /// The longest commit, in microseconds.
    pub commit_micros_max: AtomicU64,
}

/// A txn log behind a writer thread that commits appends in groups.
pub struct GroupCommit {
    tx: Option<SyncSender<Command>>,
    writer: Option<JoinHandle<()>>,
    stats: Arc<GroupStats>,
    durable: watch::Receiver<Watermark>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("stats", &self.stats)
            .finish()
    }
}

impl GroupCommit {
    /// Starts the writer thread, which owns `log` from now on.
    pub fn start<L: TxnLog + Send + 'static>(log: L, options: GroupOptions) -> Self {
        Self::start_inner(log, options, None)
    }

    /// [`start`](Self::start), and `listener` is called on the writer thread with every
    /// move of the [`durable`](Self::durable) watermark (once per commit): a caller that
    /// must act on each commit hears of it without a task of its own in between.
    pub fn start_with_listener<L: TxnLog + Send + 'static>(
        log: L,
        options: GroupOptions,
        listener: impl Fn(&Watermark) + Send + 'static,
    ) -> Self {
        Self::start_inner(log, options, Some(Box::new(listener)))
    }

    fn start_inner<L: TxnLog + Send + 'static>(
        log: L,
        options: GroupOptions,
        listener: Option<Listener>,
    ) -> Self {
        let (tx, rx) = sync_channel(options.queue_len_max.max(1));
        let stats = Arc::new(GroupStats::default());
        let thread_stats = stats.clone();
        let (watch, durable) = watch::channel(Ok(log.last_zxid()));
        let mark = Marker { watch, listener };
        let writer = std::thread::Builder::new()
            .name("txn-log-writer".into())
            .spawn(move || write_loop(log, rx, options.batch_len_max.max(1), &thread_stats, &mark))
            .ok();
        Self {
            tx: Some(tx),
            writer,
            stats,
            durable,
        }
    }

    fn send(&self, make: impl FnOnce(oneshot::Sender<Durable>) -> Command) -> Completion {
        let (done, completion) = oneshot::channel();
        self.enqueue(make(done));
        Completion(completion)
    }

    /// Hands `command` to the writer; a full queue blocks (backpressure rather than
    /// unbounded memory).
    fn enqueue(&self, command: Command) {
        if let Some(tx) = &self.tx {
            let sent = match tx.try_send(command) {
                Err(TrySendError::Full(command)) => tx.send(command).is_ok(),
                other => other.is_ok(),
            };
            if !sent {
                tracing::error!("txn log writer has stopped; append refused");
            }
        }
    }

    /// Queues `entry`; the completion resolves when it is durable.
    pub fn append(&self, entry: LogEntry) -> Completion {
        self.send(|done| Command::Append(entry, done))
    }

    /// Queues `entry` without a completion of its own: it is durable once the
    /// [`durable`](Self::durable) watermark reaches its zxid. Cheaper than [`append`] when
    /// appends come in zxid order and many are in flight.
    ///
    /// [`append`]: Self::append
    pub fn append_marked(&self, entry: LogEntry) {
        self.enqueue(Command::AppendMarked(entry));
    }

    /// The durability watermark: updated after every commit that wrote entries (with the
    /// last one's zxid), or with the error once the log has failed. Starts at the log's
    /// last zxid when the writer started.
    pub fn durable(&self) -> watch::Receiver<Watermark> {
        self.durable.clone()
    }

    /// Commits what is queued and starts a new log segment (after a snapshot).
    pub fn roll(&self) -> Completion {
        self.send(Command::Roll)
    }

    /// Commits what is queued, then removes every entry after `zxid`.
    pub fn truncate(&self, zxid: i64) -> Completion {
        self.send(|done| Command::Truncate(zxid, done))
    }

    /// Removes log segments wholly before `zxid`.
    pub fn purge_before(&self, zxid: i64) -> Completion {
        self.send(|done| Command::PurgeBefore(zxid, done))
    }

    /// The writer's counters.
    pub fn stats(&self) -> &GroupStats {
        &self.stats
    }

    /// Commits what is queued and stops the writer.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.tx.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_loop<L: TxnLog>(
    mut log: L,
    rx: Receiver<Command>,
    batch_len_max: usize,
    stats: &GroupStats,
    mark: &Marker,
) {
    let mut failed: Option<Arc<PersistenceError>> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = Batch::default();
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::AppendMarked(entry) => {
                    if failed.is_none() {
                        match log.append(&entry) {
                            Ok(()) => {
                                batch.marked = Some(entry.zxid());
                                batch.appended += 1;
                            }
                            // The watermark cannot pass an entry that is not there.
                            Err(e) => failed = Some(Arc::new(e)),
                        }
                    }
                }
                Command::Append(entry, done) => {
                    if failed.is_none() {
                        if let Err(e) = log.append(&entry) {
                            let _ = done.send(Err(Arc::new(e)));
                        } else {
                            batch.waiting.push(done);
                            batch.marked = Some(entry.zxid());
                            batch.appended += 1;
                        }
                    } else {
                        batch.waiting.push(done);
                    }
                }
                // Anything else runs after the appends before it are committed.
                other => {
                    finish(&mut log, &mut batch, &mut failed, stats, mark);
                    let result = match (&failed, other) {
                        (Some(e), other) => other.reply(Err(e.clone())),
                        (None, Command::Roll(done)) => done.send(log.roll().map_err(Arc::new)),
                        (None, Command::Truncate(z, done)) => {
                            done.send(log.truncate(z).map_err(Arc::new))
                        }
                        (None, Command::PurgeBefore(z, done)) => {
                            done.send(log.purge_before(z).map_err(Arc::new))
                        }
                        (None, Command::Append(..) | Command::AppendMarked(_)) => Ok(()),
                    };
                    drop(result);
                }
            }
            if batch.len < batch_len_max {
                next = rx.try_recv().ok();
            }
            batch.len += 1;
        }
        finish(&mut log, &mut batch, &mut failed, stats, mark);
    }
    let _ = log.commit();
}

/// Called with each move of the watermark.
type Listener = Box<dyn Fn(&Watermark) + Send>;

/// Where the writer publishes the watermark.
struct Marker {
    watch: watch::Sender<Watermark>,
    listener: Option<Listener>,
}

impl Marker {
    fn set(&self, mark: Watermark) {
        if let Some(listener) = &self.listener {
            listener(&mark);
        }
        let _ = self.watch.send_replace(mark);
    }
}

/// The appends written since the last commit.
#[derive(Default)]
struct Batch {
    /// Their completions.
    waiting: Vec<oneshot::Sender<Durable>>,
    /// The last zxid appended, if any.
    marked: Option<i64>,
    /// Entries written.
    appended: u64,
    /// Commands taken.
    len: usize,
}

impl Command {
    fn reply(self, result: Durable) -> Result<(), Durable> {
        match self {
            Command::Append(_, done)
            | Command::Roll(done)
            | Command::Truncate(_, done)
            | Command::PurgeBefore(_, done) => done.send(result),
            Command::AppendMarked(_) => Ok(()),
        }
    }
}

/// Commits the appended batch once and tells every waiter. A failed commit stops the log:
/// what was not durable cannot be known, so nothing later may be acknowledged.
fn finish<L: TxnLog>(
    log: &mut L,
    batch: &mut Batch,
    failed: &mut Option<Arc<PersistenceError>>,
    stats: &GroupStats,
    mark: &Marker,
) {
    let marked = batch.marked.take();
    let appended = std::mem::take(&mut batch.appended);
    if batch.waiting.is_empty() && marked.is_none() {
        if let Some(e) = failed {
            if mark.watch.borrow().is_ok() {
                mark.set(Err(e.clone()));
            }
        }
        return;
    }
    if failed.is_none() {
        let started = std::time::Instant::now();
        match log.commit() {
            Ok(()) => {
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                stats.commit_micros.fetch_add(micros, Ordering::Relaxed);
                stats.commit_micros_max.fetch_max(micros, Ordering::Relaxed);
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.entries.fetch_add(appended, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(error = %e, "txn log commit failed; the log stops accepting writes");
                *failed = Some(Arc::new(e));
            }
        }
    }
    let result: Durable = match failed {
        Some(e) => Err(e.clone()),
        None => Ok(()),
    };
    match (&result, marked) {
        (Ok(()), Some(zxid)) => {
            mark.set(Ok(zxid));
        }
        (Err(e), _) => {
            mark.set(Err(e.clone()));
        }
        (Ok(()), None) => {}
    }
    for done in batch.waiting.drain(..) {
        let _ = done.send(result.clone());
    }
}
