//! The protocol's numbers: opcodes, error codes, watch event types and states, create and
//! watch modes, permissions, special xids and zxids.

use std::fmt;

use crate::macros::int_enum;

int_enum! {
    /// Request and txn types (`ZooDefs.OpCode`).
    pub enum OpCode {
        /// A watch notification (never sent as a request).
        Notification = 0,
        /// Create a znode, answered with its path.
        Create = 1,
        /// Delete a znode.
        Delete = 2,
        /// Test for a znode.
        Exists = 3,
        /// Read data.
        GetData = 4,
        /// Write data.
        SetData = 5,
        /// Read an ACL.
        GetAcl = 6,
        /// Write an ACL.
        SetAcl = 7,
        /// List children.
        GetChildren = 8,
        /// Sync with the leader.
        Sync = 9,
        /// Keep the session alive.
        Ping = 11,
        /// List children with the parent's stat.
        GetChildren2 = 12,
        /// Check a version (in a multi).
        Check = 13,
        /// Several writes, all or nothing.
        Multi = 14,
        /// Create a znode, answered with path and stat.
        Create2 = 15,
        /// Change the ensemble's membership.
        Reconfig = 16,
        /// Ask whether a watch exists.
        CheckWatches = 17,
        /// Remove watches.
        RemoveWatches = 18,
        /// Create a container znode.
        CreateContainer = 19,
        /// Delete an empty container (server-internal).
        DeleteContainer = 20,
        /// Create a TTL znode.
        CreateTtl = 21,
        /// Several reads at once.
        MultiRead = 22,
        /// Add authentication.
        Auth = 100,
        /// Re-register watches after reconnecting.
        SetWatches = 101,
        /// A SASL token.
        Sasl = 102,
        /// List the session's ephemerals.
        GetEphemerals = 103,
        /// Count all descendants.
        GetAllChildrenNumber = 104,
        /// Re-register watches, persistent ones included.
        SetWatches2 = 105,
        /// Add a persistent watch.
        AddWatch = 106,
        /// Report the session's identities.
        WhoAmI = 107,
        /// Create a session (txn only).
        CreateSession = -10,
        /// Close a session.
        CloseSession = -11,
        /// A failed request (txn only).
        Error = -1,
    }
}

impl OpCode {
    /// Whether a request of this type changes state (and so goes through the txn log).
    pub const fn is_write(self) -> bool {
        matches!(
            self,
            Self::Create
                | Self::Create2
                | Self::CreateContainer
                | Self::CreateTtl
                | Self::DeleteContainer
                | Self::Delete
                | Self::SetData
                | Self::SetAcl
                | Self::Check
                | Self::Multi
                | Self::Reconfig
                | Self::CreateSession
                | Self::CloseSession
                | Self::Error
        )
    }
}

int_enum! {
    /// Result codes (`KeeperException.Code`).
    pub enum ErrorCode {
        /// Success.
        Ok = 0,
        /// A system or server-side error.
        SystemError = -1,
        /// A runtime inconsistency; in a multi, the result of ops after the failing one.
        RuntimeInconsistency = -2,
        /// A data inconsistency was found.
        DataInconsistency = -3,
        /// Connection to the server was lost.
        ConnectionLoss = -4,
        /// Error while (un)marshalling data.
        MarshallingError = -5,
        /// The operation is not implemented.
        Unimplemented = -6,
        /// The operation timed out.
        OperationTimeout = -7,
        /// Invalid arguments.
        BadArguments = -8,
        /// Unknown session (internal).
        UnknownSession = -12,
        /// No quorum of the new config is connected and up to date.
        NewConfigNoQuorum = -13,
        /// Another reconfiguration is in progress.
        ReconfigInProgress = -14,
        /// An API error (the start of the API error range).
        ApiError = -100,
        /// The node does not exist.
        NoNode = -101,
        /// Not authenticated.
        NoAuth = -102,
        /// Version conflict.
        BadVersion = -103,
        /// Ephemeral nodes may not have children.
        NoChildrenForEphemerals = -108,
        /// The node already exists.
        NodeExists = -110,
        /// The node has children.
        NotEmpty = -111,
        /// The session has expired.
        SessionExpired = -112,
        /// Invalid callback.
        InvalidCallback = -113,
        /// Invalid ACL.
        InvalidAcl = -114,
        /// Client authentication failed.
        AuthFailed = -115,
        /// The session moved to another server.
        SessionMoved = -118,
        /// A state-changing request was sent to a read-only server.
        NotReadOnly = -119,
        /// An ephemeral was requested on a local session.
        EphemeralOnLocalSession = -120,
        /// No such watcher to remove.
        NoWatcher = -121,
        /// The request timed out while waiting for a reply.
        RequestTimeout = -122,
        /// Dynamic reconfiguration is disabled.
        ReconfigDisabled = -123,
        /// The session was closed because it needs SASL authentication.
        SessionClosedRequireSaslAuth = -124,
        /// A quota was exceeded.
        QuotaExceeded = -125,
        /// The operation was throttled.
        ThrottledOp = -127,
    }
}

int_enum! {
    /// Watch event types (`Watcher.Event.EventType`).
    pub enum EventType {
        /// A connection state change, no znode involved.
        None = -1,
        /// A watched znode was created.
        NodeCreated = 1,
        /// A watched znode was deleted.
        NodeDeleted = 2,
        /// A watched znode's data changed.
        NodeDataChanged = 3,
        /// A watched znode's children changed.
        NodeChildrenChanged = 4,
        /// A data watch was removed.
        DataWatchRemoved = 5,
        /// A child watch was removed.
        ChildWatchRemoved = 6,
        /// A persistent watch was removed.
        PersistentWatchRemoved = 7,
    }
}

int_enum! {
    /// Connection states in watch events (`Watcher.Event.KeeperState`).
    pub enum KeeperState {
        /// Unknown (deprecated).
        Unknown = -1,
        /// Disconnected from the ensemble.
        Disconnected = 0,
        /// Unused (deprecated).
        NoSyncConnected = 1,
        /// Connected.
        SyncConnected = 3,
        /// Authentication failed.
        AuthFailed = 4,
        /// Connected to a read-only server.
        ConnectedReadOnly = 5,
        /// SASL authenticated.
        SaslAuthenticated = 6,
        /// The session expired.
        Expired = -112,
        /// The client closed the session.
        Closed = 7,
    }
}

int_enum! {
    /// Kinds of watch for `checkWatches` / `removeWatches` (`Watcher.WatcherType`).
    pub enum WatcherType {
        /// Child watches.
        Children = 1,
        /// Data and exists watches.
        Data = 2,
        /// Any watch.
        Any = 3,
        /// Persistent watches (ZooKeeper 3.9, ZOOKEEPER-4472).
        Persistent = 4,
        /// Persistent recursive watches (ZooKeeper 3.9, ZOOKEEPER-4472).
        PersistentRecursive = 5,
    }
}

int_enum! {
    /// Modes of `addWatch` (`AddWatchMode`).
    pub enum AddWatchMode {
        /// A watch on one znode that stays after firing.
        Persistent = 0,
        /// A watch on a znode and all its descendants that stays after firing.
        PersistentRecursive = 1,
    }
}

int_enum! {
    /// Znode creation modes, the `flags` of a create request (`CreateMode`).
    pub enum CreateMode {
        /// A plain znode.
        Persistent = 0,
        /// Deleted when its session ends.
        Ephemeral = 1,
        /// A persistent znode with a sequence suffix.
        PersistentSequential = 2,
        /// An ephemeral znode with a sequence suffix.
        EphemeralSequential = 3,
        /// Deleted by the server once its last child is gone.
        Container = 4,
        /// Deleted by the server when unmodified and childless past its TTL.
        PersistentWithTtl = 5,
        /// A TTL znode with a sequence suffix.
        PersistentSequentialWithTtl = 6,
    }
}

impl CreateMode {
    /// Whether the znode ends with its session.
    pub const fn is_ephemeral(self) -> bool {
        matches!(self, Self::Ephemeral | Self::EphemeralSequential)
    }

    /// Whether the name gets a `%010d` sequence suffix.
    pub const fn is_sequential(self) -> bool {
        matches!(
            self,
            Self::PersistentSequential
                | Self::EphemeralSequential
                | Self::PersistentSequentialWithTtl
        )
    }

    /// Whether this is a container.
    pub const fn is_container(self) -> bool {
        matches!(self, Self::Container)
    }

    /// Whether this znode has a time to live.
    pub const fn is_ttl(self) -> bool {
        matches!(
            self,
            Self::PersistentWithTtl | Self::PersistentSequentialWithTtl
        )
    }
}

/// ACL permission bits (`ZooDefs.Perms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Perms(pub i32);

impl Perms {
    /// Read data and list children.
    pub const READ: Perms = Perms(1);
    /// Write data.
    pub const WRITE: Perms = Perms(1 << 1);
    /// Create children.
    pub const CREATE: Perms = Perms(1 << 2);
    /// Delete children.
    pub const DELETE: Perms = Perms(1 << 3);
    /// Set the ACL.
    pub const ADMIN: Perms = Perms(1 << 4);
    /// Every permission.
    pub const ALL: Perms = Perms(0x1f);

    /// Whether every bit of `other` is set here.
    pub const fn contains(self, other: Perms) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Perms {
    type Output = Perms;
    fn bitor(self, rhs: Perms) -> Perms {
        Perms(self.0 | rhs.0)
    }
}

impl fmt::Display for Perms {
    /// The letters `zkCli.sh` prints: `c`, `d`, `r`, `w`, `a` in that order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letters = [(Self::CREATE, 'c'), (Self::DELETE, 'd'), (Self::READ, 'r')]
            .into_iter()
            .chain([(Self::WRITE, 'w'), (Self::ADMIN, 'a')]);
        for (perm, letter) in letters {
            if self.contains(perm) {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// Special request and reply xids.
pub mod xid {
    /// A watch notification from the server.
    pub const NOTIFICATION: i32 = -1;
    /// A ping and its reply.
    pub const PING: i32 = -2;
    /// An `auth` request and its reply.
    pub const AUTH: i32 = -4;
    /// A `setWatches`/`setWatches2` request and its reply.
    pub const SET_WATCHES: i32 = -8;
}

/// A ZooKeeper transaction id: the leader's epoch in the high 32 bits, a counter within
/// the epoch in the low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Zxid(pub i64);

impl Zxid {
    /// The zxid for `counter` in `epoch`.
    pub const fn new(epoch: u32, counter: u32) -> Self {
        Zxid(((epoch as i64) << 32) | counter as i64)
    }

    /// The epoch: the high 32 bits.
    pub const fn epoch(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The counter within the epoch: the low 32 bits.
    pub const fn counter(self) -> u32 {
        self.0 as u32
    }
}

impl From<i64> for Zxid {
    fn from(value: i64) -> Self {
        Zxid(value)
    }
}

impl From<Zxid> for i64 {
    fn from(value: Zxid) -> i64 {
        value.0
    }
}

impl fmt::Display for Zxid {
    /// Hex with a `0x` prefix, as ZooKeeper logs zxids.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for op in OpCode::ALL {
            assert_eq!(OpCode::try_from(op.code()), Ok(*op));
        }
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::try_from(i32::from(*code)), Ok(*code));
        }
        assert_eq!(OpCode::try_from(10), Err(10));
        assert_eq!(OpCode::try_from(107), Ok(OpCode::WhoAmI));
        assert_eq!(ErrorCode::try_from(-127), Ok(ErrorCode::ThrottledOp));
        assert_eq!(ErrorCode::try_from(-126), Err(-126));
    }

    #[test]
    fn zxid_halves() {
        let zxid = Zxid::new(3, 0xffff_fffe);
        assert_eq!(zxid.0, 0x3_ffff_fffe);
        assert_eq!((zxid.epoch(), zxid.counter()), (3, 0xffff_fffe));
        assert_eq!(zxid.to_string(), "0x3fffffffe");
    }

    #[test]
    fn perms_print_like_zkcli() {
        assert_eq!(Perms::ALL.to_string(), "cdrwa");
        assert_eq!((Perms::READ | Perms::ADMIN).to_string(), "ra");
    }
}
