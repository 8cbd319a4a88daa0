//! The client's watch registry: ZooKeeper's `ZKWatchManager` and the `WatchRegistration`
//! rules of `ZooKeeper.java`, generic over the local watcher type.

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;

use zk_jute::{AddWatchMode, ErrorCode, EventType, KeeperState, WatcherType};

use crate::path::path_and_ancestors;
use crate::{SetWatchesRequest, WatchLists};

/// A request that sets a watch once it succeeds (`ZooKeeper.WatchRegistration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Registration {
    /// `getData` with a watcher: a data watch, on success only.
    GetData,
    /// `exists` with a watcher: a data watch when the znode exists, an exist watch when the
    /// answer is `NONODE`.
    Exists,
    /// `getChildren`/`getChildren2` with a watcher: a child watch, on success only.
    GetChildren,
    /// `addWatch`: a persistent or persistent recursive watch, on success or `NONODE`.
    AddWatch(AddWatchMode),
}

/// Which local map a watch lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientWatchKind {
    /// One-shot data watch (`getData`, or `exists` on an existing znode).
    Data,
    /// One-shot exist watch (`exists` on a missing znode).
    Exist,
    /// One-shot child watch.
    Child,
    /// Persistent watch.
    Persistent,
    /// Persistent recursive watch.
    PersistentRecursive,
}

/// The watchers a removal took out, by the event type each is told with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed<W> {
    /// Told `ChildWatchRemoved`.
    pub child: Vec<W>,
    /// Told `DataWatchRemoved` (data and exist watches).
    pub data: Vec<W>,
    /// Told `PersistentWatchRemoved` (persistent and persistent recursive watches).
    pub persistent: Vec<W>,
}

impl<W> Default for Removed<W> {
    fn default() -> Self {
        Removed {
            child: Vec::new(),
            data: Vec::new(),
            persistent: Vec::new(),
        }
    }
}

impl<W> Removed<W> {
    /// The notifications to deliver locally, as `ClientCnxn.finishPacket` queues them:
    /// each non-empty group with its event type (the event's path is the removal's path).
    pub fn events(&self) -> Vec<(EventType, &[W])> {
        [
            (EventType::ChildWatchRemoved, &self.child),
            (EventType::DataWatchRemoved, &self.data),
            (EventType::PersistentWatchRemoved, &self.persistent),
        ]
        .into_iter()
        .filter(|(_, ws)| !ws.is_empty())
        .map(|(t, ws)| (t, ws.as_slice()))
        .collect()
    }

    fn is_empty(&self) -> bool {
        self.child.is_empty() && self.data.is_empty() && self.persistent.is_empty()
    }
}

type PathMap<W> = BTreeMap<String, Vec<W>>;

/// A client's local watches, by kind and path, with the session's default watcher.
///
/// `W` is whatever identifies a local watcher (an id, a channel handle with identity); a
/// watcher appears once per path and kind, and an event reaches each watcher once. Paths
/// are client paths: with a chroot, strip it from event paths with [`client_path`] before
/// calling [`materialize`](Self::materialize), and pass it to
/// [`set_watches`](Self::set_watches), which prepends it.
///
/// Rules are ZooKeeper's client's (3.8), plus two of 3.9's: a persistent recursive watch is
/// never told `NodeChildrenChanged`, even when the server sends one for another watch of the
/// same session (ZOOKEEPER-4475), and the `Persistent` and `PersistentRecursive` removal
/// types (ZOOKEEPER-4472).
#[derive(Debug, Clone)]
pub struct WatchRegistry<W> {
    data: PathMap<W>,
    exist: PathMap<W>,
    child: PathMap<W>,
    persistent: PathMap<W>,
    persistent_recursive: PathMap<W>,
    default_watcher: Option<W>,
    auto_watch_reset: bool,
}

impl<W> Default for WatchRegistry<W> {
    fn default() -> Self {
        WatchRegistry {
            data: BTreeMap::new(),
            exist: BTreeMap::new(),
            child: BTreeMap::new(),
            persistent: BTreeMap::new(),
            persistent_recursive: BTreeMap::new(),
            default_watcher: None,
            auto_watch_reset: true,
        }
    }
}

impl<W: Clone + Eq + Hash> WatchRegistry<W> {
    /// An empty registry whose connection-state events go to `default_watcher`, with
    /// automatic watch reset on reconnect (ZooKeeper's default).
    pub fn new(default_watcher: Option<W>) -> Self {
        WatchRegistry {
            default_watcher,
            ..Self::default()
        }
    }

    /// Sets automatic watch reset (on by default; off is ZooKeeper's
    /// `zookeeper.disableAutoWatchReset=true`). Off, one-shot watches are dropped when the
    /// connection is lost and [`set_watches`](Self::set_watches) sends nothing.
    pub fn with_auto_watch_reset(mut self, on: bool) -> Self {
        self.auto_watch_reset = on;
        self
    }

    /// The watcher that gets connection-state events.
    pub fn default_watcher(&self) -> Option<&W> {
        self.default_watcher.as_ref()
    }

    /// Replaces the default watcher (`ZooKeeper.register`).
    pub fn set_default_watcher(&mut self, watcher: Option<W>) {
        self.default_watcher = watcher;
    }

    fn map(&self, kind: ClientWatchKind) -> &PathMap<W> {
        match kind {
            ClientWatchKind::Data => &self.data,
            ClientWatchKind::Exist => &self.exist,
            ClientWatchKind::Child => &self.child,
            ClientWatchKind::Persistent => &self.persistent,
            ClientWatchKind::PersistentRecursive => &self.persistent_recursive,
        }
    }

    fn map_mut(&mut self, kind: ClientWatchKind) -> &mut PathMap<W> {
        match kind {
            ClientWatchKind::Data => &mut self.data,
            ClientWatchKind::Exist => &mut self.exist,
            ClientWatchKind::Child => &mut self.child,
            ClientWatchKind::Persistent => &mut self.persistent,
            ClientWatchKind::PersistentRecursive => &mut self.persistent_recursive,
        }
    }

    /// Adds `watcher` on `path` in the map of `kind`; returns false if it was there.
    pub fn add(&mut self, kind: ClientWatchKind, path: &str, watcher: W) -> bool {
        let watchers = self.map_mut(kind).entry(path.to_owned()).or_default();
        if watchers.contains(&watcher) {
            return false;
        }
        watchers.push(watcher);
        true
    }

    /// Records the watch a request set, once its reply came back with `rc`, as
    /// `WatchRegistration.register` does. Returns whether a watch was added.
    pub fn register(
        &mut self,
        registration: Registration,
        path: &str,
        watcher: W,
        rc: ErrorCode,
    ) -> bool {
        let kind = match (registration, rc) {
            (Registration::GetData, ErrorCode::Ok) => ClientWatchKind::Data,
            (Registration::GetChildren, ErrorCode::Ok) => ClientWatchKind::Child,
            (Registration::Exists, ErrorCode::Ok) => ClientWatchKind::Data,
            (Registration::Exists, ErrorCode::NoNode) => ClientWatchKind::Exist,
            (Registration::AddWatch(mode), ErrorCode::Ok | ErrorCode::NoNode) => match mode {
                AddWatchMode::Persistent => ClientWatchKind::Persistent,
                AddWatchMode::PersistentRecursive => ClientWatchKind::PersistentRecursive,
            },
            _ => return false,
        };
        self.add(kind, path, watcher);
        true
    }

    /// The local watchers an incoming event reaches, each once, removing the one-shot
    /// watches it consumes (`ZKWatchManager.materialize`):
    ///
    /// - `None` (a connection-state change): the default watcher and every watcher of every
    ///   kind; with auto watch reset off and a state other than `SyncConnected`, the
    ///   one-shot watches are dropped.
    /// - `NodeCreated`, `NodeDataChanged`: data and exist watches on `path` (consumed),
    ///   persistent watches on `path`, persistent recursive watches on `path` or an ancestor.
    /// - `NodeChildrenChanged`: child watches on `path` (consumed), persistent watches on
    ///   `path`.
    /// - `NodeDeleted`: data, exist and child watches on `path` (consumed), persistent
    ///   watches on `path`, persistent recursive watches on `path` or an ancestor.
    /// - anything else (never sent by a server): no one.
    pub fn materialize(&mut self, state: KeeperState, event_type: EventType, path: &str) -> Vec<W> {
        let mut out = Reached::default();
        match event_type {
            EventType::None => {
                out.extend(self.default_watcher.iter());
                let clear = !self.auto_watch_reset && state != KeeperState::SyncConnected;
                for kind in ClientWatchKind::ALL {
                    out.extend(self.map(kind).values().flatten());
                    if clear && kind.is_one_shot() {
                        self.map_mut(kind).clear();
                    }
                }
            }
            EventType::NodeCreated | EventType::NodeDataChanged => {
                self.consume(
                    &[ClientWatchKind::Data, ClientWatchKind::Exist],
                    path,
                    &mut out,
                );
                self.persistent_for(path, true, &mut out);
            }
            EventType::NodeChildrenChanged => {
                self.consume(&[ClientWatchKind::Child], path, &mut out);
                self.persistent_for(path, false, &mut out);
            }
            EventType::NodeDeleted => {
                let kinds = [
                    ClientWatchKind::Data,
                    ClientWatchKind::Exist,
                    ClientWatchKind::Child,
                ];
                self.consume(&kinds, path, &mut out);
                self.persistent_for(path, true, &mut out);
            }
            _ => {}
        }
        out.list
    }

    fn consume(&mut self, kinds: &[ClientWatchKind], path: &str, out: &mut Reached<W>) {
        for kind in kinds {
            if let Some(watchers) = self.map_mut(*kind).remove(path) {
                out.extend(watchers.iter());
            }
        }
    }

    fn persistent_for(&self, path: &str, recursive: bool, out: &mut Reached<W>) {
        out.extend(self.persistent.get(path).into_iter().flatten());
        if recursive {
            for local in path_and_ancestors(path) {
                out.extend(self.persistent_recursive.get(local).into_iter().flatten());
            }
        }
    }

    /// Whether `watcher` (or any watcher, for `None`) watches `path` in a way `kind` covers,
    /// as ZooKeeper 3.8's `ZKWatchManager.containsWatcher` decides (3.9's covers only the
    /// one-shot kinds for `Children` and `Data`; a 3.9 server answers NOWATCHER there
    /// anyway): `Children` covers child, persistent and persistent recursive watches;
    /// `Data` covers data, exist, persistent and persistent recursive ones; `Any` covers
    /// all; `Persistent` and `PersistentRecursive` (ZooKeeper 3.9's types, ZOOKEEPER-4472)
    /// cover their own kind.
    pub fn contains(&self, path: &str, watcher: Option<&W>, kind: WatcherType) -> bool {
        let kinds: &[ClientWatchKind] = match kind {
            WatcherType::Children => &[
                ClientWatchKind::Child,
                ClientWatchKind::Persistent,
                ClientWatchKind::PersistentRecursive,
            ],
            WatcherType::Data => &[
                ClientWatchKind::Data,
                ClientWatchKind::Exist,
                ClientWatchKind::Persistent,
                ClientWatchKind::PersistentRecursive,
            ],
            WatcherType::Any => &ClientWatchKind::ALL,
            WatcherType::Persistent => &[ClientWatchKind::Persistent],
            WatcherType::PersistentRecursive => &[ClientWatchKind::PersistentRecursive],
        };
        kinds.iter().any(|k| {
            self.map(*k)
                .get(path)
                .is_some_and(|ws| watcher.is_none_or(|w| ws.contains(w)))
        })
    }

    /// Removes local watches after a `removeWatches`/`checkWatches` reply with `rc`, as
    /// `ZKWatchManager.removeWatcher` does. `watcher` `None` removes every watcher of the
    /// kinds on `path` (`removeAllWatches`).
    ///
    /// - nothing [`contains`](Self::contains) covers → `Err(NoWatcher)`;
    /// - `rc` is not `Ok` and not `local` → `Err(rc)`, nothing removed;
    /// - otherwise removes: `Children` child watches; `Data` data and exist watches; `Any`
    ///   those and persistent ones; `Persistent` and `PersistentRecursive` their own kind.
    ///   Persistent watches go only with those three, so `Children` or `Data` on a path
    ///   with only a persistent watch ends in `Err(NoWatcher)`.
    pub fn unregister(
        &mut self,
        path: &str,
        watcher: Option<&W>,
        kind: WatcherType,
        local: bool,
        rc: ErrorCode,
    ) -> Result<Removed<W>, ErrorCode> {
        if !self.contains(path, watcher, kind) {
            return Err(ErrorCode::NoWatcher);
        }
        if !local && rc != ErrorCode::Ok {
            return Err(rc);
        }
        let mut removed = Removed::default();
        let children = matches!(kind, WatcherType::Children | WatcherType::Any);
        let data = matches!(kind, WatcherType::Data | WatcherType::Any);
        let persistent = matches!(kind, WatcherType::Any | WatcherType::Persistent);
        let recursive = matches!(kind, WatcherType::Any | WatcherType::PersistentRecursive);
        if children {
            removed.child = self.take(ClientWatchKind::Child, path, watcher);
        }
        if data {
            removed.data = self.take(ClientWatchKind::Data, path, watcher);
            removed
                .data
                .extend(self.take(ClientWatchKind::Exist, path, watcher));
        }
        if persistent {
            removed.persistent = self.take(ClientWatchKind::Persistent, path, watcher);
        }
        if recursive {
            let recursive = self.take(ClientWatchKind::PersistentRecursive, path, watcher);
            removed.persistent.extend(recursive);
        }
        if removed.is_empty() {
            return Err(ErrorCode::NoWatcher);
        }
        Ok(removed)
    }

    fn take(&mut self, kind: ClientWatchKind, path: &str, watcher: Option<&W>) -> Vec<W> {
        let map = self.map_mut(kind);
        let Some(watcher) = watcher else {
            return map.remove(path).unwrap_or_default();
        };
        let Some(watchers) = map.get_mut(path) else {
            return Vec::new();
        };
        let Some(i) = watchers.iter().position(|w| w == watcher) else {
            return Vec::new();
        };
        let taken = watchers.remove(i);
        if watchers.is_empty() {
            map.remove(path);
        }
        vec![taken]
    }

    /// The paths of every watch, by kind, sorted.
    pub fn watch_lists(&self) -> WatchLists {
        let keys = |m: &PathMap<W>| m.keys().cloned().collect();
        WatchLists {
            data: keys(&self.data),
            exist: keys(&self.exist),
            child: keys(&self.child),
            persistent: keys(&self.persistent),
            persistent_recursive: keys(&self.persistent_recursive),
        }
    }

    /// The requests to send after reconnecting with `last_zxid`, with `chroot` prepended
    /// to every path (see [`WatchLists::into_requests`]). None with auto watch reset off or
    /// no watches.
    pub fn set_watches(&self, last_zxid: i64, chroot: Option<&str>) -> Vec<SetWatchesRequest> {
        if !self.auto_watch_reset {
            return Vec::new();
        }
        self.watch_lists().into_requests(last_zxid, chroot)
    }

    /// The number of (kind, path, watcher) registrations.
    pub fn len(&self) -> usize {
        ClientWatchKind::ALL
            .iter()
            .map(|k| self.map(*k).values().map(Vec::len).sum::<usize>())
            .sum()
    }

    /// Whether no watch is registered (the default watcher aside).
    pub fn is_empty(&self) -> bool {
        ClientWatchKind::ALL.iter().all(|k| self.map(*k).is_empty())
    }
}

impl ClientWatchKind {
    /// Every kind, in the order ZooKeeper walks them.
    pub const ALL: [ClientWatchKind; 5] = [
        ClientWatchKind::Data,
        ClientWatchKind::Exist,
        ClientWatchKind::Child,
        ClientWatchKind::Persistent,
        ClientWatchKind::PersistentRecursive,
    ];

    /// Whether a watch of this kind is consumed when it fires.
    pub const fn is_one_shot(self) -> bool {
        matches!(
            self,
            ClientWatchKind::Data | ClientWatchKind::Exist | ClientWatchKind::Child
        )
    }
}

/// Watchers reached by one event, in first-reached order, without repeats.
struct Reached<W> {
    list: Vec<W>,
    seen: HashSet<W>,
}

impl<W> Default for Reached<W> {
    fn default() -> Self {
        Reached {
            list: Vec::new(),
            seen: HashSet::new(),
        }
    }
}

impl<W: Clone + Eq + Hash> Reached<W> {
    fn extend<'a>(&mut self, watchers: impl IntoIterator<Item = &'a W>)
    where
        W: 'a,
    {
        for w in watchers {
            if self.seen.insert(w.clone()) {
                self.list.push(w.clone());
            }
        }
    }
}

/// The server's path for `client_path` under `chroot` (`ZooKeeper.prependChroot`): the
/// chroot itself for `/`, else the two joined.
pub fn server_path(chroot: &str, client_path: &str) -> String {
    if client_path.len() == 1 {
        chroot.to_owned()
    } else {
        format!("{chroot}{client_path}")
    }
}

/// The client's path for an event's `server_path` under `chroot`, as `ClientCnxn` converts
/// notifications: `/` for the chroot itself, the rest after the chroot's length for longer
/// paths, and the path unchanged when it is shorter (ZooKeeper logs a warning then).
pub fn client_path<'a>(chroot: &str, server_path: &'a str) -> &'a str {
    if server_path == chroot {
        "/"
    } else {
        server_path.get(chroot.len()..).unwrap_or(server_path)
    }
}
