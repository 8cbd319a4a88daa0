//! Glue between the persistence crate and the tree, as a server makes it.
#![allow(dead_code, unreachable_pub)]

pub(crate) mod crash;

use zk_datatree::{DataTree, Transaction, TreeOptions};
use zk_jute::Reader;
use zk_persistence::{FileTxnLog, LogEntry, LogOptions, Restored, restore};

/// Applies a logged txn to the tree.
pub(crate) fn apply(tree: &mut DataTree, entry: &LogEntry) -> Result<(), String> {
    let mut body = Reader::new(entry.body.clone());
    let txn = Transaction::read(entry.header.r#type, &mut body).map_err(|e| e.to_string())?;
    tree.apply(&entry.header, &txn);
    Ok(())
}

/// Restores a tree from a ZooKeeper data folder (`version-2` inside `dir`).
pub(crate) fn restore_tree(dir: &std::path::Path) -> Restored<DataTree> {
    let version2 = dir.join("version-2");
    let log = FileTxnLog::open(&version2, LogOptions::default()).expect("log opens");
    restore(
        &version2,
        &log,
        |r, sessions| {
            let mut tree = DataTree::deserialize(r, TreeOptions::default(), |_| {})?;
            tree.set_sessions(sessions.clone());
            Ok::<_, zk_datatree::SnapshotError>(tree)
        },
        DataTree::default,
        |tree, entry, _| apply(tree, entry),
    )
    .expect("restores")
}
