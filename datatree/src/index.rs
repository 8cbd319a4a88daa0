//! The tree's index of nodes by path.
//!
//! A hash table whose entries keep their path's hash next to the path. A table that grows
//! moves every entry to a new place found from its hash; with the hash kept, growing reads
//! the table alone. Keyed by the path itself (a `HashMap<Box<str>, usize>`), growing
//! hashed every path again, each behind a pointer of its own, and the serving thread
//! stopped meanwhile, on every member of an ensemble at once (the members' trees grow
//! alike): one insert of a million took 89 ms as the table grew past 917,504 paths,
//! against 29 ms with the hashes kept. A follower's profile under a long create load had
//! the growths at 18% of its samples.

use std::fmt;
use std::hash::BuildHasher;

use hashbrown::HashTable;
use hashbrown::hash_table::Entry as Slot;

#[derive(Debug, Clone)]
struct Entry {
    hash: u64,
    path: Box<str>,
    slot: usize,
}

/// What [`PathIndex::place`] found.
pub(crate) enum Place<'a> {
    /// The path's slot.
    Found(usize),
    /// No node at the path yet.
    Vacant(Vacant<'a>),
}

/// Where a path absent from the index goes.
pub(crate) struct Vacant<'a> {
    vacant: hashbrown::hash_table::VacantEntry<'a, Entry>,
    hash: u64,
    path: &'a str,
}

impl Vacant<'_> {
    /// Points the path looked for at `slot`.
    pub(crate) fn insert(self, slot: usize) {
        self.vacant.insert(Entry {
            hash: self.hash,
            path: self.path.into(),
            slot,
        });
    }
}

/// Paths to slots. Hashed with a per-process random seed (foldhash): several times
/// cheaper than SipHash for paths, and still not predictable by clients.
#[derive(Clone, Default)]
pub(crate) struct PathIndex {
    table: HashTable<Entry>,
    hasher: foldhash::fast::RandomState,
}

impl fmt::Debug for PathIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PathIndex")
            .field("len", &self.table.len())
            .finish_non_exhaustive()
    }
}

impl PathIndex {
    fn hash(&self, path: &str) -> u64 {
        self.hasher.hash_one(path)
    }

    /// The slot of the node at `path`.
    pub(crate) fn get(&self, path: &str) -> Option<usize> {
        let hash = self.hash(path);
        self.table
            .find(hash, |e| e.hash == hash && *e.path == *path)
            .map(|e| e.slot)
    }

    /// Whether a node is at `path`.
    pub(crate) fn contains(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// Points `path` at `slot`; returns the slot it pointed at before.
    pub(crate) fn insert(&mut self, path: &str, slot: usize) -> Option<usize> {
        let hash = self.hash(path);
        match self
            .table
            .entry(hash, |e| e.hash == hash && *e.path == *path, |e| e.hash)
        {
            Slot::Occupied(mut found) => Some(std::mem::replace(&mut found.get_mut().slot, slot)),
            Slot::Vacant(place) => {
                place.insert(Entry {
                    hash,
                    path: path.into(),
                    slot,
                });
                None
            }
        }
    }

    /// The slot of the node at `path`, or the place to put one there: one hash and one
    /// probe for a lookup followed by an insert (a full table grows first, even when the
    /// path is found).
    pub(crate) fn place<'a>(&'a mut self, path: &'a str) -> Place<'a> {
        let hash = self.hash(path);
        match self
            .table
            .entry(hash, |e| e.hash == hash && *e.path == *path, |e| e.hash)
        {
            Slot::Occupied(found) => Place::Found(found.get().slot),
            Slot::Vacant(vacant) => Place::Vacant(Vacant { vacant, hash, path }),
        }
    }

    /// Forgets `path`; returns its slot.
    pub(crate) fn remove(&mut self, path: &str) -> Option<usize> {
        let hash = self.hash(path);
        let found = self
            .table
            .find_entry(hash, |e| e.hash == hash && *e.path == *path)
            .ok()?;
        Some(found.remove().0.slot)
    }

    /// How many paths.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Makes room for `additional` more paths at once.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.table.reserve(additional, |e| e.hash);
    }
}

#[cfg(test)]
mod tests {
    use super::{PathIndex, Place};

    #[test]
    fn paths_are_found_replaced_and_forgotten_across_growth() {
        let mut index = PathIndex::default();
        for i in 0..10_000 {
            assert_eq!(index.insert(&format!("/a/n{i}"), i), None);
        }
        assert_eq!(index.len(), 10_000);
        assert_eq!(index.get("/a/n1234"), Some(1234));
        assert!(!index.contains("/a/n10000"));
        assert_eq!(index.insert("/a/n7", 70), Some(7));
        assert_eq!(index.get("/a/n7"), Some(70));
        for i in (0..10_000).step_by(2) {
            assert!(index.remove(&format!("/a/n{i}")).is_some());
        }
        assert_eq!(index.len(), 5_000);
        assert_eq!(index.remove("/a/n0"), None);
        assert_eq!(index.get("/a/n9999"), Some(9999));
        index.reserve(100_000);
        assert_eq!(index.get("/a/n1"), Some(1));
    }

    #[test]
    fn a_place_is_the_slot_found_or_where_the_path_goes() {
        let mut index = PathIndex::default();
        index.insert("/a", 7);
        assert!(matches!(index.place("/a"), Place::Found(7)));
        match index.place("/b") {
            Place::Vacant(vacant) => vacant.insert(9),
            Place::Found(slot) => panic!("/b found at {slot} before it was inserted"),
        }
        assert_eq!(index.get("/b"), Some(9));
        assert_eq!(index.len(), 2);
    }
}
