//! The values both sides share: watcher ids, watch kinds and modes, and events.

use std::fmt;

use zk_jute::proto::WatcherEvent;
use zk_jute::{AddWatchMode, EventType, KeeperState};

/// Identifies one watcher on the server: in ZooKeeper, a client connection.
///
/// The server picks the numbers (a connection counter, or the session id while a session has
/// one connection) and keeps the mapping to its connections; the manager only stores them.
/// Prints in hex, as ZooKeeper prints session ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatcherId(pub u64);

impl fmt::Display for WatcherId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

/// What kind of watch a request sets on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchKind {
    /// `getData` or `exists` with `watch = true`: one-shot, in the data table.
    Data,
    /// `getChildren` with `watch = true`: one-shot, in the child table.
    Child,
    /// `addWatch` in mode `PERSISTENT`: stays, fires for the znode itself, in both tables.
    Persistent,
    /// `addWatch` in mode `PERSISTENT_RECURSIVE`: stays, fires for the znode and every
    /// descendant (never with `NodeChildrenChanged`), in the data table only (ZooKeeper 3.9;
    /// 3.8 put it in both).
    PersistentRecursive,
}

impl From<AddWatchMode> for WatchKind {
    fn from(mode: AddWatchMode) -> Self {
        match mode {
            AddWatchMode::Persistent => WatchKind::Persistent,
            AddWatchMode::PersistentRecursive => WatchKind::PersistentRecursive,
        }
    }
}

/// ZooKeeper keeps data watches and child watches in two tables (`DataTree.dataWatches`
/// and `DataTree.childWatches`); which table a watch lives in decides which events reach it
/// and what `removeWatches` of a given `WatcherType` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchTable {
    /// Data and exists watches, the data half of persistent watches, and persistent
    /// recursive watches. The four-letter words `wchs`, `wchc` and `wchp` report this table
    /// only, as ZooKeeper's do.
    Data,
    /// Child watches, and the child half of persistent watches.
    Child,
}

impl WatchTable {
    /// Both tables, data first.
    pub const ALL: [WatchTable; 2] = [WatchTable::Data, WatchTable::Child];
}

/// How a watch behaves once it fires (`WatcherMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatcherMode {
    /// One-shot: removed when it fires.
    Standard,
    /// Stays after firing; fires for its own znode only.
    Persistent,
    /// Stays after firing; fires for its znode and every descendant, except with
    /// `NodeChildrenChanged`.
    PersistentRecursive,
}

/// The modes one watcher holds on one path in one table. Since ZooKeeper 3.9
/// (ZOOKEEPER-4466) a standard, a persistent and a persistent recursive watch of the same
/// connection on the same path coexist, and each behaves as if it were alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct WatchModes(u8);

impl WatchModes {
    /// No watch.
    pub const NONE: WatchModes = WatchModes(0);

    const fn flag(mode: WatcherMode) -> u8 {
        match mode {
            WatcherMode::Standard => 1,
            WatcherMode::Persistent => 2,
            WatcherMode::PersistentRecursive => 4,
        }
    }

    /// The set holding `mode` alone.
    pub const fn of(mode: WatcherMode) -> WatchModes {
        WatchModes(Self::flag(mode))
    }

    /// Whether the set holds `mode`.
    pub const fn contains(self, mode: WatcherMode) -> bool {
        self.0 & Self::flag(mode) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// This set and `mode`.
    #[must_use]
    pub const fn with(self, mode: WatcherMode) -> WatchModes {
        WatchModes(self.0 | Self::flag(mode))
    }

    /// This set without `mode`.
    #[must_use]
    pub const fn without(self, mode: WatcherMode) -> WatchModes {
        WatchModes(self.0 & !Self::flag(mode))
    }

    /// The modes held, standard first.
    pub fn iter(self) -> impl Iterator<Item = WatcherMode> {
        [
            WatcherMode::Standard,
            WatcherMode::Persistent,
            WatcherMode::PersistentRecursive,
        ]
        .into_iter()
        .filter(move |m| self.contains(*m))
    }

    /// The three flag bits.
    pub(crate) const fn bits(self) -> u8 {
        self.0
    }

    /// The set the low three bits of `bits` encode.
    pub(crate) const fn from_bits(bits: u8) -> WatchModes {
        WatchModes(bits & 0b111)
    }
}

/// A watch notification: what happened, and to which znode.
///
/// Events from the watch manager are always in state `SyncConnected`; the server sends them
/// as [`WatcherEvent`] records with xid `-1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchedEvent {
    /// What happened.
    pub event_type: EventType,
    /// The znode it happened to (for a recursive watch, the descendant that changed).
    pub path: String,
}

impl WatchedEvent {
    /// An event of `event_type` on `path`.
    pub fn new(event_type: EventType, path: impl Into<String>) -> Self {
        WatchedEvent {
            event_type,
            path: path.into(),
        }
    }

    /// The record the server sends, in state `SyncConnected`.
    pub fn to_wire(&self) -> WatcherEvent {
        WatcherEvent {
            r#type: self.event_type.code(),
            state: KeeperState::SyncConnected.code(),
            path: self.path.clone(),
        }
    }
}

impl fmt::Display for WatchedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.event_type, self.path)
    }
}
