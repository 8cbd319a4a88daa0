//! The tree in ZooKeeper's snapshot body layout (`DataTree.serialize`): the ACL cache (a
//! count, then each id with its ACL vector), then every node in preorder as its path
//! (the root as `""`) followed by data, ACL id and `StatPersisted`, ending with the path
//! `"/"`. File headers, the session table and seals belong to the persistence layer.

use bytes::BufMut;
use zk_jute::data::{Acl, StatPersisted};
use zk_jute::{DecodeError, Reader, Record};

use crate::path::split;
use crate::tree::{DataTree, Node, TreeOptions};

/// Why a snapshot body could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes do not decode.
    #[error("snapshot body: {0}")]
    Decode(#[from] DecodeError),
    /// A node came before its parent.
    #[error("snapshot node {path} has no parent in the snapshot")]
    MissingParent {
        /// The orphan's path.
        path: String,
    },
    /// A node names an ACL id the ACL cache does not hold.
    #[error("snapshot node {path} refers to unknown ACL id {acl}")]
    UnknownAcl {
        /// The node's path.
        path: String,
        /// The ACL id.
        acl: i64,
    },
    /// The ACL map count is negative.
    #[error("snapshot ACL map has a negative size {0}")]
    NegativeAclCount(i32),
}

/// A snapshot body written a piece at a time, so that a large tree can be serialized
/// between other work. The tree must not change between pieces: the result is then the
/// same bytes as [`DataTree::serialize`].
#[derive(Debug, Default)]
pub struct BodyWriter {
    /// The paths still to write, the next one last (preorder, children sorted).
    stack: Vec<String>,
    started: bool,
    done: bool,
}

impl BodyWriter {
    /// A body not started yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the ACL cache (on the first call) and up to `nodes` more nodes of `tree`;
    /// returns true once the body is complete, its end marker written.
    pub fn write_some<B: BufMut>(&mut self, tree: &DataTree, out: &mut B, nodes: usize) -> bool {
        if self.done {
            return true;
        }
        if !self.started {
            self.started = true;
            let entries: Vec<(i64, &[Acl])> = tree.acl_cache().entries().collect();
            i32::try_from(entries.len()).unwrap_or(i32::MAX).encode(out);
            for (id, acl) in entries {
                id.encode(out);
                i32::try_from(acl.len()).unwrap_or(i32::MAX).encode(out);
                acl.iter().for_each(|a| a.encode(out));
            }
            self.stack.push(String::new());
        }
        let mut written = 0;
        while written < nodes {
            let Some(path) = self.stack.pop() else {
                "/".to_owned().encode(out);
                self.done = true;
                return true;
            };
            let Some(node) = tree.node(&path) else {
                continue;
            };
            // One path alive per level rather than all at once.
            self.stack
                .extend(node.children.iter().rev().map(|c| format!("{path}/{c}")));
            path.encode(out);
            node.data.encode(out);
            node.acl.encode(out);
            node.stat.encode(out);
            written += 1;
        }
        false
    }
}

impl DataTree {
    /// Writes the snapshot body to `w` in 64 KiB pieces, so a large tree is never copied
    /// whole into memory.
    pub fn write_body(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        const PIECE: usize = 64 * 1024;
        let mut buf = bytes::BytesMut::with_capacity(2 * PIECE);
        self.serialize_with(&mut buf, |buf| {
            if buf.len() >= PIECE {
                w.write_all(buf)?;
                buf.clear();
            }
            Ok::<(), std::io::Error>(())
        })?;
        w.write_all(&buf)
    }

    /// Writes the ACL cache and nodes as a snapshot body.
    pub fn serialize<B: BufMut>(&self, out: &mut B) {
        let _ = self.serialize_with(out, |_| Ok::<(), std::convert::Infallible>(()));
    }

    /// [`serialize`](Self::serialize), calling `drain` after each node so the caller can
    /// move the bytes out.
    fn serialize_with<B: BufMut, E>(
        &self,
        out: &mut B,
        mut drain: impl FnMut(&mut B) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut body = BodyWriter::new();
        loop {
            let done = body.write_some(self, out, 1);
            drain(out)?;
            if done {
                return Ok(());
            }
        }
    }

    /// Reads a snapshot body written by [`DataTree::serialize`] or by ZooKeeper. Calls
    /// `progress` with the number of nodes read so far, every 100,000 nodes.
    pub fn deserialize(
        r: &mut Reader,
        options: TreeOptions,
        mut progress: impl FnMut(usize),
    ) -> Result<DataTree, SnapshotError> {
        let mut tree = DataTree::empty(options);
        let count: i32 = r.field("ACLCache", "map")?;
        if count < 0 {
            return Err(SnapshotError::NegativeAclCount(count));
        }
        for _ in 0..count {
            let id: i64 = r.field("ACLCache", "long")?;
            let acl: Option<Vec<Acl>> = r.field("ACLCache", "acls")?;
            tree.acls_mut().insert_loaded(id, acl.unwrap_or_default());
        }
        let mut loaded = 0_usize;
        loop {
            let path: String = r.field("DataTree", "path")?;
            if path == "/" {
                break;
            }
            let data = r.field("DataNode", "data")?;
            let acl: i64 = r.field("DataNode", "acl")?;
            let stat: StatPersisted = r.field("DataNode", "stat")?;
            if acl != crate::acl::OPEN_ACL_UNSAFE_ID && tree.acl_cache().get(acl).is_none() {
                return Err(SnapshotError::UnknownAcl { path, acl });
            }
            let owner = stat.ephemeral_owner;
            if let Some((parent, child)) = split(&path) {
                if !tree.link_child(parent, child) && tree.node(parent).is_none() {
                    return Err(SnapshotError::MissingParent { path });
                }
            }
            tree.insert_node(
                &path,
                Node::from_parts(crate::tree::owned(&data), acl, stat),
            );
            tree.index_loaded(&path, owner, acl);
            loaded += 1;
            if loaded % 100_000 == 0 {
                progress(loaded);
            }
        }
        tree.acls_mut().purge_unused();
        tree.setup_quotas();
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use zk_jute::txn::{CreateTxn, TxnHeader};

    use super::*;
    use crate::acl::open_acl_unsafe;
    use crate::txn::Transaction;

    #[test]
    fn a_tree_survives_its_snapshot_body() {
        let mut tree = DataTree::default();
        for (zxid, path) in [(1, "/a"), (2, "/a/b"), (3, "/c")] {
            let header = TxnHeader {
                client_id: 7,
                cxid: 1,
                zxid,
                time: 1000 + zxid,
                r#type: 1,
            };
            let txn = Transaction::Create(CreateTxn {
                path: path.into(),
                data: Some(Bytes::from(path)),
                acl: Some(open_acl_unsafe()),
                ephemeral: path == "/c",
                parent_c_version: -1,
            });
            assert_eq!(tree.apply(&header, &txn).err, 0);
        }
        let mut body = BytesMut::new();
        tree.serialize(&mut body);
        let mut reader = Reader::new(body.freeze());
        let loaded = DataTree::deserialize(&mut reader, TreeOptions::default(), |_| {}).unwrap();
        reader.finish().unwrap();
        assert_eq!(loaded.digest(), tree.digest());
        assert_eq!(loaded.paths_preorder(), tree.paths_preorder());
        assert_eq!(loaded.ephemerals(7).collect::<Vec<_>>(), ["/c"]);
        assert_eq!(loaded.node("/a/b"), tree.node("/a/b"));

        // Written a few nodes at a time, the body is the same bytes.
        let mut whole = BytesMut::new();
        tree.serialize(&mut whole);
        for piece in [1, 2, 3, 100] {
            let mut pieces = BytesMut::new();
            let mut writer = BodyWriter::new();
            let mut calls = 0;
            while !writer.write_some(&tree, &mut pieces, piece) {
                calls += 1;
                assert!(calls < 100);
            }
            assert_eq!(pieces, whole, "{piece} nodes a piece");
            assert!(
                writer.write_some(&tree, &mut pieces, piece),
                "done stays done"
            );
            assert_eq!(pieces, whole);
        }
    }

    #[test]
    fn an_orphan_is_an_error() {
        let mut body = BytesMut::new();
        0_i32.encode(&mut body);
        "/x/y".to_owned().encode(&mut body);
        None::<Bytes>.encode(&mut body);
        (-1_i64).encode(&mut body);
        StatPersisted::default().encode(&mut body);
        let mut reader = Reader::new(body.freeze());
        let err = DataTree::deserialize(&mut reader, TreeOptions::default(), |_| {}).unwrap_err();
        assert_eq!(
            err,
            SnapshotError::MissingParent {
                path: "/x/y".into()
            }
        );
    }
}
