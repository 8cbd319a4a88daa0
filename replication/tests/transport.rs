//! The quorum streams on loopback: snapshot pieces queued past a stream's window make
//! `Quorum::snapshot_room` false until the stream has taken them (`Event::Room`), other
//! messages do not count, and the learner gets every piece in order.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use zk_replication::Message;
use zk_replication::transport::{Event, Quorum, QuorumConfig};

const WAIT: Duration = Duration::from_secs(20);
const MIB: usize = 1024 * 1024;

async fn next(events: &mut mpsc::Receiver<Event>, what: &str) -> Event {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap_or_else(|_| panic!("no event within {WAIT:?} while waiting for {what}"))
        .expect("the events go on while the quorum runs")
}

fn piece(i: u8, last: bool) -> Message {
    Message::SnapPiece {
        data: Bytes::from(vec![i; MIB]),
        last,
    }
}

// One thread: nothing takes a frame from a stream between two sends of the test.
#[tokio::test]
async fn snapshot_pieces_past_the_window_wait_for_room() {
    let mut config = QuorumConfig::new(1, "127.0.0.1:0".parse().unwrap());
    config.snapshot_window = 4 * MIB;
    let (leader, mut leader_events) = Quorum::start(config).await.unwrap();
    let (mut learner, mut learner_events) =
        Quorum::start(QuorumConfig::new(2, "127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
    learner.connect(1, leader.local_addr().to_string());
    assert_eq!(
        next(&mut learner_events, "the stream").await,
        Event::Connected { peer: 1 }
    );
    // The leader has the stream once it hears from the learner.
    let hello = Message::LearnerInfo {
        accepted_epoch: 0,
        observer: false,
        election_epoch: 1,
    };
    learner.send(1, hello.clone()).unwrap();
    assert_eq!(
        next(&mut leader_events, "the learner's first message").await,
        Event::Received {
            from: 2,
            message: hello
        }
    );

    // Three pieces and a thousand other messages: room left.
    for i in 0..3 {
        leader.send(2, piece(i, false)).unwrap();
    }
    for _ in 0..1000 {
        leader.send(2, Message::LeaderInfo { epoch: 1 }).unwrap();
    }
    assert!(leader.snapshot_room(2));
    // The fourth fills the window; sending past it still works (the sender is the one
    // that waits).
    leader.send(2, piece(3, false)).unwrap();
    assert!(!leader.snapshot_room(2));
    leader.send(2, piece(4, true)).unwrap();
    assert!(!leader.snapshot_room(2));
    assert!(
        leader.snapshot_room(3),
        "no stream to 3: a send fails instead"
    );

    assert_eq!(
        next(&mut leader_events, "room").await,
        Event::Room { peer: 2 }
    );
    let mut pieces = Vec::new();
    while pieces.len() < 5 {
        match next(&mut learner_events, "the pieces").await {
            Event::Received {
                from: 1,
                message: Message::SnapPiece { data, last },
            } => pieces.push((data, last)),
            Event::Received {
                from: 1,
                message: Message::LeaderInfo { epoch: 1 },
            } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    for (i, (data, last)) in pieces.iter().enumerate() {
        assert_eq!(data.len(), MIB);
        assert!(
            data.iter().all(|b| usize::from(*b) == i),
            "piece {i} out of order"
        );
        assert_eq!(*last, i == 4);
    }
    assert!(leader.snapshot_room(2));
    learner.shutdown().await;
    leader.shutdown().await;
}
