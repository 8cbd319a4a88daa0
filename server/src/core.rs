//! The server's state and its one task: the tree, watches, sessions and the write
//! pipeline. Connections talk to it through messages; it owns everything it touches, so no
//! lock is taken anywhere.
//!
//! A write is prepared at once against the tree plus the writes still in flight (the
//! overlay), appended to the log through group commit, and applied when durable, in zxid
//! order. Each connection's replies leave in request order: a read waits only behind the
//! same connection's earlier writes, never behind another session's fsync.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use sha1::{Digest, Sha1};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot};
use zk_datatree::{
    Applied, DataTree, Overlay, Prepared, Session, Transaction, WriteRequest, prepare,
};
use zk_jute::data::{ClientInfo, Id};
use zk_jute::proto::{
    AddWatchRequest, AuthPacket, CheckVersionRequest, CheckWatchesRequest, ConnectRequest,
    ConnectResponse, Create2Response, CreateRequest, CreateResponse, CreateTtlRequest,
    DeleteRequest, ErrorResponse, ExistsRequest, ExistsResponse, GetAclRequest, GetAclResponse,
    GetAllChildrenNumberRequest, GetAllChildrenNumberResponse, GetChildren2Response,
    GetChildrenRequest, GetChildrenResponse, GetDataRequest, GetDataResponse, GetEphemeralsRequest,
    GetEphemeralsResponse, RemoveWatchesRequest, SetAclRequest, SetAclResponse, SetDataRequest,
    SetDataResponse, SetWatches, SetWatches2, SyncRequest, SyncResponse, WhoAmIResponse,
};
use zk_jute::txn::{TxnDigest, TxnHeader};
use zk_jute::{
    AddWatchMode, DecodeError, ErrorCode, MultiOp, MultiRequest, MultiResponse, MultiResult,
    OpCode, Perms, Reader, Record, WatcherType, xid,
};
use zk_persistence::{GroupCommit, LogEntry, SnapshotPolicy, ZxidDigest};
use zk_watch::{NodeZxids, WatchKind, WatchLists, WatchManager, WatcherId};

use crate::config::Config;
use crate::metrics::{Histogram, Throttle};
use crate::wire::{NO_ZXID, frame, header_only, notification, reply};

/// A connection's number.
pub(crate) type ConnId = u64;

/// What the core sends a connection (`Core::send`).
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// Bytes to write.
    Frame(Bytes),
    /// Close the connection once everything before is written.
    Close,
}

/// Messages to the core.
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
        body: Bytes,
    },
    /// The connection is gone.
    Closed { conn: ConnId },
    /// The log has made `zxid` (and everything before it) durable, or failed.
    Durable { zxid: i64, ok: bool },
    /// Time passes: expire sessions, reap containers.
    Tick,
    /// A four-letter word.
    Command {
        word: String,
        reply: oneshot::Sender<String>,
    },
    /// The snapshot's writer caught up: serializing may go on (see [`Core::wants_step`]).
    SnapshotResume,
    /// A snapshot finished writing.
    SnapshotDone { zxid: i64, ok: bool },
    /// The figures for the Prometheus endpoint.
    Metrics {
        reply: oneshot::Sender<crate::metrics::Snapshot>,
    },
    /// Stop: close every connection; the log is synced when the core is dropped.
    Shutdown,
}

enum Origin {
    Client {
        conn: ConnId,
        xid: i32,
        op: OpCode,
        /// The ops of a multi sent as `create2`: their results carry the stat
        /// (ZOOKEEPER-4026, as ZooKeeper 3.8.2 and 3.9 answer).
        stat_ops: Vec<usize>,
    },
    Connect {
        conn: ConnId,
        response: ConnectResponse,
    },
    Internal,
}

struct Pending {
    header: TxnHeader,
    txn: Transaction,
    origin: Origin,
}

enum Queued {
    /// A write's reply, once its txn is applied.
    Write {
        zxid: i64,
        reply: Option<Bytes>,
        close_after: bool,
        arrived: Instant,
    },
    /// A read, served when it reaches the front.
    Read {
        xid: i32,
        op: i32,
        body: Bytes,
        arrived: Instant,
    },
}

struct Conn {
    /// The socket's write half; `None` once closed.
    writer: Option<Arc<OwnedWriteHalf>>,
    /// Dropping it stops the connection's reader.
    stop: Option<oneshot::Sender<()>>,
    /// Replies and events not yet written: gathered while the core works through the
    /// messages already waiting, then written with one syscall (`Core::flush`).
    pending: BytesMut,
    /// Frames in `pending`.
    pending_frames: usize,
    /// The socket was full: a task waits until it can take more (`Msg::Writable`).
    blocked: bool,
    /// Listed in `Core::dirty`.
    dirty: bool,
    addr: SocketAddr,
    session: i64,
    auth: Vec<Id>,
    queue: VecDeque<Queued>,
    /// Requests that arrived before the handshake was answered: ZooKeeper reads nothing
    /// more from a connection until its session is established, so they wait.
    held: Option<Vec<(i32, i32, Bytes)>>,
}

/// Nodes a snapshot piece: a few milliseconds of work, which every connection waits for.
const SNAPSHOT_PIECE: usize = 5_000;

/// A snapshot being serialized: a fuzzy one, as ZooKeeper's, taken while writes go on.
struct Serializing {
    writer: zk_datatree::BodyWriter,
    /// To the background task writing the file.
    pieces: std::sync::mpsc::Sender<SnapshotPiece>,
    /// Paces serialization by the file writer.
    pace: Arc<Pace>,
    started: Instant,
}

impl Serializing {
    /// Serializes the next piece of the body and hands it to the writer; true once the
    /// body is complete (or the writer is gone, which leaves nothing to serialize for).
    fn next_piece(&mut self, tree: &DataTree) -> bool {
        let mut piece = BytesMut::with_capacity(SNAPSHOT_PIECE * 256);
        let done = self.writer.write_some(tree, &mut piece, SNAPSHOT_PIECE);
        self.pace.queued.fetch_add(piece.len(), Ordering::AcqRel);
        self.pieces
            .send(SnapshotPiece::Body(piece.freeze()))
            .is_err()
            || done
    }
}

/// Serialized bytes the file writer has not written yet: serializing waits while there
/// are more than [`Pace::AHEAD_MAX`], so a snapshot costs a bounded amount of memory
/// however slow the disk.
#[derive(Default)]
struct Pace {
    queued: std::sync::atomic::AtomicUsize,
    /// The core stopped serializing until the writer catches up.
    waiting: std::sync::atomic::AtomicBool,
}

impl Pace {
    const AHEAD_MAX: usize = 16 << 20;

    /// Whoever finds the writer caught up with the core waiting resumes it, once.
    fn resume_if_caught_up(&self, core: &mpsc::UnboundedSender<Msg>) {
        if self.queued.load(Ordering::Acquire) <= Self::AHEAD_MAX / 2
            && self.waiting.swap(false, Ordering::AcqRel)
        {
            let _ = core.send(Msg::SnapshotResume);
        }
    }
}

/// What the snapshot's file writer gets from the core.
enum SnapshotPiece {
    /// The next bytes of the body.
    Body(Bytes),
    /// The body is complete; the digest to record after it.
    End(ZxidDigest),
}

struct SessionState {
    timeout_ms: u64,
    expires_at_ms: u64,
    conn: Option<ConnId>,
    closing: bool,
}

/// Counters for the four-letter words and the metrics endpoint.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    pub(crate) received: u64,
    pub(crate) sent: u64,
    /// Requests received and not yet answered.
    pub(crate) outstanding: usize,
    pub(crate) read_latency: Histogram,
    pub(crate) update_latency: Histogram,
}

/// The core's state.
pub(crate) struct Core {
    config: Arc<Config>,
    tree: DataTree,
    watches: WatchManager,
    overlay: Overlay,
    staged_digest: u64,
    log: GroupCommit,
    last_zxid: i64,
    pending: VecDeque<Pending>,
    conns: HashMap<ConnId, Conn>,
    /// Connections with replies in `pending`, to write at the next flush.
    dirty: Vec<ConnId>,
    sessions: HashMap<i64, SessionState>,
    next_session: i64,
    started: Instant,
    policy: SnapshotPolicy,
    /// Draws the snapshot policy's random part (xorshift).
    rng: u64,
    txns_since_snapshot: u64,
    /// The thread writing the snapshot file, while a snapshot is running (one at a time).
    snapshot_writer: Option<std::thread::JoinHandle<()>>,
    /// The snapshot being serialized, a piece after each burst of messages (writes go on
    /// being applied: the snapshot is fuzzy, as ZooKeeper's).
    serializing: Option<Serializing>,
    /// How far the log is durable (applied up to here).
    durable_zxid: i64,
    snap_dir: PathBuf,
    tx: mpsc::UnboundedSender<Msg>,
    stats: Stats,
    throttle: Arc<Throttle>,
    ticks: u64,
    last_purge_ms: u64,
}

/// The password of a session: derived from its id, so it survives restarts (as
/// ZooKeeper's `generatePasswd` does with its own secret).
fn password(session: i64) -> Bytes {
    let hash = Sha1::digest([&session.to_be_bytes()[..], b"zk-rs session secret"].concat());
    Bytes::copy_from_slice(hash.get(..16).unwrap_or_default())
}

/// Frames waiting for a client that does not read before it is cut off.
const OUTGOING_FRAMES_MAX: usize = 16_384;

/// Bytes waiting for a client that does not read before it is cut off.
const OUTGOING_BYTES_MAX: usize = 64 << 20;

/// A connection's reply buffer bigger than this after a write is given back.
const PENDING_KEPT_MAX: usize = 256 * 1024;

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

/// What a snapshot records of `tree`: its digest at its last zxid.
pub(crate) fn tree_digest(tree: &DataTree) -> ZxidDigest {
    ZxidDigest {
        zxid: tree.last_zxid(),
        version: zk_datatree::DIGEST_VERSION,
        digest: tree.digest() as i64,
    }
}

/// The snapshot policy's random part, in `0..snap_count / 2`, from a xorshift `rng`.
fn draw_roll(rng: &mut u64, snap_count: u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng % (snap_count / 2).max(1)
}

/// Lists a connection for the next flush, once.
fn mark_dirty(dirty: &mut Vec<ConnId>, conn: ConnId, c: &mut Conn) {
    if !c.dirty {
        c.dirty = true;
        dirty.push(conn);
    }
}

/// Closes a connection once what it has pending is written: its reader stops now, and
/// the socket is shut down after the last byte (by a task, if the socket is full).
fn close_out(c: &mut Conn) {
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
            match write_now(&writer, &mut pending) {
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
}

/// The answer to a handshake that opens or resumes `session`.
fn connect_response(session: i64, timeout: i32, read_only: Option<bool>) -> ConnectResponse {
    ConnectResponse {
        protocol_version: 0,
        timeout,
        session_id: session,
        passwd: Some(password(session)),
        read_only,
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn decode<R: Record>(body: &Bytes) -> Result<R, DecodeError> {
    R::decode(&mut Reader::new(body.clone()))
}

impl Core {
    pub(crate) fn new(
        config: Arc<Config>,
        tree: DataTree,
        log: GroupCommit,
        tx: mpsc::UnboundedSender<Msg>,
        throttle: Arc<Throttle>,
    ) -> Self {
        let started = Instant::now();
        let last_zxid = tree.last_zxid();
        let now = 0;
        let sessions = tree
            .sessions()
            .iter()
            .map(|(id, timeout)| {
                let timeout_ms = u64::try_from(*timeout).unwrap_or(0);
                (
                    *id,
                    SessionState {
                        timeout_ms,
                        expires_at_ms: now + timeout_ms,
                        conn: None,
                        closing: false,
                    },
                )
            })
            .collect();
        let next_session =
            ((wall_ms() << 24) as u64 >> 8) as i64 | ((config.server_id as i64) << 56);
        let mut rng = (wall_ms() as u64) | 1;
        let policy = SnapshotPolicy {
            snap_count: config.snap_count,
            snap_size_bytes: 0,
            random_roll: draw_roll(&mut rng, config.snap_count),
        };
        Self {
            snap_dir: config.data_dir.join(zk_persistence::VERSION_DIR),
            staged_digest: tree.digest(),
            config,
            tree,
            watches: WatchManager::new(),
            overlay: Overlay::default(),
            log,
            last_zxid,
            pending: VecDeque::new(),
            conns: HashMap::new(),
            dirty: Vec::new(),
            sessions,
            next_session,
            started,
            policy,
            rng,
            txns_since_snapshot: 0,
            snapshot_writer: None,
            serializing: None,
            durable_zxid: 0,
            tx,
            stats: Stats::default(),
            throttle,
            ticks: 0,
            last_purge_ms: 0,
        }
    }

    /// Milliseconds since the server started (its clock for sessions, and its uptime).
    pub(crate) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Handles one message.
    pub(crate) fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Connect {
                conn,
                addr,
                request,
                writer,
                stop,
            } => self.connect(conn, addr, request, writer, stop),
            Msg::Writable { conn } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.blocked = false;
                    mark_dirty(&mut self.dirty, conn, c);
                }
            }
            Msg::Request {
                conn,
                xid,
                op,
                body,
            } => self.request(conn, xid, op, body),
            Msg::Closed { conn } => self.closed(conn),
            Msg::Durable { zxid, ok } => self.durable(zxid, ok),
            Msg::Tick => self.tick(),
            Msg::Command { word, reply } => {
                let _ = reply.send(crate::fourlw::answer(&word, self));
            }
            Msg::Shutdown => {
                let conns: Vec<ConnId> = self.conns.keys().copied().collect();
                for conn in conns {
                    self.send(conn, Outgoing::Close);
                }
            }
            Msg::Metrics { reply } => {
                let _ = reply.send(self.metrics());
            }
            // Only a wake-up: the serving loop takes the pieces, between bursts.
            Msg::SnapshotResume => {}
            Msg::SnapshotDone { zxid, ok } => {
                // A writer that failed early leaves the body unfinished: nobody takes it.
                self.serializing = None;
                // The writer sent this as its last act; joining it does not wait.
                if let Some(writer) = self.snapshot_writer.take() {
                    let _ = writer.join();
                }
                if ok {
                    tracing::info!(zxid = format!("{zxid:#x}"), "snapshot written");
                }
            }
        }
    }

    /// Queues a frame for the connection (written at the next flush), or closes it once
    /// what is queued is written.
    fn send(&mut self, conn: ConnId, out: Outgoing) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.writer.is_none() {
            return;
        }
        match out {
            Outgoing::Frame(bytes) => {
                if c.blocked
                    && (c.pending_frames >= OUTGOING_FRAMES_MAX
                        || c.pending.len() >= OUTGOING_BYTES_MAX)
                {
                    // A client that does not read its replies is cut off rather than
                    // buffered forever.
                    tracing::warn!(conn, addr = %c.addr, "closing a connection whose client does not keep up");
                    c.pending.clear();
                    close_out(c);
                    return;
                }
                self.stats.sent += 1;
                c.pending.extend_from_slice(&bytes);
                c.pending_frames += 1;
                mark_dirty(&mut self.dirty, conn, c);
            }
            Outgoing::Close => close_out(c),
        }
    }

    /// Writes what each connection has pending, straight from the core: as much as its
    /// socket takes now; a full socket gets a task that waits until it takes more.
    pub(crate) fn flush(&mut self) {
        for conn in std::mem::take(&mut self.dirty) {
            let Some(c) = self.conns.get_mut(&conn) else {
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

    fn touch(&mut self, session: i64) {
        let now = self.now_ms();
        if let Some(s) = self.sessions.get_mut(&session) {
            s.expires_at_ms = now + s.timeout_ms;
        }
    }

    // ----- connections and sessions -----

    fn connect(
        &mut self,
        conn: ConnId,
        addr: SocketAddr,
        request: ConnectRequest,
        writer: OwnedWriteHalf,
        stop: oneshot::Sender<()>,
    ) {
        let ip = Id {
            scheme: "ip".into(),
            id: addr.ip().to_string(),
        };
        self.conns.insert(
            conn,
            Conn {
                writer: Some(Arc::new(writer)),
                stop: Some(stop),
                pending: BytesMut::new(),
                pending_frames: 0,
                blocked: false,
                dirty: false,
                addr,
                session: 0,
                auth: vec![ip],
                queue: VecDeque::new(),
                held: Some(Vec::new()),
            },
        );
        if request.last_zxid_seen > self.tree.last_zxid() {
            // The client has seen more than this server: it must try another one.
            tracing::info!(
                %addr,
                seen = format!("{:#x}", request.last_zxid_seen),
                ours = format!("{:#x}", self.tree.last_zxid()),
                "refusing a session request from a client that has seen a later zxid"
            );
            self.send(conn, Outgoing::Close);
            self.forget_conn(conn);
            return;
        }
        let (min, max) = (
            self.config.min_session_timeout.as_millis(),
            self.config.max_session_timeout.as_millis(),
        );
        let timeout = (request.timeout.max(0) as u128).clamp(min, max) as i32;
        let read_only = request.read_only.map(|_| false);
        if request.session_id != 0 {
            self.resume(conn, request, timeout, read_only);
            return;
        }
        let session = self.next_session;
        self.next_session += 1;
        let response = connect_response(session, timeout, read_only);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = session;
        }
        self.sessions.insert(
            session,
            SessionState {
                timeout_ms: timeout as u64,
                expires_at_ms: self.now_ms() + timeout as u64,
                conn: Some(conn),
                closing: false,
            },
        );
        let (prepared, time) = self.prepare(
            session,
            &[],
            &WriteRequest::CreateSession {
                timeout_ms: timeout,
            },
        );
        self.log_write(
            session,
            0,
            prepared,
            Origin::Connect { conn, response },
            time,
        );
    }

    fn resume(
        &mut self,
        conn: ConnId,
        request: ConnectRequest,
        timeout: i32,
        read_only: Option<bool>,
    ) {
        let id = request.session_id;
        let valid = request.passwd.as_deref() == Some(&password(id)[..])
            && self.sessions.get(&id).is_some_and(|s| !s.closing);
        if !valid {
            // What ZooKeeper answers for an expired or unknown session: timeout 0.
            let response = ConnectResponse {
                protocol_version: 0,
                timeout: 0,
                session_id: 0,
                passwd: Some(Bytes::from_static(&[0; 16])),
                read_only,
            };
            self.send(conn, Outgoing::Frame(frame(response)));
            self.send(conn, Outgoing::Close);
            return;
        }
        let now = self.now_ms();
        let previous = self.sessions.get_mut(&id).and_then(|s| {
            s.timeout_ms = timeout as u64;
            s.expires_at_ms = now + timeout as u64;
            s.conn.replace(conn)
        });
        if let Some(old) = previous.filter(|old| *old != conn) {
            // The session moved here: the old connection is closed, as ZooKeeper does.
            self.send(old, Outgoing::Close);
            self.forget_conn(old);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = id;
        }
        let response = connect_response(id, timeout, read_only);
        self.send(conn, Outgoing::Frame(frame(response)));
        self.established(conn);
    }

    /// The handshake is answered: serve what arrived meanwhile, in order.
    fn established(&mut self, conn: ConnId) {
        let held = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.held.take())
            .unwrap_or_default();
        for (xid, op, body) in held {
            self.request(conn, xid, op, body);
        }
    }

    fn forget_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            // Its unanswered requests will never be answered.
            self.set_outstanding(self.stats.outstanding.saturating_sub(c.queue.len()));
            self.watches.remove_watcher(WatcherId(conn));
            if let Some(s) = self.sessions.get_mut(&c.session) {
                if s.conn == Some(conn) {
                    s.conn = None;
                }
            }
        }
    }

    fn closed(&mut self, conn: ConnId) {
        self.forget_conn(conn);
    }

    fn tick(&mut self) {
        self.ticks += 1;
        let now = self.now_ms();
        self.autopurge(now);
        let expired: Vec<i64> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.closing && s.expires_at_ms <= now)
            .map(|(id, _)| *id)
            .collect();
        for session in expired {
            tracing::info!(session = format!("{session:#x}"), "session expired");
            self.close_session(session, None);
        }
        // Containers and TTL nodes: checked once a minute, as ZooKeeper's ContainerManager.
        let every = (60_000 / self.config.tick_time.as_millis().max(1) as u64).max(1);
        if self.ticks % every == 0 {
            for path in self.tree.expiry_candidates(wall_ms(), 0) {
                let (prepared, time) = self.prepare(0, &[], &WriteRequest::DeleteContainer(path));
                self.log_write(0, 0, prepared, Origin::Internal, time);
            }
        }
    }

    /// `autopurge.purgeInterval` hours apart, keep `autopurge.snapRetainCount` snapshots and
    /// the logs they need; the rest is deleted in the background.
    fn autopurge(&mut self, now_ms: u64) {
        let interval_ms = self.config.purge_interval_hours.saturating_mul(3_600_000);
        if interval_ms == 0 || now_ms < self.last_purge_ms + interval_ms {
            return;
        }
        self.last_purge_ms = now_ms;
        let (snap_dir, log_dir) = (
            self.snap_dir.clone(),
            self.config.data_log_dir.join(zk_persistence::VERSION_DIR),
        );
        let retain = self.config.snap_retain_count;
        tokio::task::spawn_blocking(move || {
            match zk_persistence::purge(&snap_dir, &log_dir, retain) {
                Ok(deleted) => tracing::info!(files = deleted.len(), "autopurge done"),
                Err(e) => tracing::warn!(error = %e, "autopurge failed"),
            }
        });
    }

    fn close_session(&mut self, session: i64, request: Option<(ConnId, i32)>) {
        let conn = self.sessions.get_mut(&session).and_then(|s| {
            s.closing = true;
            s.conn
        });
        let (prepared, time) = self.prepare(session, &[], &WriteRequest::CloseSession);
        let origin = match request {
            Some((conn, xid)) => Origin::Client {
                conn,
                xid,
                op: OpCode::CloseSession,
                stat_ops: Vec::new(),
            },
            None => Origin::Internal,
        };
        self.log_write(session, request.map_or(0, |r| r.1), prepared, origin, time);
        if request.is_none() {
            if let Some(conn) = conn {
                self.send(conn, Outgoing::Close);
                self.forget_conn(conn);
            }
        }
    }

    // ----- requests -----

    fn request(&mut self, conn: ConnId, xid: i32, op: i32, body: Bytes) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Some(held) = &mut c.held {
            // Bounded like any reply queue: a client may not pile up requests unanswered.
            if held.len() < 1_000 {
                held.push((xid, op, body));
            }
            return;
        }
        self.stats.received += 1;
        let session = c.session;
        self.touch(session);
        let code = OpCode::try_from(op).ok();
        if code == Some(OpCode::Auth) {
            return self.auth(conn, xid, &body);
        }
        // Every request below is answered from the connection's queue, which counts it out.
        self.set_outstanding(self.stats.outstanding + 1);
        let arrived = Instant::now();
        if code == Some(OpCode::CloseSession) {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.queue.push_back(Queued::Write {
                    zxid: self.last_zxid + 1,
                    reply: None,
                    close_after: true,
                    arrived,
                });
            }
            return self.close_session(session, Some((conn, xid)));
        }
        match code
            .filter(|op| op.is_write() || *op == OpCode::Reconfig)
            .map(|op| write_request(op, &body))
        {
            Some(Ok(write)) => {
                let auth = self
                    .conns
                    .get(&conn)
                    .map(|c| c.auth.clone())
                    .unwrap_or_default();
                let prepared = self.prepare(session, &auth, &write);
                let op = code.unwrap_or(OpCode::Error);
                let stat_ops = match &write {
                    WriteRequest::Multi(multi) => multi
                        .ops
                        .iter()
                        .enumerate()
                        .filter(|(_, op)| matches!(op, MultiOp::Create2(_)))
                        .map(|(i, _)| i)
                        .collect(),
                    _ => Vec::new(),
                };
                let origin = Origin::Client {
                    conn,
                    xid,
                    op,
                    stat_ops,
                };
                self.client_write(conn, session, xid, origin, prepared, arrived);
            }
            Some(Err(code)) => {
                // A body that does not decode, or a write this server does not offer: the
                // error still takes a zxid, as ZooKeeper logs it.
                let time = wall_ms();
                let prepared = Prepared {
                    txn: Transaction::error(code),
                    changes: Vec::new(),
                    digest_delta: 0,
                };
                let origin = Origin::Client {
                    conn,
                    xid,
                    op: OpCode::Error,
                    stat_ops: Vec::new(),
                };
                self.client_write(conn, session, xid, origin, (prepared, time), arrived);
            }
            None => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.queue.push_back(Queued::Read {
                        xid,
                        op,
                        body,
                        arrived,
                    });
                }
                self.drain(conn);
            }
        }
    }

    fn auth(&mut self, conn: ConnId, xid: i32, body: &Bytes) {
        let packet: Result<AuthPacket, _> = decode(body);
        let super_digest = self.config.super_digest.clone();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match packet {
            Ok(p) if p.scheme == "digest" => {
                let user_password =
                    String::from_utf8_lossy(p.auth.as_deref().unwrap_or_default()).into_owned();
                for id in zk_datatree::acl::digest_auth(&user_password, super_digest.as_deref()) {
                    if !c.auth.contains(&id) {
                        c.auth.push(id);
                    }
                }
                self.send(conn, Outgoing::Frame(header_only(xid, 0, 0)));
            }
            _ => {
                self.send(
                    conn,
                    Outgoing::Frame(header_only(xid, 0, ErrorCode::AuthFailed.code())),
                );
                self.send(conn, Outgoing::Close);
            }
        }
    }

    /// Logs a client's prepared write and holds its place in the connection's reply order.
    fn client_write(
        &mut self,
        conn: ConnId,
        session: i64,
        xid: i32,
        origin: Origin,
        (prepared, time): (Prepared, i64),
        arrived: Instant,
    ) {
        let zxid = self.log_write(session, xid, prepared, origin, time);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.queue.push_back(Queued::Write {
                zxid,
                reply: None,
                close_after: false,
                arrived,
            });
        }
    }

    /// Prepares `request` as the next txn, now; returns it with the time it was prepared
    /// at, which its header must carry (the stats, and so the predicted digest, use it).
    fn prepare(&mut self, session: i64, auth: &[Id], request: &WriteRequest) -> (Prepared, i64) {
        let zxid = self.last_zxid + 1;
        let time = wall_ms();
        let session = Session { id: session, auth };
        (
            prepare(
                &self.overlay.over(&self.tree),
                &session,
                zxid,
                time,
                request,
            ),
            time,
        )
    }

    /// Stages a prepared txn and sends it to the log; returns its zxid.
    fn log_write(
        &mut self,
        session: i64,
        xid: i32,
        prepared: Prepared,
        origin: Origin,
        time: i64,
    ) -> i64 {
        self.last_zxid += 1;
        let zxid = self.last_zxid;
        let header = TxnHeader {
            client_id: session,
            cxid: xid,
            zxid,
            time,
            r#type: prepared.txn.op_code().code(),
        };
        self.overlay.stage(zxid, &prepared);
        self.staged_digest = self.staged_digest.wrapping_add(prepared.digest_delta);
        let digest = TxnDigest {
            version: zk_datatree::DIGEST_VERSION,
            tree_digest: self.staged_digest as i64,
        };
        let entry = LogEntry::new(header.clone(), &prepared.txn.encode(), Some(&digest));
        self.log.append_marked(entry);
        self.pending.push_back(Pending {
            header,
            txn: prepared.txn,
            origin,
        });
        zxid
    }

    /// The log is durable up to `zxid`: apply (and answer) every write up to it, in order.
    fn durable(&mut self, zxid: i64, ok: bool) {
        if !ok {
            // ZooKeeper stops when its log fails: nothing after this can be acknowledged.
            tracing::error!("the txn log failed; shutting down");
            std::process::exit(2);
        }
        self.durable_zxid = self.durable_zxid.max(zxid);
        self.apply_durable();
    }

    /// Applies (and answers) every pending write the log has made durable.
    fn apply_durable(&mut self) {
        while self
            .pending
            .front()
            .is_some_and(|p| p.header.zxid <= self.durable_zxid)
        {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            self.apply(p);
        }
    }

    fn apply(&mut self, p: Pending) {
        let zxid = p.header.zxid;
        let applied = self.tree.apply(&p.header, &p.txn);
        self.overlay.applied(zxid);
        for trigger in &applied.triggers {
            let fired = self.watches.trigger(&trigger.path, trigger.event);
            if fired.watchers.is_empty() {
                continue;
            }
            let event = notification(&fired.event, zxid);
            for watcher in fired.watchers {
                // Only watchers that may read the znode hear of it (CVE-2024-23944).
                let readable = self.conns.get(&watcher.0).is_some_and(|c| {
                    zk_datatree::acl::check_acl(&trigger.acl, Perms::READ, &c.auth).is_ok()
                });
                if readable {
                    self.send(watcher.0, Outgoing::Frame(event.clone()));
                }
            }
        }
        match p.origin {
            Origin::Client {
                conn,
                xid,
                op,
                stat_ops,
            } => {
                let bytes = write_reply(op, xid, zxid, &applied, &stat_ops);
                if let Some(c) = self.conns.get_mut(&conn) {
                    if let Some(Queued::Write { reply, .. }) = c.queue.iter_mut().find(
                        |q| matches!(q, Queued::Write { zxid: z, reply: None, .. } if *z == zxid),
                    ) {
                        *reply = Some(bytes);
                    }
                }
                self.drain(conn);
            }
            Origin::Connect { conn, response } => {
                self.send(conn, Outgoing::Frame(frame(response)));
                self.established(conn);
            }
            Origin::Internal => {}
        }
        if let Transaction::CloseSession(_) = p.txn {
            self.sessions.remove(&p.header.client_id);
        }
        self.txns_since_snapshot += 1;
        if self.policy.due(self.txns_since_snapshot, 0) && self.snapshot_writer.is_none() {
            self.snapshot();
        }
    }

    /// Starts a fuzzy snapshot, as ZooKeeper takes them: named after the last applied
    /// zxid, its body is serialized a piece at a time between other messages while writes
    /// go on being applied, and written and fsynced by a background task as the pieces come.
    /// Restoring replays the log after its zxid over it, which gives the tree exactly (see
    /// `BodyWriter::fuzzy`).
    pub(crate) fn snapshot(&mut self) {
        self.txns_since_snapshot = 0;
        // A new random part for the next one, as ZooKeeper's `resetSnapshotStats`.
        self.policy.random_roll = draw_roll(&mut self.rng, self.config.snap_count);
        drop(self.log.roll()); // ordered after every append so far; no need to wait
        let mut writer = zk_datatree::BodyWriter::fuzzy();
        let mut acl_map = bytes::BytesMut::new();
        // The ACL map; this fixes the zxid the snapshot starts from.
        writer.write_some(&self.tree, &mut acl_map, 0);
        let zxid = writer.start_zxid();
        let sessions = self.tree.sessions().clone();
        let (pieces, body) = std::sync::mpsc::channel();
        // Counted as every piece is, or the writer's count would go below zero.
        let pace = Arc::new(Pace::default());
        pace.queued.store(acl_map.len(), Ordering::Release);
        let _ = pieces.send(SnapshotPiece::Body(acl_map.freeze()));
        let dir = self.snap_dir.clone();
        let tx = self.tx.clone();
        let writer_pace = pace.clone();
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                // Reports even a panic, or no snapshot would ever be taken again.
                let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    zk_persistence::write_snapshot_with(&dir, zxid, &sessions, |w| {
                        for piece in body {
                            match piece {
                                SnapshotPiece::Body(bytes) => {
                                    w.write_all(&bytes)?;
                                    writer_pace.queued.fetch_sub(bytes.len(), Ordering::AcqRel);
                                    writer_pace.resume_if_caught_up(&tx);
                                }
                                SnapshotPiece::End(digest) => return Ok(Some(digest)),
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
                let _ = tx.send(Msg::SnapshotDone { zxid, ok });
            });
        match spawned {
            Ok(handle) => self.snapshot_writer = Some(handle),
            Err(e) => {
                tracing::error!(error = %e, "snapshot failed: cannot start its writer");
                return;
            }
        }
        self.serializing = Some(Serializing {
            writer,
            pieces,
            pace,
            started: Instant::now(),
        });
    }

    /// Whether a snapshot is being serialized and its writer is not too far behind: the
    /// serving loop then takes a piece after each burst of messages, and lets the other
    /// tasks (connections' readers) run before the next.
    pub(crate) fn wants_step(&self) -> bool {
        self.serializing
            .as_ref()
            .is_some_and(|job| !job.pace.waiting.load(Ordering::Acquire))
    }

    /// Serializes the next piece of the snapshot and hands it to its writer; after the last
    /// one, the digest of the tree as it is then.
    pub(crate) fn snapshot_step(&mut self) {
        let Some(job) = &mut self.serializing else {
            return;
        };
        if !job.next_piece(&self.tree) {
            if job.pace.queued.load(Ordering::Acquire) > Pace::AHEAD_MAX {
                // The writer resumes us once it has caught up (or we do, if it already has).
                job.pace.waiting.store(true, Ordering::Release);
                job.pace.resume_if_caught_up(&self.tx);
            }
            return;
        }
        if let Some(job) = self.serializing.take() {
            self.end_snapshot(job);
        }
    }

    /// The body is complete: sends the digest of the tree as it is now.
    fn end_snapshot(&self, job: Serializing) {
        let digest = tree_digest(&self.tree);
        tracing::debug!(
            from = job.writer.start_zxid(),
            to = digest.zxid,
            took = ?job.started.elapsed(),
            "snapshot serialized"
        );
        let _ = job.pieces.send(SnapshotPiece::End(digest));
    }

    /// On shutdown: serializes what is left of the snapshot being taken (still paced by its
    /// writer) and waits for its file, so a clean stop never throws a snapshot away.
    pub(crate) fn finish_snapshot(&mut self) {
        if let Some(mut job) = self.serializing.take() {
            tracing::info!("finishing the snapshot in progress before stopping");
            loop {
                while job.pace.queued.load(Ordering::Acquire) > Pace::AHEAD_MAX
                    && !self
                        .snapshot_writer
                        .as_ref()
                        .is_none_or(|w| w.is_finished())
                {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                if job.next_piece(&self.tree) {
                    break;
                }
            }
            self.end_snapshot(job);
        }
        if let Some(writer) = self.snapshot_writer.take() {
            let _ = writer.join();
        }
    }

    /// The number of requests in flight changed: connections may read more, or must wait.
    fn set_outstanding(&mut self, outstanding: usize) {
        self.stats.outstanding = outstanding;
        self.throttle.set(outstanding);
    }

    /// A request's reply went out.
    fn answered(&mut self, arrived: Instant, read: bool) {
        let us = u64::try_from(arrived.elapsed().as_micros()).unwrap_or(u64::MAX);
        if read {
            self.stats.read_latency.record(us);
        } else {
            self.stats.update_latency.record(us);
        }
        self.set_outstanding(self.stats.outstanding.saturating_sub(1));
    }

    /// The node count as ZooKeeper reports it (srvr, mntr, metrics): its node map holds
    /// the root twice, under "" and "/", and its count includes both.
    pub(crate) fn zk_node_count(&self) -> usize {
        self.tree.node_count() + 1
    }

    /// The figures of the metrics endpoint, as of now.
    fn metrics(&self) -> crate::metrics::Snapshot {
        let log = self.log.stats();
        crate::metrics::Snapshot {
            read_latency: self.stats.read_latency.clone(),
            update_latency: self.stats.update_latency.clone(),
            packets_received: self.stats.received,
            packets_sent: self.stats.sent,
            connections: self.conns.len(),
            outstanding: self.stats.outstanding,
            uptime_ms: self.now_ms(),
            znodes: self.zk_node_count(),
            data_size: self.tree.approximate_data_size(),
            watches: self.watches.watch_count(),
            ephemerals: self.tree.all_ephemerals().values().map(|p| p.len()).sum(),
            sessions: self.sessions.len(),
            log_commits: log.commits.load(Ordering::Relaxed),
            log_entries: log.entries.load(Ordering::Relaxed),
            commit_micros: log.commit_micros.load(Ordering::Relaxed),
            commit_micros_max: log.commit_micros_max.load(Ordering::Relaxed),
        }
    }

    /// Sends what can be sent from the front of a connection's queue.
    fn drain(&mut self, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            match c.queue.front_mut() {
                Some(Queued::Write { reply: Some(_), .. }) => {
                    let Some(Queued::Write {
                        reply: Some(bytes),
                        close_after,
                        arrived,
                        ..
                    }) = c.queue.pop_front()
                    else {
                        return;
                    };
                    self.send(conn, Outgoing::Frame(bytes));
                    self.answered(arrived, false);
                    if close_after {
                        self.send(conn, Outgoing::Close);
                        self.forget_conn(conn);
                        return;
                    }
                }
                Some(Queued::Read { .. }) => {
                    let Some(Queued::Read {
                        xid,
                        op,
                        body,
                        arrived,
                    }) = c.queue.pop_front()
                    else {
                        return;
                    };
                    let bytes = self.read(conn, xid, op, &body);
                    self.send(conn, Outgoing::Frame(bytes));
                    self.answered(arrived, true);
                }
                _ => return,
            }
        }
    }

    /// Serves a read from the tree as it is now.
    fn read(&mut self, conn: ConnId, xid: i32, op: i32, body: &Bytes) -> Bytes {
        // Lent out for the read rather than copied.
        let auth = self
            .conns
            .get_mut(&conn)
            .map(|c| std::mem::take(&mut c.auth))
            .unwrap_or_default();
        let reply = self.read_as(conn, xid, op, body, &auth);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.auth = auth;
        }
        reply
    }

    /// Serves a read for a connection with identities `auth`.
    fn read_as(&mut self, conn: ConnId, xid: i32, op: i32, body: &Bytes, auth: &[Id]) -> Bytes {
        let zxid = self.tree.last_zxid();
        let watcher = WatcherId(conn);
        let fail = |code: ErrorCode| header_only(xid, zxid, code.code());
        let Ok(op) = OpCode::try_from(op) else {
            return fail(ErrorCode::Unimplemented);
        };
        macro_rules! body {
            ($t:ty) => {
                match decode::<$t>(body) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::info!(conn, error = %e, "request body does not decode");
                        return fail(ErrorCode::MarshallingError);
                    }
                }
            };
        }
        let result: Result<Bytes, ErrorCode> = match op {
            OpCode::Ping => Ok(header_only(xid::PING, zxid, 0)),
            OpCode::Exists => {
                let r = body!(ExistsRequest);
                let result = self.tree.exists(&r.path);
                if r.watch && result != Err(ErrorCode::BadArguments) {
                    let _ = self.watches.add_watch(&r.path, watcher, WatchKind::Data);
                }
                result.map(|stat| reply(xid, zxid, 0, Some(ExistsResponse { stat })))
            }
            OpCode::GetData => {
                let r = body!(GetDataRequest);
                self.tree.get_data(&r.path, auth).map(|(data, stat)| {
                    if r.watch {
                        let _ = self.watches.add_watch(&r.path, watcher, WatchKind::Data);
                    }
                    reply(xid, zxid, 0, Some(GetDataResponse { data, stat }))
                })
            }
            OpCode::GetChildren | OpCode::GetChildren2 => {
                let r = body!(GetChildrenRequest);
                self.tree
                    .get_children(&r.path, auth)
                    .map(|(children, stat)| {
                        if r.watch {
                            let _ = self.watches.add_watch(&r.path, watcher, WatchKind::Child);
                        }
                        if op == OpCode::GetChildren {
                            reply(
                                xid,
                                zxid,
                                0,
                                Some(GetChildrenResponse {
                                    children: Some(children),
                                }),
                            )
                        } else {
                            reply(
                                xid,
                                zxid,
                                0,
                                Some(GetChildren2Response {
                                    children: Some(children),
                                    stat,
                                }),
                            )
                        }
                    })
            }
            OpCode::GetAcl => {
                let r = body!(GetAclRequest);
                self.tree.get_acl(&r.path, auth).map(|(acl, stat)| {
                    reply(
                        xid,
                        zxid,
                        0,
                        Some(GetAclResponse {
                            acl: Some(acl),
                            stat,
                        }),
                    )
                })
            }
            OpCode::GetAllChildrenNumber => {
                let r = body!(GetAllChildrenNumberRequest);
                self.tree
                    .get_all_children_number(&r.path, auth)
                    .map(|total_number| {
                        reply(
                            xid,
                            zxid,
                            0,
                            Some(GetAllChildrenNumberResponse { total_number }),
                        )
                    })
            }
            OpCode::GetEphemerals => {
                let r = body!(GetEphemeralsRequest);
                let session = self.conns.get(&conn).map_or(0, |c| c.session);
                let ephemerals = Some(self.tree.get_ephemerals(session, &r.prefix_path));
                Ok(reply(
                    xid,
                    zxid,
                    0,
                    Some(GetEphemeralsResponse { ephemerals }),
                ))
            }
            OpCode::Sync => {
                let r = body!(SyncRequest);
                Ok(reply(xid, zxid, 0, Some(SyncResponse { path: r.path })))
            }
            OpCode::WhoAmI => {
                let client_info = zk_datatree::acl::auth_order(auth)
                    .into_iter()
                    .map(|id| {
                        let user = match id.scheme.as_str() {
                            "digest" => id.id.split(':').next().unwrap_or_default().to_owned(),
                            _ => id.id.clone(),
                        };
                        ClientInfo {
                            auth_scheme: id.scheme.clone(),
                            user,
                        }
                    })
                    .collect();
                Ok(reply(
                    xid,
                    zxid,
                    0,
                    Some(WhoAmIResponse {
                        client_info: Some(client_info),
                    }),
                ))
            }
            OpCode::AddWatch => {
                let r = body!(AddWatchRequest);
                match AddWatchMode::try_from(r.mode) {
                    Ok(mode) => {
                        let _ = self
                            .watches
                            .add_watch(&r.path, watcher, WatchKind::from(mode));
                        // ZooKeeper answers addWatch with an ErrorResponse(0) body, and
                        // its Java client reads one.
                        Ok(reply(xid, zxid, 0, Some(ErrorResponse { err: 0 })))
                    }
                    Err(_) => Err(ErrorCode::BadArguments),
                }
            }
            OpCode::CheckWatches | OpCode::RemoveWatches => {
                let r = body!(CheckWatchesRequest);
                let kind = WatcherType::try_from(r.r#type).map_err(|_| ErrorCode::BadArguments);
                kind.and_then(|kind| {
                    let found = if op == OpCode::CheckWatches {
                        self.watches.check_watches(&r.path, kind)
                    } else {
                        let _ = RemoveWatchesRequest {
                            path: r.path.clone(),
                            r#type: r.r#type,
                        };
                        self.watches.remove_watches(&r.path, kind, watcher)
                    };
                    if found {
                        Ok(header_only(xid, zxid, 0))
                    } else {
                        Err(ErrorCode::NoWatcher)
                    }
                })
            }
            OpCode::SetWatches | OpCode::SetWatches2 => {
                let lists = if op == OpCode::SetWatches {
                    let r = body!(SetWatches);
                    (
                        r.relative_zxid,
                        WatchLists {
                            data: r.data_watches.unwrap_or_default(),
                            exist: r.exist_watches.unwrap_or_default(),
                            child: r.child_watches.unwrap_or_default(),
                            persistent: Vec::new(),
                            persistent_recursive: Vec::new(),
                        },
                    )
                } else {
                    let r = body!(SetWatches2);
                    (
                        r.relative_zxid,
                        WatchLists {
                            data: r.data_watches.unwrap_or_default(),
                            exist: r.exist_watches.unwrap_or_default(),
                            child: r.child_watches.unwrap_or_default(),
                            persistent: r.persistent_watches.unwrap_or_default(),
                            persistent_recursive: r
                                .persistent_recursive_watches
                                .unwrap_or_default(),
                        },
                    )
                };
                let tree = &self.tree;
                let missed = self
                    .watches
                    .set_watches(watcher, lists.0, &lists.1, |path| {
                        tree.node(path).map(|n| NodeZxids {
                            mzxid: n.stat.mzxid,
                            pzxid: n.stat.pzxid,
                        })
                    });
                for event in missed.unwrap_or_default() {
                    let acl = self.tree.acl_at(&event.path);
                    if zk_datatree::acl::check_acl(&acl, Perms::READ, auth).is_ok() {
                        self.send(conn, Outgoing::Frame(notification(&event, NO_ZXID)));
                    }
                }
                Ok(header_only(xid::SET_WATCHES, zxid, 0))
            }
            OpCode::MultiRead => {
                let r = body!(MultiRequest);
                let results = r.ops.iter().map(|op| self.multi_read(op, auth)).collect();
                Ok(reply(xid, zxid, 0, Some(MultiResponse { results })))
            }
            OpCode::Sasl => Err(ErrorCode::AuthFailed),
            _ => Err(ErrorCode::Unimplemented),
        };
        result.unwrap_or_else(fail)
    }

    fn multi_read(&self, op: &MultiOp, auth: &[Id]) -> MultiResult {
        let error = |code: ErrorCode| MultiResult::Error(ErrorResponse { err: code.code() });
        match op {
            MultiOp::GetChildren(r) => match self.tree.get_children(&r.path, auth) {
                Ok((children, _)) => MultiResult::GetChildren(GetChildrenResponse {
                    children: Some(children),
                }),
                Err(code) => error(code),
            },
            MultiOp::GetData(r) => match self.tree.get_data(&r.path, auth) {
                Ok((data, stat)) => MultiResult::GetData(GetDataResponse { data, stat }),
                Err(code) => error(code),
            },
            _ => error(ErrorCode::Unimplemented),
        }
    }

    // ----- for the four-letter words -----

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }
    pub(crate) fn tree(&self) -> &DataTree {
        &self.tree
    }
    pub(crate) fn watches(&self) -> &WatchManager {
        &self.watches
    }
    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }
    pub(crate) fn reset_stats(&mut self) {
        self.stats = Stats {
            outstanding: self.stats.outstanding,
            ..Stats::default()
        };
    }
    pub(crate) fn connections(&self) -> Vec<(ConnId, SocketAddr, i64)> {
        let mut out: Vec<_> = self
            .conns
            .iter()
            .map(|(id, c)| (*id, c.addr, c.session))
            .collect();
        out.sort();
        out
    }
    pub(crate) fn session_count(&self) -> usize {
        self.sessions.len()
    }
    pub(crate) fn session_timeouts(&self) -> BTreeMap<i64, u64> {
        self.sessions
            .iter()
            .map(|(id, s)| (*id, s.timeout_ms))
            .collect()
    }
}

/// Decodes a write request body.
fn write_request(op: OpCode, body: &Bytes) -> Result<WriteRequest, ErrorCode> {
    let marshalling = |_| ErrorCode::MarshallingError;
    Ok(match op {
        OpCode::Create | OpCode::Create2 | OpCode::CreateContainer => WriteRequest::Create {
            request: decode::<CreateRequest>(body).map_err(marshalling)?,
            with_stat: op == OpCode::Create2,
            container: op == OpCode::CreateContainer,
        },
        OpCode::CreateTtl => {
            WriteRequest::CreateTtl(decode::<CreateTtlRequest>(body).map_err(marshalling)?)
        }
        OpCode::Delete => WriteRequest::Delete(decode::<DeleteRequest>(body).map_err(marshalling)?),
        OpCode::SetData => {
            WriteRequest::SetData(decode::<SetDataRequest>(body).map_err(marshalling)?)
        }
        OpCode::SetAcl => WriteRequest::SetAcl(decode::<SetAclRequest>(body).map_err(marshalling)?),
        OpCode::Check => {
            WriteRequest::Check(decode::<CheckVersionRequest>(body).map_err(marshalling)?)
        }
        OpCode::Multi => WriteRequest::Multi(decode::<MultiRequest>(body).map_err(marshalling)?),
        OpCode::Reconfig => return Err(ErrorCode::ReconfigDisabled),
        _ => return Err(ErrorCode::Unimplemented),
    })
}

/// The reply to an applied write; `stat_ops` are the multi's ops sent as `create2`.
fn write_reply(op: OpCode, xid: i32, zxid: i64, applied: &Applied, stat_ops: &[usize]) -> Bytes {
    let err = applied.err;
    if op == OpCode::Multi {
        let results = applied
            .multi
            .iter()
            .enumerate()
            .map(|(i, sub)| multi_result(sub, stat_ops.binary_search(&i).is_ok()))
            .collect();
        return reply(xid, zxid, 0, Some(MultiResponse { results }));
    }
    if err != 0 {
        return header_only(xid, zxid, err);
    }
    let path = applied.path.clone().unwrap_or_default();
    let stat = applied.stat.clone().unwrap_or_default();
    match op {
        OpCode::Create => reply(xid, zxid, 0, Some(CreateResponse { path })),
        OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
            reply(xid, zxid, 0, Some(Create2Response { path, stat }))
        }
        OpCode::SetData => reply(xid, zxid, 0, Some(SetDataResponse { stat })),
        OpCode::SetAcl => reply(xid, zxid, 0, Some(SetAclResponse { stat })),
        _ => header_only(xid, zxid, 0),
    }
}

/// One op's result in a multi's reply. A `create2` op is logged as a plain create (what
/// ZooKeeper 3.8.0 logs, and every release replays) and answered, as ZooKeeper 3.8.2 and
/// 3.9 answer it (ZOOKEEPER-4026), with the path and the stat, typed `create2`.
fn multi_result(sub: &Applied, create2: bool) -> MultiResult {
    let stat = || sub.stat.clone().unwrap_or_default();
    let path = || sub.path.clone().unwrap_or_default();
    match OpCode::try_from(sub.op) {
        Ok(OpCode::Error) | Err(_) => MultiResult::Error(ErrorResponse { err: sub.err }),
        Ok(OpCode::Create) if create2 => MultiResult::Create2(Create2Response {
            path: path(),
            stat: stat(),
        }),
        Ok(OpCode::Create) => MultiResult::Create(CreateResponse { path: path() }),
        Ok(OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl) => {
            MultiResult::Create2(Create2Response {
                path: path(),
                stat: stat(),
            })
        }
        Ok(OpCode::Delete | OpCode::DeleteContainer) => MultiResult::Delete,
        Ok(OpCode::SetData) => MultiResult::SetData(SetDataResponse { stat: stat() }),
        _ => MultiResult::Check,
    }
}
