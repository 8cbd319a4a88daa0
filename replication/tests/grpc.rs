//! Real gRPC on loopback: members run this crate's runtime (`runtime::Member`: the
//! core, `zk-election`'s gRPC node, the `Quorum` streams) over in-memory storage, and
//! apply to a state machine that is the list of txns applied. Three members replicate a
//! stream of txns; a killed leader is replaced and nothing committed is lost; a learner
//! rejoins through DIFF, SNAP and TRUNC; a stream that sends garbage is closed and the
//! ensemble goes on.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sim::{decode, encode};
use zk_jute::Zxid;
use zk_replication::runtime::{Member, MemberConfig, StateMachine};
use zk_replication::storage::{MemStorage, Storage, StorageError};
use zk_replication::{Config, Entry, Message, Persisted, Sid, State};

mod sim;

const WAIT: Duration = Duration::from_secs(20);

/// A member's disk, kept by the test across the member's restarts.
#[derive(Debug, Clone, Default)]
struct Disk(Arc<Mutex<MemStorage>>);

impl Storage for Disk {
    fn persisted(&self) -> Result<Persisted, StorageError> {
        self.0.lock().unwrap().persisted()
    }
    fn set_accepted_epoch(&mut self, epoch: u32) -> Result<(), StorageError> {
        self.0.lock().unwrap().set_accepted_epoch(epoch)
    }
    fn set_current_epoch(&mut self, epoch: u32) -> Result<(), StorageError> {
        self.0.lock().unwrap().set_current_epoch(epoch)
    }
    fn append(&mut self, entry: &Entry) -> Result<(), StorageError> {
        self.0.lock().unwrap().append(entry)
    }
    fn sync(&mut self) -> Result<Zxid, StorageError> {
        self.0.lock().unwrap().sync()
    }
    fn truncate(&mut self, zxid: Zxid) -> Result<(), StorageError> {
        self.0.lock().unwrap().truncate(zxid)
    }
    fn reset(&mut self, zxid: Zxid) -> Result<(), StorageError> {
        self.0.lock().unwrap().reset(zxid)
    }
    fn read(&mut self, after: Zxid, through: Zxid, max: usize) -> Result<Vec<Entry>, StorageError> {
        self.0.lock().unwrap().read(after, through, max)
    }
}

/// The state machine: the txns applied, in order (a snapshot is all of them).
#[derive(Debug, Clone, Default)]
struct Applied(Arc<Mutex<Vec<Entry>>>);

impl StateMachine for Applied {
    fn apply(&mut self, entry: &Entry) {
        self.0.lock().unwrap().push(entry.clone());
    }
    fn snapshot(&self) -> Vec<Bytes> {
        self.0.lock().unwrap().chunks(7).map(encode).collect()
    }
    fn restore(&mut self, _zxid: Zxid, pieces: Vec<Bytes>) {
        *self.0.lock().unwrap() = pieces.iter().flat_map(|p| decode(p)).collect();
    }
    fn truncate(&mut self, zxid: Zxid) {
        self.0.lock().unwrap().retain(|e| e.zxid <= zxid);
    }
}

struct Slot {
    disk: Disk,
    /// The snapshot's txns, which survive a restart with the log.
    snapshot: Arc<Mutex<Vec<Entry>>>,
    applied: Applied,
    member: Option<Member>,
}

struct Ensemble {
    election: zk_election::Config,
    zab: Config,
    quorum_addrs: BTreeMap<Sid, SocketAddr>,
    members: BTreeMap<Sid, Slot>,
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

impl Ensemble {
    fn new(n: u64, diff_max_txns: u64) -> Self {
        let ports = free_ports(2 * n as usize);
        let entries: Vec<(String, String)> = (1..=n)
            .map(|sid| {
                let i = 2 * (sid as usize - 1);
                (
                    format!("server.{sid}"),
                    format!("127.0.0.1:{}:{}", ports[i], ports[i + 1]),
                )
            })
            .collect();
        let election = zk_election::Config::from_entries(
            entries.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .unwrap();
        let mut zab = Config::from_election(&election);
        zab.tick_ms = 100;
        zab.init_limit = 20;
        zab.sync_limit = 10;
        zab.commit_log_count = 8;
        zab.diff_max_txns = diff_max_txns;
        zab.read_batch = 5;
        let quorum_addrs = (1..=n)
            .map(|sid| {
                let port = ports[2 * (sid as usize - 1)];
                (sid, SocketAddr::from(([127, 0, 0, 1], port)))
            })
            .collect();
        let members = (1..=n)
            .map(|sid| {
                let slot = Slot {
                    disk: Disk::default(),
                    snapshot: Arc::default(),
                    applied: Applied::default(),
                    member: None,
                };
                (sid, slot)
            })
            .collect();
        Ensemble {
            election,
            zab,
            quorum_addrs,
            members,
        }
    }

    async fn start(&mut self, sid: Sid) {
        let config = MemberConfig {
            sid,
            election: self.election.clone(),
            zab: self.zab.clone(),
            quorum_addrs: self.quorum_addrs.clone(),
            tick_ms: 20,
        };
        let slot = self.members.get_mut(&sid).unwrap();
        // As ZooKeeper's start-up: the snapshot, then the whole log, applied.
        let log = slot.disk.0.lock().unwrap().entries().to_vec();
        let restored: Vec<Entry> = slot
            .snapshot
            .lock()
            .unwrap()
            .iter()
            .chain(&log)
            .cloned()
            .collect();
        slot.applied = Applied(Arc::new(Mutex::new(restored)));
        let machine = Snapshotting {
            applied: slot.applied.clone(),
            snapshot: Arc::clone(&slot.snapshot),
        };
        slot.member = Some(
            Member::start(config, slot.disk.clone(), machine)
                .await
                .unwrap(),
        );
    }

    /// Kills `sid`: it stops where it is; only its disk remains.
    async fn kill(&mut self, sid: Sid) {
        if let Some(member) = self.members.get_mut(&sid).unwrap().member.take() {
            member.stop().await;
        }
    }

    fn member(&self, sid: Sid) -> &Member {
        self.members[&sid].member.as_ref().expect("running")
    }

    fn state(&self, sid: Sid) -> Option<State> {
        self.members[&sid]
            .member
            .as_ref()
            .and_then(|m| m.status().state)
    }

    fn syncs(&self, sid: Sid) -> Vec<&'static str> {
        self.member(sid).status().syncs
    }

    fn leader(&self) -> Option<Sid> {
        self.members.keys().copied().find(|sid| {
            matches!(
                self.state(*sid),
                Some(State::Leading {
                    established: true,
                    ..
                })
            )
        })
    }

    async fn wait(&self, what: &str, mut done: impl FnMut(&Ensemble) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(self) {
            if tokio::time::Instant::now() > deadline {
                let views: Vec<String> = self
                    .members
                    .keys()
                    .map(|sid| {
                        let status = self.members[sid].member.as_ref().map(Member::status);
                        format!("{sid}: {status:?}, {} applied", self.applied(*sid).len())
                    })
                    .collect();
                panic!("timed out waiting for {what}: {views:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_leader(&self) -> Sid {
        self.wait("a leader", |e| e.leader().is_some()).await;
        self.leader().unwrap()
    }

    async fn propose(&self, sid: Sid, data: &str) -> Option<Zxid> {
        let member = self.members[&sid].member.as_ref()?;
        member.propose(Bytes::from(data.to_string())).await
    }

    /// Proposes `n` txns on the leader and waits until `members` applied them.
    async fn write(&self, n: usize, tag: &str, members: &[Sid]) -> Vec<Zxid> {
        let leader = self.wait_leader().await;
        let mut zxids = Vec::new();
        for i in 0..n {
            let zxid = self
                .propose(leader, &format!("{tag} {i}"))
                .await
                .expect("leading");
            zxids.push(zxid);
        }
        let last = *zxids.last().unwrap();
        self.wait("the writes applied", |e| {
            members
                .iter()
                .all(|sid| e.applied(*sid).iter().any(|x| x.zxid == last))
        })
        .await;
        zxids
    }

    fn applied(&self, sid: Sid) -> Vec<Entry> {
        self.members[&sid].applied.0.lock().unwrap().clone()
    }

    async fn stop_all(&mut self) {
        for sid in self.members.keys().copied().collect::<Vec<_>>() {
            self.kill(sid).await;
        }
    }
}

/// [`Applied`], whose snapshots are kept as a disk would keep them.
struct Snapshotting {
    applied: Applied,
    snapshot: Arc<Mutex<Vec<Entry>>>,
}

impl StateMachine for Snapshotting {
    fn apply(&mut self, entry: &Entry) {
        self.applied.apply(entry);
    }
    fn snapshot(&self) -> Vec<Bytes> {
        self.applied.snapshot()
    }
    fn restore(&mut self, zxid: Zxid, pieces: Vec<Bytes>) {
        self.applied.restore(zxid, pieces);
        *self.snapshot.lock().unwrap() = self.applied.0.lock().unwrap().clone();
    }
    fn truncate(&mut self, zxid: Zxid) {
        self.applied.truncate(zxid);
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "zk_replication=warn".to_string()),
        )
        .with_test_writer()
        .try_init();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_replicate_and_a_killed_leader_is_replaced() {
    init_tracing();
    let mut ensemble = Ensemble::new(3, 1_000);
    for sid in 1..=3 {
        ensemble.start(sid).await;
    }
    let all = [1, 2, 3];
    ensemble.write(100, "first", &all).await;
    let leader = ensemble.wait_leader().await;
    let first = ensemble.applied(leader);
    assert_eq!(first.len(), 100);
    for sid in all {
        assert_eq!(ensemble.applied(sid), first, "member {sid}");
    }
    // The leader dies; the other two elect one of them and carry on.
    ensemble.kill(leader).await;
    let rest: Vec<Sid> = all.into_iter().filter(|s| *s != leader).collect();
    ensemble
        .wait("a new leader", |e| e.leader().is_some_and(|l| l != leader))
        .await;
    ensemble.write(20, "second", &rest).await;
    let now = ensemble.applied(rest[0]);
    assert_eq!(now.len(), 120);
    assert_eq!(now[..100], first[..], "nothing committed is lost");
    // The old leader comes back as a follower and catches up.
    ensemble.start(leader).await;
    ensemble
        .wait("the old leader caught up", |e| e.applied(leader) == now)
        .await;
    ensemble.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_rejoins_through_diff_snap_and_trunc() {
    init_tracing();
    let mut ensemble = Ensemble::new(3, 30);
    for sid in 1..=3 {
        ensemble.start(sid).await;
    }
    let all = [1, 2, 3];
    ensemble.write(10, "start", &all).await;
    let leader = ensemble.wait_leader().await;
    let others: Vec<Sid> = all.into_iter().filter(|s| *s != leader).collect();
    let (a, b) = (others[0], others[1]);

    // DIFF: a little behind.
    ensemble.kill(a).await;
    ensemble.write(5, "diff", &[leader, b]).await;
    ensemble.start(a).await;
    ensemble
        .wait("a caught up", |e| e.applied(a) == e.applied(leader))
        .await;
    assert_eq!(ensemble.syncs(a), ["DIFF"]);

    // SNAP: further behind than a diff may carry.
    ensemble.kill(a).await;
    ensemble.write(40, "snap", &[leader, b]).await;
    ensemble.start(a).await;
    ensemble
        .wait("a caught up", |e| e.applied(a) == e.applied(leader))
        .await;
    assert_eq!(ensemble.syncs(a), ["SNAP"]);

    // TRUNC: the leader logs txns nobody else reads (its followers are paused), and
    // everyone dies; the followers come back and go on without those txns; when the
    // old leader returns it must drop them.
    for f in [a, b] {
        ensemble.member(f).pause().await;
    }
    for i in 0..3 {
        ensemble
            .propose(leader, &format!("lost {i}"))
            .await
            .expect("still leading");
    }
    ensemble.kill(leader).await;
    ensemble.kill(a).await;
    ensemble.kill(b).await;
    ensemble.start(a).await;
    ensemble.start(b).await;
    ensemble
        .wait("a leader among the others", |e| {
            e.leader().is_some_and(|l| l != leader)
        })
        .await;
    ensemble.write(5, "after", &[a, b]).await;
    ensemble.start(leader).await;
    ensemble
        .wait("the old leader caught up", |e| {
            e.applied(leader) == e.applied(a)
        })
        .await;
    assert_eq!(ensemble.syncs(leader), ["TRUNC"]);
    let applied = ensemble.applied(leader);
    assert!(
        applied.iter().all(|e| !e.data.starts_with(b"lost")),
        "{applied:?}"
    );
    ensemble.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_misbehaves_is_closed_and_the_rest_go_on() {
    init_tracing();
    let mut ensemble = Ensemble::new(3, 1_000);
    for sid in 1..=3 {
        ensemble.start(sid).await;
    }
    ensemble.write(5, "before", &[1, 2, 3]).await;
    let leader = ensemble.wait_leader().await;
    let follower = (1..=3).find(|s| *s != leader).unwrap();
    // The follower's runtime sends the leader a message out of place: the leader drops
    // that learner (one log line), which syncs again; writes go on.
    ensemble
        .member(follower)
        .send_raw(leader, Message::UpToDate)
        .await;
    ensemble.write(5, "after", &[1, 2, 3]).await;
    assert_eq!(ensemble.applied(follower), ensemble.applied(leader));

    // A client that speaks garbage on the quorum port: a frame with no body.
    use zk_replication::transport::proto::{self, quorum_client::QuorumClient};
    let addr = ensemble.quorum_addrs[&leader];
    let mut client = QuorumClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let frames = futures_util::stream::iter([
        proto::Frame {
            body: Some(proto::frame::Body::Hello(proto::Hello { sid: 99 })),
        },
        proto::Frame { body: None },
    ]);
    if let Ok(response) = client.learn(frames).await {
        let mut incoming = response.into_inner();
        // The leader closes the stream.
        let closed = tokio::time::timeout(WAIT, async {
            while let Ok(Some(_)) = incoming.message().await {}
        })
        .await;
        assert!(closed.is_ok());
    }
    ensemble.write(5, "still", &[1, 2, 3]).await;
    ensemble.stop_all().await;
}
