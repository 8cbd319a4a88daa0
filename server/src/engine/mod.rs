//! The engine: the server's protocol with no sockets, tasks, threads or clocks.
//!
//! It is driven as `zk-election`'s `Election` is: [`Engine::handle`] takes the time and
//! one [`Input`] (a connection's handshake or request frame, a tick, the log's durability
//! watermark, a commit) and leaves [`Output`]s: bytes for a connection, a close, a txn to
//! append to the log, a snapshot to start, a fatal error. The runtime carries them out.
//!
//! # The write pipeline
//!
//! A write is prepared at once by the [`Sequencer`] against the tree plus the writes
//! still in flight (the overlay), and appended to the log ([`Output::Append`]). Two
//! watermarks follow it: *durable* (the log has it on disk, [`Input::Durable`]) and
//! *committed*, which comes from the engine's [`Role`]: a standalone server commits what
//! its own log made durable; an ensemble's leader commits on a quorum's word
//! ([`Input::Committed`]), and a learner applies what its leader delivers
//! ([`Input::Deliver`]), forwarding its clients' writes ([`Output::Forward`]). Committed txns are applied in zxid order, and a
//! client's reply is found by the txn's (session, cxid), never by a zxid guessed locally.
//!
//! # Reply order
//!
//! Each connection's replies leave in request order: a read waits only behind the same
//! connection's earlier writes, never behind another session's fsync; a `sync` waits until
//! every write prepared before it is committed.

mod forward;
mod read;
mod reconfig;
mod replies;
mod sequencer;
mod sessions;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use zk_datatree::{DataTree, Overlay, Prepared, Session, Transaction, WriteRequest, prepare};
use zk_jute::data::Id;
use zk_jute::proto::{
    AuthPacket, ConnectRequest, ConnectResponse, ReplyHeader, SetSaslRequest, SetSaslResponse,
    SyncRequest, SyncResponse,
};
use zk_jute::txn::{TxnDigest, TxnHeader};
use zk_jute::{ErrorCode, MultiOp, OpCode, Perms, Zxid};
use zk_persistence::{LogEntry, SnapshotPolicy};
use zk_watch::{WatchManager, WatcherId};

use crate::config::Config;
use crate::sasl::{DigestMd5, SaslError, Step};
use crate::snapshot::SharedTree;
use crate::status::{ConnStatus, Histogram, Status};
use crate::wire::{frame, header_only, notification, reply};

use forward::Forwarded;

pub(crate) use replies::password;
pub(crate) use sequencer::{Rollover, Sequencer};
pub(crate) use sessions::Sessions;

/// A connection's number, given by the runtime.
pub(crate) type ConnId = u64;

/// The time of an input: a monotonic clock (for sessions and latencies) and the wall
/// clock (for the times txns carry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Now {
    /// Microseconds on a monotonic clock (the server's start is a good zero).
    pub(crate) mono_us: u64,
    /// Milliseconds since the Unix epoch.
    pub(crate) wall_ms: i64,
}

impl Now {
    fn ms(self) -> u64 {
        self.mono_us / 1000
    }
}

/// What drives the engine.
#[derive(Debug)]
pub(crate) enum Input {
    /// A new connection's handshake.
    Connect {
        conn: ConnId,
        addr: SocketAddr,
        request: ConnectRequest,
        /// What the connection proved before its handshake (a TLS client certificate's
        /// `x509` id): the session's identities, after its `ip`.
        identities: Vec<Id>,
    },
    /// A request frame after the handshake.
    Request {
        conn: ConnId,
        xid: i32,
        op: i32,
        body: Bytes,
    },
    /// The connection is gone.
    Closed { conn: ConnId },
    /// The log has made `zxid`, and everything appended before it, durable.
    Durable { zxid: i64 },
    /// The log failed: nothing after this can be acknowledged.
    LogFailed { error: String },
    /// Txns up to `zxid`, which this engine prepared, are committed ([`Role::Leader`]).
    Committed { zxid: i64 },
    /// A committed txn prepared by the leader, to apply ([`Role::Learner`], or any
    /// member that is not serving yet: what a sync commits).
    Deliver(LogEntry),
    /// A learner forwarded a client write ([`Role::Leader`]).
    Forwarded(Bytes),
    /// A learner's clients kept these sessions alive ([`Role::Leader`]).
    Touched(Vec<i64>),
    /// The leader answered the [`Output::Sync`] with this token ([`Role::Learner`]).
    Synced { token: u64 },
    /// Time passes: expire sessions, reap containers, purge.
    Tick,
    /// Take a snapshot now (unless one is being taken).
    Snapshot,
    /// The snapshot started by [`Output::Snapshot`] is written (or failed).
    SnapshotDone { zxid: i64, ok: bool },
    /// Stop: close every connection.
    Shutdown,
}

/// What the engine asks of the runtime, in order.
#[derive(Debug)]
pub(crate) enum Output {
    /// Bytes for a connection.
    Frame { conn: ConnId, bytes: Bytes },
    /// Close the connection once what was sent to it is written.
    Close { conn: ConnId },
    /// Append a txn to the log; [`Input::Durable`] reports it on disk.
    Append(LogEntry),
    /// Roll the log and snapshot the tree as it is now (a fuzzy snapshot, taken while
    /// writes go on); [`Input::SnapshotDone`] reports the end.
    Snapshot,
    /// Roll the log (start a new file at the next append): a snapshot fell due while the
    /// last was still being taken, and is skipped; the log rolls all the same, as
    /// ZooKeeper's `SyncRequestProcessor` rolls it before it tries to snapshot.
    RollLog,
    /// Delete old snapshots and logs (`autopurge`).
    Purge,
    /// Send a client write to the leader ([`Role::Learner`]).
    Forward(Bytes),
    /// Ask the leader for a `sync`; answer with [`Input::Synced`] ([`Role::Learner`]).
    Sync { token: u64 },
    /// The server cannot go on: stop serving and say why.
    Fatal(String),
}

/// What the engine is in its ensemble; it decides who prepares txns and where the commit
/// watermark comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Alone: it prepares txns, and what its own log made durable is committed.
    Standalone,
    /// An ensemble's leader: it prepares txns (its own clients' and its learners'
    /// [`Input::Forwarded`]), expires sessions, and a quorum commits
    /// ([`Input::Committed`]).
    Leader,
    /// A follower or observer: it has no sequencer. Its clients' writes, session opens and
    /// closes are forwarded ([`Output::Forward`]); committed txns arrive whole
    /// ([`Input::Deliver`]); `sync` goes through the leader ([`Output::Sync`]).
    Learner,
}

/// A txn logged and not yet applied.
#[derive(Debug)]
struct Pending {
    header: TxnHeader,
    txn: Transaction,
    /// The tree's digest once it is applied, as logged (if it was).
    digest: Option<u64>,
}

/// A request waiting for its turn to be answered, in a connection's order.
#[derive(Debug)]
enum Queued {
    /// A write, answered once its txn (session, cxid) is applied.
    Write {
        cxid: i32,
        op: OpCode,
        /// The ops of a multi sent as `create2`: their results carry the stat
        /// (ZOOKEEPER-4026, as ZooKeeper 3.8.2 and 3.9 answer).
        stat_ops: Vec<usize>,
        reply: Option<Bytes>,
        close_after: bool,
        arrived_us: u64,
    },
    /// A read, served when it reaches the front.
    Read {
        xid: i32,
        op: i32,
        body: Bytes,
        arrived_us: u64,
    },
    /// A `sync`, answered once every write prepared before it is committed (on a
    /// learner: once the leader says so, which sets `until` to `i64::MIN`).
    Sync {
        xid: i32,
        /// `None` if the request does not decode.
        path: Option<String>,
        until: i64,
        arrived_us: u64,
        /// A learner's token for its leader; 0 elsewhere.
        token: u64,
    },
}

/// A connection, as the protocol sees it.
#[derive(Debug)]
struct Conn {
    addr: SocketAddr,
    /// Its session; 0 before one is given.
    session: i64,
    auth: Vec<Id>,
    queue: VecDeque<Queued>,
    /// Requests that arrived before the handshake was answered: ZooKeeper reads nothing
    /// more from a connection until its session is established, so they wait.
    held: Option<Vec<(i32, i32, Bytes)>>,
    /// The answer to its handshake, sent once its `createSession` is applied.
    connecting: Option<ConnectResponse>,
    /// Its SASL (DIGEST-MD5) exchange.
    sasl: DigestMd5,
    /// Its counters, for `cons` and the AdminServer (`crst` zeroes them).
    stats: ConnStats,
}

/// One connection's counters, as ZooKeeper's `ServerCnxn` keeps them.
#[derive(Debug, Clone, Copy)]
struct ConnStats {
    received: u64,
    sent: u64,
    established_ms: i64,
    last_cxid: i64,
    last_operation: &'static str,
}

impl ConnStats {
    fn new(established_ms: i64) -> Self {
        ConnStats {
            received: 0,
            sent: 0,
            established_ms,
            last_cxid: -1,
            last_operation: "NA",
        }
    }
}

/// ZooKeeper's abbreviation of an operation in a connection's statistics
/// (`FinalRequestProcessor`'s `lastOp`).
fn last_op_name(op: i32) -> &'static str {
    match op {
        11 => "PING",
        -10 => "SESS",
        14 => "MULT",
        22 => "MLTR",
        1 | 15 | 19 | 21 => "CREA",
        2 | 20 => "DELE",
        5 => "SETD",
        16 => "RECO",
        7 => "SETA",
        -11 => "CLOS",
        9 => "SYNC",
        13 => "CHEC",
        3 => "EXIS",
        4 => "GETD",
        101 => "SETW",
        105 => "STW2",
        106 => "ADDW",
        6 => "GETA",
        8 | 12 => "GETC",
        104 => "GETACN",
        17 => "CHKW",
        18 => "REMW",
        107 => "HOMI",
        103 => "GETE",
        _ => "NA",
    }
}

/// Requests held before a handshake is answered, at most.
const HELD_MAX: usize = 1_000;

/// Counters for the four-letter words and the metrics endpoint.
#[derive(Debug, Default, Clone)]
struct Stats {
    received: u64,
    sent: u64,
    /// Requests received and not yet answered.
    outstanding: usize,
    read_latency: Histogram,
    update_latency: Histogram,
    /// Sizes of the frames sent to clients without their length prefix: last, min, max
    /// (ZooKeeper's `client_response` statistics).
    response_sizes: Option<(u64, u64, u64)>,
}

/// The log's watermarks: each only moves forward, and `durable ≤ appended`.
#[derive(Debug, Default, Clone, Copy)]
struct Watermarks {
    appended: i64,
    durable: i64,
    committed: i64,
}

/// The server's protocol state.
pub(crate) struct Engine {
    config: Arc<Config>,
    /// The tree, and a fuzzy snapshot's window, shared with a snapshot being taken.
    tree: SharedTree,
    watches: WatchManager,
    overlay: Overlay,
    /// The digest the tree will have once every staged txn is applied.
    staged_digest: u64,
    sequencer: Sequencer,
    role: Role,
    /// Whether clients are served: an ensemble's member serves only once it leads an
    /// established epoch or has synced with its leader. Until then a connection is
    /// closed at once, and the client tries another server.
    serving: bool,
    /// Read-only mode (`readonlymode.enabled`): a member cut off from its quorum serves
    /// clients that asked for a read-only session, reads only.
    read_only: bool,
    /// Sessions opened here while read-only: they live here alone, and end with it.
    read_only_sessions: BTreeSet<i64>,
    /// Local sessions (`localSessionsEnabled`): opened, expired and closed on this member
    /// alone, with no txn; upgraded to global by a `createSession` txn when they create
    /// an ephemeral (`localSessionsUpgradingEnabled`).
    local_sessions: BTreeSet<i64>,
    /// Sessions this learner's clients touched since the leader last heard of them.
    touched: BTreeSet<i64>,
    /// A learner's `sync`s waiting for the leader, by token.
    sync_tokens: HashMap<u64, ConnId>,
    next_sync_token: u64,
    marks: Watermarks,
    pending: VecDeque<Pending>,
    conns: HashMap<ConnId, Conn>,
    sessions: Sessions,
    /// Connections whose front request is a `sync` waiting for the commit watermark.
    syncs: BTreeSet<ConnId>,
    stats: Stats,
    now: Now,
    policy: SnapshotPolicy,
    /// Draws the snapshot policy's random part (xorshift).
    rng: u64,
    /// Secret material for SASL nonces ([`Engine::set_nonce_key`]), and how many were made.
    nonce_key: [u8; 32],
    nonces: u64,
    txns_since_snapshot: u64,
    snapshotting: bool,
    last_purge_ms: u64,
    last_container_check_ms: u64,
    /// Stopped by a fatal error: inputs are ignored.
    failed: bool,
    /// A reconfiguration this leader prepared that is not active yet (its zxid).
    reconfig_pending: Option<i64>,
    /// Leader: the voters synced with it (itself included), as the member last said, for
    /// a reconfiguration's quorum check.
    synced_voters: BTreeSet<u64>,
    out: Vec<Output>,
}

/// The snapshot policy's random part, in `0..snap_count / 2`, from a xorshift `rng`.
fn draw_roll(rng: &mut u64, snap_count: u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng % (snap_count / 2).max(1)
}

impl Engine {
    /// An engine serving `tree` (restored, with its sessions), started at `now`.
    pub(crate) fn new(config: Arc<Config>, tree: DataTree, now: Now, role: Role) -> Self {
        let tick_ms = config.tick_time.as_millis() as u64;
        let mut sessions = Sessions::new(tick_ms, config.server_id, now.wall_ms);
        for (id, timeout) in tree.sessions() {
            sessions.add(*id, u64::try_from(*timeout).unwrap_or(0), None, now.ms());
        }
        let mut rng = (now.wall_ms as u64) | 1;
        let policy = SnapshotPolicy {
            snap_count: config.snap_count,
            snap_size_bytes: 0,
            random_roll: draw_roll(&mut rng, config.snap_count),
        };
        let mut tree = tree;
        if let Some(membership) = config.membership() {
            tree.set_config_data(Bytes::from(membership), config.config_version, now.wall_ms);
        }
        let last = tree.last_zxid();
        Self {
            staged_digest: tree.digest(),
            sequencer: Sequencer::new(Zxid(last)),
            marks: Watermarks {
                appended: last,
                durable: last,
                committed: last,
            },
            config,
            tree: SharedTree::new(tree),
            watches: WatchManager::new(),
            overlay: Overlay::default(),
            role,
            serving: true,
            read_only: false,
            read_only_sessions: BTreeSet::new(),
            local_sessions: BTreeSet::new(),
            touched: BTreeSet::new(),
            sync_tokens: HashMap::new(),
            next_sync_token: 1,
            pending: VecDeque::new(),
            conns: HashMap::new(),
            nonce_key: [0; 32],
            nonces: 0,
            sessions,
            syncs: BTreeSet::new(),
            stats: Stats::default(),
            now,
            policy,
            rng,
            txns_since_snapshot: 0,
            snapshotting: false,
            last_purge_ms: now.ms(),
            last_container_check_ms: now.ms(),
            failed: false,
            reconfig_pending: None,
            synced_voters: BTreeSet::new(),
            out: Vec::new(),
        }
    }

    /// Handles one input at `now`; appends what it asks of the runtime to `out`.
    pub(crate) fn handle(&mut self, now: Now, input: Input, out: &mut Vec<Output>) {
        if self.failed {
            return;
        }
        self.now = Now {
            mono_us: now.mono_us.max(self.now.mono_us),
            wall_ms: now.wall_ms,
        };
        match input {
            Input::Connect {
                conn,
                addr,
                request,
                identities,
            } => self.connect(conn, addr, request, identities),
            Input::Request {
                conn,
                xid,
                op,
                body,
            } => self.request(conn, xid, op, body),
            Input::Closed { conn } => self.forget_conn(conn),
            Input::Durable { zxid } => self.durable(zxid),
            Input::LogFailed { error } => {
                self.fatal(format!("the txn log failed: {error}"));
            }
            Input::Committed { zxid } => {
                if self.role == Role::Leader {
                    self.committed(zxid);
                }
            }
            Input::Deliver(entry) => {
                if self.role == Role::Learner || !self.serving {
                    self.deliver(entry);
                }
            }
            Input::Touched(sessions) => {
                if self.role == Role::Leader {
                    let now = self.now.ms();
                    for session in sessions {
                        self.sessions.touch(session, now);
                    }
                }
            }
            Input::Forwarded(bytes) => {
                if self.role == Role::Leader {
                    self.forwarded(bytes);
                }
            }
            Input::Synced { token } => self.synced(token),
            Input::Tick => self.tick(),
            Input::Snapshot => {
                if !self.snapshotting {
                    self.snapshot();
                }
            }
            Input::SnapshotDone { zxid, ok } => {
                self.snapshotting = false;
                if ok {
                    tracing::info!(zxid = format!("{zxid:#x}"), "snapshot written");
                }
            }
            Input::Shutdown => {
                // In connection order, so that a replayed run closes them alike.
                let mut conns: Vec<ConnId> = self.conns.keys().copied().collect();
                conns.sort_unstable();
                for conn in conns {
                    self.close(conn);
                }
            }
        }
        out.append(&mut self.out);
    }

    /// Stops the engine: the runtime stops serving and reports `reason`.
    fn fatal(&mut self, reason: String) {
        tracing::error!(%reason, "stopping the server");
        self.failed = true;
        self.out.push(Output::Fatal(reason));
    }

    /// Sends a frame to a connection, if it is still open.
    fn send(&mut self, conn: ConnId, bytes: Bytes) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stats.sent += 1;
            self.stats.sent += 1;
            let size = bytes.len().saturating_sub(4) as u64;
            self.stats.response_sizes = Some(match self.stats.response_sizes {
                None => (size, size, size),
                Some((_, min, max)) => (size, min.min(size), max.max(size)),
            });
            self.out.push(Output::Frame { conn, bytes });
        }
    }

    /// Closes a connection once what was sent to it is written, and forgets it.
    fn close(&mut self, conn: ConnId) {
        if self.conns.contains_key(&conn) {
            self.out.push(Output::Close { conn });
            self.forget_conn(conn);
        }
    }

    // ----- connections and sessions -----

    fn connect(
        &mut self,
        conn: ConnId,
        addr: SocketAddr,
        request: ConnectRequest,
        identities: Vec<Id>,
    ) {
        let read_only_session = !self.serving && self.read_only;
        let admitted = self.serving || (read_only_session && request.read_only == Some(true));
        if !admitted {
            // As ZooKeeper's "not running" server (or its read-only server, to a client
            // that did not ask for a read-only session): the connection closes unanswered.
            tracing::debug!(%addr, "closing a connection: this member is not serving");
            self.out.push(Output::Close { conn });
            return;
        }
        let ip = Id {
            scheme: "ip".into(),
            id: addr.ip().to_string(),
        };
        let mut auth = vec![ip];
        auth.extend(identities);
        self.conns.insert(
            conn,
            Conn {
                addr,
                session: 0,
                auth,
                queue: VecDeque::new(),
                held: Some(Vec::new()),
                connecting: None,
                sasl: DigestMd5::Start,
                stats: ConnStats::new(self.now.wall_ms),
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
            self.close(conn);
            return;
        }
        let (min, max) = (
            self.config.min_session_timeout.as_millis(),
            self.config.max_session_timeout.as_millis(),
        );
        let timeout = (request.timeout.max(0) as u128).clamp(min, max) as i32;
        let read_only = request.read_only.map(|_| read_only_session);
        if request.session_id != 0 {
            self.resume(conn, request, timeout, read_only);
            return;
        }
        let session = self.sessions.next_id();
        let local = self.config.local_sessions_enabled && self.role != Role::Standalone;
        if read_only_session || local {
            // No txn: the session lives on this member alone, as on ZooKeeper's
            // read-only server or as its local sessions, and the tree is not written.
            self.sessions
                .add(session, timeout as u64, Some(conn), self.now.ms());
            if read_only_session {
                self.read_only_sessions.insert(session);
            } else {
                self.local_sessions.insert(session);
            }
            if let Some(c) = self.conns.get_mut(&conn) {
                c.session = session;
            }
            let response = replies::connect_response(session, timeout, read_only);
            self.send(conn, frame(response));
            self.established(conn);
            return;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = session;
            c.connecting = Some(replies::connect_response(session, timeout, read_only));
        }
        self.sessions
            .add(session, timeout as u64, Some(conn), self.now.ms());
        if self.role == Role::Learner {
            let body = Bytes::copy_from_slice(&timeout.to_be_bytes());
            self.forward(session, 0, OpCode::CreateSession, Vec::new(), body);
            return;
        }
        self.write(
            session,
            0,
            &[],
            Ok(&WriteRequest::CreateSession {
                timeout_ms: timeout,
            }),
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
        let revalidated = if request.passwd.as_deref() == Some(&password(id)[..]) {
            self.sessions
                .revalidate(id, timeout as u64, conn, self.now.ms())
        } else {
            Err(())
        };
        let Ok(previous) = revalidated else {
            // What ZooKeeper answers for an expired or unknown session: timeout 0.
            let response = ConnectResponse {
                protocol_version: 0,
                timeout: 0,
                session_id: 0,
                passwd: Some(Bytes::from_static(&[0; 16])),
                read_only,
            };
            self.send(conn, frame(response));
            self.close(conn);
            return;
        };
        if let Some(old) = previous.filter(|old| *old != conn) {
            // The session moved here: the old connection is closed, as ZooKeeper does.
            self.close(old);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = id;
        }
        if self.role == Role::Learner {
            self.touched.insert(id);
        }
        let response = replies::connect_response(id, timeout, read_only);
        self.send(conn, frame(response));
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
            self.stats.outstanding = self.stats.outstanding.saturating_sub(c.queue.len());
            self.watches.remove_watcher(WatcherId(conn));
            self.sessions.detach(c.session, conn);
            self.syncs.remove(&conn);
            self.sync_tokens.retain(|_, waiting| *waiting != conn);
        }
    }

    fn tick(&mut self) {
        let now = self.now.ms();
        self.autopurge(now);
        if self.role == Role::Learner {
            // The leader expires global sessions and reaps containers, for the whole
            // ensemble; a learner its own local sessions.
            for session in self.sessions.expired(now) {
                self.expire_local(session);
            }
            return;
        }
        for session in self.sessions.expired(now) {
            if self.expire_local(session) {
                continue;
            }
            tracing::info!(session = format!("{session:#x}"), "session expired");
            self.close_session(session, None);
        }
        // Empty containers and expired TTL nodes, as ZooKeeper's ContainerManager: every
        // `znode.container.checkIntervalMs`, at most `maxPerMinute` a minute.
        let interval_ms = self.config.container_check_interval.as_millis() as u64;
        if interval_ms > 0 && now >= self.last_container_check_ms + interval_ms {
            self.last_container_check_ms = now;
            let never_used_ms = self.config.container_max_never_used.as_millis() as i64;
            let budget = (self
                .config
                .container_max_per_minute
                .saturating_mul(interval_ms)
                / 60_000)
                .max(1);
            let candidates = self.tree.expiry_candidates(self.now.wall_ms, never_used_ms);
            for path in candidates.into_iter().take(budget as usize) {
                self.write(0, 0, &[], Ok(&WriteRequest::DeleteContainer(path)));
            }
        }
    }

    /// Ends `session` if it is local to this member (no txn); returns whether it was.
    fn expire_local(&mut self, session: i64) -> bool {
        if !self.local_sessions.remove(&session) && !self.read_only_sessions.remove(&session) {
            return false;
        }
        tracing::info!(session = format!("{session:#x}"), "local session expired");
        let conn = self.sessions.conn(session);
        self.sessions.remove(session);
        if let Some(conn) = conn {
            self.close(conn);
        }
        true
    }

    /// `autopurge.purgeInterval` hours apart, keep `autopurge.snapRetainCount` snapshots and
    /// the logs they need.
    fn autopurge(&mut self, now_ms: u64) {
        let interval_ms = self.config.purge_interval_hours.saturating_mul(3_600_000);
        if interval_ms == 0 || now_ms < self.last_purge_ms + interval_ms {
            return;
        }
        self.last_purge_ms = now_ms;
        self.out.push(Output::Purge);
    }

    /// Closes `session`: expired (`request` is `None`), or asked by its client.
    fn close_session(&mut self, session: i64, request: Option<(ConnId, i32)>) {
        let conn = self.sessions.set_closing(session);
        if self.role == Role::Learner {
            if let Some((_, cxid)) = request {
                self.forward(
                    session,
                    cxid,
                    OpCode::CloseSession,
                    Vec::new(),
                    Bytes::new(),
                );
            }
            return;
        }
        self.write(
            session,
            request.map_or(0, |r| r.1),
            &[],
            Ok(&WriteRequest::CloseSession),
        );
        if request.is_none() {
            if let Some(conn) = conn {
                self.close(conn);
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
            if held.len() < HELD_MAX {
                held.push((xid, op, body));
            }
            return;
        }
        self.stats.received += 1;
        c.stats.received += 1;
        if xid >= 0 {
            c.stats.last_cxid = i64::from(xid);
        }
        c.stats.last_operation = last_op_name(op);
        let session = c.session;
        self.sessions.touch(session, self.now.ms());
        if self.role == Role::Learner && !self.local_sessions.contains(&session) {
            self.touched.insert(session);
        }
        let code = OpCode::try_from(op).ok();
        if code == Some(OpCode::Auth) {
            return self.auth(conn, xid, &body);
        }
        if code == Some(OpCode::Sasl) {
            return self.sasl(conn, xid, &body);
        }
        if !self.config.enforce_auth_schemes.is_empty() && code != Some(OpCode::Sasl) {
            let schemes = &self.config.enforce_auth_schemes;
            let authenticated = self
                .conns
                .get(&conn)
                .is_some_and(|c| c.auth.iter().any(|id| schemes.contains(&id.scheme)));
            if !authenticated {
                // As ZooKeeper's AuthenticationHelper: the error, then the connection closes.
                tracing::info!(
                    conn,
                    ?schemes,
                    "closing a connection that has not authenticated with an enforced scheme"
                );
                let code = ErrorCode::SessionClosedRequireSaslAuth.code();
                self.send(conn, header_only(xid, 0, code));
                self.close(conn);
                return;
            }
        }
        // Every request below is answered from the connection's queue, which counts it out.
        self.stats.outstanding += 1;
        let arrived_us = self.now.mono_us;
        if !self.serving && self.read_only {
            return self.read_only_request(conn, xid, op, body);
        }
        if code == Some(OpCode::CloseSession) && self.local_sessions.remove(&session) {
            // A local session ends here, with no txn.
            self.sessions.remove(session);
            return self.answer_here(conn, xid, OpCode::CloseSession, 0);
        }
        if code == Some(OpCode::CloseSession) {
            self.queue_write(conn, xid, OpCode::CloseSession, Vec::new(), true);
            return self.close_session(session, Some((conn, xid)));
        }
        if self.local_sessions.contains(&session)
            && code
                .and_then(|op| replies::write_request(op, &body).ok())
                .is_some_and(|w| creates_ephemeral(&w))
            && !self.upgrade_session(conn, xid, session)
        {
            return;
        }
        if code == Some(OpCode::Sync) {
            let path = read::decode::<SyncRequest>(&body).ok().map(|r| r.path);
            let (until, token) = if self.role == Role::Learner {
                // The leader answers once what it proposed before is committed here.
                let token = self.next_sync_token;
                self.next_sync_token += 1;
                self.sync_tokens.insert(token, conn);
                self.out.push(Output::Sync { token });
                (i64::MAX, token)
            } else {
                (self.sequencer.last().0, 0)
            };
            if let Some(c) = self.conns.get_mut(&conn) {
                c.queue.push_back(Queued::Sync {
                    xid,
                    path,
                    until,
                    arrived_us,
                    token,
                });
            }
            return self.drain(conn);
        }
        if self.role == Role::Learner {
            if let Some(op) = code.filter(|op| op.is_write() || *op == OpCode::Reconfig) {
                // The leader prepares it, and answers errors with an error txn as well.
                // Only a multi's reply needs to know its request (which ops are create2s).
                let stat_ops = if op == OpCode::Multi {
                    replies::write_request(op, &body)
                        .map(|write| create2_ops(&write))
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                self.queue_write(conn, xid, op, stat_ops, false);
                let auth = self
                    .conns
                    .get(&conn)
                    .map(|c| c.auth.clone())
                    .unwrap_or_default();
                return self.forward(session, xid, op, auth, body);
            }
        }
        if code == Some(OpCode::Reconfig) {
            self.queue_write(conn, xid, OpCode::Reconfig, Vec::new(), false);
            let auth = self
                .conns
                .get(&conn)
                .map(|c| c.auth.clone())
                .unwrap_or_default();
            return self.reconfig(session, xid, &auth, &body);
        }
        match code
            .filter(|op| op.is_write())
            .map(|op| (op, replies::write_request(op, &body)))
        {
            Some((op, Ok(write))) => {
                let stat_ops = create2_ops(&write);
                self.queue_write(conn, xid, op, stat_ops, false);
                // Lent out for the write rather than copied.
                let auth = self
                    .conns
                    .get_mut(&conn)
                    .map(|c| std::mem::take(&mut c.auth))
                    .unwrap_or_default();
                self.write(session, xid, &auth, Ok(&write));
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.auth = auth;
                }
            }
            Some((_, Err(code))) => {
                // A body that does not decode, or a write this server does not offer: the
                // error still takes a zxid, as ZooKeeper logs it.
                self.queue_write(conn, xid, OpCode::Error, Vec::new(), false);
                self.write(session, xid, &[], Err(code));
            }
            None => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.queue.push_back(Queued::Read {
                        xid,
                        op,
                        body,
                        arrived_us,
                    });
                }
                self.drain(conn);
            }
        }
    }

    /// A request on a read-only member: reads are served; writes and `sync` are
    /// answered `NotReadOnly`, as ZooKeeper's ReadOnlyRequestProcessor does; a
    /// `closeSession` ends the session here.
    fn read_only_request(&mut self, conn: ConnId, xid: i32, op: i32, body: Bytes) {
        match OpCode::try_from(op).ok() {
            Some(OpCode::CloseSession) => {
                let session = self.conns.get(&conn).map_or(0, |c| c.session);
                if self.read_only_sessions.remove(&session) {
                    self.sessions.remove(session);
                }
                self.answer_here(conn, xid, OpCode::CloseSession, 0);
            }
            Some(code) if code.is_write() || code == OpCode::Reconfig || code == OpCode::Sync => {
                self.answer_here(conn, xid, code, ErrorCode::NotReadOnly.code());
            }
            _ => {
                let arrived_us = self.now.mono_us;
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.queue.push_back(Queued::Read {
                        xid,
                        op,
                        body,
                        arrived_us,
                    });
                }
                self.drain(conn);
            }
        }
    }

    /// Answers a request this member decides alone (no txn) with `err`, in its
    /// connection's order; a `closeSession` closes the connection after the answer.
    fn answer_here(&mut self, conn: ConnId, xid: i32, op: OpCode, err: i32) {
        let reply = header_only(xid, self.tree.last_zxid(), err);
        let arrived_us = self.now.mono_us;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.queue.push_back(Queued::Write {
                cxid: xid,
                op,
                stat_ops: Vec::new(),
                reply: Some(reply),
                close_after: op == OpCode::CloseSession,
                arrived_us,
            });
        }
        self.drain(conn);
    }

    /// A local session is about to create an ephemeral: with
    /// `localSessionsUpgradingEnabled` it becomes global (a `createSession` txn ahead of
    /// the create, as ZooKeeper upgrades it); otherwise the request is answered
    /// `EphemeralOnLocalSession`. Returns whether the request goes on.
    fn upgrade_session(&mut self, conn: ConnId, xid: i32, session: i64) -> bool {
        if !self.config.local_sessions_upgrading_enabled {
            let err = ErrorCode::EphemeralOnLocalSession.code();
            self.answer_here(conn, xid, OpCode::Error, err);
            return false;
        }
        self.local_sessions.remove(&session);
        let timeout = self.sessions.timeout(session).unwrap_or(0) as i32;
        tracing::debug!(
            session = format!("{session:#x}"),
            "upgrading a local session"
        );
        if self.role == Role::Learner {
            let body = Bytes::copy_from_slice(&timeout.to_be_bytes());
            self.forward(session, 0, OpCode::CreateSession, Vec::new(), body);
        } else {
            let request = WriteRequest::CreateSession {
                timeout_ms: timeout,
            };
            self.write(session, 0, &[], Ok(&request));
        }
        true
    }

    /// Holds a write's place in the connection's reply order.
    fn queue_write(
        &mut self,
        conn: ConnId,
        cxid: i32,
        op: OpCode,
        stat_ops: Vec<usize>,
        close_after: bool,
    ) {
        let arrived_us = self.now.mono_us;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.queue.push_back(Queued::Write {
                cxid,
                op,
                stat_ops,
                reply: None,
                close_after,
                arrived_us,
            });
        }
    }

    fn auth(&mut self, conn: ConnId, xid: i32, body: &Bytes) {
        let packet: Result<AuthPacket, _> = read::decode(body);
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
                self.send(conn, header_only(xid, 0, 0));
            }
            _ => {
                self.send(conn, header_only(xid, 0, ErrorCode::AuthFailed.code()));
                self.close(conn);
            }
        }
    }

    /// Secret material the SASL nonces are drawn from (random, in a server; a simulation
    /// leaves the zero key for replayable runs).
    pub(crate) fn set_nonce_key(&mut self, key: [u8; 32]) {
        self.nonce_key = key;
    }

    /// A DIGEST-MD5 nonce: the key and a counter, hashed.
    fn fresh_nonce(&mut self) -> String {
        use sha1::{Digest, Sha1};
        self.nonces += 1;
        let mut sha = Sha1::new();
        sha.update(self.nonce_key);
        sha.update(self.nonces.to_be_bytes());
        sha.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A SASL token (ZooKeeper's `processSasl`), answered at once: the next step of the
    /// connection's DIGEST-MD5 exchange; at its end the connection is `sasl:<user>` (and
    /// `super` for `zookeeper.superUser`). A failed exchange gets `AuthFailed`
    /// (`SessionClosedRequireSaslAuth` when SASL is required) and the connection closes.
    fn sasl(&mut self, conn: ConnId, xid: i32, body: &Bytes) {
        let request: Result<SetSaslRequest, _> = read::decode(body);
        let nonce = self.fresh_nonce();
        let config = self.config.clone();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(users) = &config.sasl_users else {
            // ZooKeeper without a JAAS Server section has no SASL server: it logs, and
            // answers with no token.
            tracing::error!(
                conn,
                "a SASL request, but no JAAS Server section configures SASL"
            );
            let answer = SetSaslResponse { token: None };
            return self.send(conn, reply(xid, 0, 0, Some(answer)));
        };
        let password = |user: &str| match (&config.sasl_super_password, user) {
            (Some(password), "super") => Some(password.clone()),
            _ => users.get(user).cloned(),
        };
        let step = match request {
            Ok(r) => c
                .sasl
                .step(r.token.as_deref().unwrap_or_default(), &nonce, password),
            Err(e) => Err(SaslError(format!("the request does not decode: {e}"))),
        };
        let token = match step {
            Ok(Step::Challenge(token)) => token,
            Ok(Step::Done { user, token }) => {
                tracing::info!(conn, session = format!("{:#x}", c.session), %user, "SASL authenticated");
                let sasl = Id {
                    scheme: "sasl".into(),
                    id: user.clone(),
                };
                if !c.auth.contains(&sasl) {
                    c.auth.push(sasl);
                }
                if config.sasl_super_users.contains(&user) {
                    let root = Id {
                        scheme: "super".into(),
                        id: String::new(),
                    };
                    if !c.auth.contains(&root) {
                        c.auth.push(root);
                    }
                }
                token
            }
            Err(e) => {
                tracing::warn!(conn, addr = %c.addr, error = %e, "SASL authentication failed; closing the connection");
                let code = if config.sasl_required {
                    ErrorCode::SessionClosedRequireSaslAuth
                } else {
                    ErrorCode::AuthFailed
                };
                let header = ReplyHeader {
                    xid,
                    zxid: 0,
                    err: code.code(),
                };
                self.send(conn, frame((header, SetSaslResponse { token: None })));
                return self.close(conn);
            }
        };
        let answer = SetSaslResponse {
            token: Some(Bytes::from(token)),
        };
        self.send(conn, reply(xid, 0, 0, Some(answer)));
    }

    // ----- the write pipeline -----

    /// The next zxid. When the epoch's counter is spent, a standalone server starts the
    /// next epoch at once (ZooKeeper's leader would step down and an election follows).
    fn next_zxid(&mut self) -> Option<i64> {
        match self.sequencer.next() {
            Ok(zxid) => Some(zxid.0),
            Err(Rollover { epoch }) => {
                let Some(next) = epoch.checked_add(1) else {
                    self.fatal("every zxid epoch is spent".into());
                    return None;
                };
                tracing::warn!(
                    epoch,
                    next,
                    "the zxid counter of the epoch is spent; starting a new epoch"
                );
                self.sequencer.start_epoch(next);
                self.sequencer.next().ok().map(|zxid| zxid.0)
            }
        }
    }

    /// Prepares `request` as the next txn (or logs the error `Err(code)` as one), stages
    /// it and sends it to the log.
    fn write(
        &mut self,
        session: i64,
        cxid: i32,
        auth: &[Id],
        request: Result<&WriteRequest, ErrorCode>,
    ) {
        let Some(zxid) = self.next_zxid() else {
            return;
        };
        let time = self.now.wall_ms;
        let prepared = match request {
            Ok(request) => prepare(
                &self.overlay.over(&*self.tree),
                &Session { id: session, auth },
                zxid,
                time,
                request,
            ),
            Err(code) => Prepared {
                txn: Transaction::error(code),
                changes: Vec::new(),
                digest_delta: 0,
            },
        };
        let header = TxnHeader {
            client_id: session,
            cxid,
            zxid,
            time,
            r#type: prepared.txn.op_code().code(),
        };
        self.log(header, prepared);
    }

    /// A `reconfig` request, prepared as ZooKeeper's leader prepares it: the checks in
    /// its order (disabled, standalone, one in progress, version, the new lines, the
    /// quorum, then the ACL of `/zookeeper/config`), and the txn that writes the new
    /// membership there with its version, the txn's zxid. A refusal is an error txn.
    fn reconfig(&mut self, session: i64, cxid: i32, auth: &[Id], body: &Bytes) {
        let lines = self.reconfig_lines(auth, body);
        let Some(zxid) = self.next_zxid() else {
            return;
        };
        let txn = match lines {
            Ok(lines) => {
                tracing::info!(
                    session = format!("{session:#x}"),
                    zxid = format!("{zxid:#x}"),
                    "reconfiguration proposed:\n{lines}"
                );
                self.reconfig_pending = Some(zxid);
                let data = format!("{lines}\nversion={zxid:x}");
                Transaction::Reconfig(zk_jute::txn::SetDataTxn {
                    path: zk_datatree::CONFIG_PATH.into(),
                    data: Some(Bytes::from(data)),
                    version: -1,
                })
            }
            Err((code, message)) => {
                tracing::info!(
                    session = format!("{session:#x}"),
                    error = ?code,
                    "reconfiguration refused: {message}"
                );
                Transaction::error(code)
            }
        };
        let header = TxnHeader {
            client_id: session,
            cxid,
            zxid,
            time: self.now.wall_ms,
            r#type: txn.op_code().code(),
        };
        let prepared = Prepared {
            txn,
            changes: Vec::new(),
            // The digest leaves `/zookeeper/` out.
            digest_delta: 0,
        };
        self.log(header, prepared);
    }

    /// The lines of the membership a `reconfig` request makes, or why it is refused.
    fn reconfig_lines(&self, auth: &[Id], body: &Bytes) -> Result<String, reconfig::Refusal> {
        if !self.config.reconfig_enabled {
            return Err((
                ErrorCode::ReconfigDisabled,
                "reconfigEnabled is false".into(),
            ));
        }
        if self.role == Role::Standalone {
            return Err((ErrorCode::Unimplemented, "a standalone server".into()));
        }
        if self.reconfig_pending.is_some() {
            return Err((
                ErrorCode::ReconfigInProgress,
                "another reconfiguration is in progress".into(),
            ));
        }
        let request: zk_jute::proto::ReconfigRequest =
            read::decode(body).map_err(|e| (ErrorCode::MarshallingError, e.to_string()))?;
        let entries = reconfig::new_membership(&self.config, &request, &self.synced_voters)?;
        let acl = self.tree.acl_at(zk_datatree::CONFIG_PATH);
        zk_datatree::acl::check_acl(&acl, Perms::WRITE, auth).map_err(|code| {
            (
                code,
                "neither super nor allowed to write /zookeeper/config".into(),
            )
        })?;
        let mut next = (*self.config).clone();
        next.set_membership_entries(&entries)
            .map_err(|e| (ErrorCode::BadArguments, e.to_string()))?;
        Ok(next.membership_lines())
    }

    /// Leader: the voters synced with it now (itself included), for the quorum check
    /// of a reconfiguration.
    pub(crate) fn set_synced_voters(&mut self, synced: BTreeSet<u64>) {
        self.synced_voters = synced;
    }

    /// A reconfiguration is active: `config` (the same settings, the new membership) is
    /// this server's from now on.
    pub(crate) fn activate(&mut self, config: Config) {
        // As ZooKeeper's `initConfigInZKDatabase`: the node holds the membership, with
        // its version as `mzxid`, written at this member's time.
        if let Some(membership) = config.membership() {
            let version = config.config_version;
            self.tree
                .set_config_data(Bytes::from(membership), version, self.now.wall_ms);
        }
        self.config = Arc::new(config);
        self.reconfig_pending = None;
    }

    /// Stages a prepared txn and appends it to the log.
    fn log(&mut self, header: TxnHeader, prepared: Prepared) {
        let zxid = header.zxid;
        // Zxids prepared = zxids logged, in order.
        if zxid <= self.marks.appended {
            self.fatal(format!(
                "txn {zxid:#x} prepared after {:#x}: zxids must grow",
                self.marks.appended
            ));
            return;
        }
        self.marks.appended = zxid;
        self.overlay.stage(zxid, &prepared);
        self.staged_digest = self.staged_digest.wrapping_add(prepared.digest_delta);
        let digest = TxnDigest {
            version: zk_datatree::DIGEST_VERSION,
            tree_digest: self.staged_digest as i64,
        };
        let entry = LogEntry::new(header.clone(), &prepared.txn.encode(), Some(&digest));
        self.out.push(Output::Append(entry));
        self.pending.push_back(Pending {
            header,
            txn: prepared.txn,
            digest: Some(self.staged_digest),
        });
    }

    /// The log is durable up to `zxid`.
    fn durable(&mut self, zxid: i64) {
        if zxid < self.marks.durable || zxid > self.marks.appended {
            self.fatal(format!(
                "the log reports {zxid:#x} durable, outside {:#x}..={:#x}",
                self.marks.durable, self.marks.appended
            ));
            return;
        }
        self.marks.durable = zxid;
        if self.role == Role::Standalone {
            self.committed(zxid);
        }
    }

    /// Txns up to `zxid` are committed: apply (and answer) each, in order.
    fn committed(&mut self, zxid: i64) {
        if zxid < self.marks.committed {
            // A commit source may repeat itself; it never goes back.
            return;
        }
        self.marks.committed = zxid;
        while self
            .pending
            .front()
            .is_some_and(|p| p.header.zxid <= self.marks.committed)
        {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            self.apply(p);
            if self.failed {
                return;
            }
        }
        for conn in std::mem::take(&mut self.syncs) {
            self.drain(conn);
        }
    }

    fn apply(&mut self, p: Pending) {
        let zxid = p.header.zxid;
        let applied = self.tree.apply(&p.header, &p.txn);
        self.overlay.applied(zxid);
        let expected = match self.tree.shared().fuzzy {
            Some(window) if zxid < window.zxid => None,
            Some(window) => {
                self.tree.shared_mut().fuzzy = None;
                if zxid == window.zxid {
                    Some(window.digest as u64)
                } else {
                    p.digest
                }
            }
            None => p.digest,
        };
        if let Some(logged) = expected.filter(|d| *d != self.tree.digest()) {
            self.fatal(format!(
                "the tree's digest after txn {zxid:#x} is {}, the log holds {}",
                self.tree.digest() as i64,
                logged as i64
            ));
            return;
        }
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
                    self.send(watcher.0, event.clone());
                }
            }
        }
        let session = p.header.client_id;
        match &p.txn {
            Transaction::CreateSession(create) => {
                if !self.sessions.is_open(session) {
                    // A session another member opened.
                    let timeout = u64::try_from(create.time_out).unwrap_or(0);
                    self.sessions.add(session, timeout, None, self.now.ms());
                }
                let conn = self.sessions.conn(session);
                let response = conn
                    .and_then(|conn| self.conns.get_mut(&conn))
                    .and_then(|c| c.connecting.take());
                if let (Some(conn), Some(response)) = (conn, response) {
                    self.send(conn, frame(response));
                    self.established(conn);
                }
            }
            _ => self.answer_write(session, p.header.cxid, zxid, &applied),
        }
        if let Transaction::CloseSession(_) = p.txn {
            // Expired by the leader (or closed elsewhere): a connection still holding it
            // here is closed, as the leader closes its own.
            let conn = self.sessions.conn(session);
            self.sessions.remove(session);
            if let Some(conn) = conn {
                self.close(conn);
            }
        }
        self.txns_since_snapshot += 1;
        if self.policy.due(self.txns_since_snapshot, 0) {
            if self.snapshotting {
                // As ZooKeeper's SyncRequestProcessor: the count starts over and this
                // one is skipped, rather than taken as soon as the last is done (a tree
                // whose snapshot outlasts the txns between two would otherwise be
                // serialized over and over under a heavy load).
                self.restart_snapshot_count();
                self.out.push(Output::RollLog);
                tracing::warn!(
                    zxid = format!("{:#x}", p.header.zxid),
                    "too busy to snap, skipping: the last snapshot is still being taken"
                );
            } else {
                self.snapshot();
            }
        }
    }

    /// Fills in the reply of the write (`session`, `cxid`), if its connection is here and
    /// waits for it, and sends what is ready.
    fn answer_write(&mut self, session: i64, cxid: i32, zxid: i64, applied: &zk_datatree::Applied) {
        let Some(conn) = self.sessions.conn(session) else {
            return;
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let waiting = c.queue.iter_mut().find_map(|q| match q {
            Queued::Write {
                cxid: x,
                op,
                stat_ops,
                reply: reply @ None,
                ..
            } if *x == cxid => Some((op, stat_ops, reply)),
            _ => None,
        });
        if let Some((op, stat_ops, reply)) = waiting {
            *reply = Some(if *op == OpCode::Reconfig && applied.err == 0 {
                // ZooKeeper answers with the new membership and the node's stat.
                let data = self
                    .tree
                    .node(zk_datatree::CONFIG_PATH)
                    .and_then(|n| n.data.clone());
                let stat = applied.stat.clone().unwrap_or_default();
                crate::wire::reply(
                    cxid,
                    zxid,
                    0,
                    Some(zk_jute::proto::GetDataResponse { data, stat }),
                )
            } else {
                replies::write_reply(*op, cxid, zxid, applied, stat_ops)
            });
            self.drain(conn);
        }
    }

    /// A learner sends a client write (or a session's open or close) to its leader.
    fn forward(&mut self, session: i64, cxid: i32, op: OpCode, auth: Vec<Id>, body: Bytes) {
        let forwarded = Forwarded {
            session,
            cxid,
            op: op.code(),
            auth,
            body,
        };
        self.out.push(Output::Forward(forwarded.encode()));
    }

    /// The leader prepares a write a learner forwarded; the learner answers its client
    /// when the txn is delivered there.
    fn forwarded(&mut self, bytes: Bytes) {
        let f = match Forwarded::decode(bytes) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "a learner forwarded a request that does not decode");
                return;
            }
        };
        let now = self.now.ms();
        match OpCode::try_from(f.op) {
            Ok(OpCode::CreateSession) => {
                let timeout = read::decode::<i32>(&f.body).unwrap_or(0);
                let (min, max) = (
                    self.config.min_session_timeout.as_millis() as i32,
                    self.config.max_session_timeout.as_millis() as i32,
                );
                let timeout = timeout.clamp(min, max);
                self.sessions.add(f.session, timeout as u64, None, now);
                let request = WriteRequest::CreateSession {
                    timeout_ms: timeout,
                };
                self.write(f.session, f.cxid, &[], Ok(&request));
            }
            Ok(OpCode::CloseSession) => {
                self.sessions.set_closing(f.session);
                self.write(f.session, f.cxid, &[], Ok(&WriteRequest::CloseSession));
            }
            Ok(op) if op.is_write() || op == OpCode::Reconfig => {
                let known = self.sessions.touch(f.session, now);
                // ZooKeeper's checkSession: a session that is closing, or unknown while
                // sessions are all global, gets SessionExpired (logged as an error txn).
                // A learner's local session is unknown here by design.
                let expired = self.sessions.is_closing(f.session)
                    || (!known && !self.config.local_sessions_enabled);
                if expired {
                    self.write(f.session, f.cxid, &[], Err(ErrorCode::SessionExpired));
                    return;
                }
                if op == OpCode::Reconfig {
                    return self.reconfig(f.session, f.cxid, &f.auth, &f.body);
                }
                let request = replies::write_request(op, &f.body);
                self.write(f.session, f.cxid, &f.auth, request.as_ref().map_err(|e| *e));
            }
            _ => {
                tracing::warn!(
                    op = f.op,
                    "a learner forwarded a request that is not a write"
                );
            }
        }
    }

    /// A learner applies a txn its leader committed.
    fn deliver(&mut self, entry: LogEntry) {
        let zxid = entry.zxid();
        if zxid <= self.marks.committed {
            self.fatal(format!(
                "txn {zxid:#x} delivered after {:#x}",
                self.marks.committed
            ));
            return;
        }
        let mut body = zk_jute::Reader::new(entry.body.clone());
        let txn = match Transaction::read(entry.header.r#type, &mut body) {
            Ok(txn) => txn,
            Err(e) => {
                self.fatal(format!(
                    "txn {zxid:#x} from the leader does not decode: {e}"
                ));
                return;
            }
        };
        let digest = match body.remaining() {
            0 => None,
            _ => match <TxnDigest as zk_jute::Record>::decode(&mut body) {
                Ok(d) if d.version == zk_datatree::DIGEST_VERSION => Some(d.tree_digest as u64),
                Ok(_) => None,
                Err(e) => {
                    self.fatal(format!("the digest of txn {zxid:#x} does not decode: {e}"));
                    return;
                }
            },
        };
        self.marks = Watermarks {
            appended: zxid,
            durable: zxid,
            committed: zxid,
        };
        self.sequencer = Sequencer::new(Zxid(zxid));
        self.apply(Pending {
            header: entry.header,
            txn,
            digest,
        });
    }

    /// The leader answered a learner's `sync`: it is answered in its connection's turn.
    fn synced(&mut self, token: u64) {
        let Some(conn) = self.sync_tokens.remove(&token) else {
            return;
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            for q in &mut c.queue {
                if let Queued::Sync {
                    token: t, until, ..
                } = q
                {
                    if *t == token {
                        *until = i64::MIN;
                    }
                }
            }
        }
        self.drain(conn);
    }

    fn snapshot(&mut self) {
        self.restart_snapshot_count();
        self.snapshotting = true;
        self.out.push(Output::Snapshot);
    }

    /// Counts txns towards the next snapshot from zero, with a new random part, as
    /// ZooKeeper's `resetSnapshotStats`.
    fn restart_snapshot_count(&mut self) {
        self.txns_since_snapshot = 0;
        self.policy.random_roll = draw_roll(&mut self.rng, self.config.snap_count);
    }

    /// A request's reply went out.
    fn answered(&mut self, arrived_us: u64, read: bool) {
        let us = self.now.mono_us.saturating_sub(arrived_us);
        if read {
            self.stats.read_latency.record(us);
        } else {
            self.stats.update_latency.record(us);
        }
        self.stats.outstanding = self.stats.outstanding.saturating_sub(1);
    }

    /// Sends what can be sent from the front of a connection's queue.
    fn drain(&mut self, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            match c.queue.front() {
                Some(Queued::Write { reply: Some(_), .. }) => {
                    let Some(Queued::Write {
                        reply: Some(bytes),
                        close_after,
                        arrived_us,
                        ..
                    }) = c.queue.pop_front()
                    else {
                        return;
                    };
                    self.send(conn, bytes);
                    self.answered(arrived_us, false);
                    if close_after {
                        self.close(conn);
                        return;
                    }
                }
                Some(Queued::Read { .. }) => {
                    let Some(Queued::Read {
                        xid,
                        op,
                        body,
                        arrived_us,
                    }) = c.queue.pop_front()
                    else {
                        return;
                    };
                    let bytes = self.read(conn, xid, op, &body);
                    self.send(conn, bytes);
                    self.answered(arrived_us, true);
                }
                Some(Queued::Sync { until, token, .. }) => {
                    if *until > self.marks.committed {
                        // A learner's sync waits for its leader's answer (`synced`), any
                        // other for the commit watermark.
                        if *token == 0 {
                            self.syncs.insert(conn);
                        }
                        return;
                    }
                    let Some(Queued::Sync {
                        xid,
                        path,
                        arrived_us,
                        ..
                    }) = c.queue.pop_front()
                    else {
                        return;
                    };
                    let zxid = self.tree.last_zxid();
                    let bytes = match path {
                        Some(path) => reply(xid, zxid, 0, Some(SyncResponse { path })),
                        None => header_only(xid, zxid, ErrorCode::MarshallingError.code()),
                    };
                    self.send(conn, bytes);
                    self.answered(arrived_us, true);
                }
                _ => return,
            }
        }
    }

    // ----- the ensemble -----

    /// Takes a new place in the ensemble. `next` is the zxid a new leader's first txn
    /// takes (its epoch's first). Every connection closes when the member stops serving
    /// or changes role (its clients reconnect, to this member or another, and keep their
    /// sessions); what was prepared and not committed is forgotten here: the replication
    /// log keeps it, and delivers it if the next leader commits it.
    pub(crate) fn set_role(
        &mut self,
        role: Role,
        serving: bool,
        next: Option<Zxid>,
        out: &mut Vec<Output>,
    ) {
        self.reset_role(role, serving, next);
        out.append(&mut self.out);
    }

    /// Starts or stops serving read-only clients while not serving (ZooKeeper's
    /// read-only server, started once a member has looked for a leader for a while).
    /// Stopping closes every connection.
    pub(crate) fn set_read_only(&mut self, on: bool, out: &mut Vec<Output>) {
        if on == self.read_only || (on && self.serving) {
            return;
        }
        if on {
            // ZooKeeper's words, which operators and test suites look for in the log.
            tracing::info!("Read-only server started: serving read-only clients");
            self.read_only = true;
        } else {
            self.reset_role(self.role, self.serving, None);
        }
        out.append(&mut self.out);
    }

    fn reset_role(&mut self, role: Role, serving: bool, next: Option<Zxid>) {
        self.read_only = false;
        // A reconfiguration not active yet is the next leader's to finish.
        self.reconfig_pending = None;
        self.read_only_sessions.clear();
        self.local_sessions.clear();
        // The committed record is the tree's session table: a session whose
        // createSession never committed (the leader changed) is gone, and so are the
        // sessions that lived on this member alone.
        let committed = self.tree.sessions();
        self.sessions.retain(|id| committed.contains_key(&id));
        // In connection order, so that a replayed run closes them alike.
        let mut conns: Vec<ConnId> = self.conns.keys().copied().collect();
        conns.sort_unstable();
        for conn in conns {
            self.close(conn);
        }
        self.pending.clear();
        self.overlay = Overlay::default();
        self.staged_digest = self.tree.digest();
        self.syncs.clear();
        self.sync_tokens.clear();
        self.touched.clear();
        let last = self.tree.last_zxid();
        self.marks = Watermarks {
            appended: last,
            durable: last,
            committed: last,
        };
        let start = next.map_or(last, |z| z.0.saturating_sub(1).max(last));
        self.sequencer = Sequencer::new(Zxid(start));
        if role == Role::Leader && serving {
            // A new leader's session tracker starts every session's timeout afresh, as
            // ZooKeeper's does: the learners' touches keep them alive from now on.
            let now = self.now.ms();
            for (id, timeout) in self.tree.sessions().clone() {
                self.sessions
                    .add(id, u64::try_from(timeout).unwrap_or(0), None, now);
            }
        }
        tracing::info!(?role, serving, "engine role");
        self.role = role;
        self.serving = serving;
    }

    /// Replaces the tree (a snapshot from the leader, or the log truncated and
    /// replayed). Only while not serving: no connection is open.
    pub(crate) fn replace_tree(&mut self, tree: DataTree, out: &mut Vec<Output>) {
        // Whoever is connected (read-only clients) saw the old tree: they go first.
        self.reset_role(self.role, false, None);
        self.tree.replace(tree);
        if let Some(membership) = self.config.membership() {
            let version = self.config.config_version;
            self.tree
                .set_config_data(Bytes::from(membership), version, self.now.wall_ms);
        }
        let mut sessions = Sessions::new(
            self.config.tick_time.as_millis() as u64,
            self.config.server_id,
            self.now.wall_ms,
        );
        for (id, timeout) in self.tree.sessions() {
            sessions.add(
                *id,
                u64::try_from(*timeout).unwrap_or(0),
                None,
                self.now.ms(),
            );
        }
        self.sessions = sessions;
        self.watches = WatchManager::new();
        self.reset_role(self.role, false, None);
        out.append(&mut self.out);
    }

    /// The tree just installed is a leader's snapshot that recorded `digest` at its end.
    /// At the snapshot's zxid the tree must have it; past it (the leader applied txns
    /// while it serialized), the txns up to its zxid are applied without comparing their
    /// digests, and the tree must have it after the last of them, as ZooKeeper compares a
    /// fuzzy snapshot's digest.
    pub(crate) fn expect_digest(
        &mut self,
        digest: zk_persistence::ZxidDigest,
    ) -> Result<(), String> {
        let at = self.tree.last_zxid();
        if digest.version != zk_datatree::DIGEST_VERSION || digest.zxid != at {
            self.reopen_window(digest);
            return Ok(());
        }
        if digest.digest != self.tree.digest() as i64 {
            return Err(format!(
                "the leader's snapshot at {at:#x} recorded digest {}, the tree loaded has {}",
                digest.digest,
                self.tree.digest() as i64
            ));
        }
        Ok(())
    }

    /// The tree was restored from a fuzzy snapshot whose window the log does not reach
    /// (a learner that stopped soon after its leader's snapshot): the txns still to come,
    /// up to the digest's zxid, are applied without comparing their digests. Restore has
    /// compared whatever it replayed.
    pub(crate) fn reopen_window(&mut self, digest: zk_persistence::ZxidDigest) {
        if digest.version == zk_datatree::DIGEST_VERSION && digest.zxid > self.tree.last_zxid() {
            self.tree.shared_mut().fuzzy = Some(digest);
        }
    }

    /// The digest a snapshot of the tree records now: the tree's at its last zxid, or,
    /// while a leader's fuzzy snapshot's window is open (the tree holds changes past its
    /// last zxid), the one that snapshot recorded, which its txns up to that zxid reach
    /// (ZooKeeper records no digest of a tree that is still fuzzy).
    pub(crate) fn snapshot_digest(&self) -> zk_persistence::ZxidDigest {
        self.tree.shared().snapshot_digest()
    }

    /// The sessions this learner's clients touched since the last call, with their
    /// timeouts: what its next ping tells the leader.
    pub(crate) fn take_touches(&mut self) -> Vec<(i64, i32)> {
        let touched = std::mem::take(&mut self.touched);
        touched
            .into_iter()
            .filter_map(|id| {
                let timeout = self.sessions.timeout(id)?;
                Some((id, i32::try_from(timeout).unwrap_or(i32::MAX)))
            })
            .collect()
    }

    /// Whether session `id` is open here (a leader answering a revalidation).
    pub(crate) fn session_is_open(&self, id: i64) -> bool {
        self.sessions.is_open(id)
    }

    /// Whether read-only clients are served (while the member is not serving).
    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only && !self.serving
    }

    /// The role and whether clients are served.
    pub(crate) fn role(&self) -> (Role, bool) {
        (self.role, self.serving)
    }

    // ----- what the operator sees -----

    /// The configuration the engine serves with.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The tree as applied.
    pub(crate) fn tree(&self) -> &DataTree {
        &self.tree
    }

    /// The tree and what a snapshot of it records, shared with a snapshot's thread.
    pub(crate) fn shared_tree(&mut self) -> &mut SharedTree {
        &mut self.tree
    }

    /// The watches set.
    pub(crate) fn watches(&self) -> &WatchManager {
        &self.watches
    }

    /// Each live session's timeout, by id.
    pub(crate) fn session_timeouts(&self) -> BTreeMap<i64, u64> {
        self.sessions.timeouts()
    }

    /// The live sessions by expiry bucket time (the AdminServer's `dump`).
    pub(crate) fn session_expiries(&self) -> BTreeMap<u64, Vec<i64>> {
        self.sessions.by_expiry()
    }

    /// Requests received and not yet answered (`globalOutstandingLimit` throttles on it).
    pub(crate) fn outstanding(&self) -> usize {
        self.stats.outstanding
    }

    /// Zeroes every connection's counters (`crst`).
    pub(crate) fn reset_connection_stats(&mut self) {
        for c in self.conns.values_mut() {
            c.stats = ConnStats::new(c.stats.established_ms);
        }
    }

    /// Starts the server's counters again (`srst`).
    pub(crate) fn reset_stats(&mut self) {
        self.stats = Stats {
            outstanding: self.stats.outstanding,
            ..Stats::default()
        };
    }

    /// Every figure, as of `now` (the log's own figures are the runtime's to add).
    pub(crate) fn status(&self, now: Now) -> Status {
        let mut connections: Vec<ConnStatus> = self
            .conns
            .iter()
            .map(|(conn, c)| ConnStatus {
                conn: *conn,
                addr: c.addr,
                session: c.session,
                secure: false,
                received: c.stats.received,
                sent: c.stats.sent,
                outstanding: c.queue.len(),
                established_ms: c.stats.established_ms,
                timeout_ms: self.sessions.timeout(c.session).unwrap_or(0),
                last_cxid: c.stats.last_cxid,
                last_operation: c.stats.last_operation,
            })
            .collect();
        connections.sort_by_key(|c| c.conn);
        Status {
            mode: crate::member::mode_of(self.role, self.serving, false, self.read_only),
            read_latency: self.stats.read_latency.clone(),
            update_latency: self.stats.update_latency.clone(),
            packets_received: self.stats.received,
            packets_sent: self.stats.sent,
            response_sizes: self
                .stats
                .response_sizes
                .map_or((-1, -1, -1), |(l, mn, mx)| (l as i64, mn as i64, mx as i64)),
            connections,
            outstanding: self.stats.outstanding,
            uptime_ms: now.ms(),
            zxid: self.tree.last_zxid(),
            digest: self.tree.digest() as i64,
            znodes: self.tree.node_count() + 1,
            data_size: self.tree.approximate_data_size(),
            watches: self.watches.watch_count(),
            ephemerals: self.tree.all_ephemerals().values().map(|p| p.len()).sum(),
            sessions: self.sessions.len()
                - self.local_sessions.len()
                - self.read_only_sessions.len(),
            local_sessions: self.local_sessions.len() + self.read_only_sessions.len(),
            log: Default::default(),
            ensemble: None,
        }
    }
}

/// Whether a write creates an ephemeral znode (alone or in a multi).
fn creates_ephemeral(write: &WriteRequest) -> bool {
    let ephemeral = |flags: i32| {
        zk_jute::CreateMode::try_from(flags).is_ok_and(zk_jute::CreateMode::is_ephemeral)
    };
    match write {
        WriteRequest::Create { request, .. } => ephemeral(request.flags),
        WriteRequest::Multi(multi) => multi.ops.iter().any(|op| match op {
            MultiOp::Create(r) | MultiOp::Create2(r) => ephemeral(r.flags),
            _ => false,
        }),
        _ => false,
    }
}

/// The ops of a multi sent as `create2`, whose results carry their stat.
fn create2_ops(write: &WriteRequest) -> Vec<usize> {
    match write {
        WriteRequest::Multi(multi) => multi
            .ops
            .iter()
            .enumerate()
            .filter(|(_, op)| matches!(op, MultiOp::Create2(_)))
            .map(|(i, _)| i)
            .collect(),
        _ => Vec::new(),
    }
}
