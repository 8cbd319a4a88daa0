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
}

impl HostList {
    pub(crate) fn new(mut hosts: Vec<(String, u16)>) -> Self {
        shuffle(&mut hosts);
        HostList {
            current: hosts.len().saturating_sub(1),
            hosts,
            last: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.hosts.len()
    }

    /// The next host, and whether a whole round has passed since the last success (so the
    /// caller should wait before trying it).
    pub(crate) fn next(&mut self) -> ((String, u16), bool) {
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
    }
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
