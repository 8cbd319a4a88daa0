//! What members say to each other: ZooKeeper's quorum packets (`Leader.FOLLOWERINFO`,
//! `LEADERINFO`, `ACKEPOCH`, `DIFF`, `TRUNC`, `SNAP`, `PROPOSAL`, `ACK`, `COMMIT`,
//! `INFORM`, `NEWLEADER`, `UPTODATE`, `PING`, `REQUEST`, `REVALIDATE`, `SYNC`) as Rust
//! values, and one of this crate's own, [`Message::Logged`]. Txn bodies and snapshot pieces
//! are opaque bytes.

use bytes::Bytes;
use zk_jute::Zxid;

use crate::config::Membership;

/// A server id (`server.N`, `myid`).
pub type Sid = u64;

/// One logged txn: its zxid and its body, opaque to this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The txn's id: epoch in the high 32 bits, counter in the low 32.
    pub zxid: Zxid,
    /// The serialized txn.
    pub data: Bytes,
}

impl Entry {
    /// An entry of `data` at `zxid`.
    pub fn new(zxid: Zxid, data: impl Into<Bytes>) -> Self {
        Entry {
            zxid,
            data: data.into(),
        }
    }
}

/// A session a learner's clients kept alive since its last ping (ZooKeeper's
/// `touchTable`), carried to the leader on `PING`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Touch {
    /// The session id.
    pub session: i64,
    /// The session's negotiated timeout.
    pub timeout_ms: i32,
}

/// One message between a leader and a learner, in the order the stream carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Learner → leader, first on a new stream (`FOLLOWERINFO` / `OBSERVERINFO`): the
    /// learner's accepted epoch.
    LearnerInfo {
        /// The learner's `acceptedEpoch`.
        accepted_epoch: u32,
        /// Whether the learner is an observer.
        observer: bool,
        /// The election round in which the learner chose this leader.
        election_epoch: i64,
    },
    /// Leader → learner (`LEADERINFO`): the epoch the leader proposes.
    LeaderInfo {
        /// The new epoch.
        epoch: u32,
    },
    /// Learner → leader (`ACKEPOCH`): the learner accepted the epoch; its history.
    AckEpoch {
        /// The learner's `currentEpoch`.
        current_epoch: u32,
        /// The learner's last logged zxid.
        last_zxid: Zxid,
        /// The zxid of the snapshot the learner's log starts from: it cannot truncate
        /// below it, so a leader that would send TRUNC below it sends SNAP instead.
        snapshot_zxid: Zxid,
        /// The learner had accepted this epoch before (ZooKeeper answers with epoch
        /// -1): it is synced, but does not count towards the quorum that makes the
        /// epoch current, which must be of members that accepted it from this leader.
        already_accepted: bool,
    },
    /// Leader → learner: the learner's log is a prefix of the leader's; the missing
    /// entries follow as proposals.
    Diff {
        /// How much of the learner's log is committed.
        committed: Zxid,
    },
    /// Leader → learner: drop every entry after `zxid`; the missing entries follow.
    Trunc {
        /// The last zxid the learner keeps.
        zxid: Zxid,
        /// How much of what the learner keeps is committed.
        committed: Zxid,
    },
    /// Leader → learner: the leader's state at `zxid` follows in pieces.
    Snap {
        /// The zxid the snapshot reflects.
        zxid: Zxid,
    },
    /// Leader → learner: a piece of the snapshot announced by [`Message::Snap`].
    SnapPiece {
        /// The bytes, opaque to this crate.
        data: Bytes,
        /// Whether this is the last piece.
        last: bool,
    },
    /// Leader → follower: log this txn.
    Proposal(Entry),
    /// Follower → leader: every proposal up to `zxid` is durable in the follower's log.
    Ack {
        /// The last durable zxid.
        zxid: Zxid,
    },
    /// Leader → follower: every proposal up to `zxid` is durable in the leader's log. Sent
    /// to a follower that forwarded a client's request, only where the leader and the
    /// follower make a quorum together (as any two of three voters do) and no
    /// reconfiguration is in flight: a follower whose own log is durable that far knows
    /// those proposals are committed, and applies them without waiting for `COMMIT`, which
    /// still follows. Not one of ZooKeeper's packets; it saves a create through a follower
    /// two hops.
    Logged {
        /// The leader's last durable zxid.
        zxid: Zxid,
    },
    /// Leader → follower: every proposal up to `zxid` is committed.
    Commit {
        /// The committed zxid.
        zxid: Zxid,
    },
    /// Leader → follower: log this reconfiguration txn, which makes `membership` the
    /// next one (ZooKeeper's PROPOSAL of a `reconfig` txn, whose body a follower reads).
    Reconfig {
        /// The txn.
        entry: Entry,
        /// The membership it proposes; its version is the txn's zxid.
        membership: Membership,
    },
    /// Leader → follower (`COMMITANDACTIVATE`): every proposal up to `zxid`, the
    /// reconfiguration, is committed, and its membership is the ensemble's, led by
    /// `leader`.
    CommitAndActivate {
        /// The reconfiguration's zxid.
        zxid: Zxid,
        /// The leader of the new membership.
        leader: Sid,
    },
    /// Leader → observer (`INFORMANDACTIVATE`): a committed reconfiguration, to log,
    /// apply and activate.
    InformAndActivate {
        /// The txn.
        entry: Entry,
        /// The membership it makes.
        membership: Membership,
        /// The leader of the new membership.
        leader: Sid,
    },
    /// Leader → observer: a committed txn, to log and apply.
    Inform(Entry),
    /// Leader → learner, after the sync: the leader's new epoch, as its first zxid.
    NewLeader {
        /// `epoch << 32`.
        zxid: Zxid,
        /// With reconfiguration on, the membership the leader last saw (ZooKeeper's
        /// last seen quorum verifier): active once the leader is established, as
        /// `UPTODATE` says.
        membership: Option<Membership>,
        /// The membership is a reconfiguration still in flight in an established epoch
        /// (a learner joining late): it becomes active when its txn commits, not at
        /// `UPTODATE`. Activating it early took a learner out of an epoch whose leader
        /// needed its acknowledgement to commit that very reconfiguration.
        pending: bool,
    },
    /// Learner → leader: the sync is durable and `currentEpoch` written.
    AckNewLeader {
        /// The `NEWLEADER` zxid acknowledged.
        zxid: Zxid,
    },
    /// Leader → learner: the leader serves; apply what the sync committed and serve.
    UpToDate,
    /// Both ways: liveness. A learner's ping carries the sessions it touched.
    Ping {
        /// Sessions touched since the last ping (empty from the leader).
        touches: Vec<Touch>,
    },
    /// Learner → leader: a client write to prepare and propose (opaque to this crate).
    Request {
        /// The forwarded request.
        data: Bytes,
    },
    /// Learner → leader: is this session still alive (a client reconnected)?
    Revalidate {
        /// The session id.
        session: i64,
        /// The session's timeout.
        timeout_ms: i32,
    },
    /// Leader → learner: the answer to [`Message::Revalidate`].
    Revalidated {
        /// The session id.
        session: i64,
        /// Whether the session is alive.
        valid: bool,
    },
    /// Learner → leader: answer once everything proposed so far is committed.
    Sync {
        /// The learner's token for the request.
        id: u64,
    },
    /// Leader → learner: the [`Message::Sync`] with this token is done; every commit
    /// before it was sent first.
    SyncDone {
        /// The token.
        id: u64,
    },
}

impl Message {
    /// ZooKeeper's name for the packet, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Message::LearnerInfo {
                observer: false, ..
            } => "FOLLOWERINFO",
            Message::LearnerInfo { observer: true, .. } => "OBSERVERINFO",
            Message::LeaderInfo { .. } => "LEADERINFO",
            Message::AckEpoch { .. } => "ACKEPOCH",
            Message::Diff { .. } => "DIFF",
            Message::Trunc { .. } => "TRUNC",
            Message::Snap { .. } => "SNAP",
            Message::SnapPiece { .. } => "SNAP piece",
            Message::Proposal(_) => "PROPOSAL",
            Message::Ack { .. } => "ACK",
            Message::Commit { .. } => "COMMIT",
            Message::Logged { .. } => "LOGGED",
            Message::Reconfig { .. } => "PROPOSAL of a reconfiguration",
            Message::CommitAndActivate { .. } => "COMMITANDACTIVATE",
            Message::InformAndActivate { .. } => "INFORMANDACTIVATE",
            Message::Inform(_) => "INFORM",
            Message::NewLeader { .. } => "NEWLEADER",
            Message::AckNewLeader { .. } => "ACK of NEWLEADER",
            Message::UpToDate => "UPTODATE",
            Message::Ping { .. } => "PING",
            Message::Request { .. } => "REQUEST",
            Message::Revalidate { .. } => "REVALIDATE",
            Message::Revalidated { .. } => "REVALIDATE answer",
            Message::Sync { .. } => "SYNC",
            Message::SyncDone { .. } => "SYNC done",
        }
    }
}
