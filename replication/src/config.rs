//! Who replicates, how quorums are counted, and Zab's timers and limits.

use std::collections::BTreeSet;

use zk_election::{QuorumVerifier, Role};

use crate::error::ConfigError;
use crate::message::Sid;

/// Everything Zab needs to know about the ensemble. The defaults of the limits are
/// ZooKeeper's where it has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The voting members and the quorum rule (majority or hierarchical).
    pub verifier: QuorumVerifier,
    /// Members that learn every commit but never vote.
    pub observers: BTreeSet<Sid>,
    /// `tickTime`: the unit of the limits below, in milliseconds.
    pub tick_ms: u64,
    /// `initLimit`: ticks a leader has to establish itself (a quorum through discovery
    /// and sync) and a learner to sync.
    pub init_limit: u64,
    /// `syncLimit`: ticks of silence a leader tolerates from its quorum and a learner
    /// from its leader once synced.
    pub sync_limit: u64,
    /// `commitLogCount`: committed txns a member keeps in memory to sync learners from.
    pub commit_log_count: usize,
    /// A learner further behind than this many txns gets a snapshot instead of a diff
    /// (a count standing in for ZooKeeper's `snapshotSizeFactor`). A diff goes out as two
    /// messages a txn, so keep it well within the transport's send queue.
    pub diff_max_txns: u64,
    /// Messages held for one learner while its sync is being streamed; a learner whose
    /// backlog grows past this is dropped (it can sync again).
    pub held_max: usize,
    /// Log entries asked for at a time when a learner is synced from the log on disk.
    pub read_batch: usize,
    /// `learner.maxConcurrentSnapSyncs`: learners synced by snapshot at once; one more
    /// is turned away (it reconnects and tries again).
    pub max_concurrent_snap_syncs: usize,
    /// `learner.maxConcurrentDiffSyncs`: likewise for DIFF and TRUNC syncs.
    pub max_concurrent_diff_syncs: usize,
    /// `reconfigEnabled`: the membership may change while the ensemble serves
    /// ([`Input::ProposeReconfig`](crate::Input::ProposeReconfig)), and the leader takes
    /// learners that are not members yet (servers joining, as non-voting followers).
    pub reconfig_enabled: bool,
    /// The membership as text (`server.N`, `group.N`, `weight.N` lines), with its version:
    /// what a reconfiguration replaces. Empty for a configuration made in code.
    pub membership: Membership,
}

/// An ensemble's membership as ZooKeeper writes it in a dynamic configuration file:
/// `server.N=...`, `group.N=...` and `weight.N=...` lines, and the version, the zxid of
/// the reconfiguration that made it (0 for one no reconfiguration made). This crate reads
/// only the ids, roles, groups and weights; addresses are the caller's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// The zxid of the txn that made this membership; 0 for the first.
    pub version: i64,
    /// The lines, joined by `\n`, without a `version=` line.
    pub text: String,
}

impl Membership {
    /// The voters, their quorum rule and the observers the lines name.
    pub fn parse(&self) -> Result<(QuorumVerifier, BTreeSet<Sid>), ConfigError> {
        let entries = self
            .text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()));
        let election = zk_election::Config::from_entries(entries)
            .map_err(|e| ConfigError::Membership(e.to_string()))?;
        let observers = election
            .members
            .values()
            .filter(|m| m.role == Role::Observer)
            .map(|m| m.sid)
            .collect();
        Ok((election.verifier, observers))
    }
}

impl Config {
    /// A majority configuration of `voters` and `observers` with ZooKeeper's default
    /// limits (`tickTime` 2000 ms, `initLimit` 10, `syncLimit` 5).
    pub fn majority(
        voters: impl IntoIterator<Item = Sid>,
        observers: impl IntoIterator<Item = Sid>,
    ) -> Self {
        Config::with_verifier(QuorumVerifier::majority(voters), observers)
    }

    /// A configuration with the election's members and quorum rule.
    pub fn from_election(election: &zk_election::Config) -> Self {
        let observers = election
            .members
            .values()
            .filter(|m| m.role == Role::Observer)
            .map(|m| m.sid);
        Config::with_verifier(election.verifier.clone(), observers)
    }

    fn with_verifier(verifier: QuorumVerifier, observers: impl IntoIterator<Item = Sid>) -> Self {
        Config {
            verifier,
            observers: observers.into_iter().collect(),
            tick_ms: 2_000,
            init_limit: 10,
            sync_limit: 5,
            commit_log_count: 500,
            diff_max_txns: 10_000,
            held_max: 1_000_000,
            read_batch: 1_000,
            max_concurrent_snap_syncs: 10,
            max_concurrent_diff_syncs: 100,
            reconfig_enabled: false,
            membership: Membership::default(),
        }
    }

    /// Whether `sid` votes.
    pub fn is_voter(&self, sid: Sid) -> bool {
        self.verifier.is_voter(sid)
    }

    /// Whether `sid` is a voter or an observer.
    pub fn is_member(&self, sid: Sid) -> bool {
        self.is_voter(sid) || self.observers.contains(&sid)
    }

    /// `initLimit` in milliseconds.
    pub fn init_ms(&self) -> u64 {
        self.tick_ms.saturating_mul(self.init_limit)
    }

    /// `syncLimit` in milliseconds.
    pub fn sync_ms(&self) -> u64 {
        self.tick_ms.saturating_mul(self.sync_limit)
    }

    /// Checks the limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.verifier.voters().is_empty() {
            return Err(ConfigError::NoVoters);
        }
        if self.tick_ms < 2 || self.init_limit == 0 || self.sync_limit == 0 {
            return Err(ConfigError::Bad(
                "tickTime must be at least 2 ms, initLimit and syncLimit at least 1",
            ));
        }
        if self.held_max == 0 || self.read_batch == 0 {
            return Err(ConfigError::Bad("held_max and read_batch must be positive"));
        }
        if self.max_concurrent_snap_syncs == 0 || self.max_concurrent_diff_syncs == 0 {
            return Err(ConfigError::Bad(
                "learner.maxConcurrentSnapSyncs and learner.maxConcurrentDiffSyncs must be positive",
            ));
        }
        if self.observers.iter().any(|sid| self.is_voter(*sid)) {
            return Err(ConfigError::Bad("a server cannot both vote and observe"));
        }
        Ok(())
    }
}
