//! An async ZooKeeper client on tokio.
//!
//! [`Client::connect`] takes a connect string (`host:port,host:port/chroot`) and returns
//! once a session is established. One background task owns the connection: requests are
//! pipelined on it in call order and answered in that order, watch events are delivered
//! before the replies that follow them, pings keep the session alive at a third of its
//! timeout, and a lost connection is re-established to another server with the same
//! session (last zxid seen, authentication and watches sent again). A session that
//! expires is terminal: every watch is told, every later call fails with
//! [`Error::SessionExpired`].
//!
//! Every operation of ZooKeeper 3.8's client is here: create (every mode, TTL and
//! container included, answered with a stat), delete, exists, data, children (with
//! stat), ACLs, [`Multi`] transactions and [`MultiRead`], sync, persistent and
//! recursive watches, removing and checking watches, ephemerals, descendant counts,
//! `whoAmI` and `addauth`. One-shot watches are futures ([`OneshotWatch`]), persistent ones
//! streams ([`PersistentWatch`]), session states a stream too ([`StateEvents`]). Errors
//! are one enum with a variant per ZooKeeper error code ([`Error`]).
//!
//! # Sessions and watches across reconnects
//!
//! - A lost connection fails the requests in flight with [`Error::ConnectionLoss`]
//!   (they may or may not have been applied), moves to [`SessionState::Disconnected`] and
//!   tries the next host; after a whole round of hosts it waits
//!   [`ClientOptions::reconnect_delay`]. Requests made meanwhile wait for the next
//!   connection, or fail with `ConnectionLoss` when an attempt fails, as in ZooKeeper's
//!   client.
//! - One-shot watches survive reconnects: they are registered again (`setWatches`, with the
//!   last zxid seen, so a change missed while disconnected fires at once). Persistent
//!   watches are registered again too, but ZooKeeper does not replay what they missed.
//!   Connection states are not sent to watches; read them from
//!   [`Client::state_events`].
//! - The session expires when a server says so on reconnecting, or when no server was
//!   heard for 4/3 of the negotiated timeout (ZooKeeper 3.9's client rule). Every watch then
//!   gets an `Expired` event, and streams end.
//!
//! It is not a server, and it does not speak SASL or TLS, or look for read-write servers
//! when connected to a read-only one.
//!
//! # Example
//!
//! ```
//! use zk_client::{Client, ClientOptions, CreateOptions, EventType};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let server = zk_server::Server::start(zk_server::Config {
//! #     client_addr: "127.0.0.1:0".parse()?,
//! #     data_dir: dir.path().into(),
//! #     data_log_dir: dir.path().into(),
//! #     ..Default::default()
//! # })
//! # .await?;
//! # let hosts = server.local_addr().to_string();
//! // `hosts` is e.g. "zk1:2181,zk2:2181,zk3:2181".
//! let admin = Client::connect(&hosts, ClientOptions::default()).await?;
//! admin.create("/app", b"", &CreateOptions::persistent()).await?;
//!
//! // Everything this client does is under /app.
//! let client = Client::connect(&format!("{hosts}/app"), ClientOptions::default()).await?;
//! client.create("/config", b"v1", &CreateOptions::persistent()).await?;
//! let (data, stat, changed) = client.get_data_w("/config").await?;
//! assert_eq!((&data[..], stat.version), (&b"v1"[..], 0));
//!
//! admin.set_data("/app/config", b"v2", Some(0)).await?;
//! let event = changed.await;
//! assert_eq!((event.event_type, event.path.as_str()), (EventType::NodeDataChanged, "/config"));
//!
//! client.close().await?;
//! admin.delete_recursive("/app").await?;
//! # server.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)
)]

pub mod acl;
mod client;
mod error;
mod hosts;
mod io;
mod multi;
mod path;
mod types;

pub use client::Client;
pub use error::{Error, Result};
pub use hosts::{ConnectString, DEFAULT_PORT};
pub use multi::{Multi, MultiRead, OpResult, ReadResult};
pub use path::validate_path;
pub use types::{
    ClientOptions, CreateOptions, OneshotWatch, PersistentWatch, SaslCredentials, SessionState,
    StateEvents, WatchEvents, WatchedEvent,
};
pub use zk_jute::data::{Acl, ClientInfo, Id, Stat};
pub use zk_jute::{AddWatchMode, CreateMode, EventType, KeeperState, Perms, WatcherType};

// The README's examples, compiled and run by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
