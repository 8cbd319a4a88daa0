//! Quorum verifiers: ZooKeeper's majority (`QuorumMaj`) and hierarchical
//! (`QuorumHierarchical`, groups and weights) rules.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::ConfigError;
use crate::vote::Sid;

/// Decides whether a set of servers is a quorum, and how much each server weighs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumVerifier {
    /// More than half of the voting members.
    Majority(Majority),
    /// A majority of groups, each by more than half of its weight.
    Hierarchical(Hierarchical),
}

impl QuorumVerifier {
    /// A majority verifier over `voters`.
    pub fn majority(voters: impl IntoIterator<Item = Sid>) -> Self {
        QuorumVerifier::Majority(Majority {
            voters: voters.into_iter().collect(),
        })
    }

    /// Whether `sid` is a voting member.
    pub fn is_voter(&self, sid: Sid) -> bool {
        match self {
            QuorumVerifier::Majority(m) => m.voters.contains(&sid),
            QuorumVerifier::Hierarchical(h) => h.group_of.contains_key(&sid),
        }
    }

    /// The voting members, in sid order.
    pub fn voters(&self) -> Vec<Sid> {
        match self {
            QuorumVerifier::Majority(m) => m.voters.iter().copied().collect(),
            QuorumVerifier::Hierarchical(h) => h.group_of.keys().copied().collect(),
        }
    }

    /// The weight of `sid`: 1 for every member under majority, the configured weight
    /// under hierarchical rules (0 for servers outside every group). A server of weight
    /// zero can never be elected.
    pub fn weight(&self, sid: Sid) -> u64 {
        match self {
            QuorumVerifier::Majority(_) => 1,
            QuorumVerifier::Hierarchical(h) => h.weight.get(&sid).copied().unwrap_or(0),
        }
    }

    /// Whether `acks` (servers agreeing on something) form a quorum. Servers that are
    /// not voters count for nothing.
    pub fn contains_quorum<'a>(&self, acks: impl IntoIterator<Item = &'a Sid>) -> bool {
        match self {
            QuorumVerifier::Majority(m) => {
                let count = acks
                    .into_iter()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .filter(|sid| m.voters.contains(sid))
                    .count();
                count > m.voters.len() / 2
            }
            QuorumVerifier::Hierarchical(h) => h.contains_quorum(acks),
        }
    }
}

/// The majority rule: a quorum is more than half of the voters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Majority {
    voters: BTreeSet<Sid>,
}

/// The hierarchical rule: servers are split into disjoint groups, each server has a
/// weight, and a set is a quorum when it holds more than half of the weight of more than
/// half of the groups whose weight is not zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchical {
    group_of: BTreeMap<Sid, u64>,
    weight: BTreeMap<Sid, u64>,
    group_weight: BTreeMap<u64, u64>,
    /// Groups of non-zero weight.
    counted_groups: usize,
}

impl Hierarchical {
    /// Builds the rule from `group.G=a:b:c` and `weight.S=w` entries (keys and values
    /// as in `zoo.cfg`; other keys are ignored). Every participant must be in exactly
    /// one group; servers without a `weight` line weigh 1.
    pub fn from_entries<'a>(
        participants: &BTreeSet<Sid>,
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ConfigError> {
        let mut group_of = BTreeMap::new();
        let mut weight = BTreeMap::new();
        for (key, value) in entries {
            if let Some(gid) = key.strip_prefix("group.") {
                let gid = parse_id(key, gid)?;
                for sid in value.split(':') {
                    let sid = parse_id(key, sid.trim())?;
                    if group_of.insert(sid, gid).is_some() {
                        return Err(ConfigError::MultipleGroups(sid));
                    }
                }
            } else if let Some(sid) = key.strip_prefix("weight.") {
                let sid = parse_id(key, sid)?;
                weight.insert(sid, parse_id(key, value.trim())?);
            }
        }
        for sid in participants {
            if !group_of.contains_key(sid) {
                return Err(ConfigError::NotInGroup(*sid));
            }
            weight.entry(*sid).or_insert(1);
        }
        Ok(Self::new(group_of, weight))
    }

    /// Builds the rule from explicit maps (server to group, server to weight; servers in
    /// a group without a weight weigh 1).
    pub fn new(group_of: BTreeMap<Sid, u64>, mut weight: BTreeMap<Sid, u64>) -> Self {
        let mut group_weight: BTreeMap<u64, u64> = BTreeMap::new();
        for (sid, gid) in &group_of {
            let w = *weight.entry(*sid).or_insert(1);
            *group_weight.entry(*gid).or_default() += w;
        }
        weight.retain(|sid, _| group_of.contains_key(sid));
        let counted_groups = group_weight.values().filter(|w| **w > 0).count();
        Hierarchical {
            group_of,
            weight,
            group_weight,
            counted_groups,
        }
    }

    fn contains_quorum<'a>(&self, acks: impl IntoIterator<Item = &'a Sid>) -> bool {
        let mut gathered: BTreeMap<u64, u64> = BTreeMap::new();
        let acks: BTreeSet<&Sid> = acks.into_iter().collect();
        for sid in acks {
            if let Some(gid) = self.group_of.get(sid) {
                *gathered.entry(*gid).or_default() += self.weight.get(sid).copied().unwrap_or(0);
            }
        }
        let majorities = gathered
            .iter()
            .filter(|(gid, w)| {
                let total = self.group_weight.get(gid).copied().unwrap_or(0);
                total > 0 && **w > total / 2
            })
            .count();
        majorities > self.counted_groups / 2
    }
}

fn parse_id(key: &str, text: &str) -> Result<u64, ConfigError> {
    text.parse().map_err(|_| ConfigError::BadNumber {
        key: key.to_string(),
        value: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_needs_more_than_half() {
        let q = QuorumVerifier::majority([1, 2, 3, 4]);
        assert!(!q.contains_quorum(&[1, 2]));
        assert!(q.contains_quorum(&[1, 2, 3]));
        assert!(
            !q.contains_quorum(&[1, 2, 9, 10]),
            "non-voters count for nothing"
        );
        assert!(!q.contains_quorum(&[1, 1, 2]), "duplicates count once");
    }

    fn nine() -> QuorumVerifier {
        let entries = [
            ("group.1", "1:2:3"),
            ("group.2", "4:5:6"),
            ("group.3", "7:8:9"),
            ("weight.3", "2"),
            ("weight.9", "0"),
        ];
        let participants = (1..=9).collect();
        QuorumVerifier::Hierarchical(Hierarchical::from_entries(&participants, entries).unwrap())
    }

    #[test]
    fn hierarchical_needs_a_majority_of_groups() {
        let q = nine();
        // Group 1 weighs 4: server 3 alone (2) is not more than half, 3 and 1 are.
        assert!(!q.contains_quorum(&[3, 4, 5]));
        assert!(q.contains_quorum(&[1, 3, 4, 5]));
        // Group 3 weighs 2 (9 weighs nothing): 7 alone is not a majority of it.
        assert!(!q.contains_quorum(&[1, 3, 7, 9]));
        assert!(q.contains_quorum(&[1, 3, 7, 8]));
        assert_eq!(q.weight(9), 0);
        assert_eq!(q.weight(3), 2);
        assert_eq!(q.weight(10), 0);
    }

    #[test]
    fn hierarchical_config_errors() {
        let participants: BTreeSet<Sid> = (1..=3).collect();
        let err = Hierarchical::from_entries(&participants, [("group.1", "1:2")]).unwrap_err();
        assert!(matches!(err, ConfigError::NotInGroup(3)));
        let err =
            Hierarchical::from_entries(&participants, [("group.1", "1:2:3"), ("group.2", "3")])
                .unwrap_err();
        assert!(matches!(err, ConfigError::MultipleGroups(3)));
        let err = Hierarchical::from_entries(&participants, [("group.1", "1:x:3")]).unwrap_err();
        assert!(matches!(err, ConfigError::BadNumber { .. }));
    }

    #[test]
    fn zero_weight_groups_are_not_counted() {
        let mut group_of = BTreeMap::new();
        let mut weight = BTreeMap::new();
        for sid in 1..=3 {
            group_of.insert(sid, 1);
        }
        for sid in 4..=5 {
            group_of.insert(sid, 2);
            weight.insert(sid, 0);
        }
        let q = QuorumVerifier::Hierarchical(Hierarchical::new(group_of, weight));
        // One counted group: a majority of it is a quorum.
        assert!(q.contains_quorum(&[1, 2]));
        assert!(!q.contains_quorum(&[1, 4, 5]));
    }
}
