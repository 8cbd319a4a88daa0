//! An ensemble's member as a protocol: the [`Engine`] and Zab (`zk-replication`'s core),
//! and what each makes of the other's outputs. A txn the engine prepares is proposed; a
//! commit Zab delivers is applied; a learner's client writes are forwarded, its leader's
//! snapshot installed, its log truncated to the leader's history; the role the engine
//! serves in follows Zab's state, and a member that stops following asks the election for
//! a new round.
//!
//! There are no sockets, files, tasks or clocks here: the log, the peers' streams, the
//! election and the snapshot files are a [`Host`]'s, and the time comes with every call.
//! The server's runtime is one host (ZooKeeper's files, gRPC streams); a simulation is
//! another (memory, a simulated network), and both run this same code.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use zk_datatree::DataTree;
use zk_election::transport::Status as ElectionStatus;
use zk_election::{PeerData, ServerState};
use zk_jute::Zxid;
use zk_replication::storage::{Storage, StorageError};
use zk_replication::{CompactError, Input as Z, Message, Output as O, Sid, State, Zab};

use crate::engine::{Engine, Input, Now, Output, Role};
use crate::ensemble::{entry_of, log_entry_of};
use crate::status::{EnsembleStatus, Histogram};

/// A snapshot for a learner goes out in pieces of about this size (the quorum stream's
/// frames are 4 MiB at most).
const SNAP_PIECE: usize = 1 << 20;

/// Nodes a step of a learner's snapshot serializes: about 0.3 ms of work, which a request
/// arriving meanwhile waits for (as with the snapshot files).
const STEP_NODES: usize = 1_000;

/// A snapshot being streamed to a learner, as ZooKeeper's leader streams one: a piece at
/// a time between the serving task's other work, while writes go on being applied (a
/// fuzzy snapshot: its zxid is the tree's when it started, and the learner applies every
/// txn after that zxid over it, comparing digests from the one recorded at its end on).
struct Outgoing {
    learner: Sid,
    stream: u64,
    body: zk_datatree::BodyWriter,
    encoder: zk_persistence::SnapshotEncoder,
}

/// A tree loaded from a snapshot: a leader's, received as a learner, or the files', with
/// the log replayed over it.
pub(crate) struct Received {
    /// The tree, as of its last zxid (with some later changes in it if the snapshot was
    /// taken while txns were applied and the txns up to its digest's zxid are still to
    /// come).
    pub(crate) tree: DataTree,
    /// The digest the snapshot recorded at its end.
    pub(crate) digest: Option<zk_persistence::ZxidDigest>,
}

/// What [`Host::start_sync`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncStart {
    /// The log is durable through this zxid already.
    Done(Zxid),
    /// An fsync runs; its end comes back through [`Member::synced`].
    Started,
}

/// What a member needs from the world: its replicated log and the files beside it, its
/// peers' streams and its election.
pub(crate) trait Host {
    /// The replicated log and its epochs.
    fn storage(&mut self) -> &mut dyn Storage;
    /// Starts making everything appended to the log durable. Unless the host
    /// [queues syncs](Self::queues_syncs), one at a time: the member waits for
    /// [`Member::synced`] before it asks again.
    fn start_sync(&mut self) -> Result<SyncStart, String>;
    /// Whether [`start_sync`](Self::start_sync) may be asked again while an earlier sync
    /// runs: the host then syncs what was appended since right after it, and reports the
    /// syncs' ends in order (a [`SyncStart::Done`] may come before the end of an earlier
    /// sync is heard; Zab ignores a durable zxid lower than one it has).
    fn queues_syncs(&self) -> bool {
        false
    }
    /// Sends `message` to `to`; false when the stream is down.
    fn send(&mut self, to: Sid, message: Message) -> bool;
    /// Opens a stream to the leader `peer`; false when it has no address.
    fn connect(&mut self, peer: Sid) -> bool;
    /// Closes the stream to `peer`.
    fn disconnect(&mut self, peer: Sid);
    /// Starts a new election round, voting with `data`.
    fn look(&mut self, data: PeerData);
    /// Drops the log after `zxid`, and the snapshots past it. With `rebuild`, returns
    /// the tree rebuilt from what is left, as of that zxid.
    fn truncate(&mut self, zxid: Zxid, rebuild: Option<Zxid>) -> Result<Option<Received>, String>;
    /// Whether the stream to `learner` has room for more of a snapshot's pieces: a
    /// leader serializes the next piece for it only then, so that a learner that reads
    /// slowly holds the leader's memory to what its stream queues.
    fn snapshot_room(&self, learner: Sid) -> bool {
        let _ = learner;
        true
    }
    /// The leader's snapshot at `zxid` starts arriving.
    fn snapshot_begin(&mut self, zxid: Zxid);
    /// A piece of it.
    fn snapshot_piece(&mut self, data: Bytes);
    /// It is whole: it becomes the newest snapshot, durably, the log is emptied, and
    /// the tree it holds is returned.
    fn snapshot_end(&mut self, zxid: Zxid) -> Result<Received, String>;
    /// The sync stopped before the snapshot's end: what was received is dropped.
    fn snapshot_abort(&mut self);
    /// The engine's tree is about to be replaced: a snapshot of it being taken is void.
    fn replacing_tree(&mut self);
    /// Autopurge: the zxid of the oldest snapshot to keep (the
    /// `autopurge.snapRetainCount` newest), if there is a snapshot.
    fn oldest_kept_snapshot(&mut self) -> Result<Option<Zxid>, String>;
    /// Deletes (or starts deleting) the snapshots before `zxid` and the log files wholly
    /// before it, and logs what went.
    fn purge(&mut self, zxid: Zxid) -> Result<(), String>;
    /// A reconfiguration made `config`'s membership the ensemble's: peers are found
    /// where it says from now on.
    fn activate(&mut self, config: &crate::config::Config);
}

/// What a member counts for its operator.
#[derive(Debug, Default)]
struct Figures {
    /// Proposals made as leader, and their last, smallest and largest size in bytes.
    proposals: u64,
    proposal_sizes: Option<(usize, usize, usize)>,
    /// Elections decided.
    elections: u64,
    /// When (monotonic µs) this member last became an established leader.
    leading_since: Option<u64>,
    /// When it last started looking for a leader.
    looking_since: Option<u64>,
    /// When it last stopped serving.
    unavailable_since: Option<u64>,
    /// Proposals not yet committed, with when they were made, in zxid order.
    proposed: VecDeque<(i64, u64)>,
    quorum_ack_latency: Histogram,
    unavailable_time: Histogram,
}

/// One member: Zab, the inputs it has not handled yet, and the glue to the engine.
pub(crate) struct Member {
    zab: Zab,
    /// Zab's inputs not yet handled, in order.
    inbox: VecDeque<Z>,
    /// Rounds asked of the election: a status that has started fewer is older than the
    /// last request, and its decision stale.
    looks: u64,
    /// This member observes rather than votes.
    observer: bool,
    /// Appends since the last sync.
    appended: bool,
    /// An fsync the host started has not ended: the next waits for it, unless the host
    /// queues syncs.
    syncing: bool,
    /// Autopurge is due, and waits for Zab to let the log be cut.
    purge_wanted: bool,
    /// Syncs served as leader by kind (`DIFF`, `TRUNC`, `SNAP`), for the operator.
    syncs: BTreeMap<&'static str, u64>,
    figures: Figures,
    /// The engine's outputs for the host's connections and files: frames, closes,
    /// snapshots, purges, fatal errors.
    out: Vec<Output>,
    scratch: Vec<Output>,
    /// Snapshots being streamed to learners.
    outgoing: Vec<Outgoing>,
    /// Nodes a step of a learner's snapshot serializes.
    step_nodes: usize,
    /// The size a piece of a learner's snapshot goes out at.
    piece_bytes: usize,
}

impl Member {
    /// A member running `zab`; `observer` if it does not vote.
    pub(crate) fn new(zab: Zab, observer: bool) -> Self {
        Member {
            zab,
            inbox: VecDeque::new(),
            looks: 0,
            observer,
            appended: false,
            syncing: false,
            purge_wanted: false,
            syncs: BTreeMap::new(),
            figures: Figures::default(),
            out: Vec::new(),
            scratch: Vec::new(),
            outgoing: Vec::new(),
            step_nodes: STEP_NODES,
            piece_bytes: SNAP_PIECE,
        }
    }

    /// Serializes `nodes` nodes per step of a learner's snapshot, and sends it in pieces
    /// of `piece_bytes` (a simulation's trees are small: a few nodes a step make its
    /// snapshots fuzzy, and small pieces make them several).
    #[cfg_attr(not(any(test, feature = "simulation")), allow(dead_code))]
    pub(crate) fn with_snapshot_steps(mut self, nodes: usize, piece_bytes: usize) -> Self {
        self.step_nodes = nodes.max(1);
        self.piece_bytes = piece_bytes.max(1);
        self
    }

    /// Whether a snapshot is being streamed to a learner whose stream has `room`: the
    /// host calls [`snapshot_step`](Self::snapshot_step) between its other work until it
    /// is sent, and waits for room when no stream has any.
    pub(crate) fn wants_snapshot_step(&self, room: impl Fn(Sid) -> bool) -> bool {
        self.outgoing.iter().any(|o| room(o.learner))
    }

    /// Serializes the next nodes of each snapshot being streamed to a learner whose
    /// stream has [room](Host::snapshot_room), and hands Zab each piece that is full (or
    /// last). A learner Zab no longer syncs gets no more.
    pub(crate) fn snapshot_step(
        &mut self,
        engine: &mut Engine,
        host: &mut dyn Host,
        now: Now,
    ) -> Result<(), String> {
        if !matches!(self.zab.state(), State::Leading { .. }) {
            self.outgoing.clear();
            return Ok(());
        }
        let tree = engine.tree();
        let piece_bytes = self.piece_bytes;
        let mut i = 0;
        while let Some(o) = self.outgoing.get_mut(i) {
            if !host.snapshot_room(o.learner) {
                i += 1;
                continue;
            }
            // Up to a piece's worth (and a node more) a step, however big the nodes: what
            // the learner's stream holds stays near its window.
            let room = piece_bytes.saturating_sub(o.encoder.len()).max(1);
            let done = o
                .body
                .write_some_within(tree, o.encoder.body(), self.step_nodes, room);
            // Pieces of at most `piece_bytes`, however big the nodes just serialized.
            let mut pieces = Vec::new();
            while o.encoder.len() >= piece_bytes {
                pieces.push(o.encoder.take(piece_bytes));
            }
            let (learner, stream) = (o.learner, o.stream);
            if done {
                let o = self.outgoing.remove(i);
                tracing::info!(
                    learner,
                    from = %Zxid(o.body.start_zxid()),
                    to = %Zxid(tree.last_zxid()),
                    "snapshot for a learner serialized"
                );
                let mut rest = o.encoder.finish(Some(engine.snapshot_digest()));
                while rest.len() > piece_bytes {
                    pieces.push(rest.split_to(piece_bytes));
                }
                pieces.push(rest);
            } else {
                i += 1;
            }
            let n = pieces.len();
            for (k, data) in pieces.into_iter().enumerate() {
                self.inbox.push_back(Z::SnapshotPiece {
                    learner,
                    stream,
                    data,
                    last: done && k + 1 == n,
                });
            }
        }
        self.pump(engine, host, now)?;
        // A learner gone, or syncing another way now, gets no more of it.
        let learners = self.zab.learners();
        self.outgoing.retain(|o| {
            learners
                .iter()
                .any(|l| l.sid == o.learner && l.snapshot_stream == Some(o.stream))
        });
        Ok(())
    }

    /// Zab.
    #[cfg_attr(not(any(test, feature = "simulation")), allow(dead_code))]
    pub(crate) fn zab(&self) -> &Zab {
        &self.zab
    }

    /// Whether the log holds appends a [`sync`](Self::sync) would start syncing now
    /// (none while the host's fsync runs, unless the host `queues_syncs`: they wait for
    /// its end).
    #[cfg_attr(not(any(test, feature = "simulation")), allow(dead_code))]
    pub(crate) fn unsynced(&self, queues_syncs: bool) -> bool {
        self.appended && (queues_syncs || !self.syncing)
    }

    /// Whether this member observes.
    pub(crate) fn observer(&self) -> bool {
        self.observer
    }

    /// The engine's outputs that are the host's to carry out, in order.
    pub(crate) fn take_output(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// Hands `input` to the engine, then Zab what the engine asked of it.
    pub(crate) fn input(
        &mut self,
        engine: &mut Engine,
        host: &mut dyn Host,
        now: Now,
        input: Input,
    ) -> Result<(), String> {
        self.refresh_synced(engine);
        self.engine_input(engine, now, input);
        self.pump(engine, host, now)
    }

    /// Hands Zab `input`, and everything that follows from it.
    pub(crate) fn zab_input(
        &mut self,
        engine: &mut Engine,
        host: &mut dyn Host,
        now: Now,
        input: Z,
    ) -> Result<(), String> {
        self.inbox.push_back(input);
        self.pump(engine, host, now)
    }

    /// The election's news: a decision Zab has not taken yet starts leading or
    /// following. Zab takes one only while looking, and only from a round started after
    /// its last request (a status sent before the request was handled names the old
    /// leader).
    pub(crate) fn election(
        &mut self,
        engine: &mut Engine,
        host: &mut dyn Host,
        now: Now,
        status: ElectionStatus,
    ) -> Result<(), String> {
        if self.zab.state() == State::Looking
            && status.heard_version > self.zab.config().membership.version
        {
            let heard = Z::MembershipHeard {
                version: status.heard_version,
            };
            self.zab_input(engine, host, now, heard)?;
        }
        if status.looks < self.looks || self.zab.state() != State::Looking {
            return Ok(());
        }
        let input = match status.state {
            ServerState::Looking => return Ok(()),
            ServerState::Leading => Z::Lead {
                election_epoch: status.vote.election_epoch,
            },
            _ => Z::Follow {
                leader: status.vote.leader,
                election_epoch: status.vote.election_epoch,
            },
        };
        self.figures.elections += 1;
        self.zab_input(engine, host, now, input)
    }

    /// Zab's timer: the sessions this member's clients touched go to the leader with
    /// the tick. Then, with `readonlymode.enabled`, a member that has looked for a
    /// leader for `max(2 s, tickTime)` serves read-only clients.
    pub(crate) fn tick(
        &mut self,
        engine: &mut Engine,
        host: &mut dyn Host,
        now: Now,
    ) -> Result<(), String> {
        let touches: Vec<zk_replication::Touch> = engine
            .take_touches()
            .into_iter()
            .map(|(session, timeout_ms)| zk_replication::Touch {
                session,
                timeout_ms,
            })
            .collect();
        if !touches.is_empty() {
            self.inbox.push_back(Z::Touch(touches));
        }
        self.inbox.push_back(Z::Tick);
        self.pump(engine, host, now)?;
        if self.purge_wanted {
            self.purge(host);
        }
        let config = engine.config();
        let grace = config.tick_time.max(std::time::Duration::from_secs(2));
        let grace_us = u64::try_from(grace.as_micros()).unwrap_or(u64::MAX);
        let due = config.read_only_mode
            && !engine.is_read_only()
            && self
                .figures
                .looking_since
                .is_some_and(|t| now.mono_us.saturating_sub(t) >= grace_us);
        if due {
            engine.set_read_only(true, &mut self.out);
        }
        Ok(())
    }

    /// Syncs the log if anything was appended, and tells Zab how far it is durable (the
    /// group commit of a burst); with the host's fsync running elsewhere, Zab hears it in
    /// [`synced`](Self::synced), and what is appended meanwhile waits for the next one
    /// (queued at once with a host that [queues syncs](Host::queues_syncs)).
    /// The time is read with `clock` once a sync done in place is done, so that what it
    /// made durable is timed with it.
    pub(crate) fn sync(
        &mut self,
        engine: &mut Engine,
        host: &mut dyn Host,
        clock: impl FnOnce() -> Now,
    ) -> Result<(), String> {
        if (self.syncing && !host.queues_syncs()) || !std::mem::take(&mut self.appended) {
            return Ok(());
        }
        match host
            .start_sync()
            .map_err(|e| format!("the txn log failed: {e}"))?
        {
            SyncStart::Done(zxid) => self.zab_input(engine, host, clock(), Z::Durable { zxid }),
            SyncStart::Started => {
                self.syncing = true;
                Ok(())
            }
        }
    }

    /// The fsync the host started has ended: the log is durable through `Some(zxid)`;
    /// `None` when the sync no longer counts (the log was truncated or replaced while it
    /// ran), and what it covered is synced again.
    pub(crate) fn synced(
        &mut self,
        engine: &mut Engine,
        host: &mut dyn Host,
        now: Now,
        durable: Result<Option<Zxid>, String>,
    ) -> Result<(), String> {
        self.syncing = false;
        match durable.map_err(|e| format!("the txn log failed: {e}"))? {
            Some(zxid) => self.zab_input(engine, host, now, Z::Durable { zxid }),
            None => {
                self.appended = true;
                Ok(())
            }
        }
    }

    /// Asks for an autopurge at the next tick, as the engine's `autopurge.purgeInterval`
    /// timer does.
    #[cfg_attr(not(any(test, feature = "simulation")), allow(dead_code))]
    pub(crate) fn want_purge(&mut self) {
        self.purge_wanted = true;
    }

    /// Autopurge on a member: Zab's history is cut at the oldest snapshot kept, then the
    /// files before it go. While Zab refuses (a learner is being synced from the log, or
    /// this member syncs with its leader) it waits for a later tick.
    fn purge(&mut self, host: &mut dyn Host) {
        let snapshot = match host.oldest_kept_snapshot() {
            Ok(Some(zxid)) => zxid,
            Ok(None) => {
                self.purge_wanted = false;
                return;
            }
            Err(e) => {
                self.purge_wanted = false;
                tracing::warn!(error = %e, "autopurge failed");
                return;
            }
        };
        match self.zab.compact(snapshot) {
            Ok(through) => {
                self.purge_wanted = false;
                if let Err(e) = host.purge(through) {
                    tracing::warn!(error = %e, "autopurge failed");
                }
            }
            Err(e @ (CompactError::Syncing(_) | CompactError::Learning)) => {
                tracing::debug!(reason = %e, "autopurge waits");
            }
            Err(e @ CompactError::NotInHistory(_)) => {
                self.purge_wanted = false;
                tracing::warn!(reason = %e, "autopurge skipped until the next interval");
            }
        }
    }

    /// A leader with reconfiguration on tells the engine who is synced with it, for the
    /// quorum check a `reconfig` makes.
    fn refresh_synced(&self, engine: &mut Engine) {
        if !engine.config().reconfig_enabled || engine.role() != (Role::Leader, true) {
            return;
        }
        let synced = self
            .zab
            .learners()
            .into_iter()
            .filter(|l| l.synced && !l.observer)
            .map(|l| l.sid)
            .chain([self.zab.sid()])
            .collect();
        engine.set_synced_voters(synced);
    }

    /// Hands `input` to the engine; what it asks of Zab waits in the inbox.
    fn engine_input(&mut self, engine: &mut Engine, now: Now, input: Input) {
        let mut out = std::mem::take(&mut self.scratch);
        engine.handle(now, input, &mut out);
        for output in out.drain(..) {
            self.engine_output(now, output);
        }
        self.scratch = out;
    }

    /// Routes one of the engine's outputs: to Zab, or to the host.
    fn engine_output(&mut self, now: Now, output: Output) {
        match output {
            Output::Append(log) => {
                let reconfig = reconfig_membership(&log);
                let entry = entry_of(&log);
                let size = entry.data.len();
                let f = &mut self.figures;
                f.proposals += 1;
                f.proposal_sizes = Some(match f.proposal_sizes {
                    None => (size, size, size),
                    Some((_, min, max)) => (size, min.min(size), max.max(size)),
                });
                f.proposed.push_back((entry.zxid.0, now.mono_us));
                match reconfig {
                    Some(membership) => self
                        .inbox
                        .push_back(Z::ProposeReconfig { entry, membership }),
                    None => self.inbox.push_back(Z::Propose(entry)),
                }
            }
            Output::Forward(data) => self.inbox.push_back(Z::Forward { data }),
            Output::Sync { token } => self.inbox.push_back(Z::Sync { id: token }),
            // Done at the next tick, where the host is at hand.
            Output::Purge => self.purge_wanted = true,
            other => self.out.push(other),
        }
    }

    /// Hands Zab every input in its inbox, carrying out its outputs, until none is left.
    /// An error stops the member: nothing it holds can be trusted to go on.
    fn pump(&mut self, engine: &mut Engine, host: &mut dyn Host, now: Now) -> Result<(), String> {
        while let Some(input) = self.inbox.pop_front() {
            for output in self.zab.handle(now.mono_us / 1000, input) {
                if let Err(reason) = self.carry_zab(engine, host, now, output) {
                    self.inbox.clear();
                    return Err(reason);
                }
            }
        }
        Ok(())
    }

    /// Carries out one of Zab's outputs.
    fn carry_zab(
        &mut self,
        engine: &mut Engine,
        host: &mut dyn Host,
        now: Now,
        output: O,
    ) -> Result<(), String> {
        let storage = |e: StorageError| format!("the txn log failed: {e}");
        match output {
            O::Send { to, message } => {
                if let Message::Diff { .. } | Message::Trunc { .. } | Message::Snap { .. } = message
                {
                    *self.syncs.entry(message.name()).or_default() += 1;
                }
                if !host.send(to, message) {
                    self.inbox.push_back(Z::Disconnected { peer: to });
                }
            }
            O::Connect { peer } => {
                if !host.connect(peer) {
                    self.inbox.push_back(Z::Disconnected { peer });
                }
            }
            O::Disconnect { peer } => host.disconnect(peer),
            O::SetAcceptedEpoch(epoch) => {
                host.storage().set_accepted_epoch(epoch).map_err(storage)?;
            }
            O::SetCurrentEpoch(epoch) => {
                host.storage().set_current_epoch(epoch).map_err(storage)?;
            }
            O::Append(entry) => {
                host.storage().append(&entry).map_err(storage)?;
                self.appended = true;
            }
            O::Truncate { zxid } => {
                tracing::info!(%zxid, "truncating the log to the leader's history");
                // The tree goes back only if it holds more than Zab now counts applied
                // (at start the whole log was applied, committed or not); otherwise it
                // holds committed txns only, and keeps them.
                let applied = self.zab.applied();
                let rebuild = engine.tree().last_zxid() > applied.0;
                if let Some(Received { tree, digest }) =
                    host.truncate(zxid, rebuild.then_some(applied))?
                {
                    self.install_tree(engine, host, tree);
                    if let Some(digest) = digest {
                        engine.reopen_window(digest);
                    }
                }
            }
            O::Deliver(entry) => {
                if engine.role() == (Role::Leader, true) {
                    let f = &mut self.figures;
                    while let Some((_, at)) = f.proposed.front().filter(|p| p.0 <= entry.zxid.0) {
                        f.quorum_ack_latency.record(now.mono_us.saturating_sub(*at));
                        f.proposed.pop_front();
                    }
                    self.engine_input(engine, now, Input::Committed { zxid: entry.zxid.0 });
                } else {
                    let entry = log_entry_of(&entry)
                        .map_err(|e| format!("a committed txn does not decode: {e}"))?;
                    self.engine_input(engine, now, Input::Deliver(entry));
                }
            }
            O::ReadLog {
                learner,
                stream,
                after,
                through,
                batch,
            } => {
                let reads = zk_replication::storage::read_log(
                    host.storage(),
                    learner,
                    stream,
                    (after, through),
                    batch,
                )
                .map_err(storage)?;
                self.inbox.extend(reads);
            }
            O::SendSnapshot {
                learner,
                stream,
                zxid,
            } => {
                let tree = engine.tree();
                if tree.last_zxid() != zxid.0 {
                    return Err(format!(
                        "a snapshot for server {learner} at {zxid}: the tree is at {:#x}",
                        tree.last_zxid()
                    ));
                }
                tracing::info!(learner, %zxid, "sending a snapshot to a learner");
                let mut body = zk_datatree::BodyWriter::fuzzy();
                let mut encoder = zk_persistence::SnapshotEncoder::new(tree.sessions());
                // The ACL map; this fixes the zxid the snapshot starts from.
                body.write_some(tree, encoder.body(), 0);
                self.outgoing.retain(|o| o.learner != learner);
                self.outgoing.push(Outgoing {
                    learner,
                    stream,
                    body,
                    encoder,
                });
            }
            O::SnapshotBegin { zxid } => {
                tracing::info!(%zxid, "receiving the leader's snapshot");
                host.snapshot_begin(zxid);
            }
            O::SnapshotPiece(data) => host.snapshot_piece(data),
            O::SnapshotEnd { zxid } => {
                let Received { tree, digest } = host.snapshot_end(zxid)?;
                tracing::info!(%zxid, nodes = tree.node_count(), "loaded the leader's snapshot");
                self.install_tree(engine, host, tree);
                if let Some(digest) = digest {
                    engine.expect_digest(digest)?;
                }
            }
            O::Request { data, .. } => {
                self.refresh_synced(engine);
                self.engine_input(engine, now, Input::Forwarded(data))
            }
            O::Activated { membership, leader } => {
                let config = engine.config().with_membership(&membership).map_err(|e| {
                    format!(
                        "the reconfiguration to version {:x}: {e}",
                        membership.version
                    )
                })?;
                let me = config.server_id;
                self.observer = config
                    .servers
                    .get(&me)
                    .is_some_and(|s| s.role == zk_election::Role::Observer);
                tracing::info!(
                    version = format!("{:x}", membership.version),
                    leader,
                    "the ensemble's membership changed:\n{}",
                    membership.text
                );
                host.activate(&config);
                engine.activate(config);
            }
            O::Touched { touches, .. } => {
                let sessions = touches.iter().map(|t| t.session).collect();
                self.engine_input(engine, now, Input::Touched(sessions));
            }
            O::Revalidate { from, session, .. } => {
                self.inbox.push_back(Z::RevalidateReply {
                    to: from,
                    session,
                    valid: engine.session_is_open(session),
                });
            }
            O::Revalidated { .. } => {}
            O::Synced { id } => self.engine_input(engine, now, Input::Synced { token: id }),
            O::State(state) => self.state(engine, host, now, state),
        }
        Ok(())
    }

    /// Zab's state changed: the engine's role follows it.
    fn state(&mut self, engine: &mut Engine, host: &mut dyn Host, now: Now, state: State) {
        let (role, serving, next) = match state {
            State::Looking => {
                tracing::info!("not serving: looking for a leader");
                self.looks += 1;
                // A snapshot half received or half sent goes: a new sync starts afresh.
                host.snapshot_abort();
                self.outgoing.clear();
                host.look(self.zab.peer_data());
                (Role::Learner, false, None)
            }
            State::Leading {
                established: true, ..
            } => (Role::Leader, true, self.zab.next_zxid()),
            State::Learning { serving: true, .. } => (Role::Learner, true, None),
            _ => (Role::Learner, false, None),
        };
        let f = &mut self.figures;
        f.looking_since = match state {
            State::Looking => f.looking_since.or(Some(now.mono_us)),
            _ => None,
        };
        if serving {
            if let Some(since) = f.unavailable_since.take() {
                f.unavailable_time.record(now.mono_us.saturating_sub(since));
            }
        } else {
            f.proposed.clear();
            f.unavailable_since.get_or_insert(now.mono_us);
        }
        f.leading_since = match (role, serving) {
            (Role::Leader, true) => f.leading_since.or(Some(now.mono_us)),
            _ => None,
        };
        // Read-only mode ends with looking, whatever comes next.
        let read_only_ends = engine.is_read_only() && !matches!(state, State::Looking);
        if (role, serving) != engine.role() || read_only_ends {
            tracing::info!(
                ?state,
                "serving as {}",
                mode_of(role, serving, self.observer, false)
            );
            // The connections it closed go to the host.
            engine.set_role(role, serving, next, &mut self.out);
        }
    }

    /// Makes `tree` the engine's (a leader's snapshot, or the log truncated and
    /// replayed).
    fn install_tree(&mut self, engine: &mut Engine, host: &mut dyn Host, tree: DataTree) {
        host.replacing_tree();
        engine.replace_tree(tree, &mut self.out);
    }

    /// The member's figures as of `now`, for `srvr`, `mntr` and the metrics.
    pub(crate) fn status(&self, now: Now) -> EnsembleStatus {
        let zab = &self.zab;
        let learners = zab.learners();
        let synced = |observer: bool| {
            learners
                .iter()
                .filter(|l| l.synced && l.observer == observer)
                .count()
        };
        let peer_state = match zab.state() {
            State::Looking => "looking",
            State::Leading { epoch: None, .. } => "leading - discovery",
            State::Leading {
                established: false, ..
            } => "leading - synchronization",
            State::Leading { .. } => "leading - broadcast",
            State::Learning {
                observer, serving, ..
            } => match (observer, serving) {
                (false, false) => "following - synchronization",
                (false, true) => "following - broadcast",
                (true, false) => "observing - synchronization",
                (true, true) => "observing - broadcast",
            },
        };
        let f = &self.figures;
        let sizes = f
            .proposal_sizes
            .map_or((-1, -1, -1), |(l, mn, mx)| (l as i64, mn as i64, mx as i64));
        let leader = match zab.state() {
            State::Looking => None,
            State::Leading { .. } => Some(zab.sid()),
            State::Learning { leader, .. } => Some(leader),
        };
        EnsembleStatus {
            peer_state,
            leader,
            quorum_size: zab.config().verifier.voters().len(),
            learners: learners.len(),
            synced_followers: synced(false),
            synced_observers: synced(true),
            observers: learners
                .iter()
                .filter(|l| l.synced && l.observer)
                .map(|l| l.sid)
                .collect(),
            pending_syncs: zab.pending_syncs(),
            leader_uptime_ms: f
                .leading_since
                .map(|t| now.mono_us.saturating_sub(t) / 1000),
            proposal_sizes: sizes,
            proposals: f.proposals,
            syncs: self.syncs.iter().map(|(k, v)| (*k, *v)).collect(),
            elections: f.elections,
            quorum_ack_latency: f.quorum_ack_latency.clone(),
            unavailable_time: f.unavailable_time.clone(),
        }
    }
}

/// The last membership a restored tree's log wrote to `/zookeeper/config` (a `reconfig`
/// txn replayed), if it is newer than `config`'s: what ZooKeeper would find in
/// `zoo.cfg.dynamic.next`, for [`Zab::logged_membership`].
pub(crate) fn logged_membership(
    tree: &DataTree,
    config: &crate::config::Config,
) -> Option<zk_replication::Membership> {
    let node = tree.node(zk_datatree::CONFIG_PATH)?;
    let version = node.client_stat().mzxid;
    if !config.reconfig_enabled || version <= config.config_version {
        return None;
    }
    Some(membership_of(
        version,
        node.data.as_deref().unwrap_or_default(),
    ))
}

/// The membership `/zookeeper/config` data holds, at `version`: its lines without the
/// `version=` one.
fn membership_of(version: i64, data: &[u8]) -> zk_replication::Membership {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with("version="))
        .collect();
    zk_replication::Membership {
        version,
        text: lines.join("\n"),
    }
}

/// The membership a `reconfig` txn makes: its data, without the `version=` line; the
/// version is the txn's zxid. `None` for any other txn.
fn reconfig_membership(log: &zk_persistence::LogEntry) -> Option<zk_replication::Membership> {
    if log.header.r#type != zk_jute::OpCode::Reconfig.code() {
        return None;
    }
    let mut body = zk_jute::Reader::new(log.body.clone());
    let txn: zk_jute::txn::SetDataTxn = zk_jute::Record::decode(&mut body).ok()?;
    Some(membership_of(
        log.header.zxid,
        txn.data.as_deref().unwrap_or_default(),
    ))
}

/// What `srvr` and `mntr` call a member's mode.
pub(crate) fn mode_of(role: Role, serving: bool, observer: bool, read_only: bool) -> &'static str {
    match (role, serving) {
        (Role::Standalone, _) => "standalone",
        (Role::Leader, true) => "leader",
        (_, false) if read_only => "read-only",
        (_, false) => "looking",
        (Role::Learner, true) if observer => "observer",
        (Role::Learner, true) => "follower",
    }
}
