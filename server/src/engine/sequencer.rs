//! Zxid assignment: only a member that prepares txns (a standalone server, or an
//! ensemble's leader) has a sequencer.

use zk_jute::Zxid;

/// The counter of an epoch is spent: ZooKeeper's `ZxidRolloverException`. The counter's
/// last value (0xffffffff) is never handed out, as ZooKeeper's leader never proposes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the zxid counter of epoch {epoch} is spent")]
pub(crate) struct Rollover {
    /// The spent epoch.
    pub(crate) epoch: u32,
}

/// Hands out zxids in order, within an epoch.
#[derive(Debug, Clone)]
pub(crate) struct Sequencer {
    last: Zxid,
}

impl Sequencer {
    /// A sequencer whose last zxid handed out (or restored) is `last`.
    pub(crate) fn new(last: Zxid) -> Self {
        Self { last }
    }

    /// The last zxid handed out.
    pub(crate) fn last(&self) -> Zxid {
        self.last
    }

    /// The next zxid, or [`Rollover`] when the epoch's counter is spent: the caller must
    /// start a new epoch (a standalone server does so at once; a leader steps down).
    pub(crate) fn next(&mut self) -> Result<Zxid, Rollover> {
        let counter = self.last.counter().wrapping_add(1);
        if counter == u32::MAX {
            return Err(Rollover {
                epoch: self.last.epoch(),
            });
        }
        self.last = Zxid::new(self.last.epoch(), counter);
        Ok(self.last)
    }

    /// Starts epoch `epoch` (greater than the current one): its first zxid handed out is
    /// `(epoch, 1)`.
    pub(crate) fn start_epoch(&mut self, epoch: u32) {
        debug_assert!(epoch > self.last.epoch());
        self.last = Zxid::new(epoch, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxids_follow_each_other_and_roll_over_to_a_new_epoch() {
        let mut s = Sequencer::new(Zxid::new(2, 7));
        assert_eq!(s.next(), Ok(Zxid::new(2, 8)));
        let mut s = Sequencer::new(Zxid::new(2, 0xffff_fffd));
        assert_eq!(s.next(), Ok(Zxid::new(2, 0xffff_fffe)));
        assert_eq!(s.next(), Err(Rollover { epoch: 2 }));
        assert_eq!(
            s.last(),
            Zxid::new(2, 0xffff_fffe),
            "a refused zxid is not spent"
        );
        s.start_epoch(3);
        assert_eq!(s.next(), Ok(Zxid::new(3, 1)));
    }
}
