//! Connect strings (`ConnectStringParser`) and the shuffled host list the client cycles
//! through (`StaticHostProvider`).

use std::hash::{BuildHasher, Hasher};

use crate::error::{Error, Result};
use crate::path::validate_path;

/// ZooKeeper's default client port.
pub const DEFAULT_PORT: u16 = 2181;

/// A parsed connect string: `host[:port][,host[:port]...][/chroot]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectString {
    /// The servers, as `(host, port)`, in the order given. IPv6 literals keep no brackets.
    pub hosts: Vec<(String, u16)>,
    /// The chroot, if any (`None` for no suffix or a bare `/`).
    pub chroot: Option<String>,
}

impl ConnectString {
    /// Parses `s` as ZooKeeper's `ConnectStringParser` does: the chroot is everything from
    /// the first `/` (validated as a path), hosts are comma separated, a port follows the
    /// last `:` (default 2181), and IPv6 literals go in brackets (`[::1]:2181`).
    pub fn parse(s: &str) -> Result<ConnectString> {
        let bad = || Error::InvalidConnectString(s.to_owned());
        let (hosts_part, chroot) = match s.find('/') {
            Some(at) => {
                let root = &s[at..];
                if root.len() == 1 {
                    (&s[..at], None)
                } else {
                    validate_path(root)?;
                    (&s[..at], Some(root.to_owned()))
                }
            }
            None => (s, None),
        };
        let mut hosts = Vec::new();
        for entry in hosts_part.split(',').map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
                let (host, after) = rest.split_once(']').ok_or_else(bad)?;
                match after.strip_prefix(':') {
                    Some(port) => (host, port.trim().parse().map_err(|_| bad())?),
                    None if after.is_empty() => (host, DEFAULT_PORT),
                    None => return Err(bad()),
                }
            } else {
                match entry.rsplit_once(':') {
                    Some((host, "")) => (host, DEFAULT_PORT),
                    Some((host, port)) => (host, port.trim().parse().map_err(|_| bad())?),
                    None => (entry, DEFAULT_PORT),
                }
            };
            if host.is_empty() {
                return Err(bad());
            }
            hosts.push((host.to_owned(), port));
        }
        if hosts.is_empty() {
            return Err(bad());
        }
        Ok(ConnectString { hosts, chroot })
    }
}

/// The servers in a random order, tried in turn; after a whole round without success
/// the caller should pause (`StaticHostProvider.next(spinDelay)`).
#[derive(Debug, Clone)]
pub(crate) struct HostList {
    hosts: Vec<(String, u16)>,
    current: usize,
    /// The index last connected to; `None` before the first attempt.
    last: Option<usize>,
    /// After [`HostList::update`] asked the client to move: the servers of the new list
    /// that were in the old one and those that were not, each tried once, a new one
    /// with probability `p_new` (ZooKeeper's reconfig mode).
    moving: Option<Moving>,
}

#[derive(Debug, Clone)]
struct Moving {
    old: Vec<(String, u16)>,
    new: Vec<(String, u16)>,
    p_new: f32,
}

impl HostList {
    pub(crate) fn new(mut hosts: Vec<(String, u16)>) -> Self {
        shuffle(&mut hosts);
        HostList {
            current: hosts.len().saturating_sub(1),
            hosts,
            last: None,
            moving: None,
        }
    }

    /// ZooKeeper's `StaticHostProvider.updateServerList`: `hosts` replace the list, and
    /// the client connected to `current` decides whether to move so that load spreads
    /// evenly over the new list. With more servers, a client whose server stays moves to
    /// a new one with probability `1 - old size / new size`, and one whose server left
    /// moves to a new one; with as many or fewer, a client whose server stays stays, and
    /// one whose server left goes to a new server with probability `1 - p_old`,
    /// `p_old = old_kept * (old size - new size) / (new size * (old size - old_kept))`.
    /// `draw` gives uniform numbers in `[0, 1)`. Returns whether the client must drop its
    /// connection and connect where [`HostList::next`] says.
    pub(crate) fn update(
        &mut self,
        mut hosts: Vec<(String, u16)>,
        current: Option<&(String, u16)>,
        draw: &mut dyn FnMut() -> f32,
    ) -> bool {
        if hosts.is_empty() {
            return false;
        }
        shuffle(&mut hosts);
        let mine = current
            .cloned()
            .or_else(|| self.last.and_then(|i| self.hosts.get(i).cloned()))
            .or_else(|| self.hosts.first().cloned());
        let mine_stays = mine.as_ref().is_some_and(|m| hosts.contains(m));
        let (old, new): (Vec<_>, Vec<_>) =
            hosts.iter().cloned().partition(|h| self.hosts.contains(h));
        let (size, total) = (self.hosts.len() as f32, hosts.len() as f32);
        let p_new = if hosts.len() > self.hosts.len() {
            match mine_stays {
                true if draw() <= 1.0 - size / total => Some(1.0),
                true => None,
                false => Some(1.0),
            }
        } else if mine_stays {
            None
        } else {
            let kept = old.len() as f32;
            let p_old = kept * (size - total) / (total * (size - kept));
            Some(1.0 - p_old)
        };
        let at_mine = mine
            .as_ref()
            .and_then(|m| hosts.iter().position(|h| h == m));
        self.hosts = hosts;
        self.moving = p_new.map(|p_new| Moving { old, new, p_new });
        match (&self.moving, at_mine) {
            (None, Some(i)) => {
                self.current = i;
                self.last = Some(i);
            }
            _ => {
                self.current = self.hosts.len() - 1;
                self.last = None;
            }
        }
        self.moving.is_some()
    }

    /// In reconfig mode, the next server to try: a new one with probability `p_new` (or
    /// when every old one was tried), else an old one; `None` once all were tried.
    fn next_moving(&mut self, draw: &mut dyn FnMut() -> f32) -> Option<(String, u16)> {
        let moving = self.moving.as_mut()?;
        let take_new = draw() <= moving.p_new;
        let host = if !moving.new.is_empty() && (take_new || moving.old.is_empty()) {
            moving.new.remove(0)
        } else if !moving.old.is_empty() {
            moving.old.remove(0)
        } else {
            self.moving = None;
            return None;
        };
        if let Some(i) = self.hosts.iter().position(|h| *h == host) {
            self.current = i;
        }
        Some(host)
    }

    pub(crate) fn len(&self) -> usize {
        self.hosts.len()
    }

    /// The next host, and whether a whole round has passed since the last success (so the
    /// caller should wait before trying it).
    pub(crate) fn next(&mut self) -> ((String, u16), bool) {
        if self.moving.is_some() {
            let mut draw = random_unit;
            if let Some(host) = self.next_moving(&mut draw) {
                return (host, false);
            }
        }
        self.current = (self.current + 1) % self.hosts.len().max(1);
        let round_done = self.last == Some(self.current);
        if self.last.is_none() {
            self.last = Some(self.current);
        }
        // `hosts` is never empty: the connect string parser refuses that.
        let host = self.hosts.get(self.current).cloned();
        (
            host.unwrap_or_else(|| ("localhost".into(), DEFAULT_PORT)),
            round_done,
        )
    }

    /// The current host answered: the next round starts after it.
    pub(crate) fn connected(&mut self) {
        self.last = Some(self.current);
        self.moving = None;
    }

    /// The host tried last.
    pub(crate) fn current(&self) -> Option<&(String, u16)> {
        self.hosts.get(self.current)
    }
}

/// A uniform number in `[0, 1)` from std's randomly keyed hasher.
pub(crate) fn random_unit() -> f32 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(0);
    (hasher.finish() >> 40) as f32 / (1u64 << 24) as f32
}

/// Fisher-Yates with std's randomly keyed hasher as the source of randomness.
fn shuffle<T>(items: &mut [T]) {
    let state = std::collections::hash_map::RandomState::new();
    for i in (1..items.len()).rev() {
        let mut hasher = state.build_hasher();
        hasher.write_usize(i);
        let j = (hasher.finish() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &[(&str, u16)]) -> Vec<(String, u16)> {
        list.iter().map(|(h, p)| (h.to_string(), *p)).collect()
    }

    #[test]
    fn connect_strings_parse_as_zookeeper_parses_them() {
        let cs = ConnectString::parse("h1:2181,h2:2182/app/x").unwrap();
        assert_eq!(cs.hosts, hosts(&[("h1", 2181), ("h2", 2182)]));
        assert_eq!(cs.chroot.as_deref(), Some("/app/x"));
        let cs = ConnectString::parse("h1, [::1]:3000,[fe80::1]/").unwrap();
        assert_eq!(
            cs.hosts,
            hosts(&[("h1", 2181), ("::1", 3000), ("fe80::1", 2181)])
        );
        assert_eq!(cs.chroot, None);
        assert!(ConnectString::parse("").is_err());
        assert!(ConnectString::parse("/app").is_err());
        assert!(ConnectString::parse("h:port").is_err());
        assert!(matches!(
            ConnectString::parse("h1/app/"),
            Err(Error::InvalidPath { .. })
        ));
    }

    #[test]
    fn a_new_server_list_moves_clients_as_zookeepers_rebalancing_does() {
        let three = hosts(&[("a", 1), ("b", 2), ("c", 3)]);
        let five = hosts(&[("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)]);
        let a = ("a".to_string(), 1);
        // Growing 3 to 5: a client of a kept server moves with probability 1 - 3/5.
        let mut list = HostList::new(three.clone());
        assert!(!list.update(five.clone(), Some(&a), &mut || 0.5));
        assert_eq!(list.current(), Some(&a), "stays where it is");
        let mut list = HostList::new(three.clone());
        assert!(list.update(five.clone(), Some(&a), &mut || 0.3));
        let (to, pause) = list.next();
        assert!(!pause && ["d", "e"].contains(&to.0.as_str()), "{to:?}");
        // Its server gone, a client moves to a new one.
        let mut list = HostList::new(three.clone());
        let gone = ("z".to_string(), 9);
        assert!(list.update(five.clone(), Some(&gone), &mut || 0.99));
        assert!(["d", "e"].contains(&list.next().0.0.as_str()));
        // Shrinking 5 to 3: a client of a kept server stays; one whose server left moves,
        // to a kept server (p_old = 3 * (5 - 3) / (3 * (5 - 3)) = 1).
        let mut list = HostList::new(five.clone());
        assert!(!list.update(three.clone(), Some(&a), &mut || 0.0));
        let mut list = HostList::new(five);
        let d = ("d".to_string(), 4);
        assert!(list.update(three, Some(&d), &mut || 0.0));
        let (to, _) = list.next();
        assert!(["a", "b", "c"].contains(&to.0.as_str()), "{to:?}");
        // Once connected, the list is cycled through as before.
        list.connected();
        let mut seen: Vec<String> = (0..3).map(|_| list.next().0.0).collect();
        seen.sort();
        assert_eq!(seen, ["a", "b", "c"]);
    }

    #[test]
    fn every_host_is_tried_before_a_pause() {
        let mut list = HostList::new(hosts(&[("a", 1), ("b", 2), ("c", 3)]));
        let mut seen: Vec<_> = (0..3)
            .map(|_| list.next())
            .map(|(h, p)| (h.clone(), p))
            .collect();
        assert_eq!(seen.iter().filter(|(_, pause)| *pause).count(), 0);
        seen.sort();
        assert_eq!(
            seen.iter()
                .map(|((h, _), _)| h.as_str())
                .collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert!(list.next().1, "a round without success ends in a pause");
        list.connected();
        assert!(!list.next().1);
    }
}
