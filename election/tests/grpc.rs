//! Real gRPC on loopback: ensembles of 3 and 5 elect, re-elect when the leader stops,
//! take a restarted member back as follower, and refuse connections that break the
//! one-connection-per-pair rule or oversized frames.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use zk_election::transport::proto::{self, Frame, Hello};
use zk_election::transport::{Node, NodeConfig, Status};
use zk_election::{Config, Lease, PeerData, ServerState, Sid};
use zk_jute::Zxid;

const WAIT: Duration = Duration::from_secs(15);

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn ensemble(n: u64) -> Config {
    let ports = free_ports(n as usize);
    let entries: Vec<(String, String)> = (1..=n)
        .map(|sid| {
            (
                format!("server.{sid}"),
                format!("127.0.0.1:0:{}", ports[sid as usize - 1]),
            )
        })
        .collect();
    Config::from_entries(entries.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .unwrap()
        .with_lease(Lease {
            heartbeat_ms: 100,
            timeout_ms: 1_000,
        })
}

/// Member `sid`'s history: epoch 1, with `zxids[sid]` transactions.
fn data(sid: Sid, zxids: &BTreeMap<Sid, u32>) -> PeerData {
    PeerData {
        current_epoch: 1,
        last_zxid: Zxid::new(1, zxids.get(&sid).copied().unwrap_or(0)).0,
    }
}

async fn start(config: &Config, sid: Sid, zxids: &BTreeMap<Sid, u32>) -> Node {
    start_node(NodeConfig::new(sid, config.clone(), data(sid, zxids))).await
}

/// Starts a node. A node restarted on its address may find the port taken for a while by
/// another test of this binary (their ports come from the same ephemeral range): a bind
/// that fails is tried again until [`WAIT`] has passed.
async fn start_node(config: NodeConfig) -> Node {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match Node::start(config.clone()).await {
            Ok(node) => return node,
            Err(zk_election::TransportError::Bind { .. })
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("starting a node: {e}"),
        }
    }
}

/// Waits until every node is settled on one leader, and returns it.
async fn settled(nodes: &BTreeMap<Sid, Node>) -> Sid {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let statuses: Vec<Status> = nodes.values().map(Node::status).collect();
        let leader = statuses[0].vote.leader;
        let agreed = statuses
            .iter()
            .all(|s| s.state != ServerState::Looking && s.vote.leader == leader);
        let leading = nodes
            .get(&leader)
            .is_some_and(|n| n.status().state == ServerState::Leading);
        // Followers have a stream to their leader (as ZooKeeper's followers connect to it).
        let connected = nodes
            .values()
            .all(|n| n.sid() == leader || n.peer_connected(leader));
        if agreed && leading && connected {
            return leader;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no agreement: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn elect_kill_rejoin(n: u64) {
    let config = ensemble(n);
    // Member 2 has the most history, then member 1; the rest have none.
    let zxids: BTreeMap<Sid, u32> = [(2, 9), (1, 5)].into_iter().collect();
    let mut nodes = BTreeMap::new();
    for sid in 1..=n {
        nodes.insert(sid, start(&config, sid, &zxids).await);
    }
    assert_eq!(
        settled(&nodes).await,
        2,
        "the member with the greatest zxid leads"
    );
    for (sid, node) in &nodes {
        let expected = if *sid == 2 {
            ServerState::Leading
        } else {
            ServerState::Following
        };
        assert_eq!(node.status().state, expected);
    }

    nodes.remove(&2).unwrap().shutdown().await;
    assert_eq!(settled(&nodes).await, 1, "the next greatest zxid leads");

    // The old leader comes back with the greatest zxid, yet joins the established leader.
    nodes.insert(2, start(&config, 2, &zxids).await);
    let joined = nodes[&2]
        .wait_for(WAIT, |s| s.state == ServerState::Following)
        .await
        .expect("the restarted member follows");
    assert_eq!(joined.vote.leader, 1);
    assert_eq!(settled(&nodes).await, 1);
    for node in nodes.into_values() {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_elect_reelect_and_rejoin() {
    elect_kill_rejoin(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_elect_reelect_and_rejoin() {
    elect_kill_rejoin(5).await;
}

/// Member 1, the lowest sid, is dialed by the others. It restarts while their dialers
/// back off for a minute (longer than the test waits): it knocks at each, and they dial
/// it at once, so it follows the leader again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_lowest_sid_is_dialed_at_once_after_its_knock() {
    let config = ensemble(3);
    let zxids: BTreeMap<Sid, u32> = [(3, 4)].into_iter().collect();
    let slow = |sid: Sid| {
        let mut node = NodeConfig::new(sid, config.clone(), data(sid, &zxids));
        node.reconnect_min_ms = 60_000;
        node.reconnect_max_ms = 60_000;
        node
    };
    let mut nodes = BTreeMap::new();
    for sid in 1..=3 {
        nodes.insert(sid, start_node(slow(sid)).await);
    }
    assert_eq!(settled(&nodes).await, 3);
    nodes.remove(&1).unwrap().shutdown().await;
    // The others see the stream break, and back off for a minute before dialing again.
    for sid in [2, 3] {
        let deadline = tokio::time::Instant::now() + WAIT;
        while nodes[&sid].peer_connected(1) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{sid} still connected to 1"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    nodes.insert(1, start_node(slow(1)).await);
    let joined = nodes[&1]
        .wait_for(WAIT, |s| s.state == ServerState::Following)
        .await
        .expect("the restarted member follows");
    assert_eq!(joined.vote.leader, 3);
    assert_eq!(settled(&nodes).await, 3);
    for node in nodes.into_values() {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_that_are_down_do_not_block_the_others() {
    let config = ensemble(5);
    let zxids: BTreeMap<Sid, u32> = [(5, 3)].into_iter().collect();
    let mut nodes = BTreeMap::new();
    // 4 and 5 (the best candidate) never start; 1 to 3 are a quorum.
    for sid in 1..=3 {
        nodes.insert(sid, start(&config, sid, &zxids).await);
    }
    assert_eq!(settled(&nodes).await, 3);
    for node in nodes.into_values() {
        node.shutdown().await;
    }
}

async fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn hello(sid: Sid) -> Frame {
    Frame {
        body: Some(proto::frame::Body::Hello(Hello {
            sid,
            addr: String::new(),
        })),
    }
}

async fn exchange(
    addr: SocketAddr,
    frames: Vec<Frame>,
) -> Result<tonic::Streaming<Frame>, tonic::Status> {
    let mut client = proto::election_client::ElectionClient::new(channel(addr).await);
    // Keep the request stream open after the frames, like a real peer.
    let out = futures_util::StreamExt::chain(
        futures_util::stream::iter(frames),
        futures_util::stream::pending(),
    );
    client.exchange(out).await.map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_higher_sid_dials_and_only_members() {
    let config = ensemble(3);
    let node = start(&config, 2, &BTreeMap::new()).await;
    let addr = node.local_addr();
    let lower = exchange(addr, vec![hello(1)]).await.unwrap_err();
    assert_eq!(lower.code(), tonic::Code::FailedPrecondition);
    let stranger = exchange(addr, vec![hello(9)]).await.unwrap_err();
    assert_eq!(stranger.code(), tonic::Code::PermissionDenied);
    let no_hello = exchange(addr, vec![Frame { body: None }])
        .await
        .unwrap_err();
    assert_eq!(no_hello.code(), tonic::Code::InvalidArgument);

    // Member 3 may dial; a second stream from it replaces the first, which ends.
    let mut first = exchange(addr, vec![hello(3)]).await.unwrap();
    let looking = tokio::time::timeout(WAIT, first.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        matches!(looking.body, Some(proto::frame::Body::Notification(n)) if n.state == 0 && n.leader == 2)
    );
    let mut second = exchange(addr, vec![hello(3)]).await.unwrap();
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match first.message().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the replaced stream must end");
    // The last message is sent again on the new stream.
    let resent = tokio::time::timeout(WAIT, second.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(
        resent.body,
        Some(proto::frame::Body::Notification(_))
    ));
    node.shutdown().await;
}

/// A frame with a field the schema does not have, to make it as large as wanted.
#[derive(Clone, PartialEq, prost::Message)]
struct Oversized {
    #[prost(message, optional, tag = "1")]
    hello: Option<Hello>,
    #[prost(bytes = "vec", tag = "15")]
    padding: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_malformed_frames_are_refused() {
    let config = ensemble(3);
    let mut nodes = BTreeMap::new();
    for sid in 1..=3 {
        nodes.insert(sid, start(&config, sid, &BTreeMap::new()).await);
    }
    let leader = settled(&nodes).await;
    let addr = nodes[&1].local_addr();

    // A frame over the bound ends the stream with an error.
    let mut grpc = tonic::client::Grpc::new(channel(addr).await);
    grpc.ready().await.unwrap();
    let frames = vec![
        Oversized {
            hello: Some(Hello {
                sid: 3,
                addr: String::new(),
            }),
            padding: Vec::new(),
        },
        Oversized {
            hello: None,
            padding: vec![7; 64 * 1024],
        },
    ];
    let out = futures_util::StreamExt::chain(
        futures_util::stream::iter(frames),
        futures_util::stream::pending(),
    );
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/zk.election.v1.Election/Exchange");
    let codec = tonic_prost::ProstCodec::<Oversized, Frame>::default();
    let mut stream = grpc
        .streaming(tonic::Request::new(out), path, codec)
        .await
        .unwrap()
        .into_inner();
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends");
    assert!(ended.is_err() || matches!(ended, Ok(None)));

    // A notification with an unknown state is dropped; the node carries on.
    let bad = Frame {
        body: Some(proto::frame::Body::Notification(proto::Notification {
            leader: 3,
            zxid: 0,
            election_epoch: 99,
            peer_epoch: 99,
            state: 42,
            config_version: 0,
        })),
    };
    let _stream = exchange(addr, vec![hello(3), bad]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The ensemble still agrees on the same leader (member 3's real stream comes back).
    assert_eq!(settled(&nodes).await, leader);
    assert_eq!(nodes[&1].status().vote.peer_epoch, 1);
    for node in nodes.into_values() {
        node.shutdown().await;
    }
}
