//! The iteration orders of the two Java hash sets whose order ZooKeeper 3.8 lets clients
//! see, as functions of what was added and removed:
//!
//! - a connection's identities (`ServerCnxn.authInfo`, a `ConcurrentHashMap` key set): the
//!   order `fixupACL` expands an `auth` ACL entry in, and `whoAmI` lists them in;
//! - a session's ephemeral paths (`DataTree.ephemerals`, a `HashSet<String>` per session):
//!   `closeSession` clones it (`getEphemerals`), adds and removes what pending txns change,
//!   and deletes the paths (and so fires their watches) in the clone's order.
//!
//! Both follow JDK 8 to 17's `HashMap` and `ConcurrentHashMap` (JDK 19 changed how
//! `HashMap.clone` sizes its table). Bins that Java turns into trees (9 or more keys with
//! one index in a table of 64 or more) keep list order here.

use std::collections::BTreeMap;

use zk_jute::data::Id;

/// Java's `String.hashCode` (over UTF-16 units).
pub(crate) fn string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0_i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The jute-generated `Id.hashCode`.
fn id_hash(id: &Id) -> i32 {
    let h = 17_i32
        .wrapping_mul(37)
        .wrapping_add(string_hash(&id.scheme));
    h.wrapping_mul(37).wrapping_add(string_hash(&id.id))
}

/// Java's `tableSizeFor`: the power of two at least `c` (at least 1).
fn table_size_for(c: u32) -> u32 {
    c.max(1).next_power_of_two()
}

/// A `ConcurrentHashMap` bin: (spread hash, key) in list order.
type Bin<T> = Vec<(u32, T)>;

const TREEIFY_THRESHOLD: usize = 8;
const MIN_TREEIFY_CAPACITY: u32 = 64;

/// The order a `ConcurrentHashMap`-backed set built by adding `ids` in turn (duplicates
/// ignored, nothing removed) iterates them in.
pub(crate) fn concurrent_set_order(ids: &[Id]) -> Vec<&Id> {
    // The table is made at the first insertion.
    let mut table: Vec<Bin<&Id>> = Vec::new();
    let mut size_ctl: u64 = 0;
    let mut count: u64 = 0;
    for id in ids {
        let h = id_hash(id);
        let hash = ((h ^ ((h as u32) >> 16) as i32) & 0x7fff_ffff) as u32;
        if table.is_empty() {
            table = vec![Vec::new(); 16];
            size_ctl = 12;
        }
        let n = table.len() as u32;
        let bin = &mut table[(hash & (n - 1)) as usize];
        if bin.iter().any(|(_, other)| *other == id) {
            continue;
        }
        let bin_count = bin.len();
        bin.push((hash, id));
        count += 1;
        if bin_count >= TREEIFY_THRESHOLD && n < MIN_TREEIFY_CAPACITY {
            // treeifyBin on a small table: tryPresize(n << 1).
            let size = n << 1;
            let wanted = u64::from(table_size_for(size + (size >> 1) + 1));
            while wanted > size_ctl {
                size_ctl = concurrent_transfer(&mut table);
            }
        }
        // addCount: resize while the count has reached sizeCtl.
        while count >= size_ctl {
            size_ctl = concurrent_transfer(&mut table);
        }
    }
    table.into_iter().flatten().map(|(_, id)| id).collect()
}

/// `ConcurrentHashMap.transfer` by one thread: each bin splits into a low and a high bin;
/// the nodes before the bin's last run (its longest tail going one way) are prepended, so
/// they come out reversed. Returns the new `sizeCtl`.
fn concurrent_transfer<T: Copy>(table: &mut Vec<Bin<T>>) -> u64 {
    let n = table.len();
    let mut next = vec![Vec::new(); n * 2];
    for (i, bin) in table.iter().enumerate() {
        let Some(&(first_hash, _)) = bin.first() else {
            continue;
        };
        let bit = |hash: u32| hash as usize & n;
        let mut run_bit = bit(first_hash);
        let mut last_run = 0;
        for (j, &(hash, _)) in bin.iter().enumerate().skip(1) {
            if bit(hash) != run_bit {
                run_bit = bit(hash);
                last_run = j;
            }
        }
        let (mut low, mut high): (Bin<T>, Bin<T>) = if run_bit == 0 {
            (bin[last_run..].to_vec(), Vec::new())
        } else {
            (Vec::new(), bin[last_run..].to_vec())
        };
        for &node in &bin[..last_run] {
            if bit(node.0) == 0 {
                low.insert(0, node);
            } else {
                high.insert(0, node);
            }
        }
        next[i] = low;
        next[i + n] = high;
    }
    *table = next;
    ((n << 1) - (n >> 1)) as u64
}

/// A `java.util.HashSet<String>` as far as its iteration order goes: the table's length
/// and, for each key, its hash and when it was inserted. Within a bin Java keeps insertion
/// order (a resize splits bins in order), so iteration is by (bin index, insertion).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JavaHashSet {
    /// Key → (insertion number, `String.hashCode`).
    keys: BTreeMap<String, (u64, i32)>,
    /// The table's length; 0 until the first insertion.
    capacity: u32,
    inserted: u64,
}

impl JavaHashSet {
    /// An empty set (`new HashSet<>()`: a table of 16 at the first insertion).
    pub fn new() -> Self {
        Self::default()
    }

    /// `HashSet.add`: a key already there keeps its place.
    pub fn insert(&mut self, key: &str) -> bool {
        if self.keys.contains_key(key) {
            return false;
        }
        let hash = string_hash(key);
        if self.capacity == 0 {
            self.capacity = 16;
        }
        if self.capacity < MIN_TREEIFY_CAPACITY {
            // A bin that already holds 8 keys makes a small table double (treeifyBin).
            let index = self.index(hash);
            let in_bin = self.keys.values().filter(|(_, h)| self.index(*h) == index);
            if in_bin.count() >= TREEIFY_THRESHOLD {
                self.capacity *= 2;
            }
        }
        self.keys.insert(key.to_owned(), (self.inserted, hash));
        self.inserted += 1;
        if self.keys.len() > self.threshold() {
            self.capacity *= 2;
        }
        true
    }

    /// `HashSet.remove`; the table never shrinks.
    pub fn remove(&mut self, key: &str) -> bool {
        self.keys.remove(key).is_some()
    }

    /// Whether `key` is in the set.
    pub fn contains(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The keys in Java's iteration order.
    pub fn java_order(&self) -> Vec<&str> {
        let mut keys: Vec<(u32, u64, &str)> = self
            .keys
            .iter()
            .map(|(key, &(inserted, hash))| (self.index(hash), inserted, key.as_str()))
            .collect();
        keys.sort_unstable();
        keys.into_iter().map(|(_, _, key)| key).collect()
    }

    /// `HashSet.clone` (JDK 8 to 17): a table sized for the keys, filled in iteration order.
    pub fn java_clone(&self) -> Self {
        let mut clone = Self::new();
        let size = self.keys.len();
        if size == 0 {
            return clone;
        }
        let wanted = (size as f32 / 0.75_f32 + 1.0_f32) as u32;
        clone.capacity = table_size_for(wanted);
        for key in self.java_order() {
            clone.insert(key);
        }
        clone
    }

    /// `HashMap.hash` masked to the table.
    fn index(&self, hash: i32) -> u32 {
        ((hash ^ ((hash as u32) >> 16) as i32) as u32) & (self.capacity - 1)
    }

    /// `loadFactor * capacity`, as Java's float arithmetic gives it.
    fn threshold(&self) -> usize {
        (self.capacity as f32 * 0.75_f32) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(scheme: &str, id: &str) -> Id {
        Id {
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    // The expected values below are what JDK 17 printed for the same operations.

    #[test]
    fn string_hashes_are_javas() {
        assert_eq!(string_hash(""), 0);
        assert_eq!(string_hash("/app/a1"), 1_646_846_861);
        assert_eq!(string_hash("/app/a2-0000000001"), 2_144_960_928);
        assert_eq!(string_hash("polygenelubricants"), i32::MIN);
    }

    #[test]
    fn concurrent_set_order_is_javas() {
        let (ip, alice, bob) = (
            id("ip", "127.0.0.1"),
            id("digest", "alice:V55/p2T0OpjQ+low3NVAH4aLvm0="),
            id("digest", "bob:ikIaKsbtGweaHnb/jKn7OHqbunM="),
        );
        for added in [
            [ip.clone(), alice.clone(), bob.clone()],
            [ip.clone(), bob.clone(), alice.clone()],
        ] {
            assert_eq!(concurrent_set_order(&added), [&bob, &ip, &alice]);
        }
        let added = [
            ip.clone(),
            id("digest", "differ:x"),
            id("digest", "carol:y"),
            id("digest", "dave:z"),
            id("super", ""),
            id("digest", "erin:w"),
            id("digest", "carol:y"),
        ];
        let order: Vec<String> = concurrent_set_order(&added)
            .iter()
            .map(|id| format!("{}|{}", id.scheme, id.id))
            .collect();
        assert_eq!(
            order,
            [
                "digest|carol:y",
                "super|",
                "digest|erin:w",
                "ip|127.0.0.1",
                "digest|dave:z",
                "digest|differ:x"
            ]
        );
    }

    #[test]
    fn hash_set_and_clone_orders_are_javas() {
        let mut set = JavaHashSet::new();
        for i in 0..20 {
            set.insert(&format!("/e/k{i}"));
        }
        for i in (0..20).step_by(3) {
            set.remove(&format!("/e/k{i}"));
        }
        let common = [
            "/e/k19", "/e/k7", "/e/k8", "/e/k17", "/e/k2", "/e/k4", "/e/k5", "/e/k11", "/e/k10",
            "/e/k16", "/e/k13", "/e/k14",
        ];
        assert_eq!(set.java_order()[..12], common);
        assert_eq!(set.java_order()[12..], ["/e/k1"]);
        let mut clone = set.java_clone();
        clone.insert("/e/new");
        clone.remove("/e/k1");
        assert_eq!(clone.java_order()[..12], common);
        assert_eq!(clone.java_order()[12..], ["/e/new"]);
    }

    #[test]
    fn a_clone_is_sized_for_what_is_left() {
        let names = [
            "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
            "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
            "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
        ];
        let mut set = JavaHashSet::new();
        for name in names {
            set.insert(&format!("/e/{name}"));
        }
        for name in &names[5..] {
            set.remove(&format!("/e/{name}"));
        }
        // The set grew to 64 bins; its clone has 8 for the 5 keys left.
        let order = ["/e/alpha", "/e/charlie", "/e/echo", "/e/bravo", "/e/delta"];
        assert_eq!(set.java_order(), order);
        let clone = ["/e/charlie", "/e/echo", "/e/bravo", "/e/delta", "/e/alpha"];
        assert_eq!(set.java_clone().java_order(), clone);
    }
}
