//! ZooKeeper's state as a pure library: the znode tree and everything that decides how it
//! changes.
//!
//! - [`DataTree`]: znodes with data, ACLs (through the reference-counted [`AclCache`] that
//!   snapshots store), stats and children; the system nodes; indexes of ephemerals by
//!   session, containers and TTL nodes ([`DataTree::expiry_candidates`]); the session
//!   table; the 3.6+ tree digest; the snapshot body layout ([`DataTree::serialize`],
//!   [`DataTree::deserialize`]).
//! - [`DataTree::apply`] is the only mutation: it applies a [`Transaction`] and returns what
//!   happened ([`Applied`]), including the watch [`Trigger`]s to fire.
//! - [`prepare`] turns a [`WriteRequest`] into the txn to log, with ZooKeeper's checks and
//!   error codes (path validation, ACLs, versions, sequence numbers, TTLs, multi), reading
//!   through a [`TreeView`] so that pending txns ([`Overlay`]) are seen.
//!
//! No sockets, files, tasks or clocks: time and zxids are inputs. Watches live in
//! `zk-watch`, files in `zk-persistence`.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use zk_datatree::{prepare, DataTree, Session, WriteRequest, acl::open_acl_unsafe};
//! use zk_jute::{proto::CreateRequest, txn::TxnHeader, CreateMode, EventType};
//!
//! let mut tree = DataTree::default();
//! let session = Session { id: 0x100, auth: &[] };
//! let request = WriteRequest::Create {
//!     request: CreateRequest {
//!         path: "/jobs/job-".into(),
//!         data: Some(Bytes::from_static(b"payload")),
//!         acl: Some(open_acl_unsafe()),
//!         flags: CreateMode::PersistentSequential.code(),
//!     },
//!     with_stat: false,
//!     container: false,
//! };
//!
//! // No parent yet: preparation yields an error txn (it still takes a zxid, as in ZooKeeper).
//! let prepared = prepare(&tree, &session, 1, 1_700_000_000_000, &request);
//! assert_eq!(prepared.error(), Some(zk_jute::ErrorCode::NoNode));
//!
//! let mkdir = WriteRequest::Create {
//!     request: CreateRequest { path: "/jobs".into(), data: None, acl: Some(open_acl_unsafe()), flags: 0 },
//!     with_stat: false,
//!     container: false,
//! };
//! for (zxid, request) in [(2, &mkdir), (3, &request)] {
//!     let prepared = prepare(&tree, &session, zxid, 1_700_000_000_000, request);
//!     let header = TxnHeader { client_id: session.id, cxid: 0, zxid, time: 1_700_000_000_000,
//!                              r#type: prepared.txn.op_code().code() };
//!     let applied = tree.apply(&header, &prepared.txn);
//!     assert_eq!(applied.err, 0);
//!     assert_eq!(applied.triggers[0].event, EventType::NodeCreated);
//! }
//! assert!(tree.node("/jobs/job-0000000000").is_some());
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::panic))]

pub mod acl;
mod digest;
mod ephemeral;
mod index;
mod java;
pub mod path;
mod prep;
pub mod quota;
mod snapshot;
mod tree;
mod txn;

pub use acl::AclCache;
pub use digest::{DIGEST_VERSION, node_digest};
pub use ephemeral::{CONTAINER_EPHEMERAL_OWNER, EphemeralType, MAX_TTL_MS, ttl_of, ttl_owner};
pub use java::JavaHashSet;
pub use prep::{Layered, NodeState, Overlay, Prepared, Session, TreeView, WriteRequest, prepare};
pub use snapshot::{BodyWriter, SnapshotError, TreeLoader};
pub use tree::{
    Applied, CONFIG_PATH, DataTree, Node, QUOTA_PATH, TreeOptions, Trigger, ZOOKEEPER_PATH,
};
pub use txn::{Transaction, TxnError, decode_exact};

// The README's examples, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
