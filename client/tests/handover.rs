//! One data directory served in turn by our server and by Apache ZooKeeper 3.8.0
//! (`ZK_CLIENT_TEST_SERVER=reference`; without it, by our server each time): each start
//! reads what the other wrote, with the same stats and sequence counters, as an operator
//! moving between the two would need.

mod harness;

use harness::{Kind, TestServer, options, within};
use zk_client::{Client, CreateMode, CreateOptions, Stat};

/// The server that takes over from ours: Apache ZooKeeper when the tests run against it.
fn other() -> Kind {
    if harness::reference() {
        Kind::Reference
    } else {
        Kind::Ours
    }
}

async fn connect(server: &TestServer) -> Client {
    within(
        "connect",
        Client::connect(&server.connect_string(""), options()),
    )
    .await
    .expect("connects")
}

/// What a stat says of a znode's history (its times are the server clock's).
fn history(stat: &Stat) -> (i64, i64, i64, i32, i32, i32) {
    (
        stat.czxid,
        stat.mzxid,
        stat.pzxid,
        stat.version,
        stat.cversion,
        stat.num_children,
    )
}

#[tokio::test]
async fn a_data_directory_goes_from_our_server_to_zookeeper_and_back() {
    // Ours starts on an empty directory and writes a little: fewer txns than snapCount, so
    // the only snapshot is the one every start takes.
    let mut server = TestServer::start_first(Kind::Ours).await;
    let c = connect(&server).await;
    let persistent = CreateOptions::persistent();
    let sequential = CreateOptions::new(CreateMode::PersistentSequential);
    c.create("/h", b"", &persistent).await.unwrap();
    c.create("/h/a", b"1", &persistent).await.unwrap();
    c.set_data("/h/a", b"2", Some(0)).await.unwrap();
    // Sequence numbers are the parent's cversion: 1 after /h/a.
    let (first, _) = c.create("/h/seq-", b"", &sequential).await.unwrap();
    let (second, _) = c.create("/h/seq-", b"", &sequential).await.unwrap();
    c.create("/h/c", b"", &CreateOptions::new(CreateMode::Container))
        .await
        .unwrap();
    c.create("/h/c/child", b"", &persistent).await.unwrap();
    let (_, a) = c.get_data("/h/a").await.unwrap();
    let h = c.exists("/h").await.unwrap().expect("/h");
    c.close().await.unwrap();
    server.stop().await;
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("/h/seq-0000000001", "/h/seq-0000000002")
    );

    // The other server reads it as its own, and writes on.
    server.start_as(other()).await;
    let c = connect(&server).await;
    let (data, read) = c.get_data("/h/a").await.unwrap();
    assert_eq!(&data[..], b"2");
    assert_eq!(history(&read), history(&a));
    let read = c.exists("/h").await.unwrap().expect("/h");
    assert_eq!(history(&read), history(&h));
    let (next, _) = c.create("/h/seq-", b"", &sequential).await.unwrap();
    assert_eq!(
        next,
        format!("/h/seq-{:010}", h.cversion),
        "the sequence counter came along"
    );
    c.create("/h/b", b"from the other", &persistent)
        .await
        .unwrap();
    let h = c.exists("/h").await.unwrap().expect("/h");
    c.close().await.unwrap();
    server.stop().await;

    // And ours reads what the other wrote.
    server.start_as(Kind::Ours).await;
    let c = connect(&server).await;
    let (data, _) = c.get_data("/h/b").await.unwrap();
    assert_eq!(&data[..], b"from the other");
    let read = c.exists("/h").await.unwrap().expect("/h");
    assert_eq!(history(&read), history(&h));
    let mut children = c.get_children("/h").await.unwrap();
    children.sort();
    assert_eq!(
        children,
        [
            "a",
            "b",
            "c",
            "seq-0000000001",
            "seq-0000000002",
            &next[3..]
        ]
    );
    let (data, _) = c.get_data("/h/c/child").await.unwrap();
    assert!(data.is_empty());
    c.close().await.unwrap();
    server.stop().await;
}
