//! ZooKeeper's watches: who is told what, when a znode changes.
//!
//! Two halves, both pure data structures (no I/O, no tasks, no clocks):
//!
//! - [`WatchManager`], the server side: the data and child watch tables of Apache
//!   ZooKeeper's `DataTree` in one compact structure, with ZooKeeper 3.9's watch modes
//!   (several modes of one connection on one path coexist; 3.8.0 let them interfere). It
//!   records `getData`/`exists`/`getChildren` one-shot watches and `addWatch` persistent
//!   and persistent recursive ones for [`WatcherId`]s, fires them with
//!   [`trigger`](WatchManager::trigger) (or the `DataTree` sequences
//!   [`node_created`](WatchManager::node_created),
//!   [`node_deleted`](WatchManager::node_deleted),
//!   [`node_data_changed`](WatchManager::node_data_changed)), answers `removeWatches`,
//!   `checkWatches` and `setWatches`, forgets closed connections, and reports for `wchs`,
//!   `wchc`, `wchp` and `mntr`.
//! - [`WatchRegistry`], the client side (`ZKWatchManager`): which local watchers an
//!   incoming event reaches, local removal, and the `setWatches`/`setWatches2` requests to
//!   send after reconnecting.
//!
//! It is not a server or a client: it never sends anything, knows nothing of sessions,
//! sockets or the znode tree (callers pass tree facts in, as [`NodeZxids`]), and does not
//! check ACLs or validate paths.
//!
//! # Compact form
//!
//! A million watches should not cost a hundred megabytes. Paths are interned once into
//! dense ids; watchers get dense slots. Each (path, watcher) pair is one `u32`: the slot and
//! six bits holding its modes in both tables. A path with one watcher stores that `u32`
//! inline, up to 512 live in a sorted vector, more in a hash table. Each watcher keeps its
//! path ids in a sorted vector, or past 64 in a roaring bitmap, so closing a connection
//! touches only its own paths. Measured (`benches/memory.rs`), a million watches cost about
//! 22 bytes each when paths are shared by ten watchers, and 85 when every path has a
//! watcher of its own (the path names dominate then).
//!
//! # Example
//!
//! ```
//! use zk_jute::EventType;
//! use zk_watch::{WatchKind, WatchManager, WatchedEvent, WatcherId};
//!
//! let (alice, bob) = (WatcherId(1), WatcherId(2));
//! let mut watches = WatchManager::new();
//! watches.add_watch("/app/config", alice, WatchKind::Data)?; // getData(watch=true)
//! watches.add_watch("/app", bob, WatchKind::PersistentRecursive)?; // addWatch
//!
//! // setData("/app/config"): both hear of it; alice's one-shot watch is used up.
//! let fired = watches.node_data_changed("/app/config");
//! assert_eq!(fired.len(), 1);
//! assert_eq!(fired[0].event, WatchedEvent::new(EventType::NodeDataChanged, "/app/config"));
//! assert_eq!(fired[0].watchers, [alice, bob]);
//!
//! // create("/app/new"): bob's recursive watch hears NodeCreated, never NodeChildrenChanged.
//! let fired = watches.node_created("/app/new");
//! assert_eq!(fired.len(), 1);
//! assert_eq!(fired[0].event.event_type, EventType::NodeCreated);
//! assert_eq!(fired[0].watchers, [bob]);
//!
//! // bob's connection closes.
//! assert_eq!(watches.remove_watcher(bob), 1); // a recursive watch is in the data table only
//! assert_eq!(watches.watch_count(), 0);
//! # Ok::<(), zk_watch::WatchError>(())
//! ```
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)
)]

mod client;
mod error;
mod event;
mod lists;
mod path;
mod server;

pub use client::{ClientWatchKind, Registration, Removed, WatchRegistry, client_path, server_path};
pub use error::WatchError;
pub use event::{WatchKind, WatchModes, WatchTable, WatchedEvent, WatcherId, WatcherMode};
pub use lists::{SET_WATCHES_MAX_LENGTH, SetWatchesRequest, WatchLists};
pub use server::{
    Fired, HeldWatch, NodeZxids, WatchManager, WatchesSummary, format_by_connection, format_by_path,
};

// The README's examples, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
