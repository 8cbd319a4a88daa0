//! Votes, server states and ZooKeeper's total order on proposals.

use std::fmt;

use zk_jute::Zxid;

/// A server id (`myid`), as in `server.N` of `zoo.cfg`.
pub type Sid = u64;

/// The role a server is in, as ZooKeeper's `QuorumPeer.ServerState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerState {
    /// Searching for a leader: an election is running.
    Looking,
    /// Following an elected leader.
    Following,
    /// Leading the ensemble.
    Leading,
    /// Learning from the leader without voting.
    Observing,
}

impl ServerState {
    /// The number ZooKeeper puts on the wire for this state (0 to 3).
    pub const fn code(self) -> i32 {
        match self {
            ServerState::Looking => 0,
            ServerState::Following => 1,
            ServerState::Leading => 2,
            ServerState::Observing => 3,
        }
    }

    /// The state for a wire number; `None` for numbers ZooKeeper does not define.
    pub const fn from_code(code: i32) -> Option<Self> {
        match code {
            0 => Some(ServerState::Looking),
            1 => Some(ServerState::Following),
            2 => Some(ServerState::Leading),
            3 => Some(ServerState::Observing),
            _ => None,
        }
    }
}

impl fmt::Display for ServerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerState::Looking => "LOOKING",
            ServerState::Following => "FOLLOWING",
            ServerState::Leading => "LEADING",
            ServerState::Observing => "OBSERVING",
        })
    }
}

/// A vote: the proposed leader and what it is proposed with.
///
/// `election_epoch` is the round (ZooKeeper's logical clock) the vote was cast in;
/// `peer_epoch` and `zxid` describe the proposed leader's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    /// The proposed leader.
    pub leader: Sid,
    /// The last zxid the proposed leader has logged.
    pub zxid: i64,
    /// The election round this vote belongs to.
    pub election_epoch: i64,
    /// The proposed leader's current (accepted) epoch.
    pub peer_epoch: i64,
}

impl Vote {
    /// The key ZooKeeper orders proposals by: peer epoch, then zxid, then sid.
    pub const fn order_key(&self) -> (i64, i64, Sid) {
        (self.peer_epoch, self.zxid, self.leader)
    }

    /// Whether two votes count as the same in a tally, given the states they were sent
    /// in. While either is `Looking` every field must match; between servers out of the
    /// election (following or leading) only the leader and its epoch are compared, since
    /// their zxids and rounds may legitimately differ.
    pub fn same_in_tally(
        &self,
        state: ServerState,
        other: &Vote,
        other_state: ServerState,
    ) -> bool {
        if state == ServerState::Looking || other_state == ServerState::Looking {
            self == other
        } else {
            self.leader == other.leader && self.peer_epoch == other.peer_epoch
        }
    }
}

impl fmt::Display for Vote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(leader {}, zxid {}, round 0x{:x}, peer epoch 0x{:x})",
            self.leader,
            Zxid(self.zxid),
            self.election_epoch,
            self.peer_epoch
        )
    }
}

/// One election message: the sender's vote and the state it is in. The sender's sid
/// travels with the connection, not in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Notification {
    /// The vote the sender holds.
    pub vote: Vote,
    /// The sender's state.
    pub state: ServerState,
    /// The version of the membership the sender counts (0 for one no reconfiguration
    /// made), as ZooKeeper's notifications carry their configuration.
    pub config_version: i64,
}

/// What a server knows of its own history: the epoch it accepted last and the last zxid
/// in its log. Persisted by the replication layer; the election only reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PeerData {
    /// The current epoch (`currentEpoch` file).
    pub current_epoch: i64,
    /// The last logged zxid.
    pub last_zxid: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(leader: Sid, zxid: i64, peer_epoch: i64) -> Vote {
        Vote {
            leader,
            zxid,
            election_epoch: 1,
            peer_epoch,
        }
    }

    #[test]
    fn order_is_epoch_then_zxid_then_sid() {
        assert!(vote(1, 0, 2).order_key() > vote(3, 100, 1).order_key());
        assert!(vote(1, 5, 1).order_key() > vote(3, 4, 1).order_key());
        assert!(vote(3, 5, 1).order_key() > vote(2, 5, 1).order_key());
    }

    #[test]
    fn tally_equality_depends_on_state() {
        let a = vote(1, 5, 1);
        let mut b = a;
        b.zxid = 7;
        b.election_epoch = 9;
        assert!(!a.same_in_tally(ServerState::Looking, &b, ServerState::Following));
        assert!(a.same_in_tally(ServerState::Following, &b, ServerState::Leading));
        b.peer_epoch = 2;
        assert!(!a.same_in_tally(ServerState::Following, &b, ServerState::Leading));
    }

    #[test]
    fn state_codes_round_trip() {
        for code in 0..4 {
            assert_eq!(
                ServerState::from_code(code).map(ServerState::code),
                Some(code)
            );
        }
        assert_eq!(ServerState::from_code(4), None);
        assert_eq!(ServerState::from_code(-1), None);
    }
}
