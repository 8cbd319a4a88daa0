//! The election state machine: ZooKeeper's FastLeaderElection without threads, sockets or
//! clocks. The caller feeds [`Input`]s with the current time in milliseconds and carries
//! out the [`Output`]s; [`Election::next_deadline_ms`] says when to call back with
//! [`Input::Tick`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use tracing::{debug, info, trace, warn};
use zk_jute::Zxid;

use crate::config::{Config, Role};
use crate::error::ConfigError;
use crate::vote::{Notification, PeerData, ServerState, Sid, Vote};

/// The greatest round accepted from a peer: far beyond any real election count (one a
/// round), and far enough from `i64::MAX` that the clock never overflows.
const ROUND_MAX: i64 = i64::MAX / 2;

/// Something that happened to the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Start a new election round (at start-up, or when the leader is lost).
    StartLooking,
    /// A notification arrived from `from`.
    Receive {
        /// The sender.
        from: Sid,
        /// What it sent.
        notification: Notification,
    },
    /// Time passed: fire whatever timer is due.
    Tick,
    /// The transport lost its connection to `sid`. Until `sid` is heard from again, the
    /// finalize wait does not wait for its vote. With the [lease](crate::Lease) on, a
    /// follower or observer whose leader this is starts a new election.
    PeerDisconnected(Sid),
    /// A reconfiguration made `config` the ensemble's: its members and quorum rule count
    /// from now on. A member looking for a leader tells the new voters its vote.
    Reconfigure(Config),
}

/// Something the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `notification` to `to`. Delivery may fail or be late; the election copes.
    Send {
        /// The recipient.
        to: Sid,
        /// The message.
        notification: Notification,
    },
    /// The election is over: this server leads, follows or observes.
    Decided(Decision),
    /// A new round started; the server is looking for a leader.
    Looking {
        /// The round (logical clock).
        round: i64,
    },
    /// A peer counts a newer membership than this server's (with reconfiguration on):
    /// that membership was committed. ZooKeeper's notifications carry the membership
    /// itself, and a looking server adopts it; these carry only its version, and the
    /// replication layer, which may hold that membership pending, adopts it.
    MembershipHeard {
        /// The version (the zxid of the reconfiguration that made it).
        version: i64,
    },
}

/// How a decision was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecidedBy {
    /// A quorum voted for the leader in this server's current round.
    Round,
    /// A quorum already follows an established leader, and that leader says it leads.
    Established,
}

/// The end of an election at one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `Leading`, `Following` or `Observing`.
    pub state: ServerState,
    /// The winning vote (its `election_epoch` is the round it won in).
    pub vote: Vote,
    /// The voters whose votes made the quorum, in sid order.
    pub quorum: Vec<Sid>,
    /// How the quorum was found.
    pub via: DecidedBy,
}

/// A quorum found, waiting `finalizeWait` for a better vote before it becomes final.
#[derive(Debug, Clone)]
struct Finalizing {
    deadline_ms: u64,
    quorum: Vec<Sid>,
}

/// The liveness stand-in's bookkeeping while not looking.
#[derive(Debug, Clone, Default)]
struct Settled {
    since_ms: u64,
    next_heartbeat_ms: u64,
    heard_ms: BTreeMap<Sid, u64>,
}

type Tally = BTreeMap<Sid, (Vote, ServerState)>;

/// One server's fast leader election.
///
/// ```
/// use zk_election::{Config, Election, Input, Output, PeerData};
///
/// let config = Config::majority([1], []);
/// let mut election = Election::new(config, 1, PeerData::default()).unwrap();
/// // A quorum of one, and no other voter whose vote could be better: decided at once.
/// let outputs = election.handle(0, Input::StartLooking);
/// assert!(matches!(&outputs[..], [Output::Looking { .. }, Output::Decided(d)] if d.vote.leader == 1));
/// ```
#[derive(Debug, Clone)]
pub struct Election {
    config: Config,
    me: Sid,
    role: Role,
    data: PeerData,
    state: ServerState,
    logical_clock: i64,
    proposal: Vote,
    current: Vote,
    recvset: Tally,
    outofelection: Tally,
    notification_timeout_ms: u64,
    poll_deadline_ms: Option<u64>,
    finalizing: Option<Finalizing>,
    /// Voters whose stream the transport lost and who have not been heard from since.
    down: BTreeSet<Sid>,
    /// The newest membership version a peer's notification carried (or this server's).
    heard_version: i64,
    settled: Settled,
    /// Notifications to this server from itself, handled after the current input.
    inbox: VecDeque<Notification>,
}

impl Election {
    /// A server `me` of `config` with its persisted `data`, looking but not yet started:
    /// feed [`Input::StartLooking`] to begin.
    pub fn new(config: Config, me: Sid, data: PeerData) -> Result<Self, ConfigError> {
        config.validate()?;
        // With reconfiguration on, a server outside the membership (one a reconfiguration
        // removed) runs without a vote and follows whoever the members elect.
        let role = match config.role(me) {
            Some(role) => role,
            None if config.reconfig_enabled => Role::Participant,
            None => return Err(ConfigError::NotAMember(me)),
        };
        let min = config.timing.min_notification_interval_ms;
        let heard_version = config.version;
        let mut election = Election {
            config,
            me,
            role,
            data,
            state: ServerState::Looking,
            logical_clock: 0,
            proposal: Vote {
                leader: me,
                zxid: 0,
                election_epoch: 0,
                peer_epoch: 0,
            },
            current: Vote {
                leader: me,
                zxid: 0,
                election_epoch: 0,
                peer_epoch: 0,
            },
            recvset: Tally::new(),
            outofelection: Tally::new(),
            notification_timeout_ms: min,
            poll_deadline_ms: None,
            finalizing: None,
            down: BTreeSet::new(),
            heard_version,
            settled: Settled::default(),
            inbox: VecDeque::new(),
        };
        election.proposal = election.initial_vote();
        election.current = election.proposal;
        Ok(election)
    }

    /// This server's id.
    pub fn sid(&self) -> Sid {
        self.me
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> ServerState {
        self.state
    }

    /// The round (ZooKeeper's logical clock).
    pub fn logical_clock(&self) -> i64 {
        self.logical_clock
    }

    /// The newest membership version heard from a peer, or this server's own if newer
    /// ([`Output::MembershipHeard`]).
    pub fn heard_config_version(&self) -> i64 {
        self.heard_version
    }

    /// The vote this server holds: its proposal while looking, the decided vote otherwise.
    pub fn vote(&self) -> Vote {
        if self.state == ServerState::Looking {
            self.proposal_vote()
        } else {
            self.current
        }
    }

    /// The persisted history this server votes with.
    pub fn peer_data(&self) -> PeerData {
        self.data
    }

    /// Updates the persisted history (after the replication layer moved the epoch or
    /// logged more). It is used from the next round on.
    pub fn set_peer_data(&mut self, data: PeerData) {
        self.data = data;
    }

    /// The current notification timeout (doubles from `min` to `max` while no
    /// notification arrives).
    pub fn notification_timeout_ms(&self) -> u64 {
        self.notification_timeout_ms
    }

    /// When the caller should next feed [`Input::Tick`], if any timer is set.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let finalize = self.finalizing.as_ref().map(|f| f.deadline_ms);
        let heartbeat = match (self.state, &self.config.lease) {
            (ServerState::Looking, _) | (_, None) => None,
            (_, Some(_)) => Some(self.settled.next_heartbeat_ms),
        };
        [finalize.or(self.poll_deadline_ms), heartbeat]
            .into_iter()
            .flatten()
            .min()
    }

    /// Feeds one input at time `now_ms` and returns what to do.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::StartLooking => self.start_looking(now_ms, &mut out),
            Input::Receive { from, notification } => {
                self.receive(now_ms, from, notification, &mut out)
            }
            Input::Tick => self.tick(now_ms, &mut out),
            Input::Reconfigure(config) => {
                info!(
                    sid = self.me,
                    voters = ?config.verifier.voters(),
                    "the election counts a new membership"
                );
                self.role = config.role(self.me).unwrap_or(Role::Participant);
                self.heard_version = self.heard_version.max(config.version);
                self.config = config;
                if self.state == ServerState::Looking {
                    self.send_notifications(&mut out);
                }
            }
            Input::PeerDisconnected(sid) => {
                self.down.insert(sid);
                self.finalize_if_all_accounted(now_ms, &mut out);
                let learner = matches!(self.state, ServerState::Following | ServerState::Observing);
                if self.config.lease.is_some() && learner && self.current.leader == sid {
                    info!(sid = self.me, leader = sid, "connection to the leader lost");
                    self.start_looking(now_ms, &mut out);
                }
            }
        }
        while let Some(notification) = self.inbox.pop_front() {
            self.receive(now_ms, self.me, notification, &mut out);
        }
        out
    }

    fn is_participant(&self) -> bool {
        self.role == Role::Participant && self.config.verifier.is_voter(self.me)
    }

    /// The vote a server starts a round with: itself, unless it cannot be elected.
    fn initial_vote(&self) -> Vote {
        let (leader, zxid, peer_epoch) = if self.is_participant() {
            (self.me, self.data.last_zxid, self.data.current_epoch)
        } else {
            (self.me, i64::MIN, i64::MIN)
        };
        Vote {
            leader,
            zxid,
            election_epoch: self.logical_clock,
            peer_epoch,
        }
    }

    /// This member's proposal, as a looking member sends it.
    fn looking_notification(&self) -> Notification {
        Notification {
            vote: self.proposal_vote(),
            state: ServerState::Looking,
            config_version: self.config.version,
        }
    }

    fn proposal_vote(&self) -> Vote {
        Vote {
            election_epoch: self.logical_clock,
            ..self.proposal
        }
    }

    /// ZooKeeper's total order: whether `new` beats `current` (a leader of weight zero
    /// never does).
    fn supersedes(&self, new: &Vote, current: &Vote) -> bool {
        self.config.verifier.weight(new.leader) > 0 && new.order_key() > current.order_key()
    }

    fn start_looking(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        self.state = ServerState::Looking;
        // Rounds from peers are at most ROUND_MAX, so this cannot overflow.
        self.logical_clock = self.logical_clock.saturating_add(1);
        self.proposal = self.initial_vote();
        self.current = self.proposal;
        self.recvset.clear();
        self.outofelection.clear();
        self.finalizing = None;
        self.notification_timeout_ms = self.config.timing.min_notification_interval_ms;
        self.poll_deadline_ms = Some(now_ms + self.notification_timeout_ms);
        info!(sid = self.me, round = self.logical_clock, zxid = %Zxid(self.proposal.zxid), "new election");
        out.push(Output::Looking {
            round: self.logical_clock,
        });
        self.send_notifications(out);
    }

    /// Sends this server's proposal to every voter (itself included, through the inbox).
    fn send_notifications(&mut self, out: &mut Vec<Output>) {
        let notification = self.looking_notification();
        for sid in self.config.verifier.voters() {
            if sid == self.me {
                self.inbox.push_back(notification);
            } else {
                out.push(Output::Send {
                    to: sid,
                    notification,
                });
            }
        }
    }

    fn reply(&self, to: Sid, vote: Vote, state: ServerState, out: &mut Vec<Output>) {
        if to != self.me {
            out.push(Output::Send {
                to,
                notification: Notification {
                    vote,
                    state,
                    config_version: self.config.version,
                },
            });
        }
    }

    fn receive(&mut self, now_ms: u64, from: Sid, n: Notification, out: &mut Vec<Output>) {
        if n.vote.election_epoch > ROUND_MAX || n.vote.election_epoch < 0 {
            // A round no election reaches (rounds grow by one an election): adopting it
            // would make the next round overflow the clock.
            warn!(
                sid = self.me,
                from,
                round = n.vote.election_epoch,
                "notification with an impossible round dropped"
            );
            return;
        }
        if from != self.me {
            self.down.remove(&from);
        }
        if self.config.reconfig_enabled && n.config_version > self.heard_version {
            self.heard_version = n.config_version;
            out.push(Output::MembershipHeard {
                version: n.config_version,
            });
        }
        // Members settled under a newer membership than this one's (a reconfiguration
        // this member missed) are heard even where this membership would not count
        // them: their leader is followed if a quorum of this membership's voters follow
        // it, and the leader's NEWLEADER then brings the membership.
        let newer = self.config.reconfig_enabled
            && self.state == ServerState::Looking
            && n.config_version > self.config.version
            && matches!(n.state, ServerState::Following | ServerState::Leading);
        if newer {
            if self.config.role(from).is_none() {
                self.reply(from, self.vote(), self.state, out);
            }
            // The leader they follow may be outside this membership, which this member
            // does not notify: it is asked, so that it says it leads.
            let leader = n.vote.leader;
            let heard = self.outofelection.contains_key(&leader) || from == leader;
            if leader != self.me && !self.config.verifier.is_voter(leader) && !heard {
                let notification = self.looking_notification();
                out.push(Output::Send {
                    to: leader,
                    notification,
                });
            }
            // This member counts itself among them: it is about to follow that leader.
            self.outofelection.insert(from, (n.vote, n.state));
            let mut quorum = self.tally(&self.outofelection, &n.vote, n.state);
            quorum.push(self.me);
            if self.config.verifier.contains_quorum(&quorum)
                && self.leader_confirmed(&self.outofelection, &n.vote)
            {
                self.logical_clock = n.vote.election_epoch;
                self.decide(now_ms, n.vote, quorum, DecidedBy::Established, out);
            }
            return;
        }
        if self.config.role(from).is_none() {
            if self.config.reconfig_enabled {
                // A server joining the ensemble learns the leader from the members it
                // knows (ZooKeeper's answer to a server it does not count).
                self.reply(from, self.vote(), self.state, out);
                return;
            }
            debug!(
                sid = self.me,
                from, "notification from a non-member dropped"
            );
            return;
        }
        if !self.config.verifier.is_voter(from) {
            // A looking observer is answered at once; observers are never counted.
            if n.state == ServerState::Looking {
                self.reply(from, self.vote(), self.state, out);
            }
            return;
        }
        if self.state != ServerState::Looking {
            self.receive_settled(now_ms, from, n, out);
            return;
        }
        // Answer a looking peer that lags a round (ZooKeeper's rule) or that, in this
        // round, still holds a worse vote than ours: it missed our broadcast, and
        // without an answer it would learn our vote only when our notification timeout
        // fires, which its own re-sends keep postponing. An observer does not answer:
        // its vote counts for nothing, and the voter would answer the answer (it answers
        // every looking observer), forever.
        let lagging = n.vote.election_epoch < self.logical_clock;
        let behind =
            n.vote.election_epoch == self.logical_clock && self.supersedes(&self.proposal, &n.vote);
        if self.is_participant() && n.state == ServerState::Looking && (lagging || behind) {
            self.reply(from, self.proposal_vote(), ServerState::Looking, out);
        }
        if self.finalizing.is_some() {
            let better = self.config.verifier.is_voter(n.vote.leader)
                && self.supersedes(&n.vote, &self.proposal);
            if !better {
                // A following or leading member's vote is joined at once, as outside a
                // finalize wait, when a quorum of them agrees and the leader confirms:
                // a member restarting into an established ensemble may first hear the
                // looking votes its peers resend on reconnection, reach a quorum on
                // them, and would otherwise wait out finalizeWait with the answer in.
                let settled = matches!(n.state, ServerState::Following | ServerState::Leading);
                if settled && self.config.verifier.is_voter(n.vote.leader) {
                    self.receive_settled_vote(now_ms, from, n, out);
                    if self.state != ServerState::Looking {
                        return;
                    }
                }
                // A voter that now holds the proposal too is counted: once every voter
                // is accounted for, nothing better can come.
                let agrees = n.state == ServerState::Looking
                    && self.config.verifier.is_voter(from)
                    && n.vote == self.proposal_vote();
                if agrees {
                    self.recvset.insert(from, (n.vote, n.state));
                    self.finalize_if_all_accounted(now_ms, out);
                    if self.state != ServerState::Looking {
                        return;
                    }
                }
                trace!(
                    sid = self.me,
                    from, "no better vote while finalizing; discarded"
                );
                // Lease heartbeats repeat settled votes by design; they must not keep
                // postponing the decision.
                let heartbeat = self.config.lease.is_some() && n.state != ServerState::Looking;
                let deadline_ms = now_ms + self.config.timing.finalize_wait_ms;
                if let (Some(finalizing), false) = (&mut self.finalizing, heartbeat) {
                    finalizing.deadline_ms = deadline_ms;
                }
                return;
            }
            self.finalizing = None;
        }
        self.poll_deadline_ms = Some(now_ms + self.notification_timeout_ms);
        if !self.config.verifier.is_voter(n.vote.leader) {
            debug!(
                sid = self.me,
                from,
                leader = n.vote.leader,
                "vote for a non-voter ignored"
            );
            return;
        }
        match n.state {
            ServerState::Looking => self.receive_looking(now_ms, from, n.vote, out),
            ServerState::Observing => {}
            ServerState::Following | ServerState::Leading => {
                self.receive_settled_vote(now_ms, from, n, out)
            }
        }
    }

    fn receive_looking(&mut self, now_ms: u64, from: Sid, vote: Vote, out: &mut Vec<Output>) {
        if self.initial_vote().zxid == -1 || vote.zxid == -1 {
            return;
        }
        if vote.election_epoch > self.logical_clock {
            self.logical_clock = vote.election_epoch;
            self.recvset.clear();
            let initial = self.initial_vote();
            self.proposal = if self.supersedes(&vote, &initial) {
                vote
            } else {
                initial
            };
            self.send_notifications(out);
        } else if vote.election_epoch < self.logical_clock {
            return;
        } else if self.supersedes(&vote, &self.proposal) {
            self.proposal = vote;
            self.send_notifications(out);
        }
        self.recvset.insert(from, (vote, ServerState::Looking));
        let proposal = self.proposal_vote();
        let quorum = self.tally(&self.recvset, &proposal, ServerState::Looking);
        if self.config.verifier.contains_quorum(&quorum) {
            debug!(sid = self.me, %proposal, "quorum reached; waiting finalizeWait");
            self.finalizing = Some(Finalizing {
                deadline_ms: now_ms + self.config.timing.finalize_wait_ms,
                quorum,
            });
            self.finalize_if_all_accounted(now_ms, out);
        }
    }

    /// Ends the finalize wait early when no better vote can come: every other voter
    /// either holds this round's proposal or has lost its stream to this server (a
    /// crashed process resets its connections) and not been heard from since. The wait
    /// exists for votes still in flight; with every voter accounted for there are none,
    /// and the leader's death no longer costs a whole `finalizeWait` of unavailability.
    fn finalize_if_all_accounted(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let Some(finalizing) = &self.finalizing else {
            return;
        };
        if self.state != ServerState::Looking {
            return;
        }
        let proposal = self.proposal_vote();
        let accounted = |sid: &Sid| {
            *sid == self.me
                || self.down.contains(sid)
                || self
                    .recvset
                    .get(sid)
                    .is_some_and(|(v, s)| *s == ServerState::Looking && *v == proposal)
        };
        if !self.config.verifier.voters().iter().all(accounted) {
            return;
        }
        let quorum = finalizing.quorum.clone();
        debug!(sid = self.me, %proposal, down = ?self.down, "every voter accounted for");
        self.decide(now_ms, proposal, quorum, DecidedBy::Round, out);
    }

    /// A following or leading member's vote while looking: join it if a quorum agrees
    /// and the leader confirms, in this round or (out of election) in its own.
    fn receive_settled_vote(
        &mut self,
        now_ms: u64,
        from: Sid,
        n: Notification,
        out: &mut Vec<Output>,
    ) {
        let vote = n.vote;
        if vote.election_epoch == self.logical_clock {
            self.recvset.insert(from, (vote, n.state));
            let quorum = self.tally(&self.recvset, &vote, n.state);
            if self.config.verifier.contains_quorum(&quorum)
                && self.leader_confirmed(&self.recvset, &vote)
            {
                self.decide(now_ms, vote, quorum, DecidedBy::Round, out);
                return;
            }
        }
        self.outofelection.insert(from, (vote, n.state));
        let quorum = self.tally(&self.outofelection, &vote, n.state);
        if self.config.verifier.contains_quorum(&quorum)
            && self.leader_confirmed(&self.outofelection, &vote)
        {
            self.logical_clock = vote.election_epoch;
            self.decide(now_ms, vote, quorum, DecidedBy::Established, out);
        }
    }

    fn tally(&self, votes: &Tally, vote: &Vote, state: ServerState) -> Vec<Sid> {
        votes
            .iter()
            .filter(|(_, (v, s))| v.same_in_tally(*s, vote, state))
            .map(|(sid, _)| *sid)
            .collect()
    }

    /// A leader other than this server must itself have said it leads; this server may
    /// lead only in its current round.
    fn leader_confirmed(&self, votes: &Tally, vote: &Vote) -> bool {
        if vote.leader != self.me {
            matches!(votes.get(&vote.leader), Some((_, ServerState::Leading)))
        } else {
            self.logical_clock == vote.election_epoch
        }
    }

    fn decide(
        &mut self,
        now_ms: u64,
        vote: Vote,
        quorum: Vec<Sid>,
        via: DecidedBy,
        out: &mut Vec<Output>,
    ) {
        self.state = if vote.leader == self.me {
            ServerState::Leading
        } else if self.role == Role::Observer {
            ServerState::Observing
        } else {
            ServerState::Following
        };
        self.current = vote;
        self.recvset.clear();
        self.outofelection.clear();
        self.finalizing = None;
        self.poll_deadline_ms = None;
        self.inbox.clear();
        self.settled = Settled {
            since_ms: now_ms,
            next_heartbeat_ms: now_ms,
            heard_ms: BTreeMap::new(),
        };
        info!(sid = self.me, state = %self.state, %vote, ?via, "election over");
        out.push(Output::Decided(Decision {
            state: self.state,
            vote,
            quorum,
            via,
        }));
        if self.config.lease.is_some() {
            self.heartbeat(now_ms, out);
        }
    }

    /// A notification while following, leading or observing: answer a looking sender
    /// with the vote this server holds; otherwise it is a heartbeat for the lease.
    fn receive_settled(&mut self, now_ms: u64, from: Sid, n: Notification, out: &mut Vec<Output>) {
        if n.state == ServerState::Looking {
            self.reply(from, self.current, self.state, out);
            let lease = self.config.lease.is_some();
            // Only a round newer than the one it won in: older looking votes may still
            // be in flight.
            let newer = n.vote.election_epoch > self.current.election_epoch;
            if lease && self.state != ServerState::Leading && from == self.current.leader && newer {
                info!(sid = self.me, leader = from, "the leader is looking");
                self.start_looking(now_ms, out);
            }
            return;
        }
        let mine = (self.current, self.state);
        let agrees = n.vote.same_in_tally(n.state, &mine.0, mine.1);
        let counts = match self.state {
            ServerState::Leading => n.state == ServerState::Following && agrees,
            _ => n.state == ServerState::Leading && from == self.current.leader && agrees,
        };
        if counts {
            self.settled.heard_ms.insert(from, now_ms);
        }
    }

    fn tick(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        if self.state != ServerState::Looking {
            self.tick_settled(now_ms, out);
            return;
        }
        if let Some(finalizing) = &self.finalizing {
            if now_ms >= finalizing.deadline_ms {
                let quorum = finalizing.quorum.clone();
                self.decide(now_ms, self.proposal_vote(), quorum, DecidedBy::Round, out);
            }
            return;
        }
        if self.poll_deadline_ms.is_some_and(|d| now_ms >= d) {
            self.send_notifications(out);
            let t = &self.config.timing;
            self.notification_timeout_ms =
                (self.notification_timeout_ms * 2).min(t.max_notification_interval_ms);
            self.poll_deadline_ms = Some(now_ms + self.notification_timeout_ms);
            debug!(
                sid = self.me,
                timeout_ms = self.notification_timeout_ms,
                "notification timeout"
            );
        }
    }

    fn tick_settled(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let Some(lease) = self.config.lease else {
            return;
        };
        if now_ms >= self.settled.next_heartbeat_ms {
            self.heartbeat(now_ms, out);
        }
        if now_ms < self.settled.since_ms + lease.timeout_ms {
            return;
        }
        let since = self.settled.since_ms;
        let fresh = |sid: &Sid| {
            let heard = self.settled.heard_ms.get(sid).copied().unwrap_or(since);
            now_ms < heard + lease.timeout_ms
        };
        let lost = if self.state == ServerState::Leading {
            let mut alive: Vec<Sid> = self
                .settled
                .heard_ms
                .keys()
                .copied()
                .filter(|s| fresh(s))
                .collect();
            alive.push(self.me);
            !self.config.verifier.contains_quorum(&alive)
        } else {
            !fresh(&self.current.leader)
        };
        if lost {
            info!(sid = self.me, state = %self.state, "lease expired");
            self.start_looking(now_ms, out);
        }
    }

    fn heartbeat(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let Some(lease) = self.config.lease else {
            return;
        };
        self.settled.next_heartbeat_ms = now_ms + lease.heartbeat_ms;
        if self.state == ServerState::Observing {
            // Nobody's lease depends on an observer.
            return;
        }
        let notification = Notification {
            vote: self.current,
            state: self.state,
            config_version: self.config.version,
        };
        for sid in self
            .config
            .members
            .keys()
            .copied()
            .filter(|s| *s != self.me)
        {
            out.push(Output::Send {
                to: sid,
                notification,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Lease;
    use crate::quorum::{Hierarchical, QuorumVerifier};

    fn data(epoch: i64, counter: u32) -> PeerData {
        PeerData {
            current_epoch: epoch,
            last_zxid: Zxid::new(epoch as u32, counter).0,
        }
    }

    fn looking(leader: Sid, d: PeerData, round: i64) -> Notification {
        Notification {
            vote: Vote {
                leader,
                zxid: d.last_zxid,
                election_epoch: round,
                peer_epoch: d.current_epoch,
            },
            state: ServerState::Looking,
            config_version: 0,
        }
    }

    fn sends(outputs: &[Output]) -> Vec<(Sid, Notification)> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Send { to, notification } => Some((*to, *notification)),
                _ => None,
            })
            .collect()
    }

    fn decision(outputs: &[Output]) -> Option<&Decision> {
        outputs.iter().find_map(|o| match o {
            Output::Decided(d) => Some(d),
            _ => None,
        })
    }

    fn receive(e: &mut Election, now: u64, from: Sid, n: Notification) -> Vec<Output> {
        e.handle(
            now,
            Input::Receive {
                from,
                notification: n,
            },
        )
    }

    #[test]
    fn adopts_a_better_vote_and_decides_after_finalize_wait() {
        let mut e = Election::new(Config::majority([1, 2, 3], []), 1, data(1, 5)).unwrap();
        let start = e.handle(0, Input::StartLooking);
        assert_eq!(start[0], Output::Looking { round: 1 });
        // Member 3 has a newer epoch: 1 switches to it and tells everyone.
        let out = receive(&mut e, 10, 3, looking(3, data(2, 0), 1));
        let sent = sends(&out);
        assert_eq!(sent.len(), 2);
        assert!(
            sent.iter()
                .all(|(_, n)| n.vote.leader == 3 && n.vote.election_epoch == 1)
        );
        // 1 and 3 agree: a quorum, but nothing is final before finalizeWait.
        assert_eq!(e.next_deadline_ms(), Some(210));
        assert!(decision(&e.handle(209, Input::Tick)).is_none());
        let out = e.handle(210, Input::Tick);
        let d = decision(&out).expect("decided");
        assert_eq!(
            (d.state, d.vote.leader, d.via),
            (ServerState::Following, 3, DecidedBy::Round)
        );
        assert_eq!(d.quorum, vec![1, 3]);
    }

    #[test]
    fn an_established_leader_is_joined_during_finalize_wait() {
        // Member 1 restarts with an empty disk into an ensemble that 3 leads in round 2.
        let mut e = Election::new(Config::majority([1, 2, 3], []), 1, data(0, 0)).unwrap();
        e.handle(0, Input::StartLooking);
        // On reconnection 3 resends the looking vote it last sent it: with 1's own, a
        // quorum for 3 in round 2, and the finalize wait starts (2 is not heard yet).
        let old = looking(3, data(1, 9), 2);
        receive(&mut e, 5, 3, old);
        assert_eq!(e.next_deadline_ms(), Some(205));
        // Then their answers to its own vote: 2 follows 3, which leads. Joined at once.
        let settled = |state| Notification { state, ..old };
        assert!(decision(&receive(&mut e, 8, 2, settled(ServerState::Following))).is_none());
        let out = receive(&mut e, 9, 3, settled(ServerState::Leading));
        let d = decision(&out).expect("decided before finalizeWait ends");
        assert_eq!(
            (d.state, d.vote.leader, d.via),
            (ServerState::Following, 3, DecidedBy::Round)
        );
    }

    #[test]
    fn every_voter_agreeing_ends_the_finalize_wait() {
        let mut e = Election::new(Config::majority([1, 2, 3], []), 1, data(1, 5)).unwrap();
        e.handle(0, Input::StartLooking);
        receive(&mut e, 10, 3, looking(3, data(2, 0), 1));
        assert_eq!(e.next_deadline_ms(), Some(210));
        // 2 agrees during the wait: no voter is left whose vote could be better.
        let out = receive(&mut e, 20, 2, looking(3, data(2, 0), 1));
        let d = decision(&out).expect("decided before finalizeWait ends");
        assert_eq!(
            (d.state, d.vote.leader, d.via),
            (ServerState::Following, 3, DecidedBy::Round)
        );
    }

    #[test]
    fn a_voter_whose_stream_broke_is_not_waited_for() {
        // 3 led and was killed; 1 and 2 look for a new leader.
        let mut e = Election::new(Config::majority([1, 2, 3], []), 1, data(1, 5)).unwrap();
        e.handle(0, Input::PeerDisconnected(3));
        e.handle(1, Input::StartLooking);
        let out = receive(&mut e, 3, 2, looking(2, data(1, 9), 2));
        let d = decision(&out).expect("decided at once");
        assert_eq!((d.state, d.vote.leader), (ServerState::Following, 2));
        assert_eq!(d.quorum, vec![1, 2]);
    }

    #[test]
    fn a_voter_heard_again_is_waited_for_again() {
        let mut e = Election::new(Config::majority([1, 2, 3], []), 1, data(1, 5)).unwrap();
        e.handle(0, Input::PeerDisconnected(3));
        // 3 came back (its new stream carries its last vote, an older round's).
        receive(&mut e, 1, 3, looking(3, data(1, 0), 0));
        e.handle(2, Input::StartLooking);
        let out = receive(&mut e, 3, 2, looking(2, data(1, 9), 1));
        assert!(decision(&out).is_none());
        assert_eq!(e.next_deadline_ms(), Some(203));
        // Its stream breaks again while 1 waits: the wait ends.
        let out = e.handle(50, Input::PeerDisconnected(3));
        let d = decision(&out).expect("decided once 3 is gone");
        assert_eq!(d.vote.leader, 2);
    }

    #[test]
    fn a_newer_membership_a_peer_counts_is_reported_once() {
        let mut config = Config::majority([1, 2, 3], []);
        config.reconfig_enabled = true;
        let mut e = Election::new(config, 1, data(1, 5)).unwrap();
        e.handle(0, Input::StartLooking);
        let heard = |out: &[Output]| {
            out.iter()
                .filter_map(|o| match o {
                    Output::MembershipHeard { version } => Some(*version),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let newer = Notification {
            config_version: 0x2_0000_0001,
            ..looking(2, data(1, 4), 1)
        };
        assert_eq!(heard(&receive(&mut e, 1, 2, newer)), [0x2_0000_0001]);
        assert_eq!(heard(&receive(&mut e, 2, 3, newer)), Vec::<i64>::new());
        assert_eq!(e.heard_config_version(), 0x2_0000_0001);
        // Nor is this server's own version news.
        assert_eq!(
            heard(&receive(&mut e, 3, 2, looking(2, data(1, 4), 1))),
            Vec::<i64>::new()
        );
    }

    #[test]
    fn a_better_vote_during_finalize_wait_reopens_the_round() {
        let mut e = Election::new(Config::majority([1, 2, 3], []), 3, data(1, 5)).unwrap();
        e.handle(0, Input::StartLooking);
        receive(&mut e, 10, 1, looking(3, data(1, 5), 1));
        assert!(e.next_deadline_ms() == Some(210));
        // A worse vote is discarded but restarts the wait.
        receive(&mut e, 100, 1, looking(1, data(1, 0), 1));
        assert_eq!(e.next_deadline_ms(), Some(300));
        // A better one (member 2 has more history) wins.
        let out = receive(&mut e, 150, 2, looking(2, data(1, 9), 1));
        assert!(sends(&out).iter().all(|(_, n)| n.vote.leader == 2));
        assert_eq!(e.vote().leader, 2);
    }

    #[test]
    fn notification_timeout_doubles_to_the_cap() {
        let mut e = Election::new(Config::majority([1, 2, 3], []), 1, data(1, 0)).unwrap();
        e.handle(0, Input::StartLooking);
        let mut now = 0;
        let mut timeouts = Vec::new();
        for _ in 0..12 {
            now = e.next_deadline_ms().unwrap();
            let out = e.handle(now, Input::Tick);
            assert_eq!(
                sends(&out).len(),
                2,
                "notifications are sent again on timeout"
            );
            timeouts.push(e.notification_timeout_ms());
        }
        assert_eq!(&timeouts[..4], &[400, 800, 1_600, 3_200]);
        assert_eq!(*timeouts.last().unwrap(), 60_000);
        assert_eq!(e.next_deadline_ms(), Some(now + 60_000));
    }

    #[test]
    fn answers_lagging_looking_peers_and_jumps_to_newer_rounds() {
        let mut e = Election::new(Config::majority([1, 2, 3], []), 2, data(1, 0)).unwrap();
        e.handle(0, Input::StartLooking);
        // A newer round: 2 jumps to it, clears its tally and keeps its own (better) vote.
        let out = receive(&mut e, 5, 3, looking(1, data(1, 0), 4));
        assert_eq!(e.logical_clock(), 4);
        assert!(
            sends(&out)
                .iter()
                .all(|(_, n)| n.vote.leader == 2 && n.vote.election_epoch == 4)
        );
        // A peer in an older round gets this round's vote back.
        let out = receive(&mut e, 6, 1, looking(1, data(1, 0), 2));
        let sent = sends(&out);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, 1);
        assert_eq!(sent[0].1.vote.election_epoch, 4);
    }

    #[test]
    fn joins_an_established_leader_out_of_election() {
        let mut e = Election::new(Config::majority([1, 2, 3], []), 1, data(5, 9)).unwrap();
        e.handle(0, Input::StartLooking);
        let leader_vote = Vote {
            leader: 3,
            zxid: Zxid::new(2, 0).0,
            election_epoch: 7,
            peer_epoch: 2,
        };
        let following = Notification {
            vote: leader_vote,
            state: ServerState::Following,
            config_version: 0,
        };
        let leading = Notification {
            vote: leader_vote,
            state: ServerState::Leading,
            config_version: 0,
        };
        // A follower alone is no quorum, and the leader has not spoken yet.
        assert!(decision(&receive(&mut e, 1, 2, following)).is_none());
        let out = receive(&mut e, 2, 3, leading);
        let d = decision(&out).expect("joined");
        assert_eq!(
            (d.state, d.vote.leader, d.via),
            (ServerState::Following, 3, DecidedBy::Established)
        );
        // Despite its own greater history, and at the leader's round.
        assert_eq!(e.logical_clock(), 7);
        // A looking peer now gets the leader's vote back.
        let out = receive(&mut e, 3, 2, looking(2, data(1, 0), 9));
        let sent = sends(&out);
        assert_eq!(sent[0].1.state, ServerState::Following);
        assert_eq!(sent[0].1.vote, leader_vote);
    }

    #[test]
    fn a_zero_weight_member_never_wins() {
        let mut config = Config::majority([1, 2, 3], []);
        let group_of = [(1, 1), (2, 1), (3, 1)].into_iter().collect();
        let weight = [(3, 0)].into_iter().collect();
        config.verifier = QuorumVerifier::Hierarchical(Hierarchical::new(group_of, weight));
        let mut e = Election::new(config, 1, data(1, 0)).unwrap();
        e.handle(0, Input::StartLooking);
        receive(&mut e, 1, 3, looking(3, data(9, 9), 1));
        assert_eq!(e.vote().leader, 1, "3 weighs nothing");
        let mut e3 = Election::new(e.config().clone(), 3, data(9, 9)).unwrap();
        e3.handle(0, Input::StartLooking);
        receive(&mut e3, 1, 1, looking(1, data(1, 0), 1));
        // As in ZooKeeper, it keeps its own (unwinnable) vote rather than a lesser one;
        // it joins once the others have chosen.
        assert_eq!(e3.vote().leader, 3);
        let leader_vote = Vote {
            election_epoch: 1,
            ..e.vote()
        };
        for (from, state) in [(2, ServerState::Following), (1, ServerState::Leading)] {
            let n = Notification {
                vote: leader_vote,
                state,
                config_version: 0,
            };
            receive(&mut e3, 2, from, n);
        }
        assert_eq!(e3.state(), ServerState::Following);
        assert_eq!(e3.vote().leader, 1);
    }

    #[test]
    fn observers_learn_the_leader_but_are_never_counted() {
        let config = Config::majority([1, 2, 3], [4]);
        let mut obs = Election::new(config.clone(), 4, data(9, 9)).unwrap();
        let out = obs.handle(0, Input::StartLooking);
        assert!(
            sends(&out).iter().all(|(to, _)| *to != 4),
            "observers send to voters only"
        );
        assert_eq!(
            obs.vote().peer_epoch,
            i64::MIN,
            "an observer never proposes itself"
        );
        let mut voter = Election::new(config, 1, data(1, 0)).unwrap();
        voter.handle(0, Input::StartLooking);
        // The observer's vote is answered, not counted.
        let out = receive(&mut voter, 1, 4, looking(4, data(9, 9), 1));
        assert_eq!(sends(&out).len(), 1);
        assert_eq!(voter.vote().leader, 1);
        // Two voters agree on 2: the observer finalizes as observing.
        receive(&mut obs, 2, 1, looking(2, data(1, 3), 1));
        receive(&mut obs, 3, 2, looking(2, data(1, 3), 1));
        let out = obs.handle(300, Input::Tick);
        let d = decision(&out).expect("observing");
        assert_eq!((d.state, d.vote.leader), (ServerState::Observing, 2));
        assert_eq!(d.quorum, vec![1, 2]);
    }

    #[test]
    fn a_round_that_would_overflow_the_clock_is_refused() {
        let config = Config::majority([1, 2, 3], []);
        let mut e = Election::new(config, 1, data(1, 0)).unwrap();
        e.handle(0, Input::StartLooking);
        for round in [i64::MAX, ROUND_MAX + 1, -1] {
            let out = receive(&mut e, 1, 2, looking(2, data(9, 9), round));
            assert!(out.is_empty(), "{round}: {out:?}");
            assert_eq!(e.logical_clock(), 1);
        }
        // The greatest round accepted still leaves room for many more.
        receive(&mut e, 1, 2, looking(2, data(9, 9), ROUND_MAX));
        assert_eq!(e.logical_clock(), ROUND_MAX);
        e.handle(2, Input::StartLooking);
        assert_eq!(e.logical_clock(), ROUND_MAX + 1);
    }

    #[test]
    fn members_settled_under_a_newer_membership_lead_a_member_that_missed_it() {
        // Member 4 knows {1, 2, 4, 5} at version 7; the others moved on to a membership
        // (version 9) where 3 leads. Their settled votes for 3 count, 3 is asked, and
        // once 3 says it leads, 4 follows it.
        let mut config = Config::majority([1, 2, 4, 5], []);
        config.reconfig_enabled = true;
        config.version = 7;
        let mut e = Election::new(config, 4, data(1, 0)).unwrap();
        e.handle(0, Input::StartLooking);
        let vote = Vote {
            leader: 3,
            zxid: Zxid::new(2, 5).0,
            election_epoch: 4,
            peer_epoch: 2,
        };
        let settled = |state| Notification {
            vote,
            state,
            config_version: 9,
        };
        let out = receive(&mut e, 1, 1, settled(ServerState::Following));
        assert!(
            sends(&out)
                .iter()
                .any(|(to, n)| *to == 3 && n.state == ServerState::Looking),
            "the leader outside this membership is asked: {out:?}"
        );
        receive(&mut e, 2, 2, settled(ServerState::Following));
        receive(&mut e, 3, 5, settled(ServerState::Following));
        assert_eq!(e.state(), ServerState::Looking, "3 has not said it leads");
        let out = receive(&mut e, 4, 3, settled(ServerState::Leading));
        assert_eq!(decision(&out).unwrap().vote.leader, 3);
        assert_eq!(e.state(), ServerState::Following);
        // The same votes from an older or equal membership count for nothing.
        let mut config = Config::majority([1, 2, 4, 5], []);
        config.reconfig_enabled = true;
        config.version = 9;
        let mut e = Election::new(config, 4, data(1, 0)).unwrap();
        e.handle(0, Input::StartLooking);
        for from in [1, 2, 5, 3] {
            let state = if from == 3 {
                ServerState::Leading
            } else {
                ServerState::Following
            };
            let out = receive(&mut e, 1, from, settled(state));
            assert!(decision(&out).is_none());
        }
        assert_eq!(e.state(), ServerState::Looking);
    }

    #[test]
    fn a_looking_observer_does_not_answer_a_lagging_voter() {
        // The voter answers every looking observer; were the observer to answer the
        // voter's lagging round in turn, the two would answer each other forever (the
        // replication simulation saw such a storm while the voter was partitioned).
        let config = Config::majority([1, 2, 3], [4]);
        let mut obs = Election::new(config, 4, data(1, 0)).unwrap();
        obs.handle(0, Input::StartLooking);
        obs.handle(0, Input::StartLooking);
        obs.handle(0, Input::StartLooking);
        assert_eq!(obs.logical_clock(), 3);
        let out = receive(&mut obs, 1, 1, looking(1, data(1, 5), 1));
        assert!(sends(&out).is_empty(), "{out:?}");
    }

    #[test]
    fn lease_expiry_and_leader_loss_restart_the_election() {
        let lease = Lease {
            heartbeat_ms: 100,
            timeout_ms: 1_000,
        };
        let config = Config::majority([1, 2, 3], []).with_lease(lease);
        let mut e = Election::new(config, 1, data(1, 0)).unwrap();
        e.handle(0, Input::StartLooking);
        receive(&mut e, 1, 2, looking(2, data(1, 1), 1));
        let out = e.handle(201, Input::Tick);
        assert_eq!(decision(&out).unwrap().vote.leader, 2);
        assert_eq!(sends(&out).len(), 2, "a heartbeat at once");
        // The leader's heartbeats keep it following.
        let leading = Notification {
            vote: e.vote(),
            state: ServerState::Leading,
            config_version: 0,
        };
        receive(&mut e, 900, 2, leading);
        let out = e.handle(1_500, Input::Tick);
        assert_eq!(e.state(), ServerState::Following);
        assert_eq!(sends(&out).len(), 2);
        // Silence for a whole lease: a new round.
        let out = e.handle(1_900, Input::Tick);
        assert_eq!(e.state(), ServerState::Looking);
        assert!(out.contains(&Output::Looking { round: 2 }));
        // A lost connection to the leader does the same at once.
        receive(&mut e, 1_901, 3, looking(3, data(1, 5), 2));
        e.handle(2_101, Input::Tick);
        assert_eq!(e.vote().leader, 3);
        e.handle(2_102, Input::PeerDisconnected(2));
        assert_eq!(e.state(), ServerState::Following);
        e.handle(2_103, Input::PeerDisconnected(3));
        assert_eq!(e.state(), ServerState::Looking);
    }

    #[test]
    fn messages_from_strangers_are_dropped() {
        let mut e = Election::new(Config::majority([1, 2, 3], []), 1, data(1, 0)).unwrap();
        e.handle(0, Input::StartLooking);
        let out = receive(&mut e, 1, 99, looking(99, data(9, 9), 5));
        assert!(out.is_empty());
        // A vote for a non-member is ignored too.
        receive(&mut e, 2, 2, looking(99, data(9, 9), 1));
        assert_eq!(e.vote().leader, 1);
        assert!(matches!(
            Election::new(Config::majority([1, 2, 3], []), 7, data(1, 0)),
            Err(ConfigError::NotAMember(7))
        ));
    }
}
