//! The third-party `zookeeper-client` crate, unchanged, against our server: operations,
//! watches, ephemerals, multi, ACLs, durability across a restart, four-letter words, and
//! hostile input (bad frames, half-open and non-reading connections) next to well-behaved
//! clients.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zk_server::{Config, Server};
use zookeeper_client as zk;

static OPEN: &zk::CreateOptions<'static> =
    &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
static EPHEMERAL: &zk::CreateOptions<'static> =
    &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());

fn config(dir: &std::path::Path) -> Config {
    Config {
        client_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_owned(),
        data_log_dir: dir.to_owned(),
        tick_time: Duration::from_millis(200),
        min_session_timeout: Duration::from_millis(400),
        four_letter_words: vec!["*".into()],
        extended_types: true,
        ..Config::default()
    }
}

async fn client(server: &Server) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(5))
        .connect(&server.local_addr().to_string())
        .await
        .expect("connects")
}

async fn with_timeout<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

#[tokio::test]
async fn crud_stats_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let c = client(&server).await;

    let (stat, _) = c.create("/app", b"v1", OPEN).await.unwrap();
    assert_eq!(
        (stat.version, stat.data_length, stat.num_children),
        (0, 2, 0)
    );
    assert_eq!(c.get_data("/app").await.unwrap(), (b"v1".to_vec(), stat));
    assert_eq!(
        c.create("/app", b"", OPEN).await.unwrap_err(),
        zk::Error::NodeExists
    );
    assert_eq!(
        c.create("/missing/child", b"", OPEN).await.unwrap_err(),
        zk::Error::NoNode
    );

    let stat2 = c.set_data("/app", b"v2", Some(0)).await.unwrap();
    assert_eq!((stat2.version, stat2.mzxid > stat.mzxid), (1, true));
    assert_eq!(
        c.set_data("/app", b"v3", Some(0)).await.unwrap_err(),
        zk::Error::BadVersion
    );

    let seq = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
    let (_, first) = c.create("/app/job-", b"", &seq).await.unwrap();
    let (_, second) = c.create("/app/job-", b"", &seq).await.unwrap();
    assert_eq!((first.into_i64(), second.into_i64()), (0, 1));
    let (mut children, parent) = c.get_children("/app").await.unwrap();
    children.sort();
    assert_eq!(children, ["job-0000000000", "job-0000000001"]);
    assert_eq!((parent.num_children, parent.cversion), (2, 2));
    assert_eq!(c.count_descendants_number("/app").await.unwrap(), 2);

    assert_eq!(
        c.delete("/app", None).await.unwrap_err(),
        zk::Error::NotEmpty
    );
    c.delete("/app/job-0000000000", None).await.unwrap();
    assert_eq!(c.check_stat("/app/job-0000000000").await.unwrap(), None);
    c.sync("/app").await.unwrap();
    drop(c);
    server.shutdown().await;
}

#[tokio::test]
async fn watches_fire_across_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let (a, b, c) = (
        client(&server).await,
        client(&server).await,
        client(&server).await,
    );
    a.create("/w", b"", OPEN).await.unwrap();

    let (_, _, data_watch) = a.get_and_watch_data("/w").await.unwrap();
    let (_, _, child_watch) = a.get_and_watch_children("/w").await.unwrap();
    let (_, exists_watch) = a.check_and_watch_stat("/w/later").await.unwrap();
    // On another session (one session's watches of several modes on a path: the next test).
    let mut recursive = c
        .watch("/w", zk::AddWatchMode::PersistentRecursive)
        .await
        .unwrap();

    b.set_data("/w", b"x", None).await.unwrap();
    let event = with_timeout("data watch", data_watch.changed()).await;
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (zk::EventType::NodeDataChanged, "/w")
    );
    let event = with_timeout("recursive watch", recursive.changed()).await;
    assert_eq!(event.event_type, zk::EventType::NodeDataChanged);

    b.create("/w/later", b"", OPEN).await.unwrap();
    let event = with_timeout("exists watch", exists_watch.changed()).await;
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (zk::EventType::NodeCreated, "/w/later")
    );
    let event = with_timeout("child watch", child_watch.changed()).await;
    assert_eq!(event.event_type, zk::EventType::NodeChildrenChanged);
    let event = with_timeout("recursive watch on a child", recursive.changed()).await;
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (zk::EventType::NodeCreated, "/w/later")
    );
    server.shutdown().await;
}

/// One session's one-shot, persistent and recursive watches on one path each behave as if
/// alone, as in ZooKeeper 3.9 (ZOOKEEPER-4466). 3.8.0 kept the last mode set per path: the
/// one-shot watches below would have replaced the persistent ones, whose later events never
/// came.
#[tokio::test]
async fn one_sessions_watches_of_several_modes_on_a_path_coexist() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let c = client(&server).await;
    let kind = |e: zk::WatchedEvent| (e.event_type, e.path);
    let mut persistent = c.watch("/m", zk::AddWatchMode::Persistent).await.unwrap();
    let mut recursive = c
        .watch("/m", zk::AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    c.create("/m", b"", OPEN).await.unwrap();
    let (_, _, data_watch) = c.get_and_watch_data("/m").await.unwrap();
    let (_, _, child_watch) = c.get_and_watch_children("/m").await.unwrap();
    let created = (zk::EventType::NodeCreated, "/m".to_string());
    assert_eq!(
        kind(with_timeout("persistent", persistent.changed()).await),
        created
    );
    assert_eq!(
        kind(with_timeout("recursive", recursive.changed()).await),
        created
    );

    c.create("/m/x", b"", OPEN).await.unwrap();
    let children = (zk::EventType::NodeChildrenChanged, "/m".to_string());
    assert_eq!(
        kind(with_timeout("child", child_watch.changed()).await),
        children
    );
    assert_eq!(
        kind(with_timeout("persistent", persistent.changed()).await),
        children
    );
    let below = (zk::EventType::NodeCreated, "/m/x".to_string());
    assert_eq!(
        kind(with_timeout("recursive", recursive.changed()).await),
        below
    );

    c.set_data("/m", b"1", None).await.unwrap();
    let changed = (zk::EventType::NodeDataChanged, "/m".to_string());
    assert_eq!(
        kind(with_timeout("data", data_watch.changed()).await),
        changed
    );
    assert_eq!(
        kind(with_timeout("persistent", persistent.changed()).await),
        changed
    );
    assert_eq!(
        kind(with_timeout("recursive", recursive.changed()).await),
        changed
    );

    // The one-shot watches are used up; the persistent ones still hear /m come back.
    c.delete("/m/x", None).await.unwrap();
    c.delete("/m", None).await.unwrap();
    c.create("/m", b"", OPEN).await.unwrap();
    for expected in [
        (zk::EventType::NodeChildrenChanged, "/m"),
        (zk::EventType::NodeDeleted, "/m"),
        (zk::EventType::NodeCreated, "/m"),
    ] {
        let event = kind(with_timeout("persistent", persistent.changed()).await);
        assert_eq!((event.0, event.1.as_str()), expected);
    }
    for expected in [
        (zk::EventType::NodeDeleted, "/m/x"),
        (zk::EventType::NodeDeleted, "/m"),
        (zk::EventType::NodeCreated, "/m"),
    ] {
        let event = kind(with_timeout("recursive", recursive.changed()).await);
        assert_eq!((event.0, event.1.as_str()), expected);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn ephemerals_go_with_their_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let (owner, watcher) = (client(&server).await, client(&server).await);
    owner.create("/lock", b"me", EPHEMERAL).await.unwrap();
    assert_eq!(owner.list_ephemerals("/").await.unwrap(), ["/lock"]);
    let (stat, gone) = watcher.check_and_watch_stat("/lock").await.unwrap();
    assert_eq!(stat.unwrap().ephemeral_owner, owner.session_id().0);
    drop(owner); // closes the session
    let event = with_timeout("ephemeral deleted", gone.changed()).await;
    assert_eq!(
        (event.event_type, event.path.as_str()),
        (zk::EventType::NodeDeleted, "/lock")
    );
    assert_eq!(watcher.check_stat("/lock").await.unwrap(), None);
    server.shutdown().await;
}

#[tokio::test]
async fn multi_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let c = client(&server).await;
    let mut writer = c.new_multi_writer();
    writer.add_create("/m", b"", OPEN).unwrap();
    writer.add_create("/m/a", b"1", OPEN).unwrap();
    writer.add_set_data("/m/a", b"2", Some(0)).unwrap();
    assert_eq!(writer.commit().await.unwrap().len(), 3);
    assert_eq!(c.get_data("/m/a").await.unwrap().0, b"2");

    let mut writer = c.new_multi_writer();
    writer.add_create("/m/b", b"", OPEN).unwrap();
    writer.add_delete("/m/missing", None).unwrap();
    let err = writer.commit().await.unwrap_err();
    assert!(
        matches!(
            err,
            zk::MultiWriteError::OperationFailed {
                index: 1,
                source: zk::Error::NoNode
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        c.check_stat("/m/b").await.unwrap(),
        None,
        "nothing of a failed multi stays"
    );

    let mut reader = c.new_multi_reader();
    reader.add_get_data("/m/a").unwrap();
    reader.add_get_children("/m").unwrap();
    assert_eq!(reader.commit().await.unwrap().len(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn a_create2_in_a_multi_is_answered_with_its_stat() {
    // ZOOKEEPER-4026 (fixed in 3.8.2 and 3.9): the zookeeper-client crate sends its multi
    // creates as create2 and reads a create2 result's stat; ZooKeeper 3.8.0 answered them
    // as plain creates, with no stat.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let c = client(&server).await;
    let mut writer = c.new_multi_writer();
    writer.add_create("/m", b"", OPEN).unwrap();
    writer.add_create("/m/a", b"12", OPEN).unwrap();
    writer.add_set_data("/m/a", b"345", None).unwrap();
    let results = writer.commit().await.unwrap();
    let zk::MultiWriteResult::Create { path, stat } = &results[1] else {
        panic!("{results:?}")
    };
    assert_eq!(path, "/m/a");
    assert!(!stat.is_invalid(), "{stat:?}");
    // The stat as the node was created, before the set of the same multi.
    assert_eq!((stat.version, stat.data_length), (0, 2));
    let (_, now) = c.get_data("/m/a").await.unwrap();
    assert_eq!((stat.czxid, now.version), (now.czxid, 1));
    let zk::MultiWriteResult::Create { stat: parent, .. } = &results[0] else {
        panic!("{results:?}")
    };
    assert_eq!(parent.czxid, now.czxid, "one zxid for the whole multi");
    server.shutdown().await;
}

#[tokio::test]
async fn watch_events_carry_the_zxid_of_the_txn_that_fired_them() {
    // ZOOKEEPER-4655 (3.9): the notification's reply header has the txn's zxid, not -1.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let (c, other) = (client(&server).await, client(&server).await);
    let (data, _) = c.create("/w", b"", OPEN).await.unwrap();
    let (_, _, watcher) = c.get_and_watch_data("/w").await.unwrap();
    let set = c.set_data("/w", b"x", None).await.unwrap();
    let event = with_timeout("data watch", watcher.changed()).await;
    assert_eq!(event.event_type, zk::EventType::NodeDataChanged);
    assert_eq!(event.zxid, set.mzxid);
    assert!(set.mzxid > data.czxid);

    let mut recursive = c
        .watch("/w", zk::AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    let mut writer = c.new_multi_writer();
    writer.add_create("/w/a", b"", OPEN).unwrap();
    writer.add_create("/w/b", b"", OPEN).unwrap();
    let results = writer.commit().await.unwrap();
    let zk::MultiWriteResult::Create { stat, .. } = &results[0] else {
        panic!("{results:?}")
    };
    for path in ["/w/a", "/w/b"] {
        let event = with_timeout("recursive watch", recursive.changed()).await;
        assert_eq!(
            (event.event_type, event.path.as_str()),
            (zk::EventType::NodeCreated, path)
        );
        assert_eq!(event.zxid, stat.czxid, "the multi's zxid");
    }

    // A session's close deletes its ephemerals at the close's zxid.
    let (eph, _) = other.create("/w/e", b"", EPHEMERAL).await.unwrap();
    let created = with_timeout("ephemeral created", recursive.changed()).await;
    assert_eq!(created.zxid, eph.czxid);
    drop(other);
    let deleted = with_timeout("ephemeral deleted", recursive.changed()).await;
    assert_eq!(
        (deleted.event_type, deleted.path.as_str()),
        (zk::EventType::NodeDeleted, "/w/e")
    );
    let (_, root) = c.get_data("/w").await.unwrap();
    assert_eq!(deleted.zxid, root.pzxid);
    assert!(deleted.zxid > eph.czxid);
    server.shutdown().await;
}

#[tokio::test]
async fn an_auth_acl_lists_identities_in_zookeepers_order() {
    // ZooKeeper 3.8 keeps a connection's identities in a ConcurrentHashMap key set: an
    // `auth` ACL expands, and whoAmI lists them, in its order (bob before alice here),
    // not in the order they were added.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let c = client(&server).await;
    c.auth("digest", b"alice:pw").await.unwrap();
    c.auth("digest", b"bob:pw").await.unwrap();
    let mine = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    c.create("/both", b"", &mine).await.unwrap();
    let (acl, _) = c.get_acl("/both").await.unwrap();
    let ids: Vec<String> = acl
        .iter()
        .map(|a| format!("{}:{}", a.scheme(), a.id()))
        .collect();
    assert_eq!(
        ids,
        [
            "digest:bob:ikIaKsbtGweaHnb/jKn7OHqbunM=",
            "digest:alice:V55/p2T0OpjQ+low3NVAH4aLvm0="
        ]
    );
    let users: Vec<String> = c
        .list_auth_users()
        .await
        .unwrap()
        .iter()
        .map(|u| format!("{}:{}", u.scheme(), u.user()))
        .collect();
    assert_eq!(users, ["digest:bob", "ip:127.0.0.1", "digest:alice"]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_closed_sessions_ephemerals_go_in_zookeepers_order() {
    // ZooKeeper's closeSession deletes the ephemerals in the order of a clone of the
    // session's HashSet: this one grew to 64 bins for 26 paths, and its clone has 8 for
    // the 5 left, which orders them charlie, echo, bravo, delta, alpha.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let (owner, watcher) = (client(&server).await, client(&server).await);
    owner.create("/e", b"", OPEN).await.unwrap();
    let names = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra",
        "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
    ];
    for name in names {
        owner
            .create(&format!("/e/{name}"), b"", EPHEMERAL)
            .await
            .unwrap();
    }
    for name in &names[5..] {
        owner.delete(&format!("/e/{name}"), None).await.unwrap();
    }
    let mut events = watcher
        .watch("/e", zk::AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    drop(owner);
    let mut deleted = Vec::new();
    for _ in 0..5 {
        let event = with_timeout("deletions", events.changed()).await;
        assert_eq!(event.event_type, zk::EventType::NodeDeleted);
        deleted.push(event.path);
    }
    assert_eq!(
        deleted,
        ["/e/charlie", "/e/echo", "/e/bravo", "/e/delta", "/e/alpha"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn acls_and_digest_auth() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let alice = client(&server).await;
    alice.auth("digest", b"alice:secret").await.unwrap();
    let mine = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    alice.create("/private", b"s", &mine).await.unwrap();
    assert_eq!(alice.get_data("/private").await.unwrap().0, b"s");
    let (acl, _) = alice.get_acl("/private").await.unwrap();
    assert_eq!(acl[0].scheme(), "digest");

    let eve = client(&server).await;
    assert_eq!(
        eve.get_data("/private").await.unwrap_err(),
        zk::Error::NoAuth
    );
    assert_eq!(
        eve.set_data("/private", b"x", None).await.unwrap_err(),
        zk::Error::NoAuth
    );
    let users = alice.list_auth_users().await.unwrap();
    assert!(
        users
            .iter()
            .any(|u| u.scheme() == "digest" && u.user() == "alice"),
        "{users:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn acknowledged_writes_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let c = client(&server).await;
    for i in 0..50 {
        c.create(&format!("/durable-{i}"), format!("{i}").as_bytes(), OPEN)
            .await
            .unwrap();
    }
    let (_, before) = c.get_children("/").await.unwrap();
    drop(c);
    server.shutdown().await;

    let server = Server::start(config(dir.path())).await.unwrap();
    let c = client(&server).await;
    let (children, after) = c.get_children("/").await.unwrap();
    assert_eq!(children.len(), 51, "50 nodes and /zookeeper");
    assert_eq!(
        (after.pzxid, after.cversion),
        (before.pzxid, before.cversion)
    );
    assert_eq!(c.get_data("/durable-49").await.unwrap().0, b"49");
    server.shutdown().await;
}

async fn four_letter_word(server: &Server, word: &str) -> String {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(word.as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn four_letter_words() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    assert_eq!(four_letter_word(&server, "ruok").await, "imok");
    let srvr = four_letter_word(&server, "srvr").await;
    assert!(
        // Apache ZooKeeper 3.8.0 says 5 of a fresh tree (its node map holds the root twice)
        // and 44 bytes: "/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config".
        srvr.contains("Mode: standalone") && srvr.contains("Node count: 5"),
        "{srvr}"
    );
    let mntr = four_letter_word(&server, "mntr").await;
    assert!(mntr.contains("zk_znode_count\t5"), "{mntr}");
    assert!(mntr.contains("zk_approximate_data_size\t44\n"), "{mntr}");
    assert!(mntr.contains("zk_max_file_descriptor_count\t"), "{mntr}");
    let c = client(&server).await;
    // As Apache ZooKeeper 3.8.0 counts them: the path in UTF-16 units plus the data.
    c.create("/a", b"hello", OPEN).await.unwrap();
    c.create("/a/b\u{e9}", b"xyz", OPEN).await.unwrap();
    c.set_data("/a", b"hi", None).await.unwrap();
    let mntr = four_letter_word(&server, "mntr").await;
    assert!(mntr.contains("zk_approximate_data_size\t56\n"), "{mntr}");
    drop(c);
    server.shutdown().await;
}

/// The value of the sample `name` (a whole line's first word) in a Prometheus exposition.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn latency_and_metrics_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Config {
        metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        ..config(dir.path())
    })
    .await
    .unwrap();
    let c = client(&server).await;
    for i in 0..10 {
        c.create(&format!("/m{i}"), b"x", OPEN).await.unwrap();
        c.get_data(&format!("/m{i}")).await.unwrap();
    }
    let srvr = four_letter_word(&server, "srvr").await;
    let latency = srvr
        .lines()
        .find_map(|l| l.strip_prefix("Latency min/avg/max: "))
        .unwrap();
    let figures: Vec<f64> = latency.split('/').map(|f| f.parse().unwrap()).collect();
    assert!(
        figures[0] <= figures[1] && figures[1] <= figures[2] && figures[1] > 0.0,
        "{srvr}"
    );
    assert!(latency.split('/').nth(1).unwrap().contains('.'), "{srvr}");

    let addr = server.metrics_addr().unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    assert_eq!(sample(body, "znode_count"), 15.0);
    // "/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config", ten "/mN" with "x".
    assert_eq!(sample(body, "approximate_data_size"), 44.0 + 10.0 * 4.0);
    assert_eq!(sample(body, "global_sessions"), 1.0);
    assert_eq!(sample(body, "num_alive_connections"), 1.0);
    assert_eq!(sample(body, "outstanding_requests"), 0.0);
    assert!(sample(body, "readlatency_count") >= 10.0);
    assert_eq!(sample(body, "updatelatency_count"), 10.0);
    assert_eq!(sample(body, "updatelatency_ms_bucket{le=\"+Inf\"}"), 10.0);
    assert!(sample(body, "fsynctime_count") >= 1.0);
    assert!(sample(body, "fsynctime_sum") > 0.0);
    assert!(sample(body, "packets_received") >= 20.0);
    server.shutdown().await;
}

#[tokio::test]
async fn at_a_tiny_outstanding_limit_every_request_is_still_answered() {
    // globalOutstandingLimit=2 with 4 clients pipelining 100 writes each: connections keep
    // waiting for room before reading more, and still every request is answered, none
    // lost or stuck. (That the throttle holds readers back is metrics.rs's unit test.)
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Config {
        global_outstanding_limit: 2,
        ..config(dir.path())
    })
    .await
    .unwrap();
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(client(&server).await);
    }
    let mut tasks = Vec::new();
    for (n, c) in clients.iter().enumerate() {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let paths: Vec<String> = (0..100).map(|i| format!("/t{n}-{i}")).collect();
            let writes: Vec<_> = paths.iter().map(|p| c.create(p, b"", OPEN)).collect();
            for write in writes {
                write.await.unwrap();
            }
        }));
    }
    for task in tasks {
        with_timeout("throttled writes", task).await.unwrap();
    }
    assert_eq!(clients[0].count_descendants_number("/").await.unwrap(), 403);
    server.shutdown().await;
}

#[tokio::test]
async fn hostile_input_closes_only_its_own_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let good = client(&server).await;
    good.create("/kept", b"", OPEN).await.unwrap();

    // A lying length prefix far beyond jute.maxbuffer: the connection is closed.
    let mut bad = TcpStream::connect(server.local_addr()).await.unwrap();
    bad.write_all(&[0x7f, 0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .unwrap();
    let mut buf = [0_u8; 16];
    assert_eq!(
        with_timeout("oversized frame closes", bad.read(&mut buf))
            .await
            .unwrap_or(0),
        0
    );

    // A handshake that does not decode: closed too.
    let mut bad = TcpStream::connect(server.local_addr()).await.unwrap();
    bad.write_all(&[0, 0, 0, 3, 1, 2, 3]).await.unwrap();
    assert_eq!(
        with_timeout("bad handshake closes", bad.read(&mut buf))
            .await
            .unwrap_or(0),
        0
    );

    // Half-open: a partial frame, then silence; the server keeps serving everyone else.
    let mut half = TcpStream::connect(server.local_addr()).await.unwrap();
    half.write_all(&[0, 0, 0, 40, 0, 0]).await.unwrap();

    good.create("/still-serving", b"", OPEN).await.unwrap();
    assert!(good.check_stat("/kept").await.unwrap().is_some());
    drop(half);
    server.shutdown().await;
}

/// Opens a session by hand: a ConnectRequest (protocol 0, zxid 0, timeout 4000, session 0,
/// 16-byte password) and its answer.
async fn raw_session(server: &Server) -> TcpStream {
    let mut s = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut connect = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0f, 0xa0];
    connect.extend([0; 8]);
    connect.extend([0, 0, 0, 16]);
    connect.extend([0; 16]);
    let mut frame = (connect.len() as u32).to_be_bytes().to_vec();
    frame.extend(connect);
    s.write_all(&frame).await.unwrap();
    let mut len = [0_u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut response = vec![0; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut response).await.unwrap();
    s
}

#[tokio::test]
async fn a_client_that_does_not_read_is_cut_off_and_the_rest_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let good = client(&server).await;
    let value = vec![7_u8; 512 * 1024];
    good.create("/big", &value, OPEN).await.unwrap();

    // 400 getData requests of a 512 KiB znode (200 MiB of replies), none of them read.
    let mut slow = raw_session(&server).await;
    let mut requests = Vec::new();
    for xid in 1..=400_i32 {
        requests.extend(17_u32.to_be_bytes());
        requests.extend(xid.to_be_bytes());
        requests.extend(4_i32.to_be_bytes()); // getData
        requests.extend(4_u32.to_be_bytes());
        requests.extend(b"/big");
        requests.push(0); // no watch
    }
    slow.write_all(&requests).await.unwrap();

    // Everyone else is served meanwhile.
    for i in 0..20 {
        with_timeout(
            "a good client's write",
            good.create(&format!("/g{i}"), b"", OPEN),
        )
        .await
        .unwrap();
        let (data, _) = with_timeout("a good client's read", good.get_data("/big"))
            .await
            .unwrap();
        assert_eq!(data.len(), value.len());
    }

    // The slow one was cut off once 64 MiB of its replies waited: reading everything it
    // was sent ends at the close, well short of the 200 MiB it asked for.
    let mut received = 0_usize;
    let mut buf = vec![0_u8; 1 << 20];
    with_timeout("the slow client's connection closes", async {
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
    })
    .await;
    assert!(
        received < 400 * value.len(),
        "{received} bytes: the slow client got every reply"
    );
    assert!(good.check_stat("/g19").await.unwrap().is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_opcodes_get_unimplemented() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let mut s = raw_session(&server).await;
    // Request header xid 1, opcode 999.
    s.write_all(&[0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0x03, 0xe7])
        .await
        .unwrap();
    let mut reply = [0_u8; 20];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply[4..8], &[0, 0, 0, 1], "xid echoed");
    assert_eq!(
        i32::from_be_bytes(reply[16..20].try_into().unwrap()),
        -6,
        "UNIMPLEMENTED"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_abandoned_session_expires_and_its_ephemerals_go() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let addr = server.local_addr().to_string();
    let abandoned = zk::Client::connector()
        .with_session_timeout(Duration::from_millis(600))
        .with_detached()
        .connect(&addr)
        .await
        .unwrap();
    abandoned
        .create("/short-lived", b"", EPHEMERAL)
        .await
        .unwrap();
    let observer = client(&server).await;
    let (_, gone) = observer.check_and_watch_stat("/short-lived").await.unwrap();
    drop(abandoned); // detached: no closeSession, no more pings
    let event = with_timeout("session expiry", gone.changed()).await;
    assert_eq!(event.event_type, zk::EventType::NodeDeleted);
    server.shutdown().await;
}

#[tokio::test]
async fn a_session_survives_a_server_restart_within_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let addr = server.local_addr();
    let c = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(8))
        .connect(&addr.to_string())
        .await
        .unwrap();
    c.create("/mine", b"", EPHEMERAL).await.unwrap();
    let session = c.session_id();
    server.shutdown().await;

    let server = Server::start(Config {
        client_addr: addr,
        ..config(dir.path())
    })
    .await
    .unwrap();
    // The client reconnects by itself and resumes the same session: its ephemeral is there.
    let stat = with_timeout("reconnect", async {
        loop {
            match c.check_stat("/mine").await {
                Ok(stat) => return stat,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await;
    assert_eq!(stat.map(|s| s.ephemeral_owner), Some(session.0));
    assert_eq!(c.session_id(), session);
    server.shutdown().await;
}

/// How many znodes a client sees once the server is started again on `dir`.
async fn znodes_after_restart(dir: &std::path::Path) -> usize {
    let server = Server::start(config(dir)).await.unwrap();
    let c = client(&server).await;
    let count = c.count_descendants_number("/").await.unwrap();
    server.shutdown().await;
    count
}

#[tokio::test]
async fn snapshots_are_taken_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Config {
        snap_count: 20,
        ..config(dir.path())
    })
    .await
    .unwrap();
    let c = client(&server).await;
    for i in 0..100 {
        c.create(&format!("/s{i}"), b"x", OPEN).await.unwrap();
    }
    drop(c);
    server.shutdown().await;
    let snapshots = zk_persistence::snapshot_files(&dir.path().join("version-2")).unwrap();
    // Besides the first start's snapshot.0.
    assert!(
        snapshots.iter().filter(|(zxid, _)| *zxid > 0).count() >= 2,
        "snapshots: {snapshots:?}"
    );

    assert_eq!(znodes_after_restart(dir.path()).await, 100 + 3);
}

#[tokio::test]
async fn a_fresh_directory_gets_a_snapshot_and_a_long_replay_another() {
    // A fresh directory gets snapshot.0 before any client writes, as ZooKeeper's (it
    // refuses a directory with log entries and no snapshot). A start that replays more
    // than snapCount txns snapshots, so the log after the last snapshot stays bounded
    // however often the server restarts.
    let dir = tempfile::tempdir().unwrap();
    let version2 = dir.path().join("version-2");
    let zxids = || {
        let mut zxids: Vec<i64> = zk_persistence::snapshot_files(&version2)
            .unwrap()
            .into_iter()
            .map(|(zxid, _)| zxid)
            .collect();
        zxids.sort();
        zxids
    };
    let server = Server::start(config(dir.path())).await.unwrap();
    assert_eq!(zxids(), [0]);
    let c = client(&server).await;
    let mut last = 0;
    for i in 0..5 {
        last = c
            .create(&format!("/n{i}"), b"", OPEN)
            .await
            .unwrap()
            .0
            .czxid;
    }
    server.shutdown().await;
    drop(c);
    assert_eq!(zxids(), [0], "snapCount is far away");

    // With snapCount 2, the six txns replayed are past it: a snapshot is taken at start
    // (before the new session's txn, which would not be enough on its own).
    let server = Server::start(Config {
        snap_count: 2,
        ..config(dir.path())
    })
    .await
    .unwrap();
    let c = client(&server).await;
    assert_eq!(c.count_descendants_number("/").await.unwrap(), 5 + 3);
    server.shutdown().await;
    drop(c);
    let after = zxids();
    assert_eq!(after.len(), 2, "snapshots: {after:?}");
    assert_eq!(after[1], last, "snapshots: {after:?}");
    assert_eq!(znodes_after_restart(dir.path()).await, 5 + 3);
}

#[tokio::test]
async fn ephemerals_whose_session_is_not_in_the_table_go_at_start() {
    // A snapshot whose session table lacks the owner of an ephemeral: ZooKeeper deletes
    // such ephemerals once it has loaded ("clean up dead sessions"), since nothing would
    // ever close their session.
    use zk_datatree::{DataTree, Transaction, TreeOptions};
    use zk_jute::txn::{CreateSessionTxn, CreateTxn, TxnHeader};
    let mut tree = DataTree::new(TreeOptions::default());
    let create = |path: &str, ephemeral| {
        Transaction::Create(CreateTxn {
            path: path.into(),
            data: Some(b"x".to_vec().into()),
            acl: Some(zk_datatree::acl::open_acl_unsafe()),
            ephemeral,
            parent_c_version: -1,
        })
    };
    let txns = [
        Transaction::CreateSession(CreateSessionTxn { time_out: 30_000 }),
        create("/orphan", true),
        create("/kept", false),
    ];
    for (zxid, txn) in (1..).zip(&txns) {
        let header = TxnHeader {
            client_id: 0x99,
            cxid: 0,
            zxid,
            time: 0,
            r#type: txn.op_code().code(),
        };
        tree.apply(&header, txn);
    }
    let dir = tempfile::tempdir().unwrap();
    let version2 = dir.path().join("version-2");
    std::fs::create_dir_all(&version2).unwrap();
    zk_persistence::write_snapshot(&version2, 3, &Default::default(), None, |w| {
        tree.write_body(w)
    })
    .unwrap();

    let server = Server::start(config(dir.path())).await.unwrap();
    let c = client(&server).await;
    assert_eq!(c.check_stat("/orphan").await.unwrap(), None);
    assert!(c.check_stat("/kept").await.unwrap().is_some());
    drop(c);
    server.shutdown().await;
    // The start snapshotted the tree without it (at the same zxid, as ZooKeeper names it).
    let newest = zk_persistence::read_newest(&version2, 1, |r, _| {
        DataTree::deserialize(r, TreeOptions::default(), |_| {})
    })
    .unwrap()
    .expect("a snapshot");
    assert_eq!(newest.zxid, 3);
    assert!(newest.tree.node("/orphan").is_none());
    assert!(newest.tree.node("/kept").is_some());
}

#[tokio::test]
async fn a_directory_whose_snapshots_are_all_invalid_is_refused() {
    // As ZooKeeper's "Not able to find valid snapshots": the logs alone would silently lose
    // what the snapshots held (and a first snapshot written from them would make it last).
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    let c = client(&server).await;
    c.create("/kept", b"", OPEN).await.unwrap();
    drop(c);
    server.shutdown().await;
    let version2 = dir.path().join("version-2");
    // What a writer killed mid-write leaves is removed at start.
    std::fs::write(version2.join("snapshot.7.tmp"), b"half").unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    server.shutdown().await;
    assert!(!version2.join("snapshot.7.tmp").exists());

    for (_, path) in zk_persistence::snapshot_files(&version2).unwrap() {
        std::fs::write(path, b"garbage").unwrap();
    }
    let err = Server::start(config(dir.path())).await.unwrap_err();
    assert!(err.to_string().contains("snapshots is valid"), "{err}");
    assert!(
        zk_persistence::snapshot_files(&version2)
            .unwrap()
            .iter()
            .all(|(_, path)| std::fs::read(path).unwrap() == b"garbage")
    );
}

#[tokio::test]
async fn a_large_tree_is_snapshotted_in_pieces_while_writes_go_on() {
    // 60 multis of 1,000 creates with snapCount 60: a snapshot starts once the tree holds
    // tens of thousands of znodes, so it is serialized in several pieces while the later
    // multis arrive and are applied (the snapshot is fuzzy, as ZooKeeper's), reads keep
    // being served, and a restart from that snapshot and the log gives back every znode.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Config {
        snap_count: 60,
        ..config(dir.path())
    })
    .await
    .unwrap();
    // The client shares this test's one thread with the server, which works through 60,000
    // creates of an unoptimized build before it answers many of them: a longer session
    // timeout than the other tests' keeps the client from giving up on a slow machine
    // (it drops a connection silent for 2/5 of the timeout).
    let c = with_timeout(
        "connect",
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(30))
            .connect(&server.local_addr().to_string()),
    )
    .await
    .expect("connects");
    let mut writers: Vec<_> = (0..60)
        .map(|batch| {
            let mut writer = c.new_multi_writer();
            for i in 0..1_000 {
                writer
                    .add_create(&format!("/big-{batch}-{i}"), b"", OPEN)
                    .unwrap();
            }
            writer
        })
        .collect();
    let commits = futures_util::future::join_all(writers.iter_mut().map(|w| w.commit()));
    let reads = async {
        for _ in 0..50 {
            assert_eq!(c.get_data("/zookeeper").await.unwrap().0, b"");
        }
    };
    let (results, ()) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(commits, reads)
    })
    .await
    .expect("multis answered");
    for result in results {
        assert_eq!(result.unwrap().len(), 1_000);
    }
    assert_eq!(c.count_descendants_number("/").await.unwrap(), 60_000 + 3);
    drop(c);
    server.shutdown().await;
    let snapshots = zk_persistence::snapshot_files(&dir.path().join("version-2")).unwrap();
    // Taken at 30 txns or later (snapCount/2 plus a random part): 29,000 znodes or more,
    // more than one piece.
    assert!(
        snapshots.iter().any(|(zxid, _)| *zxid >= 30),
        "snapshots: {snapshots:?}"
    );

    assert_eq!(znodes_after_restart(dir.path()).await, 60_000 + 3);
}

#[tokio::test]
async fn auth_sent_with_the_handshake_and_events_only_for_readers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config(dir.path())).await.unwrap();
    // The client pipelines its auth packet right behind the ConnectRequest.
    let alice = with_timeout(
        "connect with auth",
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(5))
            .with_auth("digest", b"alice:pw")
            .connect(&server.local_addr().to_string()),
    )
    .await
    .expect("connects");
    alice.create("/open", b"", OPEN).await.unwrap();
    let eve = client(&server).await;
    let (_, _, eve_watch) = eve.get_and_watch_children("/open").await.unwrap();
    let (_, _, alice_watch) = alice.get_and_watch_children("/open").await.unwrap();
    // /open becomes readable by alice only; then a child appears.
    alice
        .set_acl("/open", &zk::Acls::creator_all(), None)
        .await
        .unwrap();
    alice.create("/open/child", b"", OPEN).await.unwrap();
    let event = with_timeout("alice's watch", alice_watch.changed()).await;
    assert_eq!(event.event_type, zk::EventType::NodeChildrenChanged);
    // eve may not read /open: no event reaches her (ZooKeeper's CVE-2024-23944 fix).
    let silent = tokio::time::timeout(Duration::from_millis(300), eve_watch.changed()).await;
    assert!(
        silent.is_err(),
        "eve heard of a znode she may not read: {silent:?}"
    );
    server.shutdown().await;
}
