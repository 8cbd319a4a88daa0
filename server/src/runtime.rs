//! The runtime: the one task that serves. It owns the [`Engine`], turns what reaches it
//! (connections' frames, the log's durability marks, ticks, the snapshot thread's news)
//! into the engine's inputs, and carries the engine's outputs out: bytes written to
//! sockets, txns appended to the log through group commit, snapshots taken, files purged.
//! Nothing here decides anything about the protocol.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use tokio::sync::{mpsc, oneshot, watch};
use zk_jute::Zxid;
use zk_jute::proto::ConnectRequest;
use zk_persistence::GroupCommit;

use crate::conn::ConnWriter;
use crate::engine::{ConnId, Engine, Input, Now, Output};
use crate::ensemble::Ensemble;
use crate::member::{Host, Member, mode_of};
use crate::metrics::Throttle;
use crate::snapshot;
use crate::status::{LogStatus, Status};

/// What reaches the serving task.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A new connection's handshake.
    Connect {
        conn: ConnId,
        addr: SocketAddr,
        request: ConnectRequest,
        /// Identities the connection proved before its handshake (a TLS client
        /// certificate's `x509` id).
        identities: Vec<zk_jute::data::Id>,
        writer: ConnWriter,
        /// Dropped to stop the connection's reader.
        stop: oneshot::Sender<()>,
    },
    /// A connection whose socket was full can take more.
    Writable { conn: ConnId },
    /// A request frame after the handshake.
    Request {
        conn: ConnId,
        xid: i32,
        op: i32,
        body: bytes::Bytes,
    },
    /// The connection is gone.
    Closed { conn: ConnId },
    /// The log has made `zxid` (and everything before it) durable, or failed.
    Durable { zxid: i64, ok: bool },
    /// A member's fsync has ended: the replicated log is durable through the zxid, or the
    /// fsync failed. It counts only if the log was not truncated or replaced since the
    /// sync was asked for (the host's sync generation is still `generation`).
    LogSynced {
        generation: u64,
        result: Result<Zxid, String>,
    },
    /// Time passes.
    Tick,
    /// A four-letter word.
    Command {
        word: String,
        reply: oneshot::Sender<String>,
    },
    /// News from the snapshot's thread.
    Snapshot(snapshot::Event),
    /// Every figure, for the Prometheus endpoint.
    Status { reply: oneshot::Sender<Status> },
    /// An AdminServer command.
    Admin(crate::admin::AdminRequest),
    /// Stop: close every connection; the log is synced when the runtime is dropped.
    Shutdown,
    /// An ensemble's quorum stream: opened, closed, or a message from a peer.
    Peer(zk_replication::transport::Event),
    /// The election's state changed.
    Election(zk_election::transport::Status),
    /// Zab's timers.
    ZabTick,
}

/// Messages handled before the replies they made are written.
const BURST_MAX: usize = 256;

/// While a snapshot is being taken, the longest the serving loop keeps the tree from its
/// thread under a load that never lets the loop wait: a chunk of the snapshot then goes
/// at least this often.
const LEND_EVERY: Duration = Duration::from_millis(1);

/// Frames waiting for a client that does not read before it is cut off.
const OUTGOING_FRAMES_MAX: usize = 16_384;

/// Bytes waiting for a client that does not read before it is cut off.
const OUTGOING_BYTES_MAX: usize = 64 << 20;

/// A connection's reply buffer bigger than this after a write is given back.
const PENDING_KEPT_MAX: usize = 256 * 1024;

/// A connection's socket side.
struct ConnIo {
    /// The socket's write half; `None` once closed.
    writer: Option<Arc<ConnWriter>>,
    /// Dropping it stops the connection's reader.
    stop: Option<oneshot::Sender<()>>,
    /// Replies and events not yet written: gathered while the task works through the
    /// messages already waiting, then written with one syscall ([`Runtime::flush`]).
    pending: BytesMut,
    /// Frames in `pending`.
    pending_frames: usize,
    /// The socket was full: a task waits until it can take more (`Msg::Writable`).
    blocked: bool,
    /// Listed in `Runtime::dirty`.
    dirty: bool,
    addr: SocketAddr,
}

/// Closes a connection once what it has pending is written: its reader stops now, and
/// the socket is shut down after the last byte (by a task, if the socket is full).
fn close_out(c: &mut ConnIo) {
    c.stop = None;
    let Some(writer) = c.writer.take() else {
        return;
    };
    let mut pending = std::mem::take(&mut c.pending);
    if pending.is_empty()
        || (!c.blocked && matches!(writer.write_now(&mut pending), Ok(true) | Err(_)))
    {
        // Written (or failed): dropping the last handle to the write half shuts it down.
        return;
    }
    tokio::spawn(async move {
        while !pending.is_empty() {
            if writer.writable().await.is_err() {
                return;
            }
            if writer.write_now(&mut pending).is_err() {
                return;
            }
        }
    });
}

/// The engine's clock for a runtime started at `started`.
fn now_since(started: Instant) -> Now {
    Now {
        mono_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        wall_ms: wall_ms(),
    }
}

/// The wall clock, in milliseconds since the Unix epoch.
pub(crate) fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The serving task's state.
pub(crate) struct Runtime {
    engine: Engine,
    /// A standalone server's log; an ensemble's member logs through Zab.
    log: Option<GroupCommit>,
    /// An ensemble's member: Zab and its glue to the engine.
    member: Option<Member>,
    /// The member's host: its log, its peers, its election.
    ensemble: Option<Box<Ensemble>>,
    io: HashMap<ConnId, ConnIo>,
    /// Connections with bytes in `pending`, to write at the next flush.
    dirty: Vec<ConnId>,
    out: Vec<Output>,
    tx: mpsc::UnboundedSender<Msg>,
    throttle: Arc<Throttle>,
    started: Instant,
    snap_dir: PathBuf,
    log_dir: PathBuf,
    snap_retain_count: usize,
    snapshot: Option<snapshot::Job>,
    /// Set once the engine reported a fatal error.
    failed: watch::Sender<Option<String>>,
}

impl Runtime {
    /// A runtime for `engine`, whose clock started at `started`.
    pub(crate) fn new(
        engine: Engine,
        started: Instant,
        log: Option<GroupCommit>,
        ensemble: Option<(Box<Ensemble>, Member)>,
        tx: mpsc::UnboundedSender<Msg>,
        throttle: Arc<Throttle>,
        failed: watch::Sender<Option<String>>,
    ) -> Self {
        let config = engine.config();
        let (ensemble, member) = ensemble.unzip();
        Self {
            snap_dir: config.data_dir.join(zk_persistence::VERSION_DIR),
            log_dir: config.data_log_dir.join(zk_persistence::VERSION_DIR),
            snap_retain_count: config.snap_retain_count,
            engine,
            log,
            member,
            ensemble,
            io: HashMap::new(),
            dirty: Vec::new(),
            out: Vec::new(),
            tx,
            throttle,
            started,
            snapshot: None,
            failed,
        }
    }

    /// The engine's clock: microseconds since the start, and the wall clock.
    fn now(&self) -> Now {
        now_since(self.started)
    }

    /// Hands `input` to the engine and carries out what it asks (and, on an ensemble's
    /// member, what Zab makes of it).
    pub(crate) fn input(&mut self, input: Input) {
        if self.member.is_some() {
            self.with_member(|member, engine, host, now| member.input(engine, host, now, input));
            return;
        }
        let now = self.now();
        let mut out = std::mem::take(&mut self.out);
        self.engine.handle(now, input, &mut out);
        for output in out.drain(..) {
            self.carry_out(output);
        }
        self.out = out;
        self.throttle.set(self.engine.outstanding());
    }

    /// Runs `step` on the member (if this server is one), then carries out the engine's
    /// outputs it left; an error stops the server.
    fn with_member(
        &mut self,
        step: impl FnOnce(&mut Member, &mut Engine, &mut dyn Host, Now) -> Result<(), String>,
    ) {
        let now = self.now();
        let (Some(member), Some(ensemble)) = (self.member.as_mut(), self.ensemble.as_mut()) else {
            return;
        };
        let result = step(member, &mut self.engine, &mut **ensemble, now);
        let outputs = member.take_output();
        for output in outputs {
            self.carry_out(output);
        }
        if let Err(reason) = result {
            self.fail(reason);
        }
        self.throttle.set(self.engine.outstanding());
    }

    /// Stops serving: an error nothing can go on from.
    fn fail(&mut self, reason: String) {
        tracing::error!(%reason, "stopping the server");
        self.failed.send_replace(Some(reason));
    }

    fn carry_out(&mut self, output: Output) {
        match output {
            Output::Frame { conn, bytes } => self.queue_bytes(conn, &bytes),
            Output::Close { conn } => {
                if let Some(c) = self.io.get_mut(&conn) {
                    close_out(c);
                }
            }
            Output::Append(entry) => match &self.log {
                Some(log) => log.append_marked(entry),
                // A member's appends are proposed to Zab by the member itself.
                None => tracing::error!(zxid = entry.header.zxid, "an append with no log"),
            },
            Output::Snapshot => self.start_snapshot(),
            Output::RollLog => self.roll_log(),
            Output::Purge => {
                let (snap_dir, log_dir) = (self.snap_dir.clone(), self.log_dir.clone());
                let retain = self.snap_retain_count;
                tokio::task::spawn_blocking(move || {
                    match zk_persistence::purge(&snap_dir, &log_dir, retain) {
                        Ok(deleted) => tracing::info!(files = deleted.len(), "autopurge done"),
                        Err(e) => tracing::warn!(error = %e, "autopurge failed"),
                    }
                });
            }
            // Only a learner's engine asks these, and its member takes them to Zab.
            Output::Forward(_) | Output::Sync { .. } => {
                tracing::error!("a learner's output on a standalone server");
            }
            Output::Fatal(reason) => {
                self.failed.send_replace(Some(reason));
            }
        }
    }

    /// Whether the engine has stopped on a fatal error.
    fn has_failed(&self) -> bool {
        self.failed.borrow().is_some()
    }

    /// Appends a frame to what the connection will be written at the next flush.
    fn queue_bytes(&mut self, conn: ConnId, bytes: &[u8]) {
        let Some(c) = self.io.get_mut(&conn) else {
            return;
        };
        if c.writer.is_none() {
            return;
        }
        if c.blocked
            && (c.pending_frames >= OUTGOING_FRAMES_MAX || c.pending.len() >= OUTGOING_BYTES_MAX)
        {
            // A client that does not read its replies is cut off rather than buffered
            // forever; its reader stops and reports the connection closed.
            tracing::warn!(conn, addr = %c.addr, "closing a connection whose client does not keep up");
            c.pending.clear();
            close_out(c);
            return;
        }
        c.pending.extend_from_slice(bytes);
        c.pending_frames += 1;
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(conn);
        }
    }

    /// Starts a new log file at the next append.
    fn roll_log(&mut self) {
        match (&self.log, self.ensemble.as_mut()) {
            // Ordered after every append so far; no need to wait.
            (Some(log), _) => drop(log.roll()),
            (None, Some(ensemble)) => {
                if let Err(e) = ensemble.storage.roll() {
                    self.fail(format!("rolling the txn log failed: {e}"));
                }
            }
            (None, None) => {}
        }
    }

    /// Rolls the log and starts a fuzzy snapshot of the tree as it is now.
    fn start_snapshot(&mut self) {
        self.roll_log();
        let tx = self.tx.clone();
        let notify: snapshot::Notify = Arc::new(move |event| {
            let _ = tx.send(Msg::Snapshot(event));
        });
        let fence =
            (self.ensemble.as_ref()).map_or_else(Default::default, |e| e.snapshot_fence.clone());
        let tree = self.engine.shared_tree();
        self.snapshot =
            snapshot::Job::start(tree.shared(), tree.cell(), fence, &self.snap_dir, notify);
        if self.snapshot.is_none() {
            self.input(Input::SnapshotDone { zxid: 0, ok: false });
        }
    }

    /// Handles one message; false once the task must stop.
    pub(crate) fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Connect {
                conn,
                addr,
                request,
                identities,
                writer,
                stop,
            } => {
                self.io.insert(
                    conn,
                    ConnIo {
                        writer: Some(Arc::new(writer)),
                        stop: Some(stop),
                        pending: BytesMut::new(),
                        pending_frames: 0,
                        blocked: false,
                        dirty: false,
                        addr,
                    },
                );
                self.input(Input::Connect {
                    conn,
                    addr,
                    request,
                    identities,
                });
            }
            Msg::Writable { conn } => {
                if let Some(c) = self.io.get_mut(&conn) {
                    c.blocked = false;
                    if !c.dirty {
                        c.dirty = true;
                        self.dirty.push(conn);
                    }
                }
            }
            Msg::Request {
                conn,
                xid,
                op,
                body,
            } => self.input(Input::Request {
                conn,
                xid,
                op,
                body,
            }),
            Msg::Closed { conn } => {
                self.input(Input::Closed { conn });
                self.io.remove(&conn);
            }
            Msg::Durable { zxid, ok: true } => self.input(Input::Durable { zxid }),
            Msg::Durable { ok: false, .. } => self.input(Input::LogFailed {
                error: "a write or fsync failed".into(),
            }),
            Msg::Tick => self.input(Input::Tick),
            Msg::Command { word, reply } => {
                let status = self.status();
                let _ = reply.send(crate::fourlw::answer(&word, &mut self.engine, &status));
            }
            Msg::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Msg::Admin(request) => {
                let status = self.status();
                let answer = crate::admin::answer(&request.command, &mut self.engine, &status);
                let _ = request.reply.send(answer);
            }
            Msg::Snapshot(snapshot::Event::Done { zxid, ok }) => {
                // The writer sent this as its last act (having freed any tree replaced
                // meanwhile); joining it does not wait.
                if let Some(mut job) = self.snapshot.take() {
                    job.join();
                }
                self.input(Input::SnapshotDone { zxid, ok });
            }
            Msg::Shutdown => {
                self.input(Input::Shutdown);
                return false;
            }
            Msg::Peer(event) => {
                use zk_replication::transport::Event;
                let input = match event {
                    Event::Connected { peer } => zk_replication::Input::Connected { peer },
                    Event::Disconnected { peer } => zk_replication::Input::Disconnected { peer },
                    // It wakes the loop, which steps the snapshot again.
                    Event::Room { .. } => return true,
                    Event::Received { from, message } => {
                        if let zk_replication::Message::Diff { .. }
                        | zk_replication::Message::Trunc { .. }
                        | zk_replication::Message::Snap { .. } = message
                        {
                            tracing::info!(
                                leader = from,
                                "syncing with the leader: {}",
                                message.name()
                            );
                        }
                        zk_replication::Input::Receive { from, message }
                    }
                };
                self.with_member(|member, engine, host, now| {
                    member.zab_input(engine, host, now, input)
                });
            }
            Msg::Election(status) => {
                self.with_member(|member, engine, host, now| {
                    member.election(engine, host, now, status)
                });
            }
            Msg::ZabTick => {
                self.with_member(|member, engine, host, now| member.tick(engine, host, now));
            }
            Msg::LogSynced { generation, result } => {
                let current = self
                    .ensemble
                    .as_ref()
                    .is_some_and(|e| e.sync_generation == generation);
                let durable = result.map(|zxid| current.then_some(zxid));
                self.with_member(|member, engine, host, now| {
                    member.synced(engine, host, now, durable)
                });
            }
        }
        !self.has_failed()
    }

    /// Every figure, the log's included.
    fn status(&self) -> Status {
        let mut status = self.engine.status(self.now());
        for c in &mut status.connections {
            c.secure = self.io.get(&c.conn).is_some_and(|io| {
                io.writer
                    .as_deref()
                    .is_some_and(|w| matches!(w, ConnWriter::Queue { .. }))
            });
        }
        if let Some(member) = &self.member {
            let (role, serving) = self.engine.role();
            status.mode = mode_of(role, serving, member.observer(), self.engine.is_read_only());
            status.ensemble = Some(member.status(self.now()));
        }
        let Some(log) = &self.log else {
            return status;
        };
        let log = log.stats();
        let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
        status.log = LogStatus {
            commits: load(&log.commits),
            entries: load(&log.entries),
            commit_micros: load(&log.commit_micros),
            commit_micros_max: load(&log.commit_micros_max),
        };
        status
    }

    /// Writes what each connection has pending: as much as its socket takes now; a full
    /// socket gets a task that waits until it takes more.
    pub(crate) fn flush(&mut self) {
        for conn in std::mem::take(&mut self.dirty) {
            let Some(c) = self.io.get_mut(&conn) else {
                continue;
            };
            c.dirty = false;
            if c.blocked || c.pending.is_empty() {
                continue;
            }
            let Some(writer) = &c.writer else {
                continue;
            };
            match writer.write_now(&mut c.pending) {
                Ok(true) => {
                    c.pending_frames = 0;
                    if c.pending.capacity() > PENDING_KEPT_MAX {
                        c.pending = BytesMut::new();
                    }
                }
                Ok(false) => {
                    c.blocked = true;
                    let writer = writer.clone();
                    let tx = self.tx.clone();
                    tokio::spawn(async move {
                        let _ = writer.writable().await;
                        let _ = tx.send(Msg::Writable { conn });
                    });
                }
                Err(e) => {
                    tracing::info!(conn, addr = %c.addr, error = %e, "writing to a connection failed");
                    c.pending.clear();
                    close_out(c);
                }
            }
        }
    }

    /// Whether a learner's snapshot is being serialized, and its stream has room
    /// (`Event::Room` wakes the loop when it has again).
    fn wants_member_step(&self) -> bool {
        match (self.member.as_ref(), self.ensemble.as_ref()) {
            (Some(member), Some(host)) => {
                member.wants_snapshot_step(|learner| host.snapshot_room(learner))
            }
            _ => false,
        }
    }

    /// The serving loop: everything already waiting is handled before the replies it made
    /// are written, so a busy connection gets one write for many replies; a learner's
    /// snapshot being serialized goes on a piece at a time between bursts. While a file's
    /// snapshot is being taken, its thread reads the tree whenever the loop has nothing
    /// waiting (and at least every [`LEND_EVERY`]); the loop takes it back, after a chunk
    /// at most, when it has something to handle.
    pub(crate) async fn serve(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut lent_at = Instant::now();
        if self.snapshot.is_some() {
            // Taken at start (sessions found dead, or a long replay): it need not wait for a
            // first message.
            self.engine.shared_tree().lend();
        }
        'serve: loop {
            let msg = if self.wants_member_step() {
                rx.try_recv().ok()
            } else {
                match rx.recv().await {
                    Some(msg) => Some(msg),
                    None => break 'serve,
                }
            };
            self.engine.shared_tree().hold().await;
            let mut next = msg;
            let mut burst = 0;
            while let Some(msg) = next.take() {
                if !self.handle(msg) {
                    break 'serve;
                }
                burst += 1;
                if burst < BURST_MAX {
                    next = rx.try_recv().ok();
                }
            }
            // The group commit of a burst: the log synced once, Zab told how far.
            let started = self.started;
            self.with_member(|member, engine, host, _| {
                member.sync(engine, host, || now_since(started))
            });
            let member_step = self.wants_member_step();
            if member_step {
                self.with_member(|member, engine, host, now| {
                    member.snapshot_step(engine, host, now)
                });
            }
            if self.snapshot.is_some() && (rx.is_empty() || lent_at.elapsed() >= LEND_EVERY) {
                self.engine.shared_tree().lend();
                lent_at = Instant::now();
            }
            self.flush();
            if member_step {
                // The connections' readers get their turn before the next piece, so a
                // snapshot delays a request by a piece at most.
                tokio::task::yield_now().await;
            }
        }
        self.stop().await;
    }

    /// Closes every connection after what it has pending, finishes the snapshot being
    /// taken, and stops the log writer once it has committed what is queued.
    async fn stop(mut self) {
        for c in self.io.values_mut() {
            close_out(c);
        }
        self.flush();
        if let Some(reason) = self.failed.borrow().clone() {
            tracing::error!(%reason, "the server stopped serving");
        }
        if let Some(ensemble) = self.ensemble.take() {
            ensemble.shutdown().await;
        }
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(mut job) = self.snapshot.take() {
                // Its thread finishes the file with the tree lent, so a clean stop never
                // throws a snapshot away.
                tracing::info!("finishing the snapshot in progress before stopping");
                self.engine.shared_tree().lend();
                job.join();
            }
            drop(self);
        })
        .await;
    }
}
