//! The compact manager against a plain model of ZooKeeper 3.9's own code (which fixed
//! 3.8's watch modes: ZOOKEEPER-4466, 4471, 4472): two `WatchManager`s (a watch table and a
//! watcher-to-paths table of `WatchStats` each) driven the way `DataTree` drives them.
//! Random operation sequences must give the same events, answers and reports from both.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use zk_jute::{EventType, WatcherType};
use zk_watch::{WatchKind, WatchManager, WatchModes, WatchTable, WatcherId, WatcherMode};

/// `WatchStats`: one bit per mode.
fn flag(mode: WatcherMode) -> u8 {
    match mode {
        WatcherMode::Standard => 1,
        WatcherMode::Persistent => 2,
        WatcherMode::PersistentRecursive => 4,
    }
}

fn modes(flags: u8) -> WatchModes {
    [
        WatcherMode::Standard,
        WatcherMode::Persistent,
        WatcherMode::PersistentRecursive,
    ]
    .into_iter()
    .filter(|m| flags & flag(*m) != 0)
    .fold(WatchModes::NONE, WatchModes::with)
}

/// One of ZooKeeper's two `WatchManager`s, transcribed with ordered collections.
#[derive(Default)]
struct JavaWatchManager {
    watch_table: BTreeMap<String, BTreeSet<u64>>,
    watch2paths: BTreeMap<u64, BTreeMap<String, u8>>,
    recursive_qty: usize,
}

impl JavaWatchManager {
    fn add_watch(&mut self, path: &str, w: u64, mode: WatcherMode) -> bool {
        self.watch_table.entry(path.into()).or_default().insert(w);
        let paths = self.watch2paths.entry(w).or_default();
        let stats = paths.get(path).copied().unwrap_or(0);
        let new = stats | flag(mode);
        if new != stats {
            paths.insert(path.into(), new);
            if mode == WatcherMode::PersistentRecursive {
                self.recursive_qty += 1;
            }
            return true;
        }
        false
    }

    fn remove_cnxn(&mut self, w: u64) {
        let Some(paths) = self.watch2paths.remove(&w) else {
            return;
        };
        for (p, stats) in paths {
            if let Some(set) = self.watch_table.get_mut(&p) {
                set.remove(&w);
                if set.is_empty() {
                    self.watch_table.remove(&p);
                }
            }
            if stats & flag(WatcherMode::PersistentRecursive) != 0 {
                self.recursive_qty -= 1;
            }
        }
    }

    fn trigger(&mut self, path: &str) -> BTreeSet<u64> {
        let mut fired = BTreeSet::new();
        let mut local = Some(path.to_string());
        let mut at_parent = false;
        while let Some(p) = local {
            let watchers: Vec<u64> = self
                .watch_table
                .get(&p)
                .into_iter()
                .flatten()
                .copied()
                .collect();
            for w in watchers {
                let Some(paths) = self.watch2paths.get_mut(&w) else {
                    continue;
                };
                let Some(stats) = paths.get(&p).copied() else {
                    continue;
                };
                if !at_parent {
                    fired.insert(w);
                    let new = stats & !flag(WatcherMode::Standard);
                    if new == 0 {
                        paths.remove(&p);
                        if let Some(set) = self.watch_table.get_mut(&p) {
                            set.remove(&w);
                        }
                    } else {
                        paths.insert(p.clone(), new);
                    }
                } else if stats & flag(WatcherMode::PersistentRecursive) != 0 {
                    fired.insert(w);
                }
            }
            if self.watch_table.get(&p).is_some_and(BTreeSet::is_empty) {
                self.watch_table.remove(&p);
            }
            local = if self.recursive_qty == 0 {
                None
            } else {
                parent(&p)
            };
            at_parent = true;
        }
        fired
    }

    fn contains_watcher(&self, path: &str, w: u64, mode: Option<WatcherMode>) -> bool {
        let Some(stats) = self.watch2paths.get(&w).and_then(|ps| ps.get(path)) else {
            return false;
        };
        mode.is_none_or(|m| stats & flag(m) != 0)
    }

    fn unwatch(&mut self, path: &str, w: u64) -> u8 {
        let Some(paths) = self.watch2paths.get_mut(&w) else {
            return 0;
        };
        let Some(stats) = paths.remove(path) else {
            return 0;
        };
        if paths.is_empty() {
            self.watch2paths.remove(&w);
        }
        if let Some(set) = self.watch_table.get_mut(path) {
            set.remove(&w);
            if set.is_empty() {
                self.watch_table.remove(path);
            }
        }
        stats
    }

    fn remove_watcher(&mut self, path: &str, w: u64, mode: Option<WatcherMode>) -> bool {
        if !self.watch2paths.contains_key(&w) || !self.watch_table.contains_key(path) {
            return false;
        }
        let (old, new) = match mode {
            Some(m) => {
                let old = self.watch2paths[&w].get(path).copied().unwrap_or(0);
                let new = old & !flag(m);
                if new != 0 {
                    if new != old {
                        if let Some(paths) = self.watch2paths.get_mut(&w) {
                            paths.insert(path.into(), new);
                        }
                    }
                } else if old != 0 {
                    self.unwatch(path, w);
                }
                (old, new)
            }
            None => (self.unwatch(path, w), 0),
        };
        let recursive = flag(WatcherMode::PersistentRecursive);
        if old & recursive != 0 && new & recursive == 0 {
            self.recursive_qty -= 1;
        }
        old != new
    }
}

fn parent(path: &str) -> Option<String> {
    if path == "/" {
        return None;
    }
    let i = path.rfind('/')?;
    Some(if i == 0 { "/".into() } else { path[..i].into() })
}

/// `DataTree`'s use of its two managers (ZooKeeper 3.9).
#[derive(Default)]
struct JavaDataTree {
    data: JavaWatchManager,
    child: JavaWatchManager,
}

impl JavaDataTree {
    fn table(&self, t: WatchTable) -> &JavaWatchManager {
        match t {
            WatchTable::Data => &self.data,
            WatchTable::Child => &self.child,
        }
    }

    fn add(&mut self, path: &str, w: u64, kind: WatchKind) -> bool {
        match kind {
            WatchKind::Data => self.data.add_watch(path, w, WatcherMode::Standard),
            WatchKind::Child => self.child.add_watch(path, w, WatcherMode::Standard),
            WatchKind::Persistent => {
                let d = self.data.add_watch(path, w, WatcherMode::Persistent);
                let c = self.child.add_watch(path, w, WatcherMode::Persistent);
                d | c
            }
            WatchKind::PersistentRecursive => {
                self.data
                    .add_watch(path, w, WatcherMode::PersistentRecursive)
            }
        }
    }

    fn trigger(&mut self, path: &str, t: EventType) -> BTreeSet<u64> {
        match t {
            EventType::NodeCreated | EventType::NodeDataChanged => self.data.trigger(path),
            EventType::NodeChildrenChanged => self.child.trigger(path),
            EventType::NodeDeleted => {
                let mut fired = self.data.trigger(path);
                fired.extend(self.child.trigger(path));
                fired
            }
            _ => BTreeSet::new(),
        }
    }

    /// `DataTree.removeWatch`.
    fn remove(&mut self, path: &str, kind: WatcherType, w: u64) -> bool {
        let standard = Some(WatcherMode::Standard);
        match kind {
            WatcherType::Children => self.child.remove_watcher(path, w, standard),
            WatcherType::Data => self.data.remove_watcher(path, w, standard),
            WatcherType::Persistent => {
                let persistent = Some(WatcherMode::Persistent);
                let c = self.child.remove_watcher(path, w, persistent);
                let d = self.data.remove_watcher(path, w, persistent);
                c | d
            }
            WatcherType::PersistentRecursive => {
                let recursive = Some(WatcherMode::PersistentRecursive);
                self.data.remove_watcher(path, w, recursive)
            }
            WatcherType::Any => {
                let c = self.child.remove_watcher(path, w, None);
                let d = self.data.remove_watcher(path, w, None);
                c | d
            }
        }
    }

    /// `DataTree.containsWatcher`.
    fn check(&self, path: &str, kind: WatcherType, w: u64) -> bool {
        match kind {
            WatcherType::Children => {
                self.child
                    .contains_watcher(path, w, Some(WatcherMode::Standard))
            }
            WatcherType::Data => self
                .data
                .contains_watcher(path, w, Some(WatcherMode::Standard)),
            WatcherType::Persistent => {
                self.data
                    .contains_watcher(path, w, Some(WatcherMode::Persistent))
            }
            WatcherType::PersistentRecursive => {
                self.data
                    .contains_watcher(path, w, Some(WatcherMode::PersistentRecursive))
            }
            WatcherType::Any => {
                self.child.contains_watcher(path, w, None)
                    || self.data.contains_watcher(path, w, None)
            }
        }
    }

    fn close(&mut self, w: u64) {
        self.data.remove_cnxn(w);
        self.child.remove_cnxn(w);
    }
}

const PATHS: [&str; 7] = ["/", "/a", "/a/b", "/a/b/c", "/a/c", "/b", "/ab"];
const KINDS: [WatchKind; 4] = [
    WatchKind::Data,
    WatchKind::Child,
    WatchKind::Persistent,
    WatchKind::PersistentRecursive,
];
const EVENTS: [EventType; 4] = [
    EventType::NodeCreated,
    EventType::NodeDeleted,
    EventType::NodeDataChanged,
    EventType::NodeChildrenChanged,
];
const TYPES: [WatcherType; 5] = [
    WatcherType::Children,
    WatcherType::Data,
    WatcherType::Any,
    WatcherType::Persistent,
    WatcherType::PersistentRecursive,
];

#[derive(Debug, Clone)]
enum Op {
    Add(usize, u64, usize),
    Trigger(usize, usize),
    Remove(usize, u64, usize),
    Close(u64),
}

fn op(watchers: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..PATHS.len(), 0..watchers, 0..KINDS.len()).prop_map(|(p, w, k)| Op::Add(p, w, k)),
        3 => (0..PATHS.len(), 0..EVENTS.len()).prop_map(|(p, e)| Op::Trigger(p, e)),
        1 => (0..PATHS.len(), 0..watchers, 0..TYPES.len()).prop_map(|(p, w, t)| Op::Remove(p, w, t)),
        1 => (0..watchers).prop_map(Op::Close),
    ]
}

fn apply(ours: &mut WatchManager, java: &mut JavaDataTree, op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::Add(p, w, k) => {
            let added = ours
                .add_watch(PATHS[p], WatcherId(w), KINDS[k])
                .expect("room");
            prop_assert_eq!(added, java.add(PATHS[p], w, KINDS[k]), "add {:?}", op);
        }
        Op::Trigger(p, e) => {
            let fired = ours.trigger(PATHS[p], EVENTS[e]);
            let got: Vec<u64> = fired.watchers.iter().map(|w| w.0).collect();
            let unique: BTreeSet<u64> = got.iter().copied().collect();
            prop_assert_eq!(unique.len(), got.len(), "a watcher told twice by {:?}", op);
            prop_assert_eq!(
                unique,
                java.trigger(PATHS[p], EVENTS[e]),
                "trigger {:?}",
                op
            );
        }
        Op::Remove(p, w, t) => {
            let removed = ours.remove_watches(PATHS[p], TYPES[t], WatcherId(w));
            prop_assert_eq!(
                removed,
                java.remove(PATHS[p], TYPES[t], w),
                "remove {:?}",
                op
            );
        }
        Op::Close(w) => {
            ours.remove_watcher(WatcherId(w));
            java.close(w);
        }
    }
    Ok(())
}

fn compare_state(
    ours: &WatchManager,
    java: &JavaDataTree,
    watchers: u64,
) -> Result<(), TestCaseError> {
    for path in PATHS {
        for kind in TYPES {
            for w in 0..watchers {
                prop_assert_eq!(
                    ours.check_watches(path, kind, WatcherId(w)),
                    java.check(path, kind, w),
                    "check c{} {} {:?}",
                    w,
                    path,
                    kind
                );
            }
        }
    }
    let mut count = 0;
    for table in WatchTable::ALL {
        let j = java.table(table);
        let total: usize = j.watch2paths.values().map(BTreeMap::len).sum();
        count += total;
        let summary = ours.summary(table);
        prop_assert_eq!(
            (summary.connections, summary.paths, summary.total_watches),
            (j.watch2paths.len(), j.watch_table.len(), total)
        );
        let by_watcher: BTreeMap<u64, Vec<String>> = ours
            .by_watcher(table)
            .into_iter()
            .map(|(w, ps)| (w.0, ps))
            .collect();
        let expected: BTreeMap<u64, Vec<String>> = j
            .watch2paths
            .iter()
            .map(|(w, ps)| (*w, ps.keys().cloned().collect()))
            .collect();
        prop_assert_eq!(by_watcher, expected);
        let by_path: BTreeMap<String, Vec<u64>> = ours
            .by_path(table)
            .into_iter()
            .map(|(p, ws)| (p, ws.into_iter().map(|w| w.0).collect()))
            .collect();
        let expected: BTreeMap<String, Vec<u64>> = j
            .watch_table
            .iter()
            .map(|(p, ws)| (p.clone(), ws.iter().copied().collect()))
            .collect();
        prop_assert_eq!(by_path, expected);
        prop_assert_eq!(ours.recursive_watch_count(table), j.recursive_qty);
    }
    prop_assert_eq!(ours.watch_count(), count);
    for w in 0..watchers {
        for held in ours.watches_of(WatcherId(w)) {
            for (table, mode) in [
                (WatchTable::Data, held.data),
                (WatchTable::Child, held.child),
            ] {
                let j = java.table(table);
                let flags = j
                    .watch2paths
                    .get(&w)
                    .and_then(|ps| ps.get(&held.path))
                    .copied()
                    .unwrap_or(0);
                prop_assert_eq!(mode, modes(flags), "modes of c{} on {}", w, held.path);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn behaves_like_zookeeper_3_9(ops in prop::collection::vec(op(4), 1..80)) {
        let mut ours = WatchManager::new();
        let mut java = JavaDataTree::default();
        for op in &ops {
            apply(&mut ours, &mut java, op)?;
            compare_state(&ours, &java, 4)?;
        }
    }
}

/// Enough watchers on few paths to move a path's pairs from the inline form to the sorted
/// vector to the hash map and back, in a scrambled order.
#[test]
fn crowded_paths_behave_like_zookeeper_3_9() {
    const WATCHERS: u64 = 1500;
    let mut ours = WatchManager::new();
    let mut java = JavaDataTree::default();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let mut crowded = 0;
    for round in 0..12_000 {
        let r = next(100);
        let op = if r < 70 {
            Op::Add(next(3) as usize, next(WATCHERS), next(4) as usize)
        } else if r < 75 {
            Op::Trigger(next(3) as usize, next(4) as usize)
        } else if r < 95 {
            Op::Remove(
                next(3) as usize,
                next(WATCHERS),
                next(TYPES.len() as u64) as usize,
            )
        } else {
            Op::Close(next(WATCHERS))
        };
        apply(&mut ours, &mut java, &op).unwrap_or_else(|e| panic!("round {round}: {e}"));
        if round % 100 == 0 {
            let pairs = |p: &str| {
                let mut ws: BTreeSet<u64> =
                    java.data.watch_table.get(p).cloned().unwrap_or_default();
                ws.extend(java.child.watch_table.get(p).into_iter().flatten());
                ws.len()
            };
            crowded = crowded.max(PATHS.iter().map(|p| pairs(p)).max().unwrap_or(0));
        }
        if round % 1000 == 999 {
            compare_state(&ours, &java, WATCHERS).unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
    assert!(
        crowded > 600,
        "the test should crowd a path past the vector form: {crowded}"
    );
    // Closing every connection shrinks the crowded paths back through every form.
    for w in 0..WATCHERS {
        apply(&mut ours, &mut java, &Op::Close(w)).unwrap_or_else(|e| panic!("close c{w}: {e}"));
        if w % 100 == 0 {
            compare_state(&ours, &java, WATCHERS).unwrap_or_else(|e| panic!("close c{w}: {e}"));
        }
    }
    assert_eq!((ours.watch_count(), ours.path_count()), (0, 0));
}
