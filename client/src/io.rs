//! The task that owns the connection: it connects and reconnects, writes requests in
//! order, matches replies to them (ZooKeeper answers in order), delivers watch events
//! before completing later replies, pings, and ends the session.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_util::codec::FramedRead;
use zk_jute::proto::{
    AuthPacket, ConnectRequest, ConnectResponse, ReplyHeader, RequestHeader, SetSaslRequest,
    SetSaslResponse, WatcherEvent,
};
use zk_jute::{ErrorCode, EventType, FrameCodec, KeeperState, OpCode, Reader, Record, xid};
use zk_watch::{Registration, SetWatchesRequest, WatchRegistry};

use crate::error::{Error, Result};
use crate::hosts::HostList;
use crate::path::Chroot;
use crate::types::{SessionState, WatchedEvent};

/// Bytes of encoded requests waiting for the socket before the task stops taking new
/// commands (back-pressure on callers).
const OUT_MAX_BYTES: usize = 4 << 20;
/// The password a new session starts with.
const EMPTY_PASSWORD: [u8; 16] = [0; 16];

/// Where a watch's events go.
#[derive(Debug)]
pub(crate) enum Sink {
    /// A one-shot watch: one event.
    Once(oneshot::Sender<WatchedEvent>),
    /// A persistent watch: every event until removed.
    Stream(mpsc::UnboundedSender<WatchedEvent>),
}

impl Sink {
    /// Whether nobody listens any more.
    fn is_closed(&self) -> bool {
        match self {
            Sink::Once(tx) => tx.is_closed(),
            Sink::Stream(tx) => tx.is_closed(),
        }
    }
}

/// The watch a request leaves once answered.
#[derive(Debug)]
pub(crate) struct WatchRequest {
    pub(crate) registration: Registration,
    /// The client path (relative to the chroot).
    pub(crate) path: String,
    pub(crate) sink: Sink,
}

/// What a [`Client`](crate::Client) asks the task to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// A request: opcode, encoded body, the watch it sets, where the reply body goes.
    Request {
        op: OpCode,
        body: Bytes,
        watch: Option<WatchRequest>,
        reply: oneshot::Sender<Result<Bytes>>,
    },
    /// `addauth`.
    Auth {
        scheme: String,
        auth: Bytes,
        reply: oneshot::Sender<Result<()>>,
    },
    /// `checkWatches` or `removeWatches` for every local watcher of `kind` on `path`.
    Watches {
        op: OpCode,
        path: String,
        kind: zk_jute::WatcherType,
        local: bool,
        body: Bytes,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Close the session.
    Close { reply: oneshot::Sender<Result<()>> },
    /// Replace the servers (`updateServerList`); answered with whether the client moves.
    UpdateServerList {
        hosts: Vec<(String, u16)>,
        reply: oneshot::Sender<Result<bool>>,
    },
}

impl Command {
    fn fail(self, error: Error) {
        match self {
            Command::Request { reply, .. } => drop(reply.send(Err(error))),
            Command::Auth { reply, .. }
            | Command::Watches { reply, .. }
            | Command::Close { reply } => drop(reply.send(Err(error))),
            Command::UpdateServerList { reply, .. } => drop(reply.send(Err(error))),
        }
    }
}

/// Where the answer to an `add_auth` goes.
type AuthReply = oneshot::Sender<Result<()>>;

/// Session facts the handles read.
#[derive(Debug, Clone)]
pub(crate) struct SessionInfo {
    pub(crate) id: i64,
    pub(crate) password: Bytes,
    pub(crate) timeout: Duration,
    pub(crate) last_zxid: i64,
}

/// What the task shares with the handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: watch::Sender<SessionState>,
    pub(crate) events: broadcast::Sender<SessionState>,
    pub(crate) session: Mutex<SessionInfo>,
    /// The readers of [`Client::watch_events`](crate::Client::watch_events) and
    /// [`Client::events`](crate::Client::events).
    pub(crate) watch_events: Mutex<Vec<EventReader>>,
}

/// A reader of the session's events, in the order the task met them.
#[derive(Debug)]
pub(crate) struct EventReader {
    pub(crate) tx: mpsc::UnboundedSender<WatchedEvent>,
    /// The session's state changes too, as events of type `None`.
    pub(crate) states: bool,
}

impl Shared {
    pub(crate) fn new(timeout: Duration) -> Self {
        Shared {
            state: watch::Sender::new(SessionState::Connecting),
            events: broadcast::Sender::new(64),
            session: Mutex::new(SessionInfo {
                id: 0,
                password: Bytes::from_static(&EMPTY_PASSWORD),
                timeout,
                last_zxid: 0,
            }),
            watch_events: Mutex::new(Vec::new()),
        }
    }

    /// The readers of the session's watch events (nothing panics while they are held, so a
    /// poisoned lock is taken as it is).
    pub(crate) fn watch_readers(&self) -> MutexGuard<'_, Vec<EventReader>> {
        self.watch_events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands `event`, which reached at least one of the client's watches, to every reader
    /// of the session's watch events, forgetting readers that are gone.
    pub(crate) fn tap(&self, event: &WatchedEvent) {
        self.watch_readers()
            .retain(|reader| reader.tx.send(event.clone()).is_ok());
    }

    /// The session is now in `state`: its watchers and the readers of its events hear it
    /// (a state's event is in the readers' stream between the node events before the
    /// change and those after).
    pub(crate) fn set_state(&self, state: SessionState) {
        let mut readers = self.watch_readers();
        self.state.send_replace(state);
        let _ = self.events.send(state);
        if state != SessionState::Connecting {
            let event = WatchedEvent::session(state.keeper_state());
            readers.retain(|reader| !reader.states || reader.tx.send(event.clone()).is_ok());
        }
    }

    pub(crate) fn session(&self) -> SessionInfo {
        match self.session.lock() {
            Ok(info) => info.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn update(&self, f: impl FnOnce(&mut SessionInfo)) {
        match self.session.lock() {
            Ok(mut info) => f(&mut info),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The error a call gets when the task no longer answers.
    pub(crate) fn terminal_error(&self) -> Error {
        match *self.state.borrow() {
            SessionState::Expired => Error::SessionExpired,
            SessionState::AuthFailed => Error::AuthFailed,
            SessionState::Closed => Error::Closed,
            _ => Error::ConnectionLoss,
        }
    }
}

/// What a sent request waits for.
#[derive(Debug)]
enum Waiter {
    Request {
        reply: oneshot::Sender<Result<Bytes>>,
        watch: Option<WatchRequest>,
    },
    Watches {
        op: OpCode,
        path: String,
        kind: zk_jute::WatcherType,
        local: bool,
        reply: oneshot::Sender<Result<()>>,
    },
    SetWatches,
    Close(Option<oneshot::Sender<Result<()>>>),
}

#[derive(Debug)]
struct Pending {
    xid: i32,
    waiter: Waiter,
}

/// A connection's read half: a socket's, or a TLS session's.
type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// Its write half.
type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// One connection (TCP, or TLS over TCP) with an established session.
struct Conn {
    reader: FramedRead<ReadHalf, FrameCodec>,
    writer: WriteHalf,
    out: BytesMut,
}

/// Settings the task keeps from the options.
#[derive(Debug, Clone)]
pub(crate) struct IoConfig {
    pub(crate) session_timeout: Duration,
    pub(crate) reconnect_delay: Duration,
    pub(crate) read_only: bool,
    pub(crate) max_packet_len: usize,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) sasl: Option<crate::types::SaslCredentials>,
}

/// The connection task.
pub(crate) struct Io {
    shared: Arc<Shared>,
    cmds: mpsc::UnboundedReceiver<Command>,
    cmds_open: bool,
    config: IoConfig,
    hosts: HostList,
    chroot: Chroot,
    session_id: i64,
    password: Bytes,
    timeout: Duration,
    last_zxid: i64,
    next_xid: i32,
    registry: WatchRegistry<u64>,
    sinks: HashMap<u64, (Sink, String)>,
    next_watcher: u64,
    /// Identities sent on every connection: scheme, credentials, and whom to tell of the
    /// first answer (an `add_auth` made while disconnected).
    auths: Vec<(String, Bytes, Option<AuthReply>)>,
    pending: VecDeque<Pending>,
    auth_waiters: VecDeque<Option<AuthReply>>,
    queued: VecDeque<Command>,
    last_heard: Instant,
    closing: bool,
    done: bool,
    /// A new server list asks the client to move: the connection drops once the
    /// commands at hand are handled.
    moving: bool,
}

/// Why serving a connection stopped.
enum Stop {
    /// The connection failed; reconnect.
    Lost(String),
    /// The session is over.
    Terminal,
}

impl Io {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: Arc<Shared>,
        cmds: mpsc::UnboundedReceiver<Command>,
        config: IoConfig,
        hosts: HostList,
        chroot: Chroot,
        session: Option<(i64, Bytes)>,
        auths: Vec<(String, Bytes)>,
    ) -> Self {
        let (session_id, password) = session.unwrap_or((0, Bytes::from_static(&EMPTY_PASSWORD)));
        Io {
            shared,
            cmds,
            cmds_open: true,
            timeout: config.session_timeout,
            config,
            hosts,
            chroot,
            session_id,
            password,
            last_zxid: 0,
            next_xid: 1,
            registry: WatchRegistry::new(None),
            sinks: HashMap::new(),
            next_watcher: 1,
            auths: auths
                .into_iter()
                .map(|(scheme, auth)| (scheme, auth, None))
                .collect(),
            pending: VecDeque::new(),
            auth_waiters: VecDeque::new(),
            queued: VecDeque::new(),
            last_heard: Instant::now(),
            closing: false,
            moving: false,
            done: false,
        }
    }

    /// Runs until the session ends.
    pub(crate) async fn run(mut self) {
        self.last_heard = Instant::now();
        loop {
            let Some(conn) = self.connect().await else {
                return;
            };
            match self.serve(conn).await {
                Stop::Terminal => return,
                Stop::Lost(why) => {
                    tracing::info!(session = format!("{:#x}", self.session_id), %why, "connection lost");
                    if self.closing {
                        self.finish(SessionState::Closed);
                        return;
                    }
                    self.disconnected();
                }
            }
            if self.done {
                return;
            }
        }
    }

    fn set_state(&self, state: SessionState) {
        self.shared.set_state(state);
    }

    /// Tries hosts until one gives the session, the session expires or the client closes.
    async fn connect(&mut self) -> Option<Conn> {
        loop {
            if self.done {
                return None;
            }
            let ((host, port), pause) = self.hosts.next();
            if pause {
                let delay = self.config.reconnect_delay;
                self.while_disconnected(sleep(delay)).await?;
            }
            let request = ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: self.last_zxid,
                timeout: i32::try_from(self.config.session_timeout.as_millis()).unwrap_or(i32::MAX),
                session_id: self.session_id,
                passwd: Some(self.password.clone()),
                read_only: Some(self.config.read_only),
            };
            let host_count = u32::try_from(self.hosts.len()).unwrap_or(u32::MAX).max(1);
            let attempt_timeout = self.timeout / host_count;
            let attempt = timeout(
                attempt_timeout,
                handshake(
                    host.clone(),
                    port,
                    request,
                    self.config.max_packet_len,
                    self.config.tls.clone(),
                    self.config.sasl.clone(),
                ),
            );
            let outcome = self.while_disconnected(attempt).await?;
            match outcome {
                Ok(Ok((conn, response))) => {
                    if response.timeout <= 0 {
                        tracing::warn!(
                            session = format!("{:#x}", self.session_id),
                            "the server says the session expired"
                        );
                        self.finish(SessionState::Expired);
                        return None;
                    }
                    self.established(response);
                    tracing::debug!(%host, port, session = format!("{:#x}", self.session_id), "connected");
                    return Some(conn);
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    // The server refused the SASL credentials: as ZooKeeper's client, the
                    // session is over.
                    tracing::warn!(%host, port, error = %e, "SASL authentication failed");
                    self.finish(SessionState::AuthFailed);
                    return None;
                }
                Ok(Err(e)) => tracing::debug!(%host, port, error = %e, "connecting failed"),
                Err(_) => tracing::debug!(%host, port, "connecting timed out"),
            }
            // As ZooKeeper's client does after a failed attempt: what waited fails.
            for cmd in std::mem::take(&mut self.queued) {
                cmd.fail(Error::ConnectionLoss);
            }
        }
    }

    fn established(&mut self, response: ConnectResponse) {
        self.session_id = response.session_id;
        self.password = response.passwd.unwrap_or_default();
        self.timeout = Duration::from_millis(u64::try_from(response.timeout).unwrap_or(0));
        self.hosts.connected();
        self.last_heard = Instant::now();
        let (id, password, timeout) = (self.session_id, self.password.clone(), self.timeout);
        self.shared.update(|info| {
            info.id = id;
            info.password = password;
            info.timeout = timeout;
        });
        self.set_state(if response.read_only == Some(true) {
            SessionState::ConnectedReadOnly
        } else {
            SessionState::Connected
        });
    }

    /// When the session counts as expired without a word from the server: 4/3 of its
    /// timeout since the server was last heard (ZooKeeper 3.9's client rule). None before
    /// a session exists.
    fn expiry(&self) -> Option<Instant> {
        (self.session_id != 0).then(|| self.last_heard + self.timeout * 4 / 3)
    }

    /// Awaits `fut` while taking commands in; `None` when the session ended meanwhile.
    async fn while_disconnected<F: std::future::Future>(&mut self, fut: F) -> Option<F::Output> {
        tokio::pin!(fut);
        let expiry = self.expiry();
        loop {
            tokio::select! {
                out = &mut fut => return Some(out),
                cmd = self.cmds.recv(), if self.cmds_open => {
                    match cmd {
                        Some(cmd) => self.command_while_disconnected(cmd),
                        None => {
                            self.cmds_open = false;
                            self.finish(SessionState::Closed);
                        }
                    }
                    if self.done {
                        return None;
                    }
                }
                _ = sleep_until(expiry.unwrap_or_else(Instant::now)), if expiry.is_some() => {
                    tracing::warn!(
                        session = format!("{:#x}", self.session_id),
                        "no server heard for 4/3 of the session timeout: session expired"
                    );
                    self.finish(SessionState::Expired);
                    return None;
                }
            }
        }
    }

    fn command_while_disconnected(&mut self, cmd: Command) {
        match cmd {
            Command::UpdateServerList { hosts, reply } => {
                let moving = self
                    .hosts
                    .update(hosts, None, &mut crate::hosts::random_unit);
                let _ = reply.send(Ok(moving));
            }
            Command::Close { reply } => {
                self.finish(SessionState::Closed);
                let _ = reply.send(Ok(()));
            }
            Command::Watches {
                op,
                path,
                kind,
                local: true,
                reply,
                ..
            } => {
                let result = if op == OpCode::RemoveWatches {
                    self.remove_locally(&path, kind, true, ErrorCode::ConnectionLoss)
                } else if self.registry.contains(&path, None, kind) {
                    Ok(())
                } else {
                    Err(Error::NoWatcher)
                };
                let _ = reply.send(result);
            }
            // Sent first thing on the next connection, as every identity is.
            Command::Auth {
                scheme,
                auth,
                reply,
            } => self.auths.push((scheme, auth, Some(reply))),
            other => self.queued.push_back(other),
        }
    }

    /// Serves one connection until it fails or the session ends.
    async fn serve(&mut self, mut conn: Conn) -> Stop {
        let read_timeout = self.timeout * 2 / 3;
        let ping_interval = read_timeout / 2;
        self.prime(&mut conn.out);
        let mut last_send = Instant::now();
        // TLS may hold written bytes back until flushed (a plain socket has nothing to
        // flush).
        let mut unflushed = false;
        loop {
            let recv_deadline = self.last_heard + read_timeout;
            let ping_at = last_send + ping_interval;
            let take_commands = self.cmds_open && conn.out.len() < OUT_MAX_BYTES;
            tokio::select! {
                biased;
                // Writes, the timer and new requests first: a flood of incoming frames must
                // not keep requests or pings from going out. (Requests cannot starve reading:
                // they stop being taken while the output buffer is full.)
                written = write_out(&mut conn.writer, &mut conn.out, &mut unflushed),
                    if !conn.out.is_empty() || unflushed =>
                {
                    if let Err(e) = written {
                        return Stop::Lost(e.to_string());
                    }
                }
                _ = sleep_until(recv_deadline.min(ping_at)) => {
                    let now = Instant::now();
                    if now >= recv_deadline {
                        return Stop::Lost(format!(
                            "nothing heard for {} ms", read_timeout.as_millis()
                        ));
                    }
                    put_frame(&mut conn.out, xid::PING, OpCode::Ping, &[]);
                    last_send = now;
                }
                cmd = self.cmds.recv(), if take_commands => {
                    match cmd {
                        Some(cmd) => {
                            self.on_command(cmd, &mut conn.out);
                            // Whatever else is already queued goes out in the same write
                            // (not after a move: it waits for the next connection).
                            while conn.out.len() < OUT_MAX_BYTES && !self.done && !self.moving {
                                let Ok(cmd) = self.cmds.try_recv() else { break };
                                self.on_command(cmd, &mut conn.out);
                            }
                        }
                        None => {
                            // Every handle is gone: close the session.
                            self.cmds_open = false;
                            if !self.closing {
                                self.send_close(None, &mut conn.out);
                            }
                        }
                    }
                    if self.done {
                        return Stop::Terminal;
                    }
                    if std::mem::take(&mut self.moving) {
                        // As ZooKeeper's client after `updateServerList`: the connection
                        // drops, and the session goes on on the server chosen.
                        return Stop::Lost("moving to a server of the new list".into());
                    }
                    last_send = Instant::now();
                }
                frame = conn.reader.next() => {
                    let frame = match frame {
                        Some(Ok(frame)) => frame,
                        Some(Err(e)) => return Stop::Lost(e.to_string()),
                        None => return Stop::Lost("the server closed the connection".into()),
                    };
                    self.last_heard = Instant::now();
                    if let Err(e) = self.on_frame(frame) {
                        return Stop::Lost(e.to_string());
                    }
                    if self.done {
                        return Stop::Terminal;
                    }
                }
            }
        }
    }

    /// What a new connection sends first: the session's identities, then its watches,
    /// then the requests that waited.
    fn prime(&mut self, out: &mut BytesMut) {
        for (scheme, auth, reply) in &mut self.auths {
            put_auth(out, scheme, auth);
            self.auth_waiters.push_back(reply.take());
        }
        let chroot = self.chroot.as_deref();
        for request in self.registry.set_watches(self.last_zxid, chroot) {
            let body = match &request {
                SetWatchesRequest::SetWatches(r) => zk_jute::to_bytes(r),
                SetWatchesRequest::SetWatches2(r) => zk_jute::to_bytes(r),
            };
            put_frame(out, xid::SET_WATCHES, request.opcode(), &body);
            self.pending.push_back(Pending {
                xid: xid::SET_WATCHES,
                waiter: Waiter::SetWatches,
            });
        }
        for cmd in std::mem::take(&mut self.queued) {
            self.on_command(cmd, out);
        }
    }

    fn xid(&mut self) -> i32 {
        let xid = self.next_xid;
        // Positive xids only: the negative ones are special.
        self.next_xid = if xid == i32::MAX { 1 } else { xid + 1 };
        xid
    }

    fn on_command(&mut self, cmd: Command, out: &mut BytesMut) {
        match cmd {
            Command::Request {
                op,
                body,
                watch,
                reply,
            } => {
                let xid = self.xid();
                put_frame(out, xid, op, &body);
                self.pending.push_back(Pending {
                    xid,
                    waiter: Waiter::Request { reply, watch },
                });
            }
            Command::Auth {
                scheme,
                auth,
                reply,
            } => {
                put_auth(out, &scheme, &auth);
                self.auths.push((scheme, auth, None));
                self.auth_waiters.push_back(Some(reply));
            }
            Command::Watches {
                op,
                path,
                kind,
                local,
                body,
                reply,
            } => {
                // As ZooKeeper's client: nothing to remove here means nothing is asked.
                if !self.registry.contains(&path, None, kind) {
                    let _ = reply.send(Err(Error::NoWatcher));
                    return;
                }
                let xid = self.xid();
                put_frame(out, xid, op, &body);
                self.pending.push_back(Pending {
                    xid,
                    waiter: Waiter::Watches {
                        op,
                        path,
                        kind,
                        local,
                        reply,
                    },
                });
            }
            Command::Close { reply } => {
                if self.closing {
                    let _ = reply.send(Ok(()));
                } else {
                    self.send_close(Some(reply), out);
                }
            }
            Command::UpdateServerList { hosts, reply } => {
                let current = self.hosts.current().cloned();
                let moving =
                    self.hosts
                        .update(hosts, current.as_ref(), &mut crate::hosts::random_unit);
                self.moving |= moving;
                let _ = reply.send(Ok(moving));
            }
        }
    }

    fn send_close(&mut self, reply: Option<oneshot::Sender<Result<()>>>, out: &mut BytesMut) {
        self.closing = true;
        let xid = self.xid();
        put_frame(out, xid, OpCode::CloseSession, &[]);
        self.pending.push_back(Pending {
            xid,
            waiter: Waiter::Close(reply),
        });
    }

    /// Handles one frame from the server. An error drops the connection.
    fn on_frame(&mut self, frame: Bytes) -> Result<()> {
        let mut r = Reader::new(frame);
        let header = ReplyHeader::decode(&mut r)?;
        match header.xid {
            xid::PING => Ok(()),
            xid::AUTH => {
                let waiter = self.auth_waiters.pop_front().flatten();
                if header.err == ErrorCode::AuthFailed.code() {
                    if let Some(reply) = waiter {
                        let _ = reply.send(Err(Error::AuthFailed));
                    }
                    tracing::warn!("authentication failed");
                    self.finish(SessionState::AuthFailed);
                } else if let Some(reply) = waiter {
                    let _ = reply.send(Error::from_code(header.err).map_or(Ok(()), Err));
                }
                Ok(())
            }
            xid::NOTIFICATION => {
                let event = WatcherEvent::decode(&mut r)?;
                self.on_event(event);
                Ok(())
            }
            reply_xid => {
                let Some(pending) = self.pending.pop_front() else {
                    return Err(Error::Protocol(format!(
                        "reply with xid {reply_xid} to no request"
                    )));
                };
                if pending.xid != reply_xid {
                    let expected = pending.xid;
                    self.pending.push_front(pending);
                    return Err(Error::Protocol(format!(
                        "reply xid {reply_xid} out of order: expected {expected}"
                    )));
                }
                if header.zxid > 0 {
                    self.last_zxid = header.zxid;
                    let zxid = header.zxid;
                    self.shared.update(|info| info.last_zxid = zxid);
                }
                self.complete(pending.waiter, header.err, r.rest().clone());
                Ok(())
            }
        }
    }

    fn complete(&mut self, waiter: Waiter, err: i32, body: Bytes) {
        let rc = ErrorCode::try_from(err).unwrap_or(ErrorCode::SystemError);
        match waiter {
            Waiter::Request { reply, watch } => {
                // A watch whose future or stream was dropped before the answer is not kept.
                if let Some(watch) = watch.filter(|w| !w.sink.is_closed()) {
                    let id = self.next_watcher;
                    self.next_watcher += 1;
                    if self
                        .registry
                        .register(watch.registration, &watch.path, id, rc)
                    {
                        self.sinks.insert(id, (watch.sink, watch.path));
                    }
                }
                let _ = reply.send(Error::from_code(err).map_or(Ok(body), Err));
            }
            Waiter::Watches {
                op,
                path,
                kind,
                local,
                reply,
            } => {
                let result = if op == OpCode::RemoveWatches {
                    self.remove_locally(&path, kind, local, rc)
                } else {
                    Error::from_code(err).map_or(Ok(()), Err)
                };
                let _ = reply.send(result);
            }
            Waiter::SetWatches => {
                if rc != ErrorCode::Ok {
                    tracing::warn!(error = %rc, "re-registering watches failed");
                }
            }
            Waiter::Close(reply) => {
                // The session's end is in its watches and streams before the close returns.
                self.finish(SessionState::Closed);
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
            }
        }
    }

    /// Takes every local watcher of `kind` off `path` after the server answered `rc` (or
    /// without asking, for a local removal), telling each it was removed.
    fn remove_locally(
        &mut self,
        path: &str,
        kind: zk_jute::WatcherType,
        local: bool,
        rc: ErrorCode,
    ) -> Result<()> {
        let removed = self
            .registry
            .unregister(path, None, kind, local, rc)
            .map_err(|code| Error::from_code(code.code()).unwrap_or(Error::NoWatcher))?;
        for (event_type, ids) in removed.events() {
            let mut told = false;
            for id in ids {
                if let Some((sink, _)) = self.sinks.remove(id) {
                    told |= send(sink, WatchedEvent::node(event_type, path));
                }
            }
            if told {
                self.shared.tap(&WatchedEvent::node(event_type, path));
            }
        }
        Ok(())
    }

    fn on_event(&mut self, event: WatcherEvent) {
        let Ok(event_type) = EventType::try_from(event.r#type) else {
            tracing::warn!(r#type = event.r#type, "watch event of unknown type ignored");
            return;
        };
        let state = KeeperState::try_from(event.state).unwrap_or(KeeperState::SyncConnected);
        if event_type == EventType::None {
            return;
        }
        let path = self.chroot.to_client(&event.path);
        let reached = self.registry.materialize(state, event_type, &path);
        let event = WatchedEvent {
            event_type,
            state,
            path,
        };
        let mut told = false;
        for id in reached {
            let Some((sink, _)) = self.sinks.get(&id) else {
                continue;
            };
            match sink {
                Sink::Stream(tx) => {
                    if tx.send(event.clone()).is_ok() {
                        told = true;
                    } else {
                        // The stream was dropped: forget the watch here too.
                        if let Some((_, watch_path)) = self.sinks.remove(&id) {
                            let _ = self.registry.unregister(
                                &watch_path,
                                Some(&id),
                                zk_jute::WatcherType::Any,
                                true,
                                ErrorCode::Ok,
                            );
                        }
                    }
                }
                Sink::Once(_) => {
                    if let Some((sink, _)) = self.sinks.remove(&id) {
                        told |= send(sink, event.clone());
                    }
                }
            }
        }
        if told {
            self.shared.tap(&event);
        }
    }

    /// The connection is gone but the session may live: fail what was in flight.
    fn disconnected(&mut self) {
        for pending in std::mem::take(&mut self.pending) {
            match pending.waiter {
                Waiter::Request { reply, .. } => drop(reply.send(Err(Error::ConnectionLoss))),
                Waiter::Watches { reply, .. } => drop(reply.send(Err(Error::ConnectionLoss))),
                Waiter::SetWatches => {}
                Waiter::Close(reply) => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(Error::ConnectionLoss));
                    }
                }
            }
        }
        for reply in std::mem::take(&mut self.auth_waiters).into_iter().flatten() {
            let _ = reply.send(Err(Error::ConnectionLoss));
        }
        self.set_state(SessionState::Disconnected);
    }

    /// The session is over: everything waiting fails, every watcher hears of it.
    fn finish(&mut self, state: SessionState) {
        if self.done {
            return;
        }
        self.done = true;
        let error = match state {
            SessionState::Expired => Error::SessionExpired,
            SessionState::AuthFailed => Error::AuthFailed,
            _ => Error::Closed,
        };
        self.set_state(state);
        for pending in std::mem::take(&mut self.pending) {
            match pending.waiter {
                Waiter::Request { reply, .. } => drop(reply.send(Err(error.clone()))),
                Waiter::Watches { reply, .. } => drop(reply.send(Err(error.clone()))),
                Waiter::SetWatches => {}
                Waiter::Close(reply) => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
        }
        for reply in std::mem::take(&mut self.auth_waiters).into_iter().flatten() {
            let _ = reply.send(Err(error.clone()));
        }
        for reply in self
            .auths
            .iter_mut()
            .filter_map(|(_, _, reply)| reply.take())
        {
            let _ = reply.send(Err(error.clone()));
        }
        for cmd in std::mem::take(&mut self.queued) {
            cmd.fail(error.clone());
        }
        let event = WatchedEvent::session(state.keeper_state());
        for (_, (sink, _)) in self.sinks.drain() {
            let _ = send(sink, event.clone());
        }
        // The session's watch events end with it (the state is terminal by now, so no
        // reader joins after this).
        self.shared.watch_readers().clear();
        self.registry = WatchRegistry::new(None);
        // Commands still in the channel fail as the channel closes with the task.
        self.cmds.close();
        while let Ok(cmd) = self.cmds.try_recv() {
            cmd.fail(error.clone());
        }
    }
}

/// Hands `event` to a watch; false if nobody listens there any more.
fn send(sink: Sink, event: WatchedEvent) -> bool {
    match sink {
        Sink::Once(tx) => tx.send(event).is_ok(),
        Sink::Stream(tx) => tx.send(event).is_ok(),
    }
}

/// Appends one request frame: length, header, body.
fn put_frame(out: &mut BytesMut, xid: i32, op: OpCode, body: &[u8]) {
    let header = RequestHeader {
        xid,
        r#type: op.code(),
    };
    let len = header.encoded_len() + body.len();
    out.reserve(4 + len);
    out.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
    header.encode(out);
    out.put_slice(body);
}

fn put_auth(out: &mut BytesMut, scheme: &str, auth: &Bytes) {
    let packet = AuthPacket {
        r#type: 0,
        scheme: scheme.to_owned(),
        auth: Some(auth.clone()),
    };
    put_frame(out, xid::AUTH, OpCode::Auth, &zk_jute::to_bytes(&packet));
}

/// A refusal from the server during SASL: the session is over.
fn sasl_refused(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, why)
}

fn sasl_invalid(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why)
}

/// Sends one SASL token (opcode `sasl`) and returns the server's answer token.
async fn sasl_round(
    reader: &mut FramedRead<ReadHalf, FrameCodec>,
    writer: &mut WriteHalf,
    out: &mut BytesMut,
    round: i32,
    token: &[u8],
) -> std::io::Result<Vec<u8>> {
    let request = SetSaslRequest {
        token: Some(Bytes::copy_from_slice(token)),
    };
    put_frame(out, round, OpCode::Sasl, &zk_jute::to_bytes(&request));
    writer.write_all(out).await?;
    writer.flush().await?;
    out.clear();
    loop {
        let frame = match reader.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Err(std::io::Error::other(e)),
            None => {
                return Err(sasl_refused(
                    "the server closed the connection during SASL".into(),
                ));
            }
        };
        let mut body = Reader::new(frame);
        let header = ReplyHeader::decode(&mut body).map_err(|e| sasl_invalid(e.to_string()))?;
        if header.xid != round {
            // Nothing else is in flight yet; anything else is not for us.
            continue;
        }
        if header.err != 0 {
            return Err(sasl_refused(format!(
                "the server refused SASL with error {}",
                header.err
            )));
        }
        let answer = SetSaslResponse::decode(&mut body).map_err(|e| sasl_invalid(e.to_string()))?;
        return Ok(answer.token.map(|t| t.to_vec()).unwrap_or_default());
    }
}

/// DIGEST-MD5 with the server (RFC 2831 as ZooKeeper runs it): an empty first token, the
/// server's challenge, our response, and the server's `rspauth`, which must prove that
/// it knows the password too.
async fn sasl_exchange(
    reader: &mut FramedRead<ReadHalf, FrameCodec>,
    writer: &mut WriteHalf,
    out: &mut BytesMut,
    creds: &crate::types::SaslCredentials,
) -> std::io::Result<()> {
    use zk_jute::sasl::{self, Credentials, Exchange};
    let challenge = sasl_round(reader, writer, out, 1, b"").await?;
    let challenge = String::from_utf8(challenge)
        .map_err(|_| sasl_invalid("a challenge not in UTF-8".into()))?;
    let fields = sasl::directives(&challenge).map_err(|e| sasl_invalid(e.to_string()))?;
    let nonce = fields
        .get("nonce")
        .ok_or_else(|| sasl_invalid("a challenge without a nonce".into()))?;
    if !fields
        .get("qop")
        .is_none_or(|q| q.split(',').any(|q| q.trim() == "auth"))
    {
        return Err(sasl_invalid("the server does not offer qop auth".into()));
    }
    let realm = fields
        .get("realm")
        .map_or(sasl::SERVER_NAME, String::as_str);
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
    let cnonce: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let credentials = Credentials {
        user: &creds.user,
        realm,
        password: &creds.password,
        utf8: true,
    };
    let exchange = Exchange {
        nonce,
        cnonce: &cnonce,
        nc: "00000001",
        authzid: None,
        uri: sasl::DIGEST_URI,
    };
    let token = sasl::client_response(&credentials, &exchange);
    let proof = sasl_round(reader, writer, out, 2, &token).await?;
    let expected = format!("rspauth={}", sasl::rspauth_value(&credentials, &exchange));
    if proof != expected.as_bytes() {
        return Err(sasl_refused(
            "the server's rspauth does not prove it knows the password".into(),
        ));
    }
    Ok(())
}

/// Writes what `out` holds as far as the connection takes it now, and flushes once it is
/// all written (TLS may hold written bytes back until then). `unflushed` says whether
/// bytes were written and not flushed yet, across calls the serving loop gives up on.
async fn write_out(
    writer: &mut WriteHalf,
    out: &mut BytesMut,
    unflushed: &mut bool,
) -> std::io::Result<()> {
    if !out.is_empty() {
        if writer.write_buf(out).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "the connection is closed for writing",
            ));
        }
        *unflushed = true;
    }
    if out.is_empty() {
        writer.flush().await?;
        *unflushed = false;
    }
    Ok(())
}

/// Opens a connection and exchanges `ConnectRequest`/`ConnectResponse`.
async fn handshake(
    host: String,
    port: u16,
    request: ConnectRequest,
    max_packet_len: usize,
    tls: Option<Arc<rustls::ClientConfig>>,
    sasl: Option<crate::types::SaslCredentials>,
) -> std::io::Result<(Conn, ConnectResponse)> {
    let stream = TcpStream::connect((host.as_str(), port)).await?;
    stream.set_nodelay(true)?;
    let (read, mut writer): (ReadHalf, WriteHalf) = match tls {
        None => {
            let (read, write) = stream.into_split();
            (Box::new(read), Box::new(write))
        }
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
            })?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await?;
            let (read, write) = tokio::io::split(tls);
            (Box::new(read), Box::new(write))
        }
    };
    let mut reader = FramedRead::new(read, FrameCodec::new(max_packet_len));
    let mut out = BytesMut::new();
    let len = request.encoded_len();
    out.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
    request.encode(&mut out);
    writer.write_all(&out).await?;
    writer.flush().await?;
    out.clear();
    let frame = match reader.next().await {
        Some(Ok(frame)) => frame,
        Some(Err(e)) => return Err(std::io::Error::other(e)),
        None => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection during the handshake",
            ));
        }
    };
    let response = ConnectResponse::decode(&mut Reader::new(frame))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    if let (Some(creds), true) = (&sasl, response.timeout > 0) {
        sasl_exchange(&mut reader, &mut writer, &mut out, creds).await?;
    }
    Ok((
        Conn {
            reader,
            writer,
            out,
        },
        response,
    ))
}
