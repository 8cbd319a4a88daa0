//! The watchers of one path, compactly: each (watcher slot, [`State`]) pair is packed into
//! one `u32` (slot in the high 26 bits, state in the low 6).
//!
//! Most watched paths have one watcher, so that case is inline and allocates nothing. Up to
//! [`FEW_MAX`] pairs live in a sorted vector (4 bytes a pair, binary search). A hot path
//! with more (a thousand clients waiting on one lock node) moves to a hash table of the
//! same packed pairs, hashed by slot, so that adding and removing stay O(1) however many
//! watchers pile up; it moves back when it shrinks below half of that.

use std::hash::{BuildHasher, Hasher};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use super::state::{IdHasher, State};

/// Pairs kept in a sorted vector before switching to a hash map.
pub(crate) const FEW_MAX: usize = 512;

/// Bits of state below the slot in a packed pair.
const STATE_BITS: u32 = 6;

/// The number of watcher slots a packed pair can name.
pub(crate) const SLOT_LIMIT: u32 = 1 << (32 - STATE_BITS);

const fn pack(slot: u32, state: State) -> u32 {
    (slot << STATE_BITS) | state.bits() as u32
}

const fn unpack(packed: u32) -> (u32, State) {
    (packed >> STATE_BITS, State::from_bits(packed))
}

#[derive(Debug, Clone)]
pub(crate) enum Entries {
    /// Exactly one pair.
    One(u32),
    /// Zero (only transiently, before the path is released) to [`FEW_MAX`] pairs, sorted.
    Few(Vec<u32>),
    /// More than [`FEW_MAX`] / 2 pairs, hashed by slot.
    Many(Box<HashTable<u32>>),
}

impl Entries {
    /// One pair. `slot` must be below [`SLOT_LIMIT`].
    pub(crate) fn single(slot: u32, state: State) -> Entries {
        debug_assert!(slot < SLOT_LIMIT && !state.is_empty());
        Entries::One(pack(slot, state))
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Entries::One(_) => 1,
            Entries::Few(pairs) => pairs.len(),
            Entries::Many(table) => table.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state of `slot` here; empty when it has no watch on this path.
    pub(crate) fn get(&self, slot: u32) -> State {
        match self {
            Entries::One(packed) => {
                let (s, state) = unpack(*packed);
                if s == slot { state } else { State::EMPTY }
            }
            Entries::Few(pairs) => match find(pairs, slot) {
                Ok(i) => pairs.get(i).map_or(State::EMPTY, |p| unpack(*p).1),
                Err(_) => State::EMPTY,
            },
            Entries::Many(table) => table
                .find(hash_slot(slot), |p| unpack(*p).0 == slot)
                .map_or(State::EMPTY, |p| unpack(*p).1),
        }
    }

    /// Sets the state of `slot` (below [`SLOT_LIMIT`]); an empty state removes the pair.
    pub(crate) fn set(&mut self, slot: u32, state: State) {
        debug_assert!(slot < SLOT_LIMIT);
        if state.is_empty() {
            self.remove(slot);
            return;
        }
        match self {
            Entries::One(packed) => {
                let (s, _) = unpack(*packed);
                if s == slot {
                    *packed = pack(slot, state);
                } else {
                    let mut pairs = vec![*packed, pack(slot, state)];
                    pairs.sort_unstable();
                    *self = Entries::Few(pairs);
                }
            }
            Entries::Few(pairs) => match find(pairs, slot) {
                Ok(i) => {
                    if let Some(p) = pairs.get_mut(i) {
                        *p = pack(slot, state);
                    }
                }
                Err(i) if pairs.len() < FEW_MAX => pairs.insert(i, pack(slot, state)),
                Err(_) => {
                    let mut table = HashTable::with_capacity(pairs.len() * 2);
                    for p in pairs.iter().copied().chain([pack(slot, state)]) {
                        table.insert_unique(hash_slot(unpack(p).0), p, |p| hash_slot(unpack(*p).0));
                    }
                    *self = Entries::Many(Box::new(table));
                }
            },
            Entries::Many(table) => {
                let packed = pack(slot, state);
                let same = |p: &u32| unpack(*p).0 == slot;
                match table.entry(hash_slot(slot), same, |p| hash_slot(unpack(*p).0)) {
                    Entry::Occupied(mut e) => *e.get_mut() = packed,
                    Entry::Vacant(e) => {
                        e.insert(packed);
                    }
                }
            }
        }
    }

    /// Removes the pair of `slot`, if any.
    pub(crate) fn remove(&mut self, slot: u32) {
        match self {
            Entries::One(packed) => {
                if unpack(*packed).0 == slot {
                    *self = Entries::Few(Vec::new());
                }
            }
            Entries::Few(pairs) => {
                if let Ok(i) = find(pairs, slot) {
                    pairs.remove(i);
                    if let [only] = pairs.as_slice() {
                        *self = Entries::One(*only);
                    } else if pairs.capacity() > 4 * pairs.len().max(4) {
                        pairs.shrink_to(2 * pairs.len());
                    }
                }
            }
            Entries::Many(table) => {
                if let Ok(e) = table.find_entry(hash_slot(slot), |p| unpack(*p).0 == slot) {
                    e.remove();
                }
                if table.len() <= FEW_MAX / 2 {
                    let mut pairs: Vec<u32> = table.iter().copied().collect();
                    pairs.sort_unstable();
                    *self = Entries::Few(pairs);
                } else if table.capacity() > 4 * table.len() {
                    table.shrink_to(2 * table.len(), |p| hash_slot(unpack(*p).0));
                }
            }
        }
    }

    /// Calls `f` with each (slot, state) pair: in slot order, except for the hash-map form,
    /// whose order is fixed by the sequence of operations.
    pub(crate) fn for_each(&self, mut f: impl FnMut(u32, State)) {
        match self {
            Entries::One(packed) => {
                let (slot, state) = unpack(*packed);
                f(slot, state);
            }
            Entries::Few(pairs) => {
                for packed in pairs {
                    let (slot, state) = unpack(*packed);
                    f(slot, state);
                }
            }
            Entries::Many(table) => {
                for packed in table.iter() {
                    let (slot, state) = unpack(*packed);
                    f(slot, state);
                }
            }
        }
    }

    /// Heap bytes held (for tests of the representation).
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        match self {
            Entries::One(_) => 0,
            Entries::Few(pairs) => pairs.capacity() * 4,
            Entries::Many(table) => table.capacity() * 5,
        }
    }
}

fn hash_slot(slot: u32) -> u64 {
    let mut hasher = std::hash::BuildHasherDefault::<IdHasher>::default().build_hasher();
    hasher.write_u32(slot);
    hasher.finish()
}

fn find(pairs: &[u32], slot: u32) -> Result<usize, usize> {
    pairs.binary_search_by(|p| unpack(*p).0.cmp(&slot))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{WatchModes, WatchTable, WatcherMode};

    fn st(mode: WatcherMode) -> State {
        State::EMPTY.with(WatchTable::Data, WatchModes::of(mode))
    }

    #[test]
    fn grows_from_inline_to_vector_to_map_and_back() {
        let mut e = Entries::single(7, st(WatcherMode::Standard));
        assert!(matches!(e, Entries::One(_)));
        assert_eq!(e.heap_bytes(), 0);
        e.set(3, st(WatcherMode::Persistent));
        assert!(matches!(e, Entries::Few(_)));
        for slot in 100..100 + FEW_MAX as u32 {
            e.set(slot, st(WatcherMode::Standard));
        }
        assert!(matches!(e, Entries::Many(_)));
        assert_eq!(e.len(), FEW_MAX + 2);
        assert_eq!(e.get(3), st(WatcherMode::Persistent));
        assert_eq!(e.get(7), st(WatcherMode::Standard));
        assert_eq!(e.get(99), State::EMPTY);
        for slot in 100..100 + FEW_MAX as u32 {
            e.remove(slot);
        }
        assert!(matches!(e, Entries::Few(_)));
        assert_eq!(e.len(), 2);
        let mut seen = Vec::new();
        e.for_each(|slot, state| seen.push((slot, state)));
        assert_eq!(
            seen,
            [
                (3, st(WatcherMode::Persistent)),
                (7, st(WatcherMode::Standard))
            ]
        );
        e.remove(3);
        assert!(matches!(e, Entries::One(_)));
        e.remove(7);
        assert!(e.is_empty());
    }

    #[test]
    fn setting_an_empty_state_removes_and_the_largest_slot_fits() {
        let top = SLOT_LIMIT - 1;
        let mut e = Entries::single(top, st(WatcherMode::PersistentRecursive));
        assert_eq!(e.get(top), st(WatcherMode::PersistentRecursive));
        e.set(0, st(WatcherMode::Standard));
        e.set(top, State::EMPTY);
        assert_eq!(e.len(), 1);
        assert_eq!(e.get(0), st(WatcherMode::Standard));
        assert_eq!(e.get(top), State::EMPTY);
    }
}
