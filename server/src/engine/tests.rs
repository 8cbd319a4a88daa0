//! Engine tests: no sockets, no tasks, a fake clock. Each drives an [`Engine`] through a
//! script of inputs and reads what it asks of the runtime.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use zk_datatree::{DataTree, TreeOptions};
use zk_jute::data::{Acl, Id};
use zk_jute::proto::{
    ConnectRequest, ConnectResponse, CreateRequest, CreateResponse, ExistsRequest, GetDataRequest,
    GetDataResponse, ReplyHeader, SetDataRequest, SetSaslResponse, SyncRequest, WatcherEvent,
};
use zk_jute::{CreateMode, ErrorCode, OpCode, Perms, Reader, Record, Zxid, xid};
use zk_persistence::LogEntry;

use super::{ConnId, Engine, Input, Now, Output, Role, password};
use crate::config::Config;

/// What the engine sent a connection.
#[derive(Debug)]
enum Sent {
    Connected(ConnectResponse),
    Reply(ReplyHeader, Bytes),
    Closed,
}

/// An engine, its fake clock, and what it asked for.
struct Script {
    engine: Engine,
    now: Now,
    /// Txns appended, not yet reported durable.
    appended: VecDeque<LogEntry>,
    /// Every txn appended, in order.
    log: Vec<LogEntry>,
    sent: Vec<(ConnId, Sent)>,
    snapshots: usize,
    rolls: usize,
    purges: usize,
    fatal: Option<String>,
    /// What a learner forwarded to its leader.
    forwarded: Vec<Bytes>,
    /// The `sync` tokens a learner asked its leader for.
    syncs: Vec<u64>,
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

fn create(path: &str, mode: CreateMode) -> Bytes {
    encode(CreateRequest {
        path: path.into(),
        data: Some(Bytes::from_static(b"v")),
        acl: Some(open_acl()),
        flags: mode.code(),
    })
}

fn addr() -> SocketAddr {
    "10.0.0.1:5000".parse().unwrap()
}

impl Script {
    fn new() -> Self {
        Self::standalone(Config::default())
    }

    /// A standalone engine on an empty tree.
    fn standalone(config: Config) -> Self {
        Self::with(
            config,
            DataTree::new(TreeOptions::default()),
            Role::Standalone,
        )
    }

    fn with(config: Config, tree: DataTree, commit: Role) -> Self {
        let now = Now {
            mono_us: 0,
            wall_ms: 1_700_000_000_000,
        };
        Self {
            engine: Engine::new(Arc::new(config), tree, now, commit),
            now,
            appended: VecDeque::new(),
            log: Vec::new(),
            sent: Vec::new(),
            snapshots: 0,
            rolls: 0,
            purges: 0,
            fatal: None,
            forwarded: Vec::new(),
            syncs: Vec::new(),
        }
    }

    fn input(&mut self, input: Input) {
        let mut out = Vec::new();
        self.engine.handle(self.now, input, &mut out);
        for output in out {
            match output {
                Output::Frame { conn, bytes } => {
                    let mut r = Reader::new(bytes.slice(4..));
                    let sent = if self.is_connecting(conn) {
                        Sent::Connected(ConnectResponse::decode(&mut r).unwrap())
                    } else {
                        let header = ReplyHeader::decode(&mut r).unwrap();
                        Sent::Reply(header, r.rest().clone())
                    };
                    self.sent.push((conn, sent));
                }
                Output::Close { conn } => self.sent.push((conn, Sent::Closed)),
                Output::Append(entry) => {
                    self.appended.push_back(entry.clone());
                    self.log.push(entry);
                }
                Output::Snapshot => self.snapshots += 1,
                Output::RollLog => self.rolls += 1,
                Output::Purge => self.purges += 1,
                Output::Fatal(reason) => self.fatal = Some(reason),
                Output::Forward(bytes) => self.forwarded.push(bytes),
                Output::Sync { token } => self.syncs.push(token),
            }
        }
    }

    /// Whether `conn` has not been answered its handshake yet.
    fn is_connecting(&self, conn: ConnId) -> bool {
        !self
            .sent
            .iter()
            .any(|(c, s)| *c == conn && matches!(s, Sent::Connected(_)))
    }

    fn advance(&mut self, ms: u64) {
        self.now.mono_us += ms * 1000;
        self.now.wall_ms += ms as i64;
    }

    /// The log reports everything appended durable.
    fn sync_log(&mut self) {
        if let Some(last) = self.appended.back() {
            let zxid = last.zxid();
            self.appended.clear();
            self.input(Input::Durable { zxid });
        }
    }

    fn connect_as(&mut self, conn: ConnId, session: i64, timeout: i32) {
        self.input(Input::Connect {
            conn,
            addr: addr(),
            request: ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0,
                timeout,
                session_id: session,
                passwd: Some(if session == 0 {
                    Bytes::from_static(&[0; 16])
                } else {
                    password(session)
                }),
                read_only: Some(false),
            },
            identities: Vec::new(),
        });
    }

    /// A new session on `conn`, established (its createSession durable).
    fn session(&mut self, conn: ConnId, timeout: i32) -> ConnectResponse {
        self.connect_as(conn, 0, timeout);
        self.sync_log();
        self.connected(conn).expect("the handshake is answered")
    }

    fn connected(&self, conn: ConnId) -> Option<ConnectResponse> {
        self.sent.iter().find_map(|(c, s)| match s {
            Sent::Connected(r) if *c == conn => Some(r.clone()),
            _ => None,
        })
    }

    fn request(&mut self, conn: ConnId, xid: i32, op: OpCode, body: Bytes) {
        self.input(Input::Request {
            conn,
            xid,
            op: op.code(),
            body,
        });
    }

    /// What `conn` was sent, in order, as (xid, zxid, err) or a close; forgets it.
    fn take(&mut self, conn: ConnId) -> Vec<(i32, i64, i32)> {
        let mut taken = Vec::new();
        self.sent.retain(|(c, s)| {
            if *c != conn {
                return true;
            }
            match s {
                Sent::Reply(h, _) => taken.push((h.xid, h.zxid, h.err)),
                Sent::Closed => taken.push((0, 0, i32::MIN)),
                Sent::Connected(_) => return true,
            }
            false
        });
        taken
    }

    fn closed(&self, conn: ConnId) -> bool {
        self.sent
            .iter()
            .any(|(c, s)| *c == conn && matches!(s, Sent::Closed))
    }

    fn body_of(&self, conn: ConnId, xid: i32) -> Bytes {
        self.sent
            .iter()
            .find_map(|(c, s)| match s {
                Sent::Reply(h, body) if *c == conn && h.xid == xid => Some(body.clone()),
                _ => None,
            })
            .expect("a reply")
    }
}

const CLOSED: (i32, i64, i32) = (0, 0, i32::MIN);

#[test]
fn a_session_is_answered_once_its_txn_is_durable_with_the_timeout_negotiated() {
    let mut s = Script::new();
    s.connect_as(1, 0, 100);
    assert!(
        s.connected(1).is_none(),
        "not before createSession is durable"
    );
    assert_eq!(s.log.len(), 1);
    assert_eq!(s.log[0].header.r#type, OpCode::CreateSession.code());
    s.sync_log();
    let response = s.connected(1).unwrap();
    assert_eq!(
        response.timeout, 4_000,
        "raised to minSessionTimeout (2 ticks)"
    );
    assert_eq!(response.session_id, s.log[0].header.client_id);
    assert_eq!(response.passwd, Some(password(response.session_id)));
    let long = s.session(2, 1_000_000);
    assert_eq!(
        long.timeout, 40_000,
        "lowered to maxSessionTimeout (20 ticks)"
    );
    assert_eq!(long.session_id, response.session_id + 1);
    assert_eq!(s.engine.tree().sessions().len(), 2);
}

#[test]
fn requests_sent_before_the_handshake_is_answered_wait_and_keep_their_order() {
    let mut s = Script::new();
    s.connect_as(1, 0, 10_000);
    s.request(1, 1, OpCode::Create, create("/a", CreateMode::Persistent));
    s.request(
        1,
        2,
        OpCode::Exists,
        encode(ExistsRequest {
            path: "/a".into(),
            watch: false,
        }),
    );
    assert_eq!(s.log.len(), 1, "only createSession so far");
    s.sync_log(); // the session: its held requests go now
    assert_eq!(s.log.len(), 2);
    assert!(s.take(1).is_empty(), "the read waits behind the write");
    s.sync_log();
    let zxid = s.log[1].zxid();
    assert_eq!(s.take(1), vec![(1, zxid, 0), (2, zxid, 0)]);
}

#[test]
fn a_read_waits_only_behind_its_own_connections_writes() {
    let mut s = Script::new();
    s.session(1, 10_000);
    s.session(2, 10_000);
    s.request(1, 1, OpCode::Create, create("/a", CreateMode::Persistent));
    s.request(
        1,
        2,
        OpCode::GetData,
        encode(GetDataRequest {
            path: "/a".into(),
            watch: false,
        }),
    );
    s.request(
        2,
        1,
        OpCode::Exists,
        encode(ExistsRequest {
            path: "/a".into(),
            watch: false,
        }),
    );
    // Connection 2 is answered from the tree as it is: /a is not there yet.
    assert_eq!(s.take(2), vec![(1, 2, ErrorCode::NoNode.code())]);
    assert!(s.take(1).is_empty());
    assert_eq!(s.engine.outstanding(), 2);
    s.sync_log();
    let data = GetDataResponse::decode(&mut Reader::new(s.body_of(1, 2))).unwrap();
    assert_eq!(data.data.as_deref(), Some(&b"v"[..]));
    assert_eq!(s.take(1), vec![(1, 3, 0), (2, 3, 0)]);
    assert_eq!(s.engine.outstanding(), 0);
}

#[test]
fn a_watch_event_carries_its_zxid_and_goes_before_the_writers_reply() {
    let mut s = Script::new();
    s.session(1, 10_000);
    s.request(1, 1, OpCode::Create, create("/w", CreateMode::Persistent));
    s.sync_log();
    s.request(
        1,
        2,
        OpCode::Exists,
        encode(ExistsRequest {
            path: "/w".into(),
            watch: true,
        }),
    );
    s.request(
        1,
        3,
        OpCode::SetData,
        encode(SetDataRequest {
            path: "/w".into(),
            data: Some(Bytes::from_static(b"x")),
            version: -1,
        }),
    );
    s.sync_log();
    let zxid = s.log.last().unwrap().zxid();
    let event = s.body_of(1, xid::NOTIFICATION);
    let event = WatcherEvent::decode(&mut Reader::new(event)).unwrap();
    assert_eq!((event.r#type, event.path.as_str()), (3, "/w")); // NodeDataChanged
    let sent = s.take(1);
    assert_eq!(sent[2..], [(xid::NOTIFICATION, zxid, 0), (3, zxid, 0)]);
}

#[test]
fn replies_are_matched_by_session_and_cxid() {
    // Writes of two sessions, made durable together, answer each its own requester.
    let mut s = Script::new();
    s.session(1, 10_000);
    s.session(2, 10_000);
    s.request(2, 7, OpCode::Create, create("/b", CreateMode::Persistent));
    s.request(1, 7, OpCode::Create, create("/a", CreateMode::Persistent));
    s.sync_log();
    let a = CreateResponse::decode(&mut Reader::new(s.body_of(1, 7))).unwrap();
    let b = CreateResponse::decode(&mut Reader::new(s.body_of(2, 7))).unwrap();
    assert_eq!((a.path.as_str(), b.path.as_str()), ("/a", "/b"));
}

#[test]
fn sessions_expire_by_tick_buckets_and_their_ephemerals_go() {
    let mut s = Script::new();
    let session = s.session(1, 4_000).session_id;
    s.request(1, 1, OpCode::Create, create("/e", CreateMode::Ephemeral));
    s.sync_log();
    s.input(Input::Closed { conn: 1 });
    // Created at 0 with 4000 ms: due in the bucket of 6000 (the next tick multiple).
    s.advance(5_999);
    s.input(Input::Tick);
    assert_eq!(s.appended.len(), 0, "not yet");
    s.advance(1);
    s.input(Input::Tick);
    let close = s.log.last().unwrap().header.clone();
    assert_eq!(close.r#type, OpCode::CloseSession.code());
    assert_eq!(close.client_id, session);
    assert!(
        s.engine.tree().node("/e").is_some(),
        "until the close is durable"
    );
    s.sync_log();
    assert!(s.engine.tree().node("/e").is_none());
    assert!(s.engine.tree().sessions().is_empty());
    s.advance(10_000);
    s.input(Input::Tick);
    assert!(s.appended.is_empty(), "expired once");
}

#[test]
fn requests_keep_a_session_alive() {
    let mut s = Script::new();
    s.session(1, 4_000);
    for _ in 0..10 {
        s.advance(3_000);
        s.request(1, xid::PING, OpCode::Ping, Bytes::new());
        s.input(Input::Tick);
    }
    assert_eq!(s.log.len(), 1, "only createSession: never expired");
    assert!(!s.closed(1));
}

#[test]
fn a_session_resumes_on_another_connection_which_closes_the_old_one() {
    let mut s = Script::new();
    let first = s.session(1, 10_000);
    s.connect_as(2, first.session_id, 10_000);
    let resumed = s.connected(2).unwrap();
    assert_eq!(resumed.session_id, first.session_id);
    assert_eq!(resumed.timeout, 10_000);
    assert!(s.closed(1), "the old connection is closed");
    assert_eq!(s.log.len(), 1, "no txn to resume");
    // A wrong password, or a session that is gone, gets timeout 0 and a close.
    s.input(Input::Connect {
        conn: 3,
        addr: addr(),
        request: ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout: 10_000,
            session_id: first.session_id,
            passwd: Some(Bytes::from_static(&[1; 16])),
            read_only: None,
        },
        identities: Vec::new(),
    });
    assert_eq!(s.connected(3).unwrap().timeout, 0);
    assert!(s.closed(3));
    s.connect_as(4, 0x77, 10_000);
    assert_eq!(s.connected(4).unwrap().session_id, 0);
}

#[test]
fn a_client_that_has_seen_a_later_zxid_is_refused() {
    let mut s = Script::new();
    s.input(Input::Connect {
        conn: 1,
        addr: addr(),
        request: ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 5,
            timeout: 10_000,
            session_id: 0,
            passwd: None,
            read_only: None,
        },
        identities: Vec::new(),
    });
    assert!(s.closed(1));
    assert!(s.log.is_empty());
}

#[test]
fn close_session_answers_then_closes() {
    let mut s = Script::new();
    s.session(1, 10_000);
    s.request(1, 5, OpCode::CloseSession, Bytes::new());
    assert!(!s.closed(1));
    s.sync_log();
    let zxid = s.log.last().unwrap().zxid();
    assert_eq!(s.take(1), vec![(5, zxid, 0), CLOSED]);
    assert!(s.engine.tree().sessions().is_empty());
}

#[test]
fn with_a_leader_durable_is_not_committed_and_sync_waits_for_the_commit() {
    let mut s = Script::with(
        Config::default(),
        DataTree::new(TreeOptions::default()),
        Role::Leader,
    );
    s.connect_as(1, 0, 10_000);
    s.sync_log();
    assert!(s.connected(1).is_none(), "durable here is not committed");
    s.input(Input::Committed { zxid: 1 });
    assert!(s.connected(1).is_some());
    s.connect_as(2, 0, 10_000);
    s.sync_log();
    s.input(Input::Committed { zxid: 2 });
    assert!(s.connected(2).is_some());
    s.request(1, 1, OpCode::Create, create("/a", CreateMode::Persistent));
    s.request(2, 1, OpCode::Sync, encode(SyncRequest { path: "/".into() }));
    s.sync_log();
    assert!(
        s.take(2).is_empty(),
        "the sync waits for the write before it"
    );
    s.input(Input::Committed { zxid: 3 });
    assert_eq!(s.take(1), vec![(1, 3, 0)]);
    assert_eq!(s.take(2), vec![(1, 3, 0)]);
    assert_eq!(s.engine.outstanding(), 0);
}

#[test]
fn a_spent_epoch_rolls_over_to_the_next() {
    let mut tree = DataTree::new(TreeOptions::default());
    tree.set_last_zxid(Zxid::new(1, 0xffff_fffe).0);
    let mut s = Script::with(Config::default(), tree, Role::Standalone);
    s.session(1, 10_000);
    assert_eq!(s.log[0].zxid(), Zxid::new(2, 1).0);
    assert_eq!(s.engine.tree().last_zxid(), Zxid::new(2, 1).0);
}

#[test]
fn a_failed_log_or_a_watermark_going_back_is_fatal() {
    let mut s = Script::new();
    s.session(1, 10_000);
    s.request(1, 1, OpCode::Create, create("/a", CreateMode::Persistent));
    s.input(Input::Durable { zxid: 0 });
    assert!(
        s.fatal.as_deref().unwrap().contains("durable"),
        "{:?}",
        s.fatal
    );
    // Stopped: nothing more is answered.
    s.input(Input::Durable { zxid: 2 });
    assert!(s.take(1).is_empty());

    let mut s = Script::new();
    s.session(1, 10_000);
    s.input(Input::LogFailed {
        error: "disk full".into(),
    });
    assert!(s.fatal.as_deref().unwrap().contains("disk full"));
    let mut s = Script::new();
    s.input(Input::Durable { zxid: 9 });
    assert!(s.fatal.is_some(), "durable beyond what was appended");
}

#[test]
fn snapshots_follow_snap_count_one_at_a_time() {
    let config = Config {
        snap_count: 4,
        ..Config::default()
    };
    let mut s = Script::standalone(config);
    s.session(1, 10_000);
    let creates = |s: &mut Script, range: std::ops::Range<i32>| {
        for i in range {
            let path = format!("/n{i}");
            s.request(
                1,
                i + 1,
                OpCode::Create,
                create(&path, CreateMode::Persistent),
            );
            s.sync_log();
        }
    };
    creates(&mut s, 0..20);
    assert_eq!(s.snapshots, 1, "not another while one is being taken");
    s.input(Input::SnapshotDone { zxid: 5, ok: true });
    creates(&mut s, 20..30);
    assert_eq!(s.snapshots, 2);

    // With `snapCount=2` one is due every second txn. One due while another is being
    // taken is skipped and the count starts over, as ZooKeeper does: the first txn after
    // the snapshot ends does not start the next at once.
    let config = Config {
        snap_count: 2,
        ..Config::default()
    };
    let mut s = Script::standalone(config);
    s.session(1, 10_000);
    // With the session's, 20 txns: one snapshot at the second, nine skipped after it,
    // each rolling the log all the same.
    creates(&mut s, 0..19);
    assert_eq!(s.snapshots, 1);
    assert_eq!(s.rolls, 9, "a skipped snapshot rolls the log");
    s.input(Input::SnapshotDone { zxid: 2, ok: true });
    creates(&mut s, 19..20);
    assert_eq!(
        s.snapshots, 1,
        "the count started over at the last one skipped"
    );
    creates(&mut s, 20..21);
    assert_eq!(s.snapshots, 2);
}

#[test]
fn a_bad_write_body_is_logged_as_an_error_txn_and_answered_with_it() {
    let mut s = Script::new();
    s.session(1, 10_000);
    s.request(1, 1, OpCode::Create, Bytes::from_static(&[0, 0]));
    s.sync_log();
    assert_eq!(s.log.last().unwrap().header.r#type, OpCode::Error.code());
    let zxid = s.log.last().unwrap().zxid();
    assert_eq!(
        s.take(1),
        vec![(1, zxid, ErrorCode::MarshallingError.code())]
    );
}

#[test]
fn auth_failure_closes_the_connection() {
    let mut s = Script::new();
    s.session(1, 10_000);
    let packet = zk_jute::proto::AuthPacket {
        r#type: 0,
        scheme: "nonesuch".into(),
        auth: Some(Bytes::from_static(b"x")),
    };
    s.request(1, xid::AUTH, OpCode::Auth, encode(packet));
    assert_eq!(
        s.take(1),
        vec![(xid::AUTH, 0, ErrorCode::AuthFailed.code()), CLOSED]
    );
}

#[test]
fn the_log_carries_the_digest_the_tree_reaches() {
    let mut s = Script::new();
    s.session(1, 10_000);
    s.request(1, 1, OpCode::Create, create("/a", CreateMode::Persistent));
    s.request(1, 2, OpCode::Create, create("/a/b", CreateMode::Ephemeral));
    s.sync_log();
    let entry = s.log.last().unwrap();
    let mut body = Reader::new(entry.body.clone());
    let _ = zk_datatree::Transaction::read(entry.header.r#type, &mut body).unwrap();
    let digest = zk_jute::txn::TxnDigest::decode(&mut body).unwrap();
    assert_eq!(digest.tree_digest, s.engine.tree().digest() as i64);
    assert!(s.fatal.is_none());
}

#[test]
fn empty_containers_go_at_the_check_interval_within_the_rate() {
    let config = Config {
        container_check_interval: std::time::Duration::from_secs(1),
        // One a second at most: one per check.
        container_max_per_minute: 60,
        ..Config::default()
    };
    let mut s = Script::standalone(config);
    s.session(1, 10_000);
    for (xid, path) in [(1, "/c1"), (2, "/c2")] {
        s.request(
            1,
            xid,
            OpCode::CreateContainer,
            create(path, CreateMode::Container),
        );
        let child = format!("{path}/x");
        s.request(
            1,
            xid + 10,
            OpCode::Create,
            create(&child, CreateMode::Persistent),
        );
        let delete = zk_jute::proto::DeleteRequest {
            path: child,
            version: -1,
        };
        s.request(1, xid + 20, OpCode::Delete, encode(delete));
    }
    s.sync_log();
    let deletes = |s: &Script| {
        s.log
            .iter()
            .filter(|e| e.header.r#type == OpCode::DeleteContainer.code())
            .count()
    };
    s.advance(999);
    s.input(Input::Tick);
    assert_eq!(deletes(&s), 0, "not checked yet");
    s.advance(1);
    s.input(Input::Tick);
    assert_eq!(deletes(&s), 1, "one this check: the rate allows no more");
    s.sync_log();
    s.advance(1_000);
    s.input(Input::Tick);
    s.sync_log();
    assert_eq!(deletes(&s), 2);
    assert!(s.engine.tree().node("/c1").is_none() && s.engine.tree().node("/c2").is_none());
}

/// A leader's and a learner's engines, with what Zab would do between them done by hand:
/// a learner's forwarded writes reach the leader, the leader's appends are committed (as a
/// quorum would) and delivered to the learner in order, and a learner's sync is answered.
struct Pair {
    leader: Script,
    learner: Script,
    /// Txns the leader appended and the quorum has not committed yet.
    proposed: Vec<LogEntry>,
    syncs: Vec<u64>,
}

impl Pair {
    fn new() -> Self {
        let tree = || DataTree::new(TreeOptions::default());
        let learner_config = Config {
            server_id: 2,
            ..Config::default()
        };
        Self {
            leader: Script::with(Config::default(), tree(), Role::Leader),
            learner: Script::with(learner_config, tree(), Role::Learner),
            proposed: Vec::new(),
            syncs: Vec::new(),
        }
    }

    /// Carries the learner's forwarded writes to the leader.
    fn forward(&mut self) {
        for bytes in std::mem::take(&mut self.learner.forwarded) {
            self.leader.input(Input::Forwarded(bytes));
        }
        self.syncs.append(&mut self.learner.syncs);
        self.proposed.extend(self.leader.appended.drain(..));
    }

    /// The quorum commits everything proposed: the leader applies its own, the learner is
    /// delivered each txn.
    fn commit(&mut self) {
        self.forward();
        let Some(last) = self.proposed.last().map(LogEntry::zxid) else {
            return;
        };
        self.leader.input(Input::Committed { zxid: last });
        for entry in std::mem::take(&mut self.proposed) {
            self.learner.input(Input::Deliver(entry));
        }
    }
}

#[test]
fn a_learner_forwards_writes_and_answers_its_client_when_they_are_delivered() {
    let mut p = Pair::new();
    // A session opened on the learner is created by the leader.
    p.learner.connect_as(1, 0, 10_000);
    assert!(p.learner.log.is_empty(), "a learner prepares nothing");
    p.forward();
    assert_eq!(p.proposed.len(), 1);
    let session = p.proposed[0].header.client_id;
    assert_eq!(session >> 56, 2, "its id is the learner's, as ZooKeeper's");
    assert!(p.learner.connected(1).is_none());
    p.commit();
    assert_eq!(p.learner.connected(1).unwrap().session_id, session);
    assert_eq!(p.leader.engine.tree().sessions().len(), 1);
    assert_eq!(p.learner.engine.tree().sessions().len(), 1);

    // A watch set on the leader by a client of its own fires for the learner's write.
    p.leader.connect_as(9, 0, 10_000);
    p.commit();
    assert!(p.leader.connected(9).is_some());
    p.leader.request(
        9,
        1,
        OpCode::Exists,
        encode(ExistsRequest {
            path: "/a".into(),
            watch: true,
        }),
    );
    p.learner
        .request(1, 5, OpCode::Create, create("/a", CreateMode::Ephemeral));
    p.learner.request(
        1,
        6,
        OpCode::GetData,
        encode(GetDataRequest {
            path: "/a".into(),
            watch: false,
        }),
    );
    p.forward();
    assert!(p.learner.take(1).is_empty(), "answered once delivered");
    p.commit();
    let zxid = p.learner.engine.tree().last_zxid();
    assert_eq!(p.learner.take(1), vec![(5, zxid, 0), (6, zxid, 0)]);
    let leader_sent = p.leader.take(9);
    assert!(
        leader_sent.contains(&(xid::NOTIFICATION, zxid, 0)),
        "{leader_sent:?}"
    );
    assert_eq!(
        p.leader.engine.tree().digest(),
        p.learner.engine.tree().digest()
    );

    // A write that fails on the leader is answered with its error on the learner.
    p.learner
        .request(1, 7, OpCode::Create, create("/a", CreateMode::Persistent));
    p.commit();
    let zxid = p.learner.engine.tree().last_zxid();
    assert_eq!(
        p.learner.take(1),
        vec![(7, zxid, ErrorCode::NodeExists.code())]
    );

    // sync goes through the leader; closing the session too, and its ephemeral goes on
    // both.
    p.learner
        .request(1, 8, OpCode::Sync, encode(SyncRequest { path: "/".into() }));
    p.forward();
    assert!(p.learner.take(1).is_empty());
    let token = p.syncs.pop().unwrap();
    p.learner.input(Input::Synced { token });
    assert_eq!(p.learner.take(1), vec![(8, zxid, 0)]);
    p.learner.request(1, 9, OpCode::CloseSession, Bytes::new());
    p.commit();
    let zxid = p.learner.engine.tree().last_zxid();
    assert_eq!(p.learner.take(1), vec![(9, zxid, 0), CLOSED]);
    assert!(p.leader.engine.tree().node("/a").is_none());
    assert!(p.learner.engine.tree().node("/a").is_none());
    assert_eq!(
        p.learner.engine.tree().sessions().len(),
        1,
        "the leader's own"
    );
}

#[test]
fn a_learner_neither_expires_sessions_nor_accepts_garbage_from_its_peers() {
    let mut p = Pair::new();
    p.learner.connect_as(1, 0, 4_000);
    p.commit();
    p.learner.input(Input::Closed { conn: 1 });
    p.learner.advance(60_000);
    p.learner.input(Input::Tick);
    assert!(
        p.learner.forwarded.is_empty(),
        "the leader expires sessions"
    );
    // A forwarded request that does not decode is refused with a log line.
    p.leader
        .input(Input::Forwarded(Bytes::from_static(b"junk")));
    assert!(p.leader.appended.is_empty() && p.leader.fatal.is_none());
    // The leader does expire it, and the learner learns it from the delivered close.
    p.leader.advance(60_000);
    p.leader.input(Input::Tick);
    p.commit();
    assert!(p.learner.engine.tree().sessions().is_empty());
}

#[test]
fn enforced_authentication_closes_a_connection_that_has_not_authenticated() {
    let config = Config {
        enforce_auth_schemes: vec!["digest".into()],
        ..Config::default()
    };
    let mut s = Script::standalone(config.clone());
    s.session(1, 10_000);
    let exists = || {
        encode(ExistsRequest {
            path: "/".into(),
            watch: false,
        })
    };
    s.request(1, 1, OpCode::Exists, exists());
    let refused = ErrorCode::SessionClosedRequireSaslAuth.code();
    assert_eq!(s.take(1), vec![(1, 0, refused), CLOSED]);

    let mut s = Script::standalone(config);
    s.session(1, 10_000);
    let packet = zk_jute::proto::AuthPacket {
        r#type: 0,
        scheme: "digest".into(),
        auth: Some(Bytes::from_static(b"alice:secret")),
    };
    s.request(1, xid::AUTH, OpCode::Auth, encode(packet));
    s.request(1, 2, OpCode::Exists, exists());
    assert_eq!(s.take(1), vec![(xid::AUTH, 0, 0), (2, 1, 0)]);
}

#[test]
fn sasl_digest_md5_authenticates_a_connection_as_its_user() {
    let config = Config {
        enforce_auth_schemes: vec!["sasl".into()],
        sasl_required: true,
        sasl_users: Some([("bob".to_owned(), "b0b".to_owned())].into()),
        sasl_super_users: vec!["bob".into()],
        ..Config::default()
    };
    let uri = "zookeeper/zk-sasl-md5";
    let sasl = |token: &[u8]| {
        encode(zk_jute::proto::SetSaslRequest {
            token: Some(Bytes::copy_from_slice(token)),
        })
    };
    // The token of the last reply to `conn`.
    let last_token = |s: &mut Script, conn: ConnId| -> Vec<u8> {
        let Some((_, Sent::Reply(_, body))) = s.sent.iter().rev().find(|(c, _)| *c == conn) else {
            panic!("no reply");
        };
        let answer = SetSaslResponse::decode(&mut Reader::new(body.clone())).unwrap();
        answer.token.unwrap_or_default().to_vec()
    };
    let nonce_of = |challenge: &[u8]| -> String {
        let text = String::from_utf8(challenge.to_vec()).unwrap();
        let at = text.find("nonce=\"").unwrap() + 7;
        text[at..at + text[at..].find('"').unwrap()].to_owned()
    };
    let mut s = Script::standalone(config.clone());
    s.session(1, 10_000);
    s.request(1, 1, OpCode::Sasl, sasl(b""));
    let nonce = nonce_of(&last_token(&mut s, 1));
    s.request(
        1,
        2,
        OpCode::Sasl,
        sasl(&crate::sasl::client_response("bob", "b0b", &nonce, uri)),
    );
    assert!(last_token(&mut s, 1).starts_with(b"rspauth="));
    // Authenticated with the enforced scheme: served; `super` too (zookeeper.superUser).
    let exists = encode(ExistsRequest {
        path: "/".into(),
        watch: false,
    });
    s.request(1, 3, OpCode::Exists, exists.clone());
    assert_eq!(s.take(1), vec![(1, 0, 0), (2, 0, 0), (3, 1, 0)]);
    let conn = &s.engine.conns[&1];
    assert!(
        conn.auth
            .iter()
            .any(|id| id.scheme == "sasl" && id.id == "bob")
    );
    assert!(conn.auth.iter().any(|id| id.scheme == "super"));
    // whoAmI names a SASL user only with the SASL provider registered (ZooKeeper's
    // AuthUtil): none is here, so the user is empty, as `super`'s always is.
    s.request(1, 4, OpCode::WhoAmI, Bytes::new());
    let Some((_, Sent::Reply(_, body))) = s.sent.iter().rev().find(|(c, _)| *c == 1) else {
        panic!("no whoAmI reply");
    };
    let who = zk_jute::proto::WhoAmIResponse::decode(&mut Reader::new(body.clone())).unwrap();
    let users: Vec<(String, String)> = who
        .client_info
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.auth_scheme, i.user))
        .collect();
    assert!(users.contains(&("sasl".into(), String::new())), "{users:?}");
    assert!(
        users.contains(&("super".into(), String::new())),
        "{users:?}"
    );
    s.take(1);

    // A wrong password: SessionClosedRequireSaslAuth (SASL is required), then closed.
    s.session(2, 10_000);
    s.request(2, 1, OpCode::Sasl, sasl(b""));
    let nonce = nonce_of(&last_token(&mut s, 2));
    s.request(
        2,
        2,
        OpCode::Sasl,
        sasl(&crate::sasl::client_response("bob", "guess", &nonce, uri)),
    );
    let refused = ErrorCode::SessionClosedRequireSaslAuth.code();
    assert_eq!(s.take(2), vec![(1, 0, 0), (2, 0, refused), CLOSED]);
    // Without SASL required, a failure is AuthFailed.
    let optional = Config {
        enforce_auth_schemes: Vec::new(),
        sasl_required: false,
        ..config
    };
    let mut s = Script::standalone(optional);
    s.session(1, 10_000);
    s.request(1, 1, OpCode::Sasl, sasl(b"not empty at first"));
    assert_eq!(
        s.take(1),
        vec![(1, 0, ErrorCode::AuthFailed.code()), CLOSED]
    );
}

#[test]
fn a_member_that_stops_serving_closes_its_connections_and_refuses_new_ones() {
    let mut p = Pair::new();
    p.learner.connect_as(1, 0, 10_000);
    p.commit();
    let session = p.learner.connected(1).unwrap().session_id;
    // The leader is lost: the learner looks for another and serves nobody meanwhile.
    let mut out = Vec::new();
    p.learner
        .engine
        .set_role(Role::Learner, false, None, &mut out);
    assert!(
        matches!(out.as_slice(), [Output::Close { conn: 1 }]),
        "{out:?}"
    );
    p.learner.connect_as(2, session, 10_000);
    assert!(p.learner.closed(2) && p.learner.connected(2).is_none());
    // Synced again, it takes the session back: sessions outlive the members' roles.
    p.learner
        .engine
        .set_role(Role::Learner, true, None, &mut Vec::new());
    p.learner.connect_as(3, session, 10_000);
    assert_eq!(p.learner.connected(3).unwrap().session_id, session);
}

#[test]
fn a_learners_touches_keep_its_sessions_alive_on_the_leader() {
    let mut p = Pair::new();
    p.learner.connect_as(1, 0, 4_000);
    p.commit();
    let session = p.learner.connected(1).unwrap().session_id;
    // The client pings the learner; the learner's next ping carries the session.
    for _ in 0..10 {
        p.learner.advance(1_000);
        p.leader.advance(1_000);
        p.learner.request(1, xid::PING, OpCode::Ping, Bytes::new());
        let touches = p.learner.engine.take_touches();
        assert_eq!(touches, vec![(session, 4_000)]);
        p.leader
            .input(Input::Touched(touches.iter().map(|t| t.0).collect()));
        p.leader.input(Input::Tick);
        assert!(p.leader.appended.is_empty(), "the session is kept alive");
    }
    assert!(p.learner.engine.take_touches().is_empty());
    // Without touches the leader expires it.
    p.leader.advance(10_000);
    p.leader.input(Input::Tick);
    p.commit();
    assert!(p.learner.engine.tree().sessions().is_empty());
}

#[test]
fn a_new_leader_numbers_txns_in_its_epoch_and_times_sessions_afresh() {
    let mut p = Pair::new();
    p.learner.connect_as(1, 0, 4_000);
    p.commit();
    // The learner becomes the leader of epoch 2; the old leader is gone.
    let mut out = Vec::new();
    p.learner
        .engine
        .set_role(Role::Leader, true, Some(Zxid::new(2, 1)), &mut out);
    assert!(matches!(out.as_slice(), [Output::Close { conn: 1 }]));
    let session = p
        .learner
        .engine
        .tree()
        .sessions()
        .keys()
        .copied()
        .next()
        .unwrap();
    // The session is not expired at once, though it was never touched here.
    p.learner.advance(3_000);
    p.learner.input(Input::Tick);
    assert!(p.learner.appended.is_empty());
    p.learner.connect_as(2, session, 4_000);
    p.learner
        .request(2, 1, OpCode::Create, create("/x", CreateMode::Persistent));
    let entry = p.learner.appended.pop_front().expect("prepared here now");
    assert_eq!(entry.zxid(), Zxid::new(2, 1).0);
    p.learner.input(Input::Committed { zxid: entry.zxid() });
    assert_eq!(p.learner.take(2), vec![(1, Zxid::new(2, 1).0, 0)]);
}

#[test]
fn a_read_only_member_serves_reads_to_read_only_sessions_alone() {
    let mut p = Pair::new();
    p.learner.connect_as(1, 0, 10_000);
    p.learner
        .request(1, 1, OpCode::Create, create("/x", CreateMode::Persistent));
    p.commit();
    p.commit();
    assert_eq!(
        p.learner.take(1),
        vec![(1, p.learner.engine.tree().last_zxid(), 0)]
    );
    // The quorum is lost; after the grace period the member serves read-only clients.
    let mut out = Vec::new();
    p.learner
        .engine
        .set_role(Role::Learner, false, None, &mut out);
    p.learner.engine.set_read_only(true, &mut out);
    p.learner.connect_as(2, 0, 10_000);
    assert!(
        p.learner.closed(2),
        "a client that did not ask is turned away"
    );
    let mut request = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout: 10_000,
        session_id: 0,
        passwd: Some(Bytes::from_static(&[0; 16])),
        read_only: Some(true),
    };
    p.learner.input(Input::Connect {
        conn: 3,
        addr: addr(),
        request: request.clone(),
        identities: Vec::new(),
    });
    let answer = p.learner.connected(3).expect("answered at once, no txn");
    assert_eq!(answer.read_only, Some(true));
    assert!(p.learner.forwarded.is_empty());
    let get = encode(GetDataRequest {
        path: "/x".into(),
        watch: false,
    });
    p.learner.request(3, 1, OpCode::GetData, get);
    p.learner
        .request(3, 2, OpCode::Create, create("/y", CreateMode::Persistent));
    p.learner
        .request(3, 3, OpCode::Sync, encode(SyncRequest { path: "/".into() }));
    let replies = p.learner.take(3);
    let not_read_only = ErrorCode::NotReadOnly.code();
    assert_eq!(
        replies.iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(),
        vec![(1, 0), (2, not_read_only), (3, not_read_only)]
    );
    // A global session resumes read-only too.
    let global = p.learner.connected(1).unwrap().session_id;
    request.session_id = global;
    request.passwd = Some(password(global));
    p.learner.input(Input::Connect {
        conn: 4,
        addr: addr(),
        request,
        identities: Vec::new(),
    });
    assert_eq!(p.learner.connected(4).unwrap().session_id, global);
    // Synced again: read-only connections close, and the local session is gone.
    let local = answer.session_id;
    let mut out = Vec::new();
    p.learner
        .engine
        .set_role(Role::Learner, true, None, &mut out);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(!p.learner.engine.session_is_open(local));
    assert!(p.learner.engine.session_is_open(global));
}

#[test]
fn local_sessions_live_on_their_member_until_an_ephemeral_upgrades_them() {
    let mut p = Pair::new();
    let config = Config {
        server_id: 2,
        local_sessions_enabled: true,
        ..Config::default()
    };
    let tree = DataTree::new(TreeOptions::default());
    p.learner = Script::with(config.clone(), tree, Role::Learner);
    // A local session: answered at once, no txn, nothing forwarded.
    p.learner.connect_as(1, 0, 4_000);
    let session = p.learner.connected(1).expect("answered at once").session_id;
    assert!(p.learner.forwarded.is_empty());
    // Its persistent writes go through the leader like any other.
    p.learner
        .request(1, 1, OpCode::Create, create("/p", CreateMode::Persistent));
    p.commit();
    assert_eq!(p.learner.take(1).len(), 1);
    // Without upgrading, an ephemeral is refused.
    p.learner
        .request(1, 2, OpCode::Create, create("/e", CreateMode::Ephemeral));
    assert_eq!(
        p.learner.take(1),
        vec![(
            2,
            p.learner.engine.tree().last_zxid(),
            ErrorCode::EphemeralOnLocalSession.code()
        )]
    );
    assert!(p.learner.forwarded.is_empty());
    // It expires on its member, with no txn; its touches never reach the leader.
    assert!(p.learner.engine.take_touches().is_empty());
    p.learner.advance(10_000);
    p.learner.input(Input::Tick);
    assert!(p.learner.closed(1));
    assert!(!p.learner.engine.session_is_open(session));
    assert!(p.learner.forwarded.is_empty());

    // With upgrading, the ephemeral's create follows a createSession txn.
    let upgrading = Config {
        local_sessions_upgrading_enabled: true,
        ..config
    };
    let mut p = Pair::new();
    let tree = DataTree::new(TreeOptions::default());
    p.learner = Script::with(upgrading, tree, Role::Learner);
    p.learner.connect_as(2, 0, 4_000);
    let session = p.learner.connected(2).unwrap().session_id;
    p.learner
        .request(2, 1, OpCode::Create, create("/e", CreateMode::Ephemeral));
    p.forward();
    assert_eq!(p.proposed.len(), 2);
    assert_eq!(p.proposed[0].header.r#type, OpCode::CreateSession.code());
    assert_eq!(p.proposed[0].header.client_id, session);
    p.commit();
    assert_eq!(p.learner.take(2).len(), 1);
    assert!(p.leader.engine.tree().sessions().contains_key(&session));
    assert_eq!(
        p.learner
            .engine
            .tree()
            .ephemerals(session)
            .collect::<Vec<_>>(),
        vec!["/e"]
    );
}

#[test]
fn a_session_the_leader_expires_loses_its_learner_connection_and_its_writes() {
    let mut p = Pair::new();
    p.learner.connect_as(1, 0, 4_000);
    p.commit();
    let session = p.learner.connected(1).unwrap().session_id;
    // The client stays connected to the learner but stops talking (a long pause): the
    // leader hears no touch and expires it; the learner closes its connection.
    p.leader.advance(10_000);
    p.leader.input(Input::Tick);
    p.commit();
    assert!(
        p.learner.closed(1),
        "the expired session's connection closes"
    );
    // A write the learner forwarded for it meanwhile is refused by the leader.
    let forwarded = super::forward::Forwarded {
        session,
        cxid: 9,
        op: OpCode::Create.code(),
        auth: Vec::new(),
        body: create("/late", CreateMode::Ephemeral),
    };
    p.leader.input(Input::Forwarded(forwarded.encode()));
    let logged = p.leader.appended.back().expect("an error txn");
    assert_eq!(logged.header.r#type, OpCode::Error.code());
    assert!(p.leader.engine.tree().node("/late").is_none());
}

#[test]
fn reconfig_is_checked_in_zookeepers_order_and_logged_as_the_config_nodes_write() {
    use zk_jute::proto::{GetDataResponse, ReconfigRequest};
    let request = |joining: &str, from: i64| {
        encode(ReconfigRequest {
            joining_servers: Some(joining.into()),
            leaving_servers: None,
            new_members: None,
            cur_config_id: from,
        })
    };
    let join = "server.4=127.0.0.1:1:2:observer;3";
    // Off, or standalone: refused before anything else.
    let mut off = Script::new();
    off.session(1, 10_000);
    off.request(1, 1, OpCode::Reconfig, request(join, -1));
    off.sync_log();
    assert_eq!(off.take(1)[0].2, ErrorCode::ReconfigDisabled.code());
    let on_alone = Config {
        reconfig_enabled: true,
        ..Config::default()
    };
    let mut alone = Script::standalone(on_alone);
    alone.session(1, 10_000);
    alone.request(1, 1, OpCode::Reconfig, request(join, -1));
    alone.sync_log();
    assert_eq!(alone.take(1)[0].2, ErrorCode::Unimplemented.code());

    // A leader of three members, version 1a, super digest for `super:test`.
    let mut config = Config::parse(
        "initLimit=5\nsyncLimit=2\nreconfigEnabled=true\n\
         server.1=127.0.0.1:11:21\nserver.2=127.0.0.1:12:22\nserver.3=127.0.0.1:13:23\n\
         version=1a\nDigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n",
    )
    .unwrap();
    config.server_id = 1;
    let mut s = Script::with(config, DataTree::new(TreeOptions::default()), Role::Leader);
    s.engine.set_synced_voters([1, 2].into());
    s.connect_as(1, 0, 10_000);
    s.sync_log();
    s.input(Input::Committed { zxid: 1 });
    let mut zxid = 1;
    let mut ask = |s: &mut Script, xid: i32, body: Bytes| {
        s.request(1, xid, OpCode::Reconfig, body);
        s.sync_log();
        zxid += 1;
        s.input(Input::Committed { zxid });
        s.take(1).pop().map(|(_, _, err)| err)
    };
    // A bad version and bad lines come before the ACL; then the ACL.
    let stale = ask(&mut s, 1, request(join, 0x1b));
    assert_eq!(stale, Some(ErrorCode::BadVersion.code()));
    let bad = ask(&mut s, 2, request("some thing", -1));
    assert_eq!(bad, Some(ErrorCode::BadArguments.code()));
    let no_auth = ask(&mut s, 3, request(join, 0x1a));
    assert_eq!(no_auth, Some(ErrorCode::NoAuth.code()));
    // New voters not synced are no quorum.
    let auth = encode(zk_jute::proto::AuthPacket {
        r#type: 0,
        scheme: "digest".into(),
        auth: Some(Bytes::from_static(b"super:test")),
    });
    s.request(1, 4, OpCode::Auth, auth);
    s.take(1);
    let absent = "server.5=127.0.0.1:5:6;7,server.6=127.0.0.1:8:9;10";
    let no_quorum = ask(&mut s, 5, request(absent, -1));
    assert_eq!(no_quorum, Some(ErrorCode::NewConfigNoQuorum.code()));
    // Accepted: the txn writes /zookeeper/config with the txn's zxid as version, and the
    // answer is the node's data and stat.
    s.request(1, 6, OpCode::Reconfig, request(join, 0x1a));
    s.sync_log();
    let logged = s.log.last().unwrap().clone();
    assert_eq!(logged.header.r#type, OpCode::Reconfig.code());
    zxid += 1;
    // Another while it is pending is refused.
    s.request(1, 7, OpCode::Reconfig, request(join, -1));
    s.sync_log();
    s.input(Input::Committed { zxid: zxid + 1 });
    let body = s.body_of(1, 6);
    let replies = s.take(1);
    assert_eq!(replies[0].2, 0);
    assert_eq!(replies[1].2, ErrorCode::ReconfigInProgress.code());
    let mut r = Reader::new(body);
    let answer = GetDataResponse::decode(&mut r).unwrap();
    let text = String::from_utf8(answer.data.unwrap().to_vec()).unwrap();
    // A bare client port is ZooKeeper's 0.0.0.0.
    assert!(
        text.contains("\nserver.4=127.0.0.1:1:2:observer;0.0.0.0:3\n"),
        "{text}"
    );
    assert!(text.ends_with(&format!("\nversion={zxid:x}")), "{text}");
    assert_eq!((answer.stat.version, answer.stat.mzxid), (-1, zxid));
}

/// A learner that loaded a leader's fuzzy snapshot (a change past its zxid already in it)
/// applies the txns after it without comparing their logged digests until the snapshot's
/// digest zxid, compares there, and meanwhile gives snapshots the window's digest.
#[test]
fn a_fuzzy_snapshots_window_skips_digest_checks_until_its_end() {
    let mut leader = Script::new();
    leader.session(1, 10_000);
    leader.request(1, 1, OpCode::Create, create("/a", CreateMode::Persistent));
    leader.request(1, 2, OpCode::Create, create("/b", CreateMode::Persistent));
    let delete = zk_jute::proto::DeleteRequest {
        path: "/a".into(),
        version: -1,
    };
    leader.request(1, 3, OpCode::Delete, encode(delete));
    leader.sync_log();
    let log = leader.log.clone();
    assert_eq!(log.len(), 4, "session, /a, /b, /a deleted");
    let end = zk_persistence::ZxidDigest {
        zxid: log[3].zxid(),
        version: zk_datatree::DIGEST_VERSION,
        digest: leader.engine.tree().digest() as i64,
    };
    // Serialized from after /a's create: /b, created later, is left out (its create
    // brings it back), and /a's delete is in already.
    let fuzzy = || {
        let mut tree = DataTree::new(TreeOptions::default());
        // Replayed as in a window that ends nowhere: no digest compared.
        let no_end = zk_persistence::ZxidDigest { zxid: 0, ..end };
        for entry in [&log[0], &log[1], &log[3]] {
            crate::replay(&mut tree, entry, Some(&no_end)).unwrap();
        }
        tree.set_last_zxid(log[1].zxid());
        tree
    };
    let learner = |window: Option<zk_persistence::ZxidDigest>| {
        let config = Config {
            server_id: 2,
            ..Config::default()
        };
        let mut s = Script::with(config, DataTree::new(TreeOptions::default()), Role::Learner);
        s.engine.replace_tree(fuzzy(), &mut Vec::new());
        if let Some(window) = window {
            s.engine.expect_digest(window).unwrap();
        }
        s
    };

    let mut s = learner(Some(end));
    assert_eq!(
        s.engine.snapshot_digest(),
        end,
        "a snapshot now records the window's"
    );
    s.input(Input::Deliver(log[2].clone()));
    assert!(s.fatal.is_none(), "{:?}", s.fatal);
    s.input(Input::Deliver(log[3].clone()));
    assert!(s.fatal.is_none(), "{:?}", s.fatal);
    assert_eq!(s.engine.tree().digest(), leader.engine.tree().digest());
    assert_eq!(s.engine.snapshot_digest(), end);

    // Without the window, /b's logged digest (a tree that still had /a) is compared.
    let mut s = learner(None);
    s.input(Input::Deliver(log[2].clone()));
    assert!(s.fatal.is_some());
    // With a recorded digest the tree does not reach, its end is fatal.
    let mut s = learner(Some(zk_persistence::ZxidDigest {
        digest: end.digest ^ 1,
        ..end
    }));
    s.input(Input::Deliver(log[2].clone()));
    assert!(s.fatal.is_none(), "{:?}", s.fatal);
    s.input(Input::Deliver(log[3].clone()));
    assert!(s.fatal.is_some());
}
