//! ZooKeeper's known sync bugs, each replayed as a scripted run of the simulated
//! ensemble (`tests/sim`), with the same checks as the seeded runs: one committed
//! sequence, no committed txn truncated or missing from a later leader, no hole in any
//! log, and every member serving the whole sequence at the end.
//!
//! Two of them also run against a broken disk that reports writes durable before they
//! are (as `forceSync=no` would, then a crash): the checks must catch the lost txn,
//! which shows they can fail.

mod sim;

use sim::{Faults, Scenario, Sim};
use zk_replication::Sid;

/// Three voters, started, with a leader and both followers serving.
fn ensemble(seed: u64) -> Sim {
    let mut sim = Sim::new(Scenario::Majority(3), seed, Faults::none());
    sim.clients = false;
    sim.start_all().unwrap();
    wait(&mut sim, 5_000, Sim::converged);
    sim
}

/// Runs until `done` holds; panics with the ensemble's state if it does not within
/// `ms`, or at a violation.
fn wait(sim: &mut Sim, ms: u64, done: impl FnMut(&Sim) -> bool) {
    let until = sim.now_ms + ms;
    match sim.run_while(until, done) {
        Ok(true) => {}
        Ok(false) => panic!("timed out\n{}\n{}", sim.describe(), sim.recent()),
        Err(e) => panic!("{e}\n{}\n{}", sim.describe(), sim.recent()),
    }
}

/// Like [`wait`], returning a violation instead of panicking on it.
fn try_wait(sim: &mut Sim, ms: u64, done: impl FnMut(&Sim) -> bool) -> Result<(), String> {
    let until = sim.now_ms + ms;
    match sim.run_while(until, done)? {
        true => Ok(()),
        false => Err(format!("timed out\n{}", sim.describe())),
    }
}

fn followers(sim: &Sim, leader: Sid) -> Vec<Sid> {
    sim.sids().into_iter().filter(|s| *s != leader).collect()
}

/// The sync headers (DIFF, TRUNC, SNAP) `to` received, from position `from` of the
/// delivery log.
fn syncs_of(sim: &Sim, to: Sid, from: usize) -> Vec<&'static str> {
    sent_to(sim, to, from)
        .into_iter()
        .filter(|name| matches!(*name, "DIFF" | "TRUNC" | "SNAP"))
        .collect()
}

/// Messages the leader sent `to`, by name, from position `from` of the delivery log.
fn sent_to(sim: &Sim, to: Sid, from: usize) -> Vec<&'static str> {
    sim.delivered[from..]
        .iter()
        .filter(|(_, _, t, name)| *t == to && *name != "PING")
        .map(|(_, _, _, name)| *name)
        .collect()
}

/// The leader logs a txn while its followers are down, wins the next election with it,
/// syncs it to the followers by DIFF, and is established; at that instant every member
/// crashes. The txn is committed: the next leader must hold it. ZooKeeper
/// 3.8.0–3.8.4 lost it, because the follower acknowledged NEWLEADER before the txn was
/// on its disk; here the acknowledgement waits for the fsync (slow on purpose).
fn newleader_acked_only_once_logged(seed: u64, broken_disk: bool) -> Result<(), String> {
    let mut sim = ensemble(seed);
    let leader = sim.leader().expect("a leader");
    let others = followers(&sim, leader);
    let z1 = sim.propose(leader)?.expect("the leader proposes");
    try_wait(&mut sim, 1_000, |s| s.committed(z1))?;
    // The followers go down; what the leader proposes now, only it logs.
    for f in &others {
        sim.crash(*f);
    }
    let z2 = sim.propose(leader)?.expect("still leading");
    try_wait(&mut sim, 3_000, |s| s.leader().is_none())?;
    for f in &others {
        sim.fsync_ms.insert(*f, 300);
        if broken_disk {
            sim.lying_fsync.insert(*f);
        }
        sim.start(*f)?;
    }
    // The leader holds the longest history: it leads the next epoch, and z2 with it.
    try_wait(&mut sim, 5_000, |s| s.leader().is_some())?;
    assert_eq!(sim.leader(), Some(leader));
    assert!(sim.committed(z2), "z2 is committed with the new epoch");
    // The leader and its followers crash at once; the followers come back.
    for sid in sim.sids() {
        sim.crash(sid);
    }
    for f in &others {
        sim.start(*f)?;
    }
    try_wait(&mut sim, 5_000, |s| s.leader().is_some())?;
    sim.start(leader)?;
    try_wait(&mut sim, 5_000, Sim::converged)
}

#[test]
fn zookeeper_4646_newleader_is_acknowledged_only_once_the_sync_is_logged() {
    for seed in 0..20 {
        if let Err(e) = newleader_acked_only_once_logged(seed, false) {
            panic!("seed {seed}: {e}");
        }
    }
}

#[test]
fn the_checks_catch_a_disk_that_acknowledges_before_it_syncs() {
    let errors: Vec<String> = (0..20)
        .filter_map(|seed| newleader_acked_only_once_logged(seed, true).err())
        .collect();
    let caught = errors
        .iter()
        .filter(|e| e.contains("lacks committed txn") || e.contains("truncates committed txn"))
        .count();
    eprintln!(
        "{caught} of 20 runs caught; the first: {:?}",
        errors.first()
    );
    assert!(
        caught >= 10,
        "a lying disk went unnoticed in {} of 20 runs",
        20 - caught
    );
}

/// The leader logs and syncs a txn no follower has (they are down), is re-elected with
/// it after they return, and sends it to them by DIFF as PROPOSAL and COMMIT. The
/// followers crash right after the epoch is established, the leader goes down too, and
/// the followers elect a leader between them: it must hold the txn. ZooKeeper ≤ 3.6.2
/// lost it (followers logged the DIFF only after UPTODATE).
#[test]
fn zookeeper_3911_a_diff_of_the_leaders_uncommitted_log_survives_the_followers() {
    for seed in 0..20 {
        let mut sim = ensemble(seed);
        let leader = sim.leader().unwrap();
        let others = followers(&sim, leader);
        for f in &others {
            sim.crash(*f);
        }
        let z = sim.propose(leader).unwrap().expect("still leading");
        wait(&mut sim, 3_000, |s| s.leader().is_none());
        assert!(!sim.committed(z));
        for f in &others {
            sim.start(*f).unwrap();
        }
        wait(&mut sim, 5_000, |s| s.leader().is_some());
        assert_eq!(sim.leader(), Some(leader), "seed {seed}");
        assert!(sim.committed(z));
        // Let the followers receive UPTODATE, then everyone crashes.
        wait(&mut sim, 1_000, |s| {
            others.iter().any(|f| s.nodes[f].serving())
        });
        for sid in sim.sids() {
            sim.crash(sid);
        }
        for f in &others {
            sim.start(*f).unwrap();
        }
        wait(&mut sim, 5_000, |s| s.leader().is_some());
        sim.start(leader).unwrap();
        wait(&mut sim, 5_000, Sim::converged);
    }
}

/// A follower far behind is sent a snapshot and crashes (or its leader does) before the
/// snapshot is complete. ZooKeeper ≤ 3.5.6 kept the half-loaded state in memory, so
/// the next sync was an empty DIFF from the snapshot's zxid and the txns before it were
/// never logged. Here a snapshot changes nothing durable until it is whole: the follower
/// reports its old zxid, and is sent a snapshot again.
#[test]
fn zookeeper_3642_a_partial_snapshot_leaves_no_trace() {
    for (seed, crash_leader) in (0..20).map(|s| (s, s % 2 == 1)) {
        let mut sim = ensemble(seed);
        let leader = sim.leader().unwrap();
        let lagging = followers(&sim, leader)[0];
        sim.crash(lagging);
        // Far more txns than a DIFF may carry.
        for _ in 0..60 {
            sim.propose(leader).unwrap();
            sim.run_until(sim.now_ms + 5).unwrap();
        }
        let mark = sim.delivered.len();
        sim.start(lagging).unwrap();
        wait(&mut sim, 5_000, |s| s.nodes[&lagging].receiving_snapshot());
        if crash_leader {
            sim.crash(leader);
        } else {
            sim.crash(lagging);
            sim.start(lagging).unwrap();
        }
        let second = sim.delivered.len();
        if crash_leader {
            wait(&mut sim, 8_000, |s| s.leader().is_some());
            sim.start(leader).unwrap();
        }
        wait(&mut sim, 8_000, Sim::converged);
        assert_eq!(syncs_of(&sim, lagging, mark)[0], "SNAP", "seed {seed}");
        let again = syncs_of(&sim, lagging, second);
        if !crash_leader {
            // The new leader may have a shorter history than the one that sent the
            // snapshot; from the same leader, the old zxid gets a snapshot again.
            assert_eq!(
                again[0], "SNAP",
                "seed {seed}: the old zxid is reported again"
            );
        }
    }
}

/// A follower joins an established leader while a proposal is outstanding: it gets
/// DIFF, that PROPOSAL, NEWLEADER, then the proposal's COMMIT, then UPTODATE. ZooKeeper
/// 3.8 threw a NullPointerException on that COMMIT (it had dropped the proposal when it
/// logged it at NEWLEADER) and the follower re-synced over and over.
#[test]
fn zookeeper_4394_a_commit_between_newleader_and_uptodate() {
    for seed in 0..20 {
        let mut sim = ensemble(seed);
        let leader = sim.leader().unwrap();
        let others = followers(&sim, leader);
        let (late, synced) = (others[0], others[1]);
        sim.crash(late);
        wait(&mut sim, 1_000, |s| s.leader() == Some(leader));
        // The synced follower acknowledges in 100 ms, the late one's disk is slower:
        // the commit reaches the late one before it acknowledges NEWLEADER.
        sim.fsync_ms.insert(synced, 100);
        sim.fsync_ms.insert(late, 300);
        let mark = sim.delivered.len();
        sim.start(late).unwrap();
        wait(&mut sim, 5_000, |s| {
            s.delivered[mark..].iter().any(|(_, from, to, name)| {
                *from == late && *to == leader && *name == "FOLLOWERINFO"
            })
        });
        let z = sim.propose(leader).unwrap().expect("leading");
        wait(&mut sim, 5_000, |s| s.nodes[&late].serving());
        wait(&mut sim, 5_000, Sim::converged);
        assert!(sim.committed(z));
        let order = sent_to(&sim, late, mark);
        assert_eq!(
            &order[..5],
            ["LEADERINFO", "DIFF", "PROPOSAL", "NEWLEADER", "COMMIT"],
            "seed {seed}"
        );
        assert_eq!(order[5], "UPTODATE", "seed {seed}");
        assert_eq!(sim.left_serving.get(&late), None, "seed {seed}: re-synced");
    }
}

/// A follower that missed a txn (a session's close, in ZooKeeper's report) is sent it
/// by DIFF and crashes after the PROPOSAL and COMMIT, before NEWLEADER. ZooKeeper
/// before 3.5.3 had already moved its last-processed zxid past the txn, so the next
/// sync was empty and the txn (and the ephemeral it deleted) never applied. Here only
/// what is logged counts: the follower reports what it logged and gets the txn again.
#[test]
fn zookeeper_2355_a_crash_mid_diff_does_not_skip_the_txn() {
    for seed in 0..20 {
        let mut sim = ensemble(seed);
        let leader = sim.leader().unwrap();
        let lagging = followers(&sim, leader)[0];
        sim.crash(lagging);
        let z = sim.propose(leader).unwrap().expect("leading");
        wait(&mut sim, 1_000, |s| s.committed(z));
        let mark = sim.delivered.len();
        sim.start(lagging).unwrap();
        wait(&mut sim, 5_000, |s| {
            sent_to(s, lagging, mark).contains(&"COMMIT")
        });
        sim.crash(lagging);
        sim.start(lagging).unwrap();
        wait(&mut sim, 5_000, Sim::converged);
        assert!(
            sim.nodes[&lagging].applied.iter().any(|e| e.zxid == z),
            "seed {seed}"
        );
    }
}

/// Autopurge: a leader cuts its history at a snapshot (`Zab::compact`) and its log up to
/// it goes. A follower that was down since before the cut is synced by SNAP, one that
/// reports the cut's zxid by DIFF; after more txns the leader restarts from its cut log,
/// and every member ends with the whole sequence. The cut is refused at a zxid the
/// history does not hold.
#[test]
fn a_history_cut_at_a_snapshot_syncs_an_older_follower_by_snap() {
    for seed in 0..10 {
        let mut sim = ensemble(seed);
        let leader = sim.leader().unwrap();
        let (behind, current) = match followers(&sim, leader)[..] {
            [a, b] => (a, b),
            _ => unreachable!("three members"),
        };
        sim.crash(behind);
        let mut last = None;
        for _ in 0..5 {
            last = sim.propose(leader).unwrap();
            sim.run_until(sim.now_ms + 5).unwrap();
        }
        let last = last.expect("still leading");
        wait(&mut sim, 2_000, |s| {
            s.nodes[&leader]
                .zab
                .as_ref()
                .is_some_and(|z| z.applied() == last)
                && s.nodes[&current]
                    .zab
                    .as_ref()
                    .is_some_and(|z| z.applied() == last)
        });
        let beyond = zk_jute::Zxid(last.0 + 1);
        assert_eq!(
            sim.nodes
                .get_mut(&leader)
                .unwrap()
                .zab
                .as_mut()
                .unwrap()
                .compact(beyond),
            Err(zk_replication::CompactError::NotInHistory(beyond))
        );
        assert_eq!(sim.compact(leader), Ok(last), "seed {seed}");
        assert_eq!(
            sim.nodes[&leader].zab.as_ref().unwrap().history().base(),
            last
        );

        let mark = sim.delivered.len();
        sim.crash(current);
        sim.start(current).unwrap();
        sim.start(behind).unwrap();
        wait(&mut sim, 8_000, Sim::converged);
        assert_eq!(syncs_of(&sim, current, mark)[0], "DIFF", "seed {seed}");
        assert_eq!(syncs_of(&sim, behind, mark)[0], "SNAP", "seed {seed}");

        for _ in 0..3 {
            sim.propose(leader).unwrap();
            sim.run_until(sim.now_ms + 5).unwrap();
        }
        wait(&mut sim, 2_000, Sim::converged);
        sim.crash(leader);
        wait(&mut sim, 8_000, |s| s.leader().is_some());
        sim.start(leader).unwrap();
        wait(&mut sim, 8_000, Sim::converged);
    }
}
