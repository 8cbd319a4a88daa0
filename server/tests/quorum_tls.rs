//! `sslQuorum`: three members on 127.0.0.1, 127.0.0.2 and 127.0.0.3 speak mutual TLS on
//! their election and quorum ports, each with a certificate for its own address from a
//! test CA (`ssl.quorum.*`). They elect a leader and replicate writes; then peers that
//! cannot prove who they are knock at those ports: plaintext, a certificate from another
//! CA, and a member's genuine certificate claiming another member's id, at the election
//! port and at the leader's quorum port. Each is refused, and the ensemble serves on.

use std::time::Duration;

use tonic::Code;
use tonic::transport::Endpoint;
use zk_client::{Client, ClientOptions, CreateOptions};
use zk_election::peer_tls::{self, PeerTls};
use zk_server::tls::{StoreSetting, TlsSettings};
use zk_server::{Config, Server};

mod common;
use common::free_port;
use common::pki::Ca;

fn store(path: &std::path::Path) -> Option<StoreSetting> {
    Some(StoreSetting {
        path: path.to_owned(),
        password: String::new(),
        kind: None,
    })
}

struct Ensemble {
    pki: tempfile::TempDir,
    ca: Ca,
    lines: String,
    hosts: Vec<String>,
    client_ports: Vec<u16>,
    election_ports: Vec<u16>,
    quorum_ports: Vec<u16>,
    dirs: Vec<tempfile::TempDir>,
    servers: Vec<Option<Server>>,
}

impl Ensemble {
    fn new() -> Ensemble {
        let pki = tempfile::tempdir().unwrap();
        let ca = Ca::new("zk-rs quorum CA");
        std::fs::write(pki.path().join("ca.pem"), &ca.pem).unwrap();
        let mut lines = String::from(
            "tickTime=100\ninitLimit=50\nsyncLimit=30\nminSessionTimeout=2000\n\
             4lw.commands.whitelist=*\nadmin.enableServer=false\nsslQuorum=true\n",
        );
        let (mut hosts, mut client_ports, mut election_ports, mut quorum_ports) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for sid in 1..=3 {
            let host = format!("127.0.0.{sid}");
            let (quorum, election, client) = (free_port(), free_port(), free_port());
            lines.push_str(&format!(
                "server.{sid}={host}:{quorum}:{election};{host}:{client}\n"
            ));
            ca.key_store(pki.path(), &format!("member{sid}"), &host);
            hosts.push(host);
            client_ports.push(client);
            election_ports.push(election);
            quorum_ports.push(quorum);
        }
        Ensemble {
            pki,
            ca,
            lines,
            hosts,
            client_ports,
            election_ports,
            quorum_ports,
            dirs: (0..3).map(|_| tempfile::tempdir().unwrap()).collect(),
            servers: (0..3).map(|_| None).collect(),
        }
    }

    fn config(&self, i: usize) -> Config {
        let pki = self.pki.path().display();
        let mut config = Config::parse(&format!(
            "{}ssl.quorum.keyStore.location={pki}/member{}.pem\n\
             ssl.quorum.trustStore.location={pki}/ca.pem\n\
             clientPort={}\nclientPortAddress={}\n",
            self.lines,
            i + 1,
            self.client_ports[i],
            self.hosts[i]
        ))
        .unwrap();
        config.server_id = i as u64 + 1;
        config.data_dir = self.dirs[i].path().to_owned();
        config.data_log_dir = self.dirs[i].path().to_owned();
        config
    }

    fn client_addr(&self, i: usize) -> String {
        format!("{}:{}", self.hosts[i], self.client_ports[i])
    }

    /// The TLS a peer dialing with `key_store` and trusting `trust` would speak.
    fn peer(&self, key_store: &std::path::Path, trust: &std::path::Path) -> PeerTls {
        let settings = TlsSettings {
            key_store: store(key_store),
            trust_store: store(trust),
            prefix: "ssl.quorum".into(),
            ..TlsSettings::default()
        };
        settings
            .peer_tls(&self.config(0).servers)
            .expect("a peer's TLS")
    }

    async fn mode(&self, i: usize) -> Option<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.client_addr(i))
            .await
            .ok()?;
        stream.write_all(b"srvr").await.ok()?;
        let mut out = String::new();
        stream.read_to_string(&mut out).await.ok()?;
        out.lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(str::to_owned)
    }

    /// Waits until every member serves, one as leader; returns it.
    async fn leader(&self) -> usize {
        for _ in 0..300 {
            let mut modes = Vec::new();
            for i in 0..3 {
                modes.push(self.mode(i).await);
            }
            let leaders: Vec<usize> = (0..3)
                .filter(|i| modes[*i].as_deref() == Some("leader"))
                .collect();
            let followers = modes
                .iter()
                .filter(|m| m.as_deref() == Some("follower"))
                .count();
            if leaders.len() == 1 && followers == 2 {
                return leaders[0];
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no leader with every member serving over TLS");
    }
}

async fn client(addr: &str) -> Client {
    let options = ClientOptions {
        session_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(3),
        ..ClientOptions::default()
    };
    tokio::time::timeout(Duration::from_secs(30), Client::connect(addr, options))
        .await
        .expect("connects in time")
        .expect("connects")
}

/// A channel to a peer port, as a peer speaking `tls` opens it.
async fn peer_channel(
    addr: &str,
    tls: Option<&PeerTls>,
) -> Result<tonic::transport::Channel, tonic::Status> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2));
    peer_tls::channel(&endpoint, addr, tls)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))
}

/// Opens an election stream to `addr` claiming `sid`, as a peer speaking `tls` would.
async fn claim_at_election_port(
    addr: &str,
    tls: Option<&PeerTls>,
    sid: u64,
) -> Result<(), tonic::Status> {
    use zk_election::transport::proto::{Frame, Hello, election_client::ElectionClient, frame};
    let channel = peer_channel(addr, tls).await?;
    let hello = Frame {
        body: Some(frame::Body::Hello(Hello {
            sid,
            addr: String::new(),
        })),
    };
    let frames = futures_util::stream::iter([hello]).chain(futures_util::stream::pending());
    let mut stream = ElectionClient::new(channel)
        .exchange(frames)
        .await?
        .into_inner();
    // Accepted: the member sends its vote.
    stream.message().await?;
    Ok(())
}

/// Opens a learner stream to the leader's quorum port claiming `sid`.
async fn claim_at_quorum_port(
    addr: &str,
    tls: Option<&PeerTls>,
    sid: u64,
) -> Result<(), tonic::Status> {
    use zk_replication::transport::proto::{Frame, Hello, frame, quorum_client::QuorumClient};
    let channel = peer_channel(addr, tls).await?;
    let hello = Frame {
        body: Some(frame::Body::Hello(Hello { sid })),
    };
    let frames = futures_util::stream::iter([hello]).chain(futures_util::stream::pending());
    QuorumClient::new(channel).learn(frames).await?;
    Ok(())
}

use futures_util::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_speak_tls_and_a_peer_proves_its_id() {
    let mut ensemble = Ensemble::new();
    for i in 0..3 {
        ensemble.servers[i] = Some(Server::start(ensemble.config(i)).await.unwrap());
    }
    let leader = ensemble.leader().await;
    let follower = (leader + 1) % 3;
    let writer = client(&ensemble.client_addr(follower)).await;
    writer
        .create("/over-tls", b"replicated", &CreateOptions::persistent())
        .await
        .unwrap();
    let reader = client(&ensemble.client_addr((leader + 2) % 3)).await;
    reader.sync("/over-tls").await.unwrap();
    assert_eq!(
        reader.get_data("/over-tls").await.unwrap().0,
        &b"replicated"[..]
    );

    let pki = ensemble.pki.path().to_owned();
    let ca = pki.join("ca.pem");
    // Member 3's genuine certificate, valid for 127.0.0.3 only.
    let three = ensemble.peer(&pki.join("member3.pem"), &ca);
    // A certificate for 127.0.0.1 from a CA the members do not trust, trusting theirs.
    let outsider_ca = Ca::new("another CA");
    let outsider = ensemble.peer(&outsider_ca.key_store(&pki, "outsider", "127.0.0.1"), &ca);
    let election_1 = format!("127.0.0.1:{}", ensemble.election_ports[0]);
    let quorum_leader = format!(
        "{}:{}",
        ensemble.hosts[leader], ensemble.quorum_ports[leader]
    );
    // Not the leader's id, and not member 3's.
    let forged = if leader == 0 { 2 } else { 1 };

    // Plaintext to TLS ports.
    for addr in [&election_1, &quorum_leader] {
        let refused = claim_at_election_port(addr, None, 2).await;
        assert!(refused.is_err(), "plaintext accepted at {addr}");
    }
    // Another CA's certificate.
    let refused = claim_at_election_port(&election_1, Some(&outsider), 2).await;
    assert!(refused.is_err(), "an untrusted certificate was accepted");
    let refused = claim_at_quorum_port(&quorum_leader, Some(&outsider), forged).await;
    assert!(refused.is_err(), "an untrusted certificate was accepted");
    // Member 3's certificate speaking for another member.
    let refused = claim_at_election_port(&election_1, Some(&three), 2)
        .await
        .expect_err("member 3 spoke as server 2 at the election port");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("not valid for 127.0.0.2"),
        "{refused:?}"
    );
    let refused = claim_at_quorum_port(&quorum_leader, Some(&three), forged)
        .await
        .expect_err("member 3 spoke as another member at the quorum port");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    // And as a server the ensemble does not have.
    let refused = claim_at_election_port(&election_1, Some(&three), 9)
        .await
        .expect_err("a non-member was heard");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    // The ensemble serves on, with the same leader.
    writer.set_data("/over-tls", b"still", None).await.unwrap();
    reader.sync("/over-tls").await.unwrap();
    assert_eq!(reader.get_data("/over-tls").await.unwrap().0, &b"still"[..]);
    assert_eq!(ensemble.leader().await, leader);
    drop((writer, reader, ensemble.ca.pem.len()));
    for server in ensemble.servers.iter_mut() {
        if let Some(server) = server.take() {
            server.shutdown().await;
        }
    }
}
