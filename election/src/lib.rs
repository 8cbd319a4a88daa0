//! ZooKeeper's fast leader election (FastLeaderElection) as a deterministic state machine
//! driven by inputs, with a gRPC transport between peers.
//!
//! What it is for: choosing, among the members of an ensemble, the one with the most
//! recent history (greatest current epoch, then last zxid, then sid) as leader, exactly
//! by ZooKeeper 3.8's rules, so that a ZooKeeper-compatible server can run it between
//! peers. What it is not: replication. Deciding is not leading; the replication layer
//! (Zab) establishes the leader's epoch and may start a new election at any time.
//!
//! - [`Election`] is the pure core: [`Election::handle`] takes an [`Input`] (a received
//!   [`Notification`], a tick, start-looking) with the caller's clock in milliseconds and
//!   returns [`Output`]s (notifications to send, a [`Decision`]). No tasks, sockets or
//!   clocks inside.
//! - [`QuorumVerifier`]: ZooKeeper's majority and hierarchical (groups and weights) rules.
//! - [`transport`]: the core behind tonic, one long-lived stream per pair of servers.
//! - [`peer_tls`]: mutual TLS between members, and the proof of a peer's server id
//!   (shared with `zk-replication`'s quorum streams).
//!
//! Where this differs from ZooKeeper 3.8:
//!
//! - The optional [`Lease`] stands in for Zab's liveness checks: settled members re-send
//!   their vote as a heartbeat, and a follower without its leader (or a leader without a
//!   quorum) for the lease's timeout starts a new round; [`Input::PeerDisconnected`] for
//!   the leader does so at once. While finalizing, such heartbeats do not restart
//!   `finalizeWait` (ZooKeeper's settled members never repeat themselves).
//! - A looking member answers a looking peer not only when the peer lags a round (as
//!   ZooKeeper does) but also when the peer, in the same round, holds a worse vote: a
//!   lost broadcast is repaired at once instead of when the notification timeout fires,
//!   which the peer's own re-sends keep postponing (the deterministic simulation found
//!   elections stalled for many seconds that way under message loss).
//! - Observers are answered only when they are looking (ZooKeeper answers every message
//!   from a non-voter; with heartbeats that would have two observers answer each other
//!   forever), and a looking observer does not answer a voter of an older round (the
//!   voter answers every looking observer, so the two would answer each other forever;
//!   the replication simulation saw that storm while the voter was cut off).
//! - `finalizeWait` ends early once every voter is accounted for: it holds this round's
//!   proposal, or the transport lost its stream ([`Input::PeerDisconnected`]) and it has
//!   not been heard from since. ZooKeeper always waits the full 200 ms, for votes still
//!   in flight; with every voter accounted for there are none. When a killed leader's
//!   connections reset, the survivors elect in the time their votes take to cross, and
//!   the ensemble serves again about 200 ms sooner. Safety never rested on the wait:
//!   Zab's epochs and quorum ACKs guard what a leader does.
//! - Membership changes come from the replication layer ([`Input::Reconfigure`]);
//!   notifications carry the membership's version, not the membership itself (ZooKeeper's
//!   `qv` field). The Oracle of two-member ensembles is not implemented.
//!
//! ```
//! use zk_election::{Config, Election, Input, Output, PeerData, ServerState};
//!
//! let config = Config::majority([1, 2, 3], []);
//! let data = PeerData { current_epoch: 1, last_zxid: 0x1_0000_0005 };
//! let mut one = Election::new(config, 1, data).unwrap();
//! let sent = one.handle(0, Input::StartLooking);
//! // It proposes itself to the two other voters.
//! let to: Vec<u64> = sent
//!     .iter()
//!     .filter_map(|o| match o { Output::Send { to, .. } => Some(*to), _ => None })
//!     .collect();
//! assert_eq!(to, vec![2, 3]);
//! assert_eq!(one.state(), ServerState::Looking);
//! ```

#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)
)]

mod config;
mod core;
mod error;
pub mod peer_tls;
mod quorum;
pub mod transport;
mod vote;

pub use crate::config::{Config, Lease, Member, Role, ServerLine, Timing};
pub use crate::core::{DecidedBy, Decision, Election, Input, Output};
pub use crate::error::{ConfigError, TransportError};
pub use crate::quorum::{Hierarchical, Majority, QuorumVerifier};
pub use crate::vote::{Notification, PeerData, ServerState, Sid, Vote};

// The README's examples, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
