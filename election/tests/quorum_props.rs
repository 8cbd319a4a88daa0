//! Properties every quorum rule must have for elections to be safe: any two quorums
//! share a voter of positive weight, and adding members to a quorum keeps it one.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use zk_election::{Hierarchical, QuorumVerifier, Sid};

/// A random ensemble (majority, or hierarchical with 1-4 groups of 1-4 servers and
/// weights 0-3) and two random subsets of it.
fn ensemble_and_sets()
-> impl Strategy<Value = (QuorumVerifier, Vec<Sid>, BTreeSet<Sid>, BTreeSet<Sid>)> {
    let majority =
        (1u64..=9).prop_map(|n| (QuorumVerifier::majority(1..=n), (1..=n).collect::<Vec<_>>()));
    let hierarchical = prop::collection::vec(prop::collection::vec(0u64..=3, 1..=4), 1..=4)
        .prop_map(|groups| {
            let mut group_of = BTreeMap::new();
            let mut weight = BTreeMap::new();
            let mut sid = 0;
            for (gid, weights) in groups.iter().enumerate() {
                for w in weights {
                    sid += 1;
                    group_of.insert(sid, gid as u64 + 1);
                    weight.insert(sid, *w);
                }
            }
            let sids = group_of.keys().copied().collect();
            (
                QuorumVerifier::Hierarchical(Hierarchical::new(group_of, weight)),
                sids,
            )
        });
    prop_oneof![majority, hierarchical].prop_flat_map(|(q, sids): (QuorumVerifier, Vec<Sid>)| {
        let n = sids.len();
        let subset = move || prop::collection::vec(any::<bool>(), n);
        (Just(q), Just(sids), subset(), subset()).prop_map(|(q, sids, a, b)| {
            let pick = |mask: Vec<bool>| {
                sids.iter()
                    .zip(mask)
                    .filter(|(_, m)| *m)
                    .map(|(s, _)| *s)
                    .collect()
            };
            let (a, b) = (pick(a), pick(b));
            (q, sids, a, b)
        })
    })
}

proptest! {
    #[test]
    fn quorums_intersect_in_a_voter_of_weight((q, _sids, a, b) in ensemble_and_sets()) {
        if q.contains_quorum(&a) && q.contains_quorum(&b) {
            prop_assert!(a.intersection(&b).any(|s| q.weight(*s) > 0), "{a:?} and {b:?}");
        }
    }

    #[test]
    fn supersets_of_quorums_are_quorums((q, sids, a, _b) in ensemble_and_sets()) {
        if q.contains_quorum(&a) {
            prop_assert!(q.contains_quorum(&sids));
            for extra in &sids {
                let mut bigger = a.clone();
                bigger.insert(*extra);
                prop_assert!(q.contains_quorum(&bigger));
            }
        }
    }
}
