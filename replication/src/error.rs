//! The crate's error types.

use zk_jute::Zxid;

use crate::message::Sid;

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The server is not a member of the configuration.
    #[error("server {0} is not a member")]
    NotAMember(Sid),
    /// The configuration has no voting member.
    #[error("no voting member")]
    NoVoters,
    /// A limit or timer is out of range.
    #[error("{0}")]
    Bad(&'static str),
    /// A membership's lines do not parse.
    #[error("bad membership: {0}")]
    Membership(String),
}

/// A zxid that does not fit a history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// Not the next counter of the last epoch, nor the start of a later one.
    #[error("zxid {zxid} does not follow {last}")]
    OutOfOrder {
        /// The last zxid of the history.
        last: Zxid,
        /// The zxid refused.
        zxid: Zxid,
    },
    /// A truncation below what the snapshot holds.
    #[error("cannot truncate to {zxid}: the snapshot holds everything up to {base}")]
    BelowBase {
        /// The history's base.
        base: Zxid,
        /// The zxid refused.
        zxid: Zxid,
    },
    /// A zxid that is not a point of the history.
    #[error("zxid {0} is not in the history")]
    NotInHistory(Zxid),
}

/// Why a proposal was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This server is not an established leader.
    #[error("not an established leader")]
    NotLeading,
    /// The zxid is not the one [`next_zxid`](crate::Zab::next_zxid) gives.
    #[error("zxid {got} proposed, {expected} expected")]
    WrongZxid {
        /// The zxid expected.
        expected: Zxid,
        /// The zxid given.
        got: Zxid,
    },
    /// The epoch's counter is used up; the leader gives up its role so that a new
    /// election starts a new epoch (ZooKeeper's `ZxidRolloverException`).
    #[error("zxid counter of epoch {0} exhausted")]
    ZxidExhausted(u32),
    /// A reconfiguration while reconfiguration is off, while another is pending, or of
    /// a membership that does not parse.
    #[error("reconfiguration refused: {0}")]
    Reconfig(String),
}

/// Why the log cannot be compacted at a snapshot now ([`Zab::compact`](crate::Zab::compact)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// The snapshot is not a point of the history (its zxid was never logged here, or
    /// is past the last txn applied): the log cannot be cut there.
    #[error("the snapshot at {0} is not a point of the applied history")]
    NotInHistory(Zxid),
    /// The log is being read at or below the snapshot, to sync a learner.
    #[error("learner {0} is being synced from the log")]
    Syncing(Sid),
    /// This member is syncing with its leader, which chose how on the history as it was.
    #[error("syncing with the leader")]
    Learning,
}
