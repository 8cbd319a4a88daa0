//! A ready-made runtime for one member: a tokio task that owns the [`Zab`] core and
//! carries its outputs out on a [`Storage`], a [`StateMachine`], `zk-election`'s gRPC
//! node and this crate's [`Quorum`]. It group-commits: every input ready at once is
//! handled, then the log is synced once and the core told how far it is durable.
//!
//! A server with its own engine drives the core itself; this runtime is for using the
//! crate alone (a replicated log of opaque txns), for its tests and for its benchmark.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{info, warn};
use zk_election::ServerState;
use zk_election::transport::{Node, NodeConfig};
use zk_jute::Zxid;

use crate::config::Config;
use crate::message::{Entry, Message, Sid};
use crate::storage::{Storage, StorageError};
use crate::transport::{Event, Quorum, QuorumConfig};
use crate::zab::{Input, Output, State, Zab};

/// What the replicated log is applied to.
pub trait StateMachine: Send + 'static {
    /// Applies a committed txn (in zxid order, each once).
    fn apply(&mut self, entry: &Entry);
    /// The state as applied so far, in pieces of bounded size, for a learner.
    fn snapshot(&self) -> Vec<Bytes>;
    /// Replaces the state with a snapshot at `zxid`, durably: once this returns, the
    /// log is emptied (the snapshot holds everything up to `zxid`).
    fn restore(&mut self, zxid: Zxid, pieces: Vec<Bytes>);
    /// Rolls the state back to `zxid` (ZooKeeper reloads its database).
    fn truncate(&mut self, zxid: Zxid);
}

/// Where a member's peers are.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    /// This member's id.
    pub sid: Sid,
    /// The election's configuration (members with their election addresses).
    pub election: zk_election::Config,
    /// Zab's configuration.
    pub zab: Config,
    /// Every member's quorum port.
    pub quorum_addrs: BTreeMap<Sid, SocketAddr>,
    /// How often the core is ticked.
    pub tick_ms: u64,
}

/// What a running member reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberStatus {
    /// The core's state (none before it started).
    pub state: Option<State>,
    /// The last zxid applied.
    pub applied: Zxid,
    /// Sync headers received as a learner (`DIFF`, `TRUNC`, `SNAP`), oldest first.
    pub syncs: Vec<&'static str>,
}

/// Makes a txn's bytes once its zxid is known.
type MakeTxn = Box<dyn FnOnce(Zxid) -> Bytes + Send>;

enum Ctl {
    Propose(MakeTxn, oneshot::Sender<Option<Zxid>>),
    Send(Sid, Message),
    Pause(oneshot::Sender<()>),
    Stop,
}

/// A running member. Dropping it stops the task, as [`Member::stop`] does.
#[derive(Debug)]
pub struct Member {
    sid: Sid,
    ctl: mpsc::Sender<Ctl>,
    status: watch::Receiver<MemberStatus>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Ctl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ctl::Propose(..) => "Propose",
            Ctl::Send(..) => "Send",
            Ctl::Pause(_) => "Pause",
            Ctl::Stop => "Stop",
        })
    }
}

/// Why a member could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The storage could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] crate::error::ConfigError),
    /// The election node did not start.
    #[error(transparent)]
    Election(#[from] zk_election::TransportError),
    /// The quorum port could not be bound.
    #[error("quorum port: {0}")]
    Quorum(#[from] std::io::Error),
    /// This member has no quorum address.
    #[error("server {0} has no quorum address")]
    NoAddress(Sid),
}

impl Member {
    /// Starts member `config.sid` on `storage` (whose log the state machine has
    /// already applied, as ZooKeeper's start-up does) and `machine`.
    pub async fn start<S, M>(
        config: MemberConfig,
        storage: S,
        machine: M,
    ) -> Result<Member, StartError>
    where
        S: Storage + Send + 'static,
        M: StateMachine,
    {
        let sid = config.sid;
        let persisted = storage.persisted()?;
        let applied = persisted.history.last();
        let zab = Zab::new(config.zab.clone(), sid, persisted)?;
        let election = Node::start(NodeConfig::new(
            sid,
            config.election.clone(),
            zab.peer_data(),
        ))
        .await?;
        let listen = *config
            .quorum_addrs
            .get(&sid)
            .ok_or(StartError::NoAddress(sid))?;
        let (quorum, events) = Quorum::start(QuorumConfig::new(sid, listen)).await?;
        let (status_tx, status) = watch::channel(MemberStatus {
            state: Some(zab.state()),
            applied,
            syncs: Vec::new(),
        });
        let (ctl, ctl_rx) = mpsc::channel(1024);
        let runtime = Runtime {
            zab,
            election,
            quorum,
            events,
            storage,
            machine,
            quorum_addrs: config.quorum_addrs,
            snapshot_rx: Vec::new(),
            started: Instant::now(),
            status: status_tx,
            appended: false,
            looks: 0,
            tick_ms: config.tick_ms.max(1),
        };
        let task = tokio::spawn(runtime.run(ctl_rx));
        Ok(Member {
            sid,
            ctl,
            status,
            task: Some(task),
        })
    }

    /// This member's id.
    pub fn sid(&self) -> Sid {
        self.sid
    }

    /// What it reports now.
    pub fn status(&self) -> MemberStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every change of [`Member::status`].
    pub fn watch(&self) -> watch::Receiver<MemberStatus> {
        self.status.clone()
    }

    /// Proposes `data` if this member is an established leader; returns its zxid.
    pub async fn propose(&self, data: Bytes) -> Option<Zxid> {
        self.proposer().propose_with(move |_| data).await
    }

    /// A handle that proposes through this member, from any task.
    pub fn proposer(&self) -> Proposer {
        Proposer(self.ctl.clone())
    }

    /// Sends `message` to `to` as if the core had (to test how peers take a message out
    /// of place).
    pub async fn send_raw(&self, to: Sid, message: Message) {
        let _ = self.ctl.send(Ctl::Send(to, message)).await;
    }

    /// Stops reading anything but [`Member::stop`] (a paused process: its streams stay
    /// open and unread). Returns once paused.
    pub async fn pause(&self) {
        let (tx, rx) = oneshot::channel();
        if self.ctl.send(Ctl::Pause(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Stops where it is and closes its sockets (as the OS does for a dead process).
    pub async fn stop(mut self) {
        let _ = self.ctl.send(Ctl::Stop).await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Proposes through a [`Member`]; clone it for each task that proposes. Proposals that
/// arrive while the member syncs its log are logged together and synced once.
#[derive(Debug, Clone)]
pub struct Proposer(mpsc::Sender<Ctl>);

impl Proposer {
    /// Proposes the txn `make` builds from its zxid (a log record names its zxid), if
    /// the member is an established leader; returns the zxid.
    pub async fn propose_with(
        &self,
        make: impl FnOnce(Zxid) -> Bytes + Send + 'static,
    ) -> Option<Zxid> {
        let (tx, rx) = oneshot::channel();
        self.0.send(Ctl::Propose(Box::new(make), tx)).await.ok()?;
        rx.await.ok().flatten()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

struct Runtime<S, M> {
    zab: Zab,
    election: Node,
    quorum: Quorum,
    events: mpsc::Receiver<Event>,
    storage: S,
    machine: M,
    quorum_addrs: BTreeMap<Sid, SocketAddr>,
    snapshot_rx: Vec<Bytes>,
    started: Instant,
    status: watch::Sender<MemberStatus>,
    /// Appends since the last sync.
    appended: bool,
    /// Rounds asked of the election since the start: a status that has started fewer
    /// is older than the last request, and its decision stale (it names the leader
    /// just lost).
    looks: u64,
    tick_ms: u64,
}

/// Inputs and commands taken before the log is synced, at most.
const BATCH_MAX: usize = 1_024;

impl<S: Storage + Send + 'static, M: StateMachine> Runtime<S, M> {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn run(mut self, mut ctl: mpsc::Receiver<Ctl>) {
        let mut election = self.election.watch();
        let mut tick = tokio::time::interval(Duration::from_millis(self.tick_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut paused = false;
        loop {
            if paused {
                if let Some(Ctl::Stop) | None = ctl.recv().await {
                    break;
                }
                continue;
            }
            let mut inputs = Vec::new();
            tokio::select! {
                changed = election.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let s = *election.borrow_and_update();
                    match s.state {
                        _ if s.looks < self.looks || self.zab.state() != State::Looking => {}
                        ServerState::Looking => {}
                        ServerState::Leading => {
                            inputs.push(Input::Lead { election_epoch: s.vote.election_epoch });
                        }
                        _ => {
                            inputs.push(Input::Follow {
                                leader: s.vote.leader,
                                election_epoch: s.vote.election_epoch,
                            });
                        }
                    }
                }
                event = self.events.recv() => match event {
                    Some(event) => inputs.extend(self.input_of(event)),
                    None => break,
                },
                _ = tick.tick() => inputs.push(Input::Tick),
                cmd = ctl.recv() => match cmd {
                    Some(cmd) => {
                        if self.command(cmd, &mut paused).await {
                            break;
                        }
                    }
                    None => break,
                },
            }
            // Everything else already waiting joins the batch, then one sync.
            let mut stop = false;
            for _ in 0..BATCH_MAX {
                if stop || paused {
                    break;
                }
                if let Ok(event) = self.events.try_recv() {
                    inputs.extend(self.input_of(event));
                } else if let Ok(cmd) = ctl.try_recv() {
                    stop = self.command(cmd, &mut paused).await;
                } else {
                    break;
                }
            }
            for input in inputs {
                if let Err(e) = self.handle(input).await {
                    warn!(sid = self.zab.sid(), "storage failed, stopping: {e}");
                    self.shutdown().await;
                    return;
                }
            }
            if let Err(e) = self.sync().await {
                warn!(sid = self.zab.sid(), "storage failed, stopping: {e}");
                break;
            }
            self.publish();
            if stop {
                break;
            }
        }
        self.shutdown().await;
    }

    /// Carries out a command; returns whether to stop.
    async fn command(&mut self, cmd: Ctl, paused: &mut bool) -> bool {
        match cmd {
            Ctl::Propose(make, reply) => {
                let mut proposed = None;
                if let Some(zxid) = self.zab.next_zxid() {
                    let entry = Entry {
                        zxid,
                        data: make(zxid),
                    };
                    if let Err(e) = self.handle(Input::Propose(entry)).await {
                        warn!(sid = self.zab.sid(), "storage failed, stopping: {e}");
                        return true;
                    }
                    proposed = (self.zab.last_logged() == zxid).then_some(zxid);
                }
                let _ = reply.send(proposed);
                false
            }
            Ctl::Send(to, message) => {
                let _ = self.quorum.send(to, message);
                false
            }
            Ctl::Pause(done) => {
                *paused = true;
                let _ = done.send(());
                false
            }
            Ctl::Stop => true,
        }
    }

    async fn shutdown(self) {
        self.quorum.shutdown().await;
        self.election.shutdown().await;
    }

    fn publish(&self) {
        let state = Some(self.zab.state());
        let applied = self.zab.applied();
        self.status.send_if_modified(|s| {
            let changed = s.state != state || s.applied != applied;
            s.state = state;
            s.applied = applied;
            changed
        });
    }

    /// The core's input for `event`; none for [`Event::Room`] (this runtime sends a
    /// snapshot whole, as its state machine gives it).
    fn input_of(&mut self, event: Event) -> Option<Input> {
        Some(match event {
            Event::Connected { peer } => Input::Connected { peer },
            Event::Disconnected { peer } => Input::Disconnected { peer },
            Event::Room { .. } => return None,
            Event::Received { from, message } => {
                if let Message::Diff { .. } | Message::Trunc { .. } | Message::Snap { .. } = message
                {
                    self.status.send_modify(|s| s.syncs.push(message.name()));
                }
                Input::Receive { from, message }
            }
        })
    }

    /// Syncs the log if anything was appended, and tells the core.
    async fn sync(&mut self) -> Result<(), StorageError> {
        if !self.appended {
            return Ok(());
        }
        self.appended = false;
        let zxid = self.storage.sync()?;
        self.handle(Input::Durable { zxid }).await
    }

    /// Handles `input` and everything its outputs feed back.
    async fn handle(&mut self, input: Input) -> Result<(), StorageError> {
        let mut inputs = vec![input];
        while let Some(input) = inputs.pop() {
            let now = self.now_ms();
            let outputs = self.zab.handle(now, input);
            let mut more = Vec::new();
            for output in outputs {
                self.carry(output, &mut more).await?;
            }
            more.reverse();
            inputs.extend(more);
        }
        Ok(())
    }

    async fn carry(&mut self, output: Output, more: &mut Vec<Input>) -> Result<(), StorageError> {
        match output {
            Output::Send { to, message } => {
                if self.quorum.send(to, message).is_err() {
                    more.push(Input::Disconnected { peer: to });
                }
            }
            Output::Connect { peer } => match self.quorum_addrs.get(&peer) {
                Some(addr) => self.quorum.connect(peer, addr.to_string()),
                None => more.push(Input::Disconnected { peer }),
            },
            Output::Disconnect { peer } => self.quorum.disconnect(peer),
            Output::SetAcceptedEpoch(epoch) => self.storage.set_accepted_epoch(epoch)?,
            Output::SetCurrentEpoch(epoch) => self.storage.set_current_epoch(epoch)?,
            Output::Append(entry) => {
                self.storage.append(&entry)?;
                self.appended = true;
            }
            Output::Truncate { zxid } => {
                self.storage.truncate(zxid)?;
                self.machine.truncate(zxid);
            }
            Output::Deliver(entry) => self.machine.apply(&entry),
            Output::ReadLog {
                learner,
                stream,
                after,
                through,
                batch,
            } => {
                let reads = crate::storage::read_log(
                    &mut self.storage,
                    learner,
                    stream,
                    (after, through),
                    batch,
                )?;
                more.extend(reads);
            }
            Output::SendSnapshot {
                learner, stream, ..
            } => {
                let mut pieces = self.machine.snapshot();
                if pieces.is_empty() {
                    pieces.push(Bytes::new());
                }
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
                let pieces = std::mem::take(&mut self.snapshot_rx);
                self.machine.restore(zxid, pieces);
                self.storage.reset(zxid)?;
            }
            Output::State(State::Looking) => {
                // Statuses sent before this request is handled are stale.
                self.looks += 1;
                self.election.set_peer_data(self.zab.peer_data()).await;
                self.election.start_looking().await;
            }
            Output::State(_)
            | Output::Request { .. }
            | Output::Touched { .. }
            | Output::Revalidate { .. }
            | Output::Revalidated { .. }
            | Output::Synced { .. } => {}
            Output::Activated { membership, .. } => {
                // This runtime's peers are fixed: the membership is Zab's alone.
                info!(version = membership.version, "membership activated");
            }
        }
        Ok(())
    }
}
