//! The learner's side: ZooKeeper's `Learner`, `Follower` and `Observer`.
//!
//! A learner connects to the elected leader, accepts its epoch, syncs (DIFF, TRUNC or
//! SNAP, then proposals and commits), and acknowledges `NEWLEADER` only once everything
//! the sync sent is durable and `currentEpoch` is written (the fixes of ZOOKEEPER-3911
//! and ZOOKEEPER-4646). It serves after `UPTODATE`. A follower then logs and
//! acknowledges proposals and applies commits, or, where it and the leader make a quorum,
//! what both logs hold by the leader's `LOGGED`; an observer logs and applies informs.

use std::collections::BTreeMap;

use tracing::{debug, info, warn};
use zk_jute::Zxid;

use crate::message::{Message, Sid, Touch};
use crate::zab::{Input, Output, Role, Zab};

/// Where the learner's stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the stream to open; `retry_ms` when a failed attempt is retried.
    Connecting { retry_ms: Option<u64> },
    /// `LEARNERINFO` sent.
    AwaitLeaderInfo,
    /// `ACKEPOCH` sent; waiting for DIFF, TRUNC or SNAP.
    AwaitSync,
    /// Receiving the sync.
    Syncing,
    /// `NEWLEADER` acknowledged; waiting for `UPTODATE`.
    AwaitUpToDate,
    /// Synced: serving.
    Serving,
}

/// The learner's state.
#[derive(Debug, Clone)]
pub(crate) struct Learner {
    pub(crate) leader: Sid,
    /// The election round that chose the leader.
    election_epoch: i64,
    pub(crate) observer: bool,
    phase: Phase,
    /// The leader's epoch, from `LEADERINFO`.
    epoch: u32,
    /// A snapshot being received.
    snapshot: Option<Zxid>,
    /// The highest zxid the sync said is committed.
    sync_committed: Zxid,
    /// A `NEWLEADER` waiting for the log to be durable (up to the second zxid, the last
    /// one received before it) before it is acknowledged.
    newleader: Option<(Zxid, Zxid)>,
    /// `NEWLEADER` named a reconfiguration still in flight: `UPTODATE` leaves it pending,
    /// and its commit activates it.
    membership_pending: bool,
    /// The membership `NEWLEADER` named, newer than this member's: `UPTODATE` activates
    /// it, and not a reconfiguration proposed after it, which waits for its commit.
    named_membership: Option<crate::config::Membership>,
    /// The last zxid acknowledged.
    acked: Zxid,
    /// How far the leader's log is durable, by its last [`Message::Logged`].
    leader_logged: Zxid,
    since_ms: u64,
    heard_ms: u64,
    touches: BTreeMap<i64, i32>,
}

impl Learner {
    pub(crate) fn is_serving(&self) -> bool {
        self.phase == Phase::Serving
    }

    /// When a tick has something to do: a retry, or the leader's silence running out.
    pub(crate) fn next_deadline_ms(&self, init_ms: u64, sync_ms: u64) -> u64 {
        match self.phase {
            Phase::Connecting { retry_ms } => {
                let give_up = self.since_ms.saturating_add(init_ms).saturating_add(1);
                retry_ms.map_or(give_up, |at| at.min(give_up))
            }
            Phase::Serving => self.heard_ms.saturating_add(sync_ms).saturating_add(1),
            _ => self.heard_ms.saturating_add(init_ms).saturating_add(1),
        }
    }
}

impl Zab {
    /// A follower logs a reconfiguration and remembers the membership it proposes.
    fn on_reconfig(
        &mut self,
        entry: crate::message::Entry,
        membership: crate::config::Membership,
        out: &mut Vec<Output>,
    ) -> Result<(), String> {
        if membership.version != entry.zxid.0 {
            return Err(format!(
                "a reconfiguration at {} with membership version {:#x}",
                entry.zxid, membership.version
            ));
        }
        self.expect_membership(membership)?;
        self.local
            .append(entry, out)
            .map_err(|e| format!("PROPOSAL refused: {e}"))
    }

    /// Remembers `membership` as the one a pending reconfiguration makes.
    fn expect_membership(&mut self, membership: crate::config::Membership) -> Result<(), String> {
        self.set_next_membership(membership)
            .map_err(|e| format!("a reconfiguration's membership: {e}"))
    }

    /// The reconfiguration at `zxid` is committed here: its membership is activated.
    fn activate_at(
        &mut self,
        now_ms: u64,
        zxid: Zxid,
        leader: Sid,
        out: &mut Vec<Output>,
    ) -> Result<(), String> {
        match &self.next_membership {
            Some((m, _, _)) if m.version == zxid.0 => {
                self.activate(now_ms, leader, out);
                Ok(())
            }
            other => Err(format!(
                "activation of {zxid} while the pending membership is {:?}",
                other.as_ref().map(|(m, _, _)| Zxid(m.version))
            )),
        }
    }

    fn learner(&mut self) -> Option<&mut Learner> {
        match &mut self.role {
            Role::Learning(learner) => Some(learner),
            _ => None,
        }
    }

    pub(crate) fn follow(
        &mut self,
        now_ms: u64,
        leader: Sid,
        election_epoch: i64,
        out: &mut Vec<Output>,
    ) {
        self.look(now_ms, out);
        // With reconfiguration on, the leader may be outside the membership this member
        // knows (it missed the reconfiguration that made it a voter): NEWLEADER brings
        // the leader's.
        let known = self.config.is_voter(leader) || self.config.reconfig_enabled;
        if leader == self.me || !known {
            warn!(sid = self.me, leader, "cannot follow that leader");
            out.push(Output::State(self.state()));
            return;
        }
        let observer = self.config.observers.contains(&self.me);
        info!(
            sid = self.me,
            leader, observer, "following: connecting to the leader"
        );
        self.role = Role::Learning(Box::new(Learner {
            leader,
            election_epoch,
            observer,
            phase: Phase::Connecting { retry_ms: None },
            epoch: 0,
            snapshot: None,
            sync_committed: self.local.applied,
            newleader: None,
            membership_pending: false,
            named_membership: None,
            acked: Zxid(0),
            leader_logged: Zxid(0),
            since_ms: now_ms,
            heard_ms: now_ms,
            touches: BTreeMap::new(),
        }));
        out.push(Output::State(self.state()));
        out.push(Output::Connect { peer: leader });
    }

    pub(crate) fn learner_input(&mut self, now_ms: u64, input: Input, out: &mut Vec<Output>) {
        let accepted_epoch = self.local.accepted_epoch;
        let tick_ms = self.config.tick_ms;
        let Role::Learning(learner) = &mut self.role else {
            return;
        };
        let leader = learner.leader;
        match input {
            Input::Connected { peer } if peer == leader => {
                if let Phase::Connecting { .. } = learner.phase {
                    learner.phase = Phase::AwaitLeaderInfo;
                    learner.heard_ms = now_ms;
                    let observer = learner.observer;
                    let election_epoch = learner.election_epoch;
                    out.push(Output::Send {
                        to: leader,
                        message: Message::LearnerInfo {
                            accepted_epoch,
                            observer,
                            election_epoch,
                        },
                    });
                }
            }
            Input::Disconnected { peer } if peer == leader => {
                if let Phase::Connecting { .. } = learner.phase {
                    learner.phase = Phase::Connecting {
                        retry_ms: Some(now_ms + tick_ms),
                    };
                } else {
                    info!(sid = self.me, leader, "lost the leader");
                    self.look(now_ms, out);
                }
            }
            Input::Receive { from, message } if from == leader => {
                learner.heard_ms = now_ms;
                self.learner_receive(now_ms, message, out);
            }
            Input::Tick => self.learner_tick(now_ms, out),
            Input::Forward { data } if learner.is_serving() => out.push(Output::Send {
                to: leader,
                message: Message::Request { data },
            }),
            Input::Touch(touches) => {
                for t in touches {
                    learner.touches.insert(t.session, t.timeout_ms);
                }
            }
            Input::Revalidate {
                session,
                timeout_ms,
            } if learner.is_serving() => out.push(Output::Send {
                to: leader,
                message: Message::Revalidate {
                    session,
                    timeout_ms,
                },
            }),
            other => debug!(sid = self.me, "learner ignores {other:?}"),
        }
    }

    fn learner_tick(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let init_ms = self.config.init_ms();
        let sync_ms = self.config.sync_ms();
        let me = self.me;
        let Role::Learning(learner) = &mut self.role else {
            return;
        };
        let leader = learner.leader;
        if let Phase::Connecting { retry_ms } = learner.phase {
            if now_ms.saturating_sub(learner.since_ms) > init_ms {
                warn!(
                    sid = me,
                    leader, "could not connect to the leader within initLimit"
                );
                self.look(now_ms, out);
            } else if retry_ms.is_some_and(|at| now_ms >= at) {
                learner.phase = Phase::Connecting { retry_ms: None };
                out.push(Output::Connect { peer: leader });
            }
            return;
        }
        let limit = if learner.phase == Phase::Serving {
            sync_ms
        } else {
            init_ms
        };
        if now_ms.saturating_sub(learner.heard_ms) > limit {
            warn!(sid = me, leader, phase = ?learner.phase, "leader silent past its limit");
            self.look(now_ms, out);
        }
    }

    fn learner_receive(&mut self, now_ms: u64, message: Message, out: &mut Vec<Output>) {
        let Role::Learning(learner) = &mut self.role else {
            return;
        };
        let phase = learner.phase;
        let observer = learner.observer;
        let snapshot = learner.snapshot;
        let leader_logged = learner.leader_logged;
        let result = match (phase, message) {
            (Phase::AwaitLeaderInfo, Message::LeaderInfo { epoch }) => {
                self.on_leader_info(epoch, out)
            }
            (Phase::AwaitSync, Message::Diff { committed }) => {
                self.set_phase(Phase::Syncing);
                self.sync_commit(committed.min(self.local.last()))
            }
            (Phase::AwaitSync, Message::Trunc { zxid, committed }) => {
                self.set_phase(Phase::Syncing);
                match self.local.truncate(zxid, out) {
                    Ok(()) => {
                        // A reconfiguration among the txns dropped is gone with them.
                        if self
                            .next_membership
                            .as_ref()
                            .is_some_and(|(m, _, _)| m.version > zxid.0)
                        {
                            self.next_membership = None;
                        }
                        self.sync_commit(committed.min(zxid))
                    }
                    Err(e) => Err(format!("TRUNC refused: {e}")),
                }
            }
            (Phase::AwaitSync, Message::Snap { zxid }) => {
                self.set_phase(Phase::Syncing);
                if let Some(learner) = self.learner() {
                    learner.snapshot = Some(zxid);
                }
                out.push(Output::SnapshotBegin { zxid });
                Ok(())
            }
            (Phase::Syncing, Message::SnapPiece { data, last }) if snapshot.is_some() => {
                out.push(Output::SnapshotPiece(data));
                if let (true, Some(zxid)) = (last, snapshot) {
                    out.push(Output::SnapshotEnd { zxid });
                    self.local.install_snapshot(zxid);
                    if let Some(learner) = self.learner() {
                        learner.snapshot = None;
                        learner.sync_committed = zxid;
                    }
                }
                Ok(())
            }
            (_, Message::SnapPiece { .. }) | (_, _) if snapshot.is_some() => {
                Err("a message inside a snapshot".to_string())
            }
            (Phase::Syncing | Phase::AwaitUpToDate | Phase::Serving, Message::Proposal(entry))
                if !observer =>
            {
                self.local
                    .append(entry, out)
                    .map_err(|e| format!("PROPOSAL refused: {e}"))
            }
            (
                Phase::Syncing | Phase::AwaitUpToDate | Phase::Serving,
                Message::Reconfig { entry, membership },
            ) if !observer => self.on_reconfig(entry, membership, out),
            // During the sync, commits wait for UPTODATE, which activates the membership
            // NEWLEADER named (the leader's pending one).
            (Phase::Syncing | Phase::AwaitUpToDate, Message::CommitAndActivate { zxid, .. })
                if !observer =>
            {
                self.sync_commit(zxid)
            }
            (
                Phase::Syncing | Phase::AwaitUpToDate,
                Message::InformAndActivate {
                    entry, membership, ..
                },
            ) if observer => {
                let zxid = entry.zxid;
                match self.local.append(entry, out) {
                    Ok(()) => self
                        .expect_membership(membership)
                        .and_then(|()| self.sync_commit(zxid)),
                    Err(e) => Err(format!("INFORMANDACTIVATE refused: {e}")),
                }
            }
            (Phase::Serving, Message::CommitAndActivate { zxid, leader }) if !observer => {
                match self.local.pending.front() {
                    Some(next) if next.zxid == zxid => {
                        self.local.deliver_through(zxid, out);
                        self.activate_at(now_ms, zxid, leader, out)
                    }
                    next => Err(format!(
                        "COMMITANDACTIVATE {zxid} while the next pending txn is {:?}",
                        next.map(|e| e.zxid)
                    )),
                }
            }
            (
                Phase::Serving,
                Message::InformAndActivate {
                    entry,
                    membership,
                    leader,
                },
            ) if observer => {
                let zxid = entry.zxid;
                match self.local.append(entry, out) {
                    Ok(()) => {
                        self.local.deliver_through(zxid, out);
                        self.expect_membership(membership)
                            .and_then(|()| self.activate_at(now_ms, zxid, leader, out))
                    }
                    Err(e) => Err(format!("INFORMANDACTIVATE refused: {e}")),
                }
            }
            (Phase::Syncing | Phase::AwaitUpToDate, Message::Commit { zxid }) if !observer => {
                self.sync_commit(zxid)
            }
            (Phase::Serving, Message::Logged { zxid }) if !observer => {
                if zxid > self.local.last() {
                    Err(format!("LOGGED {zxid} of a txn not received"))
                } else {
                    if let Some(learner) = self.learner() {
                        learner.leader_logged = learner.leader_logged.max(zxid);
                    }
                    self.commit_known(out);
                    Ok(())
                }
            }
            // Applied already: the leader's LOGGED and this log made a quorum.
            (Phase::Serving, Message::Commit { zxid })
                if !observer && zxid <= self.local.applied && zxid <= leader_logged =>
            {
                Ok(())
            }
            (Phase::Serving, Message::Commit { zxid }) if !observer => {
                // A COMMIT covers every proposal up to its zxid.
                match self.local.pending.front() {
                    Some(next) if next.zxid <= zxid && zxid <= self.local.last() => {
                        self.local.deliver_through(zxid, out);
                        Ok(())
                    }
                    next => Err(format!(
                        "COMMIT {zxid} while the next pending txn is {:?} and the last received {}",
                        next.map(|e| e.zxid),
                        self.local.last()
                    )),
                }
            }
            (Phase::Syncing | Phase::AwaitUpToDate, Message::Inform(entry)) if observer => {
                let zxid = entry.zxid;
                match self.local.append(entry, out) {
                    Ok(()) => self.sync_commit(zxid),
                    Err(e) => Err(format!("INFORM refused: {e}")),
                }
            }
            (Phase::Serving, Message::Inform(entry)) if observer => {
                let zxid = entry.zxid;
                match self.local.append(entry, out) {
                    Ok(()) => {
                        self.local.deliver_through(zxid, out);
                        Ok(())
                    }
                    Err(e) => Err(format!("INFORM refused: {e}")),
                }
            }
            (
                Phase::Syncing,
                Message::NewLeader {
                    zxid,
                    membership,
                    pending,
                },
            ) => self.on_newleader(zxid, membership, pending, out),
            (Phase::AwaitUpToDate, Message::UpToDate) => {
                self.on_uptodate(now_ms, out);
                Ok(())
            }
            (_, Message::Ping { .. }) => {
                if let Some(learner) = self.learner() {
                    let touches = std::mem::take(&mut learner.touches)
                        .into_iter()
                        .map(|(session, timeout_ms)| Touch {
                            session,
                            timeout_ms,
                        })
                        .collect();
                    let leader = learner.leader;
                    out.push(Output::Send {
                        to: leader,
                        message: Message::Ping { touches },
                    });
                }
                Ok(())
            }
            (Phase::Serving, Message::Revalidated { session, valid }) => {
                out.push(Output::Revalidated { session, valid });
                Ok(())
            }
            (Phase::Serving, Message::SyncDone { id }) => {
                out.push(Output::Synced { id });
                Ok(())
            }
            (phase, message) => Err(format!("unexpected {} in phase {phase:?}", message.name())),
        };
        if let Err(why) = result {
            warn!(sid = self.me, "{why}: leaving the leader");
            self.look(now_ms, out);
        }
    }

    fn set_phase(&mut self, phase: Phase) {
        if let Some(learner) = self.learner() {
            learner.phase = phase;
        }
    }

    fn on_leader_info(&mut self, epoch: u32, out: &mut Vec<Output>) -> Result<(), String> {
        if epoch < self.local.accepted_epoch {
            return Err(format!(
                "leader's epoch {epoch} is older than the accepted epoch {}",
                self.local.accepted_epoch
            ));
        }
        let already_accepted = epoch == self.local.accepted_epoch;
        if epoch > self.local.accepted_epoch {
            self.local.accepted_epoch = epoch;
            out.push(Output::SetAcceptedEpoch(epoch));
        }
        let current_epoch = self.local.current_epoch;
        let last_zxid = self.local.last();
        let snapshot_zxid = self.local.history.base();
        let Some(learner) = self.learner() else {
            return Ok(());
        };
        learner.epoch = epoch;
        learner.phase = Phase::AwaitSync;
        let leader = learner.leader;
        out.push(Output::Send {
            to: leader,
            message: Message::AckEpoch {
                current_epoch,
                last_zxid,
                snapshot_zxid,
                already_accepted,
            },
        });
        Ok(())
    }

    fn sync_commit(&mut self, zxid: Zxid) -> Result<(), String> {
        if zxid > self.local.last() {
            return Err(format!("COMMIT {zxid} of a txn not received"));
        }
        if let Some(learner) = self.learner() {
            learner.sync_committed = learner.sync_committed.max(zxid);
        }
        Ok(())
    }

    fn on_newleader(
        &mut self,
        zxid: Zxid,
        membership: Option<crate::config::Membership>,
        pending: bool,
        out: &mut Vec<Output>,
    ) -> Result<(), String> {
        // The leader's word on the membership to come replaces whatever this learner saw
        // of a reconfiguration the sync may have dropped.
        self.next_membership = None;
        let named = membership.filter(|m| m.version > self.config.membership.version);
        if let Some(membership) = named.clone() {
            self.expect_membership(membership)?;
        }
        let last = self.local.history.last();
        let Some(learner) = self.learner() else {
            return Ok(());
        };
        learner.membership_pending = pending;
        learner.named_membership = named;
        if zxid != Zxid::new(learner.epoch, 0) {
            return Err(format!("NEWLEADER {zxid} for epoch {}", learner.epoch));
        }
        learner.newleader = Some((zxid, last));
        self.try_ack_newleader(out);
        Ok(())
    }

    /// Acknowledges `NEWLEADER` once everything the sync sent is durable: first the log,
    /// then `currentEpoch`, then the acknowledgement.
    fn try_ack_newleader(&mut self, out: &mut Vec<Output>) {
        let durable = self.local.durable;
        let current_epoch = self.local.current_epoch;
        let Role::Learning(learner) = &mut self.role else {
            return;
        };
        let Some((zxid, through)) = learner.newleader else {
            return;
        };
        if durable < through {
            return;
        }
        learner.newleader = None;
        learner.phase = Phase::AwaitUpToDate;
        let (epoch, leader) = (learner.epoch, learner.leader);
        if current_epoch != epoch {
            self.local.current_epoch = epoch;
            out.push(Output::SetCurrentEpoch(epoch));
        }
        out.push(Output::Send {
            to: leader,
            message: Message::AckNewLeader { zxid },
        });
        self.maybe_ack(out);
    }

    fn on_uptodate(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let me = self.me;
        let Role::Learning(learner) = &mut self.role else {
            return;
        };
        learner.phase = Phase::Serving;
        let through = learner.sync_committed;
        let leader = learner.leader;
        let pending = learner.membership_pending;
        let named = learner.named_membership.take();
        self.local.deliver_through(through, out);
        info!(sid = me, leader, applied = %self.local.applied, "synced with the leader: serving");
        out.push(Output::State(self.state()));
        // The membership NEWLEADER named, unless it is still in flight (and did not commit
        // during the sync). A reconfiguration proposed after NEWLEADER took its place as
        // the one pending: it stays so, until its own commit.
        if let Some(named) = named.filter(|m| !pending || Zxid(m.version) <= through) {
            let later = self
                .next_membership
                .take()
                .filter(|(m, _, _)| m.version > named.version);
            if self.set_next_membership(named).is_ok() {
                self.activate(now_ms, leader, out);
            }
            if !matches!(self.role, Role::Learning(_)) {
                return;
            }
            self.next_membership = later;
        }
        // One proposed after NEWLEADER and committed during the sync.
        if self
            .next_membership
            .as_ref()
            .is_some_and(|(m, _, _)| Zxid(m.version) <= through)
        {
            self.activate(now_ms, leader, out);
        }
    }

    /// Acknowledges the durable proposals of the leader's epoch, once `NEWLEADER` is.
    fn maybe_ack(&mut self, out: &mut Vec<Output>) {
        let durable = self.local.durable;
        let Role::Learning(learner) = &mut self.role else {
            return;
        };
        if learner.observer
            || !matches!(learner.phase, Phase::AwaitUpToDate | Phase::Serving)
            || durable.epoch() != learner.epoch
            || durable <= learner.acked
        {
            return;
        }
        learner.acked = durable;
        let leader = learner.leader;
        out.push(Output::Send {
            to: leader,
            message: Message::Ack { zxid: durable },
        });
    }

    pub(crate) fn learner_durable(&mut self, _now_ms: u64, out: &mut Vec<Output>) {
        self.try_ack_newleader(out);
        self.maybe_ack(out);
        self.commit_known(out);
    }

    /// Applies the proposals this follower knows are committed without the leader's
    /// `COMMIT`: those durable both in its own log and, by [`Message::Logged`], in the
    /// leader's, when the two make a quorum; up to a reconfiguration in flight.
    fn commit_known(&mut self, out: &mut Vec<Output>) {
        let me = self.me;
        let durable = self.local.durable;
        let applied = self.local.applied;
        // A reconfiguration in flight commits by COMMITANDACTIVATE, and what follows it
        // needs its new voters too.
        let before = match &self.next_membership {
            Some((m, _, _)) => Zxid(m.version.saturating_sub(1)),
            None => Zxid(i64::MAX),
        };
        let Role::Learning(learner) = &self.role else {
            return;
        };
        let through = learner.leader_logged.min(durable).min(before);
        // Whatever came before this leader's epoch was committed by the sync.
        let serving = learner.phase == Phase::Serving && !learner.observer;
        if !serving || through <= applied || through.epoch() != learner.epoch {
            return;
        }
        if !self
            .config
            .verifier
            .contains_quorum([me, learner.leader].iter())
        {
            return;
        }
        self.local.deliver_through(through, out);
    }
}
