//! The crate's error types.

use crate::vote::Sid;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A number in a key or value did not parse.
    #[error("{key}: {value:?} is not a number")]
    BadNumber {
        /// The key.
        key: String,
        /// The text that should have been a number.
        value: String,
    },
    /// A `server.N` value is not `host:quorumPort:electionPort[:role][;client]`.
    #[error("server.{sid}: {value:?} is not host:quorumPort:electionPort[:participant|:observer]")]
    BadServer {
        /// The server id.
        sid: Sid,
        /// The value.
        value: String,
    },
    /// A `server.N` line gives one port for both quorum and election.
    #[error("server.{0}: the quorum and election ports must be different")]
    SamePorts(Sid),
    /// A `server.N` line lists several addresses (ZooKeeper's `multiAddress`, off by
    /// default and not supported here).
    #[error("server.{0}: several addresses (multiAddress) are not supported")]
    MultiAddress(Sid),
    /// A participant appears in no `group.N` line of a hierarchical configuration.
    #[error("server {0} is not in a group")]
    NotInGroup(Sid),
    /// A server appears in two `group.N` lines.
    #[error("server {0} is in multiple groups")]
    MultipleGroups(Sid),
    /// A server id that is not a member of the configuration.
    #[error("server {0} is not a member")]
    NotAMember(Sid),
    /// The configuration has no voting member.
    #[error("no voting member")]
    NoVoters,
    /// A timing value is out of range.
    #[error("{0}")]
    BadTiming(&'static str),
}

/// An error of the gRPC transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// This server's id is not a member of the configuration.
    #[error("server {0} is not a member of the configuration")]
    NotAMember(Sid),
    /// A member has no election address.
    #[error("server {0} has no election address")]
    NoAddress(Sid),
    /// An address did not parse or resolve.
    #[error("bad address {0:?}")]
    BadAddress(String),
    /// Binding the listener failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
}
