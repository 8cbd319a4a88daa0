//! The client's one error type: every ZooKeeper error code, plus what the client itself
//! detects (bad paths, bad connect strings, a closed client).

use zk_jute::ErrorCode;

/// A specialised `Result` for client operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an operation failed.
///
/// The variants from [`SystemError`](Error::SystemError) to
/// [`ThrottledOp`](Error::ThrottledOp) are ZooKeeper's error codes (`KeeperException.Code`),
/// one each; [`Error::code`] gives the number back. The rest are detected by the client
/// before anything is sent, or describe the client's own state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system or server-side error (-1).
    #[error("system error")]
    SystemError,
    /// A runtime inconsistency (-2); in a failed multi, the code of the ops after the
    /// failing one.
    #[error("runtime inconsistency")]
    RuntimeInconsistency,
    /// A data inconsistency (-3).
    #[error("data inconsistency")]
    DataInconsistency,
    /// The connection to the server was lost before the reply came (-4). The request may or
    /// may not have been applied; the session may still be alive.
    #[error("connection loss")]
    ConnectionLoss,
    /// Error while (un)marshalling data (-5).
    #[error("marshalling error")]
    MarshallingError,
    /// The operation is not implemented by the server (-6).
    #[error("unimplemented")]
    Unimplemented,
    /// The operation timed out (-7).
    #[error("operation timeout")]
    OperationTimeout,
    /// Invalid arguments (-8).
    #[error("bad arguments")]
    BadArguments,
    /// Unknown session (-12).
    #[error("unknown session")]
    UnknownSession,
    /// No quorum of the new config is connected and up to date (-13).
    #[error("no quorum of the new config")]
    NewConfigNoQuorum,
    /// Another reconfiguration is in progress (-14).
    #[error("reconfiguration in progress")]
    ReconfigInProgress,
    /// An API error (-100).
    #[error("API error")]
    ApiError,
    /// The znode does not exist (-101).
    #[error("no node")]
    NoNode,
    /// Not authorised for this znode (-102).
    #[error("not authenticated")]
    NoAuth,
    /// The version given does not match the znode's (-103).
    #[error("bad version")]
    BadVersion,
    /// Ephemeral znodes may not have children (-108).
    #[error("ephemeral nodes may not have children")]
    NoChildrenForEphemerals,
    /// The znode already exists (-110).
    #[error("node exists")]
    NodeExists,
    /// The znode has children (-111).
    #[error("directory not empty")]
    NotEmpty,
    /// The session has expired (-112). Terminal: every later call fails with this too.
    #[error("session expired")]
    SessionExpired,
    /// Invalid callback (-113).
    #[error("invalid callback")]
    InvalidCallback,
    /// Invalid ACL (-114), also raised by the client for an empty ACL.
    #[error("invalid ACL")]
    InvalidAcl,
    /// Authentication failed (-115). Terminal, as for ZooKeeper's client.
    #[error("authentication failed")]
    AuthFailed,
    /// The session moved to another server (-118).
    #[error("session moved")]
    SessionMoved,
    /// A state-changing request was sent to a read-only server (-119).
    #[error("not a read-only call")]
    NotReadOnly,
    /// An ephemeral was requested on a local session (-120).
    #[error("ephemeral on local session")]
    EphemeralOnLocalSession,
    /// No such watch to check or remove (-121).
    #[error("no watcher")]
    NoWatcher,
    /// The request timed out waiting for a reply (-122).
    #[error("request timeout")]
    RequestTimeout,
    /// Dynamic reconfiguration is disabled (-123).
    #[error("reconfig disabled")]
    ReconfigDisabled,
    /// The session was closed because it needs SASL authentication (-124).
    #[error("session closed: SASL authentication required")]
    SessionClosedRequireSaslAuth,
    /// A quota was exceeded (-125).
    #[error("quota exceeded")]
    QuotaExceeded,
    /// The server throttled the operation (-127).
    #[error("operation throttled")]
    ThrottledOp,
    /// An error code this client does not know.
    #[error("unknown error code {0}")]
    Unknown(i32),

    /// A multi failed: nothing was applied. `index` is the first operation that failed
    /// and `error` its reason (the ops after it report `RuntimeInconsistency`).
    #[error("multi op {index} failed: {error}")]
    MultiFailed {
        /// The position of the failing operation in the request.
        index: usize,
        /// Why it failed.
        error: Box<Error>,
    },
    /// The path is not a valid znode path (ZooKeeper's `PathUtils.validatePath`); nothing
    /// was sent.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An argument the client refuses before sending (for example a TTL on a mode that
    /// takes none).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The connect string has no usable host or a bad port.
    #[error("invalid connect string {0:?}")]
    InvalidConnectString(String),
    /// No server answered with a session within the connect timeout.
    #[error("no server answered within the connect timeout")]
    ConnectTimeout,
    /// The server sent something this client cannot read; the connection was dropped.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The client was closed (by [`Client::close`](crate::Client::close)).
    #[error("client closed")]
    Closed,
}

impl Error {
    /// The error for a ZooKeeper error code; `None` for `0` (success).
    pub fn from_code(code: i32) -> Option<Error> {
        let known = match ErrorCode::try_from(code) {
            Ok(known) => known,
            Err(other) => return Some(Error::Unknown(other)),
        };
        Some(match known {
            ErrorCode::Ok => return None,
            ErrorCode::SystemError => Error::SystemError,
            ErrorCode::RuntimeInconsistency => Error::RuntimeInconsistency,
            ErrorCode::DataInconsistency => Error::DataInconsistency,
            ErrorCode::ConnectionLoss => Error::ConnectionLoss,
            ErrorCode::MarshallingError => Error::MarshallingError,
            ErrorCode::Unimplemented => Error::Unimplemented,
            ErrorCode::OperationTimeout => Error::OperationTimeout,
            ErrorCode::BadArguments => Error::BadArguments,
            ErrorCode::UnknownSession => Error::UnknownSession,
            ErrorCode::NewConfigNoQuorum => Error::NewConfigNoQuorum,
            ErrorCode::ReconfigInProgress => Error::ReconfigInProgress,
            ErrorCode::ApiError => Error::ApiError,
            ErrorCode::NoNode => Error::NoNode,
            ErrorCode::NoAuth => Error::NoAuth,
            ErrorCode::BadVersion => Error::BadVersion,
            ErrorCode::NoChildrenForEphemerals => Error::NoChildrenForEphemerals,
            ErrorCode::NodeExists => Error::NodeExists,
            ErrorCode::NotEmpty => Error::NotEmpty,
            ErrorCode::SessionExpired => Error::SessionExpired,
            ErrorCode::InvalidCallback => Error::InvalidCallback,
            ErrorCode::InvalidAcl => Error::InvalidAcl,
            ErrorCode::AuthFailed => Error::AuthFailed,
            ErrorCode::SessionMoved => Error::SessionMoved,
            ErrorCode::NotReadOnly => Error::NotReadOnly,
            ErrorCode::EphemeralOnLocalSession => Error::EphemeralOnLocalSession,
            ErrorCode::NoWatcher => Error::NoWatcher,
            ErrorCode::RequestTimeout => Error::RequestTimeout,
            ErrorCode::ReconfigDisabled => Error::ReconfigDisabled,
            ErrorCode::SessionClosedRequireSaslAuth => Error::SessionClosedRequireSaslAuth,
            ErrorCode::QuotaExceeded => Error::QuotaExceeded,
            ErrorCode::ThrottledOp => Error::ThrottledOp,
        })
    }

    /// The ZooKeeper error code of this error, if it is one (client-side errors have none;
    /// a failed multi has its failing op's code).
    pub fn code(&self) -> Option<i32> {
        let code = match self {
            Error::SystemError => ErrorCode::SystemError,
            Error::RuntimeInconsistency => ErrorCode::RuntimeInconsistency,
            Error::DataInconsistency => ErrorCode::DataInconsistency,
            Error::ConnectionLoss => ErrorCode::ConnectionLoss,
            Error::MarshallingError => ErrorCode::MarshallingError,
            Error::Unimplemented => ErrorCode::Unimplemented,
            Error::OperationTimeout => ErrorCode::OperationTimeout,
            Error::BadArguments => ErrorCode::BadArguments,
            Error::UnknownSession => ErrorCode::UnknownSession,
            Error::NewConfigNoQuorum => ErrorCode::NewConfigNoQuorum,
            Error::ReconfigInProgress => ErrorCode::ReconfigInProgress,
            Error::ApiError => ErrorCode::ApiError,
            Error::NoNode => ErrorCode::NoNode,
            Error::NoAuth => ErrorCode::NoAuth,
            Error::BadVersion => ErrorCode::BadVersion,
            Error::NoChildrenForEphemerals => ErrorCode::NoChildrenForEphemerals,
            Error::NodeExists => ErrorCode::NodeExists,
            Error::NotEmpty => ErrorCode::NotEmpty,
            Error::SessionExpired => ErrorCode::SessionExpired,
            Error::InvalidCallback => ErrorCode::InvalidCallback,
            Error::InvalidAcl => ErrorCode::InvalidAcl,
            Error::AuthFailed => ErrorCode::AuthFailed,
            Error::SessionMoved => ErrorCode::SessionMoved,
            Error::NotReadOnly => ErrorCode::NotReadOnly,
            Error::EphemeralOnLocalSession => ErrorCode::EphemeralOnLocalSession,
            Error::NoWatcher => ErrorCode::NoWatcher,
            Error::RequestTimeout => ErrorCode::RequestTimeout,
            Error::ReconfigDisabled => ErrorCode::ReconfigDisabled,
            Error::SessionClosedRequireSaslAuth => ErrorCode::SessionClosedRequireSaslAuth,
            Error::QuotaExceeded => ErrorCode::QuotaExceeded,
            Error::ThrottledOp => ErrorCode::ThrottledOp,
            Error::Unknown(code) => return Some(*code),
            Error::MultiFailed { error, .. } => return error.code(),
            _ => return None,
        };
        Some(code.code())
    }

    /// The error itself, or for a failed multi the failing op's error.
    pub fn root(&self) -> &Error {
        match self {
            Error::MultiFailed { error, .. } => error.root(),
            other => other,
        }
    }

    /// Whether the session is over: no call on this client can succeed any more.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Error::SessionExpired | Error::AuthFailed | Error::Closed
        )
    }
}

impl From<zk_jute::DecodeError> for Error {
    fn from(e: zk_jute::DecodeError) -> Self {
        Error::Protocol(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for code in ErrorCode::ALL {
            let n = code.code();
            match Error::from_code(n) {
                None => assert_eq!(*code, ErrorCode::Ok),
                Some(e) => assert_eq!(e.code(), Some(n), "{e}"),
            }
        }
        assert_eq!(Error::from_code(-126), Some(Error::Unknown(-126)));
        assert_eq!(Error::Unknown(-126).code(), Some(-126));
        assert_eq!(Error::Closed.code(), None);
    }
}
