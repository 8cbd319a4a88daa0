//! What a member's log holds, in brief: the zxid its snapshot (or purge) starts from, and
//! for each epoch the first and last zxid of its entries. Zab assigns counters one by one
//! within an epoch and a member logs them in order, so these ranges have no holes; that is
//! what lets a leader decide DIFF, TRUNC or SNAP for a learner without reading its log.

use std::collections::BTreeMap;

use zk_jute::Zxid;

use crate::error::HistoryError;

/// The shape of a log: a base (everything at or below it is only in a snapshot) and,
/// per epoch, the contiguous range of logged zxids above the base.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    base: Zxid,
    epochs: BTreeMap<u32, (Zxid, Zxid)>,
}

impl History {
    /// A history whose state is a snapshot at `base` and whose log is empty.
    pub fn new(base: Zxid) -> Self {
        History {
            base,
            epochs: BTreeMap::new(),
        }
    }

    /// A history of a snapshot at `base` followed by the log entries `zxids`, in order.
    /// Entries at or below `base` (a log that overlaps its snapshot, as ZooKeeper's do)
    /// are skipped.
    pub fn from_zxids(
        base: Zxid,
        zxids: impl IntoIterator<Item = Zxid>,
    ) -> Result<Self, HistoryError> {
        let mut history = History::new(base);
        for zxid in zxids.into_iter().filter(|z| *z > base) {
            history.push(zxid)?;
        }
        Ok(history)
    }

    /// The zxid of the snapshot the log starts from.
    pub fn base(&self) -> Zxid {
        self.base
    }

    /// The last zxid: the last entry's, or the base's when the log is empty.
    pub fn last(&self) -> Zxid {
        self.epochs
            .values()
            .next_back()
            .map_or(self.base, |(_, last)| *last)
    }

    /// Whether `zxid` is a point of this history: the base or a logged entry.
    pub fn contains(&self, zxid: Zxid) -> bool {
        zxid == self.base
            || self
                .epochs
                .get(&zxid.epoch())
                .is_some_and(|(first, last)| *first <= zxid && zxid <= *last)
    }

    /// The greatest point of this history at or below `zxid`, if any (none when `zxid`
    /// is below the base).
    pub fn floor(&self, zxid: Zxid) -> Option<Zxid> {
        if zxid < self.base {
            return None;
        }
        let below = self
            .epochs
            .range(..=zxid.epoch())
            .rev()
            .find(|(_, (first, _))| *first <= zxid)
            .map(|(_, (_, last))| (*last).min(zxid));
        Some(below.unwrap_or(self.base).max(self.base))
    }

    /// The entry after `zxid` in this history, if any.
    pub fn next_after(&self, zxid: Zxid) -> Option<Zxid> {
        if let Some((first, last)) = self.epochs.get(&zxid.epoch())
            && *first <= zxid
            && zxid < *last
        {
            return Some(Zxid(zxid.0.saturating_add(1)));
        }
        self.epochs
            .values()
            .find(|(first, _)| *first > zxid)
            .map(|(first, _)| *first)
    }

    /// How many entries lie in `(after, through]`.
    pub fn count_between(&self, after: Zxid, through: Zxid) -> u64 {
        self.epochs
            .values()
            .map(|(first, last)| {
                let lo = (*first).max(Zxid(after.0.saturating_add(1)));
                let hi = (*last).min(through);
                if hi < lo { 0 } else { (hi.0 - lo.0 + 1) as u64 }
            })
            .sum()
    }

    /// Appends `zxid`: the next counter of the last zxid's epoch, or the first counter of
    /// a later epoch. Anything else would leave a hole.
    pub fn push(&mut self, zxid: Zxid) -> Result<(), HistoryError> {
        let last = self.last();
        if zxid.epoch() == last.epoch() && Some(zxid.0) == last.0.checked_add(1) {
            match self.epochs.get_mut(&zxid.epoch()) {
                Some((_, end)) => *end = zxid,
                None => {
                    self.epochs.insert(zxid.epoch(), (zxid, zxid));
                }
            }
            return Ok(());
        }
        if zxid.epoch() > last.epoch() && zxid.counter() == 1 {
            self.epochs.insert(zxid.epoch(), (zxid, zxid));
            return Ok(());
        }
        Err(HistoryError::OutOfOrder { last, zxid })
    }

    /// Drops every entry after `zxid`. A `zxid` below the base is refused: what the
    /// snapshot holds cannot be taken back.
    pub fn truncate(&mut self, zxid: Zxid) -> Result<(), HistoryError> {
        if zxid < self.base {
            return Err(HistoryError::BelowBase {
                base: self.base,
                zxid,
            });
        }
        self.epochs.retain(|_, (first, _)| *first <= zxid);
        if let Some((_, last)) = self.epochs.values_mut().next_back()
            && *last > zxid
        {
            *last = zxid;
        }
        Ok(())
    }

    /// Forgets entries at or below `zxid`, which is now the base (the log was purged
    /// up to a snapshot at `zxid`). `zxid` must be a point of this history.
    pub fn rebase(&mut self, zxid: Zxid) -> Result<(), HistoryError> {
        if !self.contains(zxid) {
            return Err(HistoryError::NotInHistory(zxid));
        }
        self.base = zxid;
        self.epochs.retain(|_, (_, last)| *last > zxid);
        if let Some((first, _)) = self.epochs.values_mut().next()
            && *first <= zxid
        {
            *first = Zxid(zxid.0.saturating_add(1));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(epoch: u32, counter: u32) -> Zxid {
        Zxid::new(epoch, counter)
    }

    fn history() -> History {
        // Snapshot at 1:2, entries 1:3..1:5, 3:1..3:2.
        History::from_zxids(
            z(1, 2),
            [
                z(1, 1),
                z(1, 2),
                z(1, 3),
                z(1, 4),
                z(1, 5),
                z(3, 1),
                z(3, 2),
            ],
        )
        .unwrap()
    }

    #[test]
    fn points_and_floors() {
        let h = history();
        assert_eq!(h.last(), z(3, 2));
        assert!(h.contains(z(1, 2)) && h.contains(z(1, 4)) && h.contains(z(3, 1)));
        assert!(!h.contains(z(1, 1)) && !h.contains(z(1, 6)) && !h.contains(z(2, 1)));
        assert_eq!(h.floor(z(1, 1)), None);
        assert_eq!(h.floor(z(1, 4)), Some(z(1, 4)));
        assert_eq!(h.floor(z(1, 9)), Some(z(1, 5)));
        assert_eq!(h.floor(z(2, 7)), Some(z(1, 5)));
        assert_eq!(h.floor(z(3, 0)), Some(z(1, 5)));
        assert_eq!(h.floor(z(9, 9)), Some(z(3, 2)));
        assert_eq!(h.next_after(z(1, 2)), Some(z(1, 3)));
        assert_eq!(h.next_after(z(1, 5)), Some(z(3, 1)));
        assert_eq!(h.next_after(z(2, 4)), Some(z(3, 1)));
        assert_eq!(h.next_after(z(3, 2)), None);
        assert_eq!(h.count_between(z(1, 2), z(3, 2)), 5);
        assert_eq!(h.count_between(z(1, 4), z(3, 1)), 2);
    }

    #[test]
    fn push_refuses_holes_and_going_back() {
        let mut h = history();
        assert!(h.push(z(3, 4)).is_err());
        assert!(h.push(z(2, 1)).is_err());
        assert!(h.push(z(4, 0)).is_err());
        assert!(h.push(z(4, 2)).is_err());
        h.push(z(3, 3)).unwrap();
        h.push(z(5, 1)).unwrap();
        assert_eq!(h.last(), z(5, 1));
        // After a snapshot in the middle of an epoch, the log goes on from it.
        let mut h = History::new(z(2, 7));
        assert!(h.push(z(2, 9)).is_err());
        h.push(z(2, 8)).unwrap();
        assert!(h.contains(z(2, 8)) && h.contains(z(2, 7)));
    }

    #[test]
    fn truncate_and_rebase() {
        let mut h = history();
        h.truncate(z(1, 4)).unwrap();
        assert_eq!(h.last(), z(1, 4));
        assert!(!h.contains(z(3, 1)));
        assert!(h.truncate(z(1, 1)).is_err());
        h.push(z(4, 1)).unwrap();
        h.rebase(z(1, 4)).unwrap();
        assert_eq!(h.base(), z(1, 4));
        assert_eq!(h.count_between(z(1, 4), z(4, 1)), 1);
        assert!(h.rebase(z(2, 1)).is_err());
    }
}
