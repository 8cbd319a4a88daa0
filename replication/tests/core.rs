//! The core's rules one at a time: members driven by hand, outputs checked exactly.

use zk_jute::Zxid;
use zk_replication::{
    Config, Entry, History, Input, Message, Output, Persisted, ProposeError, Sid, State, Zab,
};

fn z(epoch: u32, counter: u32) -> Zxid {
    Zxid::new(epoch, counter)
}

fn member(sid: Sid, epochs: (u32, u32), zxids: &[Zxid]) -> Zab {
    let persisted = Persisted {
        accepted_epoch: epochs.0,
        current_epoch: epochs.1,
        history: History::from_zxids(Zxid(0), zxids.iter().copied()).unwrap(),
    };
    Zab::new(Config::majority([1, 2, 3], [4]), sid, persisted).unwrap()
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

fn info(observer: bool) -> Message {
    Message::LearnerInfo {
        accepted_epoch: 1,
        observer,
        election_epoch: 7,
    }
}

/// A voter's `ACKEPOCH`.
fn ack_epoch(current_epoch: u32, last_zxid: Zxid, snapshot_zxid: Zxid) -> Message {
    Message::AckEpoch {
        current_epoch,
        last_zxid,
        snapshot_zxid,
        already_accepted: false,
    }
}

/// `leader` leads; learner 2 connects and acknowledges the epoch with `ack`. Returns what
/// the leader does then (the sync, once a quorum of two is there).
fn sync_learner(leader: &mut Zab, ack: Message) -> Vec<Output> {
    leader.handle(0, Input::Lead { election_epoch: 7 });
    receive(leader, 2, info(false));
    receive(leader, 2, ack)
}

/// A leader of epoch 2 with follower 2 connected and synced; `history` on both.
fn established(history: &[Zxid]) -> Zab {
    let mut leader = member(1, (1, 1), history);
    leader.handle(0, Input::Lead { election_epoch: 7 });
    receive(&mut leader, 2, info(false));
    let last = history.last().copied().unwrap_or_default();
    receive(
        &mut leader,
        2,
        Message::AckEpoch {
            current_epoch: 1,
            last_zxid: last,
            snapshot_zxid: Zxid(0),
            already_accepted: false,
        },
    );
    receive(&mut leader, 2, Message::AckNewLeader { zxid: z(2, 0) });
    assert!(leader.is_serving());
    leader
}

#[test]
fn the_new_epoch_is_written_before_anyone_hears_of_it() {
    let mut leader = member(1, (4, 3), &[z(3, 1)]);
    leader.handle(0, Input::Lead { election_epoch: 7 });
    let out = receive(
        &mut leader,
        2,
        Message::LearnerInfo {
            accepted_epoch: 6,
            observer: false,
            election_epoch: 7,
        },
    );
    // max(4, 6) + 1
    assert_eq!(out[0], Output::SetAcceptedEpoch(7));
    assert_eq!(sends(&out), [(2, Message::LeaderInfo { epoch: 7 })]);
}

#[test]
fn a_learner_of_another_round_or_role_is_refused() {
    let mut leader = member(1, (1, 1), &[]);
    leader.handle(0, Input::Lead { election_epoch: 7 });
    let out = receive(
        &mut leader,
        2,
        Message::LearnerInfo {
            accepted_epoch: 1,
            observer: false,
            election_epoch: 6,
        },
    );
    assert_eq!(out, [Output::Disconnect { peer: 2 }]);
    // Server 4 is an observer; it cannot join as a follower.
    let out = receive(&mut leader, 4, info(false));
    assert_eq!(out, [Output::Disconnect { peer: 4 }]);
}

#[test]
fn a_learner_heard_before_the_election_ends_here_is_taken_up_once_leading() {
    // Learner 2 was told of the election first, and its LEARNERINFO arrives while this
    // member still looks; learner 3's arrives too, but its stream breaks before.
    let mut leader = member(1, (1, 1), &[]);
    assert!(receive(&mut leader, 2, info(false)).is_empty());
    assert!(receive(&mut leader, 3, info(false)).is_empty());
    leader.handle(0, Input::Disconnected { peer: 3 });
    let out = leader.handle(0, Input::Lead { election_epoch: 7 });
    assert!(out.contains(&Output::SetAcceptedEpoch(2)), "{out:?}");
    assert_eq!(sends(&out), [(2, Message::LeaderInfo { epoch: 2 })]);
    // An early learner of another round is refused once leading, as any would be.
    let mut leader = member(1, (1, 1), &[]);
    let stale = Message::LearnerInfo {
        accepted_epoch: 1,
        observer: false,
        election_epoch: 6,
    };
    assert!(receive(&mut leader, 2, stale).is_empty());
    let out = leader.handle(0, Input::Lead { election_epoch: 7 });
    assert!(out.contains(&Output::Disconnect { peer: 2 }), "{out:?}");
}

#[test]
fn a_voter_ahead_of_the_leader_makes_it_step_down() {
    let mut leader = member(1, (1, 1), &[z(1, 1)]);
    let out = sync_learner(&mut leader, ack_epoch(1, z(1, 2), Zxid(0)));
    assert!(out.contains(&Output::State(State::Looking)));
}

#[test]
fn the_sync_is_diff_or_trunc_by_the_learners_history() {
    let history = [z(1, 1), z(1, 2), z(1, 3), z(3, 1), z(3, 2)];
    let cases = [
        // A prefix of the leader's log: the rest, read from the log.
        (z(1, 2), Message::Diff { committed: z(1, 2) }, Some(z(1, 2))),
        // The same log: nothing to send.
        (z(3, 2), Message::Diff { committed: z(3, 2) }, None),
        // Txns of epoch 2 the leader never had: back to 1:3, then epoch 3.
        (
            z(2, 5),
            Message::Trunc {
                zxid: z(1, 3),
                committed: z(1, 3),
            },
            Some(z(1, 3)),
        ),
        // Past the leader's last zxid.
        (
            z(3, 9),
            Message::Trunc {
                zxid: z(3, 2),
                committed: z(3, 2),
            },
            None,
        ),
    ];
    for (peer, header, read_after) in cases {
        let mut leader = member(1, (3, 3), &history);
        leader.handle(0, Input::Lead { election_epoch: 7 });
        receive(&mut leader, 2, info(false));
        let out = receive(
            &mut leader,
            2,
            Message::AckEpoch {
                current_epoch: 2,
                last_zxid: peer,
                snapshot_zxid: Zxid(0),
                already_accepted: false,
            },
        );
        let sent: Vec<Message> = sends(&out).into_iter().map(|(_, m)| m).collect();
        assert_eq!(sent[0], header, "{peer}");
        let read = out.iter().find_map(|o| match o {
            Output::ReadLog {
                stream,
                after,
                through,
                ..
            } => Some((*stream, *after, *through)),
            _ => None,
        });
        let Some(after) = read_after else {
            assert_eq!(read, None, "{peer}");
            assert_eq!(
                sent[1..],
                [Message::NewLeader {
                    zxid: z(4, 0),
                    membership: None,
                    pending: false
                }]
            );
            continue;
        };
        let (stream, from, through) = read.expect("a log read");
        assert_eq!((from, through), (after, z(3, 2)), "{peer}");
        // NEWLEADER waits for the entries, which go out as PROPOSAL and COMMIT.
        assert_eq!(sent.len(), 1, "{sent:?}");
        let entries: Vec<Entry> = history
            .iter()
            .filter(|x| **x > after)
            .map(|x| Entry::new(*x, "t"))
            .collect();
        let n = entries.len();
        let out = leader.handle(
            0,
            Input::LogRead {
                learner: 2,
                stream,
                entries,
                last: true,
            },
        );
        let sent: Vec<Message> = sends(&out).into_iter().map(|(_, m)| m).collect();
        assert_eq!(sent.len(), 2 * n + 1, "{sent:?}");
        assert!(matches!(sent[0], Message::Proposal(_)));
        assert!(matches!(sent[1], Message::Commit { .. }));
        assert_eq!(
            sent.last(),
            Some(&Message::NewLeader {
                zxid: z(4, 0),
                membership: None,
                pending: false
            })
        );
    }
}

#[test]
fn a_log_read_that_skips_a_txn_drops_the_learner() {
    let history = [z(1, 1), z(1, 2), z(1, 3)];
    let mut leader = member(1, (1, 1), &history);
    let out = sync_learner(&mut leader, ack_epoch(1, z(1, 1), Zxid(0)));
    let stream = out
        .iter()
        .find_map(|o| match o {
            Output::ReadLog { stream, .. } => Some(*stream),
            _ => None,
        })
        .unwrap();
    let out = leader.handle(
        0,
        Input::LogRead {
            learner: 2,
            stream,
            entries: vec![Entry::new(z(1, 3), "t")],
            last: true,
        },
    );
    assert_eq!(out, [Output::Disconnect { peer: 2 }]);
}

#[test]
fn a_learner_too_far_behind_or_below_the_log_gets_a_snapshot_then_the_rest() {
    let history: Vec<Zxid> = (1..=50).map(|c| z(1, c)).collect();
    let mut leader = member(1, (1, 1), &history);
    let out = sync_learner(&mut leader, ack_epoch(0, Zxid(0), Zxid(0)));
    // 50 txns are within the default limit: from the log on disk, not memory (a
    // restarted leader holds none of them in memory).
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::ReadLog { learner: 2, after, through, .. } if *after == Zxid(0) && *through == z(1, 50))),
        "{out:?}"
    );
    let mut config = Config::majority([1, 2, 3], [4]);
    config.diff_max_txns = 10;
    let persisted = Persisted {
        accepted_epoch: 1,
        current_epoch: 1,
        history: History::from_zxids(Zxid(0), history.iter().copied()).unwrap(),
    };
    let mut leader = Zab::new(config, 1, persisted).unwrap();
    let out = sync_learner(&mut leader, ack_epoch(0, Zxid(0), Zxid(0)));
    let stream = out
        .iter()
        .find_map(|o| match o {
            Output::SendSnapshot {
                learner: 2,
                stream,
                zxid,
            } if *zxid == z(1, 50) => Some(*stream),
            _ => None,
        })
        .expect("a snapshot");
    // NEWLEADER waits behind the snapshot; so does a ping.
    assert_eq!(sends(&out), [(2, Message::Snap { zxid: z(1, 50) })]);
    let out = leader.handle(1_000, Input::Tick);
    assert!(sends(&out).is_empty(), "{out:?}");
    // A piece of another stream is ignored; the last piece releases what was held.
    let stale = leader.handle(
        1_000,
        Input::SnapshotPiece {
            learner: 2,
            stream: stream + 100,
            data: "x".into(),
            last: true,
        },
    );
    assert!(stale.is_empty());
    let out = leader.handle(
        1_000,
        Input::SnapshotPiece {
            learner: 2,
            stream,
            data: "tree".into(),
            last: true,
        },
    );
    let names: Vec<&str> = sends(&out).iter().map(|(_, m)| m.name()).collect();
    assert_eq!(names, ["SNAP piece", "NEWLEADER", "PING"]);
}

#[test]
fn newleader_is_acknowledged_only_once_the_sync_is_durable() {
    let mut learner = member(2, (1, 1), &[z(1, 1)]);
    learner.handle(
        0,
        Input::Follow {
            leader: 1,
            election_epoch: 7,
        },
    );
    learner.handle(0, Input::Connected { peer: 1 });
    let out = receive(&mut learner, 1, Message::LeaderInfo { epoch: 2 });
    assert_eq!(out[0], Output::SetAcceptedEpoch(2));
    receive(&mut learner, 1, Message::Diff { committed: z(1, 1) });
    let entry = Entry::new(z(1, 2), "t");
    let out = receive(&mut learner, 1, Message::Proposal(entry.clone()));
    assert_eq!(out, [Output::Append(entry)]);
    receive(&mut learner, 1, Message::Commit { zxid: z(1, 2) });
    let out = receive(
        &mut learner,
        1,
        Message::NewLeader {
            zxid: z(2, 0),
            membership: None,
            pending: false,
        },
    );
    assert!(
        out.is_empty(),
        "acknowledged before the log is durable: {out:?}"
    );
    let out = learner.handle(0, Input::Durable { zxid: z(1, 2) });
    assert_eq!(
        out,
        [
            Output::SetCurrentEpoch(2),
            Output::Send {
                to: 1,
                message: Message::AckNewLeader { zxid: z(2, 0) }
            }
        ]
    );
    // Nothing is applied before UPTODATE; then everything the sync committed.
    let out = receive(&mut learner, 1, Message::UpToDate);
    assert_eq!(out[0], Output::Deliver(Entry::new(z(1, 2), "t")));
    assert!(learner.is_serving());
}

#[test]
fn a_learner_refuses_an_older_epoch_and_a_hole_in_the_log() {
    let mut learner = member(2, (5, 5), &[z(5, 1)]);
    learner.handle(
        0,
        Input::Follow {
            leader: 1,
            election_epoch: 7,
        },
    );
    learner.handle(0, Input::Connected { peer: 1 });
    let out = receive(&mut learner, 1, Message::LeaderInfo { epoch: 4 });
    assert!(out.contains(&Output::State(State::Looking)));

    let mut learner = member(2, (5, 5), &[z(5, 1)]);
    learner.handle(
        0,
        Input::Follow {
            leader: 1,
            election_epoch: 7,
        },
    );
    learner.handle(0, Input::Connected { peer: 1 });
    receive(&mut learner, 1, Message::LeaderInfo { epoch: 6 });
    receive(&mut learner, 1, Message::Diff { committed: z(5, 1) });
    let out = receive(&mut learner, 1, Message::Proposal(Entry::new(z(5, 3), "t")));
    assert!(out.contains(&Output::State(State::Looking)), "{out:?}");
}

#[test]
fn proposals_commit_in_order_on_a_quorum_of_durable_acks() {
    let mut leader = established(&[]);
    let first = leader.next_zxid().unwrap();
    assert_eq!(first, z(2, 1));
    let out = leader.handle(0, Input::Propose(Entry::new(first, "a")));
    assert_eq!(out[0], Output::Append(Entry::new(first, "a")));
    assert_eq!(
        sends(&out),
        [(2, Message::Proposal(Entry::new(first, "a")))]
    );
    leader.handle(0, Input::Propose(Entry::new(z(2, 2), "b")));
    // The follower's ACK of the second covers the first; the leader's own log is not
    // durable yet, so there is no quorum.
    let out = receive(&mut leader, 2, Message::Ack { zxid: z(2, 2) });
    assert!(out.is_empty());
    let out = leader.handle(0, Input::Durable { zxid: z(2, 1) });
    assert_eq!(out[0], Output::Deliver(Entry::new(first, "a")));
    assert_eq!(sends(&out), [(2, Message::Commit { zxid: first })]);
    let out = leader.handle(0, Input::Durable { zxid: z(2, 2) });
    assert_eq!(sends(&out), [(2, Message::Commit { zxid: z(2, 2) })]);
    // A wrong zxid is refused.
    let mut out = Vec::new();
    assert_eq!(
        leader.propose(0, Entry::new(z(2, 9), "c"), &mut out),
        Err(ProposeError::WrongZxid {
            expected: z(2, 3),
            got: z(2, 9)
        })
    );
}

#[test]
fn a_run_committed_at_once_goes_out_as_one_commit_through_its_last_zxid() {
    let mut leader = established(&[]);
    let mut learner = serving_follower();
    let zxids = [z(2, 1), z(2, 2), z(2, 3)];
    for (zxid, data) in zxids.into_iter().zip(["a", "b", "c"]) {
        let out = leader.handle(0, Input::Propose(Entry::new(zxid, data)));
        for (_, message) in sends(&out) {
            receive(&mut learner, 1, message);
        }
    }
    receive(&mut leader, 2, Message::Ack { zxid: z(2, 3) });
    let out = leader.handle(0, Input::Durable { zxid: z(2, 3) });
    let delivered = |out: &[Output]| {
        out.iter()
            .filter(|o| matches!(o, Output::Deliver(_)))
            .count()
    };
    assert_eq!(delivered(&out), 3);
    let commits = sends(&out);
    assert_eq!(commits, [(2, Message::Commit { zxid: z(2, 3) })]);
    // The follower applies the three, in order, on that one COMMIT.
    let (_, commit) = commits[0].clone();
    let out = receive(&mut learner, 1, commit);
    let applied: Vec<Zxid> = out
        .iter()
        .filter_map(|o| match o {
            Output::Deliver(entry) => Some(entry.zxid),
            _ => None,
        })
        .collect();
    assert_eq!(applied, zxids);
    assert!(learner.is_serving());
    // With a fourth txn pending, a COMMIT below it (already applied) or beyond the last
    // txn received breaks with the leader.
    receive(&mut learner, 1, Message::Proposal(Entry::new(z(2, 4), "d")));
    for wrong in [z(2, 3), z(2, 9)] {
        let mut learner = learner.clone();
        receive(&mut learner, 1, Message::Commit { zxid: wrong });
        assert!(!learner.is_serving(), "COMMIT {wrong} taken");
    }
    let out = receive(&mut learner, 1, Message::Commit { zxid: z(2, 4) });
    assert_eq!(out, [Output::Deliver(Entry::new(z(2, 4), "d"))]);
}

#[test]
fn a_learners_sync_answer_splits_a_run_of_commits() {
    let mut leader = established(&[]);
    leader.handle(0, Input::Propose(Entry::new(z(2, 1), "a")));
    receive(&mut leader, 2, Message::Sync { id: 5 });
    leader.handle(0, Input::Propose(Entry::new(z(2, 2), "b")));
    receive(&mut leader, 2, Message::Ack { zxid: z(2, 2) });
    let out = leader.handle(0, Input::Durable { zxid: z(2, 2) });
    // The answer comes once what the sync waited for is committed at the follower, and
    // before what was proposed after it.
    assert_eq!(
        sends(&out),
        [
            (2, Message::Commit { zxid: z(2, 1) }),
            (2, Message::SyncDone { id: 5 }),
            (2, Message::Commit { zxid: z(2, 2) }),
        ]
    );
}

#[test]
fn sync_is_answered_once_everything_proposed_before_it_commits() {
    let mut leader = established(&[]);
    assert_eq!(
        leader.handle(0, Input::Sync { id: 1 }),
        [Output::Synced { id: 1 }]
    );
    leader.handle(0, Input::Propose(Entry::new(z(2, 1), "a")));
    assert!(leader.handle(0, Input::Sync { id: 2 }).is_empty());
    let out = receive(&mut leader, 2, Message::Sync { id: 3 });
    assert!(out.is_empty());
    receive(&mut leader, 2, Message::Ack { zxid: z(2, 1) });
    let out = leader.handle(0, Input::Durable { zxid: z(2, 1) });
    let commit = out
        .iter()
        .position(|o| {
            matches!(
                o,
                Output::Send {
                    message: Message::Commit { .. },
                    ..
                }
            )
        })
        .unwrap();
    let done = out
        .iter()
        .position(|o| {
            matches!(
                o,
                Output::Send {
                    message: Message::SyncDone { id: 3 },
                    ..
                }
            )
        })
        .unwrap();
    assert!(
        commit < done,
        "the learner's commits come before its sync answer"
    );
    assert!(out.contains(&Output::Synced { id: 2 }));
}

#[test]
fn a_leader_that_loses_its_quorum_steps_down_after_sync_limit() {
    let mut leader = established(&[]);
    let sync_ms = leader.config().sync_ms();
    let out = leader.handle(sync_ms / 2, Input::Tick);
    assert!(!out.contains(&Output::State(State::Looking)));
    let out = leader.handle(sync_ms + 1, Input::Tick);
    assert!(out.contains(&Output::State(State::Looking)), "{out:?}");
    assert!(out.contains(&Output::Disconnect { peer: 2 }));
}

#[test]
fn snapshot_syncs_beyond_the_limit_are_turned_away() {
    let history: Vec<Zxid> = (1..=50).map(|c| z(1, c)).collect();
    let mut config = Config::majority([1, 2, 3, 4, 5], []);
    config.diff_max_txns = 10;
    config.max_concurrent_snap_syncs = 1;
    let persisted = Persisted {
        accepted_epoch: 1,
        current_epoch: 1,
        history: History::from_zxids(Zxid(0), history.iter().copied()).unwrap(),
    };
    let mut leader = Zab::new(config, 1, persisted).unwrap();
    leader.handle(0, Input::Lead { election_epoch: 7 });
    for sid in [2, 3] {
        receive(&mut leader, sid, info(false));
    }
    receive(&mut leader, 4, info(false));
    let ack = Message::AckEpoch {
        current_epoch: 0,
        last_zxid: Zxid(0),
        snapshot_zxid: Zxid(0),
        already_accepted: false,
    };
    // The epoch quorum is 3 of 5; the first snapshot sync starts with it.
    receive(&mut leader, 2, ack.clone());
    let out = receive(&mut leader, 3, ack.clone());
    let snaps = out
        .iter()
        .filter(|o| matches!(o, Output::SendSnapshot { .. }))
        .count();
    let turned_away = out.contains(&Output::Disconnect { peer: 3 }) as usize
        + out.contains(&Output::Disconnect { peer: 2 }) as usize;
    assert_eq!((snaps, turned_away), (1, 1), "{out:?}");
    // A learner that needs only a diff is not held back by the snapshot.
    let out = receive(
        &mut leader,
        4,
        Message::AckEpoch {
            current_epoch: 1,
            last_zxid: z(1, 45),
            snapshot_zxid: Zxid(0),
            already_accepted: false,
        },
    );
    assert_eq!(
        sends(&out)[0].1,
        Message::Diff {
            committed: z(1, 45)
        }
    );
}

#[test]
fn a_learner_that_cannot_truncate_below_its_snapshot_gets_a_snapshot() {
    // The learner installed a snapshot at 1:4 from a leader that never established (1:4
    // was not committed); this leader's history has 1:1..1:3, then epoch 2.
    let mut leader = member(1, (2, 2), &[z(1, 1), z(1, 2), z(1, 3), z(2, 1)]);
    let out = sync_learner(&mut leader, ack_epoch(1, z(1, 4), z(1, 4)));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::SendSnapshot { learner: 2, .. })),
        "TRUNC to 1:3 would be refused: {out:?}"
    );
    // With the same log but no snapshot in the way, TRUNC.
    let mut leader = member(1, (2, 2), &[z(1, 1), z(1, 2), z(1, 3), z(2, 1)]);
    let out = sync_learner(&mut leader, ack_epoch(1, z(1, 4), z(1, 2)));
    assert_eq!(
        sends(&out)[0].1,
        Message::Trunc {
            zxid: z(1, 3),
            committed: z(1, 3)
        }
    );
}

/// Follower 2 of `leader` (established by [`established`]), synced and serving.
fn serving_follower() -> Zab {
    synced_with_leader_1(member(2, (1, 1), &[]))
}

/// `learner`, with an empty history, follows leader 1 of epoch 2 and serves.
fn synced_with_leader_1(mut learner: Zab) -> Zab {
    learner.handle(
        0,
        Input::Follow {
            leader: 1,
            election_epoch: 7,
        },
    );
    learner.handle(0, Input::Connected { peer: 1 });
    receive(&mut learner, 1, Message::LeaderInfo { epoch: 2 });
    receive(&mut learner, 1, Message::Diff { committed: Zxid(0) });
    receive(
        &mut learner,
        1,
        Message::NewLeader {
            zxid: z(2, 0),
            membership: None,
            pending: false,
        },
    );
    receive(&mut learner, 1, Message::UpToDate);
    assert!(learner.is_serving());
    learner
}

#[test]
fn requests_touches_and_revalidations_travel_between_learner_and_leader() {
    let mut learner = serving_follower();
    let mut leader = established(&[]);
    // A client write, forwarded as it is.
    let out = learner.handle(
        0,
        Input::Forward {
            data: "create /a".into(),
        },
    );
    assert_eq!(
        sends(&out),
        [(
            1,
            Message::Request {
                data: "create /a".into()
            }
        )]
    );
    let out = receive(
        &mut leader,
        2,
        Message::Request {
            data: "create /a".into(),
        },
    );
    assert_eq!(
        out,
        [Output::Request {
            from: 2,
            data: "create /a".into()
        }]
    );
    // Sessions touched by the learner's clients ride on its next ping answer.
    let touch = zk_replication::Touch {
        session: 0x42,
        timeout_ms: 30_000,
    };
    learner.handle(0, Input::Touch(vec![touch]));
    let out = receive(&mut learner, 1, Message::Ping { touches: vec![] });
    assert_eq!(
        sends(&out),
        [(
            1,
            Message::Ping {
                touches: vec![touch]
            }
        )]
    );
    let out = receive(&mut learner, 1, Message::Ping { touches: vec![] });
    assert_eq!(
        sends(&out),
        [(1, Message::Ping { touches: vec![] })],
        "sent once"
    );
    let out = receive(
        &mut leader,
        2,
        Message::Ping {
            touches: vec![touch],
        },
    );
    assert_eq!(
        out,
        [Output::Touched {
            from: 2,
            touches: vec![touch]
        }]
    );
    // A reconnecting client's session is revalidated by the leader.
    let out = learner.handle(
        0,
        Input::Revalidate {
            session: 0x42,
            timeout_ms: 30_000,
        },
    );
    let asked = Message::Revalidate {
        session: 0x42,
        timeout_ms: 30_000,
    };
    assert_eq!(sends(&out), [(1, asked.clone())]);
    let out = receive(&mut leader, 2, asked);
    assert_eq!(
        out,
        [Output::Revalidate {
            from: 2,
            session: 0x42,
            timeout_ms: 30_000
        }]
    );
    let out = leader.handle(
        0,
        Input::RevalidateReply {
            to: 2,
            session: 0x42,
            valid: true,
        },
    );
    let answer = Message::Revalidated {
        session: 0x42,
        valid: true,
    };
    assert_eq!(sends(&out), [(2, answer.clone())]);
    let out = receive(&mut learner, 1, answer);
    assert_eq!(
        out,
        [Output::Revalidated {
            session: 0x42,
            valid: true
        }]
    );
    // sync through the leader.
    let out = learner.handle(0, Input::Sync { id: 9 });
    assert_eq!(sends(&out), [(1, Message::Sync { id: 9 })]);
    let out = receive(&mut learner, 1, Message::SyncDone { id: 9 });
    assert_eq!(out, [Output::Synced { id: 9 }]);
}

#[test]
fn a_learner_not_serving_forwards_nothing() {
    let mut learner = member(2, (1, 1), &[]);
    learner.handle(
        0,
        Input::Follow {
            leader: 1,
            election_epoch: 7,
        },
    );
    assert!(
        learner
            .handle(0, Input::Forward { data: "x".into() })
            .is_empty()
    );
    assert!(learner.handle(0, Input::Sync { id: 1 }).is_empty());
}

#[test]
fn an_epoch_accepted_before_does_not_count_towards_its_quorum() {
    let mut leader = member(1, (1, 1), &[]);
    leader.handle(0, Input::Lead { election_epoch: 7 });
    receive(&mut leader, 2, info(false));
    let ack = |already_accepted| Message::AckEpoch {
        current_epoch: 1,
        last_zxid: Zxid(0),
        snapshot_zxid: Zxid(0),
        already_accepted,
    };
    // Voter 2 had accepted epoch 2 from another leader: not a quorum with the leader.
    let out = receive(&mut leader, 2, ack(true));
    assert!(
        !out.iter().any(|o| matches!(o, Output::SetCurrentEpoch(_))) && sends(&out).is_empty(),
        "{out:?}"
    );
    receive(&mut leader, 3, info(false));
    let out = receive(&mut leader, 3, ack(false));
    assert!(out.contains(&Output::SetCurrentEpoch(2)), "{out:?}");
    // Both are synced once the epoch is current.
    let synced: Vec<Sid> = sends(&out).iter().map(|(to, _)| *to).collect();
    assert!(synced.contains(&2) && synced.contains(&3), "{out:?}");
}

#[test]
fn a_learner_is_not_dropped_while_its_sync_is_still_being_sent() {
    let history: Vec<Zxid> = (1..=50).map(|c| z(1, c)).collect();
    let mut leader = established(&history);
    receive(&mut leader, 3, info(false));
    let out = receive(&mut leader, 3, ack_epoch(0, Zxid(0), Zxid(0)));
    let stream = out
        .iter()
        .find_map(|o| match o {
            Output::ReadLog {
                learner: 3, stream, ..
            } => Some(*stream),
            _ => None,
        })
        .expect("a DIFF read from the log");
    let init_ms = Config::majority([1, 2, 3], [4]).init_ms();
    let dropped = |out: &[Output]| out.contains(&Output::Disconnect { peer: 3 });
    // The log comes a txn at a time, a quarter of initLimit apart: twelve times
    // initLimit in all, while the learner cannot answer. Follower 2 keeps pinging.
    let mut now = 0;
    for c in 1..=50 {
        now += init_ms / 4;
        let ping = Message::Ping {
            touches: Vec::new(),
        };
        leader.handle(
            now,
            Input::Receive {
                from: 2,
                message: ping,
            },
        );
        let read = Input::LogRead {
            learner: 3,
            stream,
            entries: vec![Entry::new(z(1, c), "t")],
            last: c == 50,
        };
        let mut out = leader.handle(now, read);
        out.extend(leader.handle(now, Input::Tick));
        assert!(!dropped(&out), "dropped at txn {c}: {out:?}");
    }
    // Once the stream is whole, the learner has initLimit to answer.
    let ping = Message::Ping {
        touches: Vec::new(),
    };
    leader.handle(
        now + init_ms,
        Input::Receive {
            from: 2,
            message: ping,
        },
    );
    assert!(!dropped(&leader.handle(now + init_ms, Input::Tick)));
    let ping = Message::Ping {
        touches: Vec::new(),
    };
    leader.handle(
        now + init_ms + 1,
        Input::Receive {
            from: 2,
            message: ping,
        },
    );
    assert!(dropped(&leader.handle(now + init_ms + 1, Input::Tick)));
}

#[test]
fn a_follower_with_a_client_waiting_applies_once_it_and_the_leader_logged() {
    let mut leader = established(&[]);
    let mut learner = serving_follower();
    let request = Message::Request {
        data: "create /a".into(),
    };
    receive(&mut leader, 2, request.clone());
    let a = Entry::new(z(2, 1), "a");
    for (_, message) in sends(&leader.handle(0, Input::Propose(a.clone()))) {
        receive(&mut learner, 1, message);
    }
    // The leader's log is durable first: no quorum yet, but the follower that forwarded
    // the request hears of it.
    let out = leader.handle(0, Input::Durable { zxid: a.zxid });
    assert!(
        !out.iter().any(|o| matches!(o, Output::Deliver(_))),
        "{out:?}"
    );
    let logged = Message::Logged { zxid: a.zxid };
    assert_eq!(sends(&out), [(2, logged.clone())]);
    // The follower's own log is not durable yet: nothing is applied.
    let out = receive(&mut learner, 1, logged);
    assert!(out.is_empty(), "{out:?}");
    // Once it is, the follower acknowledges and applies without waiting for a COMMIT.
    let out = learner.handle(0, Input::Durable { zxid: a.zxid });
    assert_eq!(
        out,
        [
            Output::Send {
                to: 1,
                message: Message::Ack { zxid: a.zxid }
            },
            Output::Deliver(a.clone())
        ]
    );
    // The leader commits on that ACK; its COMMIT is no news to the follower.
    let out = receive(&mut leader, 2, Message::Ack { zxid: a.zxid });
    assert_eq!(out[0], Output::Deliver(a.clone()));
    assert_eq!(sends(&out), [(2, Message::Commit { zxid: a.zxid })]);
    let out = receive(&mut learner, 1, Message::Commit { zxid: a.zxid });
    assert!(out.is_empty() && learner.is_serving(), "{out:?}");
    // The other way round (the follower durable first, LOGGED next) applies as well.
    receive(&mut leader, 2, request);
    let b = Entry::new(z(2, 2), "b");
    for (_, message) in sends(&leader.handle(0, Input::Propose(b.clone()))) {
        receive(&mut learner, 1, message);
    }
    let out = learner.handle(0, Input::Durable { zxid: b.zxid });
    assert!(!out.contains(&Output::Deliver(b.clone())), "{out:?}");
    let out = leader.handle(0, Input::Durable { zxid: b.zxid });
    assert_eq!(sends(&out), [(2, Message::Logged { zxid: b.zxid })]);
    let out = receive(&mut learner, 1, Message::Logged { zxid: b.zxid });
    assert_eq!(out, [Output::Deliver(b.clone())]);
    // A COMMIT of what it applied that way is no news to the follower.
    let out = receive(&mut learner, 1, Message::Commit { zxid: b.zxid });
    assert!(out.is_empty() && learner.is_serving(), "{out:?}");
    // Without a forwarded request since, the leader says nothing of its log: a COMMIT
    // follows the quorum as before.
    let c = Entry::new(z(2, 3), "c");
    for (_, message) in sends(&leader.handle(0, Input::Propose(c.clone()))) {
        receive(&mut learner, 1, message);
    }
    let out = leader.handle(0, Input::Durable { zxid: c.zxid });
    assert!(sends(&out).is_empty(), "{out:?}");
    let out = learner.handle(0, Input::Durable { zxid: c.zxid });
    assert!(!out.contains(&Output::Deliver(c.clone())), "{out:?}");
    let out = receive(&mut leader, 2, Message::Ack { zxid: c.zxid });
    assert_eq!(sends(&out), [(2, Message::Commit { zxid: c.zxid })]);
    let out = receive(&mut learner, 1, Message::Commit { zxid: c.zxid });
    assert_eq!(out, [Output::Deliver(c)]);
    // LOGGED of a txn the follower never received breaks with the leader.
    receive(&mut learner, 1, Message::Logged { zxid: z(2, 9) });
    assert!(!learner.is_serving());
}

#[test]
fn a_leader_and_one_follower_of_five_voters_are_no_quorum_to_apply_on() {
    let five = |sid| {
        let persisted = Persisted {
            accepted_epoch: 1,
            current_epoch: 1,
            history: History::from_zxids(Zxid(0), []).unwrap(),
        };
        Zab::new(Config::majority([1, 2, 3, 4, 5], []), sid, persisted).unwrap()
    };
    let mut leader = five(1);
    leader.handle(0, Input::Lead { election_epoch: 7 });
    for sid in [2, 3] {
        receive(&mut leader, sid, info(false));
    }
    for sid in [2, 3] {
        receive(&mut leader, sid, ack_epoch(1, Zxid(0), Zxid(0)));
    }
    for sid in [2, 3] {
        receive(&mut leader, sid, Message::AckNewLeader { zxid: z(2, 0) });
    }
    assert!(leader.is_serving());
    receive(
        &mut leader,
        2,
        Message::Request {
            data: "create /a".into(),
        },
    );
    leader.handle(0, Input::Propose(Entry::new(z(2, 1), "a")));
    let out = leader.handle(0, Input::Durable { zxid: z(2, 1) });
    assert!(sends(&out).is_empty(), "{out:?}");
    // A follower told anyway would not apply on it: the two make no quorum.
    let mut follower = synced_with_leader_1(five(2));
    receive(
        &mut follower,
        1,
        Message::Proposal(Entry::new(z(2, 1), "a")),
    );
    receive(&mut follower, 1, Message::Logged { zxid: z(2, 1) });
    let out = follower.handle(0, Input::Durable { zxid: z(2, 1) });
    assert_eq!(
        out,
        [Output::Send {
            to: 1,
            message: Message::Ack { zxid: z(2, 1) }
        }]
    );
    // It applies on the COMMIT, which a leader of another membership sends all the same.
    let out = receive(&mut follower, 1, Message::Commit { zxid: z(2, 1) });
    assert_eq!(out, [Output::Deliver(Entry::new(z(2, 1), "a"))]);
}
