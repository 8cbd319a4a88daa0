//! ZooKeeper's atomic broadcast (Zab) as a deterministic state machine driven by inputs.
//!
//! What it is for: keeping the logs of an ensemble's members in one order, so that a
//! ZooKeeper-compatible server can replicate its writes: a leader proposes txns, a quorum
//! logs them, the leader commits them, and every member applies them in zxid order. It
//! runs ZooKeeper 3.8's protocol (its `Leader`, `LearnerHandler`, `Follower` and
//! `Observer`), including the fixes of later releases for its known sync bugs. What it
//! is not: the election (`zk-election` decides who leads), a log or snapshot format
//! (`zk-persistence`), or a tree: txn bodies and snapshots are opaque bytes.
//!
//! - [`Zab`] is the pure core: [`Zab::handle`] takes an [`Input`] (the election's
//!   decision, a received [`Message`], a tick, "durable up to", log entries and snapshot
//!   pieces the caller read) with the caller's clock in milliseconds, and returns
//!   [`Output`]s (messages to send, entries to append, truncations, epoch writes, txns to
//!   apply, reads to make). No tasks, sockets, files or clocks inside.
//! - [`History`] is the shape of a log (its base and the range of zxids of each epoch),
//!   from which a leader decides DIFF, TRUNC or SNAP for each learner.
//!
//! ```
//! use zk_jute::Zxid;
//! use zk_replication::{Config, Entry, Input, Message, Output, Persisted, Zab};
//!
//! let config = Config::majority([1, 2, 3], []);
//! let mut leader = Zab::new(config.clone(), 1, Persisted::default()).unwrap();
//! let mut follower = Zab::new(config, 2, Persisted::default()).unwrap();
//! leader.handle(0, Input::Lead { election_epoch: 1 });
//! follower.handle(0, Input::Follow { leader: 1, election_epoch: 1 });
//!
//! // Carry messages between the two until neither has anything to say.
//! let mut to_leader = follower.handle(0, Input::Connected { peer: 1 });
//! loop {
//!     let mut to_follower = Vec::new();
//!     for o in to_leader.drain(..) {
//!         if let Output::Send { message, .. } = o {
//!             to_follower.extend(leader.handle(0, Input::Receive { from: 2, message }));
//!         }
//!     }
//!     for o in to_follower {
//!         if let Output::Send { message, .. } = o {
//!             to_leader.extend(follower.handle(0, Input::Receive { from: 1, message }));
//!         }
//!     }
//!     if to_leader.is_empty() {
//!         break;
//!     }
//! }
//! // Two of three acknowledged the new leader: it serves, and so does its follower.
//! assert!(leader.is_serving() && follower.is_serving());
//! assert_eq!(leader.next_zxid(), Some(Zxid::new(1, 1)));
//! ```

#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)
)]

mod config;
mod error;
mod history;
mod leader;
mod learner;
mod message;
pub mod runtime;
pub mod storage;
pub mod transport;
mod zab;

pub use crate::config::{Config, Membership};
pub use crate::error::{CompactError, ConfigError, HistoryError, ProposeError};
pub use crate::history::History;
pub use crate::leader::LearnerView;
pub use crate::message::{Entry, Message, Sid, Touch};
pub use crate::zab::{Input, Output, Persisted, State, Zab};

// The README's examples, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
