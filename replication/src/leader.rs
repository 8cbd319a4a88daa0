//! The leader's side: ZooKeeper's `Leader` and one `LearnerHandler` per learner.
//!
//! Discovery: the epoch is one more than the greatest accepted epoch of a quorum of
//! connecting voters; a quorum's `ACKEPOCH` makes it current. Sync: each learner gets
//! DIFF, TRUNC or SNAP from its last zxid, then `NEWLEADER`; a quorum's acknowledgement
//! establishes the leader, which commits its history and sends `UPTODATE`. Broadcast:
//! proposals are committed in zxid order once a quorum (the leader included, once its
//! own log is durable) acknowledged them; a follower that forwarded a request and makes a
//! quorum with the leader also hears how far the leader's log is durable (`LOGGED`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use tracing::{debug, info, warn};
use zk_jute::Zxid;

use crate::config::Membership;
use crate::message::{Entry, Message, Sid};
use crate::zab::{Input, Output, Role, Zab};

/// A proposal waiting for its quorum.
#[derive(Debug, Clone)]
pub(crate) struct Proposal {
    entry: Entry,
    acks: BTreeSet<Sid>,
}

/// Where one learner's stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `LEARNERINFO` received; the epoch is not decided yet.
    Info,
    /// `LEADERINFO` sent; waiting for `ACKEPOCH`.
    LeaderInfoSent,
    /// `ACKEPOCH` received; waiting for a quorum of them before syncing.
    EpochAcked {
        last_zxid: Zxid,
        snapshot_zxid: Zxid,
    },
    /// The sync is on its way (or streaming), `NEWLEADER` after it.
    Syncing,
    /// `NEWLEADER` acknowledged; `UPTODATE` once the leader is established.
    NewLeaderAcked,
    /// `UPTODATE` sent: the learner serves.
    Synced,
}

impl Phase {
    /// Whether broadcast traffic is sent to (or held for) the learner.
    fn forwarding(self) -> bool {
        matches!(self, Phase::Syncing | Phase::NewLeaderAcked | Phase::Synced)
    }
}

/// A sync being streamed: what has been sent so far.
#[derive(Debug, Clone, Copy)]
enum Stream {
    /// Entries read from the log, `(sent, through]` still to come.
    Log {
        id: u64,
        sent: Zxid,
        through: Zxid,
        commit_point: Zxid,
    },
    /// A snapshot, in pieces.
    Snapshot { id: u64 },
}

/// How a learner is synced, for ZooKeeper's limits on concurrent syncs (a TRUNC counts
/// as a diff, as there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncKind {
    Diff,
    Snap,
}

/// One learner, as the leader sees it (ZooKeeper's `LearnerHandler`).
#[derive(Debug, Clone)]
pub(crate) struct Handler {
    observer: bool,
    phase: Phase,
    /// How the learner is being synced, while it is (until it acknowledges NEWLEADER).
    sync: Option<SyncKind>,
    heard_ms: u64,
    stream: Option<Stream>,
    /// Messages for after the stream, in order.
    held: VecDeque<Message>,
    /// The learner forwarded a request since this leader's log was last durable through
    /// its last proposal: it has a client waiting, and is told of the log's progress.
    forwarded: bool,
}

/// A leader's view of one connected learner, for the operator's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnerView {
    /// The learner's id.
    pub sid: Sid,
    /// Whether it observes.
    pub observer: bool,
    /// Whether it is synced and serving (`UPTODATE` sent).
    pub synced: bool,
    /// The snapshot being streamed to it (the token of [`Output::SendSnapshot`]), if
    /// one is.
    ///
    /// [`Output::SendSnapshot`]: crate::Output::SendSnapshot
    pub snapshot_stream: Option<u64>,
}

impl Leader {
    /// A learner whose sync reads the log at or below `zxid`, if any.
    pub(crate) fn reading_log_below(&self, zxid: Zxid) -> Option<Sid> {
        self.learners.iter().find_map(|(sid, h)| match h.stream {
            Some(Stream::Log { sent, .. }) if sent < zxid => Some(*sid),
            _ => None,
        })
    }
}

impl crate::zab::Zab {
    /// The learners connected to this leader (none unless leading).
    pub fn learners(&self) -> Vec<LearnerView> {
        match &self.role {
            Role::Leading(leader) => leader
                .learners
                .iter()
                .map(|(sid, h)| LearnerView {
                    sid: *sid,
                    observer: h.observer,
                    synced: h.phase == Phase::Synced,
                    snapshot_stream: match h.stream {
                        Some(Stream::Snapshot { id }) => Some(id),
                        _ => None,
                    },
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// `sync` requests waiting for their commit: learners' and this member's own.
    pub fn pending_syncs(&self) -> usize {
        let learners = match &self.role {
            Role::Leading(leader) => leader.learner_syncs.len(),
            _ => 0,
        };
        learners + self.local_syncs.len()
    }
}

/// The leader's state.
#[derive(Debug, Clone)]
pub(crate) struct Leader {
    /// The election round that chose this leader.
    election_epoch: i64,
    pub(crate) epoch: Option<u32>,
    pub(crate) established: bool,
    /// The accepted epochs of the voters connected before the epoch was decided.
    connecting: BTreeMap<Sid, u32>,
    epoch_acks: BTreeSet<Sid>,
    epoch_quorum: bool,
    /// `(currentEpoch, last zxid)` when leading began, for "follower ahead" checks.
    summary: (u32, Zxid),
    /// The last zxid of the history this leader brings; committed on establishment.
    history_end: Zxid,
    newleader_acks: BTreeSet<Sid>,
    deadline_ms: u64,
    next_ping_ms: u64,
    pub(crate) learners: BTreeMap<Sid, Handler>,
    pub(crate) outstanding: VecDeque<Proposal>,
    pub(crate) last_proposed: Zxid,
    last_committed: Zxid,
    /// The last zxid announced to followers as durable here ([`Message::Logged`]).
    logged_sent: Zxid,
    /// Learners' sync requests: answered once `zxid` is committed.
    learner_syncs: VecDeque<(Zxid, Sid, u64)>,
}

impl Leader {
    pub(crate) fn next_zxid(&self) -> Option<Zxid> {
        let epoch = self.epoch?;
        if !self.established {
            return None;
        }
        let counter = if self.last_proposed.epoch() == epoch {
            self.last_proposed.counter().checked_add(1)?
        } else {
            1
        };
        // ZooKeeper rolls the epoch over before the counter reaches 0xffffffff.
        (counter < u32::MAX).then(|| Zxid::new(epoch, counter))
    }

    pub(crate) fn next_deadline_ms(&self) -> u64 {
        if self.established {
            self.next_ping_ms
        } else {
            self.next_ping_ms.min(self.deadline_ms)
        }
    }

    /// Whether `handler`'s learner is a follower synced with this leader.
    pub(crate) fn is_synced(&self, handler: &Handler) -> bool {
        handler.phase == Phase::Synced && !handler.observer
    }

    /// The last zxid a learner synced now may treat as committed.
    fn commit_point(&self) -> Zxid {
        if self.established {
            self.last_committed
        } else {
            self.history_end
        }
    }
}

/// Learners' `sync` requests waiting for a commit, at most (a learner past it is dropped).
const SYNCS_MAX: usize = 100_000;

/// Messages that carry `entry` to a learner during a sync.
fn sync_messages(entry: &Entry, observer: bool, commit_point: Zxid, out: &mut Vec<Message>) {
    if observer {
        out.push(Message::Inform(entry.clone()));
    } else {
        out.push(Message::Proposal(entry.clone()));
        if entry.zxid <= commit_point {
            out.push(Message::Commit { zxid: entry.zxid });
        }
    }
}

/// Sends `message` to the learner, or holds it behind the learner's stream. Returns
/// false when the learner's backlog is full.
fn send_to(
    sid: Sid,
    handler: &mut Handler,
    message: Message,
    held_max: usize,
    out: &mut Vec<Output>,
) -> bool {
    if handler.stream.is_some() {
        if handler.held.len() >= held_max {
            return false;
        }
        handler.held.push_back(message);
    } else {
        out.push(Output::Send { to: sid, message });
    }
    true
}

impl Zab {
    fn leader(&mut self) -> Option<&mut Leader> {
        match &mut self.role {
            Role::Leading(leader) => Some(leader),
            _ => None,
        }
    }

    pub(crate) fn lead(&mut self, now_ms: u64, election_epoch: i64, out: &mut Vec<Output>) {
        self.look(now_ms, out);
        let last = self.local.last();
        let mut leader = Leader {
            election_epoch,
            epoch: None,
            established: false,
            connecting: BTreeMap::new(),
            epoch_acks: BTreeSet::new(),
            epoch_quorum: false,
            summary: (self.local.current_epoch, last),
            history_end: last,
            newleader_acks: BTreeSet::new(),
            deadline_ms: now_ms.saturating_add(self.config.init_ms()),
            next_ping_ms: now_ms,
            learners: BTreeMap::new(),
            outstanding: VecDeque::new(),
            last_proposed: last,
            last_committed: self.local.applied,
            logged_sent: Zxid(0),
            learner_syncs: VecDeque::new(),
        };
        leader.connecting.insert(self.me, self.local.accepted_epoch);
        // A membership seen and not activated (a reconfiguration proposed, or one a
        // NEWLEADER carried) is this leader's to finish if the history it brings reaches
        // it (the txn logged, or inside the snapshot the log starts from); one past it
        // was dropped with the txns after the history.
        if self
            .next_membership
            .as_ref()
            .is_some_and(|(m, _, _)| Zxid(m.version) > last)
        {
            self.next_membership = None;
        }
        info!(sid = self.me, last_zxid = %last, "leading: waiting for a quorum of learners");
        self.role = Role::Leading(Box::new(leader));
        out.push(Output::State(self.state()));
        self.maybe_decide_epoch(now_ms, out);
        // Learners that connected before this member knew it leads.
        for (from, message) in std::mem::take(&mut self.early_learners) {
            self.leader_receive(now_ms, from, message, out);
        }
    }

    pub(crate) fn leader_input(&mut self, now_ms: u64, input: Input, out: &mut Vec<Output>) {
        match input {
            Input::Receive { from, message } => self.leader_receive(now_ms, from, message, out),
            Input::Disconnected { peer } => {
                if let Some(leader) = self.leader()
                    && leader.learners.remove(&peer).is_some()
                {
                    info!(sid = self.me, learner = peer, "learner disconnected");
                }
            }
            Input::Tick => self.leader_tick(now_ms, out),
            Input::LogRead {
                learner,
                stream,
                entries,
                last,
            } => self.on_log_read(now_ms, learner, stream, entries, last, out),
            Input::SnapshotPiece {
                learner,
                stream,
                data,
                last,
            } => self.on_snapshot_piece(now_ms, learner, stream, data, last, out),
            Input::RevalidateReply { to, session, valid } => {
                if let Some(leader) = self.leader()
                    && leader.learners.contains_key(&to)
                {
                    out.push(Output::Send {
                        to,
                        message: Message::Revalidated { session, valid },
                    });
                }
            }
            _ => {}
        }
    }

    fn drop_learner(&mut self, sid: Sid, why: &str, out: &mut Vec<Output>) {
        let me = self.me;
        if let Some(leader) = self.leader()
            && leader.learners.remove(&sid).is_some()
        {
            warn!(sid = me, learner = sid, "dropping learner: {why}");
            out.push(Output::Disconnect { peer: sid });
        }
    }

    fn leader_receive(&mut self, now_ms: u64, from: Sid, message: Message, out: &mut Vec<Output>) {
        if let Message::LearnerInfo {
            accepted_epoch,
            observer,
            election_epoch,
        } = message
        {
            let ours = matches!(&self.role, Role::Leading(l) if l.election_epoch == election_epoch);
            if !ours {
                warn!(
                    sid = self.me,
                    from, election_epoch, "a learner of another election round: refused"
                );
                out.push(Output::Disconnect { peer: from });
                return;
            }
            self.on_learner_info(now_ms, from, accepted_epoch, observer, out);
            return;
        }
        let me = self.me;
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        let Some(handler) = leader.learners.get_mut(&from) else {
            debug!(
                sid = me,
                from,
                "{} from a learner without a stream: ignored",
                message.name()
            );
            return;
        };
        handler.heard_ms = now_ms;
        let phase = handler.phase;
        let observer = handler.observer;
        let established = leader.established;
        match (phase, message) {
            (
                Phase::LeaderInfoSent,
                Message::AckEpoch {
                    current_epoch,
                    last_zxid,
                    snapshot_zxid,
                    already_accepted,
                },
            ) => {
                // An epoch accepted before counts for nothing (ZooKeeper's -1).
                let voter = self.config.is_voter(from) && !already_accepted;
                self.on_ack_epoch(
                    now_ms,
                    from,
                    voter,
                    current_epoch,
                    (last_zxid, snapshot_zxid),
                    out,
                )
            }
            (Phase::Syncing, Message::AckNewLeader { zxid }) if handler.stream.is_none() => {
                self.on_ack_newleader(now_ms, from, zxid, out)
            }
            (Phase::NewLeaderAcked | Phase::Synced, Message::Ack { zxid }) if !observer => {
                self.on_ack(now_ms, from, zxid, out)
            }
            (_, Message::Ping { touches }) => {
                if !touches.is_empty() {
                    out.push(Output::Touched { from, touches });
                }
            }
            (Phase::Synced, Message::Request { data }) if established => {
                handler.forwarded = true;
                out.push(Output::Request { from, data });
            }
            (
                Phase::Synced,
                Message::Revalidate {
                    session,
                    timeout_ms,
                },
            ) => out.push(Output::Revalidate {
                from,
                session,
                timeout_ms,
            }),
            (Phase::Synced, Message::Sync { id }) => {
                if leader.outstanding.is_empty() {
                    out.push(Output::Send {
                        to: from,
                        message: Message::SyncDone { id },
                    });
                } else if leader.learner_syncs.len() < SYNCS_MAX {
                    let zxid = leader.last_proposed;
                    leader.learner_syncs.push_back((zxid, from, id));
                } else {
                    self.drop_learner(from, "too many sync requests waiting", out);
                }
            }
            (phase, message) => {
                let why = format!("unexpected {} in phase {phase:?}", message.name());
                self.drop_learner(from, &why, out);
            }
        }
    }

    fn on_learner_info(
        &mut self,
        now_ms: u64,
        from: Sid,
        accepted_epoch: u32,
        observer: bool,
        out: &mut Vec<Output>,
    ) {
        let voter = self.config.is_voter(from);
        // With reconfiguration on, a server outside the membership may follow (a
        // joining server, as a non-voting follower) or observe.
        let stranger = !self.config.is_member(from) && !self.config.reconfig_enabled;
        let misplaced = self.config.is_member(from) && voter == observer;
        if from == self.me || stranger || misplaced {
            warn!(
                sid = self.me,
                from, observer, "learner not in the configuration as such: refused"
            );
            out.push(Output::Disconnect { peer: from });
            return;
        }
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        let mut handler = Handler {
            observer,
            phase: Phase::Info,
            sync: None,
            heard_ms: now_ms,
            stream: None,
            held: VecDeque::new(),
            forwarded: false,
        };
        if let Some(epoch) = leader.epoch {
            handler.phase = Phase::LeaderInfoSent;
            out.push(Output::Send {
                to: from,
                message: Message::LeaderInfo { epoch },
            });
        } else if voter {
            leader.connecting.insert(from, accepted_epoch);
        }
        if leader.learners.insert(from, handler).is_some() {
            debug!(
                learner = from,
                "a new stream replaces the learner's old one"
            );
        }
        self.maybe_decide_epoch(now_ms, out);
    }

    fn maybe_decide_epoch(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let me = self.me;
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        if leader.epoch.is_some()
            || !self
                .config
                .verifier
                .contains_quorum(leader.connecting.keys())
        {
            return;
        }
        let greatest = leader
            .connecting
            .values()
            .copied()
            .max()
            .unwrap_or_default();
        // Zxids are signed: an epoch at or past 2^31 would make them negative.
        let Some(epoch) = greatest.checked_add(1).filter(|e| *e <= i32::MAX as u32) else {
            warn!(sid = me, "epochs exhausted");
            self.look(now_ms, out);
            return;
        };
        // The epoch is durable before any learner hears of it: outputs are carried out
        // in order, and this one is synchronous.
        self.local.accepted_epoch = epoch;
        out.push(Output::SetAcceptedEpoch(epoch));
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        leader.epoch = Some(epoch);
        leader.epoch_acks.insert(me);
        // ZOOKEEPER-1783: with reconfiguration on, a first membership (version 0) takes
        // the version of this NEWLEADER once established, so that it outranks the partial
        // view of a server joining later.
        if self.config.reconfig_enabled
            && self.config.membership.version == 0
            && self.next_membership.is_none()
        {
            let mut first = self.config.membership.clone();
            first.version = Zxid::new(epoch, 0).0;
            let (verifier, observers) =
                (self.config.verifier.clone(), self.config.observers.clone());
            self.next_membership = Some((first, verifier, observers));
        }
        for (sid, handler) in leader.learners.iter_mut() {
            if handler.phase == Phase::Info {
                handler.phase = Phase::LeaderInfoSent;
                out.push(Output::Send {
                    to: *sid,
                    message: Message::LeaderInfo { epoch },
                });
            }
        }
        info!(sid = me, epoch, "new epoch");
        out.push(Output::State(self.state()));
        self.maybe_epoch_quorum(now_ms, out);
    }

    /// An `ACKEPOCH`; `voter` when it counts towards the epoch's quorum (a voter that
    /// had not accepted the epoch before).
    fn on_ack_epoch(
        &mut self,
        now_ms: u64,
        from: Sid,
        voter: bool,
        current_epoch: u32,
        (last_zxid, snapshot_zxid): (Zxid, Zxid),
        out: &mut Vec<Output>,
    ) {
        let me = self.me;
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        let Some(epoch) = leader.epoch else { return };
        // Only while the epoch is being established (ZooKeeper checks in
        // waitForEpochAck): once it serves, a stale voter's history is truncated instead.
        let ahead = current_epoch < epoch && (current_epoch, last_zxid) > leader.summary;
        if voter && !leader.established && ahead {
            warn!(
                sid = me,
                learner = from,
                learner_epoch = current_epoch,
                learner_zxid = %last_zxid,
                "follower is ahead of the leader: leaving"
            );
            self.look(now_ms, out);
            return;
        }
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        if let Some(handler) = leader.learners.get_mut(&from) {
            handler.phase = Phase::EpochAcked {
                last_zxid,
                snapshot_zxid,
            };
        }
        if voter {
            leader.epoch_acks.insert(from);
        }
        if leader.epoch_quorum {
            self.start_sync(now_ms, from, out);
        } else {
            self.maybe_epoch_quorum(now_ms, out);
        }
    }

    fn maybe_epoch_quorum(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        let Some(epoch) = leader.epoch else { return };
        if leader.epoch_quorum
            || !self
                .config
                .verifier
                .contains_quorum(leader.epoch_acks.iter())
        {
            return;
        }
        leader.epoch_quorum = true;
        let waiting: Vec<Sid> = leader
            .learners
            .iter()
            .filter(|(_, h)| matches!(h.phase, Phase::EpochAcked { .. }))
            .map(|(sid, _)| *sid)
            .collect();
        let _ = epoch;
        for sid in waiting {
            self.start_sync(now_ms, sid, out);
        }
        self.maybe_self_newleader_ack(now_ms, out);
    }

    fn maybe_self_newleader_ack(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let durable = self.local.durable;
        let me = self.me;
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        let Some(epoch) = leader.epoch else { return };
        // As a learner does before acknowledging NEWLEADER: the leader's own history is
        // durable before `currentEpoch` says it is this epoch's (a vote with the new
        // epoch and a log that a crash could still shorten would win elections it should
        // lose).
        if leader.epoch_quorum
            && durable >= leader.history_end
            && !leader.newleader_acks.contains(&me)
        {
            leader.newleader_acks.insert(me);
            self.local.current_epoch = epoch;
            out.push(Output::SetCurrentEpoch(epoch));
            self.maybe_established(now_ms, out);
        }
    }

    /// Decides how `sid` syncs and starts sending it.
    fn start_sync(&mut self, now_ms: u64, sid: Sid, out: &mut Vec<Output>) {
        let me = self.me;
        let diff_max = self.config.diff_max_txns;
        let batch = self.config.read_batch;
        let held_max = self.config.held_max;
        let max_snaps = self.config.max_concurrent_snap_syncs;
        let max_diffs = self.config.max_concurrent_diff_syncs;
        let local_last = self.local.last();
        let applied = self.local.applied;
        // With reconfiguration on, NEWLEADER says which membership the learner is to
        // have: the one being made, or the leader's own (a learner that missed a
        // reconfiguration catches up with it).
        let next_membership = match &self.next_membership {
            Some((m, _, _)) => Some(m.clone()),
            None if self.config.reconfig_enabled => Some(self.config.membership.clone()),
            None => None,
        };
        let in_flight = self.next_membership.is_some();
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        let Some(epoch) = leader.epoch else { return };
        // Before the epoch is established, establishing it commits the whole history, a
        // reconfiguration in it included; after, one in flight commits on its own.
        let pending = in_flight && leader.established;
        let commit_point = leader.commit_point();
        // Tokens are never reused by this member, whatever its roles since: pieces of a
        // read abandoned long ago must not pass for the current one's.
        self.next_stream += 1;
        let id = self.next_stream;
        let Some(handler) = leader.learners.get_mut(&sid) else {
            return;
        };
        let Phase::EpochAcked {
            last_zxid: peer,
            snapshot_zxid: peer_base,
        } = handler.phase
        else {
            return;
        };
        let observer = handler.observer;
        // Observers get only what is committed; the rest reaches them as INFORMs.
        let end = if observer { commit_point } else { local_last };
        let history = &self.local.history;
        // A diff starts from the greatest point both histories share; the learner cannot
        // go back past its snapshot, and a diff longer than the limit is a snapshot.
        let start = history
            .floor(peer)
            .map(|t| t.min(end))
            .filter(|t| *t >= peer_base && history.count_between(*t, end) <= diff_max);
        let kind = if start.is_some() {
            SyncKind::Diff
        } else {
            SyncKind::Snap
        };
        let (limit, limit_name) = match kind {
            SyncKind::Diff => (max_diffs, "learner.maxConcurrentDiffSyncs"),
            SyncKind::Snap => (max_snaps, "learner.maxConcurrentSnapSyncs"),
        };
        let running = leader
            .learners
            .values()
            .filter(|h| h.sync == Some(kind))
            .count();
        if running >= limit {
            let why = format!("{running} {kind:?} syncs running ({limit_name} is {limit})");
            self.drop_learner(sid, &why, out);
            return;
        }
        let mut messages = Vec::new();
        let mut stream = None;
        let how;
        match start {
            Some(t) => {
                how = if t == peer { "DIFF" } else { "TRUNC" };
                // What the learner keeps is committed as far as the leader's commits go;
                // the rest is committed by COMMITs to come.
                let committed = t.min(commit_point);
                messages.push(if t == peer {
                    Message::Diff { committed }
                } else {
                    Message::Trunc { zxid: t, committed }
                });
                match self.local.entries_in_memory(t, end) {
                    Some(entries) => {
                        for entry in &entries {
                            sync_messages(entry, observer, commit_point, &mut messages);
                        }
                    }
                    None => {
                        let through = end.min(applied);
                        stream = Some(Stream::Log {
                            id,
                            sent: t,
                            through,
                            commit_point,
                        });
                        out.push(Output::ReadLog {
                            learner: sid,
                            stream: id,
                            after: t,
                            through,
                            batch,
                        });
                    }
                }
            }
            None => {
                how = "SNAP";
                messages.push(Message::Snap { zxid: applied });
                out.push(Output::SendSnapshot {
                    learner: sid,
                    stream: id,
                    zxid: applied,
                });
                stream = Some(Stream::Snapshot { id });
            }
        }
        info!(sid = me, learner = sid, peer_zxid = %peer, "syncing learner by {how}");
        // Entries after what the stream covers are all in memory (pending).
        let mut tail = Vec::new();
        if let Some(Stream::Snapshot { .. }) = stream {
            for entry in self.local.pending.iter().filter(|e| e.zxid <= end) {
                sync_messages(entry, observer, commit_point, &mut tail);
            }
        } else if let Some(Stream::Log { through, .. }) = stream {
            for entry in self
                .local
                .pending
                .iter()
                .filter(|e| e.zxid > through && e.zxid <= end)
            {
                sync_messages(entry, observer, commit_point, &mut tail);
            }
        }
        tail.push(Message::NewLeader {
            zxid: Zxid::new(epoch, 0),
            membership: next_membership,
            pending,
        });
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        let Some(handler) = leader.learners.get_mut(&sid) else {
            return;
        };
        handler.phase = Phase::Syncing;
        handler.sync = Some(kind);
        handler.heard_ms = now_ms;
        // The header goes first, before any stream content.
        for message in messages {
            out.push(Output::Send { to: sid, message });
        }
        handler.stream = stream;
        let mut full = false;
        for message in tail {
            full |= !send_to(sid, handler, message, held_max, out);
        }
        if full {
            self.drop_learner(sid, "sync backlog full", out);
        }
    }

    fn on_log_read(
        &mut self,
        now_ms: u64,
        sid: Sid,
        stream: u64,
        entries: Vec<Entry>,
        last: bool,
        out: &mut Vec<Output>,
    ) {
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        let Some(handler) = leader.learners.get_mut(&sid) else {
            return;
        };
        let observer = handler.observer;
        let Some(Stream::Log {
            id,
            mut sent,
            through,
            commit_point,
        }) = handler.stream
        else {
            return;
        };
        if id != stream {
            return;
        }
        let mut messages = Vec::new();
        let mut bad = None;
        for entry in &entries {
            let expected = self.local.history.next_after(sent);
            if Some(entry.zxid) != expected || entry.zxid > through {
                bad = Some(format!("log read gave {} after {sent}", entry.zxid));
                break;
            }
            sent = entry.zxid;
            sync_messages(entry, observer, commit_point, &mut messages);
        }
        if bad.is_none() && last && sent != through {
            bad = Some(format!("log read ended at {sent}, not {through}"));
        }
        if let Some(why) = bad {
            self.drop_learner(sid, &why, out);
            return;
        }
        for message in messages {
            out.push(Output::Send { to: sid, message });
        }
        // The learner answers once its stream is whole: its limit counts from the last
        // piece sent, as ZooKeeper's leader starts waiting once it has written the sync.
        handler.heard_ms = handler.heard_ms.max(now_ms);
        handler.stream = (!last).then_some(Stream::Log {
            id,
            sent,
            through,
            commit_point,
        });
        if last {
            flush_held(sid, handler, out);
        }
    }

    fn on_snapshot_piece(
        &mut self,
        now_ms: u64,
        sid: Sid,
        stream: u64,
        data: Bytes,
        last: bool,
        out: &mut Vec<Output>,
    ) {
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        let Some(handler) = leader.learners.get_mut(&sid) else {
            return;
        };
        if handler
            .stream
            .map(|s| matches!(s, Stream::Snapshot { id } if id == stream))
            != Some(true)
        {
            return;
        }
        out.push(Output::Send {
            to: sid,
            message: Message::SnapPiece { data, last },
        });
        // As for a log stream: the learner's limit counts from the last piece sent.
        handler.heard_ms = handler.heard_ms.max(now_ms);
        if last {
            handler.stream = None;
            flush_held(sid, handler, out);
        }
    }

    fn on_ack_newleader(&mut self, now_ms: u64, from: Sid, zxid: Zxid, out: &mut Vec<Output>) {
        let voter = self.config.is_voter(from);
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        if leader.epoch.map(|e| Zxid::new(e, 0)) != Some(zxid) {
            self.drop_learner(from, "NEWLEADER acknowledged with a wrong zxid", out);
            return;
        }
        let established = leader.established;
        if let Some(handler) = leader.learners.get_mut(&from) {
            handler.sync = None;
            if established {
                handler.phase = Phase::Synced;
                out.push(Output::Send {
                    to: from,
                    message: Message::UpToDate,
                });
            } else {
                handler.phase = Phase::NewLeaderAcked;
            }
        }
        if voter && leader.newleader_acks.insert(from) {
            self.maybe_established(now_ms, out);
        }
    }

    fn maybe_established(&mut self, _now_ms: u64, out: &mut Vec<Output>) {
        let me = self.me;
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        if leader.established
            || !leader.epoch_quorum
            || !self
                .config
                .verifier
                .contains_quorum(leader.newleader_acks.iter())
        {
            return;
        }
        leader.established = true;
        leader.last_committed = leader.history_end;
        leader.last_proposed = leader.history_end;
        let history_end = leader.history_end;
        for (sid, handler) in leader.learners.iter_mut() {
            if handler.phase == Phase::NewLeaderAcked {
                handler.phase = Phase::Synced;
                out.push(Output::Send {
                    to: *sid,
                    message: Message::UpToDate,
                });
            }
        }
        info!(sid = me, epoch = ?leader.epoch, last_zxid = %history_end, "established: serving");
        let acked: Vec<Sid> = leader.newleader_acks.iter().copied().collect();
        self.local.deliver_through(history_end, out);
        out.push(Output::State(self.state()));
        // The membership NEWLEADER carried (a first one's new version, or a
        // reconfiguration the history holds) is the ensemble's now.
        if let Some((_, verifier, _)) = &self.next_membership {
            let designated = if verifier.is_voter(me) {
                me
            } else {
                acked
                    .iter()
                    .copied()
                    .find(|sid| *sid != me && verifier.is_voter(*sid))
                    .unwrap_or(me)
            };
            self.activate(_now_ms, designated, out);
        }
    }

    pub(crate) fn leader_propose(&mut self, now_ms: u64, entry: Entry, out: &mut Vec<Output>) {
        self.leader_propose_message(now_ms, entry, None, out);
    }

    /// Logs and broadcasts `entry`; a reconfiguration goes to followers with the
    /// `membership` it makes.
    pub(crate) fn leader_propose_message(
        &mut self,
        now_ms: u64,
        entry: Entry,
        membership: Option<Membership>,
        out: &mut Vec<Output>,
    ) {
        let held_max = self.config.held_max;
        if let Err(e) = self.local.append(entry.clone(), out) {
            warn!(sid = self.me, "cannot log own proposal: {e}");
            self.look(now_ms, out);
            return;
        }
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        leader.last_proposed = entry.zxid;
        let mut full = Vec::new();
        for (sid, handler) in leader.learners.iter_mut() {
            if handler.phase.forwarding() && !handler.observer {
                let message = match &membership {
                    Some(m) => Message::Reconfig {
                        entry: entry.clone(),
                        membership: m.clone(),
                    },
                    None => Message::Proposal(entry.clone()),
                };
                if !send_to(*sid, handler, message, held_max, out) {
                    full.push(*sid);
                }
            }
        }
        leader.outstanding.push_back(Proposal {
            entry,
            acks: BTreeSet::new(),
        });
        for sid in full {
            self.drop_learner(sid, "backlog full", out);
        }
        self.leader_durable(now_ms, out);
    }

    pub(crate) fn leader_durable(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        self.maybe_self_newleader_ack(now_ms, out);
        let me = self.me;
        let durable = self.local.durable;
        self.ack_through(me, durable);
        self.try_commit(now_ms, out);
        self.announce_logged(out);
    }

    /// Tells each follower with a client waiting on a forwarded request, and that makes a
    /// quorum with this leader, how far the leader's log is durable when proposals up to
    /// there are not all committed yet: the follower applies them once its own log is
    /// durable too (see [`Message::Logged`]). Not while a reconfiguration is in flight,
    /// whose commit must come from the leader. The `COMMIT` still follows: a follower
    /// whose membership says otherwise (members started with different `server.N` lines)
    /// applies on it instead.
    fn announce_logged(&mut self, out: &mut Vec<Output>) {
        let me = self.me;
        let durable = self.local.durable;
        let held_max = self.config.held_max;
        let verifier = &self.config.verifier;
        if self.next_membership.is_some() {
            return;
        }
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        if !leader.established || durable <= leader.last_committed || durable <= leader.logged_sent
        {
            return;
        }
        debug_assert!(
            durable <= leader.last_proposed,
            "durable past the last proposal"
        );
        leader.logged_sent = durable;
        // Every proposal is durable here: what a learner forwards next is proposed later.
        let caught_up = durable == leader.last_proposed;
        let mut full = Vec::new();
        for (sid, handler) in leader.learners.iter_mut() {
            let synced = handler.phase == Phase::Synced && !handler.observer;
            if synced && handler.forwarded && verifier.contains_quorum([me, *sid].iter()) {
                handler.forwarded &= !caught_up;
                let message = Message::Logged { zxid: durable };
                if !send_to(*sid, handler, message, held_max, out) {
                    full.push(*sid);
                }
            }
        }
        for sid in full {
            self.drop_learner(sid, "backlog full", out);
        }
    }

    fn on_ack(&mut self, now_ms: u64, from: Sid, zxid: Zxid, out: &mut Vec<Output>) {
        self.ack_through(from, zxid);
        self.try_commit(now_ms, out);
    }

    fn ack_through(&mut self, sid: Sid, zxid: Zxid) {
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        for proposal in leader.outstanding.iter_mut() {
            if proposal.entry.zxid > zxid {
                break;
            }
            proposal.acks.insert(sid);
        }
    }

    fn try_commit(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let held_max = self.config.held_max;
        let verifier = &self.config.verifier;
        let next = self.next_membership.as_ref();
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        let mut full = BTreeSet::new();
        let me = self.me;
        let mut activated = None;
        // One COMMIT per follower for the run committed here, through its last zxid (a
        // COMMIT covers every proposal before it): an ACK often commits a hundred.
        // Whatever else goes to a follower in the run goes after its COMMIT.
        let mut commits: BTreeMap<Sid, Zxid> = BTreeMap::new();
        let flush = |sid: Sid,
                     handler: &mut Handler,
                     commits: &mut BTreeMap<Sid, Zxid>,
                     out: &mut Vec<Output>| {
            match commits.remove(&sid) {
                Some(zxid) => send_to(sid, handler, Message::Commit { zxid }, held_max, out),
                None => true,
            }
        };
        while let Some(front) = leader.outstanding.front() {
            // A deliberately broken build (feature `broken-commit-alone`, for checking
            // that the chaos checkers catch lost writes): the leader's own ACK commits.
            let alone = cfg!(feature = "broken-commit-alone") && front.acks.contains(&me);
            // From a reconfiguration on, the new voters must agree too.
            let next_agrees = next.is_none_or(|(m, v, _)| {
                front.entry.zxid.0 < m.version || v.contains_quorum(front.acks.iter())
            });
            let agreed = verifier.contains_quorum(front.acks.iter()) && next_agrees;
            if !alone && !agreed {
                break;
            }
            let Some(proposal) = leader.outstanding.pop_front() else {
                break;
            };
            let zxid = proposal.entry.zxid;
            debug_assert!(zxid > leader.last_committed, "commits go forward");
            leader.last_committed = zxid;
            self.local.deliver_through(zxid, out);
            let reconfig = next.filter(|(m, _, _)| m.version == zxid.0);
            let designated =
                reconfig.map(|(_, v, _)| designated_leader(me, v, &proposal, &leader.outstanding));
            for (sid, handler) in leader.learners.iter_mut() {
                if !handler.phase.forwarding() {
                    continue;
                }
                let message = match (reconfig, designated, handler.observer) {
                    (Some((m, _, _)), Some(leader), true) => Message::InformAndActivate {
                        entry: proposal.entry.clone(),
                        membership: m.clone(),
                        leader,
                    },
                    (_, _, true) => Message::Inform(proposal.entry.clone()),
                    (Some(_), Some(leader), false) => {
                        // The follower takes COMMITANDACTIVATE for its next txn only.
                        if !flush(*sid, handler, &mut commits, out) {
                            full.insert(*sid);
                        }
                        Message::CommitAndActivate { zxid, leader }
                    }
                    _ => {
                        commits.insert(*sid, zxid);
                        continue;
                    }
                };
                if !send_to(*sid, handler, message, held_max, out) {
                    full.insert(*sid);
                }
            }
            while let Some(&(at, id)) = self.local_syncs.front() {
                if at > zxid {
                    break;
                }
                self.local_syncs.pop_front();
                out.push(Output::Synced { id });
            }
            while let Some(&(at, sid, id)) = leader.learner_syncs.front() {
                if at > zxid {
                    break;
                }
                leader.learner_syncs.pop_front();
                if let Some(handler) = leader.learners.get_mut(&sid) {
                    // The learner answers once it has applied what the sync waited for.
                    if !flush(sid, handler, &mut commits, out) {
                        full.insert(sid);
                    }
                    send_to(sid, handler, Message::SyncDone { id }, held_max, out);
                }
            }
            if let Some(designated) = designated {
                activated = Some(designated);
                // What follows is counted by the new membership.
                break;
            }
        }
        for (sid, handler) in leader.learners.iter_mut() {
            if !flush(*sid, handler, &mut commits, out) {
                full.insert(*sid);
            }
        }
        for sid in full {
            self.drop_learner(sid, "backlog full", out);
        }
        if let Some(designated) = activated {
            self.activate(now_ms, designated, out);
            if self.role_is_leading() {
                self.try_commit(now_ms, out);
            }
        }
    }

    fn leader_tick(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let me = self.me;
        let tick_ms = self.config.tick_ms;
        let init_ms = self.config.init_ms();
        let sync_ms = self.config.sync_ms();
        let held_max = self.config.held_max;
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        if !leader.established && now_ms >= leader.deadline_ms {
            warn!(sid = me, "no quorum synced within initLimit: leaving");
            self.look(now_ms, out);
            return;
        }
        let mut silent = Vec::new();
        for (sid, handler) in leader.learners.iter() {
            let limit = if handler.phase == Phase::Synced {
                sync_ms
            } else {
                init_ms
            };
            if now_ms.saturating_sub(handler.heard_ms) > limit {
                silent.push(*sid);
            }
        }
        for sid in silent {
            self.drop_learner(sid, "silent past its limit", out);
        }
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        if now_ms >= leader.next_ping_ms {
            leader.next_ping_ms = now_ms + (tick_ms / 2).max(1);
            let mut full = Vec::new();
            for (sid, handler) in leader.learners.iter_mut() {
                if handler.phase != Phase::Info {
                    let ping = Message::Ping {
                        touches: Vec::new(),
                    };
                    if !send_to(*sid, handler, ping, held_max, out) {
                        full.push(*sid);
                    }
                }
            }
            for sid in full {
                self.drop_learner(sid, "backlog full", out);
            }
        }
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        if leader.established && leader.next_zxid().is_none() && leader.outstanding.is_empty() {
            // ZooKeeper's ZxidRolloverException: the counter is used up; a new election
            // starts a new epoch.
            warn!(
                sid = me,
                "zxid counter of the epoch exhausted: leaving for a new epoch"
            );
            self.look(now_ms, out);
            return;
        }
        if leader.established {
            let synced = leader
                .learners
                .iter()
                .filter(|(_, h)| h.phase == Phase::Synced)
                .map(|(sid, _)| sid)
                .chain([&me]);
            if !self.config.verifier.contains_quorum(synced) {
                warn!(sid = me, "not enough followers synced: leaving");
                self.look(now_ms, out);
            }
        }
    }
}

/// Who leads once the reconfiguration `proposal` commits (ZooKeeper's
/// `getDesignatedLeader`): this leader if it votes in the new membership; otherwise the
/// new voter that acknowledged the reconfiguration and the most of the proposals after
/// it, the smallest id among equals; this leader if no new voter acknowledged it.
fn designated_leader(
    me: Sid,
    verifier: &zk_election::QuorumVerifier,
    proposal: &Proposal,
    after: &VecDeque<Proposal>,
) -> Sid {
    if verifier.is_voter(me) {
        return me;
    }
    proposal
        .acks
        .iter()
        .filter(|sid| **sid != me && verifier.is_voter(**sid))
        .map(|sid| {
            let acked = after.iter().take_while(|p| p.acks.contains(sid)).count();
            (std::cmp::Reverse(acked), *sid)
        })
        .min()
        .map_or(me, |(_, sid)| sid)
}

fn flush_held(sid: Sid, handler: &mut Handler, out: &mut Vec<Output>) {
    for message in handler.held.drain(..) {
        out.push(Output::Send { to: sid, message });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_ends_before_the_zxid_counter_does() {
        let mut leader = Leader {
            election_epoch: 1,
            epoch: Some(3),
            established: true,
            connecting: BTreeMap::new(),
            epoch_acks: BTreeSet::new(),
            epoch_quorum: true,
            summary: (2, Zxid::new(2, 5)),
            history_end: Zxid::new(2, 5),
            newleader_acks: BTreeSet::new(),
            deadline_ms: 0,
            next_ping_ms: 0,
            learners: BTreeMap::new(),
            outstanding: VecDeque::new(),
            last_proposed: Zxid::new(2, 5),
            last_committed: Zxid::new(2, 5),
            logged_sent: Zxid(0),
            learner_syncs: VecDeque::new(),
        };
        assert_eq!(leader.next_zxid(), Some(Zxid::new(3, 1)));
        leader.last_proposed = Zxid::new(3, u32::MAX - 2);
        assert_eq!(leader.next_zxid(), Some(Zxid::new(3, u32::MAX - 1)));
        // ZooKeeper never uses counter 0xffffffff: a new epoch must start instead.
        leader.last_proposed = Zxid::new(3, u32::MAX - 1);
        assert_eq!(leader.next_zxid(), None);
        leader.established = false;
        leader.last_proposed = Zxid::new(2, 5);
        assert_eq!(
            leader.next_zxid(),
            None,
            "not before the epoch is established"
        );
    }
}
