//! The two interning tables behind the manager: paths to dense path ids (each path string
//! stored once), and watcher ids to dense watcher slots (each with the set of path ids it
//! watches).

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::entries::{Entries, SLOT_LIMIT};
use super::path_set::PathSet;
use super::state::{BuildIdHasher, State};
use crate::{WatchError, WatchTable, WatcherId};

/// One watched path: its name and its watchers.
#[derive(Debug, Clone)]
pub(crate) struct PathSlot {
    pub(crate) path: Box<str>,
    pub(crate) entries: Entries,
}

/// Paths by name and by dense id. The hash table stores only ids and hashes the names kept
/// in `slots`, so each name is stored once. Names come from clients, so they are hashed
/// with the standard library's keyed SipHash.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathTable {
    index: HashTable<u32>,
    hasher: RandomState,
    slots: Vec<Option<PathSlot>>,
    free: Vec<u32>,
}

impl PathTable {
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn find(&self, path: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(path);
        self.index
            .find(hash, |id| self.name(*id) == Some(path))
            .copied()
    }

    pub(crate) fn name(&self, id: u32) -> Option<&str> {
        self.get(id).map(|slot| &*slot.path)
    }

    pub(crate) fn get(&self, id: u32) -> Option<&PathSlot> {
        self.slots.get(id as usize)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut PathSlot> {
        self.slots.get_mut(id as usize)?.as_mut()
    }

    /// The state of `slot` on path `id`.
    pub(crate) fn state(&self, id: u32, slot: u32) -> State {
        self.get(id).map_or(State::EMPTY, |p| p.entries.get(slot))
    }

    /// Adds `path` with one first pair, returning its new id.
    pub(crate) fn insert(
        &mut self,
        path: &str,
        slot: u32,
        state: State,
    ) -> Result<u32, WatchError> {
        let id = match self.free.pop() {
            Some(id) => id,
            None => u32::try_from(self.slots.len()).map_err(|_| WatchError::TooManyPaths)?,
        };
        let entry = PathSlot {
            path: path.into(),
            entries: Entries::single(slot, state),
        };
        match self.slots.get_mut(id as usize) {
            Some(free) => *free = Some(entry),
            None => self.slots.push(Some(entry)),
        }
        let Self {
            index,
            hasher,
            slots,
            ..
        } = self;
        let hash = hasher.hash_one(path);
        index.insert_unique(hash, id, |id| {
            let name = slots
                .get(*id as usize)
                .and_then(|s| s.as_ref())
                .map(|s| &*s.path);
            hasher.hash_one(name.unwrap_or_default())
        });
        Ok(id)
    }

    /// Forgets path `id` (whose last watcher has gone) and frees the id for reuse.
    pub(crate) fn release(&mut self, id: u32) {
        let Some(slot) = self.slots.get_mut(id as usize).and_then(Option::take) else {
            return;
        };
        let hash = self.hasher.hash_one(&*slot.path);
        if let Ok(entry) = self.index.find_entry(hash, |other| *other == id) {
            entry.remove();
        }
        self.free.push(id);
    }

    /// Every live path, by id.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &PathSlot)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(id, slot)| Some((u32::try_from(id).ok()?, slot.as_ref()?)))
    }
}

/// One watcher: its id, the ids of the paths where it holds a watch in either table, and
/// which tables it is listed in (ZooKeeper counts a connection in a table's report from its
/// first watch there until it closes, even with no watch left, unless `removeWatches` took
/// its last one there).
#[derive(Debug, Clone)]
pub(crate) struct WatcherSlot {
    pub(crate) id: WatcherId,
    pub(crate) paths: PathSet,
    /// Per table (data, child): the number of paths where it holds a watch there, and in
    /// the top bit whether the table's reports list it.
    tables: [u32; 2],
}

/// The "listed" bit of a [`WatcherSlot`] table word; the bits below count paths.
const SEEN: u32 = 1 << 31;

impl WatcherSlot {
    fn word(&self, table: WatchTable) -> u32 {
        self.tables.get(table_index(table)).copied().unwrap_or(0)
    }

    fn word_mut(&mut self, table: WatchTable) -> Option<&mut u32> {
        self.tables.get_mut(table_index(table))
    }

    pub(crate) fn has_seen(&self, table: WatchTable) -> bool {
        self.word(table) & SEEN != 0
    }

    pub(crate) fn mark_seen(&mut self, table: WatchTable) {
        if let Some(word) = self.word_mut(table) {
            *word |= SEEN;
        }
    }

    pub(crate) fn forget_seen(&mut self, table: WatchTable) {
        if let Some(word) = self.word_mut(table) {
            *word &= !SEEN;
        }
    }

    /// Keeps the per-table counts in step with one pair's state going from `old` to `new`.
    pub(crate) fn recount(&mut self, old: State, new: State) {
        for table in WatchTable::ALL {
            let (was, is) = (!old.modes(table).is_empty(), !new.modes(table).is_empty());
            if let Some(word) = self.word_mut(table) {
                let count = ((*word & !SEEN) + u32::from(is)).saturating_sub(u32::from(was));
                // 2^31 paths for one watcher would reach the flag bit.
                debug_assert!(count < SEEN, "a watcher's watch count ran into its flag");
                *word = (*word & SEEN) | (count & !SEEN);
            }
        }
    }

    /// Whether it holds a watch in `table` on any path.
    pub(crate) fn holds_any(&self, table: WatchTable) -> bool {
        self.word(table) & !SEEN != 0
    }
}

fn table_index(table: WatchTable) -> usize {
    match table {
        WatchTable::Data => 0,
        WatchTable::Child => 1,
    }
}

/// Watchers by id and by dense slot; freed slots are reused so slots stay below the largest
/// number of watchers ever present at once.
#[derive(Debug, Clone, Default)]
pub(crate) struct WatcherTable {
    slot_of: HashMap<WatcherId, u32, BuildIdHasher>,
    slots: Vec<Option<WatcherSlot>>,
    free: Vec<u32>,
}

impl WatcherTable {
    pub(crate) fn len(&self) -> usize {
        self.slot_of.len()
    }

    /// One more than the largest slot ever used.
    pub(crate) fn slot_bound(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn slot(&self, watcher: WatcherId) -> Option<u32> {
        self.slot_of.get(&watcher).copied()
    }

    pub(crate) fn get(&self, slot: u32) -> Option<&WatcherSlot> {
        self.slots.get(slot as usize)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, slot: u32) -> Option<&mut WatcherSlot> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    /// The slot of `watcher`, allocating one on first use.
    pub(crate) fn slot_or_insert(&mut self, watcher: WatcherId) -> Result<u32, WatchError> {
        if let Some(slot) = self.slot(watcher) {
            return Ok(slot);
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => u32::try_from(self.slots.len())
                .ok()
                .filter(|slot| *slot < SLOT_LIMIT)
                .ok_or(WatchError::TooManyWatchers)?,
        };
        let entry = WatcherSlot {
            id: watcher,
            paths: PathSet::default(),
            tables: [0; 2],
        };
        match self.slots.get_mut(slot as usize) {
            Some(free) => *free = Some(entry),
            None => self.slots.push(Some(entry)),
        }
        self.slot_of.insert(watcher, slot);
        Ok(slot)
    }

    /// Forgets `watcher`, returning what its slot held.
    pub(crate) fn remove(&mut self, watcher: WatcherId) -> Option<(u32, WatcherSlot)> {
        let slot = self.slot_of.remove(&watcher)?;
        let entry = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        Some((slot, entry))
    }

    /// Every live watcher, by slot.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &WatcherSlot)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(slot, w)| Some((u32::try_from(slot).ok()?, w.as_ref()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_path_and_per_watcher_records_stay_small() {
        // A watched path costs this plus its name and 5 bytes of hash table; see the
        // memory benchmark for whole figures.
        assert!(std::mem::size_of::<Option<PathSlot>>() <= 40);
        assert!(std::mem::size_of::<Entries>() <= 24);
        assert!(std::mem::size_of::<Option<WatcherSlot>>() <= 48);
    }

    #[test]
    fn released_path_ids_are_reused_and_names_found_again() {
        let mut paths = PathTable::default();
        let a = paths.insert("/a", 0, State::from_bits(1)).expect("room");
        let b = paths.insert("/b", 0, State::from_bits(1)).expect("room");
        assert_eq!((paths.find("/a"), paths.find("/b")), (Some(a), Some(b)));
        paths.release(a);
        assert_eq!(paths.find("/a"), None);
        let c = paths.insert("/c", 1, State::from_bits(4)).expect("room");
        assert_eq!(c, a);
        assert_eq!(paths.name(c), Some("/c"));
        assert_eq!(paths.state(c, 1), State::from_bits(4));
        assert_eq!(paths.len(), 2);
    }
}
