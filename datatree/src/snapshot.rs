//! The tree in ZooKeeper's snapshot body layout (`DataTree.serialize`): the ACL cache (a
//! count, then each id with its ACL vector), then every node in preorder as its path
//! (the root as `""`) followed by data, ACL id and `StatPersisted`, ending with the path
//! `"/"`. File headers, the session table and seals belong to the persistence layer.

use bytes::BufMut;
use zk_jute::data::{Acl, StatPersisted};
use zk_jute::{DecodeError, DecodeErrorKind, Reader, Record};

use crate::path::split;
use crate::tree::{Children, ChildrenAfter, DataTree, Node, TreeOptions};

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
    /// The bytes ended before the body's end.
    #[error("snapshot body ends before its last node")]
    Unfinished,
}

/// A snapshot body written a piece at a time, so that a large tree can be serialized
/// between other work.
///
/// Nodes come in preorder (each after its parent); siblings in name order, except that
/// the children of a node with many are written in the order of the tree's slots, where
/// they lie in memory (see `SlotOrder`). Every piece of a body must be written from the
/// same tree.
///
/// Made with [`BodyWriter::new`], the tree must not change between pieces: the result is
/// then the same bytes as [`DataTree::serialize`], whatever the pieces' sizes. Made with
/// [`BodyWriter::fuzzy`], the tree may go on changing between pieces (ZooKeeper's fuzzy
/// snapshot): the body then holds the
/// tree as of [`BodyWriter::start_zxid`] with some later changes in it, and loading it and
/// replaying every logged txn after that zxid gives the tree exactly as it is when the log
/// ends, the way [`DataTree::apply`] tolerates replay (a create of a node already there, a
/// delete of one already gone).
#[derive(Debug, Default)]
pub struct BodyWriter {
    /// The path of the deepest node still open (whose children are being written).
    path: String,
    /// The open nodes, root first: where each one's path ends in `path`, and where its
    /// children's writing stands.
    open: Vec<(usize, Order)>,
    started: bool,
    done: bool,
    fuzzy: bool,
    /// The tree's last zxid when the body started (fuzzy bodies).
    start_zxid: i64,
    /// The highest ACL id in the ACL map written first (fuzzy bodies).
    last_acl: i64,
}

impl BodyWriter {
    /// A body not started yet, of a tree that does not change until it is done.
    pub fn new() -> Self {
        Self::default()
    }

    /// A body not started yet, of a tree that may change between pieces. Nodes created
    /// after the first piece are left out (replaying their creation brings them back), and
    /// a node whose ACL was replaced by one newer than the ACL map written first is
    /// written with the open ACL id (replaying the setACL brings the real one back): every
    /// ACL id in the body is in its ACL map.
    pub fn fuzzy() -> Self {
        Self {
            fuzzy: true,
            ..Self::default()
        }
    }

    /// The zxid the body starts from, known once the first piece is written: the snapshot
    /// is named after it, and restoring replays the log after it.
    pub fn start_zxid(&self) -> i64 {
        self.start_zxid
    }

    /// Writes the ACL cache and the root (on the first call) and up to `nodes` more nodes
    /// of `tree`; returns true once the body is complete, its end marker written. A call
    /// may write no node while it gathers the names of a node with many children.
    pub fn write_some<B: BufMut>(&mut self, tree: &DataTree, out: &mut B, nodes: usize) -> bool {
        self.write_some_within(tree, out, nodes, usize::MAX)
    }

    /// [`write_some`](Self::write_some), stopping early after the node that brings what
    /// this call wrote to `max_bytes` or more (the ACL cache and the root of a first call
    /// count too): however big the nodes, a call writes at most one node past the bound.
    pub fn write_some_within<B: BufMut>(
        &mut self,
        tree: &DataTree,
        out: &mut B,
        nodes: usize,
        max_bytes: usize,
    ) -> bool {
        // What a call wrote, as the room `out` has left shrinks.
        let room_before = out.remaining_mut();
        let wrote = |out: &B| room_before.saturating_sub(out.remaining_mut());
        if self.done {
            return true;
        }
        if !self.started {
            self.started = true;
            self.start_zxid = tree.last_zxid();
            let entries: Vec<(i64, &[Acl])> = tree.acl_cache().entries().collect();
            self.last_acl = entries.iter().map(|(id, _)| *id).max().unwrap_or(0);
            i32::try_from(entries.len()).unwrap_or(i32::MAX).encode(out);
            for (id, acl) in entries {
                id.encode(out);
                i32::try_from(acl.len()).unwrap_or(i32::MAX).encode(out);
                acl.iter().for_each(|a| a.encode(out));
            }
            if let Some(root) = tree.node("") {
                self.write_node(root, out);
                self.open.push((0, Order::of(tree, root)));
            }
        }
        // Reopen the open nodes where the last piece left them, by path (a node deleted
        // since is gone with everything under it); within a piece, children are reached
        // through their parent's slots.
        let open = std::mem::take(&mut self.open);
        let mut walk: Vec<(usize, Cursor<'_>)> = Vec::with_capacity(open.len());
        for (len, order) in open {
            let Some(node) = self.path.get(..len).and_then(|p| tree.node(p)) else {
                break;
            };
            walk.push((len, Cursor::open(node, order)));
        }
        let mut written = 0;
        // Names a call may gather for slot order: gathering is cheap beside writing.
        let mut gather = nodes.saturating_mul(GATHER_PER_NODE);
        // Siblings at the deepest level whose memory was read ahead and not reached yet
        // (reading ahead is not worth it for a few nodes a call).
        let ahead = nodes >= AHEAD;
        let mut touched = 0;
        while written < nodes && wrote(out) < max_bytes {
            let Some((len, cursor)) = walk.last_mut() else {
                break;
            };
            let next = match cursor {
                Cursor::Name { children, last, .. } => {
                    if ahead && touched == 0 {
                        touched = touch_ahead(tree, children.clone());
                    }
                    touched = touched.saturating_sub(1);
                    children.next().inspect(|(name, _)| *last = Some(name))
                }
                Cursor::Slot { children, slots } => {
                    if !slots.gathered {
                        if gather == 0 {
                            break;
                        }
                        gather = slots.gather(children, gather);
                        continue;
                    }
                    slots.next()
                }
            };
            let Some((name, slot)) = next else {
                walk.pop();
                touched = 0;
                continue;
            };
            self.path.truncate(*len);
            self.path.push('/');
            self.path.push_str(name);
            let Some(node) = tree.node_at(slot) else {
                continue;
            };
            if self.fuzzy && node.stat.czxid > self.start_zxid {
                // Created since the body started, and so is everything under it (in slot
                // order: the slot of a child deleted since it was gathered, reused).
                continue;
            }
            self.write_node(node, out);
            written += 1;
            if !node.children.is_empty() {
                walk.push((self.path.len(), Cursor::open(node, Order::of(tree, node))));
                touched = 0;
            }
        }
        if walk.is_empty() {
            "/".to_owned().encode(out);
            self.done = true;
            return true;
        }
        self.open = walk
            .into_iter()
            .map(|(len, cursor)| (len, cursor.close()))
            .collect();
        false
    }

    fn write_node<B: BufMut>(&self, node: &Node, out: &mut B) {
        let acl = if self.fuzzy && node.acl > self.last_acl {
            crate::acl::OPEN_ACL_UNSAFE_ID
        } else {
            node.acl
        };
        self.path.encode(out);
        node.data.encode(out);
        acl.encode(out);
        node.stat.encode(out);
    }
}

/// How many children a node has at least for them to be written in slot order.
const SLOT_ORDER_MIN: usize = 1024;

/// How many names a call may gather for slot order per node it may write.
const GATHER_PER_NODE: usize = 16;

/// Slots per bucket of [`SlotOrder`] at least (as a shift): a bucket is sorted when its
/// turn comes.
const BUCKET_SHIFT: u32 = 8;

/// Where the writing of an open node's children stands.
#[derive(Debug)]
enum Order {
    /// In name order: the name of the last child written, if any. A piece resumes after
    /// it however the tree changed in between.
    Name(Option<Box<str>>),
    /// In slot order (a node with many children).
    Slot(Box<SlotOrder>),
}

/// A node's children written in the order of their slots rather than of their names, so
/// that the writer reads the tree's memory in the order it was filled: names given out in
/// an order of their own (a counter per client, say) put siblings that sort together far
/// apart in memory, and a walk in name order then waits on a cache miss (and a TLB miss)
/// for each node and each node's data. The names are gathered first, in name order a
/// call's share at a time, into buckets of slots; then each bucket is sorted and written.
///
/// Across pieces of a fuzzy body the tree changes: a child gathered may have been deleted
/// since, and its slot reused by a node created since the body started, which the writer
/// leaves out (as every such node, gathered or not). This rests on a node never leaving
/// its slot while it lives: a slot that holds a node created before the body started has
/// held that node since, in the same tree ([`BodyWriter`] must be given one tree).
///
/// Memory: every name and 24 bytes a child (more for buckets holding few) until the
/// node's last child is written.
#[derive(Debug, Default)]
struct SlotOrder {
    /// Whether every name has been gathered.
    gathered: bool,
    /// The last name gathered, where gathering resumes.
    after: Option<Box<str>>,
    /// The names gathered, end to end.
    names: String,
    /// How many slots a bucket covers, as a shift: [`BUCKET_SHIFT`], or more when the
    /// tree has 256 slots or more a child, so that there are about as many buckets as
    /// children at most (a node with few spread over a large tree costs their number; a
    /// fuzzy body's tree may grow meanwhile, by at most one bucket per 256 new slots).
    shift: u32,
    /// Per range of slots, the children gathered there: each one's slot and where its
    /// name lies in `names`.
    buckets: Vec<Vec<(usize, usize, usize)>>,
    /// The bucket being written (sorted once its turn came).
    bucket: usize,
    /// The next of its children to write.
    next: usize,
}

impl Order {
    /// How `node`'s children are to be written, none written yet.
    fn of(tree: &DataTree, node: &Node) -> Self {
        let children = node.children.len();
        if children < SLOT_ORDER_MIN {
            return Self::Name(None);
        }
        Self::Slot(Box::new(SlotOrder {
            shift: bucket_shift(tree.slot_bound(), children),
            ..SlotOrder::default()
        }))
    }
}

/// How many slots a bucket of [`SlotOrder`] covers (as a shift) for `children` among
/// `slots`: [`BUCKET_SHIFT`], or the first power of two above the slots per child when
/// that is more, so that the buckets are no more numerous than the children.
fn bucket_shift(slots: usize, children: usize) -> u32 {
    let spread = slots / children.max(1);
    BUCKET_SHIFT.max(usize::BITS - spread.leading_zeros())
}

impl SlotOrder {
    /// Gathers up to `budget` more of `children`'s names; returns what is left of it.
    fn gather(&mut self, children: &Children, mut budget: usize) -> usize {
        let mut iter = children.after(self.after.as_deref());
        let mut last = None;
        while budget > 0 {
            let Some((name, slot)) = iter.next() else {
                self.gathered = true;
                break;
            };
            budget -= 1;
            let start = self.names.len();
            self.names.push_str(name);
            let bucket = slot.checked_shr(self.shift).unwrap_or(0);
            if self.buckets.len() <= bucket {
                self.buckets.resize_with(bucket + 1, Vec::new);
            }
            if let Some(entries) = self.buckets.get_mut(bucket) {
                entries.push((slot, start, self.names.len()));
            }
            last = Some(name);
        }
        if let Some(name) = last {
            self.after = Some(name.into());
        }
        budget
    }

    /// The next child to write, once every name is gathered.
    fn next(&mut self) -> Option<(&str, usize)> {
        loop {
            let entries = self.buckets.get_mut(self.bucket)?;
            if self.next == 0 {
                entries.sort_unstable_by_key(|(slot, _, _)| *slot);
            }
            if let Some(&(slot, start, end)) = entries.get(self.next) {
                self.next += 1;
                return Some((self.names.get(start..end).unwrap_or_default(), slot));
            }
            // Done with this bucket: its memory goes.
            *entries = Vec::new();
            self.bucket += 1;
            self.next = 0;
        }
    }
}

/// Where a piece's writing of an open node's children stands, with what it reads them
/// from.
enum Cursor<'t> {
    Name {
        children: ChildrenAfter<'t>,
        /// The last child written in this piece, if any.
        last: Option<&'t str>,
        /// The last written before it, where the piece resumed.
        resume: Option<Box<str>>,
    },
    Slot {
        children: &'t Children,
        slots: Box<SlotOrder>,
    },
}

impl<'t> Cursor<'t> {
    /// Reads `node`'s children from where `order` stands.
    fn open(node: &'t Node, order: Order) -> Self {
        match order {
            Order::Name(after) => Cursor::Name {
                children: node.children.after(after.as_deref()),
                last: None,
                resume: after,
            },
            Order::Slot(slots) => Cursor::Slot {
                children: &node.children,
                slots,
            },
        }
    }

    /// Where the piece leaves the children, for the next to resume.
    fn close(self) -> Order {
        match self {
            Cursor::Name { last, resume, .. } => Order::Name(last.map(Box::from).or(resume)),
            Cursor::Slot { slots, .. } => Order::Slot(slots),
        }
    }
}

/// How many siblings [`touch_ahead`] reads ahead of the writer.
const AHEAD: usize = 16;

/// Reads the next [`AHEAD`] nodes of `siblings` (a stat field) and the first byte of
/// their data, so that their cache misses are waited for together rather than one node at
/// a time (a snapshot of a large tree is mostly such misses: each node, then its data,
/// lives on its own line of memory). Returns how many nodes it read.
fn touch_ahead<'a>(tree: &DataTree, siblings: impl Iterator<Item = (&'a str, usize)>) -> usize {
    let mut sum = 0u64;
    let mut count = 0;
    for (_, slot) in siblings.take(AHEAD) {
        if let Some(node) = tree.node_at(slot) {
            let first = node.data.as_ref().and_then(|d| d.first().copied());
            sum = sum.wrapping_add(node.stat.mzxid as u64) ^ u64::from(first.unwrap_or(0));
        }
        count += 1;
    }
    std::hint::black_box(sum);
    count
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
        let mut loader = TreeLoader::new(options);
        loader.read(r, false, &mut progress)?;
        loader.finish()
    }
}

/// A snapshot body read as its bytes arrive, in pieces cut anywhere (a leader's snapshot
/// streamed to a learner): [`read_some`](Self::read_some) takes the whole records at the
/// front of what has come, [`finish`](Self::finish) gives the tree once the body's end
/// has been read. [`DataTree::deserialize`] is the one-piece case.
#[derive(Debug)]
pub struct TreeLoader {
    tree: DataTree,
    /// ACL map entries still to read; `None` before the map's count.
    acls_left: Option<i32>,
    loaded: usize,
    done: bool,
}

/// One node record of a snapshot body.
struct NodeRecord {
    path: String,
    data: Option<bytes::Bytes>,
    acl: i64,
    stat: StatPersisted,
}

impl TreeLoader {
    /// A loader that has read nothing yet.
    pub fn new(options: TreeOptions) -> Self {
        Self {
            tree: DataTree::empty(options),
            acls_left: None,
            loaded: 0,
            done: false,
        }
    }

    /// Makes room for `nodes` more nodes at once, when their number is known ahead.
    pub fn reserve(&mut self, nodes: usize) {
        self.tree.reserve_nodes(nodes);
    }

    /// Nodes read so far.
    pub fn loaded(&self) -> usize {
        self.loaded
    }

    /// Reads the whole records at the front of `r`. With `more` (bytes may follow), a
    /// record cut short by the end of `r` is left unread, `r` at its start; without, it is
    /// an error, as is a malformed record either way. True once the body's end has been
    /// read; `r` is then just past it.
    pub fn read_some(&mut self, r: &mut Reader, more: bool) -> Result<bool, SnapshotError> {
        self.read(r, more, &mut |_| {})
    }

    fn read(
        &mut self,
        r: &mut Reader,
        more: bool,
        progress: &mut dyn FnMut(usize),
    ) -> Result<bool, SnapshotError> {
        // A record that runs past the end of `r`, when more bytes may follow, is cut
        // short: `r` goes back to its start. Any other error is the answer at once.
        macro_rules! whole {
            ($read:expr) => {{
                let before = r.clone();
                match $read {
                    Ok(value) => value,
                    Err(e) if more && cut_short(&e) => {
                        *r = before;
                        return Ok(false);
                    }
                    Err(e) => return Err(e.into()),
                }
            }};
        }
        if self.done {
            return Ok(true);
        }
        if self.acls_left.is_none() {
            let count: i32 = whole!(r.field("ACLCache", "map"));
            if count < 0 {
                return Err(SnapshotError::NegativeAclCount(count));
            }
            self.acls_left = Some(count);
        }
        while let Some(left @ 1..) = self.acls_left {
            let (id, acl) = whole!(read_acl_entry(r));
            self.tree
                .acls_mut()
                .insert_loaded(id, acl.unwrap_or_default());
            self.acls_left = Some(left - 1);
        }
        if !more && self.loaded == 0 {
            // Sized once for every node: growing a table of a million nodes step by step
            // moves each one many times over.
            if let Some(count) = count_nodes(r.rest()) {
                self.tree.reserve_nodes(count);
            }
        }
        loop {
            let Some(record) = whole!(read_node(r)) else {
                self.done = true;
                return Ok(true);
            };
            self.insert(record)?;
            if self.loaded % 100_000 == 0 {
                progress(self.loaded);
            }
        }
    }

    fn insert(&mut self, record: NodeRecord) -> Result<(), SnapshotError> {
        let NodeRecord {
            path,
            data,
            acl,
            stat,
        } = record;
        let tree = &mut self.tree;
        if acl != crate::acl::OPEN_ACL_UNSAFE_ID && tree.acl_cache().get(acl).is_none() {
            return Err(SnapshotError::UnknownAcl { path, acl });
        }
        let owner = stat.ephemeral_owner;
        let parent = split(&path);
        if parent.is_some_and(|(parent, _)| tree.node(parent).is_none()) {
            return Err(SnapshotError::MissingParent { path });
        }
        let slot = tree.insert_node(
            &path,
            Node::from_parts(crate::tree::owned(&data), acl, stat),
        );
        if let Some((parent, child)) = parent {
            tree.link_child(parent, child, slot);
        }
        tree.index_loaded(&path, owner, acl);
        self.loaded += 1;
        Ok(())
    }

    /// The tree, once the body's end has been read.
    pub fn finish(mut self) -> Result<DataTree, SnapshotError> {
        if !self.done {
            return Err(SnapshotError::Unfinished);
        }
        self.tree.acls_mut().purge_unused();
        self.tree.setup_quotas();
        Ok(self.tree)
    }
}

/// Whether `e` says the input ended inside a record (rather than that it is malformed).
fn cut_short(e: &DecodeError) -> bool {
    matches!(
        e.kind,
        DecodeErrorKind::UnexpectedEof { .. } | DecodeErrorKind::LengthTooLarge { .. }
    )
}

/// One entry of the ACL map: its id and its ACL vector.
fn read_acl_entry(r: &mut Reader) -> Result<(i64, Option<Vec<Acl>>), DecodeError> {
    let id: i64 = r.field("ACLCache", "long")?;
    let acl: Option<Vec<Acl>> = r.field("ACLCache", "acls")?;
    Ok((id, acl))
}

/// The next node record, or `None` for the body's end (the path `"/"`).
fn read_node(r: &mut Reader) -> Result<Option<NodeRecord>, DecodeError> {
    let path: String = r.field("DataTree", "path")?;
    if path == "/" {
        return Ok(None);
    }
    Ok(Some(NodeRecord {
        path,
        data: r.field("DataNode", "data")?,
        acl: r.field("DataNode", "acl")?,
        stat: r.field("DataNode", "stat")?,
    }))
}

/// The number of nodes in a snapshot body's node list, found by skipping from length to
/// length; `None` if it does not parse (reading it properly will say why).
fn count_nodes(body: &[u8]) -> Option<usize> {
    /// ACL id and `StatPersisted` (four longs, three ints, two longs).
    const FIXED: usize = 8 + 60;
    let mut at = 0_usize;
    let mut count = 0_usize;
    let length = |at: usize| -> Option<i32> {
        let bytes = body.get(at..at.checked_add(4)?)?;
        Some(i32::from_be_bytes(bytes.try_into().ok()?))
    };
    loop {
        let path_len = usize::try_from(length(at)?).ok()?;
        let path = body.get(at + 4..(at + 4).checked_add(path_len)?)?;
        if path == b"/" {
            return Some(count);
        }
        at += 4 + path_len;
        // Null data is written as length -1.
        let data_len = usize::try_from(length(at)?.max(0)).ok()?;
        at = at.checked_add(4 + data_len + FIXED)?;
        count += 1;
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use zk_jute::txn::{CreateTxn, TxnHeader};

    use super::*;
    use crate::acl::open_acl_unsafe;
    use crate::txn::Transaction;

    /// Applies session 7's create of `path` as txn `zxid`, at time `1000 + zxid`.
    fn create(tree: &mut DataTree, zxid: i64, path: String, data: Bytes, ephemeral: bool) {
        let header = TxnHeader {
            client_id: 7,
            cxid: 1,
            zxid,
            time: 1000 + zxid,
            r#type: 1,
        };
        let txn = Transaction::Create(CreateTxn {
            path,
            data: Some(data),
            acl: Some(open_acl_unsafe()),
            ephemeral,
            parent_c_version: -1,
        });
        assert_eq!(tree.apply(&header, &txn).err, 0);
    }

    /// A small tree (`/c` an ephemeral of session 7) and its snapshot body.
    fn small_body() -> (DataTree, Bytes) {
        let mut tree = DataTree::default();
        for (zxid, path) in [(1, "/a"), (2, "/a/b"), (3, "/c")] {
            create(
                &mut tree,
                zxid,
                path.into(),
                Bytes::from(path),
                path == "/c",
            );
        }
        let mut body = BytesMut::new();
        tree.serialize(&mut body);
        (tree, body.freeze())
    }

    #[test]
    fn a_loader_waits_for_a_record_cut_short_and_refuses_a_malformed_one() {
        let (tree, body) = small_body();
        // Cut inside a record: what came is read up to it, the rest waits.
        let cut = body.len() - 20;
        let mut loader = TreeLoader::new(TreeOptions::default());
        let mut r = Reader::new(body.slice(..cut));
        assert!(!loader.read_some(&mut r, true).unwrap());
        let read = r.offset();
        assert!(read < cut && loader.loaded() > 0);
        let mut r = Reader::new(body.slice(read..));
        assert!(loader.read_some(&mut r, true).unwrap());
        assert_eq!(r.remaining(), 0);
        assert_eq!(loader.finish().unwrap().digest(), tree.digest());

        // Without more to come, the cut is an error; so is the end never read.
        let mut loader = TreeLoader::new(TreeOptions::default());
        assert!(
            loader
                .read_some(&mut Reader::new(body.slice(..cut)), false)
                .is_err()
        );
        let loader = TreeLoader::new(TreeOptions::default());
        assert_eq!(loader.finish().unwrap_err(), SnapshotError::Unfinished);

        // A negative length is malformed, not cut short: an error even with more to come.
        let mut broken = BytesMut::from(&body[..]);
        // The length before the path `/a/b`.
        let at = body.windows(4).position(|w| w == b"/a/b").unwrap() - 4;
        assert_eq!(body[at..at + 4], 4_i32.to_be_bytes());
        broken[at..at + 4].copy_from_slice(&(-7_i32).to_be_bytes());
        let mut loader = TreeLoader::new(TreeOptions::default());
        let err = loader
            .read_some(&mut Reader::new(broken.freeze()), true)
            .unwrap_err();
        assert!(err.to_string().contains("negative length"), "{err}");
    }

    #[test]
    fn a_tree_survives_its_snapshot_body() {
        let (tree, body) = small_body();
        let mut reader = Reader::new(body);
        let loaded = DataTree::deserialize(&mut reader, TreeOptions::default(), |_| {}).unwrap();
        reader.finish().unwrap();
        assert_eq!(loaded.digest(), tree.digest());
        assert_eq!(loaded.paths_preorder(), tree.paths_preorder());
        assert_eq!(loaded.ephemerals(7).collect::<Vec<_>>(), ["/c"]);
        assert_eq!(loaded.node("/a/b"), tree.node("/a/b"));

        // The node count found by skipping lengths, for sizing the table up front.
        let mut body = BytesMut::new();
        tree.serialize(&mut body);
        let mut r = Reader::new(body.freeze());
        let acls: i32 = r.field("t", "acls").unwrap();
        for _ in 0..acls {
            let _: i64 = r.field("t", "id").unwrap();
            let _: Option<Vec<Acl>> = r.field("t", "acl").unwrap();
        }
        let nodes = r.rest().clone();
        assert_eq!(count_nodes(&nodes), Some(tree.node_count()));
        assert_eq!(count_nodes(&nodes[..nodes.len() - 3]), None);
        assert_eq!(count_nodes(&[0xff; 16]), None);

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

    /// The paths of a body's nodes, in the order written.
    fn body_paths(body: Bytes) -> Vec<String> {
        let mut r = Reader::new(body);
        let acls: i32 = r.field("t", "acls").unwrap();
        for _ in 0..acls {
            let _: i64 = r.field("t", "id").unwrap();
            let _: Option<Vec<Acl>> = r.field("t", "acl").unwrap();
        }
        let mut paths = Vec::new();
        loop {
            let path: String = r.field("t", "path").unwrap();
            if path == "/" {
                return paths;
            }
            let _: Option<Bytes> = r.field("t", "data").unwrap();
            let _: i64 = r.field("t", "acl").unwrap();
            let _: StatPersisted = r.field("t", "stat").unwrap();
            paths.push(path);
        }
    }

    #[test]
    fn the_children_of_a_node_with_many_come_in_the_order_of_their_slots() {
        // A root with more children than the writer takes in name order, one of which has
        // as many again: each set created in an order that is not its names'.
        // One child fewer than that (1,023, under `/r8`), in name order.
        let mut tree = DataTree::default();
        let order = |i: usize| (i * 7919) % 1_500;
        let made: Vec<String> = (0..1_500).map(|i| format!("/r7/c{}", order(i))).collect();
        let few = (0..1_023).map(|i| format!("/r8/c{}", (i * 7919) % 1_023));
        let paths = (0..1_500).map(|i| format!("/r{}", order(i)));
        for (zxid, path) in (1..).zip(paths.chain(made.iter().cloned()).chain(few)) {
            create(&mut tree, zxid, path, Bytes::from_static(b"v"), false);
        }

        let mut whole = BytesMut::new();
        tree.serialize(&mut whole);
        let whole = whole.freeze();
        let paths = body_paths(whole.clone());
        let under: Vec<&String> = paths.iter().filter(|p| p.starts_with("/r7/")).collect();
        assert_eq!(under, made.iter().collect::<Vec<_>>(), "in the order made");
        let few: Vec<&String> = paths.iter().filter(|p| p.starts_with("/r8/")).collect();
        let mut sorted = few.clone();
        sorted.sort();
        assert_eq!((few.len(), few), (1_023, sorted), "in name order");
        let first = |prefix: &str| paths.iter().position(|p| p.starts_with(prefix)).unwrap();
        assert!(first("/r7") < first("/r7/"), "each node after its parent");

        // The same bytes whatever the pieces, and the same tree once loaded.
        for piece in [1, 2, 3, 64, 100_000] {
            let mut pieces = BytesMut::new();
            let mut writer = BodyWriter::new();
            while !writer.write_some(&tree, &mut pieces, piece) {}
            assert_eq!(pieces, whole, "{piece} nodes a piece");
        }
        let loaded =
            DataTree::deserialize(&mut Reader::new(whole), TreeOptions::default(), |_| {}).unwrap();
        assert_eq!(loaded.digest(), tree.digest());
        assert_eq!(loaded.paths_preorder(), tree.paths_preorder());
    }

    #[test]
    fn buckets_are_no_more_numerous_than_the_children() {
        for (slots, children) in [
            (1_024, 1_024),
            (300_000, 18_750),
            (4_096 * 2_500, 1_024),
            (usize::MAX, 1_024),
            (usize::MAX, 1),
        ] {
            let shift = bucket_shift(slots, children);
            assert!(shift >= BUCKET_SHIFT);
            let buckets = slots.checked_shr(shift).unwrap_or(0) + 1;
            assert!(
                buckets <= (children + 1).max(slots >> BUCKET_SHIFT),
                "{slots} slots, {children} children: {buckets} buckets"
            );
        }
        assert_eq!(bucket_shift(300_000, 18_750), BUCKET_SHIFT);
        assert_eq!(bucket_shift(4_096 * 2_500, 1_024), 14);
    }

    #[test]
    fn a_bound_in_bytes_stops_a_call_one_node_past_it() {
        let mut tree = DataTree::default();
        for zxid in 1..=10 {
            let data = Bytes::from(vec![zxid as u8; 100_000]);
            create(&mut tree, zxid, format!("/big{zxid}"), data, false);
        }
        let mut whole = BytesMut::new();
        tree.serialize(&mut whole);
        let mut pieces = BytesMut::new();
        let mut writer = BodyWriter::fuzzy();
        let mut calls = 0;
        loop {
            let before = pieces.len();
            let done = writer.write_some_within(&tree, &mut pieces, 1_000, 150_000);
            calls += 1;
            // The first call has the ACL map and the root too; none goes past the bound by
            // more than a node.
            assert!(pieces.len() - before < 150_000 + 100_100, "call {calls}");
            if done {
                break;
            }
        }
        // Two big nodes a call (the second brings it past 150,000), the end marker last.
        assert_eq!(calls, 6);
        assert_eq!(pieces, whole);
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
