//! The runtime: the one task that serves. It owns the [`Engine`], turns what reaches it
//! (connections' frames, the log's durability marks, ticks, the snapshot writer's news)
//! into the engine's inputs, and carries the engine's outputs out: bytes written to
//! sockets, txns appended to the log through group commit, snapshots taken, files purged.
//! Nothing here decides anything about the protocol.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BytesMut};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot, watch};
use zk_jute::proto::ConnectRequest;
use zk_persistence::GroupCommit;

use crate::engine::{ConnId, Engine, Input, Now, Output, Role};
use crate::ensemble::{Ensemble, entry_of, log_entry_of};
use crate::metrics::Throttle;
use crate::snapshot;
use crate::status::{EnsembleStatus, LogStatus, Status};

/// What reaches the serving task.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A new connection's handshake.
    Connect {
        conn: ConnId,
        addr: SocketAddr,
        request: ConnectRequest,
        writer: OwnedWriteHalf,
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
    /// Time passes.
    Tick,
    /// A four-letter word.
    Command {
        word: String,
        reply: oneshot::Sender<String>,
    },
    /// News from the snapshot's writer.
    Snapshot(snapshot::Event),
    /// Every figure, for the Prometheus endpoint.
    Status { reply: oneshot::Sender<Status> },
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

/// Frames waiting for a client that does not read before it is cut off.
const OUTGOING_FRAMES_MAX: usize = 16_384;

/// Bytes waiting for a client that does not read before it is cut off.
const OUTGOING_BYTES_MAX: usize = 64 << 20;

/// A connection's reply buffer bigger than this after a write is given back.
const PENDING_KEPT_MAX: usize = 256 * 1024;

/// A connection's socket side.
struct ConnIo {
    /// The socket's write half; `None` once closed.
    writer: Option<Arc<OwnedWriteHalf>>,
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

/// Writes `buf` to the socket as far as it takes it without waiting; true once all of it
/// is written.
fn write_now(writer: &OwnedWriteHalf, buf: &mut BytesMut) -> std::io::Result<bool> {
    while !buf.is_empty() {
        match writer.try_write(buf) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => buf.advance(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    buf.clear();
    Ok(true)
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
        || (!c.blocked && matches!(write_now(&writer, &mut pending), Ok(true) | Err(_)))
    {
        // Written (or failed): dropping the last handle to the write half shuts it down.
        return;
    }
    tokio::spawn(async move {
        while !pending.is_empty() {
            if writer.writable().await.is_err() {
                return;
            }
            if write_now(&writer, &mut pending).is_err() {
                return;
            }
        }
    });
}

/// The wall clock, in milliseconds since the Unix epoch.
pub(crate) fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What an ensemble's member counts for its operator.
#[derive(Debug, Default)]
struct Figures {
    /// Proposals made as leader, and their last, smallest and largest size in bytes.
    proposals: u64,
    proposal_sizes: Option<(usize, usize, usize)>,
    /// Elections decided.
    elections: u64,
    /// When this member last became an established leader.
    leading_since: Option<Instant>,
    /// When this member last started looking for a leader.
    looking_since: Option<Instant>,
    /// When this member last stopped serving.
    unavailable_since: Option<Instant>,
    /// Proposals not yet committed, with when they were made, in zxid order.
    proposed: VecDeque<(i64, Instant)>,
    quorum_ack_latency: crate::status::Histogram,
    unavailable_time: crate::status::Histogram,
}

/// The serving task's state.
pub(crate) struct Runtime {
    engine: Engine,
    /// A standalone server's log; an ensemble's member logs through Zab.
    log: Option<GroupCommit>,
    /// An ensemble's member: Zab, its log and its peers.
    ensemble: Option<Box<Ensemble>>,
    /// Zab's inputs not yet handled, in order.
    zab_inbox: VecDeque<zk_replication::Input>,
    /// A snapshot started: the replicated log rolls once Zab's outputs are carried out.
    roll_due: bool,
    /// An ensemble's member (whether or not `ensemble` is taken out while pumping).
    member: bool,
    /// An ensemble member's own figures.
    figures: Figures,
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
        ensemble: Option<Box<Ensemble>>,
        tx: mpsc::UnboundedSender<Msg>,
        throttle: Arc<Throttle>,
        failed: watch::Sender<Option<String>>,
    ) -> Self {
        let config = engine.config();
        Self {
            snap_dir: config.data_dir.join(zk_persistence::VERSION_DIR),
            log_dir: config.data_log_dir.join(zk_persistence::VERSION_DIR),
            snap_retain_count: config.snap_retain_count,
            engine,
            log,
            member: ensemble.is_some(),
            ensemble,
            zab_inbox: VecDeque::new(),
            roll_due: false,
            figures: Figures::default(),
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
        Now {
            mono_us: u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            wall_ms: wall_ms(),
        }
    }

    /// Hands `input` to the engine and carries out what it asks, and what Zab makes of
    /// it.
    pub(crate) fn input(&mut self, input: Input) {
        self.engine_input(input);
        self.pump();
    }

    /// Hands `input` to the engine and carries out what it asks; what it asks of Zab
    /// waits in the inbox.
    fn engine_input(&mut self, input: Input) {
        let now = self.now();
        let mut out = std::mem::take(&mut self.out);
        self.engine.handle(now, input, &mut out);
        for output in out.drain(..) {
            self.carry_out(output);
        }
        self.out = out;
        self.throttle.set(self.engine.outstanding());
    }

    /// Hands Zab every input in its inbox, carrying out its outputs, until none is left.
    fn pump(&mut self) {
        let Some(mut ensemble) = self.ensemble.take() else {
            return;
        };
        while let Some(input) = self.zab_inbox.pop_front() {
            let now = ensemble.now_ms();
            for output in ensemble.zab.handle(now, input) {
                if let Err(reason) = self.carry_zab(&mut ensemble, output) {
                    self.zab_inbox.clear();
                    self.fail(reason);
                    break;
                }
            }
        }
        if std::mem::take(&mut self.roll_due) {
            if let Err(e) = ensemble.storage.roll() {
                self.fail(format!("rolling the txn log failed: {e}"));
            }
        }
        self.ensemble = Some(ensemble);
    }

    /// ZooKeeper's read-only server: with `readonlymode.enabled`, a member that has
    /// looked for a leader for `max(2 s, tickTime)` serves read-only clients.
    fn maybe_read_only(&mut self) {
        let config = self.engine.config();
        let grace = config.tick_time.max(std::time::Duration::from_secs(2));
        let due = config.read_only_mode
            && !self.engine.is_read_only()
            && self
                .figures
                .looking_since
                .is_some_and(|t| t.elapsed() >= grace);
        if due {
            let mut out = Vec::new();
            self.engine.set_read_only(true, &mut out);
            for output in out {
                self.carry_out(output);
            }
        }
    }

    /// Syncs the replicated log if anything was appended, and tells Zab how far it is
    /// durable (the group commit of a burst).
    fn sync_replicated(&mut self) {
        let Some(ensemble) = self.ensemble.as_mut() else {
            return;
        };
        match ensemble.sync() {
            Ok(Some(zxid)) => {
                self.zab_inbox
                    .push_back(zk_replication::Input::Durable { zxid });
                self.pump();
            }
            Ok(None) => {}
            Err(e) => self.fail(format!("the txn log failed: {e}")),
        }
    }

    /// Makes `tree` the engine's (a leader's snapshot, or the log truncated and
    /// replayed). A snapshot of the old tree being taken is dropped: its file would mix
    /// the two trees (its writer removes what it wrote).
    fn install_tree(&mut self, tree: zk_datatree::DataTree) {
        if self.snapshot.take().is_some() {
            tracing::info!("dropped the snapshot being taken of the tree replaced");
        }
        let mut out = Vec::new();
        self.engine.replace_tree(tree, &mut out);
        for output in out {
            self.carry_out(output);
        }
    }

    /// Stops serving: an error nothing can go on from.
    fn fail(&mut self, reason: String) {
        tracing::error!(%reason, "stopping the server");
        self.failed.send_replace(Some(reason));
    }

    /// Carries out one of Zab's outputs.
    fn carry_zab(
        &mut self,
        ensemble: &mut Ensemble,
        output: zk_replication::Output,
    ) -> Result<(), String> {
        use zk_replication::{Input as Z, Output as O};
        let storage = |e: zk_replication::storage::StorageError| format!("the txn log failed: {e}");
        match output {
            O::Send { to, message } => {
                if let zk_replication::Message::Diff { .. }
                | zk_replication::Message::Trunc { .. }
                | zk_replication::Message::Snap { .. } = message
                {
                    *ensemble.syncs.entry(message.name()).or_default() += 1;
                }
                if !ensemble.send(to, message) {
                    self.zab_inbox.push_back(Z::Disconnected { peer: to });
                }
            }
            O::Connect { peer } => {
                if !ensemble.connect(peer) {
                    self.zab_inbox.push_back(Z::Disconnected { peer });
                }
            }
            O::Disconnect { peer } => ensemble.disconnect(peer),
            O::SetAcceptedEpoch(epoch) => {
                use zk_replication::storage::Storage;
                ensemble
                    .storage
                    .set_accepted_epoch(epoch)
                    .map_err(storage)?;
            }
            O::SetCurrentEpoch(epoch) => {
                use zk_replication::storage::Storage;
                ensemble.storage.set_current_epoch(epoch).map_err(storage)?;
            }
            O::Append(entry) => {
                use zk_replication::storage::Storage;
                ensemble.storage.append(&entry).map_err(storage)?;
                ensemble.appended = true;
            }
            O::Truncate { zxid } => {
                tracing::info!(%zxid, "truncating the log to the leader's history");
                // The tree goes back only if it holds more than Zab now counts applied
                // (at start the whole log was applied, committed or not); otherwise it
                // holds committed txns only, and keeps them.
                let applied = ensemble.zab.applied();
                let rebuild = self.engine.tree().last_zxid() > applied.0;
                if let Some(tree) = ensemble.truncate(zxid, rebuild.then_some(applied))? {
                    self.install_tree(tree);
                }
            }
            O::Deliver(entry) => {
                if self.engine.role() == (Role::Leader, true) {
                    let f = &mut self.figures;
                    while let Some((_, at)) = f.proposed.front().filter(|p| p.0 <= entry.zxid.0) {
                        let us = u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX);
                        f.quorum_ack_latency.record(us);
                        f.proposed.pop_front();
                    }
                    self.engine_input(Input::Committed { zxid: entry.zxid.0 });
                } else {
                    let entry = log_entry_of(&entry)
                        .map_err(|e| format!("a committed txn does not decode: {e}"))?;
                    self.engine_input(Input::Deliver(entry));
                }
            }
            O::ReadLog {
                learner,
                stream,
                after,
                through,
                batch,
            } => {
                let reads = zk_replication::storage::read_log(
                    &mut ensemble.storage,
                    learner,
                    stream,
                    (after, through),
                    batch,
                )
                .map_err(storage)?;
                self.zab_inbox.extend(reads);
            }
            O::SendSnapshot {
                learner,
                stream,
                zxid,
            } => {
                let tree = self.engine.tree();
                if tree.last_zxid() != zxid.0 {
                    return Err(format!(
                        "a snapshot for server {learner} at {zxid}: the tree is at {:#x}",
                        tree.last_zxid()
                    ));
                }
                tracing::info!(learner, %zxid, "sending a snapshot to a learner");
                let pieces = ensemble
                    .snapshot_pieces(tree)
                    .map_err(|e| format!("a snapshot for server {learner}: {e}"))?;
                let n = pieces.len();
                for (i, data) in pieces.into_iter().enumerate() {
                    self.zab_inbox.push_back(Z::SnapshotPiece {
                        learner,
                        stream,
                        data,
                        last: i + 1 == n,
                    });
                }
            }
            O::SnapshotBegin { zxid } => {
                tracing::info!(%zxid, "receiving the leader's snapshot");
                ensemble.snapshot_begin();
            }
            O::SnapshotPiece(data) => ensemble.snapshot_piece(&data),
            O::SnapshotEnd { zxid } => {
                let tree = ensemble.snapshot_end(zxid)?;
                tracing::info!(%zxid, nodes = tree.node_count(), "loaded the leader's snapshot");
                self.install_tree(tree);
            }
            O::Request { data, .. } => self.engine_input(Input::Forwarded(data)),
            O::Touched { touches, .. } => {
                let sessions = touches.iter().map(|t| t.session).collect();
                self.engine_input(Input::Touched(sessions));
            }
            O::Revalidate { from, session, .. } => {
                self.zab_inbox.push_back(Z::RevalidateReply {
                    to: from,
                    session,
                    valid: self.engine.session_is_open(session),
                });
            }
            O::Revalidated { .. } => {}
            O::Synced { id } => self.engine_input(Input::Synced { token: id }),
            O::State(state) => {
                let (role, serving, next) = match state {
                    zk_replication::State::Looking => {
                        tracing::info!("not serving: looking for a leader");
                        ensemble.look();
                        (Role::Learner, false, None)
                    }
                    zk_replication::State::Leading {
                        established: true, ..
                    } => (Role::Leader, true, ensemble.zab.next_zxid()),
                    zk_replication::State::Learning { serving: true, .. } => {
                        (Role::Learner, true, None)
                    }
                    _ => (Role::Learner, false, None),
                };
                self.figures.looking_since = match state {
                    zk_replication::State::Looking => {
                        self.figures.looking_since.or(Some(Instant::now()))
                    }
                    _ => None,
                };
                if serving {
                    if let Some(since) = self.figures.unavailable_since.take() {
                        let us = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
                        self.figures.unavailable_time.record(us);
                    }
                } else {
                    self.figures.proposed.clear();
                    self.figures
                        .unavailable_since
                        .get_or_insert_with(Instant::now);
                }
                self.figures.leading_since = match (role, serving) {
                    (Role::Leader, true) => self.figures.leading_since.or(Some(Instant::now())),
                    _ => None,
                };
                // Read-only mode ends with looking, whatever comes next.
                let read_only_ends =
                    self.engine.is_read_only() && !matches!(state, zk_replication::State::Looking);
                if (role, serving) != self.engine.role() || read_only_ends {
                    tracing::info!(
                        ?state,
                        "serving as {}",
                        mode_of(role, serving, ensemble.observer, false)
                    );
                    let mut out = Vec::new();
                    self.engine.set_role(role, serving, next, &mut out);
                    // The connections it closed.
                    for output in out {
                        self.carry_out(output);
                    }
                }
            }
        }
        Ok(())
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
                None => {
                    let entry = entry_of(&entry);
                    let size = entry.data.len();
                    let f = &mut self.figures;
                    f.proposals += 1;
                    f.proposal_sizes = Some(match f.proposal_sizes {
                        None => (size, size, size),
                        Some((_, min, max)) => (size, min.min(size), max.max(size)),
                    });
                    f.proposed.push_back((entry.zxid.0, Instant::now()));
                    self.zab_inbox
                        .push_back(zk_replication::Input::Propose(entry));
                }
            },
            Output::Snapshot => self.start_snapshot(),
            Output::Purge if self.member => {
                // Zab syncs learners from the log files it opened at start; deleting them
                // under it would turn a DIFF into a failed read. Until its history can be
                // cut at a snapshot, a member keeps its files.
                tracing::warn!(
                    "autopurge is not run by an ensemble's member yet: its files are kept \
                     (ZooKeeper's zkCleanup.sh can purge it while it is stopped)"
                );
            }
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
            Output::Forward(data) => self
                .zab_inbox
                .push_back(zk_replication::Input::Forward { data }),
            Output::Sync { token } => self
                .zab_inbox
                .push_back(zk_replication::Input::Sync { id: token }),
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

    /// Rolls the log and starts a fuzzy snapshot of the tree as it is now.
    fn start_snapshot(&mut self) {
        match &self.log {
            // Ordered after every append so far; no need to wait.
            Some(log) => drop(log.roll()),
            None => self.roll_due = true,
        }
        let tx = self.tx.clone();
        let notify: snapshot::Notify = Arc::new(move |event| {
            let _ = tx.send(Msg::Snapshot(event));
        });
        self.snapshot = snapshot::Job::start(self.engine.tree(), &self.snap_dir, notify);
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
            // Only a wake-up: the serving loop takes the pieces, between bursts.
            Msg::Snapshot(snapshot::Event::Resume) => {}
            Msg::Snapshot(snapshot::Event::Done { zxid, ok }) => {
                // The writer sent this as its last act; joining it does not wait.
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
                self.zab_inbox.push_back(input);
                self.pump();
            }
            Msg::Election(status) => {
                if let Some(input) = self.ensemble.as_mut().and_then(|e| e.decision(status)) {
                    self.figures.elections += 1;
                    self.zab_inbox.push_back(input);
                    self.pump();
                }
            }
            Msg::ZabTick => {
                if self.ensemble.is_some() {
                    let touches: Vec<zk_replication::Touch> = self
                        .engine
                        .take_touches()
                        .into_iter()
                        .map(|(session, timeout_ms)| zk_replication::Touch {
                            session,
                            timeout_ms,
                        })
                        .collect();
                    if !touches.is_empty() {
                        self.zab_inbox
                            .push_back(zk_replication::Input::Touch(touches));
                    }
                    self.zab_inbox.push_back(zk_replication::Input::Tick);
                    self.pump();
                    self.maybe_read_only();
                }
            }
        }
        !self.has_failed()
    }

    /// Every figure, the log's included.
    fn status(&self) -> Status {
        let mut status = self.engine.status(self.now());
        if let Some(ensemble) = &self.ensemble {
            let (role, serving) = self.engine.role();
            status.mode = mode_of(role, serving, ensemble.observer, self.engine.is_read_only());
            status.ensemble = Some(self.ensemble_status(ensemble));
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

    /// An ensemble member's figures, from Zab and the runtime's counts.
    fn ensemble_status(&self, ensemble: &Ensemble) -> EnsembleStatus {
        use zk_replication::State;
        let zab = &ensemble.zab;
        let learners = zab.learners();
        let synced = |observer: bool| {
            learners
                .iter()
                .filter(|l| l.synced && l.observer == observer)
                .count()
        };
        let peer_state = match zab.state() {
            State::Looking => "looking",
            State::Leading { epoch: None, .. } => "leading - discovery",
            State::Leading {
                established: false, ..
            } => "leading - synchronization",
            State::Leading { .. } => "leading - broadcast",
            State::Learning {
                observer, serving, ..
            } => match (observer, serving) {
                (false, false) => "following - synchronization",
                (false, true) => "following - broadcast",
                (true, false) => "observing - synchronization",
                (true, true) => "observing - broadcast",
            },
        };
        let f = &self.figures;
        let sizes = f
            .proposal_sizes
            .map_or((-1, -1, -1), |(l, mn, mx)| (l as i64, mn as i64, mx as i64));
        EnsembleStatus {
            peer_state,
            quorum_size: zab.config().verifier.voters().len(),
            learners: learners.len(),
            synced_followers: synced(false),
            synced_observers: synced(true),
            pending_syncs: zab.pending_syncs(),
            leader_uptime_ms: f
                .leading_since
                .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)),
            proposal_sizes: sizes,
            proposals: f.proposals,
            syncs: ensemble.syncs.iter().map(|(k, v)| (*k, *v)).collect(),
            elections: f.elections,
            quorum_ack_latency: f.quorum_ack_latency.clone(),
            unavailable_time: f.unavailable_time.clone(),
        }
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
            match write_now(writer, &mut c.pending) {
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

    fn wants_step(&self) -> bool {
        self.snapshot.as_ref().is_some_and(|job| job.wants_step())
    }

    /// The serving loop: everything already waiting is handled before the replies it made
    /// are written, so a busy connection gets one write for many replies; a snapshot being
    /// serialized goes on a piece at a time between bursts.
    pub(crate) async fn serve(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        'serve: loop {
            let msg = if self.wants_step() {
                rx.try_recv().ok()
            } else {
                match rx.recv().await {
                    Some(msg) => Some(msg),
                    None => break 'serve,
                }
            };
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
            self.sync_replicated();
            self.flush();
            if self.wants_step() {
                if let Some(job) = &mut self.snapshot {
                    job.step(self.engine.tree());
                }
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
            if let Some(job) = self.snapshot.take() {
                job.finish(self.engine.tree());
            }
            drop(self);
        })
        .await;
    }
}

/// What `srvr` and `mntr` call a member's mode.
pub(crate) fn mode_of(role: Role, serving: bool, observer: bool, read_only: bool) -> &'static str {
    match (role, serving) {
        (Role::Standalone, _) => "standalone",
        (Role::Leader, true) => "leader",
        (_, false) if read_only => "read-only",
        (_, false) => "looking",
        (Role::Learner, true) if observer => "observer",
        (Role::Learner, true) => "follower",
    }
}
