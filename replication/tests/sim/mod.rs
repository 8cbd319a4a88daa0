//! The simulated ensemble shared by the seeded runs and the named scenarios: each member
//! runs `zk-election` and `zk-replication` cores over a simulated network (election
//! notifications as datagrams, Zab messages on ordered streams), disk (a log whose
//! unsynced tail may be lost on a crash, epochs and snapshots written synchronously) and
//! clock, all driven by one seeded random generator.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt;

use bytes::Bytes;
use zk_election::{
    Election, Hierarchical, Input as EInput, Notification, Output as EOutput, QuorumVerifier,
    ServerState,
};
use zk_jute::Zxid;
use zk_replication::storage::{MemStorage, Storage};
use zk_replication::{Config, Entry, Input, Message, Output, Sid, State, Zab};

/// splitmix64: small, fast, and good enough to drive a simulation.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

/// The shape of an ensemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// `n` voters, majority.
    Majority(u64),
    /// Three voters and two observers.
    Observers,
    /// Six voters in three groups of two; server 6 weighs nothing.
    Hierarchical,
}

impl Scenario {
    pub fn name(self) -> String {
        match self {
            Scenario::Majority(n) => format!("maj{n}"),
            Scenario::Observers => "obs".to_string(),
            Scenario::Hierarchical => "hier".to_string(),
        }
    }

    fn election_config(self) -> zk_election::Config {
        match self {
            Scenario::Majority(n) => zk_election::Config::majority(1..=n, []),
            Scenario::Observers => zk_election::Config::majority(1..=3, [4, 5]),
            Scenario::Hierarchical => {
                let mut config = zk_election::Config::majority(1..=6, []);
                let group_of = (1..=6u64).map(|sid| (sid, sid.div_ceil(2))).collect();
                let weight = [(6, 0)].into_iter().collect();
                config.verifier = QuorumVerifier::Hierarchical(Hierarchical::new(group_of, weight));
                config
            }
        }
    }
}

/// Zab's configuration in the simulation: short timers, and small in-memory windows so
/// that syncs from the log on disk and by snapshot happen often.
pub fn zab_config(election: &zk_election::Config) -> Config {
    let mut config = Config::from_election(election);
    config.tick_ms = 100;
    config.init_limit = 10;
    config.sync_limit = 5;
    config.commit_log_count = 16;
    config.diff_max_txns = 40;
    config.held_max = 10_000;
    config.read_batch = 7;
    // One snapshot sync at a time: a second learner is turned away and tries again.
    config.max_concurrent_snap_syncs = 1;
    config
}

/// What survives a crash: the log and epochs (`zk-replication`'s in-memory storage,
/// which loses unsynced appends on a crash) and the snapshot's txns.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    pub store: MemStorage,
    pub snap: Vec<Entry>,
}

impl Disk {
    fn last(&self) -> Zxid {
        self.store.last()
    }
}

#[derive(Debug)]
pub struct Node {
    pub sid: Sid,
    /// Bumped by every crash: events of an earlier life are dropped.
    pub life: u64,
    pub zab: Option<Zab>,
    pub election: Option<Election>,
    pub disk: Disk,
    /// The state machine: every txn applied, in order (the snapshot's included).
    pub applied: Vec<Entry>,
    /// How many of `applied` are known to equal the committed sequence's prefix.
    verified: usize,
    snapshot_rx: Option<Vec<Bytes>>,
    fsync_scheduled: bool,
}

impl Node {
    pub fn alive(&self) -> bool {
        self.zab.is_some()
    }

    pub fn state(&self) -> Option<State> {
        self.zab.as_ref().map(|z| z.state())
    }

    pub fn serving(&self) -> bool {
        self.zab.as_ref().is_some_and(|z| z.is_serving())
    }

    /// Whether a snapshot is being received and not yet installed.
    pub fn receiving_snapshot(&self) -> bool {
        self.snapshot_rx.is_some()
    }
}

#[derive(Debug)]
enum Event {
    Tick,
    Fsync(Sid, u64),
    Zab {
        from: Sid,
        to: Sid,
        stream: u64,
        message: Message,
    },
    Election {
        from: Sid,
        to: Sid,
        notification: Notification,
    },
    Connect {
        learner: Sid,
        leader: Sid,
        life: u64,
    },
    Closed {
        to: Sid,
        peer: Sid,
    },
    LogRead {
        leader: Sid,
        life: u64,
        learner: Sid,
        stream: u64,
        entries: Vec<Entry>,
        last: bool,
    },
    SnapPiece {
        leader: Sid,
        life: u64,
        learner: Sid,
        stream: u64,
        data: Bytes,
        last: bool,
    },
    Client,
    Fault,
    Heal,
}

struct Queued {
    at_ms: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.seq).cmp(&(self.at_ms, self.seq))
    }
}

/// Fault rates.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Election notifications lost, per mille.
    pub election_loss: u64,
    /// Election notifications duplicated, per mille.
    pub election_duplicate: u64,
    /// Greatest message delay.
    pub delay_max_ms: u64,
    /// Crash in the middle of carrying out a member's outputs, per 100,000 outputs.
    pub step_crash: u64,
    /// Mean time between scheduled faults (crash, restart, partition, heal, broken
    /// stream); zero for none.
    pub fault_every_ms: u64,
}

impl Faults {
    pub fn none() -> Self {
        Faults {
            election_loss: 0,
            election_duplicate: 0,
            delay_max_ms: 5,
            step_crash: 0,
            fault_every_ms: 0,
        }
    }
}

/// Counts for the report.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub committed: u64,
    pub leaders: u64,
    pub diffs: u64,
    pub truncs: u64,
    pub snaps: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub simulated_ms: u64,
}

impl Stats {
    pub fn add(&mut self, other: &Stats) {
        self.committed += other.committed;
        self.leaders += other.leaders;
        self.diffs += other.diffs;
        self.truncs += other.truncs;
        self.snaps += other.snaps;
        self.crashes += other.crashes;
        self.partitions += other.partitions;
        self.simulated_ms += other.simulated_ms;
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} txns committed, {} leaders established, syncs: {} DIFF, {} TRUNC, {} SNAP; \
             {} crashes, {} partitions, {:.1} simulated minutes",
            self.committed,
            self.leaders,
            self.diffs,
            self.truncs,
            self.snaps,
            self.crashes,
            self.partitions,
            self.simulated_ms as f64 / 60_000.0
        )
    }
}

pub struct Sim {
    pub scenario: Scenario,
    pub seed: u64,
    election_config: zk_election::Config,
    config: Config,
    pub rng: Rng,
    pub now_ms: u64,
    seq: u64,
    queue: BinaryHeap<Queued>,
    pub nodes: BTreeMap<Sid, Node>,
    /// When the last message from one member to another is due.
    last_at: BTreeMap<(Sid, Sid), u64>,
    /// Open streams, by (lower sid, higher sid), with their id.
    streams: BTreeMap<(Sid, Sid), u64>,
    next_stream: u64,
    /// Directed links that carry nothing: (from, to).
    pub cut: BTreeSet<(Sid, Sid)>,
    pub faults: Faults,
    /// Whether clients propose.
    pub clients: bool,
    /// Whether followers forward clients' requests (and so hear `LOGGED`).
    pub forwards: bool,
    /// The committed sequence.
    pub chain: Vec<Entry>,
    proposed: BTreeMap<Zxid, Bytes>,
    next_txn: u64,
    leaders: BTreeMap<u32, Sid>,
    pub stats: Stats,
    events: u64,
    /// Per member, how long its fsyncs take (default: 1 to 15 ms at random).
    pub fsync_ms: BTreeMap<Sid, u64>,
    /// Members whose disk reports writes durable at once but loses them on a crash
    /// (a broken runtime, to show the checks catch one).
    pub lying_fsync: BTreeSet<Sid>,
    /// Zab messages delivered: (time, from, to, name).
    pub delivered: Vec<(u64, Sid, Sid, &'static str)>,
    /// Per member, how often it stopped serving other than by a crash.
    pub left_serving: BTreeMap<Sid, u64>,
    serving: BTreeSet<Sid>,
    pub trace: bool,
    log: Vec<String>,
}

impl Sim {
    pub fn new(scenario: Scenario, seed: u64, faults: Faults) -> Self {
        let election_config = scenario.election_config();
        let config = zab_config(&election_config);
        let mut sim = Sim {
            scenario,
            seed,
            election_config: election_config.clone(),
            config,
            rng: Rng(seed ^ 0x2ab0_0000_0000_0000),
            now_ms: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: BTreeMap::new(),
            last_at: BTreeMap::new(),
            streams: BTreeMap::new(),
            next_stream: 1,
            cut: BTreeSet::new(),
            faults,
            clients: true,
            chain: Vec::new(),
            proposed: BTreeMap::new(),
            next_txn: 0,
            leaders: BTreeMap::new(),
            stats: Stats::default(),
            events: 0,
            fsync_ms: BTreeMap::new(),
            lying_fsync: BTreeSet::new(),
            forwards: true,
            delivered: Vec::new(),
            left_serving: BTreeMap::new(),
            serving: BTreeSet::new(),
            trace: false,
            log: Vec::new(),
        };
        for sid in election_config.members.keys() {
            sim.nodes.insert(
                *sid,
                Node {
                    sid: *sid,
                    life: 0,
                    zab: None,
                    election: None,
                    disk: Disk::default(),
                    applied: Vec::new(),
                    verified: 0,
                    snapshot_rx: None,
                    fsync_scheduled: false,
                },
            );
        }
        sim.schedule(0, Event::Tick);
        sim.schedule(10, Event::Client);
        if faults.fault_every_ms > 0 {
            sim.schedule(faults.fault_every_ms, Event::Fault);
        }
        sim
    }

    pub fn sids(&self) -> Vec<Sid> {
        self.nodes.keys().copied().collect()
    }

    fn note(&mut self, line: String) {
        if self.trace {
            eprintln!("{:>7} {line}", self.now_ms);
        }
        self.log.push(format!("{:>7} {line}", self.now_ms));
        if self.log.len() > 400 {
            self.log.drain(..200);
        }
    }

    /// The last lines of the event log, for a failure report.
    pub fn recent(&self) -> String {
        let from = self.log.len().saturating_sub(60);
        self.log[from..].join("\n")
    }

    fn schedule(&mut self, delay_ms: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Queued {
            at_ms: self.now_ms + delay_ms,
            seq: self.seq,
            event,
        });
    }

    fn delay(&mut self) -> u64 {
        self.rng.range(1, self.faults.delay_max_ms.max(1))
    }

    /// Starts every member.
    pub fn start_all(&mut self) -> Result<(), String> {
        for sid in self.sids() {
            self.start(sid)?;
        }
        Ok(())
    }

    /// Starts (or restarts) `sid` from its disk.
    pub fn start(&mut self, sid: Sid) -> Result<(), String> {
        let node = self.nodes.get_mut(&sid).ok_or("no such member")?;
        if node.alive() {
            return Ok(());
        }
        let disk = &node.disk;
        let persisted = disk
            .store
            .persisted()
            .map_err(|e| format!("member {sid}: the log on disk is not a history: {e}"))?;
        // As ZooKeeper's start-up: the snapshot and the whole log are applied.
        node.applied = disk
            .snap
            .iter()
            .chain(disk.store.entries())
            .cloned()
            .collect();
        node.verified = 0;
        node.snapshot_rx = None;
        node.fsync_scheduled = false;
        let zab = Zab::new(self.config.clone(), sid, persisted).map_err(|e| e.to_string())?;
        let mut election = Election::new(self.election_config.clone(), sid, zab.peer_data())
            .map_err(|e| e.to_string())?;
        let outputs = election.handle(self.now_ms, EInput::StartLooking);
        node.zab = Some(zab);
        node.election = Some(election);
        let line = format!("start {sid} (log to {})", self.nodes[&sid].disk.last());
        self.note(line);
        self.carry_election(sid, outputs)
    }

    /// Crashes `sid`: the unsynced tail of its log is partly lost, its streams break.
    pub fn crash(&mut self, sid: Sid) {
        let keep_extra = {
            let node = &self.nodes[&sid];
            let unsynced = node.disk.store.unsynced();
            if self.lying_fsync.contains(&sid) {
                0
            } else {
                self.rng.below(unsynced as u64 + 1) as usize
            }
        };
        let Some(node) = self.nodes.get_mut(&sid) else {
            return;
        };
        if !node.alive() {
            return;
        }
        node.life += 1;
        self.serving.remove(&sid);
        let node = self.nodes.get_mut(&sid).expect("a member");
        node.zab = None;
        node.election = None;
        node.applied.clear();
        node.verified = 0;
        node.snapshot_rx = None;
        node.disk.store.crash(keep_extra);
        self.stats.crashes += 1;
        let line = format!("crash {sid} (log kept to {})", self.nodes[&sid].disk.last());
        self.note(line);
        let broken: Vec<(Sid, Sid)> = self
            .streams
            .keys()
            .filter(|(a, b)| *a == sid || *b == sid)
            .copied()
            .collect();
        for (a, b) in broken {
            self.streams.remove(&(a, b));
            let peer = if a == sid { b } else { a };
            let d = self.delay();
            self.schedule(
                d,
                Event::Closed {
                    to: peer,
                    peer: sid,
                },
            );
        }
    }

    /// Cuts every link between `side` and the rest, both ways.
    pub fn partition(&mut self, side: &[Sid]) {
        for a in self.sids() {
            for b in self.sids() {
                if side.contains(&a) != side.contains(&b) {
                    self.cut.insert((a, b));
                }
            }
        }
        self.stats.partitions += 1;
        self.note(format!("partition {side:?} from the rest"));
        self.break_cut_streams(500);
    }

    /// Cuts the link from `from` to `to` only.
    pub fn cut_one_way(&mut self, from: Sid, to: Sid) {
        self.cut.insert((from, to));
        self.stats.partitions += 1;
        self.note(format!("cut {from} -> {to}"));
        self.break_cut_streams(500);
    }

    /// Breaks streams across the cut with the given chance; the others hang.
    fn break_cut_streams(&mut self, per_mille: u64) {
        let across: Vec<(Sid, Sid)> = self
            .streams
            .keys()
            .filter(|(a, b)| self.cut.contains(&(*a, *b)) || self.cut.contains(&(*b, *a)))
            .copied()
            .collect();
        for (a, b) in across {
            if self.rng.chance(per_mille) {
                self.break_stream(a, b);
            }
        }
    }

    /// Breaks the stream between learner `a` and leader `b`: both sides hear of it.
    pub fn break_stream(&mut self, a: Sid, b: Sid) {
        if self.streams.remove(&(a, b)).is_some() {
            self.note(format!("stream {a}-{b} broken"));
            let d = self.delay();
            self.schedule(d, Event::Closed { to: a, peer: b });
            let d = self.delay();
            self.schedule(d, Event::Closed { to: b, peer: a });
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
        self.note("heal".to_string());
    }

    /// Runs events until `until_ms`; stops at the first violation.
    pub fn run_until(&mut self, until_ms: u64) -> Result<(), String> {
        self.run_while(until_ms, |_| false)?;
        self.now_ms = until_ms;
        Ok(())
    }

    /// Runs until `done` holds (checked after every event) or `until_ms` passes.
    pub fn run_while(
        &mut self,
        until_ms: u64,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Result<bool, String> {
        while let Some(next) = self.queue.peek() {
            if done(self) {
                return Ok(true);
            }
            if next.at_ms > until_ms {
                break;
            }
            let Some(Queued { at_ms, event, .. }) = self.queue.pop() else {
                break;
            };
            self.now_ms = at_ms;
            self.step(event)?;
        }
        Ok(done(self))
    }

    fn step(&mut self, event: Event) -> Result<(), String> {
        self.events += 1;
        if self.events > EVENTS_MAX {
            return Err(format!("more than {EVENTS_MAX} events: a message storm"));
        }
        match event {
            Event::Tick => {
                for sid in self.sids() {
                    let now = self.now_ms;
                    let Some(node) = self.nodes.get_mut(&sid) else {
                        continue;
                    };
                    let (Some(zab), Some(election)) = (&mut node.zab, &mut node.election) else {
                        continue;
                    };
                    let e = election.handle(now, EInput::Tick);
                    let z = zab.handle(now, Input::Tick);
                    self.carry_election(sid, e)?;
                    self.carry(sid, z)?;
                }
                self.schedule(20, Event::Tick);
            }
            Event::Fsync(sid, life) => {
                let Some(node) = self.nodes.get_mut(&sid) else {
                    return Ok(());
                };
                if node.life != life || !node.alive() {
                    return Ok(());
                }
                node.fsync_scheduled = false;
                if !self.lying_fsync.contains(&sid) {
                    node.disk.store.sync().map_err(|e| e.to_string())?;
                }
                let zxid = node.disk.last();
                self.input(sid, Input::Durable { zxid })?;
            }
            Event::Zab {
                from,
                to,
                stream,
                message,
            } => {
                let key = stream_key(&self.nodes, from, to);
                if self.streams.get(&key) != Some(&stream) {
                    return Ok(());
                }
                if self.trace {
                    self.note(format!("{from} -> {to}: {message:?}"));
                }
                if !matches!(message, Message::Ping { .. }) {
                    self.delivered.push((self.now_ms, from, to, message.name()));
                }
                self.input(to, Input::Receive { from, message })?;
            }
            Event::Election {
                from,
                to,
                notification,
            } => {
                let now = self.now_ms;
                if self.trace {
                    self.note(format!("{from} => {to}: {notification:?}"));
                }
                let Some(election) = self.nodes.get_mut(&to).and_then(|n| n.election.as_mut())
                else {
                    return Ok(());
                };
                let outputs = election.handle(now, EInput::Receive { from, notification });
                self.carry_election(to, outputs)?;
            }
            Event::Connect {
                learner,
                leader,
                life,
            } => {
                if self.nodes[&learner].life != life || !self.nodes[&learner].alive() {
                    return Ok(());
                }
                let leader_accepts = self.nodes[&leader]
                    .state()
                    .is_some_and(|s| matches!(s, State::Leading { .. }));
                let reachable = !self.cut.contains(&(learner, leader))
                    && !self.cut.contains(&(leader, learner));
                if leader_accepts && reachable {
                    let id = self.next_stream;
                    self.next_stream += 1;
                    self.streams
                        .insert(stream_key(&self.nodes, learner, leader), id);
                    self.input(learner, Input::Connected { peer: leader })?;
                } else {
                    self.input(learner, Input::Disconnected { peer: leader })?;
                }
            }
            Event::Closed { to, peer } => {
                let key = stream_key(&self.nodes, to, peer);
                // A stream opened since then is not the one that closed.
                if !self.streams.contains_key(&key) {
                    self.input(to, Input::Disconnected { peer })?;
                }
            }
            Event::LogRead {
                leader,
                life,
                learner,
                stream,
                entries,
                last,
            } => {
                if self.nodes[&leader].life == life {
                    self.input(
                        leader,
                        Input::LogRead {
                            learner,
                            stream,
                            entries,
                            last,
                        },
                    )?;
                }
            }
            Event::SnapPiece {
                leader,
                life,
                learner,
                stream,
                data,
                last,
            } => {
                if self.nodes[&leader].life == life {
                    self.input(
                        leader,
                        Input::SnapshotPiece {
                            learner,
                            stream,
                            data,
                            last,
                        },
                    )?;
                }
            }
            Event::Client => {
                if self.clients {
                    self.propose_everywhere()?;
                }
                let d = self.rng.range(5, 40);
                self.schedule(d, Event::Client);
            }
            Event::Fault => {
                if self.faults.fault_every_ms == 0 {
                    return Ok(());
                }
                self.random_fault()?;
                let every = self.faults.fault_every_ms;
                if every > 0 {
                    let d = self.rng.range(every / 2, every * 3 / 2);
                    self.schedule(d, Event::Fault);
                }
            }
            Event::Heal => self.heal(),
        }
        Ok(())
    }

    /// `sid` proposes a txn if it is an established leader; returns its zxid.
    pub fn propose(&mut self, sid: Sid) -> Result<Option<Zxid>, String> {
        let Some(zxid) = self.nodes[&sid].zab.as_ref().and_then(|z| z.next_zxid()) else {
            return Ok(None);
        };
        self.next_txn += 1;
        let data = Bytes::from(format!("txn {} by {sid}", self.next_txn));
        if self.proposed.insert(zxid, data.clone()).is_some() {
            return Err(format!("zxid {zxid} handed out twice"));
        }
        self.input(sid, Input::Propose(Entry { zxid, data }))?;
        Ok(Some(zxid))
    }

    /// Autopurge on `sid`, as a server's host does it: Zab cuts its history at the last
    /// txn it applied (a snapshot there), then the log up to it moves into the snapshot.
    pub fn compact(&mut self, sid: Sid) -> Result<Zxid, zk_replication::CompactError> {
        let node = self.nodes.get_mut(&sid).expect("a member");
        let zab = node.zab.as_mut().expect("a live member");
        let cut = zab.compact(zab.applied())?;
        let moved: Vec<Entry> = node
            .disk
            .store
            .entries()
            .iter()
            .take_while(|e| e.zxid <= cut)
            .cloned()
            .collect();
        node.disk.snap.extend(moved);
        node.disk.store.purge(cut);
        self.note(format!("compact {sid} at {cut}"));
        Ok(cut)
    }

    /// Whether `zxid` is committed.
    pub fn committed(&self, zxid: Zxid) -> bool {
        self.chain.iter().any(|e| e.zxid == zxid)
    }

    /// The member leading with an established epoch, if one is.
    pub fn leader(&self) -> Option<Sid> {
        self.nodes.values().find_map(|n| {
            matches!(
                n.state(),
                Some(State::Leading {
                    established: true,
                    ..
                })
            )
            .then_some(n.sid)
        })
    }

    /// Every established leader proposes a txn, sometimes; serving followers forward a
    /// client's request, sometimes, which has their leader tell them how far its log is
    /// durable (`LOGGED`), so that they apply on it and their own log.
    fn propose_everywhere(&mut self) -> Result<(), String> {
        for sid in self.sids() {
            let follows = matches!(
                self.nodes[&sid].state(),
                Some(State::Learning {
                    observer: false,
                    serving: true,
                    ..
                })
            );
            // The leader's `Output::Request` is dropped (below): what is proposed comes
            // from `propose`, the request only marks its follower as having a client.
            if follows && self.forwards && self.rng.chance(500) {
                let data = Bytes::from_static(b"a client's request");
                self.input(sid, Input::Forward { data })?;
            }
            let Some(zxid) = self.nodes[&sid].zab.as_ref().and_then(|z| z.next_zxid()) else {
                continue;
            };
            let _ = zxid;
            if self.rng.chance(700) {
                self.propose(sid)?;
            }
        }
        Ok(())
    }

    fn random_fault(&mut self) -> Result<(), String> {
        let sids = self.sids();
        let pick = sids[self.rng.below(sids.len() as u64) as usize];
        match self.rng.below(10) {
            0..=2 => {
                if self.nodes[&pick].alive() {
                    self.crash(pick);
                } else {
                    self.start(pick)?;
                }
            }
            3 => {
                // Crash whoever leads.
                let leader = sids
                    .iter()
                    .copied()
                    .find(|s| matches!(self.nodes[s].state(), Some(State::Leading { .. })));
                if let Some(leader) = leader {
                    self.crash(leader);
                }
            }
            4 => {
                let down: Vec<Sid> = sids
                    .iter()
                    .copied()
                    .filter(|s| !self.nodes[s].alive())
                    .collect();
                for sid in down {
                    self.start(sid)?;
                }
            }
            5 => {
                let side: Vec<Sid> = sids
                    .iter()
                    .copied()
                    .filter(|_| self.rng.chance(400))
                    .collect();
                self.partition(&side);
            }
            6 => {
                let other = sids[self.rng.below(sids.len() as u64) as usize];
                if other != pick {
                    self.cut_one_way(pick, other);
                }
            }
            7 | 8 => self.heal(),
            _ => {
                let streams: Vec<(Sid, Sid)> = self.streams.keys().copied().collect();
                if !streams.is_empty() {
                    let (a, b) = streams[self.rng.below(streams.len() as u64) as usize];
                    self.break_stream(a, b);
                }
            }
        }
        Ok(())
    }

    fn input(&mut self, sid: Sid, input: Input) -> Result<(), String> {
        let now = self.now_ms;
        let Some(zab) = self.nodes.get_mut(&sid).and_then(|n| n.zab.as_mut()) else {
            return Ok(());
        };
        let outputs = zab.handle(now, input);
        self.carry(sid, outputs)
    }

    fn carry_election(&mut self, sid: Sid, outputs: Vec<EOutput>) -> Result<(), String> {
        for output in outputs {
            match output {
                EOutput::Send { to, notification } => {
                    if self.cut.contains(&(sid, to)) || self.rng.chance(self.faults.election_loss) {
                        continue;
                    }
                    let copies = if self.rng.chance(self.faults.election_duplicate) {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        let d = self.delay();
                        self.schedule(
                            d,
                            Event::Election {
                                from: sid,
                                to,
                                notification,
                            },
                        );
                    }
                }
                EOutput::Decided(decision) => {
                    let election_epoch = decision.vote.election_epoch;
                    let input = match decision.state {
                        ServerState::Leading => Input::Lead { election_epoch },
                        _ => Input::Follow {
                            leader: decision.vote.leader,
                            election_epoch,
                        },
                    };
                    self.note(format!(
                        "{sid} decided {:?} {}",
                        decision.state, decision.vote.leader
                    ));
                    self.input(sid, input)?;
                }
                EOutput::Looking { .. } | EOutput::MembershipHeard { .. } => {}
            }
        }
        Ok(())
    }

    /// Carries out a member's Zab outputs in order; may crash it half way.
    fn carry(&mut self, sid: Sid, outputs: Vec<Output>) -> Result<(), String> {
        for output in outputs {
            if !self.nodes[&sid].alive() {
                return Ok(());
            }
            if self.faults.step_crash > 0 && self.rng.below(100_000) < self.faults.step_crash {
                self.note(format!("{sid} crashes before {output:?}"));
                self.crash(sid);
                return Ok(());
            }
            self.carry_one(sid, output)?;
        }
        Ok(())
    }

    fn carry_one(&mut self, sid: Sid, output: Output) -> Result<(), String> {
        match output {
            Output::Send { to, message } => self.send(sid, to, message),
            Output::Connect { peer } => {
                let life = self.nodes[&sid].life;
                let d = self.delay();
                self.schedule(
                    d,
                    Event::Connect {
                        learner: sid,
                        leader: peer,
                        life,
                    },
                );
            }
            Output::Disconnect { peer } => {
                let key = stream_key(&self.nodes, sid, peer);
                if self.streams.remove(&key).is_some() {
                    let d = self.delay();
                    self.schedule(
                        d,
                        Event::Closed {
                            to: peer,
                            peer: sid,
                        },
                    );
                }
            }
            Output::SetAcceptedEpoch(epoch) => {
                let store = &mut self.node(sid).disk.store;
                if epoch < store.epochs().0 {
                    return Err(format!("{sid}: acceptedEpoch goes back to {epoch}"));
                }
                store.set_accepted_epoch(epoch).map_err(|e| e.to_string())?;
            }
            Output::SetCurrentEpoch(epoch) => {
                let store = &mut self.node(sid).disk.store;
                let (accepted, current) = store.epochs();
                if epoch < current || epoch > accepted {
                    return Err(format!(
                        "{sid}: currentEpoch {epoch} with current {current} and accepted {accepted}"
                    ));
                }
                store.set_current_epoch(epoch).map_err(|e| e.to_string())?;
            }
            Output::Append(entry) => {
                if self.proposed.get(&entry.zxid) != Some(&entry.data) {
                    return Err(format!("{sid} logs {} that was never proposed", entry.zxid));
                }
                let life = self.nodes[&sid].life;
                let node = self.node(sid);
                let last = node.disk.last();
                let next = (entry.zxid.epoch() == last.epoch() && entry.zxid.0 == last.0 + 1)
                    || (entry.zxid.epoch() > last.epoch() && entry.zxid.counter() == 1);
                if !next {
                    return Err(format!("{sid} logs {} after {last}", entry.zxid));
                }
                node.disk
                    .store
                    .append(&entry)
                    .map_err(|e| format!("{sid}: {e}"))?;
                if !node.fsync_scheduled {
                    node.fsync_scheduled = true;
                    let d = if self.lying_fsync.contains(&sid) {
                        0
                    } else {
                        match self.fsync_ms.get(&sid) {
                            Some(ms) => *ms,
                            None => self.rng.range(1, 15),
                        }
                    };
                    self.schedule(d, Event::Fsync(sid, life));
                }
            }
            Output::Truncate { zxid } => self.truncate(sid, zxid)?,
            Output::Deliver(entry) => self.deliver(sid, entry)?,
            Output::ReadLog {
                learner,
                stream,
                after,
                through,
                batch,
            } => {
                let entries = self
                    .node(sid)
                    .disk
                    .store
                    .read(after, through, usize::MAX)
                    .map_err(|e| e.to_string())?;
                let life = self.nodes[&sid].life;
                let chunks: Vec<Vec<Entry>> = if entries.is_empty() {
                    vec![Vec::new()]
                } else {
                    entries.chunks(batch).map(|c| c.to_vec()).collect()
                };
                let n = chunks.len();
                let mut at = 0;
                for (i, entries) in chunks.into_iter().enumerate() {
                    at += self.rng.range(0, 12);
                    self.schedule(
                        at,
                        Event::LogRead {
                            leader: sid,
                            life,
                            learner,
                            stream,
                            entries,
                            last: i + 1 == n,
                        },
                    );
                }
            }
            Output::SendSnapshot {
                learner,
                stream,
                zxid,
            } => {
                let node = &self.nodes[&sid];
                let at = node.applied.last().map_or(Zxid(0), |e| e.zxid);
                if at != zxid {
                    return Err(format!("{sid} snapshots at {zxid} but applied {at}"));
                }
                let life = node.life;
                let pieces: Vec<Bytes> = if node.applied.is_empty() {
                    vec![Bytes::new()]
                } else {
                    node.applied.chunks(5).map(encode).collect()
                };
                let n = pieces.len();
                let mut at = 0;
                for (i, data) in pieces.into_iter().enumerate() {
                    at += self.rng.range(0, 12);
                    self.schedule(
                        at,
                        Event::SnapPiece {
                            leader: sid,
                            life,
                            learner,
                            stream,
                            data,
                            last: i + 1 == n,
                        },
                    );
                }
            }
            Output::SnapshotBegin { .. } => self.node(sid).snapshot_rx = Some(Vec::new()),
            Output::SnapshotPiece(data) => match &mut self.node(sid).snapshot_rx {
                Some(rx) => rx.push(data),
                None => return Err(format!("{sid}: snapshot piece without a snapshot")),
            },
            Output::SnapshotEnd { zxid } => self.install_snapshot(sid, zxid)?,
            Output::State(state) => self.state_changed(sid, state)?,
            Output::Request { .. }
            | Output::Touched { .. }
            | Output::Revalidate { .. }
            | Output::Revalidated { .. }
            | Output::Synced { .. }
            | Output::Activated { .. } => {}
        }
        Ok(())
    }

    fn node(&mut self, sid: Sid) -> &mut Node {
        self.nodes.get_mut(&sid).expect("a member")
    }

    fn send(&mut self, from: Sid, to: Sid, message: Message) {
        match &message {
            Message::Diff { .. } => self.stats.diffs += 1,
            Message::Trunc { .. } => self.stats.truncs += 1,
            Message::Snap { .. } => self.stats.snaps += 1,
            _ => {}
        }
        let key = stream_key(&self.nodes, from, to);
        let Some(&stream) = self.streams.get(&key) else {
            return;
        };
        if self.cut.contains(&(from, to)) {
            // A stream never loses a message and carries on: across a cut it stalls,
            // silently, until the ends give up on it.
            self.streams.remove(&key);
            return;
        }
        // One stream is ordered: a message never overtakes an earlier one.
        let d = self.delay();
        let at = self.now_ms + d;
        let floor = self.last_at.get(&(from, to)).copied().unwrap_or(0);
        let at = at.max(floor);
        self.last_at.insert((from, to), at);
        self.seq += 1;
        self.queue.push(Queued {
            at_ms: at,
            seq: self.seq,
            event: Event::Zab {
                from,
                to,
                stream,
                message,
            },
        });
    }

    fn truncate(&mut self, sid: Sid, zxid: Zxid) -> Result<(), String> {
        let chain_len = self.chain.len();
        let node = self.nodes.get_mut(&sid).expect("a member");
        for (i, entry) in node.applied.iter().enumerate() {
            if entry.zxid > zxid && i < chain_len && self.chain[i] == *entry {
                return Err(format!(
                    "{sid} truncates committed txn {} (TRUNC {zxid})",
                    entry.zxid
                ));
            }
        }
        node.applied.retain(|e| e.zxid <= zxid);
        node.verified = node.verified.min(node.applied.len());
        node.disk.store.truncate(zxid).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn install_snapshot(&mut self, sid: Sid, zxid: Zxid) -> Result<(), String> {
        let node = self.nodes.get_mut(&sid).expect("a member");
        let pieces = node
            .snapshot_rx
            .take()
            .ok_or("snapshot end without a snapshot")?;
        let entries: Vec<Entry> = pieces.iter().flat_map(|p| decode(p)).collect();
        let at = entries.last().map_or(Zxid(0), |e| e.zxid);
        if at != zxid {
            return Err(format!("{sid}: snapshot at {zxid} holds txns up to {at}"));
        }
        node.disk.snap = entries.clone();
        node.disk.store.reset(zxid).map_err(|e| e.to_string())?;
        node.applied = entries;
        node.verified = 0;
        self.check_prefix(sid)
    }

    /// `sid`'s applied state must agree with the committed sequence where both have txns.
    fn check_prefix(&mut self, sid: Sid) -> Result<(), String> {
        let node = self.nodes.get_mut(&sid).expect("a member");
        let n = node.applied.len().min(self.chain.len());
        for i in node.verified..n {
            if node.applied[i] != self.chain[i] {
                return Err(format!(
                    "{sid} applied {} at position {i} where the committed sequence has {}",
                    node.applied[i].zxid, self.chain[i].zxid
                ));
            }
        }
        node.verified = node.verified.max(n);
        Ok(())
    }

    fn deliver(&mut self, sid: Sid, entry: Entry) -> Result<(), String> {
        if self.proposed.get(&entry.zxid) != Some(&entry.data) {
            return Err(format!(
                "{sid} delivers {} that was never proposed",
                entry.zxid
            ));
        }
        let leading = matches!(self.nodes[&sid].state(), Some(State::Leading { .. }));
        let node = self.node(sid);
        if let Some(prev) = node.applied.last()
            && prev.zxid >= entry.zxid
        {
            return Err(format!("{sid} delivers {} after {}", entry.zxid, prev.zxid));
        }
        node.applied.push(entry);
        let idx = node.applied.len() - 1;
        self.check_prefix(sid)?;
        if idx >= self.chain.len() {
            // A follower applies ahead of its leader's COMMIT only what a quorum logged:
            // itself and, by `LOGGED`, the leader.
            let entry = &self.nodes[&sid].applied[idx];
            if !leading && !self.logged_by_quorum(sid, entry) {
                return Err(format!(
                    "{sid} delivers {} which no leader committed and no quorum logged",
                    entry.zxid
                ));
            }
            self.extend_chain(sid)?;
        }
        Ok(())
    }

    /// Whether `entry` is durable, as `sid` sees the membership, on a quorum of voters'
    /// disks (synced in the log, or in the snapshot) that includes `sid`'s own, each of a
    /// member whose `currentEpoch` is the entry's or later (one still syncing with an
    /// older leader may lose it to a TRUNC).
    fn logged_by_quorum(&self, sid: Sid, entry: &Entry) -> bool {
        let Some(zab) = self.nodes[&sid].zab.as_ref() else {
            return false;
        };
        let holders: Vec<Sid> = self
            .nodes
            .values()
            .filter(|n| {
                let store = &n.disk.store;
                let synced = &store.entries()[..store.entries().len() - store.unsynced()];
                let (_, current_epoch) = store.epochs();
                current_epoch >= entry.zxid.epoch()
                    && synced.iter().chain(&n.disk.snap).any(|e| e == entry)
            })
            .map(|n| n.sid)
            .collect();
        holders.contains(&sid) && zab.config().verifier.contains_quorum(holders.iter())
    }

    /// A member committed everything it applied (a leader, or a follower on a quorum's
    /// logs): the committed sequence must be a prefix of it, and grows to it.
    fn extend_chain(&mut self, sid: Sid) -> Result<(), String> {
        self.check_prefix(sid)?;
        let node = &self.nodes[&sid];
        if node.applied.len() < self.chain.len() {
            let lost = &self.chain[node.applied.len()];
            return Err(format!(
                "leader {sid} lacks committed txn {} (it applied {} txns, {} are committed)",
                lost.zxid,
                node.applied.len(),
                self.chain.len()
            ));
        }
        for entry in &node.applied[self.chain.len()..] {
            if let Some(prev) = self.chain.last()
                && prev.zxid >= entry.zxid
            {
                return Err(format!("committed {} after {}", entry.zxid, prev.zxid));
            }
            self.chain.push(entry.clone());
            self.stats.committed += 1;
        }
        let n = self.chain.len();
        self.node(sid).verified = n;
        Ok(())
    }

    fn state_changed(&mut self, sid: Sid, state: State) -> Result<(), String> {
        self.note(format!("{sid} is {state:?}"));
        let serving = matches!(
            state,
            State::Leading {
                established: true,
                ..
            } | State::Learning { serving: true, .. }
        );
        if serving {
            self.serving.insert(sid);
        } else if self.serving.remove(&sid) {
            *self.left_serving.entry(sid).or_default() += 1;
        }
        match state {
            State::Looking => {
                let now = self.now_ms;
                let node = self.node(sid);
                let (Some(zab), Some(election)) = (&node.zab, &mut node.election) else {
                    return Ok(());
                };
                election.set_peer_data(zab.peer_data());
                let outputs = election.handle(now, EInput::StartLooking);
                self.carry_election(sid, outputs)?;
            }
            State::Leading {
                epoch: Some(epoch),
                established: true,
            } => {
                if let Some(other) = self.leaders.insert(epoch, sid)
                    && other != sid
                {
                    return Err(format!(
                        "two leaders established in epoch {epoch}: {other} and {sid}"
                    ));
                }
                self.stats.leaders += 1;
                self.extend_chain(sid)?;
            }
            State::Learning { serving: true, .. } => {
                self.check_prefix(sid)?;
                let node = &self.nodes[&sid];
                if node.applied.len() > self.chain.len() {
                    return Err(format!(
                        "{sid} serves {} txns while {} are committed",
                        node.applied.len(),
                        self.chain.len()
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// After healing: every member serves and holds the committed sequence.
    pub fn converged(&self) -> bool {
        self.nodes
            .values()
            .all(|n| n.serving() && n.applied.len() == self.chain.len())
    }

    /// Why the ensemble has not converged, for a failure report.
    pub fn describe(&self) -> String {
        let mut s = format!("committed: {} txns", self.chain.len());
        if let Some(last) = self.chain.last() {
            s += &format!(" (last {})", last.zxid);
        }
        for node in self.nodes.values() {
            s += &format!(
                "\n  {}: {:?}, applied {}, logged {}, epochs {}/{}",
                node.sid,
                node.state(),
                node.applied.len(),
                node.disk.last(),
                node.disk.store.epochs().0,
                node.disk.store.epochs().1
            );
        }
        s
    }
}

/// The key of the stream between `a` and `b`, whichever leads.
fn stream_key(_nodes: &BTreeMap<Sid, Node>, a: Sid, b: Sid) -> (Sid, Sid) {
    (a.min(b), a.max(b))
}

/// A snapshot piece: the txns, each as zxid, length and data.
pub fn encode(entries: &[Entry]) -> Bytes {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(&e.zxid.0.to_be_bytes());
        out.extend_from_slice(&(e.data.len() as u32).to_be_bytes());
        out.extend_from_slice(&e.data);
    }
    Bytes::from(out)
}

/// The txns of a snapshot piece.
pub fn decode(mut data: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    while data.len() >= 12 {
        let zxid = i64::from_be_bytes(data[..8].try_into().expect("8 bytes"));
        let len = u32::from_be_bytes(data[8..12].try_into().expect("4 bytes")) as usize;
        out.push(Entry::new(
            Zxid(zxid),
            Bytes::copy_from_slice(&data[12..12 + len]),
        ));
        data = &data[12 + len..];
    }
    out
}

/// Events one run may take: far more than a healthy run needs.
const EVENTS_MAX: u64 = 2_000_000;

/// How long the phases of a seeded run last.
pub const FAULT_PHASE_MS: u64 = 20_000;
pub const LIVENESS_MS: u64 = 30_000;

/// One seeded run: faults for a while, then heal and require convergence.
pub fn run_seed(scenario: Scenario, seed: u64, trace: bool) -> Result<Stats, String> {
    run_seed_with(scenario, seed, trace, false, true)
}

/// [`run_seed`], optionally on disks that report writes durable before they are, and
/// with or without followers forwarding requests.
pub fn run_seed_with(
    scenario: Scenario,
    seed: u64,
    trace: bool,
    lying_disks: bool,
    forwards: bool,
) -> Result<Stats, String> {
    let mut rng = Rng(seed);
    let faults = Faults {
        election_loss: rng.range(0, 150),
        election_duplicate: rng.range(0, 100),
        delay_max_ms: rng.range(2, 40),
        step_crash: rng.range(0, 40),
        fault_every_ms: rng.range(150, 1_500),
    };
    let mut sim = Sim::new(scenario, seed, faults);
    sim.trace = trace;
    if lying_disks {
        sim.lying_fsync = sim.sids().into_iter().collect();
    }
    sim.forwards = forwards;
    let fail = |sim: &Sim, e: String| {
        format!(
            "{}:{seed}: {e}\nfaults: {:?}\n{}\nrecent events:\n{}",
            scenario.name(),
            sim.faults,
            sim.describe(),
            sim.recent()
        )
    };
    let result = (|| {
        sim.start_all()?;
        sim.run_until(FAULT_PHASE_MS)?;
        // Heal: no more faults, everyone up, the network whole.
        sim.faults = Faults::none();
        sim.heal();
        for sid in sim.sids() {
            sim.start(sid)?;
        }
        let committed_at_heal = sim.chain.len();
        let until = sim.now_ms + LIVENESS_MS;
        // New writes must commit after the heal.
        let grew = sim.run_while(until, |s| s.chain.len() > committed_at_heal + 5)?;
        if !grew {
            return Err("no new txn committed after healing".to_string());
        }
        sim.clients = false;
        let until = sim.now_ms + LIVENESS_MS;
        if !sim.run_while(until, Sim::converged)? {
            return Err(format!(
                "not converged {} s after healing",
                LIVENESS_MS / 1000
            ));
        }
        Ok(())
    })();
    sim.stats.simulated_ms = sim.now_ms;
    match result {
        Ok(()) => Ok(sim.stats),
        Err(e) => Err(fail(&sim, e)),
    }
}
