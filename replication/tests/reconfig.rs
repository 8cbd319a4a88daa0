//! Reconfiguration in the core: a leader counts a quorum of both memberships from the
//! reconfiguration on, activates the new one when it commits, and tells followers and
//! observers which leader it has; a follower activates it when told.

use zk_jute::Zxid;
use zk_replication::{
    Config, Entry, History, Input, Membership, Message, Output, Persisted, ProposeError, Sid,
    State, Zab,
};

fn z(epoch: u32, counter: u32) -> Zxid {
    Zxid::new(epoch, counter)
}

const THREE: &str = "server.1=h:11:21:participant\nserver.2=h:12:22:participant\n\
                     server.3=h:13:23:participant";

fn config(reconfig_enabled: bool) -> Config {
    let mut config = Config::majority([1, 2, 3], []);
    config.reconfig_enabled = reconfig_enabled;
    config.membership = Membership {
        version: 0,
        text: THREE.into(),
    };
    config
}

fn member(sid: Sid, config: Config) -> Zab {
    let persisted = Persisted {
        accepted_epoch: 1,
        current_epoch: 1,
        history: History::from_zxids(Zxid(0), []).unwrap(),
    };
    Zab::new(config, sid, persisted).unwrap()
}

fn sends(out: &[Output]) -> Vec<(Sid, Message)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to, message } => Some((*to, message.clone())),
            _ => None,
        })
        .collect()
}

fn receive(zab: &mut Zab, from: Sid, message: Message) -> Vec<Output> {
    zab.handle(0, Input::Receive { from, message })
}

/// Learner `sid` connects to `leader` and syncs (an empty history: DIFF).
fn join(leader: &mut Zab, sid: Sid, observer: bool) {
    let info = Message::LearnerInfo {
        accepted_epoch: 1,
        observer,
        election_epoch: 7,
    };
    receive(leader, sid, info);
    let ack = Message::AckEpoch {
        current_epoch: 1,
        last_zxid: Zxid(0),
        snapshot_zxid: Zxid(0),
        already_accepted: false,
    };
    receive(leader, sid, ack);
    let out = receive(leader, sid, Message::AckNewLeader { zxid: z(2, 0) });
    if leader.is_serving() {
        assert!(sends(&out).contains(&(sid, Message::UpToDate)), "{out:?}");
    }
}

/// Leader 1 of epoch 2 with follower 2 synced.
fn leader(reconfig_enabled: bool) -> Zab {
    let mut leader = member(1, config(reconfig_enabled));
    leader.handle(0, Input::Lead { election_epoch: 7 });
    join(&mut leader, 2, false);
    assert!(leader.is_serving());
    leader
}

/// Server 2 following leader 1 of epoch 2, synced by an empty DIFF, before NEWLEADER.
fn syncing_follower() -> Zab {
    let mut follower = member(2, config(true));
    let follow = Input::Follow {
        leader: 1,
        election_epoch: 7,
    };
    follower.handle(0, follow);
    follower.handle(0, Input::Connected { peer: 1 });
    receive(&mut follower, 1, Message::LeaderInfo { epoch: 2 });
    receive(&mut follower, 1, Message::Diff { committed: Zxid(0) });
    follower
}

fn membership(version: Zxid, text: &str) -> Membership {
    Membership {
        version: version.0,
        text: text.into(),
    }
}

/// Has `leader` propose, as its next zxid, the reconfiguration to the membership `text`;
/// returns that zxid, the membership and what the leader said.
fn propose_reconfig(leader: &mut Zab, text: &str) -> (Zxid, Membership, Vec<Output>) {
    let zxid = leader.next_zxid().unwrap();
    let next = membership(zxid, text);
    let out = leader.handle(
        0,
        Input::ProposeReconfig {
            entry: Entry::new(zxid, "reconfig"),
            membership: next.clone(),
        },
    );
    (zxid, next, out)
}

#[test]
fn a_joining_voter_must_acknowledge_before_the_reconfiguration_commits() {
    let mut leader = leader(true);
    // Server 4 is no member yet: with reconfiguration on it follows without a vote.
    join(&mut leader, 4, false);
    let four = format!("{THREE}\nserver.4=h:14:24:participant");
    let (zxid, next, out) = propose_reconfig(&mut leader, &four);
    let proposal = Message::Reconfig {
        entry: Entry::new(zxid, "reconfig"),
        membership: next.clone(),
    };
    assert_eq!(sends(&out), [(2, proposal.clone()), (4, proposal)]);
    // Leader, 2 and 4 are synced: a quorum of the new membership, as a reconfiguration
    // needs; without 4 they would not be.
    assert!(leader.is_quorum_synced(&next.parse().unwrap().0));
    // A write after the reconfiguration needs both quorums as well.
    let after = Entry::new(z(2, 2), "after");
    leader.handle(0, Input::Propose(after.clone()));
    leader.handle(0, Input::Durable { zxid: z(2, 2) });
    // Leader and server 2: a quorum of {1, 2, 3}, not of {1, 2, 3, 4}.
    let out = receive(&mut leader, 2, Message::Ack { zxid: z(2, 2) });
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(leader.next_membership(), Some(&next));
    // Server 4's ACK makes three of four: the reconfiguration commits and activates,
    // and the write after it commits under the new membership.
    let out = receive(&mut leader, 4, Message::Ack { zxid: z(2, 2) });
    let activate = Message::CommitAndActivate { zxid, leader: 1 };
    let commit = Message::Commit { zxid: z(2, 2) };
    assert_eq!(
        sends(&out),
        [
            (2, activate.clone()),
            (4, activate),
            (2, commit.clone()),
            (4, commit)
        ]
    );
    let activated = out
        .iter()
        .position(
            |o| matches!(o, Output::Activated { membership, leader: 1 } if *membership == next),
        )
        .expect("activated");
    let delivered = out
        .iter()
        .position(|o| matches!(o, Output::Deliver(e) if e.zxid == zxid))
        .expect("delivered");
    assert!(
        delivered < activated,
        "the txn is applied before its membership is active"
    );
    assert!(leader.config().is_voter(4));
    assert_eq!(leader.config().membership, next);
    assert_eq!(leader.next_membership(), None);
    assert!(leader.is_serving());
}

#[test]
fn observers_are_informed_and_activate() {
    let mut leader = leader(true);
    join(&mut leader, 5, true);
    let text = format!("{THREE}\nserver.5=h:15:25:observer");
    let zxid = leader.next_zxid().unwrap();
    let next = membership(zxid, &text);
    let entry = Entry::new(zxid, "reconfig");
    leader.handle(
        0,
        Input::ProposeReconfig {
            entry: entry.clone(),
            membership: next.clone(),
        },
    );
    leader.handle(0, Input::Durable { zxid });
    let out = receive(&mut leader, 2, Message::Ack { zxid });
    assert_eq!(
        sends(&out),
        [
            (2, Message::CommitAndActivate { zxid, leader: 1 }),
            (
                5,
                Message::InformAndActivate {
                    entry,
                    membership: next,
                    leader: 1
                }
            )
        ]
    );
    assert!(leader.config().observers.contains(&5));
}

#[test]
fn reconfiguration_is_refused_when_off_pending_or_unreadable() {
    let mut off = leader(false);
    let zxid = off.next_zxid().unwrap();
    let mut out = Vec::new();
    let refused = off.propose_reconfig(0, Entry::new(zxid, "r"), membership(zxid, THREE), &mut out);
    assert!(
        matches!(refused, Err(ProposeError::Reconfig(_))),
        "{refused:?}"
    );
    // Off, a server outside the membership may not follow.
    let info = Message::LearnerInfo {
        accepted_epoch: 1,
        observer: false,
        election_epoch: 7,
    };
    let mut out = receive(&mut off, 4, info);
    assert!(out.contains(&Output::Disconnect { peer: 4 }));

    let mut on = leader(true);
    let zxid = on.next_zxid().unwrap();
    let bad = on.propose_reconfig(
        0,
        Entry::new(zxid, "r"),
        membership(zxid, "server.x=1"),
        &mut out,
    );
    assert!(matches!(bad, Err(ProposeError::Reconfig(_))), "{bad:?}");
    on.propose_reconfig(0, Entry::new(zxid, "r"), membership(zxid, THREE), &mut out)
        .unwrap();
    let next = on.next_zxid().unwrap();
    let again = on.propose_reconfig(0, Entry::new(next, "r"), membership(next, THREE), &mut out);
    assert!(matches!(again, Err(ProposeError::Reconfig(_))), "{again:?}");
}

#[test]
fn a_follower_activates_on_commit_and_looks_when_its_leader_goes() {
    let mut follower = syncing_follower();
    receive(
        &mut follower,
        1,
        Message::NewLeader {
            zxid: z(2, 0),
            membership: None,
            pending: false,
        },
    );
    follower.handle(0, Input::Durable { zxid: Zxid(0) });
    receive(&mut follower, 1, Message::UpToDate);
    assert!(follower.is_serving());
    // Server 1 leaves; server 2 is to lead the rest.
    let text = "server.2=h:12:22:participant\nserver.3=h:13:23:participant";
    let zxid = z(2, 1);
    let next = membership(zxid, text);
    let entry = Entry::new(zxid, "reconfig");
    let out = receive(
        &mut follower,
        1,
        Message::Reconfig {
            entry: entry.clone(),
            membership: next.clone(),
        },
    );
    assert_eq!(out, [Output::Append(entry.clone())]);
    let out = receive(
        &mut follower,
        1,
        Message::CommitAndActivate { zxid, leader: 2 },
    );
    assert_eq!(out[0], Output::Deliver(entry));
    assert_eq!(
        out[1],
        Output::Activated {
            membership: next.clone(),
            leader: 2
        }
    );
    assert!(out.contains(&Output::State(State::Looking)), "{out:?}");
    assert!(!follower.config().is_voter(1));
    assert_eq!(follower.config().membership, next);
}

#[test]
fn a_first_membership_takes_the_version_of_the_epoch_that_establishes_it() {
    // ZOOKEEPER-1783: version 0 becomes NEWLEADER's zxid, with reconfiguration on only.
    let on = leader(true);
    assert_eq!(on.config().membership.version, z(2, 0).0);
    assert_eq!(on.config().membership.text, THREE);
    let off = leader(false);
    assert_eq!(off.config().membership.version, 0);

    // The learner hears it with NEWLEADER and activates it with UPTODATE.
    let mut learner = syncing_follower();
    let first = membership(z(2, 0), THREE);
    let newleader = Message::NewLeader {
        zxid: z(2, 0),
        membership: Some(first.clone()),
        pending: false,
    };
    receive(&mut learner, 1, newleader);
    learner.handle(0, Input::Durable { zxid: Zxid(0) });
    assert_eq!(learner.config().membership.version, 0);
    let out = receive(&mut learner, 1, Message::UpToDate);
    assert!(out.contains(&Output::Activated {
        membership: first,
        leader: 1
    }));
    assert!(learner.is_serving());
    assert_eq!(learner.config().membership.version, z(2, 0).0);
}

#[test]
fn a_removed_leader_hands_over_to_a_new_voter_that_acknowledged() {
    let mut leader = leader(true);
    join(&mut leader, 3, false);
    let without_one = "server.2=h:12:22:participant\nserver.3=h:13:23:participant";
    let (zxid, next, _) = propose_reconfig(&mut leader, without_one);
    leader.handle(0, Input::Durable { zxid });
    // With server 3's ACK, the leader's and 3's make a quorum of {1, 2, 3}, not of
    // {2, 3}: nothing commits.
    let out = receive(&mut leader, 3, Message::Ack { zxid });
    assert!(out.is_empty(), "{out:?}");
    let out = receive(&mut leader, 2, Message::Ack { zxid });
    // Both acknowledged, none ahead of the other: the smaller id leads.
    let activate = Message::CommitAndActivate { zxid, leader: 2 };
    assert_eq!(sends(&out), [(2, activate.clone()), (3, activate)]);
    assert!(out.contains(&Output::Activated {
        membership: next,
        leader: 2
    }));
    // Removed, the old leader leaves its role.
    assert!(out.contains(&Output::State(State::Looking)), "{out:?}");
    assert_eq!(leader.state(), State::Looking);
}

#[test]
fn a_late_learner_activates_a_reconfiguration_in_flight_only_when_it_commits() {
    // The leader is established and a reconfiguration removing server 1 is in flight:
    // the learner gets its txn as a proposal, and NEWLEADER names it as pending.
    let mut learner = syncing_follower();
    let zxid = z(2, 1);
    let without_one = "server.2=h:12:22:participant\nserver.3=h:13:23:participant";
    let next = membership(zxid, without_one);
    let entry = Entry::new(zxid, "reconfig");
    receive(&mut learner, 1, Message::Proposal(entry.clone()));
    let newleader = Message::NewLeader {
        zxid: z(2, 0),
        membership: Some(next.clone()),
        pending: true,
    };
    receive(&mut learner, 1, newleader);
    let out = learner.handle(0, Input::Durable { zxid });
    // Its ACK goes out with NEWLEADER's.
    assert!(sends(&out).contains(&(1, Message::Ack { zxid })), "{out:?}");
    let out = receive(&mut learner, 1, Message::UpToDate);
    // Activating it here took the learner out of the very epoch that needs its ACK.
    assert!(
        !out.iter().any(|o| matches!(o, Output::Activated { .. })),
        "{out:?}"
    );
    assert!(learner.is_serving());
    assert!(learner.config().is_voter(1));
    // The commit activates it.
    let out = receive(
        &mut learner,
        1,
        Message::CommitAndActivate { zxid, leader: 2 },
    );
    assert!(out.contains(&Output::Activated {
        membership: next.clone(),
        leader: 2
    }));
    assert_eq!(learner.config().membership, next);
}

#[test]
fn a_looking_member_adopts_a_pending_membership_a_peer_counts() {
    // A learner logged a reconfiguration and lost its leader before the commit.
    let mut learner = syncing_follower();
    let newleader = Message::NewLeader {
        zxid: z(2, 0),
        membership: None,
        pending: false,
    };
    receive(&mut learner, 1, newleader);
    learner.handle(0, Input::Durable { zxid: Zxid(0) });
    receive(&mut learner, 1, Message::UpToDate);
    let zxid = z(2, 1);
    let without_one = "server.2=h:12:22:participant\nserver.3=h:13:23:participant";
    let next = membership(zxid, without_one);
    let entry = Entry::new(zxid, "reconfig");
    receive(
        &mut learner,
        1,
        Message::Reconfig {
            entry,
            membership: next.clone(),
        },
    );
    learner.handle(0, Input::Disconnected { peer: 1 });
    assert_eq!(learner.state(), State::Looking);
    // An unrelated version changes nothing.
    let out = learner.handle(
        0,
        Input::MembershipHeard {
            version: zxid.0 + 1,
        },
    );
    assert!(out.is_empty(), "{out:?}");
    // A peer counts it: it was committed. Adopted, and a new round asked for.
    let out = learner.handle(0, Input::MembershipHeard { version: zxid.0 });
    assert!(out.contains(&Output::Activated {
        membership: next.clone(),
        leader: 2
    }));
    assert_eq!(out.last(), Some(&Output::State(State::Looking)));
    assert_eq!(learner.config().membership, next);
}

#[test]
fn no_follower_applies_on_the_leaders_log_past_a_reconfiguration_in_flight() {
    // The leader says nothing of its log while a reconfiguration is in flight.
    let mut leader = leader(true);
    let request = Message::Request {
        data: "create /a".into(),
    };
    receive(&mut leader, 2, request.clone());
    let (zxid, _, _) = propose_reconfig(&mut leader, THREE);
    let out = leader.handle(0, Input::Durable { zxid });
    assert!(sends(&out).is_empty(), "{out:?}");
    // A follower told of the leader's log applies what comes before the reconfiguration
    // on it, and waits for COMMITANDACTIVATE for the rest.
    let mut follower = syncing_follower();
    let newleader = Message::NewLeader {
        zxid: z(2, 0),
        membership: None,
        pending: false,
    };
    receive(&mut follower, 1, newleader);
    receive(&mut follower, 1, Message::UpToDate);
    assert!(follower.is_serving());
    let (a, b) = (Entry::new(z(2, 1), "a"), Entry::new(z(2, 3), "b"));
    let reconfig = Message::Reconfig {
        entry: Entry::new(z(2, 2), "reconfig"),
        membership: membership(z(2, 2), THREE),
    };
    receive(&mut follower, 1, Message::Proposal(a.clone()));
    receive(&mut follower, 1, reconfig);
    receive(&mut follower, 1, Message::Proposal(b.clone()));
    receive(&mut follower, 1, Message::Logged { zxid: b.zxid });
    let out = follower.handle(0, Input::Durable { zxid: b.zxid });
    let delivered: Vec<Zxid> = out
        .iter()
        .filter_map(|o| match o {
            Output::Deliver(e) => Some(e.zxid),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, [a.zxid]);
    let activate = Message::CommitAndActivate {
        zxid: z(2, 2),
        leader: 1,
    };
    let out = receive(&mut follower, 1, activate);
    assert!(follower.is_serving(), "{out:?}");
    assert!(!out.contains(&Output::Deliver(b.clone())), "{out:?}");
    let out = receive(&mut follower, 1, Message::Commit { zxid: b.zxid });
    assert_eq!(out, [Output::Deliver(b)]);
}

#[test]
fn a_reconfiguration_proposed_during_a_learners_sync_waits_for_its_commit() {
    let four = format!("{THREE}\nserver.4=h:14:24:participant");
    let five = format!("{four}\nserver.5=h:15:25:participant");
    for named in [None, Some(membership(z(1, 3), &four))] {
        let mut follower = syncing_follower();
        let newleader = Message::NewLeader {
            zxid: z(2, 0),
            membership: named.clone(),
            pending: false,
        };
        receive(&mut follower, 1, newleader);
        // Proposed after NEWLEADER went out: the learner logs it before UPTODATE.
        let next = membership(z(2, 1), &five);
        let reconfig = Message::Reconfig {
            entry: Entry::new(z(2, 1), "reconfig"),
            membership: next.clone(),
        };
        receive(&mut follower, 1, reconfig);
        let out = receive(&mut follower, 1, Message::UpToDate);
        assert!(follower.is_serving());
        // The membership NEWLEADER named is active; the one in flight is not.
        let activated: Vec<&Membership> = out
            .iter()
            .filter_map(|o| match o {
                Output::Activated { membership, .. } => Some(membership),
                _ => None,
            })
            .collect();
        assert_eq!(activated, named.iter().collect::<Vec<_>>(), "{out:?}");
        let active = named.clone().unwrap_or_else(|| membership(Zxid(0), THREE));
        assert_eq!(follower.config().membership, active);
        assert_eq!(follower.next_membership(), Some(&next));
        // Its commit activates it.
        let activate = Message::CommitAndActivate {
            zxid: z(2, 1),
            leader: 1,
        };
        let out = receive(&mut follower, 1, activate);
        assert!(follower.is_serving(), "{out:?}");
        assert_eq!(follower.config().membership, next);
    }
}
