//! The Zab state machine: one member's discovery, synchronization and broadcast, without
//! threads, sockets, files or clocks. The caller feeds [`Input`]s with the current time
//! in milliseconds and carries out the [`Output`]s in order; [`Zab::next_deadline_ms`]
//! says when to call back with [`Input::Tick`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use tracing::{info, warn};
use zk_election::{PeerData, QuorumVerifier};
use zk_jute::Zxid;

use crate::config::{Config, Membership};
use crate::error::{CompactError, ConfigError, HistoryError, ProposeError};
use crate::history::History;
use crate::leader::Leader;
use crate::learner::Learner;
use crate::message::{Entry, Message, Sid, Touch};

/// What a member finds on its disk at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Persisted {
    /// `acceptedEpoch`: the last epoch this member agreed to follow or lead.
    pub accepted_epoch: u32,
    /// `currentEpoch`: the last epoch whose history this member logged in full.
    pub current_epoch: u32,
    /// The log's shape. The caller has applied all of it (snapshot and log), as
    /// ZooKeeper's start-up does: a member serves nothing until synced, and a sync
    /// truncates what the leader does not have.
    pub history: History,
}

/// Something that happened to this member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The election chose this member to lead.
    Lead {
        /// The election round that decided (the vote's `electionEpoch`).
        election_epoch: i64,
    },
    /// The election chose `leader`; this member follows it (or observes it, if it is an
    /// observer).
    Follow {
        /// The elected leader.
        leader: Sid,
        /// The election round that decided (the winning vote's `electionEpoch`). A
        /// leader accepts only learners of its own round: one that restarted and won a
        /// later round is another leader, which this member's vote does not name.
        election_epoch: i64,
    },
    /// A stream to `peer` asked for with [`Output::Connect`] is open.
    Connected {
        /// The leader.
        peer: Sid,
    },
    /// The stream to or from `peer` broke, or could not be opened.
    Disconnected {
        /// The peer.
        peer: Sid,
    },
    /// `message` arrived from `from`. Messages of one stream arrive in order; a new
    /// stream from a learner starts with [`Message::LearnerInfo`].
    Receive {
        /// The sender.
        from: Sid,
        /// The message.
        message: Message,
    },
    /// Time passed: fire whatever timer is due.
    Tick,
    /// Every entry appended up to `zxid` is durable.
    Durable {
        /// The last durable zxid.
        zxid: Zxid,
    },
    /// Leader: log and broadcast `entry`, whose zxid must be [`Zab::next_zxid`].
    Propose(Entry),
    /// Leader: log and broadcast `entry`, a reconfiguration making `membership` (whose
    /// version is the entry's zxid) the ensemble's once committed. Until then every
    /// proposal needs a quorum of both memberships, as ZooKeeper's leader counts them.
    ProposeReconfig {
        /// The txn.
        entry: Entry,
        /// The membership it makes.
        membership: Membership,
    },
    /// Leader: entries read from the log for `learner`, answering [`Output::ReadLog`],
    /// in order; `last` when the range asked for is complete.
    LogRead {
        /// The learner being synced.
        learner: Sid,
        /// The read's token, from [`Output::ReadLog`].
        stream: u64,
        /// The entries, in zxid order.
        entries: Vec<Entry>,
        /// Whether this completes the read.
        last: bool,
    },
    /// Leader: a piece of the snapshot asked for with [`Output::SendSnapshot`].
    SnapshotPiece {
        /// The learner being synced.
        learner: Sid,
        /// The snapshot's token, from [`Output::SendSnapshot`].
        stream: u64,
        /// The bytes.
        data: Bytes,
        /// Whether this is the last piece.
        last: bool,
    },
    /// Answer with [`Output::Synced`] once everything proposed so far is committed and
    /// delivered here (the `sync` operation).
    Sync {
        /// The caller's token.
        id: u64,
    },
    /// Learner: send a client write to the leader.
    Forward {
        /// The request, opaque to this crate.
        data: Bytes,
    },
    /// Learner: sessions touched by clients, for the next ping.
    Touch(Vec<Touch>),
    /// Learner: ask the leader whether a session is alive.
    Revalidate {
        /// The session.
        session: i64,
        /// Its timeout.
        timeout_ms: i32,
    },
    /// Leader: the answer to an [`Output::Revalidate`].
    RevalidateReply {
        /// The learner that asked.
        to: Sid,
        /// The session.
        session: i64,
        /// Whether it is alive.
        valid: bool,
    },
    /// The election heard a peer count the membership of `version`, newer than this
    /// member's: that membership was committed. A looking member that holds it pending
    /// (it logged the reconfiguration, or a NEWLEADER announced it, and the commit never
    /// came) activates it and looks again under it, as ZooKeeper's looking server adopts
    /// the configuration a notification carries. Without this, a member that acked the
    /// NEWLEADER of an epoch whose leader then left could hold the newest epoch while its
    /// own (older) membership says it does not vote: no leader could sync it ("follower
    /// ahead of the leader") and it could never lead.
    MembershipHeard {
        /// The version heard.
        version: i64,
    },
}

/// Something the caller must do, in the order given. `SetAcceptedEpoch`,
/// `SetCurrentEpoch`, `Truncate` and `SnapshotEnd` must be durable before the next
/// output is carried out; `Append` may complete later, reported with [`Input::Durable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `message` to `to` on the stream between them.
    Send {
        /// The recipient.
        to: Sid,
        /// The message.
        message: Message,
    },
    /// Open a stream to the leader `peer`; answer with [`Input::Connected`] or
    /// [`Input::Disconnected`].
    Connect {
        /// The leader.
        peer: Sid,
    },
    /// Close the stream to `peer`.
    Disconnect {
        /// The peer.
        peer: Sid,
    },
    /// Write and sync `acceptedEpoch`.
    SetAcceptedEpoch(u32),
    /// Write and sync `currentEpoch`.
    SetCurrentEpoch(u32),
    /// Append to the log; report durability with [`Input::Durable`].
    Append(Entry),
    /// Drop every log entry after `zxid`, and bring the applied state back to `zxid`
    /// (ZooKeeper reloads its database).
    Truncate {
        /// The last zxid kept.
        zxid: Zxid,
    },
    /// Apply a committed txn. Delivered in zxid order, each once.
    Deliver(Entry),
    /// Leader: read log entries in `(after, through]` and feed them back with
    /// [`Input::LogRead`], at most `batch` at a time.
    ReadLog {
        /// The learner being synced.
        learner: Sid,
        /// A token to give back with each [`Input::LogRead`]: pieces of an abandoned
        /// read (the learner reconnected meanwhile) are told apart by it.
        stream: u64,
        /// The last zxid the learner has.
        after: Zxid,
        /// The last zxid to read.
        through: Zxid,
        /// Entries per [`Input::LogRead`] at most.
        batch: usize,
    },
    /// Leader: serialize the applied state as it is at this point of the outputs (at
    /// `zxid`) and feed it back in pieces with [`Input::SnapshotPiece`].
    SendSnapshot {
        /// The learner being synced.
        learner: Sid,
        /// A token to give back with each [`Input::SnapshotPiece`].
        stream: u64,
        /// The last zxid applied.
        zxid: Zxid,
    },
    /// Learner: a snapshot at `zxid` starts; keep what was durable until
    /// [`Output::SnapshotEnd`].
    SnapshotBegin {
        /// The snapshot's zxid.
        zxid: Zxid,
    },
    /// Learner: a piece of the snapshot.
    SnapshotPiece(Bytes),
    /// Learner: the snapshot is complete: make it the applied state and the durable
    /// base, and empty the log.
    SnapshotEnd {
        /// The snapshot's zxid.
        zxid: Zxid,
    },
    /// Leader: a learner forwarded a client write.
    Request {
        /// The learner.
        from: Sid,
        /// The request.
        data: Bytes,
    },
    /// Leader: a learner's clients kept these sessions alive.
    Touched {
        /// The learner.
        from: Sid,
        /// The sessions.
        touches: Vec<Touch>,
    },
    /// Leader: a learner asks whether a session is alive; answer with
    /// [`Input::RevalidateReply`].
    Revalidate {
        /// The learner.
        from: Sid,
        /// The session.
        session: i64,
        /// Its timeout.
        timeout_ms: i32,
    },
    /// Learner: the leader's answer about a session.
    Revalidated {
        /// The session.
        session: i64,
        /// Whether it is alive.
        valid: bool,
    },
    /// The [`Input::Sync`] with this token is done.
    Synced {
        /// The token.
        id: u64,
    },
    /// This member's role changed.
    State(State),
    /// A reconfiguration is committed and `membership` is now the ensemble's, led by
    /// `leader` (ZooKeeper's `processReconfig`): write it where the configuration is
    /// kept and tell the election. Delivered after the txn that made it.
    Activated {
        /// The new membership.
        membership: Membership,
        /// Who leads it.
        leader: Sid,
    },
}

/// Where a member stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not in any epoch: the election must run (start it on this output).
    Looking,
    /// Leading `epoch`; `established` once a quorum has synced (it then serves).
    Leading {
        /// The epoch, once a quorum agreed on it.
        epoch: Option<u32>,
        /// Whether a quorum acknowledged the new leader.
        established: bool,
    },
    /// Following or observing `leader`; `serving` once synced (`UPTODATE`).
    Learning {
        /// The leader.
        leader: Sid,
        /// Whether this member is an observer.
        observer: bool,
        /// Whether the sync is over.
        serving: bool,
    },
}

/// What this member knows of its own log and state machine, whatever its role.
#[derive(Debug, Clone)]
pub(crate) struct Local {
    pub(crate) accepted_epoch: u32,
    pub(crate) current_epoch: u32,
    /// The log as appended (durable or not).
    pub(crate) history: History,
    pub(crate) durable: Zxid,
    pub(crate) applied: Zxid,
    /// Appended and not yet applied: exactly the history's entries in `(applied, last]`.
    pub(crate) pending: VecDeque<Entry>,
    /// The most recent applied entries, `(window_floor, applied]`.
    pub(crate) window: VecDeque<Entry>,
    pub(crate) window_floor: Zxid,
    window_max: usize,
}

impl Local {
    fn new(persisted: Persisted, window_max: usize) -> Self {
        let last = persisted.history.last();
        Local {
            accepted_epoch: persisted.accepted_epoch,
            current_epoch: persisted.current_epoch,
            history: persisted.history,
            durable: last,
            applied: last,
            pending: VecDeque::new(),
            window: VecDeque::new(),
            window_floor: last,
            window_max,
        }
    }

    pub(crate) fn last(&self) -> Zxid {
        self.history.last()
    }

    pub(crate) fn append(
        &mut self,
        entry: Entry,
        out: &mut Vec<Output>,
    ) -> Result<(), HistoryError> {
        self.history.push(entry.zxid)?;
        self.pending.push_back(entry.clone());
        out.push(Output::Append(entry));
        Ok(())
    }

    /// Delivers every pending entry up to `zxid`.
    pub(crate) fn deliver_through(&mut self, zxid: Zxid, out: &mut Vec<Output>) {
        while let Some(entry) = self.pending.front() {
            if entry.zxid > zxid {
                break;
            }
            let Some(entry) = self.pending.pop_front() else {
                break;
            };
            debug_assert!(entry.zxid > self.applied, "delivered twice: {}", entry.zxid);
            self.applied = entry.zxid;
            self.window.push_back(entry.clone());
            while self.window.len() > self.window_max {
                if let Some(old) = self.window.pop_front() {
                    self.window_floor = old.zxid;
                }
            }
            out.push(Output::Deliver(entry));
        }
    }

    pub(crate) fn truncate(
        &mut self,
        zxid: Zxid,
        out: &mut Vec<Output>,
    ) -> Result<(), HistoryError> {
        self.history.truncate(zxid)?;
        self.pending.retain(|e| e.zxid <= zxid);
        self.window.retain(|e| e.zxid <= zxid);
        self.durable = self.durable.min(zxid);
        if self.applied > zxid {
            self.applied = zxid;
        }
        if self.window_floor > zxid {
            self.window.clear();
            self.window_floor = self.applied;
        }
        out.push(Output::Truncate { zxid });
        Ok(())
    }

    pub(crate) fn install_snapshot(&mut self, zxid: Zxid) {
        self.history = History::new(zxid);
        self.durable = zxid;
        self.applied = zxid;
        self.pending.clear();
        self.window.clear();
        self.window_floor = zxid;
    }

    /// The entries `(after, through]` held in memory (window and pending), if all are.
    pub(crate) fn entries_in_memory(&self, after: Zxid, through: Zxid) -> Option<Vec<Entry>> {
        if after < self.window_floor {
            return None;
        }
        Some(
            self.window
                .iter()
                .chain(self.pending.iter())
                .filter(|e| e.zxid > after && e.zxid <= through)
                .cloned()
                .collect(),
        )
    }
}

/// The role-specific part of the state.
#[derive(Debug, Clone)]
pub(crate) enum Role {
    Looking,
    Leading(Box<Leader>),
    Learning(Box<Learner>),
}

/// One member's Zab: ZooKeeper 3.8's `Leader`, `LearnerHandler`, `Follower` and
/// `Observer` as a state machine.
///
/// ```
/// use zk_replication::{Config, Input, Output, Persisted, State, Zab};
///
/// // A quorum of one: leading establishes the epoch at once.
/// let mut zab = Zab::new(Config::majority([1], []), 1, Persisted::default()).unwrap();
/// let out = zab.handle(0, Input::Lead { election_epoch: 1 });
/// assert!(out.contains(&Output::SetAcceptedEpoch(1)));
/// assert!(out.contains(&Output::SetCurrentEpoch(1)));
/// assert_eq!(zab.state(), State::Leading { epoch: Some(1), established: true });
/// assert_eq!(zab.next_zxid(), Some(zk_jute::Zxid::new(1, 1)));
/// ```
#[derive(Debug, Clone)]
pub struct Zab {
    pub(crate) config: Config,
    pub(crate) me: Sid,
    pub(crate) local: Local,
    pub(crate) role: Role,
    /// Local sync requests waiting for a commit: (zxid, token).
    pub(crate) local_syncs: VecDeque<(Zxid, u64)>,
    /// The last token given to a log read or snapshot for a learner.
    pub(crate) next_stream: u64,
    /// A reconfiguration proposed and not yet committed (ZooKeeper's last seen quorum
    /// verifier): the membership, its voters and observers.
    pub(crate) next_membership: Option<(Membership, QuorumVerifier, BTreeSet<Sid>)>,
    /// Learners' first messages that came before this member led: a learner told of its
    /// election before this member may reach the quorum port first, and its stream then
    /// waits for an answer. Kept (the last per learner, until its stream breaks) and taken
    /// up when this member leads; ZooKeeper's learner retries a refused connection to the
    /// same end.
    pub(crate) early_learners: BTreeMap<Sid, Message>,
}

impl Zab {
    /// Member `me` of `config`, with what it found on disk. It starts looking: feed it
    /// the election's decision.
    pub fn new(config: Config, me: Sid, persisted: Persisted) -> Result<Self, ConfigError> {
        config.validate()?;
        // With reconfiguration on, a server outside the membership (removed by one) may
        // still follow without a vote.
        if !config.is_member(me) && !config.reconfig_enabled {
            return Err(ConfigError::NotAMember(me));
        }
        let window_max = config.commit_log_count;
        Ok(Zab {
            config,
            me,
            local: Local::new(persisted, window_max),
            role: Role::Looking,
            local_syncs: VecDeque::new(),
            next_stream: 0,
            next_membership: None,
            early_learners: BTreeMap::new(),
        })
    }

    /// This member's id.
    pub fn sid(&self) -> Sid {
        self.me
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where this member stands.
    pub fn state(&self) -> State {
        match &self.role {
            Role::Looking => State::Looking,
            Role::Leading(leader) => State::Leading {
                epoch: leader.epoch,
                established: leader.established,
            },
            Role::Learning(learner) => State::Learning {
                leader: learner.leader,
                observer: learner.observer,
                serving: learner.is_serving(),
            },
        }
    }

    /// Whether this member serves clients: an established leader or a synced learner.
    pub fn is_serving(&self) -> bool {
        matches!(
            self.state(),
            State::Leading {
                established: true,
                ..
            } | State::Learning { serving: true, .. }
        )
    }

    /// What the election votes with: `currentEpoch` and the last logged zxid.
    pub fn peer_data(&self) -> PeerData {
        PeerData {
            current_epoch: i64::from(self.local.current_epoch),
            last_zxid: self.local.last().0,
        }
    }

    /// `acceptedEpoch`.
    pub fn accepted_epoch(&self) -> u32 {
        self.local.accepted_epoch
    }

    /// `currentEpoch`.
    pub fn current_epoch(&self) -> u32 {
        self.local.current_epoch
    }

    /// The last zxid appended to the log.
    pub fn last_logged(&self) -> Zxid {
        self.local.last()
    }

    /// The last zxid known durable.
    pub fn durable(&self) -> Zxid {
        self.local.durable
    }

    /// The last zxid applied (delivered, or restored at start).
    pub fn applied(&self) -> Zxid {
        self.local.applied
    }

    /// The log's shape.
    pub fn history(&self) -> &History {
        &self.local.history
    }

    /// Autopurge: the host keeps a snapshot of the applied tree at `snapshot` and means
    /// to delete the log files wholly before it, as ZooKeeper's `PurgeTxnLog` does. The
    /// history forgets its entries at or below `snapshot` (a learner that far behind is
    /// then synced by SNAP, and this member can no longer be truncated below it), and
    /// the log may then be purged up to `snapshot`, which is returned.
    ///
    /// Refused, to be asked again later, while the log is being read below `snapshot`
    /// to sync a learner, or while this member syncs with its leader (which chose DIFF,
    /// TRUNC or SNAP on the history as it was). A snapshot at or below the history's
    /// base changes nothing and may be purged up to.
    pub fn compact(&mut self, snapshot: Zxid) -> Result<Zxid, CompactError> {
        let history = &self.local.history;
        if snapshot <= history.base() {
            return Ok(snapshot);
        }
        if snapshot > self.local.applied || !history.contains(snapshot) {
            return Err(CompactError::NotInHistory(snapshot));
        }
        match &self.role {
            Role::Looking => {}
            Role::Leading(leader) => {
                if let Some(sid) = leader.reading_log_below(snapshot) {
                    return Err(CompactError::Syncing(sid));
                }
            }
            Role::Learning(learner) => {
                if !learner.is_serving() {
                    return Err(CompactError::Learning);
                }
            }
        }
        self.local
            .history
            .rebase(snapshot)
            .map_err(|_| CompactError::NotInHistory(snapshot))?;
        Ok(snapshot)
    }

    /// The zxid the next proposal must carry, if this member is an established leader
    /// whose epoch has room for one.
    pub fn next_zxid(&self) -> Option<Zxid> {
        match &self.role {
            Role::Leading(leader) => leader.next_zxid(),
            _ => None,
        }
    }

    /// The earliest time at which [`Input::Tick`] has something to do.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        match &self.role {
            Role::Looking => None,
            Role::Leading(leader) => Some(leader.next_deadline_ms()),
            Role::Learning(learner) => {
                Some(learner.next_deadline_ms(self.config.init_ms(), self.config.sync_ms()))
            }
        }
    }

    /// Handles one input at `now_ms` and returns what to do.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Lead { election_epoch } => self.lead(now_ms, election_epoch, &mut out),
            Input::Follow {
                leader,
                election_epoch,
            } => self.follow(now_ms, leader, election_epoch, &mut out),
            Input::Durable { zxid } => self.durable_through(now_ms, zxid, &mut out),
            Input::MembershipHeard { version } => self.membership_heard(now_ms, version, &mut out),
            Input::Sync { id } => self.sync_local(id, &mut out),
            Input::Propose(entry) => {
                let result = self.propose(now_ms, entry, &mut out);
                self.refused(now_ms, result, &mut out);
            }
            Input::ProposeReconfig { entry, membership } => {
                let result = self.propose_reconfig(now_ms, entry, membership, &mut out);
                self.refused(now_ms, result, &mut out);
            }
            Input::Receive {
                from,
                message: message @ Message::LearnerInfo { .. },
            } if !matches!(self.role, Role::Leading(_)) => {
                self.early_learners.insert(from, message);
            }
            other => {
                if let Input::Disconnected { peer } = &other {
                    self.early_learners.remove(peer);
                }
                match &mut self.role {
                    Role::Looking => {}
                    Role::Leading(_) => self.leader_input(now_ms, other, &mut out),
                    Role::Learning(_) => self.learner_input(now_ms, other, &mut out),
                }
            }
        }
        out
    }

    /// A leader that cannot propose what its caller prepared leaves its role: the
    /// caller's pipeline holds a txn that would never commit.
    fn refused(&mut self, now_ms: u64, result: Result<(), ProposeError>, out: &mut Vec<Output>) {
        match result {
            Ok(()) | Err(ProposeError::NotLeading) => {}
            Err(e) => {
                warn!(sid = self.me, "proposal refused, leaving the epoch: {e}");
                self.look(now_ms, out);
            }
        }
    }

    /// Like [`Input::ProposeReconfig`], with the refusal returned.
    pub fn propose_reconfig(
        &mut self,
        now_ms: u64,
        entry: Entry,
        membership: Membership,
        out: &mut Vec<Output>,
    ) -> Result<(), ProposeError> {
        if !self.config.reconfig_enabled {
            return Err(ProposeError::Reconfig("reconfigEnabled is false".into()));
        }
        if self.next_membership.is_some() {
            return Err(ProposeError::Reconfig(
                "another reconfiguration is in progress".into(),
            ));
        }
        if membership.version != entry.zxid.0 {
            return Err(ProposeError::Reconfig(format!(
                "membership version {:#x} for txn {}",
                membership.version, entry.zxid
            )));
        }
        self.check_next(now_ms, &entry, out)?;
        self.set_next_membership(membership.clone())
            .map_err(|e| ProposeError::Reconfig(e.to_string()))?;
        self.leader_propose_message(now_ms, entry, Some(membership), out);
        Ok(())
    }

    /// At start: `membership` is the last one this member's log holds (a reconfiguration
    /// txn logged, ZooKeeper's `zoo.cfg.dynamic.next`), not known to be active. If it is
    /// newer than the configuration's, it is pending as if just proposed: leading, this
    /// member activates it once its history is committed; following, its leader's
    /// NEWLEADER says which membership is to be.
    pub fn logged_membership(&mut self, membership: Membership) -> Result<(), ConfigError> {
        if membership.version <= self.config.membership.version {
            return Ok(());
        }
        self.set_next_membership(membership)
    }

    /// Makes `membership` the pending one, its voters and observers read from it.
    pub(crate) fn set_next_membership(
        &mut self,
        membership: Membership,
    ) -> Result<(), ConfigError> {
        let (verifier, observers) = membership.parse()?;
        self.next_membership = Some((membership, verifier, observers));
        Ok(())
    }

    /// The membership a pending reconfiguration proposes, if one is pending.
    pub fn next_membership(&self) -> Option<&Membership> {
        self.next_membership.as_ref().map(|(m, _, _)| m)
    }

    /// Whether the voters of `verifier` that are synced with this leader (itself
    /// included, if it votes there) form a quorum of it: ZooKeeper's `isQuorumSynced`,
    /// which a reconfiguration must pass.
    pub fn is_quorum_synced(&self, verifier: &QuorumVerifier) -> bool {
        let Role::Leading(leader) = &self.role else {
            return false;
        };
        let synced = leader
            .learners
            .iter()
            .filter(|(_, h)| leader.is_synced(h))
            .map(|(sid, _)| sid)
            .chain([&self.me]);
        verifier.contains_quorum(synced)
    }

    /// Checks that `entry` is what this leader proposes next.
    /// An established leader whose epoch's counter is spent leaves the epoch
    /// (ZooKeeper's `ZxidRolloverException`).
    fn check_next(
        &mut self,
        now_ms: u64,
        entry: &Entry,
        out: &mut Vec<Output>,
    ) -> Result<(), ProposeError> {
        let Role::Leading(leader) = &mut self.role else {
            return Err(ProposeError::NotLeading);
        };
        let Some(expected) = leader.next_zxid() else {
            let epoch = leader.epoch.unwrap_or_default();
            if leader.established {
                info!(
                    sid = self.me,
                    epoch, "zxid counter exhausted: leaving the epoch"
                );
                self.look(now_ms, out);
                return Err(ProposeError::ZxidExhausted(epoch));
            }
            return Err(ProposeError::NotLeading);
        };
        if entry.zxid != expected {
            return Err(ProposeError::WrongZxid {
                expected,
                got: entry.zxid,
            });
        }
        Ok(())
    }

    /// Like [`Input::Propose`], with the refusal returned.
    pub fn propose(
        &mut self,
        now_ms: u64,
        entry: Entry,
        out: &mut Vec<Output>,
    ) -> Result<(), ProposeError> {
        self.check_next(now_ms, &entry, out)?;
        self.leader_propose(now_ms, entry, out);
        Ok(())
    }

    fn durable_through(&mut self, now_ms: u64, zxid: Zxid, out: &mut Vec<Output>) {
        let zxid = zxid.min(self.local.last());
        if zxid <= self.local.durable {
            return;
        }
        self.local.durable = zxid;
        match &self.role {
            Role::Looking => {}
            Role::Leading(_) => self.leader_durable(now_ms, out),
            Role::Learning(_) => self.learner_durable(now_ms, out),
        }
    }

    fn sync_local(&mut self, id: u64, out: &mut Vec<Output>) {
        match &mut self.role {
            Role::Leading(leader) if leader.established => {
                if leader.outstanding.is_empty() {
                    out.push(Output::Synced { id });
                } else {
                    self.local_syncs.push_back((leader.last_proposed, id));
                }
            }
            Role::Learning(learner) if learner.is_serving() => {
                let leader = learner.leader;
                out.push(Output::Send {
                    to: leader,
                    message: Message::Sync { id },
                });
            }
            _ => warn!(sid = self.me, id, "sync while not serving: dropped"),
        }
    }

    /// Whether this member leads.
    pub(crate) fn role_is_leading(&self) -> bool {
        matches!(self.role, Role::Leading(_))
    }

    /// The pending reconfiguration is committed (and delivered): its membership
    /// becomes this member's, led by `leader`. A member whose leader changes, or whose
    /// place in the ensemble does (a voter made observer, an observer made voter, a
    /// leader removed), leaves its role for a new election; the others go on.
    pub(crate) fn activate(&mut self, now_ms: u64, leader: Sid, out: &mut Vec<Output>) {
        let Some((membership, verifier, observers)) = self.next_membership.take() else {
            return;
        };
        info!(
            sid = self.me,
            version = format!("{:x}", membership.version),
            leader,
            "a new membership is active"
        );
        self.config.verifier = verifier;
        self.config.observers = observers;
        self.config.membership = membership.clone();
        out.push(Output::Activated { membership, leader });
        let me = self.me;
        let observes = self.config.observers.contains(&me);
        let leads = self.config.is_voter(leader);
        let stays = match &self.role {
            Role::Looking => true,
            Role::Leading(_) => leader == me && leads,
            Role::Learning(learner) => {
                learner.leader == leader && leads && learner.observer == observes
            }
        };
        if !stays {
            info!(
                sid = me,
                leader, "the reconfiguration changes this member's role: leaving it"
            );
            self.look(now_ms, out);
        }
    }

    /// [`Input::MembershipHeard`].
    fn membership_heard(&mut self, now_ms: u64, version: i64, out: &mut Vec<Output>) {
        let pending = self.next_membership.as_ref().map(|(m, _, _)| m.version);
        if !matches!(self.role, Role::Looking) || pending != Some(version) {
            return;
        }
        info!(
            sid = self.me,
            version = format!("{version:x}"),
            "a peer counts the membership this member holds pending: it was committed"
        );
        self.activate(now_ms, self.me, out);
        // The election's round began under the old membership (whether this member
        // votes, and who counts): a new one.
        out.push(Output::State(State::Looking));
    }

    /// Leaves the current role and asks for an election.
    pub(crate) fn look(&mut self, _now_ms: u64, out: &mut Vec<Output>) {
        match std::mem::replace(&mut self.role, Role::Looking) {
            Role::Looking => return,
            Role::Leading(leader) => {
                for sid in leader.learners.keys() {
                    out.push(Output::Disconnect { peer: *sid });
                }
            }
            Role::Learning(learner) => out.push(Output::Disconnect {
                peer: learner.leader,
            }),
        }
        self.local_syncs.clear();
        // A reconfiguration seen and not activated stays, as ZooKeeper's last seen
        // quorum verifier does: leading, this member finishes it if the history it brings
        // holds its txn; following, its leader's NEWLEADER says what is to be.
        out.push(Output::State(State::Looking));
    }
}
