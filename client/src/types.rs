//! The values the client hands out: options, session states, watch events, and the
//! future and streams watches arrive on.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::{broadcast, mpsc, oneshot};
use zk_jute::data::Acl;
use zk_jute::{CreateMode, EventType, KeeperState};

/// How to connect and what session to ask for. Its `Debug` output leaves out the
/// credentials and the session password.
#[derive(Clone)]
pub struct ClientOptions {
    /// The session timeout asked for; the server clamps it to its
    /// `[minSessionTimeout, maxSessionTimeout]` (2 and 20 ticks by default). Default 30 s.
    pub session_timeout: Duration,
    /// How long [`Client::connect`](crate::Client::connect) tries the hosts before giving
    /// up with [`Error::ConnectTimeout`](crate::Error::ConnectTimeout). Default 30 s.
    pub connect_timeout: Duration,
    /// The pause after a whole round of hosts failed (`StaticHostProvider`'s spin delay).
    /// Default 1 s.
    pub reconnect_delay: Duration,
    /// Resume this session instead of creating one: its id and password (as
    /// [`Client::session_id`](crate::Client::session_id) and
    /// [`Client::session_password`](crate::Client::session_password) give them).
    pub session: Option<(i64, Vec<u8>)>,
    /// Accept a read-only server (`canBeReadOnly`). Default false.
    pub read_only: bool,
    /// The largest reply frame accepted (`jute.maxbuffer`); default 0xfffff, as ZooKeeper's
    /// client.
    pub max_packet_len: usize,
    /// Identities to authenticate with before any request (`addauth`), as
    /// `(scheme, credentials)`; they are sent again after every reconnect.
    pub auth: Vec<(String, Vec<u8>)>,
    /// Connect over TLS with this rustls configuration (a server's `secureClientPort`):
    /// its roots check the server's certificate against the host name or address of the
    /// connect string, and a client certificate in it becomes the session's `x509`
    /// identity on the server. `None` (the default): plain TCP.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Authenticate with SASL DIGEST-MD5 as this user on every connection, before any
    /// request (a server's JAAS `Server` section, as a Java client's `Client` section
    /// does); the session is then `sasl:<user>`. A refusal ends the session in
    /// [`SessionState::AuthFailed`]. `None` (the default): no SASL.
    pub sasl: Option<SaslCredentials>,
}

/// A DIGEST-MD5 user and password. Its `Debug` output leaves the password out.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for SaslCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslCredentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            session_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(30),
            reconnect_delay: Duration::from_secs(1),
            session: None,
            read_only: false,
            max_packet_len: zk_jute::DEFAULT_MAX_FRAME_LEN,
            auth: Vec::new(),
            tls: None,
            sasl: None,
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let schemes: Vec<&str> = self.auth.iter().map(|(s, _)| s.as_str()).collect();
        f.debug_struct("ClientOptions")
            .field("session_timeout", &self.session_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect_delay", &self.reconnect_delay)
            .field(
                "session",
                &self.session.as_ref().map(|(id, _)| format!("{id:#x}")),
            )
            .field("read_only", &self.read_only)
            .field("max_packet_len", &self.max_packet_len)
            .field("auth_schemes", &schemes)
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

impl ClientOptions {
    /// The defaults with `session_timeout`.
    pub fn with_session_timeout(session_timeout: Duration) -> Self {
        ClientOptions {
            session_timeout,
            ..Self::default()
        }
    }
}

/// How to create a znode: its mode, ACL and (for TTL modes) time to live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    /// Persistent, ephemeral, sequential, container or TTL.
    pub mode: CreateMode,
    /// The znode's ACL; must not be empty.
    pub acl: Vec<Acl>,
    /// Time to live in milliseconds, for the TTL modes only (1 to 2^40 - 1).
    pub ttl_ms: Option<i64>,
    /// Send no data at all (a null buffer, as Java's `create(path, null, …)`) instead of
    /// the data given. ZooKeeper keeps null apart from empty data: reading it back with
    /// [`get_data_nullable`](crate::Client::get_data_nullable) gives `None`.
    pub null_data: bool,
}

impl CreateOptions {
    /// `mode` with the open ACL (`world:anyone`, every permission).
    pub fn new(mode: CreateMode) -> Self {
        CreateOptions {
            mode,
            acl: crate::acl::open_unsafe(),
            ttl_ms: None,
            null_data: false,
        }
    }

    /// A persistent znode with the open ACL.
    pub fn persistent() -> Self {
        Self::new(CreateMode::Persistent)
    }

    /// An ephemeral znode with the open ACL.
    pub fn ephemeral() -> Self {
        Self::new(CreateMode::Ephemeral)
    }

    /// Replaces the ACL.
    pub fn with_acl(mut self, acl: Vec<Acl>) -> Self {
        self.acl = acl;
        self
    }

    /// Sets the time to live (for [`CreateMode::PersistentWithTtl`] and
    /// [`CreateMode::PersistentSequentialWithTtl`]).
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl_ms = Some(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        self
    }

    /// Creates the znode with null data (see [`CreateOptions::null_data`]).
    pub fn with_null_data(mut self) -> Self {
        self.null_data = true;
        self
    }
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self::persistent()
    }
}

/// Where the session stands. The last three are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Establishing the first connection.
    Connecting,
    /// Connected, the session is live (`SyncConnected`).
    Connected,
    /// Connected to a read-only server (only with [`ClientOptions::read_only`]).
    ConnectedReadOnly,
    /// The connection was lost; the client is reconnecting to resume the session.
    /// Requests issued now wait for the next connection or fail with `ConnectionLoss`.
    Disconnected,
    /// The session expired: the server said so on reconnecting, or the client heard
    /// nothing for 4/3 of the session timeout (as ZooKeeper 3.9's client decides).
    Expired,
    /// Authentication failed; the connection was closed.
    AuthFailed,
    /// The client was closed.
    Closed,
}

impl SessionState {
    /// Whether the session is over for good.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SessionState::Expired | SessionState::AuthFailed | SessionState::Closed
        )
    }

    /// Whether requests can be sent right now.
    pub fn is_connected(self) -> bool {
        matches!(
            self,
            SessionState::Connected | SessionState::ConnectedReadOnly
        )
    }

    /// The `KeeperState` a watcher is told for this state.
    pub fn keeper_state(self) -> KeeperState {
        match self {
            SessionState::Connecting | SessionState::Disconnected => KeeperState::Disconnected,
            SessionState::Connected => KeeperState::SyncConnected,
            SessionState::ConnectedReadOnly => KeeperState::ConnectedReadOnly,
            SessionState::Expired => KeeperState::Expired,
            SessionState::AuthFailed => KeeperState::AuthFailed,
            SessionState::Closed => KeeperState::Closed,
        }
    }
}

impl std::fmt::Display for SessionState {
    /// The `KeeperState` name, or `Connecting`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionState::Connecting => f.write_str("Connecting"),
            other => write!(f, "{}", other.keeper_state()),
        }
    }
}

/// A watch notification, as ZooKeeper's `WatchedEvent`: paths are relative to the
/// client's chroot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchedEvent {
    /// What happened; [`EventType::None`] for the end of the session.
    pub event_type: EventType,
    /// The session's state: `SyncConnected` for znode events, `Expired`, `AuthFailed` or
    /// `Closed` when the session ended.
    pub state: KeeperState,
    /// The znode (for a recursive watch, the descendant that changed); empty for session
    /// events.
    pub path: String,
}

impl WatchedEvent {
    /// A znode event in state `SyncConnected`.
    pub fn node(event_type: EventType, path: impl Into<String>) -> Self {
        WatchedEvent {
            event_type,
            state: KeeperState::SyncConnected,
            path: path.into(),
        }
    }

    /// A session event in `state`: what every watcher gets when the session ends, and what
    /// [`Client::events`](crate::Client::events) carries for each change of state.
    pub fn session(state: KeeperState) -> Self {
        WatchedEvent {
            event_type: EventType::None,
            state,
            path: String::new(),
        }
    }

    /// Whether this is a session event (type `None`) rather than a znode event: for a
    /// watch, the session's end; in [`Client::events`](crate::Client::events), any change
    /// of state.
    pub fn is_session_end(&self) -> bool {
        self.event_type == EventType::None
    }
}

impl std::fmt::Display for WatchedEvent {
    /// As ZooKeeper's `WatchedEvent.toString` (what `zkCli.sh` prints after `WATCHER::`):
    /// `WatchedEvent state:SyncConnected type:NodeDataChanged path:/a`, `path:null` for
    /// session events.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() && self.event_type == EventType::None {
            "null"
        } else {
            &self.path
        };
        write!(
            f,
            "WatchedEvent state:{} type:{} path:{path}",
            self.state, self.event_type
        )
    }
}

/// A one-shot watch (`getData`, `exists` or `getChildren` with a watch): a future that
/// resolves with the one event that fires it, a `*WatchRemoved` event when
/// [`remove_watches`](crate::Client::remove_watches) takes it out, or a session event
/// (`Expired`, `AuthFailed`, `Closed`) when the session ends first. Connection losses do not
/// fire it: the watch is set again on the next connection.
#[derive(Debug)]
#[must_use = "a watch does nothing unless awaited"]
pub struct OneshotWatch {
    pub(crate) rx: oneshot::Receiver<WatchedEvent>,
}

impl Future for OneshotWatch {
    type Output = WatchedEvent;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WatchedEvent> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| WatchedEvent::session(KeeperState::Closed)))
    }
}

/// A persistent watch (`addWatch`): a stream of every event on the znode (and, in
/// recursive mode, its descendants) until removed. The last item is
/// `PersistentWatchRemoved` after [`remove_watches`](crate::Client::remove_watches), or a
/// session event (`Expired`, `AuthFailed`, `Closed`); then the stream ends. Events are
/// queued without bound until read.
#[derive(Debug)]
pub struct PersistentWatch {
    pub(crate) rx: mpsc::UnboundedReceiver<WatchedEvent>,
}

impl PersistentWatch {
    /// The next event, or `None` once the watch is over.
    pub async fn next_event(&mut self) -> Option<WatchedEvent> {
        self.rx.recv().await
    }
}

impl Stream for PersistentWatch {
    type Item = WatchedEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchedEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// Every node event the client's watches hear, once each and in the order they came,
/// across all its watches: from [`Client::watch_events`](crate::Client::watch_events) (and
/// from [`Client::events`](crate::Client::events), the session's changes of state among
/// them). ZooKeeper orders watch events with respect to each other and to replies, and its
/// Java client delivers them on one thread; separate watches read in separate tasks lose
/// that order, this stream keeps it. An event is here before the reply the server sent
/// after it resolves. Events are queued without bound until read; the stream ends with the
/// session.
#[derive(Debug)]
pub struct WatchEvents {
    pub(crate) rx: mpsc::UnboundedReceiver<WatchedEvent>,
}

impl WatchEvents {
    /// The next event, or `None` once the session is over.
    pub async fn next_event(&mut self) -> Option<WatchedEvent> {
        self.rx.recv().await
    }
}

impl Stream for WatchEvents {
    type Item = WatchedEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchedEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// The session's state changes, in order, from the moment
/// [`Client::state_events`](crate::Client::state_events) was called. A reader that falls
/// more than 64 changes behind skips the oldest. Ends after a terminal state.
pub struct StateEvents {
    inner: Pin<Box<dyn Stream<Item = SessionState> + Send>>,
}

impl std::fmt::Debug for StateEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateEvents").finish_non_exhaustive()
    }
}

impl StateEvents {
    pub(crate) fn new(rx: broadcast::Receiver<SessionState>) -> Self {
        let stream = futures_util::stream::unfold(Some(rx), |rx| async move {
            let mut rx = rx?;
            loop {
                match rx.recv().await {
                    Ok(state) => {
                        let next = (!state.is_terminal()).then_some(rx);
                        return Some((state, next));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        StateEvents {
            inner: Box::pin(stream),
        }
    }

    /// The next state, or `None` after a terminal one.
    pub async fn next_state(&mut self) -> Option<SessionState> {
        futures_util::StreamExt::next(self).await
    }
}

impl Stream for StateEvents {
    type Item = SessionState;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SessionState>> {
        self.inner.as_mut().poll_next(cx)
    }
}
