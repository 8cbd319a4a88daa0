//! Data folders written by Apache ZooKeeper 3.8.0 itself (recorded by `cargo xtask
//! record-tree`) restore to exactly the tree ZooKeeper held: every path, data, stat
//! field, ACL, and the digest.

mod common;

use std::path::{Path, PathBuf};

fn zookeeper_data_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut dirs: Vec<PathBuf> = ["datatree/tests/reference", "persistence/tests"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root.join(d)).into_iter().flatten())
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("version-2").is_dir() && p.join("tree.txt").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 6, "ZooKeeper-written data folders: {dirs:?}");
    dirs
}

#[test]
fn zookeeper_data_dirs_restore_to_zookeepers_tree() {
    for dir in zookeeper_data_dirs() {
        let restored = common::restore_tree(&dir);
        assert!(
            restored.snapshot.is_some(),
            "{}: a snapshot was loaded",
            dir.display()
        );
        assert!(
            restored.replayed > 0,
            "{}: txns were replayed",
            dir.display()
        );
        let expected = std::fs::read_to_string(dir.join("tree.txt")).unwrap();
        assert_eq!(restored.tree.dump(), expected, "{}", dir.display());
    }
}

/// Snapshots Apache ZooKeeper 3.8.0 wrote with `zookeeper.snapshot.compression.method` set
/// to `gz` and `snappy` (made by `RecordTree` with that JVM property: open a session, create
/// `/x` = "hello" and `/x/y` with null data, snapshot at zxid 3). Each decompresses, every
/// seal verifies, and the digest ZooKeeper recorded equals the one we compute.
#[test]
fn compressed_zookeeper_snapshots_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compressed");
    for name in ["snapshot.3.gz", "snapshot.3.snappy"] {
        let snapshot = zk_persistence::read_snapshot(&dir.join(name), |r, _| {
            zk_datatree::DataTree::deserialize(r, zk_datatree::TreeOptions::default(), |_| {})
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(snapshot.zxid, 3, "{name}");
        assert_eq!(snapshot.sessions.len(), 1, "{name}");
        let tree = snapshot.tree;
        assert_eq!(
            tree.node("/x").and_then(|n| n.data.clone()).as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(tree.node("/x/y").map(|n| n.data.is_none()), Some(true));
        let digest = snapshot.digest.expect("a digest trailer");
        assert_eq!(
            (digest.zxid, digest.digest),
            (3, tree.digest() as i64),
            "{name}"
        );
    }
}
