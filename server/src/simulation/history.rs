//! What the simulated clients record: the same shape as `cargo xtask chaos` records for
//! real clients, so the same checkers read both.

/// An operation a client invoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `getData` of a register (a plain read: ZooKeeper lets it be stale).
    Read {
        /// The register's path.
        key: String,
    },
    /// `setData` of a register with a value unique to this write, any version.
    Write {
        /// The register's path.
        key: String,
        /// The value written.
        value: u64,
    },
    /// `setData` with the version the client last saw.
    Cas {
        /// The register's path.
        key: String,
        /// The version named.
        expected: i32,
        /// The value written.
        value: u64,
    },
    /// `create` of a persistent sequential node under `parent`.
    CreateSequential {
        /// The parent's path.
        parent: String,
    },
    /// After the run healed: the register as a member holds it.
    FinalRead {
        /// The register's path.
        key: String,
    },
    /// `sync`, then `getData` of a register on the same connection.
    SyncRead {
        /// The register's path.
        key: String,
    },
    /// `create` of an ephemeral node, owned by the session.
    CreateEphemeral {
        /// The node's path.
        path: String,
    },
    /// `getData` of a register that leaves a data watch on it.
    WatchedRead {
        /// The register's path.
        key: String,
    },
    /// A watch event the session received (invoked and completed on arrival).
    WatchEvent {
        /// The path it names.
        key: String,
    },
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It took effect (or read): the register's version and value after it.
    Ok {
        /// The data version.
        version: i32,
        /// The value.
        value: u64,
    },
    /// A sequential create took effect with this name.
    Created {
        /// The node's path.
        path: String,
    },
    /// It definitely did not take effect: the server's error code.
    Fail {
        /// ZooKeeper's error code.
        code: i32,
    },
    /// Unknown: the connection was lost, the session expired, or no reply came in time.
    Unknown,
    /// A watch event arrived: its type (ZooKeeper's `EventType` code).
    Event {
        /// The event type.
        kind: i32,
    },
}

/// One recorded operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The session that ran it.
    pub session: i64,
    /// When it was invoked, in simulated nanoseconds.
    pub invoke: u64,
    /// When its outcome was known (for `Unknown`, when the client gave up).
    pub complete: u64,
    /// What it was.
    pub kind: Kind,
    /// How it ended.
    pub outcome: Outcome,
}
