//! Deterministic simulation of whole ensembles: seeded message loss, delay, duplication
//! and reordering, symmetric and asymmetric partitions, crashes and restarts with
//! persisted epochs. Invariants are checked after every event; a failing run prints its
//! scenario and seed, and `ZK_ELECTION_SEED=<scenario>:<seed>` replays exactly it.
//! `ZK_ELECTION_SEEDS=<n>` changes how many seeds each scenario runs.

use std::collections::{BTreeMap, BTreeSet};

use zk_election::{
    Config, DecidedBy, Decision, Election, Hierarchical, Input, Lease, Notification, Output,
    PeerData, QuorumVerifier, ServerState, Sid, Timing, Vote,
};
use zk_jute::Zxid;

/// splitmix64: small, fast, and good enough to drive a simulation.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

/// The shape of an ensemble.
#[derive(Debug, Clone, Copy)]
enum Scenario {
    /// `n` participants, majority.
    Majority(u64),
    /// Seven participants and two observers.
    Observers,
    /// Six participants in three groups of two; server 6 weighs nothing.
    Hierarchical,
}

impl Scenario {
    fn name(self) -> String {
        match self {
            Scenario::Majority(n) => format!("maj{n}"),
            Scenario::Observers => "obs".to_string(),
            Scenario::Hierarchical => "hier".to_string(),
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "obs" => Some(Scenario::Observers),
            "hier" => Some(Scenario::Hierarchical),
            _ => name
                .strip_prefix("maj")?
                .parse()
                .ok()
                .map(Scenario::Majority),
        }
    }

    fn config(self, max_interval_ms: u64) -> Config {
        let mut config = match self {
            Scenario::Majority(n) => Config::majority(1..=n, []),
            Scenario::Observers => Config::majority(1..=7, [8, 9]),
            Scenario::Hierarchical => {
                let mut config = Config::majority(1..=6, []);
                let group_of = (1..=6u64).map(|sid| (sid, sid.div_ceil(2))).collect();
                let weight = [(6, 0)].into_iter().collect();
                config.verifier = QuorumVerifier::Hierarchical(Hierarchical::new(group_of, weight));
                config
            }
        };
        config.timing = Timing {
            max_notification_interval_ms: max_interval_ms,
            ..Timing::default()
        };
        config.with_lease(Lease {
            heartbeat_ms: 100,
            timeout_ms: 1_000,
        })
    }
}

/// A message in flight, with what the sender knew when it sent it (for the checks only;
/// the receiver sees the notification alone).
#[derive(Debug, Clone)]
struct InFlight {
    at_ms: u64,
    seq: u64,
    from: Sid,
    to: Sid,
    notification: Notification,
    sender_data: PeerData,
}

#[derive(Debug)]
struct Node {
    sid: Sid,
    /// `None` while crashed.
    election: Option<Election>,
    /// What survives a crash.
    data: PeerData,
    /// Per (sender, round): the state and data behind the last vote received.
    votes_seen: BTreeMap<(Sid, i64), (ServerState, PeerData)>,
}

/// Fault rates, in per mille, and delays.
#[derive(Debug, Clone, Copy)]
struct Faults {
    loss: u64,
    duplicate: u64,
    delay_max_ms: u64,
}

struct Sim {
    scenario: Scenario,
    config: Config,
    rng: Rng,
    now_ms: u64,
    seq: u64,
    nodes: Vec<Node>,
    net: Vec<InFlight>,
    /// Directed links that drop everything: (from, to).
    cut: BTreeSet<(Sid, Sid)>,
    faults: Faults,
    /// (leader, round) pairs the replication stand-in has established.
    established: BTreeSet<(Sid, i64)>,
    events: u64,
    decisions: u64,
    /// Steps in a row that did not advance time.
    stuck: u64,
    trace: Vec<String>,
}

const TRACE_KEEP: usize = 60;

impl Sim {
    fn new(scenario: Scenario, seed: u64) -> Self {
        let mut rng = Rng(seed ^ 0x5eed_0000_0000_0000);
        let max_interval_ms = [800, 1_600, 3_200][rng.below(3) as usize];
        let config = scenario.config(max_interval_ms);
        let nodes = config
            .members
            .keys()
            .map(|&sid| {
                // Random but plausible histories: some members are behind.
                let epoch = rng.range(1, 3) as i64;
                let data = PeerData {
                    current_epoch: epoch,
                    last_zxid: Zxid::new(epoch as u32, rng.range(0, 4) as u32).0,
                };
                Node {
                    sid,
                    election: None,
                    data,
                    votes_seen: BTreeMap::new(),
                }
            })
            .collect();
        let mut sim = Sim {
            scenario,
            config,
            rng,
            now_ms: 0,
            seq: 0,
            nodes,
            net: Vec::new(),
            cut: BTreeSet::new(),
            faults: Faults {
                loss: 0,
                duplicate: 0,
                delay_max_ms: 5,
            },
            established: BTreeSet::new(),
            events: 0,
            decisions: 0,
            stuck: 0,
            trace: Vec::new(),
        };
        for i in 0..sim.nodes.len() {
            sim.start(i);
        }
        sim
    }

    fn index(&self, sid: Sid) -> usize {
        self.nodes
            .iter()
            .position(|n| n.sid == sid)
            .expect("member")
    }

    fn log(&mut self, line: String) {
        if self.trace.len() == TRACE_KEEP {
            self.trace.remove(0);
        }
        self.trace.push(format!("{:>7}ms {line}", self.now_ms));
    }

    fn start(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let election =
            Election::new(self.config.clone(), node.sid, node.data).expect("valid config");
        node.election = Some(election);
        node.votes_seen.clear();
        let sid = node.sid;
        self.log(format!("start {sid} with {:?}", self.nodes[i].data));
        self.feed(i, Input::StartLooking);
    }

    fn crash(&mut self, i: usize) {
        let sid = self.nodes[i].sid;
        self.nodes[i].election = None;
        self.log(format!("crash {sid}"));
        for j in 0..self.nodes.len() {
            if j != i && self.nodes[j].election.is_some() && self.rng.chance(700) {
                self.feed(j, Input::PeerDisconnected(sid));
            }
        }
    }

    fn feed(&mut self, i: usize, input: Input) {
        let now = self.now_ms;
        let Some(election) = self.nodes[i].election.as_mut() else {
            return;
        };
        let outputs = election.handle(now, input);
        self.events += 1;
        let sid = self.nodes[i].sid;
        for output in outputs {
            match output {
                Output::Send { to, notification } => self.send(sid, to, notification),
                Output::Decided(decision) => self.decided(i, decision),
                Output::Looking { round } => self.log(format!("{sid} looking in round {round}")),
                Output::MembershipHeard { .. } => {}
            }
        }
    }

    fn send(&mut self, from: Sid, to: Sid, notification: Notification) {
        assert_ne!(from, to, "a node never sends to itself over the network");
        let sender_data = self.nodes[self.index(from)].data;
        let copies = if self.rng.chance(self.faults.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.cut.contains(&(from, to)) || self.rng.chance(self.faults.loss) {
                continue;
            }
            self.seq += 1;
            let at_ms = self.now_ms + self.rng.range(1, self.faults.delay_max_ms.max(1));
            self.net.push(InFlight {
                at_ms,
                seq: self.seq,
                from,
                to,
                notification,
                sender_data,
            });
        }
    }

    fn decided(&mut self, i: usize, decision: Decision) {
        self.decisions += 1;
        let sid = self.nodes[i].sid;
        self.log(format!(
            "{sid} {} {} via {:?} quorum {:?}",
            decision.state, decision.vote, decision.via, decision.quorum
        ));
        let verifier = &self.config.verifier;
        assert!(
            verifier.contains_quorum(&decision.quorum),
            "decision without a quorum"
        );
        assert!(
            verifier.weight(decision.vote.leader) > 0,
            "a zero-weight leader was chosen"
        );
        assert!(
            verifier.is_voter(decision.vote.leader),
            "a non-voter was chosen"
        );
        let expected = if decision.vote.leader == sid {
            ServerState::Leading
        } else if verifier.is_voter(sid) {
            ServerState::Following
        } else {
            ServerState::Observing
        };
        assert_eq!(decision.state, expected);
        if decision.via == DecidedBy::Round {
            self.check_greatest(i, &decision);
        }
    }

    /// The chosen leader is at least as recent as every member whose looking vote made
    /// the quorum, judged by what each member had when it cast that vote.
    fn check_greatest(&self, i: usize, decision: &Decision) {
        let node = &self.nodes[i];
        let round = decision.vote.election_epoch;
        let chosen = decision.vote.order_key();
        for &q in &decision.quorum {
            let data = if q == node.sid {
                Some(node.data)
            } else {
                match node.votes_seen.get(&(q, round)) {
                    Some((ServerState::Looking, data)) => Some(*data),
                    // Members that counted by following may have joined an established
                    // leader with more history than it: that is ZooKeeper's rule too.
                    _ => None,
                }
            };
            if let Some(data) = data {
                let theirs = (data.current_epoch, data.last_zxid, q);
                assert!(
                    chosen >= theirs,
                    "leader {} {chosen:?} chosen over quorum member {q} {theirs:?}",
                    decision.vote.leader
                );
            }
        }
    }

    fn deliver(&mut self, message: InFlight) {
        let i = self.index(message.to);
        if self.nodes[i].election.is_none() {
            return;
        }
        let n = message.notification;
        self.nodes[i].votes_seen.insert(
            (message.from, n.vote.election_epoch),
            (n.state, message.sender_data),
        );
        self.feed(
            i,
            Input::Receive {
                from: message.from,
                notification: n,
            },
        );
    }

    /// The replication stand-in: a leader with a quorum following it establishes a new
    /// epoch and syncs its followers, which persist it.
    fn establish(&mut self) {
        let mut backers: BTreeMap<(Sid, i64, i64), Vec<usize>> = BTreeMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if let Some(e) = &node.election {
                if matches!(e.state(), ServerState::Following | ServerState::Leading) {
                    let v = e.vote();
                    backers
                        .entry((v.leader, v.peer_epoch, v.election_epoch))
                        .or_default()
                        .push(i);
                }
            }
        }
        for ((leader, _, round), members) in backers {
            let li = self.index(leader);
            let leading = self.nodes[li]
                .election
                .as_ref()
                .is_some_and(|e| e.state() == ServerState::Leading);
            let sids: Vec<Sid> = members.iter().map(|&i| self.nodes[i].sid).collect();
            if !leading
                || !self.config.verifier.contains_quorum(&sids)
                || self.established.contains(&(leader, round))
            {
                continue;
            }
            self.established.insert((leader, round));
            let epoch = members
                .iter()
                .map(|&i| self.nodes[i].data.current_epoch)
                .max()
                .unwrap_or(0)
                + 1;
            let data = PeerData {
                current_epoch: epoch,
                last_zxid: Zxid::new(epoch as u32, self.rng.range(0, 50) as u32).0,
            };
            self.log(format!(
                "leader {leader} establishes epoch {epoch} with {sids:?}"
            ));
            for &i in &members {
                self.nodes[i].data = data;
                if let Some(e) = self.nodes[i].election.as_mut() {
                    e.set_peer_data(data);
                }
            }
        }
    }

    /// No two leaders of one round each backed by a quorum of members that currently
    /// believe in them.
    fn check_safety(&self) {
        let mut believers: BTreeMap<(i64, Sid), Vec<Sid>> = BTreeMap::new();
        for node in &self.nodes {
            let Some(e) = &node.election else { continue };
            if e.state() == ServerState::Looking {
                continue;
            }
            let v = e.vote();
            if e.state() == ServerState::Leading {
                assert_eq!(v.leader, node.sid, "a leader must lead itself");
            }
            believers
                .entry((v.election_epoch, v.leader))
                .or_default()
                .push(node.sid);
        }
        let mut backed: BTreeMap<i64, Sid> = BTreeMap::new();
        for ((round, leader), sids) in believers {
            if self.config.verifier.contains_quorum(&sids) {
                if let Some(other) = backed.insert(round, leader) {
                    panic!(
                        "round {round}: leaders {other} and {leader} are both backed by a quorum"
                    );
                }
            }
        }
    }

    /// Whether the live voters agree on one live leader (and live observers observe it).
    fn settled_leader(&self) -> Option<Vote> {
        let mut leader_vote = None;
        for node in &self.nodes {
            let Some(e) = &node.election else { continue };
            if e.state() == ServerState::Leading {
                if leader_vote.is_some() {
                    return None;
                }
                leader_vote = Some(e.vote());
            }
        }
        let lv = leader_vote?;
        for node in &self.nodes {
            let Some(e) = &node.election else { continue };
            let v = e.vote();
            let ok = match e.state() {
                ServerState::Leading => true,
                ServerState::Following | ServerState::Observing => {
                    v.leader == lv.leader && v.peer_epoch == lv.peer_epoch
                }
                ServerState::Looking => false,
            };
            if !ok {
                return None;
            }
        }
        Some(lv)
    }

    /// Advances to the next event (message, timer, or `limit_ms`) and handles it.
    fn step(&mut self, limit_ms: u64) {
        let next_msg = self.net.iter().map(|m| m.at_ms).min();
        let next_timer = self
            .nodes
            .iter()
            .filter_map(|n| n.election.as_ref()?.next_deadline_ms())
            .min();
        let next = [next_msg, next_timer, Some(limit_ms)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(limit_ms);
        if next <= self.now_ms {
            self.stuck += 1;
            assert!(
                self.stuck < 100_000,
                "time does not advance at {} ms",
                self.now_ms
            );
        } else {
            self.stuck = 0;
        }
        self.now_ms = self.now_ms.max(next);
        // Messages due now, in (time, seq) order; delays already reorder them.
        let mut due: Vec<InFlight> = Vec::new();
        self.net.retain(|m| {
            if m.at_ms <= next {
                due.push(m.clone());
                false
            } else {
                true
            }
        });
        due.sort_by_key(|m| (m.at_ms, m.seq));
        for m in due {
            self.deliver(m);
            self.check_safety();
        }
        for i in 0..self.nodes.len() {
            let due = self.nodes[i]
                .election
                .as_ref()
                .and_then(Election::next_deadline_ms)
                .is_some_and(|d| d <= self.now_ms);
            if due {
                self.feed(i, Input::Tick);
                self.check_safety();
            }
        }
        self.establish();
        self.check_safety();
    }

    fn random_fault(&mut self) {
        let n = self.nodes.len();
        match self.rng.below(10) {
            0 | 1 => {
                let i = self.rng.below(n as u64) as usize;
                if self.nodes[i].election.is_some() {
                    self.crash(i);
                } else {
                    self.start(i);
                }
            }
            2 => {
                // A minority/majority split (or a random one).
                let mut side: BTreeSet<Sid> = BTreeSet::new();
                let size = self.rng.range(1, n as u64 - 1);
                while side.len() < size as usize {
                    side.insert(self.nodes[self.rng.below(n as u64) as usize].sid);
                }
                self.log(format!("partition {side:?} from the rest"));
                for a in &self.nodes {
                    for b in &self.nodes {
                        if side.contains(&a.sid) != side.contains(&b.sid) {
                            self.cut.insert((a.sid, b.sid));
                        }
                    }
                }
            }
            3 => {
                // Asymmetric: one direction of one link.
                let a = self.nodes[self.rng.below(n as u64) as usize].sid;
                let b = self.nodes[self.rng.below(n as u64) as usize].sid;
                if a != b {
                    self.log(format!("cut {a} -> {b}"));
                    self.cut.insert((a, b));
                }
            }
            4 => {
                self.log("heal partitions".to_string());
                self.cut.clear();
            }
            5 => {
                // A member's leader or itself restarts the election (as replication would).
                let i = self.rng.below(n as u64) as usize;
                if self.nodes[i]
                    .election
                    .as_ref()
                    .is_some_and(|e| e.state() != ServerState::Looking)
                {
                    self.log(format!("{} restarts its election", self.nodes[i].sid));
                    self.feed(i, Input::StartLooking);
                }
            }
            _ => {
                self.faults = Faults {
                    loss: self.rng.range(0, 300),
                    duplicate: self.rng.range(0, 200),
                    delay_max_ms: self.rng.range(1, 400),
                };
                self.log(format!("network {:?}", self.faults));
            }
        }
    }

    /// Faults for a while, then a healed network with a quorum up: a leader must follow
    /// within the bound. Returns the time the liveness phase took.
    fn run(&mut self) -> u64 {
        let chaos_until = self.rng.range(1_000, 8_000);
        let mut next_fault = 0;
        while self.now_ms < chaos_until {
            if self.now_ms >= next_fault {
                self.random_fault();
                next_fault = self.now_ms + self.rng.range(20, 600);
            }
            self.step(next_fault.min(chaos_until));
        }
        // Liveness: heal, keep at most a minority of voters down, bound the delay.
        self.cut.clear();
        self.faults = Faults {
            loss: 0,
            duplicate: 0,
            delay_max_ms: 20,
        };
        let voters = self.config.verifier.voters();
        let keep_down = self.rng.below((voters.len() as u64 - 1) / 2 + 1) as usize;
        let mut down = 0;
        for i in 0..self.nodes.len() {
            let voter = voters.contains(&self.nodes[i].sid);
            if self.nodes[i].election.is_none() {
                if voter && down < keep_down && !matches!(self.scenario, Scenario::Hierarchical) {
                    down += 1;
                } else {
                    self.start(i);
                }
            }
        }
        self.log(format!("healed; {down} voters stay down"));
        let healed = self.now_ms;
        let max_interval = self.config.timing.max_notification_interval_ms;
        let lease = self.config.lease.expect("lease").timeout_ms;
        let bound = 2 * max_interval + 3 * lease + 2_000;
        // A leader counts once it has held for two lease periods (a leader left over
        // from the faults may still lose its lease right after healing).
        let hold = 2 * lease;
        let mut since: Option<(u64, Vote)> = None;
        loop {
            match (self.settled_leader(), since) {
                (Some(v), Some((at, w))) if v == w => {
                    if self.now_ms >= at + hold {
                        return at - healed;
                    }
                }
                (Some(v), _) => since = Some((self.now_ms, v)),
                (None, _) => since = None,
            }
            assert!(
                self.now_ms < healed + bound,
                "no stable leader {bound} ms after healing"
            );
            let limit = since.map_or(healed + bound, |(at, _)| at + hold);
            self.step(limit.min(healed + bound));
        }
    }
}

fn run_seed(scenario: Scenario, seed: u64) -> (u64, u64, u64) {
    let mut sim = Sim::new(scenario, seed);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run()));
    match result {
        Ok(elapsed) => (elapsed, sim.events, sim.decisions),
        Err(panic) => {
            eprintln!("last events:\n{}", sim.trace.join("\n"));
            eprintln!(
                "FAILED: replay with ZK_ELECTION_SEED={}:{seed} cargo test -p zk-election --test simulation",
                scenario.name()
            );
            std::panic::resume_unwind(panic);
        }
    }
}

fn seeds(default: u64) -> u64 {
    std::env::var("ZK_ELECTION_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Runs `count` seeds of `scenario` (or only the replayed one), and reports.
fn run_many(scenario: Scenario, count: u64) {
    if let Ok(spec) = std::env::var("ZK_ELECTION_SEED") {
        let (name, seed) = spec
            .split_once(':')
            .expect("ZK_ELECTION_SEED=<scenario>:<seed>");
        if Scenario::parse(name).map(|s| s.name()) == Some(scenario.name()) {
            let (elapsed, events, _) = run_seed(scenario, seed.parse().expect("seed"));
            eprintln!("{name}:{seed}: leader {elapsed} ms after healing, {events} events");
        }
        return;
    }
    let mut worst = 0;
    let mut events = 0;
    let mut decisions = 0;
    for seed in 0..seeds(count) {
        let (elapsed, e, d) = run_seed(scenario, seed);
        worst = worst.max(elapsed);
        events += e;
        decisions += d;
    }
    eprintln!(
        "{}: {} seeds, {events} events, {decisions} decisions, slowest recovery {worst} ms",
        scenario.name(),
        seeds(count)
    );
}

#[test]
fn three_members() {
    run_many(Scenario::Majority(3), 1_000);
}

#[test]
fn five_members() {
    run_many(Scenario::Majority(5), 800);
}

#[test]
fn seven_members() {
    run_many(Scenario::Majority(7), 400);
}

#[test]
fn seven_members_two_observers() {
    run_many(Scenario::Observers, 200);
}

#[test]
fn hierarchical_groups() {
    run_many(Scenario::Hierarchical, 300);
}

#[test]
fn same_seed_same_run() {
    let a = {
        let mut sim = Sim::new(Scenario::Majority(5), 42);
        sim.run();
        (sim.trace.clone(), sim.events, sim.now_ms)
    };
    let mut sim = Sim::new(Scenario::Majority(5), 42);
    sim.run();
    assert_eq!((sim.trace, sim.events, sim.now_ms), a);
}
