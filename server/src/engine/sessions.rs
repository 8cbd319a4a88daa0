//! The session tracker: which sessions live, when each expires, and which connection
//! holds it. Sessions are opened and closed by txns (`createSession`, `closeSession`);
//! the tracker follows them, and decides expiry, as ZooKeeper's `SessionTrackerImpl` with
//! its `ExpiryQueue`: a session's deadline is rounded up to the next multiple of the tick,
//! so that all sessions due in one tick expire together, and a touch within the same tick
//! moves nothing.
//!
//! A standalone server or a leader expires sessions; a learner will only touch them and
//! report the touches to its leader.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::ConnId;

/// A live session.
#[derive(Debug, Clone)]
struct Tracked {
    timeout_ms: u64,
    /// The deadline's bucket: a multiple of the tick.
    expires_at_ms: u64,
    conn: Option<ConnId>,
    /// Its `closeSession` is on its way: it can be neither touched nor resumed.
    closing: bool,
}

/// Live sessions, by expiry bucket.
#[derive(Debug)]
pub(crate) struct Sessions {
    table: HashMap<i64, Tracked>,
    buckets: BTreeMap<u64, HashSet<i64>>,
    tick_ms: u64,
    next_id: i64,
}

impl Sessions {
    /// A tracker whose buckets are `tick_ms` apart, and whose first new session id is
    /// ZooKeeper's for server `server_id` started at `wall_ms` (`initializeNextSessionId`):
    /// the server id in the top byte, the start time's low 40 bits below it.
    pub(crate) fn new(tick_ms: u64, server_id: u64, wall_ms: i64) -> Self {
        let mut next_id = ((wall_ms << 24) as u64 >> 8) as i64 | ((server_id as i64) << 56);
        // The owner Java reserves for containers (`EphemeralType.CONTAINER_EPHEMERAL_OWNER`).
        if next_id == i64::MIN {
            next_id += 1;
        }
        Self {
            table: HashMap::new(),
            buckets: BTreeMap::new(),
            tick_ms: tick_ms.max(1),
            next_id,
        }
    }

    /// ZooKeeper's `roundToNextInterval`: the first bucket after `time`.
    fn bucket(&self, time_ms: u64) -> u64 {
        (time_ms / self.tick_ms + 1) * self.tick_ms
    }

    /// An id for a new session.
    pub(crate) fn next_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// Tracks session `id` (new, or restored), held by `conn`, due `timeout_ms` from now.
    pub(crate) fn add(&mut self, id: i64, timeout_ms: u64, conn: Option<ConnId>, now_ms: u64) {
        if let Some(old) = self.table.get(&id) {
            let old = old.expires_at_ms;
            self.unbucket(id, old);
        }
        let expires_at_ms = self.bucket(now_ms + timeout_ms);
        self.buckets.entry(expires_at_ms).or_default().insert(id);
        self.table.insert(
            id,
            Tracked {
                timeout_ms,
                expires_at_ms,
                conn,
                closing: false,
            },
        );
    }

    fn unbucket(&mut self, id: i64, at: u64) {
        if let Some(set) = self.buckets.get_mut(&at) {
            set.remove(&id);
            if set.is_empty() {
                self.buckets.remove(&at);
            }
        }
    }

    /// The session shows it lives: its deadline moves to `timeout` from now. False for a
    /// session that is unknown or closing.
    pub(crate) fn touch(&mut self, id: i64, now_ms: u64) -> bool {
        let Some(s) = self.table.get(&id) else {
            return false;
        };
        if s.closing {
            return false;
        }
        let (old, new) = (s.expires_at_ms, self.bucket(now_ms + s.timeout_ms));
        if new <= old {
            return true;
        }
        self.unbucket(id, old);
        self.buckets.entry(new).or_default().insert(id);
        if let Some(s) = self.table.get_mut(&id) {
            s.expires_at_ms = new;
        }
        true
    }

    /// A client resumes session `id` on `conn` with a newly negotiated timeout: the
    /// session is touched and moves to `conn`. Returns the connection that held it before,
    /// or `Err` when the session is unknown or closing (the client is told it expired).
    pub(crate) fn revalidate(
        &mut self,
        id: i64,
        timeout_ms: u64,
        conn: ConnId,
        now_ms: u64,
    ) -> Result<Option<ConnId>, ()> {
        match self.table.get_mut(&id) {
            Some(s) if !s.closing => {
                s.timeout_ms = timeout_ms;
                let previous = s.conn.replace(conn);
                self.touch(id, now_ms);
                Ok(previous)
            }
            _ => Err(()),
        }
    }

    /// Keeps only the sessions `keep` says yes to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(i64) -> bool) {
        let gone: Vec<i64> = self.table.keys().copied().filter(|id| !keep(*id)).collect();
        for id in gone {
            self.remove(id);
        }
    }

    /// Whether session `id` is closing (its `closeSession` is on its way).
    pub(crate) fn is_closing(&self, id: i64) -> bool {
        self.table.get(&id).is_some_and(|s| s.closing)
    }

    /// Session `id`'s timeout, if it is known.
    pub(crate) fn timeout(&self, id: i64) -> Option<u64> {
        self.table.get(&id).map(|s| s.timeout_ms)
    }

    /// Whether session `id` is live and not closing.
    pub(crate) fn is_open(&self, id: i64) -> bool {
        self.table.get(&id).is_some_and(|s| !s.closing)
    }

    /// The connection holding session `id`, if any.
    pub(crate) fn conn(&self, id: i64) -> Option<ConnId> {
        self.table.get(&id).and_then(|s| s.conn)
    }

    /// `conn` is gone: the session it held (if it still does) waits for a new one, and
    /// expires if none comes.
    pub(crate) fn detach(&mut self, id: i64, conn: ConnId) {
        if let Some(s) = self.table.get_mut(&id) {
            if s.conn == Some(conn) {
                s.conn = None;
            }
        }
    }

    /// Marks session `id` closing (its `closeSession` is prepared); returns its connection.
    pub(crate) fn set_closing(&mut self, id: i64) -> Option<ConnId> {
        let s = self.table.get_mut(&id)?;
        s.closing = true;
        s.conn
    }

    /// Session `id` is closed (its `closeSession` applied).
    pub(crate) fn remove(&mut self, id: i64) {
        if let Some(s) = self.table.remove(&id) {
            self.unbucket(id, s.expires_at_ms);
        }
    }

    /// The sessions whose deadline has passed at `now_ms`, in id order, not yet closing.
    /// Their buckets are emptied: each is reported once.
    pub(crate) fn expired(&mut self, now_ms: u64) -> Vec<i64> {
        let later = self.buckets.split_off(&(now_ms + 1));
        let due = std::mem::replace(&mut self.buckets, later);
        let mut expired: Vec<i64> = due
            .into_values()
            .flatten()
            .filter(|id| self.table.get(id).is_some_and(|s| !s.closing))
            .collect();
        expired.sort_unstable();
        expired
    }

    /// Live sessions.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// The live sessions of each expiry bucket, by the bucket's time (ms of the
    /// server's clock), ids in order (the AdminServer's `dump`).
    pub(crate) fn by_expiry(&self) -> BTreeMap<u64, Vec<i64>> {
        self.buckets
            .iter()
            .map(|(at, ids)| {
                let mut ids: Vec<i64> = ids
                    .iter()
                    .copied()
                    .filter(|id| self.table.contains_key(id))
                    .collect();
                ids.sort_unstable();
                (*at, ids)
            })
            .filter(|(_, ids)| !ids.is_empty())
            .collect()
    }

    /// Each live session's timeout, by id (`dump`).
    pub(crate) fn timeouts(&self) -> BTreeMap<i64, u64> {
        self.table
            .iter()
            .map(|(id, s)| (*id, s.timeout_ms))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_to_the_tick_and_a_bucket_expires_together() {
        let mut s = Sessions::new(2_000, 0, 0);
        s.add(1, 4_000, Some(7), 100); // 4100 → bucket 6000
        s.add(2, 5_000, None, 900); // 5900 → bucket 6000
        s.add(3, 6_000, None, 100); // 6100 → bucket 8000
        assert!(s.expired(5_999).is_empty());
        assert_eq!(s.expired(6_000), vec![1, 2]);
        assert!(s.expired(6_000).is_empty(), "reported once");
        assert_eq!(s.expired(9_000), vec![3]);
    }

    #[test]
    fn a_touch_moves_the_deadline_and_a_closing_session_is_neither_touched_nor_resumed() {
        let mut s = Sessions::new(2_000, 0, 0);
        s.add(1, 4_000, Some(7), 0); // bucket 6000
        assert!(s.touch(1, 1_000)); // 5000 → 6000: nothing moves
        assert!(s.touch(1, 3_000)); // 7000 → 8000
        assert!(s.expired(6_000).is_empty());
        assert_eq!(s.revalidate(1, 4_000, 8, 3_000), Ok(Some(7)));
        assert_eq!(s.conn(1), Some(8));
        s.detach(1, 7);
        assert_eq!(s.conn(1), Some(8), "only the holder detaches");
        assert_eq!(s.set_closing(1), Some(8));
        assert!(!s.touch(1, 4_000));
        assert_eq!(s.revalidate(1, 4_000, 9, 4_000), Err(()));
        assert!(s.expired(10_000).is_empty(), "closing: not expired again");
        s.remove(1);
        assert_eq!(s.len(), 0);
        assert!(!s.touch(2, 0), "unknown");
    }

    #[test]
    fn ids_carry_the_server_id_and_the_start_time() {
        let mut s = Sessions::new(2_000, 3, 0x1234_5678_9abc);
        let id = s.next_id();
        assert_eq!(id >> 56, 3);
        // The low 40 bits of the time, shifted to bits 16..56.
        assert_eq!(id & 0xff_ffff_ffff_ffff, 0x34_5678_9abc_0000);
        assert_eq!(s.next_id(), id + 1);
    }
}
