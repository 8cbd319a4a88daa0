//! Ensembles of our servers in one process, on loopback, each with its own data
//! directory and `zoo.cfg` lines: they elect a leader, replicate writes, serve reads on
//! every member, and carry on when the leader stops. Clients are the third-party
//! `zookeeper-client` crate.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zk_server::{Config, Server};
use zookeeper_client as zk;

mod common;
use common::free_port;

static OPEN: &zk::CreateOptions<'static> =
    &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
static EPHEMERAL: &zk::CreateOptions<'static> =
    &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());

/// An ensemble's `zoo.cfg` lines and each member's ports and directory.
struct Ensemble {
    lines: String,
    client_ports: Vec<u16>,
    dirs: Vec<tempfile::TempDir>,
    servers: Vec<Option<Server>>,
}

impl Ensemble {
    fn new(n: usize) -> Self {
        let mut lines = String::from(
            "tickTime=100\ninitLimit=50\nsyncLimit=30\nminSessionTimeout=2000\nmaxSessionTimeout=30000\n\
             4lw.commands.whitelist=*\nadmin.enableServer=false\n",
        );
        let mut client_ports = Vec::new();
        for sid in 1..=n {
            let client = free_port();
            lines.push_str(&format!(
                "server.{sid}=127.0.0.1:{}:{};127.0.0.1:{client}\n",
                free_port(),
                free_port()
            ));
            client_ports.push(client);
        }
        Ensemble {
            lines,
            client_ports,
            dirs: (0..n).map(|_| tempfile::tempdir().unwrap()).collect(),
            servers: (0..n).map(|_| None).collect(),
        }
    }

    fn config(&self, i: usize) -> Config {
        let mut config = Config::parse(&format!(
            "{}clientPort={}\nclientPortAddress=127.0.0.1\n",
            self.lines, self.client_ports[i]
        ))
        .unwrap();
        config.server_id = i as u64 + 1;
        config.data_dir = self.dirs[i].path().to_owned();
        config.data_log_dir = self.dirs[i].path().to_owned();
        config
    }

    async fn start(&mut self, i: usize) {
        let server = Server::start(self.config(i)).await.unwrap();
        self.servers[i] = Some(server);
    }

    async fn stop(&mut self, i: usize) {
        if let Some(server) = self.servers[i].take() {
            server.shutdown().await;
        }
    }

    fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.client_ports[i])
    }

    /// Each running member's mode, from `srvr`.
    async fn modes(&self) -> Vec<Option<String>> {
        let mut modes = Vec::new();
        for i in 0..self.servers.len() {
            if self.servers[i].is_none() {
                modes.push(None);
                continue;
            }
            let srvr = four_letter_word(&self.addr(i), "srvr").await;
            modes.push(
                srvr.lines()
                    .find_map(|l| l.strip_prefix("Mode: "))
                    .map(str::to_owned),
            );
        }
        modes
    }

    /// Waits until every running member serves, one of them as leader; returns it.
    async fn leader(&self) -> usize {
        for _ in 0..300 {
            let modes = self.modes().await;
            let running: Vec<&String> = modes.iter().flatten().collect();
            let leaders = running.iter().filter(|m| **m == "leader").count();
            let followers = running.iter().filter(|m| **m == "follower").count();
            if leaders == 1 && leaders + followers == running.len() {
                return modes
                    .iter()
                    .position(|m| m.as_deref() == Some("leader"))
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "no leader with every member serving: {:?}",
            self.modes().await
        );
    }
}

async fn four_letter_word(addr: &str, word: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return String::new();
    };
    let _ = stream.write_all(word.as_bytes()).await;
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out).await;
    out
}

async fn client(connect: &str) -> zk::Client {
    with_timeout(
        "connect",
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(15))
            .connect(connect),
    )
    .await
    .expect("connects")
}

async fn with_timeout<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_replicate_and_survive_the_leaders_end() {
    let mut ensemble = Ensemble::new(3);
    for i in 0..3 {
        ensemble.start(i).await;
    }
    let leader = ensemble.leader().await;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;

    // Writes through a follower are forwarded, committed and answered there.
    let writer = client(&ensemble.addr(follower)).await;
    let (stat, _) = writer.create("/app", b"v0", OPEN).await.unwrap();
    writer.create("/app/eph", b"", EPHEMERAL).await.unwrap();
    for i in 0..20 {
        writer
            .create(&format!("/app/n{i}"), format!("{i}").as_bytes(), OPEN)
            .await
            .unwrap();
    }
    let stat = writer
        .set_data("/app", b"v1", Some(stat.version))
        .await
        .unwrap();
    assert_eq!(stat.version, 1);

    // Every member has them: after a sync, a read on another member sees the write.
    for i in [leader, other] {
        let reader = client(&ensemble.addr(i)).await;
        reader.sync("/app").await.unwrap();
        assert_eq!(reader.get_data("/app").await.unwrap().0, b"v1");
        assert_eq!(reader.list_children("/app").await.unwrap().len(), 21);
    }

    // A watch set on one member fires for a write made through another.
    let watcher = client(&ensemble.addr(other)).await;
    let (_, _, watch) = watcher.get_and_watch_data("/app").await.unwrap();
    writer.set_data("/app", b"v2", None).await.unwrap();
    let event = with_timeout("watch", watch.changed()).await;
    assert_eq!(event.event_type, zk::EventType::NodeDataChanged);

    // The leader stops. The other two elect a new one, and the writer's session, with
    // its ephemeral, lives on.
    let session = writer.session_id();
    let survivors = client(&format!(
        "{},{}",
        ensemble.addr(follower),
        ensemble.addr(other)
    ))
    .await;
    ensemble.stop(leader).await;
    let new_leader = ensemble.leader().await;
    assert_ne!(new_leader, leader);
    let mut acknowledged = None;
    for attempt in 0..100 {
        match survivors.set_data("/app", b"v3", None).await {
            Ok(stat) => {
                acknowledged = Some(stat);
                break;
            }
            Err(e) => {
                assert!(attempt < 99, "no write after the leader's end: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(acknowledged.is_some());
    let reader = client(&ensemble.addr(other)).await;
    reader.sync("/").await.unwrap();
    assert_eq!(reader.get_data("/app").await.unwrap().0, b"v3");
    assert!(reader.check_stat("/app/eph").await.unwrap().is_some());
    assert_eq!(writer.session_id(), session);

    // The old leader comes back and syncs: it serves what was written without it.
    ensemble.start(leader).await;
    ensemble.leader().await;
    let back = client(&ensemble.addr(leader)).await;
    back.sync("/").await.unwrap();
    assert_eq!(back.get_data("/app").await.unwrap().0, b"v3");
    assert_eq!(back.list_children("/app").await.unwrap().len(), 21);

    for i in 0..3 {
        ensemble.stop(i).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_see_the_ensemble_as_zookeeper_shows_it() {
    let mut ensemble = Ensemble::new(3);
    for i in 0..3 {
        ensemble.start(i).await;
    }
    let leader = ensemble.leader().await;
    let follower = (leader + 1) % 3;

    // /zookeeper/config holds the membership, as ZooKeeper 3.8 writes it: one line a
    // member, the role spelled out, then the version; no txn wrote it.
    let expected: Vec<String> = ensemble
        .lines
        .lines()
        .filter(|l| l.starts_with("server."))
        .map(|l| l.replacen(";", ":participant;", 1))
        .chain(["version=0".to_string()])
        .collect();
    let c = client(&ensemble.addr(follower)).await;
    let (data, stat) = c.get_data("/zookeeper/config").await.unwrap();
    assert_eq!(String::from_utf8(data).unwrap(), expected.join("\n"));
    assert_eq!(
        (stat.czxid, stat.mzxid, stat.version, stat.aversion),
        (0, 0, -1, -1)
    );
    assert_eq!(
        c.create("/zookeeper/config/x", b"", OPEN)
            .await
            .unwrap_err(),
        zk::Error::NoAuth
    );

    let conf = four_letter_word(&ensemble.addr(follower), "conf").await;
    assert!(
        conf.contains(&format!(
            "serverId={}\ninitLimit=50\nsyncLimit=30\nelectionAlg=3\n",
            follower + 1
        )),
        "{conf}"
    );
    assert!(
        conf.ends_with(&format!(
            "peerType=0\nmembership: \n{}",
            expected.join("\n")
        )),
        "{conf}"
    );
    let mut mntr = String::new();
    for _ in 0..100 {
        // Both followers are serving; the leader counts them once their sync is acked.
        mntr = four_letter_word(&ensemble.addr(leader), "mntr").await;
        if mntr.contains("zk_synced_followers\t2\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for line in [
        "zk_server_state\tleader\nzk_peer_state\tleading - broadcast\n",
        "zk_quorum_size\t3\n",
        "zk_learners\t2\n",
        "zk_synced_followers\t2\n",
        "zk_synced_observers\t0\n",
        "zk_diff_count\t2\n",
        "zk_cnt_unavailable_time\t1\n",
    ] {
        assert!(mntr.contains(line), "{line:?} in {mntr}");
    }
    let acks = mntr
        .lines()
        .find_map(|l| l.strip_prefix("zk_cnt_quorum_ack_latency\t"))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(acks.is_some_and(|n| n >= 1), "{mntr}");
    let srvr = four_letter_word(&ensemble.addr(leader), "srvr").await;
    assert!(srvr.contains("Mode: leader\n"), "{srvr}");
    assert!(srvr.contains("Proposal sizes last/min/max: "), "{srvr}");
    let srvr = four_letter_word(&ensemble.addr(follower), "srvr").await;
    assert!(srvr.contains("Mode: follower\n"), "{srvr}");
    assert_eq!(
        four_letter_word(&ensemble.addr(follower), "isro").await,
        "rw"
    );

    // Alone, a member serves nobody, and says so.
    drop(c);
    let survivor = follower;
    for i in 0..3 {
        if i != survivor {
            ensemble.stop(i).await;
        }
    }
    let addr = ensemble.addr(survivor);
    let mut srvr = String::new();
    for _ in 0..100 {
        srvr = four_letter_word(&addr, "srvr").await;
        if !srvr.contains("Mode: follower") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let not_serving = "This ZooKeeper instance is not currently serving requests\n";
    assert_eq!(srvr, not_serving);
    for word in ["stat", "mntr", "conf", "cons"] {
        assert_eq!(four_letter_word(&addr, word).await, not_serving, "{word}");
    }
    assert_eq!(four_letter_word(&addr, "ruok").await, "imok");
    assert_eq!(four_letter_word(&addr, "isro").await, "null");
    ensemble.stop(survivor).await;
}

/// `DigestAuthenticationProvider.superDigest` for `super:test`, as kazoo's harness sets it.
const SUPER_DIGEST: &str = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=";

/// Each member's mode from `srvr`, until `done` holds for them.
async fn wait_modes(ensemble: &Ensemble, done: impl Fn(&[Option<String>]) -> bool) {
    for _ in 0..300 {
        if done(&ensemble.modes().await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("members never got there: {:?}", ensemble.modes().await);
}

fn incremental<'a>(
    joining: &'a [&'a str],
    leaving: &'a [&'a str],
) -> zk::EnsembleUpdate<'a, std::iter::Copied<std::slice::Iter<'a, &'a str>>> {
    zk::EnsembleUpdate::Incremental {
        joinings: joining.iter().copied(),
        leavings: leaving.iter().copied(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfiguration_adds_an_observer_and_removes_a_follower_while_serving() {
    let mut ensemble = Ensemble::new(4);
    let settings =
        format!("reconfigEnabled=true\nDigestAuthenticationProvider.superDigest={SUPER_DIGEST}\n");
    // Server 4 joins later: the first three do not know it; it knows them, and itself
    // as an observer (a joining server's view, as ZooKeeper's procedure has it).
    let line4 = ensemble
        .lines
        .lines()
        .find(|l| l.starts_with("server.4="))
        .unwrap()
        .to_owned();
    let observer4 = line4.replacen(';', ":observer;", 1);
    let full = ensemble.lines.replace(&line4, &observer4);
    ensemble.lines = format!(
        "{}{settings}",
        ensemble.lines.replace(&format!("{line4}\n"), "")
    );
    for i in 0..3 {
        ensemble.start(i).await;
    }
    let leader = ensemble.leader().await;
    let (follower, other) = ((leader + 1) % 3, (leader + 2) % 3);

    // The first membership took the version of the epoch that established it.
    let admin = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(15))
        .with_auth("digest", b"super:test")
        .connect(&ensemble.addr(other))
        .await
        .unwrap();
    let (data, stat) = admin.get_config().await.unwrap();
    let text = String::from_utf8(data).unwrap();
    assert_eq!(stat.mzxid & 0xffff_ffff, 0, "{stat:?}");
    assert!(
        text.ends_with(&format!("\nversion={:x}", stat.mzxid)),
        "{text}"
    );
    assert_eq!(text.lines().filter(|l| l.starts_with("server.")).count(), 3);

    // Refusals, in ZooKeeper's order: the version and the lines before the ACL.
    let anyone = client(&ensemble.addr(follower)).await;
    let join9 = ["server.9=127.0.0.1:1:2:observer;3"];
    let refused = anyone.update_ensemble(incremental(&join9, &[]), None).await;
    assert!(matches!(refused, Err(zk::Error::NoAuth)), "{refused:?}");
    let bad = anyone
        .update_ensemble(incremental(&["some thing"], &[]), None)
        .await;
    assert!(matches!(bad, Err(zk::Error::BadArguments(_))), "{bad:?}");
    let stale = anyone
        .update_ensemble(incremental(&join9, &[]), Some(stat.mzxid + 1))
        .await;
    assert!(matches!(stale, Err(zk::Error::BadVersion)), "{stale:?}");

    // Server 4 starts and finds the leader through the members it knows. Synced, it
    // takes the leader's membership, where it is not: as ZooKeeper's learner, it then
    // follows without a vote.
    let watcher = client(&ensemble.addr(follower)).await;
    let (_, _, changed) = watcher.get_and_watch_config().await.unwrap();
    ensemble.lines = format!("{full}{settings}");
    ensemble.start(3).await;
    wait_modes(&ensemble, |m| m[3].as_deref() == Some("follower")).await;

    // Joining it makes it a member on every server; the watch on the node fires.
    let (data, stat) = admin
        .update_ensemble(incremental(&[observer4.as_str()], &[]), None)
        .await
        .unwrap();
    let joined = String::from_utf8(data).unwrap();
    assert!(joined.contains(&observer4), "{joined}\n{observer4}");
    assert!(
        joined.ends_with(&format!("\nversion={:x}", stat.mzxid)),
        "{joined}"
    );
    assert_eq!(stat.version, -1);
    wait_modes(&ensemble, |m| m[3].as_deref() == Some("observer")).await;
    let event = with_timeout("config watch", changed.changed()).await;
    assert_eq!(event.event_type, zk::EventType::NodeDataChanged);
    for i in 0..4 {
        let reader = client(&ensemble.addr(i)).await;
        reader.sync("/").await.unwrap();
        let (data, _) = reader.get_config().await.unwrap();
        assert_eq!(String::from_utf8(data).unwrap(), joined, "member {}", i + 1);
    }
    // A zk-client told the new server list (`updateServerList`) without its own server
    // moves there, and its session goes on.
    let mover = zk_client::Client::connect(&ensemble.addr(other), Default::default())
        .await
        .unwrap();
    let session = mover.session_id();
    assert!(mover.update_server_list(&ensemble.addr(3)).await.unwrap());
    let persistent = zk_client::CreateOptions::persistent();
    with_timeout(
        "a write after moving",
        mover.create("/moved", b"", &persistent),
    )
    .await
    .unwrap();
    assert_eq!(mover.session_id(), session);
    let srvr = four_letter_word(&ensemble.addr(3), "cons").await;
    assert!(srvr.contains(&format!("sid=0x{session:x}")), "{srvr}");
    // The observer forwards writes and serves reads.
    let through_observer = client(&ensemble.addr(3)).await;
    through_observer
        .create("/joined", b"4", OPEN)
        .await
        .unwrap();
    anyone.sync("/").await.unwrap();
    assert_eq!(anyone.get_data("/joined").await.unwrap().0, b"4");

    // The observer becomes a voter, and back: it rejoins in each role.
    let participant4 = observer4.replacen(":observer;", ":participant;", 1);
    let (data, _) = admin
        .update_ensemble(incremental(&[participant4.as_str()], &[]), None)
        .await
        .unwrap();
    assert!(String::from_utf8(data).unwrap().contains(&participant4));
    wait_modes(&ensemble, |m| m[3].as_deref() == Some("follower")).await;
    through_observer.create("/voter", b"", OPEN).await.unwrap();
    admin
        .update_ensemble(incremental(&[observer4.as_str()], &[]), None)
        .await
        .unwrap();
    wait_modes(&ensemble, |m| m[3].as_deref() == Some("observer")).await;

    // A member's client port moves: it serves clients at the new address at once.
    let sid = other + 1;
    let line = ensemble
        .lines
        .lines()
        .find(|l| l.starts_with(&format!("server.{sid}=")))
        .unwrap()
        .to_owned();
    let old_port = ensemble.client_ports[other];
    let new_port = free_port();
    let moved = line.replace(&format!(":{old_port}"), &format!(":{new_port}"));
    let (data, _) = admin
        .update_ensemble(incremental(&[moved.as_str()], &[]), None)
        .await
        .unwrap();
    let text = String::from_utf8(data).unwrap();
    assert!(text.contains(&format!("127.0.0.1:{new_port}")), "{text}");
    let mut moved_client = None;
    for _ in 0..50 {
        let connect = zk::Client::connector()
            .with_session_timeout(Duration::from_secs(15))
            .with_connection_timeout(Duration::from_secs(1))
            .with_fail_eagerly()
            .connect(&format!("127.0.0.1:{new_port}"))
            .await;
        if let Ok(c) = connect {
            moved_client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let moved_client = moved_client.expect("the member serves at its new client port");
    moved_client.sync("/").await.unwrap();
    assert_eq!(moved_client.get_data("/joined").await.unwrap().0, b"4");
    let srvr = four_letter_word(&format!("127.0.0.1:{new_port}"), "conf").await;
    assert!(srvr.contains(&format!("clientPort={new_port}")), "{srvr}");
    ensemble.client_ports[other] = new_port;

    // A follower leaves: the other two voters carry on alone.
    let leaving = (follower + 1).to_string();
    let (data, _) = admin
        .update_ensemble(incremental(&[], &[leaving.as_str()]), None)
        .await
        .unwrap();
    let left = String::from_utf8(data).unwrap();
    assert!(!left.contains(&format!("server.{leaving}=")), "{left}");
    ensemble.stop(follower).await;
    admin.create("/after", b"", OPEN).await.unwrap();
    // Two voters left: two joining voters that are not running would be no quorum.
    let absent = [
        "server.7=127.0.0.1:1:2:participant;3",
        "server.8=127.0.0.1:4:5:participant;6",
    ];
    let no_quorum = admin.update_ensemble(incremental(&absent, &[]), None).await;
    assert!(
        matches!(no_quorum, Err(zk::Error::UnexpectedErrorCode(-13))),
        "{no_quorum:?}"
    );
    for i in [0, 1, 2, 3] {
        ensemble.stop(i).await;
    }
}
