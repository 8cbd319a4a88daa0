//! Real gRPC on loopback: members run `zk-election`'s gRPC node and this crate's
//! [`Quorum`] around their cores, with a small runtime (below) standing in for the
//! server: an in-memory log whose writes are durable at once, and a state machine that
//! is the list of txns applied. Three members replicate a stream of txns; a killed
//! leader is replaced and nothing committed is lost; a learner rejoins through DIFF,
//! SNAP and TRUNC; a stream that sends garbage is closed and the ensemble goes on.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use zk_election::transport::{Node, NodeConfig};
use zk_election::{PeerData, ServerState};
use zk_jute::Zxid;
use zk_replication::transport::{Event, Quorum, QuorumConfig};
use zk_replication::{Config, Entry, History, Input, Message, Output, Persisted, Sid, State, Zab};

const WAIT: Duration = Duration::from_secs(20);

/// What survives a member's restart: epochs, the log, the snapshot.
#[derive(Debug, Default)]
struct Disk {
    accepted_epoch: u32,
    current_epoch: u32,
    snap_zxid: Zxid,
    snap: Vec<Entry>,
    log: Vec<Entry>,
}

/// What the test sees of a running member.
#[derive(Debug, Default)]
struct View {
    state: Option<State>,
    applied: Vec<Entry>,
    /// Sync headers received (DIFF, TRUNC, SNAP), in order.
    syncs: Vec<&'static str>,
}

enum Ctl {
    Propose(Bytes, oneshot::Sender<Option<Zxid>>),
    Send(Sid, Message),
    /// Stop where it is, closing the sockets (as the OS does when a process dies).
    Kill,
    /// Stop reading anything but commands (as a paused process; its sockets stay open).
    Pause,
}

struct Member {
    disk: Arc<Mutex<Disk>>,
    view: Arc<Mutex<View>>,
    ctl: Option<mpsc::Sender<Ctl>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct Ensemble {
    election: zk_election::Config,
    zab: Config,
    quorum_addrs: BTreeMap<Sid, SocketAddr>,
    members: BTreeMap<Sid, Member>,
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
                (
                    sid,
                    Member {
                        disk: Arc::default(),
                        view: Arc::default(),
                        ctl: None,
                        task: None,
                    },
                )
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
        let member = self.members.get_mut(&sid).unwrap();
        let (ctl, ctl_rx) = mpsc::channel(64);
        *member.view.lock().unwrap() = View::default();
        let runtime = Runtime::start(
            sid,
            self.election.clone(),
            self.zab.clone(),
            self.quorum_addrs.clone(),
            Arc::clone(&member.disk),
            Arc::clone(&member.view),
        )
        .await;
        member.ctl = Some(ctl);
        member.task = Some(tokio::spawn(runtime.run(ctl_rx)));
    }

    /// Kills `sid`: its task stops where it is; only its disk remains.
    async fn kill(&mut self, sid: Sid) {
        let member = self.members.get_mut(&sid).unwrap();
        if let Some(ctl) = member.ctl.take() {
            let _ = ctl.send(Ctl::Kill).await;
        }
        if let Some(task) = member.task.take() {
            let _ = task.await;
        }
        member.view.lock().unwrap().state = None;
    }

    fn view<T>(&self, sid: Sid, f: impl FnOnce(&View) -> T) -> T {
        f(&self.members[&sid].view.lock().unwrap())
    }

    fn leader(&self) -> Option<Sid> {
        self.members.keys().copied().find(|sid| {
            self.view(*sid, |v| {
                matches!(
                    v.state,
                    Some(State::Leading {
                        established: true,
                        ..
                    })
                )
            })
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
                        self.view(*sid, |v| {
                            format!(
                                "{sid}: {:?}, {} applied, syncs {:?}",
                                v.state,
                                v.applied.len(),
                                v.syncs
                            )
                        })
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
        let (tx, rx) = oneshot::channel();
        let ctl = self.members[&sid].ctl.as_ref()?;
        ctl.send(Ctl::Propose(Bytes::from(data.to_string()), tx))
            .await
            .ok()?;
        rx.await.ok().flatten()
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
                .all(|sid| e.view(*sid, |v| v.applied.iter().any(|x| x.zxid == last)))
        })
        .await;
        zxids
    }

    fn applied(&self, sid: Sid) -> Vec<Entry> {
        self.view(sid, |v| v.applied.clone())
    }

    async fn stop_all(&mut self) {
        for sid in self.members.keys().copied().collect::<Vec<_>>() {
            self.kill(sid).await;
        }
    }
}

/// The stand-in for the server's runtime: carries a member's outputs out.
struct Runtime {
    sid: Sid,
    zab: Zab,
    election: Node,
    quorum: Quorum,
    events: mpsc::Receiver<Event>,
    quorum_addrs: BTreeMap<Sid, SocketAddr>,
    disk: Arc<Mutex<Disk>>,
    view: Arc<Mutex<View>>,
    snapshot_rx: Vec<Bytes>,
    started_ms: tokio::time::Instant,
}

impl Runtime {
    async fn start(
        sid: Sid,
        election_config: zk_election::Config,
        zab_config: Config,
        quorum_addrs: BTreeMap<Sid, SocketAddr>,
        disk: Arc<Mutex<Disk>>,
        view: Arc<Mutex<View>>,
    ) -> Runtime {
        let (persisted, applied) = {
            let d = disk.lock().unwrap();
            let history = History::from_zxids(d.snap_zxid, d.log.iter().map(|e| e.zxid)).unwrap();
            let applied: Vec<Entry> = d.snap.iter().chain(d.log.iter()).cloned().collect();
            (
                Persisted {
                    accepted_epoch: d.accepted_epoch,
                    current_epoch: d.current_epoch,
                    history,
                },
                applied,
            )
        };
        view.lock().unwrap().applied = applied;
        let zab = Zab::new(zab_config, sid, persisted).unwrap();
        let election = Node::start(NodeConfig::new(sid, election_config, zab.peer_data()))
            .await
            .unwrap();
        let (quorum, events) = Quorum::start(QuorumConfig::new(sid, quorum_addrs[&sid]))
            .await
            .unwrap();
        Runtime {
            sid,
            zab,
            election,
            quorum,
            events,
            quorum_addrs,
            disk,
            view,
            snapshot_rx: Vec::new(),
            started_ms: tokio::time::Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started_ms.elapsed().as_millis() as u64
    }

    async fn run(mut self, mut ctl: mpsc::Receiver<Ctl>) {
        let mut status = self.election.watch();
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut seen_looking = true;
        let mut paused = false;
        loop {
            if paused {
                if let Some(Ctl::Kill) | None = ctl.recv().await {
                    self.quorum.shutdown().await;
                    self.election.shutdown().await;
                    return;
                }
                continue;
            }
            let input = tokio::select! {
                changed = status.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let s = *status.borrow_and_update();
                    match s.state {
                        ServerState::Looking => {
                            seen_looking = true;
                            continue;
                        }
                        _ if !seen_looking || self.zab.state() != State::Looking => continue,
                        ServerState::Leading => Input::Lead { election_epoch: s.vote.election_epoch },
                        _ => Input::Follow {
                            leader: s.vote.leader,
                            election_epoch: s.vote.election_epoch,
                        },
                    }
                }
                event = self.events.recv() => match event {
                    Some(Event::Connected { peer }) => Input::Connected { peer },
                    Some(Event::Disconnected { peer }) => Input::Disconnected { peer },
                    Some(Event::Received { from, message }) => {
                        if let Message::Diff { .. } | Message::Trunc { .. } | Message::Snap { .. } = message {
                            self.view.lock().unwrap().syncs.push(message.name());
                        }
                        Input::Receive { from, message }
                    }
                    None => return,
                },
                _ = tick.tick() => Input::Tick,
                cmd = ctl.recv() => match cmd {
                    Some(Ctl::Propose(data, reply)) => {
                        let zxid = self.zab.next_zxid();
                        if let Some(zxid) = zxid {
                            self.handle(Input::Propose(Entry { zxid, data })).await;
                        }
                        let _ = reply.send(zxid);
                        continue;
                    }
                    Some(Ctl::Send(to, message)) => {
                        let _ = self.quorum.send(to, message);
                        continue;
                    }
                    Some(Ctl::Pause) => {
                        paused = true;
                        continue;
                    }
                    Some(Ctl::Kill) | None => {
                        self.quorum.shutdown().await;
                        self.election.shutdown().await;
                        return;
                    }
                },
            };
            if matches!(input, Input::Lead { .. } | Input::Follow { .. }) {
                seen_looking = false;
            }
            self.handle(input).await;
        }
    }

    /// Handles `input` and everything its outputs feed back.
    async fn handle(&mut self, input: Input) {
        let mut inputs = vec![input];
        while let Some(input) = inputs.pop() {
            let now = self.now_ms();
            let outputs = self.zab.handle(now, input);
            let mut more = Vec::new();
            for output in outputs {
                self.carry(output, &mut more).await;
            }
            more.reverse();
            inputs.extend(more);
        }
        self.view.lock().unwrap().state = Some(self.zab.state());
    }

    async fn carry(&mut self, output: Output, more: &mut Vec<Input>) {
        match output {
            Output::Send { to, message } => {
                if self.quorum.send(to, message).is_err() {
                    more.push(Input::Disconnected { peer: to });
                }
            }
            Output::Connect { peer } => self
                .quorum
                .connect(peer, self.quorum_addrs[&peer].to_string()),
            Output::Disconnect { peer } => self.quorum.disconnect(peer),
            Output::SetAcceptedEpoch(e) => self.disk.lock().unwrap().accepted_epoch = e,
            Output::SetCurrentEpoch(e) => self.disk.lock().unwrap().current_epoch = e,
            Output::Append(entry) => {
                let zxid = entry.zxid;
                self.disk.lock().unwrap().log.push(entry);
                more.push(Input::Durable { zxid });
            }
            Output::Truncate { zxid } => {
                self.disk.lock().unwrap().log.retain(|e| e.zxid <= zxid);
                self.view.lock().unwrap().applied.retain(|e| e.zxid <= zxid);
            }
            Output::Deliver(entry) => self.view.lock().unwrap().applied.push(entry),
            Output::ReadLog {
                learner,
                stream,
                after,
                through,
                batch,
            } => {
                let entries: Vec<Entry> = self
                    .disk
                    .lock()
                    .unwrap()
                    .log
                    .iter()
                    .filter(|e| e.zxid > after && e.zxid <= through)
                    .cloned()
                    .collect();
                let chunks: Vec<Vec<Entry>> = if entries.is_empty() {
                    vec![Vec::new()]
                } else {
                    entries.chunks(batch).map(<[Entry]>::to_vec).collect()
                };
                let n = chunks.len();
                for (i, entries) in chunks.into_iter().enumerate() {
                    more.push(Input::LogRead {
                        learner,
                        stream,
                        entries,
                        last: i + 1 == n,
                    });
                }
            }
            Output::SendSnapshot {
                learner, stream, ..
            } => {
                let applied = self.view.lock().unwrap().applied.clone();
                let pieces: Vec<Bytes> = if applied.is_empty() {
                    vec![Bytes::new()]
                } else {
                    applied.chunks(7).map(encode).collect()
                };
                let n = pieces.len();
                for (i, data) in pieces.into_iter().enumerate() {
                    more.push(Input::SnapshotPiece {
                        learner,
                        stream,
                        data,
                        last: i + 1 == n,
                    });
                }
            }
            Output::SnapshotBegin { .. } => self.snapshot_rx.clear(),
            Output::SnapshotPiece(data) => self.snapshot_rx.push(data),
            Output::SnapshotEnd { zxid } => {
                let entries: Vec<Entry> = self
                    .snapshot_rx
                    .drain(..)
                    .flat_map(|p| decode(&p))
                    .collect();
                let mut disk = self.disk.lock().unwrap();
                disk.snap = entries.clone();
                disk.snap_zxid = zxid;
                disk.log.clear();
                self.view.lock().unwrap().applied = entries;
            }
            Output::State(State::Looking) => {
                let data: PeerData = self.zab.peer_data();
                self.election.set_peer_data(data).await;
                self.election.start_looking().await;
            }
            other => tracing::debug!(sid = self.sid, "not used here: {other:?}"),
        }
    }
}

fn encode(entries: &[Entry]) -> Bytes {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&e.zxid.0.to_be_bytes());
        out.extend_from_slice(&(e.data.len() as u32).to_be_bytes());
        out.extend_from_slice(&e.data);
    }
    Bytes::from(out)
}

fn decode(mut data: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    while data.len() >= 12 {
        let zxid = i64::from_be_bytes(data[..8].try_into().unwrap());
        let len = u32::from_be_bytes(data[8..12].try_into().unwrap()) as usize;
        out.push(Entry::new(
            Zxid(zxid),
            Bytes::copy_from_slice(&data[12..12 + len]),
        ));
        data = &data[12 + len..];
    }
    out
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
    assert_eq!(ensemble.view(a, |v| v.syncs.clone()), ["DIFF"]);

    // SNAP: further behind than a diff may carry.
    ensemble.kill(a).await;
    ensemble.write(40, "snap", &[leader, b]).await;
    ensemble.start(a).await;
    ensemble
        .wait("a caught up", |e| e.applied(a) == e.applied(leader))
        .await;
    assert_eq!(ensemble.view(a, |v| v.syncs.clone()), ["SNAP"]);

    // TRUNC: the leader logs txns nobody else reads (its followers are paused), and
    // everyone dies; the followers come back and go on without those txns; when the
    // old leader returns it must drop them.
    for f in [a, b] {
        let ctl = ensemble.members[&f].ctl.clone().unwrap();
        ctl.send(Ctl::Pause).await.unwrap();
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
    assert_eq!(ensemble.view(leader, |v| v.syncs.clone()), ["TRUNC"]);
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
    let ctl = ensemble.members[&follower].ctl.clone().unwrap();
    ctl.send(Ctl::Send(leader, Message::UpToDate))
        .await
        .unwrap();
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
