//! The server's watch manager: ZooKeeper's `DataTree.dataWatches` and
//! `DataTree.childWatches` (each a `WatchManager`) in one compact structure, with the
//! watch-mode rules of ZooKeeper 3.9 (ZOOKEEPER-4466, 4471 and 4472), which fixed 3.8's.

mod entries;
mod path_set;
mod report;
mod state;
mod tables;

use std::collections::BTreeMap;
use std::fmt;

use zk_jute::{EventType, WatcherType};

use self::state::State;
use self::tables::{PathTable, WatcherTable};
use crate::path::{parent, path_and_ancestors};
use crate::{
    WatchError, WatchKind, WatchLists, WatchModes, WatchTable, WatchedEvent, WatcherId, WatcherMode,
};

pub use self::report::{WatchesSummary, format_by_connection, format_by_path};

/// One event and every watcher it reaches. All watchers reached by one trigger get the same
/// event, each exactly once however many of its watches matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    /// The notification to send.
    pub event: WatchedEvent,
    /// Who to send it to: no duplicates, not sorted. The order is a function of the
    /// operations so far (the watched path's watchers, then its ancestors'; by slot unless
    /// a path holds more than 512), never of a random seed.
    pub watchers: Vec<WatcherId>,
}

/// The zxids of an existing znode that `setWatches` compares with the client's last zxid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeZxids {
    /// The zxid of the last change to the znode's data (`mzxid`).
    pub mzxid: i64,
    /// The zxid of the last change to its children (`pzxid`).
    pub pzxid: i64,
}

/// A watch one watcher holds on one path, for listing and bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HeldWatch {
    /// The watched path.
    pub path: String,
    /// Its modes in the data table (empty: no watch there).
    pub data: WatchModes,
    /// Its modes in the child table (empty: no watch there).
    pub child: WatchModes,
}

#[derive(Debug, Clone, Copy, Default)]
struct TableCounts {
    /// (path, watcher) pairs with a watch in this table.
    watches: usize,
    /// Of which persistent recursive: while zero, triggers skip the walk up to the root.
    recursive: usize,
}

/// ZooKeeper's server-side watch manager, for both watch tables, in compact form.
///
/// The rules are Apache ZooKeeper 3.9's (`WatchManager` with its `WatchStats`, `DataTree`),
/// which fixed how 3.8.0's watches of different modes interfered (ZOOKEEPER-4466, 4471,
/// 4472); everything else is as in 3.8:
///
/// - `getData`/`exists` watches live in the data table, `getChildren` watches in the child
///   table, persistent `addWatch` watches in both, persistent recursive ones in the data
///   table.
/// - A watcher may hold a one-shot, a persistent and a persistent recursive watch on the
///   same path at once; each behaves as if it were alone (3.8 kept the last one set).
/// - [`trigger`](Self::trigger) fires the watches of the tables an event type concerns,
///   removes the one-shot ones it fired, and reaches each watcher once.
/// - `removeWatches` and `checkWatches` concern the asking watcher's own watches of the
///   mode their type names.
///
/// Watchers are [`WatcherId`]s; the server maps them to connections. A watcher that adds
/// its first watch takes a dense slot that [`remove_watcher`](Self::remove_watcher) frees.
///
/// This type does no I/O and never panics on its inputs; paths are taken as the server
/// validated them.
#[derive(Clone, Default)]
pub struct WatchManager {
    paths: PathTable,
    watchers: WatcherTable,
    data_counts: TableCounts,
    child_counts: TableCounts,
    /// Scratch bitmap of slots already reached by the trigger in progress.
    reached: Vec<u64>,
}

/// What a `removeWatches`/`checkWatches` request of `kind` concerns, table by table, as
/// ZooKeeper 3.9's `DataTree.removeWatch` and `containsWatcher` map it (ZOOKEEPER-4471 and
/// 4472): `Children` and `Data` the standard watches of their table, `Persistent` the
/// persistent watch in both, `PersistentRecursive` the recursive one (data table only),
/// `Any` every mode in both. (3.9 checks persistent watches in the data table alone; a
/// persistent watch is in both tables or in neither, so the answer is the same.)
fn modes_of(kind: WatcherType, table: WatchTable) -> WatchModes {
    let one = WatchModes::of;
    match (kind, table) {
        (WatcherType::Children, WatchTable::Child) | (WatcherType::Data, WatchTable::Data) => {
            one(WatcherMode::Standard)
        }
        (WatcherType::Persistent, _) => one(WatcherMode::Persistent),
        (WatcherType::PersistentRecursive, WatchTable::Data) => {
            one(WatcherMode::PersistentRecursive)
        }
        (WatcherType::Any, _) => ALL_MODES,
        _ => WatchModes::NONE,
    }
}

/// Every mode.
const ALL_MODES: WatchModes = WatchModes::of(WatcherMode::Standard)
    .with(WatcherMode::Persistent)
    .with(WatcherMode::PersistentRecursive);

/// The modes `kind` adds, table by table (ZooKeeper 3.9's `DataTree.addWatch` and the
/// one-shot watches of reads): a persistent watch lives in both tables, a persistent
/// recursive one in the data table only (ZOOKEEPER-4466).
fn added_by(kind: WatchKind, table: WatchTable) -> Option<WatcherMode> {
    match (kind, table) {
        (WatchKind::Data, WatchTable::Data) | (WatchKind::Child, WatchTable::Child) => {
            Some(WatcherMode::Standard)
        }
        (WatchKind::Persistent, _) => Some(WatcherMode::Persistent),
        (WatchKind::PersistentRecursive, WatchTable::Data) => {
            Some(WatcherMode::PersistentRecursive)
        }
        _ => None,
    }
}

impl WatchManager {
    /// An empty manager.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a watch of `kind` for `watcher` on `path`, beside any watch of another mode the
    /// watcher holds there: since ZooKeeper 3.9 (ZOOKEEPER-4466) a one-shot, a persistent
    /// and a persistent recursive watch of one connection on one path coexist, each firing
    /// as if alone (3.8 kept one mode per path and table, the last set). A `Persistent`
    /// watch goes in both tables, a `PersistentRecursive` one in the data table only.
    ///
    /// Returns whether the watcher did not hold this mode on `path` (in one of the tables)
    /// before. Fails only when the manager is full: 2^26 watchers or 2^32 paths at once.
    ///
    /// The manager does not know about closed connections: the server must not add watches
    /// for a connection after calling [`remove_watcher`](Self::remove_watcher) for it
    /// (ZooKeeper checks `isStale` here).
    pub fn add_watch(
        &mut self,
        path: &str,
        watcher: WatcherId,
        kind: WatchKind,
    ) -> Result<bool, WatchError> {
        let slot = self.watchers.slot_or_insert(watcher)?;
        let old = self
            .paths
            .find(path)
            .map_or(State::EMPTY, |id| self.paths.state(id, slot));
        let mut new = old;
        let mut added = false;
        for table in WatchTable::ALL {
            if let Some(mode) = added_by(kind, table) {
                let modes = old.modes(table);
                added |= !modes.contains(mode);
                new = new.with(table, modes.with(mode));
            }
        }
        match self.paths.find(path) {
            Some(id) => self.set_state(id, slot, new),
            None => {
                let id = self.paths.insert(path, slot, new)?;
                self.count(State::EMPTY, new);
                if let Some(w) = self.watchers.get_mut(slot) {
                    w.paths.insert(id);
                    w.recount(State::EMPTY, new);
                }
            }
        }
        if let Some(w) = self.watchers.get_mut(slot) {
            for table in WatchTable::ALL {
                if added_by(kind, table).is_some() {
                    w.mark_seen(table);
                }
            }
        }
        Ok(added)
    }

    /// Fires the watches `event_type` on `path` concerns, as one `WatchManager.triggerWatch`
    /// call per table does in ZooKeeper:
    ///
    /// - `NodeCreated`, `NodeDataChanged`: the data table.
    /// - `NodeChildrenChanged`: the child table (pass the parent of the created or deleted
    ///   znode).
    /// - `NodeDeleted`: the data table, then the child table, each watcher reached once
    ///   (`DataTree.deleteNode` suppresses in the second call who the first reached).
    /// - anything else: nothing.
    ///
    /// In a table, every watch on `path` fires, whatever its modes; its standard (one-shot)
    /// mode is removed. On every ancestor, persistent recursive watches fire too. They live
    /// in the data table only, so `NodeChildrenChanged` never reaches them.
    pub fn trigger(&mut self, path: &str, event_type: EventType) -> Fired {
        let tables: &[WatchTable] = match event_type {
            EventType::NodeCreated | EventType::NodeDataChanged => &[WatchTable::Data],
            EventType::NodeChildrenChanged => &[WatchTable::Child],
            EventType::NodeDeleted => &WatchTable::ALL,
            _ => &[],
        };
        let slots = self.fire(tables, path);
        let watchers = slots
            .into_iter()
            .filter_map(|slot| self.watchers.get(slot).map(|w| w.id))
            .collect();
        Fired {
            event: WatchedEvent::new(event_type, path),
            watchers,
        }
    }

    /// The triggers `DataTree.createNode` issues: `NodeCreated` on `path`, then
    /// `NodeChildrenChanged` on its parent. Only events that reached someone are returned.
    pub fn node_created(&mut self, path: &str) -> Vec<Fired> {
        let mut fired = vec![self.trigger(path, EventType::NodeCreated)];
        if let Some(parent) = parent(path) {
            fired.push(self.trigger(parent, EventType::NodeChildrenChanged));
        }
        fired.retain(|f| !f.watchers.is_empty());
        fired
    }

    /// The triggers `DataTree.deleteNode` issues: `NodeDeleted` on `path` (both tables),
    /// then `NodeChildrenChanged` on its parent. Only events that reached someone are
    /// returned.
    pub fn node_deleted(&mut self, path: &str) -> Vec<Fired> {
        let mut fired = vec![self.trigger(path, EventType::NodeDeleted)];
        if let Some(parent) = parent(path) {
            fired.push(self.trigger(parent, EventType::NodeChildrenChanged));
        }
        fired.retain(|f| !f.watchers.is_empty());
        fired
    }

    /// The trigger `DataTree.setData` issues: `NodeDataChanged` on `path`. Empty when it
    /// reached no one.
    pub fn node_data_changed(&mut self, path: &str) -> Vec<Fired> {
        let fired = self.trigger(path, EventType::NodeDataChanged);
        if fired.watchers.is_empty() {
            Vec::new()
        } else {
            vec![fired]
        }
    }

    /// Handles `removeWatches` for `watcher` as ZooKeeper 3.9's `DataTree.removeWatch` does
    /// (ZOOKEEPER-4471, 4472): `Children` and `Data` drop the one-shot watch of their table,
    /// `Persistent` the persistent watch, `PersistentRecursive` the recursive one, `Any`
    /// every watch on `path`; watches of other modes stay. (3.8 dropped the table's watch
    /// whatever its mode, so `Data` alone could leave half of a persistent watch behind.)
    ///
    /// Returns whether anything was removed; if not, the server answers `NOWATCHER`.
    pub fn remove_watches(&mut self, path: &str, kind: WatcherType, watcher: WatcherId) -> bool {
        let (Some(slot), Some(id)) = (self.watchers.slot(watcher), self.paths.find(path)) else {
            return false;
        };
        let old = self.paths.state(id, slot);
        let mut new = old;
        for table in WatchTable::ALL {
            let mut modes = old.modes(table);
            for mode in modes_of(kind, table).iter() {
                modes = modes.without(mode);
            }
            new = new.with(table, modes);
        }
        if new == old {
            return false;
        }
        self.set_state(id, slot, new);
        // ZooKeeper forgets a connection in a table's reports once removeWatches takes its
        // last watch there (WatchManager.unwatch).
        for table in WatchTable::ALL {
            if !old.modes(table).is_empty() && new.modes(table).is_empty() {
                self.forget_if_unwatched(slot, table);
            }
        }
        true
    }

    /// Answers `checkWatches` for `watcher` as ZooKeeper 3.9's `DataTree.containsWatcher`
    /// does: whether it holds, on `path` itself, a one-shot child watch (`Children`), a
    /// one-shot data or exists watch (`Data`), a persistent watch (`Persistent`), a
    /// persistent recursive one (`PersistentRecursive`) or any watch (`Any`). (3.8 answered
    /// yes when any connection had any watch on the path.)
    pub fn check_watches(&self, path: &str, kind: WatcherType, watcher: WatcherId) -> bool {
        let (Some(slot), Some(id)) = (self.watchers.slot(watcher), self.paths.find(path)) else {
            return false;
        };
        let state = self.paths.state(id, slot);
        WatchTable::ALL.iter().any(|table| {
            let wanted = modes_of(kind, *table);
            wanted.iter().any(|m| state.modes(*table).contains(m))
        })
    }

    /// Clears `table` from the watcher's reports if it holds no watch there any more.
    fn forget_if_unwatched(&mut self, slot: u32, table: WatchTable) {
        debug_assert!(self.watchers.get(slot).is_none_or(|w| {
            let scanned = (w.paths.to_vec().into_iter())
                .any(|id| !self.paths.state(id, slot).modes(table).is_empty());
            w.holds_any(table) == scanned
        }));
        if let Some(w) = self.watchers.get_mut(slot) {
            if !w.holds_any(table) {
                w.forget_seen(table);
            }
        }
    }

    /// Drops every watch `watcher` holds and forgets it (its connection closed:
    /// `DataTree.removeCnxn`). Returns how many watches went, counted per table as
    /// [`watch_count`](Self::watch_count) counts them.
    pub fn remove_watcher(&mut self, watcher: WatcherId) -> usize {
        let Some((slot, held)) = self.watchers.remove(watcher) else {
            return 0;
        };
        let mut dropped = 0;
        for id in held.paths.to_vec() {
            let Some(path) = self.paths.get_mut(id) else {
                continue;
            };
            let old = path.entries.get(slot);
            path.entries.remove(slot);
            let now_empty = path.entries.is_empty();
            dropped += WatchTable::ALL
                .iter()
                .filter(|t| !old.modes(**t).is_empty())
                .count();
            self.count(old, State::EMPTY);
            if now_empty {
                self.paths.release(id);
            }
        }
        dropped
    }

    /// Re-registers the watches a reconnecting client lists in `setWatches`/`setWatches2`,
    /// as `DataTree.setWatches` does. `node` looks a znode up in the tree (`None`: it does
    /// not exist). Watches whose event the client missed are not added; their events are
    /// returned, in list order, for the server to send to `watcher` at once:
    ///
    /// - data: deleted → `NodeDeleted`; `mzxid > relative_zxid` → `NodeDataChanged`;
    ///   else a data watch.
    /// - exist: exists → `NodeCreated`; else a data watch.
    /// - child: deleted → `NodeDeleted`; `pzxid > relative_zxid` → `NodeChildrenChanged`;
    ///   else a child watch.
    /// - persistent and persistent recursive: always added.
    pub fn set_watches(
        &mut self,
        watcher: WatcherId,
        relative_zxid: i64,
        lists: &WatchLists,
        mut node: impl FnMut(&str) -> Option<NodeZxids>,
    ) -> Result<Vec<WatchedEvent>, WatchError> {
        let mut missed = Vec::new();
        for path in &lists.data {
            match node(path) {
                None => missed.push(WatchedEvent::new(EventType::NodeDeleted, path.as_str())),
                Some(n) if n.mzxid > relative_zxid => {
                    missed.push(WatchedEvent::new(EventType::NodeDataChanged, path.as_str()));
                }
                Some(_) => {
                    self.add_watch(path, watcher, WatchKind::Data)?;
                }
            }
        }
        for path in &lists.exist {
            match node(path) {
                Some(_) => missed.push(WatchedEvent::new(EventType::NodeCreated, path.as_str())),
                None => {
                    self.add_watch(path, watcher, WatchKind::Data)?;
                }
            }
        }
        for path in &lists.child {
            match node(path) {
                None => missed.push(WatchedEvent::new(EventType::NodeDeleted, path.as_str())),
                Some(n) if n.pzxid > relative_zxid => {
                    missed.push(WatchedEvent::new(
                        EventType::NodeChildrenChanged,
                        path.as_str(),
                    ));
                }
                Some(_) => {
                    self.add_watch(path, watcher, WatchKind::Child)?;
                }
            }
        }
        for path in &lists.persistent {
            self.add_watch(path, watcher, WatchKind::Persistent)?;
        }
        for path in &lists.persistent_recursive {
            self.add_watch(path, watcher, WatchKind::PersistentRecursive)?;
        }
        Ok(missed)
    }

    /// Every watch `watcher` holds, sorted by path.
    pub fn watches_of(&self, watcher: WatcherId) -> Vec<HeldWatch> {
        let Some(slot) = self.watchers.slot(watcher) else {
            return Vec::new();
        };
        let Some(w) = self.watchers.get(slot) else {
            return Vec::new();
        };
        let mut held: Vec<HeldWatch> = w
            .paths
            .to_vec()
            .into_iter()
            .filter_map(|id| {
                let path = self.paths.get(id)?;
                let state = path.entries.get(slot);
                Some(HeldWatch {
                    path: path.path.to_string(),
                    data: state.modes(WatchTable::Data),
                    child: state.modes(WatchTable::Child),
                })
            })
            .collect();
        held.sort_unstable();
        held
    }

    /// The number of watches in both tables, as `mntr` reports `zk_watch_count`
    /// (`DataTree.getWatchCount`): a persistent watch counts twice.
    pub fn watch_count(&self) -> usize {
        self.data_counts.watches + self.child_counts.watches
    }

    /// The number of persistent recursive watches in `table`
    /// (`WatchManager.getRecursiveWatchQty`).
    pub fn recursive_watch_count(&self, table: WatchTable) -> usize {
        self.counts(table).recursive
    }

    /// The number of watched paths in either table.
    pub fn path_count(&self) -> usize {
        self.paths.len()
    }

    /// The numbers `wchs` prints for `table` (ZooKeeper prints [`WatchTable::Data`]).
    pub fn summary(&self, table: WatchTable) -> WatchesSummary {
        let connections = self
            .watchers
            .iter()
            .filter(|(_, w)| w.has_seen(table))
            .count();
        let paths = self
            .paths
            .iter()
            .filter(|(_, p)| {
                let mut any = false;
                p.entries.for_each(|_, s| any |= !s.modes(table).is_empty());
                any
            })
            .count();
        WatchesSummary {
            connections,
            paths,
            total_watches: self.counts(table).watches,
        }
    }

    /// What `wchc` lists for `table` (ZooKeeper lists [`WatchTable::Data`]): each watcher
    /// that has had a watch there since it was added (unless `removeWatches` took its last
    /// one there), with the paths it watches there now, sorted.
    pub fn by_watcher(&self, table: WatchTable) -> BTreeMap<WatcherId, Vec<String>> {
        self.watchers
            .iter()
            .filter(|(_, w)| w.has_seen(table))
            .map(|(slot, w)| {
                let mut paths: Vec<String> = w
                    .paths
                    .to_vec()
                    .into_iter()
                    .filter_map(|id| self.paths.get(id))
                    .filter(|p| !p.entries.get(slot).modes(table).is_empty())
                    .map(|p| p.path.to_string())
                    .collect();
                paths.sort_unstable();
                (w.id, paths)
            })
            .collect()
    }

    /// What `wchp` lists for `table` (ZooKeeper lists [`WatchTable::Data`]): each path
    /// watched there, with its watchers, sorted.
    pub fn by_path(&self, table: WatchTable) -> BTreeMap<String, Vec<WatcherId>> {
        let mut report = BTreeMap::new();
        for (_, p) in self.paths.iter() {
            let mut ids = Vec::new();
            p.entries.for_each(|slot, state| {
                if !state.modes(table).is_empty() {
                    ids.extend(self.watchers.get(slot).map(|w| w.id));
                }
            });
            if !ids.is_empty() {
                ids.sort_unstable();
                report.insert(p.path.to_string(), ids);
            }
        }
        report
    }

    /// Sets the state of (`id`, `slot`), keeping every index in step: the pair exists iff
    /// its state is not empty, the watcher's bitmap holds `id` iff the pair exists, the
    /// counts match the pairs, and a path with no pair left is released.
    fn set_state(&mut self, id: u32, slot: u32, new: State) {
        let Some(path) = self.paths.get_mut(id) else {
            return;
        };
        let old = path.entries.get(slot);
        if old == new {
            return;
        }
        path.entries.set(slot, new);
        let now_empty = path.entries.is_empty();
        self.count(old, new);
        if let Some(w) = self.watchers.get_mut(slot) {
            w.recount(old, new);
            if new.is_empty() {
                w.paths.remove(id);
            } else if old.is_empty() {
                w.paths.insert(id);
            }
        }
        if now_empty {
            self.paths.release(id);
        }
    }

    fn counts(&self, table: WatchTable) -> &TableCounts {
        match table {
            WatchTable::Data => &self.data_counts,
            WatchTable::Child => &self.child_counts,
        }
    }

    fn count(&mut self, old: State, new: State) {
        for table in WatchTable::ALL {
            let counts = match table {
                WatchTable::Data => &mut self.data_counts,
                WatchTable::Child => &mut self.child_counts,
            };
            let (was, is) = (old.modes(table), new.modes(table));
            counts.watches = (counts.watches + usize::from(!is.is_empty()))
                .saturating_sub(usize::from(!was.is_empty()));
            let recursive = WatcherMode::PersistentRecursive;
            counts.recursive = (counts.recursive + usize::from(is.contains(recursive)))
                .saturating_sub(usize::from(was.contains(recursive)));
        }
    }

    /// The slots `tables` fire for an event on `path`, each once; removes the standard
    /// watches that fired.
    fn fire(&mut self, tables: &[WatchTable], path: &str) -> Vec<u32> {
        let words = self.watchers.slot_bound().div_ceil(64);
        if self.reached.len() < words {
            self.reached.resize(words, 0);
        }
        let mut fired = Vec::new();
        let mut one_shots = Vec::new();
        for table in tables {
            let walk_up = self.counts(*table).recursive > 0;
            for (level, local) in path_and_ancestors(path).enumerate() {
                if level > 0 && !walk_up {
                    break;
                }
                let Some(id) = self.paths.find(local) else {
                    continue;
                };
                let Some(p) = self.paths.get(id) else {
                    continue;
                };
                let reached = &mut self.reached;
                p.entries.for_each(|slot, state| {
                    let modes = state.modes(*table);
                    let fires = if level == 0 {
                        if modes.contains(WatcherMode::Standard) {
                            one_shots.push((id, slot, *table));
                        }
                        !modes.is_empty()
                    } else {
                        modes.contains(WatcherMode::PersistentRecursive)
                    };
                    if fires && mark(reached, slot) {
                        fired.push(slot);
                    }
                });
            }
        }
        for slot in &fired {
            if let Some(word) = self.reached.get_mut(*slot as usize / 64) {
                *word = 0;
            }
        }
        for (id, slot, table) in one_shots {
            let state = self.paths.state(id, slot);
            let modes = state.modes(table).without(WatcherMode::Standard);
            self.set_state(id, slot, state.with(table, modes));
        }
        fired
    }
}

/// Marks `slot` in the scratch bitmap; true if it was not marked yet.
fn mark(reached: &mut [u64], slot: u32) -> bool {
    let Some(word) = reached.get_mut(slot as usize / 64) else {
        return true;
    };
    let bit = 1_u64 << (slot % 64);
    let fresh = *word & bit == 0;
    *word |= bit;
    fresh
}

impl fmt::Debug for WatchManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchManager")
            .field("watchers", &self.watchers.len())
            .field("paths", &self.paths.len())
            .field("data_watches", &self.data_counts.watches)
            .field("child_watches", &self.child_counts.watches)
            .finish()
    }
}
