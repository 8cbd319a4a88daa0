//! Request preparation: a pure function from (request, session, tree) to the txn that will be
//! logged and applied, as ZooKeeper's `PrepRequestProcessor` makes it. A failed write still
//! becomes a txn (an error txn), so it takes a zxid, as in ZooKeeper.
//!
//! Preparation reads through a [`TreeView`]: the tree itself, or the tree with the changes
//! of txns prepared but not yet applied layered on top ([`Overlay`]), so a server can keep
//! many writes in flight (group commit) and each sees the ones before it.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use zk_jute::data::{Acl, Id, StatPersisted};
use zk_jute::proto::{
    CheckVersionRequest, CreateRequest, CreateTtlRequest, DeleteRequest, SetAclRequest,
    SetDataRequest,
};
use zk_jute::txn::{
    CheckVersionTxn, CloseSessionTxn, CreateContainerTxn, CreateSessionTxn, CreateTtlTxn,
    CreateTxn, DeleteTxn, SetAclTxn, SetDataTxn,
};
use zk_jute::{CreateMode, ErrorCode, MultiOp, MultiRequest, Perms};

use crate::acl::{AclList, check_acl, fixup_acl};
use crate::digest::node_digest;
use crate::ephemeral::{CONTAINER_EPHEMERAL_OWNER, EphemeralType, ttl_owner};
use crate::java::JavaHashSet;
use crate::path::{split, validate_path};
use crate::tree::{CONFIG_PATH, DataTree, QUOTA_PATH, ZOOKEEPER_PATH};
use crate::txn::Transaction;

/// A node as preparation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    /// The data.
    pub data: Option<Bytes>,
    /// The ACL.
    pub acl: AclList,
    /// The persisted stat.
    pub stat: StatPersisted,
    /// How many children it has.
    pub num_children: i32,
}

/// What preparation needs to read: nodes by key (`""` is the root) and a session's
/// ephemerals.
pub trait TreeView {
    /// The node at `key`, if it exists.
    fn node(&self, key: &str) -> Option<NodeState>;
    /// The ephemeral paths `session` owns, as ZooKeeper's `getEphemerals` gives them: a
    /// clone of the session's `HashSet`, whose order `closeSession` deletes them in.
    fn ephemerals(&self, session: i64) -> JavaHashSet;
    /// Whether TTL nodes are enabled (`extendedTypesEnabled`).
    fn extended_types(&self) -> bool;
}

impl TreeView for DataTree {
    fn node(&self, key: &str) -> Option<NodeState> {
        let node = DataTree::node(self, key)?;
        Some(NodeState {
            data: node.data.clone(),
            acl: self.acl_of(node),
            stat: node.stat.clone(),
            num_children: i32::try_from(node.children.len()).unwrap_or(i32::MAX),
        })
    }

    fn ephemerals(&self, session: i64) -> JavaHashSet {
        self.ephemeral_set(session)
            .map(JavaHashSet::java_clone)
            .unwrap_or_default()
    }

    fn extended_types(&self) -> bool {
        self.options().extended_types
    }
}

/// Changes of prepared txns not yet applied to the tree (ZooKeeper's
/// `outstandingChanges`): the newest state of each touched path, `None` once deleted.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    changes: BTreeMap<String, (i64, Option<NodeState>)>,
    /// The keys each staged txn touched, oldest first, so forgetting costs what it staged,
    /// each with the node's ephemeral owner after the txn (`None`: deleted), for the order
    /// ZooKeeper's `closeSession` goes through its `outstandingChanges` in.
    staged: VecDeque<(i64, Vec<StagedKey>)>,
}

/// A key a staged txn touched, with the node's ephemeral owner after it (`None`: deleted).
type StagedKey = (String, Option<i64>);

impl Overlay {
    /// Records what the txn with `zxid` will change.
    pub fn stage(&mut self, zxid: i64, prepared: &Prepared) {
        for (key, state) in &prepared.changes {
            self.changes.insert(key.clone(), (zxid, state.clone()));
        }
        let keys = prepared
            .changes
            .iter()
            .map(|(key, state)| {
                let owner = state.as_ref().map(|s| s.stat.ephemeral_owner);
                (key.clone(), owner)
            })
            .collect();
        self.staged.push_back((zxid, keys));
    }

    /// Forgets changes of txns up to `zxid`, now applied to the tree.
    pub fn applied(&mut self, zxid: i64) {
        while self
            .staged
            .front()
            .is_some_and(|(staged, _)| *staged <= zxid)
        {
            let Some((staged, keys)) = self.staged.pop_front() else {
                break;
            };
            for (key, _) in keys {
                // A later txn may have staged the same path since; keep its state.
                if self.changes.get(&key).is_some_and(|(z, _)| *z == staged) {
                    self.changes.remove(&key);
                }
            }
        }
    }

    /// How many paths have pending changes.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// `base` as it will be once every staged txn is applied.
    pub fn over<'a, V: TreeView>(&'a self, base: &'a V) -> Layered<'a, V> {
        Layered {
            base,
            overlay: self,
        }
    }
}

/// A [`TreeView`] of a base view with an [`Overlay`] on top.
#[derive(Debug)]
pub struct Layered<'a, V> {
    base: &'a V,
    overlay: &'a Overlay,
}

impl<V: TreeView> TreeView for Layered<'_, V> {
    fn node(&self, key: &str) -> Option<NodeState> {
        match self.overlay.changes.get(key) {
            Some((_, state)) => state.clone(),
            None => self.base.node(key),
        }
    }

    fn ephemerals(&self, session: i64) -> JavaHashSet {
        // PrepRequestProcessor: every outstanding change in turn removes a deleted path or
        // adds one the session owns.
        let mut paths = self.base.ephemerals(session);
        for (key, owner) in self.overlay.staged.iter().flat_map(|(_, keys)| keys) {
            match owner {
                None => {
                    paths.remove(key);
                }
                Some(owner) if *owner == session => {
                    paths.insert(key);
                }
                Some(_) => {}
            }
        }
        paths
    }

    fn extended_types(&self) -> bool {
        self.base.extended_types()
    }
}

/// Who is asking: the session id and its authenticated identities (`super` included).
#[derive(Debug, Clone, Copy)]
pub struct Session<'a> {
    /// The session id.
    pub id: i64,
    /// The session's identities from `addauth` and its connection (`ip`).
    pub auth: &'a [Id],
}

/// A request that changes state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteRequest {
    /// `create` (`create2` when `with_stat`; `createContainer` when `container`).
    Create {
        /// The request.
        request: CreateRequest,
        /// The opcode was `create2` (answered with a stat).
        with_stat: bool,
        /// The opcode was `createContainer`.
        container: bool,
    },
    /// `createTTL`.
    CreateTtl(CreateTtlRequest),
    /// `delete`.
    Delete(DeleteRequest),
    /// `deleteContainer` (issued by the server for empty containers and expired TTLs).
    DeleteContainer(String),
    /// `setData`.
    SetData(SetDataRequest),
    /// `setACL`.
    SetAcl(SetAclRequest),
    /// `check`.
    Check(CheckVersionRequest),
    /// `multi`.
    Multi(MultiRequest),
    /// `createSession` with the negotiated timeout.
    CreateSession {
        /// Timeout in milliseconds.
        timeout_ms: i32,
    },
    /// `closeSession`: the session's ephemerals go.
    CloseSession,
}

/// A prepared txn, with the node changes it will make (for an [`Overlay`]) and how it will
/// move the tree digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The txn to log and apply; an error txn if the request failed.
    pub txn: Transaction,
    /// Every node it changes, by key, with its state after the txn (`None`: deleted).
    pub changes: Vec<(String, Option<NodeState>)>,
    /// Tree digest after the txn minus before it (wrapping).
    pub digest_delta: u64,
}

impl Prepared {
    /// The error the request failed with, if it did (a failed multi reports its first).
    pub fn error(&self) -> Option<ErrorCode> {
        let first_error = |txn: &Transaction| match txn {
            Transaction::Error(e) => ErrorCode::try_from(e.err).ok(),
            _ => None,
        };
        match &self.txn {
            Transaction::Multi(txns) => txns.iter().find_map(first_error),
            txn => first_error(txn),
        }
    }
}

/// Prepares `request` from `session` as the txn with `zxid`, made at wall time `time_ms`.
pub fn prepare<V: TreeView>(
    view: &V,
    session: &Session<'_>,
    zxid: i64,
    time_ms: i64,
    request: &WriteRequest,
) -> Prepared {
    let mut scratch = Scratch {
        base: view,
        local: BTreeMap::new(),
        session,
        zxid,
        time_ms,
    };
    let txn = match request {
        WriteRequest::Multi(multi) => scratch.multi(multi),
        single => scratch.single(single).unwrap_or_else(|code| {
            scratch.local.clear();
            Transaction::error(code)
        }),
    };
    let mut digest_delta = 0_u64;
    for (key, state) in &scratch.local {
        let before = view
            .node(key)
            .map_or(0, |n| node_digest(key, n.data.as_deref(), &n.stat));
        let after = state
            .as_ref()
            .map_or(0, |n| node_digest(key, n.data.as_deref(), &n.stat));
        digest_delta = digest_delta.wrapping_add(after).wrapping_sub(before);
    }
    Prepared {
        txn,
        changes: scratch.local.into_iter().collect(),
        digest_delta,
    }
}

/// The view plus this request's own changes so far.
struct Scratch<'a, V> {
    base: &'a V,
    local: BTreeMap<String, Option<NodeState>>,
    session: &'a Session<'a>,
    zxid: i64,
    time_ms: i64,
}

type Prep<T> = Result<T, ErrorCode>;

fn check_version(current: i32, expected: i32) -> Prep<i32> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

fn valid_path(path: &str) -> Prep<()> {
    validate_path(path).map_err(|_| ErrorCode::BadArguments)
}

/// The parent key of a path being deleted; special paths and malformed ones are refused.
fn parent_for_delete(path: &str) -> Prep<&str> {
    let special = ["/", ZOOKEEPER_PATH, QUOTA_PATH, CONFIG_PATH].contains(&path);
    match split(path) {
        Some((parent, _)) if !special && !path.contains('\0') => Ok(parent),
        _ => Err(ErrorCode::BadArguments),
    }
}

impl<V: TreeView> Scratch<'_, V> {
    fn node(&self, key: &str) -> Prep<NodeState> {
        match self.local.get(key) {
            Some(state) => state.clone(),
            None => self.base.node(key),
        }
        .ok_or(ErrorCode::NoNode)
    }

    fn exists(&self, key: &str) -> bool {
        self.node(key).is_ok()
    }

    fn put(&mut self, key: &str, state: Option<NodeState>) {
        self.local.insert(key.to_owned(), state);
    }

    fn check(&self, acl: &[Acl], perm: Perms) -> Prep<()> {
        check_acl(acl, perm, self.session.auth)
    }

    fn single(&mut self, request: &WriteRequest) -> Prep<Transaction> {
        match request {
            WriteRequest::Create {
                request,
                with_stat,
                container,
            } => {
                let r = request;
                let created =
                    self.create(&r.path, &r.data, r.acl.as_deref(), r.flags, -1, *container)?;
                Ok(match created {
                    Created::Plain(t) if *with_stat => Transaction::Create2(t),
                    Created::Plain(t) => Transaction::Create(t),
                    Created::Container(t) => Transaction::CreateContainer(t),
                    Created::Ttl(t) => Transaction::CreateTtl(t),
                })
            }
            WriteRequest::CreateTtl(r) => {
                let created =
                    self.create(&r.path, &r.data, r.acl.as_deref(), r.flags, r.ttl, false)?;
                Ok(match created {
                    Created::Ttl(t) => Transaction::CreateTtl(t),
                    // A non-TTL mode with a TTL was refused above; keep the opcode's shape.
                    Created::Plain(t) => Transaction::Create(t),
                    Created::Container(t) => Transaction::CreateContainer(t),
                })
            }
            WriteRequest::Delete(r) => self.delete(&r.path, r.version).map(Transaction::Delete),
            WriteRequest::DeleteContainer(path) => self
                .delete_container(path)
                .map(Transaction::DeleteContainer),
            WriteRequest::SetData(r) => self.set_data(r).map(Transaction::SetData),
            WriteRequest::SetAcl(r) => self.set_acl(r).map(Transaction::SetAcl),
            WriteRequest::Check(r) => self
                .check_version(&r.path, r.version)
                .map(Transaction::Check),
            WriteRequest::CreateSession { timeout_ms } => {
                Ok(Transaction::CreateSession(CreateSessionTxn {
                    time_out: *timeout_ms,
                }))
            }
            WriteRequest::CloseSession => Ok(self.close_session()),
            WriteRequest::Multi(_) => Err(ErrorCode::BadArguments),
        }
    }

    /// All ops prepared in order against each other's changes; after the first failure the
    /// rest become RuntimeInconsistency and no change is kept.
    fn multi(&mut self, multi: &MultiRequest) -> Transaction {
        let mut txns = Vec::with_capacity(multi.ops.len());
        let mut failed = false;
        for op in &multi.ops {
            if failed {
                txns.push(Transaction::error(ErrorCode::RuntimeInconsistency));
                continue;
            }
            match self.multi_op(op) {
                Ok(txn) => txns.push(txn),
                Err(code) => {
                    failed = true;
                    self.local.clear();
                    txns.push(Transaction::error(code));
                }
            }
        }
        Transaction::Multi(txns)
    }

    fn multi_op(&mut self, op: &MultiOp) -> Prep<Transaction> {
        let single = match op {
            // ZooKeeper rebuilds a multi's creates from their flags: a container mode makes
            // a createContainer, anything else a plain create (so a create2 op is logged and
            // answered as create; its own replay knows no create2 inside a multi).
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => {
                WriteRequest::Create {
                    request: r.clone(),
                    with_stat: false,
                    container: CreateMode::try_from(r.flags) == Ok(CreateMode::Container),
                }
            }
            MultiOp::CreateTtl(r) => WriteRequest::CreateTtl(r.clone()),
            MultiOp::Delete(r) => WriteRequest::Delete(r.clone()),
            MultiOp::SetData(r) => WriteRequest::SetData(r.clone()),
            MultiOp::Check(r) => WriteRequest::Check(r.clone()),
            MultiOp::GetChildren(_) | MultiOp::GetData(_) => return Err(ErrorCode::BadArguments),
        };
        self.single(&single)
    }

    fn create(
        &mut self,
        path: &str,
        data: &Option<Bytes>,
        acl: Option<&[Acl]>,
        flags: i32,
        ttl: i64,
        container_op: bool,
    ) -> Prep<Created> {
        let mode = CreateMode::try_from(flags).map_err(|_| ErrorCode::BadArguments)?;
        if mode.is_ttl() && !self.base.extended_types() {
            return Err(ErrorCode::Unimplemented);
        }
        let ttl_owner = match (mode.is_ttl(), ttl) {
            (true, ttl) => Some(ttl_owner(ttl).ok_or(ErrorCode::BadArguments)?),
            (false, ttl) if ttl >= 0 => return Err(ErrorCode::BadArguments),
            (false, _) => None,
        };
        let (parent_key, _) = match split(path) {
            Some(split) if !path.contains('\0') => split,
            _ => return Err(ErrorCode::BadArguments),
        };
        let acl = fixup_acl(acl, self.session.auth)?;
        let mut parent = self.node(parent_key)?;
        self.check(&parent.acl, Perms::CREATE)?;
        let path = if mode.is_sequential() {
            format!("{path}{:010}", parent.stat.cversion)
        } else {
            path.to_owned()
        };
        valid_path(&path)?;
        if self.exists(&path) {
            return Err(ErrorCode::NodeExists);
        }
        let extended = self.base.extended_types();
        if EphemeralType::of(parent.stat.ephemeral_owner, extended) == EphemeralType::Normal {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let parent_c_version = parent.stat.cversion.wrapping_add(1);
        // The owner the txn will give the node when applied: the opcode decides the kind.
        let owner = if container_op {
            CONTAINER_EPHEMERAL_OWNER
        } else if let Some(owner) = ttl_owner {
            owner
        } else if mode.is_ephemeral() {
            self.session.id
        } else {
            0
        };
        let (zxid, time) = (self.zxid, self.time_ms);
        let stat = crate::tree::created_stat(zxid, time, owner);
        parent.num_children = parent.num_children.saturating_add(1);
        parent.stat.cversion = parent_c_version;
        parent.stat.pzxid = zxid;
        let parent_key = parent_key.to_owned();
        self.put(&parent_key, Some(parent));
        let node = NodeState {
            data: data.clone(),
            acl: acl.clone().into(),
            stat,
            num_children: 0,
        };
        self.put(&path, Some(node));
        let (data, acl) = (data.clone(), Some(acl));
        Ok(if container_op {
            Created::Container(CreateContainerTxn {
                path,
                data,
                acl,
                parent_c_version,
            })
        } else if ttl_owner.is_some() {
            Created::Ttl(CreateTtlTxn {
                path,
                data,
                acl,
                parent_c_version,
                ttl,
            })
        } else {
            let ephemeral = mode.is_ephemeral();
            Created::Plain(CreateTxn {
                path,
                data,
                acl,
                ephemeral,
                parent_c_version,
            })
        })
    }

    fn delete(&mut self, path: &str, version: i32) -> Prep<DeleteTxn> {
        let parent_key = parent_for_delete(path)?;
        let parent = self.node(parent_key)?;
        self.check(&parent.acl, Perms::DELETE)?;
        let node = self.node(path)?;
        check_version(node.stat.version, version)?;
        if node.num_children > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        self.remove_child(parent_key, parent, path);
        Ok(DeleteTxn {
            path: path.to_owned(),
        })
    }

    fn delete_container(&mut self, path: &str) -> Prep<DeleteTxn> {
        let parent_key = parent_for_delete(path)?;
        let node = self.node(path)?;
        if node.num_children > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        let extended = self.base.extended_types();
        if EphemeralType::of(node.stat.ephemeral_owner, extended) == EphemeralType::Normal {
            return Err(ErrorCode::BadVersion);
        }
        let parent = self.node(parent_key)?;
        self.remove_child(parent_key, parent, path);
        Ok(DeleteTxn {
            path: path.to_owned(),
        })
    }

    fn remove_child(&mut self, parent_key: &str, mut parent: NodeState, path: &str) {
        parent.num_children = parent.num_children.saturating_sub(1);
        parent.stat.pzxid = self.zxid;
        let parent_key = parent_key.to_owned();
        self.put(&parent_key, Some(parent));
        self.put(path, None);
    }

    fn set_data(&mut self, r: &SetDataRequest) -> Prep<SetDataTxn> {
        valid_path(&r.path)?;
        let key = crate::path::key(&r.path);
        let mut node = self.node(key)?;
        self.check(&node.acl, Perms::WRITE)?;
        let version = check_version(node.stat.version, r.version)?;
        node.stat.version = version;
        node.stat.mtime = self.time_ms;
        node.stat.mzxid = self.zxid;
        node.data = r.data.clone();
        self.put(key, Some(node));
        Ok(SetDataTxn {
            path: r.path.clone(),
            data: r.data.clone(),
            version,
        })
    }

    fn set_acl(&mut self, r: &SetAclRequest) -> Prep<SetAclTxn> {
        valid_path(&r.path)?;
        let acl = fixup_acl(r.acl.as_deref(), self.session.auth)?;
        let key = crate::path::key(&r.path);
        let mut node = self.node(key)?;
        self.check(&node.acl, Perms::ADMIN)?;
        let version = check_version(node.stat.aversion, r.version)?;
        node.stat.aversion = version;
        node.acl = acl.clone().into();
        self.put(key, Some(node));
        Ok(SetAclTxn {
            path: r.path.clone(),
            acl: Some(acl),
            version,
        })
    }

    fn check_version(&mut self, path: &str, version: i32) -> Prep<CheckVersionTxn> {
        valid_path(path)?;
        let node = self.node(crate::path::key(path))?;
        self.check(&node.acl, Perms::READ)?;
        let version = check_version(node.stat.version, version)?;
        Ok(CheckVersionTxn {
            path: path.to_owned(),
            version,
        })
    }

    fn close_session(&mut self) -> Transaction {
        let ephemerals = self.base.ephemerals(self.session.id);
        let paths = ephemerals.java_order();
        for &path in &paths {
            let Some((parent_key, _)) = split(path) else {
                continue;
            };
            if let Ok(mut parent) = self.node(parent_key) {
                parent.num_children = parent.num_children.saturating_sub(1);
                parent.stat.pzxid = self.zxid;
                let parent_key = parent_key.to_owned();
                self.put(&parent_key, Some(parent));
            }
            self.put(path, None);
        }
        let paths2_delete = Some(paths.into_iter().map(str::to_owned).collect());
        Transaction::CloseSession(Some(CloseSessionTxn { paths2_delete }))
    }
}

enum Created {
    Plain(CreateTxn),
    Container(CreateContainerTxn),
    Ttl(CreateTtlTxn),
}

#[cfg(test)]
mod tests {
    use zk_jute::txn::TxnHeader;

    use super::*;
    use crate::acl::open_acl_unsafe;

    fn create(path: &str, flags: i32) -> WriteRequest {
        let acl = Some(open_acl_unsafe());
        let request = CreateRequest {
            path: path.into(),
            data: None,
            acl,
            flags,
        };
        WriteRequest::Create {
            request,
            with_stat: false,
            container: false,
        }
    }

    fn apply(tree: &mut DataTree, zxid: i64, prepared: &Prepared) {
        let r#type = prepared.txn.op_code().code();
        let header = TxnHeader {
            client_id: 1,
            cxid: 0,
            zxid,
            time: 5,
            r#type,
        };
        assert_eq!(tree.apply(&header, &prepared.txn).err, 0);
    }

    #[test]
    fn pending_txns_are_seen_through_the_overlay() {
        let mut tree = DataTree::default();
        let session = Session { id: 1, auth: &[] };
        let mut pending = Overlay::default();
        let digest = tree.digest();
        // Three writes prepared before any is applied, each seeing the ones before it.
        let first = prepare(&pending.over(&tree), &session, 1, 5, &create("/q", 0));
        pending.stage(1, &first);
        let second = prepare(&pending.over(&tree), &session, 2, 5, &create("/q/job-", 2));
        pending.stage(2, &second);
        let third = prepare(&pending.over(&tree), &session, 3, 5, &create("/q/job-", 3));
        pending.stage(3, &third);
        assert_eq!(third.error(), None);
        let Transaction::Create(txn) = &third.txn else {
            panic!("{:?}", third.txn)
        };
        assert_eq!(
            txn.path, "/q/job-0000000001",
            "numbered after the pending /q/job-0000000000"
        );
        assert_eq!(
            pending.over(&tree).ephemerals(1).java_order(),
            [txn.path.as_str()]
        );
        let predicted = [&first, &second, &third]
            .iter()
            .fold(digest, |d, p| d.wrapping_add(p.digest_delta));

        for (zxid, prepared) in [(1, &first), (2, &second), (3, &third)] {
            apply(&mut tree, zxid, prepared);
            pending.applied(zxid);
        }
        assert!(pending.is_empty());
        assert_eq!(tree.digest(), predicted);
        assert_eq!(tree.node("/q").map(|n| n.children.len()), Some(2));
    }

    #[test]
    fn a_failed_write_is_an_error_txn_with_no_changes() {
        let tree = DataTree::default();
        let session = Session { id: 1, auth: &[] };
        let prepared = prepare(&tree, &session, 1, 5, &create("/a/b", 0));
        assert_eq!(prepared.txn, Transaction::error(ErrorCode::NoNode));
        assert!(prepared.changes.is_empty());
        assert_eq!(prepared.digest_delta, 0);
    }
}
