//! The whole server in simulation: several members, each the server's own
//! `Engine` and `Member` (Zab and its glue) with `zk-election`'s core,
//! over a simulated network (election notifications as datagrams, Zab messages and client
//! connections as ordered streams), disk (a log whose unsynced tail a crash loses,
//! snapshots written at once) and clock, driven by simulated clients that speak the
//! client protocol's frames. One seeded generator decides every delay, fault and
//! operation, so a seed replays exactly; nothing waits on a real clock.
//!
//! [`run`] returns the clients' [`history`] (every operation with its invoke and
//! completion times and its outcome) and what every member holds at the end, for the
//! checkers `cargo xtask server-sim` runs over it: those that check real processes
//! under `cargo xtask chaos`, plus the watch check, which only the simulated clients
//! record enough for. What no history could excuse (two leaders in one epoch, a member
//! that stops on an error, an ensemble that does not heal) fails the run directly;
//! members whose trees differ after healing are the convergence check's to report.
//!
//! Compiled with the `simulation` feature: it is a test harness, not an API to build on.

mod clients;
pub mod history;
mod world;

pub use world::run;

/// What a simulated run does.
#[derive(Debug, Clone)]
pub struct Options {
    /// The seed: the same seed and options replay the same run.
    pub seed: u64,
    /// Voting members (3 or 5 make sense).
    pub members: u64,
    /// Concurrent client sessions.
    pub clients: usize,
    /// Simulated milliseconds of load under faults, before the ensemble heals.
    pub duration_ms: u64,
    /// Inject faults: crashes (one member, the leader, all at once), partitions (both
    /// ways and one-way), slow fsync, each healed after a while.
    pub faults: bool,
    /// A broken disk, to show the checkers catch one: its fsync reports the log durable
    /// without making it so, and a crash loses the tail.
    pub lying_disk: bool,
    /// Dynamic reconfiguration on, and an administrator's session (as `super`) that now
    /// and then removes a member and adds it back through `reconfig`.
    pub reconfig: bool,
}

impl Options {
    /// Three members, four clients, 20 simulated seconds with faults.
    pub fn new(seed: u64) -> Self {
        Options {
            seed,
            members: 3,
            clients: 4,
            duration_ms: 20_000,
            faults: true,
            lying_disk: false,
            reconfig: false,
        }
    }
}

/// What a member holds once the run has healed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Final {
    /// The member.
    pub sid: u64,
    /// The last zxid its tree applied.
    pub zxid: i64,
    /// Its tree's digest.
    pub digest: u64,
    /// Each register: its version and value.
    pub registers: Vec<(String, i32, u64)>,
    /// The sequential nodes' names.
    pub sequential: Vec<String>,
    /// The sessions open (the tree's session table).
    pub sessions: Vec<i64>,
    /// The clients' ephemeral nodes: path and owner.
    pub ephemerals: Vec<(String, i64)>,
    /// The membership it counts (`/zookeeper/config`'s text, version included).
    pub membership: String,
}

/// Counts for the report.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Simulated milliseconds, healing included.
    pub simulated_ms: u64,
    /// Faults injected, by kind.
    pub faults: std::collections::BTreeMap<&'static str, u64>,
    /// Leaders established.
    pub leaders: u64,
    /// Failovers: simulated ms from a leader's loss to the next established one.
    pub failovers_ms: Vec<u64>,
    /// Events handled.
    pub events: u64,
    /// Syncs a leader served, by kind.
    pub syncs: std::collections::BTreeMap<&'static str, u64>,
    /// Autopurges done (a member purges after each of its snapshots, its history cut at
    /// the oldest snapshot it keeps).
    pub purges: u64,
    /// Reconfigurations the administrator had committed.
    pub reconfigs: u64,
}

/// A run's result.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every client operation, in the order its outcome became known (a watch event on
    /// arrival): within a session, the order its answers and events arrived in.
    pub history: Vec<history::Op>,
    /// Each member after healing.
    pub finals: Vec<Final>,
    /// What happened, for the report.
    pub stats: Stats,
    /// The faults injected, with when.
    pub schedule: Vec<String>,
}

/// A run that could not finish: a member stopped on an error, two leaders led one epoch,
/// or the ensemble did not heal.
#[derive(Debug, Clone, thiserror::Error)]
#[error("seed {seed}: {reason} (at {at_ms} simulated ms)\nlast events:\n{trace}")]
pub struct SimError {
    /// The seed.
    pub seed: u64,
    /// What went wrong.
    pub reason: String,
    /// When.
    pub at_ms: u64,
    /// The last events before it.
    pub trace: String,
    /// The faults injected until then.
    pub schedule: Vec<String>,
}
