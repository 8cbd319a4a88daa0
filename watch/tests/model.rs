//! The compact manager against a plain model of ZooKeeper 3.8's own code: two
//! `WatchManager`s (a watch table, a watcher-to-paths table and a `WatcherModeManager`
//! each) driven the way `DataTree` drives them. Random operation sequences must give the
//! same events, answers and reports from both.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use zk_jute::{EventType, WatcherType};
use zk_watch::{WatchKind, WatchManager, WatchTable, WatcherId, WatcherMode};

/// One of ZooKeeper's two `WatchManager`s, transcribed with ordered collections.
#[derive(Default)]
struct JavaWatchManager {
    watch_table: BTreeMap<String, BTreeSet<u64>>,
    watch2paths: BTreeMap<u64, BTreeSet<String>>,
    modes: BTreeMap<(u64, String), WatcherMode>,
}

impl JavaWatchManager {
    fn add_watch(&mut self, path: &str, w: u64, mode: WatcherMode) -> bool {
        self.watch_table.entry(path.into()).or_default().insert(w);
        let paths = self.watch2paths.entry(w).or_default();
        if mode == WatcherMode::Standard {
            self.modes.remove(&(w, path.into()));
        } else {
            self.modes.insert((w, path.into()), mode);
        }
        paths.insert(path.into())
    }

    fn mode(&self, w: u64, path: &str) -> WatcherMode {
        self.modes
            .get(&(w, path.into()))
            .copied()
            .unwrap_or(WatcherMode::Standard)
    }

    fn remove_cnxn(&mut self, w: u64) {
        for p in self.watch2paths.remove(&w).unwrap_or_default() {
            if let Some(set) = self.watch_table.get_mut(&p) {
                set.remove(&w);
                if set.is_empty() {
                    self.watch_table.remove(&p);
                }
            }
            self.modes.remove(&(w, p));
        }
    }

    fn trigger(&mut self, path: &str, t: EventType) -> BTreeSet<u64> {
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
                let mode = self.mode(w, &p);
                if mode == WatcherMode::PersistentRecursive {
                    if t != EventType::NodeChildrenChanged {
                        fired.insert(w);
                    }
                } else if !at_parent {
                    fired.insert(w);
                    if mode == WatcherMode::Standard {
                        let set = self.watch_table.get_mut(&p).expect("present");
                        set.remove(&w);
                        if set.is_empty() {
                            self.watch_table.remove(&p);
                        }
                        if let Some(paths) = self.watch2paths.get_mut(&w) {
                            paths.remove(&p);
                        }
                    }
                }
            }
            local = parent(&p);
            at_parent = true;
        }
        fired
    }

    fn contains_watcher(&self, path: &str) -> bool {
        self.watch_table.contains_key(path)
    }

    fn remove_watcher(&mut self, path: &str, w: u64) -> bool {
        let Some(paths) = self.watch2paths.get_mut(&w) else {
            return false;
        };
        if !paths.remove(path) {
            return false;
        }
        if let Some(set) = self.watch_table.get_mut(path) {
            set.remove(&w);
            if set.is_empty() {
                self.watch_table.remove(path);
            }
        }
        self.modes.remove(&(w, path.into()));
        true
    }
}

fn parent(path: &str) -> Option<String> {
    if path == "/" {
        return None;
    }
    let i = path.rfind('/')?;
    Some(if i == 0 { "/".into() } else { path[..i].into() })
}

/// `DataTree`'s use of its two managers.
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
            WatchKind::Persistent | WatchKind::PersistentRecursive => {
                let mode = if kind == WatchKind::Persistent {
                    WatcherMode::Persistent
                } else {
                    WatcherMode::PersistentRecursive
                };
                let d = self.data.add_watch(path, w, mode);
                let c = self.child.add_watch(path, w, mode);
                d | c
            }
        }
    }

    fn trigger(&mut self, path: &str, t: EventType) -> BTreeSet<u64> {
        match t {
            EventType::NodeCreated | EventType::NodeDataChanged => self.data.trigger(path, t),
            EventType::NodeChildrenChanged => self.child.trigger(path, t),
            EventType::NodeDeleted => {
                let mut fired = self.data.trigger(path, t);
                fired.extend(self.child.trigger(path, t));
                fired
            }
            _ => BTreeSet::new(),
        }
    }

    fn tables(kind: WatcherType) -> Vec<WatchTable> {
        match kind {
            WatcherType::Children => vec![WatchTable::Child],
            WatcherType::Data => vec![WatchTable::Data],
            WatcherType::Any => vec![WatchTable::Child, WatchTable::Data],
        }
    }

    fn remove(&mut self, path: &str, kind: WatcherType, w: u64) -> bool {
        let mut removed = false;
        for t in Self::tables(kind) {
            removed |= match t {
                WatchTable::Data => self.data.remove_watcher(path, w),
                WatchTable::Child => self.child.remove_watcher(path, w),
            };
        }
        removed
    }

    fn check(&self, path: &str, kind: WatcherType) -> bool {
        Self::tables(kind)
            .into_iter()
            .any(|t| self.table(t).contains_watcher(path))
    }

    fn has(&self, path: &str, kind: WatcherType, w: u64) -> bool {
        Self::tables(kind).into_iter().any(|t| {
            self.table(t)
                .watch2paths
                .get(&w)
                .is_some_and(|ps| ps.contains(path))
        })
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
const TYPES: [WatcherType; 3] = [WatcherType::Children, WatcherType::Data, WatcherType::Any];

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
            prop_assert_eq!(
                ours.check_watches(path, kind),
                java.check(path, kind),
                "check {} {:?}",
                path,
                kind
            );
            for w in 0..watchers {
                prop_assert_eq!(
                    ours.has_watch(path, kind, WatcherId(w)),
                    java.has(path, kind, w)
                );
            }
        }
    }
    let mut count = 0;
    for table in WatchTable::ALL {
        let j = java.table(table);
        let total: usize = j.watch2paths.values().map(BTreeSet::len).sum();
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
            .map(|(w, ps)| (*w, ps.iter().cloned().collect()))
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
        let recursive = j
            .modes
            .values()
            .filter(|m| **m == WatcherMode::PersistentRecursive)
            .count();
        prop_assert_eq!(ours.recursive_watch_count(table), recursive);
    }
    prop_assert_eq!(ours.watch_count(), count);
    for w in 0..watchers {
        for held in ours.watches_of(WatcherId(w)) {
            for (table, mode) in [
                (WatchTable::Data, held.data),
                (WatchTable::Child, held.child),
            ] {
                let j = java.table(table);
                let java_mode = j
                    .watch2paths
                    .get(&w)
                    .is_some_and(|ps| ps.contains(&held.path))
                    .then(|| j.mode(w, &held.path));
                prop_assert_eq!(mode, java_mode, "mode of c{} on {}", w, held.path);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn behaves_like_zookeeper_3_8(ops in prop::collection::vec(op(4), 1..80)) {
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
fn crowded_paths_behave_like_zookeeper_3_8() {
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
            Op::Remove(next(3) as usize, next(WATCHERS), next(3) as usize)
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
