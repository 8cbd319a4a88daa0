//! The iteration order of Java's `HashMap`/`HashSet`, which ZooKeeper's tools print in:
//! a node's children (a `HashSet<String>` created with capacity 8 when its first child is
//! added) and a snapshot's session table (a `HashMap<Long, Integer>`).
//!
//! Java iterates by bin index, and within a bin in insertion order (a resize splits bins
//! keeping order). The table doubles when its size passes 0.75 of its length, or when a
//! bin of a table shorter than 64 already holds 8 keys (`treeifyBin`). Bins Java turns
//! into trees (tables of 64 or more) keep list order here.

/// `String.hashCode`, over UTF-16 units.
pub(crate) fn string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0_i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// `Long.hashCode`.
pub(crate) fn long_hash(v: i64) -> i32 {
    (v ^ ((v as u64) >> 32) as i64) as i32
}

/// `HashMap.hash`: the high half folded into the low one.
fn spread(hash: i32) -> u32 {
    let h = hash as u32;
    h ^ (h >> 16)
}

const TREEIFY_THRESHOLD: u32 = 8;
const MIN_TREEIFY_CAPACITY: u32 = 64;

/// The order Java iterates keys in, given their hashes in insertion order (no key twice)
/// and the capacity the map was created with (`new HashMap<>(initial)`; 16 for the
/// default constructor). Returns indexes into `hashes`.
pub(crate) fn iteration_order(hashes: &[i32], initial: u32) -> Vec<usize> {
    if hashes.is_empty() {
        return Vec::new();
    }
    let mut capacity = initial.max(1).next_power_of_two();
    let mut bins = vec![0_u32; capacity as usize];
    let recount = |capacity: u32, upto: usize, bins: &mut Vec<u32>| {
        *bins = vec![0; capacity as usize];
        for &h in hashes.iter().take(upto) {
            if let Some(n) = bins.get_mut((spread(h) & (capacity - 1)) as usize) {
                *n += 1;
            }
        }
    };
    for (i, &hash) in hashes.iter().enumerate() {
        let index = (spread(hash) & (capacity - 1)) as usize;
        let in_bin = bins.get(index).copied().unwrap_or(0);
        if let Some(n) = bins.get_mut(index) {
            *n += 1;
        }
        let mut grow = capacity < MIN_TREEIFY_CAPACITY && in_bin >= TREEIFY_THRESHOLD;
        // The size after this insertion against 0.75 of the table (Java's threshold).
        if (i as u64 + 1) > u64::from(capacity) * 3 / 4 {
            grow = true;
        }
        if grow {
            // treeifyBin resizes first; a size past the new threshold would resize again,
            // which a doubled table never needs on the same insertion.
            capacity *= 2;
            recount(capacity, i + 1, &mut bins);
        }
    }
    let mut order: Vec<usize> = (0..hashes.len()).collect();
    order.sort_by_key(|&i| (hashes.get(i).map_or(0, |&h| spread(h) & (capacity - 1)), i));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_java_s() {
        // "hello".hashCode() and Long.valueOf(0x1000026a3450001L).hashCode() in Java.
        assert_eq!(string_hash("hello"), 99_162_322);
        assert_eq!(
            long_hash(0x0100_0026_a345_0001),
            (0xa345_0001_u32 ^ 0x0100_0026) as i32
        );
    }

    #[test]
    fn order_is_by_bin_then_insertion() {
        // "a" (97) and "b" (98) fall in bins 1 and 2 of 8.
        let keys = ["b", "a"];
        let hashes: Vec<i32> = keys.iter().map(|k| string_hash(k)).collect();
        assert_eq!(iteration_order(&hashes, 8), [1, 0]);
        // Keys sharing a bin keep insertion order.
        assert_eq!(iteration_order(&[8, 0, 16], 8), [0, 1, 2]);
        // Seven keys overflow a table of 8 (threshold 6): the table has 16 bins.
        assert_eq!(
            iteration_order(&[9, 1, 2, 3, 4, 5, 6], 8),
            [1, 2, 3, 4, 5, 6, 0]
        );
    }
}
