//! Election configuration: members, quorum rule, timing.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::ConfigError;
use crate::quorum::{Hierarchical, QuorumVerifier};
use crate::vote::Sid;

/// Whether a member votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A voting member (ZooKeeper's `participant`).
    Participant,
    /// A member that learns the leader but never votes.
    Observer,
}

/// One `server.N` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The server id.
    pub sid: Sid,
    /// Whether it votes.
    pub role: Role,
    /// `host:electionPort`, where its election service listens (none in pure tests).
    pub election_addr: Option<String>,
}

/// The election's timers, in milliseconds. The defaults are ZooKeeper's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a quorum must stand unchallenged before it is final (`finalizeWait`).
    pub finalize_wait_ms: u64,
    /// The first notification timeout; it doubles after each timeout
    /// (`minNotificationInterval`).
    pub min_notification_interval_ms: u64,
    /// The cap of that doubling (`maxNotificationInterval`).
    pub max_notification_interval_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            finalize_wait_ms: 200,
            min_notification_interval_ms: 200,
            max_notification_interval_ms: 60_000,
        }
    }
}

/// A stand-in for the replication layer's liveness checks, for when the election runs
/// alone (the example, the tests). While not looking, every member re-sends its vote each
/// `heartbeat_ms`; a follower that hears nothing from its leader, or a leader that hears
/// from less than a quorum of followers, for `timeout_ms`, starts a new election.
/// A server that runs Zab leaves this off and starts elections itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// How often a settled member re-sends its vote.
    pub heartbeat_ms: u64,
    /// How long silence is tolerated.
    pub timeout_ms: u64,
}

/// Everything the election needs to know about the ensemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The members by sid (participants and observers).
    pub members: BTreeMap<Sid, Member>,
    /// The quorum rule.
    pub verifier: QuorumVerifier,
    /// Timers.
    pub timing: Timing,
    /// The optional liveness stand-in.
    pub lease: Option<Lease>,
    /// Dynamic membership (`reconfigEnabled`): a server outside [`members`](Self::members)
    /// (one joining the ensemble) is answered with this member's vote, as ZooKeeper
    /// answers every server it does not count, and its streams are accepted; off, it is
    /// refused.
    pub reconfig_enabled: bool,
    /// The membership's version (the zxid of the reconfiguration that made it; 0 for
    /// the first), told to peers with every notification: a looking member that hears
    /// members settled under a newer membership follows the leader they follow.
    pub version: i64,
}

impl Config {
    /// A majority configuration of `participants` and `observers` without addresses.
    pub fn majority(
        participants: impl IntoIterator<Item = Sid>,
        observers: impl IntoIterator<Item = Sid>,
    ) -> Self {
        let mut members = BTreeMap::new();
        for sid in participants {
            members.insert(sid, member(sid, Role::Participant));
        }
        for sid in observers {
            members.insert(sid, member(sid, Role::Observer));
        }
        let verifier = QuorumVerifier::majority(
            members
                .values()
                .filter(|m| m.role == Role::Participant)
                .map(|m| m.sid),
        );
        Config {
            members,
            verifier,
            timing: Timing::default(),
            lease: None,
            reconfig_enabled: false,
            version: 0,
        }
    }

    /// Reads `server.N`, `group.N` and `weight.N` entries (keys and values as in
    /// `zoo.cfg`; other keys are ignored). With any `group.N` entry the quorum rule is
    /// hierarchical, otherwise majority.
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Result<Self, ConfigError> {
        let mut members = BTreeMap::new();
        let mut hierarchical = false;
        for (key, value) in entries.clone() {
            let (key, value) = (key.trim(), value.trim());
            if let Some(sid) = key.strip_prefix("server.") {
                let sid: Sid = sid.parse().map_err(|_| ConfigError::BadNumber {
                    key: key.to_string(),
                    value: sid.to_string(),
                })?;
                members.insert(sid, parse_server(sid, value)?);
            } else if key.starts_with("group.") {
                hierarchical = true;
            }
        }
        let participants: BTreeSet<Sid> = members
            .values()
            .filter(|m| m.role == Role::Participant)
            .map(|m| m.sid)
            .collect();
        if participants.is_empty() {
            return Err(ConfigError::NoVoters);
        }
        let verifier = if hierarchical {
            let trimmed = entries.into_iter().map(|(k, v)| (k.trim(), v.trim()));
            QuorumVerifier::Hierarchical(Hierarchical::from_entries(&participants, trimmed)?)
        } else {
            QuorumVerifier::majority(participants)
        };
        Ok(Config {
            members,
            verifier,
            timing: Timing::default(),
            lease: None,
            reconfig_enabled: false,
            version: 0,
        })
    }

    /// The same configuration with the liveness stand-in on.
    pub fn with_lease(mut self, lease: Lease) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Checks the timers and the lease.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.timing;
        if t.min_notification_interval_ms == 0
            || t.max_notification_interval_ms < t.min_notification_interval_ms
        {
            return Err(ConfigError::BadTiming(
                "notification intervals must satisfy 0 < min <= max",
            ));
        }
        if let Some(lease) = &self.lease {
            if lease.heartbeat_ms == 0 || lease.timeout_ms <= lease.heartbeat_ms {
                return Err(ConfigError::BadTiming(
                    "lease must satisfy 0 < heartbeat_ms < timeout_ms",
                ));
            }
        }
        if self.verifier.voters().is_empty() {
            return Err(ConfigError::NoVoters);
        }
        Ok(())
    }

    /// The role of `sid`, if it is a member.
    pub fn role(&self, sid: Sid) -> Option<Role> {
        self.members.get(&sid).map(|m| m.role)
    }
}

fn member(sid: Sid, role: Role) -> Member {
    Member {
        sid,
        role,
        election_addr: None,
    }
}

/// One `server.N` line of `zoo.cfg`, as ZooKeeper reads it (`QuorumServer`):
/// `host:quorumPort:electionPort[:participant|:observer][;[clientAddr:]clientPort]`, with an
/// IPv6 host in brackets. The election needs its election address; the server also its
/// quorum and client addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLine {
    /// The server id (`N`).
    pub sid: Sid,
    /// The host, as written (an IPv6 address without its brackets).
    pub host: String,
    /// Where its leader listens for learners (Zab).
    pub quorum_port: u16,
    /// Where it listens for election messages.
    pub election_port: u16,
    /// Whether it votes (`participant`, the default) or only learns (`observer`).
    pub role: Role,
    /// The client address after `;`: host (0.0.0.0 when only a port is given) and port.
    pub client: Option<(String, u16)>,
}

impl ServerLine {
    /// Reads the value of `server.<sid>`.
    pub fn parse(sid: Sid, value: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::BadServer {
            sid,
            value: value.to_string(),
        };
        let value = value.trim();
        let mut halves = value.split(';');
        let server = halves.next().unwrap_or_default();
        let client = halves.next();
        if halves.next().is_some() {
            return Err(bad());
        }
        if server.contains('|') {
            // ZooKeeper refuses these too unless multiAddress.enabled is set.
            return Err(ConfigError::MultiAddress(sid));
        }
        let parts = host_and_ports(server).ok_or_else(bad)?;
        let (host, quorum, election, role) = match parts.as_slice() {
            [host, quorum, election] => (host, quorum, election, Role::Participant),
            [host, quorum, election, role] => {
                let role = match role.trim().to_ascii_lowercase().as_str() {
                    "participant" => Role::Participant,
                    "observer" => Role::Observer,
                    _ => return Err(bad()),
                };
                (host, quorum, election, role)
            }
            _ => return Err(bad()),
        };
        let quorum_port: u16 = quorum.parse().map_err(|_| bad())?;
        let election_port: u16 = election.parse().map_err(|_| bad())?;
        if host.is_empty() {
            return Err(bad());
        }
        if quorum_port == election_port {
            return Err(ConfigError::SamePorts(sid));
        }
        let client = match client {
            None => None,
            Some(text) => {
                let parts = host_and_ports(text.trim()).ok_or_else(bad)?;
                match parts.as_slice() {
                    [port] => Some(("0.0.0.0".to_string(), port.parse().map_err(|_| bad())?)),
                    [host, port] if !host.is_empty() => {
                        Some((host.clone(), port.parse().map_err(|_| bad())?))
                    }
                    _ => return Err(bad()),
                }
            }
        };
        Ok(ServerLine {
            sid,
            host: host.clone(),
            quorum_port,
            election_port,
            role,
            client,
        })
    }

    /// `host:port` for `port` on this server's host (an IPv6 host in brackets).
    pub fn addr(&self, port: u16) -> String {
        if self.host.contains(':') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        }
    }

    /// The election address, `host:electionPort`.
    pub fn election_addr(&self) -> String {
        self.addr(self.election_port)
    }

    /// The quorum (Zab) address, `host:quorumPort`.
    pub fn quorum_addr(&self) -> String {
        self.addr(self.quorum_port)
    }
}

/// `host:port:...` split at its colons, an IPv6 host in brackets kept whole (ZooKeeper's
/// `ConfigUtils.getHostAndPort`); `None` for an unclosed bracket.
fn host_and_ports(text: &str) -> Option<Vec<String>> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, rest) = rest.split_once(']')?;
        let mut parts = vec![host.to_string()];
        if !rest.is_empty() {
            let rest = rest.strip_prefix(':')?;
            parts.extend(rest.split(':').map(str::to_string));
        }
        return Some(parts);
    }
    Some(text.split(':').map(str::to_string).collect())
}

fn parse_server(sid: Sid, value: &str) -> Result<Member, ConfigError> {
    let line = ServerLine::parse(sid, value)?;
    Ok(Member {
        sid,
        role: line.role,
        election_addr: Some(line.election_addr()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_servers_and_roles() {
        let cfg = Config::from_entries([
            ("server.1", "127.0.0.1:2888:3888"),
            ("server.2", "127.0.0.1:2889:3889:participant;2181"),
            ("server.3", "localhost:2890:3890:observer"),
            ("tickTime", "2000"),
        ])
        .unwrap();
        assert_eq!(cfg.verifier.voters(), vec![1, 2]);
        assert_eq!(cfg.role(3), Some(Role::Observer));
        assert_eq!(
            cfg.members[&2].election_addr.as_deref(),
            Some("127.0.0.1:3889")
        );
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn server_lines_as_zookeeper_reads_them() {
        let line = ServerLine::parse(4, "[fe80::1]:2888:3888:Observer;127.0.0.1:2184").unwrap();
        assert_eq!(line.host, "fe80::1");
        assert_eq!((line.quorum_port, line.election_port), (2888, 3888));
        assert_eq!(line.role, Role::Observer);
        assert_eq!(line.client, Some(("127.0.0.1".to_string(), 2184)));
        assert_eq!(line.election_addr(), "[fe80::1]:3888");
        let line = ServerLine::parse(1, " zk1:2888:3888;2181 ").unwrap();
        assert_eq!(line.quorum_addr(), "zk1:2888");
        assert_eq!(line.client, Some(("0.0.0.0".to_string(), 2181)));
        assert_eq!(ServerLine::parse(1, "zk1:2888:3888").unwrap().client, None);
    }

    #[test]
    fn groups_make_it_hierarchical() {
        let cfg = Config::from_entries([
            ("server.1", "h:1:2"),
            ("server.2", "h:1:3"),
            ("server.3", "h:1:4"),
            ("group.1", "1:2"),
            ("group.2", "3"),
            ("weight.2", "0"),
        ])
        .unwrap();
        assert!(matches!(cfg.verifier, QuorumVerifier::Hierarchical(_)));
        assert_eq!(cfg.verifier.weight(2), 0);
        assert!(cfg.verifier.contains_quorum(&[1, 3]));
        assert!(!cfg.verifier.contains_quorum(&[1, 2]));
    }

    #[test]
    fn refuses_bad_entries() {
        assert!(matches!(
            Config::from_entries([("server.1", "h:1")]),
            Err(ConfigError::BadServer { sid: 1, .. })
        ));
        assert!(matches!(
            Config::from_entries([("server.x", "h:1:2")]),
            Err(ConfigError::BadNumber { .. })
        ));
        assert!(matches!(
            Config::from_entries([("server.1", "h:1:2:observer")]),
            Err(ConfigError::NoVoters)
        ));
        assert!(matches!(
            Config::from_entries([("server.1", "h:2:2")]),
            Err(ConfigError::SamePorts(1))
        ));
        assert!(matches!(
            Config::from_entries([("server.1", "h:1:2|g:1:2")]),
            Err(ConfigError::MultiAddress(1))
        ));
        for bad in [
            "h:1:2:voter",
            "h:1:x",
            "[::1:1:2",
            "h:1:2;a:b:c",
            "h:1:2;h:x",
        ] {
            assert!(ServerLine::parse(1, bad).is_err(), "{bad}");
        }
        let mut cfg = Config::majority([1], []);
        cfg.timing.min_notification_interval_ms = 0;
        assert!(cfg.validate().is_err());
    }
}
