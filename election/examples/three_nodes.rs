//! Three election members on loopback over gRPC: they elect a leader and print it; the
//! leader is stopped and the other two elect a new one; the stopped member comes back
//! and follows. `RUST_LOG=zk_election=info` shows the election's own log.
//!
//! ```text
//! cargo run -p zk-election --example three_nodes
//! ```

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use zk_election::transport::{Node, NodeConfig};
use zk_election::{Config, Lease, PeerData, ServerState, Sid};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();

    // server.N=host:quorumPort:electionPort, as in zoo.cfg; the election listens on the
    // election port.
    let mut entries = Vec::new();
    for sid in 1..=3 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        entries.push((format!("server.{sid}"), format!("127.0.0.1:0:{port}")));
    }
    let config = Config::from_entries(entries.iter().map(|(k, v)| (k.as_str(), v.as_str())))?
        .with_lease(Lease {
            heartbeat_ms: 100,
            timeout_ms: 1_000,
        });
    // Member 1 has logged the most, so it should win the first election.
    let data = |sid: Sid| PeerData {
        current_epoch: 1,
        last_zxid: (1 << 32) | if sid == 1 { 10 } else { sid as i64 },
    };

    let mut nodes = BTreeMap::new();
    for sid in 1..=3 {
        let node = Node::start(NodeConfig::new(sid, config.clone(), data(sid))).await?;
        println!("member {sid} listening on {}", node.local_addr());
        nodes.insert(sid, node);
    }

    let started = Instant::now();
    let leader = agreed_leader(&nodes).await.ok_or("no leader within 10 s")?;
    println!("elected: member {leader} leads ({:?})", started.elapsed());

    let stopped = Instant::now();
    if let Some(node) = nodes.remove(&leader) {
        node.shutdown().await;
    }
    println!("stopped member {leader}");
    let next = agreed_leader(&nodes)
        .await
        .ok_or("no new leader within 10 s")?;
    println!(
        "re-elected: member {next} leads ({:?} after the stop)",
        stopped.elapsed()
    );

    let node = Node::start(NodeConfig::new(leader, config.clone(), data(leader))).await?;
    let status = node
        .wait_for(Duration::from_secs(10), |s| s.state != ServerState::Looking)
        .await
        .ok_or("the restarted member did not rejoin")?;
    println!(
        "member {leader} is back: {} member {}",
        status.state, status.vote.leader
    );
    nodes.insert(leader, node);
    for node in nodes.into_values() {
        node.shutdown().await;
    }
    Ok(())
}

/// Waits until all `nodes` agree on one leader that says it leads and reaches them.
async fn agreed_leader(nodes: &BTreeMap<Sid, Node>) -> Option<Sid> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let statuses: Vec<_> = nodes.values().map(Node::status).collect();
        let leader = statuses[0].vote.leader;
        let agreed = statuses
            .iter()
            .all(|s| s.state != ServerState::Looking && s.vote.leader == leader);
        // Followers must also have a stream to the leader: a member may choose a leader
        // on votes still in flight before that leader has reached it.
        let connected = nodes
            .values()
            .all(|n| n.sid() == leader || n.peer_connected(leader));
        if agreed && connected && nodes.get(&leader)?.status().state == ServerState::Leading {
            return Some(leader);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}
