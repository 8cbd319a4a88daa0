//! The simulated clients: each a session that reads, writes, compares-and-sets the
//! registers and creates sequential nodes, one operation at a time, speaking the client
//! protocol's frames to whichever member it is connected to, and recording every
//! operation with its outcome.

use bytes::{Bytes, BytesMut};
use zk_jute::data::{Acl, Id};
use zk_jute::proto::{
    ConnectRequest, ConnectResponse, CreateRequest, CreateResponse, GetDataRequest,
    GetDataResponse, ReplyHeader, SetDataRequest, SetDataResponse, SetWatches, SyncRequest,
    WatcherEvent,
};
use zk_jute::{CreateMode, ErrorCode, OpCode, Perms, Reader, Record, xid};

use super::history::{Kind, Op, Outcome};
use super::world::Rng;
use crate::engine::ConnId;

/// The parent of the sequential nodes.
pub(crate) const SEQ_PARENT: &str = "/chaos/seq";

/// The parent of the sessions' ephemeral nodes.
pub(crate) const EPH_PARENT: &str = "/chaos/eph";

/// The session timeout the clients ask for (ms).
pub(crate) const SESSION_TIMEOUT_MS: i32 = 4_000;

/// How long a client waits for a reply before it counts the operation unknown and
/// tries another member.
pub(crate) const OP_TIMEOUT_MS: u64 = 2_000;

/// The registers' paths.
pub(crate) fn keys() -> Vec<String> {
    (0..3).map(|i| format!("/chaos/r{i}")).collect()
}

fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: Perms::ALL.0,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

fn encode(record: impl Record) -> Bytes {
    let mut out = BytesMut::new();
    record.encode(&mut out);
    out.freeze()
}

/// A client's connection to a member.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conn {
    pub(crate) id: ConnId,
    pub(crate) sid: u64,
    /// The handshake was answered.
    pub(crate) ready: bool,
    /// When it was opened (ms).
    pub(crate) since_ms: u64,
}

/// An operation waiting for its reply.
#[derive(Debug, Clone)]
struct Pending {
    xid: i32,
    kind: Kind,
    /// Not recorded: part of the setup.
    setup: bool,
    /// The session it was sent in.
    session: i64,
    invoke_ms: u64,
    /// The register's index, for reads and writes.
    key: Option<usize>,
    /// A `sync` + read whose `sync` is answered: the read is what is pending now.
    synced: bool,
}

/// What a client sends its member.
#[derive(Debug, Clone)]
pub(crate) enum Frame {
    /// The handshake.
    Connect(ConnectRequest),
    /// A request.
    Request { xid: i32, op: i32, body: Bytes },
}

/// What a reply did to the client.
#[derive(Debug, Clone)]
pub(crate) enum Reaction {
    /// Nothing to do.
    None,
    /// Ready for the next operation.
    Next,
    /// Send this next, on the same connection.
    Send(Frame),
    /// The session is gone: drop the connection and start a new one.
    Expired,
}

/// One simulated client.
#[derive(Debug)]
pub(crate) struct Client {
    session: i64,
    passwd: Option<Bytes>,
    pub(crate) conn: Option<Conn>,
    pending: Option<Pending>,
    xid: i32,
    last_zxid: i64,
    /// The highest version seen of each register.
    seen: Vec<i32>,
    /// A register to read before the next conditional write (after a `BadVersion`).
    refresh: Option<usize>,
    /// Setup requests still to send (client 0 only).
    setup: Vec<(String, bool)>,
    /// A new session: its ephemeral node is the next operation.
    ephemeral_due: bool,
    /// The registers with a data watch set and its event not yet received.
    armed: std::collections::BTreeSet<usize>,
    /// The administrator's state, for the session that reconfigures instead of running
    /// the workload.
    admin: Option<Admin>,
}

/// What the administrator knows: the members, the one it removed, the connection it
/// authenticated on, and the `reconfig` it waits for.
#[derive(Debug)]
struct Admin {
    members: u64,
    removed: Option<u64>,
    authed: Option<ConnId>,
    /// The `reconfig` request's xid, and who is out once it is done.
    asked: Option<(i32, Option<u64>)>,
    /// Reconfigurations answered with success.
    done: u64,
}

/// The `server.N` line of simulated member `sid`, as a `reconfig` joins it.
pub(crate) fn member_line(sid: u64) -> String {
    format!("server.{sid}=127.0.0.{sid}:2888:3888:participant;127.0.0.{sid}:2181")
}

impl Client {
    pub(crate) fn new(setup: bool) -> Self {
        let mut steps = Vec::new();
        if setup {
            steps.push(("/chaos".to_string(), false));
            steps.push((SEQ_PARENT.to_string(), false));
            steps.push((EPH_PARENT.to_string(), false));
            for key in keys() {
                steps.push((key, true));
            }
        }
        steps.reverse();
        Client {
            session: 0,
            passwd: None,
            conn: None,
            pending: None,
            xid: 0,
            last_zxid: 0,
            seen: vec![0; keys().len()],
            refresh: None,
            setup: steps,
            ephemeral_due: false,
            armed: std::collections::BTreeSet::new(),
            admin: None,
        }
    }

    /// The administrator of an ensemble of `members`: it authenticates as `super` on
    /// each connection, then mostly reads, and now and then removes a member (or adds
    /// the removed one back) with `reconfig`. Nothing it does is recorded.
    pub(crate) fn admin(members: u64) -> Self {
        let mut client = Client::new(false);
        client.admin = Some(Admin {
            members,
            removed: None,
            authed: None,
            asked: None,
            done: 0,
        });
        client
    }

    /// Reconfigurations this client had committed.
    pub(crate) fn reconfigs(&self) -> u64 {
        self.admin.as_ref().map_or(0, |a| a.done)
    }

    /// The administrator's next request.
    fn admin_next(&mut self, xid: i32, rng: &mut Rng, now_ms: u64) -> Option<Frame> {
        let conn = self.conn.map(|c| c.id);
        let admin = self.admin.as_mut()?;
        let kind = Kind::Read {
            key: "admin".into(),
        };
        if admin.authed != conn {
            admin.authed = conn;
            self.begin(xid::AUTH, kind, true, None, now_ms);
            let body = encode(zk_jute::proto::AuthPacket {
                r#type: 0,
                scheme: "digest".into(),
                auth: Some(Bytes::from_static(b"super:test")),
            });
            return Some(Frame::Request {
                xid: xid::AUTH,
                op: OpCode::Auth as i32,
                body,
            });
        }
        if rng.below(100) >= 3 {
            let body = encode(GetDataRequest {
                path: "/zookeeper/config".into(),
                watch: false,
            });
            self.begin(xid, kind, true, None, now_ms);
            return Some(Frame::Request {
                xid,
                op: OpCode::GetData as i32,
                body,
            });
        }
        let (joining, leaving, after) = match admin.removed {
            Some(sid) => (Some(member_line(sid)), None, None),
            None => {
                let sid = 1 + rng.below(admin.members);
                (None, Some(sid.to_string()), Some(sid))
            }
        };
        admin.asked = Some((xid, after));
        let body = encode(zk_jute::proto::ReconfigRequest {
            joining_servers: joining,
            leaving_servers: leaving,
            new_members: None,
            cur_config_id: -1,
        });
        self.begin(xid, kind, true, None, now_ms);
        Some(Frame::Request {
            xid,
            op: OpCode::Reconfig as i32,
            body,
        })
    }

    /// Whether the setup is done (it has nothing of it left to send or wait for).
    pub(crate) fn set_up(&self) -> bool {
        self.setup.is_empty() && !self.pending.as_ref().is_some_and(|p| p.setup)
    }

    /// Whether an operation waits for its reply.
    pub(crate) fn busy(&self) -> bool {
        self.pending.is_some()
    }

    /// The handshake for a new connection: the session, if it has one, resumed.
    pub(crate) fn handshake(&self) -> Frame {
        Frame::Connect(ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: self.last_zxid,
            timeout: SESSION_TIMEOUT_MS,
            session_id: self.session,
            passwd: Some(
                self.passwd
                    .clone()
                    .unwrap_or_else(|| Bytes::from(vec![0u8; 16])),
            ),
            read_only: Some(false),
        })
    }

    /// The next operation, now pending: a setup step first, then one at random.
    pub(crate) fn next(&mut self, rng: &mut Rng, values: &mut u64, now_ms: u64) -> Frame {
        self.xid += 1;
        let xid = self.xid;
        if let Some(frame) = self.admin_next(xid, rng, now_ms) {
            return frame;
        }
        let keys = keys();
        if let Some((path, register)) = self.setup.pop() {
            let data = register.then(|| Bytes::from_static(b"0"));
            let kind = Kind::CreateSequential {
                parent: path.clone(),
            };
            self.begin(xid, kind, true, None, now_ms);
            return create(xid, path, data.unwrap_or_default(), CreateMode::Persistent);
        }
        if std::mem::take(&mut self.ephemeral_due) {
            let path = format!("{EPH_PARENT}/s-{:016x}", self.session);
            let kind = Kind::CreateEphemeral { path: path.clone() };
            self.begin(xid, kind, false, None, now_ms);
            return create(xid, path, Bytes::new(), CreateMode::Ephemeral);
        }
        let (k, roll) = match self.refresh.take() {
            Some(k) => (k, 0),
            None => (rng.below(keys.len() as u64) as usize, rng.below(100)),
        };
        let key = keys.get(k).cloned().unwrap_or_default();
        let (kind, op, body) = if roll < 20 {
            let watch = roll < 10;
            let body = encode(GetDataRequest {
                path: key.clone(),
                watch,
            });
            let kind = if watch {
                Kind::WatchedRead { key }
            } else {
                Kind::Read { key }
            };
            (kind, OpCode::GetData, body)
        } else if roll < 25 {
            let body = encode(SyncRequest { path: key.clone() });
            (Kind::SyncRead { key }, OpCode::Sync, body)
        } else if roll < 85 {
            *values += 1;
            let value = *values;
            let (kind, version) = if roll < 50 {
                (
                    Kind::Write {
                        key: key.clone(),
                        value,
                    },
                    -1,
                )
            } else {
                let expected = self.seen.get(k).copied().unwrap_or(0);
                let kind = Kind::Cas {
                    key: key.clone(),
                    expected,
                    value,
                };
                (kind, expected)
            };
            let body = encode(SetDataRequest {
                path: key,
                data: Some(Bytes::from(value.to_string())),
                version,
            });
            (kind, OpCode::SetData, body)
        } else {
            let body = encode(CreateRequest {
                path: format!("{SEQ_PARENT}/n-"),
                data: Some(Bytes::new()),
                acl: Some(open_acl()),
                flags: CreateMode::PersistentSequential.code(),
            });
            let kind = Kind::CreateSequential {
                parent: SEQ_PARENT.into(),
            };
            (kind, OpCode::Create, body)
        };
        let key = match kind {
            Kind::CreateSequential { .. } => None,
            _ => Some(k),
        };
        self.begin(xid, kind, false, key, now_ms);
        Frame::Request {
            xid,
            op: op as i32,
            body,
        }
    }

    /// Makes `kind` the pending operation, sent now as request `xid`.
    fn begin(&mut self, xid: i32, kind: Kind, setup: bool, key: Option<usize>, now_ms: u64) {
        self.pending = Some(Pending {
            xid,
            kind,
            setup,
            session: self.session,
            invoke_ms: now_ms,
            key,
            synced: false,
        });
    }

    /// A frame from the member.
    pub(crate) fn on_frame(
        &mut self,
        bytes: &Bytes,
        now_ms: u64,
        history: &mut Vec<Op>,
    ) -> Reaction {
        let Some(conn) = self.conn.as_mut() else {
            return Reaction::None;
        };
        let mut r = Reader::new(bytes.slice(4.min(bytes.len())..));
        if !conn.ready {
            let Ok(response) = ConnectResponse::decode(&mut r) else {
                return Reaction::Expired;
            };
            if response.timeout <= 0 {
                // The session expired: the next connection starts a new one.
                self.session = 0;
                self.passwd = None;
                self.armed.clear();
                return Reaction::Expired;
            }
            conn.ready = true;
            let resumed = response.session_id == self.session;
            if !resumed {
                self.ephemeral_due = self.admin.is_none();
                self.armed.clear();
            }
            self.session = response.session_id;
            self.passwd = response.passwd;
            if resumed && !self.armed.is_empty() {
                // The watches go with the session to its new connection, as a client's
                // do: the member fires at once for a change after the last zxid seen.
                let keys = keys();
                let paths = self.armed.iter().filter_map(|k| keys.get(*k).cloned());
                let body = encode(SetWatches {
                    relative_zxid: self.last_zxid,
                    data_watches: Some(paths.collect()),
                    exist_watches: Some(Vec::new()),
                    child_watches: Some(Vec::new()),
                });
                return Reaction::Send(Frame::Request {
                    xid: xid::SET_WATCHES,
                    op: OpCode::SetWatches as i32,
                    body,
                });
            }
            return Reaction::Next;
        }
        let Ok(header) = ReplyHeader::decode(&mut r) else {
            return Reaction::None;
        };
        if header.xid == xid::NOTIFICATION {
            let Ok(event) = WatcherEvent::decode(&mut r) else {
                return Reaction::None;
            };
            if let Some(k) = keys().iter().position(|key| *key == event.path) {
                self.armed.remove(&k);
                history.push(Op {
                    session: self.session,
                    invoke: now_ms * 1_000_000,
                    complete: now_ms * 1_000_000,
                    kind: Kind::WatchEvent { key: event.path },
                    outcome: Outcome::Event { kind: event.r#type },
                });
            }
            return Reaction::None;
        }
        let Some(mut pending) = self.pending.take_if(|p| p.xid == header.xid) else {
            // A notification or a ping's reply.
            return Reaction::None;
        };
        if let (Kind::SyncRead { key }, false, 0) = (&pending.kind, pending.synced, header.err) {
            // The sync is answered: now the read, on the same connection.
            self.xid += 1;
            let body = encode(GetDataRequest {
                path: key.clone(),
                watch: false,
            });
            pending.xid = self.xid;
            pending.synced = true;
            self.pending = Some(pending);
            return Reaction::Send(Frame::Request {
                xid: self.xid,
                op: OpCode::GetData as i32,
                body,
            });
        }
        if header.zxid > 0 {
            self.last_zxid = self.last_zxid.max(header.zxid);
        }
        let expired = header.err == ErrorCode::SessionExpired as i32;
        let unknown = expired
            || header.err == ErrorCode::ConnectionLoss as i32
            || header.err == ErrorCode::OperationTimeout as i32
            || header.err == ErrorCode::SessionMoved as i32;
        if let Some(admin) = &mut self.admin {
            if let Some((_, after)) = admin.asked.take_if(|(x, _)| *x == pending.xid) {
                if header.err == 0 {
                    admin.removed = after;
                    admin.done += 1;
                }
            } else if header.err == 0 && pending.xid > 0 {
                // A read of /zookeeper/config: who is out, whatever an answer lost said.
                if let Ok(response) = GetDataResponse::decode(&mut r) {
                    let text =
                        String::from_utf8_lossy(response.data.as_deref().unwrap_or_default());
                    admin.removed =
                        (1..=admin.members).find(|sid| !text.contains(&format!("server.{sid}=")));
                }
            }
        }
        if pending.setup {
            if unknown {
                // Try the step again on the next connection (NodeExists is fine then).
                if let Kind::CreateSequential { parent } = pending.kind {
                    let register = parent.starts_with("/chaos/r");
                    self.setup.push((parent, register));
                }
            }
            return if expired {
                self.session = 0;
                self.passwd = None;
                Reaction::Expired
            } else {
                Reaction::Next
            };
        }
        let outcome = if unknown {
            Outcome::Unknown
        } else if header.err != 0 {
            if header.err == ErrorCode::BadVersion as i32 {
                self.refresh = pending.key;
            }
            Outcome::Fail { code: header.err }
        } else {
            match &pending.kind {
                Kind::Read { .. } | Kind::SyncRead { .. } | Kind::WatchedRead { .. } => {
                    match GetDataResponse::decode(&mut r) {
                        Ok(response) => Outcome::Ok {
                            version: response.stat.version,
                            value: parse_value(response.data.as_deref()),
                        },
                        Err(_) => Outcome::Unknown,
                    }
                }
                Kind::Write { value, .. } | Kind::Cas { value, .. } => {
                    match SetDataResponse::decode(&mut r) {
                        Ok(response) => Outcome::Ok {
                            version: response.stat.version,
                            value: *value,
                        },
                        Err(_) => Outcome::Unknown,
                    }
                }
                Kind::CreateSequential { .. } | Kind::CreateEphemeral { .. } => {
                    match CreateResponse::decode(&mut r) {
                        Ok(response) => Outcome::Created {
                            path: response.path,
                        },
                        Err(_) => Outcome::Unknown,
                    }
                }
                Kind::FinalRead { .. } | Kind::WatchEvent { .. } => Outcome::Unknown,
            }
        };
        if let (Kind::WatchedRead { .. }, Outcome::Ok { .. }, Some(k)) =
            (&pending.kind, &outcome, pending.key)
        {
            self.armed.insert(k);
        }
        if let (Outcome::Ok { version, .. }, Some(k)) = (&outcome, pending.key) {
            if let Some(seen) = self.seen.get_mut(k) {
                *seen = (*seen).max(*version);
            }
        }
        self.record(pending, now_ms, outcome, history);
        if expired {
            self.session = 0;
            self.passwd = None;
            return Reaction::Expired;
        }
        Reaction::Next
    }

    /// The client walks away from its session without closing it: the session expires
    /// on its own (and its ephemeral with it), and the next connection starts another.
    pub(crate) fn abandon(&mut self) {
        self.conn = None;
        self.armed.clear();
        self.session = 0;
        self.passwd = None;
    }

    /// The connection is gone: what was pending is unknown.
    pub(crate) fn lost(&mut self, now_ms: u64, history: &mut Vec<Op>) {
        self.conn = None;
        if let Some(pending) = self.pending.take() {
            if pending.setup {
                if let Kind::CreateSequential { parent } = pending.kind {
                    let register = parent.starts_with("/chaos/r");
                    self.setup.push((parent, register));
                }
                return;
            }
            self.record(pending, now_ms, Outcome::Unknown, history);
        }
    }

    /// Whether the pending operation, or the handshake, has waited too long.
    pub(crate) fn overdue(&self, now_ms: u64) -> bool {
        match (&self.conn, &self.pending) {
            (_, Some(p)) => now_ms >= p.invoke_ms + OP_TIMEOUT_MS,
            (Some(c), None) => !c.ready && now_ms >= c.since_ms + OP_TIMEOUT_MS,
            (None, None) => false,
        }
    }

    fn record(&self, pending: Pending, now_ms: u64, outcome: Outcome, history: &mut Vec<Op>) {
        history.push(Op {
            session: pending.session,
            invoke: pending.invoke_ms * 1_000_000,
            complete: now_ms * 1_000_000,
            kind: pending.kind,
            outcome,
        });
    }
}

/// A `create` request.
fn create(xid: i32, path: String, data: Bytes, mode: CreateMode) -> Frame {
    let body = encode(CreateRequest {
        path,
        data: Some(data),
        acl: Some(open_acl()),
        flags: mode.code(),
    });
    Frame::Request {
        xid,
        op: OpCode::Create as i32,
        body,
    }
}

/// A register's value: the decimal number it holds.
pub(crate) fn parse_value(data: Option<&[u8]>) -> u64 {
    data.and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|t| t.parse().ok())
        .unwrap_or(u64::MAX)
}
