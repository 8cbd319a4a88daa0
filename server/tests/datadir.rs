//! A data directory written by our server, through a real client, with every kind of
//! znode and txn; restarting on it gives the same tree. With `ZK_RS_KEEP_DATADIR=<dir>`
//! the directory and our `tree.txt` are kept there, for `cargo xtask compat <dir>
//! --expect-tree <dir>/tree.txt` to check that Apache ZooKeeper's own tools read it and
//! load the same tree.

use std::time::Duration;

use zk_datatree::{DataTree, Transaction, TreeOptions};
use zk_jute::Reader;
use zk_persistence::{FileTxnLog, LogOptions};
use zk_server::{Config, Server};
use zookeeper_client as zk;

fn restore(dir: &std::path::Path) -> DataTree {
    let version2 = dir.join("version-2");
    let log = FileTxnLog::open(&version2, LogOptions::default()).unwrap();
    let restored = zk_persistence::restore(
        &version2,
        &log,
        |r, sessions| {
            let mut tree = DataTree::deserialize(
                r,
                TreeOptions {
                    extended_types: true,
                },
                |_| {},
            )?;
            tree.set_sessions(sessions.clone());
            Ok::<_, zk_datatree::SnapshotError>(tree)
        },
        || {
            DataTree::new(TreeOptions {
                extended_types: true,
            })
        },
        |tree, entry, _| {
            let mut body = Reader::new(entry.body.clone());
            let txn = Transaction::read(entry.header.r#type, &mut body).unwrap();
            tree.apply(&entry.header, &txn);
            Ok(())
        },
    )
    .unwrap();
    restored.tree
}

#[tokio::test]
async fn our_data_directory_restores_to_the_tree_we_served() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        client_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        data_log_dir: dir.path().to_owned(),
        snap_count: 30,
        pre_alloc_size: 64 * 1024,
        extended_types: true,
        ..Config::default()
    };
    let server = Server::start(config).await.unwrap();
    let addr = server.local_addr().to_string();
    let c = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .connect(&addr)
        .await
        .unwrap();
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    c.create("/app", b"config", &open).await.unwrap();
    for i in 0..20 {
        c.create(&format!("/app/item-{i}"), format!("{i}").as_bytes(), &open)
            .await
            .unwrap();
    }
    let seq = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
    c.create("/app/seq-", b"", &seq).await.unwrap();
    let eph = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    c.create("/app/alive", b"", &eph).await.unwrap();
    let container = zk::CreateMode::Container.with_acls(zk::Acls::anyone_all());
    c.create("/jobs", b"", &container).await.unwrap();
    c.create("/jobs/one", b"", &open).await.unwrap();
    let ttl = open.clone().with_ttl(Duration::from_secs(3600));
    c.create("/cache", b"t", &ttl).await.unwrap();
    c.auth("digest", b"alice:pw").await.unwrap();
    let mine = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    c.create("/private", b"s", &mine).await.unwrap();
    c.set_data("/app", b"config-2", None).await.unwrap();
    for i in 0..5 {
        c.delete(&format!("/app/item-{i}"), None).await.unwrap();
    }
    let mut multi = c.new_multi_writer();
    multi.add_create("/batch", b"", &open).unwrap();
    multi.add_set_data("/app", b"config-3", None).unwrap();
    multi.commit().await.unwrap();
    let mut failed = c.new_multi_writer();
    failed.add_create("/never", b"", &open).unwrap();
    failed.add_delete("/missing", None).unwrap();
    assert!(failed.commit().await.is_err());
    assert_eq!(
        c.create("/app", b"", &open).await.unwrap_err(),
        zk::Error::NodeExists
    );
    let (_, served) = c.get_children("/").await.unwrap();
    // Keep the session open: its ephemeral stays in the directory, as ZooKeeper would have it.
    server.shutdown().await;
    drop(c);

    let snapshots = zk_persistence::snapshot_files(&dir.path().join("version-2")).unwrap();
    assert!(
        snapshots.iter().any(|(zxid, _)| *zxid > 0),
        "a snapshot was taken besides the first start's snapshot.0: {snapshots:?}"
    );
    let tree = restore(dir.path());
    assert!(tree.node("/app/alive").is_some());
    assert!(tree.node("/never").is_none());
    let root = tree.node("/").map(|n| n.client_stat()).unwrap();
    assert_eq!(
        (root.pzxid, root.cversion, root.num_children),
        (served.pzxid, served.cversion, served.num_children)
    );
    assert_eq!(
        tree.node("/app").and_then(|n| n.data.clone()).as_deref(),
        Some(&b"config-3"[..])
    );

    if let Ok(keep) = std::env::var("ZK_RS_KEEP_DATADIR") {
        let keep = std::path::Path::new(&keep);
        std::fs::create_dir_all(keep.join("version-2")).unwrap();
        for entry in std::fs::read_dir(dir.path().join("version-2")).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(
                &path,
                keep.join("version-2").join(path.file_name().unwrap()),
            )
            .unwrap();
        }
        std::fs::write(keep.join("tree.txt"), tree.dump()).unwrap();
    }
}

/// Apache ZooKeeper 3.8.0's own data directory (recorded in zk-persistence's tests) starts
/// our server: every txn replayed gives the tree the digest ZooKeeper logged with it (a
/// mismatch would stop the start), and the tree served is the one ZooKeeper had.
#[tokio::test]
async fn apache_zookeepers_directory_replays_with_every_digest_checked() {
    let recorded = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../persistence/tests/zk-datadir/version-2");
    let dir = tempfile::tempdir().unwrap();
    let version2 = dir.path().join("version-2");
    std::fs::create_dir_all(&version2).unwrap();
    for file in std::fs::read_dir(&recorded).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), version2.join(file.file_name())).unwrap();
    }
    let expected = restore(dir.path());
    let config = Config {
        client_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        data_log_dir: dir.path().to_owned(),
        extended_types: true,
        ..Config::default()
    };
    let server = Server::start(config).await.unwrap();
    let c = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(30))
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    let (data, stat) = c.get_data("/app").await.unwrap();
    let node = expected.node("/app").unwrap();
    assert_eq!(data, node.data.clone().unwrap_or_default().to_vec());
    assert_eq!(
        (stat.mzxid, stat.version),
        (node.stat.mzxid, node.stat.version)
    );
    drop(c);
    server.shutdown().await;
}

/// Snapshots taken while writes go on are fuzzy: they may hold txns after the zxid in
/// their name. A restart replays the log over them, and the digests logged with those
/// txns cannot be compared until the replay passes the snapshot's own digest (as
/// ZooKeeper's `compareDigest`); the restart serves the tree it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzy_snapshots_taken_under_writes_restore() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        client_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_owned(),
        data_log_dir: dir.path().to_owned(),
        snap_count: 200,
        pre_alloc_size: 64 * 1024,
        ..Config::default()
    };
    let server = Server::start(config.clone()).await.unwrap();
    let addr = server.local_addr().to_string();
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let mut writers = Vec::new();
    for w in 0..8 {
        let c = zk::Client::connector()
            .with_session_timeout(Duration::from_secs(30))
            .connect(&addr)
            .await
            .unwrap();
        let open = open.clone();
        writers.push(tokio::spawn(async move {
            c.create(&format!("/w{w}"), b"", &open).await.unwrap();
            for round in 0..10 {
                // 100 requests in flight: snapshots start and end between them.
                let paths: Vec<String> = (0..100).map(|i| format!("/w{w}/n{round}-{i}")).collect();
                let pending: Vec<_> = paths.iter().map(|p| c.create(p, b"v", &open)).collect();
                for p in pending {
                    p.await.unwrap();
                }
                let pending: Vec<_> = paths
                    .iter()
                    .map(|p| c.set_data(p, b"changed", None))
                    .collect();
                for p in pending {
                    p.await.unwrap();
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let snapshots = zk_persistence::snapshot_files(&dir.path().join("version-2")).unwrap();
    assert!(snapshots.len() > 5, "{snapshots:?}");
    server.shutdown().await;

    let server = Server::start(config)
        .await
        .expect("restarts on its fuzzy snapshots");
    let c = zk::Client::connector()
        .connect(&server.local_addr().to_string())
        .await
        .unwrap();
    for w in 0..8 {
        let children = c.list_children(&format!("/w{w}")).await.unwrap();
        assert_eq!(children.len(), 1000);
    }
    assert_eq!(c.get_data("/w7/n9-99").await.unwrap().0, b"changed");
    server.shutdown().await;
}
