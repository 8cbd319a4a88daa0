//! The state of one (path, watcher) pair in six bits: the set of modes it holds in the
//! data table and the set it holds in the child table, three bits each.

use std::hash::{BuildHasherDefault, Hasher};

use crate::{WatchModes, WatchTable};

/// Three bits per table, one per mode (see [`WatchModes`]): data in bits 0-2, child in 3-5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct State(u8);

impl State {
    pub(crate) const EMPTY: State = State(0);

    /// The state stored in the low six bits of `bits`.
    pub(crate) const fn from_bits(bits: u32) -> State {
        State((bits & 0x3f) as u8)
    }

    pub(crate) const fn bits(self) -> u8 {
        self.0
    }

    pub(crate) const fn is_empty(self) -> bool {
        self.0 == 0
    }

    const fn shift(table: WatchTable) -> u8 {
        match table {
            WatchTable::Data => 0,
            WatchTable::Child => 3,
        }
    }

    /// The modes this pair holds in `table`.
    pub(crate) const fn modes(self, table: WatchTable) -> WatchModes {
        WatchModes::from_bits(self.0 >> Self::shift(table))
    }

    /// This state with the modes in `table` replaced by `modes`.
    pub(crate) const fn with(self, table: WatchTable, modes: WatchModes) -> State {
        let shift = Self::shift(table);
        State((self.0 & !(0b111 << shift)) | (modes.bits() << shift))
    }
}

/// A multiplicative hash for the manager's own small integers (watcher slots and ids).
/// They are never chosen by clients, so a fixed, fast hash is safe, and it keeps iteration
/// order a function of the operations alone.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IdHasher(u64);

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(GOLDEN);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(GOLDEN);
    }
}

pub(crate) type BuildIdHasher = BuildHasherDefault<IdHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WatcherMode;

    #[test]
    fn tables_are_independent() {
        let recursive = WatchModes::of(WatcherMode::PersistentRecursive);
        let both = WatchModes::of(WatcherMode::Standard).with(WatcherMode::Persistent);
        let s = State::EMPTY
            .with(WatchTable::Data, both)
            .with(WatchTable::Child, recursive);
        assert_eq!(s.modes(WatchTable::Data), both);
        assert_eq!(s.modes(WatchTable::Child), recursive);
        let s = s.with(WatchTable::Data, WatchModes::NONE);
        assert!(s.modes(WatchTable::Data).is_empty());
        assert_eq!(s.modes(WatchTable::Child), recursive);
        assert_eq!(s.with(WatchTable::Child, WatchModes::NONE), State::EMPTY);
        assert_eq!(State::from_bits(u32::from(s.bits()) | 0xc0), s);
    }

    #[test]
    fn modes_add_and_remove_one_at_a_time() {
        let all = WatchModes::NONE
            .with(WatcherMode::Standard)
            .with(WatcherMode::Persistent)
            .with(WatcherMode::PersistentRecursive);
        assert_eq!(all.iter().count(), 3);
        let two = all.without(WatcherMode::Standard);
        assert!(!two.contains(WatcherMode::Standard));
        assert!(
            two.contains(WatcherMode::Persistent) && two.contains(WatcherMode::PersistentRecursive)
        );
        assert!(
            two.without(WatcherMode::Persistent)
                .without(WatcherMode::PersistentRecursive)
                .is_empty()
        );
        let s = State::EMPTY.with(WatchTable::Child, all);
        assert_eq!(s.modes(WatchTable::Child), all);
        assert!(s.modes(WatchTable::Data).is_empty());
    }
}
