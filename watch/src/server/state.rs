//! The state of one (path, watcher) pair in four bits: its mode in the data table and its
//! mode in the child table, two bits each.

use std::hash::{BuildHasherDefault, Hasher};

use crate::{WatchTable, WatcherMode};

/// Two bits per table: 0 no watch, 1 standard, 2 persistent, 3 persistent recursive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct State(u8);

impl State {
    pub(crate) const EMPTY: State = State(0);

    /// The state stored in the low four bits of `bits`.
    pub(crate) const fn from_bits(bits: u32) -> State {
        State((bits & 0xf) as u8)
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
            WatchTable::Child => 2,
        }
    }

    /// The watch this pair holds in `table`, if any.
    pub(crate) const fn mode(self, table: WatchTable) -> Option<WatcherMode> {
        match (self.0 >> Self::shift(table)) & 0b11 {
            1 => Some(WatcherMode::Standard),
            2 => Some(WatcherMode::Persistent),
            3 => Some(WatcherMode::PersistentRecursive),
            _ => None,
        }
    }

    /// This state with the watch in `table` replaced by `mode` (`None` removes it).
    pub(crate) const fn with(self, table: WatchTable, mode: Option<WatcherMode>) -> State {
        let code = match mode {
            None => 0,
            Some(WatcherMode::Standard) => 1,
            Some(WatcherMode::Persistent) => 2,
            Some(WatcherMode::PersistentRecursive) => 3,
        };
        let shift = Self::shift(table);
        State((self.0 & !(0b11 << shift)) | (code << shift))
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

    #[test]
    fn tables_are_independent() {
        let s = State::EMPTY
            .with(WatchTable::Data, Some(WatcherMode::Standard))
            .with(WatchTable::Child, Some(WatcherMode::PersistentRecursive));
        assert_eq!(s.mode(WatchTable::Data), Some(WatcherMode::Standard));
        assert_eq!(
            s.mode(WatchTable::Child),
            Some(WatcherMode::PersistentRecursive)
        );
        let s = s.with(WatchTable::Data, None);
        assert_eq!(s.mode(WatchTable::Data), None);
        assert_eq!(
            s.mode(WatchTable::Child),
            Some(WatcherMode::PersistentRecursive)
        );
        assert_eq!(s.with(WatchTable::Child, None), State::EMPTY);
        assert_eq!(State::from_bits(u32::from(s.bits()) | 0x30), s);
    }
}
