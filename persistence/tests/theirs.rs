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
