//! The znode tree. [`DataTree::apply`] is the only way it changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use bytes::Bytes;
use zk_jute::data::{Acl, Stat, StatPersisted};
use zk_jute::txn::{CreateTxn, TxnHeader};
use zk_jute::{ErrorCode, EventType};

use crate::acl::{AclCache, AclList, OPEN_ACL_UNSAFE_ID, read_acl_unsafe};
use crate::digest::node_digest;
use crate::ephemeral::{CONTAINER_EPHEMERAL_OWNER, EphemeralType, ttl_of, ttl_owner};
use crate::index::{PathIndex, Place};
use crate::java::JavaHashSet;
use crate::path::{display_parent, split};
use crate::txn::Transaction;

/// The path of ZooKeeper's system node.
pub const ZOOKEEPER_PATH: &str = "/zookeeper";
/// The path of the quota subtree.
pub const QUOTA_PATH: &str = "/zookeeper/quota";
/// The path of the dynamic configuration node.
pub const CONFIG_PATH: &str = "/zookeeper/config";

/// One znode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The data; `None` when created with null data.
    pub data: Option<Bytes>,
    /// The id of its ACL in the tree's [`AclCache`].
    pub acl: i64,
    /// Its persisted stat.
    pub stat: StatPersisted,
    /// Its children, sorted by name.
    pub children: Children,
    digest: u64,
}

/// A node's children: their names, sorted, each with where the child lives in the tree,
/// so that walking the tree (a snapshot) goes from node to node without looking each
/// child up by its path. Two sets are equal when they hold the same names.
#[derive(Debug, Clone, Default)]
pub struct Children(BTreeMap<Name, usize>);

impl Children {
    /// How many children.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a child is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        match Name::short(name) {
            Some(short) => self.0.contains_key(&short),
            None => self.0.contains_key(name.as_bytes()),
        }
    }

    /// The names, sorted.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.0.keys().map(Name::as_str)
    }

    /// The children after `name` (all of them for `None`), in name order, with their
    /// slots.
    pub(crate) fn after(&self, name: Option<&str>) -> ChildrenAfter<'_> {
        ChildrenAfter(match name {
            Some(name) => self
                .0
                .range::<[u8], _>((Bound::Excluded(name.as_bytes()), Bound::Unbounded)),
            None => self.0.range::<[u8], _>(..),
        })
    }

    fn insert(&mut self, name: &str, slot: usize) {
        self.0.insert(Name::new(name), slot);
    }

    fn remove(&mut self, name: &str) {
        match Name::short(name) {
            Some(short) => self.0.remove(&short),
            None => self.0.remove(name.as_bytes()),
        };
    }
}

impl PartialEq for Children {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.keys().eq(other.0.keys())
    }
}

impl Eq for Children {}

/// A node's children from some name on, in name order, with their slots
/// ([`Children::after`]).
#[derive(Debug, Clone)]
pub(crate) struct ChildrenAfter<'a>(std::collections::btree_map::Range<'a, Name, usize>);

impl<'a> Iterator for ChildrenAfter<'a> {
    type Item = (&'a str, usize);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(name, slot)| (name.as_str(), *slot))
    }
}

/// A child's name, kept inside the parent's set when it is short (most are), so that
/// comparing names while searching a large set reads no memory beyond the set's own.
/// Ordered as `str` is, byte by byte; two short names compare as two integers and a length
/// (a search of a set of 500k names makes some forty comparisons).
#[derive(Clone)]
enum Name {
    Short(u8, [u8; Name::SHORT]),
    Long(Box<str>),
}

impl Name {
    const SHORT: usize = 22;

    fn new(name: &str) -> Self {
        Self::short(name).unwrap_or_else(|| Self::Long(name.into()))
    }

    /// `name` kept inside, if it is short enough.
    fn short(name: &str) -> Option<Self> {
        let mut bytes = [0; Self::SHORT];
        let short = bytes.get_mut(..name.len())?;
        short.copy_from_slice(name.as_bytes());
        Some(Self::Short(name.len() as u8, bytes))
    }

    /// A short name's bytes, zero-padded, as two big-endian integers, then its length:
    /// ordered as the names are. Where the padded bytes first differ, a name that has
    /// ended there has a zero against the other's byte, so it is the prefix and comes
    /// first, as in `str`; where they never differ, the shorter is a prefix of the longer.
    fn short_key(&self) -> Option<(u128, u64, u8)> {
        let Self::Short(len, bytes) = self else {
            return None;
        };
        let mut high = [0; 16];
        let mut low = [0; 8];
        high.copy_from_slice(bytes.get(..16)?);
        low.get_mut(..Self::SHORT - 16)?
            .copy_from_slice(bytes.get(16..)?);
        Some((u128::from_be_bytes(high), u64::from_be_bytes(low), *len))
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Short(len, bytes) => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Self::Long(name) => name.as_bytes(),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Made from a `str`, cut at its end: always UTF-8.
            Self::Short(..) => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Self::Long(name) => name,
        }
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Short(a, x), Self::Short(b, y)) => a == b && x == y,
            _ => self.as_bytes() == other.as_bytes(),
        }
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self.short_key(), other.short_key()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self.as_bytes().cmp(other.as_bytes()),
        }
    }
}

impl std::borrow::Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Where the nodes live: fixed-size chunks (so that growing never moves the nodes already
/// there), a removed node's slot reused by the next one added.
#[derive(Debug, Clone, Default)]
struct Slab {
    chunks: Vec<Vec<Option<Node>>>,
    free: Vec<usize>,
}

impl Slab {
    const CHUNK: usize = 4096;

    /// How many slots there are, held or free, rounded up to whole chunks: every slot is
    /// below it.
    fn len(&self) -> usize {
        self.chunks.len() * Self::CHUNK
    }

    fn get(&self, slot: usize) -> Option<&Node> {
        self.chunks
            .get(slot / Self::CHUNK)?
            .get(slot % Self::CHUNK)?
            .as_ref()
    }

    fn get_mut(&mut self, slot: usize) -> Option<&mut Node> {
        self.chunks
            .get_mut(slot / Self::CHUNK)?
            .get_mut(slot % Self::CHUNK)?
            .as_mut()
    }

    fn insert(&mut self, node: Node) -> usize {
        if let Some(slot) = self.free.pop() {
            if let Some(place) = self
                .chunks
                .get_mut(slot / Self::CHUNK)
                .and_then(|chunk| chunk.get_mut(slot % Self::CHUNK))
            {
                debug_assert!(place.is_none(), "a free slot holds a node");
                *place = Some(node);
                return slot;
            }
        }
        if self
            .chunks
            .last()
            .is_none_or(|chunk| chunk.len() == Self::CHUNK)
        {
            self.chunks.push(Vec::with_capacity(Self::CHUNK));
        }
        let mut slot = (self.chunks.len() - 1) * Self::CHUNK;
        if let Some(chunk) = self.chunks.last_mut() {
            slot += chunk.len();
            chunk.push(Some(node));
        }
        slot
    }

    fn remove(&mut self, slot: usize) -> Option<Node> {
        let node = self
            .chunks
            .get_mut(slot / Self::CHUNK)?
            .get_mut(slot % Self::CHUNK)?
            .take()?;
        self.free.push(slot);
        Some(node)
    }
}

impl Node {
    fn new(data: Option<Bytes>, acl: i64, stat: StatPersisted) -> Self {
        Self {
            data,
            acl,
            stat,
            children: Children::default(),
            digest: 0,
        }
    }

    pub(crate) fn from_parts(data: Option<Bytes>, acl: i64, stat: StatPersisted) -> Self {
        Self::new(data, acl, stat)
    }

    /// The stat as clients see it (ZooKeeper's `DataNode.copyStat`): `dataLength` and
    /// `numChildren` derived; `cversion` translated from the stored count of creates to a
    /// count of changes (`2 * creates - children`); container and TTL markers shown as 0.
    pub fn client_stat(&self) -> Stat {
        let s = &self.stat;
        let num_children = i32::try_from(self.children.len()).unwrap_or(i32::MAX);
        let owner = match EphemeralType::of(s.ephemeral_owner, true) {
            EphemeralType::Normal => s.ephemeral_owner,
            _ => 0,
        };
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion.wrapping_mul(2).wrapping_sub(num_children),
            aversion: s.aversion,
            ephemeral_owner: owner,
            data_length: i32::try_from(self.data.as_ref().map_or(0, Bytes::len))
                .unwrap_or(i32::MAX),
            num_children,
            pzxid: s.pzxid,
        }
    }
}

/// A watch trigger an applied txn issues, in ZooKeeper's order: the server hands each to
/// its watch manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// The path whose watches fire (`/` for the root).
    pub path: String,
    /// The event.
    pub event: EventType,
    /// The ACL of the znode the event is about (the parent's for `NodeChildrenChanged`, the
    /// deleted node's for `NodeDeleted`): a watcher without READ on it is not told
    /// (ZooKeeper's fix for CVE-2024-23944), though a one-shot watch is still used up.
    pub acl: AclList,
}

/// What applying one txn did: ZooKeeper's `ProcessTxnResult`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The txn's type (`TxnHeader.type`; in a failed multi, each op's is `error`).
    pub op: i32,
    /// 0, or the error the txn carried or met (e.g. `NoNode` on replay).
    pub err: i32,
    /// The path the txn concerned.
    pub path: Option<String>,
    /// The node's stat after a create of any kind, setData or setACL. (ZooKeeper answers
    /// a plain `create` with the path alone; a `create2` inside a `multi` gets the stat.)
    pub stat: Option<Stat>,
    /// Per-op results of a multi.
    pub multi: Vec<Applied>,
    /// Watch triggers, in order.
    pub triggers: Vec<Trigger>,
}

/// Settings that change how the tree reads owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeOptions {
    /// ZooKeeper's `extendedTypesEnabled`: TTL nodes exist.
    pub extended_types: bool,
}

impl Default for TreeOptions {
    fn default() -> Self {
        Self {
            extended_types: true,
        }
    }
}

/// ZooKeeper's `DataTree` (with `ZKDatabase`'s session table): znodes by path, the ACL
/// cache, the indexes of ephemerals, containers and TTL nodes, and the running digest.
#[derive(Debug, Clone)]
pub struct DataTree {
    /// Each node's slot by its path.
    index: PathIndex,
    /// The nodes themselves, where `index` and each node's children point.
    nodes: Slab,
    acls: AclCache,
    /// Each session's ephemeral paths, kept as ZooKeeper keeps them (a `HashSet` made at
    /// the session's first ephemeral and dropped when the session closes, never shrunk),
    /// since the order `closeSession` deletes them in follows the set's.
    ephemerals: HashMap<i64, JavaHashSet>,
    containers: BTreeSet<String>,
    quotas: BTreeSet<String>,
    ttls: BTreeSet<String>,
    sessions: BTreeMap<i64, i32>,
    digest: u64,
    /// ZooKeeper's approximate data size (see `approximate_data_size`).
    data_size: u64,
    last_zxid: i64,
    options: TreeOptions,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new(TreeOptions::default())
    }
}

impl DataTree {
    /// A new tree holding only the system nodes `/`, `/zookeeper`, `/zookeeper/quota` and
    /// `/zookeeper/config` (read-only to the world, aversion -1), as ZooKeeper starts.
    pub fn new(options: TreeOptions) -> Self {
        let mut tree = Self::empty(options);
        let system = [
            ("", None),
            (ZOOKEEPER_PATH, Some("zookeeper")),
            (QUOTA_PATH, Some("quota")),
        ];
        for (path, child) in system {
            let slot = tree.insert_node(
                path,
                Node::new(
                    Some(Bytes::new()),
                    OPEN_ACL_UNSAFE_ID,
                    StatPersisted::default(),
                ),
            );
            if let (Some(child), Some((parent, _))) = (child, split(path)) {
                tree.link_child(parent, child, slot);
            }
        }
        let config_acl = tree.acls.intern(&read_acl_unsafe());
        let stat = StatPersisted {
            aversion: -1,
            ..StatPersisted::default()
        };
        let slot = tree.insert_node(CONFIG_PATH, Node::new(Some(Bytes::new()), config_acl, stat));
        tree.link_child(ZOOKEEPER_PATH, "config", slot);
        tree
    }

    /// A tree with no nodes at all: the starting point for loading a snapshot.
    pub fn empty(options: TreeOptions) -> Self {
        Self {
            index: PathIndex::default(),
            nodes: Slab::default(),
            acls: AclCache::default(),
            ephemerals: HashMap::new(),
            containers: BTreeSet::new(),
            quotas: BTreeSet::new(),
            ttls: BTreeSet::new(),
            sessions: BTreeMap::new(),
            digest: 0,
            data_size: 0,
            last_zxid: 0,
            options,
        }
    }

    /// The node at `path` (`/` or `""` for the root).
    pub fn node(&self, path: &str) -> Option<&Node> {
        let slot = self.index.get(crate::path::key(path))?;
        self.nodes.get(slot)
    }

    /// The node in `slot` (a child's, from [`Children::after`]).
    pub(crate) fn node_at(&self, slot: usize) -> Option<&Node> {
        self.nodes.get(slot)
    }

    /// A bound on the slots of the nodes: every slot is below it.
    pub(crate) fn slot_bound(&self) -> usize {
        self.nodes.len()
    }

    /// The ACL of a node.
    pub fn acl_of(&self, node: &Node) -> AclList {
        self.acls.get(node.acl).unwrap_or_else(|| Vec::new().into())
    }

    /// The ACL of the node at `path`; empty (allowing everyone, as an empty ACL does) if
    /// there is no such node.
    pub fn acl_at(&self, path: &str) -> AclList {
        self.node(path)
            .map_or_else(|| Vec::new().into(), |node| self.acl_of(node))
    }

    /// The ACL cache (what a snapshot stores first).
    pub fn acl_cache(&self) -> &AclCache {
        &self.acls
    }

    /// Number of znodes, the root included.
    pub fn node_count(&self) -> usize {
        self.index.len()
    }

    /// The tree digest (sum of node digests, wrapping).
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// ZooKeeper's `approximate_data_size`: the length of every znode's path (in UTF-16
    /// units, as Java counts a string) plus the length of its data, summed, as of loading
    /// and kept up to date by every txn since. Like ZooKeeper's cached figure, it does not
    /// follow the rewrites of quota stats nodes (`/zookeeper/quota/**/zookeeper_stats`).
    pub fn approximate_data_size(&self) -> u64 {
        self.data_size
    }

    /// The zxid of the last txn applied.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Writes `/zookeeper/config` as ZooKeeper does when a member starts or loads a
    /// database: the ensemble's membership, version -1, `mzxid` the configuration's
    /// version, `mtime` this member's clock. It is not a txn: the digest leaves the
    /// `/zookeeper/` subtree out, and each member writes its own.
    pub fn set_config_data(&mut self, data: Bytes, config_version: i64, time: i64) {
        let mut out = Applied::default();
        // The node exists in every tree `new` makes; a tree without it has nothing to set.
        let _ = self.set_data(CONFIG_PATH, Some(data), -1, config_version, time, &mut out);
    }

    /// Sets the last zxid applied (a restore sets it to the last txn replayed).
    pub fn set_last_zxid(&mut self, zxid: i64) {
        self.last_zxid = zxid;
    }

    /// The options the tree was made with.
    pub fn options(&self) -> TreeOptions {
        self.options
    }

    /// Live sessions and their timeouts, as created and closed by txns.
    pub fn sessions(&self) -> &BTreeMap<i64, i32> {
        &self.sessions
    }

    /// Replaces the session table (when a snapshot is loaded).
    pub fn set_sessions(&mut self, sessions: BTreeMap<i64, i32>) {
        self.sessions = sessions;
    }

    /// The ephemeral paths a session owns, sorted.
    pub fn ephemerals(&self, session: i64) -> impl Iterator<Item = &str> {
        self.ephemerals
            .get(&session)
            .into_iter()
            .flat_map(JavaHashSet::iter)
    }

    /// A session's set of ephemerals, if it ever had one since it was loaded or created.
    pub fn ephemeral_set(&self, session: i64) -> Option<&JavaHashSet> {
        self.ephemerals.get(&session)
    }

    /// Sessions that have had ephemerals, with the paths they own (`dump` 4lw). As in
    /// ZooKeeper, a session whose ephemerals were all deleted is listed with none.
    pub fn all_ephemerals(&self) -> &HashMap<i64, JavaHashSet> {
        &self.ephemerals
    }

    /// Number of descendants of `path` (`getAllChildrenNumber`); for `/`, every node but
    /// the root, as ZooKeeper counts it.
    pub fn all_children_number(&self, path: &str) -> Option<usize> {
        let start = self.node(path)?;
        let mut stack: Vec<String> = start.children.iter().map(|c| join(path, c)).collect();
        let mut count = 0;
        while let Some(next) = stack.pop() {
            count += 1;
            if let Some(node) = self.node(&next) {
                stack.extend(node.children.iter().map(|c| join(&next, c)));
            }
        }
        Some(count)
    }

    /// Paths, in preorder with children sorted, starting at the root.
    pub fn paths_preorder(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.index.len());
        let mut stack = vec![String::new()];
        while let Some(path) = stack.pop() {
            if let Some(node) = self.node(&path) {
                stack.extend(node.children.iter().rev().map(|c| format!("{path}/{c}")));
            }
            out.push(path);
        }
        out
    }

    /// Containers and TTL nodes due for deletion at wall time `now_ms` (ZooKeeper's
    /// `ContainerManager`): empty containers that once had children, or that never did and
    /// are older than `max_never_used_ms` (0: never); empty TTL nodes unmodified for longer
    /// than their TTL.
    pub fn expiry_candidates(&self, now_ms: i64, max_never_used_ms: i64) -> Vec<String> {
        let elapsed = |node: &Node| now_ms.saturating_sub(node.stat.mtime);
        let containers = self.containers.iter().filter(|path| {
            self.node(path).is_some_and(|node| {
                node.children.is_empty()
                    && (node.stat.cversion > 0
                        || (max_never_used_ms != 0 && elapsed(node) > max_never_used_ms))
            })
        });
        let ttls = self.ttls.iter().filter(|path| {
            self.node(path).is_some_and(|node| {
                let ttl = ttl_of(node.stat.ephemeral_owner);
                node.children.is_empty() && ttl != 0 && elapsed(node) > ttl
            })
        });
        containers.chain(ttls).cloned().collect()
    }

    /// Applies one txn: ZooKeeper's `DataTree.processTxn`. The only mutation of the tree.
    pub fn apply(&mut self, header: &TxnHeader, txn: &Transaction) -> Applied {
        let applied = self.apply_one(header, txn);
        if header.zxid > self.last_zxid {
            self.last_zxid = header.zxid;
        }
        applied
    }

    fn apply_one(&mut self, header: &TxnHeader, txn: &Transaction) -> Applied {
        let (zxid, time) = (header.zxid, header.time);
        let mut out = Applied {
            op: header.r#type,
            ..Applied::default()
        };
        let result = match txn {
            Transaction::Create(t) | Transaction::Create2(t) => {
                out.path = Some(t.path.clone());
                let owner = if t.ephemeral { header.client_id } else { 0 };
                let created = self.create_node(t, owner, zxid, time, &mut out);
                if matches!(txn, Transaction::Create(_)) && created == Err(ErrorCode::NodeExists) {
                    // Replaying over a snapshot taken mid-way: bring the parent up to date.
                    if let Some((parent, _)) = split(&t.path) {
                        let _ = self.set_cversion_pzxid(parent, t.parent_c_version, zxid);
                    }
                }
                created
            }
            Transaction::CreateTtl(t) => {
                out.path = Some(t.path.clone());
                let owner = ttl_owner(t.ttl).unwrap_or(0);
                let create = persistent(&t.path, &t.data, &t.acl, t.parent_c_version);
                self.create_node(&create, owner, zxid, time, &mut out)
            }
            Transaction::CreateContainer(t) => {
                out.path = Some(t.path.clone());
                let create = persistent(&t.path, &t.data, &t.acl, t.parent_c_version);
                self.create_node(&create, CONTAINER_EPHEMERAL_OWNER, zxid, time, &mut out)
            }
            Transaction::Delete(t) | Transaction::DeleteContainer(t) => {
                out.path = Some(t.path.clone());
                self.delete_node(&t.path, zxid, &mut out.triggers)
            }
            Transaction::SetData(t) | Transaction::Reconfig(t) => {
                out.path = Some(t.path.clone());
                self.set_data(&t.path, t.data.clone(), t.version, zxid, time, &mut out)
            }
            Transaction::SetAcl(t) => {
                out.path = Some(t.path.clone());
                self.set_acl(
                    &t.path,
                    t.acl.as_deref().unwrap_or_default(),
                    t.version,
                    &mut out,
                )
            }
            Transaction::Check(t) => {
                out.path = Some(t.path.clone());
                Ok(())
            }
            Transaction::CreateSession(t) => {
                self.sessions.insert(header.client_id, t.time_out);
                Ok(())
            }
            Transaction::CloseSession(t) => {
                self.kill_session(header.client_id, zxid, t.as_ref(), &mut out.triggers);
                Ok(())
            }
            Transaction::Error(t) => {
                out.err = t.err;
                Ok(())
            }
            Transaction::Multi(txns) => {
                self.apply_multi(header, txns, &mut out);
                Ok(())
            }
        };
        if let Err(code) = result {
            out.err = code.code();
        }
        out
    }

    /// A multi: if any op failed in preparation, nothing changes and each op reports OK
    /// (before the failure), its error, or RuntimeInconsistency (after it).
    fn apply_multi(&mut self, header: &TxnHeader, txns: &[Transaction], out: &mut Applied) {
        let failed = txns.iter().any(|t| matches!(t, Transaction::Error(_)));
        let mut after_failure = false;
        for txn in txns {
            let sub = if let Transaction::Error(e) = txn {
                after_failure = true;
                Transaction::Error(e.clone())
            } else if failed {
                let code = if after_failure {
                    ErrorCode::RuntimeInconsistency
                } else {
                    ErrorCode::Ok
                };
                Transaction::error(code)
            } else {
                txn.clone()
            };
            let sub_header = TxnHeader {
                r#type: sub.op_code().code(),
                ..header.clone()
            };
            let mut result = self.apply_one(&sub_header, &sub);
            out.triggers.append(&mut result.triggers);
            if result.err != 0 && out.err == 0 {
                out.err = result.err;
            }
            out.multi.push(result);
        }
    }

    fn create_node(
        &mut self,
        txn: &CreateTxn,
        owner: i64,
        zxid: i64,
        time: i64,
        out: &mut Applied,
    ) -> Result<(), ErrorCode> {
        let (parent_key, name) = split(&txn.path).ok_or(ErrorCode::NoNode)?;
        let parent = self.node(parent_key).ok_or(ErrorCode::NoNode)?;
        // The path index holds exactly the linked nodes: one hash probe, where searching
        // a parent with hundreds of thousands of children walks its set through cache
        // misses (and the insert below walks it again).
        let exists = self.index.contains(txn.path.as_str());
        debug_assert_eq!(exists, parent.children.contains(name));
        if exists {
            return Err(ErrorCode::NodeExists);
        }
        let mut cversion = txn.parent_c_version;
        if cversion == -1 {
            cversion = parent.stat.cversion.saturating_add(1);
        }
        let acl = self.acls.intern(txn.acl.as_deref().unwrap_or_default());
        let (parent_key, name) = (parent_key.to_owned(), name.to_owned());
        let stat = created_stat(zxid, time, owner);
        let node = Node::new(owned(&txn.data), acl, stat);
        out.stat = Some(node.client_stat());
        let slot = self.insert_node(&txn.path, node);
        self.update(&parent_key, |parent| {
            if cversion > parent.stat.cversion {
                parent.stat.cversion = cversion;
                parent.stat.pzxid = zxid;
            }
            parent.children.insert(&name, slot);
        });
        match EphemeralType::of(owner, self.options.extended_types) {
            EphemeralType::Container => {
                self.containers.insert(txn.path.clone());
            }
            EphemeralType::Ttl => {
                self.ttls.insert(txn.path.clone());
            }
            EphemeralType::Normal => {
                self.ephemerals.entry(owner).or_default().insert(&txn.path);
            }
            EphemeralType::Void | EphemeralType::Invalid => {}
        }
        if parent_key.starts_with(QUOTA_PATH) {
            let prefix = crate::quota::trim(&parent_key).to_owned();
            if name == crate::quota::LIMITS_NODE {
                self.quotas.insert(prefix);
            } else if name == crate::quota::STATS_NODE {
                self.update_quota_for_path(&prefix);
            }
        }
        if let Some(prefix) = self.quota_prefix(&txn.path) {
            let bytes = txn.data.as_ref().map_or(0, |d| d.len() as i64);
            self.update_quota_stat(&prefix, bytes, 1);
        }
        out.triggers.push(Trigger {
            path: txn.path.clone(),
            event: EventType::NodeCreated,
            acl: self.acl_at(&txn.path),
        });
        let parent = display_parent(&parent_key).to_owned();
        out.triggers.push(Trigger {
            path: parent,
            event: EventType::NodeChildrenChanged,
            acl: self.acl_at(&parent_key),
        });
        Ok(())
    }

    fn delete_node(
        &mut self,
        path: &str,
        zxid: i64,
        triggers: &mut Vec<Trigger>,
    ) -> Result<(), ErrorCode> {
        let (parent_key, name) = split(path).ok_or(ErrorCode::NoNode)?;
        if !self.index.contains(parent_key) {
            return Err(ErrorCode::NoNode);
        }
        let parent_key = parent_key.to_owned();
        self.update(&parent_key, |parent| {
            parent.children.remove(name);
            if zxid > parent.stat.pzxid {
                parent.stat.pzxid = zxid;
            }
        });
        let node = self.remove_node(path).ok_or(ErrorCode::NoNode)?;
        let acl = self.acl_of(&node);
        self.acls.release(node.acl);
        if parent_key.starts_with(ZOOKEEPER_PATH) && name == crate::quota::LIMITS_NODE {
            self.quotas.remove(crate::quota::trim(&parent_key));
        }
        if let Some(prefix) = self.quota_prefix(path) {
            let bytes = node.data.as_ref().map_or(0, |d| d.len() as i64);
            self.update_quota_stat(&prefix, -bytes, -1);
        }
        let owner = node.stat.ephemeral_owner;
        match EphemeralType::of(owner, self.options.extended_types) {
            EphemeralType::Container => {
                self.containers.remove(path);
            }
            EphemeralType::Ttl => {
                self.ttls.remove(path);
            }
            EphemeralType::Normal => {
                if let Some(paths) = self.ephemerals.get_mut(&owner) {
                    paths.remove(path);
                }
            }
            EphemeralType::Void | EphemeralType::Invalid => {}
        }
        triggers.push(Trigger {
            path: path.to_owned(),
            event: EventType::NodeDeleted,
            acl,
        });
        let parent = display_parent(&parent_key).to_owned();
        triggers.push(Trigger {
            path: parent,
            event: EventType::NodeChildrenChanged,
            acl: self.acl_at(&parent_key),
        });
        Ok(())
    }

    fn set_data(
        &mut self,
        path: &str,
        data: Option<Bytes>,
        version: i32,
        zxid: i64,
        time: i64,
        out: &mut Applied,
    ) -> Result<(), ErrorCode> {
        let key = crate::path::key(path);
        let slot = self.index.get(key).ok_or(ErrorCode::NoNode)?;
        let new_len = data.as_ref().map_or(0, |d| d.len() as i64);
        let old_len = self
            .nodes
            .get(slot)
            .and_then(|n| n.data.as_ref())
            .map_or(0, |d| d.len() as i64);
        let stat = self
            .update_at(slot, key, |node| {
                node.data = owned(&data);
                node.stat.mtime = time;
                node.stat.mzxid = zxid;
                node.stat.version = version;
            })
            .ok_or(ErrorCode::NoNode)?;
        out.stat = Some(stat);
        if let Some(prefix) = self.quota_prefix(key) {
            self.update_quota_stat(&prefix, new_len - old_len, 0);
        }
        let acl = self
            .nodes
            .get(slot)
            .map_or_else(|| Vec::new().into(), |node| self.acl_of(node));
        out.triggers.push(Trigger {
            path: path.to_owned(),
            event: EventType::NodeDataChanged,
            acl,
        });
        Ok(())
    }

    fn set_acl(
        &mut self,
        path: &str,
        acl: &[Acl],
        version: i32,
        out: &mut Applied,
    ) -> Result<(), ErrorCode> {
        let key = crate::path::key(path).to_owned();
        let old = self.node(&key).ok_or(ErrorCode::NoNode)?.acl;
        self.acls.release(old);
        let id = self.acls.intern(acl);
        out.stat = self.update(&key, |node| {
            node.stat.aversion = version;
            node.acl = id;
        });
        Ok(())
    }

    fn set_cversion_pzxid(
        &mut self,
        path: &str,
        cversion: i32,
        zxid: i64,
    ) -> Result<(), ErrorCode> {
        let key = path.strip_suffix('/').unwrap_or(path).to_owned();
        let node = self.node(&key).ok_or(ErrorCode::NoNode)?;
        let cversion = if cversion == -1 {
            node.stat.cversion.saturating_add(1)
        } else {
            cversion
        };
        if cversion > node.stat.cversion {
            self.update(&key, |node| {
                node.stat.cversion = cversion;
                node.stat.pzxid = zxid;
            });
        }
        Ok(())
    }

    /// Deletes the paths a `closeSession` txn names, then any other ephemeral the session
    /// still owns; missing paths are skipped, as ZooKeeper does on replay.
    fn kill_session(
        &mut self,
        session: i64,
        zxid: i64,
        txn: Option<&zk_jute::txn::CloseSessionTxn>,
        triggers: &mut Vec<Trigger>,
    ) {
        self.sessions.remove(&session);
        let mut local = self.ephemerals.remove(&session).unwrap_or_default();
        let named = txn
            .and_then(|t| t.paths2_delete.as_deref())
            .unwrap_or_default();
        for path in named {
            let _ = self.delete_node(path, zxid, triggers);
            local.remove(path);
        }
        for path in local.java_order() {
            let _ = self.delete_node(path, zxid, triggers);
        }
    }

    /// Deletes the ephemerals of sessions the session table does not hold, as ZooKeeper
    /// does once it has loaded (`ZooKeeperServer.loadData`: "clean up dead sessions"), at
    /// the last applied zxid and with no txn: nothing would ever close such a session.
    /// Returns the sessions, in order.
    pub fn kill_dead_sessions(&mut self) -> Vec<i64> {
        let mut dead: Vec<i64> = self
            .ephemerals
            .iter()
            .filter(|(session, paths)| !paths.is_empty() && !self.sessions.contains_key(session))
            .map(|(session, _)| *session)
            .collect();
        dead.sort_unstable();
        let mut triggers = Vec::new();
        for &session in &dead {
            self.kill_session(session, self.last_zxid, None, &mut triggers);
        }
        dead
    }

    /// Changes one node through `change`, keeping the digest in step; returns the new stat.
    fn update(&mut self, key: &str, change: impl FnOnce(&mut Node)) -> Option<Stat> {
        let slot = self.index.get(key)?;
        self.update_at(slot, key, change)
    }

    /// [`update`](Self::update) of the node at `key`, found in `slot`.
    fn update_at(
        &mut self,
        slot: usize,
        key: &str,
        change: impl FnOnce(&mut Node),
    ) -> Option<Stat> {
        let node = self.nodes.get_mut(slot)?;
        self.digest = self.digest.wrapping_sub(node.digest);
        let old_size = data_size(key, node);
        change(node);
        node.digest = node_digest(key, node.data.as_deref(), &node.stat);
        self.digest = self.digest.wrapping_add(node.digest);
        self.data_size = (self.data_size + data_size(key, node)).saturating_sub(old_size);
        Some(node.client_stat())
    }

    /// Makes room for `additional` more nodes at once.
    pub(crate) fn reserve_nodes(&mut self, additional: usize) {
        self.index.reserve(additional);
    }

    /// Adds a node (no parent link; a node already at `path` is replaced), keeping the
    /// digest in step; returns its slot.
    pub(crate) fn insert_node(&mut self, path: &str, mut node: Node) -> usize {
        node.digest = node_digest(path, node.data.as_deref(), &node.stat);
        self.digest = self.digest.wrapping_add(node.digest);
        self.data_size += data_size(path, &node);
        match self.index.place(path) {
            Place::Found(slot) => match self.nodes.get_mut(slot) {
                Some(place) => {
                    let old = std::mem::replace(place, node);
                    self.digest = self.digest.wrapping_sub(old.digest);
                    self.data_size = self.data_size.saturating_sub(data_size(path, &old));
                    slot
                }
                None => {
                    // Not in a consistent tree (the index names live slots only); the
                    // node takes a new slot rather than fail.
                    let slot = self.nodes.insert(node);
                    self.index.insert(path, slot);
                    slot
                }
            },
            Place::Vacant(vacant) => {
                let slot = self.nodes.insert(node);
                vacant.insert(slot);
                slot
            }
        }
    }

    fn remove_node(&mut self, path: &str) -> Option<Node> {
        let slot = self.index.remove(path)?;
        let node = self.nodes.remove(slot)?;
        self.digest = self.digest.wrapping_sub(node.digest);
        self.data_size = self.data_size.saturating_sub(data_size(path, &node));
        Some(node)
    }

    /// Records `child`, in `slot`, under `parent` without touching any stat (system
    /// nodes, snapshots); nothing if there is no `parent`.
    pub(crate) fn link_child(&mut self, parent: &str, child: &str, slot: usize) {
        let at = self.index.get(parent);
        if let Some(node) = at.and_then(|at| self.nodes.get_mut(at)) {
            node.children.insert(child, slot);
        }
    }

    /// Indexes a loaded node by its owner and counts its ACL reference (snapshots).
    pub(crate) fn index_loaded(&mut self, path: &str, owner: i64, acl: i64) {
        self.acls.retain(acl);
        match EphemeralType::of(owner, self.options.extended_types) {
            EphemeralType::Container => {
                self.containers.insert(path.to_owned());
            }
            EphemeralType::Ttl => {
                self.ttls.insert(path.to_owned());
            }
            EphemeralType::Normal => {
                self.ephemerals.entry(owner).or_default().insert(path);
            }
            EphemeralType::Void | EphemeralType::Invalid => {}
        }
    }

    pub(crate) fn quotas(&self) -> &BTreeSet<String> {
        &self.quotas
    }

    pub(crate) fn quotas_mut(&mut self) -> &mut BTreeSet<String> {
        &mut self.quotas
    }

    /// A node to change in place, outside txns and the digest (quota statistics only).
    pub(crate) fn node_mut(&mut self, path: &str) -> Option<&mut Node> {
        let slot = self.index.get(path)?;
        self.nodes.get_mut(slot)
    }

    pub(crate) fn acls_mut(&mut self) -> &mut AclCache {
        &mut self.acls
    }
}

impl DataTree {
    /// The whole tree as text, one line per node in preorder (children sorted) with its data
    /// in hex (`-` for null), every stored stat field (the raw owner, cversion as the count
    /// of creates), dataLength, numChildren and ACL, then the digest. This is the form the
    /// reference recordings (`tree.txt`) use, so trees compare line by line.
    pub fn dump(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for key in self.paths_preorder() {
            let Some(node) = self.node(&key) else {
                continue;
            };
            let path = if key.is_empty() { "/" } else { &key };
            let (s, client) = (&node.stat, node.client_stat());
            let data = node.data.as_deref().map_or_else(
                || "-".to_owned(),
                |d| {
                    d.iter().fold(String::new(), |mut h, b| {
                        let _ = write!(h, "{b:02x}");
                        h
                    })
                },
            );
            let acl: Vec<String> = self
                .acl_of(node)
                .iter()
                .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, zk_jute::Perms(a.perms)))
                .collect();
            let _ = writeln!(
                out,
                "{path} data={data} czxid={:#x} mzxid={:#x} ctime={} mtime={} version={} \
                 cversion={} aversion={} ephemeralOwner={:#x} dataLength={} numChildren={} \
                 pzxid={:#x} acl={}",
                s.czxid,
                s.mzxid,
                s.ctime,
                s.mtime,
                s.version,
                s.cversion,
                s.aversion,
                s.ephemeral_owner,
                client.data_length,
                client.num_children,
                s.pzxid,
                acl.join(",")
            );
        }
        let _ = writeln!(out, "digest {:#x}", self.digest);
        out
    }
}

/// A copy of `data` in an allocation of its own. Decoded data is a slice of the frame or
/// file it came in; a node lives long, and must not keep a whole read buffer or log file
/// alive for its few bytes.
pub(crate) fn owned(data: &Option<Bytes>) -> Option<Bytes> {
    data.as_deref().map(Bytes::copy_from_slice)
}

/// The stat of a node created by the txn with `zxid` at `time` (ZooKeeper's `createStat`).
pub(crate) fn created_stat(zxid: i64, time: i64, ephemeral_owner: i64) -> StatPersisted {
    StatPersisted {
        czxid: zxid,
        mzxid: zxid,
        ctime: time,
        mtime: time,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner,
        pzxid: zxid,
    }
}

/// A create of a non-ephemeral node, for the TTL and container txns that share its apply.
fn persistent(
    path: &str,
    data: &Option<Bytes>,
    acl: &Option<Vec<Acl>>,
    parent_c_version: i32,
) -> CreateTxn {
    CreateTxn {
        path: path.to_owned(),
        data: data.clone(),
        acl: acl.clone(),
        ephemeral: false,
        parent_c_version,
    }
}

/// `parent/child`, with the root's key `""` or `/` giving `/child`.
pub(crate) fn join(parent: &str, child: &str) -> String {
    let parent = crate::path::key(parent);
    format!("{parent}/{child}")
}

/// Reads, with the permission checks ZooKeeper's `FinalRequestProcessor` makes. Each
/// succeeds exactly when the server would register a watch the request asked for, except
/// [`DataTree::exists`], whose watch is registered even when the node is missing.
impl DataTree {
    fn readable(
        &self,
        path: &str,
        perm: zk_jute::Perms,
        auth: &[zk_jute::data::Id],
    ) -> Result<&Node, ErrorCode> {
        let node = self.node(path).ok_or(ErrorCode::NoNode)?;
        crate::acl::check_acl(&self.acl_of(node), perm, auth)?;
        Ok(node)
    }

    /// `getData`: data and stat; needs READ.
    pub fn get_data(
        &self,
        path: &str,
        auth: &[zk_jute::data::Id],
    ) -> Result<(Option<Bytes>, Stat), ErrorCode> {
        let node = self.readable(path, zk_jute::Perms::READ, auth)?;
        Ok((node.data.clone(), node.client_stat()))
    }

    /// `exists`: the stat; no permission needed. A NUL in the path is `BadArguments`.
    pub fn exists(&self, path: &str) -> Result<Stat, ErrorCode> {
        if path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        self.node(path)
            .map(Node::client_stat)
            .ok_or(ErrorCode::NoNode)
    }

    /// `getChildren`/`getChildren2`: the children's names (sorted) and the stat; needs READ.
    pub fn get_children(
        &self,
        path: &str,
        auth: &[zk_jute::data::Id],
    ) -> Result<(Vec<String>, Stat), ErrorCode> {
        let node = self.readable(path, zk_jute::Perms::READ, auth)?;
        Ok((
            node.children.iter().map(|c| c.to_string()).collect(),
            node.client_stat(),
        ))
    }

    /// `getACL`: needs READ or ADMIN; without ADMIN, digest ids come back redacted.
    pub fn get_acl(
        &self,
        path: &str,
        auth: &[zk_jute::data::Id],
    ) -> Result<(Vec<Acl>, Stat), ErrorCode> {
        let node = self.readable(path, zk_jute::Perms::READ | zk_jute::Perms::ADMIN, auth)?;
        let acl = self.acl_of(node);
        let acl = match crate::acl::check_acl(&acl, zk_jute::Perms::ADMIN, auth) {
            Ok(()) => acl.to_vec(),
            Err(_) => crate::acl::redact_digests(&acl),
        };
        Ok((acl, node.client_stat()))
    }

    /// `getAllChildrenNumber`: needs READ.
    pub fn get_all_children_number(
        &self,
        path: &str,
        auth: &[zk_jute::data::Id],
    ) -> Result<i32, ErrorCode> {
        self.readable(path, zk_jute::Perms::READ, auth)?;
        let count = self.all_children_number(path).unwrap_or(0);
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    }

    /// `getEphemerals`: the session's ephemeral paths starting with `prefix` (all of them for
    /// an empty or `/` prefix), sorted.
    pub fn get_ephemerals(&self, session: i64, prefix: &str) -> Vec<String> {
        let prefix = prefix.trim();
        let all = prefix.is_empty() || prefix == "/";
        self.ephemerals(session)
            .filter(|p| all || p.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }
}

/// What a znode adds to [`DataTree::approximate_data_size`]: its path's length in UTF-16
/// units, as Java's `String.length()` (the root's path is "/", keyed as ""), and its data's.
fn data_size(key: &str, node: &Node) -> u64 {
    let path = if key.is_empty() {
        1
    } else if key.is_ascii() {
        key.len()
    } else {
        key.encode_utf16().count()
    };
    (path + node.data.as_ref().map_or(0, |d| d.len())) as u64
}

#[cfg(test)]
mod tests {
    use zk_jute::txn::{CreateContainerTxn, CreateTtlTxn, DeleteTxn};

    use super::*;
    use crate::acl::open_acl_unsafe;

    /// Names order and compare as their `str`s do, short or long, whatever bytes they
    /// hold (a NUL, bytes past ASCII, one a prefix of the other, 22 bytes against 23).
    #[test]
    fn names_order_as_their_strs() {
        let alphabet = ["\0", "a", "b", "z", "0", "é", "\u{10ffff}", "-"];
        let mut seed = 0x2545_f491_u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let mut names: Vec<String> = vec![String::new(), "a".repeat(22), "a".repeat(23)];
        for _ in 0..2_000 {
            let len = (next() % 30) as usize;
            let base = names[next() as usize % names.len()].clone();
            let mut name: String = base.chars().take((next() % 24) as usize).collect();
            for _ in 0..len % 6 {
                name.push_str(alphabet[next() as usize % alphabet.len()]);
            }
            names.push(name);
        }
        for a in &names {
            for b in names.iter().step_by(7) {
                let (x, y) = (Name::new(a), Name::new(b));
                assert_eq!(x.cmp(&y), a.as_str().cmp(b.as_str()), "{a:?} vs {b:?}");
                assert_eq!(x == y, a == b, "{a:?} == {b:?}");
            }
        }
    }

    fn apply(tree: &mut DataTree, zxid: i64, time: i64, txn: Transaction) -> Applied {
        let r#type = txn.op_code().code();
        tree.apply(
            &TxnHeader {
                client_id: 9,
                cxid: 0,
                zxid,
                time,
                r#type,
            },
            &txn,
        )
    }

    fn plain(path: &str) -> Transaction {
        let acl = Some(open_acl_unsafe());
        let (data, ephemeral, parent_c_version) = (None, false, -1);
        Transaction::Create(CreateTxn {
            path: path.into(),
            data,
            acl,
            ephemeral,
            parent_c_version,
        })
    }

    #[test]
    fn children_sort_as_strings_whether_kept_inline_or_not() {
        let mut tree = DataTree::default();
        // Around the inline limit (22 bytes), multi-byte characters, and prefixes.
        let names = [
            "b",
            "a",
            "aaaaaaaaaaaaaaaaaaaaa",
            "aaaaaaaaaaaaaaaaaaaaaa",
            "aaaaaaaaaaaaaaaaaaaaaaa",
            "aaaaaaaaaaaaaaaaaaaaaab",
            "é",
            "zé-ünïcödé-nämé-lönger-thän-twenty-two",
            "A",
            "a0",
        ];
        for (zxid, name) in (1..).zip(names) {
            assert_eq!(apply(&mut tree, zxid, 0, plain(&format!("/{name}"))).err, 0);
        }
        let mut sorted: Vec<&str> = names.to_vec();
        sorted.push("zookeeper");
        sorted.sort_unstable();
        let root = tree.node("/").unwrap();
        assert_eq!(root.children.iter().collect::<Vec<_>>(), sorted);
        assert!(root.children.contains("aaaaaaaaaaaaaaaaaaaaaab"));
        assert!(!root.children.contains("aaaaaaaaaaaaaaaaaaaaaaaa"));
        let after: Vec<&str> = root
            .children
            .after(Some("aaaaaaaaaaaaaaaaaaaaaa"))
            .map(|(n, _)| n)
            .collect();
        assert_eq!(after, sorted[5..]);
        // Each child's slot holds that child.
        for (name, slot) in root.children.after(None) {
            assert_eq!(
                Some(tree.node_at(slot).unwrap()),
                tree.node(&format!("/{name}"))
            );
        }
    }

    #[test]
    fn slots_freed_by_deletes_are_reused_and_the_links_stay_right() {
        let mut tree = DataTree::default();
        let mut zxid = 0;
        let mut next = || {
            zxid += 1;
            zxid
        };
        assert_eq!(apply(&mut tree, next(), 0, plain("/p")).err, 0);
        for i in 0..100 {
            assert_eq!(
                apply(&mut tree, next(), 0, plain(&format!("/p/{i}"))).err,
                0
            );
        }
        let slots = tree.nodes.chunks.iter().map(Vec::len).sum::<usize>();
        for i in (0..100).step_by(2) {
            let delete = Transaction::Delete(DeleteTxn {
                path: format!("/p/{i}"),
            });
            assert_eq!(apply(&mut tree, next(), 0, delete).err, 0);
        }
        assert_eq!(tree.nodes.free.len(), 50);
        for i in 100..150 {
            assert_eq!(
                apply(&mut tree, next(), 0, plain(&format!("/p/n{i}"))).err,
                0
            );
        }
        // Every freed slot was taken again; none was added.
        assert!(tree.nodes.free.is_empty());
        assert_eq!(tree.nodes.chunks.iter().map(Vec::len).sum::<usize>(), slots);
        let p = tree.node("/p").unwrap();
        assert_eq!(p.children.len(), 100);
        for (name, slot) in p.children.after(None) {
            let node = tree.node_at(slot).unwrap();
            assert_eq!(Some(node), tree.node(&format!("/p/{name}")), "{name}");
        }
        // The body written through the slots loads into the same tree.
        let mut body = bytes::BytesMut::new();
        tree.serialize(&mut body);
        let mut reader = zk_jute::Reader::new(body.freeze());
        let loaded = DataTree::deserialize(&mut reader, TreeOptions::default(), |_| {}).unwrap();
        assert_eq!(loaded.paths_preorder(), tree.paths_preorder());
        assert_eq!(loaded.digest(), tree.digest());
    }

    #[test]
    fn containers_and_ttls_expire_as_zookeepers_container_manager_decides() {
        let mut tree = DataTree::default();
        let acl = Some(open_acl_unsafe());
        let container = |path: &str| {
            Transaction::CreateContainer(CreateContainerTxn {
                path: path.into(),
                data: None,
                acl: acl.clone(),
                parent_c_version: -1,
            })
        };
        apply(&mut tree, 1, 1_000, container("/used"));
        apply(&mut tree, 2, 1_000, container("/never"));
        apply(&mut tree, 3, 1_000, plain("/used/child"));
        let ttl = CreateTtlTxn {
            path: "/ttl".into(),
            data: None,
            acl,
            parent_c_version: -1,
            ttl: 500,
        };
        apply(&mut tree, 4, 1_000, Transaction::CreateTtl(ttl));

        // A container with a child, a fresh container and a young TTL node stay.
        assert!(tree.expiry_candidates(1_200, 0).is_empty());
        // The child goes: the container once had children, so it is due at once.
        apply(
            &mut tree,
            5,
            1_300,
            Transaction::Delete(DeleteTxn {
                path: "/used/child".into(),
            }),
        );
        assert_eq!(tree.expiry_candidates(1_300, 0), ["/used"]);
        // A never-used container is due only past maxNeverUsedInterval; a TTL node past its TTL.
        assert_eq!(
            tree.expiry_candidates(1_600, 500),
            ["/never", "/used", "/ttl"]
        );
        assert_eq!(
            tree.node("/ttl").map(|n| n.client_stat().ephemeral_owner),
            Some(0)
        );
    }

    #[test]
    fn ephemerals_of_sessions_not_in_the_table_are_deleted_after_loading() {
        let mut tree = DataTree::default();
        let eph = |path: &str| {
            Transaction::Create(CreateTxn {
                path: path.into(),
                data: None,
                acl: Some(open_acl_unsafe()),
                ephemeral: true,
                parent_c_version: -1,
            })
        };
        let session = |timeout| {
            Transaction::CreateSession(zk_jute::txn::CreateSessionTxn { time_out: timeout })
        };
        let mut by = |client_id, zxid, txn: Transaction| {
            let r#type = txn.op_code().code();
            let (cxid, time) = (0, 0);
            let header = TxnHeader {
                client_id,
                cxid,
                zxid,
                time,
                r#type,
            };
            tree.apply(&header, &txn);
        };
        by(1, 1, session(5));
        by(1, 2, eph("/dead"));
        by(2, 3, session(5));
        by(2, 4, eph("/alive"));
        // As a snapshot whose session table lost session 1 would load.
        tree.set_sessions([(2, 5)].into());
        assert_eq!(tree.kill_dead_sessions(), [1]);
        assert!(tree.node("/dead").is_none());
        assert!(tree.node("/alive").is_some());
        let root = tree.node("/").unwrap().client_stat();
        assert_eq!((root.pzxid, root.num_children), (4, 2));
        assert!(tree.kill_dead_sessions().is_empty());
    }

    #[test]
    fn closing_a_session_deletes_its_ephemerals_and_fires_their_watches() {
        let mut tree = DataTree::default();
        let acl = Some(open_acl_unsafe());
        let eph = Transaction::Create(CreateTxn {
            path: "/e".into(),
            data: None,
            acl,
            ephemeral: true,
            parent_c_version: -1,
        });
        apply(
            &mut tree,
            1,
            1,
            Transaction::CreateSession(zk_jute::txn::CreateSessionTxn { time_out: 5 }),
        );
        apply(&mut tree, 2, 1, eph);
        assert_eq!(tree.ephemerals(9).collect::<Vec<_>>(), ["/e"]);
        let closed = apply(&mut tree, 3, 1, Transaction::CloseSession(None));
        assert!(tree.node("/e").is_none());
        assert!(tree.sessions().is_empty());
        let events: Vec<_> = closed
            .triggers
            .iter()
            .map(|t| (t.path.as_str(), t.event))
            .collect();
        assert_eq!(
            events,
            [
                ("/e", EventType::NodeDeleted),
                ("/", EventType::NodeChildrenChanged)
            ]
        );
        assert_eq!(tree.node("/").map(|n| n.stat.pzxid), Some(3));
    }
}
