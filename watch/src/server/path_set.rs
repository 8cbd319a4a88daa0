//! The set of path ids one watcher watches: a sorted vector while small (most connections
//! watch a handful of znodes, and an empty or tiny roaring bitmap costs a few hundred
//! bytes), a roaring bitmap beyond [`FEW_MAX`] (about 2 bytes an id, down to a bit when
//! dense).

use roaring::RoaringBitmap;

/// Ids kept in a sorted vector before switching to a roaring bitmap.
const FEW_MAX: usize = 64;

#[derive(Debug, Clone)]
pub(crate) enum PathSet {
    Few(Vec<u32>),
    Many(RoaringBitmap),
}

impl Default for PathSet {
    fn default() -> Self {
        PathSet::Few(Vec::new())
    }
}

impl PathSet {
    pub(crate) fn insert(&mut self, id: u32) {
        match self {
            PathSet::Few(ids) => match ids.binary_search(&id) {
                Ok(_) => {}
                Err(_) if ids.len() >= FEW_MAX => {
                    let mut bitmap: RoaringBitmap = ids.iter().copied().collect();
                    bitmap.insert(id);
                    *self = PathSet::Many(bitmap);
                }
                Err(i) => ids.insert(i, id),
            },
            PathSet::Many(bitmap) => {
                bitmap.insert(id);
            }
        }
    }

    pub(crate) fn remove(&mut self, id: u32) {
        match self {
            PathSet::Few(ids) => {
                if let Ok(i) = ids.binary_search(&id) {
                    ids.remove(i);
                    if ids.capacity() > 2 * ids.len().max(4) {
                        ids.shrink_to(ids.len());
                    }
                }
            }
            PathSet::Many(bitmap) => {
                bitmap.remove(id);
                if bitmap.len() <= (FEW_MAX / 4) as u64 {
                    *self = PathSet::Few(bitmap.iter().collect());
                }
            }
        }
    }

    /// The ids, ascending.
    pub(crate) fn to_vec(&self) -> Vec<u32> {
        match self {
            PathSet::Few(ids) => ids.clone(),
            PathSet::Many(bitmap) => bitmap.iter().collect(),
        }
    }

    #[cfg(test)]
    fn len(&self) -> u64 {
        match self {
            PathSet::Few(ids) => ids.len() as u64,
            PathSet::Many(bitmap) => bitmap.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_form_both_ways_and_keeps_order() {
        let mut set = PathSet::default();
        for id in (0..200).rev() {
            set.insert(id * 3);
        }
        set.insert(3);
        assert!(matches!(set, PathSet::Many(_)));
        assert_eq!(set.len(), 200);
        for id in 10..200 {
            set.remove(id * 3);
        }
        assert!(matches!(set, PathSet::Few(_)));
        assert_eq!(set.to_vec(), (0..10).map(|i| i * 3).collect::<Vec<_>>());
        set.remove(7);
        assert_eq!(set.len(), 10);
    }
}
